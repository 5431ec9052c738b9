//! Prometheus metrics and a health endpoint on `--metrics ADDR`: `GET /metrics` renders every
//! `metrics::` counter and gauge the node records; `GET /health` answers 200 with the head
//! while the node runs, so orchestrators and load balancers can probe it.

use std::net::SocketAddr;
use std::sync::Arc;

use bttd_runtime::Chain;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

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

/// Installs the global Prometheus recorder and serves it; returns the bound address.
pub async fn serve(addr: SocketAddr, chain: Arc<Chain>) -> Result<SocketAddr, MetricsError> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| MetricsError::Recorder(e.to_string()))?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| MetricsError::Bind { addr, source })?;
    tracing::info!(target: "bttd::metrics", %local, "serving /metrics and /health");
    tokio::spawn(accept_loop(listener, handle, chain));
    Ok(local)
}

async fn accept_loop(listener: TcpListener, handle: PrometheusHandle, chain: Arc<Chain>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let handle = handle.clone();
        let chain = chain.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let response = respond(&req, &handle, &chain);
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
    chain: &Chain,
) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match req.uri().path() {
        "/metrics" => (StatusCode::OK, "text/plain; version=0.0.4", handle.render()),
        "/health" => {
            let head = chain.head();
            let body = serde_json::json!({
                "status": "ok",
                "chainId": chain.config().chain_id,
                "head": { "number": head.number, "hash": head.hash(), "timestamp": head.timestamp },
            });
            (StatusCode::OK, "application/json", body.to_string())
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
