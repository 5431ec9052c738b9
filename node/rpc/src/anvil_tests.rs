//! The anvil/hardhat test methods over HTTP on an in-memory devnet: cheats mine a block that
//! carries them, snapshots unwind, automine answers after the block, hostile quantities get
//! clear errors, and a node without the devnet control refuses every method with -32000.

use std::collections::BTreeSet;
use std::sync::Arc;

use alloy_primitives::{Address, TxKind, address};
use bttd_txpool::devnet::{DevnetControl, MiningMode};
use serde_json::{Value, json};

use super::{BENEFICIARY, DEV_ADDRESS, Node, RECIPIENT, node, quantity, tx};
use crate::anvil::{AnvilApiServer, METHODS, refusal};
use crate::{Rpc, RpcConfig, start};

const TARGET: Address = address!("00000000000000000000000000000000000a11ce");

async fn devnet(mode: MiningMode) -> Node {
    let ctx = crate::test_context();
    ctx.devnet
        .set(Arc::new(DevnetControl::new(mode, BENEFICIARY)))
        .expect("set once");
    let rpc = start(
        ctx.clone(),
        RpcConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            api: crate::Api::ALL.into_iter().collect(),
            ..RpcConfig::default()
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

async fn head(node: &Node) -> Value {
    node.call("eth_getBlockByNumber", json!(["latest", false]))
        .await
}

#[tokio::test]
async fn every_method_is_refused_with_32000_without_the_devnet_control() {
    let node = node().await;
    for method in METHODS {
        let error = node.error(method, json!([])).await;
        assert_eq!(error["code"], -32000, "{method}: {error}");
        assert_eq!(error["message"], refusal(method), "{method}");
    }
    // The list the refusal serves is exactly what the devnet serves.
    let served: BTreeSet<String> =
        AnvilApiServer::into_rpc(Rpc::new(node.ctx.clone(), RpcConfig::default(), None).unwrap())
            .method_names()
            .map(str::to_owned)
            .collect();
    let refused: BTreeSet<String> = METHODS.iter().map(|m| m.to_string()).collect();
    assert_eq!(served, refused);
}

#[tokio::test]
async fn cheats_mine_a_block_that_carries_them_and_revert_unwinds_it() {
    let node = devnet(MiningMode::Never).await;
    let genesis = head(&node).await;
    let id = node.call("evm_snapshot", json!([])).await;
    assert_eq!(id, "0x1");

    node.call("anvil_setBalance", json!([TARGET, "0x2a"])).await;
    node.call("hardhat_setNonce", json!([TARGET, 7])).await;
    node.call("anvil_setCode", json!([TARGET, "0x6000"])).await;
    assert_eq!(
        node.call("anvil_setStorageAt", json!([TARGET, "0x1", "0x05"]))
            .await,
        true
    );
    let block = head(&node).await;
    assert_eq!(quantity(&block["number"]), 4, "one block per cheat");
    assert_eq!(
        block["extraData"],
        format!("0x{}", alloy_primitives::hex::encode("anvil_setStorageAt"))
    );
    assert_eq!(
        quantity(&node.call("eth_getBalance", json!([TARGET, "latest"])).await),
        42
    );
    assert_eq!(
        quantity(&node.call("eth_getBalance", json!([TARGET, "0x0"])).await),
        0
    );
    assert_eq!(
        quantity(
            &node
                .call("eth_getTransactionCount", json!([TARGET, "latest"]))
                .await
        ),
        7
    );
    assert_eq!(
        node.call("eth_getCode", json!([TARGET, "latest"])).await,
        "0x6000"
    );
    assert_eq!(
        quantity(
            &node
                .call("eth_getStorageAt", json!([TARGET, "0x1", "latest"]))
                .await
        ),
        5
    );

    // Mining on demand, with pool transactions, and time.
    node.send(tx(0, TxKind::Call(RECIPIENT), 9, 21_000, vec![]))
        .await;
    node.call("evm_increaseTime", json!(["0xe10"])).await;
    node.call("evm_mine", json!([])).await;
    let mined = head(&node).await;
    assert_eq!(mined["transactions"].as_array().unwrap().len(), 1);
    assert!(quantity(&mined["timestamp"]) >= quantity(&block["timestamp"]) + 3600);
    let pinned = quantity(&mined["timestamp"]) + 100;
    node.call("evm_mine", json!([pinned as u64])).await;
    assert_eq!(quantity(&head(&node).await["timestamp"]), pinned);
    node.call("anvil_setNextBlockBaseFeePerGas", json!(["0x77359400"]))
        .await;
    node.call("anvil_mine", json!(["0x3", "0x3c"])).await;
    let last = head(&node).await;
    assert_eq!(quantity(&last["number"]), 9);
    assert_eq!(quantity(&last["timestamp"]), pinned + 120);

    assert_eq!(node.call("evm_revert", json!([id])).await, true);
    assert_eq!(head(&node).await["hash"], genesis["hash"]);
    assert_eq!(
        quantity(&node.call("eth_getBalance", json!([TARGET, "latest"])).await),
        0
    );
    assert_eq!(
        node.call("eth_getCode", json!([TARGET, "latest"])).await,
        "0x"
    );
    assert_eq!(
        quantity(
            &node
                .call("eth_getTransactionCount", json!([DEV_ADDRESS, "latest"]))
                .await
        ),
        0
    );
    assert_eq!(
        node.call("evm_revert", json!([id])).await,
        false,
        "consumed"
    );
    // The chain goes on from genesis.
    node.call("evm_mine", json!([])).await;
    assert_eq!(quantity(&head(&node).await["number"]), 1);
}

#[tokio::test]
async fn automine_answers_after_the_block_and_impersonation_needs_no_key() {
    let node = devnet(MiningMode::Auto).await;
    assert_eq!(node.call("anvil_getAutomine", json!([])).await, true);
    let hash = node
        .send(tx(0, TxKind::Call(RECIPIENT), 1, 21_000, vec![]))
        .await;
    let receipt = node.call("eth_getTransactionReceipt", json!([hash])).await;
    assert_eq!(receipt["status"], "0x1");

    node.call("anvil_setBalance", json!([TARGET, "0xde0b6b3a7640000"]))
        .await;
    let refused = node
        .error(
            "eth_sendUnsignedTransaction",
            json!([{"from": TARGET, "to": RECIPIENT, "value": "0x1"}]),
        )
        .await;
    assert_eq!(refused["code"], -32000);
    node.call("anvil_impersonateAccount", json!([TARGET])).await;
    let hash = node
        .call(
            "eth_sendTransaction",
            json!([{"from": TARGET, "to": RECIPIENT, "value": "0x5"}]),
        )
        .await;
    let receipt = node.call("eth_getTransactionReceipt", json!([hash])).await;
    assert_eq!(receipt["status"], "0x1");
    assert_eq!(receipt["from"], json!(TARGET));
    let stored = node.call("eth_getTransactionByHash", json!([hash])).await;
    assert_eq!(
        quantity(&stored["r"]),
        u128::from_be_bytes(TARGET.as_slice()[4..].try_into().unwrap()),
        "r is the sender (low 16 bytes checked)"
    );
    assert_eq!(quantity(&stored["s"]), 1);
    node.call("anvil_stopImpersonatingAccount", json!([TARGET]))
        .await;
    let error = node
        .error(
            "eth_sendTransaction",
            json!([{"from": TARGET, "to": RECIPIENT, "value": "0x5"}]),
        )
        .await;
    assert_eq!(error["message"], "unknown account");

    node.call("evm_setAutomine", json!([false])).await;
    assert_eq!(node.call("anvil_getAutomine", json!([])).await, false);
    let pending = node
        .send(tx(1, TxKind::Call(RECIPIENT), 1, 21_000, vec![]))
        .await;
    assert_eq!(
        node.call("eth_getTransactionReceipt", json!([pending]))
            .await,
        Value::Null
    );
    assert_eq!(
        node.call("anvil_dropTransaction", json!([pending])).await,
        json!(pending)
    );
    assert_eq!(
        node.call("anvil_dropTransaction", json!([pending])).await,
        Value::Null
    );
}

#[tokio::test]
async fn hostile_quantities_and_requests_get_clear_errors() {
    let node = devnet(MiningMode::Never).await;
    for (method, params) in [
        ("anvil_setBalance", json!([TARGET, "0xzz"])),
        ("anvil_setBalance", json!([TARGET, -1])),
        ("anvil_setNonce", json!([TARGET, "0x10000000000000000"])),
        ("evm_increaseTime", json!(["0x"])),
        ("anvil_mine", json!(["0x2710", "0xffffffffffffffff"])),
        ("evm_mine", json!([{"timestamp": "soon"}])),
        (
            "anvil_reset",
            json!([{"forking": {"jsonRpcUrl": "http://127.0.0.1:1"}}]),
        ),
        ("anvil_mine", json!(["0x2711"])),
        ("evm_setIntervalMining", json!([u64::MAX])),
    ] {
        let error = node.error(method, params.clone()).await;
        assert!(
            error["code"] == -32602 || error["code"] == -32000,
            "{method} {params}: {error}"
        );
    }
    // A base fee at the top of the range saturates in the next blocks instead of overflowing.
    node.call("anvil_setNextBlockBaseFeePerGas", json!([u64::MAX]))
        .await;
    node.call("anvil_mine", json!(["0x2"])).await;
    assert_eq!(
        quantity(&head(&node).await["baseFeePerGas"]) as u64,
        16140901064495857664
    );
    node.call("evm_increaseTime", json!([u64::MAX])).await;
    let error = node.error("evm_increaseTime", json!([1])).await;
    assert_eq!(error["message"], "time offset overflows");
    // Nothing above left a half-done chain behind.
    node.call("anvil_reset", json!([{"forking": {"blockNumber": null}}]))
        .await;
    assert_eq!(quantity(&head(&node).await["number"]), 0);
}
