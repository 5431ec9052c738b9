//! Polling filters (eth_newFilter, eth_newBlockFilter, eth_newPendingTransactionFilter,
//! eth_getFilterChanges, eth_getFilterLogs, eth_uninstallFilter), for clients that poll over
//! HTTP instead of subscribing over WebSocket (viem's `createEventFilter`/`watchContractEvent`
//! with an HTTP transport, ethers' `on` with a JsonRpcProvider, web3.py's `create_filter`).
//!
//! Why it looks like this:
//! - **One feeder.** A single background task (spawned by `start`) reads the node's block and
//!   pending-transaction broadcasts and appends to every installed filter's buffer, so each
//!   event is delivered exactly once per filter however often (or rarely) it is polled, and the
//!   chain is never re-read for changes.
//! - **Bounded.** A buffer holds at most [`MAX_BUFFERED`] items; on overflow the oldest are
//!   dropped (logged), so an abandoned filter cannot grow without limit.
//! - **Expiry as geth.** A filter not polled for [`FILTER_TIMEOUT`] (geth's 5 minutes) is
//!   removed by the same task; polling it afterwards is -32000 "filter not found" (geth's
//!   message). Ids are `0x` + hex, as geth's.
//! - **Log filters** honour address, topics and a numeric `fromBlock`/`toBlock` for new blocks
//!   (as geth does); `eth_getFilterLogs` runs the stored filter through eth_getLogs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use alloy_primitives::{B256, U256};
use alloy_rpc_types_eth::{Filter, FilterChanges, Log};
use jsonrpsee::core::traits::IdProvider;
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::types::SubscriptionId;
use parking_lot::Mutex;
use tokio::sync::broadcast::error::RecvError;

use super::error::{RpcResult, internal, server_error};
use super::pubsub::{matching_logs, removed_logs};
use super::{HexIdProvider, Rpc};
use bttd_txpool::context::{NewBlock, NodeContext};

/// geth's filter deadline.
pub(crate) const FILTER_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Most items one filter buffers between polls.
pub(crate) const MAX_BUFFERED: usize = 10_000;
/// How often expired filters are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug)]
enum Kind {
    Logs(Box<Filter>),
    Blocks,
    PendingTxs,
}

#[derive(Debug)]
enum Buffer {
    Logs(VecDeque<Log>),
    Hashes(VecDeque<B256>),
}

#[derive(Debug)]
struct Installed {
    kind: Kind,
    buffer: Buffer,
    last_poll: Instant,
}

/// Appends `items`, keeping the newest [`MAX_BUFFERED`].
fn push_bounded<T>(buffer: &mut VecDeque<T>, items: impl IntoIterator<Item = T>, id: U256) {
    let mut dropped = 0usize;
    for item in items {
        if buffer.len() >= MAX_BUFFERED {
            buffer.pop_front();
            dropped += 1;
        }
        buffer.push_back(item);
    }
    if dropped > 0 {
        tracing::warn!(target: "bttd::rpc", filter = %format!("{id:#x}"), dropped, "filter buffer full: oldest changes dropped (poll more often)");
    }
}

/// Installed filters by id.
#[derive(Debug)]
pub(crate) struct Filters {
    installed: Mutex<HashMap<U256, Installed>>,
    ids: HexIdProvider,
    /// Most filters installed at once (`max-filters`): each holds a buffer of changes.
    max: usize,
}

