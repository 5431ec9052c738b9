//! Evidence of double-signing in blocks (docs/block-format.md, "Evidence"): the checks a
//! voter and a syncing node make on what a block carries, and which pending evidence a
//! proposer includes.
//!
//! An item names an offence (offender, height, round, kind) and carries the two conflicting
//! signed messages. It is admitted only if both signatures verify against the offender's key
//! in the set of the offence's height, and the height is old enough to be over and young
//! enough to be slashable (StakeManager's rule, [`StakingConfig::evidence_admissible`]).
//! What a block admits is then slashed by its `slashDoubleSign` calls, in order, so a block
//! that carried forged evidence would slash an honest validator: voters refuse it.

use std::collections::HashSet;

use bttd_consensus::{Evidence, Height, ValidatorSet, Verifier};
use bttd_engine::wire::MAX_BLOCK_EVIDENCE;
use bttd_engine::{ConsensusInfo, OffenceKey};
use bttd_runtime::{Offence, StakingConfig};

use crate::sets::ChainSets;

/// Why a block's evidence is refused: the proposer's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    #[error(
        "evidence of an offence at height {offence} is not admissible in block {block} (not before it, or older than the unbonding period)"
    )]
    NotAdmissible { offence: Height, block: Height },
    #[error("evidence names epoch {named}, but height {height} is of epoch {actual}")]
    WrongEpoch {
        height: Height,
        named: u64,
        actual: u64,
    },
    #[error("evidence names validator {index}, outside the set of height {height}")]
    UnknownOffender { index: u32, height: Height },
    #[error("the two messages of the evidence do not conflict")]
    NoConflict,
    #[error("a signature of the evidence does not verify")]
    BadSignature,
    #[error("the block carries the same offence twice")]
    Repeated,
}

/// What the checks need: the chain's domain, the sets, the staking rules and owners (on a
/// staking chain), and the verifier.
pub(crate) struct EvidenceRules<'a> {
    pub chain: alloy_primitives::B256,
    pub info: &'a ConsensusInfo,
    pub staked: Option<&'a ChainSets>,
    pub verifier: &'a dyn Verifier,
}

/// The outcome of checking one item: its offence as StakeManager names it (`None` without
/// staking, where nothing is slashed), or why it is refused; `Err` of the outer result is a
/// fault of ours (a set we could not read).
type Checked = Result<Result<Option<Offence>, EvidenceError>, crate::ProviderError>;

