//! java-tron's JSON spelling of transactions, both ways: the `raw_data` object clients send to
//! `wallet/getsignweight` and `wallet/broadcasttransaction` becomes the protobuf
//! `Transaction.raw` whose sha256 is the txID, and a stored transaction is printed back the way
//! java-tron prints it (`visible: true` spells addresses in base58, otherwise `41...` hex;
//! bytes are hex; fields at their default value are left out). Addresses are read in any of
//! the three spellings. Only the contract types the simulator executes are understood; any
//! other is refused by name rather than hashed wrongly.

use serde_json::{Map, Value, json};

use crate::address::TronAddress;
use crate::proto::{
    Abi, AbiEntry, AbiEntryType, AbiParam, Any, Contract, ContractType, CreateSmartContract,
    SmartContract, StateMutability, Transaction, TransactionRaw, TransferContract,
    TriggerSmartContract,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("{field}: {reason}")]
    Field { field: String, reason: String },
    #[error(
        "unsupported contract type {0:?} (the simulator runs TransferContract, CreateSmartContract and TriggerSmartContract)"
    )]
    ContractType(String),
    #[error("a transaction carries exactly one contract, this one carries {0}")]
    ContractCount(usize),
    #[error("{0} is not supported by the simulator")]
    Unsupported(&'static str),
    #[error("parameter does not decode as {0}: {1}")]
    Decode(&'static str, String),
}

fn bad(field: &str, reason: impl Into<String>) -> JsonError {
    JsonError::Field {
        field: field.to_string(),
        reason: reason.into(),
    }
}

fn obj<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>, JsonError> {
    v.as_object()
        .ok_or_else(|| bad(field, "expected an object"))
}

fn int(o: &Map<String, Value>, field: &str) -> Result<i64, JsonError> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_i64()
            .ok_or_else(|| bad(field, "expected an integer within int64")),
    }
}

fn boolean(o: &Map<String, Value>, field: &str) -> Result<bool, JsonError> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(v) => v.as_bool().ok_or_else(|| bad(field, "expected a boolean")),
    }
}

fn string(o: &Map<String, Value>, field: &str) -> Result<String, JsonError> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(v) => v
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| bad(field, "expected a string")),
    }
}

fn hex_bytes(o: &Map<String, Value>, field: &str) -> Result<Vec<u8>, JsonError> {
    let s = string(o, field)?;
    let digits = s.strip_prefix("0x").unwrap_or(&s);
    hex::decode(digits).map_err(|e| bad(field, format!("not hex: {e}")))
}

/// An address field: empty stays empty (protobuf default), anything else must parse.
fn address(o: &Map<String, Value>, field: &str) -> Result<Vec<u8>, JsonError> {
    let s = string(o, field)?;
    if s.is_empty() {
        return Ok(Vec::new());
    }
    TronAddress::parse(&s)
        .map(|a| a.to_bytes21().to_vec())
        .map_err(|e| bad(field, e.to_string()))
}

/// Parses java-tron's `raw_data` object into `Transaction.raw`.
pub fn raw_from_json(v: &Value) -> Result<TransactionRaw, JsonError> {
    let o = obj(v, "raw_data")?;
    if o.get("auths").is_some_and(|a| !a.is_null()) {
        return Err(JsonError::Unsupported("raw_data.auths"));
    }
    if o.get("scripts").is_some_and(|a| !a.is_null()) {
        return Err(JsonError::Unsupported("raw_data.scripts"));
    }
    let contracts = o
        .get("contract")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("raw_data.contract", "expected an array"))?;
    if contracts.len() != 1 {
        return Err(JsonError::ContractCount(contracts.len()));
    }
    let contract = contract_from_json(&contracts[0])?;
    Ok(TransactionRaw {
        ref_block_bytes: hex_bytes(o, "ref_block_bytes")?,
        ref_block_num: int(o, "ref_block_num")?,
        ref_block_hash: hex_bytes(o, "ref_block_hash")?,
        expiration: int(o, "expiration")?,
        auths: Vec::new(),
        data: hex_bytes(o, "data")?,
        contract: vec![contract],
        scripts: Vec::new(),
        timestamp: int(o, "timestamp")?,
        fee_limit: int(o, "fee_limit")?,
    })
}

