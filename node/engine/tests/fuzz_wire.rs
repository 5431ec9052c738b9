//! Property tests ("fuzzing" on stable Rust) of every decoder that reads a peer's bytes:
//! consensus gossip envelopes, sync requests and responses, the sync framing, `WireBlock`,
//! a block's `extraData` and gossiped transactions.
//!
//! Each decoder gets random bytes, valid encodings of random values (which must round-trip)
//! and valid encodings mutated (bit flips, truncations, insertions, deletions, duplicated
//! slices, "interesting" RLP header bytes and length prefixes claiming gigabytes). It must
//! never panic, and no single allocation while it decodes may exceed [`MESSAGE_LIMIT`]: the
//! test binary's global allocator records the largest allocation made on the decoding
//! thread. It is its own test binary so the allocator affects nothing else.
//!
//! `BTTD_FUZZ_CASES` sets the inputs per decoder (default 100,000: 700,000 in all for CI,
//! about 13 s);
//! `BTTD_FUZZ_CASES=10000000` is the on-demand run. Each test prints its figures (run with
//! `--no-capture` to see them).

// The counting allocator is the one unsafe thing here: GlobalAlloc is an unsafe trait.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::LazyLock;
use std::time::Instant;

use alloy_consensus::{
    EMPTY_OMMER_ROOT_HASH, Header, SignableTransaction, TxEip1559, TxEnvelope, TxLegacy,
};
use alloy_primitives::{Address, B256, Signature, TxKind, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use bttd_consensus::bls::SignatureBytes;
use bttd_consensus::messages::{Message, Proposal, SignedProposal, SignedVote, Vote};
use bttd_consensus::{Block, CommitCertificate, Evidence, SignerBitmap, VoteType};
use bttd_engine::wire::{
    self, Announcement, CertifiedBlock, Envelope, ExtraData, Gossip, SyncRequest, SyncResponse,
};
use bttd_network::BytesCodec;
use bttd_runtime::{RecoveredTx, TxError, WireBlock};
use bttd_txpool::gossip::batch::{decode_batch, encode_batch};
use libp2p::StreamProtocol;
use libp2p::request_response::Codec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

/// The largest message any input here could be (the node's default `max-message-bytes` is
/// 16 MiB; every input below is far smaller than 1 MiB), so a decoder that allocates more
/// has trusted a length it read.
const MESSAGE_LIMIT: usize = 1 << 20;

/// Sync framing is tested with this limit: a frame may claim up to it, never more.
const FRAME_LIMIT: usize = 64 * 1024;

const CHAIN_ID: u64 = 1029;

// ---------------------------------------------------------------------------------------
// The counting allocator.

struct Counting;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = TRACKING.try_with(|tracking| {
        if tracking.get() {
            let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the largest single allocation it made.
fn measured<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|l| l.set(0));
    TRACKING.with(|t| t.set(true));
    let out = f();
    TRACKING.with(|t| t.set(false));
    (out, LARGEST.with(|l| l.get()))
}

// ---------------------------------------------------------------------------------------
// Inputs: random bytes, valid encodings, valid encodings mutated.

/// One edit of a valid encoding.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    /// A byte that starts or ends an RLP header range.
    Interesting(Index, Index),
    Truncate(Index),
    Insert(Index, Vec<u8>),
    Delete(Index, u8),
    Duplicate(Index, Index, u8),
    /// A string or list header claiming 4 GiB or 2^64 - 1 bytes.
    HugeLength(Index, bool, bool),
}

const INTERESTING: [u8; 12] = [
    0x00, 0x01, 0x7f, 0x80, 0x81, 0xb7, 0xb8, 0xbf, 0xc0, 0xf7, 0xf8, 0xff,
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, v)| Mutation::Interesting(i, v)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<Index>(), 1u8..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), any::<Index>(), 1u8..64)
            .prop_map(|(from, to, n)| Mutation::Duplicate(from, to, n)),
        (any::<Index>(), any::<bool>(), any::<bool>())
            .prop_map(|(i, list, long)| Mutation::HugeLength(i, list, long)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if bytes.is_empty() {
            bytes.push(0);
        }
        let len = bytes.len();
        match m {
            Mutation::Flip(i, bit) => bytes[i.index(len)] ^= 1 << bit,
            Mutation::Set(i, v) => bytes[i.index(len)] = *v,
            Mutation::Interesting(i, v) => {
                bytes[i.index(len)] = INTERESTING[v.index(INTERESTING.len())]
            }
            Mutation::Truncate(i) => bytes.truncate(i.index(len)),
            Mutation::Insert(i, v) => {
                let at = i.index(len + 1);
                bytes.splice(at..at, v.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let at = i.index(len);
                let end = (at + *n as usize).min(len);
                bytes.drain(at..end);
            }
            Mutation::Duplicate(from, to, n) => {
                let from = from.index(len);
                let end = (from + *n as usize).min(len);
                let slice = bytes[from..end].to_vec();
                let at = to.index(len + 1);
                bytes.splice(at..at, slice);
            }
            Mutation::HugeLength(i, list, long) => {
                let at = i.index(len);
                let header: &[u8] = match (list, long) {
                    (false, false) => &[0xbb, 0xff, 0xff, 0xff, 0xff],
                    (true, false) => &[0xfb, 0xff, 0xff, 0xff, 0xff],
                    (false, true) => &[0xbf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                    (true, true) => &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                };
                let end = (at + header.len()).min(len);
                bytes.splice(at..end, header.iter().copied());
            }
        }
    }
    bytes
}

/// What one decoder is fed: a valid encoding (kept whole, to check the round trip), the
/// same mutated, or random bytes (half of them after the wire version byte, so they get
/// past the first check).
#[derive(Debug, Clone)]
enum Input<T> {
    Valid(T, Vec<u8>),
    Mutated(Vec<u8>),
    Random(Vec<u8>),
}

impl<T> Input<T> {
    fn bytes(&self) -> &[u8] {
        match self {
            Input::Valid(_, b) | Input::Mutated(b) | Input::Random(b) => b,
        }
    }
}

fn inputs<T: Clone + std::fmt::Debug + 'static>(
    valid: impl Strategy<Value = T> + Clone + 'static,
    encode: fn(&T) -> Vec<u8>,
) -> impl Strategy<Value = Input<T>> {
    let random = (any::<bool>(), prop::collection::vec(any::<u8>(), 0..600)).prop_map(
        |(versioned, mut bytes)| {
            if versioned {
                bytes.insert(0, wire::VERSION);
            }
            Input::Random(bytes)
        },
    );
    prop_oneof![
        1 => random,
        1 => valid.clone().prop_map(move |v| {
            let bytes = encode(&v);
            Input::Valid(v, bytes)
        }),
        4 => (valid, prop::collection::vec(mutation(), 1..5))
            .prop_map(move |(v, ms)| Input::Mutated(mutate(encode(&v), &ms))),
    ]
}

