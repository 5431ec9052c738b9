//! BLS12-381 primitives over `blst` (min_pk: 48-byte public keys in G1,
//! 96-byte signatures in G2), with the proof-of-possession ciphersuite.
//!
//! Why proof of possession: certificates are checked with fast-aggregate-verify,
//! which adds public keys together. Without a PoP a validator could register a
//! "rogue" key crafted from the others' keys and forge an aggregate alone. A
//! PoP (a signature over the validator's own public key under a separate DST)
//! proves knowledge of the secret key and closes that attack; it is checked
//! once when a validator set is built.

use alloy_primitives::FixedBytes;
use blst::BLST_ERROR;
use blst::min_pk::{AggregateSignature, PublicKey, SecretKey, Signature};

/// Ciphersuite DST for consensus signatures.
pub const SIG_DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
/// Ciphersuite DST for proofs of possession.
pub const POP_DST: &[u8] = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
/// StakeManager's registration DST: a signature over (chain id, owner, signer) that binds a
/// registration to its owner, so nobody can register a key copied from a pending transaction.
pub const REGISTRATION_DST: &[u8] = b"BTTD_STAKE_REGISTER_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

/// What `StakeManager.registerValidator` takes besides the signer and commission, in the
/// uncompressed encodings the EIP-2537 precompiles read (docs/staking.md, "Registration key
/// checks").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// G1 `x ‖ y` (96 bytes).
    pub public_key: Vec<u8>,
    /// G2 (192 bytes): the proof of possession.
    pub proof_of_possession: Vec<u8>,
    /// G2 (192 bytes): the signature over `chain id (u256) ‖ owner ‖ signer`.
    pub registration_signature: Vec<u8>,
}

/// A compressed G1 public key.
pub type PublicKeyBytes = FixedBytes<48>;
/// A compressed G2 signature (or aggregate signature).
pub type SignatureBytes = FixedBytes<96>;

/// Why a key or signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlsError {
    /// The bytes do not decode to a curve point.
    #[error("bad encoding")]
    BadEncoding,
    /// The key is the point at infinity.
    #[error("public key is the point at infinity")]
    Infinity,
    /// The point is not in the prime-order subgroup.
    #[error("point not in the prime-order subgroup")]
    NotInGroup,
    /// The proof of possession does not verify.
    #[error("invalid proof of possession")]
    BadProofOfPossession,
    /// Aggregation of an empty list or other blst failure.
    #[error("blst error: {0:?}")]
    Other(String),
}

fn map_err(e: BLST_ERROR) -> BlsError {
    match e {
        BLST_ERROR::BLST_BAD_ENCODING => BlsError::BadEncoding,
        BLST_ERROR::BLST_PK_IS_INFINITY => BlsError::Infinity,
        BLST_ERROR::BLST_POINT_NOT_IN_GROUP => BlsError::NotInGroup,
        BLST_ERROR::BLST_POINT_NOT_ON_CURVE => BlsError::BadEncoding,
        other => BlsError::Other(format!("{other:?}")),
    }
}

/// A BLS secret key. Its `Debug` never prints the scalar.
#[derive(Clone)]
pub struct BlsSecretKey(SecretKey);

impl std::fmt::Debug for BlsSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlsSecretKey({})", self.public_key())
    }
}

impl BlsSecretKey {
    /// Derives a key from at least 32 bytes of input key material (IETF KeyGen).
    pub fn from_ikm(ikm: &[u8]) -> Result<Self, BlsError> {
        SecretKey::key_gen(ikm, &[]).map(Self).map_err(map_err)
    }

    /// Decodes a 32-byte big-endian scalar.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlsError> {
        SecretKey::from_bytes(bytes).map(Self).map_err(map_err)
    }

    /// The 32-byte scalar, for keystores.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The compressed public key.
    pub fn public_key(&self) -> PublicKeyBytes {
        FixedBytes(self.0.sk_to_pk().to_bytes())
    }

    /// Signs `msg` under the consensus DST.
    pub fn sign(&self, msg: &[u8]) -> SignatureBytes {
        FixedBytes(self.0.sign(msg, SIG_DST, &[]).to_bytes())
    }

    /// Proof of possession: the public key's bytes signed under the PoP DST.
    pub fn proof_of_possession(&self) -> SignatureBytes {
        FixedBytes(
            self.0
                .sign(self.public_key().as_slice(), POP_DST, &[])
                .to_bytes(),
        )
    }

    /// The key, its proof of possession and a registration signature binding it to `owner`
    /// and `signer` on chain `chain_id`, as StakeManager's `registerValidator` takes them.
    pub fn registration(
        &self,
        chain_id: u64,
        owner: alloy_primitives::Address,
        signer: alloy_primitives::Address,
    ) -> Registration {
        let public_key = self.0.sk_to_pk().serialize().to_vec();
        let proof_of_possession = self
            .0
            .sign(self.public_key().as_slice(), POP_DST, &[])
            .serialize()
            .to_vec();
        let mut message = alloy_primitives::U256::from(chain_id)
            .to_be_bytes::<32>()
            .to_vec();
        message.extend_from_slice(owner.as_slice());
        message.extend_from_slice(signer.as_slice());
        let registration_signature = self
            .0
            .sign(&message, REGISTRATION_DST, &[])
            .serialize()
            .to_vec();
        Registration {
            public_key,
            proof_of_possession,
            registration_signature,
        }
    }
}

