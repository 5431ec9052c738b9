//! Invariants checked on every simulated run.
//!
//! - **Agreement**: no two honest nodes decide different blocks at a height.
//! - **Validity**: every decided block was proposed by someone and passes the
//!   block rules.
//! - **Certificate validity**: every certificate an honest node emits verifies
//!   against the height's set with more than 2/3 of the power.
//! - **No honest equivocation**: no honest identity ever signs two different
//!   votes for one `(height, round, type)` or two proposals for one
//!   `(height, round)`, crashes and restarts included (slashing protection).
//! - **Blame only the guilty**: no honest node refuses a message sent by an honest peer
//!   (the engine would penalise that peer), and no honest node produces evidence against an
//!   honest identity.
//! - **Bounded buffers**: next-height messages stay within the configured bytes.
//! - **Liveness**: after the last fault, every honest node gains the required
//!   number of heights within the bound.

use bttd_consensus::{BlockId, Height, Round};
use std::collections::HashMap;

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Two honest nodes decided different blocks.
    Agreement {
        /// Height.
        height: Height,
        /// One decision.
        first: BlockId,
        /// The other.
        second: BlockId,
    },
    /// A decided block was never proposed or is invalid.
    Validity {
        /// Height.
        height: Height,
        /// The block.
        block: BlockId,
    },
    /// A decision's certificate does not verify.
    Certificate {
        /// Height.
        height: Height,
        /// The error.
        error: String,
    },
    /// An honest identity signed conflicting messages.
    HonestEquivocation {
        /// The identity.
        identity: usize,
        /// Height.
        height: Height,
        /// Round.
        round: Round,
    },
    /// Progress did not resume in time.
    Liveness {
        /// Highest honest height when faults ended.
        from_height: Height,
        /// Heights of the honest nodes at the deadline.
        reached: Vec<Height>,
        /// Heights required.
        needed: Height,
    },
    /// A run hit its hard stop without finishing a required check.
    Unfinished,
    /// An honest node's verdict blamed an honest peer for a message it sent.
    HonestBlamed {
        /// The node that refused the message.
        node: usize,
        /// The honest sender.
        from: usize,
        /// Why it was refused.
        reason: String,
    },
    /// An honest node produced evidence against an honest identity.
    FalseEvidence {
        /// The accused identity.
        identity: usize,
        /// Height of the supposed offence.
        height: Height,
    },
    /// An engine stopped on a fault of its own node (which the simulator never injects).
    EngineFault {
        /// The node.
        node: usize,
        /// The fault.
        reason: String,
    },
    /// A machine held more next-height bytes than its configured bound.
    BufferOverBound {
        /// The node.
        node: usize,
        /// Bytes held.
        bytes: usize,
    },
}

/// Bookkeeping for the invariants.
#[derive(Default, Debug)]
pub struct Checker {
    decisions: HashMap<Height, BlockId>,
    proposed: HashMap<BlockId, bool>,
    signed: HashMap<(usize, Height, Round, u8), Option<BlockId>>,
    /// Violations found so far.
    pub violations: Vec<Violation>,
}

impl Checker {
    /// A block was built (by anyone, honest or not) with this validity.
    pub fn proposed(&mut self, id: BlockId, valid: bool) {
        self.proposed.insert(id, valid);
    }

    /// An honest node decided `id` at `height` with a certificate check result.
    pub fn decided(&mut self, height: Height, id: BlockId, cert: Result<(), String>) {
        if let Err(error) = cert {
            self.violations
                .push(Violation::Certificate { height, error });
        }
        if self.proposed.get(&id) != Some(&true) {
            self.violations
                .push(Violation::Validity { height, block: id });
        }
        match self.decisions.get(&height) {
            Some(&first) if first != id => {
                self.violations.push(Violation::Agreement {
                    height,
                    first,
                    second: id,
                });
            }
            Some(_) => {}
            None => {
                self.decisions.insert(height, id);
            }
        }
    }

    /// An honest identity signed a message of `kind` (0 proposal, 1 prevote,
    /// 2 precommit) for `value`.
    pub fn signed(
        &mut self,
        identity: usize,
        height: Height,
        round: Round,
        kind: u8,
        value: Option<BlockId>,
    ) {
        match self.signed.insert((identity, height, round, kind), value) {
            Some(prev) if prev != value => {
                self.violations.push(Violation::HonestEquivocation {
                    identity,
                    height,
                    round,
                });
            }
            _ => {}
        }
    }

    /// Highest height any honest node decided.
    pub fn highest(&self) -> Height {
        self.decisions.keys().copied().max().unwrap_or(0)
    }
}
