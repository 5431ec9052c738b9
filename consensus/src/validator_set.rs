//! Validator sets, one per epoch, and the provider the engine asks for them.
//!
//! A set is immutable once built. It caches what is expensive and needed on
//! every certificate: the decoded, subgroup-checked BLS keys (so verifying a
//! certificate is one key aggregation plus one pairing check) and the proposer
//! sequence. Sets are shared as `Arc<ValidatorSet>` between the engine, the
//! node's certificate verification and the simulator's nodes.

use crate::bls::{self, BlsError, PublicKeyBytes, SignatureBytes};
use crate::proposer::ProposerSequence;
use crate::types::{Height, Round, ValidatorIndex, is_quorum};
use alloy_primitives::Address;
use blst::min_pk::PublicKey;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

/// One validator of an epoch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Validator {
    /// Account address (secp256k1), used for rewards and the Tron checkpoints.
    pub address: Address,
    /// Compressed BLS public key.
    pub public_key: PublicKeyBytes,
    /// Voting power (stake); must be positive.
    pub power: u64,
}

/// Why a set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// No validators.
    #[error("empty validator set")]
    Empty,
    /// A validator with zero power.
    #[error("validator {0} has zero power")]
    ZeroPower(usize),
    /// Two validators share a BLS key.
    #[error("duplicate BLS public key at index {0}")]
    DuplicateKey(usize),
    /// Two validators share an address.
    #[error("duplicate address at index {0}")]
    DuplicateAddress(usize),
    /// A key failed validation or its proof of possession failed.
    #[error("validator {index}: {error}")]
    Key {
        /// Position in the set.
        index: usize,
        /// What was wrong.
        error: BlsError,
    },
    /// Too many validators for a `u32` index.
    #[error("too many validators")]
    TooMany,
}

/// The validators of one epoch.
#[derive(Debug)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    powers: Vec<u64>,
    total_power: u128,
    epoch: u64,
    first_height: Height,
    bls_keys: OnceLock<Result<Vec<PublicKey>, SetError>>,
    proposers: Mutex<ProposerSequence>,
}

impl ValidatorSet {
    /// Builds a set after structural checks (non-empty, positive powers,
    /// unique keys and addresses). BLS keys are validated lazily, the first
    /// time a BLS signature is checked against the set; use
    /// [`ValidatorSet::new_with_proofs`] for sets coming from genesis or the
    /// staking contract, where proofs of possession must be checked.
    pub fn new(
        validators: Vec<Validator>,
        epoch: u64,
        first_height: Height,
    ) -> Result<Self, SetError> {
        if validators.is_empty() {
            return Err(SetError::Empty);
        }
        if u32::try_from(validators.len()).is_err() {
            return Err(SetError::TooMany);
        }
        let mut keys = HashSet::new();
        let mut addrs = HashSet::new();
        for (i, v) in validators.iter().enumerate() {
            if v.power == 0 {
                return Err(SetError::ZeroPower(i));
            }
            if !keys.insert(v.public_key) {
                return Err(SetError::DuplicateKey(i));
            }
            if !addrs.insert(v.address) {
                return Err(SetError::DuplicateAddress(i));
            }
        }
        let powers: Vec<u64> = validators.iter().map(|v| v.power).collect();
        let total_power = powers.iter().map(|&p| u128::from(p)).sum();
        Ok(Self {
            validators,
            powers,
            total_power,
            epoch,
            first_height,
            bls_keys: OnceLock::new(),
            proposers: Mutex::new(ProposerSequence::default()),
        })
    }

    /// Builds a set whose every key is validated (subgroup, not infinity),
    /// unique, and accompanied by a valid proof of possession. The validated
    /// keys are cached for certificate verification.
    pub fn new_with_proofs(
        entries: Vec<(Validator, SignatureBytes)>,
        epoch: u64,
        first_height: Height,
    ) -> Result<Self, SetError> {
        let mut keys = Vec::with_capacity(entries.len());
        for (index, (v, pop)) in entries.iter().enumerate() {
            let key = bls::validate_public_key(&v.public_key)
                .map_err(|error| SetError::Key { index, error })?;
            bls::verify_proof_of_possession(&key, pop)
                .map_err(|error| SetError::Key { index, error })?;
            keys.push(key);
        }
        let set = Self::new(
            entries.into_iter().map(|(v, _)| v).collect(),
            epoch,
            first_height,
        )?;
        let _ = set.bls_keys.set(Ok(keys));
        Ok(set)
    }

    /// The validators in index order.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// Number of validators.
    pub fn len(&self) -> usize {
        self.validators.len()
    }

    /// Always false: sets are never empty.
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    /// Epoch number.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// First height of the epoch.
    pub fn first_height(&self) -> Height {
        self.first_height
    }

    /// Sum of all powers.
    pub fn total_power(&self) -> u128 {
        self.total_power
    }

    /// Power of one validator (0 when out of range).
    pub fn power(&self, index: ValidatorIndex) -> u64 {
        self.powers.get(index as usize).copied().unwrap_or(0)
    }

