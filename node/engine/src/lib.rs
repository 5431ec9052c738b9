//! Consensus inside the node: the engine that drives the `bttd-consensus` state machine over
//! libp2p, the validator sets it reads, block sync, the durable slashing-protection record,
//! and the shared view RPC reads. The protocol itself is in `consensus/` and
//! docs/consensus.md.

pub mod engine;
pub mod info;
pub mod provider;
pub mod sync;
pub mod timestamp;
pub mod wire;

pub use engine::{Engine, EngineError, EngineFault, EngineSettings, ValidatorKey};
pub use info::{ConsensusInfo, RoundStatus};
pub use provider::GenesisSets;
