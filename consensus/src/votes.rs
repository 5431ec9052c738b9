//! Vote keeping for one height: tallies per `(round, type, value)` and
//! equivocation detection.
//!
//! A validator counts once towards "any vote" totals; a second vote for a
//! different value becomes [`Evidence`] and also counts for that value (see
//! [`Tally`] for why that is safe and needed). The keeper also tracks, per round, the
//! power of distinct validators that sent anything, for the paper's round-skip
//! rule (line 55: `f + 1` messages of a higher round).

use crate::messages::{Evidence, SignedVote};
use crate::types::{BlockId, Round, ValidatorIndex, VoteType};
use std::collections::BTreeMap;

/// Distinct values one validator may have counted per `(round, type)`: the
/// first vote and one conflicting vote (evidence). Further values are dropped,
/// which bounds memory against a validator signing many values.
pub const MAX_VALUES_PER_VALIDATOR: usize = 2;

/// Votes of one type in one round.
///
/// A value's power counts every validator that signed it, including an
/// equivocator's second vote. This is safe (two quorums for different values
/// intersect in more than 1/3 of the power, all of whom equivocated, which
/// is more than the faults tolerated) and keeps nodes' views from diverging:
/// otherwise a node that saw an equivocator's other vote first could never
/// accept a proof-of-lock that counts the vote it did not count.
#[derive(Debug, Clone)]
pub struct Tally {
    votes: Vec<Vec<SignedVote>>,
    by_value: Vec<(Option<BlockId>, u128)>,
    total: u128,
}

impl Tally {
    fn new(n: usize) -> Self {
        Self {
            votes: vec![Vec::new(); n],
            by_value: Vec::new(),
            total: 0,
        }
    }

    /// Power of distinct validators that voted at all.
    pub fn total(&self) -> u128 {
        self.total
    }

    /// Power that voted for `value`.
    pub fn power_for(&self, value: Option<BlockId>) -> u128 {
        self.by_value
            .iter()
            .find(|(v, _)| *v == value)
            .map_or(0, |(_, p)| *p)
    }

    /// Values with their power.
    pub fn values(&self) -> impl Iterator<Item = (Option<BlockId>, u128)> + '_ {
        self.by_value.iter().copied()
    }

    /// Votes for `value`, ascending by validator.
    pub fn votes_for(&self, value: Option<BlockId>) -> impl Iterator<Item = &SignedVote> + '_ {
        self.votes
            .iter()
            .filter_map(move |vs| vs.iter().find(|v| v.vote.block == value))
    }

    /// The first vote of one validator.
    pub fn vote_of(&self, index: ValidatorIndex) -> Option<&SignedVote> {
        self.votes.get(index as usize).and_then(|vs| vs.first())
    }

    /// Each validator's first vote, ascending by validator.
    pub fn first_votes(&self) -> impl Iterator<Item = &SignedVote> + '_ {
        self.votes.iter().filter_map(|vs| vs.first())
    }

    /// Whether this exact vote is already held.
    pub fn contains(&self, vote: &SignedVote) -> bool {
        self.votes
            .get(vote.vote.validator as usize)
            .is_some_and(|vs| vs.contains(vote))
    }

    /// Whether the validator already filled its value slots.
    pub fn is_full(&self, index: ValidatorIndex) -> bool {
        self.votes
            .get(index as usize)
            .is_some_and(|vs| vs.len() >= MAX_VALUES_PER_VALIDATOR)
    }

    fn credit(&mut self, value: Option<BlockId>, power: u128) {
        match self.by_value.iter_mut().find(|(v, _)| *v == value) {
            Some((_, p)) => *p += power,
            None => self.by_value.push((value, power)),
        }
    }
}

/// Everything received for one round.
#[derive(Debug, Clone)]
pub struct RoundVotes {
    /// Prevotes.
    pub prevotes: Tally,
    /// Precommits.
    pub precommits: Tally,
    senders: Vec<bool>,
    sender_power: u128,
}

impl RoundVotes {
    fn new(n: usize) -> Self {
        Self {
            prevotes: Tally::new(n),
            precommits: Tally::new(n),
            senders: vec![false; n],
            sender_power: 0,
        }
    }

    /// Power of distinct validators that sent any message in this round.
    pub fn sender_power(&self) -> u128 {
        self.sender_power
    }
}

