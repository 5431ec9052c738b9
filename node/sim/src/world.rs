//! The simulated world: nodes running the shipped engine, the links between them, faults, the
//! byzantine behaviours, and the checks on every step.
//!
//! Each node is one [`SimEngine`] over its own in-memory chain. The world pops one event at a
//! time from the queue, hands it to the node it is for, then routes what that engine asked its
//! network to do: gossip to every peer the links reach, sync requests and answers, bans (a ban
//! of an honest peer by an honest node is a violation). Byzantine nodes run the same engine;
//! the world rewrites what they send (forged, corrupted, split or swapped messages), which is
//! what an attacker controlling the node's network would do.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes, FixedBytes};
use bttd_app::NodeApp;
use bttd_consensus::bls::{BlsSecretKey, PublicKeyBytes, SignatureBytes};
use bttd_consensus::test_scheme::{TestKey, TestSigner, TestVerifier};
use bttd_consensus::{
    BlsSigner, BlsVerifier, Height, Message, Proposal, SignRecord, SignedProposal, SignedVote,
    Signer, SlashingGuard, SlashingStore, Validator, ValidatorSet, ValidatorSetProvider, Verifier,
    Vote, VoteType,
};
use bttd_engine::wire::{Envelope, Gossip, SyncResponse};
use bttd_engine::{ConsensusInfo, Engine, EngineConfig, Event as EngineEvent, RequestTag, Signing};
use bttd_genesis::{ChainSpec, DevnetOptions, devnet_genesis};
use bttd_runtime::storage::MemoryStore;
use bttd_runtime::{Chain, WireBlock};
use bttd_txpool::context::NodeContext;
use bttd_txpool::{Pool, PoolConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::checker::{Checker, Violation};
use crate::config::{Behaviour, Fault, Scheme, SimConfig, SimReport};
use crate::host::{AppLog, Out, SimApp, SimEngine, SimEvent, SimNet, SimRuntime, lock};
use crate::network::{Event, Links, Queue, Wire};
use crate::slashing::{MakeSet, SimSets};

/// How long a sync request waits for its answer (the node's request-response timeout).
const REQUEST_TIMEOUT_US: u64 = 1_000_000;
/// How often an engine asks a peer for its head.
const STATUS_POLL: Duration = Duration::from_millis(500);

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// The genesis every simulated chain starts from: the devnet's, built once per process.
fn genesis() -> &'static ChainSpec {
    static SPEC: OnceLock<ChainSpec> = OnceLock::new();
    SPEC.get_or_init(|| {
        devnet_genesis(&DevnetOptions {
            accounts: 1,
            ..DevnetOptions::default()
        })
        .expect("the devnet genesis builds")
        .0
    })
}

#[derive(Clone)]
enum Key {
    Test(TestKey),
    Bls(BlsSecretKey),
}

impl Key {
    fn signer(&self) -> Box<dyn Signer> {
        match self {
            Key::Test(k) => Box::new(TestSigner(*k)),
            Key::Bls(k) => Box::new(BlsSigner(k.clone())),
        }
    }
}

/// The slashing record "on disk": it survives crashes of its node.
struct SharedStore(Arc<Mutex<SignRecord>>);

impl SlashingStore for SharedStore {
    fn save(&mut self, record: &SignRecord) -> Result<(), bttd_consensus::guard::StoreError> {
        *lock(&self.0) = *record;
        Ok(())
    }
}

struct Node {
    identity: usize,
    behaviour: Behaviour,
    engine: Option<SimEngine>,
    /// Incarnation: events of an engine that crashed are dropped.
    inc: u32,
    /// What survives a crash: the chain and the slashing record.
    app: Arc<SimApp>,
    record: Arc<Mutex<SignRecord>>,
    info: Arc<ConsensusInfo>,
    outbox: Arc<Mutex<Vec<Out>>>,
    /// Evidence of this node already checked.
    evidence_seen: usize,
    /// Peers this node banned (and who banned it): no link between them any more.
    banned: BTreeSet<usize>,
}

/// A sync request in flight.
struct Pending {
    requester: usize,
    inc: u32,
    peer: usize,
    tag: RequestTag,
}

