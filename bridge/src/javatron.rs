//! `JavaTron`: the `RootChain` over java-tron's real interfaces. Blocks and logs come from its
//! Ethereum-style `/jsonrpc` (`finalized` is the solidified block; `eth_getLogs` in pages of at
//! most java-tron's `maxBlockRange`), receipts from `/wallet[solidity]/gettransactioninfobyid`,
//! calls from `/wallet/triggerconstantcontract`, and a submitted call is built by
//! `/wallet/triggersmartcontract`, checked against what was asked (the txID is recomputed from
//! the protobuf, never taken on trust), signed here and sent to `/wallet/broadcasttransaction`.
//! java-tron serves HTTP (8090, solidity 8091) and JSON-RPC (8545) on separate ports, so each
//! URL is given; the simulator serves all on one.

use alloy_primitives::{B256, Bytes};
use alloy_signer_local::PrivateKeySigner;
use prost::Message;
use serde_json::{Value, json};

use crate::address::TronAddress;
use crate::json::{raw_from_json, raw_to_json};
use crate::proto::{ContractType, TransactionRaw, TriggerSmartContract};
use crate::root_chain::{BlockRef, ContractCall, Receipt, RootChain, RootChainError, RootLog};
use crate::tx::{raw_bytes, sign, txid};

/// java-tron's default `maxBlockRange` for `eth_getLogs`.
pub const LOG_PAGE_BLOCKS: u64 = 5000;
/// The largest response read from the node.
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct JavaTron {
    http: reqwest::Client,
    wallet_url: String,
    solidity_url: String,
    jsonrpc_url: String,
    log_page: u64,
}

fn response(endpoint: &str, reason: impl Into<String>) -> RootChainError {
    RootChainError::Response {
        endpoint: endpoint.to_string(),
        reason: reason.into(),
    }
}

fn quantity(endpoint: &str, v: Option<&Value>, field: &str) -> Result<u64, RootChainError> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| response(endpoint, format!("{field} missing")))?;
    let digits = s
        .strip_prefix("0x")
        .ok_or_else(|| response(endpoint, format!("{field} {s:?} is not a 0x quantity")))?;
    u64::from_str_radix(digits, 16).map_err(|e| response(endpoint, format!("{field} {s:?}: {e}")))
}

fn hex_bytes(endpoint: &str, v: Option<&Value>, field: &str) -> Result<Vec<u8>, RootChainError> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| response(endpoint, format!("{field} missing")))?;
    hex::decode(s.strip_prefix("0x").unwrap_or(s))
        .map_err(|e| response(endpoint, format!("{field} is not hex: {e}")))
}

fn b256(endpoint: &str, v: Option<&Value>, field: &str) -> Result<B256, RootChainError> {
    let bytes = hex_bytes(endpoint, v, field)?;
    if bytes.len() != 32 {
        return Err(response(
            endpoint,
            format!("{field} has {} bytes, not 32", bytes.len()),
        ));
    }
    Ok(B256::from_slice(&bytes))
}

/// An address as java-tron prints it in logs and receipts: 20-byte hex, `41...` or base58.
fn log_address(endpoint: &str, v: Option<&Value>) -> Result<TronAddress, RootChainError> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| response(endpoint, "address missing"))?;
    TronAddress::parse(s).map_err(|e| response(endpoint, format!("address: {e}")))
}

/// A `/jsonrpc` block object.
pub fn parse_block(v: &Value) -> Result<BlockRef, RootChainError> {
    const E: &str = "eth_getBlockByNumber";
    if v.is_null() {
        return Err(response(E, "no such block"));
    }
    Ok(BlockRef {
        number: quantity(E, v.get("number"), "number")?,
        id: b256(E, v.get("hash"), "hash")?,
        parent: b256(E, v.get("parentHash"), "parentHash")?,
        timestamp: quantity(E, v.get("timestamp"), "timestamp")?,
    })
}

/// An `eth_getLogs` result.
pub fn parse_logs(v: &Value) -> Result<Vec<RootLog>, RootChainError> {
    const E: &str = "eth_getLogs";
    let items = v
        .as_array()
        .ok_or_else(|| response(E, "result is not an array"))?;
    items
        .iter()
        .map(|l| {
            if l.get("removed").and_then(Value::as_bool) == Some(true) {
                return Err(response(E, "a removed log in a range read as final"));
            }
            let topics = l
                .get("topics")
                .and_then(Value::as_array)
                .ok_or_else(|| response(E, "topics missing"))?
                .iter()
                .map(|t| b256(E, Some(t), "topic"))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(RootLog {
                address: log_address(E, l.get("address"))?,
                topics,
                data: hex_bytes(E, l.get("data"), "data")?.into(),
                block_number: quantity(E, l.get("blockNumber"), "blockNumber")?,
                block_id: b256(E, l.get("blockHash"), "blockHash")?,
                txid: b256(E, l.get("transactionHash"), "transactionHash")?,
                log_index: quantity(E, l.get("logIndex"), "logIndex")?,
            })
        })
        .collect()
}

