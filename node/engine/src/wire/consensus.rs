//! Consensus gossip (topic `/bttd/<g>/consensus/3`): one [`Gossip`] per gossip message, an
//! [`Envelope`] or an [`Announcement`].
//!
//! ```text
//! envelope     = 0x03 ‖ rlp([nonce, 0, height, round, [pol_round?], block_id, payload, proposer, signature])  proposal
//!              | 0x03 ‖ rlp([nonce, 1, vote_type, height, round, [block_id?], validator, signature])          vote
//! announcement = 0x03 ‖ rlp([nonce, 2, height, round, [pol_round?], block_id, proposer, signature])           proposal without its block
//! ```
//!
//! An announcement is how a proposal is re-sent after its block went out once: the signed
//! proposal without the payload, a few hundred bytes instead of the block. A receiver that does
//! not hold the block asks the announcing peer for it over sync (`ProposalBlock`).
//!
//! Integers are canonical RLP (no leading zeros); `block_id` is 32 bytes, `signature` 96;
//! `vote_type` is 0 (prevote) or 1 (precommit); `[x?]` is a list of zero or one item. The
//! payload is the block's `WireBlock` RLP, bounded only by the message (the network bounds
//! that by `max-message-bytes`). Signatures are checked by consensus, not here.

use alloy_primitives::Bytes;
use bttd_consensus::bls::SignatureBytes;
use bttd_consensus::messages::{Message, Proposal, SignedProposal, SignedVote, Vote};
use bttd_consensus::{Block, VoteType};

use super::WireError;
use super::rlp::{List, message, open_message, write_option};
use alloy_rlp::Encodable;

const PROPOSAL: u8 = 0;
const VOTE: u8 = 1;
const ANNOUNCEMENT: u8 = 2;
const PREVOTE: u8 = 0;
const PRECOMMIT: u8 = 1;

/// A consensus message on gossip. The nonce makes a re-broadcast a new gossip message
/// (gossipsub drops byte-identical messages it saw recently).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub nonce: u64,
    pub message: Message,
}

impl Envelope {
    /// The message's wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        message(|out| {
            self.nonce.encode(out);
            match &self.message {
                Message::Proposal(SignedProposal {
                    proposal,
                    signature,
                }) => {
                    PROPOSAL.encode(out);
                    proposal.height.encode(out);
                    proposal.round.encode(out);
                    write_option(out, proposal.pol_round.as_ref());
                    proposal.block.id.encode(out);
                    proposal.block.payload.encode(out);
                    proposal.proposer.encode(out);
                    signature.encode(out);
                }
                Message::Vote(SignedVote { vote, signature }) => {
                    VOTE.encode(out);
                    match vote.vote_type {
                        VoteType::Prevote => PREVOTE,
                        VoteType::Precommit => PRECOMMIT,
                    }
                    .encode(out);
                    vote.height.encode(out);
                    vote.round.encode(out);
                    write_option(out, vote.block.as_ref());
                    vote.validator.encode(out);
                    signature.encode(out);
                }
            }
        })
    }

    /// A full message from a peer's bytes (an announcement is refused: see [`Gossip`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        match Gossip::decode(bytes)? {
            Gossip::Message(envelope) => Ok(envelope),
            Gossip::Announcement(_) => Err(WireError::UnknownKind {
                what: "consensus message",
                kind: ANNOUNCEMENT,
            }),
        }
    }
}

/// A proposal re-sent without its block: the signed proposal, whose signature covers the block
/// id, with an empty payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub nonce: u64,
    pub proposal: SignedProposal,
}

impl Announcement {
    /// The announcement's wire bytes (the payload, if any, is left out).
    pub fn encode(&self) -> Vec<u8> {
        let SignedProposal {
            proposal,
            signature,
        } = &self.proposal;
        message(|out| {
            self.nonce.encode(out);
            ANNOUNCEMENT.encode(out);
            proposal.height.encode(out);
            proposal.round.encode(out);
            write_option(out, proposal.pol_round.as_ref());
            proposal.block.id.encode(out);
            proposal.proposer.encode(out);
            signature.encode(out);
        })
    }
}

/// Anything on the consensus topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gossip {
    Message(Envelope),
    Announcement(Announcement),
}

impl Gossip {
    /// A gossip message from a peer's bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut list = open_message(bytes)?;
        let nonce = list.item()?;
        let gossip = match list.item::<u8>()? {
            PROPOSAL => Gossip::Message(Envelope {
                nonce,
                message: Message::Proposal(decode_proposal(&mut list, true)?),
            }),
            VOTE => Gossip::Message(Envelope {
                nonce,
                message: Message::Vote(decode_vote(&mut list)?),
            }),
            ANNOUNCEMENT => Gossip::Announcement(Announcement {
                nonce,
                proposal: decode_proposal(&mut list, false)?,
            }),
            kind => {
                return Err(WireError::UnknownKind {
                    what: "consensus message",
                    kind,
                });
            }
        };
        list.finish("consensus message")?;
        Ok(gossip)
    }
}

