//! `--datadir`: the simulated chain survives a restart. Every event that changes it (an accepted
//! transaction's protobuf bytes, a sealed block's time, a reorg) is appended as one JSON line to
//! `DIR/chain.jsonl`; a restart replays the lines in order through the same code. Execution is
//! deterministic, so the replayed chain has the same block ids, txIDs and state. The first line
//! records the settings the chain was made with; a restart with other settings is refused.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use alloy_primitives::B256;
use serde::{Deserialize, Serialize};

pub const FILE: &str = "chain.jsonl";

/// The settings a chain was made with (the first line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub version: u32,
    pub genesis_time_ms: i64,
    /// The funded accounts, `41...` hex, and their balance in sun.
    pub accounts: Vec<String>,
    pub balance_sun: u64,
    pub solidify_depth: u64,
    pub energy_price: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A transaction accepted by broadcast: its protobuf encoding, hex.
    Tx {
        tx: String,
    },
    Seal {
        time_ms: i64,
    },
    /// `drop: None` drops every transaction of the replaced blocks.
    Reorg {
        depth: u64,
        drop: Option<Vec<B256>>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {reason}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error(
        "{path} was made with other settings (accounts, balance, solidify depth or energy price): start with the same flags or another --datadir"
    )]
    Settings { path: PathBuf },
    #[error("replaying {path}: {reason}")]
    Replay { path: PathBuf, reason: String },
}

/// The open journal, appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Opens (or creates) `dir/chain.jsonl`: returns the journal, the stored header (or `header`
    /// for a new one) and the events to replay. A torn last line (a crash mid-write) is dropped.
    pub fn open(dir: &Path, header: &Header) -> Result<(Self, Header, Vec<Event>), JournalError> {
        let path = dir.join(FILE);
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut stored = header.clone();
        let mut events = Vec::new();
        let mut good_len = 0u64;
        if path.exists() {
            let reader = BufReader::new(File::open(&path).map_err(io)?);
            let lines: Vec<String> = reader
                .split(b'\n')
                .map(|l| l.map(|b| String::from_utf8_lossy(&b).into_owned()))
                .collect::<Result<_, _>>()
                .map_err(io)?;
            let complete = std::fs::read(&path).map_err(io)?.ends_with(b"\n");
            for (i, line) in lines.iter().enumerate() {
                let torn = i + 1 == lines.len() && !complete;
                if line.is_empty() {
                    continue;
                }
                let corrupt = |reason: String| JournalError::Corrupt {
                    path: path.clone(),
                    line: i + 1,
                    reason,
                };
                if i == 0 {
                    match serde_json::from_str::<Header>(line) {
                        Ok(h) => stored = h,
                        Err(_) if torn => break,
                        Err(e) => return Err(corrupt(e.to_string())),
                    }
                    let mut same = stored.clone();
                    same.genesis_time_ms = header.genesis_time_ms;
                    if same != *header {
                        return Err(JournalError::Settings { path });
                    }
                } else {
                    match serde_json::from_str::<Event>(line) {
                        Ok(e) => events.push(e),
                        Err(_) if torn => break,
                        Err(e) => return Err(corrupt(e.to_string())),
                    }
                }
                good_len += line.len() as u64 + 1;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        file.set_len(good_len).map_err(io)?;
        let mut journal = Self { path, file };
        if good_len == 0 {
            journal.write_line(&serde_json::to_string(&stored).expect("a header serializes"))?;
        }
        Ok((journal, stored, events))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_line(&mut self, line: &str) -> Result<(), JournalError> {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        self.file
            .write_all(&bytes)
            .map_err(|source| JournalError::Io {
                path: self.path.clone(),
                source,
            })
    }

    pub fn append(&mut self, event: &Event) -> Result<(), JournalError> {
        let line = serde_json::to_string(event).expect("an event serializes");
        self.write_line(&line)
    }
}
