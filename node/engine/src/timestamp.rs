//! The voter's timestamp rule (docs/block-format.md) and the clock-skew warning.
//!
//! Timestamps are whole seconds and blocks may come several times a second, so a proposer
//! stamps `max(parent, now)` and a voter refuses a block stamped more than
//! [`MAX_FUTURE_SECONDS`] after its own clock. With a bound of one second, two validators
//! whose clocks differed by a little more than a second stopped agreeing and the chain
//! halted; five seconds holds with ordinary NTP (milliseconds of error) and with the
//! seconds of drift of a machine whose time sync stopped, while keeping block times honest.
//! Skew beyond [`SKEW_WARNING_SECONDS`] is logged loudly (once a minute) so the operator
//! fixes the clock long before it halts anything.

use std::sync::atomic::{AtomicU64, Ordering};

/// A block may be stamped at most this many seconds after the voter's clock.
pub const MAX_FUTURE_SECONDS: u64 = 5;
/// A block stamped further ahead than this points at a skewed clock (ours or the proposer's).
pub const SKEW_WARNING_SECONDS: u64 = 1;
/// Seconds between two skew warnings.
const WARNING_INTERVAL_SECONDS: u64 = 60;

/// A timestamp voters refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "timestamp {timestamp} is more than {MAX_FUTURE_SECONDS} s ahead of our clock {now}: the proposer's clock or ours is wrong"
)]
pub struct TooFarAhead {
    pub timestamp: u64,
    pub now: u64,
}

/// Checks a proposed block's timestamp against our clock (`now`, seconds); on success,
/// returns how many seconds it is ahead of it (0 when not ahead), and warns when that
/// suggests a skewed clock.
pub fn check(timestamp: u64, now: u64) -> Result<u64, TooFarAhead> {
    let ahead = timestamp.saturating_sub(now);
    metrics::gauge!("bttd_consensus_block_ahead_seconds").set(ahead as f64);
    if ahead > SKEW_WARNING_SECONDS {
        warn_skew(ahead, now);
    }
    if ahead > MAX_FUTURE_SECONDS {
        return Err(TooFarAhead { timestamp, now });
    }
    Ok(ahead)
}

static LAST_WARNING: AtomicU64 = AtomicU64::new(0);

fn warn_skew(ahead: u64, now: u64) {
    let last = LAST_WARNING.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= WARNING_INTERVAL_SECONDS
        && LAST_WARNING
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            target: "bttd::consensus",
            ahead_seconds = ahead,
            refused_beyond = MAX_FUTURE_SECONDS,
            "a proposed block is stamped ahead of this node's clock: check NTP on this machine and the validators'"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fault 9: with whole-second timestamps and a one-second bound, a voter whose clock is
    /// two seconds behind the proposer's refused every block and the chain halted.
    #[test]
    fn a_few_seconds_of_skew_is_tolerated_and_more_is_refused() {
        let now = 1_700_000_000;
        assert_eq!(check(now - 10, now), Ok(0));
        assert_eq!(
            check(now + 2, now),
            Ok(2),
            "two seconds of skew still agree"
        );
        assert_eq!(check(now + MAX_FUTURE_SECONDS, now), Ok(MAX_FUTURE_SECONDS));
        assert_eq!(
            check(now + MAX_FUTURE_SECONDS + 1, now),
            Err(TooFarAhead {
                timestamp: now + MAX_FUTURE_SECONDS + 1,
                now
            })
        );
        assert!(check(u64::MAX, now).is_err());
    }
}