// ---------------------------------------------------------------------------------------
// The harness.

fn cases() -> u32 {
    std::env::var("BTTD_FUZZ_CASES")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(100_000)
}

/// Feeds `cases()` inputs to `check`, which decodes one (measured) and returns whether it
/// decoded, and the allocation peak. Fails on a panic (proptest reports the input), on a
/// failed round trip and on an allocation above the limit; prints the figures.
fn fuzz<T: std::fmt::Debug>(
    name: &str,
    strategy: impl Strategy<Value = Input<T>>,
    limit: usize,
    check: impl Fn(&Input<T>) -> Result<(bool, usize), TestCaseError>,
) {
    let cases = cases();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    });
    let started = Instant::now();
    let stats = std::cell::RefCell::new((0u64, 0u64, 0usize, 0usize)); // inputs, decoded, peak, largest input
    runner
        .run(&strategy, |input| {
            let (decoded, peak) = check(&input)?;
            prop_assert!(
                peak <= limit,
                "{name}: an allocation of {peak} bytes for an input of {} bytes (limit {limit})",
                input.bytes().len()
            );
            let mut s = stats.borrow_mut();
            s.0 += 1;
            s.1 += u64::from(decoded);
            s.2 = s.2.max(peak);
            s.3 = s.3.max(input.bytes().len());
            Ok(())
        })
        .unwrap();
    let (inputs, decoded, peak, largest) = *stats.borrow();
    eprintln!(
        "fuzz {name}: {inputs} inputs ({decoded} decoded) in {:.1?}, largest input {largest} B, \
         largest allocation while decoding {peak} B (limit {limit} B)",
        started.elapsed()
    );
    assert!(
        inputs >= u64::from(cases),
        "{name}: only {inputs} inputs ran"
    );
}

