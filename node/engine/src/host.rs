//! What the engine needs from whoever runs it: a [`Network`], a [`Runtime`] (clock, timers and
//! a place for blocking work) and an [`Application`] (the chain). The engine is only logic over
//! these three: it spawns nothing, reads no clock and opens no socket or database itself.
//!
//! Why: the node runs it over libp2p, tokio and RocksDB (`bttd-node`'s `consensus` module),
//! and the simulator runs the same code over a deterministic clock and an in-memory network,
//! so what the simulator's byzantine scenarios test is what ships.
//!
//! Every call the engine makes on these traits returns at once. Work that takes time (building
//! or verifying a block, committing, answering a sync request) is handed to
//! [`Runtime::spawn_blocking`] as a closure that returns an [`Event`]; timers and network
//! answers come back as events too. The host feeds every event to [`Engine::handle`] one at a
//! time, in the order it produced them.
//!
//! [`Engine::handle`]: crate::Engine::handle

use std::fmt::{Debug, Display};
use std::hash::Hash;
use std::time::Duration;

use alloy_primitives::{Address, B256};
use bttd_consensus::{Block, BlockId, CommitCertificate, Height, Round, Step};

use crate::sync::ServePermit;
use crate::wire::CertifiedBlock;

/// What the engine thinks of a gossip message, for the network's relay decision: only
/// accepted messages are forwarded, and rejected ones count against the peer that sent them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acceptance {
    Accept,
    Ignore,
    Reject,
}

/// The gossip network and request/response protocol the engine speaks through. Calls queue
/// their work and return at once, in order: a host must send what was published in the order
/// it was published.
pub trait Network: Send + 'static {
    /// A peer's identity (the one to report, ban or ask).
    type Peer: Copy + Ord + Hash + Debug + Display + Send + Sync + 'static;
    /// The network's identifier of a received gossip message, handed back with its verdict.
    type MessageId: Send + 'static;
    /// Where the answer to a peer's request goes.
    type Responder: Send + 'static;
    /// Why a request of ours got no answer.
    type RequestError: Display + Send + 'static;

    /// Publishes bytes on the consensus topic.
    fn publish(&mut self, data: Vec<u8>);
    /// The verdict on a gossip message received from `from`.
    fn report(&mut self, message: Self::MessageId, from: Self::Peer, acceptance: Acceptance);
    /// Disconnects a peer that sent what no correct node sends, and refuses it from now on.
    fn ban(&mut self, peer: Self::Peer, reason: String);
    /// Sends a sync request to `peer`; its answer comes back as [`Event::Answer`] with `tag`.
    fn request(&mut self, peer: Self::Peer, data: Vec<u8>, tag: RequestTag);
    /// Answers a peer's request.
    fn respond(&mut self, responder: Self::Responder, data: Vec<u8>);
}

/// Clock, timers and blocking work. `E` is the engine's [`Event`] type.
pub trait Runtime<E>: Send + 'static {
    /// Monotonic time since some fixed point (never goes back).
    fn now(&self) -> Duration;
    /// Wall-clock time in seconds since the Unix epoch (block timestamps).
    fn unix_seconds(&self) -> u64;
    /// Delivers `event` to the engine after `after`.
    fn schedule(&mut self, after: Duration, event: E);
    /// Runs `job` away from the engine's loop and delivers the event it returns. A job that
    /// panics is a bug of this node: the host delivers `E::from(JobPanicked)` instead, which
    /// stops the engine.
    fn spawn_blocking(&mut self, job: Box<dyn FnOnce() -> E + Send>);
}

/// A blocking job panicked (see [`Runtime::spawn_blocking`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a blocking job of the engine panicked: {0}")]
pub struct JobPanicked(pub String);

