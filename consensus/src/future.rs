//! Messages for the next height, kept until the machine gets there.
//!
//! Why: validators that decide a height a little before us start the next one at once; their
//! round-0 proposal and votes would be lost if we dropped them, and we would wait for their
//! re-broadcast. Why bounded this way: the buffer is filled from the network, so it is the
//! first place an attacker looks for memory. It holds only height `h + 1`, each validator index
//! gets an equal share of [`Config::max_buffered_bytes`](crate::Config) (so one validator, or
//! one forger claiming its index, cannot crowd out the others), and a message that does not fit
//! is dropped: the sender re-broadcasts once we are at its height.

use crate::messages::Message;
use crate::types::{Height, ValidatorIndex};
use std::collections::HashMap;

/// Bytes charged for a message besides a proposal's payload: ids, signature, framing and the
/// buffer's own bookkeeping, rounded up.
pub const MESSAGE_OVERHEAD: usize = 256;

/// Bytes a buffered message is charged.
pub fn charged_bytes(m: &Message) -> usize {
    match m {
        Message::Proposal(p) => MESSAGE_OVERHEAD.saturating_add(p.proposal.block.payload.len()),
        Message::Vote(_) => MESSAGE_OVERHEAD,
    }
}

/// A buffered message and whether its signature was checked on receipt.
#[derive(Clone, Debug)]
pub struct Buffered {
    /// The message.
    pub message: Message,
    /// Checked against the set of its height when it arrived.
    pub verified: bool,
}

#[derive(Debug, Default)]
struct Share {
    bytes: usize,
    messages: Vec<Buffered>,
}

/// Messages for one height, with a byte quota per validator index.
#[derive(Debug, Default)]
pub struct FutureBuffer {
    height: Height,
    shares: HashMap<ValidatorIndex, Share>,
    bytes: usize,
}

impl FutureBuffer {
    /// Keeps `message` (for `height`) if its sender's share has room for it; `quota` is the
    /// share of one validator index. Messages of another height than the one buffered so far
    /// replace them (the machine only ever buffers its next height). Returns whether it was
    /// kept.
    pub fn push(&mut self, height: Height, message: Buffered, quota: usize) -> bool {
        if height != self.height {
            self.clear();
            self.height = height;
        }
        let cost = charged_bytes(&message.message);
        let share = self.shares.entry(message.message.sender()).or_default();
        if share.bytes.saturating_add(cost) > quota
            || share.messages.iter().any(|b| b.message == message.message)
        {
            return false;
        }
        share.bytes += cost;
        share.messages.push(message);
        self.bytes += cost;
        true
    }

    /// Takes every message kept for `height` (and forgets any other).
    pub fn take(&mut self, height: Height) -> Vec<Buffered> {
        let found = height == self.height;
        let shares = std::mem::take(&mut self.shares);
        self.bytes = 0;
        if !found {
            return Vec::new();
        }
        let mut indices: Vec<_> = shares.into_iter().collect();
        // Replay in a deterministic order (the simulator's traces depend on it).
        indices.sort_by_key(|(index, _)| *index);
        indices.into_iter().flat_map(|(_, s)| s.messages).collect()
    }

    /// Bytes charged for what is kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn clear(&mut self) {
        self.shares.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bls::SignatureBytes;
    use crate::messages::{Proposal, SignedProposal, SignedVote, Vote};
    use crate::types::{Block, VoteType};
    use alloy_primitives::{B256, Bytes};

    fn vote(validator: ValidatorIndex, round: u32) -> Buffered {
        Buffered {
            message: Message::Vote(SignedVote {
                vote: Vote {
                    vote_type: VoteType::Prevote,
                    height: 2,
                    round,
                    block: None,
                    validator,
                },
                signature: SignatureBytes::ZERO,
            }),
            verified: false,
        }
    }

    fn proposal(proposer: ValidatorIndex, bytes: usize) -> Buffered {
        Buffered {
            message: Message::Proposal(SignedProposal {
                proposal: Proposal {
                    height: 2,
                    round: 0,
                    pol_round: None,
                    block: Block {
                        id: B256::ZERO,
                        payload: Bytes::from(vec![0; bytes]),
                    },
                    proposer,
                },
                signature: SignatureBytes::ZERO,
            }),
            verified: true,
        }
    }

    #[test]
    fn each_index_has_its_own_share() {
        let mut b = FutureBuffer::default();
        let quota = 4 * MESSAGE_OVERHEAD;
        for round in 0..10 {
            b.push(2, vote(0, round), quota);
        }
        assert_eq!(b.bytes(), quota, "index 0 stops at its share");
        assert!(b.push(2, vote(1, 0), quota), "index 1 is not crowded out");
        assert!(!b.push(2, proposal(1, quota), quota), "too big for a share");
        assert!(
            !b.push(2, vote(1, 0), quota),
            "duplicates are not kept twice"
        );
        assert_eq!(b.take(2).len(), 5);
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn another_height_replaces_and_take_of_another_height_is_empty() {
        let mut b = FutureBuffer::default();
        b.push(2, vote(0, 0), 1 << 20);
        b.push(3, vote(0, 0), 1 << 20);
        assert_eq!(b.take(2).len(), 0);
        b.push(3, vote(0, 0), 1 << 20);
        assert_eq!(b.take(3).len(), 1);
    }
}
