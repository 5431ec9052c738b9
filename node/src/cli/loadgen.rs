//! `bttd loadgen`: offers a steady rate of signed transfers to one or more nodes over JSON-RPC
//! and measures how long each takes from `eth_sendRawTransaction` to a finalized block.
//!
//! Why it is built this way:
//! - Every transaction is signed before the clock starts (EIP-1559 transfers from the test
//!   mnemonic's accounts, nonces counted locally), so signing cost never shows up as latency
//!   and the send loop only does I/O.
//! - Sends follow a fixed schedule (transaction k at `start + k / rate`), each on its own task
//!   with a cap on requests in flight; if the nodes answer too slowly the schedule slips and
//!   the achieved rate says so instead of the offered one being assumed.
//! - A sender's transactions always go through the same HTTP client and node, so its nonces
//!   arrive in order; senders are spread round-robin over the `--rpc-url`s.
//! - A follower polls `eth_getBlockByNumber("finalized")` every few milliseconds and records
//!   when each block was first seen; a transaction's latency is that time minus its send
//!   time. Blocks are final when committed, so this is the end-to-end finality latency a
//!   client sees, including the RPC, the mempool, gossip, consensus and commit.

mod stats;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U64, U256, keccak256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use clap::Args;
use eyre::{WrapErr, bail, ensure, eyre};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use jsonrpsee::rpc_params;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

pub use stats::Summary;
use stats::intervals;

/// Gas of a plain transfer.
const TRANSFER_GAS: u64 = 21_000;
/// Requests to `eth_sendRawTransaction` in flight at once to one node. Each request in flight
/// may hold a connection of its own, and a node serves at most `[rpc] max-connections` (100 by
/// default) before it answers HTTP 429: above that, refused sends left nonce gaps, and every
/// later transaction of the sender queued behind the gap (the overload run of issue 10).
const MAX_IN_FLIGHT_PER_NODE: usize = 64;

#[derive(Debug, Args)]
pub struct LoadgenArgs {
    /// A node's JSON-RPC URL; repeat to spread the senders round-robin over several nodes.
    /// The first one is also followed for finalized blocks.
    #[arg(long = "rpc-url", default_value = "http://127.0.0.1:8545")]
    rpc_urls: Vec<String>,
    /// Transactions per second offered.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// How long to send (e.g. 30s, 1m).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Number of sending accounts (dev accounts of the test mnemonic).
    #[arg(long, default_value_t = 20)]
    senders: u32,
    /// Index of the first sending dev account; the default keeps clear of accounts 0-9 that
    /// tests and examples use. The devnet must fund first-account + senders accounts
    /// (`bttd devnet --accounts N`).
    #[arg(long, default_value_t = 10)]
    first_account: u32,
    /// HTTP clients (connection pools) per RPC URL.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// How often to poll for the finalized block.
    #[arg(long, default_value = "20ms", value_parser = humantime::parse_duration)]
    poll_interval: Duration,
    /// Fee cap as a multiple of the base fee at signing (plus the tip). The whole run is
    /// signed up front, so the cap must outlast base-fee rises during it: 4 covers eleven
    /// consecutive full blocks (+12.5 % each); an overload run of full blocks needs more.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    fee_headroom: u64,
    /// After the last send, how long to wait for the remaining transactions to be included.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    /// Print the report as JSON on standard output.
    #[arg(long)]
    json: bool,
    /// tracing filter for progress messages on standard error (also RUST_LOG).
    #[arg(long, default_value = "info")]
    log: String,
}

