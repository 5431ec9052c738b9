//! One TRON smart-contract call or deployment on revm at the SHANGHAI spec (PUSH0 yes, MCOPY
//! and transient storage no, as TRON mainnet runs by default). TRON has no account nonces:
//! nonce checks are off, and a deployment lands at TRON's address, keccak(txID || owner)
//! (an inspector rewrites the first frame's CREATE scheme; CREATE/CREATE2 inside contracts keep
//! the EVM rules). Energy is revm's gas, priced in sun: it is not TVM's energy schedule.

use alloy_primitives::{Address, Bytes, Log, TxKind, U256};
use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::context_interface::CreateScheme;
use revm::context_interface::result::{EVMError, ExecutionResult, HaltReason};
use revm::database::{CacheDB, EmptyDB};
use revm::interpreter::{CreateInputs, CreateOutcome};
use revm::primitives::hardfork::SpecId;
use revm::{
    Context, Database, DatabaseCommit, InspectCommitEvm, Inspector, MainBuilder, MainContext,
};

/// The simulator's state: accounts, code and storage, in memory.
pub type Db = CacheDB<EmptyDB>;

/// TRON mainnet's EVM level.
pub const SPEC: SpecId = SpecId::SHANGHAI;

/// The block a call runs in.
#[derive(Debug, Clone, Copy)]
pub struct BlockInfo {
    pub number: u64,
    /// Seconds (TVM's TIMESTAMP is the block time in seconds).
    pub timestamp: u64,
    pub chain_id: u64,
}

/// What a call is.
#[derive(Debug, Clone)]
pub struct Call {
    pub caller: Address,
    /// `Call(to)`, or `Create` with the address TRON assigns.
    pub target: Target,
    pub data: Bytes,
    /// Sun.
    pub value: u64,
    pub energy_limit: u64,
    /// Sun per unit of energy.
    pub energy_price: u64,
}

#[derive(Debug, Clone, Copy)]
pub enum Target {
    Call(Address),
    Create(Address),
}

/// java-tron's `contractResult` for what revm reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractResult {
    Success,
    Revert,
    OutOfEnergy,
    BadJumpDestination,
    StackTooSmall,
    StackTooLarge,
    IllegalOperation,
    PrecompiledContract,
    TransferFailed,
    Unknown,
}

impl ContractResult {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::Revert => "REVERT",
            Self::OutOfEnergy => "OUT_OF_ENERGY",
            Self::BadJumpDestination => "BAD_JUMP_DESTINATION",
            Self::StackTooSmall => "STACK_TOO_SMALL",
            Self::StackTooLarge => "STACK_TOO_LARGE",
            Self::IllegalOperation => "ILLEGAL_OPERATION",
            Self::PrecompiledContract => "PRECOMPILED_CONTRACT",
            Self::TransferFailed => "TRANSFER_FAILED",
            Self::Unknown => "UNKNOWN",
        }
    }

    fn of_halt(reason: &HaltReason) -> Self {
        match reason {
            HaltReason::OutOfGas(_) => Self::OutOfEnergy,
            HaltReason::InvalidJump => Self::BadJumpDestination,
            HaltReason::StackUnderflow => Self::StackTooSmall,
            HaltReason::StackOverflow => Self::StackTooLarge,
            HaltReason::OpcodeNotFound | HaltReason::InvalidFEOpcode | HaltReason::NotActivated => {
                Self::IllegalOperation
            }
            HaltReason::PrecompileError | HaltReason::PrecompileErrorWithContext(_) => {
                Self::PrecompiledContract
            }
            HaltReason::OutOfFunds => Self::TransferFailed,
            _ => Self::Unknown,
        }
    }
}

/// What a call did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub result: ContractResult,
    pub energy_used: u64,
    pub output: Bytes,
    pub logs: Vec<Log>,
}

/// Puts the first CREATE frame (the transaction's own) at TRON's address.
struct TronCreateAddress(Option<Address>);

impl<CTX> Inspector<CTX> for TronCreateAddress {
    fn create(&mut self, _context: &mut CTX, inputs: &mut CreateInputs) -> Option<CreateOutcome> {
        if let Some(address) = self.0.take() {
            inputs.set_scheme(CreateScheme::Custom { address });
        }
        None
    }
}

/// Why revm refused to run a call at all (the transaction is not valid against the state).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// Runs `call` on `db` and commits its changes there (pass a scratch layer for read-only calls).
pub fn execute<DB>(db: &mut DB, block: BlockInfo, call: &Call) -> Result<Outcome, Invalid>
where
    DB: Database + DatabaseCommit,
    DB::Error: std::fmt::Display,
{
    let mut cfg = CfgEnv::new_with_spec(SPEC);
    cfg.chain_id = block.chain_id;
    cfg.disable_nonce_check = true;
    cfg.disable_base_fee = true;
    let block_env = BlockEnv {
        number: U256::from(block.number),
        beneficiary: Address::ZERO,
        timestamp: U256::from(block.timestamp),
        gas_limit: u64::MAX / 2,
        basefee: 0,
        difficulty: U256::ZERO,
        prevrandao: Some(Default::default()),
        ..Default::default()
    };
    let (kind, create_at) = match call.target {
        Target::Call(to) => (TxKind::Call(to), None),
        Target::Create(at) => (TxKind::Create, Some(at)),
    };
    let tx = TxEnv {
        tx_type: 0,
        caller: call.caller,
        gas_limit: call.energy_limit,
        gas_price: u128::from(call.energy_price),
        kind,
        value: U256::from(call.value),
        data: call.data.clone(),
        nonce: 0,
        chain_id: Some(block.chain_id),
        ..Default::default()
    };
    let mut evm = Context::mainnet()
        .with_db(db)
        .with_block(block_env)
        .with_cfg(cfg)
        .build_mainnet_with_inspector(TronCreateAddress(create_at));
    let result = match evm.inspect_tx_commit(tx) {
        Ok(result) => result,
        Err(EVMError::Transaction(invalid)) => return Err(Invalid(invalid.to_string())),
        Err(EVMError::Database(e)) => return Err(Invalid(format!("state: {e}"))),
        Err(other) => return Err(Invalid(other.to_string())),
    };
    let energy_used = result.tx_gas_used();
    Ok(match result {
        ExecutionResult::Success { logs, output, .. } => Outcome {
            result: ContractResult::Success,
            energy_used,
            output: output.into_data(),
            logs,
        },
        ExecutionResult::Revert { output, .. } => Outcome {
            result: ContractResult::Revert,
            energy_used,
            output,
            logs: Vec::new(),
        },
        ExecutionResult::Halt { reason, .. } => Outcome {
            result: ContractResult::of_halt(&reason),
            energy_used,
            output: Bytes::new(),
            logs: Vec::new(),
        },
    })
}
