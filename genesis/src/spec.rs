//! Loading, checking and writing a chain spec.

use std::path::Path;

use alloy_genesis::Genesis;
use alloy_primitives::{Address, B256, U256, address};
use bttd_runtime::{ChainConfig, StakingConfig};
use serde::{Deserialize, Serialize};

/// The key under `config` that holds [`BttdParams`].
pub const PARAMS_KEY: &str = "bttd";

/// Where the base fee goes unless the genesis says otherwise. The staking contract will live
/// here and pay the pool out to validators.
pub const DEFAULT_FEE_POOL: Address = address!("0x0000000000000000000000000000000000001000");

#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("genesis json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("genesis config has no `{PARAMS_KEY}` section")]
    MissingParams,
    #[error("invalid genesis: {0}")]
    Invalid(String),
    #[error("running creation code of {name}: {reason}")]
    Creation { name: String, reason: String },
    #[error("deriving dev account {index}: {reason}")]
    DevAccount { index: u32, reason: String },
    #[error("invalid genesis validator{}: {error}", crate::validators::describe(.address))]
    Validator {
        /// The offending validator's account, when the error names one.
        address: Option<Address>,
        error: bttd_consensus::validator_set::SetError,
    },
    #[error("the genesis has no validators (a single-producer chain)")]
    NoValidators,
}

/// bttd's own chain parameters, stored at `config.bttd` of genesis.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BttdParams {
    /// The base fee never falls below this (wei).
    pub min_base_fee: u64,
    /// Receives every transaction's base fee.
    pub fee_pool: Address,
    /// The genesis validator set (empty: a single-producer devnet without consensus).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validators: Vec<GenesisValidator>,
    /// Blocks per validator-set epoch.
    #[serde(default = "default_epoch_length")]
    pub epoch_length: u64,
    /// Parameters of the bandwidth payment channels contract.
    #[serde(default)]
    pub channels: ChannelParams,
    /// Parameters of the staking contract (docs/staking.md).
    #[serde(default)]
    pub staking: StakingParams,
}

/// One BTT in wei: the unit of voting power (power = floor(stake / 1 BTT)).
pub const WEI_PER_BTT: u128 = 1_000_000_000_000_000_000;

/// The staking contract's parameters (`config.bttd.staking`, docs/staking.md "Parameters").
/// Amounts are in wei (a JSON number or a decimal or 0x string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct StakingParams {
    /// Smallest self-stake of a validator (wei, at least 1 BTT).
    pub min_self_stake: U256,
    /// Smallest delegation (wei).
    pub min_delegation: U256,
    /// Largest validator set.
    pub max_validators: u64,
    /// Epochs an undelegated stake stays slashable before it can be withdrawn.
    pub unbonding_epochs: u64,
    /// BTT created per block and paid out with the block's base fees (wei).
    pub issuance_per_block: U256,
    /// Share of a block's reward paid to its proposer, in basis points.
    pub proposer_bonus_bps: u16,
    /// Share of the stake bonded at a double-signing offence that is slashed, in basis points.
    pub slash_double_sign_bps: u16,
    /// Share of the bonded stake slashed when a validator is jailed for downtime, in bps.
    pub slash_downtime_bps: u16,
    /// Blocks per downtime window (windows are counted from block 1, back to back).
    pub downtime_window: u64,
    /// A validator that signs fewer than this share of a window's blocks is jailed, in bps.
    pub downtime_min_signed_bps: u16,
    /// Epochs a validator jailed for downtime waits before `unjail()` works.
    pub jail_epochs: u64,
}

impl Default for StakingParams {
    /// Values for a public chain (docs/staking.md gives the reason for each).
    fn default() -> Self {
        Self {
            min_self_stake: U256::from(10_000_000u64) * U256::from(WEI_PER_BTT),
            min_delegation: U256::from(WEI_PER_BTT),
            max_validators: 100,
            unbonding_epochs: 85,
            issuance_per_block: U256::ZERO,
            proposer_bonus_bps: 1_000,
            slash_double_sign_bps: 500,
            slash_downtime_bps: 1,
            downtime_window: 10_000,
            downtime_min_signed_bps: 500,
            jail_epochs: 2,
        }
    }
}

impl StakingParams {
    /// Values for `bttd devnet` and `bttd testnet init`: 1 BTT minimum self-stake, 1 BTT
    /// issued per block, unbonding of 2 epochs, downtime windows of 100 blocks of which half
    /// must be signed, jail of 1 epoch, so a test sees every step in seconds.
    pub fn devnet() -> Self {
        Self {
            min_self_stake: U256::from(WEI_PER_BTT),
            unbonding_epochs: 2,
            issuance_per_block: U256::from(WEI_PER_BTT),
            downtime_window: 100,
            downtime_min_signed_bps: 5_000,
            jail_epochs: 1,
            ..Self::default()
        }
    }
}

