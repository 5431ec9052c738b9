//! One client's heavy requests against a 4-validator `bttd devnet` (issue 11, fault 3): every
//! bound the devnet's defaults can reach answers with a clear JSON-RPC error (trace steps and
//! bytes, feeHistory percentiles, the gas cap, the batch response size, max-filters and the heavy
//! pool), the process stays under 1 GiB resident (its high-water mark, read from /proc), and the
//! validators keep finalizing meanwhile. The bounds a short devnet cannot reach with its defaults
//! (max-log-range, evm-timeout) are shown by the rpc crate's tests with small limits.

use std::time::{Duration, Instant};

use eyre::{Result, ensure, eyre};
use serde_json::{Value, json};

use crate::support::Devnet;

/// Loops until out of gas: JUMPDEST PUSH0 JUMP.
const LOOP: &str = "0x5b5f56";
/// Grows memory a word per turn until out of gas: JUMPDEST PUSH0 MSIZE MSTORE PUSH0 JUMP.
const GROW: &str = "0x5b5f59525f56";
const GAS: &str = "0x2faf080"; // 50,000,000: the default gas cap
/// A billion: twenty times the gas cap, which eth_call lowers to the cap.
const GAS_ABOVE_CAP: &str = "0x3b9aca00";
/// Enough gas for ~25,000 steps of LOOP: a struct-log trace of about 2 MB.
const TRACE_GAS: &str = "0x24f00"; // 151,296

fn request(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
}

