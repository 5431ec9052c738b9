//! What the node's services share: the chain, the transaction pool, and the event streams
//! that feed subscriptions. The RPC server, the block producer and the consensus engine
//! all hold an `Arc<NodeContext>`; none of them owns another.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use alloy_consensus::ReceiptEnvelope;
use alloy_primitives::{Address, B256, U256};
use bttd_runtime::unwind::Unwound;
use bttd_runtime::{Chain, ChainError, RecoveredTx, SealedBlock, TxError};
use parking_lot::Mutex;
use tokio::sync::{Notify, broadcast};

use crate::{AccountView, AddOutcome, Pool, PoolError};

/// A committed block with its receipts, as subscribers receive it.
#[derive(Debug)]
pub struct NewBlock {
    pub block: SealedBlock,
    pub receipts: Vec<ReceiptEnvelope>,
    /// Blocks unwound just before this head (devnet evm_revert / anvil_reset), newest first.
    /// When not empty, `block` is the head they were unwound to (announced again) and its
    /// logs were already delivered: subscribers report the removed blocks' logs as removed.
    pub removed: Vec<Unwound>,
}

/// Why a submitted transaction was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Invalid(#[from] TxError),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// Committed blocks a subscriber (filters, `eth_subscribe`) may fall behind before it skips
/// some: 12.8 s at 200 ms blocks. The channel holds this many blocks with their receipts at all
/// times, up to ~1 MB each when full: it was 1,024, which is 1 GB of full blocks.
pub const BLOCKS_KEPT: usize = 64;

pub struct NodeContext {
    pub chain: Arc<Chain>,
    pub pool: Mutex<Pool>,
    /// Every committed block, in order. The channel keeps its last [`BLOCKS_KEPT`] blocks
    /// (with receipts) whether or not anyone still reads them.
    pub blocks: broadcast::Sender<Arc<NewBlock>>,
    /// The hash of every transaction that enters the pool, once.
    pub pending_txs: broadcast::Sender<B256>,
    /// Poked when a transaction arrives, for producers that build on demand.
    pub tx_arrived: Notify,
    /// The devnet's mining control and test state; set only by `bttd devnet` with a single
    /// producer, which is what turns on the anvil/hardhat test methods.
    pub devnet: OnceLock<Arc<crate::devnet::DevnetControl>>,
    /// Free-form client version (web3_clientVersion).
    pub client_version: String,
    /// When the head last changed (monotonic; the start of the node until a block commits),
    /// for `/health`.
    head_changed_at: Mutex<Instant>,
}

impl std::fmt::Debug for NodeContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeContext")
            .field("chain", &self.chain)
            .finish_non_exhaustive()
    }
}

/// The pool's view of the head state. A storage error reads as an empty account: the
/// transaction is then refused or re-checked at execution, never wrongly included.
pub struct HeadAccounts<'a>(pub &'a Chain);

impl AccountView for HeadAccounts<'_> {
    fn nonce(&self, address: Address) -> u64 {
        self.0.state().nonce(address).unwrap_or_else(|e| {
            tracing::error!(target: "bttd::pool", %address, error = %e, "state read failed");
            0
        })
    }
    fn balance(&self, address: Address) -> U256 {
        self.0.state().balance(address).unwrap_or_else(|e| {
            tracing::error!(target: "bttd::pool", %address, error = %e, "state read failed");
            U256::ZERO
        })
    }
}

impl NodeContext {
    pub fn new(chain: Arc<Chain>, pool: Pool) -> Self {
        Self {
            chain,
            pool: Mutex::new(pool),
            blocks: broadcast::channel(BLOCKS_KEPT).0,
            pending_txs: broadcast::channel(16 * 1024).0,
            tx_arrived: Notify::new(),
            devnet: OnceLock::new(),
            client_version: format!(
                "bttd/v{}/{}-{}",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS,
                std::env::consts::ARCH
            ),
            head_changed_at: Mutex::new(Instant::now()),
        }
    }

    /// Time since the head last changed (or since the node started).
    pub fn since_head_changed(&self) -> std::time::Duration {
        self.head_changed_at.lock().elapsed()
    }

