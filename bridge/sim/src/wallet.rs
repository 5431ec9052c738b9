//! java-tron's HTTP API (`/wallet/...` and `/walletsolidity/...`) over the simulated chain, in
//! java-tron's JSON: errors of a broadcast are HTTP 200 with `{"code", "txid", "message"}`
//! (the message hex-encoded, as java-tron prints its `bytes` field), an unknown id is `{}`,
//! a malformed request is `{"Error": "..."}`.

use alloy_primitives::{Address, B256, Bytes, keccak256};
use bttd_bridge::TronAddress;
use bttd_bridge::json::{
    smart_contract_to_json, spell_address, transaction_from_json, transaction_to_json,
};
use bttd_bridge::proto::{
    Any, Contract, ContractType, Transaction, TransactionRaw, TransferContract,
    TriggerSmartContract,
};
use bttd_bridge::tx::{recover, txid};
use prost::Message;
use serde_json::{Map, Value, json};

use crate::chain::{Block, Chain, MAX_FEE_LIMIT, TxRecord};

/// Energy a constant call may use (java-tron's `maxEnergyLimitForConstant`).
const CONSTANT_ENERGY_LIMIT: u64 = 100_000_000;
/// How long a transaction the node builds stays valid (java-tron's default, 60 s).
const BUILT_EXPIRATION_MS: i64 = 60_000;

/// A request that cannot be served: java-tron answers `{"Error": "..."}`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ApiError(pub String);

fn err(msg: impl Into<String>) -> ApiError {
    ApiError(msg.into())
}

pub fn visible(body: &Value) -> bool {
    match body.get("visible") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn str_field<'a>(body: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    body.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| err(format!("{name} is required and must be a string")))
}

fn address_field(body: &Value, name: &str) -> Result<TronAddress, ApiError> {
    TronAddress::parse(str_field(body, name)?).map_err(|e| err(format!("{name}: {e}")))
}

fn id_field(body: &Value, name: &str) -> Result<B256, ApiError> {
    let s = str_field(body, name)?;
    let digits = s.strip_prefix("0x").unwrap_or(s);
    let bytes = hex::decode(digits).map_err(|e| err(format!("{name}: not hex: {e}")))?;
    if bytes.len() != 32 {
        return Err(err(format!(
            "{name}: expected 32 bytes, got {}",
            bytes.len()
        )));
    }
    Ok(B256::from_slice(&bytes))
}

fn i64_field(body: &Value, name: &str) -> Result<i64, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_i64()
            .ok_or_else(|| err(format!("{name} must be an integer"))),
    }
}

/// `Num:N,ID:<hex>` as java-tron's node info spells a block.
fn num_id(block: &Block) -> String {
    format!("Num:{},ID:{}", block.number, hex::encode(block.id))
}

pub fn node_info(chain: &Chain) -> Value {
    json!({
        "beginSyncNum": chain.head().number,
        "block": num_id(chain.head()),
        "solidityBlock": num_id(chain.solid()),
        "currentConnectCount": 0,
        "activeConnectCount": 0,
        "passiveConnectCount": 0,
        "totalFlow": 0,
        "peerInfoList": [],
        "configNodeInfo": {
            "codeVersion": concat!("bttd-tron-sim ", env!("CARGO_PKG_VERSION")),
            "versionNum": "0",
            "dbVersion": 0,
            "minParticipationRate": 0,
            "supportConstant": true,
            "activeNodeSize": 0,
            "passiveNodeSize": 0,
            "sendNodeSize": 0,
            "maxConnectCount": 0,
            "sameIpMaxConnectCount": 0,
            "backupListenPort": 0,
            "backupMemberSize": 0,
            "backupPriority": 0,
            "dbVersion": 0,
            "allowCreationOfContracts": 1,
            "allowAdaptiveEnergy": 0
        },
        "machineInfo": {},
        "cheatWitnessInfoMap": {}
    })
}

