//! The anvil/hardhat test methods of `bttd devnet` (issue 15): viem's test client drives a
//! devnet through mining, cheats, impersonation, snapshots and reverts (with a WebSocket
//! subscriber and filters watching the reorg), time and reset, then checks that every block
//! hash, receipts root and eth_getProof proof verifies; the devnet restarts on the same head.
//! On a multi-validator devnet every method is refused with -32000.

use std::process::Command;
use std::time::Duration;

use eyre::{Result, bail, ensure};
use serde_json::json;

use crate::support::{Devnet, js_dir, repo_root};

#[test]
fn viem_test_client_drives_the_devnet_and_every_record_verifies_after_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let datadir = dir.path().join("chain");
    let mut node = Devnet::start(&datadir, &["--automine"])?;
    let js = js_dir();
    if !js.join("node_modules").exists() {
        bail!(
            "{}/node_modules is missing: run ./scripts/setup",
            js.display()
        );
    }
    let output = Command::new("node")
        .arg(js.join("devnet-test-client.mjs"))
        .current_dir(repo_root())
        .env("RPC_URL", &node.rpc_url)
        .env("WS_URL", &node.ws_url)
        .env("CHAIN_ID", "1337")
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    ensure!(
        output.status.success(),
        "devnet-test-client.mjs failed:\n{stdout}"
    );

    // Automine: no block without a transaction or a request.
    let head = node.call("eth_getBlockByNumber", json!(["latest", false]))?;
    std::thread::sleep(Duration::from_millis(1500));
    ensure!(node.call("eth_getBlockByNumber", json!(["latest", false]))?["hash"] == head["hash"]);

    let status = node.terminate()?;
    ensure!(status.success(), "devnet exited with {status}");
    let node = Devnet::start(&datadir, &["--automine"])?;
    let again = node.call("eth_getBlockByNumber", json!(["latest", false]))?;
    ensure!(
        again["hash"] == head["hash"],
        "restart: head {} != {}",
        again["hash"],
        head["hash"]
    );
    // The restarted devnet keeps working: mine, then revert to before it.
    let id = node.call("evm_snapshot", json!([]))?;
    node.call("anvil_mine", json!(["0x2"]))?;
    ensure!(node.call("evm_revert", json!([id]))? == json!(true));
    ensure!(node.call("eth_getBlockByNumber", json!(["latest", false]))?["hash"] == head["hash"]);
    Ok(())
}

#[test]
fn test_methods_are_refused_on_a_multi_validator_devnet() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Devnet::start_validators(&dir.path().join("chain"), 4, "300ms", &[])?;
    for (method, params) in [
        (
            "anvil_setBalance",
            json!(["0x000000000000000000000000000000000000bEEF", "0x1"]),
        ),
        (
            "hardhat_setBalance",
            json!(["0x000000000000000000000000000000000000bEEF", "0x1"]),
        ),
        ("evm_mine", json!([])),
        ("evm_snapshot", json!([])),
        ("evm_revert", json!(["0x1"])),
        ("anvil_reset", json!([])),
        (
            "anvil_impersonateAccount",
            json!(["0x000000000000000000000000000000000000bEEF"]),
        ),
        ("eth_sendUnsignedTransaction", json!([{}])),
        ("anvil_nodeInfo", json!([])),
    ] {
        let response =
            node.raw(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))?;
        let error = &response["error"];
        ensure!(error["code"] == json!(-32000), "{method}: {response}");
        let message = error["message"].as_str().unwrap_or_default();
        ensure!(
            message
                == format!(
                    "{method} exists only on a single-producer devnet (`bttd devnet` without --validators)"
                ),
            "{method}: {message}"
        );
    }
    Ok(())
}
