//! The simulator's one HTTP port: java-tron's `/wallet/*` and `/walletsolidity/*` paths, its
//! `/jsonrpc`, and `/admin/reorg` (simulator only). Request bodies are bounded (java-tron's
//! 4 MiB `maxMessageSize`) and parsed as JSON; nothing a client sends can panic the server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use alloy_primitives::B256;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::SimError;
use crate::chain::{Chain, Drop};
use crate::wallet::{self, ApiError};

/// java-tron's default `node.http.maxMessageSize`.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

pub async fn serve(addr: SocketAddr, chain: Arc<Mutex<Chain>>) -> Result<SocketAddr, SimError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| SimError::Bind { addr, source })?;
    tokio::spawn(accept_loop(listener, chain));
    Ok(local)
}

async fn accept_loop(listener: TcpListener, chain: Arc<Mutex<Chain>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let chain = chain.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let chain = chain.clone();
                async move { Ok::<_, Infallible>(respond(req, &chain).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(target: "bttd::tron_sim", error = %e, "connection ended");
            }
        });
    }
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

async fn respond(req: Request<Incoming>, chain: &Mutex<Chain>) -> Response<Full<Bytes>> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let query = req.uri().query().map(str::to_string);
    let bytes = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({"Error": format!("request body: {e} (limit {MAX_BODY_BYTES} bytes)")}),
            );
        }
    };
    let body: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        query_object(query.as_deref())
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                return reply(
                    StatusCode::OK,
                    &json!({"Error": format!("class org.tron.json.JSONException : {e}")}),
                );
            }
        }
    };
    if path == "/jsonrpc" {
        let chain = chain.lock();
        let answer = match &body {
            Value::Array(batch) => Value::Array(
                batch
                    .iter()
                    .map(|r| crate::jsonrpc::handle(&chain, r))
                    .collect(),
            ),
            single => crate::jsonrpc::handle(&chain, single),
        };
        return reply(StatusCode::OK, &answer);
    }
    if path == "/admin/reorg" {
        return match reorg(chain, &body) {
            Ok(v) => reply(StatusCode::OK, &v),
            Err(e) => reply(StatusCode::BAD_REQUEST, &json!({"Error": e})),
        };
    }
    let result = route(&path, chain, &body);
    match result {
        Some(Ok(v)) => reply(StatusCode::OK, &v),
        Some(Err(ApiError(e))) => reply(StatusCode::OK, &json!({"Error": e})),
        None => reply(
            StatusCode::NOT_FOUND,
            &json!({"Error": format!("{path} is not served by bttd tron-sim")}),
        ),
    }
}

/// GET requests carry their parameters in the query string (`?value=...&visible=true`).
fn query_object(query: Option<&str>) -> Value {
    let mut m = serde_json::Map::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let value = v
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(v.to_string()));
        m.insert(k.to_string(), value);
    }
    Value::Object(m)
}

fn route(path: &str, chain: &Mutex<Chain>, body: &Value) -> Option<Result<Value, ApiError>> {
    let (solid, name) = if let Some(name) = path.strip_prefix("/walletsolidity/") {
        (true, name)
    } else if let Some(name) = path.strip_prefix("/wallet/") {
        (false, name)
    } else {
        return None;
    };
    if name == "broadcasttransaction" && !solid {
        return Some(wallet::broadcast(&mut chain.lock(), body));
    }
    if name == "getsignweight" && !solid {
        return Some(wallet::sign_weight(body));
    }
    let chain = chain.lock();
    let chain = &*chain;
    Some(match (solid, name) {
        (false, "getnodeinfo") => Ok(wallet::node_info(chain)),
        (false, "getchainparameters") => Ok(wallet::chain_parameters(chain)),
        (false, "getnowblock") => wallet::block_json(chain, chain.head(), wallet::visible(body)),
        (true, "getnowblock") => wallet::block_json(chain, chain.solid(), wallet::visible(body)),
        (_, "getblockbynum") => {
            let n = body.get("num").and_then(Value::as_u64);
            if solid && n.is_some_and(|n| n > chain.solid_number()) {
                Ok(json!({}))
            } else {
                wallet::block_by_num(chain, body)
            }
        }
        (_, "getblockbyid") => {
            let v = wallet::block_by_id(chain, body);
            match v {
                Ok(b) if solid && !is_solid_block(chain, &b) => Ok(json!({})),
                other => other,
            }
        }
        (false, "gettransactionbyid") => wallet::transaction_by_id(chain, body),
        (true, "gettransactionbyid") => {
            match body
                .get("value")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<B256>().ok())
            {
                Some(id) if chain.solid_tx(&id).is_none() => Ok(json!({})),
                _ => wallet::transaction_by_id(chain, body),
            }
        }
        (_, "gettransactioninfobyid") => wallet::transaction_info(chain, body, solid),
        (_, "getaccount") => wallet::account(chain, body, solid),
        (_, "getblock") => wallet::get_block(chain, body, solid),
        (false, "getcontract") => wallet::contract(chain, body),
        (false, "triggerconstantcontract") | (true, "triggerconstantcontract") => {
            wallet::constant(chain, body, false)
        }
        (false, "estimateenergy") => wallet::constant(chain, body, true),
        (false, "triggersmartcontract") => wallet::trigger_smart_contract(chain, body),
        (false, "createtransaction") => wallet::create_transaction(chain, body),
        _ => return None,
    })
}

fn is_solid_block(chain: &Chain, block: &Value) -> bool {
    block
        .pointer("/block_header/raw_data/number")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        <= chain.solid_number()
}

/// `POST /admin/reorg {"depth": d, "drop": "all" | ["txid", ...]}`.
fn reorg(chain: &Mutex<Chain>, body: &Value) -> Result<Value, String> {
    let depth = body
        .get("depth")
        .and_then(Value::as_u64)
        .ok_or("depth is required and must be a positive integer")?;
    let drop = match body.get("drop") {
        None | Some(Value::Null) => Drop::Listed(Vec::new()),
        Some(Value::String(s)) if s == "all" => Drop::All,
        Some(Value::Array(ids)) => Drop::Listed(
            ids.iter()
                .map(|v| {
                    v.as_str()
                        .and_then(|s| s.strip_prefix("0x").unwrap_or(s).parse::<B256>().ok())
                        .ok_or_else(|| format!("{v} is not a txid"))
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(other) => {
            return Err(format!(
                "drop must be \"all\" or a list of txids, not {other}"
            ));
        }
    };
    let mut chain = chain.lock();
    let head = chain.reorg(depth, drop).map_err(|e| e.to_string())?;
    let (number, id) = (head.number, head.id);
    Ok(json!({"result": true, "head": {"number": number, "blockID": hex::encode(id)}}))
}
