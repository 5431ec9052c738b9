//! Block sync, both sides. Serving: answers a peer's status and block-range requests from
//! the chain, each block with the certificate that finalised it, within a per-peer rate and
//! a cap on answers in flight ([`ServeLimiter`]). Requesting: which peer to ask
//! ([`SyncPeers`]: rotation away from peers that gave nothing); the engine feeds every received
//! block to the consensus machine as a `Commit`, so the certificate is verified (one aggregate
//! check) before anything is executed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bttd_consensus::{CommitCertificate, Height};
use bttd_runtime::WireBlock;
use libp2p::PeerId;
use rand::seq::IndexedRandom;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::wire::{self, CertifiedBlock, SyncRequest, SyncResponse};
use bttd_txpool::context::NodeContext;

/// Room left in a response for framing besides the blocks.
const RESPONSE_OVERHEAD: usize = 4 * 1024;
/// Most blocks in one answer, whatever the request asks (what a peer accepts in one).
const MAX_BLOCKS_PER_ANSWER: u32 = wire::MAX_BLOCKS_PER_RESPONSE as u32;
/// Sync answers being prepared at once, for all peers together (each reads RocksDB on a
/// blocking thread).
pub const MAX_ANSWERS_IN_FLIGHT: usize = 8;
/// Requests one peer may make per second, sustained.
pub const REQUESTS_PER_SECOND: f64 = 10.0;
/// Requests one peer may make in a burst.
pub const REQUEST_BURST: f64 = 20.0;
/// How long a peer that gave us nothing is asked only when no other peer is left.
const NO_PROGRESS_PAUSE: Duration = Duration::from_secs(10);

/// Why a sync request was not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("rate limited: at most {REQUESTS_PER_SECOND} sync requests per second")]
    RateLimited,
    #[error("busy: {MAX_ANSWERS_IN_FLIGHT} sync answers in flight")]
    Busy,
}

/// The serving side's limits: a token bucket per peer and a global cap on answers in flight.
#[derive(Debug)]
pub struct ServeLimiter {
    buckets: HashMap<PeerId, (f64, Instant)>,
    in_flight: Arc<Semaphore>,
}

impl Default for ServeLimiter {
    fn default() -> Self {
        Self {
            buckets: HashMap::new(),
            in_flight: Arc::new(Semaphore::new(MAX_ANSWERS_IN_FLIGHT)),
        }
    }
}

impl ServeLimiter {
    /// A permit to answer `peer` now (held until the answer is sent), or why not.
    pub fn admit(&mut self, peer: PeerId, now: Instant) -> Result<OwnedSemaphorePermit, Refusal> {
        let (tokens, last) = self.buckets.entry(peer).or_insert((REQUEST_BURST, now));
        let refilled =
            *tokens + now.saturating_duration_since(*last).as_secs_f64() * REQUESTS_PER_SECOND;
        *tokens = refilled.min(REQUEST_BURST);
        *last = now;
        if *tokens < 1.0 {
            return Err(Refusal::RateLimited);
        }
        let permit = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Busy)?;
        *tokens -= 1.0;
        Ok(permit)
    }

    /// Drops a disconnected peer's bucket (bounds the map by the connected peers).
    pub fn forget(&mut self, peer: &PeerId) {
        self.buckets.remove(peer);
    }
}

/// The requesting side's choice of peer: the hinted peer (the one that showed us a higher
/// height) unless it gave us nothing lately, otherwise a random other connected peer, so a
/// peer that answers nothing or garbage cannot keep us waiting on it.
#[derive(Debug, Default)]
pub struct SyncPeers {
    paused: HashMap<PeerId, Instant>,
}

impl SyncPeers {
    /// The peer to ask next, among `connected`.
    pub fn choose(
        &mut self,
        hint: Option<PeerId>,
        connected: &[PeerId],
        now: Instant,
    ) -> Option<PeerId> {
        self.paused.retain(|_, until| *until > now);
        let usable = |p: &PeerId| !self.paused.contains_key(p);
        if let Some(peer) = hint.filter(|p| usable(p) && connected.contains(p)) {
            return Some(peer);
        }
        let fresh: Vec<PeerId> = connected.iter().copied().filter(usable).collect();
        fresh
            .choose(&mut rand::rng())
            .or_else(|| connected.choose(&mut rand::rng()))
            .copied()
    }

    /// `peer` answered without moving us forward: ask others first for a while.
    pub fn no_progress(&mut self, peer: PeerId, now: Instant) {
        self.paused.insert(peer, now + NO_PROGRESS_PAUSE);
    }
}

/// The answer to one request (never an error on the transport: problems are `Error`).
pub fn answer(ctx: &NodeContext, request: &[u8], max_bytes: usize) -> SyncResponse {
    match SyncRequest::decode(request) {
        Ok(SyncRequest::Status) => {
            let head = ctx.chain.head();
            SyncResponse::Status {
                head: head.number,
                head_hash: head.hash(),
                certificate: stored_certificate(ctx, head.number),
            }
        }
        Ok(SyncRequest::Blocks { from, max }) => match blocks(ctx, from, max, max_bytes) {
            Ok(blocks) => SyncResponse::Blocks(blocks),
            Err(e) => SyncResponse::Error(e),
        },
        Err(e) => SyncResponse::Error(format!("undecodable sync request: {e}")),
    }
}

