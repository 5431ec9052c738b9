//! Tests of the incremental trie against `alloy_trie::HashBuilder` built from scratch, plus
//! known Ethereum vectors and proof verification.

use super::{
    MemoryNodes, Nibbles, NodeReader, TrieError, TrieUpdate, get,
    node::decode_trie_node,
    proof, root, update,
    update::{Parallelism, update_with},
};
use alloy_primitives::{B256, Bytes, b256, hex, keccak256};
use alloy_trie::{EMPTY_ROOT_HASH, HashBuilder, nodes::TrieNode, proof::verify_proof};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

type Model = BTreeMap<B256, Bytes>;

fn reference_root(model: &Model) -> B256 {
    let mut hb = HashBuilder::default();
    for (key, value) in model {
        hb.add_leaf(Nibbles::unpack(key), value);
    }
    hb.root()
}

/// Every path reachable from the root through hash references, checking each stored node
/// against the hash its parent holds.
fn reachable_paths(nodes: &MemoryNodes) -> BTreeSet<Nibbles> {
    fn visit(nodes: &MemoryNodes, path: Nibbles, node: TrieNode, out: &mut BTreeSet<Nibbles>) {
        let children: Vec<(Nibbles, alloy_trie::nodes::RlpNode)> = match node {
            TrieNode::Leaf(_) | TrieNode::EmptyRoot => vec![],
            TrieNode::Extension(ext) => vec![(path.join(&ext.key), ext.child)],
            TrieNode::Branch(branch) => {
                let mut stack = branch.stack.into_iter();
                (0..16u8)
                    .filter(|n| branch.state_mask.is_bit_set(*n))
                    .map(|n| {
                        let mut p = path;
                        p.push(n);
                        (p, stack.next().unwrap())
                    })
                    .collect()
            }
        };
        for (child_path, rlp) in children {
            let child = match rlp.as_hash() {
                Some(hash) => {
                    let stored = nodes.node(&child_path).unwrap_or_else(|| {
                        panic!("hash-referenced node missing at {child_path:?}")
                    });
                    assert_eq!(
                        keccak256(stored),
                        hash,
                        "stored node hash at {child_path:?}"
                    );
                    assert!(out.insert(child_path));
                    decode_trie_node(stored, &child_path).unwrap()
                }
                None => decode_trie_node(&rlp, &child_path).unwrap(),
            };
            visit(nodes, child_path, child, out);
        }
    }
    let mut out = BTreeSet::new();
    if let Some(stored) = nodes.node(&Nibbles::new()) {
        out.insert(Nibbles::new());
        visit(
            nodes,
            Nibbles::new(),
            decode_trie_node(stored, &Nibbles::new()).unwrap(),
            &mut out,
        );
    }
    out
}

/// Checks root, lookups, stored node set and proofs of `nodes` against `model`.
fn check(nodes: &MemoryNodes, model: &Model, absent: &[B256]) -> Result<(), TestCaseError> {
    let expected = reference_root(model);
    prop_assert_eq!(root(nodes).unwrap(), expected);
    let stored: BTreeSet<Nibbles> = nodes.iter().map(|(p, _)| *p).collect();
    prop_assert_eq!(
        &stored,
        &reachable_paths(nodes),
        "stale or missing stored paths"
    );
    for (key, value) in model {
        prop_assert_eq!(get(nodes, *key).unwrap(), Some(value.clone()));
        let p = proof(nodes, *key).unwrap();
        prop_assert!(
            verify_proof(expected, Nibbles::unpack(key), Some(value.to_vec()), &p).is_ok(),
            "proof of present key {} failed",
            key
        );
    }
    for key in absent.iter().filter(|k| !model.contains_key(*k)) {
        prop_assert_eq!(get(nodes, *key).unwrap(), None);
        let p = proof(nodes, *key).unwrap();
        prop_assert!(
            verify_proof(expected, Nibbles::unpack(key), None, &p).is_ok(),
            "proof of absent key {} failed",
            key
        );
    }
    Ok(())
}