    /// Decodes, checks and pools a raw EIP-2718 transaction (eth_sendRawTransaction).
    pub fn submit_raw(&self, raw: &[u8]) -> Result<B256, SubmitError> {
        let config = self.chain.config();
        let tx = RecoveredTx::decode(raw, config.chain_id, config.block_gas_limit)?;
        self.submit(tx)
    }

    /// Pools an already recovered transaction.
    pub fn submit(&self, tx: RecoveredTx) -> Result<B256, SubmitError> {
        let hash = tx.hash();
        let outcome = {
            let mut pool = self.pool.lock();
            pool.add(
                tx,
                &HeadAccounts(&self.chain),
                self.chain.config().min_base_fee,
            )?
        };
        tracing::debug!(target: "bttd::pool", %hash, ?outcome, "transaction pooled");
        metrics::counter!("bttd_pool_added_total").increment(1);
        let _ = self.pending_txs.send(hash);
        if matches!(
            outcome,
            AddOutcome::Pending | AddOutcome::Replaced { pending: true, .. }
        ) {
            self.tx_arrived.notify_one();
        }
        Ok(hash)
    }

    /// The pool's best transactions for a block with this base fee and gas limit, in
    /// executable order, up to twice the gas limit (some fail or use less than their limit;
    /// the builder stops when the block is full).
    pub fn block_candidates(&self, base_fee: u64, gas_limit: u64) -> Vec<RecoveredTx> {
        let pool = self.pool.lock();
        let mut gas = 0u64;
        pool.best(base_fee)
            .take_while(|tx| {
                gas += tx.gas_limit();
                gas <= gas_limit.saturating_mul(2)
            })
            .take(bttd_runtime::block::MAX_BLOCK_TRANSACTIONS)
            .collect()
    }

    /// Pool bookkeeping after a block: drops what was mined or became invalid, and tells
    /// subscribers about the block.
    pub fn on_block_committed(
        &self,
        block: SealedBlock,
        receipts: Vec<ReceiptEnvelope>,
        rejected: &[(B256, String)],
    ) {
        *self.head_changed_at.lock() = Instant::now();
        {
            let mut pool = self.pool.lock();
            if !rejected.is_empty() {
                let hashes: Vec<B256> = rejected.iter().map(|(h, _)| *h).collect();
                pool.remove_invalid(&hashes);
            }
            pool.on_new_state(&HeadAccounts(&self.chain));
            let min_base_fee = self.chain.config().min_base_fee;
            pool.set_base_fee(bttd_runtime::block::next_base_fee(
                &block.header,
                min_base_fee,
            ));
            let expired = pool.evict_stale(Instant::now());
            if expired > 0 {
                tracing::debug!(target: "bttd::pool", expired, "dropped queued transactions past their lifetime");
            }
            let status = pool.status();
            metrics::gauge!("bttd_pool_pending").set(status.pending as f64);
            metrics::gauge!("bttd_pool_queued").set(status.queued as f64);
        }
        for (hash, reason) in rejected {
            tracing::debug!(target: "bttd::pool", %hash, %reason, "dropped transaction invalid at execution");
        }
        let _ = self.blocks.send(Arc::new(NewBlock {
            block,
            receipts,
            removed: Vec::new(),
        }));
    }

    /// Pool bookkeeping after blocks were unwound (devnet): transactions whose nonce is no
    /// longer next wait again, and subscribers see the head announced again with the removed
    /// blocks (a reorg).
    pub fn on_blocks_unwound(&self, removed: Vec<Unwound>) -> Result<(), ChainError> {
        *self.head_changed_at.lock() = Instant::now();
        self.pool.lock().on_new_state(&HeadAccounts(&self.chain));
        let head = self.chain.head();
        let block = self.chain.block(head.hash())?.ok_or(ChainError::Corrupt {
            what: "head block",
            reason: format!("block {} missing", head.number),
        })?;
        let receipts = self.chain.receipts(head.hash())?.unwrap_or_default();
        let _ = self.blocks.send(Arc::new(NewBlock {
            block,
            receipts,
            removed,
        }));
        Ok(())
    }
}
