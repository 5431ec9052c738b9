//! The simulator with the bridge's own client: `JavaTron` submits calls, reads receipts and
//! follows solidified logs across a reorg injected through `/admin/reorg`; the chain refuses
//! reorgs into solidified blocks; and the HTTP API sustains a stream of signed transfers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_sol_types::SolValue;
use bttd_bridge::proto::{
    Any, Contract, ContractType, CreateSmartContract, SmartContract, Transaction, TransactionRaw,
    TransferContract,
};
use bttd_bridge::tx::{contract_address, sign, txid};
use bttd_bridge::{ContractCall, JavaTron, RootChain, SolidLogFollower};
use prost::Message;
use serde_json::{Value, json};

use crate::chain::{Chain, ChainConfig, Drop, ReorgError};
use crate::{DevAccount, SimConfig, now_ms, start};

const MNEMONIC: &str = "test test test test test test test test test test test junk";

fn config(block_time: Duration, solidify_depth: u64) -> SimConfig {
    SimConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        block_time,
        solidify_depth,
        accounts: 4,
        balance_trx: 1_000_000,
        mnemonic: MNEMONIC.into(),
        energy_price: crate::DEFAULT_ENERGY_PRICE,
        datadir: None,
    }
}

/// A signed transaction carrying `kind`/`value`, referencing the chain's head block.
fn signed(
    chain: &Chain,
    from: &DevAccount,
    kind: ContractType,
    value: Vec<u8>,
    fee_limit: i64,
) -> (Transaction, B256) {
    let head = chain.head();
    let raw = TransactionRaw {
        ref_block_bytes: head.id[6..8].to_vec(),
        ref_block_hash: head.id[8..16].to_vec(),
        expiration: head.timestamp_ms + 60_000,
        timestamp: now_ms(),
        fee_limit,
        contract: vec![Contract {
            r#type: kind as i32,
            parameter: Some(Any {
                type_url: kind.type_url(),
                value,
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let id = txid(&raw);
    let sig = sign(&from.signer, &id).unwrap();
    (
        Transaction {
            raw_data: Some(raw),
            signature: vec![sig.to_vec()],
            ret: vec![],
        },
        id,
    )
}

fn token_bytecode() -> Vec<u8> {
    let artifact: Value = serde_json::from_str(include_str!(
        "../../../contracts/artifacts/TronTestToken.json"
    ))
    .unwrap();
    let mut code = hex::decode(
        artifact["bytecode"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
    )
    .unwrap();
    code.extend(("Bridge", "BRG", U256::from(1_000_000u64)).abi_encode_params());
    code
}

fn transfer_data(to: Address, value: u64) -> Bytes {
    let mut data = keccak256("transfer(address,uint256)")[..4].to_vec();
    data.extend((to, U256::from(value)).abi_encode_params());
    data.into()
}

async fn until<T>(what: &str, timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_tron_follows_solidified_logs_across_a_reorg() {
    let running = start(config(Duration::from_millis(100), 20)).await.unwrap();
    let url = format!("http://{}", running.addr);
    let client = JavaTron::new(&url, &url, format!("{url}/jsonrpc"))
        .unwrap()
        .with_log_page(7);
    let owner = &running.accounts[0];
    let payee = running.accounts[1].address.evm();

    // The token, deployed in process; its constructor emits the first Transfer.
    let create = CreateSmartContract {
        owner_address: owner.address.to_bytes21().to_vec(),
        new_contract: Some(SmartContract {
            origin_address: owner.address.to_bytes21().to_vec(),
            bytecode: token_bytecode(),
            consume_user_resource_percent: 100,
            name: "TronTestToken".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (tx, deploy_id) = {
        let chain = running.chain.lock();
        signed(
            &chain,
            owner,
            ContractType::CreateSmartContract,
            create.encode_to_vec(),
            1_000_000_000,
        )
    };
    running.chain.lock().submit(tx).unwrap();
    let token = contract_address(&deploy_id, &owner.address);
    let deployed = client
        .wait_solidified(deploy_id, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(deployed.succeeded(), "{deployed:?}");
    let topic = keccak256("Transfer(address,address,uint256)");
    let mut follower = SolidLogFollower::new(token, Some(topic), 0);

    let call = |value| ContractCall {
        contract: token,
        data: transfer_data(payee, value),
        call_value: 0,
        fee_limit: 100_000_000,
    };
    let a = client.submit(&owner.signer, &call(1)).await.unwrap();
    let b = client.submit(&owner.signer, &call(2)).await.unwrap();
    let b_block = until("B in a block", Duration::from_secs(10), async || {
        client
            .receipt(b, false)
            .await
            .unwrap()
            .map(|r| r.block_number)
    })
    .await;

    // Before the reorg, B's event is on the chain: a reader of unsolidified blocks would see it.
    let head = client.head().await.unwrap();
    let unsafe_view = client
        .logs(token, Some(topic), 0, head.number)
        .await
        .unwrap();
    assert!(
        unsafe_view.iter().any(|l| l.txid == b),
        "B's event should be visible at the head"
    );
    assert!(
        client.finalized().await.unwrap().number < b_block,
        "B solidified too early; slow machine?"
    );

    let depth = head.number - b_block + 1;
    let answer: Value = reqwest::Client::new()
        .post(format!("{url}/admin/reorg"))
        .json(&json!({"depth": depth, "drop": [hex::encode(b)]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["result"], json!(true), "{answer}");
    assert_eq!(
        client.receipt(b, false).await.unwrap(),
        None,
        "B survived the reorg"
    );

    let c = client.submit(&owner.signer, &call(3)).await.unwrap();
    let mut seen = Vec::new();
    until(
        "C solidified and followed",
        Duration::from_secs(30),
        async || {
            seen.extend(follower.poll(&client).await.unwrap());
            seen.iter().any(|l| l.txid == c).then_some(())
        },
    )
    .await;
    let txids: Vec<B256> = seen.iter().map(|l| l.txid).collect();
    assert_eq!(
        txids,
        vec![deploy_id, a, c],
        "each event once, in order, and never B's"
    );
    let values: Vec<U256> = seen.iter().map(|l| U256::from_be_slice(&l.data)).collect();
    assert_eq!(
        values,
        vec![U256::from(1_000_000u64), U256::from(1), U256::from(3)]
    );
    assert!(
        client
            .wait_solidified(a, Duration::from_secs(5))
            .await
            .unwrap()
            .succeeded()
    );

    // The payee's balance, read with a constant call, counts A and C only.
    let mut balance_of = keccak256("balanceOf(address)")[..4].to_vec();
    balance_of.extend(payee.abi_encode());
    let out = client
        .call(owner.address, token, balance_of.into())
        .await
        .unwrap();
    assert_eq!(U256::from_be_slice(&out), U256::from(4));
}

#[test]
fn reorgs_stop_at_the_solidified_block() {
    let mut chain = Chain::new(ChainConfig {
        solidify_depth: 3,
        energy_price: 100,
        funded: vec![],
        genesis_time_ms: 1_000,
    });
    for i in 1..=10 {
        chain.seal(1_000 + i * 100);
    }
    let old_head = chain.head().id;
    assert_eq!(chain.solid_number(), 7);
    assert!(matches!(
        chain.reorg(4, Drop::All),
        Err(ReorgError::Depth {
            depth: 4,
            unsolidified: 3
        })
    ));
    assert!(matches!(
        chain.reorg(0, Drop::All),
        Err(ReorgError::Depth { .. })
    ));
    assert!(matches!(
        chain.reorg(2, Drop::Listed(vec![B256::repeat_byte(9)])),
        Err(ReorgError::NotInReplaced(_))
    ));
    let new_head = chain.reorg(3, Drop::All).unwrap();
    assert_eq!(new_head.number, 10);
    assert_ne!(new_head.id, old_head, "a replaced block keeps its id");
    assert_eq!(chain.solid_number(), 7);
}

/// Signed transfers over HTTP from four senders at once: every one is accepted and included.
/// Prints the rate (the figure in docs/tron.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustains_signed_transfers_over_http() {
    const PER_SENDER: usize = 500;
    let running = start(config(Duration::from_millis(200), 2)).await.unwrap();
    let url = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, from) in running.accounts.iter().enumerate() {
        let to = running.accounts[(i + 1) % running.accounts.len()].address;
        let (from, http, url, chain) = (
            from.clone(),
            http.clone(),
            url.clone(),
            running.chain.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..PER_SENDER {
                let value = TransferContract {
                    owner_address: from.address.to_bytes21().to_vec(),
                    to_address: to.to_bytes21().to_vec(),
                    amount: 1 + n as i64,
                }
                .encode_to_vec();
                let (tx, id) = signed(
                    &chain.lock(),
                    &from,
                    ContractType::TransferContract,
                    value,
                    0,
                );
                let body = bttd_bridge::json::transaction_to_json(&tx, false).unwrap();
                let answer: Value = http
                    .post(format!("{url}/wallet/broadcasttransaction"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(answer["result"], json!(true), "{answer}");
                ids.push(id);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    let sent = started.elapsed();
    // The senders run concurrently, so no one transfer is the last broadcast: wait for all.
    until(
        "every transfer in a block (else a transfer was lost)",
        Duration::from_secs(30),
        async || {
            let chain = running.chain.lock();
            ids.iter().all(|id| chain.tx(id).is_some()).then_some(())
        },
    )
    .await;
    let rate = ids.len() as f64 / sent.as_secs_f64();
    println!(
        "tron-sim accepted {} signed transfers over HTTP in {sent:?}: {rate:.0} transfers/s",
        ids.len()
    );
}

/// A chain kept in a datadir comes back with the same blocks, transactions and balances, a
/// reorg included; a restart with other settings is refused.
#[test]
fn datadir_replays_to_the_same_chain() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = crate::dev_accounts(MNEMONIC, 2).unwrap();
    let config = |depth| ChainConfig {
        solidify_depth: depth,
        energy_price: 100,
        funded: accounts
            .iter()
            .map(|a| (a.address.evm(), 5_000_000))
            .collect(),
        genesis_time_ms: now_ms(),
    };
    let (head, kept, dropped) = {
        let mut chain = Chain::open(config(5), dir.path()).unwrap();
        let mut ids = Vec::new();
        for amount in [1_000, 2_000] {
            let value = TransferContract {
                owner_address: accounts[0].address.to_bytes21().to_vec(),
                to_address: accounts[1].address.to_bytes21().to_vec(),
                amount,
            }
            .encode_to_vec();
            let (tx, id) = signed(
                &chain,
                &accounts[0],
                ContractType::TransferContract,
                value,
                0,
            );
            chain.submit(tx).unwrap();
            chain.seal(now_ms());
            ids.push(id);
        }
        chain.reorg(1, Drop::Listed(vec![ids[1]])).unwrap();
        chain.seal(now_ms());
        (chain.head().id, ids[0], ids[1])
    };
    let chain = Chain::open(config(5), dir.path()).unwrap();
    assert_eq!(chain.head().id, head);
    assert!(chain.tx(&kept).is_some() && chain.tx(&dropped).is_none());
    let (balance, _) = chain.account(&accounts[1].address.evm()).unwrap();
    assert_eq!(balance, U256::from(5_001_000u64));
    drop(chain);
    assert!(matches!(
        Chain::open(config(6), dir.path()),
        Err(crate::journal::JournalError::Settings { .. })
    ));
}
