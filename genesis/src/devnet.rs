//! The devnet genesis: the well-known test mnemonic's accounts funded (as anvil and hardhat
//! do, so existing scripts and wallets work), every fork through Prague active at block 0,
//! the system contracts every chain has (EIP-2935 history, BandwidthChannels with a 1-second
//! minimum settle window so channel tests need not wait), and the predeploys dapp tooling
//! expects at fixed addresses: Multicall3 (viem's `multicall`, wagmi) and the CREATE2
//! deterministic deployer (forge scripts, hardhat-deploy).

use alloy_genesis::{Genesis, GenesisAccount};
use alloy_primitives::{Address, B256, Bytes, U256, address, hex};
use alloy_signer_local::{MnemonicBuilder, coins_bip39::English};

use crate::{BttdParams, ChainSpec, ChannelParams, GenesisError, StakingParams, WEI_PER_BTT};

/// Arachnid's deterministic-deployment-proxy: calldata is `salt ‖ initcode`; it CREATE2s the
/// initcode with that salt and returns the new address. Forge deploys through it by default.
pub const CREATE2_DEPLOYER_ADDRESS: Address = address!("4e59b44847b379578588920ca78fbf26c0b4956c");
/// Its runtime code, byte for byte as on mainnet.
pub const CREATE2_DEPLOYER_CODE: [u8; 69] = hex!(
    "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe03601600081602082378035828234f58015156039578182fd5b8082525050506014600cf3"
);

pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";
pub const DEVNET_CHAIN_ID: u64 = 1337;
/// The devnet's shortest payment-channel settle window (seconds): short, so tests and demos of
/// request-close / withdraw need not wait an hour.
pub const DEVNET_MIN_SETTLE_WINDOW: u64 = 1;

#[derive(Debug, Clone)]
pub struct DevnetOptions {
    pub chain_id: u64,
    pub accounts: u32,
    /// Balance of each dev account, in whole BTT.
    pub balance_btt: u64,
    pub gas_limit: u64,
    pub params: BttdParams,
    pub timestamp: u64,
}

impl Default for DevnetOptions {
    fn default() -> Self {
        Self {
            chain_id: DEVNET_CHAIN_ID,
            accounts: 10,
            balance_btt: 1_000_000,
            gas_limit: 30_000_000,
            params: BttdParams {
                channels: ChannelParams {
                    min_settle_window: DEVNET_MIN_SETTLE_WINDOW,
                    ..Default::default()
                },
                staking: StakingParams::devnet(),
                ..Default::default()
            },
            timestamp: 0,
        }
    }
}

/// A dev account: m/44'/60'/0'/0/i of [`DEV_MNEMONIC`].
#[derive(Debug, Clone)]
pub struct DevAccount {
    pub address: Address,
    pub private_key: B256,
}

pub fn dev_accounts(count: u32) -> Result<Vec<DevAccount>, GenesisError> {
    (0..count)
        .map(|index| {
            let signer = MnemonicBuilder::<English>::default()
                .phrase(DEV_MNEMONIC)
                .index(index)
                .and_then(|b| b.build())
                .map_err(|e| GenesisError::DevAccount {
                    index,
                    reason: e.to_string(),
                })?;
            Ok(DevAccount {
                address: signer.address(),
                private_key: signer.to_bytes(),
            })
        })
        .collect()
}

