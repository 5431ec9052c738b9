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
    Applied, Block, BlockId, BlsSigner, BlsVerifier, CommitCertificate, Config, Height, Input,
    Machine, Message, Output, Reject, Round, SlashingGuard, Step, TimeoutConfig, ValidatorIndex,
    ValidatorSetProvider, Verdict, Verifier,
};
use bttd_runtime::{ExecutedBlock, WireBlock};
use libp2p::PeerId;
use libp2p::gossipsub::MessageAcceptance;
use rand::seq::IndexedRandom;
use tokio::sync::{mpsc, watch};

use super::info::ConsensusInfo;
use super::sync::{self, ServeLimiter, SyncPeers};
use super::timestamp;
use super::wire::{self, CertifiedBlock, Envelope, SyncRequest, SyncResponse};
use bttd_keys::slashing_db::FileSlashingStore;
use bttd_network::{NetworkEvent, NetworkHandle, Topic};
use bttd_txpool::context::NodeContext;

/// How often this validator re-sends its latest messages (lossy links, late joiners).
const REBROADCAST: Duration = Duration::from_secs(1);
/// How often the engine asks a peer for its head, to notice it fell behind.
const STATUS_POLL: Duration = Duration::from_secs(2);
/// Blocks asked for per sync request.
const SYNC_BATCH: u32 = 64;

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
        /// `Some(from)` for a block request from that height; `None` for a status request.
        asked_from: Option<Height>,
        result: Result<SyncResponse, String>,
    },
}

/// Why the engine stopped: a fault of this node (its storage or its software), never of a
/// peer. The node must stop rather than go on from a state it cannot trust.
#[derive(Debug, thiserror::Error)]
pub enum EngineFault {
    #[error(
        "decided block {height} ({block}) matches its certified header but does not execute here: {reason}; this node's database or software is broken"
    )]
    DecidedBlockDoesNotExecute {
        height: Height,
        block: BlockId,
        reason: String,
    },
    #[error("committing decided block {height}: {reason}")]
    Commit { height: Height, reason: String },
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Slashing(#[from] bttd_keys::slashing_db::SlashingDbError),
    #[error("the validator's BLS key is not in the genesis validator set")]
    NotAValidator,
    #[error(
        "the validator's account {key} is not the account {set} the validator set names for its BLS key"
    )]
    AccountMismatch { key: Address, set: Address },
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
    /// Which peers to ask for blocks (rotation, and peers that gave nothing lately).
    sync_peers: SyncPeers,
    /// Per-peer rate limit and in-flight cap of the sync requests this node serves.
    serve_limiter: ServeLimiter,
    /// A fault of this node seen while carrying out outputs: the run loop stops on it.
    fault: Option<EngineFault>,
    /// Payloads of proposals the machine accepted, checked against their ids already.
    accepted_payloads: AcceptedPayloads,
    /// The certificate of the head, for the next block's `extraData`.
    head_certificate: Option<CommitCertificate>,
}

/// Blocks of proposals the machine accepted (signed by their round's proposer, payload checked
/// against the id), so their re-broadcasts skip the decode. Bounded by what the machine
/// accepts: at most two proposals per round in its window, dropped when the height moves on.
#[derive(Default)]
struct AcceptedPayloads {
    blocks: HashMap<BlockId, (Height, Bytes)>,
}

impl AcceptedPayloads {
    fn contains(&self, block: &Block) -> bool {
        self.blocks
            .get(&block.id)
            .is_some_and(|(_, payload)| *payload == block.payload)
    }

    fn insert(&mut self, height: Height, block: Block) {
        self.blocks.insert(block.id, (height, block.payload));
    }

