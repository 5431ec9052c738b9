//! Pool tests on really signed transactions (so senders, hashes and sizes are the real ones).

use std::collections::HashMap;
use std::time::Instant;

use alloy_consensus::crypto::secp256k1::sign_message;
use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope, TxLegacy};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, U512};
use alloy_signer_local::PrivateKeySigner;
use bttd_runtime::tx::RecoveredTx;

use super::*;

const CHAIN: u64 = 1337;
const GAS: u64 = 21_000;

#[derive(Clone, Copy)]
struct Acct {
    key: B256,
    addr: Address,
}

fn acct(i: u64) -> Acct {
    let key = B256::from(U256::from(i + 1).to_be_bytes::<32>());
    let addr = PrivateKeySigner::from_bytes(&key)
        .expect("valid key")
        .address();
    Acct { key, addr }
}

fn eip1559(a: Acct, nonce: u64, max_fee: u128, tip: u128) -> RecoveredTx {
    let tx = TxEip1559 {
        chain_id: CHAIN,
        nonce,
        gas_limit: GAS,
        max_fee_per_gas: max_fee,
        max_priority_fee_per_gas: tip,
        to: TxKind::Call(Address::repeat_byte(0x42)),
        value: U256::from(1),
        access_list: Default::default(),
        input: Bytes::new(),
    };
    let sig = sign_message(a.key, tx.signature_hash()).expect("sign");
    let env: TxEnvelope = tx.into_signed(sig).into();
    let rtx = RecoveredTx::from_envelope(env, CHAIN, 30_000_000).expect("valid tx");
    assert_eq!(rtx.sender(), a.addr);
    rtx
}

fn legacy(a: Acct, nonce: u64, gas_price: u128) -> RecoveredTx {
    let tx = TxLegacy {
        chain_id: Some(CHAIN),
        nonce,
        gas_price,
        gas_limit: GAS,
        to: TxKind::Call(Address::repeat_byte(0x42)),
        value: U256::from(1),
        input: Bytes::new(),
    };
    let sig = sign_message(a.key, tx.signature_hash()).expect("sign");
    let env: TxEnvelope = tx.into_signed(sig).into();
    RecoveredTx::from_envelope(env, CHAIN, 30_000_000).expect("valid tx")
}

/// Account state for tests: unknown accounts have nonce 0 and plenty of funds.
#[derive(Default)]
struct State(HashMap<Address, (u64, U256)>);

impl State {
    fn set(&mut self, a: Acct, nonce: u64, balance: U256) {
        self.0.insert(a.addr, (nonce, balance));
    }
    fn set_nonce(&mut self, a: Acct, nonce: u64) {
        self.0.entry(a.addr).or_insert((0, rich())).0 = nonce;
    }
}

fn rich() -> U256 {
    U256::from(10u128.pow(30))
}

impl AccountView for State {
    fn nonce(&self, a: Address) -> u64 {
        self.0.get(&a).map_or(0, |e| e.0)
    }
    fn balance(&self, a: Address) -> U256 {
        self.0.get(&a).map_or_else(rich, |e| e.1)
    }
}

fn pool() -> Pool {
    Pool::new(PoolConfig::default())
}

fn pool_with(f: impl FnOnce(&mut PoolConfig)) -> Pool {
    let mut cfg = PoolConfig::default();
    f(&mut cfg);
    Pool::new(cfg)
}

/// A pool of `total` slots whose per-account limits never bind, so eviction alone decides:
/// one executable slot (trimming never applies, every account is within `account_slots`)
/// and the rest for queued transactions.
fn pool_of(total: usize) -> Pool {
    pool_with(|c| {
        c.account_slots = 1_000;
        c.global_slots = 1;
        c.account_queue = 1_000;
        c.global_queue = total - 1;
    })
}

fn hashes(txs: impl IntoIterator<Item = RecoveredTx>) -> Vec<B256> {
    txs.into_iter().map(|t| t.hash()).collect()
}

const MIN_BASE: u64 = 7;

#[test]
fn best_orders_by_tip_across_senders_and_by_nonce_within() {
    let (a, b) = (acct(1), acct(2));
    let st = State::default();
    let mut p = pool();
    let a0 = eip1559(a, 0, 100, 5);
    let a1 = eip1559(a, 1, 100, 1);
    let a2 = eip1559(a, 2, 100, 9);
    let b0 = eip1559(b, 0, 100, 3);
    let b1 = eip1559(b, 1, 100, 3);
    // Arrive out of order: the high nonces wait in the queue until the gap fills.
    assert_eq!(p.add(a2.clone(), &st, MIN_BASE), Ok(AddOutcome::Queued));
    assert_eq!(p.add(b1.clone(), &st, MIN_BASE), Ok(AddOutcome::Queued));
    assert_eq!(p.add(a1.clone(), &st, MIN_BASE), Ok(AddOutcome::Queued));
    assert_eq!(p.add(b0.clone(), &st, MIN_BASE), Ok(AddOutcome::Pending));
    assert_eq!(p.add(a0.clone(), &st, MIN_BASE), Ok(AddOutcome::Pending));
    p.assert_consistent();
    assert_eq!(
        p.status(),
        PoolStatus {
            pending: 5,
            queued: 0
        }
    );

    // base fee 10, fee caps 100: effective tip = tip. a0(5) > b0(3); then b0(3) > a1(1);
    // then b1(3) > a1(1); then a1 and finally a2, whose high tip cannot jump its nonce.
    let order = hashes(p.best(10));
    assert_eq!(order, hashes([a0, b0, b1, a1, a2]));
}

#[test]
fn best_breaks_tip_ties_by_arrival() {
    let (a, b, c) = (acct(1), acct(2), acct(3));
    let st = State::default();
    let mut p = pool();
    let b0 = eip1559(b, 0, 100, 4);
    let c0 = eip1559(c, 0, 100, 4);
    let a0 = eip1559(a, 0, 100, 4);
    for t in [b0.clone(), c0.clone(), a0.clone()] {
        p.add(t, &st, MIN_BASE).unwrap();
    }
    assert_eq!(hashes(p.best(10)), hashes([b0, c0, a0]));
}

#[test]
fn effective_tip_is_capped_by_fee_cap() {
    // At base fee 95, a (cap 100, tip 50) pays only 5; b (cap 200, tip 6) pays 6.
    let (a, b) = (acct(1), acct(2));
    let st = State::default();
    let mut p = pool();
    let a0 = eip1559(a, 0, 100, 50);
    let b0 = eip1559(b, 0, 200, 6);
    p.add(a0.clone(), &st, MIN_BASE).unwrap();
    p.add(b0.clone(), &st, MIN_BASE).unwrap();
    assert_eq!(hashes(p.best(95)), hashes([b0.clone(), a0.clone()]));
    assert_eq!(hashes(p.best(10)), hashes([a0, b0]));
}

