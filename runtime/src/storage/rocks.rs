//! RocksDB [`KvStore`]: one column family per [`Column`], lz4 compression, and every block
//! written as one `WriteBatch` with the WAL synced, so a crash (even of the machine) loses no
//! committed block and never leaves half of one.

use std::path::Path;

use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DBCompactionStyle,
    DBCompressionType, Options, WaitForCompactOptions, WriteBufferManager, WriteOptions,
};

/// Default memory budget of the store: the block cache shared by all columns plus every
/// memtable, which are charged to the same cache. Trie nodes near the root and hot accounts are
/// read by every block, so keeping them in memory is what makes the state root cheap; one bound
/// for both is what keeps a long-running node's memory flat (per-column memtables of 64 MiB
/// each, uncharged, grew a 30-minute soak's RSS by 170%).
pub const DEFAULT_CACHE_BYTES: usize = 512 * 1024 * 1024;

/// Share of the budget that memtables may hold before RocksDB flushes the largest.
const MEMTABLE_SHARE: usize = 4;

/// Table files kept open. Each open file holds a table reader (its properties, the index
/// handle, ~4 KiB) outside the block cache, and the file count grows with the chain: with every
/// file open, the soak's heap grew ~0.4 MiB a minute in `BlockBasedTable::Open` alone (1,358
/// files after 14 minutes at a 16 MiB budget, heaptrack; see also [`compacts_universally`]). A
/// bounded table cache keeps the hot files open and reopens a cold one on demand (history
/// queries, mostly).
const MAX_OPEN_FILES: i32 = 512;

/// Largest block a memtable allocates at a time. Each column's memtable counts against the
/// share as soon as it takes a block, and RocksDB's default, 1 MiB, times fifteen columns is
/// more than the share of a small budget: at 16 MiB the share (4 MiB) was exceeded as soon as
/// one block had been written to every column, so every block's write started a flush. That
/// was five flushes a second and 100 table files a minute of a few KiB each (docs/benchmarks.md,
/// sixth round).
const MAX_ARENA_BLOCK: usize = 1024 * 1024;
/// Smallest block a memtable allocates at a time.
const MIN_ARENA_BLOCK: usize = 64 * 1024;

/// Columns keyed by block number, so every write lands after every key already stored.
///
/// Why they compact differently: level compaction merges a flushed file only with files whose
/// key ranges overlap it, and these never overlap, so each flush's file is moved down whole and
/// kept for good. Every file holds metadata in memory, a table reader while open and a pinned
/// top-level index and filter in the block cache: on the soak each of these columns gained
/// about 12 files a minute, 180 after 15 minutes, of 3 KiB each for `number_to_hash`.
/// Universal compaction merges sorted runs by size whatever their ranges, so the file count
/// stays logarithmic in the column's size; these columns are small (a hash, a certificate, a
/// list of changed keys per block), so its occasional full merge is cheap.
///
/// Storage and storage history are written in key order for the EIP-2935 block-hash ring's
/// first 8,191 blocks only; after that its writes overlap older files and level compaction
/// merges them, as it suits a large state column.
fn compacts_universally(column: Column) -> bool {
    matches!(
        column,
        Column::NumberToHash | Column::Certificates | Column::BlockChanges
    )
}

/// Read-ahead of each input file of a compaction. RocksDB's default, 2 MiB per input, is meant
/// for spinning disks and makes a compaction of a dozen files hold tens of MiB while it runs.
const COMPACTION_READAHEAD: usize = 256 * 1024;

/// What the store's memory holds now (for the node's metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreMemory {
    /// The budget: block cache capacity, memtables included.
    pub budget: u64,
    /// Bytes in the block cache, memtables charged to it included.
    pub cache: u64,
    /// Bytes of memtables (flushed ones still referenced included).
    pub memtables: u64,
    /// Bytes of table readers (indexes and filters not held in the cache).
    pub table_readers: u64,
}

use super::{
    Column, Entry, KvStore, SCHEMA_KEY, SCHEMA_VERSION, StorageError, WriteBatch, WriteOp,
    check_schema, prefix_end,
};

pub struct RocksStore {
    db: DB,
    cache: Cache,
    budget: usize,
    sync: bool,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.db.path())
            .finish()
    }
}

