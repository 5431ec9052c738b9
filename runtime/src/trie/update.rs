//! Batch update: load touched nodes once into a sparse tree, apply every change there, then
//! hash each dirty node once bottom-up and emit the writes (including deletes of stale paths).
//!
//! Large batches on a trie whose root is a branch are split by the root's 16 children over the
//! machine's cores: the subtrees below different root nibbles share no node, so each lane loads,
//! changes and hashes its own subtrees with its own [`Updater`], and only the root is encoded
//! at the end. Why: at a million accounts the trie update (node reads, decoding, keccak) is
//! the largest part of a block's cost, and it is independent per subtree.

use super::{
    NodeReader, TrieError, TrieUpdate,
    node::{Child, KEY_NIBBLES, Node, decode_node, empty_children},
};
use alloy_primitives::{B256, Bytes, keccak256, map::HashMap};
use alloy_rlp::Encodable;
use alloy_trie::{
    EMPTY_ROOT_HASH, Nibbles, TrieMask,
    nodes::{BranchNodeRef, ExtensionNodeRef, LeafNodeRef, RlpNode},
};
use std::mem;

/// Below this many changes an update stays on the calling thread: spawning a lane costs tens
/// of microseconds, about what a hundred changes cost.
const PARALLEL_MIN_CHANGES: usize = 256;

/// How an update may spread over threads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parallelism {
    /// Threads to use (1: sequential).
    pub lanes: usize,
    /// Fewer changes than this stay sequential.
    pub min_changes: usize,
}

impl Parallelism {
    fn from_machine() -> Self {
        Self {
            lanes: std::thread::available_parallelism().map_or(1, |n| n.get()),
            min_changes: PARALLEL_MIN_CHANGES,
        }
    }
}

/// Applies a batch of leaf changes to the trie stored behind `reader` and returns the new root
/// and the node writes.
///
/// Keys are 32-byte hashed keys; values are the leaf payloads exactly as Ethereum puts them in
/// the leaf. `None` (or an empty value, as in Ethereum) deletes the key; deleting a missing key
/// is a no-op. When a key appears several times, its last change wins.
pub fn update<R: NodeReader + Sync>(
    reader: &R,
    changes: impl IntoIterator<Item = (B256, Option<Bytes>)>,
) -> Result<TrieUpdate, TrieError> {
    update_with(reader, changes, Parallelism::from_machine())
}

/// [`update`] with an explicit [`Parallelism`] (tests force lanes on small tries with it).
pub(crate) fn update_with<R: NodeReader + Sync>(
    reader: &R,
    changes: impl IntoIterator<Item = (B256, Option<Bytes>)>,
    parallelism: Parallelism,
) -> Result<TrieUpdate, TrieError> {
    let changes = sorted_last_wins(changes);
    let mut updater = Updater::new(reader, changes.len());

    let root_path = Nibbles::new();
    let mut root = match reader.read_node(&root_path)? {
        Some(rlp) => {
            updater.loaded.insert(root_path, keccak256(&rlp));
            Child::node(decode_node(&rlp, &root_path)?)
        }
        None => Child::Empty,
    };
    if changes.is_empty() {
        let root = updater
            .loaded
            .get(&root_path)
            .copied()
            .unwrap_or(EMPTY_ROOT_HASH);
        return Ok(TrieUpdate {
            root,
            writes: Vec::new(),
        });
    }

    if parallelism.lanes > 1
        && changes.len() >= parallelism.min_changes
        && let Child::Node(node) = &mut root
        && let Node::Branch { children } = &mut **node
    {
        let children = mem::replace(children, empty_children());
        return update_below_root(updater, children, changes, parallelism.lanes);
    }

    for (key, value) in changes {
        let key = Nibbles::unpack_array(&key.0);
        match value {
            Some(value) if !value.is_empty() => {
                updater.insert(&mut root, root_path, &key, value)?
            }
            _ => updater.delete(&mut root, root_path, &key)?,
        }
    }
    updater.finish(root)
}

/// A batch of leaf changes: hashed key and new value (`None` deletes).
type Changes = Vec<(B256, Option<Bytes>)>;

/// The subtrees below root nibbles that one lane works on, with their changes.
struct Lane<'r, R> {
    updater: Updater<'r, R>,
    /// (root nibble, the root's child there, that child's changes).
    subtrees: Vec<(u8, Child, Changes)>,
}

