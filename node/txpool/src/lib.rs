//! The transaction pool: the stateful half of transaction admission, and block ordering.
//!
//! Transactions arrive as [`RecoveredTx`], already decoded, stateless-checked and with their
//! sender recovered (see `bttd_runtime::tx`). The pool checks what needs account state (nonce,
//! balance), enforces limits, and orders what is ready for the next block.
//!
//! Why it looks like this:
//! - **Synchronous and I/O-free.** The pool takes account state through the small
//!   [`AccountView`] trait and returns results; it never broadcasts, logs to the network or
//!   spawns. The node owns the locking (one mutex around the pool), and the [`gossip`] task
//!   publishes every transaction that `add` accepted. That keeps it testable with plain values
//!   and keeps lock hold times to the microseconds the data-structure work takes.
//! - **Pending vs queued is derived from nonces.** Per sender a `BTreeMap<nonce, tx>`; a
//!   transaction is *pending* when it belongs to the gap-free run starting at the account's
//!   state nonce, *queued* otherwise. Filling a gap therefore promotes the queued tail with no
//!   bookkeeping beyond recomputing that run, and evicting or invalidating a transaction demotes
//!   its successors the same way.
//! - **Ordering is a k-way merge** over senders by effective tip at the block's base fee
//!   ([`Pool::best`]), the only order that respects per-sender nonces while putting the best
//!   payers first.
//! - **Limits are geth's legacy pool's** (`[txpool]` in node.toml, geth's `--txpool.*` names):
//!   an account's executable run may grow past `account-slots` while the pool has room; when
//!   executable transactions exceed `global-slots`, the accounts above `account-slots` are
//!   trimmed fairly (largest first, highest nonces first) down towards `account-slots`.
//!   Non-executable (queued) transactions are capped per account (`account-queue`) and in all
//!   (`global-queue`, trimmed from the accounts idle longest) and dropped after `lifetime`
//!   without activity. Memory is bounded by slots of 32 KiB, as geth counts them:
//!   `global-slots + global-queue` slots in all.
//! - **Evictions protect quality.** When the slots are full, a newcomer may evict another
//!   sender's cheapest transaction (queued ones first, by effective tip at the current base
//!   fee) only if it pays a strictly higher tip, so spam at the floor price cannot push out
//!   paying traffic, and a nonce-gapped (queued) newcomer cannot push out anything executable.
//! - Error messages are geth's (see [`PoolError`]) so existing clients react correctly.

mod best;
pub mod context;
pub mod devnet;
mod error;
pub mod gossip;
mod sender;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, U256};
use bttd_runtime::tx::RecoveredTx;

pub use best::BestTxs;
pub use error::PoolError;
use sender::{PoolTx, SenderQueue};

/// The account state the pool checks against: the latest committed (finalized) state.
pub trait AccountView {
    /// The next nonce the account must use.
    fn nonce(&self, address: Address) -> u64;
    /// The account's balance in wei.
    fn balance(&self, address: Address) -> U256;
}

/// Pool limits and policy: geth's legacy pool's, under its names (`--txpool.accountslots` ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Executable transactions an account is always allowed (more while the pool has room).
    pub account_slots: usize,
    /// Executable transactions in all before the accounts above `account_slots` are trimmed.
    pub global_slots: usize,
    /// Non-executable (queued) transactions per account.
    pub account_queue: usize,
    /// Non-executable transactions in all.
    pub global_queue: usize,
    /// Minimum percentage by which a replacement must raise both the fee cap and the tip.
    pub price_bump: u128,
    /// How long an account's queued transactions are kept without activity of the account.
    pub lifetime: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            account_slots: 16,
            global_slots: 5120,
            account_queue: 64,
            global_queue: 1024,
            price_bump: 10,
            lifetime: Duration::from_secs(3 * 3600),
        }
    }
}