struct World {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    queue: Arc<Mutex<Queue>>,
    links: Links,
    nodes: Vec<Node>,
    keys: Vec<Key>,
    pubkeys: Vec<PublicKeyBytes>,
    verifier: Arc<dyn Verifier>,
    provider: Arc<SimSets>,
    chain_id: B256,
    log: Arc<Mutex<AppLog>>,
    pending: BTreeMap<u64, Pending>,
    next_request: u64,
    checker: Checker,
    trace: Sha256,
    evidence: u64,
    rejected: u64,
    events: u64,
    liveness_target: Option<Height>,
    liveness_done: bool,
}

/// Runs one simulation and checks its invariants.
pub fn run(cfg: &SimConfig) -> SimReport {
    let mut world = World::new(cfg.clone());
    world.run();
    world.report()
}

impl World {
    fn new(cfg: SimConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let keys: Vec<Key> = (0..cfg.identities)
            .map(|_| {
                let mut secret = [0u8; 32];
                rng.fill(&mut secret);
                match cfg.scheme {
                    Scheme::Test => Key::Test(TestKey(secret)),
                    Scheme::Bls => {
                        Key::Bls(BlsSecretKey::from_ikm(&secret).expect("32 bytes of ikm"))
                    }
                }
            })
            .collect();
        let verifier: Arc<dyn Verifier> = match cfg.scheme {
            Scheme::Test => Arc::new(TestVerifier::new(keys.iter().map(|k| match k {
                Key::Test(t) => *t,
                Key::Bls(_) => unreachable!("one scheme per run"),
            }))),
            Scheme::Bls => Arc::new(BlsVerifier),
        };
        let pubkeys: Vec<PublicKeyBytes> = keys.iter().map(|k| k.signer().public_key()).collect();
        let make: MakeSet = {
            let scheme = cfg.scheme;
            let epoch_length = cfg.epoch_length;
            let pubkeys = pubkeys.clone();
            let proofs: Vec<Option<SignatureBytes>> = keys
                .iter()
                .map(|k| match k {
                    Key::Bls(k) => Some(k.proof_of_possession()),
                    Key::Test(_) => None,
                })
                .collect();
            Box::new(move |e: u64, members: &[(usize, u64)]| {
                let first = e * epoch_length + 1;
                let validators = members.iter().map(|&(id, power)| Validator {
                    address: account(id),
                    public_key: pubkeys[id],
                    power,
                });
                let set = match &scheme {
                    Scheme::Test => ValidatorSet::new(validators.collect(), e, first),
                    Scheme::Bls => ValidatorSet::new_with_proofs(
                        members
                            .iter()
                            .zip(validators)
                            .map(|(m, v)| (v, proofs[m.0].expect("a BLS run has BLS keys")))
                            .collect(),
                        e,
                        first,
                    ),
                };
                Arc::new(set.expect("valid simulated set"))
            })
        };
        let provider = Arc::new(SimSets::new(
            cfg.epoch_length,
            cfg.epochs.clone(),
            pubkeys.clone(),
            cfg.tombstone_equivocators,
            make,
        ));
        let log = Arc::new(Mutex::new(AppLog::default()));
        let spec = genesis();
        let nodes = cfg
            .nodes
            .iter()
            .enumerate()
            .map(|(n, spec_node)| {
                let chain = Chain::open(
                    Arc::new(MemoryStore::new()),
                    spec.chain_config(),
                    &spec.genesis,
                )
                .expect("the genesis opens");
                let ctx = Arc::new(NodeContext::new(
                    Arc::new(chain),
                    Pool::new(PoolConfig::default()),
                ));
                let sets: Arc<dyn ValidatorSetProvider> = provider.clone();
                let info = Arc::new(ConsensusInfo::new(sets, 0, 1 << 20, None));
                let app = Arc::new(SimApp {
                    inner: NodeApp::new(ctx, info.clone(), verifier.clone()),
                    node: n,
                    log: log.clone(),
                    sets: provider.clone(),
                });
                Node {
                    identity: spec_node.identity,
                    behaviour: spec_node.behaviour,
                    engine: None,
                    inc: 0,
                    app,
                    record: Arc::new(Mutex::new(SignRecord::default())),
                    info,
                    outbox: Arc::default(),
                    evidence_seen: 0,
                    banned: BTreeSet::new(),
                }
            })
            .collect();
        let links = Links {
            cfg: cfg.net,
            groups: None,
        };
        let mut trace = Sha256::new();
        trace.update(cfg.seed.to_be_bytes());
        let chain_id = spec.genesis_hash().expect("the devnet genesis hashes");
        Self {
            rng,
            queue: Arc::default(),
            links,
            nodes,
            keys,
            pubkeys,
            verifier,
            provider,
            chain_id,
            log,
            pending: BTreeMap::new(),
            next_request: 0,
            checker: Checker::default(),
            trace,
            evidence: 0,
            rejected: 0,
            events: 0,
            liveness_target: None,
            liveness_done: false,
            cfg,
        }
    }

