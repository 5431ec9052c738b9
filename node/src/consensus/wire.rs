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
    Status { head: Height, head_hash: B256 },
    Blocks(Vec<CertifiedBlock>),
    Error(String),
}

/// Length of the fixed part of the `extraData` certificate: round (4) + aggregate (96).
const EXTRA_FIXED: usize = 4 + 96;

/// The parent's commit certificate as it goes into a block's `extraData`:
/// `round (u32, big-endian) || aggregate signature (96 bytes) || signer bitmap`.
/// Height and block id are implied (the parent's), which keeps the field small; the bitmap
/// puts the parent's signers on chain for rewards and downtime accounting.
pub fn parent_certificate_extra(cert: &CommitCertificate) -> Bytes {
    let mut out = Vec::with_capacity(EXTRA_FIXED + cert.signers.0.len());
    out.extend_from_slice(&cert.round.to_be_bytes());
    out.extend_from_slice(cert.signature.as_slice());
    out.extend_from_slice(&cert.signers.0);
    out.into()
}

/// Reads the parent certificate back from `extraData` (`None` if malformed).
pub fn parent_certificate_from_extra(
    extra: &[u8],
    parent_height: Height,
    parent_hash: B256,
) -> Option<CommitCertificate> {
    if extra.len() <= EXTRA_FIXED {
        return None;
    }
    let round = u32::from_be_bytes(extra[..4].try_into().ok()?);
    Some(CommitCertificate {
        height: parent_height,
        round,
        block_id: parent_hash,
        signature: SignatureBytes::from_slice(&extra[4..EXTRA_FIXED]),
        signers: SignerBitmap(Bytes::copy_from_slice(&extra[EXTRA_FIXED..])),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bttd_consensus::messages::{Message, SignedVote, Vote};
    use bttd_consensus::VoteType;

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
        // Binary, not hex: a 96-byte signature plus a 32-byte id fit well under 200 bytes.
        assert!(bytes.len() < 200, "{} bytes", bytes.len());
        assert_eq!(decode::<Message>("vote", &bytes).unwrap(), msg);
        assert!(decode::<Message>("vote", &bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn extra_data_certificate_round_trips() {
        let cert = CommitCertificate {
            height: 4,
            round: 2,
            block_id: B256::repeat_byte(1),
            signature: SignatureBytes::repeat_byte(2),
            signers: SignerBitmap::from_indices(4, [0, 1, 3]),
        };
        let extra = parent_certificate_extra(&cert);
        assert_eq!(extra.len(), 101);
        assert_eq!(
            parent_certificate_from_extra(&extra, 4, B256::repeat_byte(1)),
            Some(cert)
        );
        assert_eq!(parent_certificate_from_extra(&extra[..100], 4, B256::ZERO), None);
    }
}