#[test]
fn future_nonce_is_queued_then_promoted() {
    let a = acct(1);
    let st = State::default();
    let mut p = pool();
    let t2 = eip1559(a, 2, 100, 1);
    let t1 = eip1559(a, 1, 100, 1);
    let t0 = eip1559(a, 0, 100, 1);
    assert_eq!(p.add(t2.clone(), &st, MIN_BASE), Ok(AddOutcome::Queued));
    assert_eq!(p.add(t1.clone(), &st, MIN_BASE), Ok(AddOutcome::Queued));
    assert_eq!(
        p.status(),
        PoolStatus {
            pending: 0,
            queued: 2
        }
    );
    assert_eq!(p.best(10).count(), 0, "queued transactions are not ready");
    assert_eq!(p.pending_nonce(a.addr, 0), 0);
    let content = p.content();
    assert!(content.pending.is_empty());
    assert_eq!(
        content.queued[&a.addr].keys().copied().collect::<Vec<_>>(),
        vec![1, 2]
    );

    assert_eq!(p.add(t0.clone(), &st, MIN_BASE), Ok(AddOutcome::Pending));
    assert_eq!(
        p.status(),
        PoolStatus {
            pending: 3,
            queued: 0
        }
    );
    assert_eq!(p.pending_nonce(a.addr, 0), 3);
    assert_eq!(hashes(p.best(10)), hashes([t0, t1, t2]));
    let content = p.content();
    assert!(content.queued.is_empty());
    assert_eq!(content.pending[&a.addr].len(), 3);
    p.assert_consistent();
}

#[test]
fn replacement_needs_bump_on_fee_cap_and_tip() {
    let a = acct(1);
    let st = State::default();
    let mut p = pool();
    let orig = eip1559(a, 0, 100, 10);
    p.add(orig.clone(), &st, MIN_BASE).unwrap();

    // 9% on the cap, 10% on the tip: refused.
    let err = p.add(eip1559(a, 0, 109, 11), &st, MIN_BASE).unwrap_err();
    assert_eq!(err, PoolError::ReplacementUnderpriced);
    assert_eq!(err.to_string(), "replacement transaction underpriced");
    // 10% on the cap, 0% on the tip: refused.
    assert_eq!(
        p.add(eip1559(a, 0, 110, 10), &st, MIN_BASE),
        Err(PoolError::ReplacementUnderpriced)
    );
    assert!(p.contains(&orig.hash()));

    // Exactly 10% on both: accepted.
    let repl = eip1559(a, 0, 110, 11);
    assert_eq!(
        p.add(repl.clone(), &st, MIN_BASE),
        Ok(AddOutcome::Replaced {
            old: orig.hash(),
            pending: true
        })
    );
    assert!(!p.contains(&orig.hash()));
    assert_eq!(p.get(&repl.hash()), Some(repl.clone()));
    assert_eq!(p.len(), 1);
    assert_eq!(hashes(p.best(10)), hashes([repl]));
    p.assert_consistent();
}

#[test]
fn replacement_tip_bump_checked_independently() {
    let a = acct(1);
    let st = State::default();
    let mut p = pool();
    p.add(eip1559(a, 0, 1000, 100), &st, MIN_BASE).unwrap();
    // Cap +50%, tip +9%: refused.
    assert_eq!(
        p.add(eip1559(a, 0, 1500, 109), &st, MIN_BASE),
        Err(PoolError::ReplacementUnderpriced)
    );
    // Cap +10%, tip +10%: accepted.
    assert!(matches!(
        p.add(eip1559(a, 0, 1100, 110), &st, MIN_BASE),
        Ok(AddOutcome::Replaced { pending: true, .. })
    ));
}

#[test]
fn legacy_replacement_and_queued_replacement() {
    let a = acct(1);
    let st = State::default();
    let mut p = pool();
    let q = legacy(a, 3, 100);
    assert_eq!(p.add(q.clone(), &st, MIN_BASE), Ok(AddOutcome::Queued));
    assert_eq!(
        p.add(legacy(a, 3, 109), &st, MIN_BASE),
        Err(PoolError::ReplacementUnderpriced)
    );
    assert_eq!(
        p.add(legacy(a, 3, 110), &st, MIN_BASE),
        Ok(AddOutcome::Replaced {
            old: q.hash(),
            pending: false
        })
    );
    assert_eq!(
        p.status(),
        PoolStatus {
            pending: 0,
            queued: 1
        }
    );
}

#[test]
fn nonce_too_low_and_a_capped_queue_of_future_nonces() {
    let a = acct(1);
    let mut st = State::default();
    st.set_nonce(a, 5);
    let mut p = pool_with(|c| c.account_queue = 4);
    let err = p.add(eip1559(a, 4, 100, 1), &st, MIN_BASE).unwrap_err();
    assert_eq!(err, PoolError::NonceTooLow { next: 5, nonce: 4 });
    assert!(err.to_string().starts_with("nonce too low"), "{err}");
    // Any future nonce may wait (as in geth), at most `account-queue` of them per account.
    for nonce in [8, 9, 10, 1_000] {
        assert_eq!(
            p.add(eip1559(a, nonce, 100, 1), &st, MIN_BASE),
            Ok(AddOutcome::Queued)
        );
    }
    let err = p.add(eip1559(a, 1_001, 100, 1), &st, MIN_BASE).unwrap_err();
    assert_eq!(err, PoolError::AccountQueueFull { limit: 4 });
    assert!(
        err.to_string().starts_with("account limit exceeded"),
        "{err}"
    );
    // A lower nonce takes the place of the highest (the furthest from executing).
    assert_eq!(
        p.add(eip1559(a, 7, 100, 1), &st, MIN_BASE),
        Ok(AddOutcome::Queued)
    );
    let queued: Vec<u64> = p.content().queued[&a.addr].keys().copied().collect();
    assert_eq!(queued, vec![7, 8, 9, 10]);
    p.assert_consistent();
}

#[test]
fn already_known_and_underpriced() {
    let a = acct(1);
    let st = State::default();
    let mut p = pool();
    let t = eip1559(a, 0, 100, 1);
    p.add(t.clone(), &st, MIN_BASE).unwrap();
    let err = p.add(t, &st, MIN_BASE).unwrap_err();
    assert_eq!(err.to_string(), "already known");
    let err = p.add(eip1559(a, 1, 6, 1), &st, MIN_BASE).unwrap_err();
    assert_eq!(
        err,
        PoolError::Underpriced {
            fee_cap: 6,
            minimum: 7
        }
    );
    assert!(err.to_string().starts_with("transaction underpriced"));
    assert_eq!(
        p.add(eip1559(a, 1, 7, 1), &st, MIN_BASE),
        Ok(AddOutcome::Pending)
    );
}

