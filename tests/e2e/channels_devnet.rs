//! Bandwidth payment channels on a real `bttd devnet`: `tests/js/channels-e2e.mjs` (viem) opens
//! channels, signs 1,000 vouchers with standard typed-data signing, settles, closes and
//! withdraws with balances checked to the wei, while a `bttd channel watch` process started
//! here with the payee's dev account guards the payee's vouchers and must settle the best one
//! inside the settle window. A second test drives every `bttd channel` transaction command.

use std::process::{Child, Command, Stdio};

use alloy_primitives::U256;
use eyre::{Result, bail, eyre};
use serde_json::json;

use crate::support::{BTTD, Devnet, js_dir, repo_root};

/// A child process killed when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn viem_pays_through_channels_and_the_payee_watcher_settles_before_the_window_ends() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Devnet::start(&dir.path().join("chain"), &["--block-time", "250ms"])?;
    let vouchers = dir.path().join("vouchers");
    std::fs::create_dir_all(&vouchers)?;
    let watch_log = dir.path().join("watch.log");
    let watcher = Guard(
        Command::new(BTTD)
            .args(["channel", "watch", "--rpc-url", &node.rpc_url])
            .args(["--dev-account", "7", "--poll-interval", "250ms"])
            .arg("--state-dir")
            .arg(dir.path().join("tower"))
            .arg("--vouchers")
            .arg(&vouchers)
            .args(["--log", "info,bttd=debug"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&watch_log)?)
            .spawn()?,
    );

    let js = js_dir();
    if !js.join("node_modules").exists() {
        bail!(
            "{}/node_modules is missing: run ./scripts/setup",
            js.display()
        );
    }
    let output = Command::new("node")
        .arg(js.join("channels-e2e.mjs"))
        .current_dir(repo_root())
        .env("RPC_URL", &node.rpc_url)
        .env("CHAIN_ID", "1337")
        .env("FEE_POOL", "0x0000000000000000000000000000000000001000")
        .env("VOUCHER_DIR", &vouchers)
        .env("BTTD", BTTD)
        .output()?;
    drop(watcher);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let log = std::fs::read_to_string(&watch_log).unwrap_or_default();
    println!("{stdout}");
    if !output.status.success() {
        bail!(
            "channels-e2e.mjs failed ({}):\n{stdout}\n{}\n--- watcher log ---\n{log}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // The watcher logged what it did: the refusals of the noise lines and the settlement.
    for needle in [
        "CloseRequested seen",
        "settling the best voucher",
        "settled",
        "voucher refused",
        "not a voucher line",
    ] {
        if !log.contains(needle) {
            bail!("watcher log lacks {needle:?}:\n{log}");
        }
    }
    node.block_number()?;
    Ok(())
}

/// Runs `bttd channel <args> --rpc-url <node>`; Ok(stdout JSON) on success, Err(stderr) on failure.
fn cli(node: &Devnet, args: &[&str]) -> Result<serde_json::Value, String> {
    let out = Command::new(BTTD)
        .arg("channel")
        .args(args)
        .args(["--rpc-url", &node.rpc_url])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn u256(v: &serde_json::Value) -> Result<U256> {
    Ok(v.as_str()
        .ok_or_else(|| eyre!("not a string: {v}"))?
        .parse()?)
}

/// Total fee (gasUsed × effectiveGasPrice) of the transactions with these hashes.
fn fees(node: &Devnet, outputs: &[&serde_json::Value]) -> Result<U256> {
    let mut sum = U256::ZERO;
    for out in outputs {
        let r = node.call("eth_getTransactionReceipt", json!([out["transactionHash"]]))?;
        sum += u256(&r["gasUsed"])? * u256(&r["effectiveGasPrice"])?;
    }
    Ok(sum)
}

/// The CLI alone: open from a v3 keystore, top up, sign vouchers, settle a batch with a forged
/// item (skipped), refuse bad input with the contract's decoded error, and close cooperatively
/// with the payer's Voucher and the payee's Close signature; balances to the wei.
#[test]
fn cli_opens_from_a_keystore_settles_a_batch_and_closes_cooperatively() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Devnet::start(&dir.path().join("chain"), &["--block-time", "250ms"])?;
    let accounts = bttd_genesis::dev_accounts(10)?;
    let (payer, payee) = (&accounts[9], &accounts[5]);
    let password = dir.path().join("password");
    std::fs::write(&password, "correct horse\n")?;
    alloy_signer_local::PrivateKeySigner::encrypt_keystore(
        dir.path(),
        &mut rand_08::thread_rng(),
        payer.private_key,
        "correct horse",
        Some("payer.json"),
    )?;
    let keystore = dir.path().join("payer.json");
    let keystore_args = [
        "--keystore",
        keystore.to_str().unwrap(),
        "--password-file",
        password.to_str().unwrap(),
    ];
    let btt = U256::from(10).pow(U256::from(18));
    let payer_before = node.balance(payer.address)?;
    let payee_before = node.balance(payee.address)?;

    let payee_addr = payee.address.to_string();
    let mut open_args = vec![
        "open",
        "--payee",
        &payee_addr,
        "--deposit",
        "3btt",
        "--settle-window",
        "60",
    ];
    open_args.extend(keystore_args);
    let opened = cli(&node, &open_args).map_err(|e| eyre!("open: {e}"))?;
    let id = opened["channelId"]
        .as_str()
        .ok_or_else(|| eyre!("no channelId: {opened}"))?
        .to_owned();
    // The id starts with the payer (the contract folds it in): the keystore signed.
    if !id
        .to_lowercase()
        .starts_with(&payer.address.to_string().to_lowercase())
    {
        bail!(
            "channel {id} is not the keystore account's {}",
            payer.address
        );
    }
    let topup = cli(
        &node,
        &[
            "topup",
            "--channel",
            &id,
            "--amount",
            "1btt",
            "--dev-account",
            "9",
        ],
    )
    .map_err(|e| eyre!("topup: {e}"))?;
    // Bad input: the contract's custom error, decoded, and nothing sent.
    let zero = cli(
        &node,
        &[
            "topup",
            "--channel",
            &id,
            "--amount",
            "0",
            "--dev-account",
            "9",
        ],
    );
    match zero {
        Err(e) if e.contains("ZeroValue") => {}
        other => bail!("topup of 0 should fail with ZeroValue, got {other:?}"),
    }
    let wrong_payer = cli(&node, &["close", "--channel", &id, "--dev-account", "4"]);
    match wrong_payer {
        Err(e) if e.contains("NotPayer") => {}
        other => bail!("requestClose by a stranger should fail with NotPayer, got {other:?}"),
    }

    // Vouchers 1.5 and 2 BTT, and a forged one for 3.5 BTT, settled in one batch by a relayer.
    let sign = |amount: &str, account: &str| -> Result<String> {
        let v = cli(
            &node,
            &[
                "voucher",
                "--channel",
                &id,
                "--amount",
                amount,
                "--dev-account",
                account,
            ],
        )
        .map_err(|e| eyre!("voucher: {e}"))?;
        Ok(v.to_string())
    };
    let lines = [
        sign("1.5btt", "9")?,
        sign("2btt", "9")?,
        sign("3.5btt", "4")?,
    ];
    let batch = dir.path().join("batch.jsonl");
    std::fs::write(&batch, lines.join("\n"))?;
    let settled = cli(
        &node,
        &[
            "settle-batch",
            "--vouchers",
            batch.to_str().unwrap(),
            "--dev-account",
            "4",
        ],
    )
    .map_err(|e| eyre!("settle-batch: {e}"))?;
    let skipped = settled["skipped"].as_array().cloned().unwrap_or_default();
    if skipped.len() != 1 || skipped[0]["index"] != json!(2) || skipped[0]["reason"] != json!(8) {
        bail!("expected only item 2 skipped as WrongSigner (8): {settled}");
    }
    let info = cli(&node, &["info", "--channel", &id]).map_err(|e| eyre!("info: {e}"))?;
    if u256(&info["claimed"])? != U256::from(2) * btt
        || u256(&info["deposit"])? != U256::from(4) * btt
    {
        bail!("after the batch: {info}");
    }
    let listed =
        cli(&node, &["info", "--payee", &payee_addr]).map_err(|e| eyre!("info --payee: {e}"))?;
    if !listed
        .as_array()
        .is_some_and(|l| l.iter().any(|c| c["channelId"] == json!(id)))
    {
        bail!("channel not listed for the payee: {listed}");
    }

    // Cooperative close at 3 BTT: the payer's voucher, the payee's Close, sent by the relayer.
    let payer_sig: serde_json::Value = serde_json::from_str(&sign("3btt", "9")?)?;
    let payee_sig = cli(
        &node,
        &[
            "voucher",
            "--close",
            "--channel",
            &id,
            "--amount",
            "3btt",
            "--dev-account",
            "5",
        ],
    )
    .map_err(|e| eyre!("close signature: {e}"))?;
    let closed = cli(
        &node,
        &[
            "close",
            "--channel",
            &id,
            "--cooperative",
            "--amount",
            "3btt",
            "--payer-signature",
            payer_sig["signature"].as_str().unwrap(),
            "--payee-signature",
            payee_sig["signature"].as_str().unwrap(),
            "--dev-account",
            "4",
        ],
    )
    .map_err(|e| eyre!("cooperative close: {e}"))?;
    let info = cli(&node, &["info", "--channel", &id]).map_err(|e| eyre!("info: {e}"))?;
    if info["state"] != json!("closed")
        || u256(&info["claimed"])? != U256::from(3) * btt
        || info["deposit"] != info["claimed"]
    {
        bail!("after the cooperative close: {info}");
    }
    // Payee: +3 BTT (it sent nothing). Payer: 4 BTT in, 1 BTT refunded, plus its gas.
    if node.balance(payee.address)? - payee_before != U256::from(3) * btt {
        bail!(
            "payee gained {} wei",
            node.balance(payee.address)? - payee_before
        );
    }
    let payer_spent = payer_before - node.balance(payer.address)?;
    let expected = U256::from(3) * btt + fees(&node, &[&opened, &topup])?;
    if payer_spent != expected {
        bail!("payer spent {payer_spent} wei, expected {expected}");
    }
    if closed["status"] != json!(true) {
        bail!("cooperative close: {closed}");
    }
    Ok(())
}
