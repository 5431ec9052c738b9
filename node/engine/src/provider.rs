//! Validator sets per epoch, from the genesis until the staking contract feeds set changes.
//!
//! Every epoch gets its own [`ValidatorSet`] value (its epoch number is part of what
//! validators sign), built once and cached with its validated BLS keys, so certificate checks
//! never re-validate keys. Sets are known for every height at once, which is what the
//! consensus machine needs: the set of `h + 1` as soon as `h` is decided.

use std::collections::BTreeMap;
use std::sync::Arc;

use bttd_consensus::validator_set::SetError;
use bttd_consensus::{Height, Validator, ValidatorSet, ValidatorSetProvider};
use parking_lot::Mutex;

/// Epochs kept in the cache (the current one and a few behind for syncing peers).
const CACHED_EPOCHS: usize = 8;

/// The genesis validators, repeated for every epoch.
#[derive(Debug)]
pub struct GenesisSets {
    validators: Vec<Validator>,
    epoch_length: u64,
    cache: Mutex<BTreeMap<u64, Arc<ValidatorSet>>>,
}

impl GenesisSets {
    /// `first` is the genesis set (already checked with proofs of possession).
    pub fn new(first: ValidatorSet, epoch_length: u64) -> Self {
        let validators = first.validators().to_vec();
        let mut cache = BTreeMap::new();
        cache.insert(0, Arc::new(first));
        Self {
            validators,
            epoch_length: epoch_length.max(1),
            cache: Mutex::new(cache),
        }
    }

    fn build(&self, epoch: u64) -> Result<ValidatorSet, SetError> {
        ValidatorSet::new(
            self.validators.clone(),
            epoch,
            epoch * self.epoch_length + 1,
        )
    }
}

impl ValidatorSetProvider for GenesisSets {
    /// Epoch `e` covers `e * len + 1 ..= (e + 1) * len`.
    fn epoch_of(&self, height: Height) -> u64 {
        height.saturating_sub(1) / self.epoch_length
    }

    fn validator_set(&self, height: Height) -> Option<Arc<ValidatorSet>> {
        let epoch = self.epoch_of(height);
        let mut cache = self.cache.lock();
        if let Some(set) = cache.get(&epoch) {
            return Some(set.clone());
        }
        let set = Arc::new(self.build(epoch).ok()?);
        cache.insert(epoch, set.clone());
        while cache.len() > CACHED_EPOCHS {
            // Keep epoch 0 (cheap) and the newest; drop the oldest others.
            let oldest = *cache.keys().nth(1).expect("more than one entry");
            cache.remove(&oldest);
        }
        Some(set)
    }
}