#[test]
fn insufficient_funds_counts_earlier_nonces() {
    let a = acct(1);
    let one_tx = U256::from(GAS) * U256::from(100) + U256::from(1);
    let mut st = State::default();
    st.set(a, 0, one_tx * U256::from(2) - U256::from(1));
    let mut p = pool();

    // Alone it fits.
    p.add(eip1559(a, 0, 100, 1), &st, MIN_BASE).unwrap();
    // Together with nonce 0 it does not.
    let err = p.add(eip1559(a, 1, 100, 1), &st, MIN_BASE).unwrap_err();
    assert_eq!(
        err,
        PoolError::InsufficientFundsWithQueued {
            balance: one_tx * U256::from(2) - U256::from(1),
            queued_cost: one_tx,
            cost: one_tx,
        }
    );
    assert!(
        err.to_string()
            .starts_with("insufficient funds for gas * price + value"),
        "{err}"
    );
    assert!(err.to_string().ends_with("overshot 1"), "{err}");

    // A single transaction costing more than the balance: geth's plain message.
    let b = acct(2);
    st.set(b, 0, one_tx - U256::from(1));
    let err = p.add(eip1559(b, 0, 100, 1), &st, MIN_BASE).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "insufficient funds for gas * price + value: balance {}, tx cost {one_tx}, overshot 1",
            one_tx - U256::from(1)
        )
    );
    p.assert_consistent();
}

#[test]
fn full_pool_evicts_cheapest_of_other_senders_only_for_higher_tip() {
    let (a, b, c, d) = (acct(1), acct(2), acct(3), acct(4));
    let st = State::default();
    let mut p = pool_of(3);
    let a0 = eip1559(a, 0, 100, 5);
    let b0 = eip1559(b, 0, 100, 2);
    let c0 = eip1559(c, 0, 100, 8);
    for t in [a0.clone(), b0.clone(), c0.clone()] {
        p.add(t, &st, MIN_BASE).unwrap();
    }
    // Same tip as the cheapest: not strictly higher, refused.
    let err = p.add(eip1559(d, 0, 100, 2), &st, MIN_BASE).unwrap_err();
    assert_eq!(err, PoolError::PoolFull);
    assert_eq!(err.to_string(), "txpool is full");
    // A sender's own transactions are never evicted for it: c's next nonce must not push out c0.
    assert_eq!(
        p.add(eip1559(c, 1, 100, 1), &st, MIN_BASE),
        Err(PoolError::PoolFull)
    );

    let d0 = eip1559(d, 0, 100, 3);
    assert_eq!(p.add(d0.clone(), &st, MIN_BASE), Ok(AddOutcome::Pending));
    assert!(
        !p.contains(&b0.hash()),
        "the cheapest (b0, tip 2) is evicted"
    );
    assert!(p.contains(&a0.hash()) && p.contains(&c0.hash()));
    assert_eq!(p.len(), 3);
    p.assert_consistent();
}

#[test]
fn full_pool_evicts_queued_first_and_queued_newcomers_evict_only_queued() {
    let (a, b, c, d, e) = (acct(1), acct(2), acct(3), acct(4), acct(5));
    let st = State::default();
    let mut p = pool_of(3);
    let a0 = eip1559(a, 0, 100, 2); // pending, cheapest
    let b1 = eip1559(b, 1, 100, 6); // queued
    let c0 = eip1559(c, 0, 100, 4); // pending
    for t in [a0.clone(), b1.clone(), c0.clone()] {
        p.add(t, &st, MIN_BASE).unwrap();
    }
    assert_eq!(
        p.status(),
        PoolStatus {
            pending: 2,
            queued: 1
        }
    );
    // A queued newcomer may not evict pending transactions (a0 pays only 2 against its 5),
    // and the only queued one (b1) pays more.
    assert_eq!(
        p.add(eip1559(e, 5, 1000, 5), &st, MIN_BASE),
        Err(PoolError::PoolFull)
    );
    // ...but it may evict a cheaper queued one.
    let e5 = eip1559(e, 5, 100, 7);
    assert_eq!(p.add(e5.clone(), &st, MIN_BASE), Ok(AddOutcome::Queued));
    assert!(!p.contains(&b1.hash()));
    // A pending newcomer evicts queued before pending, even a queued one with a higher tip.
    let d0 = eip1559(d, 0, 100, 8);
    assert_eq!(p.add(d0.clone(), &st, MIN_BASE), Ok(AddOutcome::Pending));
    assert!(!p.contains(&e5.hash()));
    assert!(p.contains(&a0.hash()) && p.contains(&c0.hash()) && p.contains(&d0.hash()));
    // Now only pending remain: the next one evicts the lowest tip (a0).
    let b0 = eip1559(b, 0, 100, 3);
    assert_eq!(p.add(b0.clone(), &st, MIN_BASE), Ok(AddOutcome::Pending));
    assert!(!p.contains(&a0.hash()));
    p.assert_consistent();
}

/// A transfer carrying `input_len` bytes of calldata (more than one 32 KiB slot when large).
fn eip1559_sized(a: Acct, nonce: u64, tip: u128, input_len: usize) -> RecoveredTx {
    let tx = TxEip1559 {
        chain_id: CHAIN,
        nonce,
        gas_limit: GAS + 50 * input_len as u64,
        max_fee_per_gas: 100,
        max_priority_fee_per_gas: tip,
        to: TxKind::Call(Address::repeat_byte(0x42)),
        value: U256::from(1),
        access_list: Default::default(),
        input: Bytes::from(vec![1u8; input_len]),
    };
    let sig = sign_message(a.key, tx.signature_hash()).expect("sign");
    let env: TxEnvelope = tx.into_signed(sig).into();
    RecoveredTx::from_envelope(env, CHAIN, 30_000_000).expect("valid tx")
}

#[test]
fn large_transactions_take_more_slots() {
    let (a, b, c) = (acct(1), acct(2), acct(3));
    let st = State::default();
    let mut p = pool_of(3);
    let a0 = eip1559(a, 0, 100, 1);
    let big = eip1559_sized(b, 0, 2, 40_000);
    assert_eq!(slots(big.size()), 2);
    p.add(a0.clone(), &st, MIN_BASE).unwrap();
    p.add(big.clone(), &st, MIN_BASE).unwrap();
    // Three slots are used: a newcomer paying no more than the cheapest is refused...
    assert_eq!(
        p.add(eip1559(c, 0, 100, 1), &st, MIN_BASE),
        Err(PoolError::PoolFull)
    );
    // ...and one paying more evicts only as many slots as it needs (a0's one).
    p.add(eip1559(c, 0, 100, 3), &st, MIN_BASE).unwrap();
    assert!(!p.contains(&a0.hash()) && p.contains(&big.hash()));
    p.assert_consistent();
}

