//! The consensus engine: drives the sans-I/O [`Machine`] over a [`Network`], a [`Runtime`]
//! and an [`Application`] (see [`crate::host`]).
//!
//! The host feeds [`Engine::handle`] one [`Event`] at a time: gossip from peers, sync requests
//! and answers, the timers the engine scheduled, and the results of the blocking work it
//! handed out (building and verifying blocks, committing, answering sync requests). Each
//! output of the machine is carried out here: broadcast, arm a timer, build or verify a block,
//! commit a decided block with its certificate, store evidence, ban a peer that sent forged
//! data.
//!
//! Blocks are executed once: the result of building or verifying a proposal is kept by block
//! id and committed as is when that block is decided; a block decided through sync is
//! executed at commit. While a commit is in flight, later outputs wait for it (they act on
//! the new head); inputs keep being applied, so votes never wait behind the disk.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes};
use bttd_consensus::bls::PublicKeyBytes;
use bttd_consensus::{
    Applied, Block, BlockId, CommitCertificate, Config, Height, Input, Machine, Message, Output,
    Reject, Round, SignedProposal, SignedVote, Signer, SignerBitmap, SlashingGuard, Step,
    TimeoutConfig, ValidatorIndex, ValidatorSetProvider, Verdict, Verifier, VoteType,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;

use crate::doppelganger::{DoppelgangerWatch, Sighting, Watch};
use crate::host::{
    Acceptance, Application, Asked, CommitFailure, Event, Internal, InternalKind, JobPanicked,
    Network, RequestTag, Runtime,
};
use crate::info::ConsensusInfo;
use crate::sync::{self, ServeLimiter, SyncPeers};
use crate::wire::{
    self, Announcement, CertifiedBlock, Envelope, Gossip, SyncRequest, SyncResponse,
};

/// How often a validator re-sends its latest messages (lossy links, late joiners), by default.
pub const REBROADCAST: Duration = Duration::from_secs(1);
/// How often the engine asks a peer for its head, to notice it fell behind, by default.
pub const STATUS_POLL: Duration = Duration::from_secs(2);
/// Blocks asked for per sync request.
pub const SYNC_BATCH: u32 = 64;
/// Blocks of announced proposals being fetched at once, from one peer and from all.
const FETCHES_PER_PEER: usize = 2;
const MAX_FETCHES: usize = 16;

/// How the engine paces and times out rounds.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Minimum interval between blocks: the proposer waits this long after the parent.
    pub block_time: Duration,
    pub timeouts: TimeoutConfig,
    /// Test-only fault injection (`--fault-panic-at-height`): panic when about to commit it.
    pub panic_at_height: Option<Height>,
    /// How often this validator re-sends its latest messages ([`REBROADCAST`]).
    pub rebroadcast: Duration,
    /// How often the engine asks a random peer for its head ([`STATUS_POLL`]).
    pub status_poll: Duration,
    /// Doppelganger protection (see [`crate::doppelganger`]): how long a validator watches
    /// for another instance of its key before it signs. `None` turns it off
    /// (`--disable-doppelganger-protection`); full nodes never watch.
    pub doppelganger: Option<DoppelgangerWatch>,
}

/// What a validator votes with: its consensus key, the account its blocks credit (the
/// header's `miner`), and its slashing-protection record, restored by the host.
pub struct Signing {
    pub signer: Box<dyn Signer>,
    pub account: Address,
    pub guard: SlashingGuard,
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
    #[error(transparent)]
    Panicked(#[from] JobPanicked),
    #[error(
        "doppelganger: a {kind} at height {height}, round {round} carries a valid signature by this validator's key, above the latest round this node's slashing-protection record says it signed in: another instance is signing with this key (or this node's record is older than what the key signed). This node signed nothing and stops, since two instances of one key equivocate and get slashed. Stop the other instance (or import its newer record with `bttd slashing-protection import`) before starting this one; only if you are sure no other instance runs, start with --disable-doppelganger-protection"
    )]
    Doppelganger {
        height: Height,
        round: Round,
        kind: &'static str,
    },
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the validator's BLS key is not in the genesis validator set")]
    NotAValidator,
    #[error(
        "the validator's account {key} is not the account {set} the validator set names for its BLS key"
    )]
    AccountMismatch { key: Address, set: Address },
}

/// Checks that the key `public_key` votes at `height` under `account`, the account its set
/// names for it. The host calls this before it opens a validator's slashing-protection record.
pub fn check_key(
    info: &ConsensusInfo,
    height: Height,
    public_key: &PublicKeyBytes,
    account: Address,
) -> Result<(), EngineError> {
    let set = info
        .sets
        .validator_set(height)
        .ok_or(EngineError::NotAValidator)?;
    let index = set.index_of(public_key).ok_or(EngineError::NotAValidator)?;
    let named = set.validators()[index as usize].address;
    if named != account {
        return Err(EngineError::AccountMismatch {
            key: account,
            set: named,
        });
    }
    Ok(())
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

    fn payload(&self, id: &BlockId) -> Option<&Bytes> {
        self.blocks.get(id).map(|(_, payload)| payload)
    }

    fn insert(&mut self, height: Height, block: Block) {
        self.blocks.insert(block.id, (height, block.payload));
    }

    /// Forgets heights below `height`.
    fn prune(&mut self, height: Height) {
        self.blocks.retain(|_, (h, _)| *h >= height);
    }
}

pub struct Engine<N: Network, R: Runtime<Event<N, A>>, A: Application> {
    net: N,
    runtime: R,
    app: Arc<A>,
    info: Arc<ConsensusInfo>,
    machine: Machine,
    verifier: Arc<dyn Verifier>,
    /// What consensus messages are signed for: the genesis hash.
    chain_id: B256,
    config: EngineConfig,
    /// The account this validator's blocks credit (zero on a full node, which never builds).
    beneficiary: Address,
    rng: StdRng,
    /// Executed proposals by block id, for the current height.
    executed: HashMap<BlockId, A::Executed>,
    /// When the head was committed (the next proposal waits for `block_time` after it).
    head_committed_at: Duration,
    nonce: u64,
    /// Peers of this chain connected now (ordered, so a seeded choice among them replays).
    peers: BTreeSet<N::Peer>,
    /// A sync request is in flight.
    syncing_with: Option<N::Peer>,
    /// Which peers to ask for blocks (rotation, and peers that gave nothing lately).
    sync_peers: SyncPeers<N::Peer>,
    /// Per-peer rate limit and in-flight cap of the sync requests this node serves.
    serve_limiter: ServeLimiter<N::Peer>,
    /// Outputs waiting for the commit in flight (they act on the head it makes).
    pending: VecDeque<Output>,
    committing: bool,
    /// A fault of this node: `handle` returns it, and the host stops the engine.
    fault: Option<EngineFault>,
    /// Payloads of proposals the machine accepted, checked against their ids already.
    accepted_payloads: AcceptedPayloads,
    /// The certificate of the head, for the next block's `extraData`.
    head_certificate: Option<CommitCertificate>,
    /// Announced proposals whose blocks are being fetched, by block id: who announced them
    /// (and is asked) and the signed proposal, completed when the block arrives.
    fetching: HashMap<BlockId, (N::Peer, SignedProposal)>,
    /// The doppelganger watch of a validator that has not signed since it started: the
    /// machine runs without a signer until it ends (see [`crate::doppelganger`]).
    watch: Option<Watch>,
    /// The signer the machine gets when the watch ends (`None` once installed, or after a
    /// sighting: then it never signs).
    withheld: Option<Box<dyn Signer>>,
    /// This validator's consensus key (the watch looks for its signatures).
    own_key: Option<PublicKeyBytes>,
}

