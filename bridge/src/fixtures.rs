//! `JavaTron`'s parsers on response examples from TRON's documentation (real Nile captures,
//! copied verbatim into bridge/fixtures/; the URL of each page is beside its test). Where the
//! documentation abbreviated or mistyped a field, the test says so and checks that the parser
//! refuses that field rather than misreading it.

use alloy_primitives::{B256, Bytes, b256};
use serde_json::Value;

use crate::address::TronAddress;
use crate::javatron::{
    check_built, parse_block, parse_broadcast, parse_constant, parse_info, parse_logs,
};
use crate::root_chain::{ContractCall, RootChainError};
use crate::tx::raw_bytes;

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// https://tronprotocol.github.io/documentation-en/api/json-rpc/block-and-tx-query/eth_getBlockByNumber/
#[test]
fn eth_get_block_by_number_from_docs() {
    let v = fixture(include_str!("../fixtures/eth_getBlockByNumber.json"));
    let block = parse_block(&v["result"]).unwrap();
    assert_eq!(block.number, 0x3fe1c00);
    assert_eq!(
        block.id,
        b256!("0000000003fe1c00462b498ddae67717e96c785078adb5ccb7279148916e6f97")
    );
    // TRON's block id starts with the 8-byte block number.
    assert_eq!(
        u64::from_be_bytes(block.id[..8].try_into().unwrap()),
        block.number
    );
    assert_eq!(
        u64::from_be_bytes(block.parent[..8].try_into().unwrap()),
        block.number - 1
    );
    assert_eq!(block.timestamp, 0x69f18a5c);
    assert!(parse_block(&Value::Null).is_err());
}

/// https://tronprotocol.github.io/documentation-en/api/json-rpc/filter/eth_getLogs/
/// The page abbreviates the log's `data` ("0x0000...05f"); every other field is read, and the
/// abbreviated data is refused by name.
#[test]
fn eth_get_logs_from_docs() {
    let v = fixture(include_str!("../fixtures/eth_getLogs.json"));
    let err = parse_logs(&v["result"]).unwrap_err();
    assert!(err.to_string().contains("data is not hex"), "{err}");
    let mut whole = v["result"].clone();
    whole[0]["data"] = Value::String(format!("0x{}", "00".repeat(224)));
    let [log] = parse_logs(&whole).unwrap().try_into().unwrap();
    assert_eq!(
        log.address,
        TronAddress::parse("419ff8fc48fb114ccd5bbdc24a86f0c73082f08825").unwrap()
    );
    assert_eq!(log.block_number, 0x3fe1ca0);
    assert_eq!(
        log.txid,
        b256!("01b4cde4197b9d1a1ff09ef5d2b1d939d3ec2401b3f002ebd0802c0f30a6e4ca")
    );
    assert_eq!(log.topics.len(), 3);
    assert_eq!(log.data.len(), 224);
    // A log marked removed is never taken as final.
    whole[0]["removed"] = Value::Bool(true);
    assert!(parse_logs(&whole).is_err());
}

/// https://tronprotocol.github.io/documentation-en/api/http/smart-contract/triggerconstantcontract/
#[test]
fn trigger_constant_contract_from_docs() {
    let v = fixture(include_str!("../fixtures/triggerconstantcontract.json"));
    assert_eq!(
        parse_constant(&v).unwrap(),
        Bytes::from(
            hex::decode("0000000000000000000000000000000000000000000000000000000040cfcc00")
                .unwrap()
        )
    );
    // Its transaction is a TriggerSmartContract whose bytes and txID our encoding reproduces.
    let call = ContractCall {
        contract: TronAddress::parse("41eca9bc828a3005b9a3b909f2cc5c2a54794de05f").unwrap(),
        data: hex::decode(
            "70a08231000000000000000000000000dd791d6b49e190062d650e6a23c575510d35f2f9",
        )
        .unwrap()
        .into(),
        call_value: 0,
        fee_limit: 0,
    };
    let owner = TronAddress::parse("41dd791d6b49e190062d650e6a23c575510d35f2f9").unwrap();
    let (raw, id) = check_built(&v, owner, &call).unwrap();
    assert_eq!(
        id,
        b256!("cff6488e738ce77f7325572fe0aa2470f87dbf1c95eeeb2c25feec59d5afa35c")
    );
    assert_eq!(
        hex::encode(raw_bytes(&raw)),
        v["transaction"]["raw_data_hex"].as_str().unwrap()
    );
    // The same answer is refused for any other call.
    let other = ContractCall {
        call_value: 1,
        ..call.clone()
    };
    assert!(matches!(
        check_built(&v, owner, &other),
        Err(RootChainError::Mismatch(_))
    ));
    let stranger = TronAddress::parse("41a614f803b6fd780986a42c78ec9c7f77e6ded13c").unwrap();
    assert!(matches!(
        check_built(&v, stranger, &call),
        Err(RootChainError::Mismatch(_))
    ));
    // A revert is java-tron's `result: true` with a message.
    let mut reverted = v.clone();
    reverted["result"]["message"] = Value::String(hex::encode("REVERT opcode executed"));
    assert!(
        matches!(parse_constant(&reverted), Err(RootChainError::CallFailed(m)) if m.contains("REVERT"))
    );
    let missing = fixture(
        r#"{"result": {"code": "CONTRACT_VALIDATE_ERROR", "message": "536d61727420636f6e7472616374206973206e6f742065786973742e"}}"#,
    );
    assert!(
        matches!(parse_constant(&missing), Err(RootChainError::Node { message, .. }) if message.contains("Smart contract is not exist."))
    );
}

