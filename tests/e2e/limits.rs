//! One client's heavy requests against a 4-validator `bttd devnet` (issue 11, fault 3): every
//! bound answers with a clear JSON-RPC error, the process stays under 1 GiB resident (its
//! high-water mark, read from /proc), and the validators keep finalizing meanwhile.

use std::time::{Duration, Instant};

use eyre::{Result, ensure, eyre};
use serde_json::{Value, json};

use crate::support::Devnet;

/// Loops until out of gas: JUMPDEST PUSH0 JUMP.
const LOOP: &str = "0x5b5f56";
/// Grows memory a word per turn until out of gas: JUMPDEST PUSH0 MSIZE MSTORE PUSH0 JUMP.
const GROW: &str = "0x5b5f59525f56";
const GAS: &str = "0x2faf080"; // 50,000,000: the default gas cap

/// The process's peak resident set, in bytes.
fn peak_rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| eyre!("no VmHWM in /proc/{pid}/status"))?;
    Ok(kb * 1024)
}

/// The requests that used to cost the node gigabytes or minutes, each with the start of the
/// error it must now get.
fn heavy_requests() -> Vec<(Value, &'static str)> {
    let percentiles: Vec<f64> = (0..101).map(f64::from).collect();
    let request = |method: &str, params: Value| json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    vec![
        (
            request(
                "debug_traceCall",
                json!([{"data": LOOP, "gas": GAS}, "latest", {}]),
            ),
            "trace aborted: more than 250000 steps",
        ),
        (
            request(
                "debug_traceCall",
                json!([{"data": GROW, "gas": GAS}, "latest", {"enableMemory": true}]),
            ),
            "trace aborted: more than",
        ),
        (
            request("eth_feeHistory", json!(["0x400", "latest", percentiles])),
            "invalid reward percentile",
        ),
    ]
}

#[test]
fn heavy_requests_are_refused_while_four_validators_keep_finalizing_under_a_gibibyte() -> Result<()>
{
    let dir = tempfile::tempdir()?;
    let node = Devnet::start_four_validators(dir.path())?;
    let pid = node.pid().ok_or_else(|| eyre!("devnet not running"))?;
    let start_height = node.block_number()?;
    let url = node.rpc_url.clone();
    let until = Instant::now() + Duration::from_secs(10);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || -> Result<u64> {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()?;
                let mut refused = 0;
                while Instant::now() < until {
                    for (request, expected) in heavy_requests() {
                        let answer: Value = http.post(&url).json(&request).send()?.json()?;
                        let message = answer["error"]["message"].as_str().unwrap_or_default();
                        ensure!(
                            message.starts_with(expected),
                            "{}: expected {expected:?}, got {answer:.300}",
                            request["method"]
                        );
                        refused += 1;
                    }
                }
                Ok(refused)
            })
        })
        .collect();
    let mut refused = 0;
    for worker in workers {
        refused += worker.join().map_err(|_| eyre!("worker panicked"))??;
    }
    let peak = peak_rss(pid)?;
    let height = node.block_number()?;
    eprintln!(
        "{refused} heavy requests refused; peak RSS {} MiB; blocks {start_height} -> {height}",
        peak >> 20
    );
    ensure!(peak < 1 << 30, "peak RSS {} MiB", peak >> 20);
    ensure!(
        height >= start_height + 10,
        "the validators stopped finalizing: {start_height} -> {height} in 10 s"
    );
    Ok(())
}
