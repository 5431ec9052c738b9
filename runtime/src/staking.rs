//! The protocol's side of staking (docs/staking.md, "Protocol duties"): the system calls a
//! block makes into `StakeManager` at 0x1000 and the validator sets the node reads back.
//!
//! Who validates an epoch is chain state: the last block of epoch `e` runs `endEpoch()`, which
//! installs the set of `e + 1`, and that block's `extraData` commits to it
//! ([`StakedSet::commitment`]). So the set of epoch `e` is `validatorSet()` read on the state
//! after block `e * epochLength` (genesis for epoch 0), which every node has, archived, once it
//! has executed that block.
//!
//! A system call that reverts is a fault of ours (the contract or this code), never a peer's:
//! the error stops the node.

use alloy_primitives::{Address, B256, Bytes, FixedBytes, U256, keccak256};
use alloy_sol_types::SolCall;
use bttd_contracts::{STAKE_MANAGER_ADDRESS, StakeManager};
use revm::context_interface::result::ExecutionResult;
use revm::database::CacheDB;
use revm::{Context, MainBuilder, MainContext, SystemCallCommitEvm, SystemCallEvm};

use crate::chain::Chain;
use crate::config::ChainConfig;
use crate::executor::{ExecutionError, cfg_env};

/// What a chain with validators needs to run its staking system calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StakingConfig {
    /// Blocks per epoch: block `n` ends an epoch when `n % epoch_length == 0`.
    pub epoch_length: u64,
    /// Epochs an undelegated stake stays slashable: evidence of an offence in epoch `e` is
    /// taken while the block's epoch is below `e + unbonding_epochs` (StakeManager's rule).
    pub unbonding_epochs: u64,
    /// Wei credited to StakeManager with each block's base fees (new supply).
    pub issuance_per_block: U256,
}

impl StakingConfig {
    /// Whether block `number` is the last of its epoch (and so runs `endEpoch`).
    pub fn ends_epoch(&self, number: u64) -> bool {
        number > 0 && number.is_multiple_of(self.epoch_length.max(1))
    }

    /// The epoch block `number` belongs to: epoch `e` is `e * len + 1 ..= (e + 1) * len`.
    pub fn epoch_of(&self, number: u64) -> u64 {
        number.saturating_sub(1) / self.epoch_length.max(1)
    }

    /// Whether a block at `number` may carry evidence of an offence at `offence_height`: the
    /// offence is before it and young enough that every entry that began unbonding after it
    /// is still unbonding (StakeManager's `slashDoubleSign` ignores anything else).
    pub fn evidence_admissible(&self, offence_height: u64, number: u64) -> bool {
        offence_height > 0
            && offence_height < number
            && self
                .epoch_of(offence_height)
                .saturating_add(self.unbonding_epochs)
                > self.epoch_of(number)
    }

    /// The block whose state holds epoch `epoch`'s set (0: genesis).
    pub fn set_block(&self, epoch: u64) -> u64 {
        epoch.saturating_mul(self.epoch_length.max(1))
    }
}

/// One member of an epoch's set, as `validatorSet()` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StakedValidator {
    /// Holds the stake and receives the rewards.
    pub owner: Address,
    /// The node's account: it mines the validator's blocks.
    pub signer: Address,
    /// Compressed BLS12-381 G1 key.
    pub bls_public_key: FixedBytes<48>,
    /// floor(total stake / 1 BTT).
    pub power: u64,
}

/// An epoch's validator set, in StakeManager's order (decreasing stake, then address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StakedSet {
    pub epoch: u64,
    pub validators: Vec<StakedValidator>,
}

impl StakedSet {
    /// What the last block of the previous epoch commits to in `extraData`: keccak256 over
    /// `owner ‖ signer ‖ BLS key ‖ power (u64 BE)` of every member in order
    /// (docs/block-format.md).
    pub fn commitment(&self) -> B256 {
        let mut bytes = Vec::with_capacity(self.validators.len() * (20 + 20 + 48 + 8));
        for v in &self.validators {
            bytes.extend_from_slice(v.owner.as_slice());
            bytes.extend_from_slice(v.signer.as_slice());
            bytes.extend_from_slice(v.bls_public_key.as_slice());
            bytes.extend_from_slice(&v.power.to_be_bytes());
        }
        keccak256(bytes)
    }

    /// The owners of the members at `indices` (a certificate's signers), ascending and
    /// without repeats, as `distributeBlockReward` takes them. `None` if an index is outside
    /// the set.
    pub fn owners_of(&self, indices: impl IntoIterator<Item = usize>) -> Option<Vec<Address>> {
        let mut owners = indices
            .into_iter()
            .map(|i| self.validators.get(i).map(|v| v.owner))
            .collect::<Option<Vec<_>>>()?;
        owners.sort_unstable();
        owners.dedup();
        Some(owners)
    }
}

