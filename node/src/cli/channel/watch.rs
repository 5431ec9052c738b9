//! `bttd channel watch`: the payee's watchtower. It holds the best voucher of every channel
//! paying a payee it serves (the key's address, plus each `--payee`), keeps them in a state
//! directory, and settles them once the payer requests a close, before `closesAt` minus a
//! margin, bidding up the fee of a stuck settle until it is mined.
//!
//! Vouchers arrive over JSON-RPC (`--listen`: `watch_submitVoucher`, answered only once the
//! voucher is on disk) or, as before, as JSON lines from `--vouchers` (a file, a directory, or
//! stdin). The decisions are in [`super::tower`]; this module does the I/O, every round
//! (`--poll-interval`):
//!
//! 1. re-read every tracked channel's state, the head, the base fee and the tower's balance
//!    in one or a few `eth_call`s of Multicall3's `aggregate3` pinned to one block, so nothing
//!    depends on having seen a log (a close first seen on a lagging node, or during an RPC
//!    outage, is still handled the next round);
//! 2. read the contract's logs of the tracked channels only (topic 1 = the ids), from the
//!    cursor to the head, halving any range the node refuses (its limit is 10,000 logs or
//!    blocks), for the record;
//! 3. settle the due channels in one `settleBatch` transaction, and replace it (same nonce,
//!    higher fees) at every new block it is not in.
//!
//! Transient RPC failures are logged and retried next round.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use alloy_consensus::TxEip1559;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use alloy_rpc_types_eth::{Filter, Log};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolEvent};
use bttd_contracts::channels::{ChannelInfo, ChannelsDomain, IBandwidthChannels, SignedVoucher};
use bttd_contracts::{BANDWIDTH_CHANNELS_ADDRESS, MULTICALL3_ADDRESS};
use jsonrpsee::core::{ClientError, RpcResult, async_trait};
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::types::ErrorObjectOwned;
use serde::Serialize;
use tokio::sync::{Mutex, mpsc};

use super::client::{Node, calldata, sign_1559};
use super::store::Store;
use super::tower::{Book, Fees, Policy, urgent};

alloy_sol_types::sol! {
    struct Call3 { address target; bool allowFailure; bytes callData; }
    struct Result3 { bool success; bytes returnData; }
    function aggregate3(Call3[] calls) external payable returns (Result3[] returnData);
    function getEthBalance(address addr) external view returns (uint256 balance);
}

/// Channels read per `aggregate3` call.
const READ_CHUNK: usize = 500;
/// Channel ids per eth_getLogs filter.
const LOG_ID_CHUNK: usize = 500;
/// Largest JSON-RPC request the tower accepts (a voucher is ~300 bytes).
const MAX_REQUEST_BYTES: u32 = 16 * 1024;
/// Largest answer (`watch_status` of many channels).
const MAX_RESPONSE_BYTES: u32 = 64 * 1024 * 1024;
/// Gas of one settleBatch: a base plus this per voucher, when estimation fails.
const GAS_PER_ITEM: u64 = 40_000;
/// The balance warning: fewer than this much gas at twice the current base fee.
const LOW_BALANCE_GAS: u64 = 2_000_000;
/// Voucher lines waiting for their channel to appear on the node, at most.
const MAX_RETRY_LINES: usize = 10_000;
/// The pool's price bump for a replacement (geth's and bttd's default, 10%).
const PRICE_BUMP_PCT: u128 = 10;

/// Where vouchers come from besides JSON-RPC.
#[derive(Debug)]
pub enum Source {
    /// A file or a directory of files (`*.json`, `*.jsonl`), re-read when they change.
    Path(PathBuf),
    /// Lines on standard input.
    Stdin(mpsc::UnboundedReceiver<String>),
}

impl Source {
    pub fn from_arg(arg: &Path) -> Self {
        if arg == Path::new("-") {
            let (tx, rx) = mpsc::unbounded_channel();
            std::thread::spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            Self::Stdin(rx)
        } else {
            Self::Path(arg.to_owned())
        }
    }
}

/// Files already read, by path: (length, modification time) when last read.
type Seen = HashMap<PathBuf, (u64, Option<SystemTime>)>;