impl PoolConfig {
    /// `bttd devnet`'s limits: ten times the defaults (a test suite's bursts), same policy.
    pub fn devnet() -> Self {
        let d = Self::default();
        Self {
            account_slots: d.account_slots * 10,
            global_slots: d.global_slots * 10,
            account_queue: d.account_queue * 10,
            global_queue: d.global_queue * 10,
            ..d
        }
    }

    /// Slots of [`SLOT_BYTES`] the pool may hold in all.
    pub fn max_slots(&self) -> usize {
        self.global_slots.saturating_add(self.global_queue)
    }
}

/// Counts transactions that left the pool unmined (`bttd_pool_evicted_total{reason}`):
/// `room` for a newcomer, `limits` over a limit after a block, `unaffordable`, `invalid` at
/// execution, `lifetime`.
fn count_evicted(reason: &'static str, count: usize) {
    if count > 0 {
        metrics::counter!("bttd_pool_evicted_total", "reason" => reason).increment(count as u64);
    }
}

/// geth's unit of pool memory: a transaction takes one slot per started 32 KiB.
pub const SLOT_BYTES: usize = 32 * 1024;

/// Slots a transaction of `size` encoded bytes takes.
fn slots(size: usize) -> usize {
    size.div_ceil(SLOT_BYTES).max(1)
}

/// What happened to an accepted transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// Executable now: its nonce continues the sender's gap-free run.
    Pending,
    /// Waiting for a lower nonce to arrive.
    Queued,
    /// Took the place of the transaction `old` (same sender and nonce); `pending` tells which
    /// side of the gap it is on.
    Replaced { old: B256, pending: bool },
}

/// Counts for `txpool_status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    pub pending: usize,
    pub queued: usize,
}

/// Snapshot for `txpool_content`: per sender, by nonce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolContent {
    pub pending: BTreeMap<Address, BTreeMap<u64, RecoveredTx>>,
    pub queued: BTreeMap<Address, BTreeMap<u64, RecoveredTx>>,
}

/// The transaction pool. Not thread-safe by itself: wrap it in a mutex.
#[derive(Debug)]
pub struct Pool {
    cfg: PoolConfig,
    senders: HashMap<Address, SenderQueue>,
    by_hash: HashMap<B256, (Address, u64)>,
    /// Sum of the encoded sizes of all pooled transactions.
    bytes: usize,
    /// Sum of the slots of all pooled transactions.
    slots: usize,
    /// Sum of `pending_len` over all senders.
    pending: usize,
    next_seq: u64,
    /// The base fee of the next block: evictions compare effective tips at it.
    base_fee: u64,
}

impl Pool {
    pub fn new(cfg: PoolConfig) -> Self {
        Self {
            cfg,
            senders: HashMap::new(),
            by_hash: HashMap::new(),
            bytes: 0,
            slots: 0,
            pending: 0,
            next_seq: 0,
            base_fee: 0,
        }
    }

    pub fn config(&self) -> &PoolConfig {
        &self.cfg
    }

    /// Number of transactions in the pool.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Encoded bytes held by the pool.
    pub fn size_bytes(&self) -> usize {
        self.bytes
    }

    /// Records the base fee of the next block (after each block): evictions rank by the
    /// effective tip at it.
    pub fn set_base_fee(&mut self, base_fee: u64) {
        self.base_fee = base_fee;
    }

    /// Admits a transaction after the stateful checks. `min_base_fee` is the lowest base fee
    /// the chain can ever have: a fee cap below it can never be included.
    ///
    /// On `Ok` the transaction entered the pool (pending or queued) and the caller should
    /// announce its hash to peers and subscribers, exactly once. On `Err` nothing changed.
    pub fn add(
        &mut self,
        tx: RecoveredTx,
        state: &impl AccountView,
        min_base_fee: u64,
    ) -> Result<AddOutcome, PoolError> {
        self.add_at(tx, state, min_base_fee, Instant::now())
    }

