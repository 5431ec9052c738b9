//! The payee's watchtower (`bttd channel watch`) against issue 11's attack, on a real
//! `bttd devnet` with real signed transactions:
//!
//! 1. a contract (`ChannelBurst`) opens 10,001 zero-deposit channels to the payee;
//! 2. the payer opens channel X with a deposit and pays the payee with vouchers, submitted to
//!    the tower over JSON-RPC (`watch_submitVoucher`); the tower is killed with SIGKILL right
//!    after it acknowledged the best one and restarted from its state directory;
//! 3. while the tower is paused (SIGSTOP, as a stalled host or an RPC outage would leave it),
//!    the contract requests the close of all 10,001 channels in a burst: more
//!    `CloseRequested` logs than the node returns for one query;
//! 4. the payer requests the close of X and buys the block space of the settle window with
//!    high-tip transactions that burn whole blocks;
//! 5. the tower must still settle X's best voucher before `closesAt` (bidding up its stuck
//!    settle, and killed again with SIGKILL while that settle is pending, then restarted);
//!    after the window the payer withdraws the rest; balances match to the wei.
//!
//! Run against another build with `BTTD_E2E_BIN=/path/to/bttd`: a binary whose `channel watch`
//! has no `--state-dir` (the watcher before issue 11) is driven through its `--vouchers`
//! directory instead, and fails step 5.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy_consensus::TxEip1559;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, hex};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolEvent};
use bttd_contracts::channels::{ChannelsDomain, IBandwidthChannels, SignedVoucher};
use bttd_contracts::{Artifact, BANDWIDTH_CHANNELS_ADDRESS};
use eyre::{Result, bail, ensure, eyre};
use serde_json::{Value, json};

use crate::support::{Devnet, bttd_bin, quantity, sign};

const CHAIN_ID: u64 = 1337;
const GWEI: u128 = 1_000_000_000;
/// The settle window of channel X, seconds.
const WINDOW: u64 = 12;
const BURST: u64 = 10_001;
const OPEN_PER_TX: u64 = 800;
const CLOSE_PER_TX: u64 = 2_500;
/// What the attacker tips for block space.
const SPAM_TIP: u128 = 100 * GWEI;
const SPAM_GAS: u64 = 10_000_000;

alloy_sol_types::sol! {
    function openMany(address payee, uint64 settleWindow, uint256 n) external;
    function closeNext(uint256 max) external;
    function closed() external view returns (uint256);
    function burn() external;
}

fn btt(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64.pow(18))
}

fn dev_key(i: u32) -> Result<PrivateKeySigner> {
    let accounts = bttd_genesis::dev_accounts(10)?;
    Ok(PrivateKeySigner::from_bytes(
        &accounts[i as usize].private_key,
    )?)
}

/// Sends transactions from one key with locally counted nonces.
struct Sender {
    key: PrivateKeySigner,
    nonce: u64,
}

impl Sender {
    fn new(node: &Devnet, key: PrivateKeySigner) -> Result<Self> {
        let nonce = node.nonce(key.address(), "pending")?;
        Ok(Self { key, nonce })
    }

    fn raw(
        &mut self,
        to: TxKind,
        input: Bytes,
        value: U256,
        gas: u64,
        tip: u128,
        max_fee: u128,
    ) -> Vec<u8> {
        let tx = TxEip1559 {
            chain_id: CHAIN_ID,
            nonce: self.nonce,
            gas_limit: gas,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
            to,
            value,
            access_list: Default::default(),
            input,
        };
        self.nonce += 1;
        sign(&self.key, tx)
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        node: &Devnet,
        to: TxKind,
        input: Bytes,
        value: U256,
        gas: u64,
        tip: u128,
        max_fee: u128,
    ) -> Result<B256> {
        let raw = self.raw(to, input, value, gas, tip, max_fee);
        node.send_raw(&raw)
    }
}

/// Waits for a successful receipt.
fn mined(node: &Devnet, hash: B256) -> Result<Value> {
    let r = node
        .wait_receipt(hash, Duration::from_secs(60))?
        .ok_or_else(|| eyre!("{hash} not mined in 60 s"))?;
    ensure!(r["status"] == json!("0x1"), "{hash} failed: {r}");
    Ok(r)
}

fn u256(v: &Value) -> Result<U256> {
    Ok(v.as_str()
        .ok_or_else(|| eyre!("not a string: {v}"))?
        .parse()?)
}

