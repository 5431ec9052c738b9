//! TRON's own clients, unchanged, against a real `bttd tron-sim` process: tronpy from PyPI
//! (tests/tron/tronpy_e2e.py, in the virtualenv scripts/setup makes) and tronweb from npm
//! (tests/tron/tronweb_e2e.mjs). The scripts check each step and exit non-zero on the first
//! failure; their output is printed when they fail.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use eyre::{Result, WrapErr, bail, eyre};

use crate::support::{bttd_bin, free_port, repo_root};

/// A running `bttd tron-sim --json`; killed when dropped.
pub struct TronSim {
    child: Child,
    _dir: tempfile::TempDir,
    /// The line it printed: URL, accounts and keys.
    pub info: String,
    pub log: PathBuf,
}

impl TronSim {
    pub fn start(block_time: &str, solidify_depth: u64) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("tron-sim.log");
        let mut child = Command::new(bttd_bin())
            .args(["tron-sim", "--json", "--log", "info,bttd=debug"])
            .args(["--http-port", &free_port().to_string()])
            .args(["--block-time", block_time])
            .args(["--solidify-depth", &solidify_depth.to_string()])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .wrap_err("spawning bttd tron-sim")?;
        let stdout = child.stdout.take().ok_or_else(|| eyre!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let info = rx.recv_timeout(Duration::from_secs(30)).map_err(|_| {
            eyre!(
                "tron-sim printed nothing: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })?;
        Ok(Self {
            child,
            _dir: dir,
            info,
            log,
        })
    }
}

impl Drop for TronSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_client(program: &Path, script: &str, sim: &TronSim) -> Result<String> {
    let root = repo_root();
    let out = Command::new(program)
        .arg(root.join(script))
        .arg(&sim.info)
        .arg(&root)
        .output()
        .wrap_err_with(|| format!("running {script}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!(
            "{script} failed ({}):\n{text}\n--- tron-sim log ---\n{}",
            out.status,
            std::fs::read_to_string(&sim.log).unwrap_or_default()
        );
    }
    Ok(text)
}

#[test]
fn tronpy_against_tron_sim() -> Result<()> {
    let sim = TronSim::start("400ms", 4)?;
    let python = repo_root().join("tests/tron/.venv/bin/python");
    if !python.exists() {
        bail!("{} is missing: run ./scripts/setup", python.display());
    }
    let out = run_client(&python, "tests/tron/tronpy_e2e.py", &sim)?;
    println!("{out}");
    Ok(())
}

#[test]
fn tronweb_against_tron_sim() -> Result<()> {
    let sim = TronSim::start("400ms", 4)?;
    if !repo_root().join("tests/tron/node_modules/tronweb").exists() {
        bail!("tests/tron/node_modules/tronweb is missing: run ./scripts/setup");
    }
    let out = run_client(Path::new("node"), "tests/tron/tronweb_e2e.mjs", &sim)?;
    println!("{out}");
    Ok(())
}

#[test]
fn address_prints_three_spellings_and_refuses_a_changed_character() -> Result<()> {
    // https://developers.tron.network/docs/account
    let out = Command::new(bttd_bin())
        .args([
            "address",
            "--json",
            "418840E6C55B9ADA326D211D818C34A994AECED808",
        ])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["base58"], "TNPeeaaFB7K9cmo4uQpcU32zGK8G1NYqeL");
    assert_eq!(v["hex41"], "418840e6c55b9ada326d211d818c34a994aeced808");
    assert_eq!(v["evm"], "0x8840E6C55b9adA326d211d818C34a994AeCed808");
    let lines = Command::new(bttd_bin())
        .args(["address", "0x8840e6c55b9ada326d211d818c34a994aeced808"])
        .output()?;
    assert_eq!(
        String::from_utf8(lines.stdout)?,
        "TNPeeaaFB7K9cmo4uQpcU32zGK8G1NYqeL\n418840e6c55b9ada326d211d818c34a994aeced808\n0x8840E6C55b9adA326d211d818C34a994AeCed808\n"
    );
    let changed = Command::new(bttd_bin())
        .args(["address", "TNPeeaaFB7K9cmo4uQpcU32zGK8G1NYqeM"])
        .output()?;
    assert!(!changed.status.success());
    assert!(String::from_utf8_lossy(&changed.stderr).contains("checksum"));
    Ok(())
}
