//! End-to-end tests of the server over a real devnet chain in memory: transactions signed with
//! the first dev key, blocks built and committed as the producer does, every answer read back
//! over HTTP (or WebSocket) as a client would.

use std::sync::Arc;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, address, b256, hex};
use alloy_signer_local::PrivateKeySigner;
use bttd_runtime::RecoveredTx;
use jsonrpsee::core::client::SubscriptionClientT;
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::WsClientBuilder;
use serde_json::{Value, json};

use super::{Api, RpcConfig, RpcHandle, start};
use bttd_txpool::context::NodeContext;

const DEV_KEY: B256 = b256!("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");
const DEV_ADDRESS: Address = address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
const RECIPIENT: Address = address!("000000000000000000000000000000000000bEEF");
const BENEFICIARY: Address = address!("00000000000000000000000000000000000c0ffe");
const GWEI: u128 = 1_000_000_000;
const ETHER: u128 = 1_000_000_000_000_000_000;
const LOG_TOPIC: B256 = b256!("1111111111111111111111111111111111111111111111111111111111111111");

struct Node {
    ctx: Arc<NodeContext>,
    rpc: RpcHandle,
    http: reqwest::Client,
}

async fn node_with(config: RpcConfig) -> Node {
    let ctx = crate::test_context();
    let rpc = start(
        ctx.clone(),
        RpcConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            ..config
        },
        None,
    )
    .await
    .expect("start rpc");
    Node {
        ctx,
        rpc,
        http: reqwest::Client::new(),
    }
}

/// A node serving every namespace (as `bttd devnet` does).
async fn node() -> Node {
    node_with(RpcConfig {
        api: Api::ALL.into_iter().collect(),
        ..Default::default()
    })
    .await
}

impl Node {
    /// The whole JSON-RPC response object.
    async fn raw(&self, body: Value) -> Value {
        self.http
            .post(self.rpc.http_url())
            .json(&body)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json")
    }

