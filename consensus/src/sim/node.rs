//! The simulated nodes and the run loop.

use super::checker::{Checker, Violation};
use super::network::{Event, NetMsg, Network, Queue};
use super::{Behaviour, Fault, Scheme, SimConfig, SimReport};
use crate::bls::{BlsSecretKey, PublicKeyBytes, SignatureBytes};
use crate::certificate::CommitCertificate;
use crate::crypto::{BlsSigner, BlsVerifier, Signer, Verifier};
use crate::guard::{SignRecord, SlashingGuard, SlashingStore, StoreError};
use crate::machine::{Applied, Config, Input, MAX_BUFFERED_BYTES, Machine, Output, Verdict};
use crate::messages::{Evidence, Message, Proposal, SignedProposal, SignedVote, Vote};
use crate::test_scheme::{TestKey, TestSigner, TestVerifier};
use crate::types::{Block, Height, VoteType};
use crate::validator_set::{StaticProvider, Validator, ValidatorSet, ValidatorSetProvider};
use alloy_primitives::{Address, B256, Bytes, FixedBytes};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Delay of the simulated block builder and verifier.
const APP_DELAY_US: u64 = 1_000;
/// At most this many blocks per sync response.
const SYNC_BATCH: usize = 16;
/// Minimum gap between two sync requests of one node.
const SYNC_GAP_US: u64 = 100_000;

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
    fn save(&mut self, record: &SignRecord) -> Result<(), StoreError> {
        *self.0.lock().map_err(|e| StoreError(e.to_string()))? = *record;
        Ok(())
    }
}

struct Node {
    identity: usize,
    behaviour: Behaviour,
    machine: Option<Machine>,
    inc: u32,
    record: Arc<Mutex<SignRecord>>,
    chain: Vec<(Block, CommitCertificate)>,
    last_sync: Option<u64>,
    built: u64,
}

