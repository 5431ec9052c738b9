//! Fee suggestions and history.
//!
//! The suggested tip (`eth_maxPriorityFeePerGas`) follows geth's oracle: the cheapest
//! [`TIPS_PER_BLOCK`] effective tips of each of the last [`TIP_BLOCKS`] blocks, their
//! [`TIP_PERCENTILE`]th percentile, floored at [`MIN_TIP`] (1 gwei) so it is never zero on an
//! idle chain (a zero tip would leave wallets unable to outbid anyone when blocks fill) and
//! capped at [`MAX_TIP`]. It is cached per head. `eth_gasPrice` is the next block's base fee
//! plus that tip, what a legacy transaction should offer.

use alloy_consensus::Transaction as _;
use alloy_eips::BlockNumberOrTag;
use alloy_primitives::{B256, U256};
use alloy_rpc_types_eth::FeeHistory;
use bttd_runtime::SealedHeader;
use bttd_runtime::block::next_base_fee;
use jsonrpsee::proc_macros::rpc;
use serde::Deserialize;

use super::Rpc;
use super::error::{RpcResult, internal, invalid_params, server_error};
use super::resolve::tag_number;

pub(crate) const TIP_BLOCKS: u64 = 20;
pub(crate) const TIPS_PER_BLOCK: usize = 3;
pub(crate) const TIP_PERCENTILE: usize = 60;
pub(crate) const MIN_TIP: u128 = 1_000_000_000;
pub(crate) const MAX_TIP: u128 = 500_000_000_000;
/// geth's limit on eth_feeHistory's block count.
pub(crate) const MAX_FEE_HISTORY_BLOCKS: u64 = 1024;
/// Most reward percentiles one eth_feeHistory may ask for (each costs a pass per block).
const MAX_REWARD_PERCENTILES: usize = 100;

/// A block count given as a JSON number or a hex / decimal string (geth accepts all three;
/// web3.py sends a number, viem and ethers a hex string).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockCount(u64);

impl<'de> Deserialize<'de> for BlockCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Self(n)),
            Raw::Text(s) => {
                let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => s.parse(),
                };
                parsed
                    .map(Self)
                    .map_err(|_| serde::de::Error::custom(format!("invalid block count {s:?}")))
            }
        }
    }
}

#[rpc(server, namespace = "eth")]
pub(crate) trait EthFeesApi {
    /// Next base fee plus the suggested tip.
    #[method(name = "gasPrice")]
    fn gas_price(&self) -> RpcResult<U256>;

    /// The suggested tip (see the module docs).
    #[method(name = "maxPriorityFeePerGas")]
    fn max_priority_fee_per_gas(&self) -> RpcResult<U256>;

    #[method(name = "feeHistory", blocking)]
    fn fee_history(
        &self,
        block_count: BlockCount,
        newest_block: BlockNumberOrTag,
        reward_percentiles: Option<Vec<f64>>,
    ) -> RpcResult<FeeHistory>;
}

impl Rpc {
    fn header_at(&self, number: u64) -> RpcResult<SealedHeader> {
        self.ctx
            .chain
            .header_by_number(number)
            .map_err(internal)?
            .ok_or_else(|| internal(format!("canonical block {number} missing")))
    }

    /// The suggested tip at the current head, from the cache when the head has not moved.
    pub(crate) fn suggested_tip(&self) -> RpcResult<u128> {
        let head = self.ctx.chain.head();
        if let Some((hash, tip)) = *self.tip_cache.lock()
            && hash == head.hash()
        {
            return Ok(tip);
        }
        let mut samples = Vec::new();
        let oldest = head.number.saturating_sub(TIP_BLOCKS - 1);
        for number in oldest..=head.number {
            let header = if number == head.number {
                head.clone()
            } else {
                self.header_at(number)?
            };
            let base_fee = header.base_fee_per_gas.unwrap_or_default();
            let body = self
                .ctx
                .chain
                .body(header.hash())
                .map_err(internal)?
                .unwrap_or_default();
            let mut tips: Vec<u128> = body
                .transactions
                .iter()
                .filter_map(|tx| tx.effective_tip_per_gas(base_fee))
                .collect();
            tips.sort_unstable();
            samples.extend(tips.into_iter().take(TIPS_PER_BLOCK));
        }
        samples.sort_unstable();
        let percentile = samples
            .get((samples.len().saturating_sub(1)) * TIP_PERCENTILE / 100)
            .copied();
        let tip = percentile.unwrap_or(MIN_TIP).clamp(MIN_TIP, MAX_TIP);
        *self.tip_cache.lock() = Some((head.hash(), tip));
        Ok(tip)
    }

