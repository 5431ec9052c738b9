//! What consensus puts on the wire and on disk.
//!
//! - **Gossip and sync messages** ([`Envelope`], [`SyncRequest`], [`SyncResponse`]) have an
//!   explicit, versioned binary format written out by hand in [`consensus`] and [`sync`]:
//!   one version byte ([`VERSION`]) and then one RLP list whose items are listed field by
//!   field in the code and in docs/network.md. Nothing is derived from Rust type or field
//!   names, so renaming or reordering a Rust field cannot change the protocol. Every length
//!   is checked before anything is allocated for it: byte strings against what is left of
//!   the message (which the network already bounded by `max-message-bytes`), lists of
//!   blocks and signer bitmaps against their own caps. Decoding never panics and reports a
//!   typed [`WireError`].
//! - **Stored certificates** keep their CBOR form on disk ([`store`]): the storage schema is
//!   unchanged by the move to explicit wire codecs.
//! - **A block's `extraData`** has its own fixed binary layout ([`ExtraData`]).
//!
//! Blocks inside messages are [`WireBlock`](bttd_runtime::WireBlock) RLP: header plus signed
//! transactions, never the senders, so a receiver recovers senders itself.

pub mod consensus;
mod extra;
mod rlp;
pub mod store;
pub mod sync;

pub use consensus::{Announcement, Envelope, Gossip};
pub use extra::{ExtraData, MAX_BLOCK_EVIDENCE, evidence_item_len, validator_set_hash};
pub use sync::{CertifiedBlock, SyncRequest, SyncResponse};

/// The wire version this node speaks: the first byte of every gossip and sync message, and
/// the suffix of every topic and protocol name (`bttd_network::WIRE_VERSION`, which the node
/// checks equal at compile time).
pub const VERSION: u8 = 3;

/// Most blocks in one sync answer, whatever the request asks; a longer list is refused while
/// it is decoded.
pub const MAX_BLOCKS_PER_RESPONSE: usize = 256;

/// Largest signer bitmap a certificate may carry on the wire: one bit per validator, so
/// 65,536 validators. The certificate check then wants exactly `⌈n/8⌉` bytes for its set.
pub const MAX_SIGNER_BITMAP_BYTES: usize = 8 * 1024;

/// Longest error text in a sync answer; a longer one is cut (at a character boundary) when
/// encoded and refused when decoded.
pub const MAX_ERROR_TEXT_BYTES: usize = 1024;

/// Why bytes are not a message of this wire version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("empty message")]
    Empty,
    #[error("wire version {found}, this node speaks version {VERSION}")]
    Version { found: u8 },
    #[error("malformed RLP: {0}")]
    Rlp(#[from] alloy_rlp::Error),
    #[error("unknown {what} kind {kind}")]
    UnknownKind { what: &'static str, kind: u8 },
    #[error("{what} of {len} exceeds the limit of {max}")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{0} bytes follow the message")]
    TrailingBytes(usize),
    #[error("{0} has more items than its format")]
    TrailingItems(&'static str),
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("stored certificate: {0}")]
    Stored(String),
}
