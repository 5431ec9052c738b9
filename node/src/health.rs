//! What `GET /health` answers: whether the node follows the chain.
//!
//! - `syncing` (503): the highest height seen from verified consensus data is more than
//!   [`SYNC_LAG`] blocks ahead of our head;
//! - `stalled` (503): the head has not changed for [`STALL_BLOCK_TIMES`] block times, measured on
//!   the monotonic clock from the instant the head last changed (never from block timestamps,
//!   which are whole seconds and come from the proposer's clock);
//! - `ok` (200) otherwise. The single-producer devnet produces a block every block time, so it
//!   answers `ok` while it produces.
//!
//! The decision is the pure function [`assess`]; the metrics server gathers its inputs.

use std::time::Duration;

/// The head may stand still this many block times before the node reports `stalled`.
pub const STALL_BLOCK_TIMES: u32 = 10;
/// Blocks the verified highest height may be ahead of the head before the node is `syncing`
/// (one behind is the normal state between a peer's commit and ours).
pub const SYNC_LAG: u64 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
    Stalled,
    Syncing,
}

impl HealthStatus {
    pub fn is_ok(self) -> bool {
        self == HealthStatus::Ok
    }
}

/// What the decision looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthInputs {
    pub head: u64,
    /// Time since the head last changed (or since the node started, if it has not).
    pub since_head_changed: Duration,
    pub block_time: Duration,
    /// Highest height seen from verified consensus data; `None` without consensus.
    pub highest_seen: Option<u64>,
}

/// The stall threshold for a block time.
pub fn stall_after(block_time: Duration) -> Duration {
    block_time.saturating_mul(STALL_BLOCK_TIMES)
}

pub fn assess(inputs: &HealthInputs) -> HealthStatus {
    if let Some(highest) = inputs.highest_seen
        && highest > inputs.head.saturating_add(SYNC_LAG)
    {
        return HealthStatus::Syncing;
    }
    if inputs.since_head_changed > stall_after(inputs.block_time) {
        return HealthStatus::Stalled;
    }
    HealthStatus::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(head: u64, since_ms: u64, highest: Option<u64>) -> HealthInputs {
        HealthInputs {
            head,
            since_head_changed: Duration::from_millis(since_ms),
            block_time: Duration::from_millis(300),
            highest_seen: highest,
        }
    }

    #[test]
    fn following_the_chain_is_ok() {
        assert_eq!(assess(&inputs(10, 0, Some(10))), HealthStatus::Ok);
        assert_eq!(assess(&inputs(10, 2_999, Some(11))), HealthStatus::Ok);
        assert_eq!(assess(&inputs(10, 3_000, Some(12))), HealthStatus::Ok);
        // The single producer has no consensus view.
        assert_eq!(assess(&inputs(10, 300, None)), HealthStatus::Ok);
    }

    #[test]
    fn ten_block_times_without_a_new_head_is_stalled() {
        assert_eq!(assess(&inputs(10, 3_001, Some(10))), HealthStatus::Stalled);
        assert_eq!(assess(&inputs(10, 60_000, None)), HealthStatus::Stalled);
    }

    #[test]
    fn verified_heights_more_than_two_ahead_is_syncing_even_when_stalled() {
        assert_eq!(assess(&inputs(10, 0, Some(13))), HealthStatus::Syncing);
        assert_eq!(
            assess(&inputs(10, 60_000, Some(500))),
            HealthStatus::Syncing
        );
        assert_eq!(
            assess(&inputs(u64::MAX, 0, Some(u64::MAX))),
            HealthStatus::Ok
        );
    }

    #[test]
    fn statuses_serialize_as_the_interface_names_them() {
        let names: Vec<String> = [
            HealthStatus::Ok,
            HealthStatus::Stalled,
            HealthStatus::Syncing,
        ]
        .iter()
        .map(|s| serde_json::to_string(s).unwrap())
        .collect();
        assert_eq!(names, ["\"ok\"", "\"stalled\"", "\"syncing\""]);
    }
}
