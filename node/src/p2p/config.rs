//! What the network service needs to start, and its translation from node.toml's `[p2p]`.

use std::{path::Path, time::Duration};

use alloy_primitives::B256;
use libp2p::{Multiaddr, PeerId, identity::Keypair, multiaddr::Protocol};

use super::{error::P2pError, keys::load_or_create_keypair};
use crate::config::{P2pSection, parse_duration};

/// Smallest `max-message-bytes` accepted: a limit below this cannot carry a block header and
/// its certificate, so it is certainly a typo.
pub const MIN_MESSAGE_BYTES: usize = 1024;

/// Settings of one network service. Build it with [`NetworkConfig::new`] (defaults for
/// everything but identity, address and chain) or [`NetworkConfig::from_section`].
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
    /// Capacity of the event channel; events beyond it are dropped (and counted), never
    /// allowed to stall the swarm.
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
        }
    }

    /// The config of `[p2p]`: the key file is read (or created) relative to `datadir`, the
    /// bootnodes must parse and name their peer id.
    pub fn from_section(
        section: &P2pSection,
        datadir: &Path,
        genesis_hash: B256,
    ) -> Result<Self, P2pError> {
        let key_path = if section.key_file.is_absolute() {
            section.key_file.clone()
        } else {
            datadir.join(&section.key_file)
        };
        let keypair = load_or_create_keypair(&key_path)?;
        let listen = Multiaddr::from(section.addr).with(Protocol::Tcp(section.port));
        let bootnodes = section
            .bootnodes
            .iter()
            .map(|s| parse_bootnode(s).map(|(_, addr)| addr))
            .collect::<Result<Vec<_>, _>>()?;
        let ban_duration = parse_duration("p2p.ban-duration", &section.ban_duration)
            .map_err(|e| P2pError::Config(e.to_string()))?;
        let mut config = Self::new(keypair, listen, genesis_hash);
        config.bootnodes = bootnodes;
        config.max_message_bytes = section.max_message_bytes;
        config.ban_duration = ban_duration;
        config.validate()?;
        Ok(config)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn section_translates_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let mut section = P2pSection {
            port: 4001,
            bootnodes: vec![format!("/ip4/127.0.0.1/tcp/30303/p2p/{peer}")],
            ban_duration: "90s".into(),
            ..P2pSection::default()
        };
        let config = NetworkConfig::from_section(&section, dir.path(), B256::ZERO).unwrap();
        assert_eq!(config.listen.to_string(), "/ip4/0.0.0.0/tcp/4001");
        assert_eq!(config.bootnodes.len(), 1);
        assert_eq!(config.ban_duration, Duration::from_secs(90));
        assert_eq!(config.max_message_bytes, 16 * 1024 * 1024);
        assert!(
            dir.path().join("p2p.key").exists(),
            "key file created in the datadir"
        );

        section.bootnodes = vec!["/ip4/127.0.0.1/tcp/30303".into()];
        assert!(matches!(
            NetworkConfig::from_section(&section, dir.path(), B256::ZERO),
            Err(P2pError::Bootnode { .. })
        ));
        section.bootnodes = vec![format!("/p2p/{peer}")];
        assert!(NetworkConfig::from_section(&section, dir.path(), B256::ZERO).is_err());
        section.bootnodes = vec!["not a multiaddr".into()];
        assert!(NetworkConfig::from_section(&section, dir.path(), B256::ZERO).is_err());
        section.bootnodes.clear();
        section.ban_duration = "soon".into();
        assert!(matches!(
            NetworkConfig::from_section(&section, dir.path(), B256::ZERO),
            Err(P2pError::Config(_))
        ));
        section.ban_duration = "10m".into();
        section.max_message_bytes = 10;
        assert!(matches!(
            NetworkConfig::from_section(&section, dir.path(), B256::ZERO),
            Err(P2pError::Config(_))
        ));
        section.max_message_bytes = 1 << 20;
        section.key_file = PathBuf::from("/nonexistent-dir-for-bttd-test/\0");
        assert!(NetworkConfig::from_section(&section, dir.path(), B256::ZERO).is_err());
    }
}
