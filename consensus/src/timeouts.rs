//! Timeout durations, growing linearly with the round.
//!
//! Tendermint's liveness argument (paper, section 4: after GST timeouts must
//! eventually exceed the message delay) needs timeouts that grow without
//! bound across rounds; linear growth gets there while keeping a stuck round
//! from waiting exponentially long after a long partition heals.

use crate::types::{Round, Step};
use std::time::Duration;

/// Base and per-round increment of each step's timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutConfig {
    /// Wait for the proposal in round 0.
    pub propose: Duration,
    /// Added per round.
    pub propose_delta: Duration,
    /// Wait after seeing 2/3 of any prevotes in round 0.
    pub prevote: Duration,
    /// Added per round.
    pub prevote_delta: Duration,
    /// Wait after seeing 2/3 of any precommits in round 0.
    pub precommit: Duration,
    /// Added per round.
    pub precommit_delta: Duration,
}

impl Default for TimeoutConfig {
    /// Sub-second block times on a LAN-to-continental network.
    fn default() -> Self {
        Self {
            propose: Duration::from_millis(1000),
            propose_delta: Duration::from_millis(500),
            prevote: Duration::from_millis(500),
            prevote_delta: Duration::from_millis(250),
            precommit: Duration::from_millis(500),
            precommit_delta: Duration::from_millis(250),
        }
    }
}

impl TimeoutConfig {
    /// `base + delta * round` for the step.
    pub fn duration(&self, step: Step, round: Round) -> Duration {
        let (base, delta) = match step {
            Step::Propose => (self.propose, self.propose_delta),
            Step::Prevote => (self.prevote, self.prevote_delta),
            Step::Precommit => (self.precommit, self.precommit_delta),
        };
        base.saturating_add(delta.saturating_mul(round))
    }
}
