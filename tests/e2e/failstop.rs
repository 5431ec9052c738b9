//! Fail-stop and a truthful `/health` (issue 9, fault 8).
//!
//! - A validator whose consensus engine panics (test-only fault injection) exits non-zero with
//!   one clear error line naming the task and the panic, while the other three go on.
//! - With two of four validators frozen (SIGSTOP) finality stops and `/health` of a live
//!   validator turns 503 `stalled`; after SIGCONT the chain goes on and it answers 200 again.
//! - A corrupt database at start is an error message and a non-zero exit, not a panic.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use eyre::{Result, ensure, eyre};
use serde_json::Value;

use crate::support::{Devnet, bttd_bin, free_port, free_port_range};
use crate::validators::{init_testnet, tail, wait_height};

const VALIDATORS: usize = 4;

fn start_validators(
    dir: &Path,
    rpc_port: u16,
    special: usize,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> Result<Vec<Devnet>> {
    (0..VALIDATORS)
        .map(|i| {
            let home = dir.join(format!("node{i}"));
            let port = rpc_port + i as u16;
            if i == special {
                Devnet::start_home_with(&home, port, extra, envs)
            } else {
                Devnet::start_home(&home, port)
            }
        })
        .collect()
}

#[test]
fn an_engine_panic_stops_the_validator_with_a_clear_error_and_the_others_go_on() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let rpc_port = free_port_range(5);
    let p2p_port = free_port_range(5);
    init_testnet(dir.path(), rpc_port, p2p_port)?;
    let mut nodes = start_validators(
        dir.path(),
        rpc_port,
        3,
        &["--fault-panic-at-height", "3"],
        &[("BTTD_FAULT_INJECTION", "1")],
    )?;
    let status = nodes[3]
        .wait_exit(Duration::from_secs(60))?
        .ok_or_else(|| {
            eyre!(
                "the validator whose engine panicked still runs\n{}",
                tail(&nodes[3].log_text())
            )
        })?;
    let log = nodes[3].log_text();
    ensure!(!status.success(), "exit status {status}\n{}", tail(&log));
    let line = log
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("critical task `consensus engine` panicked"))
        .ok_or_else(|| eyre!("no error line naming the task\n{}", tail(&log)))?;
    ensure!(
        line.contains("fault injection: panicking before committing block 3"),
        "the error line does not carry the panic message: {line}"
    );
    // Three of four still hold more than 2/3 of the stake.
    let head = nodes[0].block_number()?;
    wait_height(&nodes[0], head.max(3) + 3, Duration::from_secs(60))?;
    Ok(())
}

fn health(metrics: &str) -> Result<(u16, Value)> {
    let response = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?
        .get(format!("http://{metrics}/health"))
        .send()?;
    let code = response.status().as_u16();
    Ok((code, response.json()?))
}

