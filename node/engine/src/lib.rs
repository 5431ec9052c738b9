//! The consensus engine: drives the `bttd-consensus` state machine and block sync over a
//! network, a clock and an application it is generic over ([`host`]), and keeps the view of
//! consensus that RPC reads ([`ConsensusInfo`]). It has no I/O of its own: the node runs it over
//! libp2p, tokio and RocksDB, the simulator over a deterministic clock and network. The
//! protocol itself is in `consensus/` and docs/consensus.md.

pub mod doppelganger;
pub mod engine;
pub mod host;
pub mod info;
pub mod provider;
pub mod sync;
pub mod timestamp;
pub mod wire;

pub use doppelganger::DoppelgangerWatch;
pub use engine::{
    Engine, EngineConfig, EngineError, EngineFault, Signing, check_key, next_set_commitment,
};
pub use host::{Acceptance, Application, Event, JobPanicked, Network, RequestTag, Runtime};
pub use info::{ConsensusInfo, EvidenceReport, Inclusion, OffenceKey, RoundStatus};
pub use provider::GenesisSets;
