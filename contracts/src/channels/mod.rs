//! Bandwidth payment channels, client side: the contract's ABI, EIP-712 vouchers and the
//! payee's verifier.
//!
//! A payer opens a channel to a payee in `BandwidthChannels` (predeployed at
//! `0x…1002`) and then pays off-chain by signing ever larger *cumulative* amounts
//! (`Voucher(bytes32 channelId,uint256 cumulativeAmount)`); the payee settles the newest
//! voucher whenever it likes and must settle it before a requested close takes effect.
//! Everything here mirrors the contract's checks so that a voucher the payee accepts is a
//! voucher the contract pays:
//!
//! - [`abi`]: `sol!` bindings of the contract interface as issue 5 spells it;
//! - [`eip712`]: the signing domain and the `Voucher` / `Close` typed-data hashes, with the
//!   JSON that `eth_signTypedData_v4` and viem sign;
//! - [`signature`]: the strict 65-byte signature check (low s, `v` in {27, 28}, non-zero signer)
//!   done *before* recovery, because alloy's recovery silently accepts high-s signatures;
//! - [`voucher`]: building, signing and verifying vouchers and close signatures;
//! - [`payee`]: [`PayeeBook`], the payee's per-channel best voucher, cheap enough to take a
//!   voucher per piece.

pub mod abi;
pub mod eip712;
pub mod payee;
pub mod signature;
pub mod voucher;

pub use abi::IBandwidthChannels;
pub use eip712::{ChannelsDomain, DOMAIN_NAME, DOMAIN_VERSION};
pub use payee::{Accepted, ChannelInfo, ChannelStatus, PayeeBook, Refusal};
pub use signature::{SignatureError, StrictSignature};
pub use voucher::{CloseSignature, SignedVoucher, VoucherError};

#[cfg(test)]
mod vectors;