fn error_message(answer: &Value) -> &str {
    answer["error"]["message"].as_str().unwrap_or_default()
}

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
    let traces: Vec<Value> = (0..40)
        .map(|_| {
            request(
                "debug_traceCall",
                json!([{"data": LOOP, "gas": TRACE_GAS}, "latest", {}]),
            )
        })
        .collect();
    vec![
        (
            request(
                "eth_call",
                json!([{"data": LOOP, "gas": GAS_ABOVE_CAP}, "latest"]),
            ),
            "out of gas",
        ),
        // 40 traces of ~2 MB each: the batch's answer would pass batch-response-max-size.
        (Value::Array(traces), "The batch response was too large"),
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
    // The one-off bounds first: the burst fills the heavy pool, which would refuse the workers'
    // traces below with its own (equally clear) error.
    let mut refused = filters_beyond_the_limit_are_refused(&url)?;
    refused += a_burst_beyond_the_heavy_pool_is_refused(&url)?;
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
                        let message = error_message(&answer);
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

/// Installs max-filters (1,024, the devnet's default) block filters, sees the next one refused,
/// and uninstalls them again.
fn filters_beyond_the_limit_are_refused(url: &str) -> Result<u64> {
    let http = reqwest::blocking::Client::new();
    let post = |body: &Value| -> Result<Value> { Ok(http.post(url).json(body).send()?.json()?) };
    let mut ids = Vec::new();
    for count in [1000, 24] {
        let batch: Vec<Value> = (0..count)
            .map(|_| request("eth_newBlockFilter", json!([])))
            .collect();
        let answers = post(&Value::Array(batch))?;
        for answer in answers
            .as_array()
            .ok_or_else(|| eyre!("not a batch: {answers:.300}"))?
        {
            let id = answer["result"].clone();
            ensure!(
                id.is_string(),
                "filter refused below the limit: {answer:.300}"
            );
            ids.push(id);
        }
    }
    let answer = post(&request("eth_newBlockFilter", json!([])))?;
    ensure!(
        error_message(&answer).starts_with("too many filters"),
        "filter 1,025 answered {answer:.300}"
    );
    let uninstall: Vec<Value> = ids
        .into_iter()
        .map(|id| request("eth_uninstallFilter", json!([id])))
        .collect();
    post(&Value::Array(uninstall))?;
    Ok(1)
}

/// 40 eth_calls of a 50M-gas loop at once, each on its own connection: the node's
/// max-concurrent-heavy threads (one per core) and their queues take some, the rest are refused
/// at once; every one is answered.
fn a_burst_beyond_the_heavy_pool_is_refused(url: &str) -> Result<u64> {
    let start = std::sync::Arc::new(std::sync::Barrier::new(40));
    let callers: Vec<_> = (0..40)
        .map(|_| {
            let url = url.to_owned();
            let start = start.clone();
            std::thread::spawn(move || -> Result<String> {
                let http = reqwest::blocking::Client::new();
                let call = request("eth_call", json!([{"data": LOOP, "gas": GAS}, "latest"]));
                start.wait();
                let answer: Value = http.post(&url).json(&call).send()?.json()?;
                Ok(error_message(&answer).to_owned())
            })
        })
        .collect();
    let mut refused = 0;
    for caller in callers {
        let message = caller.join().map_err(|_| eyre!("caller panicked"))??;
        if message.starts_with("too many heavy requests") {
            refused += 1;
        } else {
            ensure!(
                message == "out of gas",
                "a 50M-gas loop answered {message:?}"
            );
        }
    }
    ensure!(refused > 0, "40 simultaneous 50M-gas loops were all run");
    eprintln!("heavy pool: {refused} of 40 simultaneous loops refused");
    Ok(refused)
}

/// The limits a devnet's defaults cannot reach on a short chain, set low in validator 0's
/// node.toml (as an operator would), on the same 4-validator devnet: `max-log-range` for
/// eth_getLogs and the channel lists, `evm-timeout` for eth_call, `batch-request-limit`. Each is
/// refused with its clear error and the validators keep finalizing.
#[test]
fn node_toml_limits_are_refused_on_four_validators_that_keep_finalizing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // The first start writes the network's homes; the limits go into validator 0's node.toml
    // and the second start resumes with them.
    drop(Devnet::start_four_validators(dir.path())?);
    let path = dir.path().join("network/node0/config.toml");
    let mut config = bttd_node::config::NodeConfig::load(&path)?;
    config.rpc.max_log_range = 2;
    config.rpc.evm_timeout = "10ms".into();
    config.rpc.batch_request_limit = 5;
    std::fs::write(&path, toml::to_string(&config)?)?;
    let node = Devnet::start_four_validators(dir.path())?;
    let pid = node.pid().ok_or_else(|| eyre!("devnet not running"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.block_number()? < 4 {
        ensure!(Instant::now() < deadline, "no 4 blocks in 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let start_height = node.block_number()?;

    let range = json!({"fromBlock": "0x0", "toBlock": "latest"});
    let payer = "0x0000000000000000000000000000000000000001";
    let refusals = [
        (
            request("eth_getLogs", json!([range])),
            "block range too large",
        ),
        (
            request("channel_listByPayer", json!([payer, "0x0", "latest"])),
            "block range too large",
        ),
        (
            request("eth_call", json!([{"data": LOOP, "gas": GAS}, "latest"])),
            "execution aborted (timeout = 10ms)",
        ),
    ];
    for (request, expected) in &refusals {
        let answer = node.raw(request.clone())?;
        ensure!(
            error_message(&answer).starts_with(expected),
            "{}: expected {expected:?}, got {answer:.300}",
            request["method"]
        );
    }
    let batch =
        |n: usize| Value::Array((0..n).map(|_| request("eth_chainId", json!([]))).collect());
    let answered = node.raw(batch(5))?;
    ensure!(
        answered
            .as_array()
            .is_some_and(|a| a.len() == 5 && a.iter().all(|r| r["result"].is_string())),
        "a batch of 5 (the limit): {answered:.300}"
    );
    let refused = node.raw(batch(6))?;
    let refused = refused
        .as_array()
        .and_then(|a| a.first())
        .unwrap_or(&refused);
    ensure!(
        error_message(refused).contains("batch"),
        "a batch of 6: {refused:.300}"
    );
    // A range within the limit is served.
    let head = node.block_number()?;
    let near = json!({"fromBlock": format!("{:#x}", head - 1), "toBlock": format!("{head:#x}")});
    node.call("eth_getLogs", json!([near]))?;

    // Finalizing goes on: five more blocks (a second at the devnet's pace), given up to 30 s on
    // a loaded machine.
    let until = Instant::now() + Duration::from_secs(30);
    while node.block_number()? < start_height + 5 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
    }
    let height = node.block_number()?;
    let peak = peak_rss(pid)?;
    eprintln!(
        "node.toml limits refused; peak RSS {} MiB; blocks {start_height} -> {height}",
        peak >> 20
    );
    ensure!(peak < 1 << 30, "peak RSS {} MiB", peak >> 20);
    ensure!(
        height >= start_height + 5,
        "the validators stopped finalizing: {start_height} -> {height}"
    );
    Ok(())
}
