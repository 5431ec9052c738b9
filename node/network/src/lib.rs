//! The libp2p network layer: one self-contained service that carries gossip (transactions,
//! consensus messages) and block-sync requests between bttd nodes of the same chain.
//!
//! Why it looks like this:
//! - **One task owns the swarm.** [`Network::start`] builds a TCP + noise + yamux swarm with
//!   identify, gossipsub, request-response, a block list and connection limits, and runs it in
//!   its own tokio task. The node talks to it through a cloneable [`NetworkHandle`] (commands
//!   over a channel) and receives [`NetworkEvent`]s on mpsc receivers. The task never waits
//!   for the node: when an event channel is full, events are dropped and counted.
//! - **Transactions never crowd out consensus.** Transaction gossip arrives on a queue of its
//!   own ([`NetworkEvents::transactions`], for the pool's task) apart from consensus gossip,
//!   sync and peer events ([`NetworkEvents::consensus`], for the engine); commands of a
//!   [`NetworkHandle::for_transactions`] handle wait in a lane the swarm task serves only after
//!   every waiting consensus command.
//! - **The genesis hash and the wire version are in every name** ([`ProtocolNames`]):
//!   topics `/bttd/<genesis-hex>/tx/3` and `/bttd/<genesis-hex>/consensus/3`, the sync
//!   protocol `/bttd/<genesis-hex>/sync/3` and the identify protocol version
//!   `bttd/<genesis-hex>/3`. A peer whose identify version differs (another chain, or another
//!   wire version) is disconnected at once and never announced.
//! - **The node validates, the network forwards.** Gossipsub runs with strict signing,
//!   message id = hash of topic and data, and `validate_messages`: each
//!   [`NetworkEvent::Gossip`] must be answered with [`NetworkHandle::report`]; only
//!   `Accept`ed messages are forwarded. A peer that sends invalid data is banned with
//!   [`NetworkHandle::ban`]: disconnected and refused both ways for the ban duration.
//! - **Sync is opaque bytes.** [`NetworkHandle::request`] sends a length-prefixed byte string
//!   and awaits the response (with a timeout); an inbound [`NetworkEvent::Request`] carries a
//!   oneshot sender for the answer. The sync logic owns the payload format.
//! - **Bootnodes are kept.** Each bootnode (a multiaddr ending in `/p2p/<peer id>`) is dialled
//!   at start and every `redial_interval` while not connected, so restarted peers and late
//!   bootnodes are found again.
//!
//! Usage:
//! ```ignore
//! let config = NetworkConfig::from_section(&node_config.p2p, &datadir, genesis_hash)?;
//! let (net, mut events) = Network::start(config).await?;
//! net.publish(Topic::Consensus, vote_bytes).await?;
//! while let Some(event) = events.recv().await {
//!     match event {
//!         NetworkEvent::Gossip { from, message_id, data, .. } => {
//!             let verdict = if valid(&data) { MessageAcceptance::Accept } else { MessageAcceptance::Reject };
//!             net.report(message_id, from, verdict).await?;
//!         }
//!         NetworkEvent::Request { data, respond, .. } => { let _ = respond.send(serve(&data)); }
//!         _ => {}
//!     }
//! }
//! ```
//! Wire details, limits and metrics: docs/network.md.

mod ban;
mod behaviour;
mod codec;
mod config;
mod error;
mod handle;
mod keys;
mod protocol;
mod service;
#[cfg(test)]
mod tests;

pub use ban::{BAN_REASONS, ban_reason_label, register_ban_metrics};
pub use behaviour::{HEARTBEAT, MESH_N, MESH_N_HIGH, MESH_N_LOW};
pub use codec::BytesCodec;
pub use config::{NetworkConfig, parse_bootnode};
pub use error::{DialError, P2pError, PublishError, RequestError};
pub use handle::{NetworkEvent, NetworkEvents, NetworkHandle};
pub use keys::{encode_key, load_or_create_keypair, peer_id_from_key_file, write_key_file};
pub use libp2p::{
    Multiaddr, PeerId,
    gossipsub::{MessageAcceptance, MessageId},
    identity::Keypair,
};
pub use protocol::{GOSSIP_ENVELOPE_BYTES, ProtocolNames, Topic, WIRE_VERSION};
pub use service::Network;
