//! Ethereum JSON-RPC over HTTP and WebSocket (one port, as geth), so cast, viem, ethers and
//! web3.py work against a bttd node unchanged.
//!
//! Why it looks like this:
//! - **Standard objects.** Blocks, transactions, receipts, logs, filters and fee histories are
//!   `alloy_rpc_types_eth` types, so field names and encodings are exactly Ethereum's; this
//!   module only fills them from the chain.
//! - **One file per concern.** `web3`, `net`, `state` (account reads), `blocks`, `transactions`,
//!   `fees`, `call` (eth_call / eth_estimateGas over [`evm`]), `logs`, `pubsub`, `debug`
//!   (debug_traceTransaction / debug_traceCall with revm-inspectors). Each declares a
//!   small jsonrpsee `#[rpc(server)]` trait implemented on the shared [`Rpc`] handle; `start`
//!   merges them into one module.
//! - **State at every height.** Every state method accepts a block parameter; the runtime's
//!   history columns answer for any block up to the head (docs/storage.md). Blocks,
//!   transactions, receipts and logs are served for every block.
//! - **Finality.** Blocks are final when committed, so `safe` and `finalized` are `latest`;
//!   `pending` is `latest` for blocks and state, except for `eth_getTransactionCount`, where it
//!   counts the sender's executable pool transactions (what wallets need for the next nonce).
//! - **geth's errors.** Submission errors keep the runtime's and pool's geth wording under
//!   -32000; reverts are code 3 "execution reverted[: reason]" with the revert data; storage
//!   failures are -32603. Nothing a client sends can panic the server.
//! - **Fee suggestion.** `eth_maxPriorityFeePerGas` is the 60th percentile of the cheapest
//!   three tips of each of the last 20 blocks (geth's oracle), floored at 1 gwei so it is never
//!   0 on an idle chain and capped at 500 gwei; `eth_gasPrice` is that plus the next base fee.
//!
//! Limits (body size, batch length, connections, log ranges, gas) come from [`RpcConfig`].

mod anvil;
mod blocks;
pub mod bounded;
mod call;
mod channel;
mod consensus;
mod convert;
mod cors;
mod debug;
mod dev;
mod error;
mod evm;
mod fees;
mod filters;
mod heavy;
mod logs;
mod metrics;
mod net;
mod proof;
mod pubsub;
mod resolve;
mod staking;
mod state;
mod transactions;
mod txpool;
mod web3;

#[cfg(test)]
mod tests;

/// The context of an in-memory devnet chain (genesis of `bttd devnet`), for this crate's tests.
#[cfg(test)]
fn test_context() -> Arc<NodeContext> {
    use bttd_genesis::{DevnetOptions, devnet_genesis};
    use bttd_runtime::{Chain, storage::MemoryStore};
    use bttd_txpool::{Pool, PoolConfig};
    let (spec, _) = devnet_genesis(&DevnetOptions::default()).expect("devnet genesis");
    let chain = Chain::open(
        Arc::new(MemoryStore::new()),
        spec.chain_config(),
        &spec.genesis,
    )
    .expect("open chain");
    Arc::new(NodeContext::new(
        Arc::new(chain),
        Pool::new(PoolConfig::default()),
    ))
}

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use alloy_primitives::{B256, keccak256};
use jsonrpsee::RpcModule;
use jsonrpsee::core::traits::IdProvider;
use jsonrpsee::server::middleware::rpc::RpcServiceBuilder;
use jsonrpsee::server::{BatchRequestConfig, ServerConfig, ServerHandle};
use jsonrpsee::types::SubscriptionId;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use bttd_engine::ConsensusInfo;
use bttd_txpool::context::NodeContext;

/// A namespace of methods, as `api` in `[rpc]` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    Eth,
    Net,
    Web3,
    Bor,
    Bttd,
    Channel,
    Txpool,
    /// `debug_trace*`: replays cost CPU; off unless listed.
    Debug,
    /// Signing for the node's dev accounts (`eth_accounts`, `eth_sendTransaction`, `eth_sign*`,
    /// `personal_*`); off unless listed (and `--dev-accounts` gives it keys).
    Dev,
    /// The anvil/hardhat test methods (`anvil_*`, `hardhat_*`, `evm_*`); served only on a
    /// single-producer `bttd devnet`, which lists it.
    Anvil,
}

