//! The block pipeline on a large state: execute (revm) + state root (incremental trie) +
//! commit (one RocksDB batch) for blocks of plain transfers, next to bare revm executing the
//! same transactions over an in-memory database in the same run; sender recovery measured
//! on its own.
//!
//! `BTTD_BENCH_ACCOUNTS` (default 1,000,000) funded accounts; blocks of `BTTD_BENCH_TXS`
//! (default 1,000) transfers. Run: `cargo bench -p bttd-runtime --bench pipeline`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_genesis::{Genesis, GenesisAccount};
use alloy_primitives::{Address, TxKind, U256, keccak256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use bttd_runtime::executor::tx_env;
use bttd_runtime::storage::RocksStore;
use bttd_runtime::{Chain, ChainConfig, RecoveredTx};
use revm::database::{CacheDB, EmptyDB};
use revm::state::AccountInfo;
use revm::{Context, ExecuteCommitEvm, MainBuilder, MainContext};

const CHAIN_ID: u64 = 1337;
const GWEI: u128 = 1_000_000_000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn account(i: usize) -> Address {
    Address::from_slice(&keccak256((i as u64).to_be_bytes())[12..])
}

fn main() {
    let accounts = env("BTTD_BENCH_ACCOUNTS", 1_000_000);
    let per_block = env("BTTD_BENCH_TXS", 1_000);
    let blocks = env("BTTD_BENCH_BLOCKS", 5);
    let senders: Vec<PrivateKeySigner> = (0..per_block)
        .map(|i| PrivateKeySigner::from_bytes(&keccak256(format!("sender {i}"))).unwrap())
        .collect();

    let mut genesis = Genesis {
        gas_limit: 1_000_000_000,
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
    let config = ChainConfig {
        chain_id: CHAIN_ID,
        min_base_fee: GWEI as u64,
        fee_pool: Address::with_last_byte(0xfe),
        block_gas_limit: 1_000_000_000,
    };
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let chain = Chain::open(
        Arc::new(RocksStore::open(dir.path()).unwrap()),
        config,
        &genesis,
    )
    .unwrap();
    println!(
        "genesis: {} accounts in {:.1?}",
        genesis.alloc.len(),
        started.elapsed()
    );

    // Each block: every sender pays a random existing account.
    let raw_blocks: Vec<Vec<Vec<u8>>> = (0..blocks)
        .map(|b| {
            senders
                .iter()
                .enumerate()
                .map(|(i, key)| {
                    let tx = TxEip1559 {
                        chain_id: CHAIN_ID,
                        nonce: b as u64,
                        gas_limit: 21_000,
                        max_fee_per_gas: 100 * GWEI,
                        max_priority_fee_per_gas: GWEI,
                        to: TxKind::Call(account((b * per_block + i) * 7919 % accounts)),
                        value: U256::from(1),
                        ..Default::default()
                    };
                    let sig = key.sign_hash_sync(&tx.signature_hash()).unwrap();
                    TxEnvelope::from(tx.into_signed(sig)).encoded_2718()
                })
                .collect()
        })
        .collect();

    let mut recover = Duration::ZERO;
    let mut pipeline = Duration::ZERO;
    let mut bare = Duration::ZERO;
    let mut gas = 0u64;
    for (b, raws) in raw_blocks.iter().enumerate() {
        let t = Instant::now();
        let txs: Vec<RecoveredTx> = raws
            .iter()
            .map(|r| RecoveredTx::decode(r, CHAIN_ID, 1_000_000_000).unwrap())
            .collect();
        recover += t.elapsed();

        // Bare revm: the same transactions over an in-memory database holding what they touch.
        let mut db = CacheDB::new(EmptyDB::default());
        for tx in &txs {
            db.insert_account_info(
                tx.sender(),
                AccountInfo {
                    balance: U256::from(10u128.pow(24)),
                    nonce: b as u64,
                    ..AccountInfo::default()
                },
            );
        }
        let mut evm = Context::mainnet()
            .with_db(&mut db)
            .modify_cfg_chained(|cfg| cfg.chain_id = CHAIN_ID)
            .modify_block_chained(|block| {
                block.basefee = GWEI as u64;
                block.gas_limit = 1_000_000_000;
            })
            .build_mainnet();
        let t = Instant::now();
        for tx in &txs {
            evm.transact_commit(tx_env(tx)).unwrap();
        }
        bare += t.elapsed();
        drop(evm);

        let t = Instant::now();
        let executed = chain
            .build(b as u64 + 1, Address::with_last_byte(0xaa), txs)
            .unwrap();
        assert!(
            executed.rejected.is_empty(),
            "{:?}",
            executed.rejected.first()
        );
        let block = chain.commit(executed).unwrap();
        pipeline += t.elapsed();
        gas += block.header.gas_used;
        assert_eq!(block.body.transactions.len(), per_block);
    }
    let n = (blocks * per_block) as f64;
    let rate = |d: Duration| n / d.as_secs_f64();
    println!("{blocks} blocks x {per_block} transfers over {accounts} accounts");
    println!("sender recovery:            {:>10.0} tx/s", rate(recover));
    println!("bare revm (in memory):      {:>10.0} tx/s", rate(bare));
    println!(
        "pipeline (exec+root+commit): {:>9.0} tx/s, {:.1} Mgas/s, {:.2}x bare revm's time",
        rate(pipeline),
        gas as f64 / pipeline.as_secs_f64() / 1e6,
        pipeline.as_secs_f64() / bare.as_secs_f64()
    );
}
