//! `bttd-byzantine-peer`: a hostile peer for multi-process tests (issue 9). **A test tool, not
//! for operators**: it exists so that `tests/e2e/hostile.rs` can attack a real
//! `bttd testnet init` network with the project's own network code.
//!
//! It joins a network with a fresh libp2p identity (it holds no validator key), using the
//! library's p2p service and wire types, and runs the attacks of issue 9, faults 1-6:
//!
//! 1. `forged-votes`: forged next-height votes (garbage signatures, real validator indices),
//!    1,000 per second in bursts of 100.
//! 2. `memory`: 1 MiB garbage proposals for the next height in honest proposers' names, and
//!    votes at heights h+2..h+1000.
//! 3. `swapped-payloads`: every real proposal it receives, re-published beside the same
//!    signature with another payload (the real block with one transaction removed, or an older
//!    proposal's block).
//! 4. `edited-sync`: sync answers with real certified blocks (fetched from an honest node)
//!    whose body lost a transaction (header unchanged), or garbage; it claims a head just above
//!    the real one so that nodes ask it.
//! 5. `sync-stall`: sync answers with blocks of the wrong heights, and an enormous head.
//! 6. `wire-numbers`: sync requests `{from: 0, max: 0}` and `{from: u64::MAX, max: u32::MAX}`
//!    to every peer at a high rate; votes and proposals with height 2^64-1 and round u32::MAX.
//! 7. `wrapping-txs` (issue 11, fault 1): transactions on the transaction topic whose cost
//!    `gas * maxFee + value` wraps past 2^256 to almost nothing, each from a fresh key without
//!    balance and with a high tip, 500 per second: before the fix they were admitted, evicted
//!    honest transactions and stayed in every pool.
//!
//! Honest nodes ban the peer ids that attack them, so the tool runs the attacks one identity at
//! a time: each identity (a fresh key, printed as `attacker peer id: <id> attack: <name>`)
//! runs one attack (cycling through the chosen ones) for a slot, or until every node has
//! disconnected it. At the end it prints what it sent, per attack, and exits 0.
//!
//! ```text
//! bttd-byzantine-peer --home DIR --duration 60s --attacks all
//! ```
//! where DIR is a `bttd testnet init` output directory (or one node home in it).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy_primitives::{B256, Bytes};
use bttd_consensus::bls::SignatureBytes;
use bttd_consensus::{Block, Message, Proposal, SignedProposal, SignedVote, Vote, VoteType};
use bttd_engine::wire::{CertifiedBlock, Envelope, SyncRequest, SyncResponse};
use bttd_genesis::ChainSpec;
use bttd_network::{
    Keypair, MessageAcceptance, Multiaddr, Network, NetworkConfig, NetworkEvent, NetworkHandle,
    PeerId, Topic, parse_bootnode, peer_id_from_key_file,
};
use bttd_node::config::NodeConfig;
use bttd_runtime::WireBlock;
use bttd_txpool::gossip::batch::encode_batch;
use clap::Parser;
use eyre::{Result, WrapErr, bail, eyre};
use parking_lot::Mutex;
use rand::{Rng, RngCore};

#[derive(Debug, Parser)]
#[command(
    name = "bttd-byzantine-peer",
    about = "A hostile peer for tests (issue 9 attacks 1-6, issue 11 attack 7). Not for operators."
)]
struct Args {
    /// A `bttd testnet init` directory (genesis.json and node homes) or one node home:
    /// genesis and bootnodes are read from it.
    #[arg(long)]
    home: Option<PathBuf>,
    /// Genesis hash (instead of computing it from the home's genesis.json).
    #[arg(long)]
    genesis_hash: Option<B256>,
    /// Extra (or, without --home, all) peers to attack: multiaddrs ending in /p2p/<peer id>.
    #[arg(long)]
    bootnode: Vec<String>,
    /// Number of validators (without --home).
    #[arg(long)]
    validators: Option<u32>,
    /// Chain id for the transactions of attack 7 (without --home).
    #[arg(long)]
    chain_id: Option<u64>,
    /// How long to attack.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// `all` or a comma-separated list of attack numbers (1-7) or names.
    #[arg(long, default_value = "all")]
    attacks: String,
    /// Longest time one identity runs one attack before the next identity takes over.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    slot: Duration,
    /// Forged next-height votes per second (attack 1).
    #[arg(long, default_value_t = 1000)]
    votes_per_second: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attack {
    ForgedVotes,
    Memory,
    SwappedPayloads,
    EditedSync,
    SyncStall,
    WireNumbers,
    WrappingTxs,
}

impl Attack {
    const ALL: [Attack; 7] = [
        Attack::ForgedVotes,
        Attack::Memory,
        Attack::SwappedPayloads,
        Attack::EditedSync,
        Attack::SyncStall,
        Attack::WireNumbers,
        Attack::WrappingTxs,
    ];

