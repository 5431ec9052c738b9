//! Pool policy and request limits as clients meet them (issue 11, fault 2): bursts that geth
//! and anvil accept are accepted here too, on the single producer and on four validators.

use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
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