impl Api {
    /// What `bttd node` serves unless `api` says otherwise.
    pub const DEFAULT: [Api; 7] = [
        Api::Eth,
        Api::Net,
        Api::Web3,
        Api::Bor,
        Api::Bttd,
        Api::Channel,
        Api::Txpool,
    ];
    /// Everything (`bttd devnet`).
    pub const ALL: [Api; 10] = [
        Api::Eth,
        Api::Net,
        Api::Web3,
        Api::Bor,
        Api::Bttd,
        Api::Channel,
        Api::Txpool,
        Api::Debug,
        Api::Dev,
        Api::Anvil,
    ];
}

/// Server limits and policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RpcConfig {
    /// Listen address for HTTP and WebSocket.
    pub addr: SocketAddr,
    /// Largest request body (geth: 5 MiB).
    pub max_body_bytes: u32,
    /// Largest response body.
    pub max_response_bytes: u32,
    /// Most calls in one batch; longer batches are refused with a JSON-RPC error (geth's
    /// `--rpc.batch-request-limit`, 1,000).
    pub batch_request_limit: u32,
    /// Most simultaneous connections.
    pub max_connections: u32,
    /// Most subscriptions on one WebSocket connection.
    pub max_subscriptions_per_connection: u32,
    /// Most blocks one eth_getLogs may scan.
    pub max_log_range: u64,
    /// Most logs one eth_getLogs may return.
    pub max_logs: usize,
    /// Gas limit of eth_call and eth_estimateGas when the request gives none (and their cap).
    pub gas_cap: u64,
    /// How long one eth_call or eth_estimateGas may run (geth's `--rpc.evmtimeout`).
    pub evm_timeout: std::time::Duration,
    /// Most polling filters installed at once (eth_newFilter and friends).
    pub max_filters: usize,
    /// Threads running heavy requests (eth_call, eth_estimateGas, eth_getLogs, traces,
    /// channel lists), apart from everything else; see [`heavy`].
    pub max_concurrent_heavy: usize,
    /// The namespaces served (`api` in `[rpc]`).
    pub api: BTreeSet<Api>,
    /// Private keys of the accounts the node signs for (eth_accounts, eth_sendTransaction,
    /// eth_sign*; see `dev`). Empty unless the devnet or `--dev-accounts` sets it; never read
    /// from or written to a config file.
    #[serde(skip)]
    pub dev_accounts: Vec<B256>,
}

/// The default `max-concurrent-heavy`: the machine's cores (one heavy request per core keeps
/// them busy without queueing work behind the node's own).
pub fn default_concurrent_heavy() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

impl Default for RpcConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8545)),
            max_body_bytes: 5 * 1024 * 1024,
            max_response_bytes: 25 * 1024 * 1024,
            batch_request_limit: 1000,
            max_connections: 100,
            max_subscriptions_per_connection: 1024,
            max_log_range: 10_000,
            max_logs: 10_000,
            gas_cap: 50_000_000,
            evm_timeout: bounded::DEFAULT_TIMEOUT,
            max_filters: 1024,
            max_concurrent_heavy: default_concurrent_heavy(),
            api: Api::DEFAULT.into_iter().collect(),
            dev_accounts: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("cannot listen for JSON-RPC on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("registering JSON-RPC methods: {0}")]
    Register(#[from] jsonrpsee::core::RegisterMethodError),
    #[error("starting the heavy-request threads: {0}")]
    HeavyPool(std::io::Error),
}

/// A running server (cheap to clone). Dropping it does not stop the server; call
/// [`RpcHandle::stop`].
#[derive(Debug, Clone)]
pub struct RpcHandle {
    local_addr: SocketAddr,
    handle: ServerHandle,
}

impl RpcHandle {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
    pub fn http_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.local_addr)
    }
    /// Asks the server to stop without waiting; idempotent.
    pub fn request_stop(&self) {
        let _ = self.handle.stop();
    }
    /// Stops the server and waits until it has stopped.
    pub async fn stop(self) {
        self.request_stop();
        self.stopped().await;
    }
    /// Resolves when the server has stopped.
    pub async fn stopped(self) {
        self.handle.stopped().await
    }
}

