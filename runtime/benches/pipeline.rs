//! The block pipeline on a large state: execute (revm) + state root (incremental trie) +
//! commit (one synced RocksDB batch) for blocks of plain transfers and blocks of ERC-20
//! transfers, next to bare revm executing the same transactions over an in-memory database in
//! the same run; sender recovery measured on its own.
//!
//! Why both kinds: a plain transfer touches two accounts of the account trie; an ERC-20
//! transfer touches one account (the sender's nonce and balance) plus two slots of one large
//! storage trie (the token's), so the two stress different parts of the state root.
//!
//! Env: `BTTD_BENCH_ACCOUNTS` (default 1,000,000) funded accounts, `BTTD_BENCH_TXS` (default
//! 1,000) transactions per block from as many senders, `BTTD_BENCH_BLOCKS` (default 5) blocks
//! of each kind, `BTTD_BENCH_TOKEN_HOLDERS` (default: every account) accounts holding the
//! TestToken in genesis besides the senders, `BTTD_BENCH_NO_SYNC=1` to skip the fsync. Run: `cargo bench -p bttd-runtime --bench pipeline`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_genesis::{Genesis, GenesisAccount};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolConstructor};
use bttd_contracts::{TestToken, test_token};
use bttd_runtime::executor::tx_env;
use bttd_runtime::storage::RocksStore;
use bttd_runtime::{Chain, ChainConfig, RecoveredTx};
use revm::bytecode::Bytecode;
use revm::database::{CacheDB, EmptyDB};
use revm::state::AccountInfo;
use revm::{Context, ExecuteCommitEvm, MainBuilder, MainContext};

const CHAIN_ID: u64 = 1337;
const GWEI: u128 = 1_000_000_000;
const BLOCK_GAS_LIMIT: u64 = 1_000_000_000;
/// Where the bench puts the TestToken in genesis.
const TOKEN: Address = Address::new([0x70; 20]);
/// Storage slot of `balanceOf` in TestToken (after name, symbol, totalSupply).
const BALANCES_SLOT: u64 = 3;
const TOTAL_SUPPLY_SLOT: u64 = 2;
const TOKENS_EACH: u64 = 1_000_000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn account(i: usize) -> Address {
    Address::from_slice(&keccak256((i as u64).to_be_bytes())[12..])
}

/// Storage slot of `balanceOf[holder]`: keccak(pad32(holder) ++ pad32(3)).
fn balance_slot(holder: Address) -> B256 {
    let mut preimage = [0u8; 64];
    preimage[12..32].copy_from_slice(holder.as_slice());
    preimage[32..].copy_from_slice(&U256::from(BALANCES_SLOT).to_be_bytes::<32>());
    keccak256(preimage)
}

/// The TestToken as a genesis account: its constructor run in revm (name and symbol in
/// storage, nothing minted), then `balanceOf` of every holder and `totalSupply` written.
fn token_account(holders: impl Iterator<Item = Address>) -> GenesisAccount {
    let constructor = TestToken::constructorCall {
        name_: "Bench Token".into(),
        symbol_: "BENCH".into(),
        initialSupply: U256::ZERO,
    };
    let mut code = test_token().bytecode.to_vec();
    code.extend_from_slice(&constructor.abi_encode());
    let mut deployed = bttd_genesis::run_creation_code("TestToken", Bytes::from(code)).unwrap();
    let each = B256::from(U256::from(TOKENS_EACH));
    let mut count = 0u64;
    for holder in holders {
        deployed.storage.insert(balance_slot(holder), each);
        count += 1;
    }
    deployed.storage.insert(
        B256::from(U256::from(TOTAL_SUPPLY_SLOT)),
        B256::from(U256::from(count * TOKENS_EACH)),
    );
    deployed.into_genesis_account(U256::ZERO)
}

fn sign(key: &PrivateKeySigner, nonce: u64, to: Address, value: U256, input: Bytes) -> Vec<u8> {
    let tx = TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: if input.is_empty() { 21_000 } else { 100_000 },
        max_fee_per_gas: 100 * GWEI,
        max_priority_fee_per_gas: GWEI,
        to: TxKind::Call(to),
        value,
        input,
        ..Default::default()
    };
    let sig = key.sign_hash_sync(&tx.signature_hash()).unwrap();
    TxEnvelope::from(tx.into_signed(sig)).encoded_2718()
}