/// Decodes a public key and checks it is in G1's subgroup and not infinity.
pub fn validate_public_key(bytes: &PublicKeyBytes) -> Result<PublicKey, BlsError> {
    PublicKey::key_validate(bytes.as_slice()).map_err(map_err)
}

/// Checks a proof of possession for an already validated key.
pub fn verify_proof_of_possession(key: &PublicKey, pop: &SignatureBytes) -> Result<(), BlsError> {
    let sig = Signature::sig_validate(pop.as_slice(), true).map_err(map_err)?;
    match sig.verify(false, &key.to_bytes(), POP_DST, &[], key, false) {
        BLST_ERROR::BLST_SUCCESS => Ok(()),
        _ => Err(BlsError::BadProofOfPossession),
    }
}

/// Verifies one signature by one validated key.
pub fn verify(key: &PublicKey, msg: &[u8], sig: &SignatureBytes) -> bool {
    let Ok(sig) = Signature::sig_validate(sig.as_slice(), true) else {
        return false;
    };
    sig.verify(false, msg, SIG_DST, &[], key, false) == BLST_ERROR::BLST_SUCCESS
}

/// Adds signatures that were each verified already (so no group check again).
pub fn aggregate(sigs: &[&SignatureBytes]) -> Result<SignatureBytes, BlsError> {
    let parsed = sigs
        .iter()
        .map(|s| Signature::from_bytes(s.as_slice()).map_err(map_err))
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&Signature> = parsed.iter().collect();
    let agg = AggregateSignature::aggregate(&refs, false).map_err(map_err)?;
    Ok(FixedBytes(agg.to_signature().to_bytes()))
}

/// One fast-aggregate-verify of `agg` over `msg` by the given validated keys
/// (each key's PoP was checked when its set was built). The aggregate's
/// subgroup membership is checked here, because it comes from the wire.
pub fn fast_aggregate_verify(keys: &[&PublicKey], msg: &[u8], agg: &SignatureBytes) -> bool {
    if keys.is_empty() {
        return false;
    }
    let Ok(sig) = Signature::from_bytes(agg.as_slice()) else {
        return false;
    };
    sig.fast_aggregate_verify(true, msg, SIG_DST, keys) == BLST_ERROR::BLST_SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> BlsSecretKey {
        BlsSecretKey::from_ikm(&[i; 32]).unwrap()
    }

    #[test]
    fn sign_verify_and_pop() {
        let sk = key(1);
        let pk = validate_public_key(&sk.public_key()).unwrap();
        let sig = sk.sign(b"hello");
        assert!(verify(&pk, b"hello", &sig));
        assert!(!verify(&pk, b"hullo", &sig));
        verify_proof_of_possession(&pk, &sk.proof_of_possession()).unwrap();
        // A consensus signature over the key bytes is not a PoP (different DST).
        let wrong = sk.sign(sk.public_key().as_slice());
        assert_eq!(
            verify_proof_of_possession(&pk, &wrong),
            Err(BlsError::BadProofOfPossession)
        );
        // Another key's PoP does not verify either.
        assert!(verify_proof_of_possession(&pk, &key(2).proof_of_possession()).is_err());
    }

    #[test]
    fn rejects_infinity_and_garbage() {
        let mut inf = [0u8; 48];
        inf[0] = 0xc0; // compressed infinity
        assert!(validate_public_key(&FixedBytes(inf)).is_err());
        assert!(validate_public_key(&FixedBytes([0xab; 48])).is_err());
    }

    #[test]
    fn aggregate_roundtrip() {
        let keys: Vec<_> = (1..=5).map(key).collect();
        let pks: Vec<_> = keys
            .iter()
            .map(|k| validate_public_key(&k.public_key()).unwrap())
            .collect();
        let sigs: Vec<_> = keys.iter().map(|k| k.sign(b"m")).collect();
        let agg = aggregate(&sigs.iter().collect::<Vec<_>>()).unwrap();
        let refs: Vec<_> = pks.iter().collect();
        assert!(fast_aggregate_verify(&refs, b"m", &agg));
        assert!(!fast_aggregate_verify(&refs[..4], b"m", &agg));
        assert!(!fast_aggregate_verify(&refs, b"n", &agg));
    }
}
