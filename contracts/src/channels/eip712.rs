//! The EIP-712 signing domain of `BandwidthChannels` and the `Voucher` / `Close` typed data.
//!
//! Hashes come from alloy's `SolStruct` (the same code that signs `eth_signTypedData_v4`
//! payloads); [`ChannelsDomain`] caches the domain separator so a payee hashing a voucher per
//! piece does two keccaks, not four. [`ChannelsDomain::typed_data_json`] renders the request a
//! wallet signs (`eth_signTypedData_v4`, viem `signTypedData`); a test checks that wallets'
//! hash of that JSON equals ours.

use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_sol_types::{Eip712Domain, SolStruct};
use serde_json::{Value, json};

/// `name` of the EIP-712 domain.
pub const DOMAIN_NAME: &str = "BandwidthChannels";
/// `version` of the EIP-712 domain.
pub const DOMAIN_VERSION: &str = "1";

alloy_sol_types::sol! {
    /// The payer's promise: the payee may take `cumulativeAmount` in total from the channel.
    #[derive(Debug, PartialEq, Eq)]
    struct Voucher {
        bytes32 channelId;
        uint256 cumulativeAmount;
    }

    /// The payee's consent to a cooperative close at `cumulativeAmount`.
    #[derive(Debug, PartialEq, Eq)]
    struct Close {
        bytes32 channelId;
        uint256 cumulativeAmount;
    }
}

/// The domain {name "BandwidthChannels", version "1", chainId, verifyingContract}, with its
/// separator computed once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelsDomain {
    chain_id: u64,
    contract: Address,
    separator: B256,
}

impl ChannelsDomain {
    /// The domain of the contract at `contract` on chain `chain_id`.
    pub fn new(chain_id: u64, contract: Address) -> Self {
        let separator = Self::eip712_domain_of(chain_id, contract).separator();
        Self {
            chain_id,
            contract,
            separator,
        }
    }

    fn eip712_domain_of(chain_id: u64, contract: Address) -> Eip712Domain {
        Eip712Domain::new(
            Some(DOMAIN_NAME.into()),
            Some(DOMAIN_VERSION.into()),
            Some(U256::from(chain_id)),
            Some(contract),
            None,
        )
    }

    /// The chain id signatures are bound to.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The contract signatures are bound to (`verifyingContract`).
    pub fn contract(&self) -> Address {
        self.contract
    }

    /// The domain separator (`hashStruct(EIP712Domain)`).
    pub fn separator(&self) -> B256 {
        self.separator
    }

    /// alloy's representation of the domain.
    pub fn eip712_domain(&self) -> Eip712Domain {
        Self::eip712_domain_of(self.chain_id, self.contract)
    }

    /// The digest a payer signs for a voucher.
    pub fn voucher_hash(&self, channel_id: B256, cumulative_amount: U256) -> B256 {
        self.digest(
            Voucher {
                channelId: channel_id,
                cumulativeAmount: cumulative_amount,
            }
            .eip712_hash_struct(),
        )
    }

    /// The digest a payee signs to agree to a cooperative close.
    pub fn close_hash(&self, channel_id: B256, cumulative_amount: U256) -> B256 {
        self.digest(
            Close {
                channelId: channel_id,
                cumulativeAmount: cumulative_amount,
            }
            .eip712_hash_struct(),
        )
    }

    fn digest(&self, struct_hash: B256) -> B256 {
        let mut input = [0u8; 66];
        input[0] = 0x19;
        input[1] = 0x01;
        input[2..34].copy_from_slice(self.separator.as_slice());
        input[34..].copy_from_slice(struct_hash.as_slice());
        keccak256(input)
    }