#[test]
fn evicting_a_pending_tx_demotes_its_successors() {
    let (a, b) = (acct(1), acct(2));
    let st = State::default();
    let mut p = pool_of(3);
    p.add(eip1559(a, 0, 100, 5), &st, MIN_BASE).unwrap();
    let a1 = eip1559(a, 1, 100, 1);
    p.add(a1.clone(), &st, MIN_BASE).unwrap();
    p.add(eip1559(a, 2, 100, 5), &st, MIN_BASE).unwrap();
    p.add(eip1559(b, 0, 100, 2), &st, MIN_BASE).unwrap();
    assert!(!p.contains(&a1.hash()));
    assert_eq!(
        p.status(),
        PoolStatus {
            pending: 2,
            queued: 1
        }
    );
    assert_eq!(p.pending_nonce(a.addr, 0), 1);
    p.assert_consistent();
}

#[test]
fn on_new_state_drops_mined_and_promotes() {
    let (a, b) = (acct(1), acct(2));
    let mut st = State::default();
    let mut p = pool();
    let a_txs: Vec<_> = (0..3).map(|n| eip1559(a, n, 100, 1)).collect();
    for t in &a_txs {
        p.add(t.clone(), &st, MIN_BASE).unwrap();
    }
    let a4 = eip1559(a, 4, 100, 1);
    p.add(a4.clone(), &st, MIN_BASE).unwrap();
    // b's nonce 0 is missing here (say it went straight to another validator).
    let b1 = eip1559(b, 1, 100, 1);
    assert_eq!(p.add(b1.clone(), &st, MIN_BASE), Ok(AddOutcome::Queued));
    assert_eq!(
        p.status(),
        PoolStatus {
            pending: 3,
            queued: 2
        }
    );

    // A block mined a0, a1 and b's nonce 0.
    st.set_nonce(a, 2);
    st.set_nonce(b, 1);
    p.on_new_state(&st);
    assert!(!p.contains(&a_txs[0].hash()) && !p.contains(&a_txs[1].hash()));
    assert!(p.contains(&a_txs[2].hash()));
    assert_eq!(
        p.status(),
        PoolStatus {
            pending: 2,
            queued: 1
        },
        "a2 and b1 pending, a4 queued"
    );
    assert_eq!(hashes(p.best(10)), hashes([a_txs[2].clone(), b1.clone()]));

    // Filling a's gap promotes a4.
    assert_eq!(
        p.add(eip1559(a, 3, 100, 1), &st, MIN_BASE),
        Ok(AddOutcome::Pending)
    );
    assert_eq!(
        p.status(),
        PoolStatus {
            pending: 4,
            queued: 0
        }
    );

    // Everything mined: the pool empties.
    st.set_nonce(a, 5);
    st.set_nonce(b, 2);
    p.on_new_state_for(&st, [a.addr, b.addr]);
    assert!(p.is_empty());
    assert_eq!(p.status(), PoolStatus::default());
    p.assert_consistent();
}

#[test]
fn on_new_state_drops_unaffordable() {
    let a = acct(1);
    let mut st = State::default();
    let mut p = pool();
    let cheap = eip1559(a, 0, 10, 1);
    let dear = eip1559(a, 1, 1000, 1);
    let after = eip1559(a, 2, 10, 1);
    for t in [cheap.clone(), dear.clone(), after.clone()] {
        p.add(t, &st, MIN_BASE).unwrap();
    }
    st.set(a, 0, dear.max_cost() - U256::from(1));
    p.on_new_state(&st);
    assert!(p.contains(&cheap.hash()) && !p.contains(&dear.hash()) && p.contains(&after.hash()));
    assert_eq!(
        p.status(),
        PoolStatus {
            pending: 1,
            queued: 1
        }
    );
    p.assert_consistent();
}

#[test]
fn best_skips_sender_whose_next_tx_cannot_pay_base_fee() {
    let (a, b) = (acct(1), acct(2));
    let st = State::default();
    let mut p = pool();
    let a0 = eip1559(a, 0, 50, 1);
    let a1 = eip1559(a, 1, 200, 100);
    let b0 = eip1559(b, 0, 200, 1);
    for t in [a0.clone(), a1.clone(), b0.clone()] {
        p.add(t, &st, MIN_BASE).unwrap();
    }
    // At base fee 100, a0 cannot pay, so a1 (which pays well) cannot run either.
    assert_eq!(hashes(p.best(100)), hashes([b0.clone()]));
    // At base fee 40 all run: a0 tip 1 ties b0 tip 1, a0 arrived first; then a1 (tip 100).
    assert_eq!(hashes(p.best(40)), hashes([a0, a1, b0]));
}

#[test]
fn best_mark_invalid_stops_a_sender() {
    let (a, b) = (acct(1), acct(2));
    let st = State::default();
    let mut p = pool();
    let a0 = eip1559(a, 0, 100, 9);
    let b0 = eip1559(b, 0, 100, 5);
    for t in [
        a0.clone(),
        eip1559(a, 1, 100, 9),
        b0.clone(),
        eip1559(a, 2, 100, 9),
    ] {
        p.add(t, &st, MIN_BASE).unwrap();
    }
    let mut best = p.best(10);
    let first = best.next().unwrap();
    assert_eq!(first.hash(), a0.hash());
    best.mark_invalid(a.addr);
    assert_eq!(hashes(best), hashes([b0]));
}

#[test]
fn remove_invalid_removes_dependents() {
    let (a, b) = (acct(1), acct(2));
    let st = State::default();
    let mut p = pool();
    let a_txs: Vec<_> = (0..4).map(|n| eip1559(a, n, 100, 1)).collect();
    for t in &a_txs {
        p.add(t.clone(), &st, MIN_BASE).unwrap();
    }
    let b0 = eip1559(b, 0, 100, 1);
    p.add(b0.clone(), &st, MIN_BASE).unwrap();
    let removed = p.remove_invalid(&[a_txs[1].hash(), B256::repeat_byte(9)]);
    assert_eq!(removed, hashes(a_txs[1..].iter().cloned()));
    assert!(p.contains(&a_txs[0].hash()) && p.contains(&b0.hash()));
    assert_eq!(p.len(), 2);
    assert_eq!(p.pending_nonce(a.addr, 0), 1);
    p.assert_consistent();
}