fn fee(r: &Value) -> Result<U256> {
    Ok(u256(&r["gasUsed"])? * u256(&r["effectiveGasPrice"])?)
}

fn balance_at(node: &Devnet, a: Address, block: u64) -> Result<U256> {
    u256(&node.call("eth_getBalance", json!([a, format!("{block:#x}")]))?)
}

fn block(node: &Devnet, n: u64) -> Result<Value> {
    node.call("eth_getBlockByNumber", json!([format!("{n:#x}"), false]))
}

fn estimate(node: &Devnet, from: Address, to: Address, input: &[u8]) -> Result<u64> {
    quantity(&node.call(
        "eth_estimateGas",
        json!([{ "from": from, "to": to, "input": format!("0x{}", hex::encode(input)) }]),
    )?)
}

/// The tower process; killed with SIGKILL when dropped.
struct Tower {
    child: Child,
    url: Option<String>,
}

impl Drop for Tower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tower {
    fn start(
        node: &Devnet,
        state: &Path,
        vouchers: &Path,
        log: &Path,
        modern: bool,
    ) -> Result<Self> {
        let mut cmd = Command::new(bttd_bin());
        cmd.args(["channel", "watch", "--rpc-url", &node.rpc_url])
            .args(["--dev-account", "7", "--poll-interval", "250ms"])
            .args(["--log", "info,bttd=debug"]);
        if modern {
            cmd.arg("--state-dir").arg(state).args([
                "--listen",
                "127.0.0.1:0",
                "--min-claim",
                "1000",
            ]);
        } else {
            cmd.arg("--vouchers").arg(vouchers);
        }
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut child = cmd.stdout(Stdio::piped()).stderr(log_file).spawn()?;
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("WATCH URL: ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = if modern {
            Some(rx.recv_timeout(Duration::from_secs(30)).map_err(|_| {
                eyre!(
                    "the tower printed no URL\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                )
            })?)
        } else {
            None
        };
        Ok(Self { child, url })
    }

    fn call(&self, method: &str, params: Value) -> Result<Value> {
        let url = self.url.as_ref().ok_or_else(|| eyre!("no JSON-RPC"))?;
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let r: Value = reqwest::blocking::Client::new()
            .post(url)
            .json(&body)
            .send()?
            .json()?;
        r.get("result")
            .cloned()
            .ok_or_else(|| eyre!("{method}: {r}"))
    }

    fn signal(&self, sig: &str) -> Result<()> {
        ensure!(
            Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(self.child.id().to_string())
                .status()?
                .success(),
            "kill -{sig}"
        );
        Ok(())
    }
}

/// Whether the binary's `channel watch` is the watchtower (has `--state-dir`).
fn modern_watch() -> Result<bool> {
    let out = Command::new(bttd_bin())
        .args(["channel", "watch", "--help"])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("--state-dir"))
}