/// Keys crowded together so that prefixes are shared up to any depth: one of a few base keys
/// with a tail (from a tiny nibble alphabet) replacing everything from nibble `cut` on.
fn crowded_key() -> impl Strategy<Value = B256> {
    let bases = [B256::ZERO, B256::repeat_byte(0xff), keccak256(b"bttd")];
    (
        0..bases.len(),
        prop_oneof![Just(0usize), 1..8usize, 56..64usize, Just(63usize)],
        any::<u64>(),
    )
        .prop_map(move |(base, cut, tail)| {
            let mut nibbles = Nibbles::unpack(bases[base]).to_vec();
            for (i, nibble) in nibbles.iter_mut().enumerate().skip(cut) {
                // Two bits of `tail` per nibble, from {0, 1, 0xe, 0xf}.
                *nibble = [0x0, 0x1, 0xe, 0xf][((tail >> ((i - cut) % 32 * 2)) & 3) as usize];
            }
            B256::from_slice(&Nibbles::from_nibbles(&nibbles).pack())
        })
}

fn value() -> impl Strategy<Value = Bytes> {
    // Short values make inlined leaves and branches deep down; long ones are always hashed.
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..4),
        prop::collection::vec(any::<u8>(), 1..80),
    ]
    .prop_map(Bytes::from)
}

#[derive(Debug, Clone)]
enum Batch {
    Changes(Vec<(usize, Option<Bytes>)>),
    DeleteAll,
}

fn batch() -> impl Strategy<Value = Batch> {
    prop_oneof![
        8 => prop::collection::vec(
            (any::<usize>(), prop_oneof![3 => value().prop_map(Some), 2 => Just(None)]),
            0..40
        )
        .prop_map(Batch::Changes),
        1 => Just(Batch::DeleteAll),
    ]
}