/// A signed proposal, with its payload or (an announcement's) without.
fn decode_proposal(list: &mut List<'_>, with_payload: bool) -> Result<SignedProposal, WireError> {
    let height = list.item()?;
    let round = list.item()?;
    let pol_round = list.option("pol_round", |l| l.item())?;
    let id = list.item()?;
    // The payload may be as large as the message itself; the message is already bounded.
    let payload = if with_payload {
        list.bytes("block payload", usize::MAX)?
    } else {
        Bytes::new()
    };
    let proposer = list.item()?;
    let signature: SignatureBytes = list.item()?;
    Ok(SignedProposal {
        proposal: Proposal {
            height,
            round,
            pol_round,
            block: Block { id, payload },
            proposer,
        },
        signature,
    })
}

fn decode_vote(list: &mut List<'_>) -> Result<SignedVote, WireError> {
    let vote_type = match list.item::<u8>()? {
        PREVOTE => VoteType::Prevote,
        PRECOMMIT => VoteType::Precommit,
        kind => {
            return Err(WireError::UnknownKind {
                what: "vote type",
                kind,
            });
        }
    };
    let height = list.item()?;
    let round = list.item()?;
    let block = list.option("vote block", |l| l.item())?;
    let validator = list.item()?;
    let signature: SignatureBytes = list.item()?;
    Ok(SignedVote {
        vote: Vote {
            vote_type,
            height,
            round,
            block,
            validator,
        },
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::VERSION;
    use alloy_primitives::{B256, Bytes, hex};

    fn vote(block: Option<B256>) -> Envelope {
        Envelope {
            nonce: 7,
            message: Message::Vote(SignedVote {
                vote: Vote {
                    vote_type: VoteType::Precommit,
                    height: 9,
                    round: 1,
                    block,
                    validator: 3,
                },
                signature: SignatureBytes::repeat_byte(5),
            }),
        }
    }

    fn proposal(pol_round: Option<u32>) -> Envelope {
        Envelope {
            nonce: 1,
            message: Message::Proposal(SignedProposal {
                proposal: Proposal {
                    height: 300,
                    round: 0,
                    pol_round,
                    block: Block {
                        id: B256::repeat_byte(0xaa),
                        payload: Bytes::from_static(&[0xc0; 60]),
                    },
                    proposer: 2,
                },
                signature: SignatureBytes::repeat_byte(6),
            }),
        }
    }

    #[test]
    fn the_vote_layout_is_the_documented_one() {
        // Pinned bytes: a change here is a protocol change (new VERSION, docs/network.md).
        let bytes = vote(Some(B256::repeat_byte(0x11))).encode();
        let expected = [
            hex!("03f88a").as_slice(), // version, list of 138 bytes
            &hex!("07 01 01 09 01"),   // nonce 7, vote, precommit, height 9, round 1
            &hex!("e1a0"),             // [block id]: a list of one 32-byte string
            &[0x11; 32],
            &hex!("03 b860"), // validator 3, 96-byte signature
            &[5; 96],
        ]
        .concat();
        assert_eq!(bytes, expected);
        let nil = vote(None).encode();
        assert_eq!(nil[8], 0xc0, "nil vote: an empty list");
    }

    #[test]
    fn messages_round_trip() {
        for envelope in [
            vote(None),
            vote(Some(B256::repeat_byte(1))),
            proposal(None),
            proposal(Some(0)),
            proposal(Some(u32::MAX)),
        ] {
            assert_eq!(Envelope::decode(&envelope.encode()).unwrap(), envelope);
        }
        let Message::Proposal(mut proposal) = proposal(Some(1)).message else {
            unreachable!()
        };
        let announcement = Announcement {
            nonce: 9,
            proposal: proposal.clone(),
        };
        let bytes = announcement.encode();
        assert!(bytes.len() < 200, "an announcement carries no block");
        proposal.proposal.block.payload = Bytes::new();
        assert_eq!(
            Gossip::decode(&bytes).unwrap(),
            Gossip::Announcement(Announcement { nonce: 9, proposal })
        );
        assert!(Envelope::decode(&bytes).is_err());
    }

    #[test]
    fn refuses_other_versions_truncation_and_extra_items() {
        let bytes = vote(None).encode();
        assert_eq!(bytes[0], VERSION);
        let mut v1 = bytes.clone();
        v1[0] = 1;
        assert_eq!(Envelope::decode(&v1), Err(WireError::Version { found: 1 }));
        assert_eq!(Envelope::decode(&[]), Err(WireError::Empty));
        assert!(Envelope::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            Envelope::decode(&trailing),
            Err(WireError::TrailingBytes(1))
        );
        // An extra item inside the list.
        let mut extra = vote(None).encode();
        extra[2] += 1;
        extra.push(0x80);
        assert_eq!(
            Envelope::decode(&extra),
            Err(WireError::TrailingItems("consensus message"))
        );
        // A vote type other than prevote or precommit.
        let mut kind = bytes.clone();
        kind[5] = 2;
        assert_eq!(
            Envelope::decode(&kind),
            Err(WireError::UnknownKind {
                what: "vote type",
                kind: 2
            })
        );
        // A signature one byte short.
        let short = message(|out| {
            7u64.encode(out);
            VOTE.encode(out);
            PREVOTE.encode(out);
            9u64.encode(out);
            1u32.encode(out);
            write_option::<B256>(out, None);
            3u32.encode(out);
            [5u8; 95].as_slice().encode(out);
        });
        assert!(Envelope::decode(&short).is_err());
    }
}
