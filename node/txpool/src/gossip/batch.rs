//! The transaction topic's message: a batch of signed transactions, so that a thousand
//! transactions a second cost a few dozen gossip messages instead of a thousand (each message
//! is signed, hashed and queued per peer beside the votes).
//!
//! Format (docs/network.md): the version byte [`BATCH_VERSION`], then one RLP list whose items
//! are RLP byte strings, each an EIP-2718 encoded transaction. At most [`MAX_BATCH_TXS`]
//! items; nothing may follow the list. Decoding only slices the message (the network has
//! bounded its size already): it allocates one pointer per item, at most [`MAX_BATCH_TXS`].

use alloy_rlp::{Encodable, Header};

/// First byte of every batch, the wire version as in every other gossip and sync payload: a
/// new layout gets a new version, and a batch of another version is refused, not misread.
pub const BATCH_VERSION: u8 = 3;
const _: () = assert!(BATCH_VERSION as u32 == bttd_network::WIRE_VERSION);

/// Most transactions in one batch.
pub const MAX_BATCH_TXS: usize = 1024;

/// Why a message of the transaction topic is not a batch (the sender's fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("empty message")]
    Empty,
    #[error("batch version {0}, this node speaks {BATCH_VERSION}")]
    Version(u8),
    #[error("malformed batch: {0}")]
    Rlp(#[from] alloy_rlp::Error),
    #[error("more than {MAX_BATCH_TXS} transactions in a batch")]
    TooMany,
    #[error("{0} bytes after the batch")]
    Trailing(usize),
}

/// Encodes `txs` (EIP-2718 bytes each) as one batch. The caller keeps to [`MAX_BATCH_TXS`].
pub fn encode_batch<'a>(txs: impl IntoIterator<Item = &'a [u8]> + Clone) -> Vec<u8> {
    let payload_length = txs.clone().into_iter().map(|tx| tx.length()).sum();
    let mut out = Vec::with_capacity(1 + payload_length + 9);
    out.push(BATCH_VERSION);
    Header {
        list: true,
        payload_length,
    }
    .encode(&mut out);
    for tx in txs {
        tx.encode(&mut out);
    }
    out
}

/// The transactions of a batch, as slices of `data` (still to be decoded and checked).
pub fn decode_batch(data: &[u8]) -> Result<Vec<&[u8]>, BatchError> {
    let (&version, mut rest) = data.split_first().ok_or(BatchError::Empty)?;
    if version != BATCH_VERSION {
        return Err(BatchError::Version(version));
    }
    let mut items = Header::decode_bytes(&mut rest, true)?;
    if !rest.is_empty() {
        return Err(BatchError::Trailing(rest.len()));
    }
    let mut txs = Vec::new();
    while !items.is_empty() {
        if txs.len() == MAX_BATCH_TXS {
            return Err(BatchError::TooMany);
        }
        txs.push(Header::decode_bytes(&mut items, false)?);
    }
    Ok(txs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_batch_round_trips() {
        let txs: Vec<Vec<u8>> = vec![vec![0x02, 0xf8, 1, 2, 3], vec![0x05], vec![], vec![7; 300]];
        let encoded = encode_batch(txs.iter().map(Vec::as_slice));
        let decoded = decode_batch(&encoded).unwrap();
        assert_eq!(decoded, txs.iter().map(Vec::as_slice).collect::<Vec<_>>());
    }

    #[test]
    fn other_versions_trailing_bytes_and_oversized_batches_are_refused() {
        let one = encode_batch([&[1u8, 2][..]]);
        let mut other = one.clone();
        other[0] = 1;
        assert_eq!(decode_batch(&other), Err(BatchError::Version(1)));
        let mut trailing = one.clone();
        trailing.push(0);
        assert_eq!(decode_batch(&trailing), Err(BatchError::Trailing(1)));
        assert_eq!(decode_batch(&[]), Err(BatchError::Empty));
        let many = vec![&[0x01u8][..]; MAX_BATCH_TXS + 1];
        assert_eq!(decode_batch(&encode_batch(many)), Err(BatchError::TooMany));
        let full = vec![&[0x01u8][..]; MAX_BATCH_TXS];
        assert_eq!(
            decode_batch(&encode_batch(full)).unwrap().len(),
            MAX_BATCH_TXS
        );
        // A list where strings belong.
        let nested = [BATCH_VERSION, 0xc1, 0xc0];
        assert!(matches!(decode_batch(&nested), Err(BatchError::Rlp(_))));
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_batch(&data);
        }

        #[test]
        fn any_batch_round_trips(txs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..40)) {
            let encoded = encode_batch(txs.iter().map(Vec::as_slice));
            let decoded = decode_batch(&encoded).unwrap();
            prop_assert_eq!(decoded, txs.iter().map(Vec::as_slice).collect::<Vec<_>>());
        }
    }
}
