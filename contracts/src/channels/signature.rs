//! Strict 65-byte signatures, checked exactly like `BandwidthChannels` checks them.
//!
//! The contract accepts `r ‖ s ‖ v` with `s <= n/2`, `v` in {27, 28} and a non-zero
//! `ecrecover` result. alloy's `Signature` parses `v` loosely (0/1 too) and its recovery
//! normalises a high `s` without telling, so a payee that only recovered would accept vouchers
//! the contract refuses. We therefore check the raw bytes first and recover afterwards. `v`
//! of 0 or 1 is refused, because the contract refuses it.

use alloy_primitives::{Address, B256, Bytes, Signature, U256, uint};

/// Half the secp256k1 group order: the largest `s` the contract accepts.
pub const SECP256K1N_HALF: U256 =
    uint!(0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0_U256);

/// Why a signature is refused (before or during recovery).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not 65 bytes.
    #[error("signature must be 65 bytes (r, s, v), got {0}")]
    Length(usize),
    /// `v` is not 27 or 28.
    #[error("signature v must be 27 or 28, got {0}")]
    BadV(u8),
    /// `s` above n/2 (a malleable twin of a valid signature).
    #[error("signature s is above secp256k1n/2 (high-s signatures are refused)")]
    HighS,
    /// No public key recovers from it (`ecrecover` would return the zero address).
    #[error("no signer recovers from the signature")]
    NoSigner,
}

/// A signature that passed the contract's byte-level checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StrictSignature(Signature);

impl StrictSignature {
    /// Checks length, `v` and low `s`, as the contract does before `ecrecover`.
    pub fn parse(bytes: &[u8]) -> Result<Self, SignatureError> {
        let bytes: &[u8; 65] = bytes
            .try_into()
            .map_err(|_| SignatureError::Length(bytes.len()))?;
        let parity = match bytes[64] {
            27 => false,
            28 => true,
            v => return Err(SignatureError::BadV(v)),
        };
        let r = U256::from_be_slice(&bytes[..32]);
        let s = U256::from_be_slice(&bytes[32..64]);
        if s > SECP256K1N_HALF {
            return Err(SignatureError::HighS);
        }
        Ok(Self(Signature::new(r, s, parity)))
    }

    /// Wraps a signature a local signer produced, enforcing the same rules.
    pub fn from_signature(sig: Signature) -> Result<Self, SignatureError> {
        Self::parse(&sig.as_bytes())
    }

    /// Recovers the signer of `digest`; the zero address is never returned.
    pub fn recover(&self, digest: &B256) -> Result<Address, SignatureError> {
        match self.0.recover_address_from_prehash(digest) {
            Ok(a) if a != Address::ZERO => Ok(a),
            _ => Err(SignatureError::NoSigner),
        }
    }

    /// The 65 bytes `r ‖ s ‖ v` with `v` in {27, 28}, as the contract takes them.
    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(self.0.as_bytes().to_vec())
    }

    /// alloy's view of the signature.
    pub fn inner(&self) -> &Signature {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_signer::SignerSync;
    use alloy_signer_local::PrivateKeySigner;

    /// secp256k1 group order n.
    const N: U256 = uint!(0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141_U256);

    fn signed() -> (PrivateKeySigner, B256, [u8; 65]) {
        let key = PrivateKeySigner::random();
        let digest = B256::repeat_byte(0x42);
        let sig = key.sign_hash_sync(&digest).unwrap();
        (key, digest, sig.as_bytes())
    }

    #[test]
    fn half_order_constant() {
        assert_eq!(SECP256K1N_HALF, N >> 1);
    }

    #[test]
    fn good_signature_recovers_its_signer() {
        let (key, digest, bytes) = signed();
        let s = StrictSignature::parse(&bytes).unwrap();
        assert_eq!(s.recover(&digest).unwrap(), key.address());
        assert_eq!(s.to_bytes()[..], bytes[..]);
    }

    /// The high-s twin (s' = n - s, v flipped) recovers the same signer under alloy, and we
    /// refuse it anyway, like the contract.
    #[test]
    fn high_s_twin_is_refused() {
        let (key, digest, bytes) = signed();
        let s = U256::from_be_slice(&bytes[32..64]);
        let mut twin = bytes;
        twin[32..64].copy_from_slice(&(N - s).to_be_bytes::<32>());
        twin[64] = if bytes[64] == 27 { 28 } else { 27 };
        let loose = Signature::from_raw(&twin).unwrap();
        assert_eq!(
            loose.recover_address_from_prehash(&digest).unwrap(),
            key.address(),
            "alloy alone accepts the twin"
        );
        assert_eq!(StrictSignature::parse(&twin), Err(SignatureError::HighS));
    }

    #[test]
    fn v_other_than_27_28_and_bad_lengths_are_refused() {
        let (_, _, bytes) = signed();
        for v in [0u8, 1, 26, 29, 37] {
            let mut b = bytes;
            b[64] = v;
            assert_eq!(StrictSignature::parse(&b), Err(SignatureError::BadV(v)));
        }
        assert_eq!(
            StrictSignature::parse(&bytes[..64]),
            Err(SignatureError::Length(64))
        );
        let mut long = bytes.to_vec();
        long.push(0);
        assert_eq!(
            StrictSignature::parse(&long),
            Err(SignatureError::Length(66))
        );
    }

    #[test]
    fn unrecoverable_signature_is_refused() {
        // r = 0 has no point: ecrecover returns 0.
        let mut b = [0u8; 65];
        b[63] = 1;
        b[64] = 27;
        let s = StrictSignature::parse(&b).unwrap();
        assert_eq!(s.recover(&B256::ZERO), Err(SignatureError::NoSigner));
    }
}
