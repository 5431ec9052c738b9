//! TRON addresses in their three spellings: base58check (`T...`, 34 characters, version byte
//! 0x41 and a 4-byte double-sha256 checksum), hex with the `41` prefix (what java-tron's HTTP
//! API takes when `visible` is false) and the 20-byte EVM form (what TVM contracts and the
//! `/jsonrpc` interface see). The bridge meets all three; a checksum or prefix error is
//! reported, never silently repaired.

use std::fmt;
use std::str::FromStr;

use alloy_primitives::Address;
use sha2::{Digest, Sha256};

/// The version byte of every TRON mainnet address.
pub const PREFIX: u8 = 0x41;

/// A TRON account or contract address (the 20 bytes after the 0x41 prefix).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TronAddress(pub Address);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("not base58: {0}")]
    Base58(String),
    #[error("base58check checksum mismatch: computed {computed}, address carries {carried}")]
    Checksum { computed: String, carried: String },
    #[error("address version byte is 0x{0:02x}, TRON addresses use 0x41")]
    Prefix(u8),
    #[error("address has {0} bytes, expected 21 (0x41 and 20 bytes)")]
    Length(usize),
    #[error("not hex: {0}")]
    Hex(String),
    #[error(
        "unrecognised address {0:?}: expected T... (base58check), 41... (42 hex digits) or 0x... (40 hex digits)"
    )]
    Unrecognised(String),
}

fn checksum(payload: &[u8]) -> [u8; 4] {
    let twice = Sha256::digest(Sha256::digest(payload));
    [twice[0], twice[1], twice[2], twice[3]]
}

impl TronAddress {
    pub const fn from_evm(address: Address) -> Self {
        Self(address)
    }

    pub const fn evm(&self) -> Address {
        self.0
    }

    /// The 21 bytes java-tron stores: 0x41 followed by the EVM address.
    pub fn to_bytes21(&self) -> [u8; 21] {
        let mut out = [0u8; 21];
        out[0] = PREFIX;
        out[1..].copy_from_slice(self.0.as_slice());
        out
    }

    /// Reads the 21-byte form (protobuf `owner_address` fields).
    pub fn from_bytes21(bytes: &[u8]) -> Result<Self, AddressError> {
        if bytes.len() != 21 {
            return Err(AddressError::Length(bytes.len()));
        }
        if bytes[0] != PREFIX {
            return Err(AddressError::Prefix(bytes[0]));
        }
        Ok(Self(Address::from_slice(&bytes[1..])))
    }

    /// `T...`: base58 of the 21 bytes followed by the first four bytes of sha256(sha256(.)).
    pub fn to_base58(&self) -> String {
        let body = self.to_bytes21();
        let mut full = Vec::with_capacity(25);
        full.extend_from_slice(&body);
        full.extend_from_slice(&checksum(&body));
        bs58::encode(full).into_string()
    }

    /// `41...` in lower-case hex (java-tron's spelling with `visible: false`).
    pub fn to_hex41(&self) -> String {
        hex::encode(self.to_bytes21())
    }

    pub fn from_base58(s: &str) -> Result<Self, AddressError> {
        let full = bs58::decode(s)
            .into_vec()
            .map_err(|e| AddressError::Base58(e.to_string()))?;
        if full.len() != 25 {
            return Err(AddressError::Length(full.len().saturating_sub(4)));
        }
        let (body, carried) = full.split_at(21);
        let computed = checksum(body);
        if computed != carried {
            return Err(AddressError::Checksum {
                computed: hex::encode(computed),
                carried: hex::encode(carried),
            });
        }
        Self::from_bytes21(body)
    }

    pub fn from_hex41(s: &str) -> Result<Self, AddressError> {
        let digits = s.strip_prefix("0x").unwrap_or(s);
        let bytes = hex::decode(digits).map_err(|e| AddressError::Hex(e.to_string()))?;
        Self::from_bytes21(&bytes)
    }

