//! eth_getLogs: by block hash or over a block range, with address and topic filters (nulls
//! are wildcards, arrays are ORs). Each block's header bloom is checked first, so blocks that
//! cannot match are skipped without reading their receipts.
//!
//! Limits: a range may span at most `max_log_range` blocks and a query may return at most
//! `max_logs` logs; beyond either the error is -32005 (limit exceeded) with a message saying
//! which, so clients can split the query. `toBlock` beyond the head is clamped to the head.

use alloy_eips::BlockNumberOrTag;
use alloy_rpc_types_eth::{Filter, FilterBlockOption, Log};
use bttd_runtime::SealedHeader;
use jsonrpsee::proc_macros::rpc;

use super::Rpc;
use super::convert::block_logs;
use super::error::{RpcResult, internal, limit_exceeded, server_error};
use super::resolve::tag_number;

#[rpc(server, namespace = "eth")]
pub(crate) trait EthLogsApi {
    #[method(name = "getLogs")]
    async fn logs(&self, filter: Filter) -> RpcResult<Vec<Log>>;
}

impl Rpc {
    /// Appends the matching logs of one block; fails once more than `max_logs` match.
    pub(crate) fn collect_block_logs(
        &self,
        header: &SealedHeader,
        filter: &Filter,
        out: &mut Vec<Log>,
    ) -> RpcResult<()> {
        if !filter.matches_bloom(header.logs_bloom) {
            return Ok(());
        }
        let chain = &self.ctx.chain;
        let hash = header.hash();
        let body = chain.body(hash).map_err(internal)?.unwrap_or_default();
        let receipts = chain.receipts(hash).map_err(internal)?.unwrap_or_default();
        for log in block_logs(header, &body, &receipts) {
            if filter.matches(&log.inner) {
                if out.len() >= self.config.max_logs {
                    return Err(limit_exceeded(format!(
                        "query returned more than {} results",
                        self.config.max_logs
                    )));
                }
                out.push(log);
            }
        }
        Ok(())
    }

    /// The inclusive block range a filter names, clamped to the head (None when empty).
    fn filter_range(
        &self,
        from: Option<BlockNumberOrTag>,
        to: Option<BlockNumberOrTag>,
    ) -> RpcResult<Option<(u64, u64)>> {
        let chain = &self.ctx.chain;
        let head = chain.head().number;
        let from = tag_number(chain, from.unwrap_or_default());
        let to = tag_number(chain, to.unwrap_or_default());
        if from > to {
            return Err(server_error("invalid block range params"));
        }
        if from > head {
            return Ok(None);
        }
        let to = to.min(head);
        self.check_log_span(from, to)?;
        Ok(Some((from, to)))
    }

    /// Refuses a scan of `[from, to]` (`from <= to`) longer than `max-log-range` blocks:
    /// eth_getLogs and the channel lists (which scan the same logs) share the limit.
    pub(crate) fn check_log_span(&self, from: u64, to: u64) -> RpcResult<()> {
        let span = to.saturating_sub(from).saturating_add(1);
        if span > self.config.max_log_range {
            return Err(limit_exceeded(format!(
                "block range too large: {span} blocks, the limit is {} (max-log-range); query a narrower range",
                self.config.max_log_range
            )));
        }
        Ok(())
    }
}

#[jsonrpsee::core::async_trait]
impl EthLogsApiServer for Rpc {
    async fn logs(&self, filter: Filter) -> RpcResult<Vec<Log>> {
        self.heavy(move |rpc| rpc.eth_get_logs(&filter)).await
    }
}

impl Rpc {
    /// eth_getLogs, on the calling thread (the RPC method runs it on the heavy pool).
    pub(crate) fn eth_get_logs(&self, filter: &Filter) -> RpcResult<Vec<Log>> {
        let chain = &self.ctx.chain;
        let mut out = Vec::new();
        match filter.block_option {
            FilterBlockOption::AtBlockHash(hash) => {
                let header = chain
                    .header(hash)
                    .map_err(internal)?
                    .ok_or_else(|| server_error("unknown block"))?;
                self.collect_block_logs(&header, filter, &mut out)?;
            }
            FilterBlockOption::Range {
                from_block,
                to_block,
            } => {
                let Some((from, to)) = self.filter_range(from_block, to_block)? else {
                    return Ok(out);
                };
                for number in from..=to {
                    let header = chain
                        .header_by_number(number)
                        .map_err(internal)?
                        .ok_or_else(|| internal(format!("canonical block {number} missing")))?;
                    self.collect_block_logs(&header, filter, &mut out)?;
                }
            }
        }
        Ok(out)
    }
}