/// What adding a vote did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddVote {
    /// Counted.
    Added,
    /// Already had exactly this vote.
    Duplicate,
    /// The validator already voted differently: the vote is not counted.
    Equivocation(Box<Evidence>),
}

/// All votes for one height.
#[derive(Debug, Clone)]
pub struct HeightVotes {
    powers: Vec<u64>,
    epoch: u64,
    rounds: BTreeMap<Round, RoundVotes>,
}

impl HeightVotes {
    /// Empty keeper for a set with these powers.
    pub fn new(powers: Vec<u64>, epoch: u64) -> Self {
        Self {
            powers,
            epoch,
            rounds: BTreeMap::new(),
        }
    }

    fn round_mut(&mut self, round: Round) -> &mut RoundVotes {
        let n = self.powers.len();
        self.rounds
            .entry(round)
            .or_insert_with(|| RoundVotes::new(n))
    }

    /// Records that `sender` sent something in `round` (votes do this
    /// themselves; proposals call it directly).
    pub fn saw_sender(&mut self, round: Round, sender: ValidatorIndex) {
        let power = u128::from(self.powers[sender as usize]);
        let r = self.round_mut(round);
        let seen = &mut r.senders[sender as usize];
        if !*seen {
            *seen = true;
            r.sender_power += power;
        }
    }

    /// Adds a vote whose signature and index were already checked.
    pub fn add(&mut self, vote: SignedVote) -> AddVote {
        let (round, idx) = (vote.vote.round, vote.vote.validator);
        let power = u128::from(self.powers[idx as usize]);
        let epoch = self.epoch;
        self.saw_sender(round, idx);
        let r = self.round_mut(round);
        let tally = match vote.vote.vote_type {
            VoteType::Prevote => &mut r.prevotes,
            VoteType::Precommit => &mut r.precommits,
        };
        let mine = &tally.votes[idx as usize];
        if mine.iter().any(|v| v.vote.block == vote.vote.block) {
            return AddVote::Duplicate;
        }
        let value = vote.vote.block;
        match mine.first().cloned() {
            Some(first) => {
                if mine.len() < MAX_VALUES_PER_VALIDATOR {
                    tally.votes[idx as usize].push(vote.clone());
                    tally.credit(value, power);
                }
                AddVote::Equivocation(Box::new(Evidence::DuplicateVote {
                    epoch,
                    first: Box::new(first),
                    second: Box::new(vote),
                }))
            }
            None => {
                tally.votes[idx as usize].push(vote);
                tally.total += power;
                tally.credit(value, power);
                AddVote::Added
            }
        }
    }

    /// Votes of a round, if any arrived.
    pub fn round(&self, round: Round) -> Option<&RoundVotes> {
        self.rounds.get(&round)
    }

    /// Rounds with any message, ascending.
    pub fn rounds(&self) -> impl Iterator<Item = (Round, &RoundVotes)> + '_ {
        self.rounds.iter().map(|(r, v)| (*r, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::Vote;
    use alloy_primitives::B256;

    fn v(idx: u32, block: Option<u8>) -> SignedVote {
        SignedVote {
            vote: Vote {
                vote_type: VoteType::Prevote,
                height: 1,
                round: 0,
                block: block.map(B256::repeat_byte),
                validator: idx,
            },
            signature: Default::default(),
        }
    }

    #[test]
    fn counts_first_vote_and_flags_equivocation() {
        let mut hv = HeightVotes::new(vec![1, 2, 3], 0);
        assert_eq!(hv.add(v(0, Some(1))), AddVote::Added);
        assert_eq!(hv.add(v(0, Some(1))), AddVote::Duplicate);
        assert!(matches!(hv.add(v(0, None)), AddVote::Equivocation(_)));
        assert!(matches!(hv.add(v(0, Some(2))), AddVote::Equivocation(_)));
        assert_eq!(hv.add(v(2, Some(1))), AddVote::Added);
        let t = &hv.round(0).unwrap().prevotes;
        assert_eq!(t.power_for(Some(B256::repeat_byte(1))), 4);
        // The equivocator's second value counts for that value, a third not.
        assert_eq!(t.power_for(None), 1);
        assert_eq!(t.power_for(Some(B256::repeat_byte(2))), 0);
        assert_eq!(t.total(), 4);
        assert_eq!(hv.round(0).unwrap().sender_power(), 4);
    }
}