// ---------------------------------------------------------------------------------------
// Valid values.

fn signature() -> impl Strategy<Value = SignatureBytes> + Clone {
    any::<[u8; 32]>().prop_map(|b| {
        let mut sig = [0u8; 96];
        for (i, chunk) in sig.chunks_mut(32).enumerate() {
            chunk.copy_from_slice(&b);
            chunk[0] ^= i as u8;
        }
        SignatureBytes::from(sig)
    })
}

fn b256() -> impl Strategy<Value = B256> + Clone {
    any::<[u8; 32]>().prop_map(B256::from)
}

fn height() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![0u64..1_000, any::<u64>()]
}

fn envelope() -> impl Strategy<Value = Envelope> + Clone {
    let vote = (
        any::<bool>(),
        height(),
        any::<u32>(),
        prop::option::of(b256()),
        any::<u32>(),
        signature(),
    )
        .prop_map(|(precommit, height, round, block, validator, signature)| {
            Message::Vote(SignedVote {
                vote: Vote {
                    vote_type: if precommit {
                        VoteType::Precommit
                    } else {
                        VoteType::Prevote
                    },
                    height,
                    round,
                    block,
                    validator,
                },
                signature,
            })
        });
    let proposal = (
        height(),
        any::<u32>(),
        prop::option::of(any::<u32>()),
        b256(),
        prop::collection::vec(any::<u8>(), 0..300),
        any::<u32>(),
        signature(),
    )
        .prop_map(
            |(height, round, pol_round, id, payload, proposer, signature)| {
                Message::Proposal(SignedProposal {
                    proposal: Proposal {
                        height,
                        round,
                        pol_round,
                        block: Block {
                            id,
                            payload: payload.into(),
                        },
                        proposer,
                    },
                    signature,
                })
            },
        );
    (any::<u64>(), prop_oneof![vote, proposal])
        .prop_map(|(nonce, message)| Envelope { nonce, message })
}

/// Anything on the consensus topic: whole messages and announcements (a proposal without its
/// block).
fn gossip() -> impl Strategy<Value = Gossip> + Clone {
    prop_oneof![
        envelope().prop_map(Gossip::Message),
        envelope().prop_filter_map("a proposal", |e| match e.message {
            Message::Proposal(mut proposal) => {
                proposal.proposal.block.payload = Default::default();
                Some(Gossip::Announcement(Announcement {
                    nonce: e.nonce,
                    proposal,
                }))
            }
            Message::Vote(_) => None,
        }),
    ]
}

fn encode_gossip(gossip: &Gossip) -> Vec<u8> {
    match gossip {
        Gossip::Message(envelope) => envelope.encode(),
        Gossip::Announcement(announcement) => announcement.encode(),
    }
}

