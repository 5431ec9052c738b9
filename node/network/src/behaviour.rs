//! The composed libp2p behaviour and the gossipsub parameters.
//!
//! Order matters: the block list comes first so a banned peer's connection is denied before
//! any other behaviour sees it, and connection limits second so floods of connections are cut
//! before protocols allocate state for them.

use std::{collections::HashSet, time::Duration};

use libp2p::{
    allow_block_list, connection_limits, gossipsub, identify, identity::Keypair, request_response,
    swarm::NetworkBehaviour,
};

use sha2::{Digest, Sha256};

use super::{
    codec::BytesCodec,
    config::NetworkConfig,
    error::P2pError,
    protocol::{GOSSIP_ENVELOPE_BYTES, ProtocolNames, Topic},
};

/// Gossipsub heartbeat: mesh maintenance and IHAVE gossip. Sub-second, so a restarted or late
/// peer is grafted into the mesh within a block time.
pub const HEARTBEAT: Duration = Duration::from_millis(700);
/// Mesh degree. Gossipsub grafts more peers only while a node's mesh is below `MESH_N_LOW`,
/// and then up to `MESH_N`. With `MESH_N_LOW` = 3 a 3- or 4-node network always forms a full
/// mesh (every node keeps grafting until it has all its peers), and with `MESH_N` = 8 a
/// 10-node network is nearly full: accepted messages reach everyone in one forwarding hop.
/// (With a low mark of 2, a 4-node network was seen to settle on a ring.)
pub const MESH_N: usize = 8;
pub const MESH_N_LOW: usize = 3;
pub const MESH_N_HIGH: usize = 12;
/// Heartbeats a received message stays in the cache awaiting the node's verdict (and for
/// IWANT answers): 10 x 700 ms = 7 s, enough to execute a full block before accepting it.
pub const HISTORY_LENGTH: usize = 10;
/// Established connections allowed per peer: two, as two bootnodes dialling each other at the
/// same time legitimately open one each.
pub const MAX_CONNECTIONS_PER_PEER: u32 = 2;
pub const MAX_INCOMING_CONNECTIONS: u32 = 128;
pub const MAX_PENDING_INCOMING: u32 = 32;
/// Parallel sync streams per connection.
pub const MAX_SYNC_STREAMS: usize = 64;

type Gossipsub =
    gossipsub::Behaviour<gossipsub::IdentityTransform, gossipsub::WhitelistSubscriptionFilter>;

#[derive(NetworkBehaviour)]
pub(super) struct Behaviour {
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub limits: connection_limits::Behaviour,
    pub identify: identify::Behaviour,
    pub gossipsub: Gossipsub,
    pub sync: request_response::Behaviour<BytesCodec>,
}

impl Behaviour {
    pub fn new(
        keypair: &Keypair,
        config: &NetworkConfig,
        names: &ProtocolNames,
    ) -> Result<Self, P2pError> {
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
            .with_max_established_incoming(Some(MAX_INCOMING_CONNECTIONS))
            .with_max_pending_incoming(Some(MAX_PENDING_INCOMING));
        let identify = identify::Behaviour::new(
            identify::Config::new(names.identify_version(), keypair.public())
                .with_agent_version(format!("bttd/{}", env!("CARGO_PKG_VERSION"))),
        );
        let gossipsub = Gossipsub::new_with_subscription_filter(
            gossipsub::MessageAuthenticity::Signed(keypair.clone()),
            gossipsub_config(config.max_message_bytes)?,
            gossipsub::WhitelistSubscriptionFilter(
                Topic::ALL
                    .iter()
                    .map(|t| names.topic(*t).hash())
                    .collect::<HashSet<_>>(),
            ),
        )
        .map_err(|e| P2pError::Swarm(e.to_string()))?;
        let sync = request_response::Behaviour::with_codec(
            BytesCodec::new(config.max_message_bytes),
            [(
                names.sync_protocol(),
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default()
                .with_request_timeout(config.request_timeout)
                .with_max_concurrent_streams(MAX_SYNC_STREAMS),
        );
        Ok(Self {
            blocked: Default::default(),
            limits: connection_limits::Behaviour::new(limits),
            identify,
            gossipsub,
            sync,
        })
    }
}

/// Gossipsub with explicit limits: see docs/network.md for why each value.
pub fn gossipsub_config(max_message_bytes: usize) -> Result<gossipsub::Config, P2pError> {
    gossipsub::ConfigBuilder::default()
        .max_transmit_size(max_message_bytes + GOSSIP_ENVELOPE_BYTES)
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(message_id)
        .heartbeat_interval(HEARTBEAT)
        .heartbeat_initial_delay(Duration::from_millis(100))
        .mesh_n(MESH_N)
        .mesh_n_low(MESH_N_LOW)
        .mesh_n_high(MESH_N_HIGH)
        .mesh_outbound_min(1)
        .gossip_lazy(MESH_N)
        .history_length(HISTORY_LENGTH)
        .history_gossip(3)
        .flood_publish(true)
        .duplicate_cache_time(Duration::from_secs(120))
        .build()
        .map_err(|e| P2pError::Swarm(format!("gossipsub config: {e}")))
}

/// Message id = sha256(len(topic) ‖ topic ‖ data): the same payload is one message however
/// many peers publish or forward it, and cannot collide across topics. SHA-256 rather than
/// keccak because every hop hashes every payload: 0.6 ms per MiB here against 4.5 ms.
pub fn message_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    let topic = message.topic.as_str().as_bytes();
    let mut hasher = Sha256::new();
    hasher.update((topic.len() as u64).to_be_bytes());
    hasher.update(topic);
    hasher.update(&message.data);
    gossipsub::MessageId::new(&hasher.finalize()[..])
}