/// Totals of one kind of block.
#[derive(Default)]
struct Figures {
    txs: usize,
    recover: Duration,
    bare: Duration,
    bare_gas: u64,
    build: Duration,
    commit: Duration,
    /// CPU time of the whole process (every thread) during build + commit.
    cpu: Duration,
    gas: u64,
}

/// CPU time the process used so far, all threads, exited ones included (`/proc/self/stat`
/// utime + stime, in the kernel's 100 Hz clock ticks). Why: the machine is shared, so wall
/// time depends on who else is compiling; CPU time per block does much less.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    // Fields 14 and 15 of proc(5); `rest` starts at field 3.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

impl Figures {
    fn report(&self, kind: &str, blocks: usize, per_block: usize, accounts: usize) {
        let n = self.txs as f64;
        let rate = |d: Duration| n / d.as_secs_f64();
        let pipeline = self.build + self.commit;
        println!("{blocks} blocks x {per_block} {kind} over {accounts} accounts");
        println!(
            "  sender recovery:             {:>9.0} tx/s",
            rate(self.recover)
        );
        println!(
            "  bare revm (in memory):       {:>9.0} tx/s, {:.0} Mgas/s",
            rate(self.bare),
            self.bare_gas as f64 / self.bare.as_secs_f64() / 1e6
        );
        println!(
            "  pipeline (exec+root+commit): {:>9.0} tx/s, {:.1} Mgas/s, {:.1}x bare revm's time \
             (build {:.1} ms + commit {:.1} ms per block; CPU {:.1} ms per block, all threads)",
            rate(pipeline),
            self.gas as f64 / pipeline.as_secs_f64() / 1e6,
            pipeline.as_secs_f64() / self.bare.as_secs_f64(),
            self.build.as_secs_f64() * 1e3 / blocks as f64,
            self.commit.as_secs_f64() * 1e3 / blocks as f64,
            self.cpu.as_secs_f64() * 1e3 / blocks as f64,
        );
    }
}

/// Runs `blocks` (raw transactions) through recovery, bare revm over a copy of `bare_db`, and
/// the chain, from block `first` on.
fn run(chain: &Chain, bare_db: &CacheDB<EmptyDB>, blocks: &[Vec<Vec<u8>>], first: u64) -> Figures {
    let mut figures = Figures::default();
    for (b, raws) in blocks.iter().enumerate() {
        let number = first + b as u64;
        let t = Instant::now();
        let txs: Vec<RecoveredTx> = raws
            .iter()
            .map(|r| RecoveredTx::decode(r, CHAIN_ID, BLOCK_GAS_LIMIT).unwrap())
            .collect();
        figures.recover += t.elapsed();

        // Bare revm: the same transactions over an in-memory database holding the senders
        // (at this block's nonce) and the token.
        let mut db = bare_db.clone();
        for tx in &txs {
            db.cache
                .accounts
                .get_mut(&tx.sender())
                .expect("sender in the bare database")
                .info
                .nonce = tx.nonce();
        }
        let mut evm = Context::mainnet()
            .with_db(&mut db)
            .modify_cfg_chained(|cfg| cfg.chain_id = CHAIN_ID)
            .modify_block_chained(|block| {
                block.basefee = GWEI as u64;
                block.gas_limit = BLOCK_GAS_LIMIT;
            })
            .build_mainnet();
        let t = Instant::now();
        for tx in &txs {
            let result = evm.transact_commit(tx_env(tx)).unwrap();
            assert!(result.is_success(), "bare revm: {result:?}");
            figures.bare_gas += result.tx_gas_used();
        }
        figures.bare += t.elapsed();
        drop(evm);

        let cpu = process_cpu();
        let t = Instant::now();
        let executed = chain
            .build(number, Address::with_last_byte(0xaa), txs)
            .unwrap();
        figures.build += t.elapsed();
        assert!(
            executed.rejected.is_empty(),
            "{:?}",
            executed.rejected.first()
        );
        assert!(
            executed.receipts.iter().all(|r| r.status()),
            "a transaction reverted"
        );
        let t = Instant::now();
        let block = chain.commit(executed).unwrap();
        figures.commit += t.elapsed();
        figures.cpu += process_cpu() - cpu;
        assert_eq!(block.header.number, number);
        assert_eq!(block.body.transactions.len(), raws.len());
        figures.gas += block.header.gas_used;
        figures.txs += raws.len();
    }
    figures
}