/// The parallel update of a trie whose root is a branch: each lane applies the changes of its
/// root nibbles and hashes those subtrees; the root branch is encoded last. `root_updater`
/// holds the loaded root.
fn update_below_root<R: NodeReader + Sync>(
    mut root_updater: Updater<'_, R>,
    children: Box<[Child; 16]>,
    changes: Changes,
    lanes: usize,
) -> Result<TrieUpdate, TrieError> {
    let reader = root_updater.reader;
    // Changes are sorted by key, so each root nibble's changes are contiguous.
    let mut per_nibble: [Changes; 16] = Default::default();
    for change in changes {
        per_nibble[(change.0[0] >> 4) as usize].push(change);
    }
    // Deal nibbles to lanes, largest first, each to the lane with the fewest changes so far.
    let mut order: Vec<usize> = (0..16).filter(|&n| !per_nibble[n].is_empty()).collect();
    order.sort_by_key(|&n| std::cmp::Reverse(per_nibble[n].len()));
    let lanes = lanes.min(order.len()).max(1);
    let mut plan: Vec<(usize, Vec<usize>)> = vec![(0, Vec::new()); lanes];
    for n in order {
        let lane = plan
            .iter_mut()
            .min_by_key(|(load, _)| *load)
            .expect("at least one lane");
        lane.0 += per_nibble[n].len();
        lane.1.push(n);
    }
    let mut children = *children;
    let mut work: Vec<Lane<'_, R>> = plan
        .into_iter()
        .map(|(load, nibbles)| Lane {
            updater: Updater::new(reader, load),
            subtrees: nibbles
                .into_iter()
                .map(|n| {
                    (
                        n as u8,
                        mem::take(&mut children[n]),
                        mem::take(&mut per_nibble[n]),
                    )
                })
                .collect(),
        })
        .collect();

    // Phase 1: apply the changes in every subtree.
    on_lanes(&mut work, |lane| {
        for (nibble, slot, changes) in &mut lane.subtrees {
            let path = Nibbles::from_nibbles_unchecked([*nibble]);
            for (key, value) in mem::take(changes) {
                let key = Nibbles::unpack_array(&key.0);
                match value {
                    Some(value) if !value.is_empty() => {
                        lane.updater.insert(slot, path, &key, value)?
                    }
                    _ => lane.updater.delete(slot, path, &key)?,
                }
            }
        }
        Ok(())
    })?;
    for lane in &mut work {
        for (nibble, slot, _) in &mut lane.subtrees {
            children[*nibble as usize] = mem::take(slot);
        }
    }

    let mut remaining = (0u8..).zip(&children).filter(|(_, c)| !c.is_empty());
    let (first, second) = (remaining.next().map(|(n, _)| n), remaining.next());
    if second.is_none() {
        // Deletions left the root with one child or none: it collapses, which moves nodes
        // across lanes, so finish on one thread with everything the lanes loaded.
        for lane in work {
            root_updater.loaded.extend(lane.updater.loaded);
        }
        let root = match first {
            None => Child::Empty,
            Some(n) => {
                let only = mem::take(&mut children[n as usize]);
                Child::node(root_updater.collapse(Nibbles::new(), n, only)?)
            }
        };
        return root_updater.finish(root);
    }

    // Phase 2: hash every changed subtree on its lane; the root then refers to the results.
    for lane in &mut work {
        for (nibble, slot, _) in &mut lane.subtrees {
            *slot = mem::take(&mut children[*nibble as usize]);
        }
    }
    on_lanes(&mut work, |lane| {
        for (nibble, slot, _) in &mut lane.subtrees {
            let path = Nibbles::from_nibbles_unchecked([*nibble]);
            *slot = match lane.updater.commit_child(mem::take(slot), path)? {
                Some(rlp) => Child::Ref(rlp),
                None => Child::Empty,
            };
        }
        Ok(())
    })?;
    for lane in &mut work {
        for (nibble, slot, _) in &mut lane.subtrees {
            children[*nibble as usize] = mem::take(slot);
        }
        root_updater.writes.append(&mut lane.updater.writes);
        root_updater
            .writes
            .extend(lane.updater.loaded.drain().map(|(path, _)| (path, None)));
    }
    root_updater.finish(Child::node(Node::Branch {
        children: Box::new(children),
    }))
}

