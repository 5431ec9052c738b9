//! Executing a call request with revm on a block's state, without committing anything: the
//! engine behind eth_call and eth_estimateGas.
//!
//! The environment is the named block's (the next block's for `pending`). As in geth's
//! eth_call:
//! - `from` defaults to the zero address and the nonce check is off;
//! - a request that pays nothing (no gas price, or both EIP-1559 fees zero) runs with a zero
//!   base fee, so unfunded accounts can call (geth zeroes the block's base fee the same way);
//! - a caller with code is treated as an EOA (geth skips the EIP-3607 check for calls); revm
//!   has no switch for that in our feature set, so the caller's code is hidden in the overlay;
//! - the block gas limit does not bound the call's gas (geth uses an unbounded gas pool); the
//!   block environment's limit is raised to the call's gas when needed.
//!
//! Reads go through a `CacheDB` over the `StateView`, kept across the runs of one
//! estimation so the binary search reads storage once.

use std::time::{Duration, Instant};

use alloy_primitives::{Address, Bytes, TxKind, U256};
use alloy_rpc_types_eth::TransactionRequest;
use bttd_runtime::executor::{BlockContext, block_env, cfg_env};
use bttd_runtime::state::{StateError, StateView};
use jsonrpsee::types::ErrorObjectOwned;
use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::context_interface::result::{EVMError, ExecutionResult, HaltReason, InvalidTransaction};
use revm::database::CacheDB;
use revm::database_interface::Database;
use revm::inspector::NoOpInspector;
use revm::primitives::KECCAK_EMPTY;
use revm::{Context, InspectEvm, MainBuilder, MainContext};
use revm_inspectors::tracing::DebugInspector;

use super::bounded::Bounded;
use super::error::{RpcResult, internal, invalid_params, server_error};

/// A revm run's outcome, or why the transaction could not run at all.
pub(crate) type RunResult = Result<ExecutionResult, EVMError<StateError>>;

/// A call request validated and turned into revm's terms (gas limit set per run).
#[derive(Debug, Clone)]
pub(crate) struct CallTx {
    pub env: TxEnv,
    /// True when the request pays nothing per gas (runs at base fee 0).
    pub free: bool,
    /// The fee cap per gas (0 when free).
    pub fee_cap: u128,
}

impl CallTx {
    pub fn from_request(req: &TransactionRequest, chain_id: u64) -> RpcResult<Self> {
        if req
            .blob_versioned_hashes
            .as_ref()
            .is_some_and(|h| !h.is_empty())
            || req.max_fee_per_blob_gas.is_some()
        {
            return Err(invalid_params(
                "blob transactions are not supported on this chain",
            ));
        }
        if let Some(id) = req.chain_id
            && id != chain_id
        {
            return Err(invalid_params(format!(
                "invalid chain id: have {id}, want {chain_id}"
            )));
        }
        let input = match (&req.input.input, &req.input.data) {
            (Some(a), Some(b)) if a != b => {
                return Err(invalid_params(
                    r#"both "data" and "input" are set and not equal. Please use "input" to pass transaction call data"#,
                ));
            }
            (Some(a), _) | (None, Some(a)) => a.clone(),
            (None, None) => Bytes::new(),
        };
        let auths = req.authorization_list.clone().unwrap_or_default();
        let dynamic = req.max_fee_per_gas.is_some()
            || req.max_priority_fee_per_gas.is_some()
            || !auths.is_empty();
        if req.gas_price.is_some() && dynamic {
            return Err(invalid_params(
                "both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) specified",
            ));
        }
        let (tx_type, fee_cap, tip, free) = if dynamic {
            let cap = req.max_fee_per_gas.unwrap_or_default();
            let tip = req.max_priority_fee_per_gas.unwrap_or_default();
            let tx_type = if auths.is_empty() { 2 } else { 4 };
            (tx_type, cap, Some(tip), cap == 0 && tip == 0)
        } else {
            let price = req.gas_price.unwrap_or_default();
            let tx_type = if req.access_list.is_some() { 1 } else { 0 };
            (tx_type, price, None, price == 0)
        };
        let env = TxEnv {
            tx_type,
            caller: req.from.unwrap_or_default(),
            gas_limit: 0,
            gas_price: fee_cap,
            kind: req.to.unwrap_or(TxKind::Create),
            value: req.value.unwrap_or_default(),
            data: input,
            nonce: req.nonce.unwrap_or_default(),
            chain_id: Some(chain_id),
            access_list: req.access_list.clone().unwrap_or_default(),
            gas_priority_fee: tip,
            authorization_list: auths
                .into_iter()
                .map(revm::context::either::Either::Left)
                .collect(),
            ..Default::default()
        };
        Ok(Self { env, free, fee_cap })
    }

