//! txpool_status and txpool_content in geth's format, for tooling that inspects the pool
//! (hardhat/foundry scripts, block explorers, wallets waiting on a stuck nonce).
//!
//! `pending` is what could be mined now; `queued` waits for a lower nonce. Content is keyed
//! by checksummed sender, then by decimal nonce (as geth), each transaction shaped as
//! eth_getTransactionByHash shapes a pool transaction (null block fields).

use std::collections::BTreeMap;

use alloy_primitives::{Address, U64};
use alloy_rpc_types_eth::Transaction;
use bttd_runtime::RecoveredTx;
use jsonrpsee::proc_macros::rpc;
use serde::Serialize;

use super::Rpc;
use super::convert::rpc_transaction;
use super::error::RpcResult;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct TxpoolStatus {
    pub pending: U64,
    pub queued: U64,
}

type BySender = BTreeMap<String, BTreeMap<String, Transaction>>;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct TxpoolContent {
    pub pending: BySender,
    pub queued: BySender,
}

#[rpc(server, namespace = "txpool")]
pub(crate) trait TxpoolApi {
    #[method(name = "status")]
    fn status(&self) -> RpcResult<TxpoolStatus>;

    #[method(name = "content")]
    fn content(&self) -> RpcResult<TxpoolContent>;
}

fn by_sender(side: BTreeMap<Address, BTreeMap<u64, RecoveredTx>>) -> BySender {
    side.into_iter()
        .map(|(sender, txs)| {
            let txs = txs
                .into_iter()
                .map(|(nonce, tx)| {
                    (
                        nonce.to_string(),
                        rpc_transaction(tx.into_envelope(), sender, None),
                    )
                })
                .collect();
            (sender.to_checksum(None), txs)
        })
        .collect()
}

impl TxpoolApiServer for Rpc {
    fn status(&self) -> RpcResult<TxpoolStatus> {
        let status = self.ctx.pool.lock().status();
        Ok(TxpoolStatus {
            pending: U64::from(status.pending),
            queued: U64::from(status.queued),
        })
    }

    fn content(&self) -> RpcResult<TxpoolContent> {
        let content = self.ctx.pool.lock().content();
        Ok(TxpoolContent {
            pending: by_sender(content.pending),
            queued: by_sender(content.queued),
        })
    }
}