    fn honest(&self, node: usize) -> bool {
        !self.nodes[node].behaviour.is_byzantine()
    }

    fn at(&self, time: u64, event: Event) {
        lock(&self.queue).at(time, event);
    }

    fn now(&self) -> u64 {
        lock(&self.queue).now
    }

    fn run(&mut self) {
        for f in self.cfg.faults.clone() {
            match f {
                Fault::Partition { at, heal, groups } => {
                    self.at(us(at), Event::Partition { groups });
                    self.at(us(heal), Event::Heal);
                }
                Fault::Crash { node, at, restart } => {
                    self.at(us(at), Event::Crash { node });
                    if let Some(r) = restart {
                        self.at(us(r), Event::Restart { node });
                    }
                }
            }
        }
        if let Some(l) = self.cfg.liveness {
            self.at(us(l.from), Event::LivenessStart);
            self.at(us(l.from + l.within), Event::LivenessDeadline);
        }
        for n in 0..self.nodes.len() {
            self.start_node(n);
        }
        let stop = us(self.cfg.stop_at);
        loop {
            let Some((time, event)) = lock(&self.queue).pop() else {
                break;
            };
            if time > stop {
                if self.cfg.liveness.is_some() && !self.liveness_done {
                    self.checker.violations.push(Violation::Unfinished);
                }
                break;
            }
            self.events += 1;
            self.trace_event(time, &event);
            if self.cfg.verbose {
                eprintln!("{time:>10} {}", describe(&event));
            }
            self.handle(event);
            if self.liveness_done || !self.checker.violations.is_empty() {
                break;
            }
        }
    }

    /// Starts (or restarts) a node's engine from its chain and slashing record.
    fn start_node(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        node.inc += 1;
        let guard = SlashingGuard::new(
            *lock(&node.record),
            Box::new(SharedStore(node.record.clone())),
        );
        let runtime = SimRuntime {
            node: n,
            inc: node.inc,
            queue: self.queue.clone(),
            epoch_seconds: genesis().genesis.timestamp,
        };
        let net = SimNet {
            outbox: node.outbox.clone(),
        };
        let config = EngineConfig {
            block_time: Duration::ZERO,
            timeouts: self.cfg.timeouts,
            panic_at_height: None,
            rebroadcast: self.cfg.rebroadcast,
            status_poll: STATUS_POLL,
            // The twins scenarios need both instances to sign; restarts stay immediate.
            doppelganger: None,
        };
        let signing = Signing {
            signer: self.keys[node.identity].signer(),
            account: account(node.identity),
            guard,
        };
        let seed = self.cfg.seed ^ ((n as u64) << 32) ^ u64::from(node.inc);
        let engine = Engine::new(
            net,
            runtime,
            node.app.clone(),
            node.info.clone(),
            self.verifier.clone(),
            config,
            Some(signing),
            seed,
        )
        .expect("a simulated key is either in the set or an observer");
        self.nodes[n].engine = Some(engine);
        self.flush(n);
        for peer in 0..self.nodes.len() {
            if peer != n && self.nodes[peer].engine.is_some() {
                self.feed(n, EngineEvent::PeerConnected(peer));
                self.feed(peer, EngineEvent::PeerConnected(n));
            }
        }
    }

