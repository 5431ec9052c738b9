//! The consensus engine: drives the sans-I/O [`Machine`] with the node's clock, network, chain
//! and pool.
//!
//! One tokio task owns the machine and applies inputs one at a time, in arrival order:
//! gossip from peers, timers it scheduled, answers of block building and verification
//! (which run on blocking threads so the loop stays responsive), and blocks from sync. Each
//! output is carried out here: broadcast over gossipsub, arm a timer, build or verify a block,
//! commit a decided block with its certificate, store evidence, ban a peer that sent forged
//! data.
//!
//! Blocks are executed once: the result of building or verifying a proposal is kept by block
//! id and committed as is when that block is decided; a block decided through sync is
//! executed at commit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, B256, Bytes};
use bttd_consensus::bls::BlsSecretKey;
use bttd_consensus::{
    Block, BlockId, BlsSigner, BlsVerifier, CommitCertificate, Config, Height, Input, Machine,
    Message, Output, Reject, Round, SlashingGuard, Step, TimeoutConfig, ValidatorSetProvider,
    Verifier,
};
use bttd_runtime::{ExecutedBlock, WireBlock};
use libp2p::PeerId;
use libp2p::gossipsub::MessageAcceptance;
use rand::seq::IndexedRandom;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::info::ConsensusInfo;
use super::slashing_db::FileSlashingStore;
use super::sync;
use super::wire::{self, CertifiedBlock, SyncRequest, SyncResponse};
use crate::context::NodeContext;
use crate::p2p::{NetworkEvent, NetworkHandle, Topic};

/// How often this validator re-sends its latest messages (lossy links, late joiners).
const REBROADCAST: Duration = Duration::from_secs(1);
/// How often the engine asks a peer for its head, to notice it fell behind.
const STATUS_POLL: Duration = Duration::from_secs(2);
/// Blocks asked for per sync request.
const SYNC_BATCH: u32 = 64;
/// A block's timestamp may be at most this far ahead of the local clock
/// (docs/block-format.md).
const MAX_FUTURE_SECONDS: u64 = 1;

/// The validator's consensus key and account.
#[derive(Clone)]
pub struct ValidatorKey {
    pub bls: BlsSecretKey,
    /// Receives the priority fees of the blocks it proposes (the header's `miner`).
    pub address: Address,
}

impl std::fmt::Debug for ValidatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidatorKey")
            .field("address", &self.address)
            .field("bls", &self.bls.public_key())
            .finish()
    }
}

/// What the engine needs besides the node context and the network.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// `None` on a full node: it follows the chain without voting.
    pub key: Option<ValidatorKey>,
    /// Minimum interval between blocks: the proposer waits this long after the parent.
    pub block_time: Duration,
    pub timeouts: TimeoutConfig,
    /// Slashing-protection record (validators only).
    pub slashing_db: std::path::PathBuf,
    /// Test-only fault injection (`--fault-panic-at-height`): panic when about to commit it.
    pub panic_at_height: Option<Height>,
}

/// A consensus message on gossip. The nonce makes a re-broadcast a new gossip message
/// (gossipsub drops byte-identical messages it saw recently).
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    nonce: u64,
    message: Message,
}

/// Results that come back to the loop from timers and blocking work.
enum Internal {
    Timeout {
        height: Height,
        round: Round,
        step: Step,
    },
    Built {
        height: Height,
        round: Round,
        result: Result<(Block, ExecutedBlock), String>,
    },
    /// `Ok(None)`: the block was already executed (built or verified) by this node.
    Verified {
        id: BlockId,
        result: Result<Option<ExecutedBlock>, String>,
    },
    Synced {
        peer: PeerId,
        result: Result<SyncResponse, String>,
    },
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Slashing(#[from] super::slashing_db::SlashingDbError),
    #[error("the validator's BLS key is not in the genesis validator set")]
    NotAValidator,
}

pub struct Engine {
    ctx: Arc<NodeContext>,
    net: NetworkHandle,
    info: Arc<ConsensusInfo>,
    machine: Machine,
    verifier: Arc<dyn Verifier>,
    settings: EngineSettings,
    chain_id: B256,
    internal_tx: mpsc::UnboundedSender<Internal>,
    internal_rx: mpsc::UnboundedReceiver<Internal>,
    /// Executed proposals by block id, for the current height.
    executed: HashMap<BlockId, ExecutedBlock>,
    /// When the head was committed (the next proposal waits for `block_time` after it).
    head_committed_at: Instant,
    nonce: u64,
    /// A sync request is in flight.
    syncing_with: Option<PeerId>,
    /// The certificate of the head, for the next block's `extraData`.
    head_certificate: Option<CommitCertificate>,
    /// Transactions that reached the pool through gossip: gossipsub forwards them already,
    /// so the engine must not publish them again (each publish is a signature).
    from_gossip: RecentHashes,
}

/// A bounded set of recent hashes (oldest forgotten first).
#[derive(Default)]
struct RecentHashes {
    set: std::collections::HashSet<B256>,
    order: std::collections::VecDeque<B256>,
}

impl RecentHashes {
    const CAPACITY: usize = 65_536;

