//! What a simulated run is: its seed, signature scheme, validator sets per epoch, nodes and
//! their behaviours, links, faults and liveness requirement; and what it reports.

use alloy_primitives::B256;
use bttd_consensus::TimeoutConfig;
use std::time::Duration;

use crate::checker::Violation;

/// Which signature scheme the run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Keyed-hash test signatures (fast).
    Test,
    /// Real BLS12-381 through blst.
    Bls,
}

/// How a simulated node behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Follows the protocol.
    Honest,
    /// An honest-looking instance sharing its key with another instance,
    /// each with its own slashing record: together they equivocate.
    Twin,
    /// Never sends anything.
    Silent,
    /// As proposer, sends two different blocks to two halves of the network.
    ConflictingProposer,
    /// Corrupts the signature of most of its messages and forges votes for
    /// other validators.
    BadSignatures,
    /// Votes honestly, and attacks the glue around the machine: with every precommit it
    /// sends this many next-height votes forged in other validators' names (the old buffer
    /// replayed them at decision and blamed the deciding peer), re-sends every proposal it
    /// receives with another payload (an unsigned swap that once made false evidence), and
    /// sends messages for absurd heights and rounds.
    FutureForger(u32),
}

impl Behaviour {
    /// Whether the node is counted as faulty by the checker.
    pub fn is_byzantine(self) -> bool {
        self != Behaviour::Honest
    }
}

/// One simulated process.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Which key (identity) it holds.
    pub identity: usize,
    /// How it behaves.
    pub behaviour: Behaviour,
}

/// Link model, applied to every message independently.
#[derive(Clone, Copy, Debug)]
pub struct NetConfig {
    /// Minimum one-way delay.
    pub latency: Duration,
    /// Extra uniform random delay in `[0, jitter]`; reorders messages.
    pub jitter: Duration,
    /// Probability a message is dropped.
    pub loss: f64,
    /// Probability a message is delivered twice.
    pub duplicate: f64,
}

/// A scheduled fault.
#[derive(Clone, Debug)]
pub enum Fault {
    /// From `at` until `heal`, nodes only reach nodes of the same group.
    Partition {
        /// Start.
        at: Duration,
        /// End.
        heal: Duration,
        /// Group of each node.
        groups: Vec<u8>,
    },
    /// The node crashes at `at` and, if given, restarts from its persisted
    /// state at `restart`.
    Crash {
        /// Which node.
        node: usize,
        /// When.
        at: Duration,
        /// When it comes back.
        restart: Option<Duration>,
    },
}

/// Liveness requirement: once faults are over, progress resumes.
#[derive(Clone, Copy, Debug)]
pub struct Liveness {
    /// When the last fault ends.
    pub from: Duration,
    /// Heights every honest node must gain beyond the highest honest height
    /// at `from`.
    pub heights: u64,
    /// Within this much virtual time after `from`.
    pub within: Duration,
}

/// A complete run description.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of the run's RNG.
    pub seed: u64,
    /// Signature scheme.
    pub scheme: Scheme,
    /// Number of distinct keys.
    pub identities: usize,
    /// Per epoch: `(identity, power)` of each validator, in set order.
    /// The last entry is reused for later epochs.
    pub epochs: Vec<Vec<(usize, u64)>>,
    /// Blocks per epoch.
    pub epoch_length: u64,
    /// The processes.
    pub nodes: Vec<NodeSpec>,
    /// Links.
    pub net: NetConfig,
    /// Consensus timeouts.
    pub timeouts: TimeoutConfig,
    /// Period of the re-gossip timer.
    pub rebroadcast: Duration,
    /// Faults.
    pub faults: Vec<Fault>,
    /// Liveness check, if any.
    pub liveness: Option<Liveness>,
    /// Hard stop.
    pub stop_at: Duration,
    /// Print every event and output to stderr (for diagnosing one seed).
    pub verbose: bool,
    /// Model StakeManager's tombstoning: an identity whose double-signing evidence a
    /// committed block carries leaves the sets of the following epochs.
    pub tombstone_equivocators: bool,
}

/// What a run observed.
#[derive(Clone, Debug)]
pub struct SimReport {
    /// Invariant violations (empty for a correct run).
    pub violations: Vec<Violation>,
    /// Hash of every processed event, in order.
    pub trace_hash: B256,
    /// Final height (next to decide) of each node.
    pub heights: Vec<u64>,
    /// Highest height decided by some honest node.
    pub decided: u64,
    /// Equivocation evidence produced by honest nodes.
    pub evidence: u64,
    /// Messages refused by honest nodes (bad signatures etc.).
    pub rejected: u64,
    /// Events processed.
    pub events: u64,
    /// Virtual time at the end.
    pub end_time: Duration,
    /// Final state of each node's machine, for diagnosing a failed seed.
    pub states: Vec<String>,
    /// Identities tombstoned, with the first block that carried their evidence.
    pub slashed: Vec<(usize, u64)>,
    /// Identities in the set of the last epoch some honest node reached.
    pub final_set: Vec<usize>,
}