    /// Any of the three spellings: `T...` base58check, `41...` (42 hex digits, optionally
    /// `0x`-prefixed) or a 20-byte EVM address (`0x` and 40 hex digits, or 40 bare digits).
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        let s = s.trim();
        let digits = s.strip_prefix("0x").unwrap_or(s);
        let all_hex = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit());
        match (s.starts_with('T'), all_hex, digits.len()) {
            (true, _, _) => Self::from_base58(s),
            (false, true, 42) => Self::from_hex41(digits),
            (false, true, 40) => {
                let bytes = hex::decode(digits).map_err(|e| AddressError::Hex(e.to_string()))?;
                Ok(Self(Address::from_slice(&bytes)))
            }
            _ => Err(AddressError::Unrecognised(s.chars().take(64).collect())),
        }
    }
}

impl FromStr for TronAddress {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for TronAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base58())
    }
}

impl fmt::Debug for TronAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TronAddress({})", self.to_base58())
    }
}

impl From<Address> for TronAddress {
    fn from(a: Address) -> Self {
        Self(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// https://developers.tron.network/docs/account (the hex and base58 forms of one account).
    const DOC_BASE58: &str = "TNPeeaaFB7K9cmo4uQpcU32zGK8G1NYqeL";
    const DOC_HEX41: &str = "418840E6C55B9ADA326D211D818C34A994AECED808";
    /// USDT's TRC-20 contract on mainnet, both spellings checked with tronpy's
    /// `keys.to_hex_address` (an independent implementation).
    const USDT_BASE58: &str = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t";
    const USDT_HEX41: &str = "41a614f803b6fd780986a42c78ec9c7f77e6ded13c";

    #[test]
    fn documented_vectors_round_trip() {
        for (b58, hex41) in [(DOC_BASE58, DOC_HEX41), (USDT_BASE58, USDT_HEX41)] {
            let a = TronAddress::parse(b58).unwrap();
            assert_eq!(a.to_hex41(), hex41.to_ascii_lowercase());
            assert_eq!(a.to_base58(), b58);
            let b = TronAddress::parse(hex41).unwrap();
            assert_eq!(a, b);
            let evm = format!("{}", a.evm());
            assert_eq!(
                evm.to_ascii_lowercase(),
                format!("0x{}", &hex41[2..]).to_ascii_lowercase()
            );
            assert_eq!(TronAddress::parse(&evm).unwrap(), a);
        }
    }

    #[test]
    fn every_changed_character_is_refused() {
        const ALPHABET: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        let chars: Vec<char> = DOC_BASE58.chars().collect();
        for i in 1..chars.len() {
            for c in ALPHABET.chars().filter(|&c| c != chars[i]) {
                let mut changed = chars.clone();
                changed[i] = c;
                let s: String = changed.into_iter().collect();
                assert!(
                    TronAddress::parse(&s).is_err(),
                    "{s} (character {i} changed) was accepted"
                );
            }
        }
        let mut one = DOC_BASE58.to_string();
        one.replace_range(5..6, "b");
        assert!(matches!(
            TronAddress::parse(&one),
            Err(AddressError::Checksum { .. })
        ));
    }

    #[test]
    fn wrong_prefix_and_lengths_are_refused() {
        // An Ethereum-style version byte (0x00) with a valid checksum.
        let mut body = vec![0u8; 21];
        body[1] = 7;
        let mut full = body.clone();
        full.extend_from_slice(&checksum(&body));
        let s = bs58::encode(full).into_string();
        assert_eq!(TronAddress::from_base58(&s), Err(AddressError::Prefix(0)));
        assert!(TronAddress::parse("42a614f803b6fd780986a42c78ec9c7f77e6ded13c").is_err());
        assert!(TronAddress::parse("41a614f803b6fd").is_err());
        assert!(TronAddress::parse("").is_err());
        assert!(TronAddress::parse("T").is_err());
        assert!(TronAddress::parse("0xzz14f803b6fd780986a42c78ec9c7f77e6ded13c").is_err());
    }
}