/// A `gettransactioninfobyid` answer; `{}` is `None`.
pub fn parse_info(v: &Value) -> Result<Option<Receipt>, RootChainError> {
    const E: &str = "gettransactioninfobyid";
    let o = v.as_object().ok_or_else(|| response(E, "not an object"))?;
    if o.is_empty() {
        return Ok(None);
    }
    let int = |field: &str, from: &Value| -> Result<u64, RootChainError> {
        match from.get(field) {
            None => Ok(0),
            Some(x) => x
                .as_u64()
                .ok_or_else(|| response(E, format!("{field} is not a non-negative integer"))),
        }
    };
    let receipt = v.get("receipt").cloned().unwrap_or(json!({}));
    let failed = v.get("result").and_then(Value::as_str) == Some("FAILED");
    let result = match receipt.get("result").and_then(Value::as_str) {
        Some(r) => r.to_string(),
        None if failed => "FAILED".to_string(),
        None => "SUCCESS".to_string(),
    };
    let output = match v.get("contractResult").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => hex_bytes(E, list.first(), "contractResult")?,
        _ => Vec::new(),
    };
    let logs = match v.get("log") {
        None => Vec::new(),
        Some(list) => list
            .as_array()
            .ok_or_else(|| response(E, "log is not an array"))?
            .iter()
            .map(|l| {
                let topics = l
                    .get("topics")
                    .and_then(Value::as_array)
                    .map(|ts| ts.iter().map(|t| b256(E, Some(t), "topic")).collect())
                    .unwrap_or_else(|| Ok(Vec::new()))?;
                Ok((
                    log_address(E, l.get("address"))?,
                    topics,
                    Bytes::from(match l.get("data") {
                        None => Vec::new(),
                        d => hex_bytes(E, d, "log data")?,
                    }),
                ))
            })
            .collect::<Result<Vec<_>, RootChainError>>()?,
    };
    Ok(Some(Receipt {
        txid: b256(E, v.get("id"), "id")?,
        block_number: int("blockNumber", v)?,
        result,
        fee: int("fee", v)?,
        energy_used: int("energy_usage_total", &receipt)?,
        output: output.into(),
        logs,
    }))
}

/// java-tron's `message` fields are hex-encoded bytes (plain text with `visible`).
fn message_text(v: Option<&Value>) -> String {
    let s = v.and_then(Value::as_str).unwrap_or("");
    hex::decode(s)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| s.to_string())
}

/// A `triggerconstantcontract` answer: the output, or why the call failed.
pub fn parse_constant(v: &Value) -> Result<Bytes, RootChainError> {
    const E: &str = "triggerconstantcontract";
    let result = v
        .get("result")
        .ok_or_else(|| response(E, "result missing"))?;
    if let Some(code) = result.get("code").and_then(Value::as_str) {
        return Err(RootChainError::Node {
            endpoint: E.into(),
            message: format!("{code}: {}", message_text(result.get("message"))),
        });
    }
    let output = hex_bytes(
        E,
        v.get("constant_result").and_then(|c| c.get(0)),
        "constant_result",
    )?;
    if result.get("message").is_some() {
        return Err(RootChainError::CallFailed(format!(
            "{} (output 0x{})",
            message_text(result.get("message")),
            hex::encode(&output)
        )));
    }
    Ok(output.into())
}

