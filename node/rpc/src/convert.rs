//! Stored blocks, transactions and receipts to their RPC objects (alloy's types, so every
//! field is named and encoded as Ethereum clients expect).
//!
//! Senders come from the stored body (recovered once at admission), never from the signature.

use alloy_consensus::{ReceiptEnvelope, Transaction as _, TxEnvelope, transaction::Recovered};
use alloy_eips::eip4895::Withdrawals;
use alloy_primitives::{Address, B256, U256};
use alloy_rlp::Encodable;
use alloy_rpc_types_eth::{
    Block, BlockTransactions, Header, Log, Transaction, TransactionInfo, TransactionReceipt,
};
use bttd_runtime::{Body, SealedBlock, SealedHeader};

/// Where a mined transaction sits, for its RPC object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MinedAt {
    pub block_hash: B256,
    pub block_number: u64,
    pub base_fee: Option<u64>,
    pub timestamp: u64,
    pub index: u64,
}

impl MinedAt {
    pub fn new(header: &SealedHeader, index: usize) -> Self {
        Self {
            block_hash: header.hash(),
            block_number: header.number,
            base_fee: header.base_fee_per_gas,
            timestamp: header.timestamp,
            index: index as u64,
        }
    }
}

/// The RPC header: the consensus header plus hash, size and (zero) total difficulty.
pub(crate) fn rpc_header(header: &SealedHeader, size: Option<u64>) -> Header {
    Header {
        hash: header.hash(),
        inner: header.inner().clone(),
        total_difficulty: Some(U256::ZERO),
        size: size.map(U256::from),
    }
}

/// The block's RLP length, as geth reports it in `size`.
pub(crate) fn block_size(block: &SealedBlock) -> u64 {
    let consensus = alloy_consensus::Block::<TxEnvelope> {
        header: block.header.inner().clone(),
        body: alloy_consensus::BlockBody {
            transactions: block.body.transactions.clone(),
            ommers: Vec::new(),
            withdrawals: Some(Withdrawals::default()),
        },
    };
    consensus.length() as u64
}

/// The RPC block with transaction hashes or full transaction objects.
pub(crate) fn rpc_block(block: SealedBlock, full: bool) -> Block {
    let size = block_size(&block);
    let header = rpc_header(&block.header, Some(size));
    let transactions = if full {
        let Body {
            transactions,
            senders,
        } = block.body;
        BlockTransactions::Full(
            transactions
                .into_iter()
                .zip(senders)
                .enumerate()
                .map(|(i, (tx, sender))| {
                    rpc_transaction(tx, sender, Some(MinedAt::new(&block.header, i)))
                })
                .collect(),
        )
    } else {
        BlockTransactions::Hashes(
            block
                .body
                .transactions
                .iter()
                .map(|tx| *tx.tx_hash())
                .collect(),
        )
    };
    Block {
        header,
        uncles: Vec::new(),
        transactions,
        withdrawals: Some(Withdrawals::default()),
    }
}

/// The RPC transaction; `at` is `None` for a pool transaction (null block fields).
pub(crate) fn rpc_transaction(tx: TxEnvelope, sender: Address, at: Option<MinedAt>) -> Transaction {
    let hash = *tx.tx_hash();
    let info = match at {
        Some(at) => TransactionInfo {
            hash: Some(hash),
            index: Some(at.index),
            block_hash: Some(at.block_hash),
            block_number: Some(at.block_number),
            base_fee: at.base_fee,
            block_timestamp: Some(at.timestamp),
        },
        None => TransactionInfo {
            hash: Some(hash),
            ..Default::default()
        },
    };
    Transaction::from_transaction(Recovered::new_unchecked(tx, sender), info)
}