/// New lines from the source since the last call.
fn read_lines(source: &mut Source, seen: &mut Seen) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match source {
        Source::Stdin(rx) => {
            while let Ok(line) = rx.try_recv() {
                out.push(("stdin".to_owned(), line));
            }
        }
        Source::Path(path) => {
            let files = if path.is_dir() {
                match std::fs::read_dir(&*path) {
                    Ok(entries) => {
                        let mut files: Vec<PathBuf> = entries
                            .filter_map(|e| e.ok().map(|e| e.path()))
                            .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "jsonl"))
                            .collect();
                        files.sort();
                        files
                    }
                    Err(e) => {
                        tracing::warn!(target: "bttd::channel", path = %path.display(), %e, "cannot list voucher directory");
                        Vec::new()
                    }
                }
            } else {
                vec![path.clone()]
            };
            for file in files {
                let Ok(meta) = std::fs::metadata(&file) else {
                    continue;
                };
                let stamp = (meta.len(), meta.modified().ok());
                if seen.get(&file) == Some(&stamp) {
                    continue;
                }
                match std::fs::read_to_string(&file) {
                    Ok(text) => {
                        seen.insert(file.clone(), stamp);
                        let name = file.display().to_string();
                        out.extend(text.lines().map(|l| (name.clone(), l.to_owned())));
                    }
                    Err(e) => {
                        tracing::warn!(target: "bttd::channel", file = %file.display(), %e, "cannot read vouchers")
                    }
                }
            }
        }
    }
    out
}

/// What `bttd channel watch` was told.
#[derive(Debug)]
pub struct Config {
    pub policy: Policy,
    pub state_dir: PathBuf,
    pub listen: Option<SocketAddr>,
    pub vouchers: Option<PathBuf>,
    pub poll: Duration,
}

/// The chain as last read.
#[derive(Clone, Copy, Debug)]
struct Head {
    number: u64,
    timestamp: u64,
    seen: Instant,
    base_fee: u128,
    balance: U256,
}

/// The answer to a submitted voucher.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Answer {
    pub accepted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The best amount held for the channel after this voucher (hex quantity).
    pub best: U256,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStatusView {
    pub channel_id: B256,
    pub payee: Address,
    pub best: U256,
    pub settled: bool,
    pub closes_at: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub balance: U256,
    pub channels: Vec<ChannelStatusView>,
}

/// A settle transaction sent and not seen mined yet.
#[derive(Clone, Debug)]
struct InFlight {
    nonce: u64,
    fees: Fees,
    hash: Option<B256>,
    /// Head number when last (re)sent.
    sent_block: u64,
    /// Chain time of the first send (for the urgency of bumps).
    first_sent: u64,
    channels: Vec<B256>,
}

/// State shared by the loop and the JSON-RPC server.
struct Tower {
    node: Node,
    signer: PrivateKeySigner,
    book: Mutex<Book>,
    store: Store,
    head: parking_lot::Mutex<Option<Head>>,
}

impl Tower {
    /// The chain's time now, estimated from the last head read (its timestamp plus the wall
    /// time since), so the margin is never overshot by a slow round.
    fn now(&self) -> Option<u64> {
        let head = (*self.head.lock())?;
        Some(head.timestamp + head.seen.elapsed().as_secs())
    }

    /// `channels(id)` at the head.
    async fn read_channel(&self, id: B256) -> eyre::Result<ChannelInfo> {
        let out = self
            .node
            .call(
                BANDWIDTH_CHANNELS_ADDRESS,
                calldata(IBandwidthChannels::channelsCall { channelId: id }),
                None,
            )
            .await?;
        decode_channel(&out)
    }