    pub fn caller(&self) -> Address {
        self.env.caller
    }
}

/// Runs call requests on the head state in the next block's environment.
pub(crate) struct Simulator<'a> {
    db: CacheDB<StateView<'a>>,
    block: BlockEnv,
    cfg: CfgEnv,
    /// The chain's block gas limit (the environment's may be raised for a big call).
    pub block_gas_limit: u64,
    /// Every run of this simulator stops here (geth's `--rpc.evmtimeout`, shared by the
    /// runs of one estimation).
    deadline: Instant,
    timeout: Duration,
}

impl<'a> Simulator<'a> {
    pub fn new(
        state: StateView<'a>,
        next: &BlockContext,
        chain_id: u64,
        tx: &CallTx,
        timeout: Duration,
    ) -> RpcResult<Self> {
        let mut cfg = cfg_env(chain_id);
        cfg.disable_nonce_check = true;
        let mut block = block_env(next);
        if tx.free {
            block.basefee = 0;
        }
        let mut sim = Self {
            db: CacheDB::new(state),
            block,
            cfg,
            block_gas_limit: next.gas_limit,
            deadline: Instant::now() + timeout,
            timeout,
        };
        sim.treat_as_eoa(tx.caller())?;
        Ok(sim)
    }

    /// Hides the caller's code (unless it is an EIP-7702 delegation, which revm allows).
    fn treat_as_eoa(&mut self, caller: Address) -> RpcResult<()> {
        let code_hash = match self.db.basic(caller).map_err(internal)? {
            Some(info) if info.code_hash != KECCAK_EMPTY => info.code_hash,
            _ => return Ok(()),
        };
        let code = self.db.code_by_hash(code_hash).map_err(internal)?;
        if code.is_eip7702() {
            return Ok(());
        }
        let account = self.db.load_account(caller).map_err(internal)?;
        account.info.code_hash = KECCAK_EMPTY;
        account.info.code = None;
        Ok(())
    }

    pub fn balance(&mut self, address: Address) -> RpcResult<U256> {
        Ok(self
            .db
            .basic(address)
            .map_err(internal)?
            .map(|a| a.balance)
            .unwrap_or_default())
    }

    pub fn has_code(&mut self, address: Address) -> RpcResult<bool> {
        Ok(self
            .db
            .basic(address)
            .map_err(internal)?
            .is_some_and(|a| a.code_hash != KECCAK_EMPTY))
    }

    /// The transaction and block environments of a run of `tx` with `gas`.
    fn envs(&self, tx: &CallTx, gas: u64) -> (TxEnv, BlockEnv) {
        let mut env = tx.env.clone();
        env.gas_limit = gas;
        let mut block = self.block.clone();
        block.gas_limit = block.gas_limit.max(gas);
        (env, block)
    }

    /// Executes `tx` with `gas` without committing; `Err` when the run passed the deadline.
    pub fn run(&mut self, tx: &CallTx, gas: u64) -> RpcResult<RunResult> {
        let (env, block) = self.envs(tx, gas);
        let deadline = Bounded::until(NoOpInspector, self.deadline, self.timeout);
        let mut evm = Context::mainnet()
            .with_db(&mut self.db)
            .with_block(block)
            .with_cfg(self.cfg.clone())
            .build_mainnet_with_inspector(deadline);
        let result = evm.inspect_tx(env).map(|r| r.result);
        match evm.into_inspector().exceeded() {
            Some(exceeded) => Err(server_error(exceeded.to_string())),
            None => Ok(result),
        }
    }

