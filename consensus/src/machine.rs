//! The Tendermint state machine (Buchman, Kwon, Milosevic, "The latest gossip
//! on BFT consensus", 2018, Algorithm 1), sans I/O.
//!
//! [`Machine::apply`] takes one [`Input`] and returns the [`Output`]s it
//! causes; it never reads a clock, touches a socket or draws randomness, so an
//! engine (the node's task, or the simulator) decides when things happen and
//! the same inputs always give the same outputs. After each input the machine
//! re-evaluates the paper's `upon` rules until none fires, which handles
//! conditions that become true in any order (a quorum before the proposal, a
//! verification result after both).
//!
//! Line numbers in comments refer to Algorithm 1 of the paper. Deviations:
//! - `getValue()` and `valid(v)` are asynchronous: the machine asks with
//!   `BuildProposal` / `VerifyBlock` and the engine answers with
//!   `ProposalBuilt` / `BlockVerified`; rules needing `valid(v)` wait.
//! - The proposer also arms its propose timeout, in case building stalls.
//! - Values are identified by block id: lines 36 and 49 accept the block from
//!   any proposal of the height once a quorum names its id.
//! - `Commit` (block sync) decides a height from a verified certificate.
//! - `Rebroadcast` re-sends this validator's latest messages: the paper
//!   assumes gossip that eventually delivers; over a lossy network that means
//!   retransmission.
//! - Every signature passes the [`SlashingGuard`] first; a restarted
//!   validator restores its lock and round from the guard's record.

use crate::bls::SignatureBytes;
use crate::certificate::{CertificateError, CommitCertificate, SignerBitmap};
use crate::crypto::{Signer, Verifier};
use crate::guard::{SignRecord, SlashingGuard};
use crate::messages::{Evidence, Message, Proposal, SignedProposal, SignedVote, Vote};
use crate::timeouts::TimeoutConfig;
use crate::types::{Block, BlockId, Height, Round, Step, ValidatorIndex, VoteType, is_one_third};
use crate::validator_set::{ValidatorSet, ValidatorSetProvider};
use crate::votes::{AddVote, HeightVotes};
use alloy_primitives::B256;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Static parameters of a machine.
#[derive(Clone, Debug)]
pub struct Config {
    /// Genesis hash: the chain's signing domain.
    pub chain: B256,
    /// Timeout schedule.
    pub timeouts: TimeoutConfig,
    /// Messages for rounds further ahead of ours are dropped (memory bound).
    pub max_round_ahead: Round,
    /// Messages kept for future heights (memory bound).
    pub max_buffered: usize,
}

impl Config {
    /// Defaults for a chain.
    pub fn new(chain: B256) -> Self {
        Self {
            chain,
            timeouts: TimeoutConfig::default(),
            max_round_ahead: 1000,
            max_buffered: 10_000,
        }
    }
}

/// Events the engine feeds in.
#[derive(Clone, Debug)]
pub enum Input {
    /// A proposal from the network.
    Proposal(SignedProposal),
    /// A vote from the network.
    Vote(SignedVote),
    /// A timeout scheduled by `Output::ScheduleTimeout` expired.
    TimeoutFired {
        /// Height it was scheduled for.
        height: Height,
        /// Round it was scheduled for.
        round: Round,
        /// Step it guards.
        step: Step,
    },
    /// Answer to `Output::VerifyBlock`.
    BlockVerified {
        /// The block.
        id: BlockId,
        /// Whether it passes the node's block rules.
        valid: bool,
    },
    /// Answer to `Output::BuildProposal`.
    ProposalBuilt {
        /// Height it was requested for.
        height: Height,
        /// Round it was requested for.
        round: Round,
        /// The new block.
        block: Block,
    },
    /// A block with its certificate, from block sync.
    Commit {
        /// The block.
        block: Block,
        /// Its commit certificate.
        certificate: CommitCertificate,
    },
    /// The engine's gossip timer: re-send our latest messages.
    Rebroadcast,
    /// The provider now knows the set for the height we wait on.
    ValidatorSetAvailable,
}

/// Effects the engine must carry out.
#[derive(Clone, Debug)]
pub enum Output {
    /// Send to all peers.
    Broadcast(Message),
    /// Call back with `Input::TimeoutFired` after `duration`.
    ScheduleTimeout {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
        /// Step.
        step: Step,
        /// Delay.
        duration: Duration,
    },
    /// Build a block and answer with `Input::ProposalBuilt`.
    BuildProposal {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
    },
    /// Check the block rules and answer with `Input::BlockVerified`.
    VerifyBlock {
        /// Height it is proposed for.
        height: Height,
        /// The block.
        block: Block,
    },
    /// The height is final.
    Decided {
        /// Height.
        height: Height,
        /// The block.
        block: Block,
        /// The proof.
        certificate: CommitCertificate,
    },
    /// Conflicting signed messages by one validator.
    Evidence(Evidence),
    /// A message was refused; the engine may penalise the peer that sent it.
    Rejected(Reject),
}

