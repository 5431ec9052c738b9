//! java-tron's Ethereum-style `/jsonrpc`, the methods the bridge reads with: block numbers and
//! blocks (`finalized` is the solidified block, as in java-tron), logs in a bounded range, and
//! receipts. Hashes are TRON's (block id, txID), addresses the 20-byte form.

use alloy_primitives::B256;
use serde_json::{Value, json};

use crate::chain::{Block, Chain, TxRecord};

/// java-tron's `maxBlockRange` for `eth_getLogs`.
pub const MAX_BLOCK_RANGE: u64 = 5000;

#[derive(Debug)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

fn invalid_params(message: impl Into<String>) -> RpcError {
    RpcError {
        code: -32602,
        message: message.into(),
    }
}

fn quantity(n: u64) -> Value {
    json!(format!("0x{n:x}"))
}

fn hash(h: &B256) -> Value {
    json!(format!("0x{}", hex::encode(h)))
}

/// Answers one JSON-RPC request object.
pub fn handle(chain: &Chain, request: &Value) -> Value {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let method = request.get("method").and_then(Value::as_str).unwrap_or("");
    let params = request.get("params").cloned().unwrap_or(json!([]));
    let result = match method {
        "eth_blockNumber" => Ok(quantity(chain.head().number)),
        "eth_chainId" => Ok(quantity(chain.chain_id)),
        "net_version" => Ok(json!(chain.chain_id.to_string())),
        "web3_clientVersion" => Ok(json!(concat!("bttd-tron-sim/", env!("CARGO_PKG_VERSION")))),
        "eth_getBlockByNumber" => block_by_number(chain, &params),
        "eth_getBlockByHash" => block_by_hash(chain, &params),
        "eth_getLogs" => logs(chain, &params),
        "eth_getTransactionReceipt" => receipt(chain, &params),
        _ => Err(RpcError {
            code: -32601,
            message: format!("the method {method} does not exist/is not available"),
        }),
    };
    match result {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(e) => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": e.code, "message": e.message}})
        }
    }
}

fn param(params: &Value, i: usize) -> Option<&Value> {
    params.as_array().and_then(|a| a.get(i))
}

/// A block tag or number: `latest`, `finalized`/`safe` (solidified), `earliest`, `0x..`.
fn block_number(chain: &Chain, tag: Option<&Value>) -> Result<u64, RpcError> {
    match tag.and_then(Value::as_str).unwrap_or("latest") {
        "latest" => Ok(chain.head().number),
        "finalized" => Ok(chain.solid_number()),
        tag @ ("pending" | "safe") => Err(invalid_params(format!("TAG {tag} not supported"))),
        "earliest" => Ok(0),
        s => {
            let digits = s
                .strip_prefix("0x")
                .ok_or_else(|| invalid_params(format!("invalid block number {s:?}")))?;
            u64::from_str_radix(digits, 16)
                .map_err(|e| invalid_params(format!("invalid block number {s:?}: {e}")))
        }
    }
}

fn block_object(chain: &Chain, block: &Block, full: bool) -> Value {
    let txs: Vec<Value> = block
        .txids
        .iter()
        .map(|id| {
            if full {
                json!({"hash": hash(id), "blockHash": hash(&block.id), "blockNumber": quantity(block.number)})
            } else {
                hash(id)
            }
        })
        .collect();
    json!({
        "number": quantity(block.number),
        "hash": hash(&block.id),
        "parentHash": hash(&block.parent),
        "timestamp": quantity(u64::try_from(block.timestamp_ms / 1000).unwrap_or(0)),
        "miner": format!("0x{}", hex::encode(chain.witness.evm())),
        "transactionsRoot": hash(&block.tx_root),
        "transactions": txs,
    })
}

fn block_by_number(chain: &Chain, params: &Value) -> Result<Value, RpcError> {
    let n = block_number(chain, param(params, 0))?;
    let full = param(params, 1).and_then(Value::as_bool).unwrap_or(false);
    Ok(chain
        .block(n)
        .map(|b| block_object(chain, b, full))
        .unwrap_or(Value::Null))
}

fn parse_hash(v: Option<&Value>) -> Result<B256, RpcError> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_params("expected a 32-byte hash"))?;
    s.strip_prefix("0x")
        .unwrap_or(s)
        .parse::<B256>()
        .map_err(|e| invalid_params(format!("invalid hash {s:?}: {e}")))
}

fn block_by_hash(chain: &Chain, params: &Value) -> Result<Value, RpcError> {
    let id = parse_hash(param(params, 0))?;
    let full = param(params, 1).and_then(Value::as_bool).unwrap_or(false);
    Ok(chain
        .block_by_id(&id)
        .map(|b| block_object(chain, b, full))
        .unwrap_or(Value::Null))
}

