//! The node's side of the network: a cloneable handle that sends commands to the swarm task,
//! and the events the task sends back.

use libp2p::{
    Multiaddr, PeerId,
    gossipsub::{MessageAcceptance, MessageId},
};
use tokio::sync::{mpsc, oneshot};

use super::{
    error::{DialError, P2pError, PublishError, RequestError},
    protocol::Topic,
};

/// What the network tells the node.
#[derive(Debug)]
pub enum NetworkEvent {
    /// A gossip message on one of our topics. The node must answer with
    /// [`NetworkHandle::report`] (`message_id`, `from`): only accepted messages are forwarded.
    Gossip {
        topic: Topic,
        /// The peer that forwarded it to us (the one to report, and to ban if it is invalid).
        from: PeerId,
        /// The peer that signed and first published it.
        author: PeerId,
        message_id: MessageId,
        data: Vec<u8>,
    },
    /// A peer of this chain is connected (its identify protocol version matched).
    PeerConnected(PeerId),
    /// The last connection to a peer announced by [`NetworkEvent::PeerConnected`] closed.
    PeerDisconnected(PeerId),
    /// A sync request. Send the response bytes on `respond`; dropping it (or not answering
    /// within the request timeout) fails the request on the peer's side.
    Request {
        peer: PeerId,
        data: Vec<u8>,
        respond: oneshot::Sender<Vec<u8>>,
    },
    /// A peer introduced itself with another chain's protocol version (or none) and was
    /// disconnected. Informational: such a peer never appears in `PeerConnected`.
    PeerIncompatible {
        peer: PeerId,
        protocol_version: Option<String>,
    },
}

/// The events of the network in two queues, so that a flood of transactions can neither fill
/// the consensus engine's queue (its events would be dropped) nor wait in front of a vote.
#[derive(Debug)]
pub struct NetworkEvents {
    /// Consensus gossip, sync requests and peer events: the consensus engine's.
    pub consensus: mpsc::Receiver<NetworkEvent>,
    /// Transaction gossip: the pool's.
    pub transactions: mpsc::Receiver<NetworkEvent>,
}

impl NetworkEvents {
    /// The next event of either queue, consensus first; `None` once both are closed. For tools
    /// and tests that handle every event alike.
    pub async fn recv(&mut self) -> Option<NetworkEvent> {
        tokio::select! {
            biased;
            Some(event) = self.consensus.recv() => Some(event),
            Some(event) = self.transactions.recv() => Some(event),
            else => None,
        }
    }
}

impl NetworkEvent {
    /// The variant's name, for logs (the payload may be megabytes).
    pub fn kind(&self) -> &'static str {
        match self {
            NetworkEvent::Gossip { .. } => "gossip",
            NetworkEvent::PeerConnected(_) => "peer-connected",
            NetworkEvent::PeerDisconnected(_) => "peer-disconnected",
            NetworkEvent::Request { .. } => "request",
            NetworkEvent::PeerIncompatible { .. } => "peer-incompatible",
        }
    }
}

pub(super) enum Command {
    Publish {
        topic: Topic,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<MessageId, PublishError>>,
    },
    Request {
        peer: PeerId,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, RequestError>>,
    },
    Ban {
        peer: PeerId,
        reason: String,
    },
    Report {
        message_id: MessageId,
        source: PeerId,
        acceptance: MessageAcceptance,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), DialError>>,
    },
    Peers(oneshot::Sender<Vec<PeerId>>),
    MeshPeers(Topic, oneshot::Sender<Vec<PeerId>>),
    Banned(oneshot::Sender<Vec<PeerId>>),
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Shutdown(oneshot::Sender<()>),
}

/// Cloneable handle to the running network service. Every method fails with a `Stopped`
/// error once the service has shut down.
#[derive(Debug, Clone)]
pub struct NetworkHandle {
    /// Where this handle's commands go: the consensus lane, or the transaction lane of a
    /// handle from [`NetworkHandle::for_transactions`].
    pub(super) commands: mpsc::Sender<Command>,
    pub(super) transaction_lane: mpsc::Sender<Command>,
    pub(super) local_peer_id: PeerId,
}

impl NetworkHandle {
    /// A handle whose commands wait in the transaction lane: the swarm task takes every waiting
    /// command of the consensus lane before each one of this lane, so a backlog of transaction
    /// publishes and reports never delays a vote.
    pub fn for_transactions(&self) -> NetworkHandle {
        NetworkHandle {
            commands: self.transaction_lane.clone(),
            ..self.clone()
        }
    }

    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// Publishes `data` on `topic` to every connected peer subscribed to it (flood publish).
    pub async fn publish(&self, topic: Topic, data: Vec<u8>) -> Result<MessageId, PublishError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Publish { topic, data, reply })
            .await
            .map_err(|_| PublishError::Stopped)?;
        rx.await.map_err(|_| PublishError::Stopped)?
    }

    /// Sends a sync request to a connected peer and waits (at most the request timeout) for
    /// its response.
    pub async fn request(&self, peer: PeerId, data: Vec<u8>) -> Result<Vec<u8>, RequestError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Request { peer, data, reply })
            .await
            .map_err(|_| RequestError::Stopped)?;
        rx.await.map_err(|_| RequestError::Stopped)?
    }

    /// Disconnects `peer` and refuses its connections, both ways, for the ban duration.
    pub async fn ban(&self, peer: PeerId, reason: impl Into<String>) -> Result<(), P2pError> {
        self.send(Command::Ban {
            peer,
            reason: reason.into(),
        })
        .await
    }

    /// The node's verdict on a [`NetworkEvent::Gossip`]: `Accept` forwards it to the mesh,
    /// `Reject` (invalid) and `Ignore` (valid but useless, e.g. stale) drop it.
    pub async fn report(
        &self,
        message_id: MessageId,
        source: PeerId,
        acceptance: MessageAcceptance,
    ) -> Result<(), P2pError> {
        self.send(Command::Report {
            message_id,
            source,
            acceptance,
        })
        .await
    }

    /// Dials an address (which may name a peer id). Returns once the dial has started.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), DialError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Dial { addr, reply })
            .await
            .map_err(|_| DialError::Stopped)?;
        rx.await.map_err(|_| DialError::Stopped)?
    }

    /// Connected peers of this chain (those announced by `PeerConnected`).
    pub async fn peers(&self) -> Result<Vec<PeerId>, P2pError> {
        self.query(Command::Peers).await
    }

    /// Peers in our gossipsub mesh for `topic`.
    pub async fn mesh_peers(&self, topic: Topic) -> Result<Vec<PeerId>, P2pError> {
        self.query(|tx| Command::MeshPeers(topic, tx)).await
    }

    /// Peers currently banned.
    pub async fn banned_peers(&self) -> Result<Vec<PeerId>, P2pError> {
        self.query(Command::Banned).await
    }

    /// Addresses we listen on (with the actual port when the config said 0).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, P2pError> {
        self.query(Command::ListenAddrs).await
    }

    /// Resolves when the service task has ended (stopped, or panicked); for supervision.
    pub async fn stopped(&self) {
        self.commands.closed().await
    }

    /// Stops the service and waits until its sockets are closed (so the port can be reused).
    pub async fn shutdown(&self) -> Result<(), P2pError> {
        self.query(Command::Shutdown).await
    }

    async fn query<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, P2pError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await?;
        rx.await.map_err(|_| P2pError::Stopped)
    }

    async fn send(&self, command: Command) -> Result<(), P2pError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| P2pError::Stopped)
    }
}
