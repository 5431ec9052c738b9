//! `channel_` namespace: bandwidth payment channels (issue 5) as a client wants them, on top
//! of the `BandwidthChannels` system contract at `0x…1002`.
//!
//! Reads only: state comes from the contract's `channels(bytes32)` view run like eth_call at
//! the requested block, channel lists from its `ChannelOpened` logs (payer and payee are
//! indexed topics), and voucher checks from `bttd_contracts::channels`, the same code a payee
//! runs, so "valid" here means "the contract would pay it now". State changes go through
//! ordinary eth_sendRawTransaction.
//!
//! Time: a channel's state depends on time (`closesAt`); it is judged at the timestamp of the
//! block the state is read at (the head unless a block is given).

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use alloy_rpc_types_eth::{Filter, Log, TransactionInput, TransactionRequest};
use alloy_sol_types::{SolCall, SolEvent};
use bttd_contracts::BANDWIDTH_CHANNELS_ADDRESS;
use bttd_contracts::channels::eip712::TypedKind;
use bttd_contracts::channels::payee::check_voucher;
use bttd_contracts::channels::{
    ChannelInfo, ChannelStatus, ChannelsDomain, IBandwidthChannels, SignedVoucher, StrictSignature,
};
use jsonrpsee::proc_macros::rpc;
use serde::Serialize;

use super::Rpc;
use super::error::{RpcResult, header_not_found, internal, invalid_params};
use super::resolve::{header_by_id, tag_number};

/// A channel's state at a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChannelView {
    pub channel_id: B256,
    pub payer: Address,
    pub payee: Address,
    /// Total deposited, wei.
    pub deposit: U256,
    /// Paid to the payee so far, wei.
    pub claimed: U256,
    /// `deposit - claimed`: what vouchers can still take (while open) or the payer's refund.
    pub remaining: U256,
    /// Seconds from `requestClose` to `closesAt`.
    pub settle_window: u64,
    /// 0 while open; else the first timestamp at which settling is refused.
    pub closes_at: u64,
    /// `open`, `closing` (close requested, settling still possible) or `closed`.
    pub state: ChannelStatus,
}

/// A channel found by `ChannelOpened`, with its state at the head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChannelListing {
    #[serde(flatten)]
    pub channel: ChannelView,
    /// Block of the `ChannelOpened` event.
    pub opened_in_block: u64,
}

/// channel_verifyVoucher's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VoucherCheck {
    /// Who the signature recovers to (null when it fails the strict checks).
    pub signer: Option<Address>,
    /// Whether settling it now would pay: signed by the payer, above `claimed`, within the
    /// deposit, channel not past `closesAt`.
    pub valid: bool,
    /// What settling it now pays the payee (0 when not valid).
    pub claimable: U256,
    /// Deposit left after it (`deposit - cumulativeAmount`), or `deposit - claimed` when not
    /// valid.
    pub remaining: U256,
    /// Why it is not valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[rpc(server, namespace = "channel")]
pub(crate) trait ChannelApi {
    /// The channel's state at `block` (default latest); null for an unknown id.
    #[method(name = "getInfo", blocking)]
    fn get_info(&self, channel_id: B256, block: Option<BlockId>) -> RpcResult<Option<ChannelView>>;

    /// Channels `payer` opened (from `ChannelOpened` logs in `[fromBlock, toBlock]`, default
    /// the whole chain), oldest first, each with its state at the head. Limited as
    /// eth_getLogs: at most `max-log-range` blocks and `max_logs` channels (-32005 beyond).
    #[method(name = "listByPayer")]
    async fn list_by_payer(
        &self,
        payer: Address,
        from_block: Option<BlockNumberOrTag>,
        to_block: Option<BlockNumberOrTag>,
    ) -> RpcResult<Vec<ChannelListing>>;

    /// Channels paying `payee`; as `listByPayer`.
    #[method(name = "listByPayee")]
    async fn list_by_payee(
        &self,
        payee: Address,
        from_block: Option<BlockNumberOrTag>,
        to_block: Option<BlockNumberOrTag>,
    ) -> RpcResult<Vec<ChannelListing>>;

    /// The `eth_signTypedData_v4` payload of a voucher (`kind` "Voucher", the default) or of
    /// a payee's close consent ("Close") on this chain.
    #[method(name = "voucherTypedData")]
    fn voucher_typed_data(
        &self,
        channel_id: B256,
        cumulative_amount: U256,
        kind: Option<String>,
    ) -> RpcResult<serde_json::Value>;

    /// Checks a voucher against the channel at the head, exactly as `settle` would.
    #[method(name = "verifyVoucher", blocking)]
    fn verify_voucher(
        &self,
        channel_id: B256,
        cumulative_amount: U256,
        signature: Bytes,
    ) -> RpcResult<VoucherCheck>;
}

impl Rpc {
    fn channels_domain(&self) -> ChannelsDomain {
        ChannelsDomain::new(self.ctx.chain.config().chain_id, BANDWIDTH_CHANNELS_ADDRESS)
    }

    /// `channels(id)` at `block`, and that block's timestamp.
    fn read_channel(
        &self,
        channel_id: B256,
        block: Option<BlockId>,
    ) -> RpcResult<(ChannelInfo, u64)> {
        let id = block.unwrap_or_default();
        let header = header_by_id(&self.ctx.chain, id)?.ok_or_else(header_not_found)?;
        let call = IBandwidthChannels::channelsCall {
            channelId: channel_id,
        };
        let request = TransactionRequest {
            to: Some(TxKind::Call(BANDWIDTH_CHANNELS_ADDRESS)),
            input: TransactionInput::new(call.abi_encode().into()),
            ..Default::default()
        };
        // Pin the call to the header we took the timestamp from.
        let at = BlockId::number(header.number);
        let out = self.eth_call(request, Some(at), None, None)?;
        let info = ChannelInfo::decode_getter(&out)
            .map_err(|e| internal(format!("channels() returned undecodable data: {e}")))?;
        Ok((info, header.timestamp))
    }

