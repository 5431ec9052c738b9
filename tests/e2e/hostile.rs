//! One hostile peer against a real network (issue 9, "Must show"): four validators from
//! `bttd testnet init`, each its own `bttd node` process, and `bttd-byzantine-peer` (built from
//! the project's network code) running the attacks of faults 1-6 (and issue 11's attack 7,
//! wrapping-cost transactions on gossip) while `bttd loadgen` offers 200 tx/s over the four
//! validators' RPC.
//!
//! The same load runs twice for the same window: first without the attacker (baseline), then
//! with it. With the attacker:
//! - every transaction is finalized (loadgen: sent = accepted = included, none missing);
//! - p99 send-to-finalized latency is at most 2x the baseline's, where the baseline counts as
//!   at least 300 ms (a p99 of a few blocks of 300 ms is at the noise level of a 2-core machine
//!   that also runs the attacker and loadgen);
//! - every honest node banned only the attacker's peer ids (each `banning peer` warn line
//!   names one of them), and `bttd_p2p_bans_total` (all reasons) equals the number of those
//!   lines;
//! - every validator still runs, and its peak RSS (VmHWM) stayed under 1 GiB;
//! - `bttd_getEvidence` is empty everywhere and all nodes have the same hash at every height.
//! - `eth_syncing` is `false` everywhere (unverified heights move nothing).
//! - every pool is empty at the end (`txpool_status`): no wrapping-cost transaction was
//!   pooled, and loadgen's were all mined.
//!
//! The window is 20 s each in CI; `BTTD_HOSTILE_SECONDS=60` runs the 60 s of the issue. Every
//! check is made and all failures are reported together, with the figures, so a run against an
//! older build (`BTTD_E2E_BIN=...`) says everything that went wrong.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use eyre::{Result, WrapErr, bail, ensure, eyre};
use serde_json::{Value, json};

use crate::support::{BTTD, Devnet, free_port, free_port_range};
use crate::validators::{tail, wait_height};

const ATTACKER: &str = env!("CARGO_BIN_EXE_bttd-byzantine-peer");
const VALIDATORS: usize = 4;
const RATE: u64 = 200;
const SENDERS: u32 = 20;
const RSS_LIMIT_KB: u64 = 1024 * 1024;
/// The baseline p99 counts as at least this much in the 2x comparison.
const P99_FLOOR_MS: f64 = 300.0;

