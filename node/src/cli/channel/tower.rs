//! The watchtower's decisions, without I/O: which vouchers it takes, which channels it settles
//! when, and what it bids for gas. `watch.rs` does the reading, writing and sending around it,
//! so everything here is a plain function of its inputs and unit-tested.
//!
//! - **Vouchers** ([`Book::offer`]): taken only if the contract would pay them now (the
//!   contract's own checks, reused from [`check_voucher`]), for a payee the tower serves, worth at
//!   least `--min-claim` over what was claimed, and before `closesAt − margin`. A voucher above
//!   the deposit is refused, not capped: the signature covers the exact amount, and the contract
//!   refuses to pay it (`ExceedsDeposit`) until a top-up, which is impossible once a close was
//!   requested; the payer can send a lower one.
//! - **Settling** ([`Book::due`]): a channel is due as soon as its close was requested, the window
//!   is not over and its best voucher pays more than what was claimed; the earliest `closesAt`
//!   first, at most [`MAX_BATCH`] per transaction (`settleBatch`).
//! - **Bidding** ([`Fees`]): a replacement raises both the tip and the fee cap by at least 12.5%
//!   (geth and bttd's pool need 10%), doubles them once less than half the time to the earliest
//!   deadline is left, follows the node's suggested tip and twice the base fee, and never offers
//!   more gas money than the settlement pays.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use alloy_primitives::{Address, B256, U256};
use bttd_contracts::channels::payee::check_voucher;
use bttd_contracts::channels::{
    ChannelInfo, ChannelsDomain, Refusal as CheckRefusal, SignedVoucher,
};

/// Most vouchers in one settle transaction (about 15k gas each, far below a block).
pub const MAX_BATCH: usize = 100;

/// The settle margin: a fraction of each channel's settle window, in basis points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Margin(u32);

impl Margin {
    /// `--margin`'s default, 10%.
    pub const DEFAULT: Self = Self(1_000);

    /// The margin in whole seconds for a window (rounded up; at least 1 for a non-zero margin).
    pub fn seconds(self, settle_window: u64) -> u64 {
        (u128::from(settle_window) * u128::from(self.0)).div_ceil(10_000) as u64
    }

    /// The last moment (exclusive) vouchers are taken for a closing channel, and the deadline
    /// the tower aims its settle at.
    pub fn cutoff(self, info: &ChannelInfo) -> u64 {
        info.closes_at
            .saturating_sub(self.seconds(info.settle_window))
    }
}

impl FromStr for Margin {
    type Err = String;
    /// `10%`, `12.5%` (at most two decimals, below 100%).
    fn from_str(s: &str) -> Result<Self, String> {
        let pct = s
            .trim()
            .strip_suffix('%')
            .ok_or_else(|| format!("{s:?}: give a percentage of the settle window, e.g. 10%"))?;
        let (int, frac) = pct.split_once('.').unwrap_or((pct, ""));
        if int.is_empty()
            || frac.len() > 2
            || !(int.chars().chain(frac.chars())).all(|c| c.is_ascii_digit())
        {
            return Err(format!("{s:?}: not a percentage like 10% or 12.5%"));
        }
        let int: u32 = int.parse().map_err(|_| format!("{s:?}: too large"))?;
        let frac: u32 = format!("{frac:0<2}").parse().unwrap_or(0);
        let bp = int
            .checked_mul(100)
            .and_then(|v| v.checked_add(frac))
            .filter(|&bp| bp < 10_000)
            .ok_or_else(|| format!("{s:?}: the margin must be below 100%"))?;
        Ok(Self(bp))
    }
}

impl fmt::Display for Margin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}%", self.0 / 100, self.0 % 100)
    }
}

/// What the tower is told to do.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Payees it collects for.
    pub payees: HashSet<Address>,
    pub margin: Margin,
    /// Smallest `amount − claimed` worth taking (and settling).
    pub min_claim: U256,
}