#[test]
fn pending_nonce_follows_the_gap_free_run() {
    let (a, b) = (acct(1), acct(2));
    let mut st = State::default();
    st.set_nonce(a, 3);
    let mut p = pool();
    for n in [3, 4, 6] {
        p.add(eip1559(a, n, 100, 1), &st, MIN_BASE).unwrap();
    }
    assert_eq!(p.pending_nonce(a.addr, 3), 5);
    assert_eq!(
        p.pending_nonce(b.addr, 7),
        7,
        "unknown sender: the state nonce"
    );
    p.add(eip1559(a, 5, 100, 1), &st, MIN_BASE).unwrap();
    assert_eq!(p.pending_nonce(a.addr, 3), 7);
    // Called with a newer state nonce than the pool has seen: the run continues from there.
    assert_eq!(p.pending_nonce(a.addr, 5), 7);
    assert_eq!(p.pending_nonce(a.addr, 8), 8);
}

#[test]
fn add_prunes_stale_nonces_from_state() {
    let a = acct(1);
    let mut st = State::default();
    let mut p = pool();
    for n in 0..3 {
        p.add(eip1559(a, n, 100, 1), &st, MIN_BASE).unwrap();
    }
    // The state moved on without on_new_state being called.
    st.set_nonce(a, 2);
    assert_eq!(
        p.add(eip1559(a, 3, 100, 1), &st, MIN_BASE),
        Ok(AddOutcome::Pending)
    );
    assert_eq!(p.len(), 2);
    assert_eq!(
        p.status(),
        PoolStatus {
            pending: 2,
            queued: 0
        }
    );
    p.assert_consistent();
}

/// A deterministic mix of operations, checking the internal counters after each one.
#[test]
fn random_operations_keep_indexes_consistent() {
    let accts: Vec<Acct> = (0..6).map(acct).collect();
    let mut st = State::default();
    let mut p = pool_with(|c| {
        c.account_slots = 4;
        c.global_slots = 10;
        c.account_queue = 4;
        c.global_queue = 10;
    });
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..600 {
        let r = next();
        let a = accts[(r % 6) as usize];
        match (r >> 8) % 10 {
            0 => {
                let n = st.nonce(a.addr) + (r >> 16) % 2;
                st.set_nonce(a, n);
                p.on_new_state(&st);
            }
            1 => {
                let victims: Vec<B256> = p.best(10).take(1).map(|t| t.hash()).collect();
                p.remove_invalid(&victims);
            }
            _ => {
                let nonce = st.nonce(a.addr) + (r >> 16) % 10;
                let fee = 10 + u128::from((r >> 24) % 200);
                let tip = u128::from((r >> 40) % 10).min(fee);
                let _ = p.add(eip1559(a, nonce, fee, tip), &st, MIN_BASE);
            }
        }
        p.assert_consistent();
        // best() must respect nonce order per sender and start at the state nonce.
        let mut expect: HashMap<Address, u64> = HashMap::new();
        for t in p.best(10) {
            let e = expect
                .entry(t.sender())
                .or_insert_with(|| st.nonce(t.sender()));
            assert_eq!(t.nonce(), *e);
            *e += 1;
        }
        assert!(p.len() <= 20);
        assert_limits(&p);
    }
}

/// Not a benchmark with assertions on time, just a printed sanity measurement.
#[test]
fn ten_thousand_txs_add_and_best_timing() {
    let senders = 200u64;
    let per_sender = 50u64;
    let st = State::default();
    let t0 = Instant::now();
    let mut txs = Vec::with_capacity((senders * per_sender) as usize);
    for s in 0..senders {
        let a = acct(s);
        for n in 0..per_sender {
            txs.push(eip1559(a, n, 1_000, 1 + (s * 7 + n * 13) as u128 % 50));
        }
    }
    let sign_time = t0.elapsed();
    // Odd senders arrive in reverse nonce order: queued, then promoted all at once.
    let mut order: Vec<RecoveredTx> = Vec::with_capacity(txs.len());
    for s in 0..senders as usize {
        let chunk = &txs[s * per_sender as usize..(s + 1) * per_sender as usize];
        if s % 2 == 1 {
            order.extend(chunk.iter().rev().cloned());
        } else {
            order.extend(chunk.iter().cloned());
        }
    }
    // 10,000 transactions, half of them first queued 49 deep: `bttd devnet`'s limits.
    let mut p = Pool::new(PoolConfig::devnet());
    let t1 = Instant::now();
    for t in order {
        p.add(t, &st, MIN_BASE).unwrap();
    }
    let add_time = t1.elapsed();
    let t2 = Instant::now();
    let best: Vec<RecoveredTx> = p.best(100).collect();
    let best_time = t2.elapsed();
    let t3 = Instant::now();
    let first_block: Vec<RecoveredTx> = p.best(100).take(1_000).collect();
    let partial_time = t3.elapsed();
    println!(
        "mempool timing: sign+recover {sign_time:?}, add 10k {add_time:?}, best() all 10k {best_time:?}, first 1k {partial_time:?}"
    );
    assert_eq!(
        p.status(),
        PoolStatus {
            pending: 10_000,
            queued: 0
        }
    );
    assert_eq!(best.len(), 10_000);
    assert_eq!(first_block.len(), 1_000);
    let mut expect: HashMap<Address, u64> = HashMap::new();
    for t in &best {
        let e = expect.entry(t.sender()).or_default();
        assert_eq!(t.nonce(), *e);
        *e += 1;
    }
    p.assert_consistent();
}

// ---- Issue 11, fault 1: `gas * maxFee + value` must never wrap. ----

/// `2^256 - x`: the value that makes `x + value` wrap to exactly zero in 256 bits.
fn wraps_to_zero(x: U256) -> U256 {
    U256::ZERO.wrapping_sub(x)
}

/// A signed EIP-1559 transfer with the given fee cap, tip and value.
fn transfer(a: Acct, nonce: u64, max_fee: u128, tip: u128, value: U256) -> TxEnvelope {
    let tx = TxEip1559 {
        chain_id: CHAIN,
        nonce,
        gas_limit: GAS,
        max_fee_per_gas: max_fee,
        max_priority_fee_per_gas: tip,
        to: TxKind::Call(Address::repeat_byte(0x42)),
        value,
        access_list: Default::default(),
        input: Bytes::new(),
    };
    let sig = sign_message(a.key, tx.signature_hash()).expect("sign");
    tx.into_signed(sig).into()
}

/// What `NodeContext::submit` does with a gossiped or RPC transaction: the stateless checks,
/// then the pool. Errors as the client sees them.
fn admit(p: &mut Pool, env: TxEnvelope, st: &State) -> Result<AddOutcome, String> {
    let tx = RecoveredTx::from_envelope(env, CHAIN, 30_000_000).map_err(|e| e.to_string())?;
    p.add(tx, st, MIN_BASE).map_err(|e| e.to_string())
}