/// What one run measured. Times are milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub rpc_urls: Vec<String>,
    pub senders: u32,
    pub duration_s: f64,
    pub offered_tps: f64,
    /// Sends made (answered or not) per second of the send phase.
    pub sent_tps: f64,
    /// Sends the node accepted per second of the send phase.
    pub accepted_tps: f64,
    /// Included transactions per second, from the first send to the last inclusion seen.
    pub included_tps: f64,
    pub sent: usize,
    pub accepted: usize,
    pub included: usize,
    /// Accepted but not seen in a finalized block before the drain timeout, not counting
    /// `behind_refused`.
    pub missing: usize,
    /// Accepted although a lower nonce of the same sender had been refused (sent before the
    /// refusal came back): queued behind a gap that only a resend could fill, so never
    /// includable. Later transactions of such a sender are held back, not sent.
    pub behind_refused: usize,
    /// Not sent because a lower nonce of the same sender had been refused.
    pub held_back: usize,
    /// Rejected sends by error message.
    pub errors: BTreeMap<String, usize>,
    /// Blocks seen from the start of the run to the end of the drain.
    pub blocks: usize,
    /// Blocks the follower did not see as the head (fetched by number after a jump); their
    /// first-seen time is an upper bound.
    pub blocks_skipped_by_poll: usize,
    pub first_block: Option<u64>,
    pub last_block: Option<u64>,
    /// Interval between blocks by the time this process first saw each.
    pub block_interval_seen_ms: Option<Summary>,
    /// Interval between blocks by header timestamp (whole seconds on this chain, so coarse).
    pub block_interval_header_ms: Option<Summary>,
    /// From the start of eth_sendRawTransaction to the containing block first seen finalized.
    pub latency_ms: Option<Summary>,
    /// Transactions per block, over the blocks from the first to the last holding ours.
    pub txs_per_block: Option<Summary>,
}

