//! Block sync (protocol `/bttd/<g>/sync/3`): one request, one response per stream, each
//! framed by the network (4-byte length, at most `max-message-bytes`).
//!
//! ```text
//! request     = 0x03 ‖ rlp([0])                                   status
//!             | 0x03 ‖ rlp([1, from, max])                        blocks
//!             | 0x03 ‖ rlp([2, block_id])                         a proposal's block (announced, not yet decided)
//! response    = 0x03 ‖ rlp([0, head, head_hash, [certificate?]])  status
//!             | 0x03 ‖ rlp([1, [certified, ...]])                 blocks (at most 256)
//!             | 0x03 ‖ rlp([2, text])                             error (UTF-8, at most 1024 bytes)
//!             | 0x03 ‖ rlp([3, block])                            a proposal's block: WireBlock RLP bytes
//! certified   = [block, certificate]                              block: WireBlock RLP bytes
//! certificate = [height, round, block_id, signature, signers]     32 / 96 / at most 8192 bytes
//! ```

use alloy_primitives::{B256, Bytes};
use alloy_rlp::Encodable;
use bttd_consensus::{CommitCertificate, Height, SignerBitmap};

use super::rlp::{List, message, open_message, write_list};
use super::{MAX_BLOCKS_PER_RESPONSE, MAX_ERROR_TEXT_BYTES, MAX_SIGNER_BITMAP_BYTES, WireError};

const STATUS: u8 = 0;
const BLOCKS: u8 = 1;
const ERROR: u8 = 2;
const PROPOSAL_BLOCK_REQUEST: u8 = 2;
const PROPOSAL_BLOCK: u8 = 3;

/// Requests of the sync protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncRequest {
    /// The peer's head height.
    Status,
    /// Up to `max` committed blocks from height `from`, each with its certificate.
    Blocks { from: Height, max: u32 },
    /// The block of a proposal the peer announced (see `wire::Announcement`).
    ProposalBlock { id: B256 },
}

/// A committed block as served by sync: the block's wire bytes and the certificate that
/// finalised it. The receiver verifies the certificate, never re-running consensus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifiedBlock {
    pub block: Bytes,
    pub certificate: CommitCertificate,
}

/// Answers of the sync protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncResponse {
    /// The peer's head, with the certificate that finalised it (absent for genesis): a
    /// claimed height moves nothing until it is verified.
    Status {
        head: Height,
        head_hash: B256,
        certificate: Option<CommitCertificate>,
    },
    Blocks(Vec<CertifiedBlock>),
    Error(String),
    /// The block a `ProposalBlock` request asked for (its `WireBlock` bytes, unchecked: the
    /// receiver compares them with the id it asked for).
    ProposalBlock(Bytes),
}

impl SyncRequest {
    /// The request's wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        message(|out| match self {
            SyncRequest::Status => STATUS.encode(out),
            SyncRequest::Blocks { from, max } => {
                BLOCKS.encode(out);
                from.encode(out);
                max.encode(out);
            }
            SyncRequest::ProposalBlock { id } => {
                PROPOSAL_BLOCK_REQUEST.encode(out);
                id.encode(out);
            }
        })
    }

    /// A request from a peer's bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut list = open_message(bytes)?;
        let request = match list.item::<u8>()? {
            STATUS => SyncRequest::Status,
            BLOCKS => SyncRequest::Blocks {
                from: list.item()?,
                max: list.item()?,
            },
            PROPOSAL_BLOCK_REQUEST => SyncRequest::ProposalBlock { id: list.item()? },
            kind => {
                return Err(WireError::UnknownKind {
                    what: "sync request",
                    kind,
                });
            }
        };
        list.finish("sync request")?;
        Ok(request)
    }
}

impl SyncResponse {
    /// The variant's name, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            SyncResponse::Status { .. } => "status",
            SyncResponse::Blocks(_) => "blocks",
            SyncResponse::Error(_) => "error",
            SyncResponse::ProposalBlock(_) => "proposal block",
        }
    }

    /// The response's wire bytes. An error text beyond [`MAX_ERROR_TEXT_BYTES`] is cut; more
    /// than [`MAX_BLOCKS_PER_RESPONSE`] blocks is the caller's bug (the peer would refuse
    /// the answer), so the server never builds one.
    pub fn encode(&self) -> Vec<u8> {
        message(|out| match self {
            SyncResponse::Status {
                head,
                head_hash,
                certificate,
            } => {
                STATUS.encode(out);
                head.encode(out);
                head_hash.encode(out);
                write_list(out, |out| {
                    if let Some(certificate) = certificate {
                        write_certificate(out, certificate);
                    }
                });
            }
            SyncResponse::Blocks(blocks) => {
                BLOCKS.encode(out);
                write_list(out, |out| {
                    for block in blocks {
                        write_list(out, |out| {
                            block.block.encode(out);
                            write_certificate(out, &block.certificate);
                        });
                    }
                });
            }
            SyncResponse::Error(text) => {
                ERROR.encode(out);
                let mut end = text.len().min(MAX_ERROR_TEXT_BYTES);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.as_bytes()[..end].encode(out);
            }
            SyncResponse::ProposalBlock(block) => {
                PROPOSAL_BLOCK.encode(out);
                block.encode(out);
            }
        })
    }

    /// A response from a peer's bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut list = open_message(bytes)?;
        let response = match list.item::<u8>()? {
            STATUS => SyncResponse::Status {
                head: list.item()?,
                head_hash: list.item()?,
                certificate: list
                    .option("status certificate", |l| decode_certificate(&mut l.list()?))?,
            },
            BLOCKS => {
                let mut items = list.list()?;
                let mut blocks = Vec::new();
                while !items.is_empty() {
                    if blocks.len() == MAX_BLOCKS_PER_RESPONSE {
                        return Err(WireError::TooLong {
                            what: "block list",
                            len: blocks.len() + 1,
                            max: MAX_BLOCKS_PER_RESPONSE,
                        });
                    }
                    let mut item = items.list()?;
                    let block = item.bytes("block", usize::MAX)?;
                    let certificate = decode_certificate(&mut item.list()?)?;
                    item.finish("certified block")?;
                    blocks.push(CertifiedBlock { block, certificate });
                }
                SyncResponse::Blocks(blocks)
            }
            ERROR => {
                let text = list.bytes("error text", MAX_ERROR_TEXT_BYTES)?;
                SyncResponse::Error(
                    String::from_utf8(text.to_vec())
                        .map_err(|_| WireError::NotUtf8("error text"))?,
                )
            }
            // Bounded by the message, which the network already bounded.
            PROPOSAL_BLOCK => SyncResponse::ProposalBlock(list.bytes("block", usize::MAX)?),
            kind => {
                return Err(WireError::UnknownKind {
                    what: "sync response",
                    kind,
                });
            }
        };
        list.finish("sync response")?;
        Ok(response)
    }
}

