//! Transaction ids and signatures as TRON computes them: the txID is sha256 of the protobuf
//! encoding of `Transaction.raw`, and the owner signs that 32-byte id with secp256k1, giving
//! 65 bytes `r || s || v` (java-tron writes v as 27 + recovery id; tronpy writes the bare
//! recovery id; both are accepted).

use alloy_primitives::{B256, Signature, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::address::TronAddress;
use crate::proto::TransactionRaw;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature has {0} bytes, expected 65")]
    Length(usize),
    #[error("signature recovery byte {0} is not 0, 1, 27 or 28")]
    RecoveryId(u8),
    #[error("signature does not recover a public key: {0}")]
    Recover(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// The protobuf encoding of `raw` (what `raw_data_hex` spells).
pub fn raw_bytes(raw: &TransactionRaw) -> Vec<u8> {
    raw.encode_to_vec()
}

/// sha256 of the encoded `Transaction.raw`.
pub fn txid(raw: &TransactionRaw) -> B256 {
    txid_of_bytes(&raw_bytes(raw))
}

pub fn txid_of_bytes(raw: &[u8]) -> B256 {
    B256::from_slice(&Sha256::digest(raw))
}

/// Signs a txID: 65 bytes, r || s || (27 + recovery id), as java-tron's wallets write it.
pub fn sign(signer: &PrivateKeySigner, txid: &B256) -> Result<[u8; 65], SignatureError> {
    let sig = signer
        .sign_hash_sync(txid)
        .map_err(|e| SignatureError::Sign(e.to_string()))?;
    let mut out = [0u8; 65];
    out[..32].copy_from_slice(&sig.r().to_be_bytes::<32>());
    out[32..64].copy_from_slice(&sig.s().to_be_bytes::<32>());
    out[64] = 27 + u8::from(sig.v());
    Ok(out)
}

/// The address whose key made `sig` over `txid`.
pub fn recover(txid: &B256, sig: &[u8]) -> Result<TronAddress, SignatureError> {
    if sig.len() != 65 {
        return Err(SignatureError::Length(sig.len()));
    }
    let parity = match sig[64] {
        0 | 27 => false,
        1 | 28 => true,
        other => return Err(SignatureError::RecoveryId(other)),
    };
    let r = U256::from_be_slice(&sig[..32]);
    let s = U256::from_be_slice(&sig[32..64]);
    let signature = Signature::new(r, s, parity);
    signature
        .recover_address_from_prehash(txid)
        .map(TronAddress::from_evm)
        .map_err(|e| SignatureError::Recover(e.to_string()))
}

/// TRON's contract address rule: the last 20 bytes of keccak256(txID || owner's 21 bytes).
pub fn contract_address(txid: &B256, owner: &TronAddress) -> TronAddress {
    let mut input = Vec::with_capacity(53);
    input.extend_from_slice(txid.as_slice());
    input.extend_from_slice(&owner.to_bytes21());
    let hash = alloy_primitives::keccak256(&input);
    TronAddress::from_evm(alloy_primitives::Address::from_slice(&hash[12..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_recover_the_signer_and_other_ids_do_not() {
        let signer = PrivateKeySigner::from_bytes(&B256::repeat_byte(7)).unwrap();
        let owner = TronAddress::from_evm(signer.address());
        let id = B256::repeat_byte(0xab);
        let sig = sign(&signer, &id).unwrap();
        assert_eq!(recover(&id, &sig).unwrap(), owner);
        // tronpy's spelling of the same signature (bare recovery id).
        let mut bare = sig;
        bare[64] -= 27;
        assert_eq!(recover(&id, &bare).unwrap(), owner);
        let other = B256::repeat_byte(0xac);
        assert_ne!(recover(&other, &sig).ok(), Some(owner));
        assert_eq!(recover(&id, &sig[..64]), Err(SignatureError::Length(64)));
        let mut bad_v = sig;
        bad_v[64] = 5;
        assert_eq!(recover(&id, &bad_v), Err(SignatureError::RecoveryId(5)));
    }
}