fn window_seconds() -> u64 {
    std::env::var("BTTD_HOSTILE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

/// The attacker process, killed when dropped.
struct Attacker {
    child: Option<Child>,
    stdout: std::path::PathBuf,
    stderr: std::path::PathBuf,
}

impl Attacker {
    fn output(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn peer_ids(&self) -> Vec<String> {
        self.output()
            .lines()
            .filter_map(|l| l.strip_prefix("attacker peer id: "))
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from)
            .collect()
    }

    fn wait(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let child = self.child.as_mut().ok_or_else(|| eyre!("not running"))?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "the attacker did not finish in time\n{}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `bttd loadgen` at RATE tx/s for `seconds` over every validator's RPC; the JSON report.
fn loadgen(rpc_port: u16, seconds: u64) -> Result<Value> {
    let mut args = vec!["loadgen".to_string()];
    for i in 0..VALIDATORS {
        args.push("--rpc-url".into());
        args.push(format!("http://127.0.0.1:{}", rpc_port + i as u16));
    }
    args.extend(
        [
            "--rate",
            &RATE.to_string(),
            "--duration",
            &format!("{seconds}s"),
            "--senders",
            &SENDERS.to_string(),
            "--drain-timeout",
            "60s",
            "--json",
        ]
        .map(String::from),
    );
    let out = Command::new(BTTD).args(&args).output()?;
    ensure!(
        out.status.success(),
        "loadgen failed ({}): {}",
        out.status,
        tail(&String::from_utf8_lossy(&out.stderr))
    );
    serde_json::from_slice(&out.stdout).map_err(|e| {
        eyre!(
            "loadgen printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Failures of the loadgen report's "every transaction finalized" checks.
fn finalized_failures(what: &str, report: &Value, total: u64) -> Vec<String> {
    let mut failures = Vec::new();
    for (key, want) in [
        ("sent", total),
        ("accepted", total),
        ("included", total),
        ("missing", 0),
    ] {
        let got = report[key].as_u64();
        if got != Some(want) {
            failures.push(format!("{what}: {key} = {got:?}, want {want}"));
        }
    }
    if !report["errors"].as_object().is_some_and(|e| e.is_empty()) {
        failures.push(format!("{what}: errors {}", report["errors"]));
    }
    failures
}

fn p99(report: &Value) -> Option<f64> {
    report["latency_ms"]["p99"].as_f64()
}

/// The log without ANSI colour codes.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The peer id of every `banning peer` line of a node's log: all of them, and those of the p2p
/// service's line (the one that carries the ban's `duration`; one per ban, the one the metric
/// counts: older builds also logged the engine's decision on a line of its own).
fn banned_in_log(log: &str) -> (Vec<String>, Vec<String>) {
    let text = plain(log);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("banning peer"))
        .collect();
    (
        peer_ids(&lines),
        peer_ids(
            &lines
                .iter()
                .copied()
                .filter(|l| l.contains("duration="))
                .collect::<Vec<_>>(),
        ),
    )
}

fn peer_ids(lines: &[&str]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("peer="))
                .map(String::from)
        })
        .collect()
}

/// Sum of `bttd_p2p_bans_total` over all labels (None if the node exports no such metric).
fn bans_metric(metrics_addr: &str) -> Result<Option<f64>> {
    let text = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?
        .get(format!("http://{metrics_addr}/metrics"))
        .send()?
        .text()?;
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("bttd_p2p_bans_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    Ok((!values.is_empty()).then(|| values.iter().sum()))
}

/// Peak and current resident set of a process, in kB.
fn rss_kb(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| eyre!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

/// Kind, height and accused validator of each evidence entry (the entries carry whole blocks).
fn evidence_summary(evidence: &Value) -> String {
    let Some(entries) = evidence.as_array() else {
        return evidence.to_string().chars().take(300).collect();
    };
    let items: Vec<String> = entries
        .iter()
        .map(|e| match e.as_object().and_then(|o| o.iter().next()) {
            Some((kind, body)) => {
                let p = &body["first"]["proposal"];
                let v = &body["first"]["vote"];
                let (height, who) = if p.is_object() {
                    (&p["height"], &p["proposer"])
                } else {
                    (&v["height"], &v["validator"])
                };
                format!("{kind} by validator {who} at height {height}")
            }
            None => e.to_string().chars().take(200).collect(),
        })
        .collect();
    format!("{} entries: {}", items.len(), items.join(", "))
}

fn block_hash(node: &Devnet, n: u64) -> Result<String> {
    let block = node.call("eth_getBlockByNumber", json!([format!("0x{n:x}"), false]))?;
    Ok(block["hash"]
        .as_str()
        .ok_or_else(|| eyre!("no block {n} on {}", node.rpc_url))?
        .to_string())
}

fn init(dir: &Path, rpc_port: u16, p2p_port: u16) -> Result<()> {
    // loadgen's senders are dev accounts 10..30.
    crate::validators::testnet_init(dir, rpc_port, p2p_port, &["--accounts", "30"])
}

#[test]
fn a_byzantine_peer_running_attacks_1_to_7_under_load_is_the_only_one_banned() -> Result<()> {
    let started = Instant::now();
    let seconds = window_seconds();
    let dir = tempfile::tempdir()?;
    let rpc_port = free_port_range(VALIDATORS as u16);
    let p2p_port = free_port_range(VALIDATORS as u16);
    init(dir.path(), rpc_port, p2p_port)?;
    let metrics: Vec<String> = (0..VALIDATORS)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let mut nodes: Vec<Devnet> = (0..VALIDATORS)
        .map(|i| {
            Devnet::start_home_with(
                &dir.path().join(format!("node{i}")),
                rpc_port + i as u16,
                &["--metrics", &metrics[i]],
                &[],
            )
        })
        .collect::<Result<_>>()?;
    wait_height(&nodes[0], 3, Duration::from_secs(60))?;
    let genesis = nodes[0].call("eth_getBlockByNumber", json!(["0x0", false]))?;
    let genesis_hash = genesis["hash"]
        .as_str()
        .ok_or_else(|| eyre!("no genesis hash: {genesis}"))?
        .to_string();

    // Baseline: the same load without the attacker.
    let baseline = loadgen(rpc_port, seconds).wrap_err("baseline run (no attacker)")?;
    let total = RATE * seconds;
    let baseline_failures = finalized_failures("baseline", &baseline, total);
    ensure!(
        baseline_failures.is_empty(),
        "the baseline itself failed: {baseline_failures:?}\n{baseline}"
    );
    let base_p99 = p99(&baseline).ok_or_else(|| eyre!("no baseline p99: {baseline}"))?;

    // The attacker starts a little before the load and ends a little after it.
    let out_dir = dir.path().join("attacker");
    std::fs::create_dir_all(&out_dir)?;
    let mut attacker = Attacker {
        stdout: out_dir.join("stdout"),
        stderr: out_dir.join("stderr"),
        child: None,
    };
    attacker.child = Some(
        Command::new(ATTACKER)
            .arg("--home")
            .arg(dir.path())
            .args(["--genesis-hash", &genesis_hash])
            .args(["--duration", &format!("{}s", seconds + 4)])
            .args(["--attacks", "all"])
            .stdout(std::fs::File::create(&attacker.stdout)?)
            .stderr(std::fs::File::create(&attacker.stderr)?)
            .spawn()
            .wrap_err("spawning bttd-byzantine-peer")?,
    );
    std::thread::sleep(Duration::from_secs(2));
    let attacked = loadgen(rpc_port, seconds);
    let attacker_status = attacker.wait(Duration::from_secs(seconds + 60));

    let mut failures: Vec<String> = Vec::new();
    let mut figures: Vec<String> = vec![format!("window {seconds} s at {RATE} tx/s")];
    match &attacker_status {
        Ok(s) if s.success() => {}
        Ok(s) => failures.push(format!("the attacker exited with {s}")),
        Err(e) => failures.push(format!("{e}")),
    }
    let attacker_ids = attacker.peer_ids();
    figures.push(format!("attacker identities: {}", attacker_ids.len()));
    figures.push(format!(
        "attacker sent:\n{}",
        attacker
            .output()
            .lines()
            .filter(|l| l.starts_with("summary:"))
            .collect::<Vec<_>>()
            .join("\n")
    ));
    if attacker_ids.is_empty() {
        failures.push("the attacker printed no peer id".into());
    }

    figures.push(format!("baseline p99 {base_p99:.0} ms"));
    match &attacked {
        Ok(report) => {
            failures.extend(finalized_failures("with attacker", report, total));
            match p99(report) {
                Some(p) => {
                    let bound = 2.0 * base_p99.max(P99_FLOOR_MS);
                    figures.push(format!(
                        "attacked p99 {p:.0} ms (bound 2 x max(baseline, {P99_FLOOR_MS} ms) = {bound:.0} ms); p50 {} ms, max {} ms",
                        report["latency_ms"]["p50"], report["latency_ms"]["max"]
                    ));
                    if p > bound {
                        failures.push(format!(
                            "p99 with attacker {p:.0} ms > {bound:.0} ms (baseline {base_p99:.0} ms)"
                        ));
                    }
                }
                None => failures.push(format!("no p99 with attacker: {report}")),
            }
        }
        Err(e) => failures.push(format!("loadgen with attacker: {e:#}")),
    }

    // Each validator: alive, RSS, bans (log and metric), evidence.
    let mut total_bans = 0usize;
    let mut max_rss_kb = 0u64;
    let mut alive = Vec::new();
    for (i, node) in nodes.iter_mut().enumerate() {
        match node.wait_exit(Duration::ZERO) {
            Ok(Some(status)) => {
                failures.push(format!(
                    "validator {i} exited ({status}):\n{}",
                    tail(&plain(&node.log_text()))
                ));
                continue;
            }
            Ok(None) => alive.push(i),
            Err(e) => failures.push(format!("validator {i}: {e}")),
        }
        if let Some(pid) = node.pid() {
            match rss_kb(pid) {
                Ok((peak, now)) => {
                    max_rss_kb = max_rss_kb.max(peak);
                    figures.push(format!(
                        "validator {i}: peak RSS {} MiB, now {} MiB",
                        peak / 1024,
                        now / 1024
                    ));
                    if peak >= RSS_LIMIT_KB {
                        failures.push(format!(
                            "validator {i}: peak RSS {} MiB >= 1 GiB",
                            peak / 1024
                        ));
                    }
                }
                Err(e) => failures.push(format!("validator {i}: {e}")),
            }
        }
        let (all_lines, banned) = banned_in_log(&node.log_text());
        total_bans += banned.len();
        let honest: Vec<&String> = all_lines
            .iter()
            .filter(|p| !attacker_ids.contains(p))
            .collect();
        let honest_bans = banned.iter().filter(|p| !attacker_ids.contains(p)).count();
        if !honest.is_empty() {
            let mut unique: Vec<&String> = honest.clone();
            unique.sort();
            unique.dedup();
            failures.push(format!(
                "validator {i} banned {honest_bans} time(s) peers that are not the attacker: {unique:?}"
            ));
        }
        match bans_metric(&metrics[i]) {
            Ok(Some(v)) => {
                figures.push(format!(
                    "validator {i}: bttd_p2p_bans_total {v}, ban lines {} ({} of the attacker)",
                    banned.len(),
                    banned.len() - honest_bans
                ));
                if v as usize != banned.len() - honest_bans {
                    failures.push(format!(
                        "validator {i}: bttd_p2p_bans_total {v}, but {} of its {} bans are of the attacker",
                        banned.len() - honest_bans,
                        banned.len()
                    ));
                }
            }
            Ok(None) => failures.push(format!(
                "validator {i}: no bttd_p2p_bans_total metric ({} ban lines, {} not of the attacker)",
                banned.len(),
                honest_bans
            )),
            Err(e) => failures.push(format!("validator {i}: metrics: {e}")),
        }
        match node.call("bttd_getEvidence", json!([])) {
            Ok(evidence) if evidence == Value::Array(vec![]) => {}
            Ok(evidence) => failures.push(format!(
                "validator {i}: evidence against {}",
                evidence_summary(&evidence)
            )),
            Err(e) => failures.push(format!("validator {i}: bttd_getEvidence: {e}")),
        }
        // Issue 11 fault 1 (attack 7): wrapping-cost transactions are rejected, never pooled.
        // loadgen drained its own, so every pool is empty.
        match node.call("txpool_status", json!([])) {
            Ok(status) if status["pending"] == json!("0x0") && status["queued"] == json!("0x0") => {
            }
            Ok(status) => failures.push(format!(
                "validator {i}: transactions left in the pool after the run: {status}"
            )),
            Err(e) => failures.push(format!("validator {i}: txpool_status: {e}")),
        }
        // Fault 6: heights of 2^64-1 and enormous claimed heads are unverified; they must
        // not make a node that follows the chain report that it is syncing.
        match node.call("eth_syncing", json!([])) {
            Ok(Value::Bool(false)) => {}
            Ok(other) => failures.push(format!("validator {i}: eth_syncing is {other}")),
            Err(e) => failures.push(format!("validator {i}: eth_syncing: {e}")),
        }
    }
    figures.push(format!("max peak RSS {} MiB", max_rss_kb / 1024));
    if total_bans == 0 {
        failures.push("no node banned the attacker at all".into());
    }

    // Agreement at every height up to the lowest head of the live nodes.
    let heads: Vec<(usize, Result<u64>)> = alive
        .iter()
        .map(|&i| (i, nodes[i].block_number()))
        .collect();
    let mut lowest = u64::MAX;
    for (i, head) in &heads {
        match head {
            Ok(h) => lowest = lowest.min(*h),
            Err(e) => failures.push(format!("validator {i}: eth_blockNumber: {e}")),
        }
    }
    if alive.len() >= 2 && lowest != u64::MAX {
        figures.push(format!(
            "common height {lowest}; heads {:?}",
            heads
                .iter()
                .map(|(i, h)| (i, h.as_ref().ok()))
                .collect::<Vec<_>>()
        ));
        'heights: for h in 1..=lowest {
            let first = block_hash(&nodes[alive[0]], h)?;
            for &i in &alive[1..] {
                let other = block_hash(&nodes[i], h)?;
                if other != first {
                    failures.push(format!(
                        "fork at height {h}: {first} vs {other} (validator {i})"
                    ));
                    break 'heights;
                }
            }
        }
    }
    figures.push(format!(
        "test took {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    let figures = figures.join("\n");
    eprintln!("hostile peer figures:\n{figures}");
    if !failures.is_empty() {
        // Keep the logs: print them (support.rs does for panics; this is an error return).
        for (i, node) in nodes.iter().enumerate() {
            eprintln!(
                "---- validator {i} log ({}) ----\n{}",
                node.log.display(),
                tail(&plain(&node.log_text()))
            );
        }
        // Keep the directory (node logs, attacker output) for a look after the test.
        let kept = dir.keep();
        eprintln!("logs kept in {}", kept.display());
        bail!(
            "{} failure(s) with a hostile peer:\n- {}\n{figures}",
            failures.len(),
            failures.join("\n- ")
        );
    }
    Ok(())
}
