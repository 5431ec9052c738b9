//! An in-memory chain for contract tests: a revm `CacheDB` with the StakeManager relocated to
//! its system address, user transactions, protocol system calls, and the protocol's credits
//! (base fees and issuance) to 0x1000.

use alloy_primitives::{Address, Bytes, Log, TxKind, U256};
use alloy_sol_types::{SolCall, SolConstructor};
use bttd_contracts::{STAKE_MANAGER_ADDRESS, StakeManager, stake_manager};
use revm::context::TxEnv;
use revm::context_interface::result::{ExecutionResult, Output};
use revm::database::{CacheDB, EmptyDB};
use revm::primitives::hardfork::SpecId;
use revm::state::AccountInfo;
use revm::{Context, ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainContext, SystemCallCommitEvm};

pub const BTT: u128 = 1_000_000_000_000_000_000;
pub const CHAIN_ID: u64 = 1029;

pub fn btt(n: u128) -> U256 {
    U256::from(n.checked_mul(BTT).expect("test amount fits"))
}

/// What one call did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub success: bool,
    pub output: Bytes,
    pub gas_used: u64,
    pub logs: Vec<Log>,
}

impl Outcome {
    /// The revert reason (empty when it succeeded or reverted without one).
    pub fn reason(&self) -> String {
        if self.success {
            return String::new();
        }
        alloy_sol_types::decode_revert_reason(&self.output).unwrap_or_default()
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(self.success, "call failed: {}", self.reason());
        self
    }

    #[track_caller]
    pub fn reverts_with(&self, reason: &str) {
        assert!(!self.success, "call succeeded, expected revert `{reason}`");
        assert!(
            self.reason().contains(reason),
            "revert `{}`, expected `{reason}`",
            self.reason()
        );
    }
}

/// Genesis of a test chain.
#[derive(Debug, Clone)]
pub struct Genesis {
    pub params: StakeManager::Params,
    /// (owner, signer, compressed BLS key, stake)
    pub validators: Vec<(Address, Address, Bytes, U256)>,
}

pub fn default_params() -> StakeManager::Params {
    StakeManager::Params {
        minSelfStake: btt(10),
        minDelegation: btt(1),
        maxValidators: U256::from(4),
        unbondingEpochs: U256::from(2),
        issuancePerBlock: btt(1),
        proposerBonusBps: U256::from(1000),
        epochLength: U256::from(10),
        slashDoubleSignBps: U256::from(500),
        slashDowntimeBps: U256::from(1),
        downtimeWindow: U256::from(20),
        downtimeMinSignedBps: U256::from(5_000),
        jailEpochs: U256::from(1),
    }
}

pub struct Chain {
    pub db: CacheDB<EmptyDB>,
    /// Number of the block being executed.
    pub number: u64,
    pub chain_id: u64,
    /// Wei created since genesis (issuance credits); genesis funding is `genesis_supply`.
    pub issued: U256,
    pub genesis_supply: U256,
    /// Every account that ever held value (for the supply invariant).
    pub accounts: Vec<Address>,
}

const DEPLOYER: Address = Address::repeat_byte(0xde);

impl Chain {
    /// A chain whose StakeManager was created by `genesis` (run as genesis will run it: the
    /// creation code with its constructor arguments and the stakes as value).
    pub fn new(genesis: &Genesis) -> Self {
        let mut chain = Self {
            db: CacheDB::new(EmptyDB::default()),
            number: 0,
            chain_id: CHAIN_ID,
            issued: U256::ZERO,
            genesis_supply: U256::ZERO,
            accounts: vec![STAKE_MANAGER_ADDRESS],
        };
        let total = genesis
            .validators
            .iter()
            .try_fold(U256::ZERO, |acc, v| acc.checked_add(v.3))
            .expect("stakes fit");
        chain.fund(DEPLOYER, total);
        let ctor = StakeManager::constructorCall {
            params: genesis.params.clone(),
            owners: genesis.validators.iter().map(|v| v.0).collect(),
            signers: genesis.validators.iter().map(|v| v.1).collect(),
            blsKeys: genesis.validators.iter().map(|v| v.2.clone()).collect(),
            stakes: genesis.validators.iter().map(|v| v.3).collect(),
        };
        let mut code = stake_manager().bytecode.to_vec();
        code.extend_from_slice(&ctor.abi_encode());
        let (result, created) = chain.run(DEPLOYER, TxKind::Create, total, code.into());
        assert!(result.success, "genesis failed: {}", result.reason());
        let created = created.expect("created");
        // Place it at 0x1000, as genesis does.
        let account = chain
            .db
            .cache
            .accounts
            .remove(&created)
            .expect("created account");
        chain
            .db
            .insert_account_info(STAKE_MANAGER_ADDRESS, account.info.clone());
        for (slot, value) in account.storage {
            chain
                .db
                .insert_account_storage(STAKE_MANAGER_ADDRESS, slot, value)
                .expect("in-memory");
        }
        chain.number = 1;
        chain
    }