pub fn chain_parameters(chain: &Chain) -> Value {
    let params = [
        ("getEnergyFee", chain.energy_price() as i64),
        ("getTransactionFee", 1000),
        ("getMaxFeeLimit", MAX_FEE_LIMIT),
        ("getAllowCreationOfContracts", 1),
        ("getAllowTvmTransferTrc10", 0),
        ("getAllowTvmConstantinople", 1),
        ("getAllowTvmSolidity059", 1),
        ("getAllowTvmIstanbul", 1),
        ("getAllowTvmLondon", 1),
        ("getAllowTvmShangHai", 1),
        ("getAllowTvmCancun", 0),
        ("getAllowMultiSign", 0),
    ];
    let list: Vec<Value> = params
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    json!({ "chainParameter": list })
}

fn ret_json(record: &TxRecord) -> Value {
    let mut ret = Map::new();
    if record.fee != 0 {
        ret.insert("fee".into(), json!(record.fee));
    }
    ret.insert("contractRet".into(), json!(record.result.name()));
    Value::Array(vec![Value::Object(ret)])
}

fn tx_json(record: &TxRecord, visible: bool) -> Result<Value, ApiError> {
    let mut v = transaction_to_json(&record.tx, visible).map_err(|e| err(e.to_string()))?;
    v["ret"] = ret_json(record);
    Ok(v)
}

pub fn block_json(chain: &Chain, block: &Block, visible: bool) -> Result<Value, ApiError> {
    let header = block.header(&chain.witness);
    let mut raw = Map::new();
    if header.number != 0 {
        raw.insert("number".into(), json!(header.number));
    }
    raw.insert(
        "txTrieRoot".into(),
        json!(hex::encode(&header.tx_trie_root)),
    );
    raw.insert(
        "witness_address".into(),
        spell_address(&header.witness_address, visible),
    );
    raw.insert("parentHash".into(), json!(hex::encode(&header.parent_hash)));
    if header.witness_id != 0 {
        raw.insert("witness_id".into(), json!(header.witness_id));
    }
    raw.insert("version".into(), json!(header.version));
    raw.insert("timestamp".into(), json!(header.timestamp));
    let mut out = Map::new();
    out.insert("blockID".into(), json!(hex::encode(block.id)));
    out.insert(
        "block_header".into(),
        json!({ "raw_data": Value::Object(raw), "witness_signature": "" }),
    );
    let txs = block
        .txids
        .iter()
        .filter_map(|id| chain.tx(id))
        .map(|r| tx_json(r, visible))
        .collect::<Result<Vec<_>, _>>()?;
    if !txs.is_empty() {
        out.insert("transactions".into(), Value::Array(txs));
    }
    Ok(Value::Object(out))
}

pub fn block_by_num(chain: &Chain, body: &Value) -> Result<Value, ApiError> {
    let num = body
        .get("num")
        .and_then(Value::as_u64)
        .ok_or_else(|| err("num is required and must be a non-negative integer"))?;
    match chain.block(num) {
        Some(b) => block_json(chain, b, visible(body)),
        None => Ok(json!({})),
    }
}

/// `getblock {"id_or_num", "detail"}`: the head (solidified) block when no id is given,
/// transactions only with `detail`.
pub fn get_block(chain: &Chain, body: &Value, solid: bool) -> Result<Value, ApiError> {
    let limit = if solid {
        chain.solid_number()
    } else {
        chain.head().number
    };
    let block = match body.get("id_or_num") {
        None | Some(Value::Null) => chain.block(limit),
        Some(Value::String(s)) if s.len() == 64 => {
            let id = id_field(body, "id_or_num")?;
            chain.block_by_id(&id)
        }
        Some(Value::String(s)) => chain.block(
            s.parse()
                .map_err(|_| err("id_or_num: not a block number or id"))?,
        ),
        Some(v) => chain.block(
            v.as_u64()
                .ok_or_else(|| err("id_or_num: not a block number or id"))?,
        ),
    };
    let Some(block) = block.filter(|b| b.number <= limit) else {
        return Ok(json!({}));
    };
    let mut v = block_json(chain, block, visible(body))?;
    let detail = body.get("detail").and_then(Value::as_bool).unwrap_or(false);
    if !detail && let Some(m) = v.as_object_mut() {
        m.remove("transactions");
    }
    Ok(v)
}