    fn name(self) -> &'static str {
        match self {
            Attack::ForgedVotes => "1-forged-votes",
            Attack::Memory => "2-memory",
            Attack::SwappedPayloads => "3-swapped-payloads",
            Attack::EditedSync => "4-edited-sync",
            Attack::SyncStall => "5-sync-stall",
            Attack::WireNumbers => "6-wire-numbers",
            Attack::WrappingTxs => "7-wrapping-txs",
        }
    }

    fn parse_list(text: &str) -> Result<Vec<Attack>> {
        if text.trim() == "all" {
            return Ok(Self::ALL.to_vec());
        }
        text.split(',')
            .map(|item| {
                let item = item.trim();
                Self::ALL
                    .iter()
                    .enumerate()
                    .find(|(i, a)| {
                        item == (i + 1).to_string() || a.name() == item || a.name()[2..] == *item
                    })
                    .map(|(_, a)| *a)
                    .ok_or_else(|| eyre!("unknown attack {item:?} (1-7 or all)"))
            })
            .collect()
    }
}

/// What all identities share: what we learnt of the chain, and what we sent.
struct Shared {
    genesis_hash: B256,
    /// The chain id transactions are signed for (attack 7).
    chain_id: u64,
    bootnodes: Vec<Multiaddr>,
    honest: HashSet<PeerId>,
    validators: u32,
    votes_per_second: u32,
    /// The honest head as last reported by an honest node's sync status.
    head: AtomicU64,
    head_hash: Mutex<B256>,
    /// The last real proposals seen on gossip (payload checked against the signed id).
    proposals: Mutex<VecDeque<SignedProposal>>,
    counts: Mutex<BTreeMap<String, u64>>,
    nonce: AtomicU64,
}

impl Shared {
    fn count(&self, attack: Attack, what: &str, n: u64) {
        *self
            .counts
            .lock()
            .entry(format!("{} {what}", attack.name()))
            .or_default() += n;
    }

    fn envelope(&self, message: Message) -> Vec<u8> {
        Envelope {
            nonce: self.nonce.fetch_add(1, Ordering::Relaxed) ^ rand::random::<u64>(),
            message,
        }
        .encode()
    }

    /// The height the honest nodes are deciding.
    fn current(&self) -> u64 {
        self.head.load(Ordering::Relaxed).saturating_add(1)
    }
}

fn garbage(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rng().fill_bytes(&mut v);
    v
}

fn random_signature() -> SignatureBytes {
    SignatureBytes::from_slice(&garbage(96))
}

fn forged_vote(height: u64, round: u32, validator: u32) -> Message {
    let vote_type = if rand::random::<bool>() {
        VoteType::Prevote
    } else {
        VoteType::Precommit
    };
    Message::Vote(SignedVote {
        vote: Vote {
            vote_type,
            height,
            round,
            block: Some(B256::from_slice(&garbage(32))),
            validator,
        },
        signature: random_signature(),
    })
}

fn forged_proposal(height: u64, round: u32, proposer: u32, payload: Vec<u8>) -> Message {
    Message::Proposal(SignedProposal {
        proposal: Proposal {
            height,
            round,
            pol_round: None,
            block: Block {
                id: B256::from_slice(&garbage(32)),
                payload: payload.into(),
            },
            proposer,
        },
        signature: random_signature(),
    })
}