/// The cost as the EVM charges it, in 512 bits so it cannot wrap.
fn true_cost(tx: &RecoveredTx) -> U512 {
    U512::from(tx.gas_limit()) * U512::from(tx.max_fee_per_gas()) + U512::from(tx.value())
}

#[test]
fn wrapping_cost_is_refused_and_evicts_nothing_honest() {
    const HONEST: u64 = 50;
    let mut st = State::default();
    let mut p = pool_with(|c| {
        c.global_slots = HONEST as usize;
        c.global_queue = 0;
    });
    let honest: Vec<RecoveredTx> = (0..HONEST).map(|i| eip1559(acct(i), 0, 100, 1)).collect();
    for t in &honest {
        p.add(t.clone(), &st, MIN_BASE).unwrap();
    }

    // A zero-balance key whose `gas * fee + value` is exactly 2^256: it wraps to a cost of 0.
    let fee = 1_000_000_000_000u128;
    let gas_fee = U256::from(GAS) * U256::from(fee);
    let attacker = acct(1_000_000);
    st.set(attacker, 0, U256::ZERO);
    let err = admit(
        &mut p,
        transfer(attacker, 0, fee, fee, wraps_to_zero(gas_fee)),
        &st,
    )
    .expect_err("a transaction costing 2^256 wei must be refused");
    assert!(
        err.starts_with("insufficient funds for gas * price + value"),
        "{err}"
    );

    // 100 of them from fresh keys, each with a tip far above every honest one: nothing
    // honest is evicted and nothing of theirs enters.
    for i in 0..100 {
        let a = acct(2_000_000 + i);
        st.set(a, 0, U256::ZERO);
        let value = wraps_to_zero(gas_fee) + U256::from(i);
        let err = admit(&mut p, transfer(a, 0, fee, fee, value), &st).unwrap_err();
        assert!(
            err.starts_with("insufficient funds for gas * price + value"),
            "{err}"
        );
    }
    assert_eq!(p.len(), HONEST as usize);
    assert!(honest.iter().all(|t| p.contains(&t.hash())));
    assert_eq!(hashes(p.best(10)).len(), HONEST as usize);
    p.assert_consistent();
}

#[test]
fn cost_sum_over_earlier_nonces_does_not_saturate_into_admission() {
    // Each transaction alone fits a balance of 2^256 - 1, both together cost more than 2^256:
    // a saturating sum (2^256 - 1) would compare as affordable.
    let a = acct(1);
    let mut st = State::default();
    st.set(a, 0, U256::MAX);
    let mut p = pool();
    let half = U256::from(1) << 255;
    let first = admit(&mut p, transfer(a, 0, 100, 1, half), &st);
    assert_eq!(first, Ok(AddOutcome::Pending));
    let err = admit(&mut p, transfer(a, 1, 100, 1, half), &st).unwrap_err();
    assert!(
        err.starts_with("insufficient funds for gas * price + value"),
        "{err}"
    );
    assert_eq!(p.len(), 1);
    p.assert_consistent();
}

#[test]
fn new_state_recheck_counts_earlier_nonces_like_admission() {
    // After a block the sender's balance covers each transaction alone but not all of them:
    // the re-check applies admission's rule, so the ones the balance cannot reach go (and
    // their successors become queued), as admission would have refused them.
    let a = acct(1);
    let mut st = State::default();
    let mut p = pool();
    let txs: Vec<RecoveredTx> = (0..3).map(|n| eip1559(a, n, 100, 1)).collect();
    for t in &txs {
        p.add(t.clone(), &st, MIN_BASE).unwrap();
    }
    let one = txs[0].max_cost();
    st.set(a, 0, one + one + one - U256::from(1));
    p.on_new_state(&st);
    assert!(p.contains(&txs[0].hash()) && p.contains(&txs[1].hash()));
    assert!(!p.contains(&txs[2].hash()));
    assert_eq!(p.pending_nonce(a.addr, 0), 2);
    p.assert_consistent();

    // A sender drained to zero leaves the pool entirely.
    st.set(a, 0, U256::ZERO);
    p.on_new_state_for(&st, [a.addr]);
    assert!(p.is_empty());
    p.assert_consistent();
}

mod cost_props {
    use proptest::prelude::*;

    use super::*;