impl EvidenceRules<'_> {
    fn staking(&self) -> Option<&StakingConfig> {
        self.staked.map(|s| s.staking())
    }

    /// Checks one item for a block at `height`.
    pub fn check(&self, evidence: &Evidence, height: Height) -> Checked {
        let (index, offence_height, round, kind) = evidence.offence();
        let admissible = match self.staking() {
            Some(staking) => staking.evidence_admissible(offence_height, height),
            None => offence_height > 0 && offence_height < height,
        };
        if !admissible {
            return Ok(Err(EvidenceError::NotAdmissible {
                offence: offence_height,
                block: height,
            }));
        }
        let actual = self.info.sets.epoch_of(offence_height);
        let named = match evidence {
            Evidence::DuplicateVote { epoch, .. } | Evidence::DuplicateProposal { epoch, .. } => {
                *epoch
            }
        };
        if named != actual {
            return Ok(Err(EvidenceError::WrongEpoch {
                height: offence_height,
                named,
                actual,
            }));
        }
        // An admissible offence is below our head, so its set is known (ours to read).
        let set = self
            .info
            .sets
            .validator_set(offence_height)
            .ok_or(crate::ProviderError::NoSet(offence_height))?;
        if index as usize >= set.len() {
            return Ok(Err(EvidenceError::UnknownOffender {
                index,
                height: offence_height,
            }));
        }
        if let Err(e) = self.conflict_is_signed(evidence, &set, named) {
            return Ok(Err(e));
        }
        let owner = match self.staked {
            Some(sets) => {
                let epoch = sets
                    .at_height(offence_height)?
                    .ok_or(crate::ProviderError::NoSet(offence_height))?;
                // Both forms of one epoch's set have the same members.
                let member = epoch
                    .staked
                    .validators
                    .get(index as usize)
                    .ok_or(crate::ProviderError::NoSet(offence_height))?;
                Some(member.owner)
            }
            None => None,
        };
        Ok(Ok(owner.map(|owner| Offence {
            owner,
            height: offence_height,
            round,
            kind,
        })))
    }

    /// Both messages are the offender's, for one height, round and kind, and differ.
    fn conflict_is_signed(
        &self,
        evidence: &Evidence,
        set: &ValidatorSet,
        epoch: u64,
    ) -> Result<(), EvidenceError> {
        let chain = &self.chain;
        let (pairs, index) = match evidence {
            Evidence::DuplicateVote { first, second, .. } => {
                let (a, b) = (&first.vote, &second.vote);
                let same_slot = a.vote_type == b.vote_type
                    && a.height == b.height
                    && a.round == b.round
                    && a.validator == b.validator;
                if !same_slot || a.block == b.block {
                    return Err(EvidenceError::NoConflict);
                }
                (
                    [
                        (a.sign_bytes(chain, epoch), first.signature),
                        (b.sign_bytes(chain, epoch), second.signature),
                    ],
                    a.validator,
                )
            }
            Evidence::DuplicateProposal { first, second, .. } => {
                let (a, b) = (&first.proposal, &second.proposal);
                let same_slot =
                    a.height == b.height && a.round == b.round && a.proposer == b.proposer;
                if !same_slot || (a.block.id, a.pol_round) == (b.block.id, b.pol_round) {
                    return Err(EvidenceError::NoConflict);
                }
                (
                    [
                        (a.sign_bytes(chain, epoch), first.signature),
                        (b.sign_bytes(chain, epoch), second.signature),
                    ],
                    a.proposer,
                )
            }
        };
        for (message, signature) in &pairs {
            if !self.verifier.verify(set, index, message, signature) {
                return Err(EvidenceError::BadSignature);
            }
        }
        Ok(())
    }

    /// Checks what a block at `height` carries: every item admitted, no offence twice.
    /// Returns the offences its slashing calls take, in order.
    pub fn check_block(
        &self,
        evidence: &[Evidence],
        height: Height,
    ) -> Result<Result<Vec<Offence>, EvidenceError>, crate::ProviderError> {
        let mut seen = HashSet::new();
        let mut offences = Vec::new();
        for e in evidence {
            if !seen.insert(e.offence()) {
                return Ok(Err(EvidenceError::Repeated));
            }
            match self.check(e, height)? {
                Ok(offence) => offences.extend(offence),
                Err(refused) => return Ok(Err(refused)),
            }
        }
        Ok(Ok(offences))
    }

    /// What a proposer of block `height` includes: the evidence this node holds whose offence
    /// no committed block carried yet and that passes the voters' checks, oldest first, at
    /// most [`MAX_BLOCK_EVIDENCE`]; with the offences it slashes.
    pub fn select(
        &self,
        height: Height,
    ) -> Result<(Vec<Evidence>, Vec<Offence>), crate::ProviderError> {
        let mut pending: Vec<Evidence> = self
            .info
            .evidence()
            .into_iter()
            .filter(|e| !self.info.is_included(&e.offence()))
            .collect();
        pending.sort_by_key(|e| e.height());
        let mut chosen = Vec::new();
        let mut offences = Vec::new();
        let mut seen: HashSet<OffenceKey> = HashSet::new();
        for e in pending {
            if chosen.len() == MAX_BLOCK_EVIDENCE {
                break;
            }
            if !seen.insert(e.offence()) {
                continue;
            }
            if let Ok(offence) = self.check(&e, height)? {
                offences.extend(offence);
                chosen.push(strip_payloads(e));
            }
        }
        Ok((chosen, offences))
    }
}

/// Evidence as a block carries it: proposals by block id only (a proposer signs the id).
fn strip_payloads(evidence: Evidence) -> Evidence {
    match evidence {
        Evidence::DuplicateProposal {
            epoch,
            mut first,
            mut second,
        } => {
            first.proposal.block.payload = Default::default();
            second.proposal.block.payload = Default::default();
            Evidence::DuplicateProposal {
                epoch,
                first,
                second,
            }
        }
        votes => votes,
    }
}