/// Runs `job` on every lane, the first on the calling thread and the others on scoped threads.
fn on_lanes<L: Send>(
    lanes: &mut [L],
    job: impl Fn(&mut L) -> Result<(), TrieError> + Sync,
) -> Result<(), TrieError> {
    let Some((first, rest)) = lanes.split_first_mut() else {
        return Ok(());
    };
    let job = &job;
    std::thread::scope(|scope| {
        let handles: Vec<_> = rest
            .iter_mut()
            .map(|lane| scope.spawn(move || job(lane)))
            .collect();
        let mut result = job(first);
        for handle in handles {
            let lane_result = handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            result = result.and(lane_result);
        }
        result
    })
}

/// Sorts changes by key, keeping only the last change of each key.
fn sorted_last_wins(
    changes: impl IntoIterator<Item = (B256, Option<Bytes>)>,
) -> Vec<(B256, Option<Bytes>)> {
    let mut changes: Vec<_> = changes.into_iter().collect();
    // Stable, so equal keys keep their order and the last one is the latest change.
    changes.sort_by_key(|change| change.0);
    let mut out: Vec<(B256, Option<Bytes>)> = Vec::with_capacity(changes.len());
    for change in changes {
        if out.last().is_some_and(|last| last.0 == change.0) {
            out.pop();
        }
        out.push(change);
    }
    out
}

/// What a deletion below a node did to that node.
enum After {
    Keep,
    Remove,
    Replace(Node),
}

struct Updater<'r, R> {
    reader: &'r R,
    /// Stored nodes this update read, by path, with their hash. Whatever is not stored again at
    /// the end is stale and gets deleted.
    loaded: HashMap<Nibbles, B256>,
    writes: Vec<(Nibbles, Option<Bytes>)>,
    /// Scratch RLP of the node being encoded.
    buf: Vec<u8>,
    /// Children references of the branches being encoded (a stack shared by the recursion).
    stack: Vec<RlpNode>,
}

impl<'r, R: NodeReader> Updater<'r, R> {
    fn new(reader: &'r R, changes: usize) -> Self {
        // A change touches a handful of nodes, most of them its own on a large trie.
        let touched = changes.saturating_mul(4).min(1 << 20);
        Self {
            reader,
            loaded: HashMap::with_capacity_and_hasher(touched, Default::default()),
            writes: Vec::with_capacity(touched),
            buf: Vec::with_capacity(600),
            stack: Vec::with_capacity(16 * 8),
        }
    }

    /// Decodes the node behind reference `rlp` at `path`: reads it if referenced by hash,
    /// decodes it in place if inlined. Returns the stored hash when it was read.
    fn load(&self, path: &Nibbles, rlp: &RlpNode) -> Result<(Node, Option<B256>), TrieError> {
        match rlp.as_hash() {
            Some(hash) => {
                let stored = self
                    .reader
                    .read_node(path)?
                    .ok_or_else(|| TrieError::corrupt(path, format!("missing node {hash}")))?;
                Ok((decode_node(&stored, path)?, Some(hash)))
            }
            None => Ok((decode_node(rlp, path)?, None)),
        }
    }