    async fn call(&self, method: &str, params: Value) -> Value {
        let response = self
            .raw(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .await;
        match response.get("result") {
            Some(result) => result.clone(),
            None => panic!("{method} failed: {response}"),
        }
    }

    async fn error(&self, method: &str, params: Value) -> Value {
        let response = self
            .raw(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .await;
        match response.get("error") {
            Some(error) => error.clone(),
            None => panic!("{method} unexpectedly succeeded: {response}"),
        }
    }

    /// Builds and commits a block from the pool, as the producer does.
    fn produce(&self) {
        let chain = &self.ctx.chain;
        let base_fee = chain.next_block_context(0, BENEFICIARY).base_fee;
        let txs: Vec<RecoveredTx> = self.ctx.pool.lock().best(base_fee).collect();
        let executed = chain
            .build(chain.head().timestamp + 1, BENEFICIARY, txs)
            .expect("build");
        let receipts = executed.receipts.clone();
        let rejected = executed.rejected.clone();
        let block = chain.commit(executed).expect("commit");
        self.ctx.on_block_committed(block, receipts, &rejected);
    }

    async fn send(&self, tx: TxEip1559) -> B256 {
        let hash = self.call("eth_sendRawTransaction", json!([sign(tx)])).await;
        serde_json::from_value(hash).unwrap()
    }
}

fn sign(tx: TxEip1559) -> Bytes {
    let signature = alloy_consensus::crypto::secp256k1::sign_message(DEV_KEY, tx.signature_hash())
        .expect("sign");
    let envelope: TxEnvelope = tx.into_signed(signature).into();
    envelope.encoded_2718().into()
}

fn tx(nonce: u64, to: TxKind, value: u128, gas: u64, input: Vec<u8>) -> TxEip1559 {
    TxEip1559 {
        chain_id: 1337,
        nonce,
        gas_limit: gas,
        max_fee_per_gas: 10 * GWEI,
        max_priority_fee_per_gas: GWEI,
        to,
        value: U256::from(value),
        access_list: Default::default(),
        input: input.into(),
    }
}

fn quantity(v: &Value) -> u128 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a quantity: {v}"));
    u128::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

/// Runtime code that always reverts with `Error("nope")`.
fn reverting_runtime() -> Vec<u8> {
    fn push32(code: &mut Vec<u8>, word: [u8; 32], at: u8) {
        code.push(0x7f);
        code.extend_from_slice(&word);
        code.extend_from_slice(&[0x60, at, 0x52]); // PUSH1 at, MSTORE
    }
    let mut code = Vec::new();
    let mut selector = [0u8; 32];
    selector[..4].copy_from_slice(&hex!("08c379a0"));
    push32(&mut code, selector, 0x00);
    code.extend_from_slice(&[0x60, 0x20, 0x60, 0x04, 0x52]); // offset 0x20 at 4
    code.extend_from_slice(&[0x60, 0x04, 0x60, 0x24, 0x52]); // length 4 at 0x24
    let mut text = [0u8; 32];
    text[..4].copy_from_slice(b"nope");
    push32(&mut code, text, 0x44);
    code.extend_from_slice(&[0x60, 0x64, 0x60, 0x00, 0xfd]); // REVERT(0, 0x64)
    code
}

/// Creation code that emits LOG1(LOG_TOPIC) and deploys `runtime`.
fn init_code(runtime: &[u8]) -> Vec<u8> {
    let mut code = vec![0x7f];
    code.extend_from_slice(LOG_TOPIC.as_slice());
    code.extend_from_slice(&[0x60, 0x00, 0x60, 0x00, 0xa1]); // LOG1(0, 0, topic)
    let len = runtime.len() as u8;
    let prefix = code.len() as u8 + 12;
    code.extend_from_slice(&[0x60, len, 0x60, prefix, 0x60, 0x00, 0x39]); // CODECOPY(0, prefix, len)
    code.extend_from_slice(&[0x60, len, 0x60, 0x00, 0xf3]); // RETURN(0, len)
    assert_eq!(code.len(), prefix as usize);
    code.extend_from_slice(runtime);
    code
}

#[test]
fn dev_key_is_the_first_dev_account() {
    let signer: PrivateKeySigner = PrivateKeySigner::from_bytes(&DEV_KEY).unwrap();
    assert_eq!(signer.address(), DEV_ADDRESS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_and_head() {
    let node = node().await;
    assert_eq!(node.call("eth_chainId", json!([])).await, json!("0x539"));
    assert_eq!(node.call("net_version", json!([])).await, json!("1337"));
    assert_eq!(node.call("net_listening", json!([])).await, json!(true));
    assert!(
        node.call("web3_clientVersion", json!([]))
            .await
            .as_str()
            .unwrap()
            .starts_with("bttd/")
    );
    assert_eq!(node.call("eth_blockNumber", json!([])).await, json!("0x0"));
    let genesis = node
        .call("eth_getBlockByNumber", json!(["earliest", false]))
        .await;
    assert_eq!(genesis["number"], json!("0x0"));
    assert_eq!(genesis["hash"], json!(node.ctx.chain.genesis_hash()));
    assert_eq!(
        node.call("eth_getBlockByNumber", json!(["0x5", false]))
            .await,
        Value::Null
    );
    let balance = node
        .call("eth_getBalance", json!([DEV_ADDRESS, "latest"]))
        .await;
    assert_eq!(quantity(&balance), 1_000_000 * ETHER);
    node.rpc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_receipt_block_and_fees() {
    let node = node().await;
    let hash = node
        .send(tx(0, TxKind::Call(RECIPIENT), ETHER, 21_000, vec![]))
        .await;

    // Pending: visible with null block fields, and counted by the "pending" nonce.
    let pending = node.call("eth_getTransactionByHash", json!([hash])).await;
    assert_eq!(pending["blockHash"], Value::Null);
    assert_eq!(pending["from"], json!(DEV_ADDRESS));
    assert_eq!(
        node.call("eth_getTransactionCount", json!([DEV_ADDRESS, "pending"]))
            .await,
        json!("0x1")
    );
    assert_eq!(
        node.call("eth_getTransactionCount", json!([DEV_ADDRESS, "latest"]))
            .await,
        json!("0x0")
    );
    assert_eq!(
        node.call("eth_getTransactionReceipt", json!([hash])).await,
        Value::Null
    );

    node.produce();
    assert_eq!(node.call("eth_blockNumber", json!([])).await, json!("0x1"));
    let head = node.ctx.chain.head();
    let base_fee = head.base_fee_per_gas.unwrap() as u128;

    let receipt = node.call("eth_getTransactionReceipt", json!([hash])).await;
    assert_eq!(receipt["status"], json!("0x1"));
    assert_eq!(receipt["gasUsed"], json!("0x5208"));
    assert_eq!(receipt["cumulativeGasUsed"], json!("0x5208"));
    assert_eq!(quantity(&receipt["effectiveGasPrice"]), base_fee + GWEI);
    assert_eq!(receipt["from"], json!(DEV_ADDRESS));
    assert_eq!(receipt["to"], json!(RECIPIENT));
    assert_eq!(receipt["contractAddress"], Value::Null);
    assert_eq!(receipt["blockNumber"], json!("0x1"));
    assert_eq!(receipt["blockHash"], json!(head.hash()));
    assert_eq!(receipt["transactionIndex"], json!("0x0"));
    assert_eq!(receipt["type"], json!("0x2"));
    assert_eq!(receipt["logs"], json!([]));

    let mined = node.call("eth_getTransactionByHash", json!([hash])).await;
    assert_eq!(mined["blockNumber"], json!("0x1"));
    assert_eq!(mined["transactionIndex"], json!("0x0"));
    assert_eq!(mined["from"], json!(DEV_ADDRESS));
    assert_eq!(mined["hash"], json!(hash));
    assert_eq!(quantity(&mined["gasPrice"]), base_fee + GWEI);

    let block = node
        .call("eth_getBlockByNumber", json!(["latest", true]))
        .await;
    assert_eq!(block["hash"], json!(head.hash()));
    assert_eq!(block["transactions"][0]["hash"], json!(hash));
    assert_eq!(block["transactions"][0]["from"], json!(DEV_ADDRESS));
    assert_eq!(block["withdrawals"], json!([]));
    assert_eq!(block["uncles"], json!([]));
    assert_eq!(block["totalDifficulty"], json!("0x0"));
    assert_eq!(block["blobGasUsed"], json!("0x0"));
    assert_eq!(block["excessBlobGas"], json!("0x0"));
    for field in [
        "baseFeePerGas",
        "withdrawalsRoot",
        "parentBeaconBlockRoot",
        "requestsHash",
        "size",
        "mixHash",
    ] {
        assert!(
            block.get(field).is_some_and(|v| !v.is_null()),
            "block lacks {field}: {block}"
        );
    }
    let by_hash = node
        .call("eth_getBlockByHash", json!([head.hash(), false]))
        .await;
    assert_eq!(by_hash["transactions"], json!([hash]));
    assert_eq!(by_hash["size"], block["size"]);
    for tag in ["safe", "finalized", "pending"] {
        assert_eq!(
            node.call("eth_getBlockByNumber", json!([tag, false])).await["hash"],
            json!(head.hash())
        );
    }
    let receipts = node.call("eth_getBlockReceipts", json!(["0x1"])).await;
    assert_eq!(receipts, json!([receipt]));

    // State by tag, number or hash, at the head and before it; beyond the head is refused.
    let balance = node.call("eth_getBalance", json!([RECIPIENT, "0x1"])).await;
    assert_eq!(quantity(&balance), ETHER);
    let by_hash = node
        .call(
            "eth_getBalance",
            json!([RECIPIENT, {"blockHash": head.hash()}]),
        )
        .await;
    assert_eq!(by_hash, balance);
    let before = node.call("eth_getBalance", json!([RECIPIENT, "0x0"])).await;
    assert_eq!(quantity(&before), 0);
    assert_eq!(
        node.call("eth_getTransactionCount", json!([DEV_ADDRESS, "0x0"]))
            .await,
        json!("0x0")
    );
    let future = node
        .error("eth_getBalance", json!([RECIPIENT, "0x9"]))
        .await;
    assert_eq!(future["code"], json!(-32000));
    assert_eq!(
        node.call("eth_getTransactionCount", json!([DEV_ADDRESS, "latest"]))
            .await,
        json!("0x1")
    );

    // Fees: a 1 gwei tip everywhere, so the suggestion is 1 gwei.
    assert_eq!(
        quantity(&node.call("eth_maxPriorityFeePerGas", json!([])).await),
        GWEI
    );
    let next_base =
        bttd_runtime::block::next_base_fee(&head, node.ctx.chain.config().min_base_fee) as u128;
    assert_eq!(
        quantity(&node.call("eth_gasPrice", json!([])).await),
        next_base + GWEI
    );
    let history = node
        .call("eth_feeHistory", json!(["0x2", "latest", [25.0, 75.0]]))
        .await;
    assert_eq!(history["oldestBlock"], json!("0x0"));
    assert_eq!(history["baseFeePerGas"].as_array().unwrap().len(), 3);
    assert_eq!(quantity(&history["baseFeePerGas"][2]), next_base);
    assert_eq!(history["gasUsedRatio"].as_array().unwrap().len(), 2);
    assert_eq!(
        history["reward"],
        json!([["0x0", "0x0"], ["0x3b9aca00", "0x3b9aca00"]])
    );
    let numeric = node.call("eth_feeHistory", json!([1, "latest"])).await;
    assert_eq!(numeric["oldestBlock"], json!("0x1"));

    // Resubmitting is refused with geth's wording.
    let again = node
        .error(
            "eth_sendRawTransaction",
            json!([sign(tx(0, TxKind::Call(RECIPIENT), ETHER, 21_000, vec![]))]),
        )
        .await;
    assert_eq!(again["code"], json!(-32000));
    assert!(
        again["message"].as_str().unwrap().contains("nonce too low"),
        "{again}"
    );
    node.rpc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_logs_calls_and_estimates() {
    let node = node().await;
    let runtime = reverting_runtime();
    let deploy = node
        .send(tx(0, TxKind::Create, 0, 300_000, init_code(&runtime)))
        .await;
    node.produce();
    let receipt = node
        .call("eth_getTransactionReceipt", json!([deploy]))
        .await;
    assert_eq!(receipt["status"], json!("0x1"), "{receipt}");
    let contract = DEV_ADDRESS.create(0);
    assert_eq!(receipt["contractAddress"], json!(contract));
    assert_eq!(receipt["to"], Value::Null);
    assert_eq!(receipt["logs"][0]["logIndex"], json!("0x0"));
    assert_eq!(receipt["logs"][0]["address"], json!(contract));
    assert_eq!(
        node.call("eth_getCode", json!([contract, "latest"])).await,
        json!(Bytes::from(runtime))
    );

    // eth_getLogs: ranges, block hash, address and topic filters with nulls and ORs.
    let logs = node
        .call(
            "eth_getLogs",
            json!([{"fromBlock": "earliest", "toBlock": "latest", "address": contract}]),
        )
        .await;
    assert_eq!(logs.as_array().unwrap().len(), 1);
    assert_eq!(logs[0]["transactionHash"], json!(deploy));
    assert_eq!(logs[0]["topics"], json!([LOG_TOPIC]));
    assert_eq!(logs[0]["blockNumber"], json!("0x1"));
    let head = node.ctx.chain.head().hash();
    let by_hash = node
        .call(
            "eth_getLogs",
            json!([{"blockHash": head, "topics": [[B256::ZERO, LOG_TOPIC]]}]),
        )
        .await;
    assert_eq!(by_hash, logs);
    let none = node
        .call(
            "eth_getLogs",
            json!([{"fromBlock": "0x0", "topics": [null, LOG_TOPIC]}]),
        )
        .await;
    assert_eq!(none, json!([]));
    let other = node
        .call(
            "eth_getLogs",
            json!([{"fromBlock": "0x0", "address": [RECIPIENT]}]),
        )
        .await;
    assert_eq!(other, json!([]));
    let wildcard = node
        .call(
            "eth_getLogs",
            json!([{"fromBlock": "0x0", "topics": [null]}]),
        )
        .await;
    assert_eq!(wildcard, logs);
    let backwards = node
        .error(
            "eth_getLogs",
            json!([{"fromBlock": "0x1", "toBlock": "0x0"}]),
        )
        .await;
    assert_eq!(backwards["code"], json!(-32000));

    // eth_call: revert reason and data.
    let reverted = node
        .error(
            "eth_call",
            json!([{"to": contract, "data": "0x01"}, "latest"]),
        )
        .await;
    assert_eq!(reverted["code"], json!(3));
    assert_eq!(reverted["message"], json!("execution reverted: nope"));
    let data = reverted["data"].as_str().unwrap();
    assert!(data.starts_with("0x08c379a0"), "{data}");
    // Calls from an account without funds work when they pay nothing.
    let empty = node
        .call("eth_call", json!([{"from": RECIPIENT, "to": DEV_ADDRESS}]))
        .await;
    assert_eq!(empty, json!("0x"));
    let poor = node
        .error(
            "eth_call",
            json!([{"from": RECIPIENT, "to": DEV_ADDRESS, "value": "0x1"}]),
        )
        .await;
    assert_eq!(poor["code"], json!(-32000));
    assert!(
        poor["message"]
            .as_str()
            .unwrap()
            .starts_with("insufficient funds for gas * price + value"),
        "{poor}"
    );

    // eth_estimateGas: transfers are 21000, creations are searched, reverts are reported.
    let transfer = node
        .call(
            "eth_estimateGas",
            json!([{"from": DEV_ADDRESS, "to": RECIPIENT, "value": "0x1"}]),
        )
        .await;
    assert_eq!(transfer, json!("0x5208"));
    let create = node
        .call(
            "eth_estimateGas",
            json!([{"from": DEV_ADDRESS, "data": Bytes::from(init_code(&reverting_runtime()))}]),
        )
        .await;
    let create = quantity(&create) as u64;
    let used = quantity(&receipt["gasUsed"]) as u64;
    assert!(
        create >= used && create <= used + used * 2 / 100,
        "estimate {create}, used {used}"
    );
    let revert = node
        .error(
            "eth_estimateGas",
            json!([{"from": DEV_ADDRESS, "to": contract}]),
        )
        .await;
    assert_eq!(revert["code"], json!(3));
    node.rpc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_codes() {
    let node = node_with(RpcConfig {
        batch_request_limit: 3,
        ..Default::default()
    })
    .await;
    let unknown = node.error("eth_noSuchMethod", json!([])).await;
    assert_eq!(unknown["code"], json!(-32601));
    let bad_hex = node
        .error("eth_getBalance", json!(["0xzz", "latest"]))
        .await;
    assert_eq!(bad_hex["code"], json!(-32602));
    let bad_tag = node
        .error("eth_getBlockByNumber", json!(["newest", false]))
        .await;
    assert_eq!(bad_tag["code"], json!(-32602));
    let garbage = node
        .error("eth_sendRawTransaction", json!(["0x0102"]))
        .await;
    assert_eq!(garbage["code"], json!(-32000));
    let overrides = node
        .error(
            "eth_call",
            json!([{"to": RECIPIENT}, "latest", {"0x00": {}}]),
        )
        .await;
    assert_eq!(overrides["code"], json!(-32602));
    let percentiles = node
        .error("eth_feeHistory", json!(["0x1", "latest", [50.0, 10.0]]))
        .await;
    assert_eq!(percentiles["code"], json!(-32602));

    // Malformed JSON.
    let response = node
        .http
        .post(node.rpc.http_url())
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], json!(-32700));

    // Batches within and beyond the limit.
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []});
    let ok = node.raw(json!([call, call, call])).await;
    assert_eq!(ok.as_array().unwrap().len(), 3);
    let too_many = node.raw(json!([call, call, call, call])).await;
    assert!(
        too_many["error"]["message"]
            .as_str()
            .unwrap()
            .contains("batch"),
        "{too_many}"
    );

    // A body over the limit is refused before parsing.
    let small = node_with(RpcConfig {
        max_body_bytes: 1024,
        ..Default::default()
    })
    .await;
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [{"data": format!("0x{}", "00".repeat(2048))}]});
    let response = small
        .http
        .post(small.rpc.http_url())
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::PAYLOAD_TOO_LARGE);

