//! What consensus puts on the wire and on disk: CBOR (compact, self-describing, serde) for
//! consensus messages, sync requests and stored certificates, and the fixed binary layout of
//! the parent certificate carried in a block's `extraData`.
//!
//! Blocks inside messages are [`WireBlock`](bttd_runtime::WireBlock) RLP: header plus signed
//! transactions, never the senders, so a receiver recovers senders itself.

use alloy_primitives::{B256, Bytes};
use bttd_consensus::bls::SignatureBytes;
use bttd_consensus::{CommitCertificate, Height, SignerBitmap};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Bytes that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("undecodable {what}: {reason}")]
pub struct WireError {
    pub what: &'static str,
    pub reason: String,
}

/// CBOR bytes of a value.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// A value from CBOR bytes.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, WireError> {
    ciborium::from_reader(bytes).map_err(|e| WireError {
        what,
        reason: e.to_string(),
    })
}

/// A consensus message on gossip (topic `consensus`), CBOR `{nonce, message}`. The nonce makes
/// a re-broadcast a new gossip message (gossipsub drops byte-identical messages it saw
/// recently).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub nonce: u64,
    pub message: bttd_consensus::messages::Message,
}

/// Requests of the sync protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// The peer's head height.
    Status,
    /// Up to `max` committed blocks from height `from`, each with its certificate.
    Blocks { from: Height, max: u32 },
}

/// A committed block as served by sync: the block's wire bytes and the certificate that
/// finalised it. The receiver verifies the certificate, never re-running consensus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertifiedBlock {
    pub block: Bytes,
    pub certificate: CommitCertificate,
}

/// Answers of the sync protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    /// The peer's head, with the certificate that finalised it (absent for genesis, or from
    /// a node of an older version): a claimed height moves nothing until it is verified.
    Status {
        head: Height,
        head_hash: B256,
        #[serde(default)]
        certificate: Option<CommitCertificate>,
    },
    Blocks(Vec<CertifiedBlock>),
    Error(String),
}

impl SyncResponse {
    /// The variant's name, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            SyncResponse::Status { .. } => "status",
            SyncResponse::Blocks(_) => "blocks",
            SyncResponse::Error(_) => "error",
        }
    }
}

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
    use bttd_consensus::VoteType;
    use bttd_consensus::messages::{Message, SignedVote, Vote};

    #[test]
    fn messages_round_trip_compactly() {
        let msg = Message::Vote(SignedVote {
            vote: Vote {
                vote_type: VoteType::Precommit,
                height: 9,
                round: 1,
                block: Some(B256::repeat_byte(7)),
                validator: 3,
            },
            signature: SignatureBytes::repeat_byte(5),
        });
        let bytes = encode(&msg);
        // Binary, not hex: the 96-byte signature and 32-byte id are raw bytes, so the message
        // is far smaller than its JSON (which spells them in hex).
        let json = serde_json::to_vec(&msg).unwrap();
        assert!(bytes.len() < 256, "{} bytes", bytes.len());
        assert!(
            bytes.len() * 3 < json.len() * 2,
            "{} vs {} bytes",
            bytes.len(),
            json.len()
        );
        assert_eq!(decode::<Message>("vote", &bytes).unwrap(), msg);
        assert!(decode::<Message>("vote", &bytes[..bytes.len() - 1]).is_err());
    }

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