    /// The `eth_signTypedData_v4` request body for a voucher (`primary` = `"Voucher"`) or a
    /// close (`"Close"`): `{types, primaryType, domain, message}`. `cumulativeAmount` is a
    /// decimal string (uint256 does not fit a JSON number), `chainId` a number.
    pub fn typed_data_json(&self, primary: TypedKind, channel_id: B256, amount: U256) -> Value {
        let fields = json!([
            { "name": "channelId", "type": "bytes32" },
            { "name": "cumulativeAmount", "type": "uint256" },
        ]);
        let mut types = json!({
            "EIP712Domain": [
                { "name": "name", "type": "string" },
                { "name": "version", "type": "string" },
                { "name": "chainId", "type": "uint256" },
                { "name": "verifyingContract", "type": "address" },
            ],
        });
        types[primary.name()] = fields;
        json!({
            "types": types,
            "primaryType": primary.name(),
            "domain": {
                "name": DOMAIN_NAME,
                "version": DOMAIN_VERSION,
                "chainId": self.chain_id,
                "verifyingContract": self.contract.to_checksum(None),
            },
            "message": {
                "channelId": channel_id.to_string(),
                "cumulativeAmount": amount.to_string(),
            },
        })
    }
}

/// Which of the two typed-data structs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypedKind {
    /// `Voucher(bytes32 channelId,uint256 cumulativeAmount)`, signed by the payer.
    Voucher,
    /// `Close(bytes32 channelId,uint256 cumulativeAmount)`, signed by the payee.
    Close,
}

impl TypedKind {
    /// The struct name, as in `primaryType`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Voucher => "Voucher",
            Self::Close => "Close",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{address, b256};

    fn domain() -> ChannelsDomain {
        ChannelsDomain::new(1337, address!("0000000000000000000000000000000000001002"))
    }

    #[test]
    fn type_strings_are_the_contracts() {
        assert_eq!(
            Voucher::eip712_encode_type(),
            "Voucher(bytes32 channelId,uint256 cumulativeAmount)"
        );
        assert_eq!(
            Close::eip712_encode_type(),
            "Close(bytes32 channelId,uint256 cumulativeAmount)"
        );
        assert_eq!(
            domain().eip712_domain().encode_type(),
            "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
        );
    }

    /// The cached-separator digest is alloy's `eip712_signing_hash`, and Voucher and Close of
    /// the same fields hash differently.
    #[test]
    fn cached_digest_equals_alloys() {
        let d = domain();
        let id = b256!("0101010101010101010101010101010101010101010101010101010101010101");
        let amount = U256::from(123_456_789u64);
        let v = Voucher {
            channelId: id,
            cumulativeAmount: amount,
        };
        let c = Close {
            channelId: id,
            cumulativeAmount: amount,
        };
        assert_eq!(
            d.voucher_hash(id, amount),
            v.eip712_signing_hash(&d.eip712_domain())
        );
        assert_eq!(
            d.close_hash(id, amount),
            c.eip712_signing_hash(&d.eip712_domain())
        );
        assert_ne!(d.voucher_hash(id, amount), d.close_hash(id, amount));
    }

    /// The JSON a wallet signs hashes, under alloy-dyn-abi's independent eth_signTypedData_v4
    /// implementation, to exactly our digest (Voucher and Close).
    #[test]
    fn typed_data_json_hashes_like_a_wallet() {
        let d = domain();
        let id = b256!("00000000000000000000000000000000000000000000000000000000deadbeef");
        let amount = U256::from(10).pow(U256::from(30)) + U256::from(7);
        for (kind, want) in [
            (TypedKind::Voucher, d.voucher_hash(id, amount)),
            (TypedKind::Close, d.close_hash(id, amount)),
        ] {
            let json = d.typed_data_json(kind, id, amount);
            let typed: alloy_dyn_abi::TypedData = serde_json::from_value(json).unwrap();
            assert_eq!(typed.eip712_signing_hash().unwrap(), want, "{kind:?}");
        }
    }

    #[test]
    fn domain_binds_chain_and_contract() {
        let id = B256::repeat_byte(7);
        let a = domain().voucher_hash(id, U256::from(1));
        let other_chain =
            ChannelsDomain::new(1338, domain().contract()).voucher_hash(id, U256::from(1));
        let other_contract =
            ChannelsDomain::new(1337, Address::repeat_byte(1)).voucher_hash(id, U256::from(1));
        assert_ne!(a, other_chain);
        assert_ne!(a, other_contract);
    }
}
