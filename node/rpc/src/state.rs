//! Account state and chain position: chain id, head number, balance, nonce, code, storage.
//!
//! State is served at every height up to the head (see [`super::resolve::state_view`]).

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, Bytes, U64, U256};
use jsonrpsee::proc_macros::rpc;

use super::Rpc;
use super::error::{RpcResult, internal};
use super::resolve::state_view;

#[rpc(server, namespace = "eth")]
pub(crate) trait EthStateApi {
    #[method(name = "chainId")]
    fn chain_id(&self) -> RpcResult<U64>;

    #[method(name = "blockNumber")]
    fn block_number(&self) -> RpcResult<U64>;

    /// `false`, or geth's progress object while block sync is catching up with peers.
    #[method(name = "syncing")]
    fn syncing(&self) -> RpcResult<alloy_rpc_types_eth::SyncStatus>;

    #[method(name = "getBalance")]
    fn balance(&self, address: Address, block: Option<BlockId>) -> RpcResult<U256>;

    /// With `pending`, the next nonce after the sender's executable pool transactions.
    #[method(name = "getTransactionCount")]
    fn transaction_count(&self, address: Address, block: Option<BlockId>) -> RpcResult<U64>;

    #[method(name = "getCode")]
    fn code(&self, address: Address, block: Option<BlockId>) -> RpcResult<Bytes>;

    #[method(name = "getStorageAt")]
    fn storage_at(&self, address: Address, slot: U256, block: Option<BlockId>) -> RpcResult<B256>;
}

impl EthStateApiServer for Rpc {
    fn chain_id(&self) -> RpcResult<U64> {
        Ok(U64::from(self.ctx.chain.config().chain_id))
    }

    fn block_number(&self) -> RpcResult<U64> {
        Ok(U64::from(self.ctx.chain.head().number))
    }

    fn syncing(&self) -> RpcResult<alloy_rpc_types_eth::SyncStatus> {
        use alloy_rpc_types_eth::{SyncInfo, SyncStatus};
        let head = self.ctx.chain.head().number;
        let progress = self
            .consensus
            .as_deref()
            .and_then(|i| i.sync_progress(head));
        Ok(match progress {
            Some((starting, highest)) => SyncStatus::Info(Box::new(SyncInfo {
                starting_block: alloy_primitives::U256::from(starting),
                current_block: alloy_primitives::U256::from(head),
                highest_block: alloy_primitives::U256::from(highest),
                ..Default::default()
            })),
            None => SyncStatus::None,
        })
    }

    fn balance(&self, address: Address, block: Option<BlockId>) -> RpcResult<U256> {
        let chain = &self.ctx.chain;
        state_view(chain, block)?.balance(address).map_err(internal)
    }

    fn transaction_count(&self, address: Address, block: Option<BlockId>) -> RpcResult<U64> {
        let chain = &self.ctx.chain;
        if block == Some(BlockId::Number(BlockNumberOrTag::Pending)) {
            let state_nonce = chain.state().nonce(address).map_err(internal)?;
            let next = self.ctx.pool.lock().pending_nonce(address, state_nonce);
            return Ok(U64::from(next));
        }
        let nonce = state_view(chain, block)?.nonce(address).map_err(internal)?;
        Ok(U64::from(nonce))
    }

    fn code(&self, address: Address, block: Option<BlockId>) -> RpcResult<Bytes> {
        let chain = &self.ctx.chain;
        state_view(chain, block)?.code(address).map_err(internal)
    }

    fn storage_at(&self, address: Address, slot: U256, block: Option<BlockId>) -> RpcResult<B256> {
        let chain = &self.ctx.chain;
        let value = state_view(chain, block)?
            .storage(address, B256::from(slot))
            .map_err(internal)?;
        Ok(B256::from(value))
    }
}
