//! The serving side of block sync: answers a peer's status and block-range requests from the
//! chain, each block with the certificate that finalised it. The requesting side lives in the
//! engine, which feeds every received block to the consensus machine as a `Commit` so the
//! certificate is verified (one aggregate check) before anything is executed.

use bttd_consensus::{CommitCertificate, Height};
use bttd_runtime::WireBlock;

use super::wire::{self, CertifiedBlock, SyncRequest, SyncResponse};
use crate::context::NodeContext;

/// Room left in a response for framing besides the blocks.
const RESPONSE_OVERHEAD: usize = 4 * 1024;

/// The answer to one request (never an error on the transport: problems are `Error`).
pub fn answer(ctx: &NodeContext, request: &[u8], max_bytes: usize) -> SyncResponse {
    match wire::decode::<SyncRequest>("sync request", request) {
        Ok(SyncRequest::Status) => {
            let head = ctx.chain.head();
            SyncResponse::Status {
                head: head.number,
                head_hash: head.hash(),
            }
        }
        Ok(SyncRequest::Blocks { from, max }) => match blocks(ctx, from, max, max_bytes) {
            Ok(blocks) => SyncResponse::Blocks(blocks),
            Err(e) => SyncResponse::Error(e),
        },
        Err(e) => SyncResponse::Error(e.to_string()),
    }
}

fn blocks(
    ctx: &NodeContext,
    from: Height,
    max: u32,
    max_bytes: usize,
) -> Result<Vec<CertifiedBlock>, String> {
    let head = ctx.chain.head().number;
    let budget = max_bytes.saturating_sub(RESPONSE_OVERHEAD);
    let mut used = 0usize;
    let mut out = Vec::new();
    for number in from.max(1)..=head.min(from.saturating_add(u64::from(max.min(256))) - 1) {
        let Some(hash) = ctx.chain.block_hash(number).map_err(|e| e.to_string())? else {
            break;
        };
        let Some(block) = ctx.chain.block(hash).map_err(|e| e.to_string())? else {
            break;
        };
        let Some(cert) = ctx.chain.certificate(number).map_err(|e| e.to_string())? else {
            // Committed without consensus (never on a validator chain): nothing to prove it.
            break;
        };
        let certificate = wire::decode::<CommitCertificate>("stored certificate", &cert)
            .map_err(|e| e.to_string())?;
        let bytes = WireBlock::encode(&block);
        used += bytes.len() + cert.len();
        if used > budget && !out.is_empty() {
            break;
        }
        out.push(CertifiedBlock {
            block: bytes.into(),
            certificate,
        });
    }
    Ok(out)
}
