//! What the rest of the node may know about consensus: the validator sets, the current
//! height, round and proposer, sync progress and the evidence seen. The engine writes it; RPC
//! (`bor_*`, `bttd_*`, `eth_syncing`) reads it.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::collections::HashMap;

use alloy_primitives::{Address, U256};
use bttd_consensus::{Evidence, Height, Round, Step, ValidatorIndex};
use parking_lot::{Mutex, RwLock};

use bttd_consensus::ValidatorSetProvider;

/// Offences kept (memory and `evidence.jsonl`): each is two signed messages without block
/// payloads, well under 1 KiB, so the store stays under ~10 MiB.
pub const MAX_EVIDENCE: usize = 10_000;

/// An offence's identity: (offender, height, round, kind), as `Evidence::offence` gives it.
pub type OffenceKey = (ValidatorIndex, Height, Round, u8);

/// Where a piece of evidence went on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inclusion {
    /// The block that carries it.
    pub block: Height,
    /// Wei its slashing call took; `None` when the contract slashed nothing (the offence was
    /// slashed before, the validator was tombstoned already, or the chain has no staking).
    pub slashed: Option<U256>,
}

/// One offence as `bttd_getEvidence` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceReport {
    pub evidence: Evidence,
    /// The first block that carried it, if any committed block did.
    pub included: Option<Inclusion>,
}

/// The machine's position, for `bor_getCurrentProposer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundStatus {
    pub height: Height,
    pub round: Round,
    pub step: Step,
    pub proposer: Option<Address>,
}

/// Shared consensus state; see the module docs.
#[derive(Debug)]
pub struct ConsensusInfo {
    pub sets: Arc<dyn ValidatorSetProvider>,
    /// Largest gossip or sync message (a sync response is cut to fit).
    pub max_message_bytes: usize,
    status: RwLock<RoundStatus>,
    /// Head when the node started (eth_syncing's startingBlock).
    starting_block: AtomicU64,
    /// Highest committed height a peer reported.
    highest_seen: AtomicU64,
    peers: AtomicU64,
    evidence: Mutex<Vec<Evidence>>,
    evidence_file: Option<PathBuf>,
    /// Offences carried by committed blocks (since this node started).
    included: Mutex<HashMap<OffenceKey, Inclusion>>,
}

impl ConsensusInfo {
    /// `evidence_file` keeps evidence across restarts (JSON lines, appended).
    pub fn new(
        sets: Arc<dyn ValidatorSetProvider>,
        head: Height,
        max_message_bytes: usize,
        evidence_file: Option<PathBuf>,
    ) -> Self {
        let evidence = evidence_file
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .map(|text| {
                text.lines()
                    .filter_map(|line| serde_json::from_str(line).ok())
                    .collect()
            })
            .unwrap_or_default();
        Self {
            sets,
            max_message_bytes,
            status: RwLock::new(RoundStatus {
                height: head + 1,
                round: 0,
                step: Step::Propose,
                proposer: None,
            }),
            starting_block: AtomicU64::new(head),
            highest_seen: AtomicU64::new(head),
            peers: AtomicU64::new(0),
            evidence: Mutex::new(evidence),
            evidence_file,
            included: Mutex::new(HashMap::new()),
        }
    }

    pub fn set_round(&self, height: Height, round: Round, step: Step, proposer: Option<Address>) {
        let previous = std::mem::replace(
            &mut *self.status.write(),
            RoundStatus {
                height,
                round,
                step,
                proposer,
            },
        );
        // A round change is a later round at the same height (a new height starts at round 0).
        if previous.height == height && round > previous.round {
            metrics::counter!("bttd_consensus_round_changes_total").increment(1);
        }
        metrics::gauge!("bttd_consensus_height").set(height as f64);
        metrics::gauge!("bttd_consensus_round").set(f64::from(round));
    }

    pub fn round_status(&self) -> RoundStatus {
        *self.status.read()
    }

    pub fn saw_height(&self, height: Height) {
        self.highest_seen.fetch_max(height, Ordering::Relaxed);
    }

    /// The highest committed height seen from peers (at least our head at start).
    pub fn highest_seen(&self) -> Height {
        self.highest_seen.load(Ordering::Relaxed)
    }

    /// `(startingBlock, highestBlock)` while this node is behind its peers.
    pub fn sync_progress(&self, head: Height) -> Option<(Height, Height)> {
        let highest = self.highest_seen.load(Ordering::Relaxed);
        // One block behind is the normal state between a peer's commit and ours.
        (highest > head + 1).then(|| (self.starting_block.load(Ordering::Relaxed), highest))
    }

    pub fn peer_connected(&self) {
        self.peers.fetch_add(1, Ordering::Relaxed);
    }

    pub fn peer_disconnected(&self) {
        let _ = self
            .peers
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| p.checked_sub(1));
    }

    pub fn peer_count(&self) -> u64 {
        self.peers.load(Ordering::Relaxed)
    }

    /// Records evidence once (and appends it to the evidence file, synced).
    pub fn add_evidence(&self, evidence: Evidence) {
        let mut all = self.evidence.lock();
        let offence = evidence.offence();
        if all.iter().any(|e| e.offence() == offence) {
            return;
        }
        if all.len() >= MAX_EVIDENCE {
            tracing::error!(target: "bttd::consensus", offender = offence.0, height = offence.1, "evidence store full ({MAX_EVIDENCE} offences); not recorded");
            return;
        }
        if let Some(path) = &self.evidence_file {
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| {
                    let mut line = serde_json::to_vec(&evidence).map_err(std::io::Error::other)?;
                    line.push(b'\n');
                    f.write_all(&line)?;
                    f.sync_data()
                });
            if let Err(e) = written {
                tracing::error!(target: "bttd::consensus", path = %path.display(), error = %e, "could not store evidence");
            }
        }
        metrics::counter!("bttd_consensus_evidence_total").increment(1);
        all.push(evidence);
    }

    pub fn evidence(&self) -> Vec<Evidence> {
        self.evidence.lock().clone()
    }

    /// Records that committed block `block` carried `evidence` (also recording the evidence
    /// itself, learned from the block if this node had not seen it).
    pub fn record_inclusion(&self, evidence: &Evidence, block: Height, slashed: Option<U256>) {
        self.add_evidence(evidence.clone());
        self.included
            .lock()
            .entry(evidence.offence())
            .or_insert(Inclusion { block, slashed });
    }

    /// Whether a committed block carried this offence.
    pub fn is_included(&self, offence: &OffenceKey) -> bool {
        self.included.lock().contains_key(offence)
    }

    /// Every offence seen, with where it went on chain.
    pub fn evidence_reports(&self) -> Vec<EvidenceReport> {
        let included = self.included.lock();
        self.evidence
            .lock()
            .iter()
            .map(|e| EvidenceReport {
                evidence: e.clone(),
                included: included.get(&e.offence()).copied(),
            })
            .collect()
    }
}
