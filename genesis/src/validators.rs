//! The genesis validator set, checked when a genesis file is loaded.
//!
//! Certificates are verified with fast-aggregate-verify, which is only sound when every key
//! in the set is a valid subgroup point (not infinity), unique, and backed by a proof of
//! possession (otherwise one validator could register a rogue key and forge an aggregate).
//! So a genesis whose validators break any of these rules is refused at load time, before a
//! node writes anything, with the offending validator named.

use alloy_primitives::Address;
use bttd_consensus::validator_set::SetError;
use bttd_consensus::{Validator, ValidatorSet};

use crate::spec::{ChainSpec, GenesisError, GenesisValidator};

/// Epoch of the genesis set.
pub const GENESIS_EPOCH: u64 = 0;
/// The genesis set validates blocks from height 1.
pub const GENESIS_FIRST_HEIGHT: u64 = 1;

impl ChainSpec {
    /// The genesis validator set: every key validated, unique and with a valid proof of
    /// possession, every power positive and every address unique.
    ///
    /// Fails with [`GenesisError::NoValidators`] on a single-producer genesis (no validators).
    pub fn validator_set(&self) -> Result<ValidatorSet, GenesisError> {
        build_set(&self.params.validators)
    }
}

pub(crate) fn build_set(validators: &[GenesisValidator]) -> Result<ValidatorSet, GenesisError> {
    if validators.is_empty() {
        return Err(GenesisError::NoValidators);
    }
    let entries = validators
        .iter()
        .map(|v| {
            (
                Validator {
                    address: v.address,
                    public_key: v.bls_public_key,
                    power: v.power,
                },
                v.proof_of_possession,
            )
        })
        .collect();
    ValidatorSet::new_with_proofs(entries, GENESIS_EPOCH, GENESIS_FIRST_HEIGHT).map_err(|error| {
        let index = set_error_index(&error);
        GenesisError::Validator {
            address: index.and_then(|i| validators.get(i)).map(|v| v.address),
            error,
        }
    })
}

fn set_error_index(error: &SetError) -> Option<usize> {
    match error {
        SetError::ZeroPower(i) | SetError::DuplicateKey(i) | SetError::DuplicateAddress(i) => {
            Some(*i)
        }
        SetError::Key { index, .. } => Some(*index),
        SetError::Empty | SetError::TooMany => None,
    }
}