pub fn block_by_id(chain: &Chain, body: &Value) -> Result<Value, ApiError> {
    let id = id_field(body, "value")?;
    match chain.block_by_id(&id) {
        Some(b) => block_json(chain, b, visible(body)),
        None => Ok(json!({})),
    }
}

pub fn transaction_by_id(chain: &Chain, body: &Value) -> Result<Value, ApiError> {
    let id = id_field(body, "value")?;
    match chain.tx(&id) {
        Some(r) => tx_json(r, visible(body)),
        None => Ok(json!({})),
    }
}

/// `gettransactioninfobyid`; `solid` answers only for transactions in solidified blocks.
pub fn transaction_info(chain: &Chain, body: &Value, solid: bool) -> Result<Value, ApiError> {
    let id = id_field(body, "value")?;
    let record = if solid {
        chain.solid_tx(&id)
    } else {
        chain.tx(&id)
    };
    let Some(r) = record else {
        return Ok(json!({}));
    };
    Ok(info_json(r, visible(body)))
}

/// java-tron's `TransactionInfo` JSON.
pub fn info_json(r: &TxRecord, visible: bool) -> Value {
    let (number, time) = r.block.unwrap_or_default();
    let mut m = Map::new();
    m.insert("id".into(), json!(hex::encode(r.id)));
    if r.fee != 0 {
        m.insert("fee".into(), json!(r.fee));
    }
    m.insert("blockNumber".into(), json!(number));
    m.insert("blockTimeStamp".into(), json!(time));
    m.insert("contractResult".into(), json!([hex::encode(&r.output)]));
    if let Some(a) = r.contract_address {
        m.insert(
            "contract_address".into(),
            spell_address(&a.to_bytes21(), visible),
        );
    }
    let receipt = match r.kind {
        ContractType::TransferContract => json!({ "net_usage": r.net_usage }),
        _ => {
            let mut rc = Map::new();
            if r.fee != 0 {
                rc.insert("energy_fee".into(), json!(r.fee));
            }
            rc.insert("energy_usage_total".into(), json!(r.energy_used));
            rc.insert("net_usage".into(), json!(r.net_usage));
            rc.insert("result".into(), json!(r.result.name()));
            Value::Object(rc)
        }
    };
    m.insert("receipt".into(), receipt);
    if !r.logs.is_empty() {
        let logs: Vec<Value> = r
            .logs
            .iter()
            .map(|l| {
                let address = if visible {
                    json!(TronAddress::from_evm(l.address).to_base58())
                } else {
                    json!(hex::encode(l.address))
                };
                json!({
                    "address": address,
                    "topics": l.topics().iter().map(hex::encode).collect::<Vec<_>>(),
                    "data": hex::encode(&l.data.data),
                })
            })
            .collect();
        m.insert("log".into(), Value::Array(logs));
    }
    if r.result != crate::exec::ContractResult::Success {
        m.insert("result".into(), json!("FAILED"));
        let message = match r.result {
            crate::exec::ContractResult::Revert => "REVERT opcode executed".to_string(),
            other => other.name().to_string(),
        };
        m.insert("resMessage".into(), json!(hex::encode(message)));
    }
    Value::Object(m)
}

/// `getaccount`; `solid` reads the state of the solidified block (`walletsolidity/`).
pub fn account(chain: &Chain, body: &Value, solid: bool) -> Result<Value, ApiError> {
    let address = address_field(body, "address")?;
    let found = if solid {
        chain.solid_account(&address.evm())
    } else {
        chain.account(&address.evm())
    };
    let Some((balance, is_contract)) = found else {
        return Ok(json!({}));
    };
    let mut m = Map::new();
    m.insert(
        "address".into(),
        spell_address(&address.to_bytes21(), visible(body)),
    );
    let balance = u64::try_from(balance).map_err(|_| err("balance exceeds int64"))?;
    if balance != 0 {
        m.insert("balance".into(), json!(balance));
    }
    if is_contract {
        m.insert("type".into(), json!("Contract"));
    }
    m.insert("account_resource".into(), json!({}));
    Ok(Value::Object(m))
}

pub fn contract(chain: &Chain, body: &Value) -> Result<Value, ApiError> {
    let address = address_field(body, "value")?;
    Ok(match chain.contract(&address.evm()) {
        Some(c) => smart_contract_to_json(c, visible(body)),
        None => json!({}),
    })
}

