//! Doppelganger protection: a validator that starts watches for messages signed with its own
//! key before it signs anything.
//!
//! Why: two running instances of one validator key (a failover that did not fail the old
//! machine over, a copied home directory, a restored backup) each keep their own
//! slashing-protection record, so neither record stops the pair from signing conflicting
//! votes, which is equivocation: evidence, slashing, and with enough such pairs a fork. The
//! record can only protect one process; the network is what shows another one. So a starting
//! validator first follows the chain as an observer (it verifies everything and signs nothing)
//! and looks at what it accepts: a proposal or vote with a valid signature by our own index in
//! that height's set, at a `(height, round)` above the latest one our record says we signed in,
//! cannot be one of ours (the record is saved durably before every signature leaves the
//! process), so another instance holds this key. The engine then stops with
//! [`crate::EngineFault::Doppelganger`] without having signed anything. Our own earlier
//! messages, which peers keep relaying after we restart, are at or below the record and never
//! count.
//!
//! The watch ends, and the validator starts signing without a restart, after
//! [`DoppelgangerWatch::heights`] heights decided from votes this node received (a twin
//! that is running votes in them, and its votes are re-sent every second), or after
//! [`DoppelgangerWatch::quiet`] without any decided height (a whole network restarting at
//! once decides nothing until its validators sign; a twin would still be seen in that time,
//! as it re-sends its votes every second). Heights decided through block sync do not count
//! (they show no votes) but do reset the quiet clock, as does the first peer connection (before
//! it nothing can be seen).
//!
//! The watch sees only what reaches this node: it lowers the risk, it is not a proof. A twin
//! in another partition, or one started later than this node, is not caught here (the
//! later-started one catches this one, if it runs the watch).

use std::time::Duration;

use bttd_consensus::{Height, Round, SignRecord};

/// Heights decided by votes, by default, before a watching validator starts signing.
pub const WATCH_HEIGHTS: u64 = 2;
/// How long, by default, a watching validator waits without any decided height (counted from
/// its start, its first peer, or the last decided height) before it starts signing.
pub const WATCH_QUIET: Duration = Duration::from_secs(10);

/// How long a starting validator watches for another instance of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoppelgangerWatch {
    /// Heights decided from received votes that end the watch ([`WATCH_HEIGHTS`]).
    pub heights: u64,
    /// Time without a decided height that ends the watch ([`WATCH_QUIET`]).
    pub quiet: Duration,
}

impl Default for DoppelgangerWatch {
    fn default() -> Self {
        Self {
            heights: WATCH_HEIGHTS,
            quiet: WATCH_QUIET,
        }
    }
}

/// A signed message by our key, seen by the watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting {
    pub height: Height,
    pub round: Round,
    /// `proposal`, `prevote`, `precommit` or `commit certificate`.
    pub kind: &'static str,
}

/// The watch of one start: what it has seen and when it ends.
#[derive(Debug)]
pub struct Watch {
    config: DoppelgangerWatch,
    /// The latest `(height, round)` our record says we signed in.
    signed_up_to: Option<(Height, Round)>,
    /// Heights decided from votes since the start.
    decided: u64,
    /// When the quiet period started: the start, the first peer, or the last decided height.
    quiet_since: Duration,
    saw_peer: bool,
}

impl Watch {
    /// A watch starting `now`, for a validator whose slashing-protection record is `record`.
    pub fn new(config: DoppelgangerWatch, record: &SignRecord, now: Duration) -> Self {
        Self {
            config,
            signed_up_to: record.latest.map(|l| (l.height, l.round)),
            decided: 0,
            quiet_since: now,
            saw_peer: false,
        }
    }

    /// A message signed by our key (its signature checked) at `(height, round)`: a sighting of
    /// another instance unless our record covers it.
    pub fn check(&self, height: Height, round: Round, kind: &'static str) -> Option<Sighting> {
        let ours = self
            .signed_up_to
            .is_some_and(|signed| (height, round) <= signed);
        (!ours).then_some(Sighting {
            height,
            round,
            kind,
        })
    }

    /// A height was decided; `by_votes` unless it came from block sync.
    pub fn decided(&mut self, by_votes: bool, now: Duration) {
        self.decided += u64::from(by_votes);
        self.quiet_since = self.quiet_since.max(now);
    }

    /// A peer connected: the first one restarts the quiet clock.
    pub fn peer_connected(&mut self, now: Duration) {
        if !self.saw_peer {
            self.saw_peer = true;
            self.quiet_since = self.quiet_since.max(now);
        }
    }

    /// Whether the watch is over at `now`.
    pub fn over(&self, now: Duration) -> bool {
        self.decided >= self.config.heights
            || now.saturating_sub(self.quiet_since) >= self.config.quiet
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bttd_consensus::guard::RoundRecord;

    fn record(height: Height, round: Round) -> SignRecord {
        SignRecord {
            latest: Some(RoundRecord {
                height,
                round,
                ..Default::default()
            }),
            lock: None,
        }
    }

    #[test]
    fn only_messages_above_the_record_are_sightings() {
        let w = Watch::new(DoppelgangerWatch::default(), &record(5, 2), Duration::ZERO);
        assert_eq!(w.check(5, 2, "prevote"), None);
        assert_eq!(w.check(4, 9, "precommit"), None);
        assert!(w.check(5, 3, "prevote").is_some());
        assert!(w.check(6, 0, "proposal").is_some());
        let fresh = Watch::new(
            DoppelgangerWatch::default(),
            &SignRecord::default(),
            Duration::ZERO,
        );
        assert!(fresh.check(1, 0, "prevote").is_some());
    }

    #[test]
    fn ends_after_heights_by_votes_or_a_quiet_period() {
        let s = Duration::from_secs;
        let mut w = Watch::new(DoppelgangerWatch::default(), &record(1, 0), s(0));
        w.peer_connected(s(3));
        assert!(!w.over(s(12)), "the first peer restarts the quiet clock");
        w.peer_connected(s(8));
        assert!(w.over(s(13)), "only the first peer does");
        let mut w = Watch::new(DoppelgangerWatch::default(), &record(1, 0), s(0));
        w.decided(false, s(9));
        w.decided(true, s(10));
        assert!(
            !w.over(s(18)),
            "synced heights do not count, but reset the quiet clock"
        );
        w.decided(true, s(11));
        assert!(w.over(s(11)));
    }
}