impl Filters {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            installed: Mutex::new(HashMap::new()),
            ids: HexIdProvider::new(),
            max,
        }
    }

    fn install(&self, kind: Kind) -> RpcResult<U256> {
        if self.installed.lock().len() >= self.max {
            return Err(server_error(format!(
                "too many filters: {} installed, the limit (max-filters); uninstall some or let them expire (5 minutes without a poll)",
                self.max
            )));
        }
        let id = match self.ids.next_id() {
            SubscriptionId::Str(s) => {
                U256::from_str_radix(s.trim_start_matches("0x"), 16).map_err(internal)?
            }
            SubscriptionId::Num(n) => U256::from(n),
        };
        let buffer = match kind {
            Kind::Logs(_) => Buffer::Logs(VecDeque::new()),
            Kind::Blocks | Kind::PendingTxs => Buffer::Hashes(VecDeque::new()),
        };
        self.installed.lock().insert(
            id,
            Installed {
                kind,
                buffer,
                last_poll: Instant::now(),
            },
        );
        Ok(id)
    }

    fn on_block(&self, block: &NewBlock) {
        let number = block.block.header.number;
        if !block.removed.is_empty() {
            self.on_revert(block);
            return;
        }
        for (&id, filter) in self.installed.lock().iter_mut() {
            match (&filter.kind, &mut filter.buffer) {
                (Kind::Blocks, Buffer::Hashes(buffer)) => {
                    push_bounded(buffer, [block.block.hash()], id)
                }
                (Kind::Logs(f), Buffer::Logs(buffer)) => {
                    let in_range = f.get_from_block().is_none_or(|from| number >= from)
                        && f.get_to_block().is_none_or(|to| number <= to);
                    if in_range {
                        push_bounded(buffer, matching_logs(block, f), id);
                    }
                }
                _ => {}
            }
        }
    }

    /// A devnet revert to `block`: buffered logs of the removed blocks are dropped (never
    /// returned as live), and their logs are reported `removed: true` for clients that saw
    /// them already.
    fn on_revert(&self, block: &NewBlock) {
        let head = block.block.header.number;
        for (&id, filter) in self.installed.lock().iter_mut() {
            if let (Kind::Logs(f), Buffer::Logs(buffer)) = (&filter.kind, &mut filter.buffer) {
                buffer.retain(|log| log.block_number.is_none_or(|n| n <= head));
                push_bounded(buffer, removed_logs(block, f), id);
            }
        }
    }

    fn on_pending_tx(&self, hash: B256) {
        for (&id, filter) in self.installed.lock().iter_mut() {
            if let (Kind::PendingTxs, Buffer::Hashes(buffer)) = (&filter.kind, &mut filter.buffer) {
                push_bounded(buffer, [hash], id);
            }
        }
    }

    fn sweep(&self, now: Instant) {
        self.installed.lock().retain(|id, filter| {
            let keep = now.duration_since(filter.last_poll) < FILTER_TIMEOUT;
            if !keep {
                tracing::debug!(target: "bttd::rpc", filter = %format!("{id:#x}"), "filter expired");
            }
            keep
        });
    }

    /// What arrived since the last poll, emptying the buffer.
    fn changes(&self, id: U256) -> RpcResult<FilterChanges> {
        let mut installed = self.installed.lock();
        let filter = installed.get_mut(&id).ok_or_else(not_found)?;
        filter.last_poll = Instant::now();
        Ok(match &mut filter.buffer {
            Buffer::Logs(buffer) => FilterChanges::Logs(buffer.drain(..).collect()),
            Buffer::Hashes(buffer) => FilterChanges::Hashes(buffer.drain(..).collect()),
        })
    }

    /// The criteria of a log filter (touching it, as a poll does).
    fn log_filter(&self, id: U256) -> RpcResult<Filter> {
        let mut installed = self.installed.lock();
        let filter = installed.get_mut(&id).ok_or_else(not_found)?;
        filter.last_poll = Instant::now();
        match &filter.kind {
            Kind::Logs(f) => Ok((**f).clone()),
            Kind::Blocks | Kind::PendingTxs => Err(not_found()),
        }
    }

    fn uninstall(&self, id: U256) -> bool {
        self.installed.lock().remove(&id).is_some()
    }
}

fn not_found() -> jsonrpsee::types::ErrorObjectOwned {
    server_error("filter not found")
}

/// The filter methods: the shared [`Rpc`] handle plus the registry.
#[derive(Debug, Clone)]
pub(crate) struct FilterApi {
    rpc: Rpc,
    filters: Arc<Filters>,
}

