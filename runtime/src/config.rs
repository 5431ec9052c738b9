//! The chain parameters the runtime needs, extracted from genesis by the genesis crate.

use alloy_primitives::Address;

/// Fixed per chain; every validator must agree on all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainConfig {
    pub chain_id: u64,
    /// Base fee never falls below this (wei).
    pub min_base_fee: u64,
    /// Receives the base fee of every transaction instead of it being burned.
    pub fee_pool: Address,
    /// Constant block gas limit.
    pub block_gas_limit: u64,
    /// A chain with validators runs StakeManager's system calls; a single-producer chain
    /// (no validators) does not.
    pub staking: Option<crate::staking::StakingConfig>,
}