    /// Hands one event to a node's engine, then routes what it sent and checks the node.
    fn feed(&mut self, n: usize, event: SimEvent) {
        let Some(engine) = self.nodes[n].engine.as_mut() else {
            return;
        };
        if let Err(fault) = engine.handle(event) {
            self.checker.violations.push(Violation::EngineFault {
                node: n,
                reason: fault.to_string(),
            });
            self.nodes[n].engine = None;
        }
        if let Some(engine) = &self.nodes[n].engine {
            let buffered = engine.buffered_bytes();
            if buffered > bttd_consensus::machine::MAX_BUFFERED_BYTES {
                self.checker.violations.push(Violation::BufferOverBound {
                    node: n,
                    bytes: buffered,
                });
            }
        }
        self.flush(n);
        self.check_decisions();
        self.check_evidence(n);
        if self.liveness_target.is_some() && !self.liveness_done {
            self.check_liveness_done();
        }
    }

    /// Routes what node `n`'s engine sent.
    fn flush(&mut self, n: usize) {
        let outs = std::mem::take(&mut *lock(&self.nodes[n].outbox));
        for out in outs {
            match out {
                Out::Publish(data) => self.publish(n, data),
                Out::Ban(peer, reason) => self.ban(n, peer, reason),
                Out::Request(peer, data, tag) => {
                    self.next_request += 1;
                    let id = self.next_request;
                    self.pending.insert(
                        id,
                        Pending {
                            requester: n,
                            inc: self.nodes[n].inc,
                            peer,
                            tag,
                        },
                    );
                    self.send(n, peer, Wire::Request { id, data });
                    lock(&self.queue).after(REQUEST_TIMEOUT_US, Event::RequestTimeout { id });
                }
                Out::Respond(id, data) => {
                    if self.nodes[n].behaviour == Behaviour::Silent {
                        continue;
                    }
                    let data = match self.nodes[n].behaviour {
                        Behaviour::FutureForger(_) => self.corrupt_sync(data),
                        _ => data,
                    };
                    if let Some(p) = self.pending.get(&id) {
                        let to = p.requester;
                        self.send(n, to, Wire::Answer { id, data });
                    }
                }
            }
        }
    }

    fn send(&mut self, from: usize, to: usize, wire: Wire) {
        if self.nodes[from].banned.contains(&to) || self.nodes[to].banned.contains(&from) {
            return;
        }
        let mut queue = lock(&self.queue);
        self.links.send(&mut queue, &mut self.rng, from, to, wire);
    }

    fn send_all(&mut self, from: usize, messages: Vec<Vec<u8>>) {
        for to in 0..self.nodes.len() {
            if to != from {
                self.send(from, to, Wire::Gossip(messages.clone()));
            }
        }
    }

    /// An engine's gossip, as its behaviour sends it.
    fn publish(&mut self, n: usize, data: Vec<u8>) {
        let msg = match Gossip::decode(&data) {
            Ok(Gossip::Message(envelope)) => envelope.message,
            // A re-sent proposal without its block: signed as the proposal was.
            Ok(Gossip::Announcement(announcement)) => {
                if self.honest(n) {
                    self.record_signed(n, &Message::Proposal(announcement.proposal));
                }
                if self.nodes[n].behaviour != Behaviour::Silent {
                    self.send_all(n, vec![data]);
                }
                return;
            }
            Err(e) => {
                self.checker.violations.push(Violation::EngineFault {
                    node: n,
                    reason: format!("published an undecodable message: {e}"),
                });
                return;
            }
        };
        if self.honest(n) {
            self.record_signed(n, &msg);
        }
        match self.nodes[n].behaviour {
            Behaviour::Silent => {}
            Behaviour::Honest | Behaviour::Twin => self.send_all(n, vec![data]),
            Behaviour::ConflictingProposer => match msg {
                Message::Proposal(p) if p.proposal.pol_round.is_none() => {
                    self.split_proposal(n, data, p)
                }
                _ => self.send_all(n, vec![data]),
            },
            Behaviour::BadSignatures => {
                let mut msg = msg;
                if self.rng.random_bool(0.8) {
                    corrupt(&mut msg);
                }
                let forged = self.forge_vote(&msg);
                self.send_all(n, vec![encode(msg), encode(forged)]);
            }
            Behaviour::FutureForger(count) => {
                let precommit =
                    matches!(&msg, Message::Vote(v) if v.vote.vote_type == VoteType::Precommit);
                let height = msg.height();
                self.send_all(n, vec![data]);
                if precommit {
                    let forged = self.forge_future(height, count);
                    self.send_all(n, forged);
                }
            }
        }
    }