pub fn run(args: LoadgenArgs) -> eyre::Result<()> {
    super::init_tracing(&args.log);
    let json = args.json;
    let report = super::runtime()?.block_on(loadgen(args))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

/// One signed transaction, ready to send.
struct Prepared {
    hash: B256,
    raw: Bytes,
    /// Index into the client list.
    client: usize,
}

/// A finalized block as the follower saw it.
#[derive(Debug, Clone)]
struct SeenBlock {
    number: u64,
    seen: Instant,
    timestamp: u64,
    txs: Vec<B256>,
    skipped_by_poll: bool,
}

#[derive(Debug, Deserialize)]
struct BlockHeaderTxs {
    number: U64,
    timestamp: U64,
    #[serde(default)]
    transactions: Vec<B256>,
}

async fn loadgen(args: LoadgenArgs) -> eyre::Result<Report> {
    ensure!(args.rate > 0, "--rate must be positive");
    ensure!(args.senders > 0, "--senders must be positive");
    ensure!(args.connections > 0, "--connections must be positive");
    ensure!(!args.duration.is_zero(), "--duration must be positive");
    let mut clients = Vec::new();
    for i in 0..args.connections * args.rpc_urls.len() {
        // Client i talks to URL i % urls, so consecutive clients alternate between nodes.
        let url = &args.rpc_urls[i % args.rpc_urls.len()];
        let client = HttpClientBuilder::default()
            .request_timeout(Duration::from_secs(10))
            .set_tcp_no_delay(true)
            .build(url)
            .wrap_err_with(|| format!("bad --rpc-url {url}"))?;
        clients.push(client);
    }
    let main = clients[0].clone();
    let total = (f64::from(args.rate) * args.duration.as_secs_f64()).round() as usize;
    ensure!(
        total > 0,
        "--rate x --duration is less than one transaction"
    );

    let chain_id: U64 = call(&main, "eth_chainId", rpc_params![]).await?;
    let head: serde_json::Value =
        call(&main, "eth_getBlockByNumber", rpc_params!["latest", false]).await?;
    let base_fee = quantity(&head["baseFeePerGas"]).unwrap_or(0);
    let tip: U256 = call(&main, "eth_maxPriorityFeePerGas", rpc_params![]).await?;
    let gas_price: U256 = call(&main, "eth_gasPrice", rpc_params![]).await?;
    let tip: u128 = tip.to();
    let max_fee = u128::from(args.fee_headroom)
        .checked_mul(base_fee)
        .and_then(|cap| cap.checked_add(tip))
        .ok_or_else(|| {
            eyre::eyre!(
                "fee cap overflows: base fee {base_fee} x {}",
                args.fee_headroom
            )
        })?
        .max(gas_price.to::<u128>());

    let accounts = bttd_genesis::dev_accounts(args.first_account + args.senders)?;
    let senders: Vec<PrivateKeySigner> = accounts[args.first_account as usize..]
        .iter()
        .map(|a| PrivateKeySigner::from_bytes(&a.private_key))
        .collect::<Result<_, _>>()?;
    let per_sender = total.div_ceil(senders.len());
    let cost =
        U256::from(per_sender) * (U256::from(TRANSFER_GAS) * U256::from(max_fee) + U256::from(1));
    let mut nonces = Vec::with_capacity(senders.len());
    for (i, signer) in senders.iter().enumerate() {
        let index = args.first_account as usize + i;
        let address = signer.address();
        let balance: U256 = call(&main, "eth_getBalance", rpc_params![address, "latest"]).await?;
        if balance < cost {
            bail!(
                "dev account {index} ({address}) holds {balance} wei, less than the {cost} its \
                 {per_sender} transfers may cost; start the devnet with --accounts {} or more, \
                 or lower --senders/--first-account",
                args.first_account + args.senders
            );
        }
        let nonce: U64 = call(
            &main,
            "eth_getTransactionCount",
            rpc_params![address, "pending"],
        )
        .await?;
        nonces.push(nonce.to::<u64>());
    }

    tracing::info!(target: "bttd::loadgen", total, senders = senders.len(), max_fee, tip, "signing");
    let sink = Address::from_slice(&keccak256("bttd loadgen sink")[12..]);
    let mut prepared = Vec::with_capacity(total);
    for k in 0..total {
        let s = k % senders.len();
        let tx = TxEip1559 {
            chain_id: chain_id.to(),
            nonce: nonces[s] + (k / senders.len()) as u64,
            gas_limit: TRANSFER_GAS,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
            to: TxKind::Call(sink),
            value: U256::from(1),
            access_list: Default::default(),
            input: Bytes::new(),
        };
        let signature = senders[s].sign_hash_sync(&tx.signature_hash())?;
        let envelope: TxEnvelope = tx.into_signed(signature).into();
        prepared.push(Prepared {
            hash: *envelope.tx_hash(),
            raw: Bytes::from(envelope.encoded_2718()),
            client: s % clients.len(),
        });
    }
    let hashes: Vec<B256> = prepared.iter().map(|p| p.hash).collect();
    let ours: Arc<HashSet<B256>> = Arc::new(hashes.iter().copied().collect());

    // Follow the chain from the current finalized head.
    let start_block: BlockHeaderTxs = call(
        &main,
        "eth_getBlockByNumber",
        rpc_params!["finalized", false],
    )
    .await?;
    let blocks = Arc::new(Mutex::new(Vec::<SeenBlock>::new()));
    let included = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let follower = tokio::spawn(follow(
        main.clone(),
        start_block.number.to(),
        args.poll_interval,
        Arc::clone(&ours),
        Arc::clone(&blocks),
        Arc::clone(&included),
        stop_rx,
    ));

    tracing::info!(target: "bttd::loadgen", rate = args.rate, duration = ?args.duration, "sending");
    let in_flight: Vec<Arc<Semaphore>> = args
        .rpc_urls
        .iter()
        .map(|_| Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_NODE)))
        .collect();
    // Senders with a refused nonce: their later nonces could only queue behind the gap.
    let refused: Arc<Vec<AtomicBool>> =
        Arc::new((0..senders.len()).map(|_| AtomicBool::new(false)).collect());
    let mut held_back = 0usize;
    let mut sends: JoinSet<(usize, Instant, Result<(), String>)> = JoinSet::new();
    let mut sent_at: Vec<Option<Instant>> = vec![None; total];
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut accepted = 0usize;
    let mut record = |(k, at, result): (usize, Instant, Result<(), String>),
                      sent_at: &mut Vec<Option<Instant>>| {
        match result {
            Ok(()) => {
                sent_at[k] = Some(at);
                accepted += 1;
            }
            Err(message) => *errors.entry(message).or_default() += 1,
        }
    };
    let start = Instant::now();
    let step = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    for (k, tx) in prepared.into_iter().enumerate() {
        tokio::time::sleep_until((start + step.mul_f64(k as f64)).into()).await;
        let sender = k % senders.len();
        if refused[sender].load(Ordering::Relaxed) {
            held_back += 1;
            continue;
        }
        // Client i talks to URL i % urls.
        let node = &in_flight[tx.client % args.rpc_urls.len()];
        let permit = Arc::clone(node).acquire_owned().await?;
        let client = clients[tx.client].clone();
        let refused = Arc::clone(&refused);
        sends.spawn(async move {
            let at = Instant::now();
            let result: Result<B256, _> = client
                .request("eth_sendRawTransaction", rpc_params![tx.raw])
                .await;
            drop(permit);
            let result = match result {
                Ok(hash) if hash == tx.hash => Ok(()),
                Ok(hash) => Err(format!("node answered hash {hash}, expected {}", tx.hash)),
                Err(e) => Err(error_message(&e)),
            };
            if result.is_err() {
                refused[sender].store(true, Ordering::Relaxed);
            }
            (k, at, result)
        });
        while let Some(done) = sends.try_join_next() {
            record(done?, &mut sent_at);
        }
    }
    while let Some(done) = sends.join_next().await {
        record(done?, &mut sent_at);
    }
    let send_phase = start.elapsed();
    tracing::info!(target: "bttd::loadgen", accepted, errors = total - accepted, ?send_phase, "sent; waiting for inclusion");

    let drain_deadline = Instant::now() + args.drain_timeout;
    while included.load(Ordering::Relaxed) < accepted && Instant::now() < drain_deadline {
        tokio::time::sleep(args.poll_interval).await;
    }
    // One more poll period so the block holding the last transaction is recorded in full.
    tokio::time::sleep(args.poll_interval * 2).await;
    stop_tx.send(true)?;
    follower.await??;
    let blocks = std::mem::take(&mut *blocks.lock());

    Ok(summarize(
        &args,
        &hashes,
        &sent_at,
        Sends {
            errors,
            held_back,
            senders: senders.len(),
        },
        &blocks,
        start,
        send_phase,
    ))
}