/// One genesis validator: its accounts, its BLS key with proof of possession, and its stake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenesisValidator {
    /// The validator node's account (secp256k1): it mines the validator's blocks and
    /// receives their priority fees. StakeManager's `signer`.
    pub address: Address,
    /// StakeManager's owner of the validator (holds the self-stake, receives commission);
    /// `address` if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Address>,
    /// The signer, if given: it must be `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<Address>,
    /// Compressed BLS12-381 G1 public key (48 bytes).
    pub bls_public_key: alloy_primitives::FixedBytes<48>,
    /// BLS proof of possession of `bls_public_key` (96 bytes, POP DST).
    pub proof_of_possession: alloy_primitives::FixedBytes<96>,
    /// Self-stake in wei, held by StakeManager from block 0. If absent, `power` BTT.
    #[serde(default, skip_serializing_if = "U256::is_zero")]
    pub stake: U256,
    /// Voting power: floor(stake / 1 BTT). Derived from `stake` if absent; a power that
    /// disagrees with the stake is refused.
    #[serde(default)]
    pub power: u64,
}

impl GenesisValidator {
    /// A validator that owns itself, with a self-stake of `power` BTT.
    pub fn new(
        address: Address,
        bls_public_key: alloy_primitives::FixedBytes<48>,
        proof_of_possession: alloy_primitives::FixedBytes<96>,
        power: u64,
    ) -> Self {
        Self {
            address,
            owner: None,
            signer: None,
            bls_public_key,
            proof_of_possession,
            stake: U256::ZERO,
            power,
        }
    }

    /// The owner StakeManager records.
    pub fn owner(&self) -> Address {
        self.owner.unwrap_or(self.address)
    }

    /// Fills in whichever of `stake` and `power` is absent from the other, and refuses a pair
    /// that disagrees or a signer that is not `address`.
    fn complete(&mut self) -> Result<(), GenesisError> {
        let who = self.address;
        if let Some(signer) = self.signer
            && signer != self.address
        {
            return Err(GenesisError::Invalid(format!(
                "validator {who}: signer {signer} must be its address"
            )));
        }
        let btt = U256::from(WEI_PER_BTT);
        if self.stake.is_zero() {
            self.stake = U256::from(self.power)
                .checked_mul(btt)
                .expect("u64 BTT fits in 256 bits");
            return Ok(());
        }
        let derived = u64::try_from(self.stake / btt).map_err(|_| {
            GenesisError::Invalid(format!(
                "validator {who}: stake {} is too large",
                self.stake
            ))
        })?;
        if self.power != 0 && self.power != derived {
            return Err(GenesisError::Invalid(format!(
                "validator {who}: power {} disagrees with stake {} wei (power = floor(stake / 1 BTT) = {derived})",
                self.power, self.stake
            )));
        }
        self.power = derived;
        Ok(())
    }
}

/// Bounds on a payment channel's settle window, in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelParams {
    pub min_settle_window: u64,
    pub max_settle_window: u64,
}

impl Default for ChannelParams {
    fn default() -> Self {
        Self {
            min_settle_window: 3600,
            max_settle_window: 30 * 24 * 3600,
        }
    }
}

fn default_epoch_length() -> u64 {
    DEFAULT_EPOCH_LENGTH
}

/// Blocks per epoch unless the genesis says otherwise.
pub const DEFAULT_EPOCH_LENGTH: u64 = 1_000;

impl Default for BttdParams {
    fn default() -> Self {
        Self {
            min_base_fee: 1_000_000_000,
            fee_pool: DEFAULT_FEE_POOL,
            validators: Vec::new(),
            epoch_length: DEFAULT_EPOCH_LENGTH,
            channels: ChannelParams::default(),
            staking: StakingParams::default(),
        }
    }
}

/// A genesis file with its bttd parameters parsed and checked.
#[derive(Debug, Clone)]
pub struct ChainSpec {
    pub genesis: Genesis,
    pub params: BttdParams,
}

impl BttdParams {
    /// Fills in each validator's stake or power from the other (see [`GenesisValidator`]).
    pub(crate) fn complete_validators(&mut self) -> Result<(), GenesisError> {
        self.validators
            .iter_mut()
            .try_for_each(GenesisValidator::complete)
    }
}