    fn insert(&mut self, hash: B256) {
        if self.set.insert(hash) {
            self.order.push_back(hash);
            if self.order.len() > Self::CAPACITY
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }

    fn contains(&self, hash: &B256) -> bool {
        self.set.contains(hash)
    }
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Engine {
    /// Builds the machine at the height after the chain's head, restoring the validator's
    /// slashing-protection record.
    pub fn new(
        ctx: Arc<NodeContext>,
        net: NetworkHandle,
        info: Arc<ConsensusInfo>,
        settings: EngineSettings,
    ) -> Result<(Self, Vec<Output>), EngineError> {
        let chain_id = ctx.chain.genesis_hash();
        let (guard, signer) = match &settings.key {
            Some(key) => {
                let set = info.sets.validator_set(ctx.chain.head().number + 1);
                if set.is_none_or(|s| s.index_of(&key.bls.public_key()).is_none()) {
                    return Err(EngineError::NotAValidator);
                }
                let (store, record) = FileSlashingStore::open(&settings.slashing_db, chain_id)?;
                let signer: Box<dyn bttd_consensus::Signer> = Box::new(BlsSigner(key.bls.clone()));
                (SlashingGuard::new(record, Box::new(store)), Some(signer))
            }
            None => (
                SlashingGuard::new(Default::default(), Box::new(bttd_consensus::guard::NoStore)),
                None,
            ),
        };
        let mut config = Config::new(chain_id);
        config.timeouts = settings.timeouts;
        let verifier: Arc<dyn Verifier> = Arc::new(BlsVerifier);
        let provider: Arc<dyn ValidatorSetProvider> = info.sets.clone();
        let head = ctx.chain.head();
        let head_certificate = ctx
            .chain
            .certificate(head.number)
            .ok()
            .flatten()
            .and_then(|bytes| wire::decode::<CommitCertificate>("certificate", &bytes).ok());
        let (machine, out) = Machine::new(
            config,
            signer,
            guard,
            verifier.clone(),
            provider,
            head.number + 1,
        );
        let (internal_tx, internal_rx) = mpsc::unbounded_channel();
        let engine = Self {
            ctx,
            net,
            info,
            machine,
            verifier,
            settings,
            chain_id,
            internal_tx,
            internal_rx,
            executed: HashMap::new(),
            head_committed_at: Instant::now(),
            nonce: rand::random(),
            syncing_with: None,
            head_certificate,
            from_gossip: RecentHashes::default(),
        };
        engine.publish_status();
        Ok((engine, out))
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(
        mut self,
        first: Vec<Output>,
        mut events: mpsc::Receiver<NetworkEvent>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        self.carry_out(first, None).await;
        let mut pending_txs = self.ctx.pending_txs.subscribe();
        let mut rebroadcast = tokio::time::interval(REBROADCAST);
        let mut status_poll = tokio::time::interval(STATUS_POLL);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(internal) = self.internal_rx.recv() => self.on_internal(internal).await,
                event = events.recv() => match event {
                    Some(event) => self.on_network(event).await,
                    None => break,
                },
                hash = pending_txs.recv() => {
                    if let Ok(hash) = hash {
                        self.gossip_transaction(hash).await;
                    }
                }
                _ = rebroadcast.tick() => {
                    let out = self.machine.apply(Input::Rebroadcast);
                    self.carry_out(out, None).await;
                }
                _ = status_poll.tick() => self.poll_status().await,
            }
        }
        tracing::info!(target: "bttd::consensus", height = self.machine.height(), "consensus engine stopped");
    }

    fn publish_status(&self) {
        let height = self.machine.height();
        let round = self.machine.round();
        let proposer = self
            .info
            .sets
            .validator_set(height)
            .map(|set| set.validators()[set.proposer(height, round) as usize].address);
        self.info
            .set_round(height, round, self.machine.step(), proposer);
    }

    async fn apply(&mut self, input: Input, from: Option<PeerId>) {
        let out = self.machine.apply(input);
        self.carry_out(out, from).await;
    }

    async fn carry_out(&mut self, outputs: Vec<Output>, from: Option<PeerId>) {
        for output in outputs {
            match output {
                Output::Broadcast(message) => {
                    self.nonce = self.nonce.wrapping_add(1);
                    let bytes = wire::encode(&Envelope {
                        nonce: self.nonce,
                        message,
                    });
                    if let Err(e) = self.net.publish(Topic::Consensus, bytes).await {
                        tracing::debug!(target: "bttd::consensus", error = %e, "broadcast not sent");
                    }
                }
                Output::ScheduleTimeout {
                    height,
                    round,
                    step,
                    duration,
                } => {
                    let tx = self.internal_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(duration).await;
                        let _ = tx.send(Internal::Timeout {
                            height,
                            round,
                            step,
                        });
                    });
                }
                Output::BuildProposal { height, round } => self.build(height, round),
                Output::VerifyBlock { height, block } => self.verify(height, block),
                Output::Decided {
                    height,
                    block,
                    certificate,
                } => self.commit(height, block, certificate).await,
                Output::Evidence(evidence) => {
                    tracing::warn!(target: "bttd::consensus", offender = evidence.offender(), height = evidence.height(), "equivocation detected");
                    self.info.add_evidence(evidence);
                }
                Output::Rejected(reason) => self.on_rejected(reason, from).await,
            }
        }
        self.publish_status();
    }

