//! Submitting transactions and looking them up (mined or still in the pool).

use alloy_primitives::{B256, Bytes};
use alloy_rpc_types_eth::{Transaction, TransactionReceipt};
use jsonrpsee::proc_macros::rpc;

use super::Rpc;
use super::convert::{MinedAt, rpc_receipt_at, rpc_transaction};
use super::error::{RpcResult, internal, server_error};

#[rpc(server, namespace = "eth")]
pub(crate) trait EthTransactionsApi {
    /// Checks and pools a signed EIP-2718 transaction; refusals carry geth's messages.
    /// On a devnet in automine mode, answers once the block holding it is committed.
    #[method(name = "sendRawTransaction", blocking)]
    fn send_raw_transaction(&self, raw: Bytes) -> RpcResult<B256>;

    /// A mined transaction, or a pool transaction with null block fields.
    #[method(name = "getTransactionByHash")]
    fn transaction_by_hash(&self, hash: B256) -> RpcResult<Option<Transaction>>;

    #[method(name = "getTransactionReceipt")]
    fn transaction_receipt(&self, hash: B256) -> RpcResult<Option<TransactionReceipt>>;
}

impl EthTransactionsApiServer for Rpc {
    fn send_raw_transaction(&self, raw: Bytes) -> RpcResult<B256> {
        match self.ctx.submit_raw(&raw) {
            Ok(hash) => {
                tracing::debug!(target: "bttd::rpc", %hash, "transaction submitted");
                self.automine(hash)?;
                Ok(hash)
            }
            Err(e) => {
                tracing::debug!(target: "bttd::rpc", error = %e, "transaction refused");
                Err(server_error(e.to_string()))
            }
        }
    }

    fn transaction_by_hash(&self, hash: B256) -> RpcResult<Option<Transaction>> {
        let chain = &self.ctx.chain;
        if let Some(location) = chain.transaction_location(hash).map_err(internal)? {
            let Some(block) = chain.block(location.block_hash).map_err(internal)? else {
                return Ok(None);
            };
            let i = location.index;
            let (Some(tx), Some(sender)) =
                (block.body.transactions.get(i), block.body.senders.get(i))
            else {
                return Err(internal(format!(
                    "transaction index {i} out of range in block {}",
                    block.hash()
                )));
            };
            return Ok(Some(rpc_transaction(
                tx.clone(),
                *sender,
                Some(MinedAt::new(&block.header, i)),
            )));
        }
        let pooled = self.ctx.pool.lock().get(&hash);
        Ok(pooled.map(|tx| {
            let sender = tx.sender();
            rpc_transaction(tx.into_envelope(), sender, None)
        }))
    }

    fn transaction_receipt(&self, hash: B256) -> RpcResult<Option<TransactionReceipt>> {
        let chain = &self.ctx.chain;
        let Some(location) = chain.transaction_location(hash).map_err(internal)? else {
            return Ok(None);
        };
        let Some(block) = chain.block(location.block_hash).map_err(internal)? else {
            return Ok(None);
        };
        let receipts = chain
            .receipts(location.block_hash)
            .map_err(internal)?
            .unwrap_or_default();
        Ok(rpc_receipt_at(
            &block.header,
            &block.body,
            receipts,
            location.index,
        ))
    }
}
