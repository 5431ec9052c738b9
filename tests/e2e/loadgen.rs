//! `bttd loadgen` against a 4-validator `bttd devnet`: a short, light load (100 tx/s for 3 s,
//! spread over all four validators' RPC) is included in full, and the JSON report agrees with
//! the chain: every transfer reached the sink, every sender's nonce moved by its share, and
//! each transaction has a latency sample. No timing assertions: the figures belong in
//! docs/benchmarks.md, measured on a quiet machine.

use std::process::Command;

use alloy_primitives::{Address, U256, keccak256};
use eyre::{Result, ensure, eyre};
use serde_json::Value;

use crate::support::{BTTD, Devnet};

const RATE: u64 = 100;
const SECONDS: u64 = 3;
const SENDERS: u64 = 20;
const FIRST_ACCOUNT: u32 = 10;

#[test]
fn loadgen_on_four_validators_includes_every_transaction_and_reports_json() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node =
        Devnet::start_validators(&dir.path().join("chain"), 4, "200ms", &["--accounts", "30"])?;
    // Validator i serves RPC on the printed port + i.
    let port: u16 = node
        .rpc_url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| eyre!("no port in {}", node.rpc_url))?;
    let mut args = vec!["loadgen".to_string()];
    for i in 0..4 {
        args.push("--rpc-url".into());
        args.push(format!("http://127.0.0.1:{}", port + i));
    }
    args.extend(
        [
            "--rate",
            &RATE.to_string(),
            "--duration",
            &format!("{SECONDS}s"),
            "--senders",
            &SENDERS.to_string(),
            "--drain-timeout",
            "60s",
            "--json",
        ]
        .map(String::from),
    );
    let out = Command::new(BTTD).args(&args).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "loadgen failed: {stderr}\n{}",
        node.log_text()
    );
    let report: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        eyre!(
            "loadgen printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;

    let total = RATE * SECONDS;
    let count = |key: &str| {
        report[key]
            .as_u64()
            .ok_or_else(|| eyre!("no {key} in {report}"))
    };
    ensure!(count("sent")? == total, "sent: {report}");
    ensure!(count("accepted")? == total, "accepted: {report}");
    ensure!(count("included")? == total, "included: {report}");
    ensure!(count("missing")? == 0, "missing: {report}");
    ensure!(
        report["errors"].as_object().is_some_and(|e| e.is_empty()),
        "errors: {report}"
    );
    ensure!(
        report["latency_ms"]["count"].as_u64() == Some(total),
        "one latency sample per transaction: {report}"
    );
    let p50 = report["latency_ms"]["p50"]
        .as_f64()
        .ok_or_else(|| eyre!("no p50"))?;
    let p99 = report["latency_ms"]["p99"]
        .as_f64()
        .ok_or_else(|| eyre!("no p99"))?;
    let max = report["latency_ms"]["max"]
        .as_f64()
        .ok_or_else(|| eyre!("no max"))?;
    ensure!(
        0.0 < p50 && p50 <= p99 && p99 <= max,
        "ordered percentiles: {report}"
    );
    ensure!(count("blocks")? >= 2, "blocks: {report}");
    let per_block_total = report["txs_per_block"]["mean"].as_f64().unwrap_or(0.0)
        * report["txs_per_block"]["count"].as_f64().unwrap_or(0.0);
    ensure!(
        per_block_total.round() as u64 >= total,
        "the blocks holding our transactions hold at least all of them: {report}"
    );
    ensure!(
        report["block_interval_seen_ms"]["p50"].as_f64().is_some(),
        "{report}"
    );

    // The chain agrees: each transfer moved 1 wei to the sink; each sender sent its share.
    let sink = Address::from_slice(&keccak256("bttd loadgen sink")[12..]);
    ensure!(node.balance(sink)? == U256::from(total), "sink balance");
    let accounts = bttd_genesis::dev_accounts(FIRST_ACCOUNT + SENDERS as u32)?;
    for account in &accounts[FIRST_ACCOUNT as usize..] {
        ensure!(
            node.nonce(account.address, "latest")? == total / SENDERS,
            "nonce of {}",
            account.address
        );
    }

    // A devnet that does not fund the senders is refused before anything is sent.
    let out = Command::new(BTTD)
        .args([
            "loadgen",
            "--rpc-url",
            &node.rpc_url,
            "--first-account",
            "30",
            "--senders",
            "2",
        ])
        .args(["--rate", "10", "--duration", "1s"])
        .output()?;
    ensure!(!out.status.success(), "unfunded senders accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        stderr.contains("--accounts 32"),
        "unclear refusal: {stderr}"
    );
    ensure!(
        node.balance(sink)? == U256::from(total),
        "a refused run sent nothing"
    );
    Ok(())
}
