//! Wiring: opens the datadir, the chain and the pool, and starts RPC, metrics and the block
//! producer over one shared [`NodeContext`]. `bttd node` and `bttd devnet` both launch
//! through here; they differ only in where the genesis and settings come from.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bttd_genesis::ChainSpec;
use bttd_runtime::Chain;
use bttd_runtime::storage::RocksStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::context::NodeContext;
use crate::mempool::{Pool, PoolConfig};
use crate::producer::{self, ProducerConfig};
use crate::rpc::{self, RpcConfig, RpcHandle};

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
}

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub datadir: PathBuf,
    pub spec: ChainSpec,
    pub rpc: RpcConfig,
    pub metrics: Option<SocketAddr>,
    pub producer: ProducerConfig,
    pub pool: PoolConfig,
}

/// A started node; [`RunningNode::stop`] shuts it down in order.
pub struct RunningNode {
    pub ctx: Arc<NodeContext>,
    pub rpc: RpcHandle,
    pub metrics_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    producer: JoinHandle<()>,
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
    let store = Arc::new(RocksStore::open(&db_path)?);
    let chain = Arc::new(Chain::open(
        store,
        settings.spec.chain_config(),
        &settings.spec.genesis,
    )?);
    let head = chain.head();
    tracing::info!(target: "bttd::node", chain_id = chain.config().chain_id, genesis = %chain.genesis_hash(), head = head.number, "chain ready");

    let metrics_addr = match settings.metrics {
        Some(addr) => Some(crate::metrics_server::serve(addr, chain.clone()).await?),
        None => None,
    };
    let ctx = Arc::new(NodeContext::new(chain, Pool::new(settings.pool)));
    let rpc = rpc::start(ctx.clone(), settings.rpc)
        .await
        .map_err(|e| NodeError::Rpc(e.to_string()))?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let producer = tokio::spawn(producer::run(ctx.clone(), settings.producer, shutdown_rx));
    Ok(RunningNode {
        ctx,
        rpc,
        metrics_addr,
        shutdown,
        producer,
    })
}

impl RunningNode {
    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc.local_addr()
    }

    /// Stops producing (finishing the block in progress), then stops serving RPC.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.producer.await;
        self.rpc.stop().await;
        tracing::info!(target: "bttd::node", head = self.ctx.chain.head().number, "node stopped");
    }
}
