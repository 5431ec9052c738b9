//! Block execution with revm: the system calls, the transactions in order, fees (tip to the
//! proposer, base fee to the fee pool), receipts, and the resulting state changes. The order
//! is docs/block-format.md's: EIP-2935, StakeManager's rewards for the parent, the
//! transactions, the base-fee and issuance credit, and at an epoch's last block `endEpoch`.
//! The same code builds a block from pool transactions and re-executes a block received from
//! a peer; only the treatment of a failing transaction differs.

use alloy_consensus::{Eip658Value, Receipt, ReceiptEnvelope, TxEnvelope, TxType};
use alloy_eips::eip2935::HISTORY_STORAGE_ADDRESS;
use alloy_primitives::{Address, B256, Bytes, U256};
use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::context_interface::result::{EVMError, ExecutionResult, InvalidTransaction};
use revm::database::states::bundle_state::BundleRetention;
use revm::database::states::{StateChangeset, TransitionAccount};
use revm::database::{OriginalValuesKnown, State};
use revm::database_interface::bal::EvmDatabaseError;
use revm::primitives::hardfork::SpecId;
use revm::{Context, ExecuteCommitEvm, MainBuilder, MainContext, SystemCallCommitEvm};

use crate::config::ChainConfig;
use crate::staking::{self, StakedSet};
use crate::state::{StateError, StateView};
use crate::tx::RecoveredTx;

/// The spec every bttd chain runs (all forks through Prague active from genesis).
pub const SPEC: SpecId = SpecId::PRAGUE;

#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("transaction {hash} is invalid: {reason}")]
    InvalidTransaction { hash: B256, reason: String },
    #[error("block gas limit exceeded by transaction {hash}")]
    BlockGasLimit { hash: B256 },
    #[error("evm: {0}")]
    Evm(String),
}

/// The environment of the block being executed.
#[derive(Debug, Clone)]
pub struct BlockContext {
    pub number: u64,
    pub timestamp: u64,
    pub beneficiary: Address,
    pub base_fee: u64,
    pub gas_limit: u64,
    pub prevrandao: B256,
    pub parent_hash: B256,
    /// The parent's miner: its proposer bonus (staking chains).
    pub parent_beneficiary: Address,
    /// What the block's `extraData` tells its system calls (staking chains).
    pub consensus: ConsensusInputs,
}

/// What consensus puts in a block for its system calls, from its `extraData`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsensusInputs {
    /// Owners whose precommits for the parent are in the certificate the block carries,
    /// ascending: the validators its rewards call pays.
    pub parent_signers: Vec<Address>,
    /// The offences its evidence proves, in order: each is slashed after the rewards call.
    pub offences: Vec<staking::Offence>,
}

/// What executing a block's transactions produced.
#[derive(Debug)]
pub struct Executed {
    pub transactions: Vec<RecoveredTx>,
    pub receipts: Vec<ReceiptEnvelope>,
    pub gas_used: u64,
    /// Transactions the builder left out because they are invalid against the state
    /// (stale nonce, not enough balance at this point): hash and reason.
    pub rejected: Vec<(B256, String)>,
    pub changes: StateChangeset,
    /// At an epoch's last block on a staking chain: the set `endEpoch` installed.
    pub next_set: Option<StakedSet>,
    /// What `slashDoubleSign` did with each offence the block carries.
    pub slashes: Vec<staking::SlashOutcome>,
}

/// Whether a failing transaction is skipped (building) or fails the block (verifying).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Build,
    Verify,
}

pub fn cfg_env(chain_id: u64) -> CfgEnv {
    let mut cfg = CfgEnv::new_with_spec(SPEC);
    cfg.chain_id = chain_id;
    cfg
}

