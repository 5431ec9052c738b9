//! Staking over JSON-RPC (issue 12): who validates a block and with how much stake
//! (`bttd_getValidatorSet`), an account's delegations and unbonding entries
//! (`bttd_getDelegations`), and the stake and status `bor_getCurrentValidators` adds to each
//! member. Everything is read from StakeManager's views on the archived state
//! (`bttd_runtime::staking::view_after`), so the answers are the chain's, at the block asked.

use alloy_eips::BlockId;
use alloy_primitives::{Address, FixedBytes, U64, U256};
use alloy_sol_types::SolCall;
use bttd_contracts::StakeManager;
use bttd_runtime::Chain;
use bttd_runtime::staking::{self, StakedSet};
use jsonrpsee::proc_macros::rpc;
use serde::Serialize;

use super::Rpc;
use super::error::{RpcResult, internal, server_error};
use super::resolve::state_number;

/// A member of the set deciding a block.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RpcSetMember {
    pub index: U64,
    pub owner: Address,
    pub signer: Address,
    pub bls_public_key: FixedBytes<48>,
    pub power: U64,
    /// Total stake (self and delegated) in wei at the block asked.
    pub stake: U256,
}

/// The set deciding a block.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RpcValidatorSet {
    pub block_number: U64,
    pub epoch: U64,
    pub validators: Vec<RpcSetMember>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RpcDelegation {
    pub validator: Address,
    pub stake: U256,
    pub pending_rewards: U256,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RpcUnbonding {
    pub validator: Address,
    pub amount: U256,
    pub completes_at_epoch: U64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RpcDelegations {
    pub delegator: Address,
    /// Delegations with stake or unclaimed rewards, to current candidates and members.
    pub delegations: Vec<RpcDelegation>,
    pub unbonding: Vec<RpcUnbonding>,
}

#[rpc(server, namespace = "bttd")]
pub(crate) trait StakingApi {
    /// The validator set deciding `block` (default the next block): owner, signer, BLS key,
    /// power and stake of each member, in index order (the order of certificate bitmaps).
    #[method(name = "getValidatorSet")]
    async fn validator_set(&self, block: Option<BlockId>) -> RpcResult<RpcValidatorSet>;

    /// `address`'s delegations (stake, pending rewards) and unbonding entries at the head.
    #[method(name = "getDelegations")]
    async fn delegations(&self, address: Address) -> RpcResult<RpcDelegations>;
}

/// Calls a StakeManager view on the state after block `number`.
fn view<C: SolCall>(chain: &Chain, number: u64, call: C) -> RpcResult<C::Return> {
    let out = staking::view_after(chain, number, call.abi_encode().into()).map_err(internal)?;
    C::abi_decode_returns(&out).map_err(internal)
}

/// The set deciding block `number` (which may be the head's child) and the state it is read at.
pub(crate) fn set_deciding(chain: &Chain, number: u64) -> RpcResult<StakedSet> {
    let config =
        chain.config().staking.as_ref().ok_or_else(|| {
            server_error("this chain has no validators (a single-producer devnet)")
        })?;
    let epoch = config.epoch_of(number);
    staking::set_after(chain, config.set_block(epoch)).map_err(internal)
}

/// `validatorInfo(owner)` at block `number`: (total stake, status).
pub(crate) fn stake_and_status(
    chain: &Chain,
    number: u64,
    owner: Address,
) -> RpcResult<(U256, u8)> {
    let info = view(chain, number, StakeManager::validatorInfoCall { owner })?;
    Ok((info.totalStake, info.status))
}

/// What `bor_getCurrentValidators` shows of a validator, read after block `number`.
pub(crate) struct StandingAfter {
    /// Total stake (self and delegated) in wei.
    pub stake: U256,
    /// `validatorInfo` status code (docs/staking.md).
    pub status: u8,
    /// The first epoch `unjail()` is allowed in (0 if never jailed).
    pub jailed_until_epoch: u64,
    /// Blocks missed in the downtime window of block `number` (`uptime(owner)` when its
    /// window is that one, else 0).
    pub missed_blocks: u64,
}

/// `validatorInfo(owner)` and `uptime(owner)` after block `number`.
pub(crate) fn standing(chain: &Chain, number: u64, owner: Address) -> RpcResult<StandingAfter> {
    let info = view(chain, number, StakeManager::validatorInfoCall { owner })?;
    let uptime = view(chain, number, StakeManager::uptimeCall { owner })?;
    let window = view(chain, number, StakeManager::downtimeWindowCall {})?;
    let window = u64::try_from(window).unwrap_or(u64::MAX).max(1);
    let current = number > 0 && uptime.window == (number - 1) / window;
    Ok(StandingAfter {
        stake: info.totalStake,
        status: info.status,
        jailed_until_epoch: info.jailedUntilEpoch,
        missed_blocks: if current { uptime.missed } else { 0 },
    })
}

/// Each answer runs one StakeManager view per member or delegation: on the heavy-request pool,
/// like eth_call, so that a large set never holds an RPC worker.
#[jsonrpsee::core::async_trait]
impl StakingApiServer for Rpc {
    async fn validator_set(&self, block: Option<BlockId>) -> RpcResult<RpcValidatorSet> {
        self.heavy(move |rpc| rpc.validator_set_at(block)).await
    }

    async fn delegations(&self, address: Address) -> RpcResult<RpcDelegations> {
        self.heavy(move |rpc| rpc.delegations_of(address)).await
    }
}

impl Rpc {
    /// `bttd_getValidatorSet`, on the calling thread.
    fn validator_set_at(&self, block: Option<BlockId>) -> RpcResult<RpcValidatorSet> {
        let chain = &self.ctx.chain;
        let head = chain.head().number;
        let (number, state) = match block {
            None => (head + 1, head),
            Some(id) => {
                let n = state_number(chain, Some(id))?;
                (n, n)
            }
        };
        let set = set_deciding(chain, number)?;
        let validators = set
            .validators
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let (stake, _) = stake_and_status(chain, state, v.owner)?;
                Ok(RpcSetMember {
                    index: U64::from(i),
                    owner: v.owner,
                    signer: v.signer,
                    bls_public_key: v.bls_public_key,
                    power: U64::from(v.power),
                    stake,
                })
            })
            .collect::<RpcResult<_>>()?;
        Ok(RpcValidatorSet {
            block_number: U64::from(number),
            epoch: U64::from(set.epoch),
            validators,
        })
    }

    /// `bttd_getDelegations`, on the calling thread.
    fn delegations_of(&self, address: Address) -> RpcResult<RpcDelegations> {
        let chain = &self.ctx.chain;
        if chain.config().staking.is_none() {
            return Err(server_error(
                "this chain has no validators (a single-producer devnet)",
            ));
        }
        let head = chain.head().number;
        let mut validators = view(chain, head, StakeManager::candidatesCall {})?;
        validators.extend(view(chain, head, StakeManager::activeValidatorsCall {})?);
        let unbonding = view(
            chain,
            head,
            StakeManager::unbondingOfCall { delegator: address },
        )?;
        validators.extend(unbonding.iter().map(|u| u.validator));
        validators.sort_unstable();
        validators.dedup();
        let mut delegations = Vec::new();
        for validator in validators {
            let d = view(
                chain,
                head,
                StakeManager::delegationOfCall {
                    delegator: address,
                    validator,
                },
            )?;
            if !d.stake.is_zero() || !d.pendingRewards.is_zero() {
                delegations.push(RpcDelegation {
                    validator,
                    stake: d.stake,
                    pending_rewards: d.pendingRewards,
                });
            }
        }
        Ok(RpcDelegations {
            delegator: address,
            delegations,
            unbonding: unbonding
                .into_iter()
                .map(|u| RpcUnbonding {
                    validator: u.validator,
                    amount: u.amount,
                    completes_at_epoch: U64::from(u.completesAtEpoch),
                })
                .collect(),
        })
    }
}