impl RocksStore {
    /// Opens (or creates) the store at `path` with the default memory budget and checks its
    /// schema version.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        Self::open_with_budget(path, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) the store at `path`; block cache and memtables together stay within
    /// `budget` bytes.
    pub fn open_with_budget(path: &Path, budget: usize) -> Result<Self, StorageError> {
        refuse_other_schema(path)?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(DBCompressionType::Lz4);
        opts.increase_parallelism(2);
        opts.set_max_open_files(MAX_OPEN_FILES);
        opts.set_compaction_readahead_size(COMPACTION_READAHEAD);
        let cache = Cache::new_lru_cache(budget);
        // Memtables of every column are charged to the block cache, so the cache evicts blocks
        // as they grow and one number bounds both; RocksDB flushes the largest memtable once
        // their share is reached.
        opts.set_write_buffer_manager(&WriteBufferManager::new_write_buffer_manager_with_cache(
            budget / MEMTABLE_SHARE,
            false,
            cache.clone(),
        ));
        // One flush takes every column's memtable, so a flush frees the whole share and the
        // columns' table files always describe the same blocks.
        opts.set_atomic_flush(true);
        // An eighth of each column's part of the share, so that all of them together hold
        // at most an eighth of it before they hold data.
        let arena_block = (budget / MEMTABLE_SHARE / Column::ALL.len() / 8)
            .clamp(MIN_ARENA_BLOCK, MAX_ARENA_BLOCK);
        let cfs = Column::ALL.iter().map(|c| {
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            // Point reads dominate (accounts, slots, trie nodes): bloom filters skip the files
            // that cannot hold a key, and pinning them keeps that check off the disk.
            table.set_bloom_filter(10.0, false);
            table.set_cache_index_and_filter_blocks(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
            // Index and filter in partitions of a few KiB under a small top level (pinned).
            // Without them, writing a table file holds its whole filter's key hashes (8 bytes a
            // key) and its whole index until the file ends, and compaction's output files grow
            // with a column: the transaction index's reached 667,000 keys after 14 minutes of
            // the soak, and the node's peak heap rose with them, 0.4 MiB a minute (heaptrack).
            // Partitions also let the cache keep only the hot parts of a large file's index.
            table.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
            table.set_partition_filters(true);
            table.set_pin_top_level_index_and_filter(true);
            let mut cf = Options::default();
            cf.set_compression_type(DBCompressionType::Lz4);
            cf.set_arena_block_size(arena_block);
            cf.set_block_based_table_factory(&table);
            if compacts_universally(*c) {
                cf.set_compaction_style(DBCompactionStyle::Universal);
            }
            ColumnFamilyDescriptor::new(c.name(), cf)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        let store = Self {
            db,
            cache,
            budget,
            sync: true,
        };
        check_schema(&store)?;
        Ok(store)
    }

    /// Turns fsync of each batch off (benchmarks measuring the engine without the disk flush).
    pub fn without_sync(mut self) -> Self {
        self.sync = false;
        self
    }

    /// Flushes every memtable to table files and waits until background compaction is idle.
    ///
    /// Why: a large genesis is written as one batch, so right after it every read first
    /// searches a memtable of gigabytes while a flush of it competes for the CPU. Benchmarks
    /// call this to measure blocks on a settled store, as a node sees it after a restart.
    pub fn settle(&self) -> Result<(), StorageError> {
        self.db.flush_wal(true)?;
        for column in Column::ALL {
            self.db.flush_cf(self.cf(column))?;
        }
        let mut wait = WaitForCompactOptions::default();
        wait.set_flush(true);
        self.db.wait_for_compact(&wait)?;
        Ok(())
    }

    /// What the store's memory holds now, as RocksDB reports it.
    pub fn memory(&self) -> Result<StoreMemory, StorageError> {
        let usage = rocksdb::perf::get_memory_usage_stats(Some(&[&self.db]), Some(&[&self.cache]))?;
        Ok(StoreMemory {
            budget: self.budget as u64,
            cache: usage.cache_total,
            memtables: usage.mem_table_total,
            table_readers: usage.mem_table_readers_total,
        })
    }

    /// How many table files each column has now (for the node's metrics: a count that grows
    /// with the chain is memory that grows with it, see [`compacts_universally`]).
    pub fn table_files(&self) -> Result<Vec<(Column, usize)>, StorageError> {
        let files = self.db.live_files()?;
        Ok(Column::ALL
            .iter()
            .map(|&column| {
                let count = files
                    .iter()
                    .filter(|f| f.column_family_name == column.name())
                    .count();
                (column, count)
            })
            .collect())
    }

    fn cf(&self, column: Column) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(column.name())
            .expect("every column family is opened at start")
    }
}

/// A datadir whose column families differ from this bttd's is checked read-only and refused
/// before anything is written to it: creating the missing column families would leave it
/// unreadable for the bttd that wrote it (RocksDB refuses to open a database without naming
/// every column family it has).
fn refuse_other_schema(path: &Path) -> Result<(), StorageError> {
    let Ok(existing) = DB::list_cf(&Options::default(), path) else {
        // No database there yet (or one the regular open reports on).
        return Ok(());
    };
    if Column::ALL
        .iter()
        .all(|c| existing.iter().any(|name| name == c.name()))
    {
        return Ok(());
    }
    let db = DB::open_cf_for_read_only(&Options::default(), path, &existing, false)?;
    let stored = match db.cf_handle(Column::Meta.name()) {
        Some(meta) => db.get_cf(meta, SCHEMA_KEY)?,
        None => None,
    };
    let found = stored
        .as_deref()
        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
        .map_or(0, u32::from_be_bytes);
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    Err(StorageError::SchemaMismatch {
        found,
        expected: SCHEMA_VERSION,
    })
}

impl KvStore for RocksStore {
    fn get(&self, column: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.db.get_cf(self.cf(column), key)?)
    }

    fn seek(&self, column: Column, key: &[u8]) -> Result<Option<Entry>, StorageError> {
        let mut iter = self.db.raw_iterator_cf(self.cf(column));
        iter.seek(key);
        if iter.valid() {
            let entry = (
                iter.key().unwrap_or_default().to_vec(),
                iter.value().unwrap_or_default().to_vec(),
            );
            return Ok(Some(entry));
        }
        iter.status()?;
        Ok(None)
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut wb = rocksdb::WriteBatch::default();
        for op in batch.ops {
            match op {
                WriteOp::Put(c, k, v) => wb.put_cf(self.cf(c), k, v),
                WriteOp::Delete(c, k) => wb.delete_cf(self.cf(c), k),
                WriteOp::DeletePrefix(c, prefix) => {
                    let end = prefix_end(&prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 1]);
                    wb.delete_range_cf(self.cf(c), prefix, end);
                }
            }
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(self.sync);
        Ok(self.db.write_opt(wb, &opts)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_of(store: &RocksStore, column: Column) -> usize {
        let files = store.table_files().unwrap();
        files.iter().find(|(c, _)| *c == column).unwrap().1
    }

    /// Level compaction moved each flushed file of a column keyed by block number down whole,
    /// so such a column kept one file per flush for good (180 per column after 15 minutes of
    /// the soak).
    #[test]
    fn a_column_written_in_key_order_keeps_few_table_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path()).unwrap().without_sync();
        const FLUSHES: u64 = 40;
        for number in 0..FLUSHES {
            let mut batch = WriteBatch::default();
            for i in 0..16 {
                let key = (number * 16 + i).to_be_bytes().to_vec();
                batch.put(Column::NumberToHash, key.clone(), vec![0xab; 32]);
                batch.put(Column::BlockChanges, key, vec![0xcd; 64]);
            }
            store.write(batch).unwrap();
            store.settle().unwrap();
        }
        for column in [Column::NumberToHash, Column::BlockChanges] {
            let files = files_of(&store, column);
            assert!(
                files <= 8,
                "{}: {files} table files after {FLUSHES} flushes",
                column.name()
            );
        }
        let last = (FLUSHES * 16 - 1).to_be_bytes();
        assert_eq!(
            store.get(Column::NumberToHash, &last).unwrap(),
            Some(vec![0xab; 32])
        );
    }

    /// A datadir written before those columns compacted universally (every column levelled,
    /// files in the bottom level) opens, reads and goes on compacting.
    #[test]
    fn a_datadir_with_levelled_files_opens_under_universal_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<&str> = Column::ALL.iter().map(|c| c.name()).collect();
        {
            let mut opts = rocksdb::Options::default();
            opts.create_if_missing(true);
            opts.create_missing_column_families(true);
            let db = DB::open_cf(&opts, dir.path(), &names).unwrap();
            let meta = db.cf_handle("meta").unwrap();
            db.put_cf(meta, SCHEMA_KEY, SCHEMA_VERSION.to_be_bytes())
                .unwrap();
            let numbers = db.cf_handle("number_to_hash").unwrap();
            for number in 0u64..10 {
                db.put_cf(numbers, number.to_be_bytes(), [0xab; 32])
                    .unwrap();
                db.flush_cf(numbers).unwrap();
            }
            db.compact_range_cf(numbers, None::<&[u8]>, None::<&[u8]>);
        }
        let store = RocksStore::open(dir.path()).unwrap().without_sync();
        for number in 10u64..90 {
            let mut batch = WriteBatch::default();
            batch.put(
                Column::NumberToHash,
                number.to_be_bytes().to_vec(),
                vec![0xab; 32],
            );
            store.write(batch).unwrap();
            store.settle().unwrap();
        }
        for number in 0u64..90 {
            assert_eq!(
                store
                    .get(Column::NumberToHash, &number.to_be_bytes())
                    .unwrap(),
                Some(vec![0xab; 32]),
                "block {number}"
            );
        }
        // The levelled file stays a sorted run of its own below the merged ones (12 files
        // here, after 20 flushes as after 80); levelled, this column would hold 80 more.
        let files = files_of(&store, Column::NumberToHash);
        assert!(files <= 16, "{files} table files after 80 flushes");
    }
}