/// What every method handler holds: the node, the limits, and small caches.
#[derive(Debug, Clone)]
pub(crate) struct Rpc {
    pub ctx: Arc<NodeContext>,
    pub config: Arc<RpcConfig>,
    /// Suggested tip, keyed by the head it was computed at.
    pub tip_cache: Arc<Mutex<Option<(B256, u128)>>>,
    /// Signers of `config.dev_accounts`.
    pub dev_signers: Arc<[alloy_signer_local::PrivateKeySigner]>,
    /// Consensus state, on nodes that run consensus.
    pub consensus: Option<Arc<ConsensusInfo>>,
    /// Where heavy requests run.
    pub heavy: Arc<heavy::HeavyPool>,
}

impl Rpc {
    fn new(
        ctx: Arc<NodeContext>,
        config: RpcConfig,
        consensus: Option<Arc<ConsensusInfo>>,
    ) -> Result<Self, RpcError> {
        let heavy =
            heavy::HeavyPool::start(config.max_concurrent_heavy).map_err(RpcError::HeavyPool)?;
        let dev_signers = config
            .dev_accounts
            .iter()
            .filter_map(|key| alloy_signer_local::PrivateKeySigner::from_bytes(key).ok())
            .collect();
        Ok(Self {
            ctx,
            config: Arc::new(config),
            tip_cache: Arc::new(Mutex::new(None)),
            dev_signers,
            consensus,
            heavy: Arc::new(heavy),
        })
    }

    /// Runs a heavy request on the heavy-request pool (see [`heavy`]).
    pub(crate) async fn heavy<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Rpc) -> error::RpcResult<T> + Send + 'static,
    ) -> error::RpcResult<T> {
        let rpc = self.clone();
        self.heavy.run(move || job(&rpc)).await
    }
}

/// Every method, in one module.
fn build_module(rpc: Rpc) -> Result<RpcModule<()>, RpcError> {
    use blocks::EthBlocksApiServer;
    use call::EthCallApiServer;
    use dev::{EthDevApiServer, PersonalApiServer};
    use fees::EthFeesApiServer;
    use logs::EthLogsApiServer;
    use net::NetApiServer;
    use proof::EthProofApiServer;
    use pubsub::EthPubSubApiServer;
    use state::EthStateApiServer;
    use transactions::EthTransactionsApiServer;
    use web3::Web3ApiServer;

    let api = rpc.config.api.clone();
    let on = |a: Api| api.contains(&a);
    let mut module = RpcModule::new(());
    if on(Api::Web3) {
        module.merge(Web3ApiServer::into_rpc(rpc.clone()))?;
    }
    if on(Api::Net) {
        module.merge(NetApiServer::into_rpc(rpc.clone()))?;
    }
    if on(Api::Eth) {
        module.merge(EthStateApiServer::into_rpc(rpc.clone()))?;
        module.merge(EthProofApiServer::into_rpc(rpc.clone()))?;
        module.merge(EthBlocksApiServer::into_rpc(rpc.clone()))?;
        module.merge(EthTransactionsApiServer::into_rpc(rpc.clone()))?;
        module.merge(EthFeesApiServer::into_rpc(rpc.clone()))?;
        module.merge(EthCallApiServer::into_rpc(rpc.clone()))?;
        module.merge(EthLogsApiServer::into_rpc(rpc.clone()))?;
        module.merge(filters::EthFiltersApiServer::into_rpc(
            filters::FilterApi::start(rpc.clone()),
        ))?;
        module.merge(EthPubSubApiServer::into_rpc(rpc.clone()))?;
    }
    if on(Api::Dev) {
        module.merge(EthDevApiServer::into_rpc(rpc.clone()))?;
        module.merge(PersonalApiServer::into_rpc(rpc.clone()))?;
    } else if on(Api::Eth) {
        // Wallets ask every node for its accounts: one that signs for none answers [], as geth.
        module.register_method("eth_accounts", |_, _, _| serde_json::json!([]))?;
    }
    if on(Api::Txpool) {
        module.merge(txpool::TxpoolApiServer::into_rpc(rpc.clone()))?;
    }
    if on(Api::Debug) {
        module.merge(debug::DebugApiServer::into_rpc(rpc.clone()))?;
    }
    if on(Api::Channel) {
        module.merge(channel::ChannelApiServer::into_rpc(rpc.clone()))?;
    }
    if on(Api::Bttd) {
        module.merge(consensus::BttdConsensusApiServer::into_rpc(rpc.clone()))?;
        module.merge(staking::StakingApiServer::into_rpc(rpc.clone()))?;
    }
    if on(Api::Bor) {
        module.merge(consensus::BorApiServer::into_rpc(rpc.clone()))?;
    }
    // The anvil/hardhat test methods: served on a single-producer devnet that lists them
    // (`bttd devnet` does), refused with -32000 and a message saying so everywhere else.
    if on(Api::Anvil) && rpc.ctx.devnet.get().is_some() {
        module.merge(anvil::AnvilApiServer::into_rpc(rpc))?;
    } else {
        module.merge(anvil::refusing_module()?)?;
    }
    Ok(module)
}

