//! A deterministic stand-in for BLS, for the simulator.
//!
//! A signature is `SHA-256(tag || secret || msg)`; each identity's 32-byte
//! secret is drawn from the simulation's seeded RNG and its "public key" is a
//! hash of the secret. The verifier holds a registry from public key to
//! secret, so it can check any signature, while a (byzantine) simulated node
//! only holds its own [`TestSigner`] and cannot sign for anyone else. The
//! aggregate is a hash over the signers' signatures in index order, which the
//! verifier recomputes. Hashing costs well under a microsecond, against about
//! a millisecond for a pairing, which is what makes 1,000-seed scenarios fast.

use crate::bls::{PublicKeyBytes, SignatureBytes};
use crate::crypto::{Signer, Verifier};
use crate::types::ValidatorIndex;
use crate::validator_set::ValidatorSet;
use alloy_primitives::FixedBytes;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

fn pad<const N: usize>(digest: &[u8]) -> FixedBytes<N> {
    let mut out = [0u8; N];
    out[..32].copy_from_slice(digest);
    FixedBytes(out)
}

/// A test identity's secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestKey(pub [u8; 32]);

impl TestKey {
    /// The public identity for this secret.
    pub fn public_key(&self) -> PublicKeyBytes {
        pad(&Sha256::new()
            .chain_update(b"bttd-test-pk")
            .chain_update(self.0)
            .finalize())
    }

    fn sign(&self, msg: &[u8]) -> SignatureBytes {
        pad(&Sha256::new()
            .chain_update(b"bttd-test-sig")
            .chain_update(self.0)
            .chain_update(msg)
            .finalize())
    }
}

/// Signs with one test identity.
#[derive(Clone, Debug)]
pub struct TestSigner(pub TestKey);

impl Signer for TestSigner {
    fn public_key(&self) -> PublicKeyBytes {
        self.0.public_key()
    }
    fn sign(&self, msg: &[u8]) -> SignatureBytes {
        self.0.sign(msg)
    }
}

/// Verifies test signatures through a registry of all identities' secrets.
#[derive(Clone, Debug, Default)]
pub struct TestVerifier {
    registry: HashMap<PublicKeyBytes, TestKey>,
}

impl TestVerifier {
    /// A verifier that knows these identities.
    pub fn new(keys: impl IntoIterator<Item = TestKey>) -> Self {
        Self {
            registry: keys.into_iter().map(|k| (k.public_key(), k)).collect(),
        }
    }

    fn expected(
        &self,
        set: &ValidatorSet,
        index: ValidatorIndex,
        msg: &[u8],
    ) -> Option<SignatureBytes> {
        let v = set.validators().get(index as usize)?;
        Some(self.registry.get(&v.public_key)?.sign(msg))
    }
}

fn hash_aggregate(sigs: &[&SignatureBytes]) -> SignatureBytes {
    let mut h = Sha256::new().chain_update(b"bttd-test-agg");
    for s in sigs {
        h.update(s.as_slice());
    }
    pad(&h.finalize())
}

impl Verifier for TestVerifier {
    fn verify(
        &self,
        set: &ValidatorSet,
        index: ValidatorIndex,
        msg: &[u8],
        sig: &SignatureBytes,
    ) -> bool {
        self.expected(set, index, msg).is_some_and(|e| &e == sig)
    }

    fn aggregate(&self, sigs: &[&SignatureBytes]) -> Option<SignatureBytes> {
        (!sigs.is_empty()).then(|| hash_aggregate(sigs))
    }

    fn verify_aggregate(
        &self,
        set: &ValidatorSet,
        signers: &[ValidatorIndex],
        msg: &[u8],
        agg: &SignatureBytes,
    ) -> bool {
        let mut sigs = Vec::with_capacity(signers.len());
        for &i in signers {
            match self.expected(set, i, msg) {
                Some(s) => sigs.push(s),
                None => return false,
            }
        }
        let refs: Vec<&SignatureBytes> = sigs.iter().collect();
        !refs.is_empty() && &hash_aggregate(&refs) == agg
    }
}
