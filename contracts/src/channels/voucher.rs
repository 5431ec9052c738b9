//! Vouchers (the payer's signed cumulative amount) and close signatures (the payee's consent
//! to a cooperative close): build, sign, verify.
//!
//! A [`SignedVoucher`] is also the JSON line the CLI prints and the payee's watcher reads:
//! `{"channelId":"0x…","cumulativeAmount":"123","signature":"0x…"}` (amount in wei as a
//! decimal string; hex strings and JSON numbers are accepted on input).

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_signer::SignerSync;
use serde::{Deserialize, Serialize, Serializer};

use super::eip712::ChannelsDomain;
use super::signature::{SignatureError, StrictSignature};

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
pub enum VoucherError {
    /// The signer refused or failed.
    #[error("signing failed: {0}")]
    Signer(#[from] alloy_signer::Error),
    /// The signer produced a signature the contract would refuse (cannot happen with an
    /// RFC 6979 signer that normalises s; checked anyway).
    #[error("signer produced an unacceptable signature: {0}")]
    Signature(#[from] SignatureError),
}

fn decimal<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

/// A payer's voucher: "the payee of `channel_id` may take `cumulative_amount` wei in total".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedVoucher {
    /// The channel.
    pub channel_id: B256,
    /// Total the payee may have taken, in wei (not an increment).
    #[serde(serialize_with = "decimal")]
    pub cumulative_amount: U256,
    /// 65 bytes `r ‖ s ‖ v`, the payer's EIP-712 signature of
    /// `Voucher(channelId, cumulativeAmount)`.
    pub signature: Bytes,
}

impl SignedVoucher {
    /// Signs a voucher with the payer's key.
    pub fn sign(
        domain: &ChannelsDomain,
        payer: &impl SignerSync,
        channel_id: B256,
        cumulative_amount: U256,
    ) -> Result<Self, VoucherError> {
        let sig = payer.sign_hash_sync(&domain.voucher_hash(channel_id, cumulative_amount))?;
        Ok(Self {
            channel_id,
            cumulative_amount,
            signature: StrictSignature::from_signature(sig)?.to_bytes(),
        })
    }

    /// The EIP-712 digest the payer signed.
    pub fn digest(&self, domain: &ChannelsDomain) -> B256 {
        domain.voucher_hash(self.channel_id, self.cumulative_amount)
    }

    /// Checks the signature like the contract and returns the signer. Whether the signer is
    /// the channel's payer is for the caller (see [`super::PayeeBook`]).
    pub fn recover_signer(&self, domain: &ChannelsDomain) -> Result<Address, SignatureError> {
        StrictSignature::parse(&self.signature)?.recover(&self.digest(domain))
    }
}

/// A payee's signature of `Close(channelId, cumulativeAmount)` for `cooperativeClose`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloseSignature {
    /// The channel.
    pub channel_id: B256,
    /// The final cumulative amount the payee agrees to.
    #[serde(serialize_with = "decimal")]
    pub cumulative_amount: U256,
    /// 65 bytes `r ‖ s ‖ v`.
    pub signature: Bytes,
}

impl CloseSignature {
    /// Signs the close with the payee's key.
    pub fn sign(
        domain: &ChannelsDomain,
        payee: &impl SignerSync,
        channel_id: B256,
        cumulative_amount: U256,
    ) -> Result<Self, VoucherError> {
        let sig = payee.sign_hash_sync(&domain.close_hash(channel_id, cumulative_amount))?;
        Ok(Self {
            channel_id,
            cumulative_amount,
            signature: StrictSignature::from_signature(sig)?.to_bytes(),
        })
    }

    /// Checks the signature like the contract and returns the signer.
    pub fn recover_signer(&self, domain: &ChannelsDomain) -> Result<Address, SignatureError> {
        StrictSignature::parse(&self.signature)?
            .recover(&domain.close_hash(self.channel_id, self.cumulative_amount))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::address;
    use alloy_signer_local::PrivateKeySigner;

    fn domain() -> ChannelsDomain {
        ChannelsDomain::new(1337, address!("0000000000000000000000000000000000001002"))
    }

    #[test]
    fn sign_then_recover() {
        let key = PrivateKeySigner::random();
        let id = B256::repeat_byte(3);
        let v = SignedVoucher::sign(&domain(), &key, id, U256::from(5)).unwrap();
        assert_eq!(v.signature.len(), 65);
        assert!(matches!(v.signature[64], 27 | 28));
        assert_eq!(v.recover_signer(&domain()).unwrap(), key.address());
        let c = CloseSignature::sign(&domain(), &key, id, U256::from(5)).unwrap();
        assert_eq!(c.recover_signer(&domain()).unwrap(), key.address());
        // A voucher signature is not a close signature (different type hash).
        let as_close = CloseSignature {
            channel_id: id,
            cumulative_amount: U256::from(5),
            signature: v.signature.clone(),
        };
        assert_ne!(as_close.recover_signer(&domain()).ok(), Some(key.address()));
    }

    /// Another chain id or another contract: the signature recovers someone else.
    #[test]
    fn other_domain_recovers_someone_else() {
        let key = PrivateKeySigner::random();
        let v = SignedVoucher::sign(&domain(), &key, B256::repeat_byte(1), U256::from(9)).unwrap();
        let other_chain = ChannelsDomain::new(1338, domain().contract());
        let other_contract = ChannelsDomain::new(1337, Address::repeat_byte(9));
        for d in [other_chain, other_contract] {
            assert_ne!(v.recover_signer(&d).ok(), Some(key.address()));
        }
    }

    #[test]
    fn json_round_trip_and_inputs() {
        let key = PrivateKeySigner::random();
        let v = SignedVoucher::sign(
            &domain(),
            &key,
            B256::repeat_byte(1),
            U256::from(10).pow(U256::from(24)),
        )
        .unwrap();
        let line = serde_json::to_string(&v).unwrap();
        assert!(
            line.contains(r#""cumulativeAmount":"1000000000000000000000000""#),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<SignedVoucher>(&line).unwrap(), v);
        let hex_amount = line.replace(
            r#""1000000000000000000000000""#,
            r#""0xd3c21bcecceda1000000""#,
        );
        assert_eq!(
            serde_json::from_str::<SignedVoucher>(&hex_amount).unwrap(),
            v
        );
        assert!(serde_json::from_str::<SignedVoucher>(r#"{"channelId":"0x01"}"#).is_err());
    }
}
