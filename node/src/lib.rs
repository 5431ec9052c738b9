//! The bttd node: configuration, the transaction pool, the block producer, JSON-RPC,
//! metrics, and the wiring that runs them over one chain.

pub mod config;
pub mod consensus;
pub mod context;
pub mod health;
pub mod keys;
pub mod mempool;
pub mod metrics_server;
pub mod p2p;
pub mod producer;
pub mod rpc;
pub mod run;
pub mod supervisor;
pub mod testnet;