    /// Executes `tx` with `gas` under `inspector` without committing (debug_traceCall);
    /// returns the outcome with the environments the inspector's report needs.
    pub fn inspect(
        &mut self,
        tx: &CallTx,
        gas: u64,
        inspector: Bounded<DebugInspector>,
    ) -> Inspected {
        let (env, block) = self.envs(tx, gas);
        let mut evm = Context::mainnet()
            .with_db(&mut self.db)
            .with_block(block.clone())
            .with_cfg(self.cfg.clone())
            .build_mainnet_with_inspector(inspector);
        let result = evm.inspect_tx(env.clone());
        Inspected {
            result,
            tx: env,
            block,
            inspector: evm.into_inspector(),
        }
    }
}

/// What [`Simulator::inspect`] returns.
pub(crate) struct Inspected {
    pub result: Result<revm::context_interface::result::ResultAndState, EVMError<StateError>>,
    pub tx: TxEnv,
    pub block: BlockEnv,
    pub inspector: Bounded<DebugInspector>,
}

/// An error that stopped the transaction from running, worded as geth words it.
pub(crate) fn run_error(
    error: EVMError<StateError>,
    tx: &CallTx,
    base_fee: u64,
) -> ErrorObjectOwned {
    match error {
        EVMError::Transaction(invalid) => server_error(invalid_message(&invalid, tx, base_fee)),
        EVMError::Database(e) => internal(e),
        EVMError::Header(e) => server_error(e.to_string()),
        other => internal(other),
    }
}

pub(crate) fn invalid_message(invalid: &InvalidTransaction, tx: &CallTx, base_fee: u64) -> String {
    let from = tx.caller();
    match invalid {
        InvalidTransaction::LackOfFundForMaxFee { fee, balance } => {
            format!(
                "insufficient funds for gas * price + value: address {from} have {balance} want {fee}"
            )
        }
        InvalidTransaction::GasPriceLessThanBasefee => format!(
            "max fee per gas less than block base fee: address {from}, maxFeePerGas: {}, baseFee: {base_fee}",
            tx.fee_cap
        ),
        InvalidTransaction::PriorityFeeGreaterThanMaxFee => format!(
            "max priority fee per gas higher than max fee per gas: address {from}, maxPriorityFeePerGas: {}, maxFeePerGas: {}",
            tx.env.gas_priority_fee.unwrap_or_default(),
            tx.fee_cap
        ),
        InvalidTransaction::CallGasCostMoreThanGasLimit {
            initial_gas,
            gas_limit,
        } => {
            format!("intrinsic gas too low: gas {gas_limit}, minimum needed {initial_gas}")
        }
        InvalidTransaction::GasFloorMoreThanGasLimit {
            gas_floor,
            gas_limit,
        } => {
            format!(
                "insufficient gas for floor data gas cost: gas {gas_limit}, minimum needed {gas_floor}"
            )
        }
        other => other.to_string(),
    }
}

/// geth's wording of a halt.
pub(crate) fn halt_message(reason: &HaltReason) -> String {
    match reason {
        HaltReason::OutOfGas(_) => "out of gas".to_owned(),
        HaltReason::OpcodeNotFound | HaltReason::InvalidFEOpcode => "invalid opcode".to_owned(),
        HaltReason::CallTooDeep => "max call depth exceeded".to_owned(),
        HaltReason::OutOfFunds => "insufficient balance for transfer".to_owned(),
        HaltReason::CreateCollision => "contract address collision".to_owned(),
        HaltReason::CreateContractSizeLimit => "max code size exceeded".to_owned(),
        HaltReason::StateChangeDuringStaticCall | HaltReason::CallNotAllowedInsideStatic => {
            "write protection".to_owned()
        }
        other => other.to_string(),
    }
}
