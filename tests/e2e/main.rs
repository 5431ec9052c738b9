//! End-to-end tests: real `bttd` processes driven over real JSON-RPC by real clients.
//! One test binary (each links RocksDB and revm; links are expensive), run serially by
//! nextest's `processes` group.

mod channels_contract;
mod channels_devnet;
mod clients;
mod crash;
mod devnet_methods;
mod failstop;
mod hostile;
mod keys;
mod limits;
mod loadgen;
mod ops;
mod slashing;
mod staking;
mod support;
mod tron;
mod txpool;
mod validators;
mod watchtower;