    /// Brings the node in `slot` into memory (once) and returns it; `None` for an empty slot.
    fn resolve<'s>(
        &mut self,
        slot: &'s mut Child,
        path: &Nibbles,
    ) -> Result<Option<&'s mut Node>, TrieError> {
        if let Child::Ref(rlp) = slot {
            let (node, hash) = self.load(path, rlp)?;
            if let Some(hash) = hash {
                self.loaded.insert(*path, hash);
            }
            *slot = Child::node(node);
        }
        match slot {
            Child::Node(node) => Ok(Some(node)),
            _ => Ok(None),
        }
    }

    /// Inserts or updates full key `key` in the subtree at `slot`, whose path is `path`.
    fn insert(
        &mut self,
        slot: &mut Child,
        path: Nibbles,
        key: &Nibbles,
        value: Bytes,
    ) -> Result<(), TrieError> {
        let depth = path.len();
        let Some(node) = self.resolve(slot, &path)? else {
            *slot = Child::node(Node::Leaf {
                key: key.slice(depth..),
                value,
            });
            return Ok(());
        };
        let rest = key.slice(depth..);
        let replacement = match node {
            Node::Leaf {
                key: leaf_key,
                value: leaf_value,
            } => {
                if *leaf_key == rest {
                    *leaf_value = value;
                    return Ok(());
                }
                // Both run to the end of the key, so they differ at some `common < len`.
                let common = leaf_key.common_prefix_length(&rest);
                let mut children = empty_children();
                children[leaf_key.get_unchecked(common) as usize] = Child::node(Node::Leaf {
                    key: leaf_key.slice(common + 1..),
                    value: mem::take(leaf_value),
                });
                children[rest.get_unchecked(common) as usize] = Child::node(Node::Leaf {
                    key: rest.slice(common + 1..),
                    value,
                });
                with_prefix(rest.slice(..common), Node::Branch { children })
            }
            Node::Extension {
                key: ext_key,
                child,
            } => {
                let common = ext_key.common_prefix_length(&rest);
                if common == ext_key.len() {
                    let child_path = path.join(ext_key);
                    return self.insert(child, child_path, key, value);
                }
                // The key leaves the extension at `common`: split it around a new branch.
                let mut children = empty_children();
                let old_child = mem::take(child);
                children[ext_key.get_unchecked(common) as usize] = if ext_key.len() > common + 1 {
                    Child::node(Node::Extension {
                        key: ext_key.slice(common + 1..),
                        child: old_child,
                    })
                } else {
                    old_child
                };
                children[rest.get_unchecked(common) as usize] = Child::node(Node::Leaf {
                    key: rest.slice(common + 1..),
                    value,
                });
                with_prefix(rest.slice(..common), Node::Branch { children })
            }
            Node::Branch { children } => {
                let nibble = key.get_unchecked(depth);
                let mut child_path = path;
                child_path.push_unchecked(nibble);
                return self.insert(&mut children[nibble as usize], child_path, key, value);
            }
        };
        *slot = Child::node(replacement);
        Ok(())
    }

    /// Deletes full key `key` from the subtree at `slot` (no-op when absent), restoring the
    /// trie's canonical shape: a branch left with one child collapses into its parent path.
    fn delete(&mut self, slot: &mut Child, path: Nibbles, key: &Nibbles) -> Result<(), TrieError> {
        let depth = path.len();
        let Some(node) = self.resolve(slot, &path)? else {
            return Ok(());
        };
        let after = match node {
            Node::Leaf { key: leaf_key, .. } => {
                if *leaf_key == key.slice(depth..) {
                    After::Remove
                } else {
                    After::Keep
                }
            }
            Node::Extension {
                key: ext_key,
                child,
            } => {
                if !key.slice(depth..).starts_with(ext_key) {
                    return Ok(());
                }
                let ext_key = *ext_key;
                self.delete(child, path.join(&ext_key), key)?;
                match mem::take(child) {
                    Child::Empty => After::Remove,
                    Child::Node(below) => match *below {
                        Node::Leaf { key: k, value } => After::Replace(Node::Leaf {
                            key: ext_key.join(&k),
                            value,
                        }),
                        Node::Extension { key: k, child: c } => After::Replace(Node::Extension {
                            key: ext_key.join(&k),
                            child: c,
                        }),
                        branch @ Node::Branch { .. } => {
                            *child = Child::node(branch);
                            After::Keep
                        }
                    },
                    untouched @ Child::Ref(_) => {
                        *child = untouched;
                        After::Keep
                    }
                }
            }
            Node::Branch { children } => {
                let nibble = key.get_unchecked(depth) as usize;
                let mut child_path = path;
                child_path.push_unchecked(nibble as u8);
                self.delete(&mut children[nibble], child_path, key)?;
                if !children[nibble].is_empty() {
                    return Ok(());
                }
                let mut remaining = children.iter().enumerate().filter(|(_, c)| !c.is_empty());
                match (remaining.next(), remaining.next()) {
                    (None, _) => After::Remove,
                    (Some(_), Some(_)) => After::Keep,
                    (Some((only, _)), None) => {
                        let last = mem::take(&mut children[only]);
                        After::Replace(self.collapse(path, only as u8, last)?)
                    }
                }
            }
        };
        match after {
            After::Keep => {}
            After::Remove => *slot = Child::Empty,
            After::Replace(node) => *slot = Child::node(node),
        }
        Ok(())
    }

    /// The node replacing a branch at `path` whose only remaining child is `child` at `nibble`:
    /// a leaf or extension child moves up (it must be loaded to know which), a branch child stays
    /// where it is behind a one-nibble extension.
    fn collapse(&mut self, path: Nibbles, nibble: u8, child: Child) -> Result<Node, TrieError> {
        let prefix = Nibbles::from_nibbles_unchecked([nibble]);
        let mut child_path = path;
        child_path.push_unchecked(nibble);
        let node = match child {
            Child::Empty => return Err(TrieError::corrupt(&child_path, "collapsed empty child")),
            Child::Node(node) => *node,
            Child::Ref(rlp) => {
                let (node, hash) = self.load(&child_path, &rlp)?;
                if matches!(node, Node::Branch { .. }) {
                    // Unchanged and staying at its path: keep only its reference.
                    return Ok(Node::Extension {
                        key: prefix,
                        child: Child::Ref(rlp),
                    });
                }
                if let Some(hash) = hash {
                    self.loaded.insert(child_path, hash);
                }
                node
            }
        };
        Ok(match node {
            Node::Leaf { key, value } => Node::Leaf {
                key: prefix.join(&key),
                value,
            },
            Node::Extension { key, child } => Node::Extension {
                key: prefix.join(&key),
                child,
            },
            branch @ Node::Branch { .. } => Node::Extension {
                key: prefix,
                child: Child::node(branch),
            },
        })
    }

    /// Hashes the in-memory tree bottom-up and collects the writes.
    fn finish(mut self, root: Child) -> Result<TrieUpdate, TrieError> {
        let root_path = Nibbles::new();
        let root_hash = match root {
            Child::Empty => EMPTY_ROOT_HASH,
            Child::Ref(_) => return Err(TrieError::corrupt(&root_path, "root left unloaded")),
            Child::Node(node) => {
                let rlp = self.commit_node(*node, root_path, true)?;
                rlp.as_hash().unwrap_or_else(|| keccak256(&self.buf))
            }
        };
        let Self {
            loaded, mut writes, ..
        } = self;
        writes.extend(loaded.into_keys().map(|path| (path, None)));
        writes.sort_unstable_by_key(|write| write.0);
        Ok(TrieUpdate {
            root: root_hash,
            writes,
        })
    }

    /// Reference of `child` at `path` for its parent (`None` when empty).
    fn commit_child(&mut self, child: Child, path: Nibbles) -> Result<Option<RlpNode>, TrieError> {
        match child {
            Child::Empty => Ok(None),
            Child::Ref(rlp) => Ok(Some(rlp)),
            Child::Node(node) => self.commit_node(*node, path, false).map(Some),
        }
    }

    /// Encodes `node` (after its children) into `self.buf`, stores it if it is referenced by
    /// hash (or is the root), and returns its reference.
    fn commit_node(
        &mut self,
        node: Node,
        path: Nibbles,
        is_root: bool,
    ) -> Result<RlpNode, TrieError> {
        match node {
            Node::Leaf { key, value } => {
                self.buf.clear();
                LeafNodeRef::new(&key, &value).encode(&mut self.buf);
            }
            Node::Extension { key, child } => {
                let child = self
                    .commit_child(child, path.join(&key))?
                    .ok_or_else(|| TrieError::corrupt(&path, "extension without child"))?;
                self.buf.clear();
                ExtensionNodeRef::new(&key, &child).encode(&mut self.buf);
            }
            Node::Branch { children } => {
                let start = self.stack.len();
                let mut mask = TrieMask::default();
                for (nibble, child) in (0u8..).zip(*children) {
                    let mut child_path = path;
                    child_path.push_unchecked(nibble);
                    if let Some(rlp) = self.commit_child(child, child_path)? {
                        self.stack.push(rlp);
                        mask.set_bit(nibble);
                    }
                }
                self.buf.clear();
                BranchNodeRef::new(&self.stack[start..], mask).encode(&mut self.buf);
                self.stack.truncate(start);
            }
        }
        let rlp = RlpNode::from_rlp(&self.buf);
        let hash = match rlp.as_hash() {
            Some(hash) => Some(hash),
            None if is_root => Some(keccak256(&self.buf)),
            None => None,
        };
        if let Some(hash) = hash {
            // Rewrite only what changed; a path stored again is not stale.
            if self.loaded.remove(&path) != Some(hash) {
                self.writes
                    .push((path, Some(Bytes::copy_from_slice(&self.buf))));
            }
        }
        debug_assert!(path.len() <= KEY_NIBBLES);
        Ok(rlp)
    }
}

/// `node` behind an extension of `prefix`, or `node` itself when `prefix` is empty.
fn with_prefix(prefix: Nibbles, node: Node) -> Node {
    if prefix.is_empty() {
        node
    } else {
        Node::Extension {
            key: prefix,
            child: Child::node(node),
        }
    }
}
