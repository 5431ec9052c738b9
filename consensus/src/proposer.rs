//! Stake-weighted proposer rotation (Tendermint's proposer-priority algorithm).
//!
//! Each validator holds a priority, all zero when its epoch's set starts. One
//! *step* adds every validator's power to its priority, picks the highest
//! priority as proposer (ties go to the lower index) and subtracts the total
//! power from the winner. Over any window a validator with share `p` of the
//! stake proposes `p` of the steps, give or take one, and the interleaving is
//! smooth rather than bursty. Because the priorities always sum to zero and
//! start at zero, no rescaling is needed.
//!
//! The proposer of `(height, round)` is the one chosen by step number
//! `(height - epoch_first_height) + round`: a pure function of the set and the
//! pair, so every node (and a restarted one) agrees without shared state. The
//! sequence is cached per set and extended on demand.

/// Cached prefix of a set's proposer sequence.
#[derive(Debug, Default)]
pub(crate) struct ProposerSequence {
    priorities: Vec<i128>,
    sequence: Vec<u32>,
}

impl ProposerSequence {
    /// The proposer chosen by step `step` (0-based).
    pub(crate) fn proposer(&mut self, powers: &[u64], total: u128, step: u64) -> u32 {
        let step = usize::try_from(step).expect("step fits usize");
        if self.priorities.is_empty() {
            self.priorities = vec![0; powers.len()];
        }
        while self.sequence.len() <= step {
            let mut best = 0usize;
            for (i, p) in self.priorities.iter_mut().enumerate() {
                *p += i128::from(powers[i]);
            }
            for i in 1..powers.len() {
                if self.priorities[i] > self.priorities[best] {
                    best = i;
                }
            }
            self.priorities[best] -= total as i128;
            self.sequence.push(best as u32);
        }
        self.sequence[step]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportional_and_smooth() {
        let powers = [1u64, 2, 3, 4];
        let mut seq = ProposerSequence::default();
        let mut counts = [0u32; 4];
        for s in 0..1000 {
            counts[seq.proposer(&powers, 10, s) as usize] += 1;
        }
        assert_eq!(counts, [100, 200, 300, 400]);
        // Equal powers rotate round-robin.
        let mut eq = ProposerSequence::default();
        let picks: Vec<u32> = (0..8).map(|s| eq.proposer(&[5, 5, 5, 5], 20, s)).collect();
        assert_eq!(picks, vec![0, 1, 2, 3, 0, 1, 2, 3]);
        // Asking for an earlier step after a later one gives the same answer.
        assert_eq!(seq.proposer(&powers, 10, 3), {
            let mut s = ProposerSequence::default();
            s.proposer(&powers, 10, 3)
        });
    }
}
