//! Basic vocabulary shared by every consensus module.
//!
//! Blocks are opaque to consensus: the engine only needs a stable identifier
//! (the block hash, computed and checked by the node) and the bytes to hand back
//! to the node for verification and execution. Keeping the payload opaque is
//! what lets the same state machine run inside the node and the simulator.

use alloy_primitives::{B256, Bytes};
use serde::{Deserialize, Serialize};

/// Identifier of a block: its hash. The node guarantees `id == hash(payload)`
/// when it answers `BlockVerified`; consensus never looks inside the payload.
pub type BlockId = B256;

/// Block height; the first block after genesis has height 1.
pub type Height = u64;

/// Round number within one height; starts at 0.
pub type Round = u32;

/// Position of a validator in its epoch's [`crate::ValidatorSet`].
pub type ValidatorIndex = u32;

/// A proposed block as consensus sees it: an identifier plus opaque bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Block {
    /// Hash of the block, as computed by the node.
    pub id: BlockId,
    /// Encoded block; consensus only forwards it.
    pub payload: Bytes,
}

/// The kind of a vote. The discriminant is part of the signed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum VoteType {
    /// First voting phase: "I consider this proposal acceptable".
    Prevote,
    /// Second voting phase: "I saw a prevote quorum for this and lock on it".
    Precommit,
}

/// The step of a round, in the order a validator passes through them.
///
/// The ordering is used by slashing protection: a signature at
/// `(height, round, step)` is allowed only if that triple is not below the
/// last one signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Step {
    /// Waiting for (or producing) the round's proposal.
    Propose,
    /// Prevote sent, collecting prevotes.
    Prevote,
    /// Precommit sent, collecting precommits.
    Precommit,
}

impl From<VoteType> for Step {
    fn from(t: VoteType) -> Self {
        match t {
            VoteType::Prevote => Step::Prevote,
            VoteType::Precommit => Step::Precommit,
        }
    }
}

/// `3 * part > 2 * total`: strictly more than two thirds, in integers.
pub fn is_quorum(part: u128, total: u128) -> bool {
    3 * part > 2 * total
}

/// `3 * part > total`: strictly more than one third, so at least one honest
/// validator is included when fewer than a third are faulty.
pub fn is_one_third(part: u128, total: u128) -> bool {
    3 * part > total
}
