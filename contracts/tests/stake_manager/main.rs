//! Contract tests of `StakeManager` (issue 12): its bytecode runs in an in-memory revm at
//! Prague, system entry points are called as the protocol calls them (revm system calls from
//! 0xff..fe), and validators register BLS keys made by bttd's own `bls` module.

mod gas;
mod harness;
mod keys;
mod lifecycle;
mod registration;
mod rewards;
mod slashing;
mod supply;