/// Why an input was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// Signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Validator index outside the set.
    #[error("unknown validator")]
    UnknownValidator,
    /// Proposal from someone other than the round's proposer.
    #[error("not the proposer")]
    WrongProposer,
    /// `pol_round >= round`.
    #[error("bad proof-of-lock round")]
    BadPolRound,
    /// Round too far ahead of ours.
    #[error("round too far ahead")]
    RoundTooFar,
    /// Certificate does not match its block or does not verify.
    #[error("bad certificate: {0}")]
    BadCertificate(#[from] CertificateError),
    /// Certificate names another block.
    #[error("certificate is for another block")]
    CertificateMismatch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Validity {
    Pending,
    Valid,
    Invalid,
}

/// Flags of the paper's "for the first time" rules, reset each round.
#[derive(Clone, Copy, Debug, Default)]
struct RoundFlags {
    prevote_timeout_armed: bool,
    precommit_timeout_armed: bool,
    polka_value_done: bool,
    building: bool,
}

/// One validator's (or observer's) consensus state.
pub struct Machine {
    config: Config,
    signer: Option<Box<dyn Signer>>,
    guard: SlashingGuard,
    verifier: Arc<dyn Verifier>,
    provider: Arc<dyn ValidatorSetProvider>,
    height: Height,
    round: Round,
    step: Step,
    set: Option<Arc<ValidatorSet>>,
    me: Option<ValidatorIndex>,
    locked: Option<(Round, BlockId)>,
    valid: Option<(Round, BlockId)>,
    proposals: BTreeMap<Round, Vec<SignedProposal>>,
    blocks: HashMap<BlockId, (Block, Validity)>,
    votes: HeightVotes,
    flags: RoundFlags,
    own_proposal: Option<SignedProposal>,
    reported: HashSet<(Round, u8, ValidatorIndex)>,
    future: Vec<Message>,
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("height", &self.height)
            .field("round", &self.round)
            .field("step", &self.step)
            .field("me", &self.me)
            .field("locked", &self.locked)
            .field("valid", &self.valid)
            .finish_non_exhaustive()
    }
}

impl Machine {
    /// A machine that starts deciding `height`. `signer` is `None` for a full
    /// node that follows without voting. The guard's record restores the lock
    /// and round after a restart. Returns the first outputs (timeouts, maybe
    /// a build request).
    pub fn new(
        config: Config,
        signer: Option<Box<dyn Signer>>,
        guard: SlashingGuard,
        verifier: Arc<dyn Verifier>,
        provider: Arc<dyn ValidatorSetProvider>,
        height: Height,
    ) -> (Self, Vec<Output>) {
        let mut m = Self {
            config,
            signer,
            guard,
            verifier,
            provider,
            height,
            round: 0,
            step: Step::Propose,
            set: None,
            me: None,
            locked: None,
            valid: None,
            proposals: BTreeMap::new(),
            blocks: HashMap::new(),
            votes: HeightVotes::new(Vec::new(), 0),
            flags: RoundFlags::default(),
            own_proposal: None,
            reported: HashSet::new(),
            future: Vec::new(),
        };
        let mut out = Vec::new();
        m.enter_height(height, &mut out);
        m.run_rules(&mut out);
        (m, out)
    }

    /// Height being decided.
    pub fn height(&self) -> Height {
        self.height
    }
    /// Current round.
    pub fn round(&self) -> Round {
        self.round
    }
    /// Current step.
    pub fn step(&self) -> Step {
        self.step
    }
    /// `(lockedRound, lockedValue)`.
    pub fn locked(&self) -> Option<(Round, BlockId)> {
        self.locked
    }
    /// `(validRound, validValue)`.
    pub fn valid(&self) -> Option<(Round, BlockId)> {
        self.valid
    }
    /// Our index in the current set, if we are a validator of it.
    pub fn validator_index(&self) -> Option<ValidatorIndex> {
        self.me
    }
    /// The slashing-protection record (for export).
    pub fn sign_record(&self) -> &SignRecord {
        self.guard.record()
    }
    /// The current height's set, unless waiting for it.
    pub fn validator_set(&self) -> Option<&Arc<ValidatorSet>> {
        self.set.as_ref()
    }