    /// [`Pool::add`] at a given time (the account's activity time, for `lifetime`).
    pub fn add_at(
        &mut self,
        tx: RecoveredTx,
        state: &impl AccountView,
        min_base_fee: u64,
        now: Instant,
    ) -> Result<AddOutcome, PoolError> {
        let hash = tx.hash();
        if self.by_hash.contains_key(&hash) {
            return Err(PoolError::AlreadyKnown);
        }
        if tx.max_fee_per_gas() < u128::from(min_base_fee) {
            return Err(PoolError::Underpriced {
                fee_cap: tx.max_fee_per_gas(),
                minimum: min_base_fee,
            });
        }
        let sender = tx.sender();
        let nonce = tx.nonce();
        let next = state.nonce(sender);
        // The state may have moved since the last `on_new_state`: drop what it made stale so
        // the checks below see the sender's true pending run.
        self.set_state_nonce(sender, next);
        if nonce < next {
            return Err(PoolError::NonceTooLow { next, nonce });
        }

        let queue = self.senders.get(&sender);
        let old = queue.and_then(|q| q.txs.get(&nonce));
        if let Some(old) = old {
            let bump = self.cfg.price_bump.saturating_add(100);
            let need_cap = bumped(old.tx.max_fee_per_gas(), bump);
            let need_tip = bumped(old.tx.max_priority_fee_per_gas(), bump);
            if U256::from(tx.max_fee_per_gas()) < need_cap
                || U256::from(tx.max_priority_fee_per_gas()) < need_tip
            {
                return Err(PoolError::ReplacementUnderpriced);
            }
        }

        // The sender must afford this transaction after its lower nonces in the pool, which
        // execute first.
        let balance = state.balance(sender);
        let cost = tx.max_cost();
        let queued_cost = queue.map_or(Some(U256::ZERO), |q| {
            q.txs
                .range(next..nonce)
                .try_fold(U256::ZERO, |spent, (_, p)| add_cost(spent, &p.tx))
        });
        if queued_cost
            .and_then(|queued| add_cost(queued, &tx))
            .is_none_or(|total| total > balance)
        {
            // A sum beyond 256 bits exceeds every balance; the message shows it saturated.
            let queued_cost = queued_cost.unwrap_or(U256::MAX);
            return Err(if queued_cost.is_zero() {
                PoolError::InsufficientFunds { balance, cost }
            } else {
                PoolError::InsufficientFundsWithQueued {
                    balance,
                    queued_cost,
                    cost,
                }
            });
        }

        // Room: every transaction that has to go for this one, decided before anything moves.
        let victims = self.make_room(&tx, next)?;

        // Every check passed: mutate.
        let old_hash = old.map(|o| o.tx.hash());
        count_evicted("room", victims.len());
        let mut touched: Vec<Address> = victims.iter().map(|(s, _)| *s).collect();
        for (victim_sender, victim_nonce) in victims {
            self.take(victim_sender, victim_nonce);
        }
        if old_hash.is_some() {
            self.take(sender, nonce);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += tx.size();
        self.slots += slots(tx.size());
        self.by_hash.insert(hash, (sender, nonce));
        let queue = self
            .senders
            .entry(sender)
            .or_insert_with(|| SenderQueue::new(next, now));
        queue.heartbeat = now;
        queue.txs.insert(nonce, PoolTx { tx, seq });
        touched.push(sender);
        touched.sort_unstable();
        touched.dedup();
        for s in touched {
            self.refresh(s);
        }
        let pending = self
            .senders
            .get(&sender)
            .is_some_and(|q| q.is_pending(nonce));
        Ok(match (old_hash, pending) {
            (Some(old), pending) => AddOutcome::Replaced { old, pending },
            (None, true) => AddOutcome::Pending,
            (None, false) => AddOutcome::Queued,
        })
    }

    /// What has to leave the pool for `tx` (from the sender whose state nonce is `next`) to
    /// enter, checking every limit against the pool as it will be; `Err` if `tx` itself
    /// would be the one to go. Nothing is changed here.
    fn make_room(&self, tx: &RecoveredTx, next: u64) -> Result<Vec<(Address, u64)>, PoolError> {
        let sender = tx.sender();
        let nonce = tx.nonce();
        let queue = self.senders.get(&sender);
        let old = queue.and_then(|q| q.txs.get(&nonce));
        let mut victims: Vec<(Address, u64)> = Vec::new();

        // Memory: slots of 32 KiB. A pending newcomer may evict anything cheaper of other
        // senders, a queued one only cheaper queued transactions.
        let run_before = queue.map_or(0, |q| q.pending_len);
        let will_be_pending = nonce - next <= run_before as u64;
        let old_slots = old.map_or(0, |o| slots(o.tx.size()));
        let mut slots_after = self.slots - old_slots + slots(tx.size());
        if slots_after > self.cfg.max_slots() {
            let base_fee = self.base_fee;
            let new_tip = tx.effective_tip(base_fee).unwrap_or(0);
            while slots_after > self.cfg.max_slots() {
                let (victim, size) = self
                    .cheapest_victim(sender, will_be_pending, new_tip, base_fee, &victims)
                    .ok_or(PoolError::PoolFull)?;
                slots_after -= slots(size);
                victims.push(victim);
            }
        }
        if old.is_some() {
            // Same nonce, same place in the run: no count changes.
            return Ok(victims);
        }

        // Executable transactions per account, as they will be: a victim cuts its account's
        // run at its nonce; the newcomer extends the sender's run (through any queued nonces
        // it joins) when it continues it.
        let mut runs: HashMap<Address, usize> = HashMap::new();
        for &(account, victim_nonce) in &victims {
            if let Some(q) = self.senders.get(&account) {
                let cut = usize::try_from(victim_nonce - q.state_nonce).unwrap_or(usize::MAX);
                let run = runs.entry(account).or_insert(q.pending_len);
                *run = (*run).min(cut);
            }
        }
        let run_after = if will_be_pending {
            let following = queue.map_or(0, |q| {
                q.txs
                    .range(nonce + 1..)
                    .map(|(n, _)| *n)
                    .zip(nonce + 1..)
                    .take_while(|(n, expected)| n == expected)
                    .count()
            });
            run_before + 1 + following
        } else {
            run_before
        };
        runs.insert(sender, run_after);
        let pending_after = runs.iter().fold(self.pending, |total, (account, run)| {
            let before = self.senders.get(account).map_or(0, |q| q.pending_len);
            total - before + run
        });

        // Too many executable transactions: an account within its `account_slots` makes
        // room by trimming the accounts above theirs, the largest first, from their highest
        // nonces. A newcomer that would take its account above its slots is refused instead:
        // transactions already accepted never give way to one that is no more entitled
        // (geth trims them and accepts the newcomer; the senders of the trimmed ones are then
        // stuck behind a gap they do not know of).
        if pending_after > self.cfg.global_slots {
            if will_be_pending && run_after > self.cfg.account_slots {
                return Err(PoolError::PoolFull);
            }
            let trimmed = self.trim_plan(&runs, pending_after - self.cfg.global_slots);
            for (account, cut) in trimmed {
                let queue = self.senders.get(&account);
                let run = runs
                    .get(&account)
                    .copied()
                    .unwrap_or_else(|| queue.map_or(0, |q| q.pending_len));
                let state_nonce = queue.map_or(next, |q| q.state_nonce);
                let keep = run - cut;
                if account == sender && (nonce - next) >= keep as u64 {
                    return Err(PoolError::PoolFull);
                }
                for offset in keep..run {
                    victims.push((account, state_nonce + offset as u64));
                }
                runs.insert(account, keep);
            }
        }

        // Queued transactions: the newcomer's account keeps at most `account_queue` (its
        // highest nonces go first), and all accounts together at most `global_queue` (the
        // accounts idle longest lose theirs first).
        if !will_be_pending {
            let queued_mine: Vec<u64> = queue.map_or_else(Vec::new, |q| {
                q.txs
                    .keys()
                    .copied()
                    .filter(|n| !q.is_pending(*n))
                    .chain(std::iter::once(nonce))
                    .collect()
            });
            if queued_mine.len() > self.cfg.account_queue {
                let mut sorted = queued_mine;
                sorted.sort_unstable();
                let over = sorted.split_off(self.cfg.account_queue);
                if over.contains(&nonce) {
                    return Err(PoolError::AccountQueueFull {
                        limit: self.cfg.account_queue,
                    });
                }
                victims.extend(over.into_iter().map(|n| (sender, n)));
            }
        }
        let queued_after = {
            let count_after = self.by_hash.len() + 1 - victims.len();
            let pending_now: usize = runs.values().sum::<usize>()
                + (self.pending
                    - runs
                        .keys()
                        .map(|a| self.senders.get(a).map_or(0, |q| q.pending_len))
                        .sum::<usize>());
            count_after.saturating_sub(pending_now)
        };
        if queued_after > self.cfg.global_queue {
            let over = queued_after - self.cfg.global_queue;
            if self.idle_queued(over, Some(sender), &runs, &mut victims) > 0 {
                return Err(PoolError::PoolFull);
            }
        }
        Ok(victims)
    }

    /// Adds to `victims` up to `over` queued transactions, from the accounts idle longest
    /// (highest nonces first), never of `exclude`; `runs` overrides accounts' executable
    /// runs as they will be. Returns how many it could not find.
    fn idle_queued(
        &self,
        mut over: usize,
        exclude: Option<Address>,
        runs: &HashMap<Address, usize>,
        victims: &mut Vec<(Address, u64)>,
    ) -> usize {
        let mut idle: Vec<(&Address, &SenderQueue)> = self
            .senders
            .iter()
            .filter(|(a, _)| Some(**a) != exclude)
            .collect();
        idle.sort_by_key(|(a, q)| (q.heartbeat, **a));
        for (&account, q) in idle {
            let run = runs.get(&account).copied().unwrap_or(q.pending_len);
            for &n in q.txs.keys().rev() {
                if over == 0 {
                    return 0;
                }
                let index = usize::try_from(n - q.state_nonce).unwrap_or(usize::MAX);
                if index < run || victims.contains(&(account, n)) {
                    continue;
                }
                victims.push((account, n));
                over -= 1;
            }
        }
        over
    }

    /// The limits again after a block or an invalidation moved transactions between
    /// executable and queued (geth truncates after promoting, too): executable ones over
    /// `global-slots` trimmed fairly, queued ones over `account-queue` or `global-queue`
    /// dropped.
    fn enforce_limits(&mut self) {
        let no_change = HashMap::new();
        let mut victims: Vec<(Address, u64)> = Vec::new();
        if self.pending > self.cfg.global_slots {
            for (account, cut) in self.trim_plan(&no_change, self.pending - self.cfg.global_slots) {
                if let Some(q) = self.senders.get(&account) {
                    let run = q.pending_len;
                    victims.extend((run - cut..run).map(|i| (account, q.state_nonce + i as u64)));
                }
            }
        }
        let mut capped = 0;
        for (&account, q) in &self.senders {
            let queued = q.txs.keys().copied().filter(|n| !q.is_pending(*n));
            let over: Vec<u64> = queued.skip(self.cfg.account_queue).collect();
            capped += over.len();
            victims.extend(over.into_iter().map(|n| (account, n)));
        }
        let queued = self.by_hash.len() - self.pending - capped;
        if queued > self.cfg.global_queue {
            self.idle_queued(
                queued - self.cfg.global_queue,
                None,
                &no_change,
                &mut victims,
            );
        }
        if victims.is_empty() {
            return;
        }
        count_evicted("limits", victims.len());
        let mut touched: Vec<Address> = victims.iter().map(|(a, _)| *a).collect();
        for (account, nonce) in victims {
            self.take(account, nonce);
        }
        touched.sort_unstable();
        touched.dedup();
        for account in touched {
            self.refresh(account);
        }
    }

    /// How many of their highest executable transactions the accounts above `account_slots`
    /// lose so that `excess` fewer remain: always from the largest run (ties: the lowest
    /// address), never below `account_slots`. Returns (account, count) pairs.
    fn trim_plan(&self, runs: &HashMap<Address, usize>, excess: usize) -> Vec<(Address, usize)> {
        let run_of = |account: &Address, q: &SenderQueue| {
            runs.get(account).copied().unwrap_or(q.pending_len)
        };
        let mut heap: BinaryHeap<(usize, std::cmp::Reverse<Address>)> = self
            .senders
            .iter()
            .map(|(a, q)| (run_of(a, q), std::cmp::Reverse(*a)))
            .chain(
                runs.iter()
                    .filter(|(a, _)| !self.senders.contains_key(*a))
                    .map(|(a, run)| (*run, std::cmp::Reverse(*a))),
            )
            .filter(|(run, _)| *run > self.cfg.account_slots)
            .collect();
        let mut cuts: HashMap<Address, usize> = HashMap::new();
        let mut left = excess;
        while left > 0 {
            let Some((run, std::cmp::Reverse(account))) = heap.pop() else {
                break;
            };
            *cuts.entry(account).or_default() += 1;
            left -= 1;
            if run - 1 > self.cfg.account_slots {
                heap.push((run - 1, std::cmp::Reverse(account)));
            }
        }
        cuts.into_iter().collect()
    }

    /// Drops the queued transactions of accounts without activity for `lifetime` (geth's
    /// `--txpool.lifetime`; executable ones stay). Returns how many went.
    pub fn evict_stale(&mut self, now: Instant) -> usize {
        let lifetime = self.cfg.lifetime;
        let stale: Vec<(Address, u64)> = self
            .senders
            .iter()
            .filter(|(_, q)| now.saturating_duration_since(q.heartbeat) > lifetime)
            .flat_map(|(a, q)| {
                q.txs
                    .keys()
                    .filter(|n| !q.is_pending(**n))
                    .map(move |n| (*a, *n))
            })
            .collect();
        let mut touched: Vec<Address> = stale.iter().map(|(a, _)| *a).collect();
        for &(account, nonce) in &stale {
            self.take(account, nonce);
        }
        touched.dedup();
        for account in touched {
            self.refresh(account);
        }
        count_evicted("lifetime", stale.len());
        stale.len()
    }

    /// The cheapest transaction of a sender other than `exclude` that a newcomer paying
    /// `new_tip` may evict: queued before pending, then lowest tip, then latest arrival.
    /// Pending ones qualify only when `allow_pending`. Returns it with its size.
    fn cheapest_victim(
        &self,
        exclude: Address,
        allow_pending: bool,
        new_tip: u128,
        min_base_fee: u64,
        already: &[(Address, u64)],
    ) -> Option<((Address, u64), usize)> {
        // Eviction rank: queued (false) before pending, lowest tip, newest arrival.
        type Rank = (bool, u128, Reverse<u64>);
        let mut best: Option<(Rank, (Address, u64), usize)> = None;
        for (&sender, queue) in &self.senders {
            if sender == exclude {
                continue;
            }
            for (&nonce, ptx) in &queue.txs {
                let pending = queue.is_pending(nonce);
                if pending && !allow_pending {
                    continue;
                }
                let tip = ptx.tx.effective_tip(min_base_fee).unwrap_or(0);
                if tip >= new_tip {
                    continue;
                }
                let rank = (pending, tip, Reverse(ptx.seq));
                if best.as_ref().is_some_and(|(r, _, _)| *r <= rank) {
                    continue;
                }
                if already.contains(&(sender, nonce)) {
                    continue;
                }
                best = Some((rank, (sender, nonce), ptx.tx.size()));
            }
        }
        best.map(|(_, id, size)| (id, size))
    }

    /// Ready transactions for a block at `base_fee`, best first: per sender strictly in nonce
    /// order from the state nonce with no gaps; across senders by highest effective tip, ties
    /// by arrival. A transaction whose fee cap is below `base_fee` is skipped together with its
    /// sender's later nonces.
    pub fn best(&self, base_fee: u64) -> BestTxs<'_> {
        BestTxs::new(self, base_fee)
    }

