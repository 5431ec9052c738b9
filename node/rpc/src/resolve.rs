//! Block parameters (tags, numbers, hashes, EIP-1898 objects) to blocks, and the rule that
//! state is served at the head only.
//!
//! Tags: `earliest` is block 0; `latest`, `pending`, `safe` and `finalized` are the head
//! (blocks are final when committed; a pending block is not built speculatively).

use alloy_eips::{BlockId, BlockNumberOrTag};
use bttd_runtime::{Chain, SealedHeader};

use bttd_runtime::state::StateView;

use super::error::{RpcResult, header_not_found, internal};

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
pub(crate) fn header_by_tag(
    chain: &Chain,
    tag: BlockNumberOrTag,
) -> RpcResult<Option<SealedHeader>> {
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

/// The number of the block a state query names (default `latest`); every height up to the
/// head is served (see docs/storage.md, "State history").
pub(crate) fn state_number(chain: &Chain, id: Option<BlockId>) -> RpcResult<u64> {
    let number = match id.unwrap_or_default() {
        BlockId::Number(tag) => tag_number(chain, tag),
        BlockId::Hash(hash) => match chain.header(hash.block_hash).map_err(internal)? {
            Some(header) => header.number,
            None => return Err(header_not_found()),
        },
    };
    if number > chain.head().number {
        Err(header_not_found())
    } else {
        Ok(number)
    }
}

/// The state after the block a query names.
pub(crate) fn state_view(chain: &Chain, id: Option<BlockId>) -> RpcResult<StateView<'_>> {
    let number = state_number(chain, id)?;
    chain.state_at(number).ok_or_else(header_not_found)
}
