//! eth_call and eth_estimateGas on the head state (see [`super::evm`] for the environment).
//!
//! Outcomes as geth reports them: a revert is code 3 "execution reverted[: reason]" with the
//! revert data; a halt is -32000 with its reason ("out of gas", "invalid opcode", ...); a
//! transaction that cannot run (insufficient funds, fee below the base fee) is -32000 with
//! geth's wording.
//!
//! Estimation is geth's algorithm: run at the highest allowed gas (request gas, else the block
//! gas limit; capped by what the sender's balance pays for and by the RPC gas cap) and report
//! its failure if it fails; otherwise binary-search between the gas used and that limit,
//! first trying the 64/63 optimistic guess, and stop once the bounds are within 1.5%. A plain
//! transfer to an account without code is tried at 21000 first.

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, Bytes, TxKind, U64};
use alloy_rpc_types_eth::TransactionRequest;
use bttd_runtime::executor::BlockContext;
use bttd_runtime::state::StateView;
use jsonrpsee::proc_macros::rpc;
use revm::context_interface::result::{EVMError, ExecutionResult, InvalidTransaction, Output};

use super::Rpc;
use super::error::{RpcResult, header_not_found, internal, invalid_params, reverted, server_error};
use super::evm::{CallTx, RunResult, Simulator, halt_message, run_error};
use super::resolve::state_number;

/// Gas of a plain value transfer.
const TX_GAS: u64 = 21_000;
/// geth's call stipend, added to the optimistic guess.
const CALL_STIPEND: u64 = 2_300;
/// Stop the search once (hi - lo) / hi is below this.
const ESTIMATE_ERROR_RATIO: f64 = 0.015;

#[rpc(server, namespace = "eth")]
pub(crate) trait EthCallApi {
    /// Executes a call on a block's state without committing it. State and block overrides
    /// are not supported (an empty or null object is accepted).
    #[method(name = "call")]
    async fn call(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
        state_overrides: Option<serde_json::Value>,
        block_overrides: Option<serde_json::Value>,
    ) -> RpcResult<Bytes>;

    /// The smallest gas limit with which the request succeeds.
    #[method(name = "estimateGas")]
    async fn estimate_gas(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
        state_overrides: Option<serde_json::Value>,
    ) -> RpcResult<U64>;
}

fn reject_overrides(what: &str, value: &Option<serde_json::Value>) -> RpcResult<()> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(()),
        Some(serde_json::Value::Object(map)) if map.is_empty() => Ok(()),
        Some(_) => Err(invalid_params(format!(
            "{what} are not supported by this node"
        ))),
    }
}

impl Rpc {
    /// The state and environment a call at `block` runs in, as geth: at block `n`, the state
    /// after `n` in `n`'s own environment (so `block.number` is `n`); at `pending`, the head's
    /// state in the next block's environment.
    pub(crate) fn call_env(
        &self,
        block: Option<BlockId>,
    ) -> RpcResult<(StateView<'_>, BlockContext)> {
        let chain = &self.ctx.chain;
        if block == Some(BlockId::Number(BlockNumberOrTag::Pending)) {
            let head = chain.head();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            let state = chain.state_at(head.number).ok_or_else(header_not_found)?;
            return Ok((state, chain.next_block_context(now, head.beneficiary)));
        }
        let number = state_number(chain, block)?;
        let state = chain.state_at(number).ok_or_else(header_not_found)?;
        let header = chain
            .header_by_number(number)
            .map_err(internal)?
            .ok_or_else(header_not_found)?;
        Ok((state, block_context(&header)))
    }
}

/// The environment block `header` executed in.
pub(crate) fn block_context(header: &alloy_consensus::Header) -> BlockContext {
    BlockContext {
        number: header.number,
        timestamp: header.timestamp,
        beneficiary: header.beneficiary,
        base_fee: header.base_fee_per_gas.unwrap_or_default(),
        gas_limit: header.gas_limit,
        prevrandao: header.mix_hash,
        parent_hash: header.parent_hash,
        parent_beneficiary: Address::ZERO,
        consensus: Default::default(),
    }
}

/// Success output, or the revert / halt as an RPC error.
fn call_output(result: ExecutionResult) -> RpcResult<Bytes> {
    match result {
        ExecutionResult::Success {
            output: Output::Call(out) | Output::Create(out, _),
            ..
        } => Ok(out),
        ExecutionResult::Revert { output, .. } => Err(reverted(output)),
        ExecutionResult::Halt { reason, .. } => Err(server_error(halt_message(&reason))),
    }
}

impl Rpc {
    /// eth_call, on the calling thread (the RPC method runs it on the heavy pool).
    pub(crate) fn eth_call(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
        state_overrides: Option<serde_json::Value>,
        block_overrides: Option<serde_json::Value>,
    ) -> RpcResult<Bytes> {
        reject_overrides("state overrides", &state_overrides)?;
        reject_overrides("block overrides", &block_overrides)?;
        let chain_id = self.ctx.chain.config().chain_id;
        let tx = CallTx::from_request(&request, chain_id)?;
        let (state, next) = self.call_env(block)?;
        let gas = request
            .gas
            .unwrap_or(self.config.gas_cap)
            .min(self.config.gas_cap);
        let mut sim = Simulator::new(state, &next, chain_id, &tx, self.config.evm_timeout)?;
        let result = sim
            .run(&tx, gas)?
            .map_err(|e| run_error(e, &tx, next.base_fee))?;
        call_output(result)
    }