/// Why a voucher was not taken. The tower's state is unchanged after any of these.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("channel pays {0}, a payee this tower does not serve")]
    NotServed(Address),
    #[error("claims {claimable} wei over what was claimed, below --min-claim {min}")]
    BelowMinClaim { claimable: U256, min: U256 },
    #[error("channel is inside its settle margin (vouchers taken until {cutoff}, now {now})")]
    InsideMargin { cutoff: u64, now: u64 },
    #[error("channel is finished (closed cooperatively or fully claimed)")]
    Finished,
    #[error("{0}")]
    Check(#[from] CheckRefusal),
}

/// One channel the tower watches.
#[derive(Clone, Debug, Default)]
pub struct Tracked {
    /// The on-chain view; `None` until first read (e.g. right after a restart).
    pub info: Option<ChannelInfo>,
    pub best: Option<SignedVoucher>,
}

impl Tracked {
    pub fn best_amount(&self) -> U256 {
        self.best
            .as_ref()
            .map_or(U256::ZERO, |v| v.cumulative_amount)
    }

    /// The best voucher is paid (nothing left to claim with it).
    pub fn settled(&self) -> bool {
        self.info
            .as_ref()
            .is_some_and(|i| self.best_amount() <= i.claimed)
    }
}

/// The tower's channels and the best voucher of each.
#[derive(Debug)]
pub struct Book {
    pub domain: ChannelsDomain,
    pub policy: Policy,
    pub channels: HashMap<B256, Tracked>,
}

impl Book {
    pub fn new(domain: ChannelsDomain, policy: Policy) -> Self {
        Self {
            domain,
            policy,
            channels: HashMap::new(),
        }
    }

    /// Whether `voucher` would be taken against the on-chain view `info` at chain time `now`.
    /// Returns what it claims over the on-chain `claimed`.
    pub fn offer(
        &self,
        voucher: &SignedVoucher,
        info: &ChannelInfo,
        now: u64,
    ) -> Result<U256, Refusal> {
        if info.payer == Address::ZERO {
            return Err(CheckRefusal::UnknownChannel(voucher.channel_id).into());
        }
        if !self.policy.payees.contains(&info.payee) {
            return Err(Refusal::NotServed(info.payee));
        }
        if info.closes_at != 0 {
            if info.deposit == info.claimed {
                return Err(Refusal::Finished);
            }
            let cutoff = self.policy.margin.cutoff(info);
            if now >= cutoff {
                return Err(Refusal::InsideMargin { cutoff, now });
            }
        }
        let best = self
            .channels
            .get(&voucher.channel_id)
            .map_or(U256::ZERO, Tracked::best_amount);
        let (_, accepted) = check_voucher(&self.domain, info, best, voucher, now)?;
        let min = self.policy.min_claim;
        if accepted.claimable < min {
            return Err(Refusal::BelowMinClaim {
                claimable: accepted.claimable,
                min,
            });
        }
        Ok(accepted.claimable)
    }

    /// Keeps a voucher [`Self::offer`] accepted (after it is on disk).
    pub fn keep(&mut self, voucher: SignedVoucher, info: ChannelInfo) {
        let t = self.channels.entry(voucher.channel_id).or_default();
        t.info = Some(info);
        t.best = Some(voucher);
    }

    /// The best amount held for a channel (0 if none).
    pub fn best(&self, id: &B256) -> U256 {
        self.channels
            .get(id)
            .map_or(U256::ZERO, Tracked::best_amount)
    }

    /// Vouchers to settle at chain time `now`, earliest deadline first, at most [`MAX_BATCH`].
    pub fn due(&self, now: u64) -> Vec<(SignedVoucher, ChannelInfo)> {
        let mut due: Vec<(SignedVoucher, ChannelInfo)> = self
            .channels
            .values()
            .filter_map(|t| {
                let info = t.info.as_ref()?;
                let v = t.best.as_ref()?;
                let claimable = v.cumulative_amount.checked_sub(info.claimed)?;
                let worth = !claimable.is_zero() && claimable >= self.policy.min_claim;
                (self.policy.payees.contains(&info.payee)
                    && info.closes_at != 0
                    && now < info.closes_at
                    && worth
                    && v.cumulative_amount <= info.deposit)
                    .then(|| (v.clone(), info.clone()))
            })
            .collect();
        due.sort_by_key(|(v, i)| (i.closes_at, v.channel_id));
        due.truncate(MAX_BATCH);
        due
    }