impl<N: Network, R: Runtime<Event<N, A>>, A: Application> Engine<N, R, A> {
    /// Builds the machine at the height after the application's head; `signing` is `None` on
    /// a full node, which follows the chain without voting. `seed` drives the engine's choices
    /// of peers and its message nonces.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        net: N,
        runtime: R,
        app: Arc<A>,
        info: Arc<ConsensusInfo>,
        verifier: Arc<dyn Verifier>,
        config: EngineConfig,
        signing: Option<Signing>,
        seed: u64,
    ) -> Result<Self, EngineError> {
        let (head, _) = app.head();
        let chain_id = app.genesis_hash();
        let mut own_key = None;
        let (signer, guard, beneficiary) = match signing {
            Some(Signing {
                signer,
                account,
                guard,
            }) => {
                // A key outside the set follows as an observer until a set names it.
                match check_key(&info, head + 1, &signer.public_key(), account) {
                    Ok(()) | Err(EngineError::NotAValidator) => {}
                    Err(e) => return Err(e),
                }
                own_key = Some(signer.public_key());
                (Some(signer), guard, account)
            }
            None => (
                None,
                SlashingGuard::new(Default::default(), Box::new(bttd_consensus::guard::NoStore)),
                Address::ZERO,
            ),
        };
        let mut machine_config = Config::new(chain_id);
        machine_config.timeouts = config.timeouts;
        let provider: Arc<dyn ValidatorSetProvider> = info.sets.clone();
        let head_certificate = app.certificate(head);
        // Doppelganger protection: the machine gets the guard now (its record restores our
        // lock and round) but the signer only when the watch ends.
        let (signer, watch, withheld) = match (signer, config.doppelganger) {
            (Some(signer), Some(watch)) => {
                tracing::info!(target: "bttd::consensus", heights = watch.heights, quiet_seconds = watch.quiet.as_secs_f64(), "doppelganger protection: watching for another instance of this validator's key before signing");
                metrics::gauge!("bttd_consensus_doppelganger_watching").set(1.0);
                let w = Watch::new(watch, guard.record(), runtime.now());
                (None, Some(w), Some(signer))
            }
            (signer, _) => (signer, None, None),
        };
        let (machine, first) = Machine::new(
            machine_config,
            signer,
            guard,
            verifier.clone(),
            provider,
            head + 1,
        );
        let mut rng = StdRng::seed_from_u64(seed);
        let nonce = rand::Rng::random(&mut rng);
        let mut engine = Self {
            net,
            head_committed_at: runtime.now(),
            runtime,
            app,
            info,
            machine,
            verifier,
            chain_id,
            config,
            beneficiary,
            rng,
            executed: HashMap::new(),
            nonce,
            peers: BTreeSet::new(),
            syncing_with: None,
            sync_peers: SyncPeers::default(),
            serve_limiter: ServeLimiter::default(),
            pending: VecDeque::new(),
            committing: false,
            fault: None,
            accepted_payloads: AcceptedPayloads::default(),
            head_certificate,
            fetching: HashMap::new(),
            watch,
            withheld,
            own_key,
        };
        engine.schedule(config.rebroadcast, InternalKind::Rebroadcast);
        engine.schedule(config.status_poll, InternalKind::PollStatus);
        engine.carry_out(first);
        Ok(engine)
    }

    /// The height being decided.
    pub fn height(&self) -> Height {
        self.machine.height()
    }

    /// Bytes of next-height messages the machine holds (bounded by its configuration).
    pub fn buffered_bytes(&self) -> usize {
        self.machine.buffered_bytes()
    }

    /// The step of the machine at its height and round.
    pub fn step(&self) -> Step {
        self.machine.step()
    }

    /// The host's network (tests and the simulator look at what it sent).
    pub fn network(&self) -> &N {
        &self.net
    }

    /// Handles one event. An error is a fault of this node: the host must stop the engine.
    pub fn handle(&mut self, event: Event<N, A>) -> Result<(), EngineFault> {
        if self.fault.is_none() {
            match event {
                Event::Gossip {
                    from,
                    message_id,
                    data,
                } => self.on_gossip(from, message_id, &data),
                Event::Request {
                    peer,
                    data,
                    respond,
                } => self.serve(peer, data, respond),
                Event::Answer { peer, tag, result } => {
                    let result = result.map_err(|e| e.to_string()).and_then(|bytes| {
                        SyncResponse::decode(&bytes)
                            .map_err(|e| format!("undecodable sync response: {e}"))
                    });
                    match tag.0 {
                        Asked::ProposalBlock { id } => self.on_proposal_block(peer, id, result),
                        Asked::Blocks { from } => {
                            self.syncing_with = None;
                            self.on_answer(peer, Some(from), result);
                        }
                        Asked::Status => self.on_answer(peer, None, result),
                    }
                }
                Event::PeerConnected(peer) => {
                    if self.peers.insert(peer) {
                        self.info.peer_connected();
                    }
                    let now = self.runtime.now();
                    if let Some(watch) = &mut self.watch {
                        watch.peer_connected(now);
                    }
                    self.request(peer, SyncRequest::Status, Asked::Status);
                }
                Event::PeerDisconnected(peer) => {
                    if self.peers.remove(&peer) {
                        self.info.peer_disconnected();
                    }
                    self.serve_limiter.forget(&peer);
                }
                Event::Internal(Internal(internal)) => self.on_internal(internal),
            }
            self.end_watch_if_over();
        }
        match self.fault.take() {
            Some(fault) => {
                tracing::error!(target: "bttd::consensus", height = self.machine.height(), %fault, "consensus engine stopped by a fault of this node");
                Err(fault)
            }
            None => Ok(()),
        }
    }

    fn schedule(&mut self, after: Duration, internal: InternalKind<N, A>) {
        self.runtime
            .schedule(after, Event::Internal(Internal(internal)));
    }

    fn spawn(&mut self, job: impl FnOnce() -> InternalKind<N, A> + Send + 'static) {
        self.runtime
            .spawn_blocking(Box::new(move || Event::Internal(Internal(job()))));
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
    fn apply(&mut self, input: Input, from: Option<N::Peer>) -> Verdict {
        let watched = self.watch.as_ref().and_then(|_| Signed::of(&input));
        let by_votes = !matches!(input, Input::Commit { .. });
        let Applied { verdict, outputs } = self.machine.apply(input);
        if let (Verdict::Rejected(reason), Some(peer)) = (&verdict, from) {
            self.penalise(peer, reason);
        }
        metrics::gauge!("bttd_consensus_buffered_bytes").set(self.machine.buffered_bytes() as f64);
        // Only what the machine checked counts: a verified signature, at the height it names.
        if let Some(signed) = watched
            && matches!(
                verdict,
                Verdict::Accepted | Verdict::Buffered { verified: true }
            )
            && self.watch_saw(signed)
        {
            return verdict;
        }
        if let Some(watch) = &mut self.watch {
            let now = self.runtime.now();
            for _ in outputs
                .iter()
                .filter(|o| matches!(o, Output::Decided { .. }))
            {
                watch.decided(by_votes, now);
            }
        }
        self.carry_out(outputs);
        self.end_watch_if_over();
        verdict
    }

    /// During the doppelganger watch, a message whose signature the machine checked: if our
    /// own key signed it above our record, another instance holds the key. Then nothing is
    /// ever signed here and the engine stops with [`EngineFault::Doppelganger`]. Returns
    /// whether it was such a sighting.
    fn watch_saw(&mut self, signed: Signed) -> bool {
        let (Some(watch), Some(key)) = (&self.watch, &self.own_key) else {
            return false;
        };
        let Some(set) = self.info.sets.validator_set(signed.height) else {
            return false;
        };
        let Some(ours) = set.index_of(key) else {
            return false;
        };
        let by_us = match &signed.by {
            By::One(index) => *index == ours,
            By::Certificate(signers) => signers
                .indices(set.len())
                .is_some_and(|signers| signers.contains(&ours)),
        };
        let Some(Sighting {
            height,
            round,
            kind,
        }) = by_us
            .then(|| watch.check(signed.height, signed.round, signed.kind))
            .flatten()
        else {
            return false;
        };
        tracing::error!(target: "bttd::consensus", height, round, kind, record = ?self.machine.sign_record().latest, "DOPPELGANGER: a message signed with this validator's key, above this node's slashing-protection record, was seen; another instance is signing with this key. Not signing, stopping (--disable-doppelganger-protection turns this check off)");
        metrics::counter!("bttd_consensus_doppelganger_detected_total").increment(1);
        self.withheld = None;
        self.fault = Some(EngineFault::Doppelganger {
            height,
            round,
            kind,
        });
        true
    }

    /// Ends the doppelganger watch when it is over: the machine gets its signer and signs
    /// from now on.
    fn end_watch_if_over(&mut self) {
        let now = self.runtime.now();
        if self.fault.is_some() || !self.watch.as_ref().is_some_and(|w| w.over(now)) {
            return;
        }
        self.watch = None;
        metrics::gauge!("bttd_consensus_doppelganger_watching").set(0.0);
        let Some(signer) = self.withheld.take() else {
            return;
        };
        tracing::info!(target: "bttd::consensus", height = self.machine.height(), round = self.machine.round(), "doppelganger protection: no other instance of this validator's key seen; signing from now on");
        let outputs = self.machine.install_signer(signer);
        self.carry_out(outputs);
    }

    /// Carries out outputs in order; those after a decision wait until its commit is done.
    fn carry_out(&mut self, outputs: Vec<Output>) {
        self.pending.extend(outputs);
        while !self.committing && self.fault.is_none() {
            let Some(output) = self.pending.pop_front() else {
                break;
            };
            self.carry_out_one(output);
        }
        self.publish_status();
    }

    fn carry_out_one(&mut self, output: Output) {
        match output {
            Output::Broadcast(message) => {
                self.nonce = self.nonce.wrapping_add(1);
                let nonce = self.nonce;
                let bytes = match message {
                    // The block went out before (ours) or came from the network (the mesh
                    // relayed it): re-send only the signed proposal; a peer without the block
                    // fetches it from us.
                    Message::Proposal(proposal)
                        if self.accepted_payloads.contains(&proposal.proposal.block) =>
                    {
                        Announcement { nonce, proposal }.encode()
                    }
                    message => {
                        if let Message::Proposal(p) = &message {
                            self.accepted_payloads
                                .insert(p.proposal.height, p.proposal.block.clone());
                        }
                        Envelope { nonce, message }.encode()
                    }
                };
                self.net.publish(bytes);
            }
            Output::ScheduleTimeout {
                height,
                round,
                step,
                duration,
            } => self.schedule(
                duration,
                InternalKind::Timeout {
                    height,
                    round,
                    step,
                },
            ),
            Output::BuildProposal { height, round } => {
                // No sooner than `block_time` after the head was committed.
                let ready_at = self.head_committed_at + self.config.block_time;
                let wait = ready_at.saturating_sub(self.runtime.now());
                self.schedule(wait, InternalKind::BuildDue { height, round });
            }
            Output::VerifyBlock {
                height,
                block,
                proposer,
            } => self.verify(height, block, proposer),
            Output::Decided {
                height,
                block,
                certificate,
            } => self.commit(height, block, certificate),
            Output::Evidence(evidence) => {
                tracing::warn!(target: "bttd::consensus", offender = evidence.offender(), height = evidence.height(), "equivocation detected");
                self.info.add_evidence(evidence);
            }
        }
    }

    /// A peer sent something the machine refused. Honest peers relay only what they checked,
    /// so anything a correct node could not have sent bans the peer; a round too far ahead
    /// may be an honest peer's view, and is only refused.
    fn penalise(&mut self, peer: N::Peer, reason: &Reject) {
        metrics::counter!("bttd_consensus_rejected_total").increment(1);
        if matches!(reason, Reject::RoundTooFar) {
            tracing::debug!(target: "bttd::consensus", %peer, %reason, "consensus message refused");
        } else {
            self.net.ban(peer, format!("consensus: {reason}"));
        }
    }

    /// Builds a proposal on the head.
    fn build(&mut self, height: Height, round: Round) {
        let beneficiary = self.beneficiary;
        let parent = self.head_certificate.clone();
        let app = self.app.clone();
        let now = self.runtime.unix_seconds();
        self.spawn(move || InternalKind::Built {
            height,
            round,
            result: app.build(height, beneficiary, parent, now),
        });
    }

    /// Checks a proposed block against the block rules and executes it on the head.
    /// `proposer`: the proposer of the round that proposed it fresh, whose account must be
    /// the block's `miner` (`None` for a re-proposal, whose miner was checked by the prevote
    /// quorum that justifies it).
    fn verify(&mut self, height: Height, block: Block, proposer: Option<ValidatorIndex>) {
        let id = block.id;
        if self.executed.contains_key(&id) {
            self.schedule(
                Duration::ZERO,
                InternalKind::Verified {
                    id,
                    result: Ok(None),
                },
            );
            return;
        }
        let proposer = match proposer {
            None => None,
            Some(index) => {
                let account = self
                    .info
                    .sets
                    .validator_set(height)
                    .and_then(|set| set.validators().get(index as usize).map(|v| v.address));
                if account.is_none() {
                    // The machine names proposers of its own sets only: a bug of ours, and
                    // a block whose miner cannot be checked is not voted for.
                    tracing::error!(target: "bttd::consensus", height, index, "the machine named a proposer outside its set");
                    self.schedule(Duration::ZERO, InternalKind::Unverifiable { id });
                    return;
                }
                account
            }
        };
        let app = self.app.clone();
        let now = self.runtime.unix_seconds();
        self.spawn(move || InternalKind::Verified {
            id,
            result: app.verify(height, &block, proposer, now).map(Some),
        });
    }

    fn on_internal(&mut self, internal: InternalKind<N, A>) {
        match internal {
            InternalKind::Timeout {
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
                );
            }
            InternalKind::Rebroadcast => {
                self.schedule(self.config.rebroadcast, InternalKind::Rebroadcast);
                self.apply(Input::Rebroadcast, None);
            }
            InternalKind::PollStatus => {
                self.schedule(self.config.status_poll, InternalKind::PollStatus);
                let peers: Vec<N::Peer> = self.peers.iter().copied().collect();
                if let Some(peer) = peers.choose(&mut self.rng) {
                    self.request(*peer, SyncRequest::Status, Asked::Status);
                }
            }
            InternalKind::BuildDue { height, round } => {
                if height == self.machine.height() {
                    self.build(height, round);
                }
            }
            InternalKind::Built {
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
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(target: "bttd::consensus", height, round, error = %e, "building a proposal failed")
                }
            },
            InternalKind::Verified { id, result } => {
                let valid = match result {
                    Ok(Some(executed)) => {
                        // Stale if the head moved while it executed; the machine has moved on
                        // to the next height then and ignores the answer.
                        let on_head = A::parent_of(&executed) == self.app.head().1;
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
                self.apply(Input::BlockVerified { id, valid }, None);
            }
            InternalKind::Unverifiable { id } => {
                self.apply(Input::BlockVerified { id, valid: false }, None);
            }
            InternalKind::Committed {
                height,
                block,
                result,
            } => self.on_committed(height, block, result),
            InternalKind::Answered {
                respond,
                data,
                permit,
            } => {
                self.net.respond(respond, data);
                drop(permit);
            }
            InternalKind::Panicked(panic) => self.fault = Some(panic.into()),
        }
    }

    fn on_gossip(&mut self, from: N::Peer, message_id: N::MessageId, data: &[u8]) {
        match Gossip::decode(data) {
            Ok(Gossip::Message(envelope)) => {
                self.on_message(from, Some(message_id), envelope.message)
            }
            Ok(Gossip::Announcement(announcement)) => {
                self.on_announcement(from, message_id, announcement.proposal)
            }
            Err(e) => {
                self.net.report(message_id, from, Acceptance::Reject);
                self.net
                    .ban(from, format!("undecodable consensus message: {e}"));
            }
        }
    }

    /// A proposal re-sent without its block: completed from the blocks this node holds, or
    /// its block fetched from the peer that announced it (which holds it by construction).
    /// Never relayed before it is complete.
    fn on_announcement(
        &mut self,
        from: N::Peer,
        message_id: N::MessageId,
        mut proposal: SignedProposal,
    ) {
        let id = proposal.proposal.block.id;
        if let Some(payload) = self.accepted_payloads.payload(&id) {
            proposal.proposal.block.payload = payload.clone();
            self.on_message(from, Some(message_id), Message::Proposal(proposal));
            return;
        }
        self.net.report(message_id, from, Acceptance::Ignore);
        let from_peer = self.fetching.values().filter(|(p, _)| *p == from).count();
        if proposal.proposal.height != self.machine.height()
            || self.fetching.contains_key(&id)
            || from_peer >= FETCHES_PER_PEER
            || self.fetching.len() >= MAX_FETCHES
        {
            return;
        }
        self.fetching.insert(id, (from, proposal));
        self.request(
            from,
            SyncRequest::ProposalBlock { id },
            Asked::ProposalBlock { id },
        );
    }

    /// The block of an announced proposal arrived (or did not): the proposal is handled as if
    /// it had come whole from the peer that announced it.
    fn on_proposal_block(
        &mut self,
        peer: N::Peer,
        id: BlockId,
        result: Result<SyncResponse, String>,
    ) {
        let Some((asked, mut proposal)) = self.fetching.remove(&id) else {
            return;
        };
        debug_assert_eq!(asked, peer, "answers come from the peer asked");
        match result {
            Ok(SyncResponse::ProposalBlock(payload)) => {
                proposal.proposal.block.payload = payload;
                if let Err(e) = self.app.check_payload(&proposal.proposal.block) {
                    self.net.ban(
                        peer,
                        format!("sync: the block of an announced proposal is not that block: {e}"),
                    );
                    return;
                }
                self.on_message(peer, None, Message::Proposal(proposal));
            }
            Ok(SyncResponse::Error(reason)) | Err(reason) => {
                tracing::debug!(target: "bttd::sync", %peer, %reason, "announced proposal block not fetched")
            }
            Ok(other) => self.net.ban(
                peer,
                format!("sync: answer of the wrong kind ({})", other.kind()),
            ),
        }
    }

    /// A whole consensus message from `from` (with the network's id when it came as gossip,
    /// which gets the verdict).
    fn on_message(&mut self, from: N::Peer, message_id: Option<N::MessageId>, message: Message) {
        // The payload travels unsigned beside the signed id: it must be that block before
        // anything stores, relays or executes it. Re-broadcasts of a proposal already accepted
        // are compared byte for byte instead of decoded again.
        let payload = match &message {
            Message::Proposal(p) => Some(&p.proposal.block),
            Message::Vote(_) => None,
        };
        if let Some(block) = payload
            && !self.accepted_payloads.contains(block)
            && let Err(e) = self.app.check_payload(block)
        {
            if let Some(message_id) = message_id {
                self.net.report(message_id, from, Acceptance::Reject);
            }
            self.net.ban(
                from,
                format!("proposal payload is not the signed block: {e}"),
            );
            return;
        }
        if let Message::Vote(vote) = &message
            && self.fold_late_precommit(vote)
        {
            if let Some(signed) = self
                .watch
                .as_ref()
                .and_then(|_| Signed::of(&Input::Vote(vote.clone())))
                && self.watch_saw(signed)
            {
                return;
            }
            if let Some(message_id) = message_id {
                self.net.report(message_id, from, Acceptance::Accept);
            }
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
        let verdict = self.apply(input, Some(from));
        if let Some(block) = accepted_block
            && verdict.relay()
        {
            self.accepted_payloads.insert(height, block);
        }
        let acceptance = match &verdict {
            v if v.relay() => Acceptance::Accept,
            Verdict::Rejected(_) => Acceptance::Reject,
            _ => Acceptance::Ignore,
        };
        if let Some(message_id) = message_id {
            self.net.report(message_id, from, acceptance);
        }
        if ahead && !matches!(verdict, Verdict::Rejected(_)) {
            // A checked message of the next height proves this one was decided; anything
            // else only makes us ask (sync verifies what it gets).
            if verdict.relay() {
                self.info.saw_height(height.saturating_sub(1));
            }
            self.start_sync(Some(from));
        }
    }

    /// A precommit for the head block, in the round of the head's certificate, by a validator
    /// the certificate lacks (one slower than the first quorum): checked and folded into the
    /// certificate the next proposal carries, so the rewards that block pays count it (issue
    /// 12: every precommit the proposer received by build time). The extended certificate is
    /// adopted only if it verifies as a whole. Returns whether the vote was folded in; any
    /// other vote goes to the machine as before.
    fn fold_late_precommit(&mut self, vote: &SignedVote) -> bool {
        let Some(certificate) = &self.head_certificate else {
            return false;
        };
        let v = &vote.vote;
        if v.vote_type != VoteType::Precommit
            || v.height != certificate.height
            || v.round != certificate.round
            || v.block != Some(certificate.block_id)
        {
            return false;
        }
        let Some(set) = self.info.sets.validator_set(certificate.height) else {
            return false;
        };
        let Some(mut signers) = certificate.signers.indices(set.len()) else {
            return false;
        };
        if signers.contains(&v.validator) || v.validator as usize >= set.len() {
            return false;
        }
        let msg = certificate.sign_bytes(&self.chain_id, set.epoch());
        if !self
            .verifier
            .verify(&set, v.validator, &msg, &vote.signature)
        {
            return false;
        }
        let Some(signature) = self
            .verifier
            .aggregate(&[&certificate.signature, &vote.signature])
        else {
            return false;
        };
        signers.push(v.validator);
        let extended = CommitCertificate {
            signature,
            signers: SignerBitmap::from_indices(set.len(), signers),
            ..certificate.clone()
        };
        if extended
            .verify(&self.chain_id, &set, self.verifier.as_ref())
            .is_err()
        {
            return false;
        }
        metrics::counter!("bttd_consensus_late_precommits_total").increment(1);
        self.head_certificate = Some(extended);
        true
    }

    /// Answers a peer's sync request within the serving limits: the block of a proposal from
    /// memory at once, committed blocks on a blocking job.
    fn serve(&mut self, peer: N::Peer, data: Vec<u8>, respond: N::Responder) {
        let permit = match self.serve_limiter.admit(peer, self.runtime.now()) {
            Ok(permit) => permit,
            Err(refusal) => {
                let response = SyncResponse::Error(refusal.to_string());
                self.net.respond(respond, response.encode());
                return;
            }
        };
        let request = match SyncRequest::decode(&data) {
            Ok(SyncRequest::ProposalBlock { id }) => {
                let response = match self.accepted_payloads.payload(&id) {
                    Some(payload) => SyncResponse::ProposalBlock(payload.clone()),
                    None => SyncResponse::Error(format!("no proposal with block {id} here")),
                };
                self.net.respond(respond, response.encode());
                return;
            }
            Ok(request) => request,
            Err(e) => {
                let response = SyncResponse::Error(format!("undecodable sync request: {e}"));
                self.net.respond(respond, response.encode());
                return;
            }
        };
        let app = self.app.clone();
        let max_bytes = self.info.max_message_bytes;
        self.spawn(move || InternalKind::Answered {
            respond,
            data: sync::answer(app.as_ref(), request, max_bytes).encode(),
            permit,
        });
    }

    /// Sends a sync request; the answer comes back as [`Event::Answer`].
    fn request(&mut self, peer: N::Peer, request: SyncRequest, asked: Asked) {
        self.net.request(peer, request.encode(), RequestTag(asked));
    }

    /// Asks a peer for the blocks from our next height: `hint` if it has not failed us
    /// lately, otherwise another connected peer (rotation, so one peer cannot stall us).
    fn start_sync(&mut self, hint: Option<N::Peer>) {
        if self.syncing_with.is_some() {
            return;
        }
        let peers: Vec<N::Peer> = self.peers.iter().copied().collect();
        let now = self.runtime.now();
        let Some(peer) = self.sync_peers.choose(hint, &peers, now, &mut self.rng) else {
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
            Asked::Blocks { from },
        );
    }

    fn on_answer(
        &mut self,
        peer: N::Peer,
        asked_from: Option<Height>,
        result: Result<SyncResponse, String>,
    ) {
        let now = self.runtime.now();
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
                    self.start_sync(Some(peer));
                }
            }
            (Some(from), Ok(SyncResponse::Blocks(blocks))) => {
                self.on_synced_blocks(peer, from, blocks)
            }
            (_, Ok(SyncResponse::Error(reason))) => {
                self.sync_peers.no_progress(peer, now);
                tracing::debug!(target: "bttd::sync", %peer, %reason, "peer could not serve sync")
            }
            (_, Ok(other)) => self.net.ban(
                peer,
                format!("sync: answer of the wrong kind ({})", other.kind()),
            ),
            (_, Err(reason)) => {
                self.sync_peers.no_progress(peer, now);
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
    fn on_synced_blocks(&mut self, peer: N::Peer, from: Height, blocks: Vec<CertifiedBlock>) {
        let got = blocks.len();
        let mut progressed = 0usize;
        if self.machine.height() != from {
            // We moved on (consensus decided meanwhile); the answer is stale, not wrong.
            return;
        }
        for CertifiedBlock { block, certificate } in blocks {
            let height = self.machine.height();
            if certificate.height != height {
                self.net.ban(
                    peer,
                    format!("sync: block {} where {height} was due", certificate.height),
                );
                break;
            }
            let block = Block {
                id: certificate.block_id,
                payload: block,
            };
            if let Err(e) = self.app.check_payload(&block) {
                self.net.ban(
                    peer,
                    format!("sync: body does not match its certified header: {e}"),
                );
                break;
            }
            let verdict = self.apply(Input::Commit { block, certificate }, Some(peer));
            if verdict != Verdict::Accepted || self.fault.is_some() {
                break;
            }
            progressed += 1;
            self.info.saw_height(height);
        }
        if progressed == 0 {
            self.sync_peers.no_progress(peer, self.runtime.now());
        } else if got as u32 == SYNC_BATCH && progressed == got {
            self.start_sync(Some(peer));
        }
    }

    /// Commits a decided block with its certificate on a blocking job, executing it first if
    /// this node has not (a block that arrived through sync). Later outputs wait for it.
    fn commit(&mut self, height: Height, block: Block, certificate: CommitCertificate) {
        if self.config.panic_at_height == Some(height) {
            panic!("fault injection: panicking before committing block {height}");
        }
        let executed = self.executed.remove(&block.id);
        self.executed.clear();
        self.committing = true;
        self.head_certificate = Some(certificate.clone());
        let app = self.app.clone();
        let block_id = block.id;
        self.spawn(move || {
            let result = match executed {
                Some(executed) => Ok(executed),
                None => app.execute_decided(&block).map_err(CommitFailure::Execute),
            }
            .and_then(|executed| {
                app.commit(executed, &certificate)
                    .map_err(CommitFailure::Commit)
            });
            InternalKind::Committed {
                height,
                block: block_id,
                result,
            }
        });
    }

    fn on_committed(
        &mut self,
        height: Height,
        block: BlockId,
        result: Result<(), CommitFailure<A>>,
    ) {
        match result {
            Ok(()) => {
                self.committing = false;
                self.head_committed_at = self.runtime.now();
                self.accepted_payloads.prune(height + 1);
                self.fetching.retain(|_, (_, p)| p.proposal.height > height);
                self.carry_out(Vec::new());
                // The set of the next height may come from the block just committed (an
                // epoch's last block installs the next set): a machine that entered that
                // height without it starts now.
                self.apply(Input::ValidatorSetAvailable, None);
            }
            // A certificate of more than 2/3 of the stake for a block whose body matches its
            // header (checked on receipt) that this node cannot execute: this node's software
            // or storage is broken, not the chain, and no peer is to blame. Stop rather than
            // fork.
            Err(CommitFailure::Execute(reason)) => {
                self.fault = Some(EngineFault::DecidedBlockDoesNotExecute {
                    height,
                    block,
                    reason: reason.to_string(),
                })
            }
            Err(CommitFailure::Commit(reason)) => {
                self.fault = Some(EngineFault::Commit {
                    height,
                    reason: reason.to_string(),
                })
            }
        }
    }
}

/// Who signed an input, for the doppelganger watch.
struct Signed {
    height: Height,
    round: Round,
    kind: &'static str,
    by: By,
}

enum By {
    One(ValidatorIndex),
    Certificate(SignerBitmap),
}

impl Signed {
    fn of(input: &Input) -> Option<Self> {
        Some(match input {
            Input::Proposal(p) => Signed {
                height: p.proposal.height,
                round: p.proposal.round,
                kind: "proposal",
                by: By::One(p.proposal.proposer),
            },
            Input::Vote(v) => Signed {
                height: v.vote.height,
                round: v.vote.round,
                kind: match v.vote.vote_type {
                    VoteType::Prevote => "prevote",
                    VoteType::Precommit => "precommit",
                },
                by: By::One(v.vote.validator),
            },
            Input::Commit { certificate, .. } => Signed {
                height: certificate.height,
                round: certificate.round,
                kind: "commit certificate",
                by: By::Certificate(certificate.signers.clone()),
            },
            _ => return None,
        })
    }
}

/// The next epoch's set hash if `height` is the last block of its epoch.
pub fn next_set_commitment(info: &ConsensusInfo, height: Height) -> Option<B256> {
    if info.sets.epoch_of(height) == info.sets.epoch_of(height + 1) {
        return None;
    }
    info.sets
        .validator_set(height + 1)
        .map(|set| wire::validator_set_hash(&set))
}

#[cfg(test)]
mod tests {
    //! The engine over a host that records what it was asked to do and runs jobs at once.

    use super::*;
    use crate::GenesisSets;
    use crate::host::{Asked, RequestTag};
    use bttd_consensus::bls::BlsSecretKey;
    use bttd_consensus::{Validator, ValidatorSet, Vote};

    #[derive(Default)]
    struct RecordingNet {
        published: Vec<Vec<u8>>,
        banned: Vec<(u8, String)>,
        requests: Vec<(u8, RequestTag)>,
        responses: Vec<Vec<u8>>,
    }

    impl Network for RecordingNet {
        type Peer = u8;
        type MessageId = ();
        type Responder = ();
        type RequestError = String;
        fn publish(&mut self, data: Vec<u8>) {
            self.published.push(data);
        }
        fn report(&mut self, _: (), _: u8, _: Acceptance) {}
        fn ban(&mut self, peer: u8, reason: String) {
            self.banned.push((peer, reason));
        }
        fn request(&mut self, peer: u8, _: Vec<u8>, tag: RequestTag) {
            self.requests.push((peer, tag));
        }
        fn respond(&mut self, _: (), data: Vec<u8>) {
            self.responses.push(data);
        }
    }

    /// Timers are dropped; jobs are dropped too (these tests look at the loop's decisions).
    struct StillRuntime;

    impl<E> Runtime<E> for StillRuntime {
        fn now(&self) -> Duration {
            Duration::from_secs(100)
        }
        fn unix_seconds(&self) -> u64 {
            1_700_000_000
        }
        fn schedule(&mut self, _: Duration, _: E) {}
        fn spawn_blocking(&mut self, _: Box<dyn FnOnce() -> E + Send>) {}
    }

    /// A chain at genesis whose blocks are their own ids.
    struct GenesisOnly;

    #[derive(Debug, thiserror::Error)]
    #[error("payload is not the block id")]
    struct NotTheId;

    impl Application for GenesisOnly {
        type Executed = B256;
        type Invalid = NotTheId;
        type Fault = NotTheId;
        fn genesis_hash(&self) -> B256 {
            B256::repeat_byte(7)
        }
        fn head(&self) -> (Height, B256) {
            (0, B256::repeat_byte(7))
        }
        fn check_payload(&self, block: &Block) -> Result<(), NotTheId> {
            (block.payload[..] == block.id[..])
                .then_some(())
                .ok_or(NotTheId)
        }
        fn build(
            &self,
            _: Height,
            _: Address,
            _: Option<CommitCertificate>,
            _: u64,
        ) -> Result<(Block, B256), NotTheId> {
            Err(NotTheId)
        }
        fn verify(
            &self,
            _: Height,
            _: &Block,
            _: Option<Address>,
            _: u64,
        ) -> Result<B256, NotTheId> {
            Err(NotTheId)
        }
        fn parent_of(executed: &B256) -> B256 {
            *executed
        }
        fn execute_decided(&self, _: &Block) -> Result<B256, NotTheId> {
            Err(NotTheId)
        }
        fn commit(&self, _: B256, _: &CommitCertificate) -> Result<(), NotTheId> {
            Err(NotTheId)
        }
        fn certificate(&self, _: Height) -> Option<CommitCertificate> {
            None
        }
        fn certified_blocks(
            &self,
            _: Height,
            _: u32,
            _: usize,
        ) -> Result<Vec<CertifiedBlock>, NotTheId> {
            Ok(Vec::new())
        }
    }

    type TestEngine = Engine<RecordingNet, StillRuntime, GenesisOnly>;

    /// The engine of a full node (no key) with peers 1 and 2 connected.
    fn follower() -> (TestEngine, Arc<ConsensusInfo>) {
        let validators = (1..=4u8)
            .map(|i| Validator {
                address: Address::with_last_byte(i),
                public_key: BlsSecretKey::from_ikm(&[i; 32]).unwrap().public_key(),
                power: 1,
            })
            .collect();
        let set = ValidatorSet::new(validators, 0, 1).unwrap();
        let info = Arc::new(ConsensusInfo::new(
            Arc::new(GenesisSets::new(set, 100)),
            0,
            1 << 20,
            None,
        ));
        let config = EngineConfig {
            block_time: Duration::from_secs(1),
            timeouts: Default::default(),
            panic_at_height: None,
            rebroadcast: REBROADCAST,
            status_poll: STATUS_POLL,
            doppelganger: None,
        };
        let mut engine = Engine::new(
            RecordingNet::default(),
            StillRuntime,
            Arc::new(GenesisOnly),
            info.clone(),
            Arc::new(bttd_consensus::BlsVerifier),
            config,
            None,
            7,
        )
        .unwrap();
        for peer in [1, 2] {
            engine.handle(Event::PeerConnected(peer)).unwrap();
        }
        (engine, info)
    }

    /// Fault 5: a full batch of blocks at wrong heights was skipped without blame and the
    /// same peer asked again, forever. Now it is garbage (the peer is banned) and no
    /// progress: the next request goes to someone else.
    #[test]
    fn an_answer_at_wrong_heights_is_not_asked_again() {
        let (mut engine, _) = follower();
        let id = B256::repeat_byte(9);
        let wrong: Vec<CertifiedBlock> = (0..SYNC_BATCH)
            .map(|i| CertifiedBlock {
                block: id.0.to_vec().into(),
                certificate: CommitCertificate {
                    height: 1_000 + u64::from(i),
                    round: 0,
                    block_id: id,
                    signature: Default::default(),
                    signers: SignerBitmap::from_indices(4, [0, 1, 2]),
                },
            })
            .collect();
        engine.syncing_with = Some(1);
        engine
            .handle(Event::Answer {
                peer: 1,
                tag: RequestTag(Asked::Blocks { from: 1 }),
                result: Ok(SyncResponse::Blocks(wrong).encode()),
            })
            .unwrap();
        assert_eq!(engine.network().banned.len(), 1, "the peer is banned");
        assert_ne!(engine.syncing_with, Some(1), "asked the same peer again");
        let next =
            engine
                .sync_peers
                .choose(Some(1), &[1, 2], Duration::from_secs(100), &mut engine.rng);
        assert_eq!(
            next,
            Some(2),
            "the peer that gave nothing is still preferred"
        );
    }

    /// Fault 6: one unverified message at height 2^64-1 made `eth_syncing` report syncing
    /// forever. Only verified heights move `highestBlock`.
    #[test]
    fn an_unverified_far_height_does_not_move_highest_block() {
        let (mut engine, info) = follower();
        let vote = SignedVote {
            vote: Vote {
                vote_type: VoteType::Prevote,
                height: u64::MAX,
                round: 0,
                block: None,
                validator: 0,
            },
            signature: Default::default(),
        };
        gossip_vote(&mut engine, vote);
        assert_eq!(
            info.sync_progress(0),
            None,
            "eth_syncing reports a forged height"
        );
    }

    /// A precommit for height 1 by validator `index` of the set, for block `id` in round 0.
    fn precommit(info: &ConsensusInfo, index: u32, id: B256) -> SignedVote {
        let set = info.sets.validator_set(1).unwrap();
        let key = (1..=4u8)
            .map(|i| BlsSecretKey::from_ikm(&[i; 32]).unwrap())
            .find(|k| k.public_key() == set.validators()[index as usize].public_key)
            .unwrap();
        let vote = Vote {
            vote_type: VoteType::Precommit,
            height: 1,
            round: 0,
            block: Some(id),
            validator: index,
        };
        let signature = key.sign(&vote.sign_bytes(&GenesisOnly.genesis_hash(), 0));
        SignedVote { vote, signature }
    }

    fn gossip_vote(engine: &mut TestEngine, vote: SignedVote) {
        let data = Envelope {
            nonce: 1,
            message: Message::Vote(vote),
        }
        .encode();
        engine
            .handle(Event::Gossip {
                from: 1,
                message_id: (),
                data,
            })
            .unwrap();
    }

    /// Issue 12: the certificate a proposal carries counts every precommit its proposer
    /// received, not only the first quorum: a later valid precommit for the head block in the
    /// certificate's round is folded in; a forged one, one for another block and a repeat
    /// change nothing.
    #[test]
    fn late_precommits_extend_the_head_certificate() {
        let (mut engine, info) = follower();
        let id = B256::repeat_byte(5);
        let votes: Vec<SignedVote> = (0..4).map(|i| precommit(&info, i, id)).collect();
        let first: Vec<_> = votes[..3].iter().map(|v| &v.signature).collect();
        let set = info.sets.validator_set(1).unwrap();
        engine.head_certificate = Some(CommitCertificate {
            height: 1,
            round: 0,
            block_id: id,
            signature: bttd_consensus::BlsVerifier.aggregate(&first).unwrap(),
            signers: SignerBitmap::from_indices(4, [0, 1, 2]),
        });
        let signers = |engine: &TestEngine| {
            engine
                .head_certificate
                .as_ref()
                .unwrap()
                .signers
                .indices(4)
                .unwrap()
        };
        let mut forged = votes[3].clone();
        forged.signature = votes[2].signature;
        gossip_vote(&mut engine, forged);
        gossip_vote(&mut engine, precommit(&info, 3, B256::repeat_byte(6)));
        gossip_vote(&mut engine, votes[1].clone());
        assert_eq!(signers(&engine), vec![0, 1, 2]);
        gossip_vote(&mut engine, votes[3].clone());
        assert_eq!(signers(&engine), vec![0, 1, 2, 3]);
        let cert = engine.head_certificate.clone().unwrap();
        cert.verify(
            &GenesisOnly.genesis_hash(),
            &set,
            &bttd_consensus::BlsVerifier,
        )
        .unwrap();
    }

    /// The round's proposal for height 1, signed by its proposer, with the block `id` (whose
    /// payload, in this application, is the id's bytes).
    fn proposal(info: &ConsensusInfo, id: B256) -> SignedProposal {
        let set = info.sets.validator_set(1).unwrap();
        let proposer = set.proposer(1, 0);
        let key = (1..=4u8)
            .map(|i| BlsSecretKey::from_ikm(&[i; 32]).unwrap())
            .find(|k| k.public_key() == set.validators()[proposer as usize].public_key)
            .unwrap();
        let proposal = bttd_consensus::Proposal {
            height: 1,
            round: 0,
            pol_round: None,
            block: Block {
                id,
                payload: Bytes::copy_from_slice(id.as_slice()),
            },
            proposer,
        };
        let signature = key.sign(&proposal.sign_bytes(&GenesisOnly.genesis_hash(), 0));
        SignedProposal {
            proposal,
            signature,
        }
    }

    fn rebroadcast(engine: &mut TestEngine) {
        engine
            .handle(Event::Internal(Internal(InternalKind::Rebroadcast)))
            .unwrap();
    }

    /// Issue 10, step 6: every validator re-sent the whole proposal every second. A proposal
    /// whose block went out once is re-sent as its signed id; a peer without the block fetches
    /// it from the announcer, checks it against the id, and then serves it in turn.
    #[test]
    fn a_re_sent_proposal_is_announced_and_its_block_fetched_on_demand() {
        let (mut first, info) = follower();
        let id = B256::repeat_byte(9);
        let signed = proposal(&info, id);
        let full = Envelope {
            nonce: 1,
            message: Message::Proposal(signed.clone()),
        }
        .encode();
        first
            .handle(Event::Gossip {
                from: 1,
                message_id: (),
                data: full,
            })
            .unwrap();
        rebroadcast(&mut first);
        let announced = first.network().published.last().unwrap().clone();
        let Ok(Gossip::Announcement(announcement)) = Gossip::decode(&announced) else {
            panic!("the re-sent proposal is not an announcement");
        };
        assert_eq!(announcement.proposal.proposal.block.id, id);
        assert!(announced.len() < 250, "{} bytes", announced.len());

        // A peer that never saw the block asks the announcer for it, once.
        let (mut second, _) = follower();
        for _ in 0..2 {
            second
                .handle(Event::Gossip {
                    from: 2,
                    message_id: (),
                    data: announced.clone(),
                })
                .unwrap();
        }
        let asked = RequestTag(Asked::ProposalBlock { id });
        let fetches: Vec<_> = second
            .network()
            .requests
            .iter()
            .filter(|(_, tag)| !matches!(tag.0, Asked::Status))
            .collect();
        assert_eq!(fetches, vec![&(2, asked)]);
        // The announcer serves it from memory.
        first
            .handle(Event::Request {
                peer: 2,
                data: SyncRequest::ProposalBlock { id }.encode(),
                respond: (),
            })
            .unwrap();
        let served = first.network().responses.last().unwrap().clone();
        assert_eq!(
            SyncResponse::decode(&served).unwrap(),
            SyncResponse::ProposalBlock(Bytes::copy_from_slice(id.as_slice()))
        );
        second
            .handle(Event::Answer {
                peer: 2,
                tag: asked,
                result: Ok(served),
            })
            .unwrap();
        assert!(second.network().banned.is_empty());
        rebroadcast(&mut second);
        assert!(matches!(
            Gossip::decode(second.network().published.last().unwrap()),
            Ok(Gossip::Announcement(_))
        ));

        // A block that is not the announced one gets the announcer banned.
        let (mut third, _) = follower();
        third
            .handle(Event::Gossip {
                from: 1,
                message_id: (),
                data: announced,
            })
            .unwrap();
        third
            .handle(Event::Answer {
                peer: 1,
                tag: asked,
                result: Ok(SyncResponse::ProposalBlock(Bytes::from_static(b"other")).encode()),
            })
            .unwrap();
        assert_eq!(third.network().banned.len(), 1);
    }

    // ----- doppelganger protection -----

    /// A runtime whose clock the test sets and whose blocking jobs run at once, their events
    /// queued for the test to deliver; timers are dropped.
    struct QueueRuntime<E> {
        now: Duration,
        ready: VecDeque<E>,
    }

    impl<E: Send + 'static> Runtime<E> for QueueRuntime<E> {
        fn now(&self) -> Duration {
            self.now
        }
        fn unix_seconds(&self) -> u64 {
            1_700_000_000
        }
        fn schedule(&mut self, _: Duration, _: E) {}
        fn spawn_blocking(&mut self, job: Box<dyn FnOnce() -> E + Send>) {
            self.ready.push_back(job());
        }
    }

    /// A chain whose blocks are their own ids and always valid: executed = (parent, height, id).
    #[derive(Default)]
    struct Chain {
        head: std::sync::Mutex<(Height, B256)>,
    }

    impl Chain {
        fn head_now(&self) -> (Height, B256) {
            let head = *self.head.lock().unwrap();
            if head.0 == 0 {
                (0, GenesisOnly.genesis_hash())
            } else {
                head
            }
        }
    }

    impl Application for Chain {
        type Executed = (B256, Height, B256);
        type Invalid = NotTheId;
        type Fault = NotTheId;
        fn genesis_hash(&self) -> B256 {
            GenesisOnly.genesis_hash()
        }
        fn head(&self) -> (Height, B256) {
            self.head_now()
        }
        fn check_payload(&self, block: &Block) -> Result<(), NotTheId> {
            GenesisOnly.check_payload(block)
        }
        fn build(
            &self,
            height: Height,
            _: Address,
            _: Option<CommitCertificate>,
            _: u64,
        ) -> Result<(Block, Self::Executed), NotTheId> {
            let block = block_at(height);
            let id = block.id;
            Ok((block, (self.head_now().1, height, id)))
        }
        fn verify(
            &self,
            height: Height,
            block: &Block,
            _: Option<Address>,
            _: u64,
        ) -> Result<Self::Executed, NotTheId> {
            Ok((self.head_now().1, height, block.id))
        }
        fn parent_of(executed: &Self::Executed) -> B256 {
            executed.0
        }
        fn execute_decided(&self, block: &Block) -> Result<Self::Executed, NotTheId> {
            let (height, parent) = self.head_now();
            Ok((parent, height + 1, block.id))
        }
        fn commit(&self, executed: Self::Executed, _: &CommitCertificate) -> Result<(), NotTheId> {
            *self.head.lock().unwrap() = (executed.1, executed.2);
            Ok(())
        }
        fn certificate(&self, _: Height) -> Option<CommitCertificate> {
            None
        }
        fn certified_blocks(
            &self,
            _: Height,
            _: u32,
            _: usize,
        ) -> Result<Vec<CertifiedBlock>, NotTheId> {
            Ok(Vec::new())
        }
    }

    type Validator4 = Engine<RecordingNet, QueueRuntime<Event<RecordingNet, Chain>>, Chain>;

    /// The block proposed at `height`: its id names the height, its payload is the id.
    fn block_at(height: Height) -> Block {
        let id = B256::repeat_byte(0x40 + height as u8);
        Block {
            id,
            payload: Bytes::copy_from_slice(id.as_slice()),
        }
    }

    fn secret(i: u8) -> BlsSecretKey {
        BlsSecretKey::from_ikm(&[i; 32]).unwrap()
    }

    fn sets() -> Arc<ConsensusInfo> {
        let validators = (1..=4u8)
            .map(|i| Validator {
                address: Address::with_last_byte(i),
                public_key: secret(i).public_key(),
                power: 1,
            })
            .collect();
        let set = ValidatorSet::new(validators, 0, 1).unwrap();
        Arc::new(ConsensusInfo::new(
            Arc::new(GenesisSets::new(set, 100)),
            0,
            1 << 20,
            None,
        ))
    }

    /// The key (ikm byte) of validator `index`.
    fn key_byte(info: &ConsensusInfo, index: u32) -> u8 {
        let set = info.sets.validator_set(1).unwrap();
        (1..=4u8)
            .find(|&i| secret(i).public_key() == set.validators()[index as usize].public_key)
            .unwrap()
    }

    /// Our validator: one that proposes none of the rounds 0 of heights 1 to 3.
    fn our_index(info: &ConsensusInfo) -> u32 {
        let set = info.sets.validator_set(1).unwrap();
        (0..4)
            .find(|&i| (1..=3).all(|h| set.proposer(h, 0) != i))
            .unwrap()
    }

    /// The engine of validator [`our_index`] with slashing-protection record `record` and the
    /// watch `watch`, at 100 s with peers 1 and 2 connected.
    fn validator(
        watch: Option<DoppelgangerWatch>,
        record: bttd_consensus::SignRecord,
    ) -> (Validator4, Arc<ConsensusInfo>) {
        let info = sets();
        let me = key_byte(&info, our_index(&info));
        let config = EngineConfig {
            block_time: Duration::ZERO,
            timeouts: Default::default(),
            panic_at_height: None,
            rebroadcast: REBROADCAST,
            status_poll: STATUS_POLL,
            doppelganger: watch,
        };
        let signing = Signing {
            signer: Box::new(bttd_consensus::BlsSigner(secret(me))),
            account: Address::with_last_byte(me),
            guard: SlashingGuard::new(record, Box::new(bttd_consensus::guard::NoStore)),
        };
        let mut engine = Engine::new(
            RecordingNet::default(),
            QueueRuntime {
                now: Duration::from_secs(100),
                ready: VecDeque::new(),
            },
            Arc::new(Chain::default()),
            info.clone(),
            Arc::new(bttd_consensus::BlsVerifier),
            config,
            Some(signing),
            7,
        )
        .unwrap();
        for peer in [1, 2] {
            engine.handle(Event::PeerConnected(peer)).unwrap();
        }
        (engine, info)
    }

    const WATCH: DoppelgangerWatch = DoppelgangerWatch {
        heights: 2,
        quiet: Duration::from_secs(10),
    };

    fn vote_by(
        info: &ConsensusInfo,
        index: u32,
        vote_type: VoteType,
        height: Height,
        round: Round,
        block: Option<B256>,
    ) -> SignedVote {
        let vote = Vote {
            vote_type,
            height,
            round,
            block,
            validator: index,
        };
        let signature =
            secret(key_byte(info, index)).sign(&vote.sign_bytes(&GenesisOnly.genesis_hash(), 0));
        SignedVote { vote, signature }
    }

    /// The proposal of `block_at(height)` by the proposer of round 0.
    fn proposal_at(info: &ConsensusInfo, height: Height) -> SignedProposal {
        let set = info.sets.validator_set(height).unwrap();
        let proposer = set.proposer(height, 0);
        let proposal = bttd_consensus::Proposal {
            height,
            round: 0,
            pol_round: None,
            block: block_at(height),
            proposer,
        };
        let signature = secret(key_byte(info, proposer))
            .sign(&proposal.sign_bytes(&GenesisOnly.genesis_hash(), 0));
        SignedProposal {
            proposal,
            signature,
        }
    }

    /// Gossips `message` from peer 1, then delivers the jobs it caused until none is left.
    fn deliver(engine: &mut Validator4, message: Message) -> Result<(), EngineFault> {
        let data = Envelope { nonce: 1, message }.encode();
        engine.handle(Event::Gossip {
            from: 1,
            message_id: (),
            data,
        })?;
        while let Some(event) = engine.runtime.ready.pop_front() {
            engine.handle(event)?;
        }
        Ok(())
    }

    /// Height `height` is proposed and precommitted by the three other validators.
    fn decide_by_others(engine: &mut Validator4, info: &ConsensusInfo, height: Height) {
        deliver(engine, Message::Proposal(proposal_at(info, height))).unwrap();
        let me = our_index(info);
        for index in (0..4).filter(|&i| i != me) {
            let id = Some(block_at(height).id);
            let vote = vote_by(info, index, VoteType::Precommit, height, 0, id);
            deliver(engine, Message::Vote(vote)).unwrap();
        }
        assert_eq!(engine.height(), height + 1, "height {height} not decided");
    }

    /// The votes our validator published: (type, height, round).
    fn our_votes(engine: &Validator4, info: &ConsensusInfo) -> Vec<(VoteType, Height, Round)> {
        let me = our_index(info);
        engine
            .network()
            .published
            .iter()
            .filter_map(|data| match Gossip::decode(data) {
                Ok(Gossip::Message(Envelope {
                    message: Message::Vote(v),
                    ..
                })) if v.vote.validator == me => {
                    Some((v.vote.vote_type, v.vote.height, v.vote.round))
                }
                _ => None,
            })
            .collect()
    }

    fn tick(engine: &mut Validator4, at_secs: u64) -> Result<(), EngineFault> {
        engine.runtime.now = Duration::from_secs(at_secs);
        engine.handle(Event::Internal(Internal(InternalKind::Rebroadcast)))
    }

    fn signed_in(
        height: Height,
        round: Round,
        prevote: Option<B256>,
    ) -> bttd_consensus::SignRecord {
        bttd_consensus::SignRecord {
            latest: Some(bttd_consensus::guard::RoundRecord {
                height,
                round,
                proposal: None,
                prevote: Some(prevote),
                precommit: None,
            }),
            lock: None,
        }
    }

    /// Issue 13, item 4: a vote signed with our key above our record (another instance of the
    /// key) stops the watching validator with `EngineFault::Doppelganger`, unsigned, for good;
    /// at the current height, in a later round than the record, or buffered for the next
    /// height.
    #[test]
    fn a_twins_vote_during_the_watch_stops_the_validator_unsigned() {
        let id = Some(block_at(1).id);
        for (record, height, round) in [
            (bttd_consensus::SignRecord::default(), 1, 0),
            (signed_in(1, 0, id), 1, 1),
            (signed_in(1, 0, id), 2, 0),
        ] {
            let (mut engine, info) = validator(Some(WATCH), record);
            let me = our_index(&info);
            let twin = vote_by(&info, me, VoteType::Prevote, height, round, id);
            let fault = deliver(&mut engine, Message::Vote(twin)).unwrap_err();
            assert!(
                matches!(fault, EngineFault::Doppelganger { height: h, round: r, kind: "prevote" } if (h, r) == (height, round)),
                "{fault:?}"
            );
            assert!(
                fault
                    .to_string()
                    .contains("--disable-doppelganger-protection"),
                "{fault}"
            );
            // Whatever happens next, it never signs.
            tick(&mut engine, 200).unwrap();
            deliver(&mut engine, Message::Proposal(proposal_at(&info, 1))).unwrap();
            assert!(our_votes(&engine, &info).is_empty());
            assert_eq!(*engine.machine.sign_record(), record);
            assert!(!engine.machine.is_signing());
        }
    }

    /// Our own earlier vote (at or below our record), relayed back by a peer after a restart,
    /// is not a twin: no fault, and once the watch is over the validator signs, starting by
    /// re-sending that vote.
    #[test]
    fn our_own_earlier_vote_relayed_back_is_not_a_twin() {
        let id = Some(block_at(1).id);
        let (mut engine, info) = validator(Some(WATCH), signed_in(1, 0, id));
        let me = our_index(&info);
        let ours = vote_by(&info, me, VoteType::Prevote, 1, 0, id);
        deliver(&mut engine, Message::Vote(ours.clone())).unwrap();
        deliver(&mut engine, Message::Vote(ours)).unwrap();
        tick(&mut engine, 109).unwrap();
        assert!(
            our_votes(&engine, &info).is_empty(),
            "signed while watching"
        );
        tick(&mut engine, 110).unwrap();
        assert_eq!(our_votes(&engine, &info), vec![(VoteType::Prevote, 1, 0)]);
    }

    /// With no twin around, the validator watches two heights decided by others' votes, then
    /// signs (without a restart).
    #[test]
    fn without_a_twin_the_validator_signs_after_two_decided_heights() {
        let (mut engine, info) = validator(Some(WATCH), Default::default());
        decide_by_others(&mut engine, &info, 1);
        decide_by_others(&mut engine, &info, 2);
        assert!(
            our_votes(&engine, &info).is_empty(),
            "signed while watching"
        );
        deliver(&mut engine, Message::Proposal(proposal_at(&info, 3))).unwrap();
        assert_eq!(our_votes(&engine, &info), vec![(VoteType::Prevote, 3, 0)]);
    }

    /// On a chain that decides nothing (a whole network restarting), the watch ends after its
    /// quiet period.
    #[test]
    fn on_a_quiet_chain_the_validator_signs_after_the_quiet_period() {
        let (mut engine, info) = validator(Some(WATCH), Default::default());
        tick(&mut engine, 109).unwrap();
        assert!(!engine.machine.is_signing());
        tick(&mut engine, 110).unwrap();
        assert!(engine.machine.is_signing());
        deliver(&mut engine, Message::Proposal(proposal_at(&info, 1))).unwrap();
        assert_eq!(our_votes(&engine, &info), vec![(VoteType::Prevote, 1, 0)]);
    }

    /// `--disable-doppelganger-protection`: the validator signs at once.
    #[test]
    fn without_the_watch_the_validator_signs_at_once() {
        let (mut engine, info) = validator(None, Default::default());
        assert!(engine.machine.is_signing());
        deliver(&mut engine, Message::Proposal(proposal_at(&info, 1))).unwrap();
        assert_eq!(our_votes(&engine, &info), vec![(VoteType::Prevote, 1, 0)]);
    }

    /// A synced block whose commit certificate our key signed, above our record, is a twin
    /// too (a node catching up sees the certificates, not the votes).
    #[test]
    fn a_synced_certificate_signed_by_our_key_is_a_twin() {
        let (mut engine, info) = validator(Some(WATCH), Default::default());
        let me = our_index(&info);
        let id = block_at(1).id;
        let signers: Vec<u32> = (0..3).map(|i| (me + i) % 4).collect();
        let votes: Vec<SignedVote> = signers
            .iter()
            .map(|&i| vote_by(&info, i, VoteType::Precommit, 1, 0, Some(id)))
            .collect();
        let sigs: Vec<_> = votes.iter().map(|v| &v.signature).collect();
        let certificate = CommitCertificate {
            height: 1,
            round: 0,
            block_id: id,
            signature: bttd_consensus::BlsVerifier.aggregate(&sigs).unwrap(),
            signers: SignerBitmap::from_indices(4, signers),
        };
        let blocks = vec![CertifiedBlock {
            block: block_at(1).payload,
            certificate,
        }];
        engine.syncing_with = Some(1);
        let fault = engine
            .handle(Event::Answer {
                peer: 1,
                tag: RequestTag(Asked::Blocks { from: 1 }),
                result: Ok(SyncResponse::Blocks(blocks).encode()),
            })
            .unwrap_err();
        assert!(
            matches!(
                fault,
                EngineFault::Doppelganger {
                    height: 1,
                    kind: "commit certificate",
                    ..
                }
            ),
            "{fault:?}"
        );
    }
}