    fn channel_view(
        &self,
        channel_id: B256,
        block: Option<BlockId>,
    ) -> RpcResult<Option<ChannelView>> {
        let (info, now) = self.read_channel(channel_id, block)?;
        Ok(match info.status(now) {
            ChannelStatus::Unknown => None,
            state => Some(ChannelView {
                channel_id,
                payer: info.payer,
                payee: info.payee,
                deposit: info.deposit,
                claimed: info.claimed,
                remaining: info.remaining(),
                settle_window: info.settle_window,
                closes_at: info.closes_at,
                state,
            }),
        })
    }

    /// `ChannelOpened` logs with `party` as indexed topic `topic_index` (2 payer, 3 payee).
    fn list_opened(
        &self,
        topic_index: usize,
        party: Address,
        from: Option<BlockNumberOrTag>,
        to: Option<BlockNumberOrTag>,
    ) -> RpcResult<Vec<ChannelListing>> {
        let chain = &self.ctx.chain;
        let head = chain.head().number;
        let from = tag_number(chain, from.unwrap_or(BlockNumberOrTag::Earliest));
        let to = tag_number(chain, to.unwrap_or(BlockNumberOrTag::Latest));
        // As eth_getLogs: a range starting beyond the head is empty, not an error.
        if from > head {
            return Ok(Vec::new());
        }
        if from > to {
            return Err(invalid_params(format!(
                "invalid block range: {from} > {to}"
            )));
        }
        let to = to.min(head);
        self.check_log_span(from, to)?;
        let filter = Filter::new()
            .address(BANDWIDTH_CHANNELS_ADDRESS)
            .event_signature(IBandwidthChannels::ChannelOpened::SIGNATURE_HASH);
        let filter = match topic_index {
            2 => filter.topic2(party.into_word()),
            _ => filter.topic3(party.into_word()),
        };
        let mut logs: Vec<Log> = Vec::new();
        for number in from..=to {
            let header = chain
                .header_by_number(number)
                .map_err(internal)?
                .ok_or_else(|| internal(format!("canonical block {number} missing")))?;
            self.collect_block_logs(&header, &filter, &mut logs)?;
        }
        let mut out = Vec::with_capacity(logs.len());
        for log in logs {
            let Some(&channel_id) = log.topics().get(1) else {
                continue;
            };
            if let Some(channel) = self.channel_view(channel_id, None)? {
                out.push(ChannelListing {
                    channel,
                    opened_in_block: log.block_number.unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }
}

#[jsonrpsee::core::async_trait]
impl ChannelApiServer for Rpc {
    fn get_info(&self, channel_id: B256, block: Option<BlockId>) -> RpcResult<Option<ChannelView>> {
        self.channel_view(channel_id, block)
    }

    async fn list_by_payer(
        &self,
        payer: Address,
        from_block: Option<BlockNumberOrTag>,
        to_block: Option<BlockNumberOrTag>,
    ) -> RpcResult<Vec<ChannelListing>> {
        self.heavy(move |rpc| rpc.list_opened(2, payer, from_block, to_block))
            .await
    }

    async fn list_by_payee(
        &self,
        payee: Address,
        from_block: Option<BlockNumberOrTag>,
        to_block: Option<BlockNumberOrTag>,
    ) -> RpcResult<Vec<ChannelListing>> {
        self.heavy(move |rpc| rpc.list_opened(3, payee, from_block, to_block))
            .await
    }

    fn voucher_typed_data(
        &self,
        channel_id: B256,
        cumulative_amount: U256,
        kind: Option<String>,
    ) -> RpcResult<serde_json::Value> {
        let kind = match kind.as_deref() {
            None | Some("Voucher") => TypedKind::Voucher,
            Some("Close") => TypedKind::Close,
            Some(other) => {
                return Err(invalid_params(format!(
                    "kind must be \"Voucher\" or \"Close\", got {other:?}"
                )));
            }
        };
        Ok(self
            .channels_domain()
            .typed_data_json(kind, channel_id, cumulative_amount))
    }

    fn verify_voucher(
        &self,
        channel_id: B256,
        cumulative_amount: U256,
        signature: Bytes,
    ) -> RpcResult<VoucherCheck> {
        let domain = self.channels_domain();
        let voucher = SignedVoucher {
            channel_id,
            cumulative_amount,
            signature,
        };
        let signer = StrictSignature::parse(&voucher.signature)
            .and_then(|s| s.recover(&voucher.digest(&domain)))
            .ok();
        let (info, now) = self.read_channel(channel_id, None)?;
        Ok(
            match check_voucher(&domain, &info, info.claimed, &voucher, now) {
                Ok((_, accepted)) => VoucherCheck {
                    signer,
                    valid: true,
                    claimable: accepted.claimable,
                    remaining: accepted.remaining,
                    reason: None,
                },
                Err(refusal) => VoucherCheck {
                    signer,
                    valid: false,
                    claimable: U256::ZERO,
                    remaining: info.remaining(),
                    reason: Some(refusal.to_string()),
                },
            },
        )
    }
}