#[test]
fn watchtower_settles_through_a_10001_close_burst_block_spam_and_a_kill() -> Result<()> {
    let started = Instant::now();
    let modern = modern_watch()?;
    let dir = tempfile::tempdir()?;
    let node = Devnet::start(&dir.path().join("chain"), &["--block-time", "250ms"])?;
    let (payer_key, payee_key) = (dev_key(6)?, dev_key(7)?);
    let (payer, payee) = (payer_key.address(), payee_key.address());
    let domain = ChannelsDomain::new(CHAIN_ID, BANDWIDTH_CHANNELS_ADDRESS);
    let normal = (2 * GWEI, 1_000 * GWEI);

    // 1. ChannelBurst, and 10,001 zero-deposit channels opened by it.
    let artifact =
        Artifact::from_json(include_str!("../../contracts/artifacts/ChannelBurst.json"))?;
    let mut deployer = Sender::new(&node, dev_key(5)?)?;
    let burst_addr = deployer.key.address().create(deployer.nonce);
    let h = deployer.send(
        &node,
        TxKind::Create,
        artifact.bytecode.clone(),
        U256::ZERO,
        2_000_000,
        normal.0,
        normal.1,
    )?;
    mined(&node, h)?;
    let open_input = |n: u64| -> Bytes {
        openManyCall {
            payee,
            settleWindow: WINDOW,
            n: U256::from(n),
        }
        .abi_encode()
        .into()
    };
    let open_gas = estimate(
        &node,
        deployer.key.address(),
        burst_addr,
        &open_input(OPEN_PER_TX),
    )? * 11
        / 10;
    let mut hashes = Vec::new();
    let mut left = BURST;
    while left > 0 {
        let n = left.min(OPEN_PER_TX);
        hashes.push(deployer.send(
            &node,
            TxKind::Call(burst_addr),
            open_input(n),
            U256::ZERO,
            open_gas,
            normal.0,
            normal.1,
        )?);
        left -= n;
    }
    for h in hashes {
        mined(&node, h)?;
    }
    println!(
        "{BURST} channels opened by {burst_addr} at {:?}",
        started.elapsed()
    );

    // 2. Channel X, its vouchers, the tower.
    let mut payer_tx = Sender::new(&node, payer_key.clone())?;
    let deposit = btt(5);
    let open_x = mined(
        &node,
        payer_tx.send(
            &node,
            TxKind::Call(BANDWIDTH_CHANNELS_ADDRESS),
            IBandwidthChannels::openCall {
                payee,
                settleWindow: WINDOW,
            }
            .abi_encode()
            .into(),
            deposit,
            200_000,
            normal.0,
            normal.1,
        )?,
    )?;
    let x: B256 = serde_json::from_value(open_x["logs"][0]["topics"][1].clone())?;
    let start_block = quantity(&open_x["blockNumber"])?;
    let state = dir.path().join("tower");
    let voucher_dir = dir.path().join("vouchers");
    std::fs::create_dir_all(&voucher_dir)?;
    let log = dir.path().join("tower.log");
    let tower_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut tower = Tower::start(&node, &state, &voucher_dir, &log, modern)?;
    let amounts: Vec<U256> = (1..=20u64)
        .map(|k| btt(1) / U256::from(10) * U256::from(k) + U256::from(k))
        .collect();
    let best = *amounts.last().unwrap();
    let voucher = |amount: U256| SignedVoucher::sign(&domain, &payer_key, x, amount).unwrap();
    let submit = |tower: &Tower, v: &SignedVoucher| -> Result<Value> {
        tower.call(
            "watch_submitVoucher",
            json!([
                v.channel_id,
                format!("{:#x}", v.cumulative_amount),
                v.signature
            ]),
        )
    };
    if modern {
        // Refused: below --min-claim, forged, above the deposit; then the real ones.
        let r = submit(&tower, &voucher(U256::from(999)))?;
        ensure!(
            r["accepted"] == json!(false)
                && r["reason"].as_str().unwrap_or("").contains("min-claim"),
            "{r}"
        );
        let forged = SignedVoucher::sign(&domain, &dev_key(8)?, x, btt(4))?;
        let r = submit(&tower, &forged)?;
        ensure!(
            r["accepted"] == json!(false)
                && r["reason"]
                    .as_str()
                    .unwrap_or("")
                    .contains("not by the payer"),
            "{r}"
        );
        let r = submit(&tower, &voucher(deposit + U256::from(1)))?;
        ensure!(
            r["accepted"] == json!(false)
                && r["reason"]
                    .as_str()
                    .unwrap_or("")
                    .contains("exceeds the deposit"),
            "{r}"
        );
        for (i, a) in amounts.iter().enumerate() {
            let r = submit(&tower, &voucher(*a))?;
            ensure!(
                r["accepted"] == json!(true) && u256(&r["best"])? == *a,
                "voucher {i}: {r}"
            );
            if i == 5 {
                let again = submit(&tower, &voucher(amounts[2]))?;
                ensure!(
                    again["accepted"] == json!(false) && u256(&again["best"])? == *a,
                    "{again}"
                );
            }
        }
    } else {
        let lines: String = amounts
            .iter()
            .map(|a| serde_json::to_string(&voucher(*a)).unwrap() + "\n")
            .collect();
        std::fs::write(voucher_dir.join("x.jsonl"), lines)?;
        std::thread::sleep(Duration::from_secs(2));
    }
    // SIGKILL right after the best voucher was acknowledged, and a restart.
    drop(tower);
    tower = Tower::start(&node, &state, &voucher_dir, &log, modern)?;
    if modern {
        let status = tower.call("watch_status", json!([]))?;
        let ch = status["channels"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["channelId"] == json!(x)).cloned())
            .ok_or_else(|| eyre!("X not in the restarted tower's status: {status}"))?;
        ensure!(
            u256(&ch["best"])? == best && ch["settled"] == json!(false),
            "{ch}"
        );
    }
    std::thread::sleep(Duration::from_millis(1500));

    // 3. The burst, while the tower is paused.
    tower.signal("STOP")?;
    let mut hashes = Vec::new();
    let close_input: Bytes = closeNextCall {
        max: U256::from(CLOSE_PER_TX),
    }
    .abi_encode()
    .into();
    let close_gas = estimate(&node, deployer.key.address(), burst_addr, &close_input)? * 11 / 10;
    for _ in 0..BURST.div_ceil(CLOSE_PER_TX) {
        hashes.push(deployer.send(
            &node,
            TxKind::Call(burst_addr),
            close_input.clone(),
            U256::ZERO,
            close_gas,
            normal.0,
            normal.1,
        )?);
    }
    let mut burst_blocks = Vec::new();
    for h in hashes {
        burst_blocks.push(quantity(&mined(&node, h)?["blockNumber"])?);
    }
    let closed = node.call("eth_call", json!([{ "to": burst_addr, "input": format!("0x{}", hex::encode(closedCall {}.abi_encode())) }, "latest"]))?;
    ensure!(u256(&closed)? == U256::from(BURST), "closed {closed}");
    let (b0, b1) = (burst_blocks[0], *burst_blocks.last().unwrap());
    let all = node.call(
        "eth_getLogs",
        json!([{ "address": BANDWIDTH_CHANNELS_ADDRESS, "topics": [IBandwidthChannels::CloseRequested::SIGNATURE_HASH], "fromBlock": format!("{b0:#x}"), "toBlock": format!("{b1:#x}") }]),
    );
    ensure!(
        all.is_err(),
        "the node answered {BURST} CloseRequested logs in one query"
    );
    println!(
        "burst of {BURST} close requests in blocks {b0}..={b1}: one query refused ({})",
        all.unwrap_err()
    );
    tower.signal("CONT")?;

    // 4. The close of X and block-space spam for the whole window.
    let payee_before = balance_at(&node, payee, node.block_number()?)?;
    let close_hash = payer_tx.send(
        &node,
        TxKind::Call(BANDWIDTH_CHANNELS_ADDRESS),
        IBandwidthChannels::requestCloseCall { channelId: x }
            .abi_encode()
            .into(),
        U256::ZERO,
        100_000,
        1_000 * GWEI,
        1_000_000 * GWEI,
    )?;
    let burn: Bytes = burnCall {}.abi_encode().into();
    let per_spammer = (WINDOW * 4 * 3).div_ceil(4) + 10;
    for i in 0..4 {
        let mut s = Sender::new(&node, dev_key(i)?)?;
        for _ in 0..per_spammer {
            s.send(
                &node,
                TxKind::Call(burst_addr),
                burn.clone(),
                U256::ZERO,
                SPAM_GAS,
                SPAM_TIP,
                1_000_000 * GWEI,
            )?;
        }
    }
    let close = mined(&node, close_hash)?;
    let close_block = quantity(&close["blockNumber"])?;
    let ev = IBandwidthChannels::CloseRequested::decode_log_data(
        &alloy_primitives::LogData::new_unchecked(
            vec![IBandwidthChannels::CloseRequested::SIGNATURE_HASH, x],
            hex::decode(close["logs"][0]["data"].as_str().unwrap_or_default())?.into(),
        ),
    )?;
    let closes_at = ev.closesAt;
    println!(
        "X close requested in block {close_block}, closesAt {closes_at}; {} spam txs queued",
        4 * per_spammer
    );

    if modern {
        // SIGKILL again with its first settle stuck behind the spam, and a restart: the new
        // run must outbid the transaction the old one left in the pool.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !tower_log().contains("settle sent") {
            ensure!(
                Instant::now() < deadline,
                "no settle sent:\n{}",
                tower_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(tower);
        tower = Tower::start(&node, &state, &voucher_dir, &log, modern)?;
        println!("tower killed with its first settle pending, restarted");
    }

    // 5. The tower settles X before closesAt.
    let settled = loop {
        let logs = node.call(
            "eth_getLogs",
            json!([{ "address": BANDWIDTH_CHANNELS_ADDRESS, "topics": [IBandwidthChannels::Settled::SIGNATURE_HASH, x], "fromBlock": format!("{close_block:#x}") }]),
        )?;
        if let Some(l) = logs.as_array().and_then(|l| l.first()) {
            break l.clone();
        }
        let head = block(&node, node.block_number()?)?;
        if quantity(&head["timestamp"])? >= closes_at + 2 {
            bail!(
                "no Settled for X before closesAt {closes_at} (head {}); tower log:\n{}",
                quantity(&head["number"])?,
                {
                    let log = tower_log();
                    let lines: Vec<&str> = log.lines().filter(|l| !l.contains("DEBUG")).collect();
                    lines[lines.len().saturating_sub(12)..].join("\n")
                }
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let settle_block = quantity(&settled["blockNumber"])?;
    let settle_ts = quantity(&block(&node, settle_block)?["timestamp"])?;
    ensure!(
        settle_ts < closes_at,
        "settled at {settle_ts}, closesAt {closes_at}"
    );
    ensure!(
        u256(&settled["data"])? == best,
        "settled {} not the best {best}",
        settled["data"]
    );
    let settle_tx = node.call(
        "eth_getTransactionByHash",
        json!([settled["transactionHash"]]),
    )?;
    ensure!(
        settle_tx["from"]
            .as_str()
            .unwrap_or("")
            .eq_ignore_ascii_case(&payee.to_string()),
        "{settle_tx}"
    );
    let settle_receipt = mined(
        &node,
        serde_json::from_value(settled["transactionHash"].clone())?,
    )?;
    // The window's blocks were bought: full of spam before the settlement, and after it until
    // closesAt; the settle got in only by outbidding the spam's tip, after replacements.
    let window_blocks = {
        let mut n = close_block + 1;
        let mut v = Vec::new();
        loop {
            while node.block_number()? < n {
                std::thread::sleep(Duration::from_millis(50));
            }
            let b = block(&node, n)?;
            if quantity(&b["timestamp"])? >= closes_at {
                break v;
            }
            v.push((n, quantity(&b["gasUsed"])?));
            n += 1;
        }
    };
    let full_before = window_blocks
        .iter()
        .filter(|(n, gas)| *n < settle_block && *gas >= 20_000_000)
        .count();
    let full = window_blocks
        .iter()
        .filter(|(_, gas)| *gas >= 20_000_000)
        .count();
    let settle_tip = quantity(&settle_tx["maxPriorityFeePerGas"])? as u128;
    println!(
        "settled in block {settle_block} ({} s before closesAt) with tip {} gwei; {full_before} full blocks before it, {full} of the window's {} blocks full",
        closes_at - settle_ts,
        settle_tip / GWEI,
        window_blocks.len()
    );
    for line in tower_log().lines().filter(|l| l.contains("settle sent")) {
        println!(
            "tower: {}",
            line.split("bttd::channel: ").last().unwrap_or(line)
        );
    }
    ensure!(
        full_before >= 1 && full * 2 >= window_blocks.len(),
        "the spam did not fill the window's blocks ({full} of {} full)",
        window_blocks.len()
    );
    ensure!(
        settle_tip > SPAM_TIP,
        "settled with tip {settle_tip}, not above the spam's"
    );
    ensure!(
        tower_log().contains("replacing it with a higher fee"),
        "no fee bump in the tower log"
    );

    // After the window: the payer withdraws the rest.
    while quantity(&block(&node, node.block_number()?)?["timestamp"])? < closes_at {
        std::thread::sleep(Duration::from_millis(100));
    }
    let withdraw = mined(
        &node,
        payer_tx.send(
            &node,
            TxKind::Call(BANDWIDTH_CHANNELS_ADDRESS),
            IBandwidthChannels::withdrawCall { channelId: x }
                .abi_encode()
                .into(),
            U256::ZERO,
            100_000,
            2_000 * GWEI,
            2_000_000 * GWEI,
        )?,
    )?;
    ensure!(
        u256(&withdraw["logs"][0]["data"])? == deposit - best,
        "refund {}",
        withdraw["logs"][0]["data"]
    );
    let end = quantity(&withdraw["blockNumber"])?;

    // Balances to the wei.
    let payer_spent = balance_at(&node, payer, start_block - 1)? - balance_at(&node, payer, end)?;
    let expected = best + fee(&open_x)? + fee(&close)? + fee(&withdraw)?;
    ensure!(
        payer_spent == expected,
        "payer spent {payer_spent}, expected {expected}"
    );
    let payee_gain = balance_at(&node, payee, end)? - payee_before;
    let expected = best - fee(&settle_receipt)?;
    ensure!(
        payee_gain == expected,
        "payee gained {payee_gain}, expected {expected}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = tower.call("watch_status", json!([]))?;
        let ch = status["channels"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["channelId"] == json!(x)).cloned());
        let now = node.balance(payee)?;
        if u256(&status["balance"])? == now
            && ch.as_ref().is_some_and(|c| c["settled"] == json!(true))
        {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "watch_status {status} vs balance {now}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("done in {:?}", started.elapsed());
    Ok(())
}
