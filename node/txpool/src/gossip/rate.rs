//! Per-peer rate limit of gossiped transactions: a token bucket per peer, so that one peer
//! cannot spend this node's CPU on signature recovery faster than honest traffic needs.
//! A peer over its rate is not blamed (an honest node relays bursts of its clients); its
//! batches are dropped unread until its bucket refills.

use std::collections::HashMap;
use std::time::Instant;

use bttd_network::PeerId;

/// Transactions a second a peer may send us, sustained.
pub const PEER_TX_RATE: f64 = 10_000.0;
/// Transactions a peer may send in one burst.
pub const PEER_TX_BURST: f64 = 20_000.0;
/// Buckets of peers silent this long are forgotten (they refill to the burst anyway).
const IDLE_SECONDS: f64 = 60.0;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug, Default)]
pub struct PeerRates {
    buckets: HashMap<PeerId, Bucket>,
}

impl PeerRates {
    /// Takes `count` transactions from `peer`'s bucket; false (and nothing taken) when the
    /// bucket does not hold them.
    pub fn admit(&mut self, peer: PeerId, count: usize, now: Instant) -> bool {
        let bucket = self.buckets.entry(peer).or_insert(Bucket {
            tokens: PEER_TX_BURST,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * PEER_TX_RATE).min(PEER_TX_BURST);
        bucket.at = now;
        let count = count as f64;
        if bucket.tokens < count {
            return false;
        }
        bucket.tokens -= count;
        true
    }

    /// Forgets peers silent for a minute, so the map holds only recent senders.
    pub fn prune(&mut self, now: Instant) {
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.at).as_secs_f64() < IDLE_SECONDS);
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_peer_gets_its_burst_then_its_rate() {
        let mut rates = PeerRates::default();
        let (peer, other) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        assert!(rates.admit(peer, PEER_TX_BURST as usize, t0));
        assert!(!rates.admit(peer, 1, t0), "the burst is spent");
        assert!(rates.admit(other, 1, t0), "another peer has its own bucket");
        let later = t0 + Duration::from_millis(100);
        assert!(rates.admit(peer, (PEER_TX_RATE / 10.0) as usize, later));
        assert!(!rates.admit(peer, 1, later));
        rates.prune(t0 + Duration::from_secs(61));
        assert!(rates.is_empty());
    }
}