/// Formats the address part of a [`GenesisError::Validator`] message.
pub(crate) fn describe(address: &Option<Address>) -> String {
    match address {
        Some(address) => format!(" ({address})"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::BttdParams;
    use crate::{DevnetOptions, devnet_genesis};
    use alloy_primitives::FixedBytes;
    use bttd_consensus::bls::{BlsError, BlsSecretKey};

    fn validator(i: u8) -> GenesisValidator {
        let key = BlsSecretKey::from_ikm(&[i; 32]).unwrap();
        GenesisValidator::new(
            Address::repeat_byte(i),
            key.public_key(),
            key.proof_of_possession(),
            100,
        )
    }

    fn spec_with(validators: Vec<GenesisValidator>) -> Result<ChainSpec, GenesisError> {
        let (spec, _) = devnet_genesis(&DevnetOptions {
            accounts: 1,
            ..Default::default()
        })
        .unwrap();
        let params = BttdParams {
            validators,
            ..spec.params.clone()
        };
        let mut spec = ChainSpec::new(spec.genesis, params)?;
        // StakeManager as these validators make it (a loaded genesis must match its config).
        let stake_manager = crate::system_contracts::stake_manager(&spec.params)?;
        spec.genesis.alloc.insert(
            crate::system_contracts::STAKE_MANAGER_ADDRESS,
            stake_manager,
        );
        Ok(spec)
    }

    #[test]
    fn a_valid_set_loads_and_round_trips_through_json() {
        let spec = spec_with((1..=4).map(validator).collect()).unwrap();
        let set = spec.validator_set().unwrap();
        assert_eq!(set.len(), 4);
        assert_eq!(set.total_power(), 400);
        assert_eq!(set.epoch(), GENESIS_EPOCH);
        assert_eq!(set.first_height(), GENESIS_FIRST_HEIGHT);
        assert_eq!(set.bls_keys().unwrap().len(), 4);
        let parsed = ChainSpec::from_json(&spec.to_json()).unwrap();
        assert_eq!(parsed.params.validators, spec.params.validators);
    }

    #[test]
    fn a_genesis_without_validators_has_no_set() {
        let spec = spec_with(Vec::new()).unwrap();
        assert!(matches!(
            spec.validator_set(),
            Err(GenesisError::NoValidators)
        ));
    }

    #[test]
    fn a_bad_proof_of_possession_is_refused() {
        let mut validators: Vec<_> = (1..=3).map(validator).collect();
        // Validator 2's proof is validator 3's: a valid signature, but not over key 2.
        validators[1].proof_of_possession = validators[2].proof_of_possession;
        let err = spec_with(validators).unwrap_err();
        assert!(
            matches!(
                &err,
                GenesisError::Validator {
                    address: Some(a),
                    error: SetError::Key { index: 1, error: BlsError::BadProofOfPossession },
                } if *a == Address::repeat_byte(2)
            ),
            "{err}"
        );
        let message = err.to_string();
        assert!(message.contains("proof of possession"), "{message}");
        assert!(
            message.contains(&Address::repeat_byte(2).to_string()),
            "{message}"
        );
    }

    #[test]
    fn a_duplicate_key_is_refused() {
        let mut validators: Vec<_> = (1..=3).map(validator).collect();
        let mut copy = validators[0].clone();
        copy.address = Address::repeat_byte(9);
        validators.push(copy);
        let err = spec_with(validators).unwrap_err();
        assert!(
            matches!(
                err,
                GenesisError::Validator {
                    error: SetError::DuplicateKey(3),
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("duplicate BLS public key"));
    }

    #[test]
    fn the_infinity_key_is_refused() {
        let mut validators: Vec<_> = (1..=2).map(validator).collect();
        // The compressed encoding of the G1 point at infinity: flags 0xc0, then zeros.
        let mut infinity = [0u8; 48];
        infinity[0] = 0xc0;
        validators[0].bls_public_key = FixedBytes(infinity);
        let err = spec_with(validators).unwrap_err();
        assert!(
            matches!(
                err,
                GenesisError::Validator {
                    error: SetError::Key {
                        index: 0,
                        error: BlsError::Infinity
                    },
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("infinity"));
    }

    #[test]
    fn a_key_that_is_not_a_curve_point_is_refused() {
        let mut validators: Vec<_> = (1..=2).map(validator).collect();
        validators[1].bls_public_key = FixedBytes([0xab; 48]);
        let err = spec_with(validators).unwrap_err();
        assert!(
            matches!(
                err,
                GenesisError::Validator {
                    error: SetError::Key { index: 1, .. },
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn zero_power_is_refused() {
        let mut validators: Vec<_> = (1..=3).map(validator).collect();
        validators[2].power = 0;
        let err = spec_with(validators).unwrap_err();
        assert!(
            matches!(
                err,
                GenesisError::Validator {
                    error: SetError::ZeroPower(2),
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("zero power"));
    }

    #[test]
    fn a_duplicate_address_is_refused() {
        let mut validators: Vec<_> = (1..=3).map(validator).collect();
        validators[2].address = validators[0].address;
        let err = spec_with(validators).unwrap_err();
        assert!(
            matches!(
                err,
                GenesisError::Validator {
                    error: SetError::DuplicateAddress(2),
                    ..
                }
            ),
            "{err}"
        );
    }

    /// StakeManager keeps its parameters in its storage: a staking key edited in the config
    /// alone would not apply, so such a file is refused.
    #[test]
    fn a_staking_key_edited_in_the_config_alone_is_refused_at_load() {
        let spec = spec_with((1..=4).map(validator).collect()).unwrap();
        let json = spec.to_json();
        ChainSpec::from_json(&json).unwrap();
        let mut edited: serde_json::Value = serde_json::from_str(&json).unwrap();
        edited["config"]["bttd"]["staking"]["downtimeWindow"] = 16.into();
        let err = ChainSpec::from_json(&edited.to_string()).unwrap_err();
        assert!(err.to_string().contains("StakeManager account"), "{err}");
    }

    #[test]
    fn a_bad_validator_in_a_json_file_is_refused_at_load() {
        let spec = spec_with((1..=2).map(validator).collect()).unwrap();
        let mut json: serde_json::Value = serde_json::from_str(&spec.to_json()).unwrap();
        json["config"]["bttd"]["validators"][0]["blsPublicKey"] =
            json["config"]["bttd"]["validators"][1]["blsPublicKey"].clone();
        let err = ChainSpec::from_json(&json.to_string()).unwrap_err();
        assert!(err.to_string().contains("proof of possession"), "{err}");
    }

    /// Issue 12: power is floor(stake / 1 BTT); a stake alone gives it, a power alone gives
    /// the stake, and a power that disagrees is refused.
    #[test]
    fn power_is_derived_from_stake_and_a_disagreeing_power_is_refused() {
        let btt = alloy_primitives::U256::from(crate::WEI_PER_BTT);
        let mut staked = validator(1);
        staked.power = 0;
        staked.stake = btt * alloy_primitives::U256::from(250) + alloy_primitives::U256::from(7);
        let spec = spec_with(vec![staked.clone(), validator(2)]).unwrap();
        assert_eq!(spec.params.validators[0].power, 250);
        assert_eq!(
            spec.params.validators[1].stake,
            btt * alloy_primitives::U256::from(100)
        );
        staked.power = 251;
        let err = spec_with(vec![staked, validator(2)]).unwrap_err();
        assert!(err.to_string().contains("disagrees with stake"), "{err}");
    }

    #[test]
    fn a_zero_epoch_length_is_refused_with_validators() {
        let (spec, _) = devnet_genesis(&DevnetOptions {
            accounts: 1,
            ..Default::default()
        })
        .unwrap();
        let params = BttdParams {
            validators: vec![validator(1)],
            epoch_length: 0,
            ..spec.params.clone()
        };
        let err = ChainSpec::new(spec.genesis, params).unwrap_err();
        assert!(err.to_string().contains("epochLength"), "{err}");
    }
}
