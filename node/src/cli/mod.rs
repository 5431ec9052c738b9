//! Subcommands of the `bttd` binary that are more than a few lines.

pub mod channel;
pub mod keys;
pub mod loadgen;
pub mod slashing;
pub mod testnet;
pub mod tron;
pub mod validator;
