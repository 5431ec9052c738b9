//! Block parameters (tags, numbers, hashes, EIP-1898 objects) to blocks, and the rule that
//! state is served at the head only.
//!
//! Tags: `earliest` is block 0; `latest`, `pending`, `safe` and `finalized` are the head
//! (blocks are final when committed; a pending block is not built speculatively).

use alloy_eips::{BlockId, BlockNumberOrTag};
use bttd_runtime::{Chain, SealedHeader};

use super::error::{RpcResult, header_not_found, historical_state, internal};

/// The block number a tag or number names (may be beyond the head).
pub(crate) fn tag_number(chain: &Chain, tag: BlockNumberOrTag) -> u64 {
    match tag {
        BlockNumberOrTag::Earliest => 0,
        BlockNumberOrTag::Number(n) => n,
        BlockNumberOrTag::Latest
        | BlockNumberOrTag::Pending
        | BlockNumberOrTag::Safe
        | BlockNumberOrTag::Finalized => chain.head().number,
    }
}

/// The header of a block by tag or number; `None` beyond the head.
pub(crate) fn header_by_tag(chain: &Chain, tag: BlockNumberOrTag) -> RpcResult<Option<SealedHeader>> {
    let head = chain.head();
    let number = match tag {
        BlockNumberOrTag::Number(n) if n != head.number => n,
        BlockNumberOrTag::Earliest if head.number != 0 => 0,
        _ => return Ok(Some(head)),
    };
    chain.header_by_number(number).map_err(internal)
}

/// The header of a block by any block parameter; `None` when unknown.
pub(crate) fn header_by_id(chain: &Chain, id: BlockId) -> RpcResult<Option<SealedHeader>> {
    match id {
        // Every stored block is canonical (no reorgs), so `requireCanonical` holds trivially.
        BlockId::Hash(hash) => chain.header(hash.block_hash).map_err(internal),
        BlockId::Number(tag) => header_by_tag(chain, tag),
    }
}

/// Succeeds when `id` (default `latest`) names the head, whose state is the one served.
pub(crate) fn ensure_head_state(chain: &Chain, id: Option<BlockId>) -> RpcResult<()> {
    let head = chain.head();
    let number = match id.unwrap_or_default() {
        BlockId::Number(tag) => tag_number(chain, tag),
        BlockId::Hash(hash) if hash.block_hash == head.hash() => return Ok(()),
        BlockId::Hash(hash) => match chain.header(hash.block_hash).map_err(internal)? {
            Some(header) => header.number,
            None => return Err(header_not_found()),
        },
    };
    // A block just past `head` may have been committed meanwhile: judge against the newest head.
    let head = if number > head.number { chain.head().number } else { head.number };
    match number.cmp(&head) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(historical_state(head)),
        std::cmp::Ordering::Greater => Err(header_not_found()),
    }
}
