//! Typed errors of the network service: one enum per caller-facing operation, so the
//! consensus engine can tell "the peer is slow" from "the network is gone".

use std::path::PathBuf;

use libp2p::{Multiaddr, PeerId};

/// Starting the network or reading its configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    #[error("p2p key file {path}: {source}")]
    KeyFileIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("p2p key file {path}: {reason} (expected 64 hex characters of an ed25519 secret key)")]
    KeyFileFormat { path: PathBuf, reason: String },
    #[error("bootnode {addr}: {reason}")]
    Bootnode { addr: String, reason: String },
    #[error("p2p listen address {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error("p2p config: {0}")]
    Config(String),
    #[error("building the libp2p swarm: {0}")]
    Swarm(String),
    #[error("the network service has stopped")]
    Stopped,
}

/// Publishing a gossip message failed; nothing was sent.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("message of {size} bytes is larger than max-message-bytes ({max})")]
    TooLarge { size: usize, max: usize },
    #[error("the same message was published or received recently")]
    Duplicate,
    #[error("no connected peer subscribes to the topic")]
    NoPeers,
    #[error("gossipsub refused the message: {0}")]
    Gossipsub(String),
    #[error("the network service has stopped")]
    Stopped,
}

/// An outbound sync request did not get a response.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("request of {size} bytes is larger than max-message-bytes ({max})")]
    TooLarge { size: usize, max: usize },
    #[error("no response from {peer} within the request timeout")]
    Timeout { peer: PeerId },
    #[error("could not connect to {peer}")]
    DialFailure { peer: PeerId },
    #[error("connection to {peer} closed before the response arrived")]
    ConnectionClosed { peer: PeerId },
    #[error("{peer} does not speak the sync protocol of this chain")]
    UnsupportedProtocol { peer: PeerId },
    #[error("{peer}: {reason}")]
    Io { peer: PeerId, reason: String },
    #[error("the network service has stopped")]
    Stopped,
}

/// A dial requested through the handle could not be started.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("dial {addr}: {reason}")]
    Failed { addr: Multiaddr, reason: String },
    #[error("the network service has stopped")]
    Stopped,
}