fn contract_from_json(v: &Value) -> Result<Contract, JsonError> {
    let o = obj(v, "contract")?;
    let type_name = string(o, "type")?;
    let kind = ContractType::from_name(&type_name).ok_or(JsonError::ContractType(type_name))?;
    let parameter = o
        .get("parameter")
        .ok_or_else(|| bad("contract.parameter", "missing"))?;
    let p = obj(parameter, "contract.parameter")?;
    let value = obj(
        p.get("value")
            .ok_or_else(|| bad("contract.parameter.value", "missing"))?,
        "contract.parameter.value",
    )?;
    let type_url = match string(p, "type_url")? {
        s if s.is_empty() => kind.type_url(),
        s => s,
    };
    let encoded = match kind {
        ContractType::TransferContract => prost::Message::encode_to_vec(&TransferContract {
            owner_address: address(value, "owner_address")?,
            to_address: address(value, "to_address")?,
            amount: int(value, "amount")?,
        }),
        ContractType::TriggerSmartContract => {
            prost::Message::encode_to_vec(&TriggerSmartContract {
                owner_address: address(value, "owner_address")?,
                contract_address: address(value, "contract_address")?,
                call_value: int(value, "call_value")?,
                data: hex_bytes(value, "data")?,
                call_token_value: int(value, "call_token_value")?,
                token_id: int(value, "token_id")?,
            })
        }
        ContractType::CreateSmartContract => {
            let new_contract = match value.get("new_contract") {
                None | Some(Value::Null) => None,
                Some(nc) => Some(smart_contract_from_json(obj(nc, "new_contract")?)?),
            };
            prost::Message::encode_to_vec(&CreateSmartContract {
                owner_address: address(value, "owner_address")?,
                new_contract,
                call_token_value: int(value, "call_token_value")?,
                token_id: int(value, "token_id")?,
            })
        }
        other => return Err(JsonError::ContractType(other.name().to_string())),
    };
    Ok(Contract {
        r#type: kind as i32,
        parameter: Some(Any {
            type_url,
            value: encoded,
        }),
        provider: hex_bytes(o, "provider")?,
        contract_name: hex_bytes(o, "ContractName")?,
        permission_id: i32::try_from(int(o, "Permission_id")?)
            .map_err(|_| bad("Permission_id", "out of int32 range"))?,
    })
}

fn smart_contract_from_json(o: &Map<String, Value>) -> Result<SmartContract, JsonError> {
    let abi = match o.get("abi") {
        None | Some(Value::Null) => None,
        Some(a) => {
            let entries = match a {
                // java-tron's `{"entrys": [...]}`, or a bare solc ABI array.
                Value::Object(m) => m.get("entrys").cloned().unwrap_or(Value::Array(vec![])),
                Value::Array(_) => a.clone(),
                _ => return Err(bad("abi", "expected an object or an array")),
            };
            let entries = entries
                .as_array()
                .ok_or_else(|| bad("abi.entrys", "expected an array"))?
                .iter()
                .map(abi_entry_from_json)
                .collect::<Result<Vec<_>, _>>()?;
            Some(Abi { entrys: entries })
        }
    };
    Ok(SmartContract {
        origin_address: address(o, "origin_address")?,
        contract_address: address(o, "contract_address")?,
        abi,
        bytecode: hex_bytes(o, "bytecode")?,
        call_value: int(o, "call_value")?,
        consume_user_resource_percent: int(o, "consume_user_resource_percent")?,
        name: string(o, "name")?,
        origin_energy_limit: int(o, "origin_energy_limit")?,
        code_hash: hex_bytes(o, "code_hash")?,
        trx_hash: hex_bytes(o, "trx_hash")?,
        version: i32::try_from(int(o, "version")?)
            .map_err(|_| bad("version", "out of int32 range"))?,
    })
}

fn abi_entry_from_json(v: &Value) -> Result<AbiEntry, JsonError> {
    let o = obj(v, "abi entry")?;
    let params = |field: &str| -> Result<Vec<AbiParam>, JsonError> {
        match o.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|p| {
                    let p = obj(p, field)?;
                    Ok(AbiParam {
                        indexed: boolean(p, "indexed")?,
                        name: string(p, "name")?,
                        r#type: string(p, "type")?,
                    })
                })
                .collect(),
            Some(_) => Err(bad(field, "expected an array")),
        }
    };
    let entry_type = string(o, "type")?;
    let entry_type = match entry_type.to_ascii_lowercase().as_str() {
        "" | "unknownentrytype" => AbiEntryType::UnknownEntryType,
        "constructor" => AbiEntryType::Constructor,
        "function" => AbiEntryType::Function,
        "event" => AbiEntryType::Event,
        "fallback" => AbiEntryType::Fallback,
        "receive" => AbiEntryType::Receive,
        "error" => AbiEntryType::Error,
        _ => {
            return Err(bad(
                "abi type",
                format!("unknown entry type {entry_type:?}"),
            ));
        }
    };
    let mutability = string(o, "stateMutability")?;
    let mutability = match mutability.to_ascii_lowercase().as_str() {
        "" | "unknownmutabilitytype" => StateMutability::UnknownMutabilityType,
        "pure" => StateMutability::Pure,
        "view" => StateMutability::View,
        "nonpayable" => StateMutability::Nonpayable,
        "payable" => StateMutability::Payable,
        _ => {
            return Err(bad(
                "abi stateMutability",
                format!("unknown mutability {mutability:?}"),
            ));
        }
    };
    Ok(AbiEntry {
        anonymous: boolean(o, "anonymous")?,
        constant: boolean(o, "constant")?,
        name: string(o, "name")?,
        inputs: params("inputs")?,
        outputs: params("outputs")?,
        r#type: entry_type as i32,
        payable: boolean(o, "payable")?,
        state_mutability: mutability as i32,
    })
}