/// Checks a `triggersmartcontract` answer against the call asked for and returns the
/// transaction to sign: the txID is recomputed from `raw_data`, and `raw_data_hex` must be
/// the same bytes.
pub fn check_built(
    v: &Value,
    owner: TronAddress,
    call: &ContractCall,
) -> Result<(TransactionRaw, B256), RootChainError> {
    const E: &str = "triggersmartcontract";
    if let Some(code) = v.pointer("/result/code").and_then(Value::as_str) {
        return Err(RootChainError::Node {
            endpoint: E.into(),
            message: format!("{code}: {}", message_text(v.pointer("/result/message"))),
        });
    }
    let tx = v
        .get("transaction")
        .ok_or_else(|| response(E, "transaction missing"))?;
    let raw = raw_from_json(
        tx.get("raw_data")
            .ok_or_else(|| response(E, "raw_data missing"))?,
    )
    .map_err(|e| response(E, e.to_string()))?;
    let id = txid(&raw);
    let mismatch = |what: String| RootChainError::Mismatch(what);
    let claimed = b256(E, tx.get("txID"), "txID")?;
    if claimed != id {
        return Err(mismatch(format!(
            "txID {claimed} but raw_data hashes to {id}"
        )));
    }
    if let Some(hex_raw) = tx.get("raw_data_hex")
        && hex_bytes(E, Some(hex_raw), "raw_data_hex")? != raw_bytes(&raw)
    {
        return Err(mismatch(
            "raw_data_hex is not the encoding of raw_data".into(),
        ));
    }
    let [contract] = raw.contract.as_slice() else {
        return Err(mismatch(format!("{} contracts", raw.contract.len())));
    };
    if contract.r#type != ContractType::TriggerSmartContract as i32 {
        return Err(mismatch(format!("contract type {}", contract.r#type)));
    }
    let t = TriggerSmartContract::decode(
        contract
            .parameter
            .as_ref()
            .map(|p| p.value.as_slice())
            .unwrap_or_default(),
    )
    .map_err(|e| response(E, e.to_string()))?;
    let want = TriggerSmartContract {
        owner_address: owner.to_bytes21().to_vec(),
        contract_address: call.contract.to_bytes21().to_vec(),
        call_value: i64::try_from(call.call_value)
            .map_err(|_| mismatch("call value exceeds int64".into()))?,
        data: call.data.to_vec(),
        call_token_value: 0,
        token_id: 0,
    };
    if t != want {
        return Err(mismatch(format!("built {t:?}, asked for {want:?}")));
    }
    if u64::try_from(raw.fee_limit).ok() != Some(call.fee_limit) {
        return Err(mismatch(format!(
            "fee_limit {} instead of {}",
            raw.fee_limit, call.fee_limit
        )));
    }
    if !raw.data.is_empty() || contract.permission_id != 0 {
        return Err(mismatch("memo or permission id not asked for".into()));
    }
    Ok((raw, id))
}

/// A `broadcasttransaction` answer.
pub fn parse_broadcast(v: &Value, id: B256) -> Result<B256, RootChainError> {
    if v.get("result").and_then(Value::as_bool) == Some(true) {
        return Ok(id);
    }
    if let Some(code) = v.get("code").and_then(Value::as_str) {
        return Err(RootChainError::Refused {
            code: code.to_string(),
            message: message_text(v.get("message")),
        });
    }
    if let Some(e) = v.get("Error").and_then(Value::as_str) {
        return Err(RootChainError::Node {
            endpoint: "broadcasttransaction".into(),
            message: e.to_string(),
        });
    }
    Err(response(
        "broadcasttransaction",
        format!("unexpected answer {v}"),
    ))
}

impl JavaTron {
    /// `wallet_url`: the full node's HTTP API (java-tron's 8090); `solidity_url`: its solidity
    /// HTTP API (8091; the full node's URL works too, it serves `/walletsolidity/` paths);
    /// `jsonrpc_url`: the full `/jsonrpc` URL (8545).
    pub fn new(
        wallet_url: impl Into<String>,
        solidity_url: impl Into<String>,
        jsonrpc_url: impl Into<String>,
    ) -> Result<Self, RootChainError> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| RootChainError::Transport(e.to_string()))?;
        Ok(Self {
            http,
            wallet_url: wallet_url.into().trim_end_matches('/').to_string(),
            solidity_url: solidity_url.into().trim_end_matches('/').to_string(),
            jsonrpc_url: jsonrpc_url.into(),
            log_page: LOG_PAGE_BLOCKS,
        })
    }

    /// Reads `eth_getLogs` in pages of `blocks` (at most java-tron's limit).
    pub fn with_log_page(mut self, blocks: u64) -> Self {
        self.log_page = blocks.clamp(1, LOG_PAGE_BLOCKS);
        self
    }

    async fn post(&self, url: &str, body: &Value) -> Result<Value, RootChainError> {
        let mut resp = self
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|e| RootChainError::Transport(format!("{url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(response(url, format!("HTTP {}", resp.status())));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| RootChainError::Transport(format!("{url}: {e}")))?
        {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(response(
                    url,
                    format!("response exceeds {MAX_RESPONSE_BYTES} bytes"),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&bytes).map_err(|e| response(url, format!("not JSON: {e}")))
    }

    async fn wallet(&self, path: &str, body: &Value) -> Result<Value, RootChainError> {
        let v = self
            .post(&format!("{}/wallet/{path}", self.wallet_url), body)
            .await?;
        if let Some(e) = v.get("Error").and_then(Value::as_str) {
            return Err(RootChainError::Node {
                endpoint: path.into(),
                message: e.to_string(),
            });
        }
        Ok(v)
    }

    async fn rpc(&self, method: &str, params: Value) -> Result<Value, RootChainError> {
        let v = self
            .post(
                &self.jsonrpc_url,
                &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
            )
            .await?;
        if let Some(e) = v.get("error") {
            return Err(RootChainError::Node {
                endpoint: method.into(),
                message: e.to_string(),
            });
        }
        v.get("result")
            .cloned()
            .ok_or_else(|| response(method, "no result"))
    }

    async fn block(&self, tag: &str) -> Result<BlockRef, RootChainError> {
        parse_block(
            &self
                .rpc("eth_getBlockByNumber", json!([tag, false]))
                .await?,
        )
    }
}

impl RootChain for JavaTron {
    async fn head(&self) -> Result<BlockRef, RootChainError> {
        self.block("latest").await
    }

    async fn finalized(&self) -> Result<BlockRef, RootChainError> {
        self.block("finalized").await
    }

    async fn logs(
        &self,
        address: TronAddress,
        topic0: Option<B256>,
        from: u64,
        to: u64,
    ) -> Result<Vec<RootLog>, RootChainError> {
        let mut out = Vec::new();
        let mut start = from;
        while start <= to {
            let end = start.saturating_add(self.log_page - 1).min(to);
            let mut filter = json!({
                "fromBlock": format!("0x{start:x}"),
                "toBlock": format!("0x{end:x}"),
                "address": format!("0x{}", hex::encode(address.evm())),
            });
            if let Some(t) = topic0 {
                filter["topics"] = json!([format!("0x{}", hex::encode(t))]);
            }
            out.extend(parse_logs(
                &self.rpc("eth_getLogs", json!([filter])).await?,
            )?);
            match end.checked_add(1) {
                Some(next) => start = next,
                None => break,
            }
        }
        Ok(out)
    }

    async fn receipt(&self, txid: B256, solid: bool) -> Result<Option<Receipt>, RootChainError> {
        let (base, prefix) = if solid {
            (&self.solidity_url, "walletsolidity")
        } else {
            (&self.wallet_url, "wallet")
        };
        let v = self
            .post(
                &format!("{base}/{prefix}/gettransactioninfobyid"),
                &json!({"value": hex::encode(txid)}),
            )
            .await?;
        parse_info(&v)
    }

    async fn call(
        &self,
        from: TronAddress,
        contract: TronAddress,
        data: Bytes,
    ) -> Result<Bytes, RootChainError> {
        let v = self
            .wallet(
                "triggerconstantcontract",
                &json!({
                    "owner_address": from.to_hex41(),
                    "contract_address": contract.to_hex41(),
                    "data": hex::encode(&data),
                }),
            )
            .await?;
        parse_constant(&v)
    }

    async fn submit(
        &self,
        signer: &PrivateKeySigner,
        call: &ContractCall,
    ) -> Result<B256, RootChainError> {
        let owner = TronAddress::from_evm(signer.address());
        let built = self
            .wallet(
                "triggersmartcontract",
                &json!({
                    "owner_address": owner.to_hex41(),
                    "contract_address": call.contract.to_hex41(),
                    "data": hex::encode(&call.data),
                    "call_value": call.call_value,
                    "fee_limit": call.fee_limit,
                }),
            )
            .await?;
        let (raw, id) = check_built(&built, owner, call)?;
        let sig = sign(signer, &id).map_err(|e| RootChainError::Sign(e.to_string()))?;
        let body = json!({
            "txID": hex::encode(id),
            "raw_data": raw_to_json(&raw, false).map_err(|e| response("broadcast", e.to_string()))?,
            "raw_data_hex": hex::encode(raw_bytes(&raw)),
            "signature": [hex::encode(sig)],
            "visible": false,
        });
        let answer = self
            .wallet_or_refusal("broadcasttransaction", &body)
            .await?;
        parse_broadcast(&answer, id)
    }
}

impl JavaTron {
    /// Like `wallet`, but an `{"Error"}` answer is left for the caller's parser.
    async fn wallet_or_refusal(&self, path: &str, body: &Value) -> Result<Value, RootChainError> {
        self.post(&format!("{}/wallet/{path}", self.wallet_url), body)
            .await
    }
}
