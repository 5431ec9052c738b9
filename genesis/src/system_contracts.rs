//! The system contracts every bttd chain has from block 0, whatever builds its genesis
//! (`bttd devnet`, `bttd testnet init`, a hand-written spec): one function, [`install`], puts
//! them into a genesis alloc so no builder can forget one or place it differently.
//!
//! - the EIP-2935 block-hash history contract (runtime code from the EIP; the block pipeline
//!   calls it as Prague requires);
//! - `BandwidthChannels` at [`BANDWIDTH_CHANNELS_ADDRESS`]: its creation code runs in revm
//!   with the settle-window bounds of [`ChannelParams`] as constructor arguments (they become
//!   immutables), so the runtime code and storage are exactly what a deployment would leave;
//! - `StakeManager` at [`STAKE_MANAGER_ADDRESS`] (docs/staking.md): its constructor runs with
//!   the staking parameters and the genesis validators, with a value equal to their stakes, so
//!   epoch 0's set is the contract's own selection and 0x1000 holds the stakes from block 0.

use std::collections::BTreeMap;

use alloy_eips::eip2935::{HISTORY_STORAGE_ADDRESS, HISTORY_STORAGE_CODE};
use alloy_genesis::GenesisAccount;
use alloy_primitives::{Address, Bytes, U256};

pub use bttd_contracts::{BANDWIDTH_CHANNELS_ADDRESS, STAKE_MANAGER_ADDRESS};

use alloy_sol_types::SolConstructor;
use bttd_contracts::StakeManager;

use crate::spec::ChannelParams;
use crate::{BttdParams, GenesisError, WEI_PER_BTT};

/// Places every system contract into `alloc`. Refuses (and changes nothing) if `alloc`
/// already holds an account at one of their addresses or the parameters are invalid.
pub fn install(
    alloc: &mut BTreeMap<Address, GenesisAccount>,
    params: &BttdParams,
) -> Result<(), GenesisError> {
    let channels = bandwidth_channels(&params.channels)?;
    let stake_manager = stake_manager(params)?;
    let history = GenesisAccount {
        nonce: Some(1),
        code: Some(HISTORY_STORAGE_CODE.clone()),
        ..Default::default()
    };
    let accounts = [
        (HISTORY_STORAGE_ADDRESS, history),
        (BANDWIDTH_CHANNELS_ADDRESS, channels),
        (STAKE_MANAGER_ADDRESS, stake_manager),
    ];
    if let Some((address, _)) = accounts.iter().find(|(a, _)| alloc.contains_key(a)) {
        return Err(GenesisError::Invalid(format!(
            "the genesis alloc already has an account at system contract address {address}"
        )));
    }
    alloc.extend(accounts);
    Ok(())
}

/// `BandwidthChannels` as genesis holds it: its constructor run with `params`' bounds.
pub fn bandwidth_channels(params: &ChannelParams) -> Result<GenesisAccount, GenesisError> {
    check_channel_params(params)?;
    let artifact = bttd_contracts::bandwidth_channels();
    let mut creation = artifact.bytecode.to_vec();
    creation.extend_from_slice(&abi_word(params.min_settle_window));
    creation.extend_from_slice(&abi_word(params.max_settle_window));
    let deployed = crate::run_creation_code(&artifact.name, Bytes::from(creation))?;
    Ok(deployed.into_genesis_account(U256::ZERO))
}

