//! Prometheus metrics and a health endpoint on `--metrics ADDR`: `GET /metrics` renders every
//! `metrics::` counter and gauge the node records; `GET /health` answers 200
//! `{"status":"ok",...}` while the node follows the chain and 503 `{"status":"stalled"|"syncing",...}`
//! when it does not (see [`crate::health`]), so orchestrators and load balancers can probe it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::health::{HealthInputs, assess, stall_after};
use bttd_engine::ConsensusInfo;
use bttd_runtime::storage::RocksStore;
use bttd_txpool::context::NodeContext;
use bttd_txpool::devnet::MiningMode;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("installing the metrics recorder: {0}")]
    Recorder(String),
    #[error("binding metrics address {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// How often histogram samples are drained when nobody scrapes (the exporter's own default).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the global Prometheus recorder and serves it; returns the bound address.
/// `block_time` is the chain's block interval (the `/health` stall threshold is ten of them).
pub async fn serve(
    addr: SocketAddr,
    ctx: Arc<NodeContext>,
    store: Arc<RocksStore>,
    consensus: Option<Arc<ConsensusInfo>>,
    block_time: Duration,
) -> Result<SocketAddr, MetricsError> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| MetricsError::Recorder(e.to_string()))?;
    describe_metrics();
    // The recorder keeps histogram samples until they are drained: by a scrape, or by this
    // upkeep when nobody scrapes (without it they would pile up for as long as the node runs).
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| MetricsError::Bind { addr, source })?;
    tracing::info!(target: "bttd::metrics", %local, "serving /metrics and /health");
    tokio::spawn(accept_loop(
        listener, handle, ctx, store, consensus, block_time,
    ));
    Ok(local)
}

/// Descriptions (and zero values, so they are rendered before the first event) of the metrics
/// that operators alert on.
fn describe_metrics() {
    bttd_network::register_ban_metrics();
    metrics::describe_counter!(
        "bttd_consensus_round_changes_total",
        "Times the consensus engine moved to a later round at the same height"
    );
    metrics::counter!("bttd_consensus_round_changes_total").increment(0);
    metrics::describe_gauge!(
        "bttd_consensus_buffered_bytes",
        metrics::Unit::Bytes,
        "Bytes of consensus messages buffered for a later height"
    );
    metrics::describe_gauge!(
        "bttd_storage_cache_bytes",
        metrics::Unit::Bytes,
        "RocksDB block cache in use, memtables charged to it included ([storage] cache-mb bounds it)"
    );
    metrics::describe_gauge!(
        "bttd_storage_table_files",
        "RocksDB table files of each column (each holds metadata in memory while it exists)"
    );
    metrics::describe_gauge!(
        "bttd_storage_memtable_bytes",
        metrics::Unit::Bytes,
        "RocksDB memtables, flushed ones still referenced included"
    );
}

/// Sets the storage memory and table file gauges from what RocksDB reports now (read when
/// scraped: asking RocksDB costs a few microseconds, cheaper than a task polling it).
fn record_storage_gauges(store: &RocksStore) {
    match store.memory() {
        Ok(memory) => {
            let gauges = [
                ("bttd_storage_memory_budget_bytes", memory.budget),
                ("bttd_storage_cache_bytes", memory.cache),
                ("bttd_storage_memtable_bytes", memory.memtables),
                ("bttd_storage_table_readers_bytes", memory.table_readers),
            ];
            for (name, value) in gauges {
                metrics::gauge!(name).set(value as f64);
            }
        }
        Err(e) => tracing::warn!(target: "bttd::metrics", error = %e, "reading storage memory"),
    }
    match store.table_files() {
        Ok(files) => {
            for (column, count) in files {
                metrics::gauge!("bttd_storage_table_files", "column" => column.name())
                    .set(count as f64);
            }
        }
        Err(e) => tracing::warn!(target: "bttd::metrics", error = %e, "reading table files"),
    }
}

async fn accept_loop(
    listener: TcpListener,
    handle: PrometheusHandle,
    ctx: Arc<NodeContext>,
    store: Arc<RocksStore>,
    consensus: Option<Arc<ConsensusInfo>>,
    block_time: Duration,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let handle = handle.clone();
        let ctx = ctx.clone();
        let store = store.clone();
        let consensus = consensus.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let response = respond(
                    &req,
                    &handle,
                    &ctx,
                    &store,
                    consensus.as_deref(),
                    block_time,
                );
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(target: "bttd::metrics", error = %e, "connection ended");
            }
        });
    }
}

fn respond(
    req: &Request<Incoming>,
    handle: &PrometheusHandle,
    ctx: &NodeContext,
    store: &RocksStore,
    consensus: Option<&ConsensusInfo>,
    block_time: Duration,
) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match req.uri().path() {
        "/metrics" => {
            record_storage_gauges(store);
            (StatusCode::OK, "text/plain; version=0.0.4", handle.render())
        }
        "/health" => {
            let (status, body) = health(ctx, consensus, block_time);
            (status, "application/json", body.to_string())
        }
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics or /health\n".to_string(),
        ),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

/// The `/health` answer: status code and JSON body.
fn health(
    ctx: &NodeContext,
    consensus: Option<&ConsensusInfo>,
    block_time: Duration,
) -> (StatusCode, serde_json::Value) {
    let head = ctx.chain.head();
    let since = ctx.since_head_changed();
    let highest_seen = consensus.map(|info| info.highest_seen());
    // A devnet mining on demand (automine, none) has no block time to stall against; one
    // switched to another interval (evm_setIntervalMining) is judged by that interval.
    let (since_head_changed, block_time) = match ctx.devnet.get().map(|control| control.mode()) {
        Some(MiningMode::Interval(every)) => (since, every),
        Some(MiningMode::Auto | MiningMode::Never) => (Duration::ZERO, block_time),
        None => (since, block_time),
    };
    let status = assess(&HealthInputs {
        head: head.number,
        since_head_changed,
        block_time,
        highest_seen,
    });
    let body = serde_json::json!({
        "status": status,
        "chainId": ctx.chain.config().chain_id,
        "head": { "number": head.number, "hash": head.hash(), "timestamp": head.timestamp },
        "secondsSinceLastBlock": since.as_secs_f64(),
        "stalledAfterSeconds": stall_after(block_time).as_secs_f64(),
        "highestSeenBlock": highest_seen.unwrap_or(head.number).max(head.number),
        "peers": consensus.map(|info| info.peer_count()),
    });
    let code = if status.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body)
}