    /// eth_estimateGas, on the calling thread.
    pub(crate) fn eth_estimate_gas(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
        state_overrides: Option<serde_json::Value>,
    ) -> RpcResult<U64> {
        reject_overrides("state overrides", &state_overrides)?;
        let chain_id = self.ctx.chain.config().chain_id;
        let tx = CallTx::from_request(&request, chain_id)?;
        let (state, next) = self.call_env(block)?;
        let mut sim = Simulator::new(state, &next, chain_id, &tx, self.config.evm_timeout)?;
        let estimate = Estimator {
            sim: &mut sim,
            tx: &tx,
            base_fee: next.base_fee,
        };
        estimate
            .run(request.gas, self.config.gas_cap)
            .map(U64::from)
    }
}

#[jsonrpsee::core::async_trait]
impl EthCallApiServer for Rpc {
    async fn call(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
        state_overrides: Option<serde_json::Value>,
        block_overrides: Option<serde_json::Value>,
    ) -> RpcResult<Bytes> {
        self.heavy(move |rpc| rpc.eth_call(request, block, state_overrides, block_overrides))
            .await
    }

    async fn estimate_gas(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
        state_overrides: Option<serde_json::Value>,
    ) -> RpcResult<U64> {
        self.heavy(move |rpc| rpc.eth_estimate_gas(request, block, state_overrides))
            .await
    }
}

struct Estimator<'s, 'a> {
    sim: &'s mut Simulator<'a>,
    tx: &'s CallTx,
    base_fee: u64,
}

/// Whether a run at some gas limit failed for lack of gas (or any execution failure, which a
/// low limit can cause), succeeded, or could not be judged (a hard error to report).
enum Probe {
    Ok(ExecutionResult),
    Failed(ExecutionResult),
    TooLittleGas,
}

impl Estimator<'_, '_> {
    fn probe(&mut self, gas: u64) -> RpcResult<Probe> {
        let result: RunResult = self.sim.run(self.tx, gas)?;
        match result {
            Ok(r) if r.is_success() => Ok(Probe::Ok(r)),
            Ok(r) => Ok(Probe::Failed(r)),
            Err(EVMError::Transaction(
                InvalidTransaction::CallGasCostMoreThanGasLimit { .. }
                | InvalidTransaction::GasFloorMoreThanGasLimit { .. },
            )) => Ok(Probe::TooLittleGas),
            Err(e) => Err(run_error(e, self.tx, self.base_fee)),
        }
    }

    /// The highest gas limit allowed: request gas or block limit, capped by the balance and
    /// by the RPC cap.
    fn ceiling(&mut self, requested: Option<u64>, gas_cap: u64) -> RpcResult<u64> {
        let mut hi = match requested {
            Some(gas) if gas >= TX_GAS => gas,
            _ => self.sim.block_gas_limit,
        };
        if self.tx.fee_cap != 0 && !self.tx.free {
            let balance = self.sim.balance(self.tx.caller())?;
            let value = self.tx.env.value;
            if value > balance {
                return Err(server_error("insufficient funds for transfer"));
            }
            let allowance = (balance - value) / alloy_primitives::U256::from(self.tx.fee_cap);
            hi = hi.min(u64::try_from(allowance).unwrap_or(u64::MAX));
        }
        if gas_cap != 0 {
            hi = hi.min(gas_cap);
        }
        Ok(hi)
    }

    fn run(mut self, requested: Option<u64>, gas_cap: u64) -> RpcResult<u64> {
        let mut hi = self.ceiling(requested, gas_cap)?;

        // A plain transfer to an account without code costs exactly 21000.
        if let TxKind::Call(to) = self.tx.env.kind
            && self.tx.env.data.is_empty()
            && self.tx.env.authorization_list.is_empty()
            && hi >= TX_GAS
            && !self.sim.has_code(to)?
            && matches!(self.probe(TX_GAS)?, Probe::Ok(_))
        {
            return Ok(TX_GAS);
        }

        let (used, refund) = match self.probe(hi)? {
            Probe::Ok(r) => (r.tx_gas_used(), r.gas().inner_refunded()),
            Probe::Failed(ExecutionResult::Revert { output, .. }) => return Err(reverted(output)),
            Probe::Failed(ExecutionResult::Halt { reason, .. }) => {
                return Err(server_error(match reason {
                    revm::context_interface::result::HaltReason::OutOfGas(_) => {
                        format!("gas required exceeds allowance ({hi})")
                    }
                    other => halt_message(&other),
                }));
            }
            Probe::Failed(_) | Probe::TooLittleGas => {
                return Err(server_error(format!(
                    "gas required exceeds allowance ({hi})"
                )));
            }
        };

        let mut lo = used.saturating_sub(1);
        let optimistic = (used + refund + CALL_STIPEND) * 64 / 63;
        if optimistic < hi {
            match self.probe(optimistic)? {
                Probe::Ok(_) => hi = optimistic,
                _ => lo = optimistic,
            }
        }
        while lo + 1 < hi {
            if ((hi - lo) as f64 / hi as f64) < ESTIMATE_ERROR_RATIO {
                break;
            }
            let mut mid = lo + (hi - lo) / 2;
            if mid > lo.saturating_mul(2) {
                // Most transactions need little more than they use: bisect on the low side.
                mid = lo * 2;
            }
            let mid = mid.max(lo + 1);
            match self.probe(mid)? {
                Probe::Ok(_) => hi = mid,
                _ => lo = mid,
            }
        }
        Ok(hi)
    }
}