/// What became of the sends besides the accepted ones.
struct Sends {
    /// Refused sends by error message.
    errors: BTreeMap<String, usize>,
    /// Not sent: a lower nonce of the sender had been refused.
    held_back: usize,
    /// Transaction `k` is sender `k % senders`'s, in nonce order.
    senders: usize,
}

/// The report from what was sent (`hashes[k]` first sent at `sent_at[k]`, `None` if the node
/// refused it or it was held back) and the blocks seen.
fn summarize(
    args: &LoadgenArgs,
    hashes: &[B256],
    sent_at: &[Option<Instant>],
    sends: Sends,
    blocks: &[SeenBlock],
    start: Instant,
    send_phase: Duration,
) -> Report {
    let mut block_of: HashMap<B256, usize> = HashMap::new();
    for (i, block) in blocks.iter().enumerate() {
        for hash in &block.txs {
            block_of.entry(*hash).or_insert(i);
        }
    }
    let mut latencies = Vec::new();
    let mut last_inclusion: Option<Instant> = None;
    let mut ours_range: Option<(usize, usize)> = None;
    for (hash, sent) in hashes.iter().zip(sent_at) {
        let (Some(sent), Some(&b)) = (sent, block_of.get(hash)) else {
            continue;
        };
        let seen = blocks[b].seen;
        latencies.push(ms(seen.saturating_duration_since(*sent)));
        last_inclusion = Some(last_inclusion.map_or(seen, |l| l.max(seen)));
        ours_range = Some(ours_range.map_or((b, b), |(f, l)| (f.min(b), l.max(b))));
    }
    let included = latencies.len();
    let accepted = sent_at.iter().filter(|s| s.is_some()).count();
    // Accepted after a lower nonce of the same sender was refused or held back, and not
    // included: behind a gap.
    let mut gapped = vec![false; sends.senders];
    let mut behind_refused = 0usize;
    for (k, (hash, sent)) in hashes.iter().zip(sent_at).enumerate() {
        let sender = k % sends.senders;
        match sent {
            None => gapped[sender] = true,
            Some(_) if gapped[sender] && !block_of.contains_key(hash) => behind_refused += 1,
            Some(_) => {}
        }
    }
    let seen_ms: Vec<f64> = blocks.iter().map(|b| ms(b.seen - start)).collect();
    let header_ms: Vec<f64> = blocks.iter().map(|b| b.timestamp as f64 * 1000.0).collect();
    let txs_per_block: Vec<f64> = ours_range
        .map(|(f, l)| blocks[f..=l].iter().map(|b| b.txs.len() as f64).collect())
        .unwrap_or_default();
    let secs = send_phase.as_secs_f64();
    let sent = sent_at.len() - sends.held_back;
    Report {
        rpc_urls: args.rpc_urls.clone(),
        senders: args.senders,
        duration_s: args.duration.as_secs_f64(),
        offered_tps: f64::from(args.rate),
        sent_tps: sent as f64 / secs,
        accepted_tps: accepted as f64 / secs,
        included_tps: last_inclusion
            .map(|l| included as f64 / (l - start).as_secs_f64())
            .unwrap_or(0.0),
        sent,
        accepted,
        included,
        missing: accepted.saturating_sub(included + behind_refused),
        behind_refused,
        held_back: sends.held_back,
        errors: sends.errors,
        blocks: blocks.len(),
        blocks_skipped_by_poll: blocks.iter().filter(|b| b.skipped_by_poll).count(),
        first_block: blocks.first().map(|b| b.number),
        last_block: blocks.last().map(|b| b.number),
        block_interval_seen_ms: Summary::of(&intervals(&seen_ms)),
        block_interval_header_ms: Summary::of(&intervals(&header_ms)),
        latency_ms: Summary::of(&latencies),
        txs_per_block: Summary::of(&txs_per_block),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Polls the finalized head every `interval` until told to stop, appending each new block
/// (and any it jumped over, fetched by number) to `blocks` and counting our transactions.
async fn follow(
    client: HttpClient,
    mut last: u64,
    interval: Duration,
    ours: Arc<HashSet<B256>>,
    blocks: Arc<Mutex<Vec<SeenBlock>>>,
    included: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) -> eyre::Result<()> {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return Ok(()),
        }
        let head: BlockHeaderTxs = call(
            &client,
            "eth_getBlockByNumber",
            rpc_params!["finalized", false],
        )
        .await?;
        let seen = Instant::now();
        let number: u64 = head.number.to();
        if number <= last {
            continue;
        }
        let mut new = Vec::new();
        for skipped in last + 1..number {
            let block: BlockHeaderTxs = call(
                &client,
                "eth_getBlockByNumber",
                rpc_params![U64::from(skipped), false],
            )
            .await?;
            new.push((block, true));
        }
        new.push((head, false));
        for (block, skipped_by_poll) in new {
            let ours_here = block
                .transactions
                .iter()
                .filter(|h| ours.contains(*h))
                .count();
            included.fetch_add(ours_here, Ordering::Relaxed);
            tracing::debug!(target: "bttd::loadgen", number = block.number.to::<u64>(), txs = block.transactions.len(), ours = ours_here, "finalized");
            blocks.lock().push(SeenBlock {
                number: block.number.to(),
                seen,
                timestamp: block.timestamp.to(),
                txs: block.transactions,
                skipped_by_poll,
            });
        }
        last = number;
    }
}