    async fn on_rejected(&mut self, reason: Reject, from: Option<PeerId>) {
        metrics::counter!("bttd_consensus_rejected_total").increment(1);
        let forged = matches!(
            reason,
            Reject::BadSignature | Reject::BadCertificate(_) | Reject::CertificateMismatch
        );
        match from {
            Some(peer) if forged => {
                tracing::warn!(target: "bttd::consensus", %peer, %reason, "peer sent forged consensus data; banning");
                let _ = self.net.ban(peer, reason.to_string()).await;
            }
            _ => tracing::debug!(target: "bttd::consensus", %reason, "consensus message refused"),
        }
    }

    /// Builds a proposal on the head, no sooner than `block_time` after the head was
    /// committed.
    fn build(&self, height: Height, round: Round) {
        let ctx = self.ctx.clone();
        let tx = self.internal_tx.clone();
        let beneficiary = self
            .settings
            .key
            .as_ref()
            .map(|k| k.address)
            .unwrap_or_default();
        let extra = match &self.head_certificate {
            Some(parent) => wire::ExtraData {
                parent: parent.clone(),
                next_set: self.next_set_commitment(height),
            }
            .encode(),
            None => Bytes::new(),
        };
        let ready_at = self.head_committed_at + self.settings.block_time;
        tokio::spawn(async move {
            tokio::time::sleep_until(ready_at.into()).await;
            let result =
                tokio::task::spawn_blocking(move || build_block(&ctx, height, beneficiary, extra))
                    .await
                    .unwrap_or_else(|e| Err(format!("block builder panicked: {e}")));
            let _ = tx.send(Internal::Built {
                height,
                round,
                result,
            });
        });
    }

    /// In the last block of an epoch: the commitment to the next epoch's set.
    fn next_set_commitment(&self, height: Height) -> Option<B256> {
        next_set_commitment(&self.info, height)
    }

    /// Checks a proposed block against the block rules and executes it on the head.
    fn verify(&mut self, height: Height, block: Block) {
        let tx = self.internal_tx.clone();
        let id = block.id;
        if self.executed.contains_key(&id) {
            let _ = tx.send(Internal::Verified {
                id,
                result: Ok(None),
            });
            return;
        }
        let ctx = self.ctx.clone();
        let info = self.info.clone();
        let verifier = self.verifier.clone();
        let chain_id = self.chain_id;
        tokio::task::spawn_blocking(move || {
            let result = verify_block(&ctx, &info, verifier.as_ref(), chain_id, height, &block);
            let _ = tx.send(Internal::Verified {
                id,
                result: result.map(Some),
            });
        });
    }

