//! Incremental Ethereum Merkle-Patricia trie over nodes stored by path.
//!
//! Why: a block's state root must cost what the block changes, not what the state holds.
//! `alloy_trie::HashBuilder` can only build a root from every sorted leaf, so this module keeps
//! the trie itself in storage, one node per nibble path (geth's path scheme), and a batch of
//! leaf changes touches only the nodes on the changed keys' paths:
//!
//! 1. [`update`] loads each touched node once into an in-memory sparse tree (untouched subtrees
//!    stay as the hash their parent already holds),
//! 2. applies every change of the batch there,
//! 3. hashes each dirty node exactly once, bottom-up, and returns the new root together with the
//!    node writes (and deletes of stale paths) to persist atomically with the block.
//!
//! Stored format: the node's own Ethereum RLP, stored at its path. The root is always stored (at
//! the empty path); any other node is stored only when its parent references it by hash (RLP of
//! 32 bytes or more). Smaller nodes live inlined in their parent, exactly as Ethereum encodes
//! them, so a stored node is also exactly an `eth_getProof` proof element.
//!
//! Because a node's path is its position in the trie, untouched subtrees never move: only
//! leaves and extensions move (when a branch collapses or a key splits them), and those are
//! loaded anyway.

mod error;
mod memory;
mod node;
mod path;
mod read;
mod update;

#[cfg(test)]
mod tests;

use alloy_primitives::Bytes;
pub use alloy_trie::Nibbles;

pub use error::TrieError;
pub use memory::MemoryNodes;
pub use path::encode_path;
pub use read::{get, proof, root};
pub use update::update;

/// Reads stored trie nodes by path.
///
/// The storage layer implements it (a RocksDB column, a memory map, or a prefix-scoped view for
/// one account's storage trie). Storage failures are returned as [`TrieError::Storage`].
pub trait NodeReader {
    /// The stored node at `path` (its RLP), or `None` when nothing is stored there.
    fn read_node(&self, path: &Nibbles) -> Result<Option<Bytes>, TrieError>;
}

impl<R: NodeReader + ?Sized> NodeReader for &R {
    fn read_node(&self, path: &Nibbles) -> Result<Option<Bytes>, TrieError> {
        (**self).read_node(path)
    }
}

/// Result of an [`update`]: the new root and the node writes to persist atomically with the
/// block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrieUpdate {
    /// Root hash of the trie after the update.
    pub root: alloy_primitives::B256,
    /// Path -> `Some(stored node)` to write, or `None` to delete that path. Sorted by path, each
    /// path at most once.
    pub writes: Vec<(Nibbles, Option<Bytes>)>,
}
