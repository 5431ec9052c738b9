//! The engine's host in the node: libp2p for its [`Network`], tokio for its [`Runtime`] (timers,
//! and blocking threads for execution, RocksDB and BLS), and one task that feeds it events.
//!
//! The engine itself is logic only (`bttd-engine`); this is the I/O it asked for.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy_primitives::Address;
use bttd_consensus::bls::BlsSecretKey;
use bttd_consensus::{BlsSigner, BlsVerifier, Height, SlashingGuard, TimeoutConfig};
use bttd_engine::{
    Acceptance, ConsensusInfo, DoppelgangerWatch, Engine, EngineConfig, EngineError, EngineFault,
    Event, JobPanicked, Network, RequestTag, Runtime, Signing,
};
use bttd_keys::slashing_db::FileSlashingStore;
use bttd_network::{NetworkEvent, NetworkHandle, Topic};
use bttd_txpool::context::NodeContext;
use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use tokio::sync::{mpsc, oneshot, watch};

use bttd_app::NodeApp;

// The engine's messages and the network's topics and protocols carry one version.
const _: () = assert!(bttd_engine::wire::VERSION as u32 == bttd_network::WIRE_VERSION);

/// What the node's engine handles.
pub type NodeEvent = Event<P2pNetwork, NodeApp>;
/// The engine as the node runs it.
pub type NodeEngine = Engine<P2pNetwork, TokioRuntime<NodeEvent>, NodeApp>;

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

/// How the node runs consensus.
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
    /// Doppelganger protection of a validator (`None`: `--disable-doppelganger-protection`).
    pub doppelganger: Option<DoppelgangerWatch>,
}

/// Why the node's engine did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Slashing(#[from] bttd_keys::slashing_db::SlashingDbError),
}

/// Builds the engine over the node's chain and network. A validator's slashing-protection
/// record is opened only once its key is known to be in the set.
pub fn new_engine(
    ctx: Arc<NodeContext>,
    net: NetworkHandle,
    info: Arc<ConsensusInfo>,
    sets: Arc<bttd_app::ChainSets>,
    settings: EngineSettings,
) -> Result<(NodeEngine, mpsc::UnboundedReceiver<NodeEvent>), StartError> {
    let chain_id = ctx.chain.genesis_hash();
    let signing = match &settings.key {
        Some(key) => {
            let head = ctx.chain.head().number;
            // A key the current set does not name (a validator that just registered) follows
            // the chain and signs from the epoch whose set names it.
            match bttd_engine::check_key(&info, head + 1, &key.bls.public_key(), key.address) {
                Ok(()) => {}
                Err(EngineError::NotAValidator) => tracing::info!(
                    target: "bttd::node",
                    account = %key.address,
                    "this validator's key is not in the current set: following until a set names it"
                ),
                Err(e) => return Err(e.into()),
            }
            let (store, record) = FileSlashingStore::open(&settings.slashing_db, chain_id)?;
            Some(Signing {
                signer: Box::new(BlsSigner(key.bls.clone())),
                account: key.address,
                guard: SlashingGuard::new(record, Box::new(store)),
            })
        }
        None => None,
    };
    let config = EngineConfig {
        block_time: settings.block_time,
        timeouts: settings.timeouts,
        panic_at_height: settings.panic_at_height,
        rebroadcast: bttd_engine::engine::REBROADCAST,
        status_poll: bttd_engine::engine::STATUS_POLL,
        doppelganger: settings.doppelganger,
    };
    let (events, inputs) = mpsc::unbounded_channel();
    let network = P2pNetwork::start(net, events.clone());
    let runtime = TokioRuntime::new(events);
    let verifier = Arc::new(BlsVerifier);
    let app = Arc::new(NodeApp::staking(ctx, info.clone(), verifier.clone(), sets));
    let engine = Engine::new(
        network,
        runtime,
        app,
        info,
        verifier,
        config,
        signing,
        rand::random(),
    )?;
    Ok((engine, inputs))
}

/// Feeds the engine its own events (timers, finished jobs, answers) and the network's, one at
/// a time, until `shutdown` or a fault of this node.
pub async fn run(
    mut engine: NodeEngine,
    mut inputs: mpsc::UnboundedReceiver<NodeEvent>,
    mut network: mpsc::Receiver<NetworkEvent>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), EngineFault> {
    loop {
        let event = tokio::select! {
            _ = shutdown.changed() => break,
            Some(event) = inputs.recv() => event,
            event = network.recv() => match event {
                Some(event) => match from_network(event) {
                    Some(event) => event,
                    None => continue,
                },
                None => break,
            },
        };
        engine.handle(event)?;
    }
    tracing::info!(target: "bttd::consensus", height = engine.height(), "consensus engine stopped");
    Ok(())
}

