//! The watchtower's state directory: one file per channel holding its best voucher
//! (`vouchers/<channelId>.json`, the voucher JSON line), and the log cursor.
//!
//! A voucher is acknowledged only after [`Store::save_voucher`] returned: the file is written
//! to a temporary name, fsynced, renamed over the old one and the directory fsynced, so after a
//! crash (kill -9, power loss) the file holds either the previous best or the new one, never a
//! torn mix, and an acknowledged voucher is never lost.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use alloy_primitives::B256;
use bttd_contracts::channels::SignedVoucher;
use eyre::WrapErr;

/// Largest voucher file read back (a voucher line is ~250 bytes).
const MAX_FILE: u64 = 4096;

#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    vouchers: PathBuf,
}

/// Writes `bytes` to `path` atomically and durably (temp file, fsync, rename, fsync the dir).
fn write_durable(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

impl Store {
    /// Opens (creating) the state directory.
    pub fn open(dir: &Path) -> eyre::Result<Self> {
        let vouchers = dir.join("vouchers");
        fs::create_dir_all(&vouchers)
            .wrap_err_with(|| format!("creating the state directory {}", vouchers.display()))?;
        Ok(Self {
            dir: dir.to_owned(),
            vouchers,
        })
    }

    fn voucher_path(&self, id: &B256) -> PathBuf {
        self.vouchers.join(format!("{id}.json"))
    }

    /// Makes `v` its channel's best voucher on disk; returns once it is durable.
    pub fn save_voucher(&self, v: &SignedVoucher) -> eyre::Result<()> {
        let line = serde_json::to_vec(v)?;
        write_durable(&self.vouchers, &self.voucher_path(&v.channel_id), &line)
            .wrap_err_with(|| format!("saving the voucher of {}", v.channel_id))
    }

    /// Every voucher saved (files that do not parse or name another channel are reported and
    /// skipped; leftover temporary files are ignored).
    pub fn load_vouchers(&self) -> eyre::Result<Vec<SignedVoucher>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.vouchers)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let parsed = (|| -> eyre::Result<SignedVoucher> {
                let len = fs::metadata(&path)?.len();
                eyre::ensure!(len <= MAX_FILE, "{len} bytes");
                let v: SignedVoucher = serde_json::from_slice(&fs::read(&path)?)?;
                eyre::ensure!(
                    path.file_stem()
                        .is_some_and(|s| *s == *v.channel_id.to_string()),
                    "holds a voucher of {}",
                    v.channel_id
                );
                Ok(v)
            })();
            match parsed {
                Ok(v) => out.push(v),
                Err(e) => {
                    tracing::warn!(target: "bttd::channel", file = %path.display(), %e, "skipping a state file")
                }
            }
        }
        Ok(out)
    }

    /// The first block whose logs are not read yet, if saved.
    pub fn cursor(&self) -> Option<u64> {
        fs::read_to_string(self.dir.join("cursor"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Saves the log cursor (not fsynced: losing it only re-reads logs; the channels' state is
    /// re-read every round anyway).
    pub fn save_cursor(&self, next_block: u64) -> eyre::Result<()> {
        let path = self.dir.join("cursor");
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, next_block.to_string())?;
        fs::rename(tmp, path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{U256, address};
    use alloy_signer_local::PrivateKeySigner;
    use bttd_contracts::channels::ChannelsDomain;

    #[test]
    fn vouchers_survive_reopening_and_replace_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let domain =
            ChannelsDomain::new(1337, address!("0000000000000000000000000000000000001002"));
        let key = PrivateKeySigner::random();
        let sign = |id: u8, amount: u64| {
            SignedVoucher::sign(&domain, &key, B256::repeat_byte(id), U256::from(amount)).unwrap()
        };
        let store = Store::open(dir.path()).unwrap();
        store.save_voucher(&sign(1, 5)).unwrap();
        store.save_voucher(&sign(1, 7)).unwrap();
        store.save_voucher(&sign(2, 3)).unwrap();
        // Debris a crash can leave, and a file that lies about its channel.
        fs::write(dir.path().join("vouchers/x.tmp"), "torn").unwrap();
        fs::write(
            dir.path()
                .join(format!("vouchers/{}.json", B256::repeat_byte(9))),
            serde_json::to_vec(&sign(3, 1)).unwrap(),
        )
        .unwrap();
        let mut loaded = Store::open(dir.path()).unwrap().load_vouchers().unwrap();
        loaded.sort_by_key(|v| v.channel_id);
        assert_eq!(loaded, [sign(1, 7), sign(2, 3)]);
        assert_eq!(store.cursor(), None);
        store.save_cursor(42).unwrap();
        assert_eq!(Store::open(dir.path()).unwrap().cursor(), Some(42));
    }
}