fn run(keys: Vec<B256>, batches: Vec<Batch>) -> Result<(), TestCaseError> {
    let mut nodes = MemoryNodes::new();
    let mut model = Model::new();
    for batch in batches {
        let changes: Vec<(B256, Option<Bytes>)> = match batch {
            Batch::Changes(changes) => changes
                .into_iter()
                .map(|(i, v)| (keys[i % keys.len()], v))
                .collect(),
            Batch::DeleteAll => model.keys().map(|k| (*k, None)).collect(),
        };
        for (key, value) in &changes {
            match value {
                Some(v) => model.insert(*key, v.clone()),
                None => model.remove(key),
            };
        }
        // The same batch split over lanes by root nibble gives the same trie.
        let parallel = update_with(
            &nodes,
            changes.clone(),
            Parallelism {
                lanes: 3,
                min_changes: 0,
            },
        )
        .unwrap();
        let result = update(&nodes, changes).unwrap();
        prop_assert_eq!(result.root, reference_root(&model));
        prop_assert_eq!(parallel.root, result.root);
        let mut parallel_paths: Vec<_> = parallel.writes.iter().map(|(p, _)| *p).collect();
        parallel_paths.dedup();
        prop_assert_eq!(
            parallel_paths.len(),
            parallel.writes.len(),
            "a path written twice"
        );
        let mut parallel_nodes = nodes.clone();
        parallel_nodes.apply(&parallel);
        let mut paths: Vec<_> = result.writes.iter().map(|(p, _)| *p).collect();
        paths.dedup();
        prop_assert_eq!(paths.len(), result.writes.len(), "a path written twice");
        nodes.apply(&result);
        prop_assert_eq!(&parallel_nodes, &nodes);
        check(&nodes, &model, &keys)?;

        // The stored form is canonical: the same as building the current map in one go.
        let mut fresh = MemoryNodes::new();
        fresh.apply(
            &update(
                &MemoryNodes::new(),
                model.iter().map(|(k, v)| (*k, Some(v.clone()))),
            )
            .unwrap(),
        );
        prop_assert_eq!(&fresh, &nodes);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn incremental_matches_hash_builder_crowded(
        keys in prop::collection::vec(crowded_key(), 1..24),
        batches in prop::collection::vec(batch(), 1..8),
    ) {
        run(keys, batches)?;
    }

    #[test]
    fn incremental_matches_hash_builder_random(
        keys in prop::collection::vec(any::<[u8; 32]>().prop_map(B256::from), 1..64),
        batches in prop::collection::vec(batch(), 1..6),
    ) {
        run(keys, batches)?;
    }
}

#[test]
fn empty_trie() {
    let nodes = MemoryNodes::new();
    assert_eq!(root(&nodes).unwrap(), EMPTY_ROOT_HASH);
    assert_eq!(
        update(&nodes, []).unwrap(),
        TrieUpdate {
            root: EMPTY_ROOT_HASH,
            writes: vec![]
        }
    );
    let deleted = update(&nodes, [(B256::ZERO, None)]).unwrap();
    assert_eq!(
        deleted,
        TrieUpdate {
            root: EMPTY_ROOT_HASH,
            writes: vec![]
        }
    );
    assert_eq!(get(&nodes, B256::ZERO).unwrap(), None);
    assert!(proof(&nodes, B256::ZERO).unwrap().is_empty());
    assert!(verify_proof(EMPTY_ROOT_HASH, Nibbles::unpack(B256::ZERO), None, &[]).is_ok());
}

/// ethereum/tests `TrieTests/hex_encoded_securetrie_test.json`, "test1": five accounts keyed by
/// keccak(address).
fn secure_trie_test1() -> Vec<(B256, Bytes)> {
    [
        (
            hex!("a94f5374fce5edbc8e2a8697c15331677e6ebf0b").as_slice(),
            hex!("f848018405f446a7a056e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421a0c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470").as_slice(),
        ),
        (
            &hex!("095e7baea6a6c7c4c2dfeb977efac326af552d87"),
            &hex!("f8440101a056e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421a004bccc5d94f4d1f99aab44369a910179931772f2a5c001c3229f57831c102769"),
        ),
        (
            &hex!("d2571607e241ecf590ed94b12d87c94babe36db6"),
            &hex!("f8440180a0ba4b47865c55a341a4a78759bb913cd15c3ee8eaf30a62fa8d1c8863113d84e8a0c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"),
        ),
        (
            &hex!("62c01474f089b07dae603491675dc5b5748f7049"),
            &hex!("f8448080a056e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421a0c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"),
        ),
        (
            &hex!("2adc25665018aa1fe0e6bc666dac8fc2697ff9ba"),
            &hex!("f8478083019a59a056e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421a0c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"),
        ),
    ]
    .into_iter()
    .map(|(address, account)| (keccak256(address), Bytes::copy_from_slice(account)))
    .collect()
}

#[test]
fn known_secure_trie_root() {
    let expected = b256!("730a444e08ab4b8dee147c9b232fc52d34a223d600031c1e9d25bfc985cbd797");
    let accounts = secure_trie_test1();

    // All at once.
    let mut nodes = MemoryNodes::new();
    let result = update(&nodes, accounts.iter().map(|(k, v)| (*k, Some(v.clone())))).unwrap();
    assert_eq!(result.root, expected);
    nodes.apply(&result);
    assert_eq!(root(&nodes).unwrap(), expected);

    // One account per update, then removed one by one back to the empty trie.
    let mut incremental = MemoryNodes::new();
    for (key, value) in &accounts {
        let result = update(&incremental, [(*key, Some(value.clone()))]).unwrap();
        incremental.apply(&result);
    }
    assert_eq!(root(&incremental).unwrap(), expected);
    assert_eq!(incremental, nodes);
    for (key, _) in &accounts {
        let result = update(&incremental, [(*key, None)]).unwrap();
        incremental.apply(&result);
    }
    assert_eq!(root(&incremental).unwrap(), EMPTY_ROOT_HASH);
    assert!(incremental.is_empty());
}

#[test]
fn single_account_root_is_hash_of_its_leaf() {
    // A one-leaf trie is the leaf node [compact(key), value] at the root.
    let (key, account) = secure_trie_test1().remove(0);
    let mut leaf = Vec::new();
    alloy_rlp::Encodable::encode(
        &alloy_trie::nodes::LeafNode::new(Nibbles::unpack(key), account.to_vec()),
        &mut leaf,
    );
    let result = update(&MemoryNodes::new(), [(key, Some(account))]).unwrap();
    assert_eq!(result.root, keccak256(&leaf));
    assert_eq!(
        result.writes,
        vec![(Nibbles::new(), Some(Bytes::from(leaf)))]
    );
}

#[test]
fn small_root_is_stored_and_hashed() {
    // A lone leaf whose RLP is under 32 bytes is still stored and hashed as the root.
    let result = update(
        &MemoryNodes::new(),
        [(B256::ZERO, Some(Bytes::from_static(&[1])))],
    )
    .unwrap();
    let mut hb = HashBuilder::default();
    hb.add_leaf(Nibbles::unpack(B256::ZERO), &[1]);
    assert_eq!(result.root, hb.root());
    assert_eq!(result.writes.len(), 1);
}

#[test]
fn last_change_of_a_key_wins_and_empty_value_deletes() {
    let key = B256::repeat_byte(7);
    let result = update(
        &MemoryNodes::new(),
        [
            (key, Some(Bytes::from_static(b"a"))),
            (key, None),
            (key, Some(Bytes::from_static(b"b"))),
        ],
    )
    .unwrap();
    let mut nodes = MemoryNodes::new();
    nodes.apply(&result);
    assert_eq!(get(&nodes, key).unwrap(), Some(Bytes::from_static(b"b")));
    let result = update(&nodes, [(key, Some(Bytes::new()))]).unwrap();
    assert_eq!(result.root, EMPTY_ROOT_HASH);
    assert_eq!(result.writes, vec![(Nibbles::new(), None)]);
}

/// A reader that counts its reads.
struct Counting<'a> {
    inner: &'a MemoryNodes,
    reads: std::sync::atomic::AtomicUsize,
}

