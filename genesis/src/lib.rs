//! The chain spec: a geth-style genesis.json whose bttd-specific parameters live under
//! `config.bttd` (alloy-genesis keeps unknown `config` keys), plus the devnet genesis builder
//! and the machinery that builds system contracts by running their creation code in revm.

mod devnet;
mod spec;
mod system_contract;
pub mod system_contracts;
mod validators;

pub use devnet::{
    CREATE2_DEPLOYER_ADDRESS, CREATE2_DEPLOYER_CODE, DEV_MNEMONIC, DEVNET_CHAIN_ID,
    DEVNET_MIN_SETTLE_WINDOW, DevAccount, DevnetOptions, dev_accounts, devnet_genesis,
};
pub use spec::{
    BttdParams, ChainSpec, ChannelParams, GenesisError, GenesisValidator, StakingParams,
    WEI_PER_BTT,
};
pub use system_contract::{DeployedContract, run_creation_code};
pub use validators::{GENESIS_EPOCH, GENESIS_FIRST_HEIGHT};
