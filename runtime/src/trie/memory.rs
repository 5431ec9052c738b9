//! Trie nodes held in memory: the [`NodeReader`] of tests and of the genesis builder.

use super::{NodeReader, TrieError, TrieUpdate};
use alloy_primitives::Bytes;
use alloy_trie::Nibbles;
use std::collections::BTreeMap;

/// Stored trie nodes in a map from path to node RLP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryNodes {
    nodes: BTreeMap<Nibbles, Bytes>,
}

impl MemoryNodes {
    /// An empty store (the empty trie).
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies the writes of an update (puts and deletes).
    pub fn apply(&mut self, update: &TrieUpdate) {
        for (path, node) in &update.writes {
            match node {
                Some(node) => self.nodes.insert(*path, node.clone()),
                None => self.nodes.remove(path),
            };
        }
    }

    /// Number of stored nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node is stored (the trie is empty).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The stored node at `path`.
    pub fn node(&self, path: &Nibbles) -> Option<&Bytes> {
        self.nodes.get(path)
    }

    /// All stored nodes, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&Nibbles, &Bytes)> {
        self.nodes.iter()
    }
}

impl NodeReader for MemoryNodes {
    fn read_node(&self, path: &Nibbles) -> Result<Option<Bytes>, TrieError> {
        Ok(self.nodes.get(path).cloned())
    }
}