impl FilterApi {
    /// A registry with its feeder task running (needs a Tokio runtime).
    pub(crate) fn start(rpc: Rpc) -> Self {
        let filters = Arc::new(Filters::new(rpc.config.max_filters));
        spawn_feeder(Arc::downgrade(&filters), &rpc.ctx);
        Self { rpc, filters }
    }
}

/// Feeds every filter from the node's broadcasts and sweeps expired ones, until the server's
/// methods are dropped (the registry goes with them) or the node's channels close. Holds no
/// `NodeContext` and only a weak registry, so it keeps neither alive.
fn spawn_feeder(filters: Weak<Filters>, ctx: &NodeContext) {
    let mut blocks = ctx.blocks.subscribe();
    let mut pending = ctx.pending_txs.subscribe();
    tokio::spawn(async move {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                _ = sweep.tick() => {
                    let Some(filters) = filters.upgrade() else { return };
                    filters.sweep(Instant::now());
                }
                block = blocks.recv() => match block {
                    Ok(block) => {
                        let Some(filters) = filters.upgrade() else { return };
                        filters.on_block(&block);
                    }
                    Err(RecvError::Lagged(missed)) => tracing::warn!(target: "bttd::rpc", missed, "filters missed blocks"),
                    Err(RecvError::Closed) => return,
                },
                hash = pending.recv() => match hash {
                    Ok(hash) => {
                        let Some(filters) = filters.upgrade() else { return };
                        filters.on_pending_tx(hash);
                    }
                    Err(RecvError::Lagged(missed)) => tracing::warn!(target: "bttd::rpc", missed, "filters missed pending transactions"),
                    Err(RecvError::Closed) => return,
                },
            }
        }
    });
}

#[rpc(server, namespace = "eth")]
pub(crate) trait EthFiltersApi {
    #[method(name = "newFilter")]
    fn new_filter(&self, filter: Filter) -> RpcResult<U256>;

    #[method(name = "newBlockFilter")]
    fn new_block_filter(&self) -> RpcResult<U256>;

    /// Hashes only (geth's default).
    #[method(name = "newPendingTransactionFilter")]
    fn new_pending_transaction_filter(&self) -> RpcResult<U256>;

    #[method(name = "getFilterChanges")]
    fn filter_changes(&self, id: U256) -> RpcResult<FilterChanges>;

    #[method(name = "getFilterLogs")]
    async fn filter_logs(&self, id: U256) -> RpcResult<Vec<Log>>;

    #[method(name = "uninstallFilter")]
    fn uninstall_filter(&self, id: U256) -> RpcResult<bool>;
}

#[jsonrpsee::core::async_trait]
impl EthFiltersApiServer for FilterApi {
    fn new_filter(&self, filter: Filter) -> RpcResult<U256> {
        if let (Some(from), Some(to)) = (filter.get_from_block(), filter.get_to_block())
            && from > to
        {
            return Err(server_error("invalid from and to block combination"));
        }
        self.filters.install(Kind::Logs(Box::new(filter)))
    }

    fn new_block_filter(&self) -> RpcResult<U256> {
        self.filters.install(Kind::Blocks)
    }

    fn new_pending_transaction_filter(&self) -> RpcResult<U256> {
        self.filters.install(Kind::PendingTxs)
    }

    fn filter_changes(&self, id: U256) -> RpcResult<FilterChanges> {
        Ok(match self.filters.changes(id)? {
            // A devnet revert the feeder has not applied yet: logs above the head are not live.
            FilterChanges::Logs(mut logs) => {
                let head = self.rpc.ctx.chain.head().number;
                logs.retain(|log| log.removed || log.block_number.is_none_or(|n| n <= head));
                FilterChanges::Logs(logs)
            }
            other => other,
        })
    }

    async fn filter_logs(&self, id: U256) -> RpcResult<Vec<Log>> {
        let filter = self.filters.log_filter(id)?;
        self.rpc.heavy(move |rpc| rpc.eth_get_logs(&filter)).await
    }

    fn uninstall_filter(&self, id: U256) -> RpcResult<bool> {
        Ok(self.filters.uninstall(id))
    }
}