/// Starts the JSON-RPC server (HTTP and WebSocket on `config.addr`).
/// Serves JSON-RPC over `ctx`; `consensus` on nodes that run consensus.
pub async fn start(
    ctx: Arc<NodeContext>,
    config: RpcConfig,
    consensus: Option<Arc<ConsensusInfo>>,
) -> Result<RpcHandle, RpcError> {
    let addr = config.addr;
    let server_config = ServerConfig::builder()
        .max_request_body_size(config.max_body_bytes)
        .max_response_body_size(config.max_response_bytes)
        .max_connections(config.max_connections)
        .max_subscriptions_per_connection(config.max_subscriptions_per_connection)
        .set_batch_request_config(BatchRequestConfig::Limit(config.batch_request_limit))
        .set_id_provider(HexIdProvider::new())
        .build();
    let module = build_module(Rpc::new(ctx, config, consensus)?)?;
    let known: Arc<HashSet<String>> = Arc::new(module.method_names().map(str::to_owned).collect());
    let server = jsonrpsee::server::Server::builder()
        .set_config(server_config)
        .set_http_middleware(tower::ServiceBuilder::new().layer(cors::CorsLayer))
        .set_rpc_middleware(
            RpcServiceBuilder::new()
                .layer_fn(move |service| metrics::CallMetrics::new(service, known.clone())),
        )
        .build(addr)
        .await
        .map_err(|source| RpcError::Bind { addr, source })?;
    let local_addr = server
        .local_addr()
        .map_err(|source| RpcError::Bind { addr, source })?;
    let handle = server.start(module);
    tracing::info!(target: "bttd::rpc", %local_addr, "JSON-RPC listening (HTTP and WebSocket)");
    Ok(RpcHandle { local_addr, handle })
}

/// Subscription ids as geth makes them: `0x` and 32 hex digits. Unique per process; not a
/// secret (subscriptions are bound to their connection).
#[derive(Debug)]
struct HexIdProvider {
    seed: [u8; 16],
    counter: AtomicU64,
}

impl HexIdProvider {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let mut seed = [0u8; 16];
        seed.copy_from_slice(&nanos.to_be_bytes());
        seed[..4].copy_from_slice(&std::process::id().to_be_bytes());
        Self {
            seed,
            counter: AtomicU64::new(0),
        }
    }
}

impl IdProvider for HexIdProvider {
    fn next_id(&self) -> SubscriptionId<'static> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 24];
        buf[..16].copy_from_slice(&self.seed);
        buf[16..].copy_from_slice(&n.to_be_bytes());
        let hash = keccak256(buf);
        SubscriptionId::Str(format!("0x{}", alloy_primitives::hex::encode(&hash[..16])).into())
    }
}