fn certificate() -> impl Strategy<Value = CommitCertificate> + Clone {
    (
        height(),
        any::<u32>(),
        b256(),
        signature(),
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(
            |(height, round, block_id, signature, signers)| CommitCertificate {
                height,
                round,
                block_id,
                signature,
                signers: SignerBitmap(signers.into()),
            },
        )
}

fn sync_request() -> impl Strategy<Value = SyncRequest> + Clone {
    prop_oneof![
        Just(SyncRequest::Status),
        (height(), any::<u32>()).prop_map(|(from, max)| SyncRequest::Blocks { from, max }),
        b256().prop_map(|id| SyncRequest::ProposalBlock { id }),
    ]
}

fn sync_response() -> impl Strategy<Value = SyncResponse> + Clone {
    let block = (prop::collection::vec(any::<u8>(), 0..200), certificate()).prop_map(
        |(block, certificate)| CertifiedBlock {
            block: block.into(),
            certificate,
        },
    );
    prop_oneof![
        (height(), b256(), prop::option::of(certificate())).prop_map(
            |(head, head_hash, certificate)| SyncResponse::Status {
                head,
                head_hash,
                certificate,
            }
        ),
        prop::collection::vec(block, 0..6).prop_map(SyncResponse::Blocks),
        ".{0,40}".prop_map(SyncResponse::Error),
        prop::collection::vec(any::<u8>(), 0..300)
            .prop_map(|block| SyncResponse::ProposalBlock(block.into())),
    ]
}

fn unsigned_tx()
-> impl Strategy<Value = (bool, u64, u128, u64, Option<[u8; 20]>, u128, Vec<u8>)> + Clone {
    (
        any::<bool>(),
        prop_oneof![0u64..10, any::<u64>()],
        prop_oneof![1u128..1_000_000_000_000, any::<u128>()],
        prop_oneof![21_000u64..1_000_000, any::<u64>()],
        prop::option::of(any::<[u8; 20]>()),
        prop_oneof![Just(0u128), any::<u128>()],
        prop::collection::vec(any::<u8>(), 0..120),
    )
}

fn build_tx(
    (eip1559, nonce, price, gas, to, value, input): (
        bool,
        u64,
        u128,
        u64,
        Option<[u8; 20]>,
        u128,
        Vec<u8>,
    ),
    sign: impl FnOnce(B256) -> Signature,
) -> TxEnvelope {
    let to = to.map_or(TxKind::Create, |a| TxKind::Call(Address::from(a)));
    if eip1559 {
        let tx = TxEip1559 {
            chain_id: CHAIN_ID,
            nonce,
            gas_limit: gas,
            max_fee_per_gas: price,
            max_priority_fee_per_gas: price / 2,
            to,
            value: U256::from(value),
            access_list: Default::default(),
            input: input.into(),
        };
        let sig = sign(tx.signature_hash());
        tx.into_signed(sig).into()
    } else {
        let tx = TxLegacy {
            chain_id: Some(CHAIN_ID),
            nonce,
            gas_price: price,
            gas_limit: gas,
            to,
            value: U256::from(value),
            input: input.into(),
        };
        let sig = sign(tx.signature_hash());
        tx.into_signed(sig).into()
    }
}

/// A transaction with a random (almost never recoverable) signature.
fn tx_random_signature() -> impl Strategy<Value = TxEnvelope> + Clone {
    (
        unsigned_tx(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<bool>(),
    )
        .prop_map(|(fields, r, s, parity)| {
            build_tx(fields, |_| {
                Signature::new(U256::from_be_bytes(r), U256::from_be_bytes(s), parity)
            })
        })
}

/// Transactions with real signatures, signed once (signing every case would dominate).
static SIGNED: LazyLock<Vec<TxEnvelope>> = LazyLock::new(|| {
    let signer = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x42)).unwrap();
    let mut runner = TestRunner::deterministic();
    (0..64)
        .map(|_| {
            let fields = unsigned_tx().new_tree(&mut runner).unwrap().current();
            build_tx(fields, |hash| signer.sign_hash_sync(&hash).unwrap())
        })
        .collect()
});

fn transaction() -> impl Strategy<Value = TxEnvelope> + Clone {
    prop_oneof![
        tx_random_signature(),
        any::<Index>().prop_map(|i| SIGNED[i.index(SIGNED.len())].clone()),
    ]
}

fn wire_block() -> impl Strategy<Value = WireBlock> + Clone {
    (
        height(),
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..140),
        any::<u64>(),
        b256(),
        prop::collection::vec(transaction(), 0..6),
    )
        .prop_map(
            |(number, gas_limit, timestamp, extra, base_fee, parent, transactions)| {
                let header = Header {
                    parent_hash: parent,
                    ommers_hash: EMPTY_OMMER_ROOT_HASH,
                    number,
                    gas_limit,
                    timestamp,
                    extra_data: extra.into(),
                    base_fee_per_gas: Some(base_fee),
                    transactions_root: alloy_consensus::proofs::calculate_transaction_root(
                        &transactions,
                    ),
                    withdrawals_root: Some(alloy_consensus::EMPTY_ROOT_HASH),
                    ..Header::default()
                };
                WireBlock {
                    header,
                    transactions,
                }
            },
        )
}

