//! Validator sets read from chain state (issue 12): the set of epoch `e` is what StakeManager's
//! `validatorSet()` returns on the state after block `e * epochLength`, the block whose
//! `endEpoch` installed it (genesis for epoch 0). A node knows a set once it has executed
//! that block, which is exactly when consensus needs it: the set of `h + 1` right after `h`
//! is committed.
//!
//! Each epoch's set is read once (an EVM view call on the archived state) and kept with its
//! validated BLS keys and the owners by index, which the rewards call needs. The commit of an
//! epoch's last block warms the cache on the blocking pool ([`ChainSets::preload`]), so the
//! engine's loop does not read the database at the boundary.

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy_primitives::Address;
use bttd_consensus::{CommitCertificate, Height, Validator, ValidatorSet, ValidatorSetProvider};
use bttd_runtime::staking::{self, StakingError};
use bttd_runtime::{Chain, StakedSet, StakingConfig};
use parking_lot::Mutex;

/// Epochs kept in memory: the current one and a few behind for late votes and sync.
const CACHED_EPOCHS: usize = 8;

/// One epoch's set in both forms.
#[derive(Debug)]
pub struct EpochSet {
    /// What consensus checks votes against (address = the signer, the block's miner).
    pub set: Arc<ValidatorSet>,
    /// StakeManager's view: owners, signers, keys, powers, in the same order.
    pub staked: StakedSet,
}

/// Why an epoch's set could not be had: a fault of this node (its state or its contract).
#[derive(Debug, thiserror::Error)]
pub enum SetReadError {
    #[error("reading the set of epoch {epoch}: {source}")]
    Read { epoch: u64, source: StakingError },
    #[error("StakeManager's set after block {block} is of epoch {got}, expected {epoch}")]
    WrongEpoch { block: u64, epoch: u64, got: u64 },
    #[error("the set of epoch {epoch} is not a valid consensus set: {source}")]
    Invalid {
        epoch: u64,
        source: bttd_consensus::validator_set::SetError,
    },
}

/// The validator-set provider of a staking chain.
#[derive(Debug)]
pub struct ChainSets {
    chain: Arc<Chain>,
    staking: StakingConfig,
    cache: Mutex<BTreeMap<u64, Arc<EpochSet>>>,
}

impl ChainSets {
    pub fn new(chain: Arc<Chain>, staking: StakingConfig) -> Self {
        Self {
            chain,
            staking,
            cache: Mutex::new(BTreeMap::new()),
        }
    }

    /// The staking parameters the sets follow.
    pub fn staking(&self) -> &StakingConfig {
        &self.staking
    }

    /// The set of `epoch`, or `None` while the block that installs it is not executed.
    pub fn epoch(&self, epoch: u64) -> Result<Option<Arc<EpochSet>>, SetReadError> {
        if let Some(set) = self.cache.lock().get(&epoch) {
            return Ok(Some(set.clone()));
        }
        let block = self.staking.set_block(epoch);
        if block > self.chain.head().number {
            return Ok(None);
        }
        let staked = staking::set_after(&self.chain, block)
            .map_err(|source| SetReadError::Read { epoch, source })?;
        if staked.epoch != epoch {
            return Err(SetReadError::WrongEpoch {
                block,
                epoch,
                got: staked.epoch,
            });
        }
        let validators = staked
            .validators
            .iter()
            .map(|v| Validator {
                address: v.signer,
                public_key: v.bls_public_key,
                power: v.power,
            })
            .collect();
        let first_height = block + 1;
        let set = ValidatorSet::new(validators, epoch, first_height)
            .map_err(|source| SetReadError::Invalid { epoch, source })?;
        let entry = Arc::new(EpochSet {
            set: Arc::new(set),
            staked,
        });
        let mut cache = self.cache.lock();
        cache.insert(epoch, entry.clone());
        while cache.len() > CACHED_EPOCHS {
            let oldest = *cache.keys().next().expect("non-empty");
            cache.remove(&oldest);
        }
        Ok(Some(entry))
    }

    /// The set that validates `height`.
    pub fn at_height(&self, height: Height) -> Result<Option<Arc<EpochSet>>, SetReadError> {
        self.epoch(self.staking.epoch_of(height))
    }

    /// Reads the set `height` installs, if it ends an epoch (after its commit).
    pub fn preload(&self, height: Height) -> Result<(), SetReadError> {
        if self.staking.ends_epoch(height) {
            self.at_height(height + 1)?;
        }
        Ok(())
    }

    /// The owners, ascending, whose precommits `certificate` holds: the validators block
    /// `certificate.height + 1`'s rewards call pays. `None` if the set of the certificate's
    /// height is unknown or its bitmap does not fit that set.
    pub fn certificate_owners(
        &self,
        certificate: &CommitCertificate,
    ) -> Result<Option<Vec<Address>>, SetReadError> {
        let Some(epoch) = self.at_height(certificate.height)? else {
            return Ok(None);
        };
        Ok(certificate
            .signers
            .indices(epoch.staked.validators.len())
            .and_then(|indices| {
                epoch
                    .staked
                    .owners_of(indices.into_iter().map(|i| i as usize))
            }))
    }
}

impl ValidatorSetProvider for ChainSets {
    fn epoch_of(&self, height: Height) -> u64 {
        self.staking.epoch_of(height)
    }

    /// A set this node cannot read although it executed the block that installed it is a
    /// fault of ours: logged loudly; consensus then waits rather than guess.
    fn validator_set(&self, height: Height) -> Option<Arc<ValidatorSet>> {
        match self.at_height(height) {
            Ok(set) => set.map(|e| e.set.clone()),
            Err(error) => {
                tracing::error!(target: "bttd::consensus", height, %error, "cannot read the validator set");
                None
            }
        }
    }
}
