//! The fixed binary layout of the parent certificate carried in a block's `extraData`
//! (docs/block-format.md), the validator-set commitment of an epoch's last block, and the
//! evidence of double-signing a proposer includes after them.

use alloy_primitives::{B256, Bytes};
use bttd_consensus::bls::SignatureBytes;
use bttd_consensus::{
    Block, CommitCertificate, Evidence, Height, Proposal, SignedProposal, SignedVote, SignerBitmap,
    Vote, VoteType,
};

/// Length of the fixed part of the `extraData` certificate: round (4) + aggregate (96).
const EXTRA_FIXED: usize = 4 + 96;

/// Most evidence items one block carries: what a proposer has beyond this waits for the next
/// block (an item is under 300 bytes, so the section stays under 2.5 KiB).
pub const MAX_BLOCK_EVIDENCE: usize = 8;

/// An item's head: kind (1) ‖ epoch (8) ‖ height (8) ‖ round (4) ‖ offender (4).
const ITEM_HEAD: usize = 1 + 8 + 8 + 4 + 4;
/// One vote of a pair: nil flag (1) ‖ block id (32) ‖ signature (96).
const VOTE_HALF: usize = 1 + 32 + 96;
/// One proposal of a pair: pol flag (1) ‖ pol round (4) ‖ block id (32) ‖ signature (96).
const PROPOSAL_HALF: usize = 1 + 4 + 32 + 96;

const KIND_PREVOTES: u8 = 0;
const KIND_PRECOMMITS: u8 = 1;
const KIND_PROPOSALS: u8 = 2;

/// What a block's `extraData` carries on a chain with validators (docs/block-format.md):
/// `round (u32, big-endian) ‖ aggregate signature (96 bytes) ‖ signer bitmap (⌈n/8⌉ bytes)`
/// of the parent's commit certificate, then, in the last block of an epoch, the 32-byte
/// [`validator_set_hash`] of the next epoch's set. Height and block id of the certificate are
/// implied (the parent's), which keeps the field small; the bitmap puts the parent's signers
/// on chain for rewards and downtime accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraData {
    pub parent: CommitCertificate,
    pub next_set: Option<B256>,
    /// Evidence of double-signing, at most [`MAX_BLOCK_EVIDENCE`] items, after the rest:
    /// `count (u8) ‖ item*` when there is any, nothing otherwise. Proposals carry their block
    /// id only (the payload is not part of what a proposer signs).
    pub evidence: Vec<Evidence>,
}

impl ExtraData {
    pub fn encode(&self) -> Bytes {
        let cert = &self.parent;
        let mut out = Vec::with_capacity(EXTRA_FIXED + cert.signers.0.len() + 32);
        out.extend_from_slice(&cert.round.to_be_bytes());
        out.extend_from_slice(cert.signature.as_slice());
        out.extend_from_slice(&cert.signers.0);
        if let Some(hash) = self.next_set {
            out.extend_from_slice(hash.as_slice());
        }
        if !self.evidence.is_empty() {
            // Callers keep to MAX_BLOCK_EVIDENCE; a longer list could not be decoded.
            out.push(self.evidence.len().min(u8::MAX as usize) as u8);
            for e in &self.evidence {
                encode_evidence(e, &mut out);
            }
        }
        out.into()
    }

    /// Parses `extra` for a parent at `parent_height` with hash `parent_hash` whose set has
    /// `parent_set_len` validators; `epoch_end` says whether the next-set hash must follow.
    /// `None` when the length or layout is wrong.
    pub fn decode(
        extra: &[u8],
        parent_height: Height,
        parent_hash: B256,
        parent_set_len: usize,
        epoch_end: bool,
    ) -> Option<Self> {
        let bitmap_len = parent_set_len.div_ceil(8);
        let fixed = EXTRA_FIXED + bitmap_len + if epoch_end { 32 } else { 0 };
        if extra.len() < fixed {
            return None;
        }
        let evidence = decode_evidence(&extra[fixed..])?;
        let extra = &extra[..fixed];
        let round = u32::from_be_bytes(extra[..4].try_into().ok()?);
        let bitmap_end = EXTRA_FIXED + bitmap_len;
        Some(Self {
            parent: CommitCertificate {
                height: parent_height,
                round,
                block_id: parent_hash,
                signature: SignatureBytes::from_slice(&extra[4..EXTRA_FIXED]),
                signers: SignerBitmap(Bytes::copy_from_slice(&extra[EXTRA_FIXED..bitmap_end])),
            },
            next_set: epoch_end.then(|| B256::from_slice(&extra[bitmap_end..])),
            evidence,
        })
    }
}

