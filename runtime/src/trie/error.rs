//! Errors of trie reads and updates: storage failures are the caller's, corruption is ours to
//! report with the path where it was found.

use alloy_trie::Nibbles;

/// Why a trie operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TrieError {
    /// The storage behind the [`NodeReader`](super::NodeReader) failed.
    #[error("trie storage: {0}")]
    Storage(String),
    /// A stored node is missing, undecodable or inconsistent with its position in the trie.
    #[error("corrupt trie node at {path:?}: {reason}")]
    Corrupt {
        /// Path of the offending node.
        path: Nibbles,
        /// What is wrong with it.
        reason: String,
    },
}

impl TrieError {
    /// Wraps a storage error (keeps its message).
    pub fn storage(err: impl std::fmt::Display) -> Self {
        Self::Storage(err.to_string())
    }

    pub(crate) fn corrupt(path: &Nibbles, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            path: *path,
            reason: reason.into(),
        }
    }
}
