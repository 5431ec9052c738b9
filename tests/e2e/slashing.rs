//! Stake that answers for misbehaviour, on real processes (issue 13): `bttd testnet init
//! --validators 4 --full-nodes 1` with 16-block epochs and 16-block downtime windows
//! (`--downtime-window 16 --downtime-min-signed-bps 5000`: the 9th miss in a window jails;
//! `--jail-epochs 2 --unbonding-epochs 2`), 300 ms blocks. Four validators of 100 BTT (power
//! 100 each): node0 is run twice, node1 gets a doppelganger, node2 goes offline, node3 and the
//! full node only watch.
//!
//! Order, and why: the chain needs more than 2/3 of the power signing. With four equal
//! validators one tombstoned and one stopped at once would leave 2 of 4 (or 2 of 3) and halt,
//! so the parts run one after the other, each with at least 3 of 4 (or 3 of 3) signing:
//! 1. **Doppelganger refusal**: a copy of node1's home started without
//!    `--disable-doppelganger-protection` while node1 runs exits non-zero with the
//!    doppelganger error; node1 keeps its stake and status.
//! 2. **Downtime**: node2 is SIGSTOPped (3 of 4 sign) until StakeManager jails it (status 2)
//!    with exactly 9 misses counted in one window and `slashDowntimeBps` (0.01 %) of its 100 BTT
//!    taken; `bor_getCurrentValidators` shows the misses and `jailedUntilEpoch` meanwhile; it is
//!    SIGCONTed; `bttd validator unjail` is refused ("still jailed") in the epoch before
//!    `jailedUntilEpoch` (`jailEpochs` 2 makes that epoch certain) and succeeds from it; node2
//!    is back in a later set and its precommits are in the certificates again
//!    (`bttd_getCommitCertificate` signerIndices).
//! 3. **Twin**: a copy of node0's home (fresh datadir, own ports and libp2p identity) starts
//!    with `--disable-doppelganger-protection`; conflicting transactions (one account, same
//!    nonce, different recipients) go to each copy so their proposals differ. Within 50 heights
//!    evidence is included and slashes exactly 5 % of node0's 100 BTT (`bttd_getEvidence` and
//!    `bttd validator info`), node0 is tombstoned (status 3) and out of the next epoch's set,
//!    and the chain goes on with the three others (3 of 3).
//! 4. Every running node (the four validators and the full node) has the same block hash at
//!    every height up to the lowest head.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use eyre::{Result, WrapErr, ensure, eyre};
use serde_json::{Value, json};

use crate::staking::{bttd, bttd_fails, set_owners, wei};
use crate::support::{Devnet, free_port, quantity, transfer_1559};
use crate::validators::{dev_signer, same_chain, tail, testnet_init, wait_height};

const CHAIN_ID: u64 = 1337;
const EPOCH: u64 = 16;
const WINDOW: u64 = 16;
const MIN_SIGNED_BPS: u64 = 5000;
/// Two, not one: the jail's epoch is followed by a whole epoch in which `unjail` must be
/// refused, whenever in its epoch the jail falls.
const JAIL_EPOCHS: u64 = 2;
const BTT: u128 = 1_000_000_000_000_000_000;
const STAKE: u128 = 100 * BTT;

/// The owner (= signer) of a validator home: its account keystore's address.
fn owner_of(home: &Path) -> Result<Address> {
    let text = std::fs::read_to_string(home.join("keystore/account.json"))?;
    let v: Value = serde_json::from_str(&text)?;
    let a = v["address"].as_str().ok_or_else(|| eyre!("no address"))?;
    Ok(a.trim_start_matches("0x").parse()?)
}

