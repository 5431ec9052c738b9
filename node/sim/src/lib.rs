//! A deterministic, seeded simulator for the shipped consensus engine.
//!
//! Each simulated node is the node's own [`bttd_engine::Engine`] over the node's own
//! application ([`bttd_app::NodeApp`]: real `WireBlock`s, the real block rules, real execution
//! over an in-memory store), so payload swaps, edited sync bodies and forged votes meet the code
//! that ships. Only the host is simulated ([`host`]): links, the clock and blocking work.
//!
//! Everything non-deterministic in a real deployment is drawn from one ChaCha RNG seeded per
//! run: link latency and jitter (hence reordering), loss and duplication, partitions, crashes
//! and restarts, byzantine choices. Time is virtual (microseconds on an event queue), so a run
//! of minutes of protocol time takes milliseconds, and the same seed replays the same run bit
//! for bit: every processed event is folded into a trace hash that tests compare across runs.
//!
//! [`checker`] watches every decision, signature, ban and piece of evidence for the
//! invariants; [`scenarios`] builds the adversarial configurations the tests run by the
//! thousand.

pub mod checker;
pub mod config;
pub mod host;
mod network;
pub mod scenarios;
mod slashing;
mod world;

pub use checker::Violation;
pub use config::{Behaviour, Fault, Liveness, NetConfig, NodeSpec, Scheme, SimConfig, SimReport};
pub use world::run;