/// A double-signing offence a block carries evidence of, as StakeManager names it: the owner
/// of the offender in the set of `height`, and the kind of `Evidence::offence` (0 prevotes,
/// 1 precommits, 2 proposals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Offence {
    pub owner: Address,
    pub height: u64,
    pub round: u32,
    pub kind: u8,
}

/// What `slashDoubleSign` did with one offence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlashOutcome {
    pub offence: Offence,
    /// Wei slashed; `None` when the contract ignored it (slashed before, or the validator
    /// was tombstoned already).
    pub slashed: Option<U256>,
}

/// `slashDoubleSign(owner, height, round, kind)`: runs after the rewards call, once per
/// offence a block carries.
pub(crate) fn slash_double_sign<E>(
    evm: &mut E,
    offence: &Offence,
) -> Result<SlashOutcome, ExecutionError>
where
    E: SystemCallCommitEvm<ExecutionResult = ExecutionResult>,
    E::Error: std::fmt::Display,
{
    use alloy_sol_types::SolEvent;
    let call = StakeManager::slashDoubleSignCall {
        owner: offence.owner,
        offenceBlock: offence.height,
        round: offence.round,
        kind: offence.kind,
    };
    let result = evm
        .system_call_commit(STAKE_MANAGER_ADDRESS, call.abi_encode().into())
        .map_err(|e| ExecutionError::Evm(format!("StakeManager.slashDoubleSign: {e}")))?;
    if !result.is_success() {
        return Err(call_failed("slashDoubleSign", &result));
    }
    let slashed = result
        .logs()
        .iter()
        .find_map(|l| StakeManager::Slashed::decode_log_data(&l.data).ok())
        .map(|e| e.amount);
    Ok(SlashOutcome {
        offence: *offence,
        slashed,
    })
}