    async fn on_internal(&mut self, internal: Internal) {
        match internal {
            Internal::Timeout {
                height,
                round,
                step,
            } => {
                self.apply(
                    Input::TimeoutFired {
                        height,
                        round,
                        step,
                    },
                    None,
                )
                .await
            }
            Internal::Built {
                height,
                round,
                result,
            } => match result {
                Ok((block, executed)) if height == self.machine.height() => {
                    self.executed.insert(block.id, executed);
                    self.apply(
                        Input::ProposalBuilt {
                            height,
                            round,
                            block,
                        },
                        None,
                    )
                    .await;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(target: "bttd::consensus", height, round, error = %e, "building a proposal failed")
                }
            },
            Internal::Verified { id, result } => {
                let valid = match result {
                    Ok(Some(executed)) => {
                        // Stale if the head moved while it executed; the machine has moved on
                        // to the next height then and ignores the answer.
                        let on_head =
                            executed.block.header.parent_hash == self.ctx.chain.head().hash();
                        if on_head {
                            self.executed.insert(id, executed);
                        }
                        on_head
                    }
                    Ok(None) => true,
                    Err(reason) => {
                        tracing::warn!(target: "bttd::consensus", block = %id, %reason, "proposed block is invalid");
                        false
                    }
                };
                self.apply(Input::BlockVerified { id, valid }, None).await;
            }
            Internal::Synced { peer, result } => {
                self.syncing_with = None;
                self.on_synced(peer, result).await;
            }
        }
    }