    /// After a block is committed: drops transactions whose nonce the state has used, drops
    /// transactions the sender can no longer afford on their own (their successors become
    /// queued), and promotes queued transactions whose gap the block filled. Looks up every
    /// sender in the pool; see [`Pool::on_new_state_for`] to limit that to touched accounts.
    pub fn on_new_state(&mut self, state: &impl AccountView) {
        let senders: Vec<Address> = self.senders.keys().copied().collect();
        self.on_new_state_for(state, senders);
    }

    /// [`Pool::on_new_state`] for the given senders only (for example the senders of the
    /// block's transactions: only they can have a new nonce or a lower balance).
    pub fn on_new_state_for(
        &mut self,
        state: &impl AccountView,
        senders: impl IntoIterator<Item = Address>,
    ) {
        for sender in senders {
            if !self.senders.contains_key(&sender) {
                continue;
            }
            self.set_state_nonce(sender, state.nonce(sender));
            // Admission's rule again, in nonce order: each transaction together with the
            // sender's lower nonces kept so far. One that no longer fits goes; the later ones
            // are then counted without it (and wait, queued, behind the gap).
            let balance = state.balance(sender);
            let unaffordable: Vec<u64> = self.senders.get(&sender).map_or_else(Vec::new, |q| {
                let mut spent = U256::ZERO;
                let mut drop = Vec::new();
                for (&nonce, p) in &q.txs {
                    match add_cost(spent, &p.tx) {
                        Some(total) if total <= balance => spent = total,
                        _ => drop.push(nonce),
                    }
                }
                drop
            });
            count_evicted("unaffordable", unaffordable.len());
            for nonce in unaffordable {
                self.take(sender, nonce);
            }
            self.refresh(sender);
        }
        self.enforce_limits();
    }