struct Sim {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    q: Queue,
    net: Network,
    nodes: Vec<Node>,
    keys: Vec<Key>,
    pubkeys: Vec<PublicKeyBytes>,
    verifier: Arc<dyn Verifier>,
    provider: Arc<StaticProvider>,
    chain_id: B256,
    checker: Checker,
    trace: Sha256,
    evidence: u64,
    rejected: u64,
    events: u64,
    liveness_target: Option<Height>,
    liveness_done: bool,
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// Runs one simulation and checks its invariants.
pub fn run(cfg: &SimConfig) -> SimReport {
    let mut sim = Sim::new(cfg.clone());
    sim.run();
    sim.report()
}

impl Sim {
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
                Key::Bls(_) => unreachable!(),
            }))),
            Scheme::Bls => Arc::new(BlsVerifier),
        };
        let sets = cfg
            .epochs
            .iter()
            .enumerate()
            .map(|(e, members)| {
                let first = e as u64 * cfg.epoch_length + 1;
                let validator = |&(id, power): &(usize, u64)| Validator {
                    address: Address::with_last_byte(id as u8),
                    public_key: keys[id].signer().public_key(),
                    power,
                };
                let set = match &cfg.scheme {
                    Scheme::Test => {
                        ValidatorSet::new(members.iter().map(validator).collect(), e as u64, first)
                    }
                    Scheme::Bls => ValidatorSet::new_with_proofs(
                        members
                            .iter()
                            .map(|m| {
                                let Key::Bls(k) = &keys[m.0] else {
                                    unreachable!()
                                };
                                (validator(m), k.proof_of_possession())
                            })
                            .collect(),
                        e as u64,
                        first,
                    ),
                };
                Arc::new(set.expect("valid simulated set"))
            })
            .collect();
        let provider = Arc::new(StaticProvider::new(cfg.epoch_length, sets));
        let nodes = cfg
            .nodes
            .iter()
            .map(|s| Node {
                identity: s.identity,
                behaviour: s.behaviour,
                machine: None,
                inc: 0,
                record: Arc::new(Mutex::new(SignRecord::default())),
                chain: Vec::new(),
                last_sync: None,
                built: 0,
            })
            .collect();
        let net = Network {
            cfg: cfg.net,
            groups: None,
        };
        let mut trace = Sha256::new();
        trace.update(cfg.seed.to_be_bytes());
        Self {
            chain_id: B256::repeat_byte(0x42),
            rng,
            q: Queue::default(),
            net,
            nodes,
            pubkeys: keys.iter().map(|k| k.signer().public_key()).collect(),
            keys,
            verifier,
            provider,
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

    fn run(&mut self) {
        for f in self.cfg.faults.clone() {
            match f {
                Fault::Partition { at, heal, groups } => {
                    self.q.at(us(at), Event::Partition { groups });
                    self.q.at(us(heal), Event::Heal);
                }
                Fault::Crash { node, at, restart } => {
                    self.q.at(us(at), Event::Crash { node });
                    if let Some(r) = restart {
                        self.q.at(us(r), Event::Restart { node });
                    }
                }
            }
        }
        if let Some(l) = self.cfg.liveness {
            self.q.at(us(l.from), Event::LivenessStart);
            self.q.at(us(l.from + l.within), Event::LivenessDeadline);
        }
        for n in 0..self.nodes.len() {
            self.start_node(n);
        }
        let stop = us(self.cfg.stop_at);
        while let Some((time, ev)) = self.q.pop() {
            if time > stop {
                if self.cfg.liveness.is_some() && !self.liveness_done {
                    self.checker.violations.push(Violation::Unfinished);
                }
                break;
            }
            self.events += 1;
            self.trace_event(time, &ev);
            if self.cfg.verbose {
                eprintln!("{:>10} {}", time, describe(&ev));
            }
            self.handle(ev);
            if self.liveness_done || !self.checker.violations.is_empty() {
                break;
            }
        }
    }

    fn start_node(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        node.inc += 1;
        let guard = SlashingGuard::new(
            *node.record.lock().expect("lock"),
            Box::new(SharedStore(node.record.clone())),
        );
        let mut config = Config::new(self.chain_id);
        config.timeouts = self.cfg.timeouts;
        let height = node.chain.len() as u64 + 1;
        let provider: Arc<dyn ValidatorSetProvider> = self.provider.clone();
        let (m, out) = Machine::new(
            config,
            Some(self.keys[node.identity].signer()),
            guard,
            self.verifier.clone(),
            provider,
            height,
        );
        node.machine = Some(m);
        let inc = node.inc;
        let phase = self.rng.random_range(0..=us(self.cfg.rebroadcast));
        self.q.after(phase, Event::Rebroadcast { node: n, inc });
        self.outputs(n, out);
    }

    /// Applies a local input (timer, answer): nobody to blame.
    fn apply(&mut self, n: usize, input: Input) {
        self.apply_from(n, input, None);
    }

    /// Applies an input; `from` is the peer that sent it, whom the verdict concerns.
    fn apply_from(&mut self, n: usize, input: Input, from: Option<usize>) {
        let Some(m) = self.nodes[n].machine.as_mut() else {
            return;
        };
        let Applied { verdict, outputs } = m.apply(input);
        let buffered = m.buffered_bytes();
        if self.cfg.verbose {
            eprintln!("           node {n} {m:?} verdict {verdict:?}");
            for o in &outputs {
                eprintln!("           node {n} {m:?} -> {}", describe_out(o));
            }
        }
        if buffered > MAX_BUFFERED_BYTES {
            self.checker.violations.push(Violation::BufferOverBound {
                node: n,
                bytes: buffered,
            });
        }
        if let Verdict::Rejected(reason) = verdict {
            self.blame(n, from, reason.to_string());
        }
        self.outputs(n, outputs);
    }

    /// An honest node refused what `from` sent: the engine would penalise `from`.
    fn blame(&mut self, n: usize, from: Option<usize>, reason: String) {
        if !self.honest(n) {
            return;
        }
        self.rejected += 1;
        if let Some(from) = from.filter(|&f| self.honest(f)) {
            self.checker.violations.push(Violation::HonestBlamed {
                node: n,
                from,
                reason,
            });
        }
    }

    fn live(&self, n: usize, inc: u32) -> bool {
        self.nodes[n].inc == inc && self.nodes[n].machine.is_some()
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Deliver { to, from, msg } => self.deliver(to, from, msg),
            Event::Timeout {
                node,
                inc,
                height,
                round,
                step,
            } if self.live(node, inc) => self.apply(
                node,
                Input::TimeoutFired {
                    height,
                    round,
                    step,
                },
            ),
            Event::Built {
                node,
                inc,
                height,
                round,
                block,
            } if self.live(node, inc) => self.apply(
                node,
                Input::ProposalBuilt {
                    height,
                    round,
                    block,
                },
            ),
            Event::Verified {
                node,
                inc,
                id,
                valid,
            } if self.live(node, inc) => self.apply(node, Input::BlockVerified { id, valid }),
            Event::Rebroadcast { node, inc } if self.live(node, inc) => {
                self.apply(node, Input::Rebroadcast);
                if self.nodes[node].behaviour != Behaviour::Silent {
                    let height = self.nodes[node].chain.len() as u64 + 1;
                    for to in (0..self.nodes.len()).filter(|&t| t != node) {
                        self.net.send(
                            &mut self.q,
                            &mut self.rng,
                            node,
                            to,
                            NetMsg::Status { height },
                        );
                    }
                }
                self.q
                    .after(us(self.cfg.rebroadcast), Event::Rebroadcast { node, inc });
            }
            Event::Crash { node } => {
                self.nodes[node].machine = None;
                self.nodes[node].inc += 1;
            }
            Event::Restart { node } if self.nodes[node].machine.is_none() => self.start_node(node),
            Event::Partition { groups } => self.net.groups = Some(groups),
            Event::Heal => self.net.groups = None,
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

    /// Heights of honest, running nodes.
    fn honest_heights(&self) -> Vec<Height> {
        (0..self.nodes.len())
            .filter(|&n| self.honest(n))
            .filter_map(|n| self.nodes[n].machine.as_ref().map(|m| m.height()))
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

    fn deliver(&mut self, to: usize, from: usize, msg: NetMsg) {
        let Some(m) = self.nodes[to].machine.as_ref() else {
            return;
        };
        let my_height = m.height();
        match msg {
            NetMsg::Consensus(c) => self.deliver_consensus(to, from, my_height, c),
            NetMsg::Batch(batch) => {
                for c in batch {
                    self.deliver_consensus(to, from, my_height, c);
                }
            }
            NetMsg::Status { height } => {
                if height > my_height {
                    self.maybe_sync(to, from, my_height);
                }
            }
            NetMsg::SyncRequest { from: h } => {
                if self.nodes[to].behaviour == Behaviour::Silent {
                    return;
                }
                let chain = &self.nodes[to].chain;
                let start = (h as usize).saturating_sub(1);
                if start < chain.len() {
                    let mut batch = chain[start..chain.len().min(start + SYNC_BATCH)].to_vec();
                    if let Behaviour::FutureForger(_) = self.nodes[to].behaviour {
                        self.corrupt_sync(&mut batch);
                    }
                    self.net.send(
                        &mut self.q,
                        &mut self.rng,
                        to,
                        from,
                        NetMsg::SyncResponse(batch),
                    );
                }
            }
            NetMsg::SyncResponse(batch) => {
                // The engine's checks: each block the next height, its body the certified one.
                for (block, certificate) in batch {
                    let Some(cur) = self.nodes[to].machine.as_ref().map(|m| m.height()) else {
                        break;
                    };
                    if certificate.height < cur {
                        continue; // decided meanwhile: stale, not wrong
                    }
                    if certificate.height > cur {
                        self.blame(to, Some(from), "sync block of the wrong height".into());
                        break;
                    }
                    if B256::from_slice(&Sha256::digest(&block.payload)) != certificate.block_id {
                        self.blame(
                            to,
                            Some(from),
                            "sync body is not the certified block".into(),
                        );
                        break;
                    }
                    self.apply_from(to, Input::Commit { block, certificate }, Some(from));
                }
            }
        }
    }

    fn deliver_consensus(&mut self, to: usize, from: usize, my_height: Height, c: Message) {
        if c.height() > my_height && c.height() != u64::MAX {
            self.maybe_sync(to, from, my_height);
        }
        // The engine's check: a payload must hash to the signed id.
        if let Message::Proposal(p) = &c
            && B256::from_slice(&Sha256::digest(&p.proposal.block.payload)) != p.proposal.block.id
        {
            self.blame(to, Some(from), "payload does not match the id".into());
            return;
        }
        if let (Behaviour::FutureForger(_), Message::Proposal(p)) = (self.nodes[to].behaviour, &c) {
            self.swap_payload(to, p.clone());
        }
        let input = match c {
            Message::Proposal(p) => Input::Proposal(p),
            Message::Vote(v) => Input::Vote(v),
        };
        self.apply_from(to, input, Some(from));
    }

    fn maybe_sync(&mut self, n: usize, peer: usize, height: Height) {
        let now = self.q.now;
        let node = &mut self.nodes[n];
        if node.last_sync.is_some_and(|t| now < t + SYNC_GAP_US) {
            return;
        }
        node.last_sync = Some(now);
        self.net.send(
            &mut self.q,
            &mut self.rng,
            n,
            peer,
            NetMsg::SyncRequest { from: height },
        );
    }

    fn outputs(&mut self, n: usize, out: Vec<Output>) {
        let inc = self.nodes[n].inc;
        for o in out {
            match o {
                Output::Broadcast(msg) => self.broadcast(n, msg),
                Output::ScheduleTimeout {
                    height,
                    round,
                    step,
                    duration,
                } => {
                    self.q.after(
                        us(duration),
                        Event::Timeout {
                            node: n,
                            inc,
                            height,
                            round,
                            step,
                        },
                    );
                }
                Output::BuildProposal { height, round } => {
                    let block = self.build_block(n, height, round, true);
                    self.q.after(
                        APP_DELAY_US,
                        Event::Built {
                            node: n,
                            inc,
                            height,
                            round,
                            block,
                        },
                    );
                }
                Output::VerifyBlock { height, block, .. } => {
                    let valid = block_is_valid(&block, height);
                    self.q.after(
                        APP_DELAY_US,
                        Event::Verified {
                            node: n,
                            inc,
                            id: block.id,
                            valid,
                        },
                    );
                }
                Output::Decided {
                    height,
                    block,
                    certificate,
                } => self.on_decided(n, height, block, certificate),
                Output::Evidence(e) => {
                    if self.honest(n) {
                        self.evidence += 1;
                        self.check_evidence(&e);
                    }
                }
            }
        }
        if self.liveness_target.is_some() && !self.liveness_done {
            self.check_liveness_done();
        }
    }

    fn on_decided(
        &mut self,
        n: usize,
        height: Height,
        block: Block,
        certificate: CommitCertificate,
    ) {
        if self.honest(n) {
            let set = self
                .provider
                .validator_set(height)
                .expect("static provider");
            let check = certificate
                .verify(&self.chain_id, &set, self.verifier.as_ref())
                .map_err(|e| e.to_string());
            let check = if certificate.block_id == block.id && certificate.height == height {
                check
            } else {
                Err("certificate names another block".into())
            };
            self.checker.decided(height, block.id, check);
        }
        let node = &mut self.nodes[n];
        debug_assert_eq!(node.chain.len() as u64 + 1, height);
        node.chain.push((block, certificate));
    }

    /// A block: `ok|bad` marker, height, round, builder and a counter, with
    /// the id its hash. The marker stands for the node's block rules.
    fn build_block(&mut self, n: usize, height: Height, round: u32, valid: bool) -> Block {
        let node = &mut self.nodes[n];
        node.built += 1;
        let mut payload = Vec::with_capacity(40);
        payload.extend_from_slice(if valid { b"ok" } else { b"no" });
        payload.extend_from_slice(&height.to_be_bytes());
        payload.extend_from_slice(&round.to_be_bytes());
        payload.extend_from_slice(&(n as u64).to_be_bytes());
        payload.extend_from_slice(&node.built.to_be_bytes());
        let id = B256::from_slice(&Sha256::digest(&payload));
        self.checker.proposed(id, valid);
        Block {
            id,
            payload: Bytes::from(payload),
        }
    }

    fn broadcast(&mut self, n: usize, msg: Message) {
        let identity = self.nodes[n].identity;
        if self.honest(n) {
            let (kind, value) = match &msg {
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
            // Only our own signatures: re-gossiped votes of others are not ours.
            // Only our own signatures: relayed messages of others are not ours.
            let set = self
                .provider
                .validator_set(msg.height())
                .expect("static provider");
            let own = set.index_of(&self.pubkeys[identity]) == Some(msg.sender());
            if own {
                self.checker
                    .signed(identity, msg.height(), msg.round(), kind, value);
            }
        }
        match self.nodes[n].behaviour {
            Behaviour::Silent => {}
            Behaviour::Honest | Behaviour::Twin => self.send_all(n, &msg),
            Behaviour::ConflictingProposer => match msg {
                Message::Proposal(p) if p.proposal.pol_round.is_none() => self.split_proposal(n, p),
                other => self.send_all(n, &other),
            },
            Behaviour::BadSignatures => {
                let mut msg = msg;
                if self.rng.random_bool(0.8) {
                    corrupt(&mut msg);
                }
                self.send_all(n, &msg);
                self.forge_vote(n, &msg);
            }
            Behaviour::FutureForger(count) => {
                let precommit =
                    matches!(&msg, Message::Vote(v) if v.vote.vote_type == VoteType::Precommit);
                let height = msg.height();
                self.send_all(n, &msg);
                if precommit {
                    self.forge_future(n, height, count);
                }
            }
        }
    }

    /// Forged messages for the next height in other validators' names, plus absurd heights
    /// and rounds, all in one delivery per peer (the harness applies them one by one).
    fn forge_future(&mut self, n: usize, height: Height, count: u32) {
        let next = height + 1;
        let Some(set) = self.provider.validator_set(next) else {
            return;
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
            forged.push(Message::Vote(SignedVote {
                vote: Vote {
                    vote_type,
                    height: next,
                    round: self.rng.random_range(0..4),
                    block: Some(B256::repeat_byte(0xee)),
                    validator: self.rng.random_range(0..set.len()) as u32,
                },
                signature: FixedBytes(sig),
            }));
        }
        for (h, round) in [(u64::MAX, 0), (height, u32::MAX)] {
            forged.push(Message::Vote(SignedVote {
                vote: Vote {
                    vote_type: VoteType::Precommit,
                    height: h,
                    round,
                    block: None,
                    validator: 0,
                },
                signature: FixedBytes([7; 96]),
            }));
        }
        for to in (0..self.nodes.len()).filter(|&t| t != n) {
            self.net.send(
                &mut self.q,
                &mut self.rng,
                n,
                to,
                NetMsg::Batch(forged.clone()),
            );
        }
    }

    /// A forger serving sync: an edited body beside the real certificate, or blocks out of
    /// order (the attacks that once stopped or stalled a syncing node).
    fn corrupt_sync(&mut self, batch: &mut [(Block, CommitCertificate)]) {
        match self.rng.random_range(0..3) {
            0 => {
                if let Some((block, _)) = batch.first_mut() {
                    let mut payload = block.payload.to_vec();
                    payload.pop();
                    block.payload = Bytes::from(payload);
                }
            }
            1 => batch.reverse(),
            _ => {}
        }
    }

    /// Relays a proposal with another payload beside the same signed id.
    fn swap_payload(&mut self, n: usize, mut p: SignedProposal) {
        let mut payload = p.proposal.block.payload.to_vec();
        payload.extend_from_slice(b"swapped");
        p.proposal.block.payload = Bytes::from(payload);
        self.send_all(n, &Message::Proposal(p));
    }

    /// Evidence must name a byzantine identity.
    fn check_evidence(&mut self, e: &Evidence) {
        let Some(set) = self.provider.validator_set(e.height()) else {
            return;
        };
        let Some(key) = set
            .validators()
            .get(e.offender() as usize)
            .map(|v| v.public_key)
        else {
            return;
        };
        let Some(identity) = self.pubkeys.iter().position(|k| *k == key) else {
            return;
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

    fn send_all(&mut self, n: usize, msg: &Message) {
        for to in 0..self.nodes.len() {
            if to != n {
                self.net.send(
                    &mut self.q,
                    &mut self.rng,
                    n,
                    to,
                    NetMsg::Consensus(msg.clone()),
                );
            }
        }
    }

    /// Equivocating proposer: a second, different block signed for the same
    /// round, each half of the network getting one.
    fn split_proposal(&mut self, n: usize, first: SignedProposal) {
        let p = &first.proposal;
        let block = self.build_block(n, p.height, p.round, true);
        let second = Proposal { block, ..p.clone() };
        let set = self.provider.validator_set(p.height).expect("set");
        let signature = self.keys[self.nodes[n].identity]
            .signer()
            .sign(&second.sign_bytes(&self.chain_id, set.epoch()));
        let second = SignedProposal {
            proposal: second,
            signature,
        };
        for to in 0..self.nodes.len() {
            if to != n {
                let m = if to % 2 == 0 { &first } else { &second };
                self.net.send(
                    &mut self.q,
                    &mut self.rng,
                    n,
                    to,
                    NetMsg::Consensus(Message::Proposal(m.clone())),
                );
            }
        }
    }

    /// A vote claiming to be from another validator, with a garbage signature.
    fn forge_vote(&mut self, n: usize, msg: &Message) {
        let Some(set) = self.provider.validator_set(msg.height()) else {
            return;
        };
        let victim = self.rng.random_range(0..set.len()) as u32;
        let mut sig = [0u8; 96];
        self.rng.fill(&mut sig[..]);
        let vote = SignedVote {
            vote: Vote {
                vote_type: VoteType::Precommit,
                height: msg.height(),
                round: msg.round(),
                block: Some(B256::repeat_byte(0xee)),
                validator: victim,
            },
            signature: FixedBytes(sig),
        };
        self.send_all(n, &Message::Vote(vote));
    }

    fn trace_event(&mut self, time: u64, ev: &Event) {
        let t = &mut self.trace;
        t.update(time.to_be_bytes());
        match ev {
            Event::Deliver { to, from, msg } => {
                t.update([0, *to as u8, *from as u8]);
                match msg {
                    NetMsg::Consensus(Message::Proposal(p)) => {
                        t.update(p.proposal.block.id);
                        t.update(p.signature);
                    }
                    NetMsg::Consensus(Message::Vote(v)) => t.update(v.signature),
                    NetMsg::SyncRequest { from } => t.update(from.to_be_bytes()),
                    NetMsg::Status { height } => {
                        t.update([1]);
                        t.update(height.to_be_bytes());
                    }
                    NetMsg::SyncResponse(b) => t.update((b.len() as u64).to_be_bytes()),
                    NetMsg::Batch(b) => {
                        t.update([2]);
                        t.update((b.len() as u64).to_be_bytes());
                    }
                }
            }
            Event::Timeout {
                node,
                height,
                round,
                step,
                ..
            } => {
                t.update([1, *node as u8, *step as u8]);
                t.update(height.to_be_bytes());
                t.update(round.to_be_bytes());
            }
            Event::Built { node, block, .. } => {
                t.update([2, *node as u8]);
                t.update(block.id);
            }
            Event::Verified {
                node, id, valid, ..
            } => {
                t.update([3, *node as u8, *valid as u8]);
                t.update(id);
            }
            Event::Rebroadcast { node, .. } => t.update([4, *node as u8]),
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
            .map(|n| n.chain.len() as u64 + 1)
            .collect();
        let trace_hash = B256::from_slice(&std::mem::take(&mut self.trace).finalize());
        SimReport {
            violations: std::mem::take(&mut self.checker.violations),
            trace_hash,
            heights,
            decided: self.checker.highest(),
            evidence: self.evidence,
            rejected: self.rejected,
            events: self.events,
            end_time: Duration::from_micros(self.q.now),
            states: self
                .nodes
                .iter()
                .map(|n| match &n.machine {
                    Some(m) => format!("{:?} {:?} record={:?}", n.behaviour, m, m.sign_record()),
                    None => format!("{:?} crashed", n.behaviour),
                })
                .collect(),
        }
    }
}

fn block_is_valid(block: &Block, height: Height) -> bool {
    block.payload.len() >= 10
        && &block.payload[..2] == b"ok"
        && block.payload[2..10] == height.to_be_bytes()
        && B256::from_slice(&Sha256::digest(&block.payload)) == block.id
}

fn corrupt(msg: &mut Message) {
    let sig: &mut SignatureBytes = match msg {
        Message::Proposal(p) => &mut p.signature,
        Message::Vote(v) => &mut v.signature,
    };
    sig.0[7] ^= 0x5a;
}

fn describe_msg(m: &Message) -> String {
    match m {
        Message::Proposal(p) => format!(
            "PROPOSAL h{} r{} pol{:?} {} by {}",
            p.proposal.height,
            p.proposal.round,
            p.proposal.pol_round,
            &p.proposal.block.id.to_string()[..8],
            p.proposal.proposer
        ),
        Message::Vote(v) => format!(
            "{:?} h{} r{} {} by {}",
            v.vote.vote_type,
            v.vote.height,
            v.vote.round,
            v.vote
                .block
                .map_or("nil".to_string(), |b| b.to_string()[..8].to_string()),
            v.vote.validator
        ),
    }
}

fn describe(ev: &Event) -> String {
    match ev {
        Event::Deliver {
            to,
            from,
            msg: NetMsg::Consensus(m),
        } => format!("deliver {from}->{to} {}", describe_msg(m)),
        Event::Deliver { to, from, msg } => format!("deliver {from}->{to} {msg:?}")
            .chars()
            .take(120)
            .collect(),
        other => format!("{other:?}").chars().take(160).collect(),
    }
}

fn describe_out(o: &Output) -> String {
    match o {
        Output::Broadcast(m) => format!("broadcast {}", describe_msg(m)),
        other => format!("{other:?}").chars().take(160).collect(),
    }
}
