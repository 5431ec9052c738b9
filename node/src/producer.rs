//! The single block producer used until BFT consensus takes over: it builds blocks on the head
//! from the pool's best transactions, commits them, and tells the pool and subscribers. When
//! it mines is the [`MiningMode`] of the node's [`DevnetControl`]: every `block_time` on
//! `bttd node` and by default on `bttd devnet`, or never on its own (`--automine`, where the RPC
//! mines each transaction, and `--no-mining`); test suites switch it at run time
//! (evm_setAutomine, evm_setIntervalMining). Every block goes through
//! [`DevnetControl::mine`], so interval blocks and RPC-mined blocks never race. Execution runs
//! on a blocking thread so RPC stays responsive.

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::Address;
use tokio::sync::watch;

use bttd_txpool::context::NodeContext;
use bttd_txpool::devnet::{DevnetControl, DevnetError, MineRequest, MiningMode};

#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub block_time: Duration,
    /// Receives the priority fees (the block's `miner`).
    pub beneficiary: Address,
    /// `bttd devnet`: the starting mining mode, and the anvil/hardhat test methods are served.
    /// None (`bttd node`): a block every `block_time`, and those methods are refused.
    pub devnet: Option<MiningMode>,
}

impl ProducerConfig {
    /// The control the producer (and, on a devnet, the RPC) mines through.
    pub fn control(&self) -> DevnetControl {
        let mode = self.devnet.unwrap_or(MiningMode::Interval(self.block_time));
        DevnetControl::new(mode, self.beneficiary)
    }
}

/// Why the producer stopped before shutdown. A failed block (an error from the chain) is
/// logged and retried at the next tick; a panic while building is a bug or broken storage and
/// ends the producer, which the supervisor turns into a node shutdown.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error("building block {number} panicked: {message}")]
    Panicked { number: u64, message: String },
}

/// Produces blocks until `shutdown` turns true. A block in progress is finished and committed
/// before the loop ends, so a clean stop never leaves a half-built block behind (and a crash
/// cannot: the commit is one atomic batch).
pub async fn run(
    ctx: Arc<NodeContext>,
    control: Arc<DevnetControl>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ProducerError> {
    loop {
        let mode = control.mode();
        let mut ticker = match mode {
            MiningMode::Interval(every) if !every.is_zero() => {
                // An interval too long for the clock means no block on its own.
                tokio::time::Instant::now().checked_add(every).map(|first| {
                    let mut ticker = tokio::time::interval_at(first, every);
                    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    ticker
                })
            }
            _ => None,
        };
        loop {
            tokio::select! {
                _ = async {
                    match ticker.as_mut() {
                        Some(ticker) => { ticker.tick().await; }
                        None => std::future::pending().await,
                    }
                } => {}
                _ = control.mode_changed.notified() => break,
                _ = shutdown.changed() => {
                    tracing::info!(target: "bttd::producer", "producer stopped");
                    return Ok(());
                }
            }
            if *shutdown.borrow() {
                tracing::info!(target: "bttd::producer", "producer stopped");
                return Ok(());
            }
            let (ctx2, control2) = (ctx.clone(), control.clone());
            let result = tokio::task::spawn_blocking(move || {
                control2.mine(
                    &ctx2,
                    MineRequest {
                        include_pool: true,
                        ..Default::default()
                    },
                )
            })
            .await;
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(DevnetError::Chain(e))) => {
                    tracing::error!(target: "bttd::producer", error = %e, "block production failed")
                }
                Ok(Err(e)) => {
                    tracing::warn!(target: "bttd::producer", error = %e, "block not produced")
                }
                Err(e) => {
                    return Err(ProducerError::Panicked {
                        number: ctx.chain.head().number.saturating_add(1),
                        message: crate::supervisor::panic_message(e),
                    });
                }
            }
        }
    }
}
