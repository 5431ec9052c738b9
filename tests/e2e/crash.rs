//! Crash safety: SIGKILL the node while it takes transactions, restart it from the same
//! datadir, and check that every block and receipt a client saw is still there, unchanged,
//! that every block is whole, and that balances add up over the whole chain. Also: SIGTERM
//! stops the node cleanly and it resumes where it stopped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use alloy_primitives::{Address, B256, U256};
use eyre::{Result, ensure, eyre};
use serde_json::{Value, json};

use crate::support::{Devnet, quantity, signer, transfer_1559};

const CHAIN_ID: u64 = 1337;
const GENESIS_BALANCE: u128 = 1_000_000 * 10u128.pow(18);

/// Sends transfers from dev account `index` as fast as the node takes them, until `stop`.
fn spam(node_url: String, index: usize, stop: Arc<AtomicBool>) -> Vec<B256> {
    let key = signer(index);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let call = |method: &str, params: Value| -> Option<Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        client
            .post(&node_url)
            .json(&body)
            .send()
            .ok()?
            .json::<Value>()
            .ok()?
            .get("result")
            .cloned()
    };
    let mut nonce = call("eth_getTransactionCount", json!([key.address(), "pending"]))
        .and_then(|v| quantity(&v).ok())
        .unwrap_or(0);
    let mut sent = Vec::new();
    let to = Address::with_last_byte(0xa0 + index as u8);
    while !stop.load(Ordering::Relaxed) {
        let raw = transfer_1559(
            &key,
            CHAIN_ID,
            nonce,
            to,
            U256::from(1_000 + nonce),
            100_000_000_000,
            1_000_000_000,
        );
        match call(
            "eth_sendRawTransaction",
            json!([format!("0x{}", alloy_primitives::hex::encode(raw))]),
        ) {
            Some(hash) => {
                sent.push(serde_json::from_value(hash).unwrap());
                nonce += 1;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    sent
}

#[test]
fn sigkill_while_taking_transactions_loses_no_committed_block() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut node = Devnet::start(dir.path(), &["--block-time", "100ms"])?;
    let stop = Arc::new(AtomicBool::new(false));
    let spammers: Vec<_> = (0..3)
        .map(|i| {
            let (url, stop) = (node.rpc_url.clone(), stop.clone());
            std::thread::spawn(move || spam(url, i, stop))
        })
        .collect();

    // Watch the chain as a client would, remembering every block hash and receipt seen.
    let mut seen_blocks = BTreeMap::new();
    let mut seen_receipts: BTreeMap<B256, Value> = BTreeMap::new();
    // Watch for at least 3 s and until 20 transactions were seen mined (a loaded machine is
    // slower), at most 30 s.
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(3)
        || (seen_receipts.len() <= 20 && started.elapsed() < Duration::from_secs(30))
    {
        let head = node.block_number()?;
        let block = node.call(
            "eth_getBlockByNumber",
            json!([format!("0x{head:x}"), false]),
        )?;
        seen_blocks.insert(head, block["hash"].as_str().unwrap().to_string());
        for tx in block["transactions"].as_array().unwrap() {
            let hash: B256 = serde_json::from_value(tx.clone())?;
            seen_receipts.insert(hash, node.call("eth_getTransactionReceipt", json!([hash]))?);
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    node.kill();
    stop.store(true, Ordering::Relaxed);
    for s in spammers {
        s.join().map_err(|_| eyre!("spammer panicked"))?;
    }
    ensure!(
        seen_receipts.len() > 20,
        "too few transactions mined before the kill: {}",
        seen_receipts.len()
    );

    // Restart without producing blocks, so the state is exactly what was on disk.
    let node = Devnet::start(dir.path(), &["--block-time", "1h"])?;
    let head = node.block_number()?;
    let (last_seen, _) = seen_blocks.last_key_value().unwrap();
    ensure!(
        head >= *last_seen,
        "head {head} is behind a block seen before the crash ({last_seen})"
    );
    for (number, hash) in &seen_blocks {
        let block = node.call(
            "eth_getBlockByNumber",
            json!([format!("0x{number:x}"), false]),
        )?;
        ensure!(
            block["hash"].as_str() == Some(hash.as_str()),
            "block {number} changed across the crash"
        );
    }
    for (hash, receipt) in &seen_receipts {
        ensure!(
            &node.call("eth_getTransactionReceipt", json!([hash]))? == receipt,
            "receipt of {hash} changed"
        );
    }

    // Every block is whole and linked, and balances add up over the whole chain.
    let mut spent: BTreeMap<Address, U256> = BTreeMap::new();
    let mut received: BTreeMap<Address, U256> = BTreeMap::new();
    let mut mined: BTreeMap<Address, u64> = BTreeMap::new();
    let mut parent = node.call("eth_getBlockByNumber", json!(["0x0", false]))?["hash"].clone();
    for number in 1..=head {
        let block = node.call(
            "eth_getBlockByNumber",
            json!([format!("0x{number:x}"), true]),
        )?;
        ensure!(
            block["parentHash"] == parent,
            "block {number} does not link to its parent"
        );
        parent = block["hash"].clone();
        let receipts = node.call("eth_getBlockReceipts", json!([format!("0x{number:x}")]))?;
        let txs = block["transactions"].as_array().unwrap();
        ensure!(
            receipts.as_array().map(Vec::len) == Some(txs.len()),
            "block {number}: receipts and transactions differ in count"
        );
        for (tx, receipt) in txs.iter().zip(receipts.as_array().unwrap()) {
            let from: Address = serde_json::from_value(tx["from"].clone())?;
            let to: Address = serde_json::from_value(tx["to"].clone())?;
            let value: U256 = serde_json::from_value(tx["value"].clone())?;
            let gas: U256 = serde_json::from_value(receipt["gasUsed"].clone())?;
            let price: U256 = serde_json::from_value(receipt["effectiveGasPrice"].clone())?;
            *spent.entry(from).or_default() += value + gas * price;
            *received.entry(to).or_default() += value;
            *mined.entry(from).or_default() += 1;
        }
    }
    for (address, spent) in &spent {
        ensure!(
            node.balance(*address)? == U256::from(GENESIS_BALANCE) - spent,
            "balance of {address} does not add up"
        );
        ensure!(
            node.nonce(*address, "latest")? == mined[address],
            "nonce of {address} does not match its mined transactions"
        );
    }
    for (address, received) in &received {
        ensure!(
            node.balance(*address)? == *received,
            "balance of recipient {address} does not add up"
        );
    }
    Ok(())
}

#[test]
fn sigterm_stops_cleanly_and_the_devnet_resumes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut node = Devnet::start(dir.path(), &["--block-time", "100ms"])?;
    let key = signer(1);
    let raw = transfer_1559(
        &key,
        CHAIN_ID,
        0,
        Address::with_last_byte(0xbb),
        U256::from(7),
        100_000_000_000,
        1_000_000_000,
    );
    let hash = node.send_raw(&raw)?;
    let receipt = node
        .wait_receipt(hash, Duration::from_secs(10))?
        .ok_or_else(|| eyre!("not mined"))?;
    let status = node.terminate()?;
    ensure!(status.success(), "bttd exited with {status} on SIGTERM");
    let node = Devnet::start(dir.path(), &["--block-time", "100ms"])?;
    ensure!(
        node.call("eth_getTransactionReceipt", json!([hash]))? == receipt,
        "receipt changed across restart"
    );
    let before = quantity(&receipt["blockNumber"])?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while node.block_number()? <= before {
        ensure!(
            std::time::Instant::now() < deadline,
            "the resumed devnet does not produce blocks"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