    /// Checks a voucher and, if the tower takes it, saves it durably before answering.
    async fn submit(&self, v: SignedVoucher) -> eyre::Result<Answer> {
        let id = v.channel_id;
        let known = {
            let book = self.book.lock().await;
            book.channels.get(&id).and_then(|t| t.info.clone())
        };
        let info = match known {
            Some(info) => info,
            None => self.read_channel(id).await?,
        };
        let mut book = self.book.lock().await;
        let now = match self.now() {
            Some(now) => now,
            None => self.node.head_timestamp().await?,
        };
        let amount = v.cumulative_amount;
        match book.offer(&v, &info, now) {
            Err(refusal) => {
                tracing::warn!(target: "bttd::channel", channel = %id, %amount, %refusal, "voucher refused");
                Ok(Answer {
                    accepted: false,
                    reason: Some(refusal.to_string()),
                    best: book.best(&id),
                })
            }
            Ok(claimable) => {
                let store = self.store.clone();
                let saved = v.clone();
                tokio::task::spawn_blocking(move || store.save_voucher(&saved)).await??;
                if book.channels.get(&id).is_none_or(|t| t.best.is_none()) {
                    tracing::info!(target: "bttd::channel", channel = %id, payee = %info.payee, "watching channel");
                }
                book.keep(v, info);
                tracing::debug!(target: "bttd::channel", channel = %id, %amount, %claimable, "voucher kept");
                Ok(Answer {
                    accepted: true,
                    reason: None,
                    best: amount,
                })
            }
        }
    }

    async fn status(&self) -> Status {
        let balance = (*self.head.lock()).map_or(U256::ZERO, |h| h.balance);
        let book = self.book.lock().await;
        let mut channels: Vec<ChannelStatusView> = book
            .channels
            .iter()
            .map(|(id, t)| ChannelStatusView {
                channel_id: *id,
                payee: t.info.as_ref().map_or(Address::ZERO, |i| i.payee),
                best: t.best_amount(),
                settled: t.settled(),
                closes_at: t.info.as_ref().map_or(0, |i| i.closes_at),
            })
            .collect();
        channels.sort_by_key(|c| c.channel_id);
        Status { balance, channels }
    }
}

fn decode_channel(out: &[u8]) -> eyre::Result<ChannelInfo> {
    ChannelInfo::decode_getter(out)
        .map_err(|e| eyre::eyre!("channels() returned undecodable data: {e}"))
}

/// The head (eth_getBlockByNumber: an eth_call's environment may have no base fee), then the
/// tower's balance and the given channels in `aggregate3` calls pinned to that block.
async fn read_chain(
    node: &Node,
    me: Address,
    ids: &[B256],
) -> eyre::Result<(Head, Vec<ChannelInfo>)> {
    let (number, timestamp, base_fee) = node.head().await?;
    let call3 = |target: Address, data: Bytes| Call3 {
        target,
        allowFailure: false,
        callData: data,
    };
    let channel_call = |id: &B256| {
        call3(
            BANDWIDTH_CHANNELS_ADDRESS,
            calldata(IBandwidthChannels::channelsCall { channelId: *id }),
        )
    };
    let aggregate = |calls: Vec<Call3>| async move {
        let n = calls.len();
        let out = node
            .call(
                MULTICALL3_ADDRESS,
                aggregate3Call { calls }.abi_encode().into(),
                Some(number),
            )
            .await?;
        let results = aggregate3Call::abi_decode_returns(&out)
            .map_err(|e| eyre::eyre!("aggregate3 returned undecodable data: {e}"))?;
        eyre::ensure!(
            results.len() == n,
            "aggregate3: {} results for {n} calls",
            results.len()
        );
        eyre::Ok(results)
    };
    let mut chunks = ids.chunks(READ_CHUNK);
    let first: Vec<Call3> = std::iter::once(call3(
        MULTICALL3_ADDRESS,
        getEthBalanceCall { addr: me }.abi_encode().into(),
    ))
    .chain(chunks.next().unwrap_or_default().iter().map(channel_call))
    .collect();
    let results = aggregate(first).await?;
    eyre::ensure!(
        results[0].returnData.len() == 32,
        "getEthBalance: not one word"
    );
    let head = Head {
        number,
        timestamp,
        seen: Instant::now(),
        base_fee,
        balance: U256::from_be_slice(&results[0].returnData),
    };
    let mut infos = Vec::with_capacity(ids.len());
    for r in &results[1..] {
        infos.push(decode_channel(&r.returnData)?);
    }
    for chunk in chunks {
        for r in aggregate(chunk.iter().map(channel_call).collect()).await? {
            infos.push(decode_channel(&r.returnData)?);
        }
    }
    Ok((head, infos))
}