    /// Channels whose window ended with their best voucher unpaid (for an error log).
    pub fn missed(&self, now: u64) -> Vec<B256> {
        self.channels
            .iter()
            .filter(|(_, t)| {
                t.info.as_ref().is_some_and(|i| {
                    i.closes_at != 0 && now >= i.closes_at && i.deposit > i.claimed
                }) && !t.settled()
            })
            .map(|(id, _)| *id)
            .collect()
    }
}

/// An EIP-1559 bid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fees {
    pub max_fee: u128,
    pub tip: u128,
}

/// The tip never goes below this (bttd's and geth's minimum suggestion).
pub const MIN_TIP: u128 = 1_000_000_000;

/// `v * num / den`, rounded up, saturating.
fn scale(v: u128, num: u128, den: u128) -> u128 {
    v.checked_mul(num).map_or(u128::MAX, |x| x.div_ceil(den))
}

impl Fees {
    /// The first bid: the suggested tip and twice the base fee on top.
    pub fn initial(base_fee: u128, suggested_tip: u128) -> Self {
        let tip = suggested_tip.max(MIN_TIP);
        Self {
            tip,
            max_fee: base_fee.saturating_mul(2).saturating_add(tip),
        }
    }

    /// The bid replacing `self` (same nonce): +12.5%, or ×2 when `urgent`, and at least what
    /// the chain asks now.
    pub fn bump(self, base_fee: u128, suggested_tip: u128, urgent: bool) -> Self {
        let (num, den) = if urgent { (2, 1) } else { (9, 8) };
        let tip = scale(self.tip, num, den).max(suggested_tip);
        let max_fee =
            scale(self.max_fee, num, den).max(base_fee.saturating_mul(2).saturating_add(tip));
        Self { tip, max_fee }
    }

    /// Whether a pool that wants `price_bump_pct` more on both fields takes `self` as a
    /// replacement of `old`.
    pub fn replaces(self, old: Self, price_bump_pct: u128) -> bool {
        let need = |v: u128| scale(v, 100 + price_bump_pct, 100);
        self.tip >= need(old.tip) && self.max_fee >= need(old.max_fee)
    }

    /// The bid limited so that `gas_limit × max_fee` stays within `worth` (never spend more on
    /// gas than the settlement pays). `None` if nothing can be offered.
    pub fn capped(self, gas_limit: u64, worth: U256) -> Option<Self> {
        let cap = worth / U256::from(gas_limit.max(1));
        let cap: u128 = cap.try_into().unwrap_or(u128::MAX);
        if cap == 0 {
            return None;
        }
        let max_fee = self.max_fee.min(cap);
        Some(Self {
            max_fee,
            tip: self.tip.min(max_fee),
        })
    }
}

