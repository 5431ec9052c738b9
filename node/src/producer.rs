//! The single block producer used until BFT consensus takes over: every `block_time` it builds
//! a block on the head from the pool's best transactions, commits it, and tells the pool and
//! subscribers. Execution runs on a blocking thread so RPC stays responsive.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::Address;
use tokio::sync::watch;

use bttd_txpool::context::NodeContext;

#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub block_time: Duration,
    /// Receives the priority fees (the block's `miner`).
    pub beneficiary: Address,
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
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
    config: ProducerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ProducerError> {
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + config.block_time,
        config.block_time,
    );
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
        let ctx2 = ctx.clone();
        let beneficiary = config.beneficiary;
        let result = tokio::task::spawn_blocking(move || produce_one(&ctx2, beneficiary)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(target: "bttd::producer", error = %e, "block production failed")
            }
            Err(e) => {
                return Err(ProducerError::Panicked {
                    number: ctx.chain.head().number.saturating_add(1),
                    message: crate::supervisor::panic_message(e),
                });
            }
        }
    }
    tracing::info!(target: "bttd::producer", "producer stopped");
    Ok(())
}

/// Builds, commits and announces one block.
pub fn produce_one(
    ctx: &NodeContext,
    beneficiary: Address,
) -> Result<(), bttd_runtime::ChainError> {
    let started = std::time::Instant::now();
    let block_ctx = ctx.chain.next_block_context(now_seconds(), beneficiary);
    let candidates = ctx.block_candidates(block_ctx.base_fee, block_ctx.gas_limit);
    let executed = ctx
        .chain
        .build(block_ctx.timestamp, beneficiary, candidates)?;
    let rejected = executed.rejected.clone();
    let receipts = executed.receipts.clone();
    let block = ctx.chain.commit(executed)?;
    let elapsed = started.elapsed();
    metrics::histogram!("bttd_block_build_seconds").record(elapsed.as_secs_f64());
    tracing::info!(
        target: "bttd::producer",
        number = block.number(),
        hash = %block.hash(),
        txs = block.body.transactions.len(),
        gas_used = block.header.gas_used,
        elapsed_ms = elapsed.as_millis() as u64,
        "produced block"
    );
    ctx.on_block_committed(block, receipts, &rejected);
    Ok(())
}