/// Why a log query failed.
#[derive(Debug)]
pub enum LogsError {
    /// The node refuses the range as too large (too many blocks or logs): split it.
    TooLarge(String),
    Other(eyre::Report),
}

/// Whether a node's eth_getLogs error means "ask for less": -32005 (limit exceeded), or the
/// wording of geth and common providers.
fn is_too_large(e: &ClientError) -> bool {
    match e {
        ClientError::Call(obj) => {
            let m = obj.message().to_lowercase();
            obj.code() == -32005
                || ["more than", "too large", "too many", "limit", "range"]
                    .iter()
                    .any(|w| m.contains(w))
        }
        _ => false,
    }
}

/// The logs of blocks `from..=to` through `fetch`, halving every range it refuses as too
/// large, in block order. A single block refused is an error.
pub async fn logs_split<F, Fut>(from: u64, to: u64, mut fetch: F) -> eyre::Result<Vec<Log>>
where
    F: FnMut(u64, u64) -> Fut,
    Fut: Future<Output = Result<Vec<Log>, LogsError>>,
{
    let mut out = Vec::new();
    let mut todo = vec![(from, to)];
    while let Some((a, b)) = todo.pop() {
        match fetch(a, b).await {
            Ok(logs) => out.extend(logs),
            Err(LogsError::TooLarge(why)) if a < b => {
                let mid = a + (b - a) / 2;
                tracing::debug!(target: "bttd::channel", from = a, to = b, %why, "log range refused; splitting");
                todo.push((mid + 1, b));
                todo.push((a, mid));
            }
            Err(LogsError::TooLarge(why)) => eyre::bail!("block {a} alone is refused: {why}"),
            Err(LogsError::Other(e)) => return Err(e),
        }
    }
    Ok(out)
}

/// The loop's own state.
struct Loop {
    /// First block whose logs are not read yet.
    next_block: u64,
    inflight: Option<InFlight>,
    /// Channels already reported as missed / closing (log once).
    missed: HashSet<B256>,
    closing: HashSet<B256>,
    low_balance_warned: bool,
    /// Voucher lines whose channel the node did not know yet.
    retry: Vec<(String, String)>,
}