fn encode_evidence(evidence: &Evidence, out: &mut Vec<u8>) {
    let (_, height, round, kind) = evidence.offence();
    let (epoch, offender) = match evidence {
        Evidence::DuplicateVote { epoch, first, .. } => (*epoch, first.vote.validator),
        Evidence::DuplicateProposal { epoch, first, .. } => (*epoch, first.proposal.proposer),
    };
    out.push(kind);
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(&round.to_be_bytes());
    out.extend_from_slice(&offender.to_be_bytes());
    match evidence {
        Evidence::DuplicateVote { first, second, .. } => {
            for v in [first, second] {
                out.push(u8::from(v.vote.block.is_some()));
                out.extend_from_slice(v.vote.block.unwrap_or_default().as_slice());
                out.extend_from_slice(v.signature.as_slice());
            }
        }
        Evidence::DuplicateProposal { first, second, .. } => {
            for p in [first, second] {
                out.push(u8::from(p.proposal.pol_round.is_some()));
                out.extend_from_slice(&p.proposal.pol_round.unwrap_or(0).to_be_bytes());
                out.extend_from_slice(p.proposal.block.id.as_slice());
                out.extend_from_slice(p.signature.as_slice());
            }
        }
    }
}

/// The evidence section: empty, or a count in `1..=MAX_BLOCK_EVIDENCE` and exactly that many
/// well-formed items. Signatures and the conflict itself are checked by the block validator.
fn decode_evidence(mut bytes: &[u8]) -> Option<Vec<Evidence>> {
    let Some((&count, rest)) = bytes.split_first() else {
        return Some(Vec::new());
    };
    let count = count as usize;
    if count == 0 || count > MAX_BLOCK_EVIDENCE {
        return None;
    }
    bytes = rest;
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        let (item, rest) = decode_item(bytes)?;
        items.push(item);
        bytes = rest;
    }
    bytes.is_empty().then_some(items)
}

fn take<const N: usize>(bytes: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = bytes.split_first_chunk::<N>()?;
    *bytes = rest;
    Some(*head)
}

/// A presence flag, 0 or 1, followed by a value that must be zero when absent (one encoding
/// per item, so an item's bytes name it).
fn flagged<T: Default + PartialEq>(flag: u8, value: T) -> Option<Option<T>> {
    match flag {
        0 if value == T::default() => Some(None),
        1 => Some(Some(value)),
        _ => None,
    }
}

fn decode_item(mut bytes: &[u8]) -> Option<(Evidence, &[u8])> {
    let b = &mut bytes;
    let [kind] = take::<1>(b)?;
    let epoch = u64::from_be_bytes(take(b)?);
    let height = u64::from_be_bytes(take(b)?);
    let round = u32::from_be_bytes(take(b)?);
    let offender = u32::from_be_bytes(take(b)?);
    let evidence = match kind {
        KIND_PREVOTES | KIND_PRECOMMITS => {
            let vote_type = if kind == KIND_PREVOTES {
                VoteType::Prevote
            } else {
                VoteType::Precommit
            };
            let half = |b: &mut &[u8]| -> Option<SignedVote> {
                let [flag] = take::<1>(b)?;
                let block = flagged(flag, B256::from(take::<32>(b)?))?;
                Some(SignedVote {
                    vote: Vote {
                        vote_type,
                        height,
                        round,
                        block,
                        validator: offender,
                    },
                    signature: SignatureBytes::from(take::<96>(b)?),
                })
            };
            let first = half(b)?;
            let second = half(b)?;
            Evidence::DuplicateVote {
                epoch,
                first: Box::new(first),
                second: Box::new(second),
            }
        }
        KIND_PROPOSALS => {
            let half = |b: &mut &[u8]| -> Option<SignedProposal> {
                let [flag] = take::<1>(b)?;
                let pol_round = flagged(flag, u32::from_be_bytes(take(b)?))?;
                Some(SignedProposal {
                    proposal: Proposal {
                        height,
                        round,
                        pol_round,
                        block: Block {
                            id: B256::from(take::<32>(b)?),
                            payload: Bytes::new(),
                        },
                        proposer: offender,
                    },
                    signature: SignatureBytes::from(take::<96>(b)?),
                })
            };
            let first = half(b)?;
            let second = half(b)?;
            Evidence::DuplicateProposal {
                epoch,
                first: Box::new(first),
                second: Box::new(second),
            }
        }
        _ => return None,
    };
    Some((evidence, bytes))
}

/// Bytes of one encoded item of this kind (for size checks in tests and docs).
pub const fn evidence_item_len(proposals: bool) -> usize {
    ITEM_HEAD + 2 * if proposals { PROPOSAL_HALF } else { VOTE_HALF }
}

