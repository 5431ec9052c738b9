//! Why the pool refused a transaction. The messages follow geth's wording (same prefixes), because
//! wallets and libraries (ethers, viem, web3.py, cast) match on those prefixes to decide whether
//! to bump a fee, refetch a nonce or give up.

use alloy_primitives::U256;

/// A stateful rejection by [`super::Pool::add`]. All of these map to JSON-RPC error code -32000,
/// as in geth.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The exact same transaction (by hash) is already in the pool.
    #[error("already known")]
    AlreadyKnown,
    /// The sender's account already used this nonce.
    #[error("nonce too low: next nonce {next}, tx nonce {nonce}")]
    NonceTooLow { next: u64, nonce: u64 },
    /// Same sender and nonce as a pooled transaction without the required fee bump on both the
    /// fee cap and the tip.
    #[error("replacement transaction underpriced")]
    ReplacementUnderpriced,
    /// The balance does not cover `gas * maxFee + value` of this transaction.
    #[error(
        "insufficient funds for gas * price + value: balance {balance}, tx cost {cost}, overshot {}",
        overshot(.balance, &[.cost])
    )]
    InsufficientFunds { balance: U256, cost: U256 },
    /// The balance covers this transaction alone but not together with the sender's
    /// lower-nonce transactions already in the pool, which would execute first.
    #[error(
        "insufficient funds for gas * price + value: balance {balance}, queued cost {queued_cost}, tx cost {cost}, overshot {}",
        overshot(.balance, &[.queued_cost, .cost])
    )]
    InsufficientFundsWithQueued {
        balance: U256,
        queued_cost: U256,
        cost: U256,
    },
    /// The pool is at its count or byte limit and nothing cheaper could be evicted.
    #[error("txpool is full")]
    PoolFull,
    /// The sender already has `account-queue` non-executable transactions at lower nonces.
    #[error(
        "account limit exceeded: sender has {limit} queued (non-executable) transactions, limit {limit}"
    )]
    AccountQueueFull { limit: usize },
    /// The fee cap cannot pay even the minimum base fee, so the transaction could never be
    /// included.
    #[error("transaction underpriced: max fee per gas {fee_cap}, minimum needed {minimum}")]
    Underpriced { fee_cap: u128, minimum: u64 },
}

/// How far the costs exceed the balance (for the message; kept out of the variants so the
/// error stays small enough to return by value).
fn overshot(balance: &U256, costs: &[&U256]) -> U256 {
    costs
        .iter()
        .fold(U256::ZERO, |acc, c| acc.saturating_add(**c))
        .saturating_sub(*balance)
}
