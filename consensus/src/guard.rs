//! Slashing protection: never sign two conflicting messages, even across
//! crashes.
//!
//! Before any signature the engine asks the guard. The guard keeps what was
//! signed in the latest `(height, round)`: the proposal, the prevote and the
//! precommit. Signing in an earlier round is refused; a second, different
//! proposal in a round is refused; a vote already signed in this round is
//! *repeated* (the guard returns the value signed before, so a restarted
//! validator re-sends its old vote instead of contradicting it, which also
//! keeps its power available to the round's quorum). The new record is handed
//! to a [`SlashingStore`] (the node writes and fsyncs it) *before* the
//! signature exists, so a crash can lose a vote but never forget one that may
//! have left the process.
//!
//! The record also keeps the last non-nil precommit, which is exactly the
//! paper's lock (`lockedValue`, `lockedRound`): a restarted validator restores
//! its lock from it, so a crash cannot make it prevote against its lock.

use crate::types::{BlockId, Height, Round, VoteType};
use serde::{Deserialize, Serialize};

/// What was signed in the latest `(height, round)` this validator signed in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// Block proposed, if we proposed.
    pub proposal: Option<BlockId>,
    /// Prevote sent (`Some(None)` is a nil prevote).
    pub prevote: Option<Option<BlockId>>,
    /// Precommit sent.
    pub precommit: Option<Option<BlockId>>,
}

/// A lock: a non-nil precommit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    /// Height of the lock.
    pub height: Height,
    /// Round of the precommit.
    pub round: Round,
    /// Locked block.
    pub block: BlockId,
}

/// What a validator has signed; exportable and importable as JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignRecord {
    /// The latest round signed in.
    pub latest: Option<RoundRecord>,
    /// The last non-nil precommit.
    pub lock: Option<LockRecord>,
}

/// Durable storage of the record.
pub trait SlashingStore: Send {
    /// Persists the record durably (fsync) before returning `Ok`.
    fn save(&mut self, record: &SignRecord) -> Result<(), StoreError>;
}

/// The store could not persist the record; the engine then does not sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("slashing-protection store: {0}")]
pub struct StoreError(pub String);

/// Why the guard refused to sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// The request is for an earlier round than one already signed in.
    #[error("would regress: signed in ({height}, {round}) already")]
    Regression {
        /// Latest height signed at.
        height: Height,
        /// Latest round signed in.
        round: Round,
    },
    /// A different block was already proposed in this round.
    #[error("would propose a second block in this round")]
    Conflict,
    /// Persisting failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A store that keeps nothing: for observers and unit tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoStore;

impl SlashingStore for NoStore {
    fn save(&mut self, _: &SignRecord) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The engine's gate in front of the signer.
pub struct SlashingGuard {
    record: SignRecord,
    store: Box<dyn SlashingStore>,
}

impl std::fmt::Debug for SlashingGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlashingGuard")
            .field("record", &self.record)
            .finish()
    }
}

impl SlashingGuard {
    /// A guard starting from a record loaded (or imported) from storage.
    pub fn new(record: SignRecord, store: Box<dyn SlashingStore>) -> Self {
        Self { record, store }
    }

    /// The current record (for export).
    pub fn record(&self) -> &SignRecord {
        &self.record
    }

    fn round_record(&self, height: Height, round: Round) -> Result<RoundRecord, GuardError> {
        match self.record.latest {
            Some(l) if (height, round) < (l.height, l.round) => Err(GuardError::Regression {
                height: l.height,
                round: l.round,
            }),
            Some(l) if (height, round) == (l.height, l.round) => Ok(l),
            _ => Ok(RoundRecord {
                height,
                round,
                ..RoundRecord::default()
            }),
        }
    }

    fn commit(&mut self, latest: RoundRecord, lock: Option<LockRecord>) -> Result<(), GuardError> {
        let next = SignRecord {
            latest: Some(latest),
            lock: lock.or(self.record.lock),
        };
        if next != self.record {
            self.store.save(&next)?;
            self.record = next;
        }
        Ok(())
    }

    /// Approves a vote and returns the value to sign: the requested one, or,
    /// if this vote was already signed (before a crash), the value signed
    /// then, so the validator repeats itself instead of contradicting itself.
    /// The record is durably saved before this returns.
    pub fn approve_vote(
        &mut self,
        height: Height,
        round: Round,
        vote_type: VoteType,
        block: Option<BlockId>,
    ) -> Result<Option<BlockId>, GuardError> {
        let mut rec = self.round_record(height, round)?;
        let slot = match vote_type {
            VoteType::Prevote => &mut rec.prevote,
            VoteType::Precommit => &mut rec.precommit,
        };
        if let Some(signed) = *slot {
            return Ok(signed);
        }
        *slot = Some(block);
        let lock = match (vote_type, block) {
            (VoteType::Precommit, Some(block)) => Some(LockRecord {
                height,
                round,
                block,
            }),
            _ => None,
        };
        self.commit(rec, lock)?;
        Ok(block)
    }

    /// Approves a proposal unless another block was proposed in this round.
    pub fn approve_proposal(
        &mut self,
        height: Height,
        round: Round,
        block: BlockId,
    ) -> Result<(), GuardError> {
        let mut rec = self.round_record(height, round)?;
        match rec.proposal {
            Some(signed) if signed == block => Ok(()),
            Some(_) => Err(GuardError::Conflict),
            None => {
                rec.proposal = Some(block);
                self.commit(rec, None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::B256;

    fn b(x: u8) -> Option<BlockId> {
        Some(B256::repeat_byte(x))
    }

    #[test]
    fn repeats_itself_and_never_regresses() {
        let mut g = SlashingGuard::new(SignRecord::default(), Box::new(NoStore));
        assert_eq!(g.approve_vote(1, 0, VoteType::Prevote, b(1)).unwrap(), b(1));
        // Asked for nil after a crash: the earlier prevote is repeated.
        assert_eq!(g.approve_vote(1, 0, VoteType::Prevote, None).unwrap(), b(1));
        assert_eq!(
            g.approve_vote(1, 0, VoteType::Precommit, b(1)).unwrap(),
            b(1)
        );
        assert_eq!(g.record().lock.unwrap().round, 0);
        g.approve_proposal(1, 1, b(2).unwrap()).unwrap();
        assert!(matches!(
            g.approve_vote(1, 0, VoteType::Prevote, b(1)),
            Err(GuardError::Regression { .. })
        ));
        // Re-imported after a restart, the record keeps refusing.
        let mut g2 = SlashingGuard::new(*g.record(), Box::new(NoStore));
        assert_eq!(
            g2.approve_proposal(1, 1, b(3).unwrap()),
            Err(GuardError::Conflict)
        );
        g2.approve_proposal(1, 1, b(2).unwrap()).unwrap();
        assert_eq!(g2.record().lock.unwrap().block, b(1).unwrap());
    }
}