    /// Creates `amount` out of thin air for a test account (counted as genesis supply).
    pub fn fund(&mut self, who: Address, amount: U256) {
        let mut info = self.account(who);
        info.balance = info.balance.checked_add(amount).expect("fits");
        self.db.insert_account_info(who, info);
        self.genesis_supply = self.genesis_supply.checked_add(amount).expect("fits");
        self.remember(who);
    }

    /// The protocol's credit to 0x1000 (base fees moved there, or issuance when `issuance`).
    pub fn credit_stake_manager(&mut self, amount: U256, issuance: bool) {
        let mut info = self.account(STAKE_MANAGER_ADDRESS);
        info.balance = info.balance.checked_add(amount).expect("fits");
        self.db.insert_account_info(STAKE_MANAGER_ADDRESS, info);
        if issuance {
            self.issued = self.issued.checked_add(amount).expect("fits");
        } else {
            // Base fees are paid by senders in a real block; here they are new wei.
            self.genesis_supply = self.genesis_supply.checked_add(amount).expect("fits");
        }
    }

    pub fn account(&self, who: Address) -> AccountInfo {
        self.db
            .cache
            .accounts
            .get(&who)
            .map(|a| a.info.clone())
            .unwrap_or_default()
    }

    pub fn balance(&self, who: Address) -> U256 {
        self.account(who).balance
    }

    pub fn remember(&mut self, who: Address) {
        if !self.accounts.contains(&who) {
            self.accounts.push(who);
        }
    }

    /// Sum of the balances of every account the test touched.
    pub fn total_balances(&self) -> U256 {
        self.accounts
            .iter()
            .map(|a| self.balance(*a))
            .chain(std::iter::once(self.balance(DEPLOYER)))
            .try_fold(U256::ZERO, |acc, b| acc.checked_add(b))
            .expect("fits")
    }

    fn run(
        &mut self,
        from: Address,
        kind: TxKind,
        value: U256,
        data: Bytes,
    ) -> (Outcome, Option<Address>) {
        let number = self.number;
        let chain_id = self.chain_id;
        let mut evm = Context::mainnet()
            .with_db(&mut self.db)
            .modify_cfg_chained(|cfg| {
                cfg.set_spec_and_mainnet_gas_params(SpecId::PRAGUE);
                cfg.chain_id = chain_id;
                cfg.disable_nonce_check = true;
                cfg.disable_base_fee = true;
                // Genesis with 100 validators runs one large constructor.
                cfg.disable_block_gas_limit = true;
                cfg.tx_gas_limit_cap = Some(u64::MAX);
                cfg.limit_contract_initcode_size = Some(usize::MAX);
            })
            .modify_block_chained(|b| {
                b.number = U256::from(number);
                b.basefee = 0;
            })
            .build_mainnet();
        let gas_limit = if kind.is_create() {
            500_000_000
        } else {
            30_000_000
        };
        let tx = TxEnv {
            caller: from,
            kind,
            value,
            data,
            gas_limit,
            gas_price: 0,
            chain_id: Some(chain_id),
            ..Default::default()
        };
        let result = evm.transact_commit(tx).expect("valid transaction");
        outcome(result)
    }

