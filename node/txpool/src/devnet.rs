//! Mining control of the single producer, and the devnet's test state (issue 15): the mining
//! mode (automine, interval, none), the clock offset and pinned next timestamp, the next base
//! fee, impersonated accounts and snapshots.
//!
//! Why here: the producer (bttd-node) and the RPC methods that test suites call (bttd-rpc:
//! evm_mine, anvil_setBalance, evm_revert, ...) must build blocks one at a time on the same
//! head with the same rules, and both already share the [`NodeContext`]. [`DevnetControl`] is
//! that one place: every devnet block goes through [`DevnetControl::mine`] under one lock, so an
//! RPC-mined block and an interval block never race for the same height. `bttd node` uses it
//! too (interval mining only); the test methods are served only when `NodeContext::devnet` is
//! set, which only `bttd devnet` (a single producer) does.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, B256, Bytes};
use bttd_runtime::cheats::{AccountOverride, DevBlock};
use bttd_runtime::{ChainError, SealedBlock};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::Pool;
use crate::context::NodeContext;

/// When the producer makes blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MiningMode {
    /// A block as soon as a transaction arrives (the RPC call answers after it is committed).
    Auto,
    /// A block every interval, with or without transactions.
    Interval(Duration),
    /// Only when asked (evm_mine, anvil_mine, a cheat).
    Never,
}

/// Why a devnet request failed. [`DevnetError::Chain`] is a fault of ours (storage); the others
/// are the caller's.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("timestamp {got} is lower than the previous block's timestamp {parent}")]
    TimestampBeforeParent { got: u64, parent: u64 },
    #[error("{0}")]
    Invalid(String),
}

/// One block to mine.
#[derive(Debug, Clone, Default)]
pub struct MineRequest {
    /// The block's timestamp (else the pinned next timestamp, else the clock plus the offset).
    pub timestamp: Option<u64>,
    /// Take the pool's best transactions.
    pub include_pool: bool,
    /// State overrides carried by the block (a cheat).
    pub overrides: Vec<AccountOverride>,
    /// The header's `extraData`: the name of the cheat, if any.
    pub label: &'static str,
}

/// A committed devnet block and the transactions the builder left out.
#[derive(Debug)]
pub struct Mined {
    pub block: SealedBlock,
    pub rejected: Vec<(B256, String)>,
}

#[derive(Debug)]
struct DevState {
    mode: MiningMode,
    /// Added to the clock for block timestamps (evm_increaseTime, evm_setNextBlockTimestamp).
    offset: i128,
    next_timestamp: Option<u64>,
    next_base_fee: Option<u64>,
    impersonated: HashSet<Address>,
    /// Snapshot id -> head number when it was taken.
    snapshots: BTreeMap<u64, u64>,
    next_snapshot: u64,
}

/// See the module docs.
#[derive(Debug)]
pub struct DevnetControl {
    beneficiary: Address,
    state: Mutex<DevState>,
    /// Held while a block is built and committed, or while blocks are unwound.
    mining: Mutex<()>,
    /// Poked when the mining mode changes, so the producer re-reads it.
    pub mode_changed: Notify,
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Most blocks one anvil_mine may ask for (each is a committed block).
pub const MAX_MINE_COUNT: u64 = 10_000;

impl DevnetControl {
    pub fn new(mode: MiningMode, beneficiary: Address) -> Self {
        Self {
            beneficiary,
            state: Mutex::new(DevState {
                mode,
                offset: 0,
                next_timestamp: None,
                next_base_fee: None,
                impersonated: HashSet::new(),
                snapshots: BTreeMap::new(),
                next_snapshot: 1,
            }),
            mining: Mutex::new(()),
            mode_changed: Notify::new(),
        }
    }

    pub fn beneficiary(&self) -> Address {
        self.beneficiary
    }

    pub fn mode(&self) -> MiningMode {
        self.state.lock().mode
    }

    pub fn set_mode(&self, mode: MiningMode) {
        self.state.lock().mode = mode;
        self.mode_changed.notify_one();
    }

    /// Adds `seconds` to the clock offset; returns the new offset.
    pub fn increase_time(&self, seconds: u64) -> Result<i128, DevnetError> {
        let mut state = self.state.lock();
        let offset = state
            .offset
            .checked_add(i128::from(seconds))
            .filter(|o| *o <= i128::from(u64::MAX))
            .ok_or_else(|| DevnetError::Invalid("time offset overflows".into()))?;
        state.offset = offset;
        Ok(offset)
    }

    /// Pins the next block's timestamp (at least the head's).
    pub fn set_next_timestamp(&self, ctx: &NodeContext, timestamp: u64) -> Result<(), DevnetError> {
        let parent = ctx.chain.head().timestamp;
        if timestamp < parent {
            return Err(DevnetError::TimestampBeforeParent {
                got: timestamp,
                parent,
            });
        }
        self.state.lock().next_timestamp = Some(timestamp);
        Ok(())
    }

    pub fn set_next_base_fee(&self, base_fee: u64) {
        self.state.lock().next_base_fee = Some(base_fee);
    }

    pub fn impersonate(&self, address: Address, on: bool) {
        let mut state = self.state.lock();
        if on {
            state.impersonated.insert(address);
        } else {
            state.impersonated.remove(&address);
        }
    }

