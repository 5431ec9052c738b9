//! In-memory [`KvStore`] for tests and benchmarks baselines: a BTreeMap per column.

use std::collections::BTreeMap;

use parking_lot::RwLock;

use super::{Column, Entry, KvStore, StorageError, WriteBatch, WriteOp, check_schema, prefix_end};

type ColumnKey = (Column, Vec<u8>);

#[derive(Debug, Default)]
pub struct MemoryStore {
    /// (column, key) -> value.
    columns: RwLock<BTreeMap<ColumnKey, Vec<u8>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        let store = Self::default();
        check_schema(&store).expect("a fresh memory store accepts the schema");
        store
    }
}

impl KvStore for MemoryStore {
    fn get(&self, column: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.columns.read().get(&(column, key.to_vec())).cloned())
    }

    fn seek(&self, column: Column, key: &[u8]) -> Result<Option<Entry>, StorageError> {
        let map = self.columns.read();
        Ok(map
            .range((column, key.to_vec())..)
            .next()
            .filter(|((c, _), _)| *c == column)
            .map(|((_, k), v)| (k.clone(), v.clone())))
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut map = self.columns.write();
        for op in batch.ops {
            match op {
                WriteOp::Put(c, k, v) => {
                    map.insert((c, k), v);
                }
                WriteOp::Delete(c, k) => {
                    map.remove(&(c, k));
                }
                WriteOp::DeletePrefix(c, prefix) => {
                    let start = (c, prefix.clone());
                    let doomed: Vec<_> = match prefix_end(&prefix) {
                        Some(end) => map.range(start..(c, end)).map(|(k, _)| k.clone()).collect(),
                        None => map
                            .range(start..)
                            .take_while(|(k, _)| k.0 == c)
                            .map(|(k, _)| k.clone())
                            .collect(),
                    };
                    for key in doomed {
                        map.remove(&key);
                    }
                }
            }
        }
        Ok(())
    }
}
