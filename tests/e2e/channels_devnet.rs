//! Bandwidth payment channels on a real `bttd devnet`: `tests/js/channels-e2e.mjs` (viem) opens
//! channels, signs 1,000 vouchers with standard typed-data signing, settles, closes and
//! withdraws with balances checked to the wei, while a `bttd channel watch` process started
//! here with the payee's dev account guards the payee's vouchers and must settle the best one
//! inside the settle window.

use std::process::{Child, Command, Stdio};

use eyre::{Result, bail};

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