/// The devnet chain spec and its funded accounts.
pub fn devnet_genesis(
    options: &DevnetOptions,
) -> Result<(ChainSpec, Vec<DevAccount>), GenesisError> {
    let accounts = dev_accounts(options.accounts)?;
    let balance = U256::from(options.balance_btt) * U256::from(WEI_PER_BTT);
    let mut genesis = Genesis::default();
    let config = &mut genesis.config;
    config.chain_id = options.chain_id;
    for block in [
        &mut config.homestead_block,
        &mut config.eip150_block,
        &mut config.eip155_block,
        &mut config.eip158_block,
        &mut config.byzantium_block,
        &mut config.constantinople_block,
        &mut config.petersburg_block,
        &mut config.istanbul_block,
        &mut config.berlin_block,
        &mut config.london_block,
    ] {
        *block = Some(0);
    }
    config.shanghai_time = Some(0);
    config.cancun_time = Some(0);
    config.prague_time = Some(0);
    config.terminal_total_difficulty = Some(U256::ZERO);
    config.terminal_total_difficulty_passed = true;
    genesis.gas_limit = options.gas_limit;
    genesis.timestamp = options.timestamp;
    genesis.base_fee_per_gas = Some(options.params.min_base_fee as u128);
    for account in &accounts {
        genesis.alloc.insert(
            account.address,
            GenesisAccount {
                balance,
                ..Default::default()
            },
        );
    }
    let mut params = options.params.clone();
    params.complete_validators()?;
    crate::system_contracts::install(&mut genesis.alloc, &params)?;
    let multicall3 =
        crate::run_creation_code("Multicall3", bttd_contracts::multicall3().bytecode.clone())?;
    genesis.alloc.insert(
        bttd_contracts::MULTICALL3_ADDRESS,
        multicall3.into_genesis_account(U256::ZERO),
    );
    genesis.alloc.insert(
        CREATE2_DEPLOYER_ADDRESS,
        GenesisAccount {
            nonce: Some(1),
            code: Some(Bytes::from_static(&CREATE2_DEPLOYER_CODE)),
            ..Default::default()
        },
    );
    Ok((ChainSpec::new(genesis, params)?, accounts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::address;

    #[test]
    fn dev_accounts_match_anvil() {
        let accounts = dev_accounts(2).unwrap();
        assert_eq!(
            accounts[0].address,
            address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
        );
        assert_eq!(
            accounts[1].address,
            address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
        );
    }

    #[test]
    fn devnet_genesis_round_trips_through_json() {
        let (spec, _) = devnet_genesis(&DevnetOptions::default()).unwrap();
        let parsed = ChainSpec::from_json(&spec.to_json()).unwrap();
        assert_eq!(parsed.params, spec.params);
        // 10 dev accounts, EIP-2935, BandwidthChannels, StakeManager, Multicall3, the CREATE2
        // deployer.
        assert_eq!(parsed.genesis.alloc.len(), 15);
        assert_eq!(parsed.genesis_hash().unwrap(), spec.genesis_hash().unwrap());
    }

    #[test]
    fn predeploys_are_in_place() {
        let (spec, _) = devnet_genesis(&DevnetOptions::default()).unwrap();
        let alloc = &spec.genesis.alloc;
        let multicall3 = &alloc[&bttd_contracts::MULTICALL3_ADDRESS];
        assert_eq!(
            multicall3.code.as_ref(),
            Some(&bttd_contracts::multicall3().deployed)
        );
        assert!(alloc.contains_key(&alloy_eips::eip2935::HISTORY_STORAGE_ADDRESS));
        let channels = &alloc[&crate::system_contracts::BANDWIDTH_CHANNELS_ADDRESS];
        assert!(channels.code.as_ref().is_some_and(|c| !c.is_empty()));
        assert_eq!(spec.params.channels.min_settle_window, 1);
        let deployer = &alloc[&CREATE2_DEPLOYER_ADDRESS];
        assert_eq!(
            deployer.code.as_ref().map(|c| &c[..]),
            Some(&CREATE2_DEPLOYER_CODE[..])
        );
    }

    #[test]
    fn genesis_without_bttd_section_is_refused() {
        let (spec, _) = devnet_genesis(&DevnetOptions::default()).unwrap();
        let mut genesis = spec.genesis.clone();
        genesis.config.extra_fields = Default::default();
        let json = serde_json::to_string(&genesis).unwrap();
        assert!(matches!(
            ChainSpec::from_json(&json),
            Err(GenesisError::MissingParams)
        ));
    }
}