/// The call data of a trigger request: `data`, or `function_selector` and `parameter`.
fn call_data(body: &Value) -> Result<Bytes, ApiError> {
    if let Some(data) = body.get("data").and_then(Value::as_str) {
        return hex::decode(data.strip_prefix("0x").unwrap_or(data))
            .map(Bytes::from)
            .map_err(|e| err(format!("data: not hex: {e}")));
    }
    let mut out = Vec::new();
    if let Some(selector) = body.get("function_selector").and_then(Value::as_str) {
        let compact: String = selector.chars().filter(|c| !c.is_whitespace()).collect();
        out.extend_from_slice(&keccak256(compact.as_bytes())[..4]);
    }
    if let Some(p) = body.get("parameter").and_then(Value::as_str) {
        out.extend(hex::decode(p).map_err(|e| err(format!("parameter: not hex: {e}")))?);
    }
    Ok(out.into())
}

fn call_value(body: &Value) -> Result<u64, ApiError> {
    u64::try_from(i64_field(body, "call_value")?).map_err(|_| err("call_value must be >= 0"))
}

/// `triggerconstantcontract` and `estimateenergy`: a call on the open block's state. As in
/// java-tron, a revert is `result.result: true` with `result.message`, and a missing contract
/// is `CONTRACT_VALIDATE_ERROR`.
pub fn constant(chain: &Chain, body: &Value, estimate: bool) -> Result<Value, ApiError> {
    let owner = match body.get("owner_address") {
        Some(Value::String(s)) if !s.is_empty() => address_field(body, "owner_address")?,
        _ => TronAddress::from_evm(Address::ZERO),
    };
    let contract = address_field(body, "contract_address")?;
    if !chain.account(&contract.evm()).is_some_and(|(_, code)| code) {
        return Ok(json!({"result": {
            "code": "CONTRACT_VALIDATE_ERROR",
            "message": hex::encode("Smart contract is not exist."),
        }}));
    }
    let data = call_data(body)?;
    let outcome = match chain.constant_call(
        owner.evm(),
        contract.evm(),
        data,
        call_value(body)?,
        CONSTANT_ENERGY_LIMIT,
    ) {
        Ok(outcome) => outcome,
        Err(e) => {
            return Ok(
                json!({"result": {"code": "OTHER_ERROR", "message": hex::encode(e.to_string())}}),
            );
        }
    };
    let ok = outcome.result == crate::exec::ContractResult::Success;
    let result = if ok {
        json!({"result": true})
    } else {
        let message = match outcome.result {
            crate::exec::ContractResult::Revert => "REVERT opcode executed".to_string(),
            other => other.name().to_string(),
        };
        json!({"result": true, "message": hex::encode(message)})
    };
    if estimate {
        let mut v = json!({ "result": result });
        if ok {
            v["energy_required"] = json!(outcome.energy_used);
        }
        return Ok(v);
    }
    Ok(json!({
        "result": result,
        "energy_used": outcome.energy_used,
        "constant_result": [hex::encode(&outcome.output)],
        "transaction": {"ret": [if ok { json!({}) } else { json!({"ret": "FAILED"}) }]},
    }))
}

/// An unsigned transaction referencing the head block, as java-tron's builders return it.
fn build(
    chain: &Chain,
    kind: ContractType,
    value: Vec<u8>,
    body: &Value,
) -> Result<Value, ApiError> {
    let head = chain.head();
    let raw = TransactionRaw {
        ref_block_bytes: head.id[6..8].to_vec(),
        ref_block_hash: head.id[8..16].to_vec(),
        expiration: head.timestamp_ms + BUILT_EXPIRATION_MS,
        timestamp: head.timestamp_ms,
        fee_limit: i64_field(body, "fee_limit")?,
        contract: vec![Contract {
            r#type: kind as i32,
            parameter: Some(Any {
                type_url: kind.type_url(),
                value,
            }),
            permission_id: i32::try_from(i64_field(body, "Permission_id")?)
                .map_err(|_| err("Permission_id out of range"))?,
            ..Default::default()
        }],
        ..Default::default()
    };
    let tx = Transaction {
        raw_data: Some(raw),
        ..Default::default()
    };
    transaction_to_json(&tx, visible(body)).map_err(|e| err(e.to_string()))
}