/// Evidence as a block carries it: two votes or two proposals of one validator at one height
/// and round (proposals by block id only).
fn evidence() -> impl Strategy<Value = Evidence> + Clone {
    (
        (any::<u64>(), height(), any::<u32>(), any::<u32>(), 0u8..3),
        (prop::option::of(b256()), signature(), any::<Option<u32>>()),
        (prop::option::of(b256()), signature(), any::<Option<u32>>()),
    )
        .prop_map(|((epoch, height, round, who, kind), a, b)| {
            let vote = |(block, signature, _): (Option<B256>, SignatureBytes, Option<u32>)| {
                Box::new(SignedVote {
                    vote: Vote {
                        vote_type: if kind == 0 {
                            VoteType::Prevote
                        } else {
                            VoteType::Precommit
                        },
                        height,
                        round,
                        block,
                        validator: who,
                    },
                    signature,
                })
            };
            let proposal =
                |(id, signature, pol_round): (Option<B256>, SignatureBytes, Option<u32>)| {
                    Box::new(SignedProposal {
                        proposal: Proposal {
                            height,
                            round,
                            pol_round,
                            block: Block {
                                id: id.unwrap_or_default(),
                                payload: Default::default(),
                            },
                            proposer: who,
                        },
                        signature,
                    })
                };
            if kind == 2 {
                Evidence::DuplicateProposal {
                    epoch,
                    first: proposal(a),
                    second: proposal(b),
                }
            } else {
                Evidence::DuplicateVote {
                    epoch,
                    first: vote(a),
                    second: vote(b),
                }
            }
        })
}

fn extra_data() -> impl Strategy<Value = (ExtraData, usize)> + Clone {
    (
        0usize..300,
        any::<u32>(),
        signature(),
        any::<[u8; 38]>(),
        prop::option::of(b256()),
        prop::collection::vec(evidence(), 0..=bttd_engine::wire::MAX_BLOCK_EVIDENCE),
    )
        .prop_map(|(n, round, signature, bits, next_set, evidence)| {
            let signers = SignerBitmap::from_indices(
                n,
                (0..n as u32).filter(|i| bits[*i as usize % 38] & (1 << (i % 8)) != 0),
            );
            let extra = ExtraData {
                parent: CommitCertificate {
                    height: 7,
                    round,
                    block_id: B256::repeat_byte(7),
                    signature,
                    signers,
                },
                next_set,
                evidence,
            };
            (extra, n)
        })
}

// ---------------------------------------------------------------------------------------
// One test per decoder.

#[test]
fn consensus_envelopes() {
    fuzz(
        "consensus gossip",
        inputs(gossip(), encode_gossip),
        MESSAGE_LIMIT,
        |input| {
            let (decoded, peak) = measured(|| Gossip::decode(input.bytes()));
            if let Input::Valid(value, _) = input {
                prop_assert_eq!(decoded.as_ref(), Ok(value));
            }
            Ok((decoded.is_ok(), peak))
        },
    );
}

#[test]
fn sync_requests() {
    fuzz(
        "sync request",
        inputs(sync_request(), SyncRequest::encode),
        MESSAGE_LIMIT,
        |input| {
            let (decoded, peak) = measured(|| SyncRequest::decode(input.bytes()));
            if let Input::Valid(value, _) = input {
                prop_assert_eq!(decoded.as_ref(), Ok(value));
            }
            Ok((decoded.is_ok(), peak))
        },
    );
}

#[test]
fn sync_responses() {
    fuzz(
        "sync response",
        inputs(sync_response(), SyncResponse::encode),
        MESSAGE_LIMIT,
        |input| {
            let (decoded, peak) = measured(|| SyncResponse::decode(input.bytes()));
            if let Input::Valid(value, _) = input {
                prop_assert_eq!(decoded.as_ref(), Ok(value));
            }
            Ok((decoded.is_ok(), peak))
        },
    );
}