    /// Forgets heights below `height`.
    fn prune(&mut self, height: Height) {
        self.blocks.retain(|_, (h, _)| *h >= height);
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
        if let Some(key) = &settings.key
            && let Some(set) = info.sets.validator_set(ctx.chain.head().number + 1)
            && let Some(index) = set.index_of(&key.bls.public_key())
        {
            let named = set.validators()[index as usize].address;
            if named != key.address {
                return Err(EngineError::AccountMismatch {
                    key: key.address,
                    set: named,
                });
            }
        }
        let verifier: Arc<dyn Verifier> = Arc::new(BlsVerifier);
        let provider: Arc<dyn ValidatorSetProvider> = info.sets.clone();
        let head = ctx.chain.head();
        let head_certificate = sync::stored_certificate(&ctx, head.number);
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
            sync_peers: SyncPeers::default(),
            serve_limiter: ServeLimiter::default(),
            fault: None,
            accepted_payloads: AcceptedPayloads::default(),
            head_certificate,
        };
        engine.publish_status();
        Ok((engine, out))
    }

    /// Runs until `shutdown` turns true, or until a fault of this node (see [`EngineFault`]).
    pub async fn run(
        mut self,
        first: Vec<Output>,
        mut events: mpsc::Receiver<NetworkEvent>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), EngineFault> {
        self.carry_out(first).await;
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
                _ = rebroadcast.tick() => {
                    self.apply(Input::Rebroadcast, None).await;
                }
                _ = status_poll.tick() => self.poll_status().await,
            }
            if let Some(fault) = self.fault.take() {
                tracing::error!(target: "bttd::consensus", height = self.machine.height(), %fault, "consensus engine stopped by a fault of this node");
                return Err(fault);
            }
        }
        tracing::info!(target: "bttd::consensus", height = self.machine.height(), "consensus engine stopped");
        Ok(())
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

    /// Applies one input; a refused input is held against `from`, the peer that sent it, and
    /// against nobody else (effects of replayed buffered messages carry no verdict).
    async fn apply(&mut self, input: Input, from: Option<PeerId>) -> Verdict {
        let Applied { verdict, outputs } = self.machine.apply(input);
        if let (Verdict::Rejected(reason), Some(peer)) = (&verdict, from) {
            self.penalise(peer, reason).await;
        }
        metrics::gauge!("bttd_consensus_buffered_bytes").set(self.machine.buffered_bytes() as f64);
        self.carry_out(outputs).await;
        verdict
    }

    async fn carry_out(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            if self.fault.is_some() {
                // Nothing after a local fault: the node stops.
                return;
            }
            match output {
                Output::Broadcast(message) => {
                    self.nonce = self.nonce.wrapping_add(1);
                    let bytes = Envelope {
                        nonce: self.nonce,
                        message,
                    }
                    .encode();
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
                Output::VerifyBlock {
                    height,
                    block,
                    proposer,
                } => self.verify(height, block, proposer),
                Output::Decided {
                    height,
                    block,
                    certificate,
                } => self.commit(height, block, certificate).await,
                Output::Evidence(evidence) => {
                    tracing::warn!(target: "bttd::consensus", offender = evidence.offender(), height = evidence.height(), "equivocation detected");
                    self.info.add_evidence(evidence);
                }
            }
        }
        self.publish_status();
    }

    /// A peer sent something the machine refused. Honest peers relay only what they checked,
    /// so anything a correct node could not have sent bans the peer; a round too far ahead
    /// may be an honest peer's view, and is only refused.
    async fn penalise(&mut self, peer: PeerId, reason: &Reject) {
        metrics::counter!("bttd_consensus_rejected_total").increment(1);
        let ban = !matches!(reason, Reject::RoundTooFar);
        if ban {
            let _ = self.net.ban(peer, format!("consensus: {reason}")).await;
        } else {
            tracing::debug!(target: "bttd::consensus", %peer, %reason, "consensus message refused");
        }
    }

    /// Bans a peer for bytes no correct node sends (the reason says which).
    async fn ban(&mut self, peer: PeerId, reason: String) {
        let _ = self.net.ban(peer, reason).await;
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
    /// `proposer`: the proposer of the round that proposed it fresh, whose account must be
    /// the block's `miner` (`None` for a re-proposal, whose miner was checked by the prevote
    /// quorum that justifies it).
    fn verify(&mut self, height: Height, block: Block, proposer: Option<ValidatorIndex>) {
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
            let result = verify_block(
                &ctx,
                &info,
                verifier.as_ref(),
                chain_id,
                height,
                proposer,
                &block,
            );
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
                .await;
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
            Internal::Synced {
                peer,
                asked_from,
                result,
            } => {
                if asked_from.is_some() {
                    self.syncing_with = None;
                }
                self.on_synced(peer, asked_from, result).await;
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
                let envelope = match Envelope::decode(&data) {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = self
                            .net
                            .report(message_id, from, MessageAcceptance::Reject)
                            .await;
                        self.ban(from, format!("undecodable consensus message: {e}"))
                            .await;
                        return;
                    }
                };
                let message = envelope.message;
                // The payload travels unsigned beside the signed id: it must be that block
                // before anything stores, relays or executes it. Re-broadcasts of a proposal
                // already accepted are compared byte for byte instead of decoded again.
                let payload = match &message {
                    Message::Proposal(p) => Some(&p.proposal.block),
                    Message::Vote(_) => None,
                };
                if let Some(block) = payload
                    && !self.accepted_payloads.contains(block)
                    && let Err(e) = WireBlock::decode_for(&block.payload, block.id)
                {
                    let _ = self
                        .net
                        .report(message_id, from, MessageAcceptance::Reject)
                        .await;
                    self.ban(
                        from,
                        format!("proposal payload is not the signed block: {e}"),
                    )
                    .await;
                    return;
                }
                let height = message.height();
                let ahead = height > self.machine.height();
                let input = match message {
                    Message::Proposal(p) => Input::Proposal(p),
                    Message::Vote(v) => Input::Vote(v),
                };
                let accepted_block = match &input {
                    Input::Proposal(p) => Some(p.proposal.block.clone()),
                    _ => None,
                };
                let verdict = self.apply(input, Some(from)).await;
                if let Some(block) = accepted_block
                    && verdict.relay()
                {
                    self.accepted_payloads.insert(height, block);
                }
                let acceptance = match &verdict {
                    v if v.relay() => MessageAcceptance::Accept,
                    Verdict::Rejected(_) => MessageAcceptance::Reject,
                    _ => MessageAcceptance::Ignore,
                };
                let _ = self.net.report(message_id, from, acceptance).await;
                if ahead && !matches!(verdict, Verdict::Rejected(_)) {
                    // A checked message of the next height proves this one was decided;
                    // anything else only makes us ask (sync verifies what it gets).
                    if verdict.relay() {
                        self.info.saw_height(height.saturating_sub(1));
                    }
                    self.start_sync(Some(from)).await;
                }
            }
            // Transactions come on the network's other queue, to the pool's gossip task.
            NetworkEvent::Gossip {
                topic: Topic::Transactions,
                ..
            } => {}
            NetworkEvent::Request {
                peer,
                data,
                respond,
            } => {
                let permit = match self.serve_limiter.admit(peer, Instant::now()) {
                    Ok(permit) => permit,
                    Err(refusal) => {
                        let response = SyncResponse::Error(refusal.to_string());
                        let _ = respond.send(response.encode());
                        return;
                    }
                };
                let ctx = self.ctx.clone();
                let max_bytes = self.info.max_message_bytes;
                tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    let response = sync::answer(&ctx, &data, max_bytes);
                    if respond.send(response.encode()).is_err() {
                        tracing::debug!(target: "bttd::sync", %peer, "peer left before the sync response");
                    }
                });
            }
            NetworkEvent::PeerConnected(peer) => {
                self.info.peer_connected();
                self.request_status(peer);
            }
            NetworkEvent::PeerDisconnected(peer) => {
                self.info.peer_disconnected();
                self.serve_limiter.forget(&peer);
            }
            NetworkEvent::PeerIncompatible { .. } => {}
        }
    }

    async fn poll_status(&mut self) {
        let peers = self.net.peers().await.unwrap_or_default();
        if let Some(peer) = peers.choose(&mut rand::rng()) {
            self.request_status(*peer);
        }
    }

    fn request_status(&self, peer: PeerId) {
        self.request(peer, SyncRequest::Status, None);
    }

    /// Sends a sync request; the answer comes back as `Internal::Synced`.
    fn request(&self, peer: PeerId, request: SyncRequest, asked_from: Option<Height>) {
        let net = self.net.clone();
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let result = net
                .request(peer, request.encode())
                .await
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    SyncResponse::decode(&bytes)
                        .map_err(|e| format!("undecodable sync response: {e}"))
                });
            let _ = tx.send(Internal::Synced {
                peer,
                asked_from,
                result,
            });
        });
    }

    /// Asks a peer for the blocks from our next height: `hint` if it has not failed us
    /// lately, otherwise another connected peer (rotation, so one peer cannot stall us).
    async fn start_sync(&mut self, hint: Option<PeerId>) {
        if self.syncing_with.is_some() {
            return;
        }
        let peers = self.net.peers().await.unwrap_or_default();
        let Some(peer) = self.sync_peers.choose(hint, &peers, Instant::now()) else {
            return;
        };
        self.syncing_with = Some(peer);
        let from = self.machine.height();
        self.request(
            peer,
            SyncRequest::Blocks {
                from,
                max: SYNC_BATCH,
            },
            Some(from),
        );
    }

    async fn on_synced(
        &mut self,
        peer: PeerId,
        asked_from: Option<Height>,
        result: Result<SyncResponse, String>,
    ) {
        match (asked_from, result) {
            // A peer's head is only a hint: it moves nothing until blocks prove it.
            (
                None,
                Ok(SyncResponse::Status {
                    head,
                    head_hash,
                    certificate,
                }),
            ) => {
                if let Some(certificate) = certificate
                    && self.head_is_certified(head, head_hash, &certificate)
                {
                    self.info.saw_height(head);
                }
                if head >= self.machine.height() {
                    self.start_sync(Some(peer)).await;
                }
            }
            (Some(from), Ok(SyncResponse::Blocks(blocks))) => {
                self.on_synced_blocks(peer, from, blocks).await
            }
            (_, Ok(SyncResponse::Error(reason))) => {
                self.sync_peers.no_progress(peer, Instant::now());
                tracing::debug!(target: "bttd::sync", %peer, %reason, "peer could not serve sync")
            }
            (_, Ok(other)) => {
                self.ban(
                    peer,
                    format!("sync: answer of the wrong kind ({})", other.kind()),
                )
                .await
            }
            (_, Err(reason)) => {
                self.sync_peers.no_progress(peer, Instant::now());
                tracing::debug!(target: "bttd::sync", %peer, %reason, "sync request failed")
            }
        }
    }

    /// Whether `certificate` proves that `head_hash` was decided at `head` (one aggregate
    /// check against the set of that height, when this node knows it).
    fn head_is_certified(
        &self,
        head: Height,
        head_hash: B256,
        certificate: &CommitCertificate,
    ) -> bool {
        certificate.height == head
            && certificate.block_id == head_hash
            && self.info.sets.validator_set(head).is_some_and(|set| {
                certificate
                    .verify(&self.chain_id, &set, self.verifier.as_ref())
                    .is_ok()
            })
    }

    /// Feeds synced blocks to the machine in order. Each must be the next height, its body
    /// the one its certified header commits to, and its certificate valid: otherwise the
    /// peer answered garbage and is banned. An answer that moves us nowhere makes us ask
    /// another peer next time.
    async fn on_synced_blocks(&mut self, peer: PeerId, from: Height, blocks: Vec<CertifiedBlock>) {
        let got = blocks.len();
        let mut progressed = 0usize;
        if self.machine.height() != from {
            // We moved on (consensus decided meanwhile); the answer is stale, not wrong.
            return;
        }
        for CertifiedBlock { block, certificate } in blocks {
            let height = self.machine.height();
            if certificate.height != height {
                self.ban(
                    peer,
                    format!("sync: block {} where {height} was due", certificate.height),
                )
                .await;
                break;
            }
            let id = certificate.block_id;
            if let Err(e) = WireBlock::decode_for(&block, id) {
                self.ban(
                    peer,
                    format!("sync: body does not match its certified header: {e}"),
                )
                .await;
                break;
            }
            let verdict = self
                .apply(
                    Input::Commit {
                        block: Block { id, payload: block },
                        certificate,
                    },
                    Some(peer),
                )
                .await;
            if verdict != Verdict::Accepted || self.fault.is_some() {
                break;
            }
            progressed += 1;
            self.info.saw_height(height);
        }
        if progressed == 0 {
            self.sync_peers.no_progress(peer, Instant::now());
        } else if got as u32 == SYNC_BATCH && progressed == got {
            self.start_sync(Some(peer)).await;
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
                // A certificate of more than 2/3 of the stake for a block whose body matches
                // its header (checked on receipt) that this node cannot execute: this node's
                // software or storage is broken, not the chain, and no peer is to blame.
                // Stop rather than fork.
                self.fault = Some(EngineFault::DecidedBlockDoesNotExecute {
                    height,
                    block: block.id,
                    reason,
                });
                return;
            }
        };
        let rejected = executed.rejected.clone();
        let receipts = executed.receipts.clone();
        let ctx = self.ctx.clone();
        let cert_bytes = wire::store::encode_certificate(&certificate);
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
                self.accepted_payloads.prune(height + 1);
                self.ctx.on_block_committed(sealed, receipts, &rejected);
            }
            Ok(Err(e)) => {
                self.fault = Some(EngineFault::Commit {
                    height,
                    reason: e.to_string(),
                })
            }
            Err(e) => {
                self.fault = Some(EngineFault::Commit {
                    height,
                    reason: format!("panicked: {e}"),
                })
            }
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
    proposer: Option<ValidatorIndex>,
    block: &Block,
) -> Result<ExecutedBlock, String> {
    let sealed = WireBlock::decode_for(&block.payload, block.id).map_err(|e| e.to_string())?;
    if let Some(index) = proposer {
        let set = info
            .sets
            .validator_set(height)
            .ok_or("no validator set for the block's height")?;
        let expected = set
            .validators()
            .get(index as usize)
            .map(|v| v.address)
            .ok_or("proposer outside the set")?;
        if sealed.header.beneficiary != expected {
            return Err(format!(
                "miner {} is not the round's proposer {expected}",
                sealed.header.beneficiary
            ));
        }
    }
    let head = ctx.chain.head();
    if sealed.number() != height || sealed.header.parent_hash != head.hash() {
        return Err(format!(
            "block {} does not extend our head {}",
            sealed.number(),
            head.number
        ));
    }
    timestamp::check(sealed.header.timestamp, now_seconds()).map_err(|e| e.to_string())?;
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

/// Executes a block decided through sync (its certificate verified by the machine, its body
/// checked against the certified header on receipt).
fn execute_decided(
    ctx: &NodeContext,
    id: BlockId,
    payload: &[u8],
) -> Result<ExecutedBlock, String> {
    let sealed = WireBlock::decode_for(payload, id).map_err(|e| e.to_string())?;
    ctx.chain.import(sealed).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GenesisSets;
    use bttd_genesis::{BttdParams, DevnetOptions, GenesisValidator, devnet_genesis};
    use bttd_keys::ValidatorKeys;
    use bttd_runtime::Chain;
    use bttd_runtime::storage::MemoryStore;
    use bttd_txpool::{Pool, PoolConfig};

    /// A chain whose genesis names four validators, and what a voter needs to check blocks.
    fn validator_chain() -> (Arc<NodeContext>, Arc<ConsensusInfo>, Vec<ValidatorKeys>) {
        let keys: Vec<ValidatorKeys> = (0..4).map(|_| ValidatorKeys::generate()).collect();
        let params = BttdParams {
            validators: keys
                .iter()
                .map(|k| GenesisValidator {
                    address: k.address(),
                    bls_public_key: k.bls_public_key(),
                    proof_of_possession: k.proof_of_possession(),
                    power: 1,
                })
                .collect(),
            ..BttdParams::default()
        };
        let (spec, _) = devnet_genesis(&DevnetOptions {
            params,
            ..DevnetOptions::default()
        })
        .expect("genesis");
        let chain = Chain::open(
            Arc::new(MemoryStore::new()),
            spec.chain_config(),
            &spec.genesis,
        )
        .unwrap();
        let sets = Arc::new(GenesisSets::new(
            spec.validator_set().unwrap(),
            spec.params.epoch_length,
        ));
        let ctx = Arc::new(NodeContext::new(
            Arc::new(chain),
            Pool::new(PoolConfig::default()),
        ));
        let info = Arc::new(ConsensusInfo::new(sets, 0, 1 << 20, None));
        (ctx, info, keys)
    }

    fn block_by(ctx: &NodeContext, miner: Address) -> Block {
        let executed = ctx
            .chain
            .build_with_extra(now_seconds(), miner, Vec::new(), Bytes::new())
            .unwrap();
        Block {
            id: executed.block.hash(),
            payload: WireBlock::encode(&executed.block).into(),
        }
    }

    /// Fault 7: nothing checked `miner`, so a proposer could credit its tips (and its
    /// `bor_getAuthor`) to any account. Voters refuse a block not mined by the proposer
    /// that proposed it fresh.
    #[test]
    fn voters_refuse_a_block_whose_miner_is_not_the_proposer() {
        let (ctx, info, _) = validator_chain();
        let set = info.sets.validator_set(1).unwrap();
        let proposer = set.proposer(1, 0);
        let own = set.validators()[proposer as usize].address;
        let other = set.validators()[(proposer as usize + 1) % 4].address;
        let chain_id = ctx.chain.genesis_hash();
        let verify = |block: &Block, proposer| {
            verify_block(&ctx, &info, &BlsVerifier, chain_id, 1, proposer, block)
        };
        let err = verify(&block_by(&ctx, other), Some(proposer)).unwrap_err();
        assert!(err.contains("is not the round's proposer"), "{err}");
        assert!(verify(&block_by(&ctx, own), Some(proposer)).is_ok());
        // A re-proposal carries no fresh proposer: its prevote quorum vouches for it.
        assert!(verify(&block_by(&ctx, other), None).is_ok());
    }

    /// Fault 3/4: bytes beside a signed or certified id that are not that block are refused
    /// before anything executes them.
    #[test]
    fn a_payload_that_is_not_the_signed_block_is_refused() {
        let (ctx, info, _) = validator_chain();
        let set = info.sets.validator_set(1).unwrap();
        let proposer = set.proposer(1, 0);
        let own = set.validators()[proposer as usize].address;
        let real = block_by(&ctx, own);
        let swapped = Block {
            id: real.id,
            payload: block_by(&ctx, set.validators()[(proposer as usize + 1) % 4].address).payload,
        };
        let err = verify_block(
            &ctx,
            &info,
            &BlsVerifier,
            ctx.chain.genesis_hash(),
            1,
            Some(proposer),
            &swapped,
        )
        .unwrap_err();
        assert!(err.contains("is not the block id"), "{err}");
        assert!(execute_decided(&ctx, real.id, &swapped.payload).is_err());
    }

    /// The engine of a full node (no key) over a real network service with no peers.
    async fn follower() -> (Engine, Arc<NodeContext>, Arc<ConsensusInfo>) {
        let (ctx, info, _) = validator_chain();
        let config = bttd_network::NetworkConfig::new(
            libp2p::identity::Keypair::generate_ed25519(),
            "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
            ctx.chain.genesis_hash(),
        );
        let (net, _events) = bttd_network::Network::start(config).await.unwrap();
        let settings = EngineSettings {
            key: None,
            block_time: Duration::from_secs(1),
            timeouts: Default::default(),
            slashing_db: std::path::PathBuf::from("/nonexistent"),
            panic_at_height: None,
        };
        let (engine, _) = Engine::new(ctx.clone(), net, info.clone(), settings).unwrap();
        (engine, ctx, info)
    }

    /// Fault 5: a full batch of blocks at wrong heights was skipped without blame and the
    /// same peer asked again, forever. Now it is garbage (the peer is banned) and no
    /// progress: the next request goes to someone else.
    #[tokio::test]
    async fn an_answer_at_wrong_heights_is_not_asked_again() {
        let (mut engine, ctx, _) = follower().await;
        let peer = PeerId::random();
        let block = block_by(&ctx, Address::ZERO);
        let wrong: Vec<CertifiedBlock> = (0..SYNC_BATCH)
            .map(|i| CertifiedBlock {
                block: block.payload.clone(),
                certificate: CommitCertificate {
                    height: 1_000 + u64::from(i),
                    round: 0,
                    block_id: block.id,
                    signature: Default::default(),
                    signers: bttd_consensus::SignerBitmap::from_indices(4, [0, 1, 2]),
                },
            })
            .collect();
        engine
            .on_synced(peer, Some(1), Ok(SyncResponse::Blocks(wrong)))
            .await;
        assert_ne!(engine.syncing_with, Some(peer), "asked the same peer again");
        let other = PeerId::random();
        let next = engine
            .sync_peers
            .choose(Some(peer), &[peer, other], Instant::now());
        assert_eq!(
            next,
            Some(other),
            "the peer that gave nothing is still preferred"
        );
    }

    /// Fault 6: one unverified message at height 2^64-1 made `eth_syncing` report syncing
    /// forever. Only verified heights move `highestBlock`.
    #[tokio::test]
    async fn an_unverified_far_height_does_not_move_highest_block() {
        let (mut engine, ctx, info) = follower().await;
        let vote = bttd_consensus::SignedVote {
            vote: bttd_consensus::Vote {
                vote_type: bttd_consensus::VoteType::Prevote,
                height: u64::MAX,
                round: 0,
                block: None,
                validator: 0,
            },
            signature: Default::default(),
        };
        let data = Envelope {
            nonce: 1,
            message: Message::Vote(vote),
        }
        .encode();
        engine
            .on_network(NetworkEvent::Gossip {
                topic: Topic::Consensus,
                from: PeerId::random(),
                author: PeerId::random(),
                message_id: libp2p::gossipsub::MessageId::new(b"forged"),
                data,
            })
            .await;
        let head = ctx.chain.head().number;
        assert_eq!(
            info.sync_progress(head),
            None,
            "eth_syncing reports a forged height"
        );
    }
}
