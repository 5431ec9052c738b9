//! Wire names derived from the genesis hash and the wire version, and the limits every node
//! must agree on.
//!
//! Every name a peer must match to exchange data carries the genesis hash (lowercase hex, no
//! `0x`) and the wire version ([`WIRE_VERSION`]): the two gossip topics, the sync protocol and
//! the identify protocol version. Nodes of different chains, or of two wire versions,
//! therefore never share a topic or a request stream, and the identify check (see
//! `service.rs`) disconnects them as soon as they have introduced themselves.

use alloy_primitives::{B256, hex};
use libp2p::{StreamProtocol, gossipsub::IdentTopic};

/// The version of the message formats (node/engine/src/wire): the suffix of every name
/// below. Version 1 was serde-derived CBOR under unversioned names; 2 is the explicit codec; 3
/// re-sends proposals as announcements and serves their blocks over sync.
pub const WIRE_VERSION: u32 = 3;

/// Bytes a gossipsub frame may add around a payload (topic, source peer id, sequence number,
/// signature and protobuf tags need a few hundred); `max-message-bytes` bounds the payload and
/// gossipsub's `max_transmit_size` is that plus this allowance.
pub const GOSSIP_ENVELOPE_BYTES: usize = 4 * 1024;

/// The two gossip topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Signed transactions, RLP (EIP-2718) encoded.
    Transactions,
    /// Proposals, votes and timeouts of the consensus engine.
    Consensus,
}

impl Topic {
    pub const ALL: [Topic; 2] = [Topic::Transactions, Topic::Consensus];

    /// Short name used in topic strings and metric labels.
    pub fn label(self) -> &'static str {
        match self {
            Topic::Transactions => "tx",
            Topic::Consensus => "consensus",
        }
    }
}

/// All names of one chain.
#[derive(Debug, Clone)]
pub struct ProtocolNames {
    topics: [IdentTopic; 2],
    sync: StreamProtocol,
    identify: String,
}

impl ProtocolNames {
    /// The names of this node's wire version on the chain of `genesis_hash`.
    pub fn new(genesis_hash: B256) -> Self {
        Self::for_version(genesis_hash, WIRE_VERSION)
    }

    /// The names of wire version `version`. Version 1 had no version in its topics and
    /// identify string (`/bttd/<g>/consensus`, `bttd/<g>`); tests use it to stand for a node
    /// of that release.
    pub fn for_version(genesis_hash: B256, version: u32) -> Self {
        let genesis_hex = hex::encode(genesis_hash);
        let suffix = if version == 1 {
            String::new()
        } else {
            format!("/{version}")
        };
        let topics = Topic::ALL
            .map(|t| IdentTopic::new(format!("/bttd/{genesis_hex}/{}{suffix}", t.label())));
        let sync = StreamProtocol::try_from_owned(format!("/bttd/{genesis_hex}/sync/{version}"))
            .expect("starts with a slash");
        Self {
            topics,
            sync,
            identify: format!("bttd/{genesis_hex}{suffix}"),
        }
    }

    /// The gossipsub topic of `topic` on this chain: `/bttd/<genesis-hex>/<tx|consensus>/3`.
    pub fn topic(&self, topic: Topic) -> &IdentTopic {
        &self.topics[topic as usize]
    }

    /// Which of our topics a received topic hash is, if any.
    pub fn topic_of(&self, hash: &libp2p::gossipsub::TopicHash) -> Option<Topic> {
        Topic::ALL
            .into_iter()
            .find(|t| self.topic(*t).hash() == *hash)
    }

    /// The request-response protocol for block sync: `/bttd/<genesis-hex>/sync/3`.
    pub fn sync_protocol(&self) -> StreamProtocol {
        self.sync.clone()
    }

    /// The identify protocol version: `bttd/<genesis-hex>/3`.
    pub fn identify_version(&self) -> String {
        self.identify.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_genesis_hash_and_the_wire_version() {
        let names = ProtocolNames::new(B256::repeat_byte(0xab));
        let g = "ab".repeat(32);
        assert_eq!(
            names.topic(Topic::Transactions).to_string(),
            format!("/bttd/{g}/tx/3")
        );
        assert_eq!(
            names.topic(Topic::Consensus).to_string(),
            format!("/bttd/{g}/consensus/3")
        );
        assert_eq!(names.sync_protocol().as_ref(), format!("/bttd/{g}/sync/3"));
        assert_eq!(names.identify_version(), format!("bttd/{g}/3"));
        // The previous release's names, all different from ours.
        let v1 = ProtocolNames::for_version(B256::repeat_byte(0xab), 1);
        assert_eq!(
            v1.topic(Topic::Consensus).to_string(),
            format!("/bttd/{g}/consensus")
        );
        assert_eq!(v1.sync_protocol().as_ref(), format!("/bttd/{g}/sync/1"));
        assert_eq!(v1.identify_version(), format!("bttd/{g}"));
        for t in Topic::ALL {
            assert_eq!(names.topic_of(&v1.topic(t).hash()), None);
        }
        for t in Topic::ALL {
            assert_eq!(names.topic_of(&names.topic(t).hash()), Some(t));
        }
        let other = ProtocolNames::new(B256::repeat_byte(0xcd));
        assert_eq!(names.topic_of(&other.topic(Topic::Consensus).hash()), None);
    }
}