fn log_objects(block: &Block, index: usize, r: &TxRecord, first_log_index: usize) -> Vec<Value> {
    r.logs
        .iter()
        .enumerate()
        .map(|(i, l)| {
            json!({
                "address": format!("0x{}", hex::encode(l.address)),
                "topics": l.topics().iter().map(hash).collect::<Vec<_>>(),
                "data": format!("0x{}", hex::encode(&l.data.data)),
                "blockNumber": quantity(block.number),
                "blockHash": hash(&block.id),
                "blockTimestamp": quantity(u64::try_from(block.timestamp_ms / 1000).unwrap_or(0)),
                "transactionHash": hash(&r.id),
                "transactionIndex": quantity(index as u64),
                "logIndex": quantity((first_log_index + i) as u64),
                "removed": false,
            })
        })
        .collect()
}

fn address_matches(
    filter: Option<&Value>,
    address: &alloy_primitives::Address,
) -> Result<bool, RpcError> {
    let parse = |v: &Value| -> Result<alloy_primitives::Address, RpcError> {
        let s = v
            .as_str()
            .ok_or_else(|| invalid_params("address must be a string"))?;
        bttd_bridge::TronAddress::parse(s)
            .map(|a| a.evm())
            .map_err(|e| invalid_params(format!("address: {e}")))
    };
    match filter {
        None | Some(Value::Null) => Ok(true),
        Some(Value::Array(list)) => {
            for v in list {
                if parse(v)? == *address {
                    return Ok(true);
                }
            }
            Ok(list.is_empty())
        }
        Some(v) => Ok(parse(v)? == *address),
    }
}

fn topics_match(filter: Option<&Value>, topics: &[B256]) -> Result<bool, RpcError> {
    let Some(Value::Array(positions)) = filter else {
        return Ok(true);
    };
    for (i, want) in positions.iter().enumerate() {
        let options: Vec<B256> = match want {
            Value::Null => continue,
            Value::Array(list) => list
                .iter()
                .map(|v| parse_hash(Some(v)))
                .collect::<Result<_, _>>()?,
            v => vec![parse_hash(Some(v))?],
        };
        if options.is_empty() {
            continue;
        }
        match topics.get(i) {
            Some(t) if options.contains(t) => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

fn logs(chain: &Chain, params: &Value) -> Result<Value, RpcError> {
    let filter = param(params, 0).cloned().unwrap_or(json!({}));
    let (from, to) = if let Some(h) = filter.get("blockHash") {
        let id = parse_hash(Some(h))?;
        let b = chain
            .block_by_id(&id)
            .ok_or_else(|| invalid_params("unknown block hash"))?;
        (b.number, b.number)
    } else {
        let from = block_number(chain, filter.get("fromBlock"))?;
        let to = block_number(chain, filter.get("toBlock"))?;
        (from, to)
    };
    if from > to {
        return Err(invalid_params("please verify: fromBlock <= toBlock"));
    }
    if to - from >= MAX_BLOCK_RANGE {
        return Err(invalid_params(format!(
            "exceed max block range: {MAX_BLOCK_RANGE}"
        )));
    }
    let mut out = Vec::new();
    for n in from..=to.min(chain.head().number) {
        let Some(block) = chain.block(n) else { break };
        let mut log_index = 0;
        for (index, id) in block.txids.iter().enumerate() {
            let Some(r) = chain.tx(id) else { continue };
            for (i, object) in log_objects(block, index, r, log_index)
                .into_iter()
                .enumerate()
            {
                let l = &r.logs[i];
                if address_matches(filter.get("address"), &l.address)?
                    && topics_match(filter.get("topics"), l.topics())?
                {
                    out.push(object);
                }
            }
            log_index += r.logs.len();
        }
    }
    Ok(Value::Array(out))
}

fn receipt(chain: &Chain, params: &Value) -> Result<Value, RpcError> {
    let id = parse_hash(param(params, 0))?;
    let Some(r) = chain.tx(&id) else {
        return Ok(Value::Null);
    };
    let Some((number, _)) = r.block else {
        return Ok(Value::Null);
    };
    let Some(block) = chain.block(number) else {
        return Ok(Value::Null);
    };
    let index = block.txids.iter().position(|t| *t == id).unwrap_or(0);
    let first_log_index: usize = block.txids[..index]
        .iter()
        .filter_map(|t| chain.tx(t))
        .map(|t| t.logs.len())
        .sum();
    let success = r.result == crate::exec::ContractResult::Success;
    Ok(json!({
        "transactionHash": hash(&id),
        "transactionIndex": quantity(index as u64),
        "blockHash": hash(&block.id),
        "blockNumber": quantity(number),
        "from": format!("0x{}", hex::encode(r.owner.evm())),
        "gasUsed": quantity(r.energy_used),
        "cumulativeGasUsed": quantity(r.energy_used),
        "effectiveGasPrice": quantity(chain.energy_price()),
        "contractAddress": r.contract_address.map(|a| json!(format!("0x{}", hex::encode(a.evm())))).unwrap_or(Value::Null),
        "logs": log_objects(block, index, r, first_log_index),
        "status": if success { "0x1" } else { "0x0" },
        "type": "0x0",
    }))
}