    /// Processes one input.
    pub fn apply(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Proposal(p) => self.on_proposal(p, &mut out),
            Input::Vote(v) => self.on_vote(v, &mut out),
            Input::TimeoutFired {
                height,
                round,
                step,
            } => self.on_timeout(height, round, step, &mut out),
            Input::BlockVerified { id, valid } => {
                if let Some((_, v)) = self.blocks.get_mut(&id)
                    && *v == Validity::Pending
                {
                    *v = if valid {
                        Validity::Valid
                    } else {
                        Validity::Invalid
                    };
                }
            }
            Input::ProposalBuilt {
                height,
                round,
                block,
            } => self.on_built(height, round, block, &mut out),
            Input::Commit { block, certificate } => self.on_commit(block, certificate, &mut out),
            Input::Rebroadcast => self.rebroadcast(&mut out),
            Input::ValidatorSetAvailable => {
                if self.set.is_none() {
                    self.enter_height(self.height, &mut out);
                }
            }
        }
        self.run_rules(&mut out);
        out
    }

    // ----- height and round transitions -----

    fn enter_height(&mut self, height: Height, out: &mut Vec<Output>) {
        self.height = height;
        self.round = 0;
        self.step = Step::Propose;
        self.locked = None;
        self.valid = None;
        self.proposals.clear();
        self.blocks.clear();
        self.reported.clear();
        self.own_proposal = None;
        self.flags = RoundFlags::default();
        let Some(set) = self.provider.validator_set(height) else {
            self.set = None;
            return;
        };
        self.me = self
            .signer
            .as_ref()
            .and_then(|s| set.index_of(&s.public_key()));
        self.votes = HeightVotes::new(
            set.validators().iter().map(|v| v.power).collect(),
            set.epoch(),
        );
        self.set = Some(set);
        // After a restart: resume the lock and the round we last signed in.
        let record = *self.guard.record();
        if let Some(lock) = record.lock.filter(|l| l.height == height) {
            self.locked = Some((lock.round, lock.block));
        }
        let latest = record.latest.filter(|l| l.height == height);
        self.start_round(latest.map_or(0, |l| l.round), out);
        // Repeat the votes signed before the crash: peers may have lost them
        // and the round's quorum may need our power.
        if let Some(l) = latest {
            if let Some(v) = l.prevote {
                self.cast(VoteType::Prevote, v, out);
            }
            if let Some(v) = l.precommit {
                self.cast(VoteType::Precommit, v, out);
            }
        }
        let buffered = std::mem::take(&mut self.future);
        for m in buffered {
            match m {
                Message::Proposal(p) => self.on_proposal(p, out),
                Message::Vote(v) => self.on_vote(v, out),
            }
        }
    }

    /// Paper lines 11-21.
    fn start_round(&mut self, round: Round, out: &mut Vec<Output>) {
        let set = self.set.clone().expect("set known when starting a round");
        self.round = round;
        self.step = Step::Propose;
        self.flags = RoundFlags::default();
        self.own_proposal = None;
        out.push(Output::ScheduleTimeout {
            height: self.height,
            round,
            step: Step::Propose,
            duration: self.config.timeouts.duration(Step::Propose, round),
        });
        if self.me.is_some() && self.me == Some(set.proposer(self.height, round)) {
            let reuse = self.valid.and_then(|(vr, id)| {
                self.blocks
                    .get(&id)
                    .filter(|(_, v)| *v == Validity::Valid)
                    .map(|(b, _)| (vr, b.clone()))
            });
            match reuse {
                Some((vr, block)) => self.propose(block, Some(vr), out),
                None => {
                    self.flags.building = true;
                    out.push(Output::BuildProposal {
                        height: self.height,
                        round,
                    });
                }
            }
        }
    }

    fn decide(&mut self, block: Block, certificate: CommitCertificate, out: &mut Vec<Output>) {
        out.push(Output::Decided {
            height: self.height,
            block,
            certificate,
        });
        self.enter_height(self.height + 1, out);
    }

    // ----- signing -----

    fn propose(&mut self, block: Block, pol_round: Option<Round>, out: &mut Vec<Output>) {
        let (Some(me), Some(set)) = (self.me, self.set.clone()) else {
            return;
        };
        let proposal = Proposal {
            height: self.height,
            round: self.round,
            pol_round,
            block: block.clone(),
            proposer: me,
        };
        if self
            .guard
            .approve_proposal(self.height, self.round, block.id)
            .is_err()
        {
            return;
        }
        let Some(signature) = self
            .signer
            .as_ref()
            .map(|s| s.sign(&proposal.sign_bytes(&self.config.chain, set.epoch())))
        else {
            return;
        };
        let signed = SignedProposal {
            proposal,
            signature,
        };
        self.blocks
            .insert(block.id, (block.clone(), Validity::Valid));
        self.own_proposal = Some(signed.clone());
        self.store_proposal(signed.clone(), out);
        out.push(Output::Broadcast(Message::Proposal(signed)));
        if let Some(vr) = pol_round {
            self.push_pol(vr, block.id, out);
        }
    }

    /// Sends the prevote quorum that justifies a re-proposal, so peers that
    /// missed it can still accept the proposal (paper line 28).
    fn push_pol(&self, vr: Round, id: BlockId, out: &mut Vec<Output>) {
        if let Some(rv) = self.votes.round(vr) {
            for v in rv.prevotes.votes_for(Some(id)) {
                out.push(Output::Broadcast(Message::Vote(v.clone())));
            }
        }
    }

    fn cast(&mut self, vote_type: VoteType, block: Option<BlockId>, out: &mut Vec<Output>) {
        self.step = vote_type.into();
        let (Some(me), Some(set)) = (self.me, self.set.clone()) else {
            return;
        };
        let Some(signer) = self.signer.as_ref() else {
            return;
        };
        // The guard may hand back the value signed before a crash.
        let Ok(block) = self
            .guard
            .approve_vote(self.height, self.round, vote_type, block)
        else {
            return;
        };
        let vote = Vote {
            vote_type,
            height: self.height,
            round: self.round,
            block,
            validator: me,
        };
        let signature = signer.sign(&vote.sign_bytes(&self.config.chain, set.epoch()));
        if let (VoteType::Precommit, Some(id)) = (vote_type, block) {
            self.locked = Some((self.round, id));
        }
        let signed = SignedVote { vote, signature };
        self.votes.add(signed.clone());
        out.push(Output::Broadcast(Message::Vote(signed)));
    }

    // ----- inputs -----

    fn buffer(&mut self, m: Message) {
        if self.future.len() < self.config.max_buffered {
            self.future.push(m);
        }
    }

    /// Common admission checks; `None` means drop (maybe after buffering).
    fn admit(&mut self, m: &Message, out: &mut Vec<Output>) -> Option<Arc<ValidatorSet>> {
        if m.height() < self.height {
            return None;
        }
        if m.height() > self.height || self.set.is_none() {
            self.buffer(m.clone());
            return None;
        }
        let set = self.set.clone()?;
        if m.sender() as usize >= set.len() {
            out.push(Output::Rejected(Reject::UnknownValidator));
            return None;
        }
        if m.round() > self.round.saturating_add(self.config.max_round_ahead) {
            out.push(Output::Rejected(Reject::RoundTooFar));
            return None;
        }
        Some(set)
    }

    fn on_proposal(&mut self, sp: SignedProposal, out: &mut Vec<Output>) {
        let msg = Message::Proposal(sp);
        let Some(set) = self.admit(&msg, out) else {
            return;
        };
        let Message::Proposal(sp) = msg else {
            unreachable!()
        };
        let p = &sp.proposal;
        if p.proposer != set.proposer(p.height, p.round) {
            out.push(Output::Rejected(Reject::WrongProposer));
            return;
        }
        if p.pol_round.is_some_and(|vr| vr >= p.round) {
            out.push(Output::Rejected(Reject::BadPolRound));
            return;
        }
        if self
            .proposals
            .get(&p.round)
            .is_some_and(|l| l.contains(&sp))
        {
            return;
        }
        let bytes = p.sign_bytes(&self.config.chain, set.epoch());
        if !self
            .verifier
            .verify(&set, p.proposer, &bytes, &sp.signature)
        {
            out.push(Output::Rejected(Reject::BadSignature));
            return;
        }
        self.store_proposal(sp, out);
    }

    fn store_proposal(&mut self, sp: SignedProposal, out: &mut Vec<Output>) {
        let p = &sp.proposal;
        let (round, proposer, block) = (p.round, p.proposer, p.block.clone());
        let list = self.proposals.entry(round).or_default();
        if list.contains(&sp) {
            return;
        }
        if list.len() == 1 {
            let epoch = self.set.as_ref().map_or(0, |s| s.epoch());
            out.push(Output::Evidence(Evidence::DuplicateProposal {
                epoch,
                first: Box::new(list[0].clone()),
                second: Box::new(sp.clone()),
            }));
        }
        if list.len() >= 2 {
            return;
        }
        list.push(sp);
        self.votes.saw_sender(round, proposer);
        if let std::collections::hash_map::Entry::Vacant(e) = self.blocks.entry(block.id) {
            e.insert((block.clone(), Validity::Pending));
            out.push(Output::VerifyBlock {
                height: self.height,
                block,
            });
        }
    }

    fn on_vote(&mut self, sv: SignedVote, out: &mut Vec<Output>) {
        let msg = Message::Vote(sv);
        let Some(set) = self.admit(&msg, out) else {
            return;
        };
        let Message::Vote(sv) = msg else {
            unreachable!()
        };
        let v = &sv.vote;
        let tally = self.votes.round(v.round).map(|rv| match v.vote_type {
            VoteType::Prevote => &rv.prevotes,
            VoteType::Precommit => &rv.precommits,
        });
        // Skip the signature check for what we hold or would not store.
        if tally.is_some_and(|t| t.contains(&sv) || t.is_full(v.validator)) {
            return;
        }
        let key = (v.round, v.vote_type as u8, v.validator);
        if !self.verifier.verify(
            &set,
            v.validator,
            &v.sign_bytes(&self.config.chain, set.epoch()),
            &sv.signature,
        ) {
            out.push(Output::Rejected(Reject::BadSignature));
            return;
        }
        if let AddVote::Equivocation(ev) = self.votes.add(sv)
            && self.reported.insert(key)
        {
            out.push(Output::Evidence(*ev));
        }
    }

    /// Paper lines 57-67.
    fn on_timeout(&mut self, height: Height, round: Round, step: Step, out: &mut Vec<Output>) {
        if height != self.height || round != self.round || self.set.is_none() {
            return;
        }
        match step {
            Step::Propose if self.step == Step::Propose => self.cast(VoteType::Prevote, None, out),
            Step::Prevote if self.step == Step::Prevote => {
                self.cast(VoteType::Precommit, None, out)
            }
            Step::Precommit => self.start_round(round + 1, out),
            _ => {}
        }
    }

    fn on_built(&mut self, height: Height, round: Round, block: Block, out: &mut Vec<Output>) {
        if height != self.height
            || round != self.round
            || self.step != Step::Propose
            || !self.flags.building
        {
            return;
        }
        self.flags.building = false;
        self.propose(block, None, out);
    }

    fn on_commit(&mut self, block: Block, certificate: CommitCertificate, out: &mut Vec<Output>) {
        let Some(set) = self.set.clone() else { return };
        if certificate.height != self.height {
            return;
        }
        if certificate.block_id != block.id {
            out.push(Output::Rejected(Reject::CertificateMismatch));
            return;
        }
        if let Err(e) = certificate.verify(&self.config.chain, &set, self.verifier.as_ref()) {
            out.push(Output::Rejected(e.into()));
            return;
        }
        self.decide(block, certificate, out);
    }

    /// Re-sends our latest messages and relays the round's proposal (and the
    /// block we hold as valid), so a peer that lost them, or restarted and lost
    /// its own proposal, can still get the block the quorum is voting on.
    fn rebroadcast(&mut self, out: &mut Vec<Output>) {
        let current = self.own_proposal.clone().or_else(|| {
            self.proposals
                .get(&self.round)
                .and_then(|l| l.first().cloned())
        });
        let valid = self.valid.and_then(|(vr, id)| {
            self.proposals
                .get(&vr)
                .and_then(|l| l.iter().find(|p| p.proposal.block.id == id).cloned())
        });
        for p in [current, valid].into_iter().flatten() {
            if let Some(vr) = p.proposal.pol_round {
                self.push_pol(vr, p.proposal.block.id, out);
            }
            out.push(Output::Broadcast(Message::Proposal(p)));
        }
        // Our votes of this round, and our precommits of recent earlier rounds:
        // a peer left behind in an earlier round needs them to time out.
        let Some(me) = self.me else { return };
        let first = self.round.saturating_sub(16);
        for (r, rv) in self
            .votes
            .rounds()
            .filter(|(r, _)| *r >= first && *r <= self.round)
        {
            if r == self.round
                && let Some(v) = rv.prevotes.vote_of(me)
            {
                out.push(Output::Broadcast(Message::Vote(v.clone())));
            }
            if let Some(v) = rv.precommits.vote_of(me) {
                out.push(Output::Broadcast(Message::Vote(v.clone())));
            }
        }
    }

    // ----- the upon rules -----

    fn run_rules(&mut self, out: &mut Vec<Output>) {
        while self.set.is_some() {
            let fired = self.rule_decide(out)
                || self.rule_round_skip(out)
                || self.rule_proposal_prevote(out)
                || self.rule_prevote_timeout(out)
                || self.rule_polka_value(out)
                || self.rule_polka_nil(out)
                || self.rule_precommit_timeout(out);
            if !fired {
                break;
            }
        }
    }

    fn set(&self) -> &ValidatorSet {
        self.set.as_ref().expect("rules run only with a set")
    }

    fn is_valid(&self, id: &BlockId) -> bool {
        self.blocks
            .get(id)
            .is_some_and(|(_, v)| *v == Validity::Valid)
    }

    /// Line 49: a precommit quorum for a valid block in any round decides it.
    fn rule_decide(&mut self, out: &mut Vec<Output>) -> bool {
        let set = self.set.clone().expect("set");
        let mut found = None;
        'rounds: for (r, rv) in self.votes.rounds() {
            for (value, power) in rv.precommits.values() {
                if let Some(id) = value
                    && set.is_quorum(power)
                    && self.is_valid(&id)
                {
                    found = Some((r, id));
                    break 'rounds;
                }
            }
        }
        let Some((round, id)) = found else {
            return false;
        };
        let rv = self.votes.round(round).expect("round present");
        let votes: Vec<&SignedVote> = rv.precommits.votes_for(Some(id)).collect();
        let sigs: Vec<&SignatureBytes> = votes.iter().map(|v| &v.signature).collect();
        let Some(signature) = self.verifier.aggregate(&sigs) else {
            return false;
        };
        let certificate = CommitCertificate {
            height: self.height,
            round,
            block_id: id,
            signature,
            signers: SignerBitmap::from_indices(set.len(), votes.iter().map(|v| v.vote.validator)),
        };
        let block = self.blocks[&id].0.clone();
        self.decide(block, certificate, out);
        true
    }

    /// Line 55: more than 1/3 of the power is in a later round; join it.
    fn rule_round_skip(&mut self, out: &mut Vec<Output>) -> bool {
        let total = self.set().total_power();
        let target = self
            .votes
            .rounds()
            .filter(|(r, rv)| *r > self.round && is_one_third(rv.sender_power(), total))
            .map(|(r, _)| r)
            .max();
        match target {
            Some(r) => {
                self.start_round(r, out);
                true
            }
            None => false,
        }
    }

    /// Lines 22-33: prevote on the round's proposal.
    fn rule_proposal_prevote(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Propose {
            return false;
        }
        let Some(list) = self.proposals.get(&self.round) else {
            return false;
        };
        let mut decision = None;
        for sp in list {
            let id = sp.proposal.block.id;
            let validity = self.blocks.get(&id).map_or(Validity::Pending, |(_, v)| *v);
            if validity == Validity::Pending {
                continue;
            }
            let ok = match sp.proposal.pol_round {
                // Line 22.
                None => self.locked.is_none_or(|(_, lv)| lv == id),
                // Line 28: needs the prevote quorum of round vr.
                Some(vr) => {
                    let polka = self
                        .votes
                        .round(vr)
                        .is_some_and(|rv| self.set().is_quorum(rv.prevotes.power_for(Some(id))));
                    if !polka {
                        continue;
                    }
                    self.locked.is_none_or(|(lr, lv)| lr <= vr || lv == id)
                }
            };
            decision = Some((validity == Validity::Valid && ok).then_some(id));
            break;
        }
        match decision {
            Some(value) => {
                self.cast(VoteType::Prevote, value, out);
                true
            }
            None => false,
        }
    }

    /// Line 34: arm the prevote timeout on any prevote quorum.
    fn rule_prevote_timeout(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Prevote || self.flags.prevote_timeout_armed {
            return false;
        }
        let q = self
            .votes
            .round(self.round)
            .is_some_and(|rv| self.set().is_quorum(rv.prevotes.total()));
        if q {
            self.flags.prevote_timeout_armed = true;
            out.push(Output::ScheduleTimeout {
                height: self.height,
                round: self.round,
                step: Step::Prevote,
                duration: self.config.timeouts.duration(Step::Prevote, self.round),
            });
        }
        q
    }

    /// Lines 36-43: a prevote quorum for a valid block locks it.
    fn rule_polka_value(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step < Step::Prevote || self.flags.polka_value_done {
            return false;
        }
        let Some(rv) = self.votes.round(self.round) else {
            return false;
        };
        let set = self.set();
        let id = rv
            .prevotes
            .values()
            .find_map(|(v, p)| v.filter(|id| set.is_quorum(p) && self.is_valid(id)));
        let Some(id) = id else { return false };
        self.flags.polka_value_done = true;
        if self.step == Step::Prevote {
            self.locked = Some((self.round, id));
            self.cast(VoteType::Precommit, Some(id), out);
        }
        self.valid = Some((self.round, id));
        true
    }

    /// Lines 44-46: a nil prevote quorum.
    fn rule_polka_nil(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Prevote {
            return false;
        }
        let q = self
            .votes
            .round(self.round)
            .is_some_and(|rv| self.set().is_quorum(rv.prevotes.power_for(None)));
        if q {
            self.cast(VoteType::Precommit, None, out);
        }
        q
    }

    /// Line 47: arm the precommit timeout on any precommit quorum.
    fn rule_precommit_timeout(&mut self, out: &mut Vec<Output>) -> bool {
        if self.flags.precommit_timeout_armed {
            return false;
        }
        let q = self
            .votes
            .round(self.round)
            .is_some_and(|rv| self.set().is_quorum(rv.precommits.total()));
        if q {
            self.flags.precommit_timeout_armed = true;
            out.push(Output::ScheduleTimeout {
                height: self.height,
                round: self.round,
                step: Step::Precommit,
                duration: self.config.timeouts.duration(Step::Precommit, self.round),
            });
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::NoStore;
    use crate::test_scheme::{TestKey, TestSigner, TestVerifier};
    use crate::validator_set::{StaticProvider, Validator};
    use alloy_primitives::{Address, Bytes};

    struct Net {
        keys: Vec<TestKey>,
        set: Arc<ValidatorSet>,
        provider: Arc<StaticProvider>,
        verifier: Arc<TestVerifier>,
    }

    fn net() -> Net {
        let keys: Vec<TestKey> = (1..=4u8).map(|i| TestKey([i; 32])).collect();
        let set = Arc::new(
            ValidatorSet::new(
                keys.iter()
                    .enumerate()
                    .map(|(i, k)| Validator {
                        address: Address::with_last_byte(i as u8),
                        public_key: k.public_key(),
                        power: 1,
                    })
                    .collect(),
                0,
                1,
            )
            .unwrap(),
        );
        let provider = Arc::new(StaticProvider::new(100, vec![set.clone()]));
        let verifier = Arc::new(TestVerifier::new(keys.clone()));
        Net {
            keys,
            set,
            provider,
            verifier,
        }
    }

    fn chain() -> B256 {
        B256::repeat_byte(1)
    }

    impl Net {
        fn machine(&self, i: usize, record: SignRecord) -> (Machine, Vec<Output>) {
            Machine::new(
                Config::new(chain()),
                Some(Box::new(TestSigner(self.keys[i]))),
                SlashingGuard::new(record, Box::new(NoStore)),
                self.verifier.clone(),
                self.provider.clone(),
                1,
            )
        }
        fn index(&self, key: usize) -> u32 {
            self.set.index_of(&self.keys[key].public_key()).unwrap()
        }
        fn key_of(&self, index: u32) -> usize {
            (0..4).find(|&k| self.index(k) == index).unwrap()
        }
        fn vote(
            &self,
            index: u32,
            t: VoteType,
            round: Round,
            block: Option<BlockId>,
        ) -> SignedVote {
            let vote = Vote {
                vote_type: t,
                height: 1,
                round,
                block,
                validator: index,
            };
            let signature =
                TestSigner(self.keys[self.key_of(index)]).sign(&vote.sign_bytes(&chain(), 0));
            SignedVote { vote, signature }
        }
        fn proposal(&self, round: Round, pol: Option<Round>, b: &Block) -> SignedProposal {
            let proposer = self.set.proposer(1, round);
            let proposal = Proposal {
                height: 1,
                round,
                pol_round: pol,
                block: b.clone(),
                proposer,
            };
            let signature = TestSigner(self.keys[self.key_of(proposer)])
                .sign(&proposal.sign_bytes(&chain(), 0));
            SignedProposal {
                proposal,
                signature,
            }
        }
        /// A key that is not the proposer of rounds 0, 1 and 2.
        fn follower(&self) -> usize {
            (0..4)
                .find(|&k| (0..3).all(|r| self.index(k) != self.set.proposer(1, r)))
                .unwrap()
        }
    }

    fn block(x: u8) -> Block {
        Block {
            id: B256::repeat_byte(x),
            payload: Bytes::from(vec![x]),
        }
    }

    fn sent_votes(out: &[Output]) -> Vec<(VoteType, Round, Option<BlockId>)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Broadcast(Message::Vote(v)) => {
                    Some((v.vote.vote_type, v.vote.round, v.vote.block))
                }
                _ => None,
            })
            .collect()
    }

    /// Four machines exchanging messages instantly decide the first proposal.
    #[test]
    fn four_validators_decide_with_a_valid_certificate() {
        let n = net();
        let mut ms = Vec::new();
        let mut queue: std::collections::VecDeque<(usize, Output)> = Default::default();
        for i in 0..4 {
            let (m, out) = n.machine(i, SignRecord::default());
            ms.push(m);
            queue.extend(out.into_iter().map(|o| (i, o)));
        }
        let mut decided = Vec::new();
        let mut steps = 0;
        while let Some((from, o)) = queue.pop_front() {
            steps += 1;
            assert!(steps < 100_000, "no decision");
            let inputs: Vec<(usize, Input)> = match o {
                Output::Broadcast(Message::Proposal(p)) => (0..4)
                    .filter(|&i| i != from)
                    .map(|i| (i, Input::Proposal(p.clone())))
                    .collect(),
                Output::Broadcast(Message::Vote(v)) => (0..4)
                    .filter(|&i| i != from)
                    .map(|i| (i, Input::Vote(v.clone())))
                    .collect(),
                Output::BuildProposal { height, round } => vec![(
                    from,
                    Input::ProposalBuilt {
                        height,
                        round,
                        block: block(7),
                    },
                )],
                Output::VerifyBlock { block, .. } => vec![(
                    from,
                    Input::BlockVerified {
                        id: block.id,
                        valid: true,
                    },
                )],
                Output::Decided {
                    height: 1,
                    block,
                    certificate,
                } => {
                    certificate
                        .verify(&chain(), &n.set, n.verifier.as_ref())
                        .unwrap();
                    decided.push((from, block.id));
                    vec![]
                }
                _ => vec![],
            };
            for (i, input) in inputs {
                let out = ms[i].apply(input);
                queue.extend(out.into_iter().map(|o| (i, o)));
            }
            if decided.len() == 4 {
                break;
            }
        }
        assert_eq!(decided.len(), 4);
        assert!(decided.iter().all(|d| d.1 == block(7).id));
        assert!(ms.iter().all(|m| m.height() >= 2));
    }

    /// Line 22 and line 28: a validator locked on A prevotes nil on a fresh
    /// B, but follows a re-proposal of B justified by a later prevote quorum.
    #[test]
    fn lock_is_respected_and_released_only_by_a_later_polka() {
        let n = net();
        let me = n.follower();
        let (mut m, _) = n.machine(me, SignRecord::default());
        let (a, b) = (block(0xa), block(0xb));
        m.apply(Input::Proposal(n.proposal(0, None, &a)));
        m.apply(Input::BlockVerified {
            id: a.id,
            valid: true,
        });
        let others: Vec<u32> = (0..4u32).filter(|&i| i != n.index(me)).collect();
        for &i in &others[..2] {
            m.apply(Input::Vote(n.vote(i, VoteType::Prevote, 0, Some(a.id))));
        }
        assert_eq!(m.locked(), Some((0, a.id)));
        // Round 1 via precommit quorum + timeout.
        for &i in &others {
            m.apply(Input::Vote(n.vote(i, VoteType::Precommit, 0, None)));
        }
        m.apply(Input::TimeoutFired {
            height: 1,
            round: 0,
            step: Step::Precommit,
        });
        assert_eq!(m.round(), 1);
        m.apply(Input::Proposal(n.proposal(1, None, &b)));
        let out = m.apply(Input::BlockVerified {
            id: b.id,
            valid: true,
        });
        assert_eq!(
            sent_votes(&out),
            vec![(VoteType::Prevote, 1, None)],
            "locked on A: nil for a fresh B"
        );
        // Round 2: B re-proposed with a prevote quorum for B in round 1.
        for &i in &others {
            m.apply(Input::Vote(n.vote(i, VoteType::Prevote, 1, Some(b.id))));
            m.apply(Input::Vote(n.vote(i, VoteType::Precommit, 1, None)));
        }
        m.apply(Input::TimeoutFired {
            height: 1,
            round: 1,
            step: Step::Precommit,
        });
        assert_eq!(m.round(), 2);
        let out = m.apply(Input::Proposal(n.proposal(2, Some(1), &b)));
        assert_eq!(
            sent_votes(&out),
            vec![(VoteType::Prevote, 2, Some(b.id))],
            "polka in round 1 > lock round 0"
        );
    }

    /// After a crash the restarted validator repeats its prevote instead of
    /// voting nil on timeout, and keeps its lock.
    #[test]
    fn restart_repeats_signed_votes_and_keeps_the_lock() {
        let n = net();
        let me = n.follower();
        let (mut m, _) = n.machine(me, SignRecord::default());
        let a = block(0xa);
        m.apply(Input::Proposal(n.proposal(0, None, &a)));
        m.apply(Input::BlockVerified {
            id: a.id,
            valid: true,
        });
        let others: Vec<u32> = (0..4u32).filter(|&i| i != n.index(me)).collect();
        for &i in &others[..2] {
            m.apply(Input::Vote(n.vote(i, VoteType::Prevote, 0, Some(a.id))));
        }
        let record = *m.sign_record();
        assert_eq!(record.lock.unwrap().block, a.id);
        let (m2, _) = n.machine(me, record);
        assert_eq!(m2.locked(), Some((0, a.id)));
        let (mut m2, out) = n.machine(me, record);
        assert_eq!(
            sent_votes(&out),
            vec![
                (VoteType::Prevote, 0, Some(a.id)),
                (VoteType::Precommit, 0, Some(a.id))
            ]
        );
        let out = m2.apply(Input::TimeoutFired {
            height: 1,
            round: 0,
            step: Step::Propose,
        });
        assert!(sent_votes(&out).is_empty());
    }

    #[test]
    fn bad_signatures_are_rejected_and_equivocation_reported() {
        let n = net();
        let (mut m, _) = n.machine(n.follower(), SignRecord::default());
        let other = (0..4u32).find(|&i| Some(i) != m.validator_index()).unwrap();
        let mut forged = n.vote(other, VoteType::Prevote, 0, None);
        forged.signature.0[0] ^= 1;
        let out = m.apply(Input::Vote(forged));
        assert!(matches!(
            out.as_slice(),
            [Output::Rejected(Reject::BadSignature)]
        ));
        m.apply(Input::Vote(n.vote(other, VoteType::Prevote, 0, None)));
        let out = m.apply(Input::Vote(n.vote(
            other,
            VoteType::Prevote,
            0,
            Some(B256::repeat_byte(3)),
        )));
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Evidence(e) if e.offender() == other))
        );
    }

    /// Line 55: messages from more than 1/3 of the power in a later round
    /// pull the validator into that round.
    #[test]
    fn round_skip_on_one_third_ahead() {
        let n = net();
        let (mut m, _) = n.machine(n.follower(), SignRecord::default());
        let others: Vec<u32> = (0..4u32)
            .filter(|&i| Some(i) != m.validator_index())
            .collect();
        m.apply(Input::Vote(n.vote(others[0], VoteType::Prevote, 5, None)));
        assert_eq!(m.round(), 0);
        m.apply(Input::Vote(n.vote(others[1], VoteType::Precommit, 5, None)));
        assert_eq!(m.round(), 5);
    }
}
