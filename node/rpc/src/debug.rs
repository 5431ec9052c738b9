//! debug_traceTransaction and debug_traceCall with geth's default struct logger and its
//! callTracer, so `cast run`, Tenderly-style explorers and hardhat/foundry tooling can inspect
//! execution the way they do against geth or anvil.
//!
//! Why it looks like this:
//! - **revm-inspectors.** Its `DebugInspector` is what reth serves these methods with, and its
//!   output types (`alloy_rpc_types_trace::geth`) serialize exactly as geth's JSON, so the
//!   traces match other clients field for field (tests/js/trace-diff.mjs checks against anvil).
//! - **Replay, no stored traces.** A mined transaction is traced by re-executing its block on
//!   the state after the parent, in the block's own environment: the block's opening system
//!   calls (`executor::begin_block`, the very code import runs, so a new system call cannot
//!   make traces lie) and the earlier transactions run untraced and are committed to an
//!   in-memory overlay, then the target runs under the inspector. Nothing is written to the
//!   chain.
//! - **One call environment.** debug_traceCall runs through the same [`Simulator`] and
//!   environment as eth_call, so a trace shows what eth_call would have done.
//! - **Two tracers.** Only the default struct logger and `callTracer` are offered (what the
//!   tooling uses); any other tracer is refused with -32602 rather than answered half-way.

use alloy_eips::BlockId;
use alloy_primitives::B256;
use alloy_rpc_types_eth::TransactionRequest;
use alloy_rpc_types_trace::geth::{
    GethDebugBuiltInTracerType, GethDebugTracerType, GethDebugTracingCallOptions,
    GethDebugTracingOptions, GethTrace,
};
use bttd_runtime::executor::{begin_block, block_env, cfg_env, tx_env};
use bttd_runtime::tx::RecoveredTx;
use jsonrpsee::proc_macros::rpc;
use revm::context_interface::result::ResultAndState;
use revm::database::{CacheDB, EmptyDB};
use revm::{Context, ExecuteCommitEvm, InspectEvm, MainBuilder, MainContext};
use revm_inspectors::tracing::{DebugInspector, DebugInspectorError, TransactionContext};

use super::Rpc;
use super::bounded::{Bounded, Recording, trace_timeout};
use super::call::block_context;
use super::error::{RpcResult, header_not_found, internal, invalid_params, server_error};
use super::evm::{CallTx, Simulator, run_error};
use bttd_runtime::Chain;

#[rpc(server, namespace = "debug")]
pub(crate) trait DebugApi {
    /// Re-executes a mined transaction and reports it with the requested tracer.
    #[method(name = "traceTransaction")]
    async fn trace_transaction(
        &self,
        hash: B256,
        opts: Option<GethDebugTracingOptions>,
    ) -> RpcResult<GethTrace>;

    /// Runs a call as eth_call does and reports it with the requested tracer. State and
    /// block overrides and `txIndex` are not supported.
    #[method(name = "traceCall")]
    async fn trace_call(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
        opts: Option<GethDebugTracingCallOptions>,
    ) -> RpcResult<GethTrace>;
}

/// The inspector for `opts`, or -32602 for a tracer this node does not offer.
fn inspector(opts: GethDebugTracingOptions) -> RpcResult<DebugInspector> {
    match opts.tracer.as_ref().filter(|t| !t.as_str().is_empty()) {
        None | Some(GethDebugTracerType::BuiltInTracer(GethDebugBuiltInTracerType::CallTracer)) => {
        }
        Some(other) => {
            return Err(invalid_params(format!(
                "tracer {:?} is not supported: use the default struct logger (no tracer) or callTracer",
                other.as_str()
            )));
        }
    }
    DebugInspector::new(opts).map_err(|e| invalid_params(format!("tracer options: {e}")))
}

