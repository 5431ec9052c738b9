//! Commit certificates as stored by the chain (`certificates` column): CBOR of
//! [`CommitCertificate`]'s serde form, as written since the first schema. Kept as it was
//! when the network moved to explicit codecs, so a datadir needs no migration; it is only
//! ever read back by this node, never taken from a peer.

use bttd_consensus::CommitCertificate;

use super::WireError;

/// The stored form of a certificate.
pub fn encode_certificate(certificate: &CommitCertificate) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(certificate, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// A certificate read back from storage.
pub fn decode_certificate(bytes: &[u8]) -> Result<CommitCertificate, WireError> {
    ciborium::from_reader(bytes).map_err(|e| WireError::Stored(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{B256, hex};
    use bttd_consensus::SignerBitmap;
    use bttd_consensus::bls::SignatureBytes;

    #[test]
    fn the_stored_form_is_unchanged() {
        let certificate = CommitCertificate {
            height: 4,
            round: 2,
            block_id: B256::repeat_byte(1),
            signature: SignatureBytes::repeat_byte(2),
            signers: SignerBitmap::from_indices(4, [0, 1, 3]),
        };
        let bytes = encode_certificate(&certificate);
        // The CBOR map's first key: a renamed field would be a storage schema change.
        assert_eq!(bytes[..8], hex!("a5 66 686569676874"));
        assert_eq!(decode_certificate(&bytes).unwrap(), certificate);
        assert!(decode_certificate(&bytes[..bytes.len() - 1]).is_err());
    }
}
