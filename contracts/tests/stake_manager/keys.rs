//! Validator keys as bttd makes them (`bttd_consensus::bls`, blst min-pk), in the encodings
//! `registerValidator` takes: uncompressed G1 key, uncompressed G2 proof of possession and
//! registration signature.

use alloy_primitives::{Address, Bytes, keccak256};
use bttd_consensus::bls::{BlsSecretKey, validate_public_key, verify_proof_of_possession};
use bttd_contracts::StakeManager;

pub struct ValidatorKeys {
    pub bls: BlsSecretKey,
    pub owner: Address,
    pub signer: Address,
}

impl ValidatorKeys {
    pub fn new(seed: u64) -> Self {
        let ikm = keccak256(seed.to_be_bytes());
        let bls = BlsSecretKey::from_ikm(ikm.as_slice()).expect("ikm is 32 bytes");
        // bttd's own check accepts the proof of possession the contract will check.
        let key = validate_public_key(&bls.public_key()).expect("valid key");
        verify_proof_of_possession(&key, &bls.proof_of_possession()).expect("valid PoP");
        let owner = Address::from_word(keccak256(
            [b"owner".as_slice(), &seed.to_be_bytes()].concat(),
        ));
        let signer = Address::from_word(keccak256(
            [b"signer".as_slice(), &seed.to_be_bytes()].concat(),
        ));
        Self { bls, owner, signer }
    }

    pub fn compressed(&self) -> Bytes {
        Bytes::copy_from_slice(self.bls.public_key().as_slice())
    }

    pub fn uncompressed(&self) -> Bytes {
        let pk = blst::min_pk::PublicKey::from_bytes(self.bls.public_key().as_slice())
            .expect("own key decodes");
        Bytes::copy_from_slice(&pk.serialize())
    }

    pub fn pop(&self) -> Bytes {
        uncompressed_sig(self.bls.proof_of_possession().as_slice())
    }

    /// The registration signature over (chain id, owner, signer), as bttd's CLI makes it.
    pub fn registration(&self, chain_id: u64, owner: Address, signer: Address) -> Bytes {
        self.bls
            .registration(chain_id, owner, signer)
            .registration_signature
            .into()
    }

    /// A complete, valid registration by this key's owner.
    pub fn register_call(
        &self,
        chain_id: u64,
        commission_bps: u16,
    ) -> StakeManager::registerValidatorCall {
        StakeManager::registerValidatorCall {
            signer: self.signer,
            blsPublicKey: self.uncompressed(),
            proofOfPossession: self.pop(),
            registrationSignature: self.registration(chain_id, self.owner, self.signer),
            commissionBps: commission_bps,
        }
    }
}

/// A compressed G2 point (96 bytes) in the 192-byte uncompressed encoding.
pub fn uncompressed_sig(compressed: &[u8]) -> Bytes {
    let sig = blst::min_pk::Signature::from_bytes(compressed).expect("own signature decodes");
    Bytes::copy_from_slice(&sig.serialize())
}
