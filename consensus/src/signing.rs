//! Canonical byte strings that validators sign.
//!
//! Every signature is domain-separated by a fixed tag, the chain's genesis
//! hash, the message type, the epoch, the height and the round, so a signature
//! can never be replayed on another chain, in another epoch, or as another
//! kind of message. A vote's bytes depend only on *what* is voted, never on
//! *who* votes, so all precommits for one block are signatures over one message
//! and aggregate into a certificate checked with a single fast-aggregate-verify.
//!
//! Layouts (all integers big-endian, fixed length, no length prefixes):
//!
//! ```text
//! vote (102 bytes):     tag[16] chain[32] type[1] epoch[8] height[8] round[4] has_block[1] block_id[32]
//! proposal (105 bytes): tag[16] chain[32] type[1] epoch[8] height[8] round[4] pol_round[4] block_id[32]
//! ```
//!
//! `tag` is ASCII `bttd-consensus-1`; `type` is 0x01 proposal, 0x02 prevote,
//! 0x03 precommit; a nil vote has `has_block = 0` and an all-zero id;
//! `pol_round = 0xffff_ffff` means "no proof-of-lock round" (the paper's -1).

use crate::types::{BlockId, Height, Round, VoteType};
use alloy_primitives::B256;

/// Domain tag at the start of every signed consensus message.
pub const DOMAIN_TAG: &[u8; 16] = b"bttd-consensus-1";
/// Length of a vote's signing bytes.
pub const VOTE_SIGN_BYTES_LEN: usize = 102;
/// Length of a proposal's signing bytes.
pub const PROPOSAL_SIGN_BYTES_LEN: usize = 105;

/// Message-type byte for proposals.
pub const TYPE_PROPOSAL: u8 = 0x01;
/// Message-type byte for prevotes.
pub const TYPE_PREVOTE: u8 = 0x02;
/// Message-type byte for precommits.
pub const TYPE_PRECOMMIT: u8 = 0x03;

fn header(out: &mut Vec<u8>, chain: &B256, ty: u8, epoch: u64, height: Height, round: Round) {
    out.extend_from_slice(DOMAIN_TAG);
    out.extend_from_slice(chain.as_slice());
    out.push(ty);
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(&round.to_be_bytes());
}

/// The bytes signed by a vote (and by every signer of a commit certificate).
pub fn vote_sign_bytes(
    chain: &B256,
    vote_type: VoteType,
    epoch: u64,
    height: Height,
    round: Round,
    block: Option<BlockId>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(VOTE_SIGN_BYTES_LEN);
    let ty = match vote_type {
        VoteType::Prevote => TYPE_PREVOTE,
        VoteType::Precommit => TYPE_PRECOMMIT,
    };
    header(&mut out, chain, ty, epoch, height, round);
    match block {
        Some(id) => {
            out.push(1);
            out.extend_from_slice(id.as_slice());
        }
        None => {
            out.push(0);
            out.extend_from_slice(&[0u8; 32]);
        }
    }
    debug_assert_eq!(out.len(), VOTE_SIGN_BYTES_LEN);
    out
}

/// The bytes signed by a proposer for its proposal.
pub fn proposal_sign_bytes(
    chain: &B256,
    epoch: u64,
    height: Height,
    round: Round,
    pol_round: Option<Round>,
    block: BlockId,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(PROPOSAL_SIGN_BYTES_LEN);
    header(&mut out, chain, TYPE_PROPOSAL, epoch, height, round);
    out.extend_from_slice(&pol_round.unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(block.as_slice());
    debug_assert_eq!(out.len(), PROPOSAL_SIGN_BYTES_LEN);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_fixed_length_and_differ_by_field() {
        let chain = B256::repeat_byte(7);
        let id = B256::repeat_byte(9);
        let a = vote_sign_bytes(&chain, VoteType::Prevote, 1, 2, 3, Some(id));
        assert_eq!(a.len(), VOTE_SIGN_BYTES_LEN);
        assert_eq!(&a[..16], DOMAIN_TAG);
        assert_eq!(a[48], TYPE_PREVOTE);
        assert_ne!(
            a,
            vote_sign_bytes(&chain, VoteType::Precommit, 1, 2, 3, Some(id))
        );
        assert_ne!(
            a,
            vote_sign_bytes(&chain, VoteType::Prevote, 2, 2, 3, Some(id))
        );
        assert_ne!(
            a,
            vote_sign_bytes(&chain, VoteType::Prevote, 1, 2, 4, Some(id))
        );
        assert_ne!(a, vote_sign_bytes(&chain, VoteType::Prevote, 1, 2, 3, None));
        let p = proposal_sign_bytes(&chain, 1, 2, 3, None, id);
        assert_eq!(p.len(), PROPOSAL_SIGN_BYTES_LEN);
        assert_eq!(&p[69..73], &u32::MAX.to_be_bytes());
    }
}
