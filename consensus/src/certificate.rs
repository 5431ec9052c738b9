//! Commit certificates: the proof that a block is final.
//!
//! A certificate is the aggregate of the precommit signatures of one round plus
//! a bitmap of who signed. Because every precommit for a block signs the same
//! bytes, a full node checks it with one fast-aggregate-verify against the
//! epoch's cached keys, without re-running consensus. The bitmap goes on chain
//! in the next block so rewards and downtime can be computed.

use crate::bls::SignatureBytes;
use crate::crypto::Verifier;
use crate::signing;
use crate::types::{BlockId, Height, Round, ValidatorIndex, VoteType};
use crate::validator_set::ValidatorSet;
use alloy_primitives::{B256, Bytes};
use serde::{Deserialize, Serialize};

/// Which validators signed: bit `i` (byte `i / 8`, bit `i % 8`, LSB first) is
/// validator `i`. Exactly `ceil(n / 8)` bytes, unused high bits zero.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignerBitmap(pub Bytes);

impl SignerBitmap {
    /// Bitmap for a set of `n` validators with the given signers.
    pub fn from_indices(n: usize, signers: impl IntoIterator<Item = ValidatorIndex>) -> Self {
        let mut bytes = vec![0u8; n.div_ceil(8)];
        for i in signers {
            bytes[i as usize / 8] |= 1 << (i % 8);
        }
        Self(bytes.into())
    }

    /// Signers in ascending order, or `None` if the bitmap does not fit a set
    /// of `n` validators.
    pub fn indices(&self, n: usize) -> Option<Vec<ValidatorIndex>> {
        if self.0.len() != n.div_ceil(8) {
            return None;
        }
        let mut out = Vec::new();
        for (byte_i, b) in self.0.iter().enumerate() {
            for bit in 0..8 {
                if b & (1 << bit) != 0 {
                    let i = byte_i * 8 + bit;
                    if i >= n {
                        return None;
                    }
                    out.push(i as ValidatorIndex);
                }
            }
        }
        Some(out)
    }
}

/// Aggregate precommits for one block at one height and round.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CommitCertificate {
    /// Height of the block.
    pub height: Height,
    /// Round whose precommits are aggregated.
    pub round: Round,
    /// The committed block.
    pub block_id: BlockId,
    /// Aggregate of the signers' precommit signatures.
    pub signature: SignatureBytes,
    /// Who signed.
    pub signers: SignerBitmap,
}

/// Why a certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// The set given is not the one for this height's epoch.
    #[error("height {height} is not in the epoch starting at {first_height}")]
    WrongEpoch {
        /// Certificate height.
        height: Height,
        /// First height of the set's epoch.
        first_height: Height,
    },
    /// Bitmap length or bits do not fit the set.
    #[error("malformed signer bitmap")]
    BadBitmap,
    /// Signers hold too little power.
    #[error("signers hold {power} of {total} power, need more than 2/3")]
    NoQuorum {
        /// Signers' power.
        power: u128,
        /// Total power.
        total: u128,
    },
    /// The aggregate does not verify.
    #[error("aggregate signature does not verify")]
    BadSignature,
}

impl CommitCertificate {
    /// The precommit bytes every signer signed.
    pub fn sign_bytes(&self, chain: &B256, epoch: u64) -> Vec<u8> {
        signing::vote_sign_bytes(
            chain,
            VoteType::Precommit,
            epoch,
            self.height,
            self.round,
            Some(self.block_id),
        )
    }

    /// Checks the certificate against the set of its height's epoch:
    /// bitmap shape, more than 2/3 of the power, and one aggregate check.
    pub fn verify(
        &self,
        chain: &B256,
        set: &ValidatorSet,
        verifier: &dyn Verifier,
    ) -> Result<(), CertificateError> {
        if self.height < set.first_height() {
            return Err(CertificateError::WrongEpoch {
                height: self.height,
                first_height: set.first_height(),
            });
        }
        let signers = self
            .signers
            .indices(set.len())
            .ok_or(CertificateError::BadBitmap)?;
        let power: u128 = signers.iter().map(|&i| u128::from(set.power(i))).sum();
        if !set.is_quorum(power) {
            return Err(CertificateError::NoQuorum {
                power,
                total: set.total_power(),
            });
        }
        let msg = self.sign_bytes(chain, set.epoch());
        if verifier.verify_aggregate(set, &signers, &msg, &self.signature) {
            Ok(())
        } else {
            Err(CertificateError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_roundtrip_and_shape() {
        let b = SignerBitmap::from_indices(10, [0, 3, 9]);
        assert_eq!(b.0.len(), 2);
        assert_eq!(b.indices(10), Some(vec![0, 3, 9]));
        assert_eq!(b.indices(17), None);
        assert_eq!(b.indices(9), None); // bit 9 is out of range
    }
}