    /// Checks an honest node's own signatures for equivocation.
    fn record_signed(&mut self, n: usize, msg: &Message) {
        let identity = self.nodes[n].identity;
        let (kind, value) = match msg {
            Message::Proposal(p) => (0, Some(p.proposal.block.id)),
            Message::Vote(v) => (
                if v.vote.vote_type == VoteType::Prevote {
                    1
                } else {
                    2
                },
                v.vote.block,
            ),
        };
        let Some(set) = self.provider.validator_set(msg.height()) else {
            return;
        };
        if set.index_of(&self.pubkeys[identity]) == Some(msg.sender()) {
            self.checker
                .signed(identity, msg.height(), msg.round(), kind, value);
        }
    }

    /// A ban by node `n`: a violation if both are honest; the link between them goes.
    fn ban(&mut self, n: usize, peer: usize, reason: String) {
        if !self.honest(n) {
            return;
        }
        self.rejected += 1;
        if self.honest(peer) {
            self.checker.violations.push(Violation::HonestBlamed {
                node: n,
                from: peer,
                reason,
            });
        }
        self.nodes[n].banned.insert(peer);
    }

    fn live(&self, n: usize, inc: u32) -> bool {
        self.nodes[n].inc == inc && self.nodes[n].engine.is_some()
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Deliver { to, from, wire } => self.deliver(to, from, wire),
            Event::Timer { node, inc, event } if self.live(node, inc) => self.feed(node, *event),
            Event::Job { node, inc, job } if self.live(node, inc) => {
                let event = job();
                self.feed(node, event);
            }
            Event::RequestTimeout { id } => {
                if let Some(p) = self.pending.remove(&id)
                    && self.live(p.requester, p.inc)
                {
                    self.feed(
                        p.requester,
                        EngineEvent::Answer {
                            peer: p.peer,
                            tag: p.tag,
                            result: Err("request timed out".into()),
                        },
                    );
                }
            }
            Event::Crash { node } if self.nodes[node].engine.is_some() => {
                self.nodes[node].engine = None;
                self.nodes[node].inc += 1;
                lock(&self.nodes[node].outbox).clear();
                for peer in 0..self.nodes.len() {
                    if peer != node {
                        self.feed(peer, EngineEvent::PeerDisconnected(node));
                    }
                }
            }
            Event::Restart { node } if self.nodes[node].engine.is_none() => self.start_node(node),
            Event::Partition { groups } => self.links.groups = Some(groups),
            Event::Heal => self.links.groups = None,
            Event::LivenessStart => {
                let l = self.cfg.liveness.expect("liveness configured");
                let start = self.honest_heights().into_iter().max().unwrap_or(1);
                self.liveness_target = Some(start + l.heights);
                self.check_liveness_done();
            }
            Event::LivenessDeadline if !self.liveness_done => {
                let needed = self.liveness_target.unwrap_or(0);
                self.checker.violations.push(Violation::Liveness {
                    from_height: needed.saturating_sub(self.cfg.liveness.map_or(0, |l| l.heights)),
                    reached: self.honest_heights(),
                    needed,
                });
            }
            _ => {}
        }
    }

    fn deliver(&mut self, to: usize, from: usize, wire: Wire) {
        if self.nodes[to].engine.is_none() {
            return;
        }
        match wire {
            Wire::Gossip(messages) => {
                for data in messages {
                    if let Behaviour::FutureForger(_) = self.nodes[to].behaviour {
                        self.swap_payload(to, &data);
                    }
                    self.feed(
                        to,
                        EngineEvent::Gossip {
                            from,
                            message_id: (),
                            data,
                        },
                    );
                }
            }
            Wire::Request { id, data } => self.feed(
                to,
                EngineEvent::Request {
                    peer: from,
                    data,
                    respond: id,
                },
            ),
            Wire::Answer { id, data } => {
                if let Some(p) = self.pending.remove(&id)
                    && p.requester == to
                    && self.live(to, p.inc)
                {
                    self.feed(
                        to,
                        EngineEvent::Answer {
                            peer: from,
                            tag: p.tag,
                            result: Ok(data),
                        },
                    );
                }
            }
        }
    }

    /// Checks what honest nodes committed since the last look.
    fn check_decisions(&mut self) {
        let log = &mut *lock(&self.log);
        for id in log.built.drain(..) {
            self.checker.proposed(id, true);
        }
        for (node, height, id, certificate) in log.decided.drain(..) {
            if self.nodes[node].behaviour.is_byzantine() {
                continue;
            }
            let set = self
                .provider
                .validator_set(height)
                .expect("static provider");
            let check = if certificate.block_id == id && certificate.height == height {
                certificate
                    .verify(&self.chain_id, &set, self.verifier.as_ref())
                    .map_err(|e| e.to_string())
            } else {
                Err("certificate names another block".into())
            };
            self.checker.decided(height, id, check);
        }
    }

    /// Evidence an honest node recorded must name a byzantine identity.
    fn check_evidence(&mut self, n: usize) {
        if !self.honest(n) {
            return;
        }
        let all = self.nodes[n].info.evidence();
        for e in &all[self.nodes[n].evidence_seen..] {
            self.evidence += 1;
            let Some(set) = self.provider.validator_set(e.height()) else {
                continue;
            };
            let Some(key) = set
                .validators()
                .get(e.offender() as usize)
                .map(|v| v.public_key)
            else {
                continue;
            };
            let Some(identity) = self.pubkeys.iter().position(|k| *k == key) else {
                continue;
            };
            let byzantine = self
                .nodes
                .iter()
                .any(|node| node.identity == identity && node.behaviour.is_byzantine());
            if !byzantine {
                self.checker.violations.push(Violation::FalseEvidence {
                    identity,
                    height: e.height(),
                });
            }
        }
        self.nodes[n].evidence_seen = all.len();
    }

    /// Heights being decided by honest, running nodes.
    fn honest_heights(&self) -> Vec<Height> {
        (0..self.nodes.len())
            .filter(|&n| self.honest(n))
            .filter_map(|n| self.nodes[n].engine.as_ref().map(|e| e.height()))
            .collect()
    }

    fn check_liveness_done(&mut self) {
        if let Some(t) = self.liveness_target {
            let hs = self.honest_heights();
            if !hs.is_empty() && hs.iter().all(|&h| h >= t) {
                self.liveness_done = true;
            }
        }
    }

    /// Equivocating proposer: a second block for the same round (the same parent, one second
    /// later), signed too, each half of the network getting one.
    fn split_proposal(&mut self, n: usize, first: Vec<u8>, signed: SignedProposal) {
        let p = &signed.proposal;
        let second = WireBlock::decode_for(&p.block.payload, p.block.id)
            .ok()
            .and_then(|block| {
                let app = &self.nodes[n].app.inner;
                let parent = (p.height > 1)
                    .then(|| bttd_engine::Application::certificate(app, p.height - 1))
                    .flatten();
                bttd_engine::Application::build(
                    app,
                    p.height,
                    account(self.nodes[n].identity),
                    parent,
                    block.header.timestamp + 1,
                )
                .ok()
            });
        let Some((block, _)) = second else {
            self.send_all(n, vec![first]);
            return;
        };
        lock(&self.log).built.push(block.id);
        let proposal = Proposal { block, ..p.clone() };
        let set = self.provider.validator_set(p.height).expect("set");
        let signature = self.keys[self.nodes[n].identity]
            .signer()
            .sign(&proposal.sign_bytes(&self.chain_id, set.epoch()));
        let second = encode(Message::Proposal(SignedProposal {
            proposal,
            signature,
        }));
        for to in 0..self.nodes.len() {
            if to != n {
                let data = if to % 2 == 0 { &first } else { &second };
                self.send(n, to, Wire::Gossip(vec![data.clone()]));
            }
        }
    }

    /// Forged messages for the next height in other validators' names, plus absurd heights
    /// and rounds, all in one delivery per peer.
    fn forge_future(&mut self, height: Height, count: u32) -> Vec<Vec<u8>> {
        let next = height + 1;
        let Some(set) = self.provider.validator_set(next) else {
            return Vec::new();
        };
        let mut forged = Vec::with_capacity(count as usize + 2);
        for i in 0..count {
            let mut sig = [0u8; 96];
            self.rng.fill(&mut sig[..]);
            let vote_type = if i % 2 == 0 {
                VoteType::Prevote
            } else {
                VoteType::Precommit
            };
            forged.push(encode(Message::Vote(SignedVote {
                vote: Vote {
                    vote_type,
                    height: next,
                    round: self.rng.random_range(0..4),
                    block: Some(B256::repeat_byte(0xee)),
                    validator: self.rng.random_range(0..set.len()) as u32,
                },
                signature: FixedBytes(sig),
            })));
        }
        for (h, round) in [(u64::MAX, 0), (height, u32::MAX)] {
            forged.push(encode(Message::Vote(SignedVote {
                vote: Vote {
                    vote_type: VoteType::Precommit,
                    height: h,
                    round,
                    block: None,
                    validator: 0,
                },
                signature: FixedBytes([7; 96]),
            })));
        }
        forged
    }

    /// A forger serving sync: an edited body beside the real certificate, or blocks out of
    /// order (the attacks that once stopped or stalled a syncing node).
    fn corrupt_sync(&mut self, data: Vec<u8>) -> Vec<u8> {
        let mut blocks = match SyncResponse::decode(&data) {
            Ok(SyncResponse::Blocks(blocks)) => blocks,
            Ok(SyncResponse::ProposalBlock(block)) if self.rng.random_bool(0.5) => {
                let mut edited = block.to_vec();
                edited.pop();
                return SyncResponse::ProposalBlock(edited.into()).encode();
            }
            _ => return data,
        };
        match self.rng.random_range(0..3) {
            0 => {
                if let Some(first) = blocks.first_mut() {
                    let mut payload = first.block.to_vec();
                    payload.pop();
                    first.block = Bytes::from(payload);
                }
            }
            1 => blocks.reverse(),
            _ => {}
        }
        SyncResponse::Blocks(blocks).encode()
    }

    /// A forger relays every proposal it receives with another payload beside the same
    /// signed id.
    fn swap_payload(&mut self, n: usize, data: &[u8]) {
        let Ok(Envelope {
            message: Message::Proposal(mut p),
            ..
        }) = Envelope::decode(data)
        else {
            return;
        };
        let mut payload = p.proposal.block.payload.to_vec();
        payload.extend_from_slice(b"swapped");
        p.proposal.block.payload = Bytes::from(payload);
        self.send_all(n, vec![encode(Message::Proposal(p))]);
    }

    /// A vote claiming to be from another validator, with a garbage signature.
    fn forge_vote(&mut self, msg: &Message) -> Message {
        let victim = self
            .provider
            .validator_set(msg.height())
            .map_or(0, |set| self.rng.random_range(0..set.len()) as u32);
        let mut sig = [0u8; 96];
        self.rng.fill(&mut sig[..]);
        Message::Vote(SignedVote {
            vote: Vote {
                vote_type: VoteType::Precommit,
                height: msg.height(),
                round: msg.round(),
                block: Some(B256::repeat_byte(0xee)),
                validator: victim,
            },
            signature: FixedBytes(sig),
        })
    }

    fn trace_event(&mut self, time: u64, event: &Event) {
        let t = &mut self.trace;
        t.update(time.to_be_bytes());
        match event {
            Event::Deliver { to, from, wire } => {
                t.update([0, *to as u8, *from as u8]);
                match wire {
                    Wire::Gossip(messages) => {
                        for m in messages {
                            t.update(Sha256::digest(m));
                        }
                    }
                    Wire::Request { id, data } | Wire::Answer { id, data } => {
                        t.update(id.to_be_bytes());
                        t.update(Sha256::digest(data));
                    }
                }
            }
            Event::Timer { node, inc, .. } => t.update([1, *node as u8, *inc as u8]),
            Event::Job { node, inc, .. } => t.update([2, *node as u8, *inc as u8]),
            Event::RequestTimeout { id } => {
                t.update([3]);
                t.update(id.to_be_bytes());
            }
            Event::Crash { node } => t.update([5, *node as u8]),
            Event::Restart { node } => t.update([6, *node as u8]),
            Event::Partition { groups } => {
                t.update([7]);
                t.update(groups);
            }
            Event::Heal => t.update([8]),
            Event::LivenessStart => t.update([9]),
            Event::LivenessDeadline => t.update([10]),
        }
    }

    fn report(mut self) -> SimReport {
        let heights = self
            .nodes
            .iter()
            .map(|n| bttd_engine::Application::head(n.app.as_ref()).0 + 1)
            .collect();
        let trace_hash = B256::from_slice(&std::mem::take(&mut self.trace).finalize());
        let end_time = Duration::from_micros(self.now());
        SimReport {
            violations: std::mem::take(&mut self.checker.violations),
            trace_hash,
            heights,
            decided: self.checker.highest(),
            evidence: self.evidence,
            rejected: self.rejected,
            events: self.events,
            end_time,
            slashed: self.provider.slashed().into_iter().collect(),
            final_set: {
                let top = self.checker.highest().max(1);
                self.provider
                    .validator_set(top)
                    .map(|set| {
                        set.validators()
                            .iter()
                            .filter_map(|v| self.provider.identity_of(&v.public_key))
                            .collect()
                    })
                    .unwrap_or_default()
            },
            states: self
                .nodes
                .iter()
                .map(|n| match &n.engine {
                    Some(e) => format!(
                        "{:?} height {} round step {:?}",
                        n.behaviour,
                        e.height(),
                        e.step()
                    ),
                    None => format!("{:?} crashed", n.behaviour),
                })
                .collect(),
        }
    }
}