impl Tower {
    async fn feed_line(&self, origin: &str, line: &str, retry: &mut Vec<(String, String)>) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return;
        }
        let voucher: SignedVoucher = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(target: "bttd::channel", %origin, %e, "not a voucher line, skipped");
                return;
            }
        };
        match self.submit(voucher).await {
            Ok(a)
                if !a.accepted
                    && a.reason
                        .as_deref()
                        .is_some_and(|r| r.starts_with("unknown channel")) =>
            {
                if retry.len() < MAX_RETRY_LINES {
                    retry.push((origin.to_owned(), line.to_owned()));
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(target: "bttd::channel", %origin, %e, "voucher not checked; retrying next round");
                if retry.len() < MAX_RETRY_LINES {
                    retry.push((origin.to_owned(), line.to_owned()));
                }
            }
        }
    }

    /// Reads the tracked channels' logs from the cursor to `head` (for the record).
    async fn read_logs(&self, ids: &[B256], st: &mut Loop, head: u64) -> eyre::Result<()> {
        if head < st.next_block || ids.is_empty() {
            st.next_block = st.next_block.max(head + 1);
            return Ok(());
        }
        let topics = [
            IBandwidthChannels::CloseRequested::SIGNATURE_HASH,
            IBandwidthChannels::Settled::SIGNATURE_HASH,
            IBandwidthChannels::Closed::SIGNATURE_HASH,
            IBandwidthChannels::Withdrawn::SIGNATURE_HASH,
        ];
        for chunk in ids.chunks(LOG_ID_CHUNK) {
            let base = Filter::new()
                .address(BANDWIDTH_CHANNELS_ADDRESS)
                .event_signature(topics.to_vec())
                .topic1(chunk.to_vec());
            let logs = logs_split(st.next_block, head, |a, b| {
                let f = base.clone().from_block(a).to_block(b);
                async move {
                    self.node.logs(&f).await.map_err(|e| {
                        if is_too_large(&e) {
                            LogsError::TooLarge(e.to_string())
                        } else {
                            LogsError::Other(eyre::eyre!("eth_getLogs: {e}"))
                        }
                    })
                }
            })
            .await?;
            for log in logs {
                let block = log.block_number;
                if let Ok(ev) = IBandwidthChannels::CloseRequested::decode_log_data(log.data()) {
                    tracing::info!(target: "bttd::channel", channel = %ev.channelId, closes_at = ev.closesAt, ?block, "CloseRequested log");
                } else if let Ok(ev) = IBandwidthChannels::Settled::decode_log_data(log.data()) {
                    tracing::info!(target: "bttd::channel", channel = %ev.channelId, claimed = %ev.claimed, ?block, "Settled log");
                } else if let Ok(ev) = IBandwidthChannels::Closed::decode_log_data(log.data()) {
                    tracing::info!(target: "bttd::channel", channel = %ev.channelId, claimed = %ev.claimed, ?block, "Closed (cooperatively) log");
                } else if let Ok(ev) = IBandwidthChannels::Withdrawn::decode_log_data(log.data()) {
                    tracing::info!(target: "bttd::channel", channel = %ev.channelId, refunded = %ev.refunded, ?block, "Withdrawn log");
                }
            }
        }
        st.next_block = head + 1;
        if let Err(e) = self.store.save_cursor(st.next_block) {
            tracing::warn!(target: "bttd::channel", %e, "cannot save the log cursor");
        }
        Ok(())
    }

    async fn round(&self, st: &mut Loop, source: Option<&mut (Source, Seen)>) -> eyre::Result<()> {
        let me = self.signer.address();
        let ids: Vec<B256> = self.book.lock().await.channels.keys().copied().collect();
        let (head, infos) = read_chain(&self.node, me, &ids).await?;
        *self.head.lock() = Some(head);
        let now = head.timestamp;
        {
            let mut book = self.book.lock().await;
            for (id, info) in ids.iter().zip(infos) {
                if info.closes_at != 0 && st.closing.insert(*id) {
                    tracing::info!(target: "bttd::channel", channel = %id, closes_at = info.closes_at, now, "CloseRequested seen");
                }
                if let Some(t) = book.channels.get_mut(id) {
                    t.info = Some(info);
                }
            }
        }
        // Vouchers from the file source (and lines whose channel was unknown last time).
        if let Some((source, seen)) = source {
            let mut lines = std::mem::take(&mut st.retry);
            lines.extend(read_lines(source, seen));
            for (origin, line) in lines {
                self.feed_line(&origin, &line, &mut st.retry).await;
            }
        }
        if let Err(e) = self.read_logs(&ids, st, head.number).await {
            tracing::warn!(target: "bttd::channel", %e, "reading logs failed; the state was read anyway");
        }
        let (due, missed) = {
            let book = self.book.lock().await;
            (book.due(now), book.missed(now))
        };
        for id in missed {
            if st.missed.insert(id) {
                tracing::error!(target: "bttd::channel", channel = %id, "settle window over with the best voucher unpaid");
            }
        }
        let tip = self
            .node
            .suggested_tip()
            .await
            .unwrap_or(super::tower::MIN_TIP);
        let low = U256::from(LOW_BALANCE_GAS)
            * U256::from(head.base_fee.saturating_mul(2).saturating_add(tip));
        if head.balance < low {
            if !st.low_balance_warned {
                tracing::warn!(target: "bttd::channel", balance = %head.balance, needed = %low, "gas balance low: the tower may not be able to settle");
                st.low_balance_warned = true;
            }
        } else {
            st.low_balance_warned = false;
        }
        self.settle(st, head, tip, due).await
    }

    /// Sends, replaces or forgets the settle transaction.
    async fn settle(
        &self,
        st: &mut Loop,
        head: Head,
        tip: u128,
        due: Vec<(SignedVoucher, ChannelInfo)>,
    ) -> eyre::Result<()> {
        let me = self.signer.address();
        let mined_nonce = self.node.nonce(me, "latest").await?;
        if let Some(f) = &st.inflight
            && mined_nonce > f.nonce
        {
            if let Some(hash) = f.hash
                && let Some(r) = self.node.receipt(hash).await?
            {
                tracing::info!(target: "bttd::channel", tx = %hash, block = ?r.block_number, status = r.status(), gas_used = r.gas_used, channels = f.channels.len(), tip = f.fees.tip, max_fee = f.fees.max_fee, "settled");
            }
            st.inflight = None;
        }
        if due.is_empty() {
            return Ok(());
        }
        if let Some(f) = &st.inflight
            && head.number <= f.sent_block
        {
            return Ok(()); // give it a block
        }
        let deadline = due
            .iter()
            .map(|(_, i)| i.closes_at)
            .min()
            .unwrap_or(u64::MAX);
        let margin = self.book.lock().await.policy.margin;
        let cutoff = due
            .iter()
            .map(|(_, i)| margin.cutoff(i))
            .min()
            .unwrap_or(deadline);
        let worth: U256 = due
            .iter()
            .map(|(v, i)| v.cumulative_amount.saturating_sub(i.claimed))
            .fold(U256::ZERO, |a, b| a.saturating_add(b));
        let call = IBandwidthChannels::settleBatchCall {
            channelIds: due.iter().map(|(v, _)| v.channel_id).collect(),
            cumulativeAmounts: due.iter().map(|(v, _)| v.cumulative_amount).collect(),
            signatures: due.iter().map(|(v, _)| v.signature.clone()).collect(),
        };
        let input = calldata(call);
        let gas = match self
            .node
            .estimate_gas(me, BANDWIDTH_CHANNELS_ADDRESS, &input)
            .await
        {
            Ok(g) => g.saturating_mul(13) / 10,
            Err(e) => {
                tracing::debug!(target: "bttd::channel", %e, "estimateGas failed; using the formula");
                60_000 + GAS_PER_ITEM * due.len() as u64
            }
        };
        let (nonce, fees, first_sent) = match &st.inflight {
            None => {
                let fees = Fees::initial(head.base_fee, tip);
                tracing::info!(target: "bttd::channel", channels = due.len(), %worth, closes_at = deadline, cutoff, now = head.timestamp, "close requested: settling the best voucher");
                (mined_nonce, fees, head.timestamp)
            }
            Some(f) => {
                let hurry = urgent(f.first_sent, cutoff, head.timestamp);
                let fees = f.fees.bump(head.base_fee, tip, hurry);
                tracing::info!(target: "bttd::channel", nonce = f.nonce, old_tip = f.fees.tip, old_max_fee = f.fees.max_fee, tip = fees.tip, max_fee = fees.max_fee, urgent = hurry, blocks = head.number - f.sent_block, "settle not mined: replacing it with a higher fee");
                (f.nonce, fees, f.first_sent)
            }
        };
        let Some(fees) = fees.capped(gas, worth) else {
            tracing::warn!(target: "bttd::channel", %worth, gas, "settling would cost more gas than it pays; waiting");
            return Ok(());
        };
        if let Some(f) = &st.inflight
            && !fees.replaces(f.fees, PRICE_BUMP_PCT)
        {
            tracing::warn!(target: "bttd::channel", %worth, max_fee = fees.max_fee, "cannot bid higher without spending more than the settlement pays; waiting");
            return Ok(());
        }
        let tx = TxEip1559 {
            chain_id: self.book.lock().await.domain.chain_id(),
            nonce,
            gas_limit: gas,
            max_fee_per_gas: fees.max_fee,
            max_priority_fee_per_gas: fees.tip,
            to: TxKind::Call(BANDWIDTH_CHANNELS_ADDRESS),
            value: U256::ZERO,
            access_list: Default::default(),
            input,
        };
        let raw = sign_1559(&self.signer, tx)?;
        let channels: Vec<B256> = due.iter().map(|(v, _)| v.channel_id).collect();
        match self.node.send_raw(raw).await {
            Ok(hash) => {
                tracing::info!(target: "bttd::channel", tx = %hash, nonce, tip = fees.tip, max_fee = fees.max_fee, gas, channels = channels.len(), "settle sent");
                st.inflight = Some(InFlight {
                    nonce,
                    fees,
                    hash: Some(hash),
                    sent_block: head.number,
                    first_sent,
                    channels,
                });
            }
            Err(e) => {
                let msg = e.to_string();
                tracing::warn!(target: "bttd::channel", nonce, %msg, "settle refused by the node");
                // Something of ours already holds the nonce (sent before a restart, or the
                // bid was not enough): remember the bid so the next round outbids it.
                if msg.contains("underpriced") || msg.contains("already known") {
                    st.inflight = Some(InFlight {
                        nonce,
                        fees,
                        hash: None,
                        sent_block: head.number,
                        first_sent,
                        channels,
                    });
                }
            }
        }
        Ok(())
    }
}

