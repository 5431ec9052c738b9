//! The validator's slashing-protection record on disk.
//!
//! The consensus guard calls [`SlashingStore::save`] before every signature leaves the
//! process; this store makes that durable: write a temporary file, fsync it, rename it over
//! the record, fsync the directory. A crash at any point leaves either the old or the new
//! record, never a torn one, so a restarted validator can never sign a conflicting vote.
//! The file is JSON so operators can export it (copy) and import it on a new machine
//! (`bttd slashing-protection export|import`).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bttd_consensus::guard::StoreError;
use bttd_consensus::{SignRecord, SlashingStore};
use serde::{Deserialize, Serialize};

/// Format tag, so a future layout can be told apart.
const FORMAT: &str = "bttd-slashing-protection/1";

#[derive(Serialize, Deserialize)]
struct OnDisk {
    format: String,
    /// Genesis hash of the chain the record belongs to.
    chain: alloy_primitives::B256,
    record: SignRecord,
}

/// Why the record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SlashingDbError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a slashing-protection record: {reason}")]
    Format { path: String, reason: String },
    #[error("{path} belongs to chain {found}, this node runs {expected}")]
    WrongChain {
        path: String,
        found: alloy_primitives::B256,
        expected: alloy_primitives::B256,
    },
}

/// A [`SlashingStore`] backed by one fsynced JSON file.
#[derive(Debug)]
pub struct FileSlashingStore {
    path: PathBuf,
    chain: alloy_primitives::B256,
}

impl FileSlashingStore {
    /// Opens (or starts) the record at `path` for `chain`, returning the store and the
    /// record to restore the guard from.
    pub fn open(
        path: &Path,
        chain: alloy_primitives::B256,
    ) -> Result<(Self, SignRecord), SlashingDbError> {
        let record = match fs::read(path) {
            Ok(bytes) => read_record(path, &bytes, chain)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SignRecord::default(),
            Err(source) => {
                return Err(SlashingDbError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        Ok((
            Self {
                path: path.to_path_buf(),
                chain,
            },
            record,
        ))
    }

    /// Replaces the record with one exported elsewhere, keeping whichever is further
    /// along (an import never moves protection backwards).
    pub fn import(
        path: &Path,
        chain: alloy_primitives::B256,
        exported: &Path,
    ) -> Result<SignRecord, SlashingDbError> {
        let bytes = fs::read(exported).map_err(|source| SlashingDbError::Io {
            path: exported.display().to_string(),
            source,
        })?;
        let incoming = read_record(exported, &bytes, chain)?;
        let (mut store, current) = Self::open(path, chain)?;
        let merged = if later(&current, &incoming) {
            current
        } else {
            incoming
        };
        store.save(&merged).map_err(|e| SlashingDbError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(e.0),
        })?;
        Ok(merged)
    }
}

/// Whether `a` records a later signature than `b`.
fn later(a: &SignRecord, b: &SignRecord) -> bool {
    let key = |r: &SignRecord| r.latest.map(|l| (l.height, l.round));
    key(a) > key(b)
}

fn read_record(
    path: &Path,
    bytes: &[u8],
    chain: alloy_primitives::B256,
) -> Result<SignRecord, SlashingDbError> {
    let on_disk: OnDisk = serde_json::from_slice(bytes).map_err(|e| SlashingDbError::Format {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    if on_disk.format != FORMAT {
        return Err(SlashingDbError::Format {
            path: path.display().to_string(),
            reason: format!("format {:?}, expected {FORMAT:?}", on_disk.format),
        });
    }
    if on_disk.chain != chain {
        return Err(SlashingDbError::WrongChain {
            path: path.display().to_string(),
            found: on_disk.chain,
            expected: chain,
        });
    }
    Ok(on_disk.record)
}

impl SlashingStore for FileSlashingStore {
    fn save(&mut self, record: &SignRecord) -> Result<(), StoreError> {
        let err = |e: std::io::Error| StoreError(format!("{}: {e}", self.path.display()));
        let json = serde_json::to_vec_pretty(&OnDisk {
            format: FORMAT.into(),
            chain: self.chain,
            record: *record,
        })
        .map_err(|e| StoreError(e.to_string()))?;
        let tmp = self.path.with_extension("tmp");
        {
            let mut file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&tmp)
                .map_err(err)?;
            file.write_all(&json).map_err(err)?;
            file.sync_all().map_err(err)?;
        }
        fs::rename(&tmp, &self.path).map_err(err)?;
        if let Some(dir) = self.path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::B256;
    use bttd_consensus::guard::{LockRecord, RoundRecord};

    fn record(height: u64, round: u32) -> SignRecord {
        SignRecord {
            latest: Some(RoundRecord {
                height,
                round,
                proposal: None,
                prevote: Some(Some(B256::repeat_byte(1))),
                precommit: None,
            }),
            lock: Some(LockRecord {
                height,
                round,
                block: B256::repeat_byte(1),
            }),
        }
    }

    #[test]
    fn saved_record_survives_reopen_and_other_chains_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slashing.json");
        let chain = B256::repeat_byte(9);
        let (mut store, fresh) = FileSlashingStore::open(&path, chain).unwrap();
        assert_eq!(fresh, SignRecord::default());
        store.save(&record(5, 1)).unwrap();
        let (_, back) = FileSlashingStore::open(&path, chain).unwrap();
        assert_eq!(back, record(5, 1));
        assert!(matches!(
            FileSlashingStore::open(&path, B256::ZERO),
            Err(SlashingDbError::WrongChain { .. })
        ));
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            FileSlashingStore::open(&path, chain),
            Err(SlashingDbError::Format { .. })
        ));
    }

    #[test]
    fn import_never_moves_protection_backwards() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slashing.json");
        let exported = dir.path().join("export.json");
        let chain = B256::repeat_byte(9);
        FileSlashingStore::open(&path, chain)
            .unwrap()
            .0
            .save(&record(10, 0))
            .unwrap();
        FileSlashingStore::open(&exported, chain)
            .unwrap()
            .0
            .save(&record(7, 3))
            .unwrap();
        assert_eq!(
            FileSlashingStore::import(&path, chain, &exported).unwrap(),
            record(10, 0)
        );
        FileSlashingStore::open(&exported, chain)
            .unwrap()
            .0
            .save(&record(12, 0))
            .unwrap();
        assert_eq!(
            FileSlashingStore::import(&path, chain, &exported).unwrap(),
            record(12, 0)
        );
    }
}