pub fn block_env(ctx: &BlockContext) -> BlockEnv {
    BlockEnv {
        number: U256::from(ctx.number),
        beneficiary: ctx.beneficiary,
        timestamp: U256::from(ctx.timestamp),
        gas_limit: ctx.gas_limit,
        basefee: ctx.base_fee,
        difficulty: U256::ZERO,
        prevrandao: Some(ctx.prevrandao),
        blob_excess_gas_and_price: Some(
            revm::context_interface::block::BlobExcessGasAndPrice::new(
                0,
                revm::primitives::eip4844::BLOB_BASE_FEE_UPDATE_FRACTION_PRAGUE,
            ),
        ),
        ..Default::default()
    }
}

/// revm's view of a transaction.
pub fn tx_env(tx: &RecoveredTx) -> TxEnv {
    use alloy_consensus::Transaction;
    let envelope = tx.envelope();
    TxEnv {
        tx_type: envelope.tx_type() as u8,
        caller: tx.sender(),
        gas_limit: tx.gas_limit(),
        gas_price: tx.max_fee_per_gas(),
        kind: tx.kind(),
        value: tx.value(),
        data: tx.input().clone(),
        nonce: tx.nonce(),
        chain_id: envelope.chain_id(),
        access_list: envelope.access_list().cloned().unwrap_or_default(),
        gas_priority_fee: envelope
            .max_priority_fee_per_gas()
            .filter(|_| !matches!(envelope, TxEnvelope::Legacy(_) | TxEnvelope::Eip2930(_))),
        authorization_list: envelope
            .authorization_list()
            .map(|list| {
                list.iter()
                    .cloned()
                    .map(revm::context::either::Either::Left)
                    .collect()
            })
            .unwrap_or_default(),
        ..Default::default()
    }
}

fn receipt(tx_type: TxType, result: &ExecutionResult, cumulative_gas_used: u64) -> ReceiptEnvelope {
    let receipt = Receipt {
        status: Eip658Value::Eip658(result.is_success()),
        cumulative_gas_used,
        logs: result.logs().to_vec(),
    };
    ReceiptEnvelope::from_typed(tx_type, receipt.with_bloom())
}

/// The system calls that open a block, before its first transaction, in the order
/// docs/block-format.md fixes. [`execute_block`] runs them when building and importing, and
/// `debug_trace*` when replaying a block, so a trace never differs from what the chain executed.
pub fn begin_block<E>(
    evm: &mut E,
    ctx: &BlockContext,
    config: &ChainConfig,
) -> Result<Vec<staking::SlashOutcome>, ExecutionError>
where
    E: SystemCallCommitEvm<ExecutionResult = ExecutionResult>,
    E::Error: std::fmt::Display,
{
    // EIP-2935: the parent hash goes into the history contract before any transaction.
    if ctx.number > 0 {
        evm.system_call_commit(
            HISTORY_STORAGE_ADDRESS,
            Bytes::copy_from_slice(ctx.parent_hash.as_slice()),
        )
        .map_err(|e| ExecutionError::Evm(format!("EIP-2935 system call: {e}")))?;
    }
    // Rewards for the parent (block 1's parent is genesis, which nobody certified).
    if config.staking.is_none() {
        return Ok(Vec::new());
    }
    if ctx.number > 1 {
        let signers = &ctx.consensus.parent_signers;
        staking::distribute_block_reward(evm, ctx.parent_beneficiary, signers)?;
    }
    // Double-signing, after the rewards (the offender was paid for what it signed honestly).
    ctx.consensus
        .offences
        .iter()
        .map(|offence| staking::slash_double_sign(evm, offence))
        .collect()
}

