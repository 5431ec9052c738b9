//! eth_subscribe / eth_unsubscribe over WebSocket: `newHeads`, `logs` (with a filter; its
//! block range is ignored, as geth does) and `newPendingTransactions` (hashes, or full
//! transactions with `true`). Fed from the node's broadcast channels; a subscriber too slow
//! to keep up skips what it missed (logged) rather than holding the node back.

use std::sync::Arc;

use alloy_primitives::B256;
use alloy_rpc_types_eth::pubsub::{Params, SubscriptionKind};
use alloy_rpc_types_eth::{Filter, FilterBlockOption};
use jsonrpsee::core::SubscriptionResult;
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::{PendingSubscriptionSink, SubscriptionSink};
use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};

use super::Rpc;
use super::convert::{block_logs, rpc_header, rpc_transaction};
use super::error::invalid_params;
use bttd_txpool::context::NewBlock;

#[rpc(server, namespace = "eth")]
pub(crate) trait EthPubSubApi {
    #[subscription(name = "subscribe" => "subscription", unsubscribe = "unsubscribe", item = serde_json::Value)]
    async fn subscribe(&self, kind: SubscriptionKind, params: Option<Params>)
    -> SubscriptionResult;
}

#[jsonrpsee::core::async_trait]
impl EthPubSubApiServer for Rpc {
    async fn subscribe(
        &self,
        pending: PendingSubscriptionSink,
        kind: SubscriptionKind,
        params: Option<Params>,
    ) -> SubscriptionResult {
        let params = params.unwrap_or(Params::None);
        match (kind, params) {
            (SubscriptionKind::NewHeads, Params::None) => {
                let rx = self.ctx.blocks.subscribe();
                let sink = pending.accept().await?;
                forward(sink, rx, |block: &Arc<NewBlock>| {
                    vec![rpc_header(&block.block.header, None)]
                })
                .await;
            }
            (SubscriptionKind::Logs, params @ (Params::None | Params::Logs(_))) => {
                let mut filter = match params {
                    Params::Logs(filter) => *filter,
                    _ => Filter::default(),
                };
                filter.block_option = FilterBlockOption::default();
                let rx = self.ctx.blocks.subscribe();
                let sink = pending.accept().await?;
                forward(sink, rx, move |block: &Arc<NewBlock>| {
                    if block.removed.is_empty() {
                        matching_logs(block, &filter)
                    } else {
                        removed_logs(block, &filter)
                    }
                })
                .await;
            }
            (
                SubscriptionKind::NewPendingTransactions,
                params @ (Params::None | Params::Bool(_)),
            ) => {
                let full = matches!(params, Params::Bool(true));
                let rx = self.ctx.pending_txs.subscribe();
                let sink = pending.accept().await?;
                let rpc = self.clone();
                if full {
                    forward(sink, rx, move |hash: &B256| {
                        let tx = rpc.ctx.pool.lock().get(hash);
                        tx.map(|tx| {
                            let sender = tx.sender();
                            rpc_transaction(tx.into_envelope(), sender, None)
                        })
                        .into_iter()
                        .collect()
                    })
                    .await;
                } else {
                    forward(sink, rx, |hash: &B256| vec![*hash]).await;
                }
            }
            (kind, params) => {
                let message = match (kind, params) {
                    (
                        SubscriptionKind::Logs
                        | SubscriptionKind::NewHeads
                        | SubscriptionKind::NewPendingTransactions,
                        _,
                    ) => {
                        format!("invalid parameters for subscription {kind:?}")
                    }
                    _ => format!("unsupported subscription: {kind:?}"),
                };
                pending.reject(invalid_params(message)).await;
            }
        }
        Ok(())
    }
}

pub(super) fn matching_logs(block: &NewBlock, filter: &Filter) -> Vec<alloy_rpc_types_eth::Log> {
    let header = &block.block.header;
    if !filter.matches_bloom(header.logs_bloom) {
        return Vec::new();
    }
    block_logs(header, &block.block.body, &block.receipts)
        .filter(|log| filter.matches(&log.inner))
        .collect()
}

/// The logs of the blocks a devnet revert removed (newest block first), marked
/// `removed: true` as geth marks the logs of a reorged-out block.
pub(super) fn removed_logs(block: &NewBlock, filter: &Filter) -> Vec<alloy_rpc_types_eth::Log> {
    block
        .removed
        .iter()
        .filter(|unwound| filter.matches_bloom(unwound.block.header.logs_bloom))
        .flat_map(|unwound| {
            block_logs(
                &unwound.block.header,
                &unwound.block.body,
                &unwound.receipts,
            )
            .filter(|log| filter.matches(&log.inner))
            .map(|mut log| {
                log.removed = true;
                log
            })
            .collect::<Vec<_>>()
        })
        .collect()
}

/// Sends what `items` makes of every event until the client goes away.
async fn forward<E, T, F>(sink: SubscriptionSink, mut rx: broadcast::Receiver<E>, items: F)
where
    E: Clone,
    T: Serialize,
    F: Fn(&E) -> Vec<T>,
{
    loop {
        let event = tokio::select! {
            _ = sink.closed() => return,
            event = rx.recv() => event,
        };
        let event = match event {
            Ok(event) => event,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(target: "bttd::rpc", subscription = ?sink.subscription_id(), missed, "slow subscriber skipped events");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        for item in items(&event) {
            let message = match serde_json::value::to_raw_value(&item) {
                Ok(message) => message,
                Err(error) => {
                    tracing::error!(target: "bttd::rpc", %error, "cannot serialise subscription item");
                    continue;
                }
            };
            if sink.send(message).await.is_err() {
                return;
            }
        }
    }
}
