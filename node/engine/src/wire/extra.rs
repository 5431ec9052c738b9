//! The fixed binary layout of the parent certificate carried in a block's `extraData`
//! (docs/block-format.md), and the validator-set commitment of an epoch's last block.

use alloy_primitives::{B256, Bytes};
use bttd_consensus::bls::SignatureBytes;
use bttd_consensus::{CommitCertificate, Height, SignerBitmap};

/// Length of the fixed part of the `extraData` certificate: round (4) + aggregate (96).
const EXTRA_FIXED: usize = 4 + 96;

/// What a block's `extraData` carries on a chain with validators (docs/block-format.md):
/// `round (u32, big-endian) ‖ aggregate signature (96 bytes) ‖ signer bitmap (⌈n/8⌉ bytes)`
/// of the parent's commit certificate, then, in the last block of an epoch, the 32-byte
/// [`validator_set_hash`] of the next epoch's set. Height and block id of the certificate are
/// implied (the parent's), which keeps the field small; the bitmap puts the parent's signers
/// on chain for rewards and downtime accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraData {
    pub parent: CommitCertificate,
    pub next_set: Option<B256>,
}

impl ExtraData {
    pub fn encode(&self) -> Bytes {
        let cert = &self.parent;
        let mut out = Vec::with_capacity(EXTRA_FIXED + cert.signers.0.len() + 32);
        out.extend_from_slice(&cert.round.to_be_bytes());
        out.extend_from_slice(cert.signature.as_slice());
        out.extend_from_slice(&cert.signers.0);
        if let Some(hash) = self.next_set {
            out.extend_from_slice(hash.as_slice());
        }
        out.into()
    }

    /// Parses `extra` for a parent at `parent_height` with hash `parent_hash` whose set has
    /// `parent_set_len` validators; `epoch_end` says whether the next-set hash must follow.
    /// `None` when the length or layout is wrong.
    pub fn decode(
        extra: &[u8],
        parent_height: Height,
        parent_hash: B256,
        parent_set_len: usize,
        epoch_end: bool,
    ) -> Option<Self> {
        let bitmap_len = parent_set_len.div_ceil(8);
        let expected = EXTRA_FIXED + bitmap_len + if epoch_end { 32 } else { 0 };
        if extra.len() != expected {
            return None;
        }
        let round = u32::from_be_bytes(extra[..4].try_into().ok()?);
        let bitmap_end = EXTRA_FIXED + bitmap_len;
        Some(Self {
            parent: CommitCertificate {
                height: parent_height,
                round,
                block_id: parent_hash,
                signature: SignatureBytes::from_slice(&extra[4..EXTRA_FIXED]),
                signers: SignerBitmap(Bytes::copy_from_slice(&extra[EXTRA_FIXED..bitmap_end])),
            },
            next_set: epoch_end.then(|| B256::from_slice(&extra[bitmap_end..])),
        })
    }
}

/// Commitment to a validator set: keccak256 over `address ‖ BLS key ‖ power (u64 BE)` of every
/// member in index order. The last block of an epoch carries the next epoch's.
pub fn validator_set_hash(set: &bttd_consensus::ValidatorSet) -> B256 {
    let mut bytes = Vec::with_capacity(set.len() * (20 + 48 + 8));
    for v in set.validators() {
        bytes.extend_from_slice(v.address.as_slice());
        bytes.extend_from_slice(v.public_key.as_slice());
        bytes.extend_from_slice(&v.power.to_be_bytes());
    }
    alloy_primitives::keccak256(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_data_round_trips_and_refuses_wrong_lengths() {
        let cert = CommitCertificate {
            height: 4,
            round: 2,
            block_id: B256::repeat_byte(1),
            signature: SignatureBytes::repeat_byte(2),
            signers: SignerBitmap::from_indices(4, [0, 1, 3]),
        };
        let plain = ExtraData {
            parent: cert.clone(),
            next_set: None,
        };
        let bytes = plain.encode();
        assert_eq!(bytes.len(), 101);
        let hash = B256::repeat_byte(1);
        assert_eq!(ExtraData::decode(&bytes, 4, hash, 4, false), Some(plain));
        // The epoch's last block must carry the next set, and no other block may.
        assert_eq!(ExtraData::decode(&bytes, 4, hash, 4, true), None);
        assert_eq!(ExtraData::decode(&bytes[..100], 4, hash, 4, false), None);
        assert_eq!(ExtraData::decode(&bytes, 4, hash, 9, false), None);
        let last = ExtraData {
            parent: cert,
            next_set: Some(B256::repeat_byte(3)),
        };
        let bytes = last.encode();
        assert_eq!(ExtraData::decode(&bytes, 4, hash, 4, true), Some(last));
        assert_eq!(ExtraData::decode(&bytes, 4, hash, 4, false), None);
    }
}