/// One line about an event, for `SimConfig::verbose`.
fn describe(event: &Event) -> String {
    let message = |data: &[u8]| match Gossip::decode(data) {
        Ok(Gossip::Announcement(a)) => format!(
            "ANNOUNCEMENT h{} r{} {} by {}",
            a.proposal.proposal.height,
            a.proposal.proposal.round,
            &a.proposal.proposal.block.id.to_string()[..10],
            a.proposal.proposal.proposer
        ),
        Ok(Gossip::Message(Envelope {
            message: Message::Proposal(p),
            ..
        })) => format!(
            "PROPOSAL h{} r{} pol{:?} {} by {}",
            p.proposal.height,
            p.proposal.round,
            p.proposal.pol_round,
            &p.proposal.block.id.to_string()[..10],
            p.proposal.proposer
        ),
        Ok(Gossip::Message(Envelope {
            message: Message::Vote(v),
            ..
        })) => format!(
            "{:?} h{} r{} {} by {}",
            v.vote.vote_type,
            v.vote.height,
            v.vote.round,
            v.vote
                .block
                .map_or("nil".to_string(), |b| b.to_string()[..10].to_string()),
            v.vote.validator
        ),
        Err(e) => format!("undecodable ({e})"),
    };
    match event {
        Event::Deliver { to, from, wire } => match wire {
            Wire::Gossip(messages) if messages.len() == 1 => {
                format!("deliver {from}->{to} {}", message(&messages[0]))
            }
            Wire::Gossip(messages) => format!("deliver {from}->{to} {} messages", messages.len()),
            Wire::Request { id, data } => {
                format!("deliver {from}->{to} request {id} ({} bytes)", data.len())
            }
            Wire::Answer { id, data } => {
                format!("deliver {from}->{to} answer {id} ({} bytes)", data.len())
            }
        },
        Event::Timer { node, inc, .. } => format!("timer of node {node} ({inc})"),
        Event::Job { node, inc, .. } => format!("job of node {node} ({inc})"),
        Event::RequestTimeout { id } => format!("request {id} timed out"),
        Event::Crash { node } => format!("crash {node}"),
        Event::Restart { node } => format!("restart {node}"),
        Event::Partition { groups } => format!("partition {groups:?}"),
        Event::Heal => "heal".into(),
        Event::LivenessStart => "liveness start".into(),
        Event::LivenessDeadline => "liveness deadline".into(),
    }
}

/// The account of a simulated identity (its blocks' miner).
fn account(identity: usize) -> Address {
    Address::with_last_byte(identity as u8 + 1)
}

fn encode(message: Message) -> Vec<u8> {
    Envelope { nonce: 0, message }.encode()
}

fn corrupt(msg: &mut Message) {
    let sig: &mut SignatureBytes = match msg {
        Message::Proposal(p) => &mut p.signature,
        Message::Vote(v) => &mut v.signature,
    };
    sig.0[7] ^= 0x5a;
}
