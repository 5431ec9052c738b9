//! The simulator's validator sets, with StakeManager's tombstoning modelled: an identity
//! whose double-signing evidence a committed block carries leaves every set from the next
//! epoch on (issue 13). The evidence itself goes the shipped way (the engine detects it, the
//! proposer's `NodeApp` includes it, voters check it); only the contract's bookkeeping is
//! replaced by this rule, whose amounts the contract and app tests check.
//!
//! Determinism: the set of epoch `e` is fixed when the first node commits block
//! `e · len − 1`, the block before the epoch's last (whose proposer must know the set to
//! commit to it), and excludes the offenders of every block up to it. No node can have
//! committed a later block by then, and an honest engine asks for the set of `e` only after
//! committing that block itself (it looks one height ahead at most), so every node gets the
//! same set. A byzantine node asking earlier gets the set as it would be now.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use bttd_consensus::bls::PublicKeyBytes;
use bttd_consensus::{Height, ValidatorSet, ValidatorSetProvider};

/// Builds the set of an epoch from `(identity, power)` members.
pub(crate) type MakeSet = Box<dyn Fn(u64, &[(usize, u64)]) -> Arc<ValidatorSet> + Send + Sync>;

/// See the module docs. Without `tombstoning` it is a fixed list of sets.
pub(crate) struct SimSets {
    epoch_length: u64,
    /// Per epoch the configured members; the last is reused.
    configured: Vec<Vec<(usize, u64)>>,
    make: MakeSet,
    identities: Vec<PublicKeyBytes>,
    tombstoning: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    tombstoned: BTreeSet<usize>,
    /// Epoch -> its set once fixed (epoch 0 from the start).
    fixed: BTreeMap<u64, Arc<ValidatorSet>>,
    /// Identity -> the height of the first block that carried its evidence.
    slashed: BTreeMap<usize, Height>,
}

impl std::fmt::Debug for SimSets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimSets")
            .field("epoch_length", &self.epoch_length)
            .field("tombstoning", &self.tombstoning)
            .finish_non_exhaustive()
    }
}

impl SimSets {
    pub(crate) fn new(
        epoch_length: u64,
        configured: Vec<Vec<(usize, u64)>>,
        identities: Vec<PublicKeyBytes>,
        tombstoning: bool,
        make: MakeSet,
    ) -> Self {
        assert!(epoch_length > 0 && !configured.is_empty());
        let sets = Self {
            epoch_length,
            configured,
            make,
            identities,
            tombstoning,
            state: Mutex::default(),
        };
        let first = sets.compute(0, &BTreeSet::new());
        sets.lock().fixed.insert(0, first);
        // With one-block epochs, the set of epoch 1 hangs on block 0: genesis.
        sets.on_commit(0, &[]);
        sets
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn compute(&self, epoch: u64, tombstoned: &BTreeSet<usize>) -> Arc<ValidatorSet> {
        let members = self
            .configured
            .get(epoch as usize)
            .or(self.configured.last())
            .expect("non-empty");
        let kept: Vec<(usize, u64)> = members
            .iter()
            .copied()
            .filter(|(id, _)| !tombstoned.contains(id))
            .collect();
        // Never an empty set: the scenarios keep the honest majority anyway.
        let kept = if kept.is_empty() { members } else { &kept };
        (self.make)(epoch, kept)
    }

    /// The identity holding `key`, if any.
    pub(crate) fn identity_of(&self, key: &PublicKeyBytes) -> Option<usize> {
        self.identities.iter().position(|k| k == key)
    }

    /// A node committed block `height`, carrying evidence against `offenders`.
    pub(crate) fn on_commit(&self, height: Height, offenders: &[usize]) {
        let mut state = self.lock();
        if self.tombstoning {
            for &id in offenders {
                state.slashed.entry(id).or_insert(height);
                state.tombstoned.insert(id);
            }
        }
        // Block `e · len − 1` fixes the set of epoch `e`.
        let next = height + 1;
        if next.is_multiple_of(self.epoch_length) {
            let epoch = next / self.epoch_length;
            if !state.fixed.contains_key(&epoch) {
                let set = self.compute(epoch, &state.tombstoned);
                state.fixed.insert(epoch, set);
            }
        }
    }

    /// Identities slashed, with the first block that carried their evidence.
    pub(crate) fn slashed(&self) -> BTreeMap<usize, Height> {
        self.lock().slashed.clone()
    }
}

impl ValidatorSetProvider for SimSets {
    fn epoch_of(&self, height: Height) -> u64 {
        height.saturating_sub(1) / self.epoch_length
    }

    fn validator_set(&self, height: Height) -> Option<Arc<ValidatorSet>> {
        let epoch = self.epoch_of(height);
        let mut state = self.lock();
        if let Some(set) = state.fixed.get(&epoch) {
            return Some(set.clone());
        }
        let set = self.compute(epoch, &state.tombstoned);
        if !self.tombstoning {
            state.fixed.insert(epoch, set.clone()); // depends on nothing: keep it
        }
        Some(set)
    }
}
