//! Transaction gossip on a task of its own, so that admitting a flood of transactions never
//! delays the consensus engine (which had done it on its own task).
//!
//! Why it looks like this:
//! - **Batches both ways** ([`batch`]): transactions that newly entered this node's pool (from
//!   RPC or from a peer) are published in batches every [`FLUSH_INTERVAL`] or when a batch is
//!   full; a peer's batch is admitted in one blocking job (signature recovery is CPU work, off
//!   the async workers).
//! - **Each node re-publishes what it admitted; gossipsub forwards nothing.** A batch is
//!   reported `Ignore` when every transaction in it is acceptable or merely stale (known,
//!   underpriced, nonce too low), and `Reject` when one is invalid whatever the state
//!   (undecodable, bad signature, another chain, a cost that overflows, a sender that cannot
//!   pay): an honest node publishes only what its pool accepted. Forwarding batches as
//!   gossipsub would re-send transactions the pool refused; re-publishing sends each
//!   transaction once per admitting node.
//! - **Per-peer rate limits** ([`rate`]): a peer over its rate has its batches dropped unread.
//! - Transactions the pool already holds are skipped before their signature is recovered.

pub mod batch;
pub mod rate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{B256, keccak256};
use bttd_network::{MessageAcceptance, MessageId, NetworkEvent, NetworkHandle, PeerId, Topic};
use tokio::sync::{broadcast, mpsc, watch};

use crate::context::{NodeContext, SubmitError};
use batch::{MAX_BATCH_TXS, decode_batch, encode_batch};
use rate::PeerRates;

/// How long a newly pooled transaction waits for others to share its batch.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// Received batches admitted in one blocking job, at most.
const ADMIT_AT_ONCE: usize = 64;

/// A peer's batch: who sent it and what it holds.
struct Received {
    from: PeerId,
    message_id: MessageId,
    data: Vec<u8>,
}

/// The verdict on one batch, with the reason when it is the sender's fault.
enum Verdict {
    Ignore,
    Reject(String),
}

/// The transaction gossip task (see the module docs).
pub struct TxGossip {
    inbound: Inbound,
    outbound: Outbound,
}

/// Peers' batches: rate limits and admission.
struct Inbound {
    ctx: Arc<NodeContext>,
    /// A handle of the network's transaction lane.
    net: NetworkHandle,
    rates: PeerRates,
}

/// This node's newly pooled transactions, published in batches.
struct Outbound {
    ctx: Arc<NodeContext>,
    net: NetworkHandle,
    /// Largest batch to publish, in bytes (the network's message limit).
    max_batch_bytes: usize,
    /// Hashes pooled since the last publish.
    outgoing: Vec<B256>,
}

impl TxGossip {
    /// `net` should be a [`NetworkHandle::for_transactions`] handle; `max_batch_bytes` the
    /// network's message limit.
    pub fn new(ctx: Arc<NodeContext>, net: NetworkHandle, max_batch_bytes: usize) -> Self {
        Self {
            inbound: Inbound {
                ctx: ctx.clone(),
                net: net.clone(),
                rates: PeerRates::default(),
            },
            outbound: Outbound {
                ctx,
                net,
                max_batch_bytes,
                outgoing: Vec::new(),
            },
        }
    }

    /// Runs until `shutdown` turns true or the network's transaction queue closes. Inbound
    /// and outbound run as two loops polled together by this one task, so that publishing never waits for
    /// an admission job: the pooled-hash channel is bounded, and a publisher stalled behind
    /// admission had let it overflow, so transactions this node accepted never reached its
    /// peers (261,311 of them in one overload run).
    pub async fn run(self, events: mpsc::Receiver<NetworkEvent>, shutdown: watch::Receiver<bool>) {
        let Self { inbound, outbound } = self;
        tokio::select! {
            () = inbound.run(events, shutdown.clone()) => {}
            () = outbound.run(shutdown) => {}
        }
        tracing::info!(target: "bttd::txgossip", "transaction gossip stopped");
    }
}

impl Outbound {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut pooled = self.ctx.pending_txs.subscribe();
        let mut flush = tokio::time::interval(FLUSH_INTERVAL);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                hash = pooled.recv() => match hash {
                    Ok(hash) => {
                        self.outgoing.push(hash);
                        if self.outgoing.len() >= MAX_BATCH_TXS {
                            self.publish().await;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(target: "bttd::txgossip", missed, "pooled transactions not gossiped: the task fell behind");
                        metrics::counter!("bttd_txgossip_missed_total").increment(missed);
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = flush.tick() => self.publish().await,
            }
        }
    }

    /// Publishes the transactions pooled since the last publish, in batches of at most
    /// [`MAX_BATCH_TXS`] transactions and `max_batch_bytes` bytes.
    async fn publish(&mut self) {
        if self.outgoing.is_empty() {
            return;
        }
        let hashes = std::mem::take(&mut self.outgoing);
        let raws: Vec<Vec<u8>> = {
            let pool = self.ctx.pool.lock();
            hashes
                .iter()
                .filter_map(|hash| pool.get(hash))
                .map(|tx| tx.envelope().encoded_2718())
                .collect()
        };
        for batch in split_batches(&raws, self.max_batch_bytes) {
            let count = batch.len();
            let data = encode_batch(batch.iter().map(|tx| tx.as_slice()));
            match self.net.publish(Topic::Transactions, data).await {
                Ok(_) => metrics::counter!("bttd_txgossip_published_total").increment(count as u64),
                Err(e) => {
                    tracing::debug!(target: "bttd::txgossip", error = %e, count, "transaction batch not published")
                }
            }
        }
    }
}

