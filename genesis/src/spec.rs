//! Loading, checking and writing a chain spec.

use std::path::Path;

use alloy_genesis::Genesis;
use alloy_primitives::{Address, B256, address};
use bttd_runtime::ChainConfig;
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
}

/// One genesis validator: its account, its BLS key with proof of possession, and its stake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenesisValidator {
    /// The validator's account (secp256k1); receives its priority fees.
    pub address: Address,
    /// Compressed BLS12-381 G1 public key (48 bytes).
    pub bls_public_key: alloy_primitives::FixedBytes<48>,
    /// BLS proof of possession of `bls_public_key` (96 bytes, POP DST).
    pub proof_of_possession: alloy_primitives::FixedBytes<96>,
    /// Voting power (stake weight).
    pub power: u64,
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
        }
    }
}

/// A genesis file with its bttd parameters parsed and checked.
#[derive(Debug, Clone)]
pub struct ChainSpec {
    pub genesis: Genesis,
    pub params: BttdParams,
}

impl ChainSpec {
    pub fn new(mut genesis: Genesis, params: BttdParams) -> Result<Self, GenesisError> {
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
        let spec = Self { genesis, params };
        spec.validate()?;
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
            crate::validators::build_set(&self.params.validators)?;
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
        }
    }

    /// The hash of block 0.
    pub fn genesis_hash(&self) -> Result<B256, bttd_runtime::ChainError> {
        bttd_runtime::Chain::compute_genesis_hash(&self.genesis, &self.chain_config())
    }
}