/// The certificate that finalised block `number`, if this node stored one (blocks committed
/// without consensus, genesis included, have none).
pub fn stored_certificate(ctx: &NodeContext, number: Height) -> Option<CommitCertificate> {
    ctx.chain
        .certificate(number)
        .ok()
        .flatten()
        .and_then(|bytes| wire::store::decode_certificate(&bytes).ok())
}

fn blocks(
    ctx: &NodeContext,
    from: Height,
    max: u32,
    max_bytes: usize,
) -> Result<Vec<CertifiedBlock>, String> {
    let head = ctx.chain.head().number;
    let budget = max_bytes.saturating_sub(RESPONSE_OVERHEAD);
    let mut used = 0usize;
    let mut out = Vec::new();
    let Some(range) = block_range(from, max, head) else {
        return Ok(out);
    };
    for number in range {
        let Some(hash) = ctx.chain.block_hash(number).map_err(|e| e.to_string())? else {
            break;
        };
        let Some(block) = ctx.chain.block(hash).map_err(|e| e.to_string())? else {
            break;
        };
        let Some(cert) = ctx.chain.certificate(number).map_err(|e| e.to_string())? else {
            // Committed without consensus (never on a validator chain): nothing to prove it.
            break;
        };
        let certificate = wire::store::decode_certificate(&cert).map_err(|e| e.to_string())?;
        let bytes = WireBlock::encode(&block);
        used = used.saturating_add(bytes.len() + cert.len());
        if used > budget && !out.is_empty() {
            break;
        }
        out.push(CertifiedBlock {
            block: bytes.into(),
            certificate,
        });
    }
    Ok(out)
}

/// The heights a request `{from, max}` gets on a chain whose head is `head`: at most
/// [`MAX_BLOCKS_PER_ANSWER`], never height 0, `None` when there are none. Every number is a
/// peer's, so the arithmetic is checked (or saturating where the head bounds it anyway).
fn block_range(from: Height, max: u32, head: Height) -> Option<std::ops::RangeInclusive<Height>> {
    let first = from.max(1);
    let count = u64::from(max.min(MAX_BLOCKS_PER_ANSWER));
    let last = first.saturating_add(count.checked_sub(1)?).min(head);
    (first <= last).then_some(first..=last)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fault 6: `{from: 0, max: 0}` underflowed `from + max - 1` and panicked the serving
    /// task (overflow checks are on in release); absurd numbers must give an empty answer.
    #[test]
    fn block_range_survives_any_request() {
        assert_eq!(block_range(0, 0, 10), None);
        assert_eq!(block_range(5, 0, 10), None);
        assert_eq!(block_range(0, 1, 10), Some(1..=1));
        assert_eq!(block_range(u64::MAX, u32::MAX, 10), None);
        assert_eq!(
            block_range(u64::MAX - 1, 5, u64::MAX),
            Some(u64::MAX - 1..=u64::MAX)
        );
        assert_eq!(block_range(3, u32::MAX, 1_000), Some(3..=258));
        assert_eq!(block_range(11, 4, 10), None);
    }

    #[test]
    fn serving_is_rate_limited_per_peer_and_capped_in_flight() {
        let mut limiter = ServeLimiter::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        let mut held = Vec::new();
        for _ in 0..MAX_ANSWERS_IN_FLIGHT {
            held.push(limiter.admit(a, t0).expect("within burst and cap"));
        }
        assert_eq!(limiter.admit(b, t0).unwrap_err(), Refusal::Busy);
        held.clear();
        let mut served = MAX_ANSWERS_IN_FLIGHT;
        while limiter.admit(a, t0).is_ok() {
            served += 1;
        }
        assert_eq!(served, REQUEST_BURST as usize);
        assert_eq!(limiter.admit(a, t0).unwrap_err(), Refusal::RateLimited);
        assert!(
            limiter.admit(b, t0).is_ok(),
            "another peer has its own bucket"
        );
        assert!(
            limiter.admit(a, t0 + Duration::from_millis(150)).is_ok(),
            "refilled"
        );
    }

    #[test]
    fn a_peer_that_gave_nothing_is_passed_over_while_others_remain() {
        let mut peers = SyncPeers::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        assert_eq!(peers.choose(Some(a), &[a, b], t0), Some(a));
        peers.no_progress(a, t0);
        for _ in 0..20 {
            assert_eq!(peers.choose(Some(a), &[a, b], t0), Some(b));
        }
        assert_eq!(
            peers.choose(Some(a), &[a], t0),
            Some(a),
            "the only peer left"
        );
        assert_eq!(
            peers.choose(Some(a), &[a, b], t0 + NO_PROGRESS_PAUSE * 2),
            Some(a)
        );
        assert_eq!(peers.choose(None, &[], t0), None);
    }
}