pub fn trigger_smart_contract(chain: &Chain, body: &Value) -> Result<Value, ApiError> {
    let owner = address_field(body, "owner_address")?;
    let contract = address_field(body, "contract_address")?;
    let value = TriggerSmartContract {
        owner_address: owner.to_bytes21().to_vec(),
        contract_address: contract.to_bytes21().to_vec(),
        call_value: i64_field(body, "call_value")?,
        data: call_data(body)?.to_vec(),
        call_token_value: i64_field(body, "call_token_value")?,
        token_id: i64_field(body, "token_id")?,
    }
    .encode_to_vec();
    let tx = build(chain, ContractType::TriggerSmartContract, value, body)?;
    Ok(json!({ "result": {"result": true}, "transaction": tx }))
}

pub fn create_transaction(chain: &Chain, body: &Value) -> Result<Value, ApiError> {
    let value = TransferContract {
        owner_address: address_field(body, "owner_address")?.to_bytes21().to_vec(),
        to_address: address_field(body, "to_address")?.to_bytes21().to_vec(),
        amount: i64_field(body, "amount")?,
    }
    .encode_to_vec();
    build(chain, ContractType::TransferContract, value, body)
}

/// `getsignweight`: the txID the node computes and the owner permission (a single key).
pub fn sign_weight(body: &Value) -> Result<Value, ApiError> {
    let tx = transaction_from_json(body).map_err(|e| err(e.to_string()))?;
    let raw = tx
        .raw_data
        .as_ref()
        .ok_or_else(|| err("raw_data is required"))?;
    let id = txid(raw);
    let owner = owner_address(&tx)?;
    let vis = visible(body);
    let owner_spelled = spell_address(&owner.to_bytes21(), vis);
    let approved: Vec<Value> = tx
        .signature
        .iter()
        .filter_map(|s| recover(&id, s).ok())
        .filter(|a| *a == owner)
        .map(|a| spell_address(&a.to_bytes21(), vis))
        .collect();
    let code = if approved.is_empty() {
        "NOT_ENOUGH_PERMISSION"
    } else {
        "ENOUGH_PERMISSION"
    };
    let tx_json = transaction_to_json(&tx, vis).map_err(|e| err(e.to_string()))?;
    Ok(json!({
        "result": {"code": code},
        "permission": {
            "permission_name": "owner",
            "threshold": 1,
            "keys": [{"address": owner_spelled, "weight": 1}]
        },
        "current_weight": approved.len(),
        "approved_list": approved,
        "transaction": {
            "result": {"result": true},
            "txid": hex::encode(id),
            "transaction": tx_json
        }
    }))
}

fn owner_address(tx: &Transaction) -> Result<TronAddress, ApiError> {
    let raw = tx
        .raw_data
        .as_ref()
        .ok_or_else(|| err("raw_data is required"))?;
    let contract = raw.contract.first().ok_or_else(|| err("no contract"))?;
    let value = contract
        .parameter
        .as_ref()
        .map(|p| p.value.as_slice())
        .unwrap_or_default();
    // Every contract type puts owner_address in field 1.
    let owner = TransferContract::decode(value)
        .map(|c| c.owner_address)
        .map_err(|e| err(format!("contract does not decode: {e}")))?;
    TronAddress::from_bytes21(&owner).map_err(|e| err(format!("owner_address: {e}")))
}

/// `broadcasttransaction`: `{"result": true, "txid"}` or java-tron's refusal.
pub fn broadcast(chain: &mut Chain, body: &Value) -> Result<Value, ApiError> {
    let tx = transaction_from_json(body).map_err(|e| err(e.to_string()))?;
    let id = tx.raw_data.as_ref().map(txid).unwrap_or_default();
    Ok(match chain.submit(tx) {
        Ok(id) => json!({"result": true, "txid": hex::encode(id)}),
        Err(refused) => json!({
            "code": refused.code,
            "txid": hex::encode(id),
            "message": hex::encode(refused.message),
        }),
    })
}