    async fn on_network(&mut self, event: NetworkEvent) {
        match event {
            NetworkEvent::Gossip {
                topic: Topic::Consensus,
                from,
                message_id,
                data,
                ..
            } => {
                let envelope = match wire::decode::<Envelope>("consensus message", &data) {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = self
                            .net
                            .report(message_id, from, MessageAcceptance::Reject)
                            .await;
                        let _ = self.net.ban(from, e.to_string()).await;
                        return;
                    }
                };
                let message = envelope.message;
                if message.height() > self.machine.height() {
                    self.info.saw_height(message.height().saturating_sub(1));
                    self.start_sync(from).await;
                }
                let input = match message {
                    Message::Proposal(p) => Input::Proposal(p),
                    Message::Vote(v) => Input::Vote(v),
                };
                let out = self.machine.apply(input);
                let forged = out.iter().any(|o| {
                    matches!(
                        o,
                        Output::Rejected(Reject::BadSignature | Reject::UnknownValidator)
                    )
                });
                let acceptance = if forged {
                    MessageAcceptance::Reject
                } else {
                    MessageAcceptance::Accept
                };
                let _ = self.net.report(message_id, from, acceptance).await;
                self.carry_out(out, Some(from)).await;
            }
            NetworkEvent::Gossip {
                topic: Topic::Transactions,
                from,
                message_id,
                data,
                ..
            } => {
                let acceptance = match self.ctx.submit_raw(&data) {
                    Ok(hash) => {
                        self.from_gossip.insert(hash);
                        MessageAcceptance::Accept
                    }
                    // Known, underpriced or stale transactions are not a peer's fault.
                    Err(crate::context::SubmitError::Pool(_)) => MessageAcceptance::Ignore,
                    Err(crate::context::SubmitError::Invalid(e)) => {
                        tracing::debug!(target: "bttd::consensus", %from, error = %e, "invalid gossiped transaction");
                        MessageAcceptance::Reject
                    }
                };
                let _ = self.net.report(message_id, from, acceptance).await;
            }
            NetworkEvent::Request {
                peer,
                data,
                respond,
            } => {
                let ctx = self.ctx.clone();
                let max_bytes = self.info.max_message_bytes;
                tokio::task::spawn_blocking(move || {
                    let response = sync::answer(&ctx, &data, max_bytes);
                    if respond.send(wire::encode(&response)).is_err() {
                        tracing::debug!(target: "bttd::sync", %peer, "peer left before the sync response");
                    }
                });
            }
            NetworkEvent::PeerConnected(peer) => {
                self.info.peer_connected();
                self.request_status(peer);
            }
            NetworkEvent::PeerDisconnected(_) => self.info.peer_disconnected(),
            NetworkEvent::PeerIncompatible { .. } => {}
        }
    }

    /// Gossips a transaction that entered the pool from RPC (those from peers are forwarded by
    /// gossipsub itself).
    async fn gossip_transaction(&mut self, hash: B256) {
        if self.from_gossip.contains(&hash) {
            return;
        }
        let Some(tx) = self.ctx.pool.lock().get(&hash) else {
            return;
        };
        let raw = alloy_eips::eip2718::Encodable2718::encoded_2718(tx.envelope());
        // A transaction we received from gossip is already known to gossipsub: Duplicate.
        let _ = self.net.publish(Topic::Transactions, raw).await;
    }

    async fn poll_status(&mut self) {
        let peers = self.net.peers().await.unwrap_or_default();
        if let Some(peer) = peers.choose(&mut rand::rng()) {
            self.request_status(*peer);
        }
    }

    fn request_status(&self, peer: PeerId) {
        let net = self.net.clone();
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let result = net
                .request(peer, wire::encode(&SyncRequest::Status))
                .await
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    wire::decode::<SyncResponse>("sync response", &bytes).map_err(|e| e.to_string())
                });
            let _ = tx.send(Internal::Synced { peer, result });
        });
    }

    async fn start_sync(&mut self, peer: PeerId) {
        if self.syncing_with.is_some() {
            return;
        }
        self.syncing_with = Some(peer);
        let from = self.machine.height();
        let net = self.net.clone();
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let request = SyncRequest::Blocks {
                from,
                max: SYNC_BATCH,
            };
            let result = net
                .request(peer, wire::encode(&request))
                .await
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    wire::decode::<SyncResponse>("sync response", &bytes).map_err(|e| e.to_string())
                });
            let _ = tx.send(Internal::Synced { peer, result });
        });
    }

    async fn on_synced(&mut self, peer: PeerId, result: Result<SyncResponse, String>) {
        match result {
            Ok(SyncResponse::Status { head, .. }) => {
                self.info.saw_height(head);
                if head >= self.machine.height() {
                    self.start_sync(peer).await;
                }
            }
            Ok(SyncResponse::Blocks(blocks)) => {
                let got = blocks.len();
                for CertifiedBlock { block, certificate } in blocks {
                    if certificate.height != self.machine.height() {
                        continue;
                    }
                    self.info.saw_height(certificate.height);
                    let id = certificate.block_id;
                    if WireBlock::decode(&block).map(|b| b.hash()).ok() != Some(id) {
                        tracing::warn!(target: "bttd::sync", %peer, height = certificate.height, "synced block does not match its certificate; banning");
                        let _ = self
                            .net
                            .ban(peer, "sync block does not match its certificate")
                            .await;
                        break;
                    }
                    let before = self.machine.height();
                    self.apply(
                        Input::Commit {
                            block: Block { id, payload: block },
                            certificate,
                        },
                        Some(peer),
                    )
                    .await;
                    if self.machine.height() == before {
                        // Refused (and the peer punished if it was forged): stop here.
                        break;
                    }
                }
                if got as u32 == SYNC_BATCH {
                    self.start_sync(peer).await;
                }
            }
            Ok(SyncResponse::Error(reason)) => {
                tracing::debug!(target: "bttd::sync", %peer, %reason, "peer could not serve sync")
            }
            Err(reason) => {
                tracing::debug!(target: "bttd::sync", %peer, %reason, "sync request failed")
            }
        }
    }

    /// Commits a decided block with its certificate, executing it first if this node has not
    /// (a block that arrived through sync).
    async fn commit(&mut self, height: Height, block: Block, certificate: CommitCertificate) {
        if self.settings.panic_at_height == Some(height) {
            panic!("fault injection: panicking before committing block {height}");
        }
        let executed = match self.executed.remove(&block.id) {
            Some(executed) => Ok(executed),
            None => {
                let ctx = self.ctx.clone();
                let payload = block.payload.clone();
                let id = block.id;
                tokio::task::spawn_blocking(move || execute_decided(&ctx, id, &payload))
                    .await
                    .unwrap_or_else(|e| Err(format!("execution panicked: {e}")))
            }
        };
        self.executed.clear();
        let executed = match executed {
            Ok(executed) => executed,
            Err(reason) => {
                // A certificate of more than 2/3 of the stake for a block this node cannot
                // execute: the node's software or storage is broken, not the chain. Stop
                // rather than fork.
                tracing::error!(target: "bttd::consensus", height, block = %block.id, %reason, "cannot execute a decided block; stopping consensus");
                panic!(
                    "decided block {height} ({}) does not execute: {reason}",
                    block.id
                );
            }
        };
        let rejected = executed.rejected.clone();
        let receipts = executed.receipts.clone();
        let ctx = self.ctx.clone();
        let cert_bytes = wire::encode(&certificate);
        let committed =
            tokio::task::spawn_blocking(move || ctx.chain.commit_certified(executed, cert_bytes))
                .await;
        match committed {
            Ok(Ok(sealed)) => {
                self.head_committed_at = Instant::now();
                tracing::info!(
                    target: "bttd::consensus",
                    number = sealed.number(),
                    hash = %sealed.hash(),
                    txs = sealed.body.transactions.len(),
                    round = certificate.round,
                    "committed block"
                );
                self.head_certificate = Some(certificate);
                self.ctx.on_block_committed(sealed, receipts, &rejected);
            }
            Ok(Err(e)) => panic!("committing decided block {height}: {e}"),
            Err(e) => panic!("committing decided block {height} panicked: {e}"),
        }
    }
}

