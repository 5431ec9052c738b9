//! Blocks as stored and served: an Ethereum header (alloy's, so hashes and RPC objects are
//! standard) plus the transactions with their senders, recovered once at admission and kept
//! so nothing downstream recovers a signature again. The header rules are docs/block-format.md.

use alloy_consensus::proofs::calculate_transaction_root;
use alloy_consensus::{EMPTY_OMMER_ROOT_HASH, Header, ReceiptEnvelope, TxEnvelope};
use alloy_eips::eip1559::BaseFeeParams;
use alloy_primitives::{Address, B256, Sealed, keccak256};
use alloy_rlp::{RlpDecodable, RlpEncodable};
use alloy_trie::EMPTY_ROOT_HASH;

/// A header with its hash.
pub type SealedHeader = Sealed<Header>;

/// A block body as stored: transactions and their recovered senders, index for index.
#[derive(Debug, Clone, PartialEq, Eq, Default, RlpEncodable, RlpDecodable)]
pub struct Body {
    pub transactions: Vec<TxEnvelope>,
    pub senders: Vec<Address>,
}

/// A whole block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBlock {
    pub header: SealedHeader,
    pub body: Body,
}

impl SealedBlock {
    pub fn hash(&self) -> B256 {
        self.header.hash()
    }
    pub fn number(&self) -> u64 {
        self.header.number
    }
}

/// Most transactions one block may carry. Decoding refuses more before allocating for them:
/// a decoded transaction takes 400 bytes and the smallest encoded one 10, so without a cap a
/// 16 MiB message of tiny transactions would become an 800 MiB vector. At 21,000 gas each,
/// 32,768 transactions need 688M gas, far above any bttd gas limit (devnet: 30M); the block
/// builder stops at this count too.
pub const MAX_BLOCK_TRANSACTIONS: usize = 1 << 15;

/// A block as it travels between nodes: the header and the signed transactions. Senders are
/// not sent (a receiver recovers them from the signatures, never trusting a peer for them).
///
/// RLP `[header, [tx, ...]]`. Decoding counts the transactions before it decodes any (at
/// most [`MAX_BLOCK_TRANSACTIONS`], so the vector stays below 13.1 MB) and refuses one above
/// [`MAX_TX_SIZE`](crate::tx::MAX_TX_SIZE) (what the pool accepts), which bounds the lists
/// inside one (access and authorization lists) too.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable)]
pub struct WireBlock {
    pub header: alloy_consensus::Header,
    pub transactions: Vec<TxEnvelope>,
}

impl alloy_rlp::Decodable for WireBlock {
    fn decode(buf: &mut &[u8]) -> alloy_rlp::Result<Self> {
        let mut fields = alloy_rlp::Header::decode_bytes(buf, true)?;
        let header = alloy_consensus::Header::decode(&mut fields)?;
        let mut list = alloy_rlp::Header::decode_bytes(&mut fields, true)?;
        if !fields.is_empty() {
            return Err(alloy_rlp::Error::UnexpectedLength);
        }
        let mut count = 0usize;
        let mut rest = list;
        while !rest.is_empty() {
            let len = item_len(rest)?;
            if len > crate::tx::MAX_TX_SIZE {
                return Err(alloy_rlp::Error::Custom("transaction above the size limit"));
            }
            count += 1;
            if count > MAX_BLOCK_TRANSACTIONS {
                return Err(alloy_rlp::Error::Custom(
                    "more transactions than a block may hold",
                ));
            }
            rest = &rest[len..];
        }
        // Grown as transactions decode rather than sized by the count: items of one byte count
        // too, but only real transactions take room.
        let mut transactions = Vec::new();
        while !list.is_empty() {
            transactions.push(TxEnvelope::decode(&mut list)?);
        }
        Ok(Self {
            header,
            transactions,
        })
    }
}

/// Encoded length (header and payload) of the RLP item at the front of `buf`, checked to fit.
fn item_len(buf: &[u8]) -> alloy_rlp::Result<usize> {
    let mut rest = buf;
    let header = alloy_rlp::Header::decode(&mut rest)?;
    // `decode` checked that the payload fits in what follows the header.
    Ok(buf.len() - rest.len() + header.payload_length)
}

impl WireBlock {
    /// RLP bytes of a block for the network.
    pub fn encode(block: &SealedBlock) -> Vec<u8> {
        let wire = WireBlockRef {
            header: block.header.inner(),
            transactions: &block.body.transactions,
        };
        alloy_rlp::encode(wire)
    }

    /// Decodes the bytes that travel beside a signed or certified block id, and checks that
    /// they are that block: the header hashes to `id`, and the body is the one the header
    /// commits to (transactions root; no ommers, no withdrawals). Everything that needs no
    /// execution, so a mismatch is known before the block is stored, relayed or executed, and
    /// is the fault of whoever sent these bytes, never of the block's signer.
    pub fn decode_for(bytes: &[u8], id: B256) -> Result<SealedBlock, BodyMismatch> {
        let block = Self::decode(bytes).map_err(BodyMismatch::Undecodable)?;
        if block.hash() != id {
            return Err(BodyMismatch::Hash {
                expected: id,
                got: block.hash(),
            });
        }
        let header = &block.header;
        let transactions_root = calculate_transaction_root(&block.body.transactions);
        if header.transactions_root != transactions_root {
            return Err(BodyMismatch::TransactionsRoot {
                header: header.transactions_root,
                body: transactions_root,
            });
        }
        if header.ommers_hash != EMPTY_OMMER_ROOT_HASH
            || header.withdrawals_root != Some(EMPTY_ROOT_HASH)
        {
            return Err(BodyMismatch::NonEmptyRoots);
        }
        Ok(block)
    }

