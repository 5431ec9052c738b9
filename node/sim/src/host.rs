//! The shipped engine's host inside the simulator: a [`SimNet`] that hands what the engine sends
//! to the world, a [`SimRuntime`] on the world's virtual clock, and a [`SimApp`]: the node's
//! own application ([`NodeApp`]: real `WireBlock`s, the real block rules, real execution)
//! over an in-memory store, which also tells the checker what was built and decided.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use alloy_primitives::{Address, B256};
use bttd_app::{NodeApp, ProviderError, ValidationError};
use bttd_consensus::{Block, BlockId, CommitCertificate, Height, ValidatorSetProvider};
use bttd_engine::wire::CertifiedBlock;
use bttd_engine::{
    Acceptance, Application, Engine, Event, JobPanicked, Network, RequestTag, Runtime,
};
use bttd_runtime::ExecutedBlock;

use crate::network::{Event as WorldEvent, Queue};
use crate::slashing::SimSets;

/// What a simulated engine handles.
pub type SimEvent = Event<SimNet, SimApp>;
/// The shipped engine over the simulator's host.
pub type SimEngine = Engine<SimNet, SimRuntime, SimApp>;

/// Microseconds after which a blocking job's result comes back (building, verifying,
/// committing, answering sync all take some time).
pub(crate) const JOB_DELAY_US: u64 = 1_000;

/// Locks a mutex of the single-threaded world (poisoned only if a test already panicked).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What one engine asked its network to do, in order.
pub(crate) enum Out {
    Publish(Vec<u8>),
    Ban(usize, String),
    Request(usize, Vec<u8>, RequestTag),
    Respond(u64, Vec<u8>),
}

/// The engine's network: an outbox the world empties after each event it handled.
pub struct SimNet {
    pub(crate) outbox: Arc<Mutex<Vec<Out>>>,
}

impl Network for SimNet {
    type Peer = usize;
    type MessageId = ();
    type Responder = u64;
    type RequestError = String;

    fn publish(&mut self, data: Vec<u8>) {
        lock(&self.outbox).push(Out::Publish(data));
    }

    fn report(&mut self, _: (), _: usize, _: Acceptance) {
        // Links are direct: nothing is relayed, so verdicts change no routing.
    }

    fn ban(&mut self, peer: usize, reason: String) {
        lock(&self.outbox).push(Out::Ban(peer, reason));
    }

    fn request(&mut self, peer: usize, data: Vec<u8>, tag: RequestTag) {
        lock(&self.outbox).push(Out::Request(peer, data, tag));
    }

    fn respond(&mut self, responder: u64, data: Vec<u8>) {
        lock(&self.outbox).push(Out::Respond(responder, data));
    }
}

/// Timers and blocking jobs as events on the world's queue, for one incarnation of a node.
pub struct SimRuntime {
    pub(crate) node: usize,
    pub(crate) inc: u32,
    pub(crate) queue: Arc<Mutex<Queue>>,
    /// Unix seconds at virtual time zero.
    pub(crate) epoch_seconds: u64,
}

impl Runtime<SimEvent> for SimRuntime {
    fn now(&self) -> Duration {
        Duration::from_micros(lock(&self.queue).now)
    }

    fn unix_seconds(&self) -> u64 {
        self.epoch_seconds + lock(&self.queue).now / 1_000_000
    }

    fn schedule(&mut self, after: Duration, event: SimEvent) {
        lock(&self.queue).after(
            after.as_micros() as u64,
            WorldEvent::Timer {
                node: self.node,
                inc: self.inc,
                event: Box::new(event),
            },
        );
    }

    fn spawn_blocking(&mut self, job: Box<dyn FnOnce() -> SimEvent + Send>) {
        lock(&self.queue).after(
            JOB_DELAY_US,
            WorldEvent::Job {
                node: self.node,
                inc: self.inc,
                job: Box::new(move || {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).unwrap_or_else(
                        |_| SimEvent::from(JobPanicked("a simulated job panicked".into())),
                    )
                }),
            },
        );
    }
}