    /// Removes transactions the block builder found invalid at execution, together with their
    /// sender's later nonces (which depend on them). Returns every removed hash.
    pub fn remove_invalid(&mut self, hashes: &[B256]) -> Vec<B256> {
        let mut removed = Vec::new();
        for hash in hashes {
            let Some(&(sender, nonce)) = self.by_hash.get(hash) else {
                continue;
            };
            let Some(queue) = self.senders.get_mut(&sender) else {
                continue;
            };
            let tail = queue.txs.split_off(&nonce);
            for ptx in tail.into_values() {
                let h = ptx.tx.hash();
                self.by_hash.remove(&h);
                self.bytes -= ptx.tx.size();
                self.slots -= slots(ptx.tx.size());
                removed.push(h);
            }
            self.refresh(sender);
        }
        count_evicted("invalid", removed.len());
        self.enforce_limits();
        removed
    }

    pub fn get(&self, hash: &B256) -> Option<RecoveredTx> {
        let (sender, nonce) = self.by_hash.get(hash)?;
        Some(self.senders.get(sender)?.txs.get(nonce)?.tx.clone())
    }

    pub fn contains(&self, hash: &B256) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// The nonce for the "pending" block tag: `state_nonce` extended by the sender's gap-free
    /// run of pooled transactions starting there.
    pub fn pending_nonce(&self, sender: Address, state_nonce: u64) -> u64 {
        let mut next = state_nonce;
        if let Some(queue) = self.senders.get(&sender) {
            for &nonce in queue.txs.range(state_nonce..).map(|(n, _)| n) {
                if nonce != next {
                    break;
                }
                next += 1;
            }
        }
        next
    }