/// `StakeManager` as genesis holds it: its constructor run with `params.staking`, the epoch
/// length and the genesis validators, and a balance equal to their stakes.
pub fn stake_manager(params: &BttdParams) -> Result<GenesisAccount, GenesisError> {
    check_staking_params(params)?;
    let staking = &params.staking;
    let validators = &params.validators;
    let total = validators
        .iter()
        .try_fold(U256::ZERO, |sum, v| sum.checked_add(v.stake))
        .ok_or_else(|| GenesisError::Invalid("the genesis stakes overflow 256 bits".into()))?;
    let constructor = StakeManager::constructorCall {
        params: StakeManager::Params {
            minSelfStake: staking.min_self_stake,
            minDelegation: staking.min_delegation,
            maxValidators: U256::from(staking.max_validators),
            unbondingEpochs: U256::from(staking.unbonding_epochs),
            issuancePerBlock: staking.issuance_per_block,
            proposerBonusBps: U256::from(staking.proposer_bonus_bps),
            epochLength: U256::from(params.epoch_length.max(1)),
            slashDoubleSignBps: U256::from(staking.slash_double_sign_bps),
            slashDowntimeBps: U256::from(staking.slash_downtime_bps),
            downtimeWindow: U256::from(staking.downtime_window),
            downtimeMinSignedBps: U256::from(staking.downtime_min_signed_bps),
            jailEpochs: U256::from(staking.jail_epochs),
        },
        owners: validators.iter().map(|v| v.owner()).collect(),
        signers: validators.iter().map(|v| v.address).collect(),
        blsKeys: validators
            .iter()
            .map(|v| Bytes::copy_from_slice(v.bls_public_key.as_slice()))
            .collect(),
        stakes: validators.iter().map(|v| v.stake).collect(),
    };
    let artifact = bttd_contracts::stake_manager();
    let mut creation = artifact.bytecode.to_vec();
    creation.extend_from_slice(&constructor.abi_encode());
    let deployed = crate::system_contract::run_creation_code_with_value(
        &artifact.name,
        Bytes::from(creation),
        total,
    )?;
    Ok(deployed.into_genesis_account(total))
}

/// The staking constructor's conditions, checked first so a bad spec gets a readable error.
pub(crate) fn check_staking_params(params: &BttdParams) -> Result<(), GenesisError> {
    let staking = &params.staking;
    let invalid = |m: String| Err(GenesisError::Invalid(format!("staking: {m}")));
    if staking.min_self_stake < U256::from(WEI_PER_BTT) {
        return invalid(format!(
            "minSelfStake {} wei is below 1 BTT",
            staking.min_self_stake
        ));
    }
    if staking.max_validators == 0 {
        return invalid("maxValidators must be at least 1".into());
    }
    for (key, bps) in [
        ("slashDoubleSignBps", staking.slash_double_sign_bps),
        ("slashDowntimeBps", staking.slash_downtime_bps),
        ("downtimeMinSignedBps", staking.downtime_min_signed_bps),
    ] {
        if bps > 10_000 {
            return invalid(format!("{key} {bps} is above 10000"));
        }
    }
    if staking.downtime_window == 0 {
        return invalid("downtimeWindow must be at least 1 block".into());
    }
    if staking.proposer_bonus_bps > 10_000 {
        return invalid(format!(
            "proposerBonusBps {} is above 10000",
            staking.proposer_bonus_bps
        ));
    }
    if let Some(v) = params
        .validators
        .iter()
        .find(|v| v.stake < staking.min_self_stake)
    {
        return invalid(format!(
            "validator {} stakes {} wei, below minSelfStake {}",
            v.address, v.stake, staking.min_self_stake
        ));
    }
    Ok(())
}

/// The constructor's own conditions, checked first so a bad spec gets a readable error
/// rather than revert data.
fn check_channel_params(params: &ChannelParams) -> Result<(), GenesisError> {
    let (min, max) = (params.min_settle_window, params.max_settle_window);
    if min == 0 || min > max || max > u64::from(u32::MAX) {
        return Err(GenesisError::Invalid(format!(
            "channels: need 1 <= minSettleWindow ({min}) <= maxSettleWindow ({max}) <= {} seconds",
            u32::MAX
        )));
    }
    Ok(())
}

