//! The in-memory sparse tree an update works on, and decoding of stored (or inlined) node RLP
//! into it. Children that no change reaches stay as the reference their parent holds.

use super::TrieError;
use alloy_primitives::Bytes;
use alloy_rlp::{Decodable, EMPTY_STRING_CODE, Header};
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
    let depth = path.len();
    // Branches are most of what an update loads: decode them straight into the children array.
    if let Some(children) = decode_branch(rlp, path)? {
        if depth >= KEY_NIBBLES {
            return Err(TrieError::corrupt(path, "branch at full key depth"));
        }
        return Ok(Node::Branch { children });
    }
    Ok(match decode_trie_node(rlp, path)? {
        TrieNode::Leaf(leaf) => {
            if depth + leaf.key.len() != KEY_NIBBLES {
                return Err(TrieError::corrupt(
                    path,
                    "leaf key does not end at 64 nibbles",
                ));
            }
            Node::Leaf {
                key: leaf.key,
                value: Bytes::from(leaf.value),
            }
        }
        TrieNode::Extension(ext) => {
            if depth + ext.key.len() >= KEY_NIBBLES {
                return Err(TrieError::corrupt(
                    path,
                    "extension reaches past the key length",
                ));
            }
            Node::Extension {
                key: ext.key,
                child: Child::Ref(ext.child),
            }
        }
        TrieNode::Branch(_) => return Err(TrieError::corrupt(path, "malformed branch")),
        TrieNode::EmptyRoot => return Err(TrieError::corrupt(path, "empty node stored")),
    })
}

/// Decodes a 17-item branch list into children references; `None` if `rlp` is a list of
/// another length (a leaf or extension).
fn decode_branch(rlp: &[u8], path: &Nibbles) -> Result<Option<Box<[Child; 16]>>, TrieError> {
    let corrupt = |e: alloy_rlp::Error| TrieError::corrupt(path, format!("undecodable node: {e}"));
    let mut buf = rlp;
    let header = Header::decode(&mut buf).map_err(corrupt)?;
    if !header.list || buf.len() != header.payload_length {
        return Err(TrieError::corrupt(path, "node is not a single RLP list"));
    }
    // Items of a leaf/extension: 2. Peek at the item count before allocating.
    let mut items = 0;
    let mut scan = buf;
    while !scan.is_empty() {
        let item = Header::decode(&mut scan).map_err(corrupt)?;
        if scan.len() < item.payload_length {
            return Err(TrieError::corrupt(path, "truncated node item"));
        }
        scan = &scan[item.payload_length..];
        items += 1;
    }
    if items != 17 {
        return Ok(None);
    }
    let mut children = empty_children();
    for child in children.iter_mut() {
        if buf[0] == EMPTY_STRING_CODE {
            buf = &buf[1..];
            continue;
        }
        let start = buf;
        let item = Header::decode(&mut buf).map_err(corrupt)?;
        buf = &buf[item.payload_length..];
        let raw = &start[..start.len() - buf.len()];
        *child = Child::Ref(RlpNode::from_raw_rlp(raw).map_err(corrupt)?);
    }
    if buf != [EMPTY_STRING_CODE] {
        return Err(TrieError::corrupt(path, "branch node with a value"));
    }
    Ok(Some(children))
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