    // CORS preflight.
    let preflight = node
        .http
        .request(reqwest::Method::OPTIONS, node.rpc.http_url())
        .header("origin", "http://dapp.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    node.rpc.stop().await;
    small.rpc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_subscriptions() {
    let node = node().await;
    let client = WsClientBuilder::default()
        .build(node.rpc.ws_url())
        .await
        .expect("ws connect");
    let mut heads = client
        .subscribe::<Value, _>("eth_subscribe", rpc_params!["newHeads"], "eth_unsubscribe")
        .await
        .expect("subscribe newHeads");
    let mut logs = client
        .subscribe::<Value, _>(
            "eth_subscribe",
            rpc_params!["logs", json!({"topics": [LOG_TOPIC]})],
            "eth_unsubscribe",
        )
        .await
        .expect("subscribe logs");
    let mut pending = client
        .subscribe::<Value, _>(
            "eth_subscribe",
            rpc_params!["newPendingTransactions"],
            "eth_unsubscribe",
        )
        .await
        .expect("subscribe pending");
    let bad: Result<jsonrpsee::core::client::Subscription<Value>, _> = client
        .subscribe("eth_subscribe", rpc_params!["syncing"], "eth_unsubscribe")
        .await;
    assert!(bad.is_err());

    let hash = node
        .send(tx(
            0,
            TxKind::Create,
            0,
            300_000,
            init_code(&reverting_runtime()),
        ))
        .await;
    let timeout = std::time::Duration::from_secs(10);
    let announced = tokio::time::timeout(timeout, pending.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(announced, json!(hash));

    node.produce();
    let head = tokio::time::timeout(timeout, heads.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(head["number"], json!("0x1"));
    assert_eq!(head["hash"], json!(node.ctx.chain.head().hash()));
    let log = tokio::time::timeout(timeout, logs.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(log["transactionHash"], json!(hash));
    assert_eq!(log["topics"], json!([LOG_TOPIC]));
    heads.unsubscribe().await.expect("unsubscribe");
    node.rpc.stop().await;
}

impl Node {
    /// Polls a filter until `count` items arrived (the feeder task runs asynchronously), then
    /// checks one more poll, after a pause, brings nothing: each item exactly once.
    async fn poll_exactly(&self, id: &Value, count: usize) -> Vec<Value> {
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while seen.len() < count {
            assert!(
                std::time::Instant::now() < deadline,
                "filter {id} gave {} of {count} items: {seen:?}",
                seen.len()
            );
            let changes = self.call("eth_getFilterChanges", json!([id])).await;
            seen.extend(
                changes
                    .as_array()
                    .expect("changes are an array")
                    .iter()
                    .cloned(),
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(seen.len(), count, "more items than expected: {seen:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(
            self.call("eth_getFilterChanges", json!([id])).await,
            json!([]),
            "delivered twice"
        );
        seen
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_filter_delivers_each_log_once() {
    let node = node().await;
    let id = node
        .call("eth_newFilter", json!([{"topics": [LOG_TOPIC]}]))
        .await;
    assert!(id.as_str().unwrap().starts_with("0x"), "{id}");
    let other = node
        .call("eth_newFilter", json!([{"address": RECIPIENT}]))
        .await;

    let first = node
        .send(tx(
            0,
            TxKind::Create,
            0,
            300_000,
            init_code(&reverting_runtime()),
        ))
        .await;
    node.produce();
    let logs = node.poll_exactly(&id, 1).await;
    let head = node.ctx.chain.head();
    assert_eq!(logs[0]["transactionHash"], json!(first));
    assert_eq!(logs[0]["blockHash"], json!(head.hash()));
    assert_eq!(logs[0]["blockNumber"], json!("0x1"));
    assert_eq!(logs[0]["transactionIndex"], json!("0x0"));
    assert_eq!(logs[0]["logIndex"], json!("0x0"));
    assert_eq!(logs[0]["removed"], json!(false));
    assert_eq!(logs[0]["address"], json!(DEV_ADDRESS.create(0)));

    // A block with two matching logs: log indices count across the block.
    let second = node
        .send(tx(
            1,
            TxKind::Create,
            0,
            300_000,
            init_code(&reverting_runtime()),
        ))
        .await;
    let third = node
        .send(tx(
            2,
            TxKind::Create,
            0,
            300_000,
            init_code(&reverting_runtime()),
        ))
        .await;
    node.produce();
    let logs = node.poll_exactly(&id, 2).await;
    assert_eq!(logs[0]["transactionHash"], json!(second));
    assert_eq!(logs[1]["transactionHash"], json!(third));
    assert_eq!(logs[1]["transactionIndex"], json!("0x1"));
    assert_eq!(logs[1]["logIndex"], json!("0x1"));
    assert_eq!(logs[1]["blockNumber"], json!("0x2"));
    assert_eq!(
        node.call("eth_getFilterChanges", json!([other])).await,
        json!([])
    );

    // eth_getFilterLogs: the whole range again, as eth_getLogs gives it.
    let ranged = node
        .call(
            "eth_newFilter",
            json!([{"fromBlock": "0x2", "toBlock": "latest", "topics": [LOG_TOPIC]}]),
        )
        .await;
    let all = node.call("eth_getFilterLogs", json!([ranged])).await;
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    assert_eq!(
        all,
        node.call(
            "eth_getLogs",
            json!([{"fromBlock": "0x2", "topics": [LOG_TOPIC]}])
        )
        .await
    );
    let from_genesis = node
        .call(
            "eth_newFilter",
            json!([{"fromBlock": "0x0", "topics": [LOG_TOPIC]}]),
        )
        .await;
    assert_eq!(
        node.call("eth_getFilterLogs", json!([from_genesis]))
            .await
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let blocks = node.call("eth_newBlockFilter", json!([])).await;
    assert_eq!(
        node.error("eth_getFilterLogs", json!([blocks])).await["message"],
        json!("filter not found")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_and_pending_filters_and_uninstall() {
    let node = node().await;
    let blocks = node.call("eth_newBlockFilter", json!([])).await;
    let pending = node
        .call("eth_newPendingTransactionFilter", json!([]))
        .await;
    assert_ne!(blocks, pending);

    let a = node
        .send(tx(0, TxKind::Call(RECIPIENT), 1, 21_000, vec![]))
        .await;
    let b = node
        .send(tx(1, TxKind::Call(RECIPIENT), 1, 21_000, vec![]))
        .await;
    node.produce();
    let one = node.ctx.chain.head().hash();
    node.produce();
    let two = node.ctx.chain.head().hash();
    assert_eq!(
        node.poll_exactly(&blocks, 2).await,
        vec![json!(one), json!(two)]
    );
    assert_eq!(
        node.poll_exactly(&pending, 2).await,
        vec![json!(a), json!(b)]
    );

    assert_eq!(
        node.call("eth_uninstallFilter", json!([blocks])).await,
        json!(true)
    );
    assert_eq!(
        node.call("eth_uninstallFilter", json!([blocks])).await,
        json!(false)
    );
    let error = node.error("eth_getFilterChanges", json!([blocks])).await;
    assert_eq!(error["code"], json!(-32000));
    assert_eq!(error["message"], json!("filter not found"));
    let unknown = node.error("eth_getFilterChanges", json!(["0x1234"])).await;
    assert_eq!(unknown["message"], json!("filter not found"));
    // The other filter is unaffected.
    assert_eq!(
        node.call("eth_getFilterChanges", json!([pending])).await,
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txpool_status_and_content() {
    let node = node().await;
    assert_eq!(
        node.call("txpool_status", json!([])).await,
        json!({"pending": "0x0", "queued": "0x0"})
    );
    let ready = node
        .send(tx(0, TxKind::Call(RECIPIENT), 1, 21_000, vec![]))
        .await;
    let gapped = node
        .send(tx(2, TxKind::Call(RECIPIENT), 1, 21_000, vec![]))
        .await;
    assert_eq!(
        node.call("txpool_status", json!([])).await,
        json!({"pending": "0x1", "queued": "0x1"})
    );

    let content = node.call("txpool_content", json!([])).await;
    let sender = DEV_ADDRESS.to_checksum(None);
    let pending = &content["pending"][&sender]["0"];
    assert_eq!(pending["hash"], json!(ready));
    assert_eq!(pending["blockHash"], Value::Null);
    assert_eq!(pending["from"], json!(DEV_ADDRESS));
    assert_eq!(
        *pending,
        node.call("eth_getTransactionByHash", json!([ready])).await
    );
    assert_eq!(content["queued"][&sender]["2"]["hash"], json!(gapped));
    assert_eq!(content["pending"].as_object().unwrap().len(), 1);
    assert_eq!(content["queued"][&sender].as_object().unwrap().len(), 1);

    node.produce();
    assert_eq!(
        node.call("txpool_status", json!([])).await,
        json!({"pending": "0x0", "queued": "0x1"})
    );
}

/// Issue 11, fault 1: a zero-balance key whose `gas * maxFee + value` is 2^256 wei (a cost of 0
/// in wrapping arithmetic) gets geth's insufficient-funds error, never enters the pool, and is
/// classified invalid so gossip rejects (penalizes) the peer that sent it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrapping_cost_is_refused() {
    let node = node().await;
    let fresh = B256::repeat_byte(0x77);
    let fee = 10 * GWEI;
    let mut wrap = tx(0, TxKind::Call(RECIPIENT), 0, 21_000, vec![]);
    wrap.max_fee_per_gas = fee;
    wrap.max_priority_fee_per_gas = fee;
    wrap.value = U256::ZERO.wrapping_sub(U256::from(21_000u64) * U256::from(fee));
    let signature = alloy_consensus::crypto::secp256k1::sign_message(fresh, wrap.signature_hash())
        .expect("sign");
    let raw: Bytes = TxEnvelope::from(wrap.into_signed(signature))
        .encoded_2718()
        .into();

    let error = node.error("eth_sendRawTransaction", json!([raw])).await;
    assert_eq!(error["code"], json!(-32000), "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("insufficient funds for gas * price + value"),
        "{error}"
    );
    assert!(matches!(
        node.ctx.submit_raw(&raw),
        Err(bttd_txpool::context::SubmitError::Invalid(_))
    ));
    assert_eq!(
        node.call("txpool_content", json!([])).await,
        json!({"pending": {}, "queued": {}})
    );
    node.rpc.stop().await;
}

/// Runtime code that returns the 32-byte word 42.
const ANSWER_RUNTIME: [u8; 10] = hex!("602a60005260206000f3");

/// Runtime code that emits LOG0, CALLs `callee` with all gas and returns what it returned.
fn forwarding_runtime(callee: Address) -> Vec<u8> {
    let mut code = hex!("60006000a0").to_vec(); // LOG0(0, 0)
    code.extend_from_slice(&hex!("6020600060006000600073")); // retSize, retOffset, argsSize, argsOffset, value, PUSH20
    code.extend_from_slice(callee.as_slice());
    code.extend_from_slice(&hex!("5af150")); // GAS CALL POP
    code.extend_from_slice(&hex!("60206000f3")); // RETURN(0, 0x20)
    code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_traces() {
    let node = node().await;
    let callee = DEV_ADDRESS.create(0);
    let forwarder = DEV_ADDRESS.create(1);
    let reverter = DEV_ADDRESS.create(2);
    node.send(tx(
        0,
        TxKind::Create,
        0,
        300_000,
        init_code(&ANSWER_RUNTIME),
    ))
    .await;
    node.send(tx(
        1,
        TxKind::Create,
        0,
        300_000,
        init_code(&forwarding_runtime(callee)),
    ))
    .await;
    node.send(tx(
        2,
        TxKind::Create,
        0,
        300_000,
        init_code(&reverting_runtime()),
    ))
    .await;
    node.produce();
    // Two transactions in one block: tracing the second replays the first.
    let call = node
        .send(tx(3, TxKind::Call(forwarder), 0, 200_000, vec![]))
        .await;
    let revert = node
        .send(tx(4, TxKind::Call(reverter), 0, 100_000, vec![1]))
        .await;
    node.produce();
    let receipt = node.call("eth_getTransactionReceipt", json!([call])).await;
    assert_eq!(receipt["status"], json!("0x1"), "{receipt}");
    let answer = json!(B256::with_last_byte(42));

    let trace = node
        .call(
            "debug_traceTransaction",
            json!([call, {"tracer": "callTracer"}]),
        )
        .await;
    assert_eq!(trace["type"], json!("CALL"), "{trace}");
    assert_eq!(trace["from"], json!(DEV_ADDRESS.to_string().to_lowercase()));
    assert_eq!(trace["to"], json!(forwarder.to_string().to_lowercase()));
    assert_eq!(trace["gas"], json!("0x30d40"));
    assert_eq!(quantity(&trace["gasUsed"]), quantity(&receipt["gasUsed"]));
    assert_eq!(trace["output"], answer);
    let calls = trace["calls"].as_array().expect("nested calls");
    assert_eq!(calls.len(), 1, "{trace}");
    assert_eq!(calls[0]["type"], json!("CALL"));
    assert_eq!(
        calls[0]["from"],
        json!(forwarder.to_string().to_lowercase())
    );
    assert_eq!(calls[0]["to"], json!(callee.to_string().to_lowercase()));
    assert_eq!(calls[0]["output"], answer);
    assert_eq!(quantity(&calls[0]["gasUsed"]), 18); // 6 pushes + MSTORE (3 + memory 3)
    assert!(calls[0].get("calls").is_none());
    let with_log = node
        .call(
            "debug_traceTransaction",
            json!([call, {"tracer": "callTracer", "tracerConfig": {"withLog": true}}]),
        )
        .await;
    assert_eq!(
        with_log["logs"].as_array().map(Vec::len),
        Some(1),
        "{with_log}"
    );

    let logger = node.call("debug_traceTransaction", json!([call])).await;
    assert_eq!(logger["failed"], json!(false));
    assert_eq!(
        logger["gas"].as_u64(),
        Some(quantity(&receipt["gasUsed"]) as u64)
    );
    assert!(
        logger["structLogs"]
            .as_array()
            .is_some_and(|steps| steps.len() > 10),
        "{logger}"
    );
    assert_eq!(logger["structLogs"][0]["op"], json!("PUSH1"));

    let failed = node
        .call("debug_traceTransaction", json!([revert, {}]))
        .await;
    assert_eq!(failed["failed"], json!(true), "{failed}");
    assert!(!failed["structLogs"].as_array().unwrap().is_empty());
    let reverted = node
        .call(
            "debug_traceTransaction",
            json!([revert, {"tracer": "callTracer"}]),
        )
        .await;
    assert_eq!(reverted["error"], json!("execution reverted"), "{reverted}");
    assert_eq!(reverted["revertReason"], json!("nope"));

    // debug_traceCall: eth_call's environment, the same tree.
    let traced = node
        .call(
            "debug_traceCall",
            json!([{"from": DEV_ADDRESS, "to": forwarder}, "latest", {"tracer": "callTracer"}]),
        )
        .await;
    assert_eq!(traced["output"], answer, "{traced}");
    assert_eq!(traced["calls"][0]["to"], calls[0]["to"]);
    let steps = node
        .call("debug_traceCall", json!([{"to": forwarder}, "latest"]))
        .await;
    assert_eq!(steps["failed"], json!(false));
    assert_eq!(
        steps["structLogs"].as_array().map(Vec::len),
        logger["structLogs"].as_array().map(Vec::len)
    );

    let unsupported = node
        .error(
            "debug_traceTransaction",
            json!([call, {"tracer": "prestateTracer"}]),
        )
        .await;
    assert_eq!(unsupported["code"], json!(-32602), "{unsupported}");
    assert!(
        unsupported["message"]
            .as_str()
            .unwrap()
            .contains("prestateTracer")
    );
    let unknown = node
        .error("debug_traceTransaction", json!([B256::repeat_byte(7)]))
        .await;
    assert_eq!(unknown["code"], json!(-32000), "{unknown}");
    node.rpc.stop().await;
}

/// Creation code that loops until it runs out of gas: JUMPDEST PUSH0 JUMP.
const LOOP: &str = "0x5b5f56";

/// Issue 11 fault 3: one request could take the node's memory or CPU. Each bound answers
/// with a clear error, and the node answers the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_requests_are_bounded_with_clear_errors() {
    let node = node_with(RpcConfig {
        evm_timeout: std::time::Duration::from_millis(1),
        max_filters: 2,
        api: Api::ALL.into_iter().collect(),
        ..Default::default()
    })
    .await;
    // eth_feeHistory: at most 100 percentiles (each costs a pass over every block).
    let percentiles: Vec<f64> = (0..101).map(f64::from).collect();
    let many = node
        .error("eth_feeHistory", json!(["0x10", "latest", percentiles]))
        .await;
    assert!(
        many["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid reward percentile"),
        "{many}"
    );

    // The struct logger of a loop: capped in recorded steps, not in gigabytes.
    let call = json!({"data": LOOP, "gas": "0x2dc6c0"});
    let steps = node
        .error("debug_traceCall", json!([call, "latest", {}]))
        .await;
    assert!(
        steps["message"]
            .as_str()
            .unwrap()
            .starts_with("trace aborted: more than 250000 steps"),
        "{steps}"
    );
    // geth's `timeout` option of a trace.
    let call = json!({"data": LOOP, "gas": "0x2faf080"});
    let timeout = node
        .error(
            "debug_traceCall",
            json!([call, "latest", {"tracer": "callTracer", "timeout": "1ms"}]),
        )
        .await;
    assert_eq!(
        timeout["message"],
        json!("execution aborted (timeout = 1ms)"),
        "{timeout}"
    );
    // eth_call and eth_estimateGas stop at evm-timeout (geth's --rpc.evmtimeout).
    for method in ["eth_call", "eth_estimateGas"] {
        let stopped = node.error(method, json!([call, "latest"])).await;
        assert_eq!(
            stopped["message"],
            json!("execution aborted (timeout = 1ms)"),
            "{method}: {stopped}"
        );
    }
    // max-filters.
    node.call("eth_newBlockFilter", json!([])).await;
    node.call("eth_newBlockFilter", json!([])).await;
    let full = node.error("eth_newBlockFilter", json!([])).await;
    assert!(
        full["message"]
            .as_str()
            .unwrap()
            .starts_with("too many filters"),
        "{full}"
    );
    // Still serving.
    assert_eq!(node.call("eth_chainId", json!([])).await, json!("0x539"));
    node.rpc.stop().await;
}

/// Issue 11 fault 3: the channel lists scan logs as eth_getLogs does and share its range
/// limit (before, they scanned the whole chain whatever its length).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_lists_are_limited_like_get_logs() {
    let node = node_with(RpcConfig {
        max_log_range: 2,
        api: Api::ALL.into_iter().collect(),
        ..Default::default()
    })
    .await;
    for _ in 0..3 {
        node.produce();
    }
    for method in ["eth_getLogs", "channel_listByPayer", "channel_listByPayee"] {
        let params = match method {
            "eth_getLogs" => json!([{"fromBlock": "0x0", "toBlock": "latest"}]),
            _ => json!([DEV_ADDRESS]),
        };
        let refused = node.error(method, params).await;
        assert_eq!(refused["code"], json!(-32005), "{method}: {refused}");
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .starts_with("block range too large: 4 blocks, the limit is 2"),
            "{method}: {refused}"
        );
    }
    // A range within the limit is served.
    let listed = node
        .call("channel_listByPayer", json!([DEV_ADDRESS, "0x2", "latest"]))
        .await;
    assert_eq!(listed, json!([]));
    node.rpc.stop().await;
}

/// Issue 11 fault 3: heavy requests run on `max-concurrent-heavy` threads of their own; a
/// burst beyond those threads and their queue is refused at once with -32005, while light
/// requests keep being answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_heavy_requests_is_refused_beyond_the_heavy_pool() {
    let node = node_with(RpcConfig {
        max_concurrent_heavy: 1,
        api: Api::ALL.into_iter().collect(),
        ..Default::default()
    })
    .await;
    // 40 simultaneous loops of 50M gas, each on its own connection: one runs, 8 wait (one
    // more may slip into the slot the first leaves), the rest are refused.
    let call = json!({"data": LOOP, "gas": "0x2faf080"});
    let mut burst = tokio::task::JoinSet::new();
    for id in 0..40 {
        let (http, url) = (reqwest::Client::new(), node.rpc.http_url());
        let body =
            json!({"jsonrpc": "2.0", "id": id, "method": "eth_call", "params": [call, "latest"]});
        burst.spawn(async move {
            let answer = http.post(url).json(&body).send().await.expect("send");
            answer.json::<Value>().await.expect("json")
        });
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(node.call("eth_blockNumber", json!([])).await, json!("0x0"));
    let answers = burst.join_all().await;
    let refused = answers
        .iter()
        .filter(|a| {
            a["error"]["code"] == json!(-32005)
                && a["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("max-concurrent-heavy"))
        })
        .count();
    let ran = answers.len() - refused;
    assert!(
        refused >= 40 - 2 - super::heavy::QUEUE_PER_THREAD && ran >= 1,
        "{refused} refused, {ran} ran: {answers:?}"
    );
    node.rpc.stop().await;
}

/// Issue 11: `api` selects the namespaces. By default debug and dev signing are off (debug
/// replays cost CPU; signing is for dev accounts), eth_accounts still answers `[]`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_selects_the_namespaces() {
    let node = node_with(RpcConfig::default()).await;
    let call = json!({"data": "0x00"});
    let missing = node
        .error("debug_traceCall", json!([call, "latest", {}]))
        .await;
    assert_eq!(missing["code"], json!(-32601), "{missing}");
    let missing = node.error("eth_sendTransaction", json!([{}])).await;
    assert_eq!(missing["code"], json!(-32601), "{missing}");
    assert_eq!(node.call("eth_accounts", json!([])).await, json!([]));
    assert_eq!(node.call("eth_chainId", json!([])).await, json!("0x539"));
    node.rpc.stop().await;

    let node = node_with(RpcConfig {
        api: [Api::Net].into_iter().collect(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        node.error("eth_chainId", json!([])).await["code"],
        json!(-32601)
    );
    node.call("net_version", json!([])).await;
    node.rpc.stop().await;
}

#[path = "anvil_tests.rs"]
mod anvil_tests;