/// How java-tron spells an address: base58 when `visible`, `41...` hex otherwise.
pub fn spell_address(bytes: &[u8], visible: bool) -> Value {
    match TronAddress::from_bytes21(bytes) {
        Ok(a) if visible => Value::String(a.to_base58()),
        Ok(a) => Value::String(a.to_hex41()),
        Err(_) => Value::String(hex::encode(bytes)),
    }
}

fn put_int(m: &mut Map<String, Value>, k: &str, v: i64) {
    if v != 0 {
        m.insert(k.to_string(), json!(v));
    }
}

fn put_hex(m: &mut Map<String, Value>, k: &str, v: &[u8]) {
    if !v.is_empty() {
        m.insert(k.to_string(), json!(hex::encode(v)));
    }
}

fn put_addr(m: &mut Map<String, Value>, k: &str, v: &[u8], visible: bool) {
    if !v.is_empty() {
        m.insert(k.to_string(), spell_address(v, visible));
    }
}

/// Prints `Transaction.raw` as java-tron does.
pub fn raw_to_json(raw: &TransactionRaw, visible: bool) -> Result<Value, JsonError> {
    let mut m = Map::new();
    let contracts = raw
        .contract
        .iter()
        .map(|c| contract_to_json(c, visible))
        .collect::<Result<Vec<_>, _>>()?;
    m.insert("contract".into(), Value::Array(contracts));
    put_hex(&mut m, "ref_block_bytes", &raw.ref_block_bytes);
    put_int(&mut m, "ref_block_num", raw.ref_block_num);
    put_hex(&mut m, "ref_block_hash", &raw.ref_block_hash);
    put_int(&mut m, "expiration", raw.expiration);
    put_hex(&mut m, "data", &raw.data);
    put_int(&mut m, "timestamp", raw.timestamp);
    put_int(&mut m, "fee_limit", raw.fee_limit);
    Ok(Value::Object(m))
}