/// The framing of a sync stream: a 4-byte length (at most the limit) and the body. A frame
/// claiming more than the limit is refused before anything is allocated for it.
#[test]
fn sync_framing() {
    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }
    let protocol = StreamProtocol::new("/bttd/fuzz/sync/2");
    let bodies = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        (FRAME_LIMIT - 8..=FRAME_LIMIT).prop_map(|n| vec![0xab; n]),
    ];
    fuzz(
        "sync framing",
        inputs(bodies, |body: &Vec<u8>| frame(body)),
        FRAME_LIMIT,
        |input| {
            let mut codec = BytesCodec::new(FRAME_LIMIT);
            let mut stream = futures::io::Cursor::new(input.bytes());
            let (read, peak) = measured(|| {
                futures::executor::block_on(codec.read_request(&protocol, &mut stream))
            });
            if let Input::Valid(body, _) = input {
                prop_assert_eq!(read.as_ref().ok(), Some(body));
            }
            Ok((read.is_ok(), peak))
        },
    );
}

#[test]
fn wire_blocks() {
    fuzz(
        "WireBlock",
        inputs(wire_block(), |b| alloy_rlp::encode(b)),
        MESSAGE_LIMIT,
        |input| {
            let bytes = input.bytes();
            let id = match input {
                Input::Valid(block, _) => block.header.hash_slow(),
                _ => B256::ZERO,
            };
            let (decoded, peak) = measured(|| WireBlock::decode_for(bytes, id));
            if let Input::Valid(block, _) = input {
                let decoded = decoded
                    .as_ref()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(decoded.header.inner(), &block.header);
                prop_assert_eq!(&decoded.body.transactions, &block.transactions);
            }
            // Also the plain decode (what sync uses before comparing ids).
            let (_, plain_peak) = measured(|| WireBlock::decode(bytes));
            Ok((decoded.is_ok(), peak.max(plain_peak)))
        },
    );
}

#[test]
fn extra_data_certificates() {
    fuzz(
        "extraData",
        inputs(extra_data(), |(extra, n)| {
            // The set size travels in front, as the test's own framing: the decoder is given
            // it (it is ours, never the peer's), and a mutation may change it.
            let mut out = (*n as u16).to_be_bytes().to_vec();
            out.push(u8::from(extra.next_set.is_some()));
            out.extend_from_slice(&extra.encode());
            out
        }),
        MESSAGE_LIMIT,
        |input| {
            let bytes = input.bytes();
            let (n, epoch_end, extra) = match bytes {
                [a, b, e, rest @ ..] => (u16::from_be_bytes([*a, *b]) as usize, *e & 1 == 1, rest),
                _ => (0, false, bytes),
            };
            let (decoded, peak) =
                measured(|| ExtraData::decode(extra, 7, B256::repeat_byte(7), n, epoch_end));
            if let Input::Valid((value, _), _) = input {
                prop_assert_eq!(decoded.as_ref(), Some(value));
            }
            Ok((decoded.is_some(), peak))
        },
    );
}

#[test]
fn gossiped_transaction_batches() {
    fuzz(
        "transaction batch",
        inputs(prop::collection::vec(transaction(), 0..4), |txs| {
            let raws: Vec<Vec<u8>> = txs
                .iter()
                .map(alloy_eips::eip2718::Encodable2718::encoded_2718)
                .collect();
            encode_batch(raws.iter().map(Vec::as_slice))
        }),
        MESSAGE_LIMIT,
        |input| {
            let (decoded, peak) = measured(|| {
                decode_batch(input.bytes()).map(|raws| {
                    raws.into_iter()
                        .map(|raw| RecoveredTx::decode(raw, CHAIN_ID, u64::MAX))
                        .collect::<Vec<_>>()
                })
            });
            if let Input::Valid(txs, _) = input {
                let decoded = decoded.as_ref().map_err(|e| {
                    TestCaseError::fail(format!("a valid batch did not decode: {e}"))
                })?;
                prop_assert_eq!(decoded.len(), txs.len());
                // Random signatures may not recover; a real one must decode to itself (or be
                // refused by a stateless rule, e.g. too little gas for its data).
                for (tx, decoded) in txs.iter().zip(decoded) {
                    if SIGNED.contains(tx) {
                        match decoded {
                            Ok(decoded) => prop_assert_eq!(decoded.envelope(), tx),
                            Err(e) => prop_assert!(
                                !matches!(e, TxError::Decode(_) | TxError::InvalidSignature),
                                "a signed transaction did not decode: {}",
                                e
                            ),
                        }
                    }
                }
            }
            Ok((decoded.is_ok(), peak))
        },
    );
}

