//! Storage: a small key-value trait over named columns, written through one atomic batch per
//! block. RocksDB backs real nodes ([`RocksStore`]); a BTreeMap backs tests ([`MemoryStore`]).
//! Everything above this layer (chain, state, trie) speaks only [`KvStore`], so the runtime's
//! tests need no disk and the node can swap the engine without touching execution.

mod memory;
mod rocks;

pub use memory::MemoryStore;
pub use rocks::{DEFAULT_CACHE_BYTES, RocksStore, StoreMemory};

/// Bumped whenever the on-disk layout changes; checked when a datadir is opened.
/// Version 2 added `block_changes` (issue 15: unwinding blocks on the devnet).
pub const SCHEMA_VERSION: u32 = 2;

/// The columns (RocksDB column families). Keys and values per column are documented in
/// docs/storage.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Column {
    /// Schema version, head pointer, genesis hash.
    Meta,
    /// block hash -> RLP header.
    Headers,
    /// block hash -> RLP list of EIP-2718 transactions.
    Bodies,
    /// block hash -> RLP list of EIP-2718 receipts.
    Receipts,
    /// big-endian block number -> block hash (canonical chain).
    NumberToHash,
    /// tx hash -> (block number, index in block).
    TxIndex,
    /// address -> RLP trie account (nonce, balance, storage root, code hash).
    Accounts,
    /// address ++ slot -> RLP of the non-zero value.
    Storage,
    /// code hash -> bytecode.
    Code,
    /// encoded nibble path -> account-trie node.
    AccountTrie,
    /// keccak(address) ++ encoded nibble path -> storage-trie node.
    StorageTrie,
    /// address ++ block number (BE) -> the account's RLP before that block changed it
    /// (empty: it did not exist).
    AccountHistory,
    /// address ++ slot ++ block number (BE) -> the slot's RLP value before that block changed
    /// it (empty: zero).
    StorageHistory,
    /// big-endian block number -> the consensus commit certificate that finalised the block
    /// (opaque bytes to the runtime; the node's consensus encodes them).
    Certificates,
    /// big-endian block number -> the keys the block changed (addresses, address ++ slot),
    /// so the block can be unwound (runtime/src/unwind.rs).
    BlockChanges,
}

impl Column {
    pub const ALL: [Column; 15] = [
        Column::Meta,
        Column::Headers,
        Column::Bodies,
        Column::Receipts,
        Column::NumberToHash,
        Column::TxIndex,
        Column::Accounts,
        Column::Storage,
        Column::Code,
        Column::AccountTrie,
        Column::StorageTrie,
        Column::AccountHistory,
        Column::StorageHistory,
        Column::Certificates,
        Column::BlockChanges,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Column::Meta => "meta",
            Column::Headers => "headers",
            Column::Bodies => "bodies",
            Column::Receipts => "receipts",
            Column::NumberToHash => "number_to_hash",
            Column::TxIndex => "tx_index",
            Column::Accounts => "accounts",
            Column::Storage => "storage",
            Column::Code => "code",
            Column::AccountTrie => "account_trie",
            Column::StorageTrie => "storage_trie",
            Column::AccountHistory => "account_history",
            Column::StorageHistory => "storage_history",
            Column::Certificates => "certificates",
            Column::BlockChanges => "block_changes",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error(
        "datadir has schema version {found}, this bttd uses {expected}: it was written by another bttd version; start with a new datadir (or use that version)"
    )]
    SchemaMismatch { found: u32, expected: u32 },
    #[error("corrupt record in {column}: {reason}")]
    Corrupt {
        column: &'static str,
        reason: String,
    },
}

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// One operation of a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    Put(Column, Vec<u8>, Vec<u8>),
    Delete(Column, Vec<u8>),
    /// Deletes every key that starts with the prefix (a wiped storage trie, say).
    DeletePrefix(Column, Vec<u8>),
}

/// Operations applied all-or-nothing, in order.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    ops: Vec<WriteOp>,
}