fn main() {
    let accounts = env("BTTD_BENCH_ACCOUNTS", 1_000_000);
    let per_block = env("BTTD_BENCH_TXS", 1_000);
    let blocks = env("BTTD_BENCH_BLOCKS", 5);
    let holders = env("BTTD_BENCH_TOKEN_HOLDERS", accounts).min(accounts);
    let senders: Vec<PrivateKeySigner> = (0..per_block)
        .map(|i| PrivateKeySigner::from_bytes(&keccak256(format!("sender {i}"))).unwrap())
        .collect();

    let mut genesis = Genesis {
        gas_limit: BLOCK_GAS_LIMIT,
        ..Default::default()
    };
    genesis.config.chain_id = CHAIN_ID;
    let funded = GenesisAccount {
        balance: U256::from(10u128.pow(24)),
        ..Default::default()
    };
    for i in 0..accounts {
        genesis.alloc.insert(account(i), funded.clone());
    }
    for s in &senders {
        genesis.alloc.insert(s.address(), funded.clone());
    }
    let token = token_account(
        senders
            .iter()
            .map(|s| s.address())
            .chain((0..holders).map(account)),
    );
    genesis.alloc.insert(TOKEN, token.clone());
    // Plain blocks: every sender pays a pseudo-random existing account. ERC-20 blocks: every
    // sender transfers tokens to another pseudo-random existing account.
    let recipient = |b: usize, i: usize| account((b * per_block + i) * 7919 % accounts);
    let plain: Vec<Vec<Vec<u8>>> = (0..blocks)
        .map(|b| {
            let (nonce, to) = (b as u64, |i| recipient(b, i));
            senders
                .iter()
                .enumerate()
                .map(|(i, key)| sign(key, nonce, to(i), U256::from(1), Bytes::new()))
                .collect()
        })
        .collect();
    let erc20: Vec<Vec<Vec<u8>>> = (0..blocks)
        .map(|b| {
            let nonce = (blocks + b) as u64;
            senders
                .iter()
                .enumerate()
                .map(|(i, key)| {
                    let call = TestToken::transferCall {
                        to: recipient(blocks + b, i),
                        value: U256::from(1),
                    };
                    sign(key, nonce, TOKEN, U256::ZERO, call.abi_encode().into())
                })
                .collect()
        })
        .collect();

    let config = ChainConfig {
        chain_id: CHAIN_ID,
        min_base_fee: GWEI as u64,
        fee_pool: Address::with_last_byte(0xfe),
        block_gas_limit: BLOCK_GAS_LIMIT,
        staking: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    // BTTD_BENCH_NO_SYNC=1: the same without the fsync of each block's batch, to show what
    // the disk flush costs.
    let mut store = RocksStore::open(dir.path()).unwrap();
    if env("BTTD_BENCH_NO_SYNC", 0) == 1 {
        store = store.without_sync();
    }
    let store = Arc::new(store);
    let chain = Chain::open(store.clone(), config, &genesis).unwrap();
    let written = started.elapsed();
    store.settle().unwrap();
    println!(
        "genesis: {} accounts, token with {} holders, written in {written:.1?}, flushed and \
         compacted in {:.1?}",
        genesis.alloc.len(),
        holders + senders.len(),
        started.elapsed() - written
    );

    let mut bare_db = CacheDB::new(EmptyDB::default());
    for s in &senders {
        bare_db.insert_account_info(
            s.address(),
            AccountInfo {
                balance: funded.balance,
                ..AccountInfo::default()
            },
        );
    }
    let token_code = token.code.clone().unwrap_or_default();
    bare_db.insert_account_info(
        TOKEN,
        AccountInfo {
            nonce: 1,
            code_hash: keccak256(&token_code),
            code: Some(Bytecode::new_raw(token_code)),
            ..AccountInfo::default()
        },
    );
    // What the senders' transfers read of the token's storage: their own balances.
    for s in &senders {
        bare_db
            .insert_account_storage(
                TOKEN,
                balance_slot(s.address()).into(),
                U256::from(TOKENS_EACH),
            )
            .unwrap();
    }

    let plain_figures = run(&chain, &bare_db, &plain, 1);
    plain_figures.report("transfers", blocks, per_block, accounts);
    let erc20_figures = run(&chain, &bare_db, &erc20, 1 + blocks as u64);
    erc20_figures.report("ERC-20 transfers", blocks, per_block, accounts);
}