    /// How a transaction's value is chosen: the interesting ones sit at the 2^256 boundary.
    #[derive(Debug, Clone)]
    enum Value {
        Small(u64),
        Any([u8; 32]),
        /// `2^256 - gas * fee + delta`: wraps to `delta`.
        Wrap(u64),
        /// `2^256 - 1 - delta`.
        NearMax(u64),
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<u64>().prop_map(Value::Small),
            any::<[u8; 32]>().prop_map(Value::Any),
            (0u64..1_000_000).prop_map(Value::Wrap),
            (0u64..1_000_000).prop_map(Value::NearMax),
        ]
    }

    fn balance() -> impl Strategy<Value = U256> {
        prop_oneof![
            Just(U256::ZERO),
            Just(U256::MAX),
            any::<u128>().prop_map(U256::from),
            any::<[u8; 32]>().prop_map(U256::from_be_bytes),
            // Around an honest account's balance.
            (0u128..10u128.pow(24)).prop_map(U256::from),
        ]
    }

    fn fee() -> impl Strategy<Value = u128> {
        prop_oneof![
            MIN_BASE as u128..10_000u128,
            any::<u128>().prop_map(|f| f.max(7))
        ]
    }

    #[derive(Debug, Clone)]
    struct Op {
        sender: usize,
        nonce: u64,
        gas: u64,
        fee: u128,
        tip_pct: u8,
        value: Value,
        /// Set this balance for the sender and run the post-block re-check first.
        new_balance: Option<U256>,
    }

    fn op() -> impl Strategy<Value = Op> {
        (
            0usize..3,
            0u64..5,
            21_000u64..200_000,
            fee(),
            0u8..=100,
            value(),
            prop::option::weighted(0.2, balance()),
        )
            .prop_map(
                |(sender, nonce, gas, fee, tip_pct, value, new_balance)| Op {
                    sender,
                    nonce,
                    gas,
                    fee,
                    tip_pct,
                    value,
                    new_balance,
                },
            )
    }

    fn envelope(a: Acct, op: &Op) -> TxEnvelope {
        let gas_fee = U256::from(op.gas).wrapping_mul(U256::from(op.fee));
        let value = match op.value {
            Value::Small(v) => U256::from(v),
            Value::Any(b) => U256::from_be_bytes(b),
            Value::Wrap(d) => wraps_to_zero(gas_fee).wrapping_add(U256::from(d)),
            Value::NearMax(d) => U256::MAX - U256::from(d),
        };
        let tip = if op.tip_pct == 100 {
            op.fee
        } else {
            op.fee / 100 * u128::from(op.tip_pct)
        };
        let tx = TxEip1559 {
            chain_id: CHAIN,
            nonce: op.nonce,
            gas_limit: op.gas,
            max_fee_per_gas: op.fee,
            max_priority_fee_per_gas: tip,
            to: TxKind::Call(Address::repeat_byte(0x42)),
            value,
            access_list: Default::default(),
            input: Bytes::new(),
        };
        let sig = sign_message(a.key, tx.signature_hash()).expect("sign");
        tx.into_signed(sig).into()
    }

    /// A sender's pooled transactions in nonce order.
    fn pooled(p: &Pool, sender: Address) -> Vec<RecoveredTx> {
        let content = p.content();
        let mut all: Vec<RecoveredTx> = [&content.pending, &content.queued]
            .into_iter()
            .filter_map(|side| side.get(&sender))
            .flat_map(|m| m.values().cloned())
            .collect();
        all.sort_by_key(|t| t.nonce());
        all
    }

    /// The sender's pooled transactions up to nonce `upto` (all when None), each counted
    /// together with the lower nonces that execute before it, cost at most the balance, in
    /// true (512-bit) arithmetic.
    fn assert_affordable(
        p: &Pool,
        st: &State,
        sender: Address,
        upto: Option<u64>,
    ) -> Result<(), TestCaseError> {
        let balance = U512::from(st.balance(sender));
        let mut spent = U512::ZERO;
        for tx in pooled(p, sender) {
            if upto.is_some_and(|n| tx.nonce() > n) {
                break;
            }
            spent += true_cost(&tx);
            prop_assert!(
                spent <= balance,
                "sender {sender} nonce {}: pooled cost {spent} > balance {balance}",
                tx.nonce()
            );
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn pool_never_admits_more_than_the_balance_covers(
            balances in prop::collection::vec(balance(), 3),
            ops in prop::collection::vec(op(), 1..12),
        ) {
            let accts: Vec<Acct> = (0..3).map(|i| acct(500 + i)).collect();
            let mut st = State::default();
            for (a, b) in accts.iter().zip(&balances) {
                st.set(*a, 0, *b);
            }
            let mut p = pool_of(8);
            for op in &ops {
                let a = accts[op.sender];
                if let Some(b) = op.new_balance {
                    st.set(a, 0, b);
                    p.on_new_state(&st);
                    // The post-block re-check restores the rule for every sender.
                    for other in &accts {
                        assert_affordable(&p, &st, other.addr, None)?;
                    }
                }
                let env = envelope(a, op);
                let Ok(tx) = RecoveredTx::from_envelope(env, CHAIN, 30_000_000) else {
                    // Refused before the pool: only a cost beyond 256 bits may be.
                    continue;
                };
                let cost = true_cost(&tx);
                let nonce = tx.nonce();
                if p.add(tx, &st, MIN_BASE).is_ok() {
                    prop_assert!(cost <= U512::from(st.balance(a.addr)));
                    // Admission counts the lower nonces that execute first.
                    assert_affordable(&p, &st, a.addr, Some(nonce))?;
                }
                p.assert_consistent();
                // Ordering must cope with any fee a transaction can carry.
                let _ = p.best(10).count();
            }
        }
    }
}

/// Fault 2 (issue 11): 300 sequential transactions from one account, which geth and anvil
/// accept, were refused after 64 ("account limit exceeded", "nonce too high"). An executable
/// run may exceed `account-slots` while the pool has room.
#[test]
fn a_long_executable_run_from_one_account_is_admitted() {
    let a = acct(0);
    let st = State::default();
    let mut p = pool();
    for nonce in 0..300 {
        let outcome = p.add(eip1559(a, nonce, 100, 2), &st, MIN_BASE);
        assert_eq!(outcome, Ok(AddOutcome::Pending), "nonce {nonce}");
    }
    assert_eq!(
        p.status(),
        PoolStatus {
            pending: 300,
            queued: 0
        }
    );
    assert_eq!(p.best(MIN_BASE).count(), 300);
}

/// The limits of [`PoolConfig`] as invariants: slots within `global-slots + global-queue`;
/// executable transactions over `global-slots` only while no account is above
/// `account-slots` (geth's trimming stops there); queued within `account-queue` per account
/// and `global-queue` in all.
fn assert_limits(p: &Pool) {
    let cfg = p.config();
    assert!(p.slots <= cfg.max_slots(), "{} slots", p.slots);
    let status = p.status();
    if status.pending > cfg.global_slots {
        for (sender, q) in &p.senders {
            assert!(
                q.pending_len <= cfg.account_slots,
                "{sender} keeps {} executable while the pool is over global-slots",
                q.pending_len
            );
        }
    }
    assert!(
        status.queued <= cfg.global_queue,
        "{} queued",
        status.queued
    );
    for (sender, q) in &p.senders {
        assert!(
            q.queued_len() <= cfg.account_queue,
            "{sender} queues {}",
            q.queued_len()
        );
    }
}

/// When executable transactions would exceed `global-slots`, the accounts above
/// `account-slots` give way to an account within its slots, the largest first, from their
/// highest nonces; an account within its slots keeps its place.
#[test]
fn executable_transactions_over_global_slots_trim_the_largest_accounts_fairly() {
    let (big, mid, small, late) = (acct(1), acct(2), acct(3), acct(4));
    let st = State::default();
    let mut p = pool_with(|c| {
        c.account_slots = 2;
        c.global_slots = 10;
    });
    for n in 0..6 {
        p.add(eip1559(big, n, 100, 1), &st, MIN_BASE).unwrap();
    }
    for n in 0..3 {
        p.add(eip1559(mid, n, 100, 1), &st, MIN_BASE).unwrap();
    }
    p.add(eip1559(small, 0, 100, 1), &st, MIN_BASE).unwrap();
    assert_eq!(p.status().pending, 10);
    // Two more from an account within its slots: the largest account (6) gives two.
    for n in 0..2 {
        assert_eq!(
            p.add(eip1559(late, n, 100, 1), &st, MIN_BASE),
            Ok(AddOutcome::Pending)
        );
    }
    let run = |a: Acct| p.pending_nonce(a.addr, 0);
    assert_eq!((run(big), run(mid), run(small), run(late)), (4, 3, 1, 2));
    // The largest account's own next nonce would be trimmed at once: refused, nothing moves.
    assert_eq!(
        p.add(eip1559(big, 4, 100, 1), &st, MIN_BASE),
        Err(PoolError::PoolFull)
    );
    // An account already above its slots does not push out another's accepted transactions
    // either (mid would tie big at 4 and big would give one): refused, nothing moves. So at
    // equal fees a full pool refuses newcomers and never drops what it accepted (issue 10's
    // overload: accepted transactions had vanished, leaving their senders' later nonces
    // stuck behind gaps).
    assert_eq!(
        p.add(eip1559(mid, 3, 100, 1), &st, MIN_BASE),
        Err(PoolError::PoolFull)
    );
    assert_eq!(
        (p.pending_nonce(big.addr, 0), p.pending_nonce(mid.addr, 0)),
        (4, 3)
    );
    assert_eq!(p.status().pending, 10);
    assert_limits(&p);
    p.assert_consistent();
}