    /// A transaction from `from`.
    pub fn send<C: SolCall>(&mut self, from: Address, value: U256, call: &C) -> Outcome {
        self.remember(from);
        self.run(
            from,
            TxKind::Call(STAKE_MANAGER_ADDRESS),
            value,
            call.abi_encode().into(),
        )
        .0
    }

    /// A transaction to any contract.
    pub fn send_to<C: SolCall>(
        &mut self,
        from: Address,
        to: Address,
        value: U256,
        call: &C,
    ) -> Outcome {
        self.remember(from);
        self.remember(to);
        self.run(from, TxKind::Call(to), value, call.abi_encode().into())
            .0
    }

    /// Deploys test-only creation code from `from`.
    pub fn deploy(&mut self, from: Address, code: Vec<u8>) -> Address {
        let (outcome, created) = self.run(from, TxKind::Create, U256::ZERO, code.into());
        assert!(outcome.success, "deploy failed: {}", outcome.reason());
        let created = created.expect("created");
        self.remember(created);
        created
    }

    /// A protocol system call from 0xff..fe, as the block executor makes it.
    pub fn system<C: SolCall>(&mut self, call: &C) -> Outcome {
        let number = self.number;
        let chain_id = self.chain_id;
        let mut evm = Context::mainnet()
            .with_db(&mut self.db)
            .modify_cfg_chained(|cfg| {
                cfg.set_spec_and_mainnet_gas_params(SpecId::PRAGUE);
                cfg.chain_id = chain_id;
            })
            .modify_block_chained(|b| {
                b.number = U256::from(number);
                b.basefee = 0;
            })
            .build_mainnet();
        let result = evm
            .system_call_commit(STAKE_MANAGER_ADDRESS, call.abi_encode().into())
            .expect("system call runs");
        outcome(result).0
    }

    /// A read-only call.
    pub fn view<C: SolCall>(&mut self, call: &C) -> C::Return {
        let number = self.number;
        let chain_id = self.chain_id;
        let mut evm = Context::mainnet()
            .with_db(&mut self.db)
            .modify_cfg_chained(|cfg| {
                cfg.set_spec_and_mainnet_gas_params(SpecId::PRAGUE);
                cfg.chain_id = chain_id;
                cfg.disable_nonce_check = true;
                cfg.disable_base_fee = true;
            })
            .modify_block_chained(|b| {
                b.number = U256::from(number);
                b.basefee = 0;
            })
            .build_mainnet();
        let tx = TxEnv {
            caller: Address::repeat_byte(0x99),
            kind: TxKind::Call(STAKE_MANAGER_ADDRESS),
            data: call.abi_encode().into(),
            gas_limit: 30_000_000,
            gas_price: 0,
            chain_id: Some(chain_id),
            ..Default::default()
        };
        let result = evm.transact(tx).expect("view runs").result;
        let (out, _) = outcome(result);
        assert!(out.success, "view failed: {}", out.reason());
        C::abi_decode_returns(&out.output).expect("view output decodes")
    }

    /// The next block: number + 1.
    pub fn next_block(&mut self) {
        self.number += 1;
    }
}

fn outcome(result: ExecutionResult) -> (Outcome, Option<Address>) {
    let gas_used = result.tx_gas_used();
    match result {
        ExecutionResult::Success { output, logs, .. } => {
            let created = match &output {
                Output::Create(_, address) => *address,
                Output::Call(_) => None,
            };
            (
                Outcome {
                    success: true,
                    output: output.into_data(),
                    gas_used,
                    logs,
                },
                created,
            )
        }
        ExecutionResult::Revert { output, .. } => (
            Outcome {
                success: false,
                output,
                gas_used,
                logs: vec![],
            },
            None,
        ),
        ExecutionResult::Halt { reason, .. } => (
            Outcome {
                success: false,
                output: Bytes::from(format!("halt: {reason:?}").into_bytes()),
                gas_used,
                logs: vec![],
            },
            None,
        ),
    }
}

/// A seeded xorshift64* generator: reproducible histories without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