/// Commitment to a validator set: keccak256 over `address ‖ BLS key ‖ power (u64 BE)` of every
/// member in index order. The last block of an epoch carries the next epoch's.
pub fn validator_set_hash(set: &bttd_consensus::ValidatorSet) -> B256 {
    let mut bytes = Vec::with_capacity(set.len() * (20 + 48 + 8));
    for v in set.validators() {
        bytes.extend_from_slice(v.address.as_slice());
        bytes.extend_from_slice(v.public_key.as_slice());
        bytes.extend_from_slice(&v.power.to_be_bytes());
    }
    alloy_primitives::keccak256(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_data_round_trips_and_refuses_wrong_lengths() {
        let cert = CommitCertificate {
            height: 4,
            round: 2,
            block_id: B256::repeat_byte(1),
            signature: SignatureBytes::repeat_byte(2),
            signers: SignerBitmap::from_indices(4, [0, 1, 3]),
        };
        let plain = ExtraData {
            parent: cert.clone(),
            next_set: None,
            evidence: Vec::new(),
        };
        let bytes = plain.encode();
        assert_eq!(bytes.len(), 101);
        let hash = B256::repeat_byte(1);
        assert_eq!(ExtraData::decode(&bytes, 4, hash, 4, false), Some(plain));
        // The epoch's last block must carry the next set, and no other block may.
        assert_eq!(ExtraData::decode(&bytes, 4, hash, 4, true), None);
        assert_eq!(ExtraData::decode(&bytes[..100], 4, hash, 4, false), None);
        assert_eq!(ExtraData::decode(&bytes, 4, hash, 9, false), None);
        let last = ExtraData {
            parent: cert,
            next_set: Some(B256::repeat_byte(3)),
            evidence: Vec::new(),
        };
        let bytes = last.encode();
        assert_eq!(ExtraData::decode(&bytes, 4, hash, 4, true), Some(last));
        assert_eq!(ExtraData::decode(&bytes, 4, hash, 4, false), None);
    }

    fn vote(block: Option<B256>, sig: u8) -> Box<SignedVote> {
        Box::new(SignedVote {
            vote: Vote {
                vote_type: VoteType::Precommit,
                height: 9,
                round: 1,
                block,
                validator: 3,
            },
            signature: SignatureBytes::repeat_byte(sig),
        })
    }

    fn proposal(id: u8, pol_round: Option<u32>) -> Box<SignedProposal> {
        Box::new(SignedProposal {
            proposal: Proposal {
                height: 9,
                round: 2,
                pol_round,
                block: Block {
                    id: B256::repeat_byte(id),
                    payload: Bytes::new(),
                },
                proposer: 1,
            },
            signature: SignatureBytes::repeat_byte(id),
        })
    }

    #[test]
    fn evidence_round_trips_after_the_certificate_and_malformed_sections_are_refused() {
        let cert = CommitCertificate {
            height: 10,
            round: 0,
            block_id: B256::repeat_byte(1),
            signature: SignatureBytes::repeat_byte(2),
            signers: SignerBitmap::from_indices(4, [0, 1, 2]),
        };
        let evidence = vec![
            Evidence::DuplicateVote {
                epoch: 0,
                first: vote(Some(B256::repeat_byte(5)), 6),
                second: vote(None, 7),
            },
            Evidence::DuplicateProposal {
                epoch: 0,
                first: proposal(8, None),
                second: proposal(9, Some(1)),
            },
        ];
        let extra = ExtraData {
            parent: cert.clone(),
            next_set: Some(B256::repeat_byte(4)),
            evidence,
        };
        let bytes = extra.encode();
        assert_eq!(
            bytes.len(),
            101 + 32 + 1 + evidence_item_len(false) + evidence_item_len(true)
        );
        let hash = cert.block_id;
        assert_eq!(ExtraData::decode(&bytes, 10, hash, 4, true), Some(extra));

        let fixed = 101 + 32;
        let mut bad = bytes.to_vec();
        bad.push(0);
        assert_eq!(
            ExtraData::decode(&bad, 10, hash, 4, true),
            None,
            "trailing byte"
        );
        let cut = &bytes[..bytes.len() - 1];
        assert_eq!(
            ExtraData::decode(cut, 10, hash, 4, true),
            None,
            "short item"
        );
        for count in [0u8, 3, 9, 255] {
            let mut bad = bytes.to_vec();
            bad[fixed] = count;
            assert_eq!(
                ExtraData::decode(&bad, 10, hash, 4, true),
                None,
                "count {count}"
            );
        }
        let mut bad = bytes.to_vec();
        bad[fixed + 1] = 3; // unknown kind
        assert_eq!(ExtraData::decode(&bad, 10, hash, 4, true), None);
        let mut bad = bytes.to_vec();
        bad[fixed + 1 + ITEM_HEAD] = 2; // a presence flag other than 0 or 1
        assert_eq!(ExtraData::decode(&bad, 10, hash, 4, true), None);
        let mut bad = bytes.to_vec();
        bad[fixed + 1 + ITEM_HEAD + VOTE_HALF + 1] = 1; // nil with a non-zero id
        assert_eq!(ExtraData::decode(&bad, 10, hash, 4, true), None);
    }
}
