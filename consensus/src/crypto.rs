//! Signing and verification seams.
//!
//! The state machine signs through [`Signer`] and checks through [`Verifier`],
//! so the same engine runs with real BLS in the node and with the cheap
//! keyed-hash scheme of [`crate::test_scheme`] in the simulator, where
//! thousands of seeds must run in seconds. Both schemes use the same 96-byte
//! signature container so messages and certificates have one shape.

use crate::bls::{self, BlsSecretKey, PublicKeyBytes, SignatureBytes};
use crate::types::ValidatorIndex;
use crate::validator_set::ValidatorSet;

/// Produces signatures for one validator identity.
///
/// Slashing protection is not the signer's job: the engine consults its
/// [`crate::guard::SlashingGuard`] (which persists the record) before calling
/// `sign`, so a signer is a plain key.
pub trait Signer: Send {
    /// The identity's public key, as listed in validator sets.
    fn public_key(&self) -> PublicKeyBytes;
    /// Signs canonical message bytes (see [`crate::signing`]).
    fn sign(&self, msg: &[u8]) -> SignatureBytes;
}

/// Checks signatures against a validator set.
pub trait Verifier: Send + Sync {
    /// Whether validator `index` of `set` signed `msg`.
    fn verify(
        &self,
        set: &ValidatorSet,
        index: ValidatorIndex,
        msg: &[u8],
        sig: &SignatureBytes,
    ) -> bool;
    /// Aggregates individually verified signatures, given in ascending
    /// validator-index order.
    fn aggregate(&self, sigs: &[&SignatureBytes]) -> Option<SignatureBytes>;
    /// Whether `agg` is the aggregate of signatures over `msg` by exactly the
    /// validators `signers` (ascending indices) of `set`.
    fn verify_aggregate(
        &self,
        set: &ValidatorSet,
        signers: &[ValidatorIndex],
        msg: &[u8],
        agg: &SignatureBytes,
    ) -> bool;
}

/// A validator key held in memory.
#[derive(Debug, Clone)]
pub struct BlsSigner(pub BlsSecretKey);

impl Signer for BlsSigner {
    fn public_key(&self) -> PublicKeyBytes {
        self.0.public_key()
    }
    fn sign(&self, msg: &[u8]) -> SignatureBytes {
        self.0.sign(msg)
    }
}

/// Verification with BLS12-381 against the set's cached, validated keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct BlsVerifier;

impl Verifier for BlsVerifier {
    fn verify(
        &self,
        set: &ValidatorSet,
        index: ValidatorIndex,
        msg: &[u8],
        sig: &SignatureBytes,
    ) -> bool {
        let Ok(keys) = set.bls_keys() else {
            return false;
        };
        keys.get(index as usize)
            .is_some_and(|k| bls::verify(k, msg, sig))
    }

    fn aggregate(&self, sigs: &[&SignatureBytes]) -> Option<SignatureBytes> {
        bls::aggregate(sigs).ok()
    }

    fn verify_aggregate(
        &self,
        set: &ValidatorSet,
        signers: &[ValidatorIndex],
        msg: &[u8],
        agg: &SignatureBytes,
    ) -> bool {
        let Ok(keys) = set.bls_keys() else {
            return false;
        };
        let mut picked = Vec::with_capacity(signers.len());
        for &i in signers {
            match keys.get(i as usize) {
                Some(k) => picked.push(k),
                None => return false,
            }
        }
        bls::fast_aggregate_verify(&picked, msg, agg)
    }
}