    pub fn is_impersonated(&self, address: Address) -> bool {
        self.state.lock().impersonated.contains(&address)
    }

    /// Builds, commits and announces one block on the head.
    pub fn mine(&self, ctx: &NodeContext, request: MineRequest) -> Result<Mined, DevnetError> {
        let _mining = self.mining.lock();
        self.mine_locked(ctx, request)
    }

    /// Automine: a block with the pool's transactions if `hash` is still pooled (a concurrent
    /// submission may have mined it already); None if it was not.
    pub fn mine_if_pooled(
        &self,
        ctx: &NodeContext,
        hash: B256,
    ) -> Result<Option<Mined>, DevnetError> {
        let _mining = self.mining.lock();
        if !ctx.pool.lock().contains(&hash) {
            return Ok(None);
        }
        self.mine_locked(
            ctx,
            MineRequest {
                include_pool: true,
                ..Default::default()
            },
        )
        .map(Some)
    }

    /// `count` blocks, `interval` seconds apart when given (anvil_mine).
    pub fn mine_many(
        &self,
        ctx: &NodeContext,
        count: u64,
        interval: Option<u64>,
    ) -> Result<(), DevnetError> {
        if count > MAX_MINE_COUNT {
            return Err(DevnetError::Invalid(format!(
                "at most {MAX_MINE_COUNT} blocks per call"
            )));
        }
        let _mining = self.mining.lock();
        for i in 0..count {
            let timestamp = match interval {
                Some(step) if i > 0 => Some(
                    ctx.chain
                        .head()
                        .timestamp
                        .checked_add(step)
                        .ok_or_else(|| DevnetError::Invalid("timestamp overflows".into()))?,
                ),
                _ => None,
            };
            self.mine_locked(
                ctx,
                MineRequest {
                    timestamp,
                    include_pool: true,
                    ..Default::default()
                },
            )?;
        }
        Ok(())
    }

    fn mine_locked(&self, ctx: &NodeContext, request: MineRequest) -> Result<Mined, DevnetError> {
        let started = std::time::Instant::now();
        let parent = ctx.chain.head();
        let (timestamp, base_fee) = {
            let mut state = self.state.lock();
            let explicit = request.timestamp.or(state.next_timestamp);
            let timestamp = match explicit {
                Some(t) => {
                    if t < parent.timestamp {
                        return Err(DevnetError::TimestampBeforeParent {
                            got: t,
                            parent: parent.timestamp,
                        });
                    }
                    // Later blocks go on from here, as anvil does.
                    state.offset = i128::from(t) - i128::from(now_seconds());
                    state.next_timestamp = None;
                    t
                }
                None => {
                    let t = i128::from(now_seconds()) + state.offset;
                    u64::try_from(t.max(0)).unwrap_or(u64::MAX)
                }
            };
            (timestamp, state.next_base_fee.take())
        };
        let context = ctx.chain.next_block_context(timestamp, self.beneficiary);
        let base = base_fee.unwrap_or(context.base_fee);
        let transactions = if request.include_pool {
            ctx.block_candidates(base, context.gas_limit)
        } else {
            Vec::new()
        };
        let executed = ctx.chain.build_devnet(DevBlock {
            timestamp,
            beneficiary: self.beneficiary,
            base_fee,
            transactions,
            overrides: request.overrides,
            extra_data: Bytes::from_static(request.label.as_bytes()),
        })?;
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
            cheat = request.label,
            elapsed_ms = elapsed.as_millis() as u64,
            "produced block"
        );
        ctx.on_block_committed(block.clone(), receipts, &rejected);
        Ok(Mined { block, rejected })
    }

    /// Records the head; returns the snapshot id.
    pub fn snapshot(&self, ctx: &NodeContext) -> u64 {
        let _mining = self.mining.lock();
        let mut state = self.state.lock();
        let id = state.next_snapshot;
        state.next_snapshot += 1;
        state.snapshots.insert(id, ctx.chain.head().number);
        id
    }

    /// Unwinds to snapshot `id`, consuming it and every later one; false if there is no such
    /// snapshot.
    pub fn revert(&self, ctx: &NodeContext, id: u64) -> Result<bool, DevnetError> {
        let _mining = self.mining.lock();
        let number = {
            let mut state = self.state.lock();
            let Some(&number) = state.snapshots.get(&id) else {
                return Ok(false);
            };
            let _later = state.snapshots.split_off(&id);
            number
        };
        self.unwind_locked(ctx, number)?;
        Ok(true)
    }

    /// Back to genesis: every block removed, snapshots, time, impersonation and the pool
    /// cleared; the mining mode stays.
    pub fn reset(&self, ctx: &NodeContext) -> Result<(), DevnetError> {
        let _mining = self.mining.lock();
        {
            let mut state = self.state.lock();
            state.snapshots.clear();
            state.offset = 0;
            state.next_timestamp = None;
            state.next_base_fee = None;
            state.impersonated.clear();
        }
        {
            let mut pool = ctx.pool.lock();
            let config = pool.config().clone();
            *pool = Pool::new(config);
        }
        self.unwind_locked(ctx, 0)
    }

    fn unwind_locked(&self, ctx: &NodeContext, number: u64) -> Result<(), DevnetError> {
        let removed = ctx.chain.unwind_to(number)?;
        ctx.on_blocks_unwound(removed)?;
        Ok(())
    }
}