    /// Decodes network bytes into a block whose `senders` are empty (see [`WireBlock`]).
    /// The hash is computed from the header, never taken from the peer.
    pub fn decode(mut bytes: &[u8]) -> Result<SealedBlock, alloy_rlp::Error> {
        let wire = <Self as alloy_rlp::Decodable>::decode(&mut bytes)?;
        if !bytes.is_empty() {
            return Err(alloy_rlp::Error::UnexpectedLength);
        }
        Ok(SealedBlock {
            header: seal(wire.header),
            body: Body {
                transactions: wire.transactions,
                senders: Vec::new(),
            },
        })
    }
}

/// Why bytes are not the block they are said to be.
#[derive(Debug, thiserror::Error)]
pub enum BodyMismatch {
    #[error("undecodable block: {0}")]
    Undecodable(alloy_rlp::Error),
    #[error("header hash {got} is not the block id {expected}")]
    Hash { expected: B256, got: B256 },
    #[error("transactions root of the body {body} is not the header's {header}")]
    TransactionsRoot { header: B256, body: B256 },
    #[error("the header commits to ommers or withdrawals, which bttd blocks never have")]
    NonEmptyRoots,
}

#[derive(RlpEncodable)]
struct WireBlockRef<'a> {
    header: &'a alloy_consensus::Header,
    transactions: &'a Vec<TxEnvelope>,
}

/// The receipts of one block, in transaction order.
#[derive(Debug, Clone, PartialEq, Eq, Default, RlpEncodable, RlpDecodable)]
pub struct BlockReceipts {
    pub receipts: Vec<ReceiptEnvelope>,
}

/// Seals a header (computes its hash).
pub fn seal(header: Header) -> SealedHeader {
    let hash = header.hash_slow();
    Sealed::new_unchecked(header, hash)
}

/// EIP-1559 base fee of the child of `parent`, never below `min_base_fee`.
pub fn next_base_fee(parent: &Header, min_base_fee: u64) -> u64 {
    let base = parent.base_fee_per_gas.unwrap_or(min_base_fee);
    let params = BaseFeeParams::ethereum();
    // alloy's update adds the increase without an overflow check. An increase is at most an
    // eighth of the base fee, so that only matters above u64::MAX / 2, which only a devnet's
    // anvil_setNextBlockBaseFeePerGas reaches: there the same rule saturates.
    let target = parent.gas_limit / params.elasticity_multiplier as u64;
    if base > u64::MAX / 2 && target > 0 && parent.gas_used > target {
        let increase = (u128::from(base) * u128::from(parent.gas_used - target)
            / (u128::from(target) * params.max_change_denominator))
            .max(1);
        return u64::try_from(u128::from(base) + increase).unwrap_or(u64::MAX);
    }
    params
        .next_block_base_fee(parent.gas_used, parent.gas_limit, base)
        .max(min_base_fee)
}

/// prevrandao (mixHash) of the child of `parent`: a hash chain over parent hashes. Not
/// unpredictable to the proposer; contracts must not use it as a randomness source.
pub fn next_mix_hash(parent: &SealedHeader) -> B256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(parent.mix_hash.as_slice());
    buf[32..].copy_from_slice(parent.hash().as_slice());
    keccak256(buf)
}

#[cfg(test)]
mod wire_tests {
    use super::*;

    #[test]
    fn wire_block_round_trips_without_senders_and_refuses_trailing_bytes() {
        let header = alloy_consensus::Header {
            number: 7,
            extra_data: vec![1, 2, 3].into(),
            ..Default::default()
        };
        let block = SealedBlock {
            header: seal(header),
            body: Body {
                transactions: Vec::new(),
                senders: vec![Address::repeat_byte(9)],
            },
        };
        let bytes = WireBlock::encode(&block);
        let back = WireBlock::decode(&bytes).unwrap();
        assert_eq!(back.hash(), block.hash());
        assert!(back.body.senders.is_empty());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(WireBlock::decode(&longer).is_err());
    }
}

#[cfg(test)]
mod base_fee_tests {
    use super::*;

    #[test]
    fn a_base_fee_near_the_top_saturates_instead_of_overflowing() {
        let full = |base: u64| Header {
            base_fee_per_gas: Some(base),
            gas_limit: 30_000_000,
            gas_used: 30_000_000,
            ..Default::default()
        };
        assert_eq!(next_base_fee(&full(u64::MAX - 1), 1), u64::MAX);
        assert_eq!(next_base_fee(&full(u64::MAX), 1), u64::MAX);
        // Below the threshold the rule is alloy's: +12.5 % for a full block.
        assert_eq!(next_base_fee(&full(8_000_000_000), 1), 9_000_000_000);
        let half = Header {
            gas_used: 15_000_000,
            ..full(u64::MAX)
        };
        assert_eq!(next_base_fee(&half, 1), u64::MAX);
    }
}