fn contract_to_json(c: &Contract, visible: bool) -> Result<Value, JsonError> {
    let kind = ContractType::try_from(c.r#type)
        .map_err(|_| JsonError::ContractType(c.r#type.to_string()))?;
    let any = c.parameter.clone().unwrap_or_default();
    let mut v = Map::new();
    match kind {
        ContractType::TransferContract => {
            let t: TransferContract = prost::Message::decode(any.value.as_slice())
                .map_err(|e| JsonError::Decode("TransferContract", e.to_string()))?;
            put_int(&mut v, "amount", t.amount);
            put_addr(&mut v, "owner_address", &t.owner_address, visible);
            put_addr(&mut v, "to_address", &t.to_address, visible);
        }
        ContractType::TriggerSmartContract => {
            let t: TriggerSmartContract = prost::Message::decode(any.value.as_slice())
                .map_err(|e| JsonError::Decode("TriggerSmartContract", e.to_string()))?;
            put_hex(&mut v, "data", &t.data);
            put_addr(&mut v, "owner_address", &t.owner_address, visible);
            put_addr(&mut v, "contract_address", &t.contract_address, visible);
            put_int(&mut v, "call_value", t.call_value);
            put_int(&mut v, "call_token_value", t.call_token_value);
            put_int(&mut v, "token_id", t.token_id);
        }
        ContractType::CreateSmartContract => {
            let t: CreateSmartContract = prost::Message::decode(any.value.as_slice())
                .map_err(|e| JsonError::Decode("CreateSmartContract", e.to_string()))?;
            put_addr(&mut v, "owner_address", &t.owner_address, visible);
            if let Some(nc) = &t.new_contract {
                v.insert("new_contract".into(), smart_contract_to_json(nc, visible));
            }
            put_int(&mut v, "call_token_value", t.call_token_value);
            put_int(&mut v, "token_id", t.token_id);
        }
        other => return Err(JsonError::ContractType(other.name().to_string())),
    }
    let mut m = Map::new();
    m.insert(
        "parameter".into(),
        json!({"value": Value::Object(v), "type_url": any.type_url}),
    );
    m.insert("type".into(), json!(kind.name()));
    if c.permission_id != 0 {
        m.insert("Permission_id".into(), json!(c.permission_id));
    }
    Ok(Value::Object(m))
}

/// `SmartContract` as `wallet/getcontract` prints it.
pub fn smart_contract_to_json(c: &SmartContract, visible: bool) -> Value {
    let mut m = Map::new();
    put_addr(&mut m, "origin_address", &c.origin_address, visible);
    put_addr(&mut m, "contract_address", &c.contract_address, visible);
    if let Some(abi) = &c.abi {
        let entries: Vec<Value> = abi.entrys.iter().map(abi_entry_to_json).collect();
        m.insert("abi".into(), json!({ "entrys": entries }));
    }
    put_hex(&mut m, "bytecode", &c.bytecode);
    put_int(&mut m, "call_value", c.call_value);
    put_int(
        &mut m,
        "consume_user_resource_percent",
        c.consume_user_resource_percent,
    );
    if !c.name.is_empty() {
        m.insert("name".into(), json!(c.name));
    }
    put_int(&mut m, "origin_energy_limit", c.origin_energy_limit);
    put_hex(&mut m, "code_hash", &c.code_hash);
    put_hex(&mut m, "trx_hash", &c.trx_hash);
    put_int(&mut m, "version", i64::from(c.version));
    Value::Object(m)
}

fn abi_entry_to_json(e: &AbiEntry) -> Value {
    let mut m = Map::new();
    if e.anonymous {
        m.insert("anonymous".into(), json!(true));
    }
    if e.constant {
        m.insert("constant".into(), json!(true));
    }
    if !e.name.is_empty() {
        m.insert("name".into(), json!(e.name));
    }
    let params = |ps: &[AbiParam]| -> Value {
        ps.iter()
            .map(|p| {
                let mut pm = Map::new();
                if p.indexed {
                    pm.insert("indexed".into(), json!(true));
                }
                if !p.name.is_empty() {
                    pm.insert("name".into(), json!(p.name));
                }
                pm.insert("type".into(), json!(p.r#type));
                Value::Object(pm)
            })
            .collect()
    };
    if !e.inputs.is_empty() {
        m.insert("inputs".into(), params(&e.inputs));
    }
    if !e.outputs.is_empty() {
        m.insert("outputs".into(), params(&e.outputs));
    }
    if let Ok(t) = AbiEntryType::try_from(e.r#type) {
        m.insert("type".into(), json!(format!("{t:?}")));
    }
    if e.payable {
        m.insert("payable".into(), json!(true));
    }
    if let Ok(s) = StateMutability::try_from(e.state_mutability)
        && s != StateMutability::UnknownMutabilityType
    {
        m.insert("stateMutability".into(), json!(format!("{s:?}")));
    }
    Value::Object(m)
}

/// A whole transaction as java-tron prints it (`wallet/gettransactionbyid`).
pub fn transaction_to_json(tx: &Transaction, visible: bool) -> Result<Value, JsonError> {
    let raw = tx.raw_data.clone().unwrap_or_default();
    let raw_hex = hex::encode(crate::tx::raw_bytes(&raw));
    let id = crate::tx::txid(&raw);
    let mut v = json!({
        "visible": visible,
        "txID": hex::encode(id),
        "raw_data": raw_to_json(&raw, visible)?,
        "raw_data_hex": raw_hex,
    });
    // java-tron leaves an unsigned transaction's signature out (tronweb refuses to sign a
    // transaction that has the field, even empty).
    if !tx.signature.is_empty() {
        v["signature"] = json!(tx.signature.iter().map(hex::encode).collect::<Vec<_>>());
    }
    Ok(v)
}

/// Reads a transaction object (`txID`, `raw_data`, `signature`) as clients broadcast it.
/// The txID is always recomputed from `raw_data`; a client's claimed `txID` is not trusted.
pub fn transaction_from_json(v: &Value) -> Result<Transaction, JsonError> {
    let o = obj(v, "transaction")?;
    let raw = raw_from_json(
        o.get("raw_data")
            .ok_or_else(|| bad("raw_data", "missing"))?,
    )?;
    let signature = match o.get("signature") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(sigs)) => sigs
            .iter()
            .map(|s| {
                let s = s
                    .as_str()
                    .ok_or_else(|| bad("signature", "expected hex strings"))?;
                hex::decode(s).map_err(|e| bad("signature", format!("not hex: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad("signature", "expected an array")),
    };
    Ok(Transaction {
        raw_data: Some(raw),
        signature,
        ret: Vec::new(),
    })
}
