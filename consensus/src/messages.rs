//! Consensus messages on the wire and the evidence of misbehaviour.
//!
//! Validators are named by their index in the epoch's set (the epoch follows
//! from the height), which keeps votes small and makes signer bitmaps trivial.

use crate::bls::SignatureBytes;
use crate::signing;
use crate::types::{Block, BlockId, Height, Round, ValidatorIndex, VoteType};
use alloy_primitives::B256;
use serde::{Deserialize, Serialize};

/// A vote for a block (or nil) at `(height, round)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Vote {
    /// Prevote or precommit.
    pub vote_type: VoteType,
    /// Height voted on.
    pub height: Height,
    /// Round voted in.
    pub round: Round,
    /// The block, or `None` for nil.
    pub block: Option<BlockId>,
    /// Voter's index in the epoch's set.
    pub validator: ValidatorIndex,
}

impl Vote {
    /// Canonical bytes this vote signs (identical for every voter).
    pub fn sign_bytes(&self, chain: &B256, epoch: u64) -> Vec<u8> {
        signing::vote_sign_bytes(
            chain,
            self.vote_type,
            epoch,
            self.height,
            self.round,
            self.block,
        )
    }
}

/// A vote with its signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignedVote {
    /// The vote.
    pub vote: Vote,
    /// Signature over [`Vote::sign_bytes`].
    pub signature: SignatureBytes,
}

/// A proposer's block for `(height, round)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Proposal {
    /// Height proposed for.
    pub height: Height,
    /// Round proposed in.
    pub round: Round,
    /// Round of the prevote quorum that justifies re-proposing a locked or
    /// valid block (the paper's `validRound`); `None` is the paper's -1.
    pub pol_round: Option<Round>,
    /// The block.
    pub block: Block,
    /// Proposer's index in the epoch's set.
    pub proposer: ValidatorIndex,
}

impl Proposal {
    /// Canonical bytes the proposer signs.
    pub fn sign_bytes(&self, chain: &B256, epoch: u64) -> Vec<u8> {
        signing::proposal_sign_bytes(
            chain,
            epoch,
            self.height,
            self.round,
            self.pol_round,
            self.block.id,
        )
    }
}

/// A proposal with its signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignedProposal {
    /// The proposal.
    pub proposal: Proposal,
    /// Signature over [`Proposal::sign_bytes`].
    pub signature: SignatureBytes,
}

/// Anything a validator broadcasts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Message {
    /// A proposal.
    Proposal(SignedProposal),
    /// A prevote or precommit.
    Vote(SignedVote),
}

impl Message {
    /// Height the message is about.
    pub fn height(&self) -> Height {
        match self {
            Message::Proposal(p) => p.proposal.height,
            Message::Vote(v) => v.vote.height,
        }
    }
    /// Round the message is about.
    pub fn round(&self) -> Round {
        match self {
            Message::Proposal(p) => p.proposal.round,
            Message::Vote(v) => v.vote.round,
        }
    }
    /// Index of the signer.
    pub fn sender(&self) -> ValidatorIndex {
        match self {
            Message::Proposal(p) => p.proposal.proposer,
            Message::Vote(v) => v.vote.validator,
        }
    }
}

/// Proof that one validator signed two conflicting messages; both signatures
/// were verified before the evidence was produced, so it is ready for slashing.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Evidence {
    /// Two votes of one type, height and round for different values.
    DuplicateVote {
        /// Epoch of the set that holds the validator.
        epoch: u64,
        /// The vote seen first.
        first: Box<SignedVote>,
        /// The conflicting vote.
        second: Box<SignedVote>,
    },
    /// Two proposals for one height and round with different blocks.
    DuplicateProposal {
        /// Epoch of the set that holds the proposer.
        epoch: u64,
        /// The proposal seen first.
        first: Box<SignedProposal>,
        /// The conflicting proposal.
        second: Box<SignedProposal>,
    },
}

impl Evidence {
    /// Index of the offender in its epoch's set.
    pub fn offender(&self) -> ValidatorIndex {
        match self {
            Evidence::DuplicateVote { first, .. } => first.vote.validator,
            Evidence::DuplicateProposal { first, .. } => first.proposal.proposer,
        }
    }
    /// Height of the offence.
    pub fn height(&self) -> Height {
        match self {
            Evidence::DuplicateVote { first, .. } => first.vote.height,
            Evidence::DuplicateProposal { first, .. } => first.proposal.height,
        }
    }
    /// Round of the offence.
    pub fn round(&self) -> crate::types::Round {
        match self {
            Evidence::DuplicateVote { first, .. } => first.vote.round,
            Evidence::DuplicateProposal { first, .. } => first.proposal.round,
        }
    }
    /// What an offence is, whatever the two messages that prove it: (offender, height,
    /// round, kind). Each offence is recorded once.
    pub fn offence(&self) -> (ValidatorIndex, Height, crate::types::Round, u8) {
        let kind = match self {
            Evidence::DuplicateVote { first, .. } => first.vote.vote_type as u8,
            Evidence::DuplicateProposal { .. } => 2,
        };
        (self.offender(), self.height(), self.round(), kind)
    }
}