/// What applications built and decided, for the checker.
#[derive(Default)]
pub(crate) struct AppLog {
    pub(crate) built: Vec<BlockId>,
    /// `(node, height, block, certificate)` of every commit.
    pub(crate) decided: Vec<(usize, Height, BlockId, CommitCertificate)>,
}

/// The node's application over an in-memory chain, reporting to the world.
pub struct SimApp {
    pub(crate) inner: NodeApp,
    pub(crate) node: usize,
    pub(crate) log: Arc<Mutex<AppLog>>,
    /// The sets, told of each commit and the offenders its evidence names.
    pub(crate) sets: Arc<SimSets>,
}

impl SimApp {
    /// The identities a block's evidence accuses (the block passed the voters' checks, so its
    /// `extraData` decodes and every offender is in the set of its offence's height).
    fn offenders(&self, block: &bttd_runtime::SealedBlock) -> Vec<usize> {
        let height = block.number();
        if height <= 1 {
            return Vec::new();
        }
        let Some(parent_set) = self.sets.validator_set(height - 1) else {
            return Vec::new();
        };
        let epoch_end = self.sets.epoch_of(height) != self.sets.epoch_of(height + 1);
        let Some(extra) = bttd_engine::wire::ExtraData::decode(
            &block.header.extra_data,
            height - 1,
            block.header.parent_hash,
            parent_set.len(),
            epoch_end,
        ) else {
            return Vec::new();
        };
        extra
            .evidence
            .iter()
            .filter_map(|e| {
                let set = self.sets.validator_set(e.height())?;
                let key = set.validators().get(e.offender() as usize)?.public_key;
                self.sets.identity_of(&key)
            })
            .collect()
    }
}

impl Application for SimApp {
    type Executed = ExecutedBlock;
    type Invalid = ValidationError;
    type Fault = ProviderError;

    fn genesis_hash(&self) -> B256 {
        self.inner.genesis_hash()
    }

    fn head(&self) -> (Height, B256) {
        self.inner.head()
    }

    fn check_payload(&self, block: &Block) -> Result<(), ValidationError> {
        self.inner.check_payload(block)
    }

    fn build(
        &self,
        height: Height,
        beneficiary: Address,
        parent: Option<CommitCertificate>,
        now: u64,
    ) -> Result<(Block, ExecutedBlock), ProviderError> {
        let built = self.inner.build(height, beneficiary, parent, now)?;
        lock(&self.log).built.push(built.0.id);
        Ok(built)
    }

    fn verify(
        &self,
        height: Height,
        block: &Block,
        proposer: Option<Address>,
        now: u64,
    ) -> Result<ExecutedBlock, ValidationError> {
        self.inner.verify(height, block, proposer, now)
    }

    fn parent_of(executed: &ExecutedBlock) -> B256 {
        NodeApp::parent_of(executed)
    }

    fn execute_decided(&self, block: &Block) -> Result<ExecutedBlock, ProviderError> {
        self.inner.execute_decided(block)
    }

    fn commit(
        &self,
        executed: ExecutedBlock,
        certificate: &CommitCertificate,
    ) -> Result<(), ProviderError> {
        let height = executed.block.number();
        let id = executed.block.hash();
        let offenders = self.offenders(&executed.block);
        self.inner.commit(executed, certificate)?;
        self.sets.on_commit(height, &offenders);
        lock(&self.log)
            .decided
            .push((self.node, height, id, certificate.clone()));
        Ok(())
    }

    fn certificate(&self, height: Height) -> Option<CommitCertificate> {
        self.inner.certificate(height)
    }

    fn certified_blocks(
        &self,
        from: Height,
        max: u32,
        budget: usize,
    ) -> Result<Vec<CertifiedBlock>, ProviderError> {
        self.inner.certified_blocks(from, max, budget)
    }
}