/// The fixed points the random inputs are unlikely to hit exactly: lengths claiming more
/// than the message, for every decoder, allocate nothing of that size.
#[test]
fn hostile_lengths_allocate_nothing_of_their_size() {
    let claims: [&[u8]; 4] = [
        &[0xbb, 0xff, 0xff, 0xff, 0xff],
        &[0xfb, 0xff, 0xff, 0xff, 0xff],
        &[0xbf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        &[0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ];
    for claim in claims {
        let mut message = vec![wire::VERSION];
        message.extend_from_slice(claim);
        message.extend_from_slice(&[0u8; 64]);
        let (r, peak) = measured(|| Envelope::decode(&message));
        assert!(r.is_err() && peak < 1024, "envelope: {peak}");
        let (r, peak) = measured(|| SyncResponse::decode(&message));
        assert!(r.is_err() && peak < 1024, "sync response: {peak}");
        let (r, peak) = measured(|| WireBlock::decode(&message[1..]));
        assert!(r.is_err() && peak < 1024, "WireBlock: {peak}");
        let (r, peak) = measured(|| RecoveredTx::decode(&message[1..], CHAIN_ID, u64::MAX));
        assert!(r.is_err() && peak < 1024, "transaction: {peak}");
        let (r, peak) = measured(|| decode_batch(&message));
        assert!(r.is_err() && peak < 1024, "transaction batch: {peak}");
    }
    // A frame claiming one byte over the limit is refused before its body is read.
    let mut frame = ((FRAME_LIMIT + 1) as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&[0u8; 64]);
    let mut codec = BytesCodec::new(FRAME_LIMIT);
    let protocol = StreamProtocol::new("/bttd/fuzz/sync/2");
    let (r, peak) = measured(|| {
        futures::executor::block_on(
            codec.read_request(&protocol, &mut futures::io::Cursor::new(&frame)),
        )
    });
    assert!(r.is_err() && peak < 1024, "framing: {peak}");
}

/// The smallest transactions a peer can encode (10 bytes, 400 in memory), as many as fit in a
/// message: refused by count before any is decoded. Within the count, the vector never grows
/// beyond the count.
#[test]
fn a_block_of_tiny_transactions_is_bounded_by_count() {
    fn block(count: usize) -> Vec<u8> {
        let header = Header {
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            base_fee_per_gas: Some(1),
            withdrawals_root: Some(alloy_consensus::EMPTY_ROOT_HASH),
            ..Header::default()
        };
        let tx: [u8; 10] = [0xc9, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x1b, 0x01, 0x01];
        let mut list = Vec::new();
        alloy_rlp::Header {
            list: true,
            payload_length: count * tx.len(),
        }
        .encode(&mut list);
        for _ in 0..count {
            list.extend_from_slice(&tx);
        }
        let mut payload = alloy_rlp::encode(&header);
        payload.extend_from_slice(&list);
        let mut bytes = Vec::new();
        alloy_rlp::Header {
            list: true,
            payload_length: payload.len(),
        }
        .encode(&mut bytes);
        bytes.extend_from_slice(&payload);
        bytes
    }
    let max = bttd_runtime::block::MAX_BLOCK_TRANSACTIONS;
    let over = block((16 << 20) / 10);
    let (decoded, peak) = measured(|| WireBlock::decode(&over));
    assert!(decoded.is_err());
    assert!(
        peak < 1024,
        "{peak} B allocated for a block refused by count"
    );
    let full = block(max);
    let (decoded, peak) = measured(|| WireBlock::decode(&full));
    assert_eq!(decoded.unwrap().body.transactions.len(), max);
    let exact = max * std::mem::size_of::<TxEnvelope>();
    assert!(peak <= exact, "{peak} B for {max} transactions ({exact} B)");
    assert!(peak < 16 << 20);
}