    /// Counts for `txpool_status`.
    pub fn status(&self) -> PoolStatus {
        PoolStatus {
            pending: self.pending,
            queued: self.by_hash.len() - self.pending,
        }
    }

    /// Every transaction, split into pending and queued, per sender, by nonce.
    pub fn content(&self) -> PoolContent {
        let mut content = PoolContent::default();
        for (&sender, queue) in &self.senders {
            for (&nonce, ptx) in &queue.txs {
                let side = if queue.is_pending(nonce) {
                    &mut content.pending
                } else {
                    &mut content.queued
                };
                side.entry(sender)
                    .or_default()
                    .insert(nonce, ptx.tx.clone());
            }
        }
        content
    }

    /// Records the account's state nonce and drops the transactions below it.
    fn set_state_nonce(&mut self, sender: Address, state_nonce: u64) {
        let Some(queue) = self.senders.get_mut(&sender) else {
            return;
        };
        if queue.state_nonce == state_nonce {
            return;
        }
        queue.state_nonce = state_nonce;
        let kept = queue.txs.split_off(&state_nonce);
        let stale = std::mem::replace(&mut queue.txs, kept);
        for ptx in stale.into_values() {
            self.by_hash.remove(&ptx.tx.hash());
            self.bytes -= ptx.tx.size();
            self.slots -= slots(ptx.tx.size());
        }
        self.refresh(sender);
    }

