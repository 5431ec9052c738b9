//! Block-building order. Each sender's pending transactions must run in nonce order, so the
//! only real choice is which sender goes next: a max-heap holds each sender's next transaction
//! keyed by effective tip (then arrival), and popping one pushes that sender's following nonce.
//! That is a k-way merge, O(n log senders), and lazy: a builder that fills its block after a
//! few hundred transactions never pays for the rest.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashSet};

use alloy_primitives::Address;
use bttd_runtime::tx::RecoveredTx;

use super::Pool;

#[derive(Debug, PartialEq, Eq)]
struct Head {
    tip: u128,
    seq: Reverse<u64>,
    sender: Address,
    nonce: u64,
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        // Highest tip first, then earliest arrival. Sender and nonce only make the order total.
        (self.tip, self.seq, self.sender, Reverse(self.nonce)).cmp(&(
            other.tip,
            other.seq,
            other.sender,
            Reverse(other.nonce),
        ))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Iterator over the ready transactions for a block at a given base fee, best first.
/// Created by [`Pool::best`]; borrows the pool.
#[derive(Debug)]
pub struct BestTxs<'a> {
    pool: &'a Pool,
    base_fee: u64,
    heap: BinaryHeap<Head>,
    skipped: HashSet<Address>,
}

impl<'a> BestTxs<'a> {
    pub(super) fn new(pool: &'a Pool, base_fee: u64) -> Self {
        let mut heap = BinaryHeap::with_capacity(pool.senders.len());
        for (&sender, queue) in &pool.senders {
            if queue.pending_len == 0 {
                continue;
            }
            if let Some(head) = Self::head(pool, base_fee, sender, queue.state_nonce) {
                heap.push(head);
            }
        }
        Self {
            pool,
            base_fee,
            heap,
            skipped: HashSet::new(),
        }
    }

    fn head(pool: &Pool, base_fee: u64, sender: Address, nonce: u64) -> Option<Head> {
        let ptx = pool.senders.get(&sender)?.txs.get(&nonce)?;
        // A fee cap below the base fee blocks this nonce and therefore every later one.
        let tip = ptx.tx.effective_tip(base_fee)?;
        Some(Head {
            tip,
            seq: Reverse(ptx.seq),
            sender,
            nonce,
        })
    }

    /// Stops yielding transactions of `sender`: the builder calls this when one of its
    /// transactions failed, since the later nonces can no longer execute in this block.
    pub fn mark_invalid(&mut self, sender: Address) {
        self.skipped.insert(sender);
    }
}

impl Iterator for BestTxs<'_> {
    type Item = RecoveredTx;

    fn next(&mut self) -> Option<RecoveredTx> {
        loop {
            let head = self.heap.pop()?;
            if self.skipped.contains(&head.sender) {
                continue;
            }
            let tx = self
                .pool
                .senders
                .get(&head.sender)?
                .txs
                .get(&head.nonce)?
                .tx
                .clone();
            if let Some(next) = Self::head(self.pool, self.base_fee, head.sender, head.nonce + 1) {
                self.heap.push(next);
            }
            return Some(tx);
        }
    }
}