/// `bttd validator info OWNER --json`.
fn info(url: &str, owner: Address) -> Result<Value> {
    bttd(&[
        "validator",
        "info",
        &owner.to_string(),
        "--json",
        "--rpc-url",
        url,
    ])
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// A second home for the same validator keys (made before the original starts, so its
/// datadir is empty): own RPC and p2p ports and a new libp2p identity, the same genesis.
fn copy_home(dir: &Path, from: &str, to: &str, rpc_port: u16) -> Result<PathBuf> {
    let copy = dir.join(to);
    copy_dir(&dir.join(from), &copy)?;
    std::fs::remove_file(copy.join("data/p2p.key"))?;
    let config_path = copy.join("config.toml");
    let mut config: toml::Table = toml::from_str(&std::fs::read_to_string(&config_path)?)?;
    let section = |config: &mut toml::Table, name: &str| -> Result<toml::Table> {
        config
            .get(name)
            .and_then(|v| v.as_table())
            .cloned()
            .ok_or_else(|| eyre!("no [{name}] in {}", config_path.display()))
    };
    let mut rpc = section(&mut config, "rpc")?;
    rpc.insert("port".into(), toml::Value::Integer(rpc_port.into()));
    config.insert("rpc".into(), toml::Value::Table(rpc));
    let mut p2p = section(&mut config, "p2p")?;
    p2p.insert("port".into(), toml::Value::Integer(free_port().into()));
    config.insert("p2p".into(), toml::Value::Table(p2p));
    std::fs::write(&config_path, toml::to_string(&config)?)?;
    Ok(copy)
}

/// `bor_getCurrentValidators`' entry of `owner`, if it is in the set.
fn current_entry(node: &Devnet, owner: Address) -> Result<Option<Value>> {
    let all = node.call("bor_getCurrentValidators", json!([]))?;
    for v in all.as_array().ok_or_else(|| eyre!("{all}"))? {
        if v["owner"].as_str().unwrap_or_default().parse::<Address>()? == owner {
            return Ok(Some(v.clone()));
        }
    }
    Ok(None)
}

fn u64_of(v: &Value) -> Result<u64> {
    v.as_u64().ok_or_else(|| eyre!("not a number: {v}"))
}

/// The first block after the epoch of `block` (the first decided by the next set).
fn next_epoch_start(block: u64) -> u64 {
    (block.saturating_sub(1) / EPOCH + 1) * EPOCH + 1
}

/// Whether validator `owner` signed the certificate of `block`.
fn signed(node: &Devnet, block: u64, owner: Address) -> Result<bool> {
    let owners = set_owners(node, block)?;
    let Some(index) = owners.iter().position(|o| *o == owner) else {
        return Ok(false);
    };
    let cert = node.call("bttd_getCommitCertificate", json!([format!("0x{block:x}")]))?;
    ensure!(!cert.is_null(), "no certificate for block {block}");
    Ok(cert["signerIndices"]
        .as_array()
        .ok_or_else(|| eyre!("{cert}"))?
        .iter()
        .any(|i| i.as_u64() == Some(index as u64)))
}

#[test]
fn a_twin_is_slashed_and_tombstoned_a_doppelganger_refuses_and_an_offline_validator_is_jailed_and_unjails()
-> Result<()> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let rpc_port = crate::support::free_port_range(5);
    let p2p_port = crate::support::free_port_range(5);
    testnet_init(
        dir.path(),
        rpc_port,
        p2p_port,
        &[
            "--full-nodes",
            "1",
            "--epoch-length",
            &EPOCH.to_string(),
            "--downtime-window",
            &WINDOW.to_string(),
            "--downtime-min-signed-bps",
            &MIN_SIGNED_BPS.to_string(),
            "--jail-epochs",
            &JAIL_EPOCHS.to_string(),
            "--unbonding-epochs",
            "2",
            "--slash-double-sign-bps",
            "500",
            "--slash-downtime-bps",
            "1",
        ],
    )?;
    let home = |name: &str| dir.path().join(name);
    let twin_port = free_port();
    let twin_home = copy_home(dir.path(), "node0", "node0-twin", twin_port)?;
    let doppel_home = copy_home(dir.path(), "node1", "node1-copy", free_port())?;
    let owners: Vec<Address> = (0..4)
        .map(|i| owner_of(&home(&format!("node{i}"))))
        .collect::<Result<_>>()?;
    let mut nodes: Vec<Devnet> = ["node0", "node1", "node2", "node3", "full0"]
        .iter()
        .enumerate()
        .map(|(i, name)| Devnet::start_home(&home(name), rpc_port + i as u16))
        .collect::<Result<_>>()?;
    let watcher = nodes[3].rpc_url.clone();
    wait_height(&nodes[3], 3, Duration::from_secs(60))?;
    for owner in &owners {
        let v = info(&watcher, *owner)?;
        ensure!(v["statusCode"] == json!(4), "{v}");
        ensure!(wei(&v["selfStake"])? == U256::from(STAKE), "{v}");
    }

    // 1. Doppelganger refusal: node1's keys started a second time, protection on.
    let doppel_log = doppel_home.join("doppelganger.log");
    let mut doppel = Command::new(crate::support::bttd_bin())
        .args(["node", "--home"])
        .arg(&doppel_home)
        .args(["--log", "info"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&doppel_log)?)
        .spawn()?;
    let doppel_started = Instant::now();
    let status = loop {
        if let Some(status) = doppel.try_wait()? {
            break status;
        }
        if doppel_started.elapsed() > Duration::from_secs(45) {
            let _ = doppel.kill();
            let _ = doppel.wait();
            return Err(eyre!(
                "the doppelganger of node1 still runs after 45 s\n{}",
                tail(&std::fs::read_to_string(&doppel_log)?)
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let doppel_text = std::fs::read_to_string(&doppel_log)?;
    ensure!(
        !status.success(),
        "the doppelganger exited with {status}\n{}",
        tail(&doppel_text)
    );
    ensure!(
        doppel_text.contains("another instance is signing with this key")
            && doppel_text.contains("--disable-doppelganger-protection"),
        "no doppelganger error in the copy's log\n{}",
        tail(&doppel_text)
    );
    let doppel_secs = doppel_started.elapsed().as_secs_f64();
    eprintln!(
        "doppelganger of node1 refused and exited ({status}) after {doppel_secs:.1} s: {}",
        doppel_text
            .lines()
            .find(|l| l.contains("DOPPELGANGER"))
            .unwrap_or_default()
    );

    // 2. Downtime: node2 stops answering until it is jailed.
    let offline = owners[2];
    let stopped_at = nodes[3].block_number()?;
    nodes[2].signal("STOP")?;
    let tolerated = WINDOW * (10_000 - MIN_SIGNED_BPS) / 10_000;
    let mut most_missed_seen = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let jailed = loop {
        ensure!(
            Instant::now() < deadline,
            "node2 not jailed 60 s after SIGSTOP (head {})",
            nodes[3].block_number()?
        );
        if let Some(entry) = current_entry(&nodes[3], offline)? {
            most_missed_seen = most_missed_seen.max(quantity(&entry["missedBlocks"])?);
        }
        let v = info(&watcher, offline)?;
        if v["statusCode"] == json!(2) {
            break v;
        }
        std::thread::sleep(Duration::from_millis(150));
    };
    let jailed_at = u64_of(&jailed["blockNumber"])?;
    nodes[2].signal("CONT")?;
    eprintln!("node2 stopped at head {stopped_at}, jailed by head {jailed_at}: {jailed}");
    ensure!(jailed["status"] == json!("jailed"), "{jailed}");
    ensure!(
        u64_of(&jailed["uptime"]["missed"])? == tolerated + 1,
        "jailed with {} misses counted, expected the {}th: {jailed}",
        jailed["uptime"]["missed"],
        tolerated + 1
    );
    let downtime_slash = U256::from(STAKE) / U256::from(10_000u64);
    ensure!(
        wei(&jailed["selfStake"])? == U256::from(STAKE) - downtime_slash,
        "downtime slash is not 1 bps of {STAKE}: {jailed}"
    );
    ensure!(
        most_missed_seen > 0,
        "bor_getCurrentValidators never showed node2's misses"
    );
    let until = u64_of(&jailed["jailedUntilEpoch"])?;
    // jailEpochs after the epoch of the jailing block (at or just before `jailed_at`).
    let epoch_seen = (jailed_at - 1) / EPOCH;
    ensure!(
        until == epoch_seen + JAIL_EPOCHS || until + 1 == epoch_seen + JAIL_EPOCHS,
        "jailedUntilEpoch {until} is not one epoch after the jail by {jailed_at}: {jailed}"
    );
    // Still in the current set (jailed mid-epoch): bor_getCurrentValidators says so.
    if let Some(entry) = current_entry(&nodes[3], offline)? {
        ensure!(entry["status"] == json!("jailed"), "{entry}");
        ensure!(quantity(&entry["jailedUntilEpoch"])? == until, "{entry}");
    }
    let pw = home("node2").join("password.txt").display().to_string();
    let node2_home = home("node2").display().to_string();
    let unjail = [
        "validator",
        "unjail",
        "--home",
        &node2_home,
        "--password-file",
        &pw,
        "--rpc-url",
        &watcher,
    ];
    // Too early (a transaction in block b sees currentEpoch (b - 1) / EPOCH, and the head is
    // at most one epoch past the jail's): refused with the contract's reason.
    let head = nodes[3].block_number()?;
    ensure!(head / EPOCH < until, "head {head} already in epoch {until}");
    let refused = bttd_fails(&unjail)?;
    ensure!(
        refused.contains("still jailed"),
        "early unjail refused without the reason: {refused}"
    );
    // The state after block until*EPOCH has currentEpoch == until.
    wait_height(&nodes[3], until * EPOCH, Duration::from_secs(60))?;
    let unjailed = bttd(&unjail)?;
    ensure!(unjailed["status"] == json!(true), "{unjailed}");
    let unjailed_in = u64_of(&unjailed["blockNumber"])?;
    let v = info(&watcher, offline)?;
    ensure!(
        v["statusCode"] == json!(1) || v["statusCode"] == json!(4),
        "{v}"
    );
    let back_from = next_epoch_start(unjailed_in);
    wait_height(&nodes[3], back_from + 2, Duration::from_secs(60))?;
    ensure!(
        set_owners(&nodes[3], back_from)?.contains(&offline),
        "node2 not in the set from block {back_from} after unjail in {unjailed_in}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut block = back_from;
    let signed_again = loop {
        ensure!(
            Instant::now() < deadline,
            "node2 signed no certificate from {back_from} to {block}\n{}",
            tail(&nodes[2].log_text())
        );
        wait_height(&nodes[3], block + 1, Duration::from_secs(30))?;
        if signed(&nodes[3], block, offline)? {
            break block;
        }
        block += 1;
    };
    eprintln!(
        "node2 unjailed in block {unjailed_in}, in the set from {back_from}, signed block {signed_again}"
    );

    // 3. The twin: node0's keys run twice, the copy without protection.
    let twin = Devnet::start_home_with(
        &twin_home,
        twin_port,
        &["--disable-doppelganger-protection"],
        &[],
    )?;
    let twin_from = nodes[3].block_number()?;
    let sender = dev_signer(5)?;
    let mut sends = 0u64;
    let deadline = twin_from + 50;
    let (report, slashed_in) = loop {
        let head = nodes[3].block_number()?;
        ensure!(
            head <= deadline,
            "no double-sign slash within 50 heights of starting the twin (from {twin_from})\n\
             evidence: {}\ntwin: {}",
            nodes[3].call("bttd_getEvidence", json!([]))?,
            tail(&twin.log_text())
        );
        let evidence = nodes[3].call("bttd_getEvidence", json!([]))?;
        let slashing: Vec<&Value> = evidence
            .as_array()
            .ok_or_else(|| eyre!("{evidence}"))?
            .iter()
            .filter(|e| !e["included"].is_null() && !e["included"]["slashed"].is_null())
            .collect();
        if let Some(first) = slashing.first() {
            ensure!(slashing.len() == 1, "slashed more than once: {evidence}");
            let block = u64_of(&first["included"]["block"])
                .or_else(|_| quantity(&first["included"]["block"]))?;
            break ((*first).clone(), block);
        }
        // Same account and nonce, different recipients: each copy holds its own and refuses
        // the other's (no fee bump), so the two proposals of node0's turn differ.
        let nonce = nodes[3].nonce(sender.address(), "latest")?;
        for (node, to) in [(&nodes[0], 0xa0u8), (&twin, 0xa1)] {
            let raw = transfer_1559(
                &sender,
                CHAIN_ID,
                nonce,
                Address::with_last_byte(to),
                U256::from(1_000 + sends),
                100_000_000_000,
                1_000_000_000,
            );
            let _ = node.send_raw(&raw); // "already known" once it is pooled
        }
        sends += 1;
        std::thread::sleep(Duration::from_millis(100));
    };
    let slashed = wei(&report["included"]["slashed"])?;
    let expected = U256::from(STAKE) * U256::from(500u64) / U256::from(10_000u64);
    eprintln!(
        "twin started at {twin_from}; evidence included in block {slashed_in} slashing {slashed} wei: {report}"
    );
    ensure!(
        slashed == expected,
        "double-sign slash {slashed} is not 5 % of {STAKE}"
    );
    let offender = &report["evidence"];
    ensure!(!offender.is_null(), "{report}");
    wait_height(&nodes[3], slashed_in, Duration::from_secs(30))?;
    let v = info(&watcher, owners[0])?;
    ensure!(v["statusCode"] == json!(3), "node0 not tombstoned: {v}");
    ensure!(
        wei(&v["selfStake"])? == U256::from(STAKE) - expected,
        "node0's stake after the slash: {v}"
    );
    ensure!(
        wei(&v["totalStake"])? == U256::from(STAKE) - expected,
        "node0's total stake after the slash: {v}"
    );
    // Every node that saw the evidence reports the same inclusion.
    for node in [&nodes[1], &nodes[4]] {
        let evidence = node.call("bttd_getEvidence", json!([]))?;
        let found = evidence
            .as_array()
            .ok_or_else(|| eyre!("{evidence}"))?
            .iter()
            .any(|e| e["included"]["slashed"] == report["included"]["slashed"]);
        ensure!(
            found,
            "{} does not report the slash: {evidence}",
            node.rpc_url
        );
    }
    let out_from = next_epoch_start(slashed_in);
    wait_height(&nodes[3], out_from + 10, Duration::from_secs(60))?;
    let set = set_owners(&nodes[3], out_from)?;
    ensure!(
        !set.contains(&owners[0]) && set.len() == 3,
        "node0 still in the set from {out_from}: {set:?}"
    );
    ensure!(
        current_entry(&nodes[3], owners[0])?.is_none(),
        "node0 still listed by bor_getCurrentValidators"
    );
    drop(twin);

    // node1's doppelganger did not cost it anything; node2 lost only the downtime slash.
    let v = info(&watcher, owners[1])?;
    ensure!(v["statusCode"] == json!(4), "node1: {v}");
    ensure!(wei(&v["selfStake"])? == U256::from(STAKE), "node1: {v}");
    let v = info(&watcher, owners[2])?;
    ensure!(v["statusCode"] == json!(4), "node2: {v}");
    ensure!(
        wei(&v["selfStake"])? == U256::from(STAKE) - downtime_slash,
        "node2: {v}"
    );

    // 4. Everyone agrees.
    let head = nodes[3].block_number()?;
    for node in &nodes {
        wait_height(node, head, Duration::from_secs(60))
            .wrap_err_with(|| format!("{} behind", node.rpc_url))?;
    }
    let all: Vec<&Devnet> = nodes.iter().collect();
    let agreed = same_chain(&all)?;
    ensure!(agreed >= head, "agreed only up to {agreed}");
    eprintln!(
        "all 5 nodes agree up to block {agreed}; {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
    for node in &mut nodes {
        node.kill();
    }
    Ok(())
}
