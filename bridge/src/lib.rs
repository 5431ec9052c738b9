//! The bridge's view of TRON, the root chain: addresses in TRON's three spellings, the
//! protobuf transactions and their ids and signatures, java-tron's JSON forms of them, and
//! (for the bridge) the `RootChain` trait with `JavaTron`, its client over java-tron's HTTP
//! API and `/jsonrpc`. The simulator (`bttd-tron-sim`) is built on the same parts, so a
//! difference between what it accepts and what the client sends shows up in its tests.

pub mod address;
pub mod javatron;
pub mod json;
pub mod proto;
pub mod root_chain;
pub mod tx;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod vectors;

pub use address::{AddressError, TronAddress};
pub use javatron::JavaTron;
pub use root_chain::{
    BlockRef, ContractCall, Receipt, RootChain, RootChainError, RootLog, SolidLogFollower,
};
