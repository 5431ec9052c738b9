//! Block sync, both sides. Serving: answers a peer's status and block-range requests from
//! the chain, each block with the certificate that finalised it, within a per-peer rate and
//! a cap on answers in flight ([`ServeLimiter`]). Requesting: which peer to ask
//! ([`SyncPeers`]: rotation away from peers that gave nothing); the engine feeds every received
//! block to the consensus machine as a `Commit`, so the certificate is verified (one aggregate
//! check) before anything is executed.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bttd_consensus::Height;
use rand::Rng;
use rand::seq::IndexedRandom;

use crate::host::Application;
use crate::wire::{self, SyncRequest, SyncResponse};

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
pub struct ServeLimiter<P> {
    buckets: HashMap<P, (f64, Duration)>,
    in_flight: Arc<AtomicUsize>,
}

impl<P> Default for ServeLimiter<P> {
    fn default() -> Self {
        Self {
            buckets: HashMap::new(),
            in_flight: Arc::default(),
        }
    }
}

/// One answer in flight: counted until dropped (after the answer is sent).
#[derive(Debug)]
pub struct ServePermit(Arc<AtomicUsize>);

impl Drop for ServePermit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<P: Hash + Eq> ServeLimiter<P> {
    /// A permit to answer `peer` now (held until the answer is sent), or why not. `now` is
    /// the engine's monotonic clock.
    pub fn admit(&mut self, peer: P, now: Duration) -> Result<ServePermit, Refusal> {
        let (tokens, last) = self.buckets.entry(peer).or_insert((REQUEST_BURST, now));
        let refilled = *tokens + now.saturating_sub(*last).as_secs_f64() * REQUESTS_PER_SECOND;
        *tokens = refilled.min(REQUEST_BURST);
        *last = now;
        if *tokens < 1.0 {
            return Err(Refusal::RateLimited);
        }
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_ANSWERS_IN_FLIGHT).then_some(n + 1)
            })
            .map_err(|_| Refusal::Busy)?;
        *tokens -= 1.0;
        Ok(ServePermit(self.in_flight.clone()))
    }

    /// Drops a disconnected peer's bucket (bounds the map by the connected peers).
    pub fn forget(&mut self, peer: &P) {
        self.buckets.remove(peer);
    }
}

/// The requesting side's choice of peer: the hinted peer (the one that showed us a higher
/// height) unless it gave us nothing lately, otherwise a random other connected peer, so a
/// peer that answers nothing or garbage cannot keep us waiting on it.
#[derive(Debug)]
pub struct SyncPeers<P> {
    paused: HashMap<P, Duration>,
}

impl<P> Default for SyncPeers<P> {
    fn default() -> Self {
        Self {
            paused: HashMap::new(),
        }
    }
}

impl<P: Hash + Eq + Copy> SyncPeers<P> {
    /// The peer to ask next, among `connected` (`now`: the engine's monotonic clock).
    pub fn choose(
        &mut self,
        hint: Option<P>,
        connected: &[P],
        now: Duration,
        rng: &mut impl Rng,
    ) -> Option<P> {
        self.paused.retain(|_, until| *until > now);
        let usable = |p: &P| !self.paused.contains_key(p);
        if let Some(peer) = hint.filter(|p| usable(p) && connected.contains(p)) {
            return Some(peer);
        }
        let fresh: Vec<P> = connected.iter().copied().filter(usable).collect();
        match fresh.choose(rng) {
            Some(peer) => Some(*peer),
            None => connected.choose(rng).copied(),
        }
    }

    /// `peer` answered without moving us forward: ask others first for a while.
    pub fn no_progress(&mut self, peer: P, now: Duration) {
        self.paused.insert(peer, now + NO_PROGRESS_PAUSE);
    }
}

/// The answer to a request about committed blocks (never an error on the transport: problems
/// are `Error`).
pub fn answer<A: Application>(app: &A, request: SyncRequest, max_bytes: usize) -> SyncResponse {
    match request {
        SyncRequest::Status => {
            let (head, head_hash) = app.head();
            SyncResponse::Status {
                head,
                head_hash,
                certificate: app.certificate(head),
            }
        }
        SyncRequest::Blocks { from, max } => {
            let (head, _) = app.head();
            let Some(range) = block_range(from, max, head) else {
                return SyncResponse::Blocks(Vec::new());
            };
            let count = (range.end() - range.start() + 1) as u32;
            let budget = max_bytes.saturating_sub(RESPONSE_OVERHEAD);
            match app.certified_blocks(*range.start(), count, budget) {
                Ok(blocks) => SyncResponse::Blocks(blocks),
                Err(e) => SyncResponse::Error(e.to_string()),
            }
        }
        // Answered by the engine from the proposals it holds, not from the chain.
        SyncRequest::ProposalBlock { id } => {
            SyncResponse::Error(format!("block {id} is not a committed block"))
        }
    }
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
    use rand::SeedableRng;

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
        let (a, b) = (1u8, 2u8);
        let t0 = Duration::from_secs(7);
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
        let rng = &mut rand::rngs::StdRng::seed_from_u64(7);
        let (a, b) = (1u8, 2u8);
        let t0 = Duration::from_secs(7);
        assert_eq!(peers.choose(Some(a), &[a, b], t0, rng), Some(a));
        peers.no_progress(a, t0);
        for _ in 0..20 {
            assert_eq!(peers.choose(Some(a), &[a, b], t0, rng), Some(b));
        }
        assert_eq!(
            peers.choose(Some(a), &[a], t0, rng),
            Some(a),
            "the only peer left"
        );
        assert_eq!(
            peers.choose(Some(a), &[a, b], t0 + NO_PROGRESS_PAUSE * 2, rng),
            Some(a)
        );
        assert_eq!(peers.choose(None, &[], t0, rng), None);
    }
}
