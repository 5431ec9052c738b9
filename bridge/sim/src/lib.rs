//! `bttd tron-sim`: a small TRON node for devnets and tests. java-tron cannot run here or in
//! CI, and TRON's own clients (tronpy, tronweb) and the bridge's `JavaTron` client only talk
//! to a node, so this one is exact where they depend on it (block ids, txIDs over the real
//! protobuf encoding, TaPoS, expiration, signatures, java-tron's error codes and JSON) and
//! simple elsewhere (one witness, energy is revm's gas; docs/tron.md lists what it leaves out).

pub mod accounts;
pub mod chain;
pub mod exec;
pub mod journal;
pub mod jsonrpc;
pub mod server;
pub mod wallet;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

pub use accounts::{DevAccount, TRON_TEST_PATH, dev_accounts};
pub use chain::{Chain, ChainConfig};

/// One TRX in sun.
pub const SUN_PER_TRX: u64 = 1_000_000;
/// TRON mainnet's energy price in sun (`getEnergyFee`), the simulator's default.
pub const DEFAULT_ENERGY_PRICE: u64 = 100;

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub addr: SocketAddr,
    pub block_time: Duration,
    pub solidify_depth: u64,
    pub accounts: u32,
    /// Balance of each funded account, in TRX.
    pub balance_trx: u64,
    pub mnemonic: String,
    pub energy_price: u64,
    /// Keep the chain here and resume from it (default: in memory only).
    pub datadir: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("deriving account {index}: {reason}")]
    Account { index: u32, reason: String },
    #[error("balance of {0} TRX does not fit in sun")]
    Balance(u64),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("block time must be at least 10ms")]
    BlockTime,
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
}

/// A running simulator: its address, its funded accounts and the chain.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub accounts: Vec<DevAccount>,
    pub chain: Arc<Mutex<Chain>>,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Builds the chain, binds the HTTP port and starts sealing blocks (on the current runtime).
pub async fn start(config: SimConfig) -> Result<Running, SimError> {
    if config.block_time < Duration::from_millis(10) {
        return Err(SimError::BlockTime);
    }
    let accounts = dev_accounts(&config.mnemonic, config.accounts)?;
    let balance = config
        .balance_trx
        .checked_mul(SUN_PER_TRX)
        .filter(|b| i64::try_from(*b).is_ok())
        .ok_or(SimError::Balance(config.balance_trx))?;
    let chain = Chain::new(ChainConfig {
        solidify_depth: config.solidify_depth,
        energy_price: config.energy_price,
        funded: accounts
            .iter()
            .map(|a| (a.address.evm(), balance))
            .collect(),
        genesis_time_ms: now_ms(),
    });
    let chain = Arc::new(Mutex::new(chain));
    let addr = server::serve(config.addr, chain.clone()).await?;
    tokio::spawn(produce(chain.clone(), config.block_time));
    Ok(Running {
        addr,
        accounts,
        chain,
    })
}

async fn produce(chain: Arc<Mutex<Chain>>, block_time: Duration) {
    let mut ticker = tokio::time::interval(block_time);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let mut chain = chain.lock();
        let block = chain.seal(now_ms());
        tracing::debug!(target: "bttd::tron_sim", number = block.number, txs = block.txids.len(), "sealed");
    }
}