/// Builds the proposal for `height` on the head from the pool's best transactions.
fn build_block(
    ctx: &NodeContext,
    height: Height,
    beneficiary: Address,
    extra: Bytes,
) -> Result<(Block, ExecutedBlock), String> {
    let head = ctx.chain.head();
    if head.number + 1 != height {
        return Err(format!("head is {}, cannot build {height}", head.number));
    }
    let block_ctx = ctx.chain.next_block_context(now_seconds(), beneficiary);
    let candidates = ctx.block_candidates(block_ctx.base_fee, block_ctx.gas_limit);
    let executed = ctx
        .chain
        .build_with_extra(block_ctx.timestamp, beneficiary, candidates, extra)
        .map_err(|e| e.to_string())?;
    let block = Block {
        id: executed.block.hash(),
        payload: WireBlock::encode(&executed.block).into(),
    };
    Ok((block, executed))
}

/// The block rules a voter enforces before prevoting (docs/block-format.md): well formed,
/// on our head, proposer's account as `miner`, timestamp bounds, the parent's certificate in
/// `extraData`, and a successful re-execution that reproduces every header field.
fn verify_block(
    ctx: &NodeContext,
    info: &ConsensusInfo,
    verifier: &dyn Verifier,
    chain_id: B256,
    height: Height,
    block: &Block,
) -> Result<ExecutedBlock, String> {
    let sealed = WireBlock::decode(&block.payload).map_err(|e| format!("undecodable: {e}"))?;
    if sealed.hash() != block.id {
        return Err("block id is not the header hash".into());
    }
    let head = ctx.chain.head();
    if sealed.number() != height || sealed.header.parent_hash != head.hash() {
        return Err(format!(
            "block {} does not extend our head {}",
            sealed.number(),
            head.number
        ));
    }
    let now = now_seconds();
    if sealed.header.timestamp > now + MAX_FUTURE_SECONDS {
        return Err(format!(
            "timestamp {} is ahead of our clock {now}",
            sealed.header.timestamp
        ));
    }
    if height > 1 {
        let set = info
            .sets
            .validator_set(head.number)
            .ok_or("no validator set for the parent")?;
        let next_set = next_set_commitment(info, height);
        let extra = wire::ExtraData::decode(
            &sealed.header.extra_data,
            head.number,
            head.hash(),
            set.len(),
            next_set.is_some(),
        )
        .ok_or("extraData is not the parent's certificate (plus the next set at an epoch end)")?;
        extra
            .parent
            .verify(&chain_id, &set, verifier)
            .map_err(|e| format!("parent certificate in extraData: {e}"))?;
        if extra.next_set != next_set {
            return Err("extraData commits to another next validator set".into());
        }
    } else if !sealed.header.extra_data.is_empty() {
        return Err("block 1 must have empty extraData".into());
    }
    ctx.chain.import(sealed).map_err(|e| e.to_string())
}

/// The next epoch's set hash if `height` is the last block of its epoch.
fn next_set_commitment(info: &ConsensusInfo, height: Height) -> Option<B256> {
    if info.sets.epoch_of(height) == info.sets.epoch_of(height + 1) {
        return None;
    }
    info.sets
        .validator_set(height + 1)
        .map(|set| wire::validator_set_hash(&set))
}

/// Executes a block decided through sync (its certificate already verified by the machine).
fn execute_decided(
    ctx: &NodeContext,
    id: BlockId,
    payload: &[u8],
) -> Result<ExecutedBlock, String> {
    let sealed = WireBlock::decode(payload).map_err(|e| format!("undecodable: {e}"))?;
    if sealed.hash() != id {
        return Err("block id is not the header hash".into());
    }
    ctx.chain.import(sealed).map_err(|e| e.to_string())
}
