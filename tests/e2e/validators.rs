//! A real multi-validator network: four validators and one full node made by
//! `bttd testnet init`, each its own `bttd node --home` process talking libp2p on loopback.
//!
//! What it shows (issue 4): transactions sent over JSON-RPC to any node are finalised; every
//! node reports the same hash at every height; with one validator SIGKILLed the chain keeps
//! finalising (3 of 4 is more than 2/3 of the stake); with two killed finality stops and
//! nothing forks; restarted, both catch up through block sync and the chain goes on; no node
//! saw a conflicting signature (bttd_getEvidence is empty everywhere) and every block carries a
//! commit certificate.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use eyre::{Result, ensure, eyre};
use serde_json::{Value, json};

use crate::support::{Devnet, quantity, transfer_1559};

const CHAIN_ID: u64 = 1337;
const VALIDATORS: usize = 4;

pub(crate) fn init_testnet(dir: &Path, rpc_port: u16, p2p_port: u16) -> Result<()> {
    // Short epochs: the run crosses many epoch boundaries (new signing epoch, next-set
    // commitment in the last block of each).
    testnet_init(
        dir,
        rpc_port,
        p2p_port,
        &["--full-nodes", "1", "--epoch-length", "5"],
    )
}

/// `bttd testnet init` of four validators with 300 ms blocks, plus `extra` flags.
pub(crate) fn testnet_init(dir: &Path, rpc_port: u16, p2p_port: u16, extra: &[&str]) -> Result<()> {
    let out = Command::new(crate::support::bttd_bin())
        .args(["testnet", "init", "--validators", "4"])
        .arg("--out")
        .arg(dir)
        .args(["--rpc-port", &rpc_port.to_string()])
        .args(["--p2p-port", &p2p_port.to_string()])
        .args(["--block-time", "300ms"])
        .args(extra)
        .output()?;
    ensure!(
        out.status.success(),
        "testnet init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

pub(crate) fn wait_height(node: &Devnet, height: u64, timeout: Duration) -> Result<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let n = node.block_number()?;
        if n >= height {
            return Ok(n);
        }
        if Instant::now() > deadline {
            return Err(eyre!(
                "{} stuck at {n}, wanted {height}\n{}",
                node.rpc_url,
                tail(&node.log_text())
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

pub(crate) fn block_hash(node: &Devnet, n: u64) -> Result<String> {
    let block = node.call("eth_getBlockByNumber", json!([format!("0x{n:x}"), false]))?;
    Ok(block["hash"]
        .as_str()
        .ok_or_else(|| eyre!("no block {n} on {}", node.rpc_url))?
        .to_string())
}

/// Every running node has the same hash at every height up to the lowest head.
pub(crate) fn same_chain(nodes: &[&Devnet]) -> Result<u64> {
    let lowest = nodes
        .iter()
        .map(|n| n.block_number())
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .min()
        .unwrap_or(0);
    for h in 1..=lowest {
        let first = block_hash(nodes[0], h)?;
        for node in &nodes[1..] {
            let other = block_hash(node, h)?;
            ensure!(other == first, "fork at height {h}: {first} vs {other}");
        }
    }
    Ok(lowest)
}

/// Dev account `index` of the test mnemonic (funded by `bttd testnet init`).
pub fn dev_signer(index: u32) -> Result<alloy_signer_local::PrivateKeySigner> {
    let account = bttd_genesis::dev_accounts(index + 1)?
        .pop()
        .ok_or_else(|| eyre!("no dev account {index}"))?;
    Ok(alloy_signer_local::PrivateKeySigner::from_bytes(
        &account.private_key,
    )?)
}

fn send_transfers(node: &Devnet, from: u32, count: u64) -> Result<Vec<alloy_primitives::B256>> {
    let key = dev_signer(from)?;
    let nonce = node.nonce(key.address(), "pending")?;
    (0..count)
        .map(|i| {
            let raw = transfer_1559(
                &key,
                CHAIN_ID,
                nonce + i,
                Address::with_last_byte(0xb0 + from as u8),
                U256::from(1_000 + i),
                10_000_000_000,
                1_000_000_000,
            );
            node.send_raw(&raw)
        })
        .collect()
}

#[test]
fn four_validators_finalise_survive_one_crash_halt_without_fork_at_two_and_recover() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let rpc_port = crate::support::free_port_range(5);
    let p2p_port = crate::support::free_port_range(5);
    init_testnet(dir.path(), rpc_port, p2p_port)?;
    let homes: Vec<_> = (0..VALIDATORS)
        .map(|i| dir.path().join(format!("node{i}")))
        .chain([dir.path().join("full0")])
        .collect();
    let mut nodes: Vec<Option<Devnet>> = homes
        .iter()
        .enumerate()
        .map(|(i, home)| Devnet::start_home(home, rpc_port + i as u16).map(Some))
        .collect::<Result<_>>()?;

    // Finality with everyone up, and transactions sent to different nodes.
    wait_height(nodes[0].as_ref().unwrap(), 3, Duration::from_secs(60))?;
    let mut sent = Vec::new();
    for (i, from) in [(0usize, 0u32), (2, 1), (4, 2)] {
        sent.extend(send_transfers(nodes[i].as_ref().unwrap(), from, 5)?);
    }
    for hash in &sent {
        let receipt = nodes[1]
            .as_ref()
            .unwrap()
            .wait_receipt(*hash, Duration::from_secs(60))?
            .ok_or_else(|| eyre!("transaction {hash} not finalised"))?;
        ensure!(
            receipt["status"] == json!("0x1"),
            "{hash} failed: {receipt}"
        );
    }
    let all: Vec<&Devnet> = nodes.iter().flatten().collect();
    let h = same_chain(&all)?;
    ensure!(h >= 3, "chain too short: {h}");
    let head = all[4].block_number()?;
    let cert = all[4].call("bttd_getCommitCertificate", json!([format!("0x{head:x}")]))?;
    ensure!(
        !cert.is_null(),
        "no certificate for block {head} on the full node"
    );
    let signers = cert["signerIndices"].as_array().map(Vec::len).unwrap_or(0);
    ensure!(signers >= 3, "certificate with {signers} signers: {cert}");
    let validators = all[0].call("bor_getCurrentValidators", json!([]))?;
    let signers: Vec<String> = validators
        .as_array()
        .ok_or_else(|| eyre!("{validators}"))?
        .iter()
        .map(|v| v["signer"].as_str().unwrap_or_default().to_lowercase())
        .collect();
    ensure!(signers.len() == VALIDATORS, "{validators}");
    for n in &all {
        let author = n.call("bor_getAuthor", json!(["latest"]))?;
        let proposer = n.call("bor_getCurrentProposer", json!([]))?;
        for who in [&author, &proposer] {
            let who = who.as_str().unwrap_or_default().to_lowercase();
            ensure!(
                signers.contains(&who),
                "{who} is not a validator: {validators}"
            );
        }
    }

    // One validator down: 3 of 4 still finalise.
    nodes[3].as_mut().unwrap().kill();
    nodes[3] = None;
    let before = nodes[0].as_ref().unwrap().block_number()?;
    wait_height(
        nodes[0].as_ref().unwrap(),
        before + 5,
        Duration::from_secs(60),
    )?;
    let more = send_transfers(nodes[1].as_ref().unwrap(), 3, 3)?;
    for hash in &more {
        nodes[4]
            .as_ref()
            .unwrap()
            .wait_receipt(*hash, Duration::from_secs(60))?
            .ok_or_else(|| eyre!("transaction {hash} not finalised with 3 of 4 validators"))?;
    }

    // Two down: no quorum, finality stops, and nothing forks.
    nodes[2].as_mut().unwrap().kill();
    nodes[2] = None;
    std::thread::sleep(Duration::from_secs(3));
    let stalled_at = nodes[0].as_ref().unwrap().block_number()?;
    std::thread::sleep(Duration::from_secs(5));
    let live: Vec<&Devnet> = nodes.iter().flatten().collect();
    for n in &live {
        let now = n.block_number()?;
        ensure!(
            now <= stalled_at + 1,
            "{} advanced from {stalled_at} to {now} with half the stake down",
            n.rpc_url
        );
    }
    same_chain(&live)?;

    // Both back: they sync, and the chain goes on.
    for i in [2, 3] {
        nodes[i] = Some(Devnet::start_home(&homes[i], rpc_port + i as u16)?);
    }
    let target = stalled_at + 5;
    for n in nodes.iter().flatten() {
        wait_height(n, target, Duration::from_secs(90))?;
    }
    let all: Vec<&Devnet> = nodes.iter().flatten().collect();
    let h = same_chain(&all)?;
    ensure!(h >= target, "only {h} after recovery");
    for n in &all {
        let evidence = n.call("bttd_getEvidence", json!([]))?;
        ensure!(
            evidence == Value::Array(vec![]),
            "{} saw conflicting signatures: {evidence}",
            n.rpc_url
        );
        let syncing = n.call("eth_syncing", json!([]))?;
        ensure!(
            syncing == json!(false),
            "{} still syncing: {syncing}",
            n.rpc_url
        );
    }
    let finalized = all[0].call("eth_getBlockByNumber", json!(["finalized", false]))?;
    ensure!(quantity(&finalized["number"])? >= target);
    Ok(())
}
