//! The in-memory sparse tree an update works on, and decoding of stored (or inlined) node RLP
//! into it. Children that no change reaches stay as the reference their parent holds.

use super::TrieError;
use alloy_primitives::Bytes;
use alloy_rlp::Decodable;
use alloy_trie::{
    Nibbles,
    nodes::{RlpNode, TrieNode},
};

/// Number of nibbles in a full (32-byte hashed) key.
pub(crate) const KEY_NIBBLES: usize = 64;

/// A node of the sparse tree. Keys are relative to the node's own path.
#[derive(Debug)]
pub(crate) enum Node {
    Leaf { key: Nibbles, value: Bytes },
    Extension { key: Nibbles, child: Child },
    Branch { children: Box<[Child; 16]> },
}

/// A slot of the sparse tree: nothing, an untouched subtree known only by its reference, or a
/// node in memory (loaded or created by this update, hashed again at the end).
#[derive(Debug, Default)]
pub(crate) enum Child {
    #[default]
    Empty,
    /// The parent's reference to an untouched child: `rlp(hash)` or the inlined node RLP.
    Ref(RlpNode),
    Node(Box<Node>),
}

impl Child {
    pub(crate) fn node(node: Node) -> Self {
        Self::Node(Box::new(node))
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Self::Empty)
    }
}

pub(crate) fn empty_children() -> Box<[Child; 16]> {
    Box::new(std::array::from_fn(|_| Child::Empty))
}

/// Decodes the RLP of the node at `path` (stored, or inlined in its parent), checking that its
/// shape fits its depth so that later slicing of keys cannot go out of range.
pub(crate) fn decode_node(rlp: &[u8], path: &Nibbles) -> Result<Node, TrieError> {
    let node = decode_trie_node(rlp, path)?;
    let depth = path.len();
    Ok(match node {
        TrieNode::Leaf(leaf) => {
            if depth + leaf.key.len() != KEY_NIBBLES {
                return Err(TrieError::corrupt(path, "leaf key does not end at 64 nibbles"));
            }
            Node::Leaf { key: leaf.key, value: Bytes::from(leaf.value) }
        }
        TrieNode::Extension(ext) => {
            if depth + ext.key.len() >= KEY_NIBBLES {
                return Err(TrieError::corrupt(path, "extension reaches past the key length"));
            }
            Node::Extension { key: ext.key, child: Child::Ref(ext.child) }
        }
        TrieNode::Branch(branch) => {
            if depth >= KEY_NIBBLES {
                return Err(TrieError::corrupt(path, "branch at full key depth"));
            }
            let mut children = empty_children();
            let mut stack = branch.stack.into_iter();
            for nibble in 0..16u8 {
                if branch.state_mask.is_bit_set(nibble) {
                    let child = stack
                        .next()
                        .ok_or_else(|| TrieError::corrupt(path, "branch mask/stack mismatch"))?;
                    children[nibble as usize] = Child::Ref(child);
                }
            }
            Node::Branch { children }
        }
        TrieNode::EmptyRoot => return Err(TrieError::corrupt(path, "empty node stored")),
    })
}

/// Decodes node RLP with alloy's decoder, mapping errors to [`TrieError::Corrupt`].
pub(crate) fn decode_trie_node(rlp: &[u8], path: &Nibbles) -> Result<TrieNode, TrieError> {
    let mut buf = rlp;
    let node = TrieNode::decode(&mut buf)
        .map_err(|e| TrieError::corrupt(path, format!("undecodable node: {e}")))?;
    if !buf.is_empty() {
        return Err(TrieError::corrupt(path, "trailing bytes after node"));
    }
    Ok(node)
}
