//! What the network service needs to start, (node.toml's `[p2p]` is translated into it by the node).

use std::time::Duration;

use alloy_primitives::B256;
use libp2p::{Multiaddr, PeerId, identity::Keypair, multiaddr::Protocol};

use super::error::P2pError;
use super::protocol::WIRE_VERSION;

/// Smallest `max-message-bytes` accepted: a limit below this cannot carry a block header and
/// its certificate, so it is certainly a typo.
pub const MIN_MESSAGE_BYTES: usize = 1024;

/// Settings of one network service. Build it with [`NetworkConfig::new`] (defaults for
/// everything but identity, address and chain) or from node.toml's `[p2p]` section.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// The node's identity; its peer id is what others put in their bootnode lists.
    pub keypair: Keypair,
    /// Where to listen, e.g. `/ip4/0.0.0.0/tcp/30303` (`/tcp/0`: any free port).
    pub listen: Multiaddr,
    /// Peers to keep connected to, each ending in `/p2p/<peer id>`.
    pub bootnodes: Vec<Multiaddr>,
    /// Genesis block hash: part of every topic and protocol name.
    pub genesis_hash: B256,
    /// Largest gossip payload and sync request or response, in bytes.
    pub max_message_bytes: usize,
    /// How long a banned peer is refused.
    pub ban_duration: Duration,
    /// How often disconnected bootnodes are dialled again.
    pub redial_interval: Duration,
    /// How long an outbound sync request waits for its response.
    pub request_timeout: Duration,
    /// Wire version whose names the node uses: always [`WIRE_VERSION`] in a node; tests set
    /// an older one to stand for a node of an older release.
    pub wire_version: u32,
    /// Capacity of each event channel (consensus, transactions); events beyond it are dropped
    /// (and counted), never allowed to stall the swarm.
    pub event_buffer: usize,
}

impl NetworkConfig {
    pub fn new(keypair: Keypair, listen: Multiaddr, genesis_hash: B256) -> Self {
        Self {
            keypair,
            listen,
            bootnodes: Vec::new(),
            genesis_hash,
            max_message_bytes: 16 * 1024 * 1024,
            ban_duration: Duration::from_secs(600),
            redial_interval: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            event_buffer: 8192,
            wire_version: WIRE_VERSION,
        }
    }

    /// Checks limits and bootnodes; [`super::Network::start`] calls it too.
    pub fn validate(&self) -> Result<(), P2pError> {
        if self.max_message_bytes < MIN_MESSAGE_BYTES || self.max_message_bytes > u32::MAX as usize
        {
            return Err(P2pError::Config(format!(
                "max-message-bytes {} is outside {MIN_MESSAGE_BYTES}..={}",
                self.max_message_bytes,
                u32::MAX
            )));
        }
        for (name, value) in [
            ("ban-duration", self.ban_duration),
            ("redial-interval", self.redial_interval),
            ("request-timeout", self.request_timeout),
        ] {
            if value.is_zero() {
                return Err(P2pError::Config(format!("{name} must not be zero")));
            }
        }
        if self.event_buffer == 0 {
            return Err(P2pError::Config("event buffer must not be zero".into()));
        }
        for addr in &self.bootnodes {
            parse_bootnode(&addr.to_string())?;
        }
        Ok(())
    }
}

/// Splits a bootnode multiaddr into its peer id and the full address; the address must end
/// in `/p2p/<peer id>` (we only connect to peers whose identity we know in advance).
pub fn parse_bootnode(text: &str) -> Result<(PeerId, Multiaddr), P2pError> {
    let error = |reason: &str| P2pError::Bootnode {
        addr: text.to_string(),
        reason: reason.to_string(),
    };
    let addr: Multiaddr = text
        .parse()
        .map_err(|e: libp2p::multiaddr::Error| error(&e.to_string()))?;
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) if addr.iter().count() > 1 => Ok((peer, addr)),
        _ => Err(error(
            "must be a transport address ending in /p2p/<peer id>",
        )),
    }
}