fn write_certificate(out: &mut Vec<u8>, certificate: &CommitCertificate) {
    write_list(out, |out| {
        certificate.height.encode(out);
        certificate.round.encode(out);
        certificate.block_id.encode(out);
        certificate.signature.encode(out);
        certificate.signers.0.encode(out);
    });
}

fn decode_certificate(list: &mut List<'_>) -> Result<CommitCertificate, WireError> {
    let certificate = CommitCertificate {
        height: list.item()?,
        round: list.item()?,
        block_id: list.item()?,
        signature: list.item()?,
        signers: SignerBitmap(list.bytes("signer bitmap", MAX_SIGNER_BITMAP_BYTES)?),
    };
    if !list.is_empty() {
        return Err(WireError::TrailingItems("certificate"));
    }
    Ok(certificate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bttd_consensus::bls::SignatureBytes;

    fn certificate(height: Height) -> CommitCertificate {
        CommitCertificate {
            height,
            round: 2,
            block_id: B256::repeat_byte(1),
            signature: SignatureBytes::repeat_byte(2),
            signers: SignerBitmap::from_indices(4, [0, 1, 3]),
        }
    }

    #[test]
    fn requests_and_responses_round_trip() {
        for request in [
            SyncRequest::Status,
            SyncRequest::Blocks { from: 0, max: 0 },
            SyncRequest::Blocks {
                from: u64::MAX,
                max: u32::MAX,
            },
            SyncRequest::ProposalBlock {
                id: B256::repeat_byte(4),
            },
        ] {
            assert_eq!(SyncRequest::decode(&request.encode()).unwrap(), request);
        }
        assert_eq!(SyncRequest::Status.encode(), [3, 0xc1, 0x80]);
        for response in [
            SyncResponse::Status {
                head: 0,
                head_hash: B256::ZERO,
                certificate: None,
            },
            SyncResponse::Status {
                head: 5,
                head_hash: B256::repeat_byte(9),
                certificate: Some(certificate(5)),
            },
            SyncResponse::Blocks(vec![]),
            SyncResponse::Blocks(
                (1..=3)
                    .map(|h| CertifiedBlock {
                        block: Bytes::from(vec![h as u8; 100]),
                        certificate: certificate(h),
                    })
                    .collect(),
            ),
            SyncResponse::Error("busy".into()),
            SyncResponse::ProposalBlock(Bytes::from(vec![7; 300])),
        ] {
            assert_eq!(SyncResponse::decode(&response.encode()).unwrap(), response);
        }
    }

    #[test]
    fn lists_and_texts_are_bounded() {
        let block = CertifiedBlock {
            block: Bytes::from_static(b"b"),
            certificate: certificate(1),
        };
        let full = SyncResponse::Blocks(vec![block.clone(); MAX_BLOCKS_PER_RESPONSE]);
        assert_eq!(SyncResponse::decode(&full.encode()).unwrap(), full);
        let over = SyncResponse::Blocks(vec![block; MAX_BLOCKS_PER_RESPONSE + 1]);
        assert!(matches!(
            SyncResponse::decode(&over.encode()),
            Err(WireError::TooLong {
                what: "block list",
                ..
            })
        ));

        let mut wide = certificate(1);
        wide.signers = SignerBitmap(vec![0xff; MAX_SIGNER_BITMAP_BYTES + 1].into());
        let status = SyncResponse::Status {
            head: 1,
            head_hash: B256::ZERO,
            certificate: Some(wide),
        };
        assert!(matches!(
            SyncResponse::decode(&status.encode()),
            Err(WireError::TooLong {
                what: "signer bitmap",
                ..
            })
        ));

        // Long texts are cut at a character boundary, never refused by our own peers.
        let long = SyncResponse::Error("é".repeat(MAX_ERROR_TEXT_BYTES));
        let SyncResponse::Error(text) = SyncResponse::decode(&long.encode()).unwrap() else {
            panic!("not an error")
        };
        assert_eq!(text.len(), MAX_ERROR_TEXT_BYTES);
        let invalid = message(|out| {
            ERROR.encode(out);
            [0xffu8, 0xfe].as_slice().encode(out);
        });
        assert_eq!(
            SyncResponse::decode(&invalid),
            Err(WireError::NotUtf8("error text"))
        );
    }
}