    /// Index of the validator with this key.
    pub fn index_of(&self, key: &PublicKeyBytes) -> Option<ValidatorIndex> {
        self.validators
            .iter()
            .position(|v| &v.public_key == key)
            .map(|i| i as u32)
    }

    /// Whether `power` is more than two thirds of the total.
    pub fn is_quorum(&self, power: u128) -> bool {
        is_quorum(power, self.total_power)
    }

    /// The validated BLS keys, decoded and checked once per set.
    pub fn bls_keys(&self) -> Result<&[PublicKey], SetError> {
        self.bls_keys
            .get_or_init(|| {
                self.validators
                    .iter()
                    .enumerate()
                    .map(|(index, v)| {
                        bls::validate_public_key(&v.public_key)
                            .map_err(|error| SetError::Key { index, error })
                    })
                    .collect()
            })
            .as_ref()
            .map(|v| v.as_slice())
            .map_err(Clone::clone)
    }

    /// The proposer of `(height, round)`; `height` must be in this epoch.
    pub fn proposer(&self, height: Height, round: Round) -> ValidatorIndex {
        let step = height.saturating_sub(self.first_height) + u64::from(round);
        self.proposers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .proposer(&self.powers, self.total_power, step)
    }
}

/// Source of validator sets: the engine asks for the set of a height's epoch.
///
/// The node backs this with genesis and, later, the staking contract (the
/// last block of epoch `e` commits to the set of `e + 1`); tests inject sets.
/// It must return the set for `h + 1` as soon as height `h` is decided; when
/// it cannot yet, the engine waits for `Input::ValidatorSetAvailable`.
pub trait ValidatorSetProvider: Send + Sync + std::fmt::Debug {
    /// The set that validates `height`, if known.
    fn validator_set(&self, height: Height) -> Option<Arc<ValidatorSet>>;
    /// The epoch of `height`: sets change only between epochs, and the last block of an
    /// epoch commits to the next one's set.
    fn epoch_of(&self, height: Height) -> u64;
}

/// A provider with a fixed list of epochs of fixed length, for tests and the
/// simulator: epoch `e` covers heights `e * len + 1 ..= (e + 1) * len`.
#[derive(Debug, Clone)]
pub struct StaticProvider {
    epoch_length: u64,
    sets: Vec<Arc<ValidatorSet>>,
}

impl StaticProvider {
    /// `sets[e]` validates epoch `e`; the last set is reused for later epochs.
    /// Each set's `first_height` should be `e * epoch_length + 1`.
    pub fn new(epoch_length: u64, sets: Vec<Arc<ValidatorSet>>) -> Self {
        assert!(epoch_length > 0 && !sets.is_empty());
        Self { epoch_length, sets }
    }
}

impl ValidatorSetProvider for StaticProvider {
    fn epoch_of(&self, height: Height) -> u64 {
        height.saturating_sub(1) / self.epoch_length
    }

    fn validator_set(&self, height: Height) -> Option<Arc<ValidatorSet>> {
        let e = self.epoch_of(height) as usize;
        Some(
            self.sets
                .get(e)
                .unwrap_or_else(|| self.sets.last().expect("non-empty"))
                .clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bls::BlsSecretKey;

    fn val(i: u8, key: PublicKeyBytes) -> Validator {
        Validator {
            address: Address::repeat_byte(i),
            public_key: key,
            power: 10,
        }
    }

    #[test]
    fn proofs_checked_and_keys_unique() {
        let sks: Vec<_> = (1..=3u8)
            .map(|i| BlsSecretKey::from_ikm(&[i; 32]).unwrap())
            .collect();
        let entries: Vec<_> = sks
            .iter()
            .enumerate()
            .map(|(i, k)| (val(i as u8, k.public_key()), k.proof_of_possession()))
            .collect();
        let set = ValidatorSet::new_with_proofs(entries.clone(), 0, 1).unwrap();
        assert_eq!(set.bls_keys().unwrap().len(), 3);
        // Wrong PoP.
        let mut bad = entries.clone();
        bad[1].1 = sks[0].proof_of_possession();
        assert!(matches!(
            ValidatorSet::new_with_proofs(bad, 0, 1),
            Err(SetError::Key { index: 1, .. })
        ));
        // Duplicate key.
        let mut dup = entries.clone();
        dup[2].0.public_key = sks[0].public_key();
        dup[2].1 = sks[0].proof_of_possession();
        assert_eq!(
            ValidatorSet::new_with_proofs(dup, 0, 1).unwrap_err(),
            SetError::DuplicateKey(2)
        );
        // Infinity key.
        let mut inf = [0u8; 48];
        inf[0] = 0xc0;
        let mut infs = entries;
        infs[0].0.public_key = PublicKeyBytes::from(inf);
        assert!(matches!(
            ValidatorSet::new_with_proofs(infs, 0, 1),
            Err(SetError::Key { index: 0, .. })
        ));
    }
}