impl Inbound {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<NetworkEvent>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut prune = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                event = events.recv() => {
                    let Some(event) = event else { break };
                    let mut received = Vec::new();
                    self.take(event, &mut received);
                    while received.len() < ADMIT_AT_ONCE {
                        match events.try_recv() {
                            Ok(event) => self.take(event, &mut received),
                            Err(_) => break,
                        }
                    }
                    self.admit(received).await;
                }
                _ = prune.tick() => self.rates.prune(Instant::now()),
            }
        }
    }

    /// Keeps a transaction batch within its sender's rate; anything else on this queue is not
    /// ours and is ignored.
    fn take(&mut self, event: NetworkEvent, received: &mut Vec<Received>) {
        let NetworkEvent::Gossip {
            topic: Topic::Transactions,
            from,
            message_id,
            data,
            ..
        } = event
        else {
            return;
        };
        // Counting the items needs no allocation beyond the slices; an undecodable batch is
        // admitted (and rejected) below.
        let count = decode_batch(&data).map_or(1, |txs| txs.len());
        if !self.rates.admit(from, count, Instant::now()) {
            metrics::counter!("bttd_txgossip_over_rate_total").increment(1);
            self.report(message_id, from, MessageAcceptance::Ignore);
            return;
        }
        received.push(Received {
            from,
            message_id,
            data,
        });
    }

    async fn admit(&mut self, received: Vec<Received>) {
        if received.is_empty() {
            return;
        }
        let ctx = self.ctx.clone();
        let judged = tokio::task::spawn_blocking(move || {
            received
                .into_iter()
                .map(|r| {
                    let verdict = admit_batch(&ctx, &r.data);
                    (r.from, r.message_id, verdict)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let judged = match judged {
            Ok(judged) => judged,
            // A panic in admission is a bug of ours: the batches are dropped, nobody blamed.
            Err(e) => {
                tracing::error!(target: "bttd::txgossip", error = %e, "admitting gossiped transactions failed");
                return;
            }
        };
        for (from, message_id, verdict) in judged {
            let acceptance = match verdict {
                Verdict::Ignore => MessageAcceptance::Ignore,
                Verdict::Reject(reason) => {
                    tracing::debug!(target: "bttd::txgossip", %from, %reason, "invalid transaction batch");
                    metrics::counter!("bttd_txgossip_rejected_total").increment(1);
                    MessageAcceptance::Reject
                }
            };
            self.report(message_id, from, acceptance);
        }
    }

    /// Reports without waiting: the swarm task takes reports in order, and this task must not
    /// stall on a full lane while batches queue up behind it.
    fn report(&self, message_id: MessageId, from: PeerId, acceptance: MessageAcceptance) {
        let net = self.net.clone();
        tokio::spawn(async move {
            let _ = net.report(message_id, from, acceptance).await;
        });
    }
}

/// Admits the transactions of one peer batch into the pool and judges the batch.
fn admit_batch(ctx: &NodeContext, data: &[u8]) -> Verdict {
    let txs = match decode_batch(data) {
        Ok(txs) => txs,
        Err(e) => return Verdict::Reject(e.to_string()),
    };
    let mut verdict = Verdict::Ignore;
    for raw in txs {
        if ctx.pool.lock().contains(&keccak256(raw)) {
            continue;
        }
        match ctx.submit_raw(raw) {
            Ok(_) | Err(SubmitError::Pool(_)) => {}
            Err(SubmitError::Invalid(e)) => {
                // The rest of the batch is still admitted: its valid transactions are not the
                // liar's to censor.
                if matches!(verdict, Verdict::Ignore) {
                    verdict = Verdict::Reject(e.to_string());
                }
            }
        }
    }
    verdict
}

/// Splits `raws` into runs of at most [`MAX_BATCH_TXS`] transactions whose batch stays within
/// `max_bytes` (a transaction larger than that alone is still sent alone: the block rule caps
/// transactions at 128 KiB, far below any message limit).
fn split_batches(raws: &[Vec<u8>], max_bytes: usize) -> Vec<&[Vec<u8>]> {
    // Version byte and list header: at most 10 bytes; each item adds at most 9 of header.
    const BATCH_OVERHEAD: usize = 10;
    const ITEM_OVERHEAD: usize = 9;
    let mut batches = Vec::new();
    let mut start = 0;
    let mut bytes = BATCH_OVERHEAD;
    for (i, raw) in raws.iter().enumerate() {
        let size = raw.len().saturating_add(ITEM_OVERHEAD);
        if i > start && (i - start == MAX_BATCH_TXS || bytes.saturating_add(size) > max_bytes) {
            batches.push(&raws[start..i]);
            start = i;
            bytes = BATCH_OVERHEAD;
        }
        bytes = bytes.saturating_add(size);
    }
    if start < raws.len() {
        batches.push(&raws[start..]);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keep_to_the_count_and_the_byte_limit() {
        let raws = vec![vec![0u8; 100]; 2500];
        let by_count = split_batches(&raws, usize::MAX);
        assert_eq!(
            by_count.iter().map(|b| b.len()).collect::<Vec<_>>(),
            [MAX_BATCH_TXS, MAX_BATCH_TXS, 2500 - 2 * MAX_BATCH_TXS]
        );
        let by_bytes = split_batches(&raws, 1000);
        let (last, full) = by_bytes.split_last().unwrap();
        assert!(
            full.iter().all(|b| b.len() == 9),
            "10 + 9 * 109 <= 1000 < 10 + 10 * 109"
        );
        assert_eq!(last.len(), 2500 % 9);
        assert_eq!(by_bytes.iter().map(|b| b.len()).sum::<usize>(), 2500);
        for batch in by_bytes {
            assert!(encode_batch(batch.iter().map(Vec::as_slice)).len() <= 1000);
        }
        assert!(split_batches(&[], 1000).is_empty());
    }
}