/// `lifetime` drops the queued transactions of an idle account, never executable ones.
#[test]
fn lifetime_drops_queued_transactions_only() {
    let (a, b) = (acct(1), acct(2));
    let st = State::default();
    let mut p = pool_with(|c| c.lifetime = std::time::Duration::from_secs(60));
    let start = Instant::now();
    p.add_at(eip1559(a, 0, 100, 1), &st, MIN_BASE, start)
        .unwrap();
    p.add_at(eip1559(a, 5, 100, 1), &st, MIN_BASE, start)
        .unwrap();
    let later = start + std::time::Duration::from_secs(50);
    p.add_at(eip1559(b, 3, 100, 1), &st, MIN_BASE, later)
        .unwrap();
    assert_eq!(p.evict_stale(start + std::time::Duration::from_secs(59)), 0);
    assert_eq!(p.evict_stale(start + std::time::Duration::from_secs(61)), 1);
    assert_eq!(
        p.status(),
        PoolStatus {
            pending: 1,
            queued: 1
        }
    );
    assert_eq!(
        p.pending_nonce(a.addr, 0),
        1,
        "a's executable transaction stays"
    );
    p.assert_consistent();
}

/// `global-queue` is shared: when it is full, the account idle longest loses its queued
/// transactions first.
#[test]
fn a_full_global_queue_trims_the_account_idle_longest() {
    let (old, recent, newcomer) = (acct(1), acct(2), acct(3));
    let st = State::default();
    let mut p = pool_with(|c| c.global_queue = 3);
    let start = Instant::now();
    let second = std::time::Duration::from_secs(1);
    let old_tx = eip1559(old, 9, 100, 1);
    p.add_at(old_tx.clone(), &st, MIN_BASE, start).unwrap();
    p.add_at(eip1559(recent, 9, 100, 1), &st, MIN_BASE, start + second)
        .unwrap();
    p.add_at(
        eip1559(recent, 8, 100, 1),
        &st,
        MIN_BASE,
        start + 2 * second,
    )
    .unwrap();
    assert_eq!(
        p.add_at(
            eip1559(newcomer, 4, 100, 1),
            &st,
            MIN_BASE,
            start + 3 * second
        ),
        Ok(AddOutcome::Queued)
    );
    assert!(!p.contains(&old_tx.hash()));
    assert_eq!(p.status().queued, 3);
    assert_limits(&p);
    p.assert_consistent();
}

/// The pool's invariants under random sequences of adds (new, replacing, gapped), blocks
/// (nonces move, balances drop), invalidations and expiry, on a small pool where every limit
/// binds: the counters agree with a recount, every limit of [`assert_limits`] holds, `best`
/// respects nonces, and a refused transaction changes nothing.
mod limit_properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Add {
            sender: usize,
            ahead: u64,
            fee: u128,
            tip: u128,
            big: bool,
        },
        Mine {
            sender: usize,
            count: u64,
        },
        Drain {
            sender: usize,
        },
        Invalidate,
        Expire {
            seconds: u64,
        },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0..5usize, 0..8u64, 10..300u128, 0..20u128, prop::bool::weighted(0.1))
                .prop_map(|(sender, ahead, fee, tip, big)| Step::Add { sender, ahead, fee, tip: tip.min(fee), big }),
            1 => (0..5usize, 0..4u64).prop_map(|(sender, count)| Step::Mine { sender, count }),
            1 => (0..5usize).prop_map(|sender| Step::Drain { sender }),
            1 => Just(Step::Invalidate),
            1 => (0..120u64).prop_map(|seconds| Step::Expire { seconds }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn every_limit_holds_after_every_step(steps in prop::collection::vec(step(), 1..60)) {
            let accts: Vec<Acct> = (0..5).map(|i| acct(700 + i)).collect();
            let mut st = State::default();
            let mut p = pool_with(|c| {
                c.account_slots = 2;
                c.global_slots = 6;
                c.account_queue = 3;
                c.global_queue = 4;
                c.lifetime = std::time::Duration::from_secs(60);
            });
            let start = Instant::now();
            let mut now = start;
            for step in steps {
                match step {
                    Step::Add { sender, ahead, fee, tip, big } => {
                        let a = accts[sender];
                        let nonce = st.nonce(a.addr) + ahead;
                        let tx = if big { eip1559_sized(a, nonce, tip, 40_000) } else { eip1559(a, nonce, fee, tip) };
                        let before = p.content();
                        let hash = tx.hash();
                        match p.add_at(tx, &st, MIN_BASE, now) {
                            Ok(_) => prop_assert!(p.contains(&hash)),
                            Err(_) => prop_assert_eq!(p.content(), before, "a refusal changed the pool"),
                        }
                    }
                    Step::Mine { sender, count } => {
                        let a = accts[sender];
                        let n = st.nonce(a.addr) + count;
                        st.set_nonce(a, n);
                        p.on_new_state(&st);
                    }
                    Step::Drain { sender } => {
                        let a = accts[sender];
                        let n = st.nonce(a.addr);
                        st.set(a, n, U256::from(21_000u64 * 150));
                        p.on_new_state(&st);
                    }
                    Step::Invalidate => {
                        let first: Vec<B256> = p.best(MIN_BASE).take(1).map(|t| t.hash()).collect();
                        p.remove_invalid(&first);
                    }
                    Step::Expire { seconds } => {
                        now += std::time::Duration::from_secs(seconds);
                        p.evict_stale(now);
                    }
                }
                p.assert_consistent();
                assert_limits(&p);
                let mut expect: HashMap<Address, u64> = HashMap::new();
                for t in p.best(MIN_BASE) {
                    let e = expect.entry(t.sender()).or_insert_with(|| st.nonce(t.sender()));
                    prop_assert_eq!(t.nonce(), *e);
                    *e += 1;
                }
            }
        }
    }
}