/// Longest `timeout` a trace may ask for.
const MAX_TRACE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The inspector for `opts` within the bounds of one trace: its `timeout` (geth's option,
/// default 5 s) and, for the struct logger, the caps on what it records.
fn bounded_inspector(opts: GethDebugTracingOptions) -> RpcResult<Bounded<DebugInspector>> {
    let timeout =
        trace_timeout(opts.timeout.as_deref(), MAX_TRACE_TIMEOUT).map_err(invalid_params)?;
    let struct_logger = opts.tracer.as_ref().is_none_or(|t| t.as_str().is_empty());
    let recording = Recording {
        stack: !opts.config.disable_stack.unwrap_or(false),
        memory: opts
            .config
            .enable_memory
            .or(opts.config.disable_memory.map(|disabled| !disabled))
            .unwrap_or(false),
    };
    let bounded = Bounded::new(inspector(opts)?, timeout);
    Ok(if struct_logger {
        bounded.recording(recording)
    } else {
        bounded
    })
}

/// The inspector's report on a finished run.
fn report(
    inspector: &mut DebugInspector,
    context: Option<TransactionContext>,
    tx: &revm::context::TxEnv,
    block: &revm::context::BlockEnv,
    result: &ResultAndState,
) -> RpcResult<GethTrace> {
    // Neither tracer offered here reads the database while reporting.
    inspector
        .get_result(context, tx, block, result, &mut EmptyDB::default())
        .map_err(|e: DebugInspectorError<_>| internal(e))
}

#[jsonrpsee::core::async_trait]
impl DebugApiServer for Rpc {
    async fn trace_transaction(
        &self,
        hash: B256,
        opts: Option<GethDebugTracingOptions>,
    ) -> RpcResult<GethTrace> {
        self.heavy(move |rpc| rpc.debug_trace_transaction(hash, opts))
            .await
    }

    async fn trace_call(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
        opts: Option<GethDebugTracingCallOptions>,
    ) -> RpcResult<GethTrace> {
        self.heavy(move |rpc| rpc.debug_trace_call(request, block, opts))
            .await
    }
}

impl Rpc {
    /// debug_traceTransaction, on the calling thread (the RPC method runs it on the heavy
    /// pool).
    fn debug_trace_transaction(
        &self,
        hash: B256,
        opts: Option<GethDebugTracingOptions>,
    ) -> RpcResult<GethTrace> {
        let inspector = bounded_inspector(opts.unwrap_or_default())?;
        let chain = &self.ctx.chain;
        let chain_id = chain.config().chain_id;
        let location = chain
            .transaction_location(hash)
            .map_err(internal)?
            .ok_or_else(|| server_error(format!("transaction {hash} not found")))?;
        let block = chain
            .block(location.block_hash)
            .map_err(internal)?
            .ok_or_else(header_not_found)?;
        let number = block.header.number;
        let parent_state = chain
            .state_at(number.saturating_sub(1))
            .ok_or_else(header_not_found)?;
        let mut ctx = block_context(&block.header);
        (ctx.parent_beneficiary, ctx.consensus) = consensus_inputs(chain, &block.header)?;
        let benv = block_env(&ctx);
        let mut db = CacheDB::new(parent_state);

        let mut txs = block
            .body
            .transactions
            .iter()
            .take(location.index + 1)
            .map(|envelope| {
                RecoveredTx::from_envelope(envelope.clone(), chain_id, u64::MAX).map_err(internal)
            });
        let mut evm = Context::mainnet()
            .with_db(&mut db)
            .with_block(benv.clone())
            .with_cfg(cfg_env(chain_id))
            .build_mainnet_with_inspector(inspector);
        begin_block(&mut evm, &ctx, chain.config()).map_err(internal)?;
        for _ in 0..location.index {
            let tx = txs
                .next()
                .ok_or_else(|| internal("transaction index out of range"))??;
            evm.transact_commit(tx_env(&tx)).map_err(internal)?;
        }
        let target = txs
            .next()
            .ok_or_else(|| internal("transaction index out of range"))??;
        let env = tx_env(&target);
        let result = evm.inspect_tx(env.clone());
        let mut inspector = evm.into_inspector();
        if let Some(exceeded) = inspector.exceeded() {
            return Err(server_error(exceeded.to_string()));
        }
        let result = result.map_err(internal)?;
        let context = TransactionContext {
            block_hash: Some(block.hash()),
            tx_index: Some(location.index),
            tx_hash: Some(hash),
        };
        report(&mut inspector.inner, Some(context), &env, &benv, &result)
    }

    /// debug_traceCall, on the calling thread.
    fn debug_trace_call(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
        opts: Option<GethDebugTracingCallOptions>,
    ) -> RpcResult<GethTrace> {
        let opts = opts.unwrap_or_default();
        if opts.state_overrides.is_some()
            || opts.block_overrides.is_some()
            || opts.tx_index.is_some()
        {
            return Err(invalid_params(
                "state overrides, block overrides and txIndex are not supported by this node",
            ));
        }
        let inspector = bounded_inspector(opts.tracing_options)?;
        let chain_id = self.ctx.chain.config().chain_id;
        let tx = CallTx::from_request(&request, chain_id)?;
        let (state, next) = self.call_env(block)?;
        let gas = request
            .gas
            .unwrap_or(self.config.gas_cap)
            .min(self.config.gas_cap);
        let mut sim = Simulator::new(state, &next, chain_id, &tx, MAX_TRACE_TIMEOUT)?;
        let mut run = sim.inspect(&tx, gas, inspector);
        if let Some(exceeded) = run.inspector.exceeded() {
            return Err(server_error(exceeded.to_string()));
        }
        let result = run.result.map_err(|e| run_error(e, &tx, next.base_fee))?;
        report(&mut run.inspector.inner, None, &run.tx, &run.block, &result)
    }
}

/// What a committed block's `extraData` told its system calls, read back as import read it:
/// the parent's miner, the owners whose precommits certify the parent (ascending), and the
/// offences its evidence proves (owners from the set of each offence's height).
fn consensus_inputs(
    chain: &Chain,
    header: &alloy_consensus::Header,
) -> RpcResult<(alloy_primitives::Address, bttd_runtime::ConsensusInputs)> {
    let Some(staking) = &chain.config().staking else {
        return Ok(Default::default());
    };
    if header.number <= 1 {
        return Ok(Default::default());
    }
    let parent_number = header.number - 1;
    let parent = chain
        .header_by_number(parent_number)
        .map_err(internal)?
        .ok_or_else(header_not_found)?;
    let set_of = |height: u64| {
        bttd_runtime::staking::set_after(chain, staking.set_block(staking.epoch_of(height)))
            .map_err(internal)
    };
    let set = set_of(parent_number)?;
    let n = set.validators.len();
    let unfit = || internal("a committed block's extraData does not fit its parent's set");
    let extra = bttd_engine::wire::ExtraData::decode(
        &header.extra_data,
        parent_number,
        parent.hash(),
        n,
        staking.ends_epoch(header.number),
    )
    .ok_or_else(unfit)?;
    let parent_signers = extra
        .parent
        .signers
        .indices(n)
        .and_then(|indices| set.owners_of(indices.into_iter().map(|i| i as usize)))
        .ok_or_else(unfit)?;
    let mut offences = Vec::with_capacity(extra.evidence.len());
    for evidence in &extra.evidence {
        let (index, height, round, kind) = evidence.offence();
        let owner = set_of(height)?
            .validators
            .get(index as usize)
            .map(|v| v.owner)
            .ok_or_else(unfit)?;
        offences.push(bttd_runtime::Offence {
            owner,
            height,
            round,
            kind,
        });
    }
    Ok((
        parent.beneficiary,
        bttd_runtime::ConsensusInputs {
            parent_signers,
            offences,
        },
    ))
}