fn from_network(event: NetworkEvent) -> Option<NodeEvent> {
    Some(match event {
        NetworkEvent::Gossip {
            topic: Topic::Consensus,
            from,
            message_id,
            data,
            ..
        } => Event::Gossip {
            from,
            message_id,
            data,
        },
        // Transactions come on the network's other queue, to the pool's gossip task.
        NetworkEvent::Gossip {
            topic: Topic::Transactions,
            ..
        } => return None,
        NetworkEvent::Request {
            peer,
            data,
            respond,
        } => Event::Request {
            peer,
            data,
            respond,
        },
        NetworkEvent::PeerConnected(peer) => Event::PeerConnected(peer),
        NetworkEvent::PeerDisconnected(peer) => Event::PeerDisconnected(peer),
        NetworkEvent::PeerIncompatible { .. } => return None,
    })
}

/// The engine's network over libp2p. Calls queue commands for one task that hands them to the
/// swarm in order; requests then wait for their answers concurrently.
pub struct P2pNetwork {
    outbox: mpsc::UnboundedSender<Command>,
}

enum Command {
    Publish(Vec<u8>),
    Report(MessageId, PeerId, Acceptance),
    Ban(PeerId, String),
    Request(PeerId, Vec<u8>, RequestTag),
}

impl P2pNetwork {
    /// Starts the task that carries out the engine's network commands; answers to requests
    /// go to `events`. The task ends when the engine (its sender) is dropped.
    fn start(net: NetworkHandle, events: mpsc::UnboundedSender<NodeEvent>) -> Self {
        let (outbox, mut commands) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(command) = commands.recv().await {
                match command {
                    Command::Publish(data) => {
                        if let Err(e) = net.publish(Topic::Consensus, data).await {
                            tracing::debug!(target: "bttd::consensus", error = %e, "broadcast not sent");
                        }
                    }
                    Command::Report(id, from, acceptance) => {
                        let acceptance = match acceptance {
                            Acceptance::Accept => MessageAcceptance::Accept,
                            Acceptance::Ignore => MessageAcceptance::Ignore,
                            Acceptance::Reject => MessageAcceptance::Reject,
                        };
                        let _ = net.report(id, from, acceptance).await;
                    }
                    Command::Ban(peer, reason) => {
                        let _ = net.ban(peer, reason).await;
                    }
                    Command::Request(peer, data, tag) => {
                        let net = net.clone();
                        let events = events.clone();
                        tokio::spawn(async move {
                            let result = net.request(peer, data).await.map_err(|e| e.to_string());
                            let _ = events.send(Event::Answer { peer, tag, result });
                        });
                    }
                }
            }
        });
        Self { outbox }
    }

    fn send(&self, command: Command) {
        // Closed only after the node stopped the engine's network: nothing to send then.
        let _ = self.outbox.send(command);
    }
}

impl Network for P2pNetwork {
    type Peer = PeerId;
    type MessageId = MessageId;
    type Responder = oneshot::Sender<Vec<u8>>;
    type RequestError = String;

    fn publish(&mut self, data: Vec<u8>) {
        self.send(Command::Publish(data));
    }

    fn report(&mut self, message: MessageId, from: PeerId, acceptance: Acceptance) {
        self.send(Command::Report(message, from, acceptance));
    }

    fn ban(&mut self, peer: PeerId, reason: String) {
        self.send(Command::Ban(peer, reason));
    }

    fn request(&mut self, peer: PeerId, data: Vec<u8>, tag: RequestTag) {
        self.send(Command::Request(peer, data, tag));
    }

    fn respond(&mut self, responder: oneshot::Sender<Vec<u8>>, data: Vec<u8>) {
        if responder.send(data).is_err() {
            tracing::debug!(target: "bttd::sync", "peer left before the sync response");
        }
    }
}

/// Timers on tokio, blocking jobs on its blocking pool; both deliver to the engine's queue.
pub struct TokioRuntime<E> {
    start: Instant,
    events: mpsc::UnboundedSender<E>,
}

impl<E> TokioRuntime<E> {
    pub fn new(events: mpsc::UnboundedSender<E>) -> Self {
        Self {
            start: Instant::now(),
            events,
        }
    }
}

impl<E: From<JobPanicked> + Send + 'static> Runtime<E> for TokioRuntime<E> {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn unix_seconds(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
    }

    fn schedule(&mut self, after: Duration, event: E) {
        let events = self.events.clone();
        if after.is_zero() {
            let _ = events.send(event);
            return;
        }
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = events.send(event);
        });
    }

    fn spawn_blocking(&mut self, job: Box<dyn FnOnce() -> E + Send>) {
        let events = self.events.clone();
        tokio::task::spawn_blocking(move || {
            let event = std::panic::catch_unwind(AssertUnwindSafe(job)).unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                E::from(JobPanicked(what))
            });
            let _ = events.send(event);
        });
    }
}