/// Receipts of a whole block, with per-transaction gas, log indices counted across the block,
/// and contract addresses for creations.
pub(crate) fn rpc_receipts(
    header: &SealedHeader,
    body: &Body,
    receipts: Vec<ReceiptEnvelope>,
) -> Vec<TransactionReceipt> {
    let mut previous_cumulative = 0;
    let mut log_index = 0;
    receipts
        .into_iter()
        .enumerate()
        .filter_map(|(index, receipt)| {
            let (tx, sender) = (body.transactions.get(index)?, *body.senders.get(index)?);
            let cumulative = receipt.cumulative_gas_used();
            let gas_used = cumulative.saturating_sub(previous_cumulative);
            previous_cumulative = cumulative;
            let first_log = log_index;
            log_index += receipt.logs().len() as u64;
            Some(rpc_receipt(
                header, index, tx, sender, receipt, gas_used, first_log,
            ))
        })
        .collect()
}

/// The receipt of the transaction at `index` of a block.
pub(crate) fn rpc_receipt_at(
    header: &SealedHeader,
    body: &Body,
    mut receipts: Vec<ReceiptEnvelope>,
    index: usize,
) -> Option<TransactionReceipt> {
    let previous_cumulative = index
        .checked_sub(1)
        .and_then(|i| receipts.get(i))
        .map_or(0, |r| r.cumulative_gas_used());
    let first_log = receipts
        .iter()
        .take(index)
        .map(|r| r.logs().len() as u64)
        .sum();
    let (tx, sender) = (body.transactions.get(index)?, *body.senders.get(index)?);
    if index >= receipts.len() {
        return None;
    }
    let receipt = receipts.swap_remove(index);
    let gas_used = receipt
        .cumulative_gas_used()
        .saturating_sub(previous_cumulative);
    Some(rpc_receipt(
        header, index, tx, sender, receipt, gas_used, first_log,
    ))
}

fn rpc_receipt(
    header: &SealedHeader,
    index: usize,
    tx: &TxEnvelope,
    sender: Address,
    receipt: ReceiptEnvelope,
    gas_used: u64,
    first_log: u64,
) -> TransactionReceipt {
    let at = MinedAt::new(header, index);
    let tx_hash = *tx.tx_hash();
    let mut next_log = first_log;
    let inner = receipt.map_logs(|log| {
        let log = rpc_log(log, &at, tx_hash, next_log);
        next_log += 1;
        log
    });
    TransactionReceipt {
        inner,
        transaction_hash: tx_hash,
        transaction_index: Some(at.index),
        block_hash: Some(at.block_hash),
        block_number: Some(at.block_number),
        gas_used,
        effective_gas_price: tx.effective_gas_price(at.base_fee),
        blob_gas_used: None,
        blob_gas_price: None,
        from: sender,
        to: tx.to(),
        contract_address: tx.kind().is_create().then(|| sender.create(tx.nonce())),
    }
}

pub(crate) fn rpc_log(
    log: alloy_primitives::Log,
    at: &MinedAt,
    tx_hash: B256,
    log_index: u64,
) -> Log {
    Log {
        inner: log,
        block_hash: Some(at.block_hash),
        block_number: Some(at.block_number),
        block_timestamp: Some(at.timestamp),
        transaction_hash: Some(tx_hash),
        transaction_index: Some(at.index),
        log_index: Some(log_index),
        removed: false,
    }
}

/// Every log of a block, in order, as RPC logs (for eth_getLogs and subscriptions).
pub(crate) fn block_logs<'a>(
    header: &'a SealedHeader,
    body: &'a Body,
    receipts: &'a [ReceiptEnvelope],
) -> impl Iterator<Item = Log> + 'a {
    receipts
        .iter()
        .zip(&body.transactions)
        .enumerate()
        .flat_map(move |(index, (receipt, tx))| {
            let at = MinedAt::new(header, index);
            let hash = *tx.tx_hash();
            receipt.logs().iter().map(move |log| (at, hash, log))
        })
        .enumerate()
        .map(|(log_index, (at, hash, log))| rpc_log(log.clone(), &at, hash, log_index as u64))
}