/// Whether a pending settle is urgent: less than half the time from its first send to the
/// deadline is left.
pub fn urgent(first_sent: u64, deadline: u64, now: u64) -> bool {
    let total = deadline.saturating_sub(first_sent);
    let left = deadline.saturating_sub(now);
    left.saturating_mul(2) < total || left <= 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::address;
    use alloy_signer_local::PrivateKeySigner;

    const NOW: u64 = 1_000;

    fn eth(n: u64) -> U256 {
        U256::from(n) * U256::from(10u64.pow(18))
    }

    struct F {
        payer: PrivateKeySigner,
        book: Book,
        id: B256,
        info: ChannelInfo,
    }

    fn fixture() -> F {
        let payer = PrivateKeySigner::random();
        let payee = Address::repeat_byte(0xee);
        let domain =
            ChannelsDomain::new(1337, address!("0000000000000000000000000000000000001002"));
        let policy = Policy {
            payees: [payee].into_iter().collect(),
            margin: Margin::DEFAULT,
            min_claim: U256::from(100),
        };
        let info = ChannelInfo {
            payer: payer.address(),
            payee,
            deposit: eth(10),
            claimed: U256::ZERO,
            settle_window: 100,
            closes_at: 0,
        };
        F {
            payer,
            book: Book::new(domain, policy),
            id: B256::repeat_byte(1),
            info,
        }
    }

    impl F {
        fn voucher(&self, amount: U256) -> SignedVoucher {
            SignedVoucher::sign(&self.book.domain, &self.payer, self.id, amount).unwrap()
        }
        fn take(&mut self, amount: U256, now: u64) -> Result<U256, Refusal> {
            let v = self.voucher(amount);
            let r = self.book.offer(&v, &self.info, now);
            if r.is_ok() {
                self.book.keep(v, self.info.clone());
            }
            r
        }
    }

    #[test]
    fn margin_parses_and_rounds_up() {
        assert_eq!("10%".parse::<Margin>().unwrap(), Margin::DEFAULT);
        assert_eq!("12.5%".parse::<Margin>().unwrap(), Margin(1_250));
        assert_eq!("0%".parse::<Margin>().unwrap().seconds(3600), 0);
        for bad in ["10", "100%", "-1%", "1.234%", "%", "abc%", "99999999999%"] {
            assert!(bad.parse::<Margin>().is_err(), "{bad}");
        }
        assert_eq!(Margin::DEFAULT.seconds(3600), 360);
        assert_eq!(Margin::DEFAULT.seconds(4), 1);
        assert_eq!(Margin::DEFAULT.seconds(u64::MAX), u64::MAX / 10 + 1);
        assert_eq!(Margin(1_250).to_string(), "12.50%");
    }

    #[test]
    fn vouchers_taken_only_if_the_contract_pays_them_and_above_min_claim() {
        let mut f = fixture();
        assert_eq!(f.take(eth(1), NOW), Ok(eth(1)));
        assert!(matches!(
            f.take(eth(1), NOW),
            Err(Refusal::Check(CheckRefusal::NotIncreasing { .. }))
        ));
        assert!(matches!(
            f.take(eth(11), NOW),
            Err(Refusal::Check(CheckRefusal::AboveDeposit { .. }))
        ));
        // Below --min-claim over what was claimed on chain.
        f.info.claimed = eth(2);
        assert_eq!(
            f.take(eth(2) + U256::from(99), NOW),
            Err(Refusal::BelowMinClaim {
                claimable: U256::from(99),
                min: U256::from(100)
            })
        );
        assert_eq!(f.take(eth(2) + U256::from(100), NOW), Ok(U256::from(100)));
        // Forged.
        let forged =
            SignedVoucher::sign(&f.book.domain, &PrivateKeySigner::random(), f.id, eth(5)).unwrap();
        assert!(matches!(
            f.book.offer(&forged, &f.info, NOW),
            Err(Refusal::Check(CheckRefusal::WrongSigner { .. }))
        ));
        assert_eq!(f.book.best(&f.id), eth(2) + U256::from(100));
    }

    #[test]
    fn other_payees_unknown_channels_margin_and_finished_are_refused() {
        let mut f = fixture();
        let v = f.voucher(eth(1));
        let mut other = f.info.clone();
        other.payee = Address::repeat_byte(1);
        assert_eq!(
            f.book.offer(&v, &other, NOW),
            Err(Refusal::NotServed(other.payee))
        );
        // A second served payee.
        f.book.policy.payees.insert(other.payee);
        assert!(f.book.offer(&v, &other, NOW).is_ok());
        assert!(matches!(
            f.book.offer(&v, &ChannelInfo::default(), NOW),
            Err(Refusal::Check(CheckRefusal::UnknownChannel(_)))
        ));
        // Closing at NOW + 50 with a window of 100: margin 10 s, cutoff NOW + 40.
        f.info.closes_at = NOW + 50;
        assert!(f.take(eth(1), NOW + 39).is_ok());
        assert_eq!(
            f.take(eth(2), NOW + 40),
            Err(Refusal::InsideMargin {
                cutoff: NOW + 40,
                now: NOW + 40
            })
        );
        // Cooperatively closed: closesAt set, deposit == claimed.
        f.info.closes_at = NOW + 50;
        f.info.deposit = eth(3);
        f.info.claimed = eth(3);
        assert_eq!(f.take(eth(4), NOW), Err(Refusal::Finished));
    }

    #[test]
    fn due_once_closing_until_closes_at_earliest_first() {
        let mut f = fixture();
        f.take(eth(1), NOW).unwrap();
        assert!(f.book.due(NOW).is_empty(), "open channels are not settled");
        let mut closing = f.info.clone();
        closing.closes_at = NOW + 50;
        f.book.channels.get_mut(&f.id).unwrap().info = Some(closing.clone());
        // A second channel closing earlier.
        let id2 = B256::repeat_byte(2);
        let v2 = SignedVoucher::sign(&f.book.domain, &f.payer, id2, eth(2)).unwrap();
        let mut info2 = closing.clone();
        info2.closes_at = NOW + 20;
        f.book.keep(v2, info2.clone());
        let due = f.book.due(NOW);
        assert_eq!(
            due.iter().map(|(v, _)| v.channel_id).collect::<Vec<_>>(),
            [id2, f.id]
        );
        // Window over for id2; id settled on chain.
        assert_eq!(f.book.due(NOW + 20).len(), 1);
        assert_eq!(f.book.missed(NOW + 20), [id2]);
        closing.claimed = eth(1);
        f.book.channels.get_mut(&f.id).unwrap().info = Some(closing);
        assert!(f.book.due(NOW).iter().all(|(v, _)| v.channel_id == id2));
        assert!(f.book.channels[&f.id].settled());
        // Not served any more (policy changed between runs): never settled.
        f.book.policy.payees.clear();
        assert!(f.book.due(NOW).is_empty());
    }

    #[test]
    fn due_is_bounded_to_a_batch() {
        let mut f = fixture();
        let mut info = f.info.clone();
        info.closes_at = NOW + 50;
        for i in 0..(MAX_BATCH + 5) {
            let id = B256::from(U256::from(i + 1));
            let v = SignedVoucher::sign(&f.book.domain, &f.payer, id, eth(1)).unwrap();
            f.book.keep(v, info.clone());
        }
        f.id = B256::ZERO;
        assert_eq!(f.book.due(NOW).len(), MAX_BATCH);
    }

    #[test]
    fn bumps_satisfy_the_pool_and_follow_the_chain() {
        let gwei = 1_000_000_000u128;
        let first = Fees::initial(7 * gwei, 0);
        assert_eq!(
            first,
            Fees {
                tip: gwei,
                max_fee: 15 * gwei
            }
        );
        let mut fees = first;
        for _ in 0..50 {
            let next = fees.bump(7 * gwei, 0, false);
            assert!(next.replaces(fees, 10), "{next:?} after {fees:?}");
            fees = next;
        }
        // Urgent doubles; a risen base fee and a suggested tip are followed.
        let u = first.bump(gwei, 0, true);
        assert_eq!(
            u,
            Fees {
                tip: 2 * gwei,
                max_fee: 30 * gwei
            }
        );
        let chain = first.bump(100 * gwei, 50 * gwei, false);
        assert_eq!(chain.tip, 50 * gwei);
        assert_eq!(chain.max_fee, 250 * gwei);
        assert!(!first.replaces(first, 10));
        // Saturates instead of wrapping.
        let huge = Fees {
            tip: u128::MAX,
            max_fee: u128::MAX,
        }
        .bump(u128::MAX, u128::MAX, true);
        assert_eq!(huge.max_fee, u128::MAX);
    }

    #[test]
    fn never_bids_more_gas_money_than_the_settlement_pays() {
        let f = Fees {
            tip: 100,
            max_fee: 1_000,
        };
        assert_eq!(f.capped(10, U256::from(100_000)), Some(f));
        assert_eq!(
            f.capped(10, U256::from(5_000)),
            Some(Fees {
                tip: 100,
                max_fee: 500
            })
        );
        assert_eq!(
            f.capped(10, U256::from(500)),
            Some(Fees {
                tip: 50,
                max_fee: 50
            })
        );
        assert_eq!(f.capped(10, U256::from(9)), None);
    }

    #[test]
    fn urgency_is_the_second_half_of_the_time_left() {
        assert!(!urgent(0, 100, 10));
        assert!(!urgent(0, 100, 50));
        assert!(urgent(0, 100, 51));
        assert!(urgent(0, 100, 200));
        assert!(urgent(95, 100, 98));
    }
}