#[rpc(server, namespace = "watch")]
pub trait WatchApi {
    /// Takes a voucher if the contract would pay it to a payee this tower serves; answers
    /// once it is on disk.
    #[method(name = "submitVoucher")]
    async fn submit_voucher(
        &self,
        channel_id: B256,
        cumulative_amount: U256,
        signature: Bytes,
    ) -> RpcResult<Answer>;

    /// The tower's gas balance and its channels.
    #[method(name = "status")]
    async fn status(&self) -> RpcResult<Status>;
}

#[derive(Clone)]
struct Api(Arc<Tower>);

#[async_trait]
impl WatchApiServer for Api {
    async fn submit_voucher(
        &self,
        channel_id: B256,
        cumulative_amount: U256,
        signature: Bytes,
    ) -> RpcResult<Answer> {
        let v = SignedVoucher {
            channel_id,
            cumulative_amount,
            signature,
        };
        self.0.submit(v).await.map_err(|e| {
            ErrorObjectOwned::owned(-32000, format!("voucher not checked: {e}"), None::<()>)
        })
    }

    async fn status(&self) -> RpcResult<Status> {
        Ok(self.0.status().await)
    }
}

/// Runs until interrupted (Ctrl-C).
pub async fn run(
    node: Node,
    signer: PrivateKeySigner,
    domain: ChannelsDomain,
    config: Config,
) -> eyre::Result<()> {
    let store = Store::open(&config.state_dir)?;
    let mut book = Book::new(domain, config.policy);
    let saved = store.load_vouchers()?;
    for v in saved.iter() {
        book.channels.entry(v.channel_id).or_default().best = Some(v.clone());
    }
    let payees: Vec<String> = book.policy.payees.iter().map(|a| a.to_string()).collect();
    tracing::info!(target: "bttd::channel", payees = ?payees, margin = %book.policy.margin, min_claim = %book.policy.min_claim, state_dir = %config.state_dir.display(), reloaded = saved.len(), "watchtower starting");
    let next_block = match store.cursor() {
        Some(c) => c,
        None => node.block_number().await?,
    };
    let tower = Arc::new(Tower {
        node,
        signer,
        book: Mutex::new(book),
        store,
        head: parking_lot::Mutex::new(None),
    });
    let _server = match config.listen {
        Some(addr) => {
            let server_config = jsonrpsee::server::ServerConfig::builder()
                .max_request_body_size(MAX_REQUEST_BYTES)
                .max_response_body_size(MAX_RESPONSE_BYTES)
                .max_connections(64)
                .set_batch_request_config(jsonrpsee::server::BatchRequestConfig::Limit(100))
                .build();
            let server = jsonrpsee::server::Server::builder()
                .set_config(server_config)
                .build(addr)
                .await
                .map_err(|e| eyre::eyre!("cannot listen on {addr}: {e}"))?;
            let local = server.local_addr()?;
            let handle = server.start(Api(tower.clone()).into_rpc());
            tracing::info!(target: "bttd::channel", %local, "watchtower JSON-RPC listening");
            println!("WATCH URL: http://{local}");
            Some(handle)
        }
        None => None,
    };
    let mut source = config
        .vouchers
        .as_deref()
        .map(|p| (Source::from_arg(p), Seen::new()));
    let mut st = Loop {
        next_block,
        inflight: None,
        missed: HashSet::new(),
        closing: HashSet::new(),
        low_balance_warned: false,
        retry: Vec::new(),
    };
    tracing::info!(target: "bttd::channel", from_block = next_block, poll = ?config.poll, "watching for close requests");
    let mut tick = tokio::time::interval(config.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => {
                tracing::info!(target: "bttd::channel", "interrupted");
                return Ok(());
            }
        }
        if let Err(e) = tower.round(&mut st, source.as_mut()).await {
            tracing::warn!(target: "bttd::channel", %e, "round failed; retrying");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory source yields the lines of its *.json / *.jsonl files, once, and a file
    /// again (whole) only after it changed.
    #[test]
    fn directory_source_rereads_only_changed_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.jsonl"), "a1\na2\n").unwrap();
        std::fs::write(dir.path().join("b.json"), "b1\n").unwrap();
        std::fs::write(dir.path().join("c.txt"), "ignored\n").unwrap();
        let mut source = Source::Path(dir.path().to_owned());
        let mut seen = Seen::new();
        let lines: Vec<String> = read_lines(&mut source, &mut seen)
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        assert_eq!(lines, ["a1", "a2", "b1"]);
        assert!(read_lines(&mut source, &mut seen).is_empty());
        std::fs::write(dir.path().join("a.jsonl"), "a1\na2\na3\n").unwrap();
        let again: Vec<String> = read_lines(&mut source, &mut seen)
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        assert_eq!(again, ["a1", "a2", "a3"]);
        let mut file = Source::Path(dir.path().join("b.json"));
        assert_eq!(read_lines(&mut file, &mut Seen::new()).len(), 1);
        let mut missing = Source::Path(dir.path().join("nope.jsonl"));
        assert!(read_lines(&mut missing, &mut Seen::new()).is_empty());
    }

    fn log_at(block: u64) -> Log {
        Log {
            block_number: Some(block),
            ..Default::default()
        }
    }

    /// A node that refuses more than 3 logs or 8 blocks per query: the split asks again for
    /// halves until every piece passes, and returns every log once, in block order.
    #[tokio::test]
    async fn refused_ranges_are_halved_until_they_pass() {
        let blocks_with_logs: Vec<u64> = vec![1, 2, 2, 3, 5, 8, 13, 13, 21, 30, 31, 31];
        let mut calls = 0;
        let logs = logs_split(0, 40, |a, b| {
            calls += 1;
            let hits: Vec<Log> = blocks_with_logs
                .iter()
                .filter(|&&n| (a..=b).contains(&n))
                .map(|&n| log_at(n))
                .collect();
            async move {
                if b - a + 1 > 8 {
                    Err(LogsError::TooLarge("block range too large".into()))
                } else if hits.len() > 3 {
                    Err(LogsError::TooLarge("more than 3 results".into()))
                } else {
                    Ok(hits)
                }
            }
        })
        .await
        .unwrap();
        let got: Vec<u64> = logs.iter().map(|l| l.block_number.unwrap()).collect();
        assert_eq!(got, blocks_with_logs);
        assert!(calls > 5, "{calls}");
        // A single block with too many logs cannot be split: an error, not a loop.
        let err = logs_split(7, 7, |_, _| async {
            Err::<Vec<Log>, _>(LogsError::TooLarge("more than 10000".into()))
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("block 7 alone"), "{err}");
        // Other errors stop the read.
        assert!(
            logs_split(0, 100, |_, _| async {
                Err::<Vec<Log>, _>(LogsError::Other(eyre::eyre!("down")))
            })
            .await
            .is_err()
        );
    }

    #[test]
    fn answers_serialize_as_documented() {
        let a = Answer {
            accepted: false,
            reason: Some("x".into()),
            best: U256::from(255),
        };
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::json!({"accepted": false, "reason": "x", "best": "0xff"})
        );
        let ok = Answer {
            accepted: true,
            reason: None,
            best: U256::from(1),
        };
        assert_eq!(
            serde_json::to_value(&ok).unwrap(),
            serde_json::json!({"accepted": true, "best": "0x1"})
        );
    }
}