async fn call<T: serde::de::DeserializeOwned>(
    client: &HttpClient,
    method: &str,
    params: jsonrpsee::core::params::ArrayParams,
) -> eyre::Result<T> {
    client
        .request(method, params)
        .await
        .map_err(|e| eyre!("{method}: {e}"))
}

/// A send error as a grouping key: the node's message for a JSON-RPC error, the client's
/// description otherwise, with numbers (nonces, counts) replaced by `N` so that one cause
/// is one line of the report.
fn error_message(e: &jsonrpsee::core::ClientError) -> String {
    let message = match e {
        jsonrpsee::core::ClientError::Call(obj) => obj.message().to_owned(),
        other => other.to_string(),
    };
    mask_numbers(&message)
}

/// `s` with every run of decimal digits (and any 0x-hex number) replaced by `N`.
fn mask_numbers(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            let hex = c == '0' && chars.peek() == Some(&'x');
            if hex {
                chars.next();
            }
            while chars.peek().is_some_and(|d| {
                if hex {
                    d.is_ascii_hexdigit()
                } else {
                    d.is_ascii_digit()
                }
            }) {
                chars.next();
            }
            out.push('N');
        } else {
            out.push(c);
        }
    }
    out
}

fn quantity(v: &serde_json::Value) -> Option<u128> {
    u128::from_str_radix(v.as_str()?.trim_start_matches("0x"), 16).ok()
}

