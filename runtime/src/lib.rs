//! bttd's execution runtime: decodes and validates Ethereum transactions, executes blocks
//! with revm, maintains the state and its Merkle-Patricia root incrementally, and persists
//! everything through a small key-value storage trait (RocksDB or memory).
//!
//! It knows nothing about networks or consensus: the node feeds it transactions and blocks,
//! and asks it to build, import and commit them.

pub mod block;
pub mod chain;
pub mod cheats;
pub mod config;
pub mod executor;
pub mod staking;
pub mod state;
pub mod storage;
pub mod trie;
pub mod tx;
pub mod unwind;

#[cfg(test)]
mod devnet_tests;
#[cfg(test)]
mod tests;

pub use block::{Body, BodyMismatch, SealedBlock, SealedHeader, WireBlock};
pub use chain::{Chain, ChainError, ExecutedBlock, TxLocation};
pub use config::ChainConfig;
pub use executor::ConsensusInputs;
pub use staking::{Offence, SlashOutcome, StakedSet, StakedValidator, StakingConfig};
pub use tx::{RecoveredTx, TxError};
