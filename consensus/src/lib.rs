//! Consensus for bttd: a Tendermint-family BFT protocol with BLS12-381 commit
//! certificates, written as a pure state machine.
//!
//! Why sans-I/O: the hard part of BFT consensus is its behaviour under every
//! interleaving of messages, timeouts, crashes and byzantine peers. Keeping
//! the protocol free of clocks, sockets and randomness lets the node drive it
//! with libp2p and tokio while the simulator (`bttd-sim`) drives the very same
//! code, inside the node's engine, through thousands of seeded adversarial
//! schedules, checking agreement, validity, certificate validity and liveness
//! on every run.
//!
//! Map of the crate: [`machine`] is Algorithm 1 of the Tendermint paper;
//! [`votes`] keeps tallies and detects equivocation; [`guard`] is slashing
//! protection; [`validator_set`] and [`proposer`] are epochs and stake-weighted
//! rotation; [`signing`] fixes the signed bytes; [`bls`], [`crypto`] and
//! [`certificate`] are the signatures; [`test_scheme`] is the cheap signer of
//! the simulator. The protocol is specified in `docs/consensus.md`.

pub mod bls;
pub mod certificate;
pub mod crypto;
pub mod future;
pub mod guard;
pub mod machine;
pub mod messages;
mod proposer;
pub mod signing;
pub mod test_scheme;
pub mod timeouts;
pub mod types;
pub mod validator_set;
pub mod votes;

pub use certificate::{CertificateError, CommitCertificate, SignerBitmap};
pub use crypto::{BlsSigner, BlsVerifier, Signer, Verifier};
pub use guard::{SignRecord, SlashingGuard, SlashingStore};
pub use machine::{Applied, Config, Input, Machine, Output, Reject, Verdict};
pub use messages::{Evidence, Message, Proposal, SignedProposal, SignedVote, Vote};
pub use timeouts::TimeoutConfig;
pub use types::{Block, BlockId, Height, Round, Step, ValidatorIndex, VoteType};
pub use validator_set::{StaticProvider, Validator, ValidatorSet, ValidatorSetProvider};
