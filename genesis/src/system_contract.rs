//! System contracts enter genesis by running their creation code in revm, so constructors and
//! immutables work exactly as in a deployment; the resulting runtime code and storage are
//! then placed at the contract's fixed address.

use alloy_genesis::GenesisAccount;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use revm::context::TxEnv;
use revm::context_interface::result::{ExecutionResult, Output};
use revm::database::{CacheDB, EmptyDB};
use revm::handler::SYSTEM_ADDRESS;
use revm::{Context, ExecuteCommitEvm, MainBuilder, MainContext};

use crate::GenesisError;

/// The code and storage a constructor left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedContract {
    pub code: Bytes,
    pub storage: std::collections::BTreeMap<B256, B256>,
}

impl DeployedContract {
    /// The genesis alloc entry for this contract (nonce 1, as for any created contract).
    pub fn into_genesis_account(self, balance: U256) -> GenesisAccount {
        GenesisAccount {
            nonce: Some(1),
            balance,
            code: Some(self.code),
            storage: (!self.storage.is_empty()).then_some(self.storage),
            private_key: None,
        }
    }
}

/// Runs `creation_code` (constructor arguments appended) from the system address and returns
/// what it deployed. `name` only labels errors.
pub fn run_creation_code(
    name: &str,
    creation_code: Bytes,
) -> Result<DeployedContract, GenesisError> {
    run_creation_code_with_value(name, creation_code, U256::ZERO)
}

/// [`run_creation_code`] for a payable constructor that must receive `value` (the caller is
/// funded for it; the caller's balance is not part of genesis).
pub fn run_creation_code_with_value(
    name: &str,
    creation_code: Bytes,
    value: U256,
) -> Result<DeployedContract, GenesisError> {
    let fail = |reason: String| GenesisError::Creation {
        name: name.to_string(),
        reason,
    };
    let mut db = CacheDB::new(EmptyDB::default());
    db.insert_account_info(
        SYSTEM_ADDRESS,
        revm::state::AccountInfo::from_balance(value),
    );
    let mut evm = Context::mainnet()
        .with_db(&mut db)
        .modify_cfg_chained(|cfg| {
            cfg.set_spec_and_mainnet_gas_params(bttd_runtime::executor::SPEC);
            cfg.disable_balance_check = true;
            cfg.disable_base_fee = true;
            cfg.disable_block_gas_limit = true;
            // Genesis places the code it creates: EIP-3860's init-code bound is for
            // transactions, and StakeManager's constructor carries every genesis validator's key.
            cfg.limit_contract_initcode_size = Some(usize::MAX);
        })
        .build_mainnet();
    let tx = TxEnv {
        caller: SYSTEM_ADDRESS,
        kind: TxKind::Create,
        data: creation_code,
        value,
        gas_limit: 100_000_000,
        ..Default::default()
    };
    let result = evm.transact_commit(tx).map_err(|e| fail(e.to_string()))?;
    let address: Address = match result {
        ExecutionResult::Success {
            output: Output::Create(_, Some(address)),
            ..
        } => address,
        other => return Err(fail(format!("constructor did not deploy: {other:?}"))),
    };
    drop(evm);
    let account = db
        .cache
        .accounts
        .get(&address)
        .ok_or_else(|| fail("created account missing".into()))?;
    let code = account
        .info
        .code
        .as_ref()
        .map(|c| c.original_bytes())
        .unwrap_or_default();
    let storage = account
        .storage
        .iter()
        .filter(|(_, v)| !v.is_zero())
        .map(|(k, v)| (B256::from(*k), B256::from(*v)))
        .collect();
    Ok(DeployedContract { code, storage })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::hex;

    #[test]
    fn constructor_storage_and_runtime_code_are_kept() {
        // Constructor: SSTORE(0, 42); copy 3 bytes of runtime code (60 00 54 = PUSH1 0 SLOAD)
        // to memory and return them.
        let runtime = hex!("600054");
        let mut creation = hex!("602a600055" "60036011600039" "60036000f3").to_vec();
        assert_eq!(creation.len(), 17);
        creation.extend_from_slice(&runtime);
        let deployed = run_creation_code("test", Bytes::from(creation)).unwrap();
        assert_eq!(deployed.code.as_ref(), &runtime);
        assert_eq!(
            deployed.storage.get(&B256::ZERO),
            Some(&B256::from(U256::from(42)))
        );
    }

    #[test]
    fn reverting_constructor_is_an_error() {
        let err = run_creation_code("bad", Bytes::from(hex!("60006000fd").to_vec())).unwrap_err();
        assert!(err.to_string().contains("bad"), "{err}");
    }
}