impl ChainSpec {
    pub fn new(mut genesis: Genesis, mut params: BttdParams) -> Result<Self, GenesisError> {
        params.complete_validators()?;
        genesis
            .config
            .extra_fields
            .insert_value(PARAMS_KEY.to_string(), &params)?;
        let spec = Self { genesis, params };
        spec.validate()?;
        Ok(spec)
    }

    pub fn from_json(json: &str) -> Result<Self, GenesisError> {
        let genesis: Genesis = serde_json::from_str(json)?;
        let params = genesis
            .config
            .extra_fields
            .get_deserialized::<BttdParams>(PARAMS_KEY)
            .ok_or(GenesisError::MissingParams)??;
        let mut params: BttdParams = params;
        params.complete_validators()?;
        let spec = Self { genesis, params };
        spec.validate()?;
        if !spec.params.validators.is_empty() {
            spec.check_stake_manager()?;
        }
        Ok(spec)
    }

    pub fn load(path: &Path) -> Result<Self, GenesisError> {
        let json = std::fs::read_to_string(path).map_err(|source| GenesisError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&json)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.genesis).expect("a genesis always serialises")
    }

    pub fn write(&self, path: &Path) -> Result<(), GenesisError> {
        std::fs::write(path, self.to_json()).map_err(|source| GenesisError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    fn validate(&self) -> Result<(), GenesisError> {
        let g = &self.genesis;
        if g.config.chain_id == 0 {
            return Err(GenesisError::Invalid("chainId must not be 0".into()));
        }
        if g.gas_limit < 5_000_000 {
            return Err(GenesisError::Invalid(format!(
                "gasLimit {} is below 5,000,000",
                g.gas_limit
            )));
        }
        if self.params.min_base_fee == 0 {
            return Err(GenesisError::Invalid(
                "minBaseFee must be at least 1 wei".into(),
            ));
        }
        if !self.params.validators.is_empty() {
            if self.params.epoch_length == 0 {
                return Err(GenesisError::Invalid(
                    "epochLength must be at least 1 block".into(),
                ));
            }
            if self.params.fee_pool != bttd_contracts::STAKE_MANAGER_ADDRESS {
                return Err(GenesisError::Invalid(format!(
                    "feePool must be StakeManager's address {} on a chain with validators (the base fees are the validators' rewards)",
                    bttd_contracts::STAKE_MANAGER_ADDRESS
                )));
            }
            crate::validators::build_set(&self.params.validators)?;
            crate::system_contracts::check_staking_params(&self.params)?;
        }
        Ok(())
    }

    /// StakeManager's code and storage in the alloc are what its constructor leaves with
    /// `config.bttd` (staking keys, epoch length, validators): the contract reads its own
    /// storage, not the config, so a key edited in the config alone would silently not apply.
    fn check_stake_manager(&self) -> Result<(), GenesisError> {
        let Some(found) = self
            .genesis
            .alloc
            .get(&bttd_contracts::STAKE_MANAGER_ADDRESS)
        else {
            return Ok(());
        };
        let built = crate::system_contracts::stake_manager(&self.params)?;
        let nonzero = |a: &alloy_genesis::GenesisAccount| {
            a.storage
                .iter()
                .flatten()
                .filter(|(_, v)| !v.is_zero())
                .map(|(k, v)| (*k, *v))
                .collect::<std::collections::BTreeMap<B256, B256>>()
        };
        if found.code != built.code || nonzero(found) != nonzero(&built) {
            return Err(GenesisError::Invalid(format!(
                "the StakeManager account at {} in alloc is not the one config.bttd (staking keys, epochLength, validators) builds: the contract keeps its parameters in its own storage, so an edit of the config alone would not apply; rebuild the genesis with the new values (e.g. `bttd testnet init --downtime-window ...`)",
                bttd_contracts::STAKE_MANAGER_ADDRESS
            )));
        }
        Ok(())
    }

    /// What the runtime needs to execute this chain.
    pub fn chain_config(&self) -> ChainConfig {
        ChainConfig {
            chain_id: self.genesis.config.chain_id,
            min_base_fee: self.params.min_base_fee,
            fee_pool: self.params.fee_pool,
            block_gas_limit: self.genesis.gas_limit,
            staking: (!self.params.validators.is_empty()).then_some(StakingConfig {
                epoch_length: self.params.epoch_length,
                unbonding_epochs: self.params.staking.unbonding_epochs,
                issuance_per_block: self.params.staking.issuance_per_block,
            }),
        }
    }

    /// The hash of block 0.
    pub fn genesis_hash(&self) -> Result<B256, bttd_runtime::ChainError> {
        bttd_runtime::Chain::compute_genesis_hash(&self.genesis, &self.chain_config())
    }
}