/// A transfer from a fresh key without balance whose cost `gas * maxFee + value` is
/// 2^256 + 1 wei: wrapping arithmetic sees a cost of 1 wei.
fn wrapping_transaction(chain_id: u64) -> Vec<u8> {
    use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
    use alloy_eips::eip2718::Encodable2718;
    use alloy_primitives::{TxKind, U256};
    use alloy_signer::SignerSync;
    const GAS: u64 = 21_000;
    const MAX_FEE: u128 = 1_000_000_000_000; // 1,000 gwei
    let key = alloy_signer_local::PrivateKeySigner::random();
    let gas_cost = U256::from(GAS) * U256::from(MAX_FEE);
    let tx = TxEip1559 {
        chain_id,
        nonce: 0,
        gas_limit: GAS,
        max_fee_per_gas: MAX_FEE,
        max_priority_fee_per_gas: MAX_FEE,
        to: TxKind::Call(key.address()),
        // 2^256 - gas_cost + 1.
        value: U256::ZERO
            .wrapping_sub(gas_cost)
            .wrapping_add(U256::from(1)),
        ..Default::default()
    };
    let signature = key
        .sign_hash_sync(&tx.signature_hash())
        .expect("signing with a fresh local key");
    TxEnvelope::from(tx.into_signed(signature)).encoded_2718()
}

/// The block with its last transaction removed, header unchanged (None if it has none).
fn without_one_tx(payload: &[u8]) -> Option<Bytes> {
    let mut block = alloy_rlp::decode_exact::<WireBlock>(payload).ok()?;
    block.transactions.pop()?;
    Some(alloy_rlp::encode(&block).into())
}

async fn publish(net: &NetworkHandle, shared: &Shared, attack: Attack, what: &str, msg: Message) {
    match net.publish(Topic::Consensus, shared.envelope(msg)).await {
        Ok(_) => shared.count(attack, what, 1),
        Err(_) => shared.count(attack, "publish failures", 1),
    }
}

async fn request(net: &NetworkHandle, peer: PeerId, req: &SyncRequest) -> Option<SyncResponse> {
    let bytes = net.request(peer, req.encode()).await.ok()?;
    SyncResponse::decode(&bytes).ok()
}

/// Real certified blocks from `from` (up to `max`), asked of any connected honest peer.
async fn honest_blocks(
    net: &NetworkHandle,
    peers: &[PeerId],
    from: u64,
    max: u32,
) -> Vec<CertifiedBlock> {
    for peer in peers {
        if let Some(SyncResponse::Blocks(blocks)) =
            request(net, *peer, &SyncRequest::Blocks { from, max }).await
            && !blocks.is_empty()
        {
            return blocks;
        }
    }
    Vec::new()
}

struct Identity {
    net: NetworkHandle,
    shared: Arc<Shared>,
    attack: Attack,
    connected: Arc<Mutex<HashSet<PeerId>>>,
}

impl Identity {
    fn peers(&self) -> Vec<PeerId> {
        self.connected.lock().iter().copied().collect()
    }