    /// Removes one transaction from the indexes. The caller must `refresh` the sender.
    fn take(&mut self, sender: Address, nonce: u64) -> Option<PoolTx> {
        let ptx = self.senders.get_mut(&sender)?.txs.remove(&nonce)?;
        self.by_hash.remove(&ptx.tx.hash());
        self.bytes -= ptx.tx.size();
        self.slots -= slots(ptx.tx.size());
        Some(ptx)
    }

    /// Recomputes a sender's pending run and the global pending count; forgets empty senders.
    fn refresh(&mut self, sender: Address) {
        let Some(queue) = self.senders.get_mut(&sender) else {
            return;
        };
        let before = queue.pending_len;
        queue.recompute();
        self.pending = self.pending - before + queue.pending_len;
        if queue.txs.is_empty() {
            self.senders.remove(&sender);
        }
    }

    /// Checks the internal counters against a full recount (tests only).
    #[cfg(test)]
    fn assert_consistent(&self) {
        let count: usize = self.senders.values().map(|q| q.txs.len()).sum();
        assert_eq!(count, self.by_hash.len());
        let bytes: usize = self
            .senders
            .values()
            .flat_map(|q| q.txs.values())
            .map(|p| p.tx.size())
            .sum();
        assert_eq!(bytes, self.bytes);
        let used: usize = self
            .senders
            .values()
            .flat_map(|q| q.txs.values())
            .map(|p| slots(p.tx.size()))
            .sum();
        assert_eq!(used, self.slots);
        let pending: usize = self.senders.values().map(|q| q.pending_len).sum();
        assert_eq!(pending, self.pending);
        let queued: usize = self.senders.values().map(|q| q.queued_len()).sum();
        assert_eq!(pending + queued, count);
        for (sender, queue) in &self.senders {
            assert!(!queue.txs.is_empty());
            for (nonce, ptx) in &queue.txs {
                assert_eq!(self.by_hash.get(&ptx.tx.hash()), Some(&(*sender, *nonce)));
            }
        }
    }
}

/// `spent` plus the transaction's `gas * maxFee + value`, or None beyond 256 bits (more than
/// any balance). The one cost function of the pool: admission sums a sender's lower nonces and
/// the newcomer with it, and the re-check after each block walks the sender's transactions
/// with it, so both apply the same rule. Checked, because ruint's `+` wraps and a wrapped sum
/// would let a transaction costing 2^256 wei in for free.
fn add_cost(spent: U256, tx: &RecoveredTx) -> Option<U256> {
    spent.checked_add(tx.max_cost())
}

/// `fee * bump / 100`, exact (the product of two u128 fits in 256 bits).
fn bumped(fee: u128, bump: u128) -> U256 {
    U256::from(fee)
        .checked_mul(U256::from(bump))
        .map_or(U256::MAX, |p| p / U256::from(100))
}

#[cfg(test)]
mod tests;
