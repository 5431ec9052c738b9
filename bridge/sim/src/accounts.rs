//! The funded accounts: keys from a BIP-39 mnemonic on TRON's derivation path
//! (coin type 195), so wallets and tronweb/tronpy derive the same keys.

use alloy_primitives::B256;
use alloy_signer_local::{MnemonicBuilder, PrivateKeySigner, coins_bip39::English};
use bttd_bridge::TronAddress;

use crate::SimError;

/// TRON's BIP-44 path; `{i}` is the account index.
pub const TRON_TEST_PATH: &str = "m/44'/195'/0'/0/";

#[derive(Debug, Clone)]
pub struct DevAccount {
    pub address: TronAddress,
    pub private_key: B256,
    pub signer: PrivateKeySigner,
}

pub fn dev_accounts(mnemonic: &str, count: u32) -> Result<Vec<DevAccount>, SimError> {
    (0..count)
        .map(|index| {
            let signer = MnemonicBuilder::<English>::default()
                .phrase(mnemonic)
                .derivation_path(format!("{TRON_TEST_PATH}{index}"))
                .and_then(|b| b.build())
                .map_err(|e| SimError::Account {
                    index,
                    reason: e.to_string(),
                })?;
            Ok(DevAccount {
                address: TronAddress::from_evm(signer.address()),
                private_key: B256::from(signer.to_bytes()),
                signer,
            })
        })
        .collect()
}