impl WriteBatch {
    pub fn put(&mut self, column: Column, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops
            .push(WriteOp::Put(column, key.into(), value.into()));
    }
    pub fn delete(&mut self, column: Column, key: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Delete(column, key.into()));
    }
    pub fn delete_prefix(&mut self, column: Column, prefix: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::DeletePrefix(column, prefix.into()));
    }
    pub fn ops(&self) -> &[WriteOp] {
        &self.ops
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// The storage engine seen by the runtime.
pub trait KvStore: Send + Sync + 'static {
    fn get(&self, column: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
    /// The first entry whose key is `>= key`, if any (used for history lookups).
    fn seek(&self, column: Column, key: &[u8]) -> Result<Option<Entry>, StorageError>;
    /// Applies the batch atomically; once this returns, a crash of the process keeps it.
    fn write(&self, batch: WriteBatch) -> Result<(), StorageError>;
}

/// The smallest key greater than every key starting with `prefix` (None if there is none).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

const SCHEMA_KEY: &[u8] = b"schema_version";

/// Writes the schema version into a new store, or checks the one an existing store carries.
pub(crate) fn check_schema(store: &dyn KvStore) -> Result<(), StorageError> {
    match store.get(Column::Meta, SCHEMA_KEY)? {
        None => {
            let mut batch = WriteBatch::default();
            batch.put(
                Column::Meta,
                SCHEMA_KEY,
                SCHEMA_VERSION.to_be_bytes().to_vec(),
            );
            store.write(batch)
        }
        Some(bytes) => {
            let found = <[u8; 4]>::try_from(bytes.as_slice())
                .map(u32::from_be_bytes)
                .map_err(|_| StorageError::Corrupt {
                    column: "meta",
                    reason: "schema version is not 4 bytes".into(),
                })?;
            if found == SCHEMA_VERSION {
                Ok(())
            } else {
                Err(StorageError::SchemaMismatch {
                    found,
                    expected: SCHEMA_VERSION,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(store: &dyn KvStore) {
        let mut batch = WriteBatch::default();
        batch.put(Column::Storage, b"ab1".to_vec(), b"1".to_vec());
        batch.put(Column::Storage, b"ab2".to_vec(), b"2".to_vec());
        batch.put(Column::Storage, b"ac1".to_vec(), b"3".to_vec());
        batch.put(Column::Code, b"ab1".to_vec(), b"other column".to_vec());
        store.write(batch).unwrap();
        let mut batch = WriteBatch::default();
        batch.delete_prefix(Column::Storage, b"ab".to_vec());
        batch.put(Column::Storage, b"ab3".to_vec(), b"4".to_vec());
        batch.delete(Column::Storage, b"ac1".to_vec());
        store.write(batch).unwrap();
        assert_eq!(store.get(Column::Storage, b"ab1").unwrap(), None);
        assert_eq!(store.get(Column::Storage, b"ab2").unwrap(), None);
        assert_eq!(
            store.get(Column::Storage, b"ab3").unwrap(),
            Some(b"4".to_vec())
        );
        assert_eq!(store.get(Column::Storage, b"ac1").unwrap(), None);
        assert_eq!(
            store.get(Column::Code, b"ab1").unwrap(),
            Some(b"other column".to_vec())
        );
        assert_eq!(
            store.seek(Column::Storage, b"ab").unwrap(),
            Some((b"ab3".to_vec(), b"4".to_vec()))
        );
        assert_eq!(store.seek(Column::Storage, b"ab4").unwrap(), None);
        assert_eq!(
            store.seek(Column::Code, b"a").unwrap().map(|e| e.0),
            Some(b"ab1".to_vec())
        );
    }

    #[test]
    fn memory_store_applies_batches_in_order() {
        exercise(&MemoryStore::new());
    }

    #[test]
    fn rocks_store_applies_batches_in_order_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RocksStore::open(dir.path()).unwrap();
            exercise(&store);
        }
        let store = RocksStore::open(dir.path()).unwrap();
        assert_eq!(
            store.get(Column::Storage, b"ab3").unwrap(),
            Some(b"4".to_vec())
        );
    }

    #[test]
    fn schema_mismatch_is_refused() {
        let store = MemoryStore::new();
        let mut batch = WriteBatch::default();
        batch.put(Column::Meta, SCHEMA_KEY, 99u32.to_be_bytes().to_vec());
        store.write(batch).unwrap();
        assert!(matches!(
            check_schema(&store),
            Err(StorageError::SchemaMismatch { found: 99, .. })
        ));
    }

    #[test]
    fn an_older_rocks_datadir_is_refused_and_stays_readable_by_its_bttd() {
        let dir = tempfile::tempdir().unwrap();
        let old: Vec<&str> = Column::ALL
            .iter()
            .filter(|c| **c != Column::BlockChanges)
            .map(|c| c.name())
            .collect();
        {
            let mut opts = rocksdb::Options::default();
            opts.create_if_missing(true);
            opts.create_missing_column_families(true);
            let db = rocksdb::DB::open_cf(&opts, dir.path(), &old).unwrap();
            let meta = db.cf_handle("meta").unwrap();
            db.put_cf(meta, SCHEMA_KEY, 1u32.to_be_bytes()).unwrap();
        }
        let err = RocksStore::open(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::SchemaMismatch {
                    found: 1,
                    expected: SCHEMA_VERSION
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("start with a new datadir"),
            "{err}"
        );
        // Nothing was added: the old bttd's column set still opens it.
        rocksdb::DB::open_cf(&rocksdb::Options::default(), dir.path(), &old).unwrap();
    }

    #[test]
    fn prefix_end_handles_carry() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }
}
