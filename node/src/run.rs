//! Wiring: opens the datadir, the chain and the pool, and starts RPC, metrics and the block
//! producer over one shared [`NodeContext`]. `bttd node` and `bttd devnet` both launch
//! through here; they differ only in where the genesis and settings come from.
//!
//! Every critical task (the producer or the consensus engine, the p2p service, the RPC server)
//! runs under a [`Supervisor`]: if one ends or panics while the node is not shutting down,
//! [`RunningNode::failed`] resolves and the binary stops the node and exits non-zero.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bttd_genesis::ChainSpec;
use bttd_runtime::Chain;
use bttd_runtime::storage::RocksStore;
use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::P2pSection;
use crate::consensus::EngineSettings;
use crate::producer::{self, ProducerConfig};
use crate::supervisor::{Supervisor, TaskFailure};
use bttd_app::ChainSets;
use bttd_consensus::ValidatorSet;
use bttd_engine::ConsensusInfo;
use bttd_network::{Network, NetworkConfig, NetworkHandle};
use bttd_rpc::{RpcConfig, RpcHandle};
use bttd_txpool::context::NodeContext;
use bttd_txpool::gossip::TxGossip;
use bttd_txpool::{Pool, PoolConfig};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("creating datadir {path}: {source}")]
    Datadir {
        path: String,
        source: std::io::Error,
    },
    #[error("opening the database: {0}")]
    Storage(#[from] bttd_runtime::storage::StorageError),
    #[error("opening the chain: {0}")]
    Chain(#[from] bttd_runtime::ChainError),
    #[error("starting RPC: {0}")]
    Rpc(String),
    #[error("starting metrics: {0}")]
    Metrics(#[from] crate::metrics_server::MetricsError),
    #[error("genesis validators: {0}")]
    Validators(String),
    #[error("starting the p2p network: {0}")]
    P2p(#[from] bttd_network::P2pError),
    #[error("starting consensus: {0}")]
    Consensus(#[from] crate::consensus::StartError),
}

/// How a chain with genesis validators is run: over libp2p, with consensus.
#[derive(Debug, Clone)]
pub struct ConsensusSettings {
    pub p2p: P2pSection,
    pub engine: EngineSettings,
}

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub datadir: PathBuf,
    pub spec: ChainSpec,
    pub rpc: RpcConfig,
    pub metrics: Option<SocketAddr>,
    /// Memory budget of the database: block cache and memtables (`[storage] cache-mb`).
    pub storage_cache_bytes: usize,
    pub producer: ProducerConfig,
    pub pool: PoolConfig,
    /// Required when the genesis names validators; ignored otherwise (single producer).
    pub consensus: Option<ConsensusSettings>,
}

/// A started node; [`RunningNode::stop`] shuts it down in order.
pub struct RunningNode {
    pub ctx: Arc<NodeContext>,
    pub rpc: RpcHandle,
    pub metrics_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    supervisor: Supervisor,
    /// The p2p service, on nodes that run consensus (stopped last).
    net: Option<NetworkHandle>,
}

impl std::fmt::Debug for RunningNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningNode")
            .field("rpc", &self.rpc.local_addr())
            .finish_non_exhaustive()
    }
}

pub async fn launch(settings: NodeSettings) -> Result<RunningNode, NodeError> {
    let db_path = settings.datadir.join("db");
    std::fs::create_dir_all(&db_path).map_err(|source| NodeError::Datadir {
        path: db_path.display().to_string(),
        source,
    })?;
    let store = Arc::new(RocksStore::open_with_budget(
        &db_path,
        settings.storage_cache_bytes,
    )?);
    let chain = Arc::new(Chain::open(
        store.clone(),
        settings.spec.chain_config(),
        &settings.spec.genesis,
    )?);
    let head = chain.head();
    tracing::info!(target: "bttd::node", chain_id = chain.config().chain_id, genesis = %chain.genesis_hash(), head = head.number, "chain ready");

    let ctx = Arc::new(NodeContext::new(chain, Pool::new(settings.pool.clone())));
    let single_producer = settings.spec.params.validators.is_empty();
    let consensus = if single_producer {
        None
    } else {
        Some(settings.consensus.clone().ok_or_else(|| {
            NodeError::Validators("the genesis has validators: [p2p] settings are required".into())
        })?)
    };
    let block_time = consensus
        .as_ref()
        .map_or(settings.producer.block_time, |c| c.engine.block_time);
    // The network's config and the engine's shared view come before RPC and /health, so
    // they read the consensus state from their first request.
    let consensus = match consensus {
        None => None,
        Some(consensus) => Some(prepare_consensus(&ctx, &settings, consensus)?),
    };
    let info = consensus.as_ref().map(|c| c.info.clone());
    let metrics_addr = match settings.metrics {
        Some(addr) => Some(
            crate::metrics_server::serve(addr, ctx.clone(), store, info.clone(), block_time)
                .await?,
        ),
        None => None,
    };
    // The single producer mines through one control; only `bttd devnet` hands it to RPC,
    // which is what turns the anvil/hardhat test methods on (before RPC registers them).
    let control = single_producer.then(|| Arc::new(settings.producer.control()));
    if let Some(control) = &control
        && settings.producer.devnet.is_some()
    {
        let _ = ctx.devnet.set(control.clone());
    }
    let rpc = bttd_rpc::start(ctx.clone(), settings.rpc.clone(), info)
        .await
        .map_err(|e| NodeError::Rpc(e.to_string()))?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut supervisor = Supervisor::new(shutdown_rx.clone());
    supervisor.monitor("rpc server", rpc.clone().stopped());
    let net = match consensus {
        None => {
            let control = control.unwrap_or_else(|| Arc::new(settings.producer.control()));
            supervisor.spawn(
                "block producer",
                producer::run(ctx.clone(), control, shutdown_rx),
            );
            None
        }
        Some(consensus) => {
            Some(start_consensus(&ctx, &settings, consensus, shutdown_rx, &mut supervisor).await?)
        }
    };
    Ok(RunningNode {
        ctx,
        rpc,
        metrics_addr,
        shutdown,
        supervisor,
        net,
    })
}

/// What consensus needs before it starts: the network's config and the engine's shared view.
struct PreparedConsensus {
    settings: ConsensusSettings,
    net_config: NetworkConfig,
    info: Arc<ConsensusInfo>,
    sets: Arc<ChainSets>,
}

fn prepare_consensus(
    ctx: &NodeContext,
    settings: &NodeSettings,
    consensus: ConsensusSettings,
) -> Result<PreparedConsensus, NodeError> {
    let genesis_set = settings
        .spec
        .validator_set()
        .map_err(|e| NodeError::Validators(e.to_string()))?;
    let staking = ctx
        .chain
        .config()
        .staking
        .clone()
        .ok_or_else(|| NodeError::Validators("the chain runs no staking".into()))?;
    let sets = Arc::new(ChainSets::new(ctx.chain.clone(), staking));
    check_genesis_set(&sets, &genesis_set)?;
    let genesis_hash = ctx.chain.genesis_hash();
    let net_config = consensus
        .p2p
        .network_config(&settings.datadir, genesis_hash)?;
    let info = Arc::new(ConsensusInfo::new(
        sets.clone(),
        ctx.chain.head().number,
        net_config.max_message_bytes,
        Some(settings.datadir.join("evidence.jsonl")),
    ));
    Ok(PreparedConsensus {
        settings: consensus,
        net_config,
        info,
        sets,
    })
}

/// The genesis state's StakeManager must hold the validators `config.bttd.validators` names
/// (their keys' proofs of possession were checked there): a hand-edited alloc that disagrees
/// is refused rather than followed.
fn check_genesis_set(sets: &ChainSets, genesis: &ValidatorSet) -> Result<(), NodeError> {
    let epoch0 = sets
        .epoch(0)
        .map_err(|e| NodeError::Validators(e.to_string()))?
        .ok_or_else(|| NodeError::Validators("no set at genesis".into()))?;
    let members = |set: &ValidatorSet| {
        let mut m: Vec<_> = set
            .validators()
            .iter()
            .map(|v| (v.address, v.public_key))
            .collect();
        m.sort();
        m
    };
    let named = members(genesis);
    if members(&epoch0.set)
        .iter()
        .any(|member| named.binary_search(member).is_err())
    {
        return Err(NodeError::Validators(
            "StakeManager's genesis set holds a validator config.bttd.validators does not name"
                .into(),
        ));
    }
    Ok(())
}

/// Starts the p2p network and the consensus engine under the supervisor; returns the network.
async fn start_consensus(
    ctx: &Arc<NodeContext>,
    settings: &NodeSettings,
    consensus: PreparedConsensus,
    shutdown: watch::Receiver<bool>,
    supervisor: &mut Supervisor,
) -> Result<NetworkHandle, NodeError> {
    let PreparedConsensus {
        settings: consensus,
        net_config,
        info,
        sets,
    } = consensus;
    let max_message_bytes = net_config.max_message_bytes;
    let (net, events) = Network::start(net_config).await?;
    let listen = net.listen_addrs().await.unwrap_or_default();
    tracing::info!(target: "bttd::node", peer_id = %net.local_peer_id(), ?listen, "p2p network started");
    let mut engine_settings = consensus.engine;
    if engine_settings.slashing_db.is_relative() {
        engine_settings.slashing_db = settings.datadir.join(&engine_settings.slashing_db);
    }
    let validator = engine_settings.key.as_ref().map(|k| k.address);
    let (engine, inputs) =
        crate::consensus::new_engine(ctx.clone(), net.clone(), info, sets, engine_settings)?;
    tracing::info!(target: "bttd::node", ?validator, "consensus started");
    let watched = net.clone();
    supervisor.monitor("p2p network", async move { watched.stopped().await });
    let gossip = TxGossip::new(ctx.clone(), net.for_transactions(), max_message_bytes);
    let gossip_shutdown = shutdown.clone();
    supervisor.spawn("transaction gossip", async move {
        gossip.run(events.transactions, gossip_shutdown).await;
        Ok::<(), std::convert::Infallible>(())
    });
    let engine_net = net.clone();
    supervisor.spawn("consensus engine", async move {
        let result = crate::consensus::run(engine, inputs, events.consensus, shutdown).await;
        let _ = engine_net.shutdown().await;
        result
    });
    Ok(net)
}

impl RunningNode {
    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc.local_addr()
    }

    /// Resolves when a critical task has ended or panicked while the node was not shutting
    /// down (never, if none does). The caller should then [`RunningNode::stop`] the node and
    /// exit with an error. Owns nothing of the node, so it can be awaited beside ctrl-c.
    pub fn failed(&self) -> impl Future<Output = TaskFailure> + Send + 'static + use<> {
        self.supervisor.failed()
    }

    /// The first critical-task failure so far, if any.
    pub fn failure(&self) -> Option<TaskFailure> {
        self.supervisor.failure()
    }

    /// Stops producing (finishing the block in progress), then stops serving RPC and the
    /// network. After a task failure the engine may be gone: every step is bounded.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        if tokio::time::timeout(STOP_TIMEOUT, self.supervisor.join())
            .await
            .is_err()
        {
            tracing::warn!(target: "bttd::node", "critical tasks did not stop in time");
        }
        self.rpc.stop().await;
        if let Some(net) = &self.net {
            let _ = tokio::time::timeout(STOP_TIMEOUT, net.shutdown()).await;
        }
        tracing::info!(target: "bttd::node", head = self.ctx.chain.head().number, "node stopped");
    }
}

/// How long a clean stop waits for a task (a block in progress finishes well within it).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