/// A `uint64` constructor argument, ABI-encoded (one 32-byte word).
fn abi_word(value: u64) -> [u8; 32] {
    U256::from(value).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{B256, Bytes, TxKind, address, keccak256};
    use revm::context::TxEnv;
    use revm::context_interface::result::{ExecutionResult, Output};
    use revm::database::{CacheDB, EmptyDB};
    use revm::state::{AccountInfo, Bytecode};
    use revm::{Context, ExecuteCommitEvm, MainBuilder, MainContext};

    const CHAIN_ID: u64 = 4242;

    fn params(min: u64, max: u64) -> BttdParams {
        BttdParams {
            channels: ChannelParams {
                min_settle_window: min,
                max_settle_window: max,
            },
            ..Default::default()
        }
    }

    /// A chain state holding `alloc`, and a function that runs one transaction on it.
    struct Chain {
        db: CacheDB<EmptyDB>,
        nonces: BTreeMap<Address, u64>,
    }

    impl Chain {
        fn new(alloc: &BTreeMap<Address, GenesisAccount>) -> Self {
            let mut db = CacheDB::new(EmptyDB::default());
            for (address, account) in alloc {
                let mut info = AccountInfo::from_balance(account.balance);
                info.nonce = account.nonce.unwrap_or_default();
                if let Some(code) = &account.code {
                    info = info.with_code(Bytecode::new_raw(code.clone()));
                }
                db.insert_account_info(*address, info);
                for (slot, value) in account.storage.iter().flatten() {
                    db.insert_account_storage(*address, (*slot).into(), (*value).into())
                        .unwrap();
                }
            }
            Self {
                db,
                nonces: BTreeMap::new(),
            }
        }

        fn fund(&mut self, who: Address, wei: U256) {
            self.db
                .insert_account_info(who, AccountInfo::from_balance(wei));
        }

        fn balance(&self, who: Address) -> U256 {
            self.db
                .cache
                .accounts
                .get(&who)
                .map(|a| a.info.balance)
                .unwrap_or_default()
        }

        /// Calls the channels contract; Ok(output) on success, Err(revert data) otherwise.
        fn call(&mut self, from: Address, value: U256, data: Vec<u8>) -> Result<Bytes, String> {
            let nonce = self.nonces.entry(from).or_default();
            let tx = TxEnv {
                caller: from,
                kind: TxKind::Call(BANDWIDTH_CHANNELS_ADDRESS),
                value,
                data: data.into(),
                gas_limit: 1_000_000,
                nonce: *nonce,
                chain_id: Some(CHAIN_ID),
                ..Default::default()
            };
            *nonce += 1;
            let mut evm = Context::mainnet()
                .with_db(&mut self.db)
                .modify_cfg_chained(|cfg| {
                    cfg.set_spec_and_mainnet_gas_params(bttd_runtime::executor::SPEC);
                    cfg.chain_id = CHAIN_ID;
                    cfg.disable_base_fee = true;
                })
                .modify_block_chained(|block| block.timestamp = U256::from(1_000))
                .build_mainnet();
            match evm.transact_commit(tx).expect("transaction is valid") {
                ExecutionResult::Success {
                    output: Output::Call(out),
                    ..
                } => Ok(out),
                ExecutionResult::Revert { output, .. } => {
                    Err(alloy_primitives::hex::encode(output))
                }
                other => Err(format!("{other:?}")),
            }
        }
    }

    fn selector(signature: &str) -> Vec<u8> {
        keccak256(signature)[..4].to_vec()
    }

    fn word(out: &[u8], index: usize) -> U256 {
        U256::from_be_slice(&out[index * 32..(index + 1) * 32])
    }

    #[test]
    fn every_system_contract_is_installed_once() {
        let mut alloc = BTreeMap::new();
        install(&mut alloc, &BttdParams::default()).unwrap();
        assert_eq!(alloc.len(), 3);
        assert!(alloc[&STAKE_MANAGER_ADDRESS].code.is_some());
        assert_eq!(
            alloc[&HISTORY_STORAGE_ADDRESS].code.as_ref(),
            Some(&HISTORY_STORAGE_CODE)
        );
        let channels = &alloc[&BANDWIDTH_CHANNELS_ADDRESS];
        assert_eq!(
            BANDWIDTH_CHANNELS_ADDRESS,
            address!("0x0000000000000000000000000000000000001002")
        );
        assert!(channels.code.as_ref().is_some_and(|c| !c.is_empty()));
        // The constructor's only storage write: the channel nonce starts at 1 (slot 1).
        let storage = channels.storage.as_ref().unwrap();
        assert_eq!(storage.len(), 1);
        assert_eq!(
            storage[&B256::from(U256::from(1))],
            B256::from(U256::from(1))
        );
        // A second install refuses and leaves the alloc as it was.
        let before = alloc.clone();
        assert!(install(&mut alloc, &BttdParams::default()).is_err());
        assert_eq!(alloc, before);
    }

    #[test]
    fn invalid_settle_window_bounds_are_refused_with_a_clear_error() {
        for (min, max) in [(0, 10), (11, 10), (1, u64::from(u32::MAX) + 1)] {
            let mut alloc = BTreeMap::new();
            let err = install(&mut alloc, &params(min, max)).unwrap_err();
            assert!(err.to_string().contains("minSettleWindow"), "{err}");
            assert!(alloc.is_empty());
        }
    }

    /// The contract works at its genesis address: the immutables hold the spec's bounds, the
    /// EIP-712 domain names 0x…1002 and this chain (not where the constructor ran), and a
    /// channel opens with the next id and refuses a window outside the bounds.
    #[test]
    fn genesis_contract_runs_at_its_address_with_the_spec_bounds() {
        let mut alloc = BTreeMap::new();
        install(&mut alloc, &params(7, 1_000)).unwrap();
        let mut chain = Chain::new(&alloc);
        let payer = address!("0x00000000000000000000000000000000000000a1");
        let payee = address!("0x00000000000000000000000000000000000000b2");
        chain.fund(payer, U256::from(10u64.pow(18)));

        let min = chain
            .call(payer, U256::ZERO, selector("minSettleWindow()"))
            .unwrap();
        let max = chain
            .call(payer, U256::ZERO, selector("maxSettleWindow()"))
            .unwrap();
        assert_eq!(
            (word(&min, 0), word(&max, 0)),
            (U256::from(7), U256::from(1_000))
        );

        let domain = chain
            .call(payer, U256::ZERO, selector("DOMAIN_SEPARATOR()"))
            .unwrap();
        let mut encoded = Vec::new();
        encoded.extend_from_slice(keccak256(
            "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)",
        ).as_slice());
        encoded.extend_from_slice(keccak256("BandwidthChannels").as_slice());
        encoded.extend_from_slice(keccak256("1").as_slice());
        encoded.extend_from_slice(&abi_word(CHAIN_ID));
        encoded.extend_from_slice(
            B256::left_padding_from(BANDWIDTH_CHANNELS_ADDRESS.as_slice()).as_slice(),
        );
        assert_eq!(B256::from_slice(&domain), keccak256(&encoded));

        let open = |window: u64| {
            let mut data = selector("open(address,uint64)");
            data.extend_from_slice(B256::left_padding_from(payee.as_slice()).as_slice());
            data.extend_from_slice(&abi_word(window));
            data
        };
        assert!(chain.call(payer, U256::from(5), open(6)).is_err());
        assert!(chain.call(payer, U256::from(5), open(1_001)).is_err());
        let deposit = U256::from(123_456_789u64);
        let id = chain.call(payer, deposit, open(7)).unwrap();
        // id = payer << 96 | nonce, and the first nonce is 1.
        let mut expected = [0u8; 32];
        expected[..20].copy_from_slice(payer.as_slice());
        expected[31] = 1;
        assert_eq!(&id[..], &expected);
        assert_eq!(chain.balance(BANDWIDTH_CHANNELS_ADDRESS), deposit);

        let mut data = selector("channels(bytes32)");
        data.extend_from_slice(&id);
        let state = chain.call(payer, U256::ZERO, data).unwrap();
        assert_eq!(Address::from_word(B256::from(word(&state, 0))), payer);
        assert_eq!(Address::from_word(B256::from(word(&state, 1))), payee);
        assert_eq!(word(&state, 2), deposit);
        assert_eq!(word(&state, 3), U256::ZERO);
        assert_eq!(word(&state, 4), U256::from(7));
        assert_eq!(word(&state, 5), U256::ZERO);
    }
}