fn wait_health(metrics: &str, code: u16, status: &str, timeout: Duration) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let (got, body) = health(metrics)?;
        if got == code && body["status"] == status {
            return Ok(body);
        }
        if Instant::now() > deadline {
            return Err(eyre!("/health is {got} {body}, wanted {code} {status}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn health_turns_503_with_two_of_four_validators_frozen_and_200_after_sigcont() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let rpc_port = free_port_range(5);
    let p2p_port = free_port_range(5);
    init_testnet(dir.path(), rpc_port, p2p_port)?;
    let metrics = format!("127.0.0.1:{}", free_port());
    let nodes = start_validators(dir.path(), rpc_port, 0, &["--metrics", &metrics], &[])?;
    wait_height(&nodes[0], 3, Duration::from_secs(60))?;
    let ok = wait_health(&metrics, 200, "ok", Duration::from_secs(10))?;
    for field in [
        "head",
        "secondsSinceLastBlock",
        "highestSeenBlock",
        "stalledAfterSeconds",
    ] {
        ensure!(!ok[field].is_null(), "/health has no {field}: {ok}");
    }

    for i in [2, 3] {
        nodes[i].signal("STOP")?;
    }
    // 10 block times of 300 ms without a new head.
    let result = wait_health(&metrics, 503, "stalled", Duration::from_secs(20));
    for i in [2, 3] {
        nodes[i].signal("CONT")?;
    }
    let stalled = result?;
    ensure!(
        stalled["secondsSinceLastBlock"].as_f64().unwrap_or(0.0) >= 3.0,
        "stalled too early: {stalled}"
    );
    let stalled_at = nodes[0].block_number()?;
    wait_health(&metrics, 200, "ok", Duration::from_secs(60))
        .map_err(|e| eyre!("{e}\n{}", tail(&nodes[0].log_text())))?;
    ensure!(
        nodes[0].block_number()? > stalled_at,
        "ok without a new block"
    );
    Ok(())
}

/// Runs `bttd node` on a datadir expected to be refused; returns (exit status, stderr).
fn run_refused(datadir: &Path, genesis: &Path) -> Result<(std::process::ExitStatus, String)> {
    let mut command = Command::new(bttd_bin());
    command
        .args(["node", "--rpc-port", &free_port().to_string()])
        .arg("--datadir")
        .arg(datadir)
        .arg("--genesis")
        .arg(genesis);
    exits_at_start(
        command,
        &datadir.join("refused.log"),
        "bttd started on a corrupt database",
    )
}

/// Runs a command that must refuse to start: it has 30 s to exit (else it is killed and
/// `started` is the error); returns its exit status and stderr.
fn exits_at_start(
    mut command: Command,
    log: &Path,
    started: &str,
) -> Result<(std::process::ExitStatus, String)> {
    let mut child = command
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(eyre!(
                "{started}\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Ok((status, std::fs::read_to_string(log)?))
}

#[test]
fn a_corrupt_database_at_start_is_an_error_message_not_a_panic() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let genesis = dir.path().join("genesis.json");
    let out = Command::new(bttd_bin())
        .args(["genesis", "devnet", "--out"])
        .arg(&genesis)
        .output()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let datadir = dir.path().join("data");
    let port = free_port();
    let args: Vec<String> = vec![
        "node".into(),
        "--datadir".into(),
        datadir.display().to_string(),
        "--genesis".into(),
        genesis.display().to_string(),
        "--rpc-port".into(),
        port.to_string(),
        "--block-time".into(),
        "200ms".into(),
    ];
    let mut node = Devnet::spawn(&args, dir.path(), port)?;
    while node.block_number()? < 2 {
        std::thread::sleep(Duration::from_millis(100));
    }
    ensure!(node.terminate()?.success(), "a clean stop exits 0");
    let db = datadir.join("db");

    // A head pointer that is not a hash.
    {
        use bttd_runtime::storage::{Column, KvStore, RocksStore, WriteBatch};
        let store = RocksStore::open(&db)?;
        let mut batch = WriteBatch::default();
        batch.put(Column::Meta, b"head".to_vec(), b"not a hash".to_vec());
        store.write(batch)?;
    }
    let (status, log) = run_refused(&datadir, &genesis)?;
    ensure!(!status.success(), "exit status {status}\n{log}");
    ensure!(
        log.contains("corrupt head pointer") && !log.contains("panicked"),
        "no clear error for a corrupt head pointer:\n{log}"
    );

    // RocksDB's own CURRENT file overwritten.
    std::fs::write(db.join("CURRENT"), b"\x00\x01garbage")?;
    let (status, log) = run_refused(&datadir, &genesis)?;
    ensure!(!status.success(), "exit status {status}\n{log}");
    ensure!(
        log.contains("opening the database") && !log.contains("panicked"),
        "no clear error for a corrupt CURRENT file:\n{log}"
    );
    Ok(())
}

/// Fault 7: the miner of a validator's blocks is always its own account (voters refuse any
/// other), so `coinbase` on a validator node is refused at start with a clear message.
#[test]
fn coinbase_on_a_validator_node_is_refused_at_start() -> Result<()> {
    let dir = tempfile::tempdir()?;
    init_testnet(dir.path(), free_port_range(5), free_port_range(5))?;
    let mut command = Command::new(bttd_bin());
    command
        .args(["node", "--home"])
        .arg(dir.path().join("node0"))
        .args(["--coinbase", "0x0000000000000000000000000000000000000001"]);
    let log = dir.path().join("coinbase.log");
    let (status, stderr) = exits_at_start(command, &log, "a validator with coinbase started")?;
    ensure!(
        !status.success(),
        "a validator with coinbase exited with {status}"
    );
    ensure!(
        stderr.contains("cannot be set on a validator node") && !stderr.contains("panicked"),
        "no clear message: {stderr}"
    );
    Ok(())
}