    fn honest_peers_except(&self, except: Option<PeerId>) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = self
            .peers()
            .into_iter()
            .filter(|p| self.shared.honest.contains(p) && Some(*p) != except)
            .collect();
        if peers.is_empty()
            && let Some(p) = except
        {
            peers.push(p);
        }
        peers
    }

    /// Answers a sync request the way the current attack wants.
    async fn serve(&self, peer: PeerId, data: Vec<u8>) -> Vec<u8> {
        let shared = &self.shared;
        let attack = self.attack;
        let head = shared.head.load(Ordering::Relaxed);
        let asked = SyncRequest::decode(&data).ok();
        let response = match (attack, asked) {
            (Attack::SyncStall, Some(SyncRequest::Status)) => {
                shared.count(attack, "enormous status answers", 1);
                let head_hash = B256::from_slice(&garbage(32));
                SyncResponse::Status {
                    head: u64::MAX / 2,
                    head_hash,
                    // A certificate that does not verify: the claimed head must move nothing.
                    certificate: Some(bttd_consensus::CommitCertificate {
                        height: u64::MAX / 2,
                        round: 0,
                        block_id: head_hash,
                        signature: bttd_consensus::bls::SignatureBytes::from_slice(&garbage(96)),
                        signers: bttd_consensus::SignerBitmap::from_indices(4, [0, 1, 2]),
                    }),
                }
            }
            (Attack::EditedSync, Some(SyncRequest::Status)) => {
                shared.count(attack, "status answers head+2", 1);
                SyncResponse::Status {
                    head: head + 2,
                    head_hash: B256::from_slice(&garbage(32)),
                    certificate: None,
                }
            }
            (Attack::SyncStall, Some(SyncRequest::Blocks { from, .. })) => {
                // Real blocks, but not the ones asked for.
                let wrong = if from > 20 { from - 16 } else { from + 1000 };
                let blocks = honest_blocks(
                    &self.net,
                    &self.honest_peers_except(Some(peer)),
                    wrong.min(head.saturating_sub(8).max(1)),
                    4,
                )
                .await;
                shared.count(attack, "wrong-height block answers", 1);
                SyncResponse::Blocks(blocks)
            }
            (Attack::EditedSync, Some(SyncRequest::Blocks { from, max })) => {
                // Wait (up to 1.5 s) until an honest node has the block, then serve it edited.
                let peers = self.honest_peers_except(Some(peer));
                let deadline = Instant::now() + Duration::from_millis(1500);
                let mut blocks = Vec::new();
                while blocks.is_empty() && Instant::now() < deadline {
                    blocks = honest_blocks(&self.net, &peers, from, max.clamp(1, 8)).await;
                    if blocks.is_empty() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                let mut edited = false;
                for b in &mut blocks {
                    if let Some(body) = without_one_tx(&b.block) {
                        b.block = body;
                        edited = true;
                        break;
                    }
                }
                if edited {
                    shared.count(attack, "edited-body block answers", 1);
                } else if let Some(first) = blocks.first_mut() {
                    first.block = garbage(512).into();
                    shared.count(attack, "garbage-body block answers", 1);
                } else {
                    shared.count(attack, "empty block answers", 1);
                }
                SyncResponse::Blocks(blocks)
            }
            (_, Some(SyncRequest::Status)) => SyncResponse::Status {
                head,
                head_hash: *shared.head_hash.lock(),
                certificate: None,
            },
            (_, Some(req @ (SyncRequest::Blocks { .. } | SyncRequest::ProposalBlock { .. }))) => {
                // Other attacks behave like an honest relay here.
                let mut answer = match req {
                    SyncRequest::Blocks { .. } => SyncResponse::Blocks(Vec::new()),
                    _ => SyncResponse::Error("no such proposal block".into()),
                };
                for p in self.honest_peers_except(Some(peer)) {
                    if let Some(r) = request(&self.net, p, &req).await {
                        answer = r;
                        break;
                    }
                }
                answer
            }
            (_, None) => SyncResponse::Error("undecodable".into()),
        };
        response.encode()
    }

    /// Keeps our view of the honest head fresh.
    async fn track_head(self: Arc<Self>) {
        loop {
            for peer in self.honest_peers_except(None) {
                if let Some(SyncResponse::Status {
                    head, head_hash, ..
                }) = request(&self.net, peer, &SyncRequest::Status).await
                {
                    // Honest nodes never claim absurd heads; keep the view monotone.
                    if self.shared.head.fetch_max(head, Ordering::Relaxed) <= head {
                        *self.shared.head_hash.lock() = head_hash;
                    }
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Gossip in: every message is `Ignore`d (never forwarded); real proposals are kept, and
    /// in attack 3 republished at once with another payload.
    async fn on_gossip(self: &Arc<Self>, topic: Topic, data: &[u8]) {
        if topic != Topic::Consensus {
            return;
        }
        let Ok(envelope) = Envelope::decode(data) else {
            return;
        };
        let Message::Proposal(p) = envelope.message else {
            return;
        };
        if WireBlock::decode_for(&p.proposal.block.payload, p.proposal.block.id).is_err() {
            return; // someone's swapped or forged proposal, not a real one
        }
        self.shared
            .head
            .fetch_max(p.proposal.height.saturating_sub(1), Ordering::Relaxed);
        let older = {
            let mut proposals = self.shared.proposals.lock();
            let older = proposals
                .iter()
                .rev()
                .find(|o| o.proposal.height != p.proposal.height)
                .cloned();
            proposals.push_back(p.clone());
            while proposals.len() > 8 {
                proposals.pop_front();
            }
            older
        };
        if self.attack == Attack::SwappedPayloads {
            let this = self.clone();
            tokio::spawn(async move { this.swap_and_publish(p, older).await });
        }
    }

    async fn swap_and_publish(&self, real: SignedProposal, older: Option<SignedProposal>) {
        let attack = Attack::SwappedPayloads;
        if let Some(body) = without_one_tx(&real.proposal.block.payload) {
            let mut swapped = real.clone();
            swapped.proposal.block.payload = body;
            publish(
                &self.net,
                &self.shared,
                attack,
                "proposals with one tx removed",
                Message::Proposal(swapped),
            )
            .await;
        }
        if let Some(older) = older {
            let mut swapped = real;
            swapped.proposal.block.payload = older.proposal.block.payload;
            publish(
                &self.net,
                &self.shared,
                attack,
                "proposals with an older payload",
                Message::Proposal(swapped),
            )
            .await;
        }
    }

    /// The active part of the attack, until `until`.
    async fn run(self: Arc<Self>, until: Instant) {
        let shared = self.shared.clone();
        let attack = self.attack;
        let n = shared.validators.max(1);
        let mut tick: u64 = 0;
        while Instant::now() < until {
            tick += 1;
            match attack {
                Attack::ForgedVotes => {
                    // Bursts of 100 every 100 ms.
                    let burst = (shared.votes_per_second / 10).max(1);
                    for i in 0..burst {
                        let h = shared.current() + u64::from(rand::random::<bool>());
                        let msg = forged_vote(h, 0, i % n);
                        publish(&self.net, &shared, attack, "forged next-height votes", msg).await;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Attack::Memory => {
                    let h = shared.current();
                    let msg = forged_proposal(h + 1, 0, (tick as u32) % n, garbage(1 << 20));
                    publish(&self.net, &shared, attack, "1 MiB proposals for h+1", msg).await;
                    for i in 0..50u32 {
                        let ahead = rand::rng().random_range(2..=1000);
                        let msg = forged_vote(h + ahead, 0, i % n);
                        publish(&self.net, &shared, attack, "votes at h+2..h+1000", msg).await;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Attack::SwappedPayloads => {
                    // Besides the swaps on receipt: the latest real proposal again, swapped.
                    let (latest, older) = {
                        let p = shared.proposals.lock();
                        let latest = p.back().cloned();
                        let older = latest.as_ref().and_then(|l| {
                            p.iter()
                                .rev()
                                .find(|o| o.proposal.height != l.proposal.height)
                                .cloned()
                        });
                        (latest, older)
                    };
                    if let Some(latest) = latest {
                        self.swap_and_publish(latest, older).await;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Attack::EditedSync | Attack::SyncStall => {
                    // Passive: the nodes come to us (status every 2 s); answers in `serve`.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Attack::WireNumbers => {
                    for peer in self.peers() {
                        for req in [
                            SyncRequest::Blocks { from: 0, max: 0 },
                            SyncRequest::Blocks {
                                from: u64::MAX,
                                max: u32::MAX,
                            },
                        ] {
                            for _ in 0..3 {
                                let net = self.net.clone();
                                let shared = shared.clone();
                                let bytes = req.encode();
                                let what = if matches!(req, SyncRequest::Blocks { from: 0, .. }) {
                                    "sync requests {from: 0, max: 0}"
                                } else {
                                    "sync requests {from: u64::MAX, max: u32::MAX}"
                                };
                                tokio::spawn(async move {
                                    let _ = net.request(peer, bytes).await;
                                    shared.count(attack, what, 1);
                                });
                            }
                        }
                    }
                    if tick.is_multiple_of(2) {
                        let i = (tick as u32 / 2) % n;
                        let msg = forged_vote(u64::MAX, u32::MAX, i);
                        publish(&self.net, &shared, attack, "votes h=2^64-1 r=u32::MAX", msg).await;
                        let msg = forged_vote(shared.current(), u32::MAX, i);
                        publish(&self.net, &shared, attack, "votes r=u32::MAX", msg).await;
                        let msg = forged_proposal(u64::MAX, u32::MAX, i, garbage(64));
                        publish(
                            &self.net,
                            &shared,
                            attack,
                            "proposals h=2^64-1 r=u32::MAX",
                            msg,
                        )
                        .await;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Attack::WrappingTxs => {
                    // Batches of 50 every 100 ms.
                    let raws: Vec<Vec<u8>> = (0..50)
                        .map(|_| wrapping_transaction(shared.chain_id))
                        .collect();
                    let batch = encode_batch(raws.iter().map(Vec::as_slice));
                    match self.net.publish(Topic::Transactions, batch).await {
                        Ok(_) => shared.count(attack, "wrapping-cost transactions", 50),
                        Err(_) => shared.count(attack, "publish failures", 1),
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// One identity: a fresh key, one attack, until `until` or until every peer dropped us.
async fn run_identity(shared: Arc<Shared>, attack: Attack, until: Instant) -> Result<PeerId> {
    let mut config = NetworkConfig::new(
        Keypair::generate_ed25519(),
        "/ip4/127.0.0.1/tcp/0".parse()?,
        shared.genesis_hash,
    );
    config.bootnodes = shared.bootnodes.clone();
    config.redial_interval = Duration::from_secs(1);
    config.request_timeout = Duration::from_secs(3);
    let (net, mut events) = Network::start(config).await?;
    let me = net.local_peer_id();
    println!("attacker peer id: {me} attack: {}", attack.name());
    let identity = Arc::new(Identity {
        net: net.clone(),
        shared: shared.clone(),
        attack,
        connected: Arc::default(),
    });
    let ever_connected = Arc::new(AtomicBool::new(false));
    let events_task = {
        let identity = identity.clone();
        let ever_connected = ever_connected.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    NetworkEvent::Gossip {
                        topic,
                        from,
                        message_id,
                        data,
                        ..
                    } => {
                        let _ = identity
                            .net
                            .report(message_id, from, MessageAcceptance::Ignore)
                            .await;
                        identity.on_gossip(topic, &data).await;
                    }
                    NetworkEvent::Request {
                        peer,
                        data,
                        respond,
                    } => {
                        let identity = identity.clone();
                        tokio::spawn(async move {
                            let answer = identity.serve(peer, data).await;
                            let _ = respond.send(answer);
                        });
                    }
                    NetworkEvent::PeerConnected(p) => {
                        identity.connected.lock().insert(p);
                        ever_connected.store(true, Ordering::Relaxed);
                    }
                    NetworkEvent::PeerDisconnected(p) => {
                        identity.connected.lock().remove(&p);
                    }
                    NetworkEvent::PeerIncompatible { .. } => {}
                }
            }
        })
    };
    let head_task = tokio::spawn(identity.clone().track_head());

    // Wait for the peers and their subscriptions (a heartbeat or two).
    let deadline = Instant::now() + Duration::from_secs(5);
    while identity.connected.lock().len() < shared.honest.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let attack_task = tokio::spawn(identity.clone().run(until));

    // Until the slot ends, or every node has dropped us for a second.
    let mut alone_since: Option<Instant> = None;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if ever_connected.load(Ordering::Relaxed) && identity.connected.lock().is_empty() {
            let since = *alone_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(1) {
                shared.count(attack, "identities dropped by every node", 1);
                break;
            }
        } else {
            alone_since = None;
        }
    }
    attack_task.abort();
    head_task.abort();
    let _ = net.shutdown().await;
    events_task.abort();
    Ok(me)
}

/// Genesis path, bootnodes (every validator) and validator count from a testnet directory or
/// a node home.
fn read_home(home: &Path) -> Result<(PathBuf, Vec<Multiaddr>)> {
    let homes: Vec<PathBuf> = if home.join("config.toml").exists() {
        vec![home.to_path_buf()]
    } else {
        let mut homes: Vec<PathBuf> = std::fs::read_dir(home)
            .wrap_err_with(|| format!("reading {}", home.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("config.toml").exists())
            .collect();
        homes.sort();
        homes
    };
    if homes.is_empty() {
        bail!("no node home (config.toml) in {}", home.display());
    }
    let mut genesis = None;
    let mut addrs: Vec<Multiaddr> = Vec::new();
    let mut push = |addr: Multiaddr| {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    };
    for h in &homes {
        let mut config = NodeConfig::load(&h.join("config.toml"))?;
        config.resolve_paths(h);
        genesis.get_or_insert(config.genesis.clone().unwrap_or_default());
        for b in &config.p2p.bootnodes {
            push(parse_bootnode(b)?.1);
        }
        // The node itself (a node's list leaves itself out), if it is a validator.
        if config.validator.is_some() {
            let datadir = config.datadir.clone().unwrap_or_else(|| h.join("data"));
            let key = if config.p2p.key_file.is_absolute() {
                config.p2p.key_file.clone()
            } else {
                datadir.join(&config.p2p.key_file)
            };
            if let Ok(peer) = peer_id_from_key_file(&key) {
                let addr = format!(
                    "/ip4/{}/tcp/{}/p2p/{peer}",
                    config.p2p.addr, config.p2p.port
                );
                push(parse_bootnode(&addr)?.1);
            }
        }
    }
    Ok((genesis.unwrap_or_default(), addrs))
}

fn genesis_hash_of(spec: &ChainSpec) -> Result<B256> {
    let store = Arc::new(bttd_runtime::storage::MemoryStore::new());
    let chain = bttd_runtime::Chain::open(store, spec.chain_config(), &spec.genesis)?;
    Ok(chain.genesis_hash())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let attacks = Attack::parse_list(&args.attacks)?;
    let mut bootnodes = Vec::new();
    let mut spec = None;
    if let Some(home) = &args.home {
        let (genesis, addrs) = read_home(home)?;
        spec = Some(ChainSpec::load(&genesis)?);
        bootnodes = addrs;
    }
    for b in &args.bootnode {
        bootnodes.push(parse_bootnode(b)?.1);
    }
    if bootnodes.is_empty() {
        bail!("no peers to attack: give --home or --bootnode");
    }
    let genesis_hash = match (args.genesis_hash, &spec) {
        (Some(h), _) => h,
        (None, Some(spec)) => genesis_hash_of(spec)?,
        (None, None) => bail!("give --home or --genesis-hash"),
    };
    let validators = args
        .validators
        .or_else(|| spec.as_ref().map(|s| s.params.validators.len() as u32))
        .unwrap_or(4);
    let honest = bootnodes
        .iter()
        .filter_map(|a| parse_bootnode(&a.to_string()).ok().map(|(p, _)| p))
        .collect();
    println!(
        "attacking {} peers of chain {genesis_hash} ({validators} validators) for {:?} with {}",
        bootnodes.len(),
        args.duration,
        attacks
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(",")
    );
    let chain_id = args
        .chain_id
        .or_else(|| spec.as_ref().map(|s| s.chain_config().chain_id))
        .unwrap_or(1337);
    let shared = Arc::new(Shared {
        genesis_hash,
        chain_id,
        bootnodes,
        honest,
        validators,
        votes_per_second: args.votes_per_second,
        head: AtomicU64::new(0),
        head_hash: Mutex::new(B256::ZERO),
        proposals: Mutex::default(),
        counts: Mutex::default(),
        nonce: AtomicU64::new(0),
    });
    let end = Instant::now() + args.duration;
    let mut identities = Vec::new();
    let mut k = 0usize;
    while Instant::now() < end {
        let attack = attacks[k % attacks.len()];
        k += 1;
        let until = (Instant::now() + args.slot).min(end);
        match run_identity(shared.clone(), attack, until).await {
            Ok(id) => identities.push(id),
            Err(e) => {
                eprintln!("identity failed: {e:#}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    println!("summary: {} identities", identities.len());
    for (what, n) in shared.counts.lock().iter() {
        println!("summary: {what}: {n}");
    }
    Ok(())
}
