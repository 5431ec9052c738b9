//! Operations surface: Prometheus metrics and the health endpoint on `--metrics`, the
//! `bttd genesis devnet` file, and `bttd node` started from that file and a node.toml.

use std::process::Command;
use std::time::Duration;

use eyre::{Result, ensure};
use serde_json::json;

use crate::support::{BTTD, Devnet, free_port};

#[test]
fn metrics_and_health_are_served() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let metrics_port = free_port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let node = Devnet::start(
        dir.path(),
        &["--block-time", "100ms", "--metrics", &metrics],
    )?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while node.block_number()? < 1 {
        ensure!(std::time::Instant::now() < deadline, "no block produced");
        std::thread::sleep(Duration::from_millis(50));
    }
    let health: serde_json::Value =
        reqwest::blocking::get(format!("http://{metrics}/health"))?.json()?;
    ensure!(
        health["status"] == "ok" && health["chainId"] == 1337,
        "health: {health}"
    );
    ensure!(
        health["head"]["number"].as_u64().unwrap_or(0) >= 1,
        "health shows no progress: {health}"
    );
    let text = reqwest::blocking::get(format!("http://{metrics}/metrics"))?.text()?;
    ensure!(
        text.contains("bttd_chain_head"),
        "no chain metrics in:\n{text}"
    );
    ensure!(
        text.contains("bttd_rpc_calls_total"),
        "no rpc metrics in:\n{text}"
    );
    Ok(())
}

#[test]
fn node_runs_from_a_genesis_file_and_a_toml_config() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let genesis = dir.path().join("genesis.json");
    let status = Command::new(BTTD)
        .args([
            "genesis",
            "devnet",
            "--chain-id",
            "4242",
            "--accounts",
            "2",
            "--out",
        ])
        .arg(&genesis)
        .status()?;
    ensure!(status.success(), "bttd genesis devnet failed");
    let port = free_port();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "datadir = {:?}\ngenesis = {:?}\nblock-time = \"100ms\"\n[rpc]\nport = {port}\n",
            dir.path().join("data"),
            genesis
        ),
    )?;
    let mut child = Command::new(BTTD)
        .arg("node")
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking::Client::new();
    let mut chain_id = None;
    for _ in 0..100 {
        if let Ok(response) = client
            .post(&url)
            .json(&json!({"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}))
            .send()
        {
            chain_id = response.json::<serde_json::Value>()?.get("result").cloned();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    ensure!(
        chain_id == Some(json!("0x1092")),
        "chain id from the genesis file: {chain_id:?}"
    );
    Ok(())
}