/// Why a set could not be read from the chain: always a fault of this node or its contract.
#[derive(Debug, thiserror::Error)]
pub enum StakingError {
    #[error("no state at block {0}")]
    NoState(u64),
    #[error(transparent)]
    Execution(#[from] ExecutionError),
}

fn call_failed(what: &str, result: &ExecutionResult) -> ExecutionError {
    ExecutionError::Evm(format!(
        "StakeManager.{what} system call failed: {result:?}"
    ))
}

/// `distributeBlockReward(parentMiner, signers)`: pays block `number - 1`'s pool. Runs first
/// after EIP-2935 in every block above 1.
pub(crate) fn distribute_block_reward<E>(
    evm: &mut E,
    parent_miner: Address,
    signers: &[Address],
) -> Result<(), ExecutionError>
where
    E: SystemCallCommitEvm<ExecutionResult = ExecutionResult>,
    E::Error: std::fmt::Display,
{
    let call = StakeManager::distributeBlockRewardCall {
        proposer: parent_miner,
        signers: signers.to_vec(),
    };
    let result = evm
        .system_call_commit(STAKE_MANAGER_ADDRESS, call.abi_encode().into())
        .map_err(|e| ExecutionError::Evm(format!("StakeManager.distributeBlockReward: {e}")))?;
    if !result.is_success() {
        return Err(call_failed("distributeBlockReward", &result));
    }
    Ok(())
}

/// `endEpoch()` at an epoch's last block, then the set it installed.
pub(crate) fn end_epoch<E>(evm: &mut E) -> Result<StakedSet, ExecutionError>
where
    E: SystemCallCommitEvm<ExecutionResult = ExecutionResult>,
    E::Error: std::fmt::Display,
{
    let result = evm
        .system_call_commit(
            STAKE_MANAGER_ADDRESS,
            StakeManager::endEpochCall {}.abi_encode().into(),
        )
        .map_err(|e| ExecutionError::Evm(format!("StakeManager.endEpoch: {e}")))?;
    if !result.is_success() {
        return Err(call_failed("endEpoch", &result));
    }
    read_set(evm)
}

/// `validatorSet()` on the EVM's current state, without changing it.
fn read_set<E>(evm: &mut E) -> Result<StakedSet, ExecutionError>
where
    E: SystemCallEvm<ExecutionResult = ExecutionResult>,
    E::Error: std::fmt::Display,
{
    let result = evm
        .system_call(
            STAKE_MANAGER_ADDRESS,
            StakeManager::validatorSetCall {}.abi_encode().into(),
        )
        .map_err(|e| ExecutionError::Evm(format!("StakeManager.validatorSet: {e}")))?
        .result;
    let output = match &result {
        ExecutionResult::Success { .. } => result.output().cloned().unwrap_or_default(),
        _ => return Err(call_failed("validatorSet", &result)),
    };
    decode_set(&output)
}

fn decode_set(output: &Bytes) -> Result<StakedSet, ExecutionError> {
    let bad = |m: &str| ExecutionError::Evm(format!("StakeManager.validatorSet returned {m}"));
    let r = StakeManager::validatorSetCall::abi_decode_returns(output)
        .map_err(|e| bad(&format!("undecodable data: {e}")))?;
    let n = r.owners.len();
    if r.signers.len() != n || r.blsKeys.len() != n || r.powers.len() != n {
        return Err(bad("arrays of different lengths"));
    }
    let epoch = u64::try_from(r.epoch).map_err(|_| bad("an epoch above u64"))?;
    let validators = (0..n)
        .map(|i| {
            Ok(StakedValidator {
                owner: r.owners[i],
                signer: r.signers[i],
                bls_public_key: FixedBytes::<48>::try_from(r.blsKeys[i].as_ref())
                    .map_err(|_| bad("a BLS key that is not 48 bytes"))?,
                power: u64::try_from(r.powers[i]).map_err(|_| bad("a power above u64"))?,
            })
        })
        .collect::<Result<_, ExecutionError>>()?;
    Ok(StakedSet { epoch, validators })
}

/// The set StakeManager held after block `number` (`validatorSet()` on that block's state):
/// for `number = e * epochLength`, the set of epoch `e`.
pub fn set_after(chain: &Chain, number: u64) -> Result<StakedSet, StakingError> {
    Ok(decode_set(&view_after(
        chain,
        number,
        StakeManager::validatorSetCall {}.abi_encode().into(),
    )?)?)
}

/// Calls a StakeManager view with `data` on the state after block `number`, from the system
/// address, and returns its output (a revert is an error).
pub fn view_after(chain: &Chain, number: u64, data: Bytes) -> Result<Bytes, StakingError> {
    let state = chain
        .state_at(number)
        .ok_or(StakingError::NoState(number))?;
    let config: &ChainConfig = chain.config();
    let mut db = CacheDB::new(state);
    let mut evm = Context::mainnet()
        .with_db(&mut db)
        .with_cfg(cfg_env(config.chain_id))
        .modify_block_chained(|b| b.number = U256::from(number))
        .build_mainnet();
    let result = evm
        .system_call(STAKE_MANAGER_ADDRESS, data)
        .map_err(|e| ExecutionError::Evm(format!("StakeManager view: {e}")))?
        .result;
    match &result {
        ExecutionResult::Success { .. } => Ok(result.output().cloned().unwrap_or_default()),
        _ => Err(call_failed("view", &result).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(i: u8, power: u64) -> StakedValidator {
        StakedValidator {
            owner: Address::repeat_byte(i),
            signer: Address::repeat_byte(i + 100),
            bls_public_key: FixedBytes::repeat_byte(i),
            power,
        }
    }

    #[test]
    fn the_commitment_covers_every_field_and_the_order() {
        let set = StakedSet {
            epoch: 1,
            validators: vec![member(1, 5), member(2, 5)],
        };
        let base = set.commitment();
        let mut swapped = set.clone();
        swapped.validators.swap(0, 1);
        assert_ne!(swapped.commitment(), base);
        for edit in [
            |v: &mut StakedValidator| v.owner = Address::repeat_byte(9),
            |v: &mut StakedValidator| v.signer = Address::repeat_byte(9),
            |v: &mut StakedValidator| v.bls_public_key = FixedBytes::repeat_byte(9),
            |v: &mut StakedValidator| v.power += 1,
        ] {
            let mut edited = set.clone();
            edit(&mut edited.validators[1]);
            assert_ne!(edited.commitment(), base);
        }
    }

    #[test]
    fn certificate_signers_become_sorted_distinct_owners() {
        let set = StakedSet {
            epoch: 0,
            validators: vec![member(3, 1), member(1, 1), member(2, 1)],
        };
        assert_eq!(
            set.owners_of([0, 1, 0]).unwrap(),
            vec![Address::repeat_byte(1), Address::repeat_byte(3)]
        );
        assert_eq!(set.owners_of([3]), None);
    }

    #[test]
    fn epochs_end_every_epoch_length_blocks() {
        let config = StakingConfig {
            epoch_length: 10,
            unbonding_epochs: 2,
            issuance_per_block: U256::ZERO,
        };
        assert!(!config.ends_epoch(0));
        assert!(!config.ends_epoch(9));
        assert!(config.ends_epoch(10));
        assert_eq!(config.epoch_of(10), 0);
        assert_eq!(config.epoch_of(11), 1);
        assert_eq!(config.set_block(1), 10);
    }
}