/// The human-readable report.
pub fn render(r: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "nodes:            {}", r.rpc_urls.join(", "));
    let _ = writeln!(
        out,
        "offered:          {:.0} tx/s for {:.1} s from {} senders",
        r.offered_tps, r.duration_s, r.senders
    );
    let _ = writeln!(
        out,
        "achieved:         sent {:.1} tx/s, accepted {:.1} tx/s, included {:.1} tx/s",
        r.sent_tps, r.accepted_tps, r.included_tps
    );
    let _ = writeln!(
        out,
        "transactions:     {} sent, {} accepted, {} included, {} accepted but missing, \
         {} accepted behind a refused nonce, {} held back",
        r.sent, r.accepted, r.included, r.missing, r.behind_refused, r.held_back
    );
    if r.errors.is_empty() {
        let _ = writeln!(out, "errors:           none");
    } else {
        let _ = writeln!(out, "errors:");
        for (message, count) in &r.errors {
            let _ = writeln!(out, "  {count:>8}  {message}");
        }
    }
    let _ = writeln!(
        out,
        "blocks:           {} ({:?}..{:?}), {} fetched after a poll jumped over them",
        r.blocks, r.first_block, r.last_block, r.blocks_skipped_by_poll
    );
    let line = |out: &mut String, name: &str, s: &Option<Summary>| {
        let _ = match s {
            Some(s) => writeln!(
                out,
                "{name:<18}p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  mean {:.1}  (n={})",
                s.p50, s.p90, s.p99, s.max, s.mean, s.count
            ),
            None => writeln!(out, "{name:<18}no samples"),
        };
    };
    line(&mut out, "latency ms:", &r.latency_ms);
    line(&mut out, "interval ms seen:", &r.block_interval_seen_ms);
    line(&mut out, "interval ms hdr:", &r.block_interval_header_ms);
    line(&mut out, "txs per block:", &r.txs_per_block);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_group_by_cause() {
        assert_eq!(
            mask_numbers("nonce too high: next nonce 114, tx nonce 179, at most 64 ahead"),
            "nonce too high: next nonce N, tx nonce N, at most N ahead"
        );
        assert_eq!(
            mask_numbers("already known 0xAbC123 (x2)"),
            "already known N (xN)"
        );
        assert_eq!(mask_numbers("no digits"), "no digits");
    }
}
