//! One sender's transactions, keyed by nonce. Pending and queued are not separate containers:
//! a transaction is pending exactly when it belongs to the gap-free run starting at the
//! account's state nonce, so the split is derived from the nonces and can never disagree with
//! them. The run length is cached because it is read on every add and every status query.

use std::collections::BTreeMap;
use std::time::Instant;

use bttd_runtime::tx::RecoveredTx;

/// A pooled transaction and its arrival sequence number (ties in ordering go to the earlier).
#[derive(Debug, Clone)]
pub(super) struct PoolTx {
    pub(super) tx: RecoveredTx,
    pub(super) seq: u64,
}

#[derive(Debug)]
pub(super) struct SenderQueue {
    pub(super) txs: BTreeMap<u64, PoolTx>,
    /// The account nonce last seen in state; no transaction below it is kept.
    pub(super) state_nonce: u64,
    /// Length of the gap-free run of nonces starting at `state_nonce`.
    pub(super) pending_len: usize,
    /// When the account last added a transaction (its queued ones expire `lifetime` after).
    pub(super) heartbeat: Instant,
}

impl SenderQueue {
    pub(super) fn new(state_nonce: u64, heartbeat: Instant) -> Self {
        Self {
            txs: BTreeMap::new(),
            state_nonce,
            pending_len: 0,
            heartbeat,
        }
    }

    /// Recomputes the pending run after any change of nonces or of the state nonce.
    pub(super) fn recompute(&mut self) {
        self.pending_len = self
            .txs
            .range(self.state_nonce..)
            .map(|(nonce, _)| *nonce)
            .zip(self.state_nonce..)
            .take_while(|(nonce, expected)| nonce == expected)
            .count();
    }

    pub(super) fn is_pending(&self, nonce: u64) -> bool {
        nonce >= self.state_nonce && nonce - self.state_nonce < self.pending_len as u64
    }

    #[cfg(test)]
    pub(super) fn queued_len(&self) -> usize {
        self.txs.len() - self.pending_len
    }
}