/// https://tronprotocol.github.io/documentation-en/api/http/smart-contract/triggersmartcontract/
/// The page's `raw_data.data` has 137 hex digits (one too many) while its `raw_data_hex` and
/// txID are consistent: a node answering that JSON is refused, never signed for.
#[test]
fn trigger_smart_contract_from_docs_is_checked_not_trusted() {
    let v = fixture(include_str!("../fixtures/triggersmartcontract.json"));
    let call = ContractCall {
        contract: TronAddress::parse("41eca9bc828a3005b9a3b909f2cc5c2a54794de05f").unwrap(),
        data: hex::decode("a9059cbb000000000000000000000000088a2bfcb1c7271029fd69a66859d555608958840000000000000000000000000000000000000000000000000000000000000064").unwrap().into(),
        call_value: 0,
        fee_limit: 100_000_000,
    };
    let owner = TronAddress::parse("41dd791d6b49e190062d650e6a23c575510d35f2f9").unwrap();
    let err = check_built(&v, owner, &call).unwrap_err();
    assert!(err.to_string().contains("data"), "{err}");
    // With the data the raw_data_hex carries, the answer checks out and the txID is the doc's.
    let mut fixed = v.clone();
    fixed["transaction"]["raw_data"]["contract"][0]["parameter"]["value"]["data"] =
        Value::String(hex::encode(&call.data));
    let (_, id) = check_built(&fixed, owner, &call).unwrap();
    assert_eq!(
        id,
        b256!("8c621a0dc9bd4d405b20d0a43143955b9f546f98bbfde1aec295a65b0f925629")
    );
}

/// Documented shapes of `gettransactioninfobyid` (its page's example elides parts of the log
/// data and comments inside the JSON, so the fields are taken from its table and example).
/// https://tronprotocol.github.io/documentation-en/api/http/block-and-tx-query/gettransactioninfobyid/
#[test]
fn transaction_info_shapes() {
    assert_eq!(parse_info(&fixture("{}")).unwrap(), None);
    let v = fixture(
        r#"{
      "id": "01b4cde4197b9d1a1ff09ef5d2b1d939d3ec2401b3f002ebd0802c0f30a6e4ca",
      "fee": 5254500,
      "blockNumber": 66985120,
      "blockTimeStamp": 1777437762000,
      "contractResult": [""],
      "contract_address": "419ff8fc48fb114ccd5bbdc24a86f0c73082f08825",
      "receipt": {"energy_fee": 4458500, "energy_usage_total": 44585, "net_fee": 796000, "result": "SUCCESS"},
      "log": [{"address": "9ff8fc48fb114ccd5bbdc24a86f0c73082f08825",
               "topics": ["c66625d03b4a832d8245f0df593e32e0fbbbad96d4aa45440aa1535b80983083"],
               "data": "0000000000000000000000000000000000000000000000000000000000000007"}]
    }"#,
    );
    let r = parse_info(&v).unwrap().unwrap();
    assert!(r.succeeded());
    assert_eq!(
        (r.fee, r.energy_used, r.block_number),
        (5254500, 44585, 66985120)
    );
    assert_eq!(
        r.logs[0].0,
        TronAddress::parse("419ff8fc48fb114ccd5bbdc24a86f0c73082f08825").unwrap()
    );
    let failed = fixture(
        r#"{"id": "01b4cde4197b9d1a1ff09ef5d2b1d939d3ec2401b3f002ebd0802c0f30a6e4ca", "blockNumber": 1, "result": "FAILED", "receipt": {"result": "REVERT"}}"#,
    );
    assert_eq!(parse_info(&failed).unwrap().unwrap().result, "REVERT");
    assert!(parse_info(&fixture(r#"{"id": "zz"}"#)).is_err());
}

#[test]
fn broadcast_answers() {
    let id = B256::repeat_byte(1);
    assert_eq!(
        parse_broadcast(&fixture(r#"{"result": true, "txid": "01"}"#), id).unwrap(),
        id
    );
    let refused = fixture(
        r#"{"code": "SIGERROR", "txid": "01", "message": "56616c6964617465207369676e6174757265206572726f72"}"#,
    );
    assert!(matches!(
        parse_broadcast(&refused, id),
        Err(RootChainError::Refused { code, message }) if code == "SIGERROR" && message == "Validate signature error"
    ));
}
