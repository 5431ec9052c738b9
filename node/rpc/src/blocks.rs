//! Blocks and their receipts, by number, tag or hash. Unknown blocks are `null`, as in geth.

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{B256, U64};
use alloy_rpc_types_eth::{Block, Index, Transaction, TransactionReceipt};
use bttd_runtime::{SealedBlock, SealedHeader};
use jsonrpsee::proc_macros::rpc;

use super::Rpc;
use super::convert::{MinedAt, rpc_block, rpc_receipts, rpc_transaction};
use super::error::{RpcResult, internal};
use super::resolve::{header_by_id, header_by_tag};

#[rpc(server, namespace = "eth")]
pub(crate) trait EthBlocksApi {
    #[method(name = "getBlockByNumber")]
    fn block_by_number(
        &self,
        number: BlockNumberOrTag,
        full: Option<bool>,
    ) -> RpcResult<Option<Block>>;

    #[method(name = "getBlockByHash")]
    fn block_by_hash(&self, hash: B256, full: Option<bool>) -> RpcResult<Option<Block>>;

    #[method(name = "getBlockReceipts")]
    fn block_receipts(&self, block: BlockId) -> RpcResult<Option<Vec<TransactionReceipt>>>;

    #[method(name = "getBlockTransactionCountByNumber")]
    fn block_transaction_count_by_number(&self, number: BlockNumberOrTag)
    -> RpcResult<Option<U64>>;

    #[method(name = "getBlockTransactionCountByHash")]
    fn block_transaction_count_by_hash(&self, hash: B256) -> RpcResult<Option<U64>>;

    #[method(name = "getTransactionByBlockNumberAndIndex")]
    fn transaction_by_block_number_and_index(
        &self,
        number: BlockNumberOrTag,
        index: Index,
    ) -> RpcResult<Option<Transaction>>;

    #[method(name = "getTransactionByBlockHashAndIndex")]
    fn transaction_by_block_hash_and_index(
        &self,
        hash: B256,
        index: Index,
    ) -> RpcResult<Option<Transaction>>;

    /// No uncles on this chain.
    #[method(name = "getUncleCountByBlockNumber")]
    fn uncle_count_by_block_number(&self, number: BlockNumberOrTag) -> RpcResult<Option<U64>>;

    /// No uncles on this chain.
    #[method(name = "getUncleCountByBlockHash")]
    fn uncle_count_by_block_hash(&self, hash: B256) -> RpcResult<Option<U64>>;
}

impl Rpc {
    /// The whole block with this header.
    fn block_of(&self, header: Option<SealedHeader>) -> RpcResult<Option<SealedBlock>> {
        let Some(header) = header else {
            return Ok(None);
        };
        let body = self
            .ctx
            .chain
            .body(header.hash())
            .map_err(internal)?
            .unwrap_or_default();
        Ok(Some(SealedBlock { header, body }))
    }

    fn block_by_tag(&self, tag: BlockNumberOrTag) -> RpcResult<Option<SealedBlock>> {
        self.block_of(header_by_tag(&self.ctx.chain, tag)?)
    }

    fn block_by_hash_(&self, hash: B256) -> RpcResult<Option<SealedBlock>> {
        self.ctx.chain.block(hash).map_err(internal)
    }
}

fn transaction_at(block: Option<SealedBlock>, index: Index) -> Option<Transaction> {
    let block = block?;
    let i: usize = index.into();
    let tx = block.body.transactions.get(i)?.clone();
    let sender = *block.body.senders.get(i)?;
    Some(rpc_transaction(
        tx,
        sender,
        Some(MinedAt::new(&block.header, i)),
    ))
}

fn tx_count(block: Option<SealedBlock>) -> Option<U64> {
    block.map(|b| U64::from(b.body.transactions.len()))
}

impl EthBlocksApiServer for Rpc {
    fn block_by_number(
        &self,
        number: BlockNumberOrTag,
        full: Option<bool>,
    ) -> RpcResult<Option<Block>> {
        Ok(self
            .block_by_tag(number)?
            .map(|b| rpc_block(b, full.unwrap_or(false))))
    }

    fn block_by_hash(&self, hash: B256, full: Option<bool>) -> RpcResult<Option<Block>> {
        Ok(self
            .block_by_hash_(hash)?
            .map(|b| rpc_block(b, full.unwrap_or(false))))
    }

    fn block_receipts(&self, block: BlockId) -> RpcResult<Option<Vec<TransactionReceipt>>> {
        let Some(block) = self.block_of(header_by_id(&self.ctx.chain, block)?)? else {
            return Ok(None);
        };
        let receipts = self
            .ctx
            .chain
            .receipts(block.hash())
            .map_err(internal)?
            .unwrap_or_default();
        Ok(Some(rpc_receipts(&block.header, &block.body, receipts)))
    }

    fn block_transaction_count_by_number(
        &self,
        number: BlockNumberOrTag,
    ) -> RpcResult<Option<U64>> {
        Ok(tx_count(self.block_by_tag(number)?))
    }

    fn block_transaction_count_by_hash(&self, hash: B256) -> RpcResult<Option<U64>> {
        Ok(tx_count(self.block_by_hash_(hash)?))
    }

    fn transaction_by_block_number_and_index(
        &self,
        number: BlockNumberOrTag,
        index: Index,
    ) -> RpcResult<Option<Transaction>> {
        Ok(transaction_at(self.block_by_tag(number)?, index))
    }

    fn transaction_by_block_hash_and_index(
        &self,
        hash: B256,
        index: Index,
    ) -> RpcResult<Option<Transaction>> {
        Ok(transaction_at(self.block_by_hash_(hash)?, index))
    }

    fn uncle_count_by_block_number(&self, number: BlockNumberOrTag) -> RpcResult<Option<U64>> {
        Ok(header_by_tag(&self.ctx.chain, number)?.map(|_| U64::ZERO))
    }

    fn uncle_count_by_block_hash(&self, hash: B256) -> RpcResult<Option<U64>> {
        Ok(self
            .ctx
            .chain
            .header(hash)
            .map_err(internal)?
            .map(|_| U64::ZERO))
    }
}