    /// The rewards of one block at the given percentiles, weighted by gas as geth does.
    fn block_rewards(&self, header: &SealedHeader, percentiles: &[f64]) -> RpcResult<Vec<u128>> {
        if header.gas_used == 0 || percentiles.is_empty() {
            return Ok(vec![0; percentiles.len()]);
        }
        let hash: B256 = header.hash();
        let base_fee = header.base_fee_per_gas.unwrap_or_default();
        let body = self
            .ctx
            .chain
            .body(hash)
            .map_err(internal)?
            .unwrap_or_default();
        let receipts = self
            .ctx
            .chain
            .receipts(hash)
            .map_err(internal)?
            .unwrap_or_default();
        let mut previous = 0;
        let mut txs: Vec<(u128, u64)> = body
            .transactions
            .iter()
            .zip(&receipts)
            .map(|(tx, receipt)| {
                let cumulative = receipt.cumulative_gas_used();
                let used = cumulative.saturating_sub(previous);
                previous = cumulative;
                (tx.effective_tip_per_gas(base_fee).unwrap_or_default(), used)
            })
            .collect();
        if txs.is_empty() {
            return Ok(vec![0; percentiles.len()]);
        }
        txs.sort_unstable_by_key(|(tip, _)| *tip);
        let mut index = 0;
        let mut sum = txs[0].1;
        let rewards = percentiles
            .iter()
            .map(|p| {
                let threshold = (header.gas_used as f64 * p / 100.0) as u64;
                while sum < threshold && index < txs.len() - 1 {
                    index += 1;
                    sum += txs[index].1;
                }
                txs[index].0
            })
            .collect();
        Ok(rewards)
    }
}

fn check_percentiles(percentiles: &[f64]) -> RpcResult<()> {
    if percentiles.len() > MAX_REWARD_PERCENTILES {
        return Err(invalid_params(format!(
            "invalid reward percentile: {} given, at most {MAX_REWARD_PERCENTILES}",
            percentiles.len()
        )));
    }
    for (i, p) in percentiles.iter().enumerate() {
        if !(0.0..=100.0).contains(p) {
            return Err(invalid_params(format!("invalid reward percentile: {p}")));
        }
        if i > 0 && *p < percentiles[i - 1] {
            return Err(invalid_params(format!(
                "invalid reward percentile: #{} {} < #{} {}",
                i - 1,
                percentiles[i - 1],
                i,
                p
            )));
        }
    }
    Ok(())
}

impl EthFeesApiServer for Rpc {
    fn gas_price(&self) -> RpcResult<U256> {
        let chain = &self.ctx.chain;
        let base = next_base_fee(&chain.head(), chain.config().min_base_fee);
        Ok(U256::from(base as u128 + self.suggested_tip()?))
    }

    fn max_priority_fee_per_gas(&self) -> RpcResult<U256> {
        Ok(U256::from(self.suggested_tip()?))
    }

    fn fee_history(
        &self,
        block_count: BlockCount,
        newest_block: BlockNumberOrTag,
        reward_percentiles: Option<Vec<f64>>,
    ) -> RpcResult<FeeHistory> {
        let percentiles = reward_percentiles.unwrap_or_default();
        check_percentiles(&percentiles)?;
        let chain = &self.ctx.chain;
        let head = chain.head();
        let newest = tag_number(chain, newest_block);
        if newest > head.number {
            return Err(server_error(format!(
                "request beyond head block: requested {newest}, head {}",
                head.number
            )));
        }
        let count = block_count.0.min(MAX_FEE_HISTORY_BLOCKS).min(newest + 1);
        if count == 0 {
            return Ok(FeeHistory::default());
        }
        let oldest = newest + 1 - count;
        let mut history = FeeHistory {
            oldest_block: oldest,
            ..Default::default()
        };
        let mut rewards = Vec::new();
        let mut last = None;
        for number in oldest..=newest {
            let header = if number == head.number {
                head.clone()
            } else {
                self.header_at(number)?
            };
            history
                .base_fee_per_gas
                .push(header.base_fee_per_gas.unwrap_or_default() as u128);
            history.gas_used_ratio.push(if header.gas_limit == 0 {
                0.0
            } else {
                header.gas_used as f64 / header.gas_limit as f64
            });
            history.base_fee_per_blob_gas.push(0);
            history.blob_gas_used_ratio.push(0.0);
            if !percentiles.is_empty() {
                rewards.push(self.block_rewards(&header, &percentiles)?);
            }
            last = Some(header);
        }
        if let Some(last) = last {
            history
                .base_fee_per_gas
                .push(next_base_fee(&last, chain.config().min_base_fee) as u128);
            history.base_fee_per_blob_gas.push(0);
        }
        history.reward = (!percentiles.is_empty()).then_some(rewards);
        Ok(history)
    }
}
