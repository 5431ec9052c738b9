//! Reads through the stored trie: root, point lookups and `eth_getProof`-style proofs. Normal
//! state reads use flat state; these walk the nodes and check each stored node against the hash
//! its parent holds, so corruption shows as an error rather than a wrong answer.

use super::{
    NodeReader, TrieError,
    node::{KEY_NIBBLES, decode_trie_node},
};
use alloy_primitives::{B256, Bytes, keccak256};
use alloy_trie::{
    EMPTY_ROOT_HASH, Nibbles,
    nodes::{RlpNode, TrieNode},
};

/// Current root of the stored trie (`EMPTY_ROOT_HASH` when no root node is stored).
pub fn root<R: NodeReader>(reader: &R) -> Result<B256, TrieError> {
    Ok(reader
        .read_node(&Nibbles::new())?
        .map_or(EMPTY_ROOT_HASH, keccak256))
}

/// Point lookup of the leaf value of `key` through the trie.
pub fn get<R: NodeReader>(reader: &R, key: B256) -> Result<Option<Bytes>, TrieError> {
    walk(reader, key, |_| {})
}

/// Merkle proof for `key` as `eth_getProof` returns it: the RLP of every hash-referenced node
/// (the root first) on the path to the leaf, or to the point where the key's absence is proven.
/// Nodes inlined in their parent are part of the parent's RLP. Empty for an empty trie.
pub fn proof<R: NodeReader>(reader: &R, key: B256) -> Result<Vec<Bytes>, TrieError> {
    let mut nodes = Vec::new();
    walk(reader, key, |rlp| nodes.push(rlp.clone()))?;
    Ok(nodes)
}

/// Walks from the root towards `key`, passing each stored node read to `visit`, and returns the
/// key's value if present.
fn walk<R: NodeReader>(
    reader: &R,
    key: B256,
    mut visit: impl FnMut(&Bytes),
) -> Result<Option<Bytes>, TrieError> {
    let key = Nibbles::unpack_array(&key.0);
    let mut path = Nibbles::new();
    let Some(stored) = reader.read_node(&path)? else {
        return Ok(None);
    };
    visit(&stored);
    let mut node = decode_trie_node(&stored, &path)?;
    loop {
        let child = match node {
            TrieNode::EmptyRoot => return Err(TrieError::corrupt(&path, "empty node stored")),
            TrieNode::Leaf(leaf) => {
                let found = path.len() + leaf.key.len() == KEY_NIBBLES
                    && key.slice(path.len()..) == leaf.key;
                return Ok(found.then(|| Bytes::from(leaf.value)));
            }
            TrieNode::Extension(ext) => {
                if path.len() + ext.key.len() >= KEY_NIBBLES
                    || !key.slice(path.len()..).starts_with(&ext.key)
                {
                    return Ok(None);
                }
                path.extend(&ext.key);
                ext.child
            }
            TrieNode::Branch(branch) => {
                if path.len() >= KEY_NIBBLES {
                    return Err(TrieError::corrupt(&path, "branch at full key depth"));
                }
                let nibble = key.get_unchecked(path.len());
                if !branch.state_mask.is_bit_set(nibble) {
                    return Ok(None);
                }
                let below = (branch.state_mask.get() & ((1u16 << nibble) - 1)).count_ones();
                path.push_unchecked(nibble);
                branch
                    .stack
                    .into_iter()
                    .nth(below as usize)
                    .ok_or_else(|| TrieError::corrupt(&path, "branch mask/stack mismatch"))?
            }
        };
        node = follow(reader, &path, &child, &mut visit)?;
    }
}

/// The node behind reference `child` at `path`: read and checked against its hash, or decoded
/// in place when inlined.
fn follow<R: NodeReader>(
    reader: &R,
    path: &Nibbles,
    child: &RlpNode,
    visit: &mut impl FnMut(&Bytes),
) -> Result<TrieNode, TrieError> {
    let Some(hash) = child.as_hash() else {
        return decode_trie_node(child, path);
    };
    let stored = reader
        .read_node(path)?
        .ok_or_else(|| TrieError::corrupt(path, format!("missing node {hash}")))?;
    if keccak256(&stored) != hash {
        return Err(TrieError::corrupt(
            path,
            format!("stored node does not hash to {hash}"),
        ));
    }
    visit(&stored);
    decode_trie_node(&stored, path)
}
