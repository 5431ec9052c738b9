//! The bttd node: configuration, the block producer, metrics and /health, supervision, and
//! the wiring that runs the engine, the network, the pool and JSON-RPC (each its own crate
//! under node/) over one chain.

pub mod config;
pub mod consensus;
pub mod health;
pub mod metrics_server;
pub mod producer;
pub mod run;
pub mod supervisor;
pub mod testnet;
