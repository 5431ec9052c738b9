//! Pool policy and request limits as clients meet them (issue 11, fault 2): bursts that geth
//! and anvil accept are accepted here too, on the single producer and on four validators.

use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, U256};
use eyre::{Result, ensure};
use serde_json::{Value, json};

use crate::support::{Devnet, quantity, signer, transfer_1559};

/// Sends `count` transfers from dev account 0 with consecutive nonces, one request each,
/// then waits until every one is mined.
fn sequential_burst(node: &Devnet, count: u64) -> Result<()> {
    let key = signer(0);
    let chain_id = quantity(&node.call("eth_chainId", json!([]))?)?;
    let start = node.nonce(key.address(), "latest")?;
    let to = Address::repeat_byte(0x77);
    for i in 0..count {
        let raw = transfer_1559(
            &key,
            chain_id,
            start + i,
            to,
            U256::from(1),
            100_000_000_000,
            1,
        );
        node.send_raw(&raw)
            .map_err(|e| e.wrap_err(format!("transaction {i} of {count} refused")))?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while node.nonce(key.address(), "latest")? < start + count {
        ensure!(
            Instant::now() < deadline,
            "not all {count} transactions were mined"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

#[test]
fn a_thousand_sequential_transactions_from_one_account_are_mined_on_the_single_producer()
-> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Devnet::start(dir.path(), &["--block-time", "200ms"])?;
    sequential_burst(&node, 1_000)
}

#[test]
fn a_thousand_sequential_transactions_from_one_account_are_mined_on_four_validators() -> Result<()>
{
    let dir = tempfile::tempdir()?;
    let node = Devnet::start_four_validators(dir.path())?;
    sequential_burst(&node, 1_000)
}

/// geth's `--rpc.batch-request-limit` (1,000): a batch of 1,000 is answered, 1,001 refused.
#[test]
fn a_batch_of_a_thousand_is_answered_and_one_more_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Devnet::start(dir.path(), &[])?;
    let batch = |n: usize| -> Value {
        (0..n)
            .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "eth_chainId", "params": []}))
            .collect()
    };
    let answered = node.raw(batch(1_000))?;
    let answers = answered.as_array().map_or(0, Vec::len);
    ensure!(
        answers == 1_000,
        "1,000 requests got {answers} answers: {answered:.200}"
    );
    ensure!(
        answered
            .as_array()
            .is_some_and(|a| a.iter().all(|r| r.get("result").is_some())),
        "an answer of the 1,000 is an error"
    );
    let refused = node.raw(batch(1_001))?;
    ensure!(
        refused.get("error").is_some(),
        "a batch of 1,001 was not refused: {refused:.200}"
    );
    Ok(())
}

/// Whether validator `url`'s pool holds `hash` (pending or queued).
fn pooled(node: &Devnet, url: &str, hash: B256) -> Result<bool> {
    let content = node.call_at(url, "txpool_content", json!([]))?;
    Ok(content.to_string().contains(&format!("{hash:#x}")))
}

/// Waits until `check` holds on every validator's pool.
fn wait_pools(
    node: &Devnet,
    urls: &[String],
    what: &str,
    check: impl Fn(&str) -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut missing = Vec::new();
        for url in urls {
            if !check(url)? {
                missing.push(url.as_str());
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{what}: not so on {missing:?} after 20 s (head {})",
            node.block_number()?
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Issue 11 fault 1: the pool re-checks the senders a block touched with the same checked
/// cost. A queued transaction, affordable when it came, whose sender is then drained by its
/// own earlier nonce (sent to another validator) leaves every validator's pool.
#[test]
fn a_sender_drained_by_another_transaction_leaves_every_pool() -> Result<()> {
    const MAX_FEE: u128 = 100_000_000_000;
    let dir = tempfile::tempdir()?;
    let node = Devnet::start_four_validators(dir.path())?;
    let urls: Vec<String> = (0..4)
        .map(|i| node.validator_url(i))
        .collect::<Result<_>>()?;
    // Dev account 2 of the mnemonic: nobody else in this test sends from it.
    let key = crate::validators::dev_signer(2)?;
    let chain_id = quantity(&node.call("eth_chainId", json!([]))?)?;
    let nonce = node.nonce(key.address(), "latest")?;
    let to = Address::repeat_byte(0x78);

    // nonce + 1: one wei, affordable alone; queued behind the gap, gossiped everywhere.
    let later = transfer_1559(&key, chain_id, nonce + 1, to, U256::from(1), MAX_FEE, 1);
    let later_hash = node.send_raw(&later)?;
    wait_pools(&node, &urls, "the queued transaction is pooled", |url| {
        pooled(&node, url, later_hash)
    })?;

    // nonce, through validator 3: everything but its own gas at the fee cap.
    let balance = node.balance(key.address())?;
    let gas_cost = U256::from(21_000u64 * MAX_FEE as u64);
    let drain = transfer_1559(&key, chain_id, nonce, to, balance - gas_cost, MAX_FEE, 1);
    let drain_hash: B256 = serde_json::from_value(node.call_at(
        &urls[3],
        "eth_sendRawTransaction",
        json!([format!("0x{}", alloy_primitives::hex::encode(&drain))]),
    )?)?;
    let receipt = node
        .wait_receipt(drain_hash, Duration::from_secs(30))?
        .ok_or_else(|| eyre::eyre!("the draining transaction was not mined"))?;
    ensure!(receipt["status"] == json!("0x1"), "drain failed: {receipt}");

    wait_pools(
        &node,
        &urls,
        "the drained sender's transaction left the pool",
        |url| Ok(!pooled(&node, url, later_hash)?),
    )?;
    ensure!(
        node.nonce(key.address(), "latest")? == nonce + 1,
        "the unaffordable transaction was mined"
    );
    Ok(())
}
