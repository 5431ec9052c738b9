//! `bttd channel watch`: the payee's guard. It keeps the best voucher of each channel paying
//! the payee (fed by JSON lines from a file, a directory of files it re-reads, or stdin) and
//! settles a channel's best voucher as soon as the payer asks to close it, inside the settle
//! window, so a payer cannot close away what it already signed.
//!
//! Each round (every `--poll-interval`): read new voucher lines into a [`PayeeBook`] (which
//! refuses anything the contract would not pay), fetch `CloseRequested` logs of the channels
//! contract since the last round, refresh the on-chain view of channels that changed, and
//! settle every channel whose close was requested while its best voucher is above what was
//! claimed. Transient RPC failures are logged and retried next round.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use alloy_primitives::{B256, U256};
use alloy_rpc_types_eth::Filter;
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::SolEvent;
use bttd_contracts::BANDWIDTH_CHANNELS_ADDRESS;
use bttd_contracts::channels::{
    ChannelStatus, ChannelsDomain, IBandwidthChannels, PayeeBook, Refusal, SignedVoucher,
};
use tokio::sync::mpsc;

use super::client::{Node, calldata};

/// Where vouchers come from.
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

/// The watcher's state between rounds.
struct Watcher {
    node: Node,
    signer: PrivateKeySigner,
    book: PayeeBook,
    /// Channels found not to pay us (or unknown): their vouchers are ignored.
    foreign: HashSet<B256>,
    /// First block whose `CloseRequested` logs are not read yet.
    next_block: u64,
    /// Lines read but not fed yet (kept across a failed round).
    pending: VecDeque<(String, String)>,
}

impl Watcher {
    /// Feeds one voucher line to the book (tracking its channel on first sight).
    async fn feed(&mut self, origin: &str, line: &str, now: u64) -> eyre::Result<()> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(());
        }
        let voucher: SignedVoucher = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(target: "bttd::channel", %origin, %e, "not a voucher line, skipped");
                return Ok(());
            }
        };
        let id = voucher.channel_id;
        if self.foreign.contains(&id) {
            return Ok(());
        }
        if self.book.channel(&id).is_none() {
            let info = self.node.channel(id).await?;
            if let Err(refusal) = self.book.track(id, info) {
                tracing::warn!(target: "bttd::channel", channel = %id, %refusal, "ignoring the channel's vouchers");
                self.foreign.insert(id);
                return Ok(());
            }
            tracing::info!(target: "bttd::channel", channel = %id, "watching channel");
        }
        let amount = voucher.cumulative_amount;
        match self.book.accept(voucher, now) {
            Ok(a) => {
                tracing::debug!(target: "bttd::channel", channel = %id, %amount, claimable = %a.claimable, "voucher kept")
            }
            // Re-read lines and superseded vouchers: nothing new.
            Err(Refusal::NotIncreasing { .. }) => {}
            Err(refusal) => {
                tracing::warn!(target: "bttd::channel", channel = %id, %amount, %refusal, "voucher refused")
            }
        }
        Ok(())
    }

    /// Channels whose close was requested since the last round.
    async fn close_requests(&mut self) -> eyre::Result<Vec<(B256, u64)>> {
        let head = self.node.block_number().await?;
        if head < self.next_block {
            return Ok(Vec::new());
        }
        let filter = Filter::new()
            .address(BANDWIDTH_CHANNELS_ADDRESS)
            .event_signature(IBandwidthChannels::CloseRequested::SIGNATURE_HASH)
            .from_block(self.next_block)
            .to_block(head);
        let logs = self.node.logs(&filter).await?;
        self.next_block = head + 1;
        let mut out = Vec::new();
        for log in logs {
            if let Ok(ev) = IBandwidthChannels::CloseRequested::decode_log_data(log.data()) {
                out.push((ev.channelId, ev.closesAt));
            }
        }
        Ok(out)
    }

    async fn refresh(&mut self, id: B256) -> eyre::Result<()> {
        let info = self.node.channel(id).await?;
        if self.book.track(id, info).is_err() {
            self.book.untrack(&id);
        }
        Ok(())
    }

    /// Settles the best voucher of every closing channel that has something to claim.
    async fn settle_closing(&mut self, now: u64) -> eyre::Result<()> {
        let due: Vec<SignedVoucher> = self
            .book
            .unsettled()
            .filter(|v| {
                self.book
                    .channel(&v.channel_id)
                    .is_some_and(|c| c.status(now) == ChannelStatus::Closing)
            })
            .cloned()
            .collect();
        for v in due {
            let id = v.channel_id;
            let claimable = self.book.claimable(&id);
            let closes_at = self.book.channel(&id).map(|c| c.closes_at).unwrap_or(0);
            tracing::info!(target: "bttd::channel", channel = %id, amount = %v.cumulative_amount, %claimable, closes_at, now, "close requested: settling the best voucher");
            let call = IBandwidthChannels::settleCall {
                channelId: id,
                cumulativeAmount: v.cumulative_amount,
                signature: v.signature.clone(),
            };
            match self
                .node
                .send(
                    &self.signer,
                    BANDWIDTH_CHANNELS_ADDRESS,
                    U256::ZERO,
                    calldata(call),
                )
                .await
            {
                Ok(r) => {
                    tracing::info!(target: "bttd::channel", channel = %id, paid = %claimable, tx = %r.transaction_hash, gas_used = r.gas_used, "settled")
                }
                Err(e) => {
                    tracing::warn!(target: "bttd::channel", channel = %id, %e, "settle failed; retrying next round")
                }
            }
            self.refresh(id).await?;
        }
        Ok(())
    }

    async fn round(&mut self, source: &mut Source, seen: &mut Seen) -> eyre::Result<()> {
        let now = self.node.head_timestamp().await?;
        self.pending.extend(read_lines(source, seen));
        while let Some((origin, line)) = self.pending.front().cloned() {
            self.feed(&origin, &line, now).await?;
            self.pending.pop_front();
        }
        for (id, closes_at) in self.close_requests().await? {
            if self.book.channel(&id).is_some() {
                tracing::info!(target: "bttd::channel", channel = %id, closes_at, "CloseRequested seen");
                self.refresh(id).await?;
            }
        }
        self.settle_closing(now).await
    }
}

/// Runs until interrupted (Ctrl-C).
pub async fn run(
    node: Node,
    signer: PrivateKeySigner,
    domain: ChannelsDomain,
    mut source: Source,
    poll: Duration,
) -> eyre::Result<()> {
    let payee = signer.address();
    let next_block = node.block_number().await?;
    let mut w = Watcher {
        node,
        signer,
        book: PayeeBook::new(payee, domain),
        foreign: HashSet::new(),
        next_block,
        pending: VecDeque::new(),
    };
    tracing::info!(target: "bttd::channel", %payee, from_block = next_block, poll = ?poll, "watching for close requests");
    let mut seen = Seen::new();
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => {
                tracing::info!(target: "bttd::channel", "interrupted");
                return Ok(());
            }
        }
        if let Err(e) = w.round(&mut source, &mut seen).await {
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
        // A single file works the same way; a missing one yields nothing.
        let mut file = Source::Path(dir.path().join("b.json"));
        assert_eq!(read_lines(&mut file, &mut Seen::new()).len(), 1);
        let mut missing = Source::Path(dir.path().join("nope.jsonl"));
        assert!(read_lines(&mut missing, &mut Seen::new()).is_empty());
    }
}
