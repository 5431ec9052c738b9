//! Subcommands of the `bttd` binary that are more than a few lines, and what they share: how a
//! command logs, the runtime it runs on, and the node a client command talks to.

pub mod channel;
pub mod keys;
pub mod loadgen;
pub mod slashing;
pub mod testnet;
pub mod tron;
pub mod validator;

use clap::Args;
use eyre::WrapErr;

/// The node a client command (`bttd channel`, `bttd validator`) talks to.
#[derive(Debug, Args)]
pub struct NodeUrl {
    /// JSON-RPC endpoint of a bttd node.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:8545",
        env = "BTTD_RPC_URL"
    )]
    pub rpc_url: String,
}

/// Logs to standard error with `filter` (tracing's env-filter syntax; `RUST_LOG` wins), in
/// colour only on a terminal, so that log files hold plain text.
pub fn init_tracing(filter: &str) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_string());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// The multi-threaded runtime a command's async work runs on.
pub fn runtime() -> eyre::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .wrap_err("starting the async runtime")
}
