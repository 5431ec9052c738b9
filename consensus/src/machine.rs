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
use crate::future::{Buffered, FutureBuffer};
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
    /// Bytes of next-height messages kept until we get there, shared equally among the
    /// validator indices of that height's set (see [`crate::future`]).
    pub max_buffered_bytes: usize,
}

/// Default of [`Config::max_buffered_bytes`]: 64 MiB.
pub const MAX_BUFFERED_BYTES: usize = 64 << 20;

impl Config {
    /// Defaults for a chain.
    pub fn new(chain: B256) -> Self {
        Self {
            chain,
            timeouts: TimeoutConfig::default(),
            max_round_ahead: 1000,
            max_buffered_bytes: MAX_BUFFERED_BYTES,
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
        /// The proposer that proposed it fresh (no proof-of-lock round), whose account the
        /// block must name as its author; `None` when it came only as a re-proposal.
        proposer: Option<ValidatorIndex>,
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
}

/// What the machine made of the one input it was given: never of the buffered messages it
/// replayed while handling it, so an engine blames a peer only for what that peer sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Checked (sender, round, signature, certificate) and used, or identical to a message
    /// already held: safe to relay. Local inputs (timers, answers) are `Accepted` too.
    Accepted,
    /// Refused: the input itself is invalid, and whoever sent it is at fault.
    Rejected(Reject),
    /// Kept for the next height. `verified`: its signature was checked against that height's
    /// set, so it may be relayed; an unverified message must not be.
    Buffered {
        /// Whether the signature was checked.
        verified: bool,
    },
    /// Not used and nobody's fault: an old or far height or round, a buffer share that is
    /// full, a second conflicting vote beyond the evidence already held.
    Ignored,
}

impl Verdict {
    /// Whether the message may be relayed to other peers.
    pub fn relay(&self) -> bool {
        matches!(
            self,
            Verdict::Accepted | Verdict::Buffered { verified: true }
        )
    }
}

/// The answer of [`Machine::apply`].
#[derive(Clone, Debug)]
pub struct Applied {
    /// The input's verdict.
    pub verdict: Verdict,
    /// Effects to carry out, including those of replayed buffered messages.
    pub outputs: Vec<Output>,
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
    /// Held but not sent for verification yet: its round is not the current or the next one
    /// and no quorum names it (bounds the executions one proposer can cause).
    Unrequested,
    /// Sent for verification.
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
    /// Who proposed each block fresh (without a proof-of-lock round).
    fresh_proposer: HashMap<BlockId, ValidatorIndex>,
    votes: HeightVotes,
    flags: RoundFlags,
    own_proposal: Option<SignedProposal>,
    reported: HashSet<(Round, u8, ValidatorIndex)>,
    future: FutureBuffer,
    /// Size of the last known set, for the share of messages that cannot be verified yet.
    last_set_len: usize,
    /// Votes of the current round the rules called for while the machine could not sign
    /// (an observer): signed if a signer is installed in this round.
    unsigned: Vec<(VoteType, Option<BlockId>)>,
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
            fresh_proposer: HashMap::new(),
            votes: HeightVotes::new(Vec::new(), 0),
            flags: RoundFlags::default(),
            own_proposal: None,
            reported: HashSet::new(),
            future: FutureBuffer::default(),
            last_set_len: 0,
            unsigned: Vec::new(),
        };
        let mut out = Vec::new();
        m.enter_height(height, &mut out);
        m.run_rules(&mut out);
        (m, out)
    }

    /// Gives a machine started without a signer (an observer: it follows and verifies but
    /// signs nothing) its signer, so it votes from now on without a restart; the node's
    /// doppelganger watch starts a validator this way. The guard was the machine's from the
    /// start, so the lock and round restored from its record are kept. Our index is
    /// re-evaluated for the current height; if the set names us, we join the current round
    /// where it stands: the votes the rules called for in this round while we could not sign
    /// are signed now, in order (the record's votes of this round among them, repeated as
    /// after a restart; a whole network of observers would otherwise wait in a round whose
    /// votes nobody sends), the round's proposal is made if it is ours and still due, and the
    /// rules that have not fired yet sign when they do. A signer already present is kept.
    /// Returns the outputs.
    pub fn install_signer(&mut self, signer: Box<dyn Signer>) -> Vec<Output> {
        let mut out = Vec::new();
        if self.signer.is_some() {
            return out;
        }
        let key = signer.public_key();
        self.signer = Some(signer);
        let Some(set) = self.set.clone() else {
            // Waiting for the set: `enter_height` evaluates `me` when it comes.
            return out;
        };
        self.me = set.index_of(&key);
        if self.me.is_none() {
            return out;
        }
        // `cast` moves the step to the vote's; the observer's is the later one already.
        let step = self.step;
        for (vote_type, block) in std::mem::take(&mut self.unsigned) {
            self.cast(vote_type, block, &mut out);
        }
        self.step = self.step.max(step);
        if self.step == Step::Propose && !self.flags.building && self.own_proposal.is_none() {
            self.propose_if_ours(&mut out);
        }
        self.run_rules(&mut out);
        out
    }

    /// Whether the machine signs: it has a signer and the current set names it.
    pub fn is_signing(&self) -> bool {
        self.signer.is_some() && self.me.is_some()
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

    /// Bytes of next-height messages held (bounded by [`Config::max_buffered_bytes`]).
    pub fn buffered_bytes(&self) -> usize {
        self.future.bytes()
    }

    /// Processes one input.
    pub fn apply(&mut self, input: Input) -> Applied {
        let mut out = Vec::new();
        let verdict = match input {
            Input::Proposal(p) => self.on_proposal(p, false, &mut out),
            Input::Vote(v) => self.on_vote(v, false, &mut out),
            Input::TimeoutFired {
                height,
                round,
                step,
            } => {
                self.on_timeout(height, round, step, &mut out);
                Verdict::Accepted
            }
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
                Verdict::Accepted
            }
            Input::ProposalBuilt {
                height,
                round,
                block,
            } => {
                self.on_built(height, round, block, &mut out);
                Verdict::Accepted
            }
            Input::Commit { block, certificate } => self.on_commit(block, certificate, &mut out),
            Input::Rebroadcast => {
                self.rebroadcast(&mut out);
                Verdict::Accepted
            }
            Input::ValidatorSetAvailable => {
                if self.set.is_none() {
                    self.enter_height(self.height, &mut out);
                }
                Verdict::Accepted
            }
        };
        self.run_rules(&mut out);
        Applied {
            verdict,
            outputs: out,
        }
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
        self.fresh_proposer.clear();
        self.reported.clear();
        self.own_proposal = None;
        self.flags = RoundFlags::default();
        let Some(set) = self.provider.validator_set(height) else {
            self.set = None;
            return;
        };
        self.last_set_len = set.len();
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
        // Replayed messages have no sender to blame: their verdicts are dropped (a forgery
        // that could not be checked on receipt was never relayed).
        for b in self.future.take(height) {
            let _ = match b.message {
                Message::Proposal(p) => self.on_proposal(p, b.verified, out),
                Message::Vote(v) => self.on_vote(v, b.verified, out),
            };
        }
    }

    /// Paper lines 11-21.
    fn start_round(&mut self, round: Round, out: &mut Vec<Output>) {
        assert!(self.set.is_some(), "set known when starting a round");
        self.round = round;
        self.step = Step::Propose;
        self.flags = RoundFlags::default();
        self.own_proposal = None;
        self.unsigned.clear();
        for r in [round, round.saturating_add(1)] {
            let ids: Vec<BlockId> = self
                .proposals
                .get(&r)
                .map(|l| l.iter().map(|p| p.proposal.block.id).collect())
                .unwrap_or_default();
            for id in ids {
                self.request_verification(id, out);
            }
        }
        out.push(Output::ScheduleTimeout {
            height: self.height,
            round,
            step: Step::Propose,
            duration: self.config.timeouts.duration(Step::Propose, round),
        });
        self.propose_if_ours(out);
    }

    /// Proposes in the current round if we are its proposer: re-proposes `validValue`, or asks
    /// the node to build a block.
    fn propose_if_ours(&mut self, out: &mut Vec<Output>) {
        let Some(set) = self.set.clone() else { return };
        let round = self.round;
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
        let (Some(me), Some(set), Some(signer)) = (self.me, self.set.clone(), self.signer.as_ref())
        else {
            self.unsigned.push((vote_type, block));
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

    /// Keeps a message of the next height (or of this height while its set is unknown).
    /// Checked on receipt when the set of its height is known; otherwise kept unverified
    /// within a share computed from the last known set size, and never relayed.
    fn buffer(&mut self, m: Message) -> Verdict {
        let height = m.height();
        let known = if height == self.height {
            self.set.clone()
        } else {
            self.provider.validator_set(height)
        };
        let (verified, len) = match known {
            Some(set) => {
                if let Err(reject) = self.check_sender(&set, &m) {
                    return Verdict::Rejected(reject);
                }
                if !self.signature_ok(&set, &m) {
                    return Verdict::Rejected(Reject::BadSignature);
                }
                (true, set.len())
            }
            None if (m.sender() as usize) < self.last_set_len => (false, self.last_set_len),
            None => return Verdict::Ignored,
        };
        let quota = self.config.max_buffered_bytes / len.max(1);
        if self.future.push(
            height,
            Buffered {
                message: m,
                verified,
            },
            quota,
        ) {
            Verdict::Buffered { verified }
        } else {
            Verdict::Ignored
        }
    }

    /// Sender, round and proposer checks that need no signature.
    fn check_sender(&self, set: &ValidatorSet, m: &Message) -> Result<(), Reject> {
        if m.sender() as usize >= set.len() {
            return Err(Reject::UnknownValidator);
        }
        if let Message::Proposal(sp) = m {
            let p = &sp.proposal;
            if p.proposer != set.proposer(p.height, p.round) {
                return Err(Reject::WrongProposer);
            }
            if p.pol_round.is_some_and(|vr| vr >= p.round) {
                return Err(Reject::BadPolRound);
            }
        }
        Ok(())
    }

    fn signature_ok(&self, set: &ValidatorSet, m: &Message) -> bool {
        let (bytes, signature) = match m {
            Message::Proposal(sp) => (
                sp.proposal.sign_bytes(&self.config.chain, set.epoch()),
                &sp.signature,
            ),
            Message::Vote(sv) => (
                sv.vote.sign_bytes(&self.config.chain, set.epoch()),
                &sv.signature,
            ),
        };
        self.verifier.verify(set, m.sender(), &bytes, signature)
    }

    /// Common admission checks: `Ok(set)` to go on with a message of the current height.
    fn admit(&mut self, m: &Message) -> Result<Arc<ValidatorSet>, Verdict> {
        if m.height() < self.height || m.height() > self.height.saturating_add(1) {
            return Err(Verdict::Ignored);
        }
        let set = match &self.set {
            Some(set) if m.height() == self.height => set.clone(),
            _ => return Err(self.buffer(m.clone())),
        };
        if m.round() > self.round.saturating_add(self.config.max_round_ahead) {
            return Err(Verdict::Rejected(Reject::RoundTooFar));
        }
        self.check_sender(&set, m).map_err(Verdict::Rejected)?;
        Ok(set)
    }

    fn on_proposal(
        &mut self,
        sp: SignedProposal,
        verified: bool,
        out: &mut Vec<Output>,
    ) -> Verdict {
        let msg = Message::Proposal(sp);
        let set = match self.admit(&msg) {
            Ok(set) => set,
            Err(verdict) => return verdict,
        };
        let Message::Proposal(sp) = msg else {
            unreachable!()
        };
        let round = sp.proposal.round;
        if let Some(held) = self
            .proposals
            .get(&round)
            .and_then(|l| l.iter().find(|h| same_signed_proposal(h, &sp)))
        {
            // A payload other than the signed one is not the proposer's doing (the engine
            // checks payloads against the id before they get here).
            return if held.proposal.block.payload == sp.proposal.block.payload {
                Verdict::Accepted
            } else {
                Verdict::Ignored
            };
        }
        // Only the current and the next round can use a proposal; later ones are re-sent by
        // their proposer when we get there.
        if round > self.round.saturating_add(1) {
            return Verdict::Ignored;
        }
        if !verified && !self.signature_ok(&set, &Message::Proposal(sp.clone())) {
            return Verdict::Rejected(Reject::BadSignature);
        }
        self.store_proposal(sp, out);
        Verdict::Accepted
    }

    fn store_proposal(&mut self, sp: SignedProposal, out: &mut Vec<Output>) {
        let p = &sp.proposal;
        let (round, proposer, block) = (p.round, p.proposer, p.block.clone());
        let list = self.proposals.entry(round).or_default();
        if list.iter().any(|held| same_signed_proposal(held, &sp)) {
            return;
        }
        if list.len() == 1 {
            let epoch = self.set.as_ref().map_or(0, |s| s.epoch());
            out.push(Output::Evidence(Evidence::DuplicateProposal {
                epoch,
                first: Box::new(without_payload(&list[0])),
                second: Box::new(without_payload(&sp)),
            }));
        }
        if list.len() >= 2 {
            return;
        }
        let fresh = sp.proposal.pol_round.is_none();
        list.push(sp);
        self.votes.saw_sender(round, proposer);
        let id = block.id;
        if fresh {
            self.fresh_proposer.entry(id).or_insert(proposer);
        }
        self.blocks
            .entry(id)
            .or_insert((block, Validity::Unrequested));
        if round == self.round || round == self.round.saturating_add(1) {
            self.request_verification(id, out);
        }
    }

    /// Sends a held block for verification, once.
    fn request_verification(&mut self, id: BlockId, out: &mut Vec<Output>) {
        if let Some((block, v)) = self.blocks.get_mut(&id)
            && *v == Validity::Unrequested
        {
            *v = Validity::Pending;
            out.push(Output::VerifyBlock {
                height: self.height,
                block: block.clone(),
                proposer: self.fresh_proposer.get(&id).copied(),
            });
        }
    }

    fn on_vote(&mut self, sv: SignedVote, verified: bool, out: &mut Vec<Output>) -> Verdict {
        let msg = Message::Vote(sv);
        let set = match self.admit(&msg) {
            Ok(set) => set,
            Err(verdict) => return verdict,
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
        if tally.is_some_and(|t| t.contains(&sv)) {
            return Verdict::Accepted;
        }
        if tally.is_some_and(|t| t.is_full(v.validator)) {
            return Verdict::Ignored;
        }
        let key = (v.round, v.vote_type as u8, v.validator);
        if !verified && !self.signature_ok(&set, &Message::Vote(sv.clone())) {
            return Verdict::Rejected(Reject::BadSignature);
        }
        if let AddVote::Equivocation(ev) = self.votes.add(sv)
            && self.reported.insert(key)
        {
            out.push(Output::Evidence(*ev));
        }
        Verdict::Accepted
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

    fn on_commit(
        &mut self,
        block: Block,
        certificate: CommitCertificate,
        out: &mut Vec<Output>,
    ) -> Verdict {
        let Some(set) = self.set.clone() else {
            return Verdict::Ignored;
        };
        if certificate.height != self.height {
            return Verdict::Ignored;
        }
        if certificate.block_id != block.id {
            return Verdict::Rejected(Reject::CertificateMismatch);
        }
        if let Err(e) = certificate.verify(&self.config.chain, &set, self.verifier.as_ref()) {
            return Verdict::Rejected(e.into());
        }
        self.decide(block, certificate, out);
        Verdict::Accepted
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
        // Past round 0, what brought us to this round, relayed whoever signed it: the
        // precommits of the round before (a precommit timeout) and the votes of this one (a
        // round skip). Links need not relay, so a byzantine vote may reach us alone; a peer
        // still in the earlier round may then lack exactly that vote of the quorum we left on,
        // and our own votes would not make it up if we skipped a step (hostile_peers seed
        // 1060234). Round 0 needs no justification, so a healthy chain pays nothing for this.
        if let Some(previous) = self.round.checked_sub(1) {
            let held = |r| self.votes.round(r);
            let previous = held(previous)
                .into_iter()
                .flat_map(|rv| rv.precommits.first_votes());
            let current = held(self.round)
                .into_iter()
                .flat_map(|rv| rv.prevotes.first_votes().chain(rv.precommits.first_votes()));
            for v in previous.chain(current) {
                out.push(Output::Broadcast(Message::Vote(v.clone())));
            }
        } else if let Some(me) = self.me
            && let Some(rv) = self.votes.round(0)
        {
            let own = [rv.prevotes.vote_of(me), rv.precommits.vote_of(me)];
            for v in own.into_iter().flatten() {
                out.push(Output::Broadcast(Message::Vote(v.clone())));
            }
        }
        // Our precommits of the recent rounds before those: a peer left further behind
        // needs them to time out.
        let Some(me) = self.me else { return };
        let first = self.round.saturating_sub(16);
        for (_, rv) in self
            .votes
            .rounds()
            .filter(|(r, _)| *r >= first && r.saturating_add(1) < self.round)
        {
            if let Some(v) = rv.precommits.vote_of(me) {
                out.push(Output::Broadcast(Message::Vote(v.clone())));
            }
        }
    }

    // ----- the upon rules -----

    fn run_rules(&mut self, out: &mut Vec<Output>) {
        self.request_named(out);
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

    /// Blocks of other rounds wait unverified until a prevote or precommit quorum names them
    /// (lines 36 and 49 may then need them).
    fn request_named(&mut self, out: &mut Vec<Output>) {
        let Some(set) = self.set.clone() else { return };
        if !self
            .blocks
            .values()
            .any(|(_, v)| *v == Validity::Unrequested)
        {
            return;
        }
        let named: Vec<BlockId> = self
            .votes
            .rounds()
            .flat_map(|(_, rv)| rv.prevotes.values().chain(rv.precommits.values()))
            .filter_map(|(value, power)| value.filter(|_| set.is_quorum(power)))
            .collect();
        for id in named {
            self.request_verification(id, out);
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
            if matches!(validity, Validity::Pending | Validity::Unrequested) {
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

/// Same signed content (what the signature covers), whatever the payload beside it.
fn same_signed_proposal(a: &SignedProposal, b: &SignedProposal) -> bool {
    let (p, q) = (&a.proposal, &b.proposal);
    a.signature == b.signature
        && p.height == q.height
        && p.round == q.round
        && p.pol_round == q.pol_round
        && p.proposer == q.proposer
        && p.block.id == q.block.id
}

/// A proposal as evidence keeps it: the signed part, not the block.
fn without_payload(p: &SignedProposal) -> SignedProposal {
    let mut p = p.clone();
    p.proposal.block.payload = Default::default();
    p
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
            self.vote_at(index, t, 1, round, block)
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

    /// An observer with a validator's guard (the doppelganger watch) signs nothing, keeps the
    /// lock and round its record restores, and once given its signer re-sends the votes the
    /// record holds for the round it is in, then votes with its lock: no restart needed.
    #[test]
    fn a_signer_installed_later_keeps_the_records_lock_and_round() {
        use crate::guard::{LockRecord, RoundRecord};
        let n = net();
        let me = n.follower();
        let a = block(0xa);
        let record = SignRecord {
            latest: Some(RoundRecord {
                height: 1,
                round: 2,
                proposal: None,
                prevote: Some(Some(a.id)),
                precommit: Some(Some(a.id)),
            }),
            lock: Some(LockRecord {
                height: 1,
                round: 2,
                block: a.id,
            }),
        };
        let (mut m, out) = Machine::new(
            Config::new(chain()),
            None,
            SlashingGuard::new(record, Box::new(NoStore)),
            n.verifier.clone(),
            n.provider.clone(),
            1,
        );
        assert!(sent_votes(&out).is_empty(), "an observer signed");
        assert!(!m.is_signing());
        assert_eq!((m.round(), m.locked()), (2, Some((2, a.id))));
        let out = m.install_signer(Box::new(TestSigner(n.keys[me])));
        assert!(m.is_signing());
        assert_eq!(m.validator_index(), Some(n.index(me)));
        assert_eq!(
            sent_votes(&out),
            vec![
                (VoteType::Prevote, 2, Some(a.id)),
                (VoteType::Precommit, 2, Some(a.id))
            ]
        );
        // Round 3: a fresh proposal of another block gets a nil prevote (the lock holds).
        m.apply(Input::TimeoutFired {
            height: 1,
            round: 2,
            step: Step::Precommit,
        });
        assert_eq!(m.round(), 3);
        let b = block(0xb);
        let proposer = n.set.proposer(1, 3);
        let proposal = Proposal {
            height: 1,
            round: 3,
            pol_round: None,
            block: b.clone(),
            proposer,
        };
        let signature =
            TestSigner(n.keys[n.key_of(proposer)]).sign(&proposal.sign_bytes(&chain(), 0));
        m.apply(Input::Proposal(SignedProposal {
            proposal,
            signature,
        }));
        let out = m
            .apply(Input::BlockVerified {
                id: b.id,
                valid: true,
            })
            .outputs;
        assert_eq!(sent_votes(&out), vec![(VoteType::Prevote, 3, None)]);
    }

    /// Observers that all timed out of the propose step (a whole network restarting, every
    /// validator watching) would wait in the prevote step for ever, each for the others'
    /// prevotes: given its signer, a validator sends the nil prevote its observer skipped.
    #[test]
    fn a_signer_installed_later_sends_the_votes_its_observer_skipped() {
        let n = net();
        let me = n.follower();
        let (mut m, _) = Machine::new(
            Config::new(chain()),
            None,
            SlashingGuard::new(SignRecord::default(), Box::new(NoStore)),
            n.verifier.clone(),
            n.provider.clone(),
            1,
        );
        let out = m
            .apply(Input::TimeoutFired {
                height: 1,
                round: 0,
                step: Step::Propose,
            })
            .outputs;
        assert!(sent_votes(&out).is_empty());
        assert_eq!(m.step(), Step::Prevote);
        let out = m.install_signer(Box::new(TestSigner(n.keys[me])));
        assert_eq!(sent_votes(&out), vec![(VoteType::Prevote, 0, None)]);
        assert_eq!(m.step(), Step::Prevote);
    }

    /// A proposer given its signer in the propose step of its round asks for a block at once.
    #[test]
    fn a_proposer_given_its_signer_in_its_round_builds() {
        let n = net();
        let proposer = n.key_of(n.set.proposer(1, 0));
        let (mut m, out) = Machine::new(
            Config::new(chain()),
            None,
            SlashingGuard::new(SignRecord::default(), Box::new(NoStore)),
            n.verifier.clone(),
            n.provider.clone(),
            1,
        );
        assert!(
            !out.iter()
                .any(|o| matches!(o, Output::BuildProposal { .. }))
        );
        let out = m.install_signer(Box::new(TestSigner(n.keys[proposer])));
        assert!(out.iter().any(|o| matches!(
            o,
            Output::BuildProposal {
                height: 1,
                round: 0
            }
        )));
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
                let out = ms[i].apply(input).outputs;
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
        let out = m
            .apply(Input::BlockVerified {
                id: b.id,
                valid: true,
            })
            .outputs;
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
        let out = m.apply(Input::Proposal(n.proposal(2, Some(1), &b))).outputs;
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
        let out = m2
            .apply(Input::TimeoutFired {
                height: 1,
                round: 0,
                step: Step::Propose,
            })
            .outputs;
        assert!(sent_votes(&out).is_empty());
    }

    #[test]
    fn bad_signatures_are_rejected_and_equivocation_reported() {
        let n = net();
        let (mut m, _) = n.machine(n.follower(), SignRecord::default());
        let other = (0..4u32).find(|&i| Some(i) != m.validator_index()).unwrap();
        let mut forged = n.vote(other, VoteType::Prevote, 0, None);
        forged.signature.0[0] ^= 1;
        let applied = m.apply(Input::Vote(forged));
        assert_eq!(applied.verdict, Verdict::Rejected(Reject::BadSignature));
        assert!(applied.outputs.is_empty());
        m.apply(Input::Vote(n.vote(other, VoteType::Prevote, 0, None)));
        let out = m
            .apply(Input::Vote(n.vote(
                other,
                VoteType::Prevote,
                0,
                Some(B256::repeat_byte(3)),
            )))
            .outputs;
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

    /// A provider that knows the sets of heights up to `known` only (the next epoch's set
    /// not decided yet).
    #[derive(Debug)]
    struct UpTo {
        known: Height,
        inner: Arc<StaticProvider>,
    }

    impl ValidatorSetProvider for UpTo {
        fn epoch_of(&self, height: Height) -> u64 {
            self.inner.epoch_of(height)
        }

        fn validator_set(&self, height: Height) -> Option<Arc<ValidatorSet>> {
            (height <= self.known)
                .then(|| self.inner.validator_set(height))
                .flatten()
        }
    }

    impl Net {
        fn machine_with(
            &self,
            i: usize,
            config: Config,
            provider: Arc<dyn ValidatorSetProvider>,
        ) -> Machine {
            Machine::new(
                config,
                Some(Box::new(TestSigner(self.keys[i]))),
                SlashingGuard::new(SignRecord::default(), Box::new(NoStore)),
                self.verifier.clone(),
                provider,
                1,
            )
            .0
        }
        fn vote_at(
            &self,
            index: u32,
            t: VoteType,
            height: Height,
            round: Round,
            block: Option<BlockId>,
        ) -> SignedVote {
            let vote = Vote {
                vote_type: t,
                height,
                round,
                block,
                validator: index,
            };
            let signature =
                TestSigner(self.keys[self.key_of(index)]).sign(&vote.sign_bytes(&chain(), 0));
            SignedVote { vote, signature }
        }
    }

    fn forged(index: u32, height: Height, round: Round) -> SignedVote {
        SignedVote {
            vote: Vote {
                vote_type: VoteType::Precommit,
                height,
                round,
                block: Some(B256::repeat_byte(0xee)),
                validator: index,
            },
            signature: SignatureBytes::repeat_byte(0x66),
        }
    }

    /// Decides height 1 on a machine: proposal, verification, then the precommits of the
    /// other three validators. Returns the `Applied` of the deciding precommit.
    fn decide_height_one(n: &Net, m: &mut Machine) -> Applied {
        let a = block(0xa);
        m.apply(Input::Proposal(n.proposal(0, None, &a)));
        m.apply(Input::BlockVerified {
            id: a.id,
            valid: true,
        });
        let others: Vec<u32> = (0..4u32)
            .filter(|&i| Some(i) != m.validator_index())
            .collect();
        let mut last = None;
        for &i in &others {
            let applied = m.apply(Input::Vote(n.vote(i, VoteType::Precommit, 0, Some(a.id))));
            if m.height() == 2 && last.is_none() {
                last = Some(applied);
            }
        }
        last.expect("height 1 decided")
    }

    /// Fault 1 of the hostile-peers issue: forged next-height votes used to be buffered
    /// unchecked, reported `Accept` (so relayed), and replayed inside the deciding
    /// precommit's `apply`, whose `Rejected` outputs got the honest sender banned.
    #[test]
    fn forged_next_height_votes_are_refused_on_receipt_and_never_blamed_on_the_decider() {
        let n = net();
        let mut m = n.machine_with(n.follower(), Config::new(chain()), n.provider.clone());
        for i in 0..1_000u32 {
            let applied = m.apply(Input::Vote(forged(i % 4, 2, i % 3)));
            assert_eq!(
                applied.verdict,
                Verdict::Rejected(Reject::BadSignature),
                "the set of height 2 is known: checked on receipt"
            );
            assert!(!applied.verdict.relay());
        }
        let genuine = n.vote_at(n.index(n.follower()) ^ 1, VoteType::Prevote, 2, 0, None);
        assert_eq!(
            m.apply(Input::Vote(genuine)).verdict,
            Verdict::Buffered { verified: true }
        );
        let decided = decide_height_one(&n, &mut m);
        assert_eq!(decided.verdict, Verdict::Accepted);
        assert!(
            decided
                .outputs
                .iter()
                .any(|o| matches!(o, Output::Decided { height: 1, .. }))
        );
    }

    /// The same when the next height's set is not known yet: forgeries are kept unverified
    /// (never relayed), and their failure at replay is nobody's verdict.
    #[test]
    fn unverifiable_next_height_messages_are_buffered_unrelayed_and_blame_nobody() {
        let n = net();
        let provider = Arc::new(UpTo {
            known: 1,
            inner: n.provider.clone(),
        });
        let mut m = n.machine_with(n.follower(), Config::new(chain()), provider.clone());
        let mut buffered = 0;
        for i in 0..1_000u32 {
            let verdict = m.apply(Input::Vote(forged(i % 4, 2, i))).verdict;
            assert!(
                matches!(
                    verdict,
                    Verdict::Buffered { verified: false } | Verdict::Ignored
                ),
                "{verdict:?}"
            );
            assert!(!verdict.relay());
            buffered += usize::from(verdict != Verdict::Ignored);
        }
        assert!(buffered > 0);
        assert_eq!(
            m.apply(Input::Vote(forged(9, 2, 0))).verdict,
            Verdict::Ignored,
            "an index outside the last known set is not kept"
        );
        assert_eq!(
            m.apply(Input::Vote(forged(0, 3, 0))).verdict,
            Verdict::Ignored,
            "only the next height is kept"
        );
        let decided = decide_height_one(&n, &mut m);
        // The machine waits for the set of height 2; the forgeries wait with it.
        assert_eq!(decided.verdict, Verdict::Accepted);
        assert_eq!(m.height(), 2);
    }

    /// Fault 2: the next-height buffer holds an equal byte share per validator index, so
    /// one validator (or a forger in its name) cannot fill it.
    #[test]
    fn next_height_buffer_is_bounded_per_validator_index() {
        let n = net();
        let mut config = Config::new(chain());
        config.max_buffered_bytes = 4 * 8 * crate::future::MESSAGE_OVERHEAD;
        let mut m = n.machine_with(n.follower(), config.clone(), n.provider.clone());
        let me = n.index(n.follower());
        let flooder = (me + 1) % 4;
        let mut kept = 0;
        for round in 0..100 {
            for t in [VoteType::Prevote, VoteType::Precommit] {
                let verdict = m
                    .apply(Input::Vote(n.vote_at(flooder, t, 2, round, None)))
                    .verdict;
                kept += usize::from(verdict == Verdict::Buffered { verified: true });
            }
        }
        assert_eq!(kept, 8, "a share is max_buffered_bytes / 4 validators");
        assert_eq!(
            m.buffered_bytes(),
            config.max_buffered_bytes / 4,
            "the flooder holds its share only"
        );
        let other = (me + 2) % 4;
        assert_eq!(
            m.apply(Input::Vote(n.vote_at(other, VoteType::Prevote, 2, 0, None)))
                .verdict,
            Verdict::Buffered { verified: true },
            "another validator still has room"
        );
        assert_eq!(
            m.apply(Input::Vote(n.vote_at(other, VoteType::Prevote, 3, 0, None)))
                .verdict,
            Verdict::Ignored,
            "two heights ahead is never kept"
        );
        decide_height_one(&n, &mut m);
        assert_eq!(m.buffered_bytes(), 0, "replayed at height 2");
    }

    /// Fault 3: a relayer that swaps the unsigned payload beside a signed proposal makes
    /// no evidence; two different signed proposals do, without their payloads.
    #[test]
    fn payload_swaps_are_not_evidence_and_evidence_carries_no_payload() {
        let n = net();
        let (mut m, _) = n.machine(n.follower(), SignRecord::default());
        let a = block(0xa);
        let signed = n.proposal(0, None, &a);
        assert_eq!(
            m.apply(Input::Proposal(signed.clone())).verdict,
            Verdict::Accepted
        );
        let mut swapped = signed.clone();
        swapped.proposal.block.payload = Bytes::from_static(b"another body");
        let applied = m.apply(Input::Proposal(swapped));
        assert_eq!(applied.verdict, Verdict::Ignored);
        assert!(
            !applied
                .outputs
                .iter()
                .any(|o| matches!(o, Output::Evidence(_)))
        );
        let other = n.proposal(0, None, &block(0xb));
        let applied = m.apply(Input::Proposal(other));
        let evidence = applied.outputs.iter().find_map(|o| match o {
            Output::Evidence(Evidence::DuplicateProposal { first, second, .. }) => {
                Some((first.clone(), second.clone()))
            }
            _ => None,
        });
        let (first, second) = evidence.expect("two signed proposals are evidence");
        assert!(
            first.proposal.block.payload.is_empty() && second.proposal.block.payload.is_empty()
        );
        assert_ne!(first.proposal.block.id, second.proposal.block.id);
    }

    /// Fault 6: only proposals of the current and the next round are executed; later ones
    /// are dropped (their proposer re-sends them), earlier ones wait for a quorum to name
    /// them.
    #[test]
    fn only_the_current_and_next_round_proposals_are_verified() {
        let n = net();
        let (mut m, _) = n.machine(n.follower(), SignRecord::default());
        let verifies = |out: &[Output]| {
            out.iter()
                .filter(|o| matches!(o, Output::VerifyBlock { .. }))
                .count()
        };
        let far = m.apply(Input::Proposal(n.proposal(2, None, &block(2))));
        assert_eq!(far.verdict, Verdict::Ignored);
        assert_eq!(verifies(&far.outputs), 0);
        let next = m.apply(Input::Proposal(n.proposal(1, None, &block(1))));
        assert_eq!(next.verdict, Verdict::Accepted);
        assert_eq!(verifies(&next.outputs), 1);
        // Move to round 3 (round skip); round 1's block is now old and never asked again.
        let others: Vec<u32> = (0..4u32)
            .filter(|&i| Some(i) != m.validator_index())
            .collect();
        let mut out = Vec::new();
        for &i in &others[..2] {
            out.extend(
                m.apply(Input::Vote(n.vote(i, VoteType::Prevote, 3, None)))
                    .outputs,
            );
        }
        assert_eq!(m.round(), 3);
        assert_eq!(verifies(&out), 0);
    }

    /// Heights and rounds from the wire never overflow anything.
    #[test]
    fn absurd_heights_and_rounds_are_ignored_or_refused() {
        let n = net();
        let (mut m, _) = n.machine(n.follower(), SignRecord::default());
        assert_eq!(
            m.apply(Input::Vote(forged(0, u64::MAX, 0))).verdict,
            Verdict::Ignored
        );
        assert_eq!(
            m.apply(Input::Vote(forged(0, 1, u32::MAX))).verdict,
            Verdict::Rejected(Reject::RoundTooFar)
        );
        assert_eq!(
            m.apply(Input::Vote(forged(u32::MAX, 1, 0))).verdict,
            Verdict::Rejected(Reject::UnknownValidator)
        );
    }
}
