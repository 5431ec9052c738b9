//! Transaction gossip over real swarms on loopback: what a node pools reaches its peers even
//! while it is busy admitting theirs.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use bttd_genesis::{DevnetOptions, devnet_genesis};
use bttd_network::{
    Keypair, Multiaddr, Network, NetworkConfig, NetworkEvent, NetworkEvents, NetworkHandle, Topic,
};
use bttd_runtime::Chain;
use bttd_runtime::storage::MemoryStore;
use bttd_txpool::context::NodeContext;
use bttd_txpool::gossip::TxGossip;
use bttd_txpool::gossip::batch::{MAX_BATCH_TXS, decode_batch, encode_batch};
use bttd_txpool::{Pool, PoolConfig};

const SENDERS: u32 = 100;
/// Full batches from the peer: within its burst allowance of 20,000 transactions.
const PEER_BATCHES: usize = 19;
/// Transactions submitted locally (as over RPC) while the peer's batches are admitted.
const LOCAL: usize = 12_000;

/// Signed transfers, `per_sender` from each key, nonces from 0.
fn transfers(chain_id: u64, keys: &[PrivateKeySigner], per_sender: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for nonce in 0..per_sender {
        for key in keys {
            let tx = TxEip1559 {
                chain_id,
                nonce,
                gas_limit: 21_000,
                max_fee_per_gas: 10_000_000_000,
                max_priority_fee_per_gas: 1_000_000_000,
                to: TxKind::Call(Address::repeat_byte(0x11)),
                value: U256::from(1),
                access_list: Default::default(),
                input: Bytes::new(),
            };
            let signature = key.sign_hash_sync(&tx.signature_hash()).unwrap();
            let envelope: TxEnvelope = tx.into_signed(signature).into();
            out.push(envelope.encoded_2718());
        }
    }
    out
}

async fn start(bootnodes: Vec<Multiaddr>) -> (NetworkHandle, NetworkEvents) {
    let listen: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().unwrap();
    let mut config = NetworkConfig::new(Keypair::generate_ed25519(), listen, B256::repeat_byte(7));
    config.bootnodes = bootnodes;
    Network::start(config).await.unwrap()
}

/// Regression (issue 10's overload): publishing shared one loop with admission, so while a
/// job admitted a peer's batches the pooled-hash channel (16,384) overflowed and the node
/// never gossiped transactions it had accepted (261,311 in one run). Here a peer's 19,456
/// transactions and 12,000 local ones enter the pool together; the peer must hear of every
/// local one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pooled_transaction_is_gossiped_while_peer_batches_are_admitted() {
    let (spec, accounts) = devnet_genesis(&DevnetOptions {
        accounts: SENDERS,
        ..DevnetOptions::default()
    })
    .unwrap();
    let config = spec.chain_config();
    let chain_id = config.chain_id;
    let chain = Chain::open(Arc::new(MemoryStore::new()), config, &spec.genesis).unwrap();
    let ctx = Arc::new(NodeContext::new(
        Arc::new(chain),
        Pool::new(PoolConfig::devnet()),
    ));
    let keys: Vec<PrivateKeySigner> = accounts
        .iter()
        .map(|a| PrivateKeySigner::from_bytes(&a.private_key).unwrap())
        .collect();
    // The peer's transactions come from one half of the accounts, the local ones from the other.
    let (peer_keys, local_keys) = keys.split_at(keys.len() / 2);
    let from_peer = transfers(
        chain_id,
        peer_keys,
        (PEER_BATCHES * MAX_BATCH_TXS).div_ceil(peer_keys.len()) as u64,
    );
    let local = transfers(chain_id, local_keys, (LOCAL / local_keys.len()) as u64);
    let local_hashes: HashSet<B256> = local.iter().map(keccak256).collect();

    let (net_a, events_a) = start(Vec::new()).await;
    let addr_a: Multiaddr = format!(
        "{}/p2p/{}",
        net_a.listen_addrs().await.unwrap()[0],
        net_a.local_peer_id()
    )
    .parse()
    .unwrap();
    let (net_b, mut events_b) = start(vec![addr_a]).await;
    let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
    let gossip = TxGossip::new(ctx.clone(), net_a.for_transactions(), 16 * 1024 * 1024);
    let task = tokio::spawn(gossip.run(events_a.transactions, shutdown));
    for _ in 0..200 {
        let a = net_a.mesh_peers(Topic::Transactions).await.unwrap();
        let b = net_b.mesh_peers(Topic::Transactions).await.unwrap();
        if !a.is_empty() && !b.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for batch in from_peer.chunks(MAX_BATCH_TXS).take(PEER_BATCHES) {
        let data = encode_batch(batch.iter().map(Vec::as_slice));
        net_b.publish(Topic::Transactions, data).await.unwrap();
    }
    let submitter = {
        let ctx = ctx.clone();
        tokio::task::spawn_blocking(move || {
            for raw in &local {
                ctx.submit_raw(raw).unwrap();
            }
        })
    };

    let mut heard = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while heard.len() < local_hashes.len() {
        let Ok(Some(event)) = tokio::time::timeout_at(deadline, events_b.recv()).await else {
            break;
        };
        if let NetworkEvent::Gossip {
            topic: Topic::Transactions,
            data,
            ..
        } = event
        {
            for raw in decode_batch(&data).unwrap() {
                let hash = keccak256(raw);
                if local_hashes.contains(&hash) {
                    heard.insert(hash);
                }
            }
        }
    }
    submitter.await.unwrap();
    assert_eq!(
        heard.len(),
        local_hashes.len(),
        "the peer heard of {} of the {} transactions pooled locally",
        heard.len(),
        local_hashes.len()
    );
    shutdown_tx.send(true).unwrap();
    task.await.unwrap();
}