/// Executes `txs` on top of `view` in the block described by `ctx`.
pub fn execute_block(
    view: StateView<'_>,
    config: &ChainConfig,
    ctx: &BlockContext,
    txs: impl IntoIterator<Item = RecoveredTx>,
    mode: Mode,
) -> Result<Executed, ExecutionError> {
    let mut state = State::builder()
        .with_database_ref(view)
        .with_bundle_update()
        .build();
    let mut transactions = Vec::new();
    let mut receipts = Vec::new();
    let mut rejected = Vec::new();
    let mut gas_used = 0u64;
    let mut base_fees: u128 = 0;
    let slashes;
    {
        let mut evm = Context::mainnet()
            .with_db(&mut state)
            .with_block(block_env(ctx))
            .with_cfg(cfg_env(config.chain_id))
            .build_mainnet();
        slashes = begin_block(&mut evm, ctx, config)?;

        for tx in txs {
            let hash = tx.hash();
            if gas_used + tx.gas_limit() > ctx.gas_limit {
                match mode {
                    Mode::Build => continue,
                    Mode::Verify => return Err(ExecutionError::BlockGasLimit { hash }),
                }
            }
            let result = match evm.transact_commit(tx_env(&tx)) {
                Ok(result) => result,
                Err(EVMError::Transaction(invalid)) => {
                    let reason = invalid_reason(&invalid, &tx);
                    match mode {
                        Mode::Build => {
                            rejected.push((hash, reason));
                            continue;
                        }
                        Mode::Verify => {
                            return Err(ExecutionError::InvalidTransaction { hash, reason });
                        }
                    }
                }
                Err(EVMError::Database(EvmDatabaseError::Database(e))) => return Err(e.into()),
                Err(other) => return Err(ExecutionError::Evm(other.to_string())),
            };
            let used = result.tx_gas_used();
            gas_used += used;
            base_fees += used as u128 * ctx.base_fee as u128;
            receipts.push(receipt(tx.envelope().tx_type(), &result, gas_used));
            transactions.push(tx);
        }
    }

    // The base fee is not burned: the fee pool receives it, once per block, and on a staking
    // chain the block's issuance with it (both are the next block's reward pool).
    let issuance = config
        .staking
        .as_ref()
        .map_or(U256::ZERO, |s| s.issuance_per_block);
    let credit = U256::from(base_fees)
        .checked_add(issuance)
        .ok_or_else(|| ExecutionError::Evm("fee pool credit overflows".into()))?;
    if !credit.is_zero() {
        let credit: u128 = credit
            .try_into()
            .map_err(|_| ExecutionError::Evm("fee pool credit above u128".into()))?;
        let account = state.load_cache_account(config.fee_pool)?;
        if let Some(t) = account.increment_balance(credit) {
            let transition = TransitionAccount {
                info: t.info,
                status: t.status,
                previous_info: t.previous_info,
                previous_status: t.previous_status,
                storage: None,
                storage_was_destroyed: t.storage_was_destroyed,
            };
            state.apply_transition([(config.fee_pool, transition)]);
        }
    }
    let next_set = match &config.staking {
        Some(staking) if staking.ends_epoch(ctx.number) => {
            let mut evm = Context::mainnet()
                .with_db(&mut state)
                .with_block(block_env(ctx))
                .with_cfg(cfg_env(config.chain_id))
                .build_mainnet();
            Some(staking::end_epoch(&mut evm)?)
        }
        _ => None,
    };
    state.merge_transitions(BundleRetention::PlainState);
    let changes = state.take_bundle().to_plain_state(OriginalValuesKnown::Yes);
    Ok(Executed {
        transactions,
        receipts,
        gas_used,
        rejected,
        changes,
        next_set,
        slashes,
    })
}

/// geth's wording for the failures a client can act on.
pub fn invalid_reason(invalid: &InvalidTransaction, tx: &RecoveredTx) -> String {
    match invalid {
        InvalidTransaction::NonceTooLow { tx: got, state } => {
            format!(
                "nonce too low: address {}, tx: {got} state: {state}",
                tx.sender()
            )
        }
        InvalidTransaction::NonceTooHigh { tx: got, state } => {
            format!(
                "nonce too high: address {}, tx: {got} state: {state}",
                tx.sender()
            )
        }
        InvalidTransaction::LackOfFundForMaxFee { fee, balance } => format!(
            "insufficient funds for gas * price + value: address {} have {balance} want {fee}",
            tx.sender()
        ),
        other => other.to_string(),
    }
}