/// The chain the engine decides blocks of. Called from blocking jobs (never from the engine's
/// loop, except [`Application::check_payload`]), so it may read and write storage.
pub trait Application: Send + Sync + 'static {
    /// A block executed on the head, ready to commit as is if it is decided.
    type Executed: Send + 'static;
    /// Why a proposed or synced block breaks a block rule (the proposer's or peer's fault).
    type Invalid: Display + Send + 'static;
    /// A fault of this node (storage, software): the engine stops on it.
    type Fault: Display + Send + 'static;

    /// The genesis hash: what consensus messages and certificates are signed for.
    fn genesis_hash(&self) -> B256;
    /// Height and hash of the last committed block.
    fn head(&self) -> (Height, B256);
    /// Whether `block.payload` decodes to the block that `block.id` names. Runs on the engine's
    /// loop before a proposal or synced block is stored, relayed or executed.
    fn check_payload(&self, block: &Block) -> Result<(), Self::Invalid>;
    /// Builds a block at `height` on the head: `beneficiary` as miner, `parent` (the head's
    /// certificate; none for block 1) in its extraData, stamped no earlier than `now`
    /// (seconds).
    fn build(
        &self,
        height: Height,
        beneficiary: Address,
        parent: Option<CommitCertificate>,
        now: u64,
    ) -> Result<(Block, Self::Executed), Self::Fault>;
    /// Checks a proposed block against every block rule and executes it on the head.
    /// `proposer`: the account of the round's proposer that proposed it fresh, which must be
    /// the block's miner (`None` for a re-proposal, vouched for by its prevote quorum).
    fn verify(
        &self,
        height: Height,
        block: &Block,
        proposer: Option<Address>,
        now: u64,
    ) -> Result<Self::Executed, Self::Invalid>;
    /// The parent hash of an executed block (the engine drops results of a stale head).
    fn parent_of(executed: &Self::Executed) -> B256;
    /// Executes a decided block this node has not executed (one that came through sync, its
    /// payload already checked against the certified id).
    fn execute_decided(&self, block: &Block) -> Result<Self::Executed, Self::Fault>;
    /// Commits an executed block with the certificate that decided it.
    fn commit(
        &self,
        executed: Self::Executed,
        certificate: &CommitCertificate,
    ) -> Result<(), Self::Fault>;
    /// The certificate stored with block `height`, if any (blocks committed without
    /// consensus, genesis included, have none).
    fn certificate(&self, height: Height) -> Option<CommitCertificate>;
    /// Committed blocks from `from` with their certificates: at most `max`, stopping before
    /// the encoded blocks exceed `budget` bytes (but at least one).
    fn certified_blocks(
        &self,
        from: Height,
        max: u32,
        budget: usize,
    ) -> Result<Vec<CertifiedBlock>, Self::Fault>;
}

/// Echoed back with the answer to a request, so the engine knows what it asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTag(pub(crate) Asked);

/// What a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Asked {
    Status,
    /// Committed blocks from this height.
    Blocks {
        from: Height,
    },
    /// The block of an announced proposal.
    ProposalBlock {
        id: BlockId,
    },
}

/// Everything that makes the engine act: network input, its own timers, and the results of
/// the blocking work it handed out.
pub enum Event<N: Network, A: Application> {
    /// A consensus gossip message from `from`.
    Gossip {
        from: N::Peer,
        message_id: N::MessageId,
        data: Vec<u8>,
    },
    /// A peer's sync request.
    Request {
        peer: N::Peer,
        data: Vec<u8>,
        respond: N::Responder,
    },
    /// The answer to our request (see [`Network::request`]).
    Answer {
        peer: N::Peer,
        tag: RequestTag,
        result: Result<Vec<u8>, N::RequestError>,
    },
    PeerConnected(N::Peer),
    PeerDisconnected(N::Peer),
    /// Internal: the engine's timers and blocking work, created only by the engine.
    #[doc(hidden)]
    Internal(Internal<N, A>),
}

impl<N: Network, A: Application> From<JobPanicked> for Event<N, A> {
    fn from(panic: JobPanicked) -> Self {
        Event::Internal(Internal(InternalKind::Panicked(panic)))
    }
}

/// Timers and results of blocking work (opaque outside the engine).
pub struct Internal<N: Network, A: Application>(pub(crate) InternalKind<N, A>);

pub(crate) enum InternalKind<N: Network, A: Application> {
    Timeout {
        height: Height,
        round: Round,
        step: Step,
    },
    Rebroadcast,
    PollStatus,
    /// The block-time wait before building `height` at `round` is over.
    BuildDue {
        height: Height,
        round: Round,
    },
    Built {
        height: Height,
        round: Round,
        result: Result<(Block, A::Executed), A::Fault>,
    },
    /// `Ok(None)`: the block was already executed (built or verified) by this node.
    Verified {
        id: BlockId,
        result: Result<Option<A::Executed>, A::Invalid>,
    },
    /// A block this node cannot check (see `Engine::verify`): not voted for.
    Unverifiable {
        id: BlockId,
    },
    Committed {
        height: Height,
        block: BlockId,
        result: Result<(), CommitFailure<A>>,
    },
    Answered {
        respond: N::Responder,
        data: Vec<u8>,
        permit: ServePermit,
    },
    Panicked(JobPanicked),
}

/// Why a decided block did not commit.
pub(crate) enum CommitFailure<A: Application> {
    /// The block matches its certified header but does not execute here.
    Execute(A::Fault),
    Commit(A::Fault),
}