impl NodeReader for Counting<'_> {
    fn read_node(&self, path: &Nibbles) -> Result<Option<Bytes>, TrieError> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.read_node(path)
    }
}

#[test]
fn update_reads_only_touched_paths() {
    let mut nodes = MemoryNodes::new();
    let keys: Vec<B256> = (0u64..4096).map(|i| keccak256(i.to_be_bytes())).collect();
    nodes.apply(
        &update(
            &nodes,
            keys.iter()
                .map(|k| (*k, Some(Bytes::from_static(&[0x42; 40])))),
        )
        .unwrap(),
    );
    let counting = Counting {
        inner: &nodes,
        reads: 0.into(),
    };
    let result = update(
        &counting,
        [(keys[0], Some(Bytes::from_static(&[0x43; 40])))],
    )
    .unwrap();
    // Root, ~3 branches and the leaf: a handful of reads, not thousands.
    let reads = counting.reads.into_inner();
    assert!(reads <= 6, "{reads} reads");
    assert_eq!(result.writes.len(), reads);
}

#[test]
fn corrupt_storage_is_an_error() {
    let mut nodes = MemoryNodes::new();
    let keys: Vec<B256> = (0u64..64).map(|i| keccak256(i.to_be_bytes())).collect();
    nodes.apply(
        &update(
            &nodes,
            keys.iter()
                .map(|k| (*k, Some(Bytes::from_static(&[1; 40])))),
        )
        .unwrap(),
    );
    // Drop one hash-referenced node below the root.
    let victim = *nodes
        .iter()
        .map(|(p, _)| p)
        .find(|p| !p.is_empty())
        .unwrap();
    let mut broken = nodes.clone();
    broken.apply(&TrieUpdate {
        root: B256::ZERO,
        writes: vec![(victim, None)],
    });
    let key = *keys
        .iter()
        .find(|k| Nibbles::unpack(*k).starts_with(&victim))
        .unwrap();
    assert!(matches!(get(&broken, key), Err(TrieError::Corrupt { .. })));
    assert!(matches!(
        update(&broken, [(key, None)]),
        Err(TrieError::Corrupt { .. })
    ));
    // Garbage bytes instead of a node.
    let mut garbage = nodes.clone();
    garbage.apply(&TrieUpdate {
        root: B256::ZERO,
        writes: vec![(victim, Some(Bytes::from_static(&[0xc1, 0x00])))],
    });
    assert!(matches!(
        update(&garbage, [(key, None)]),
        Err(TrieError::Corrupt { .. })
    ));
}
