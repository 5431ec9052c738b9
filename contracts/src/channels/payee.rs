//! The payee's side: a book of channels paying us and the best voucher of each.
//!
//! A seeder takes a voucher per piece, so [`PayeeBook::accept`] is a hash-map lookup, a few
//! comparisons, two keccaks and one signature recovery (no allocation, no I/O). It accepts a
//! voucher only if the contract would pay it in full right now: the channel pays this payee,
//! the amount is strictly above both the best voucher held and what was already claimed, it
//! fits the deposit, the channel is open (no close requested, or before `closesAt`) and the
//! signature is the payer's under the contract's strict rules. On any refusal the book is left
//! unchanged. The on-chain view ([`ChannelInfo`]) is refreshed by the caller
//! ([`PayeeBook::track`]) after top-ups, settlements and close requests.

use std::collections::HashMap;

use alloy_primitives::{Address, B256, U256};

use super::eip712::ChannelsDomain;
use super::signature::{SignatureError, StrictSignature};
use super::voucher::SignedVoucher;

/// A channel as the contract's `channels(bytes32)` getter returns it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Who signs vouchers and gets the refund.
    pub payer: Address,
    /// Who is paid.
    pub payee: Address,
    /// Total deposited (open + top-ups), in wei.
    pub deposit: U256,
    /// Already paid to the payee, in wei.
    pub claimed: U256,
    /// Seconds between `requestClose` and `closesAt`.
    pub settle_window: u64,
    /// 0 while open; after `requestClose`, the timestamp from which settling is refused.
    pub closes_at: u64,
}

impl ChannelInfo {
    /// The state from the return data of `channels(bytes32)`.
    pub fn decode_getter(out: &[u8]) -> Result<Self, alloy_sol_types::Error> {
        use alloy_sol_types::SolCall;
        let r = super::IBandwidthChannels::channelsCall::abi_decode_returns(out)?;
        Ok(Self {
            payer: r.payer,
            payee: r.payee,
            deposit: r.deposit,
            claimed: r.claimed,
            settle_window: r.settleWindow,
            closes_at: r.closesAt,
        })
    }
}

/// Where a channel is in its life, at time `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ChannelStatus {
    /// No such channel (never opened, or its record was removed on close).
    Unknown,
    /// Open, no close requested.
    Open,
    /// Close requested; vouchers can still be settled before `closes_at`.
    Closing,
    /// Settling is over (`now >= closes_at`): the payer may withdraw, vouchers are worthless.
    Closed,
}

impl ChannelInfo {
    /// The channel's status at block time `now` (seconds).
    pub fn status(&self, now: u64) -> ChannelStatus {
        if self.payer == Address::ZERO {
            ChannelStatus::Unknown
        } else if self.closes_at == 0 {
            ChannelStatus::Open
        } else if now < self.closes_at {
            ChannelStatus::Closing
        } else {
            ChannelStatus::Closed
        }
    }

    /// Deposit not yet claimed (`deposit - claimed`).
    pub fn remaining(&self) -> U256 {
        self.deposit.saturating_sub(self.claimed)
    }
}

/// Why a voucher is refused. The book is unchanged after any of these.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The channel is not in the book (or does not exist on chain).
    #[error("unknown channel {0}")]
    UnknownChannel(B256),
    /// The channel pays someone else.
    #[error("channel {channel} pays {payee}, not this payee")]
    NotOurChannel {
        /// The channel.
        channel: B256,
        /// Its actual payee.
        payee: Address,
    },
    /// Settling is over for this channel.
    #[error("channel is closed (settling ended at {closes_at}, now {now})")]
    Closed {
        /// When settling ended.
        closes_at: u64,
        /// The time the voucher was checked at.
        now: u64,
    },
    /// Not above what we already hold or what was already claimed: it pays nothing new.
    #[error("cumulative amount {got} is not above the best so far ({best})")]
    NotIncreasing {
        /// Best amount so far (held voucher or claimed on chain).
        best: U256,
        /// The voucher's amount.
        got: U256,
    },
    /// More than the channel holds: the contract would refuse it.
    #[error("cumulative amount {amount} exceeds the deposit {deposit}")]
    AboveDeposit {
        /// The channel's deposit.
        deposit: U256,
        /// The voucher's amount.
        amount: U256,
    },
    /// The signature fails the contract's byte checks or recovers nobody.
    #[error("bad signature: {0}")]
    Signature(#[from] SignatureError),
    /// Signed, but not by the channel's payer (or for another chain / contract / channel).
    #[error("signed by {got}, not by the payer {expected}")]
    WrongSigner {
        /// The channel's payer.
        expected: Address,
        /// Who the signature recovers to.
        got: Address,
    },
}

/// What an accepted voucher is worth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// Increase over the previous best (what this piece paid).
    pub increment: U256,
    /// What settling it now pays the payee (`amount - claimed`).
    pub claimable: U256,
    /// Deposit left for further vouchers (`deposit - amount`).
    pub remaining: U256,
}

/// Checks `voucher` against one channel exactly as the contract's `settle` would, with `best`
/// the amount the voucher must exceed (at least `info.claimed`). Cheap checks run before the
/// signature recovery. Returns the recovered payer.
pub fn check_voucher(
    domain: &ChannelsDomain,
    info: &ChannelInfo,
    best: U256,
    voucher: &SignedVoucher,
    now: u64,
) -> Result<(Address, Accepted), Refusal> {
    match info.status(now) {
        ChannelStatus::Unknown => return Err(Refusal::UnknownChannel(voucher.channel_id)),
        ChannelStatus::Closed => {
            return Err(Refusal::Closed {
                closes_at: info.closes_at,
                now,
            });
        }
        ChannelStatus::Open | ChannelStatus::Closing => {}
    }
    let amount = voucher.cumulative_amount;
    let best = best.max(info.claimed);
    if amount <= best {
        return Err(Refusal::NotIncreasing { best, got: amount });
    }
    if amount > info.deposit {
        return Err(Refusal::AboveDeposit {
            deposit: info.deposit,
            amount,
        });
    }
    let signer = StrictSignature::parse(&voucher.signature)?.recover(&voucher.digest(domain))?;
    if signer != info.payer {
        return Err(Refusal::WrongSigner {
            expected: info.payer,
            got: signer,
        });
    }
    Ok((
        signer,
        Accepted {
            increment: amount - best,
            claimable: amount - info.claimed,
            remaining: info.deposit - amount,
        },
    ))
}

#[derive(Clone, Debug)]
struct Entry {
    info: ChannelInfo,
    best: Option<SignedVoucher>,
}

impl Entry {
    fn best_amount(&self) -> U256 {
        self.best
            .as_ref()
            .map_or(U256::ZERO, |v| v.cumulative_amount)
    }
}

/// The payee's channels and the best voucher of each.
#[derive(Clone, Debug)]
pub struct PayeeBook {
    payee: Address,
    domain: ChannelsDomain,
    channels: HashMap<B256, Entry>,
}

impl PayeeBook {
    /// An empty book for `payee`, bound to one chain and contract.
    pub fn new(payee: Address, domain: ChannelsDomain) -> Self {
        Self {
            payee,
            domain,
            channels: HashMap::new(),
        }
    }

    /// The payee this book collects for.
    pub fn payee(&self) -> Address {
        self.payee
    }

    /// The signing domain.
    pub fn domain(&self) -> &ChannelsDomain {
        &self.domain
    }

    /// Adds a channel or refreshes its on-chain view (after a top-up, a settlement, a close
    /// request). The best voucher is kept. Refuses a channel that pays someone else or does
    /// not exist, leaving the book unchanged.
    pub fn track(&mut self, channel_id: B256, info: ChannelInfo) -> Result<(), Refusal> {
        if info.payer == Address::ZERO {
            return Err(Refusal::UnknownChannel(channel_id));
        }
        if info.payee != self.payee {
            return Err(Refusal::NotOurChannel {
                channel: channel_id,
                payee: info.payee,
            });
        }
        self.channels
            .entry(channel_id)
            .and_modify(|e| e.info = info.clone())
            .or_insert(Entry { info, best: None });
        Ok(())
    }

    /// Forgets a channel (and its vouchers).
    pub fn untrack(&mut self, channel_id: &B256) -> Option<SignedVoucher> {
        self.channels.remove(channel_id).and_then(|e| e.best)
    }

    /// The on-chain view last given for a channel.
    pub fn channel(&self, channel_id: &B256) -> Option<&ChannelInfo> {
        self.channels.get(channel_id).map(|e| &e.info)
    }

    /// Ids of the tracked channels.
    pub fn channel_ids(&self) -> impl Iterator<Item = &B256> {
        self.channels.keys()
    }

    /// Checks a voucher and, if acceptable, keeps it as the channel's best. `now` is the
    /// current block time in seconds.
    pub fn accept(&mut self, voucher: SignedVoucher, now: u64) -> Result<Accepted, Refusal> {
        let accepted = self.check(&voucher, now)?;
        let entry = self
            .channels
            .get_mut(&voucher.channel_id)
            .expect("check found the channel");
        entry.best = Some(voucher);
        Ok(accepted)
    }

    /// What [`Self::accept`] would answer, without keeping the voucher.
    pub fn check(&self, voucher: &SignedVoucher, now: u64) -> Result<Accepted, Refusal> {
        let entry = self
            .channels
            .get(&voucher.channel_id)
            .ok_or(Refusal::UnknownChannel(voucher.channel_id))?;
        check_voucher(&self.domain, &entry.info, entry.best_amount(), voucher, now).map(|(_, a)| a)
    }

    /// The best voucher held for a channel (it may already be claimed: see
    /// [`Self::claimable`]).
    pub fn best(&self, channel_id: &B256) -> Option<&SignedVoucher> {
        self.channels.get(channel_id)?.best.as_ref()
    }

    /// What settling the best voucher would pay now (0 if none or already claimed).
    pub fn claimable(&self, channel_id: &B256) -> U256 {
        self.channels.get(channel_id).map_or(U256::ZERO, |e| {
            e.best_amount().saturating_sub(e.info.claimed)
        })
    }

    /// Best vouchers worth settling (above what was claimed), by channel.
    pub fn unsettled(&self) -> impl Iterator<Item = &SignedVoucher> {
        self.channels.values().filter_map(|e| {
            e.best
                .as_ref()
                .filter(|v| v.cumulative_amount > e.info.claimed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::address;
    use alloy_signer_local::PrivateKeySigner;

    const NOW: u64 = 1_000;

    struct Fixture {
        payer: PrivateKeySigner,
        payee: Address,
        domain: ChannelsDomain,
        book: PayeeBook,
        id: B256,
    }

    fn eth(n: u64) -> U256 {
        U256::from(n) * U256::from(10u64.pow(18))
    }

    fn fixture() -> Fixture {
        let payer = PrivateKeySigner::random();
        let payee = Address::repeat_byte(0xee);
        let domain =
            ChannelsDomain::new(1337, address!("0000000000000000000000000000000000001002"));
        let mut book = PayeeBook::new(payee, domain.clone());
        let id = B256::repeat_byte(1);
        book.track(
            id,
            ChannelInfo {
                payer: payer.address(),
                payee,
                deposit: eth(10),
                claimed: U256::ZERO,
                settle_window: 60,
                closes_at: 0,
            },
        )
        .unwrap();
        Fixture {
            payer,
            payee,
            domain,
            book,
            id,
        }
    }

    impl Fixture {
        fn voucher(&self, amount: U256) -> SignedVoucher {
            SignedVoucher::sign(&self.domain, &self.payer, self.id, amount).unwrap()
        }
        fn info(&self) -> ChannelInfo {
            self.book.channel(&self.id).unwrap().clone()
        }
    }

    #[test]
    fn increasing_vouchers_are_kept() {
        let mut f = fixture();
        let a = f.book.accept(f.voucher(eth(1)), NOW).unwrap();
        assert_eq!(
            a,
            Accepted {
                increment: eth(1),
                claimable: eth(1),
                remaining: eth(9)
            }
        );
        let b = f.book.accept(f.voucher(eth(3)), NOW).unwrap();
        assert_eq!(b.increment, eth(2));
        assert_eq!(f.book.best(&f.id).unwrap().cumulative_amount, eth(3));
        assert_eq!(f.book.claimable(&f.id), eth(3));
        // The whole deposit is fine.
        f.book.accept(f.voucher(eth(10)), NOW).unwrap();
        assert_eq!(f.book.unsettled().count(), 1);
    }

    #[test]
    fn non_increasing_is_refused_and_changes_nothing() {
        let mut f = fixture();
        f.book.accept(f.voucher(eth(2)), NOW).unwrap();
        for amount in [eth(2), eth(1), U256::ZERO] {
            let v = f.voucher(amount);
            assert_eq!(
                f.book.accept(v, NOW),
                Err(Refusal::NotIncreasing {
                    best: eth(2),
                    got: amount
                })
            );
        }
        assert_eq!(f.book.best(&f.id).unwrap().cumulative_amount, eth(2));
    }

    /// After an on-chain settlement, a voucher at or below `claimed` is worthless.
    #[test]
    fn at_or_below_claimed_is_refused() {
        let mut f = fixture();
        let mut info = f.info();
        info.claimed = eth(4);
        f.book.track(f.id, info).unwrap();
        assert_eq!(
            f.book.accept(f.voucher(eth(4)), NOW),
            Err(Refusal::NotIncreasing {
                best: eth(4),
                got: eth(4)
            })
        );
        let a = f.book.accept(f.voucher(eth(5)), NOW).unwrap();
        assert_eq!(a.claimable, eth(1));
    }

    #[test]
    fn above_deposit_is_refused_until_a_top_up() {
        let mut f = fixture();
        let v = f.voucher(eth(10) + U256::from(1));
        assert_eq!(
            f.book.accept(v.clone(), NOW),
            Err(Refusal::AboveDeposit {
                deposit: eth(10),
                amount: eth(10) + U256::from(1)
            })
        );
        assert!(f.book.best(&f.id).is_none());
        let mut info = f.info();
        info.deposit = eth(11);
        f.book.track(f.id, info).unwrap();
        f.book.accept(v, NOW).unwrap();
    }

    #[test]
    fn closing_channel_accepts_until_closes_at() {
        let mut f = fixture();
        let mut info = f.info();
        info.closes_at = NOW + 10;
        f.book.track(f.id, info).unwrap();
        f.book.accept(f.voucher(eth(1)), NOW + 9).unwrap();
        assert_eq!(
            f.book.accept(f.voucher(eth(2)), NOW + 10),
            Err(Refusal::Closed {
                closes_at: NOW + 10,
                now: NOW + 10
            })
        );
    }

    #[test]
    fn wrong_signer_chain_contract_or_channel_is_refused() {
        let mut f = fixture();
        let stranger = PrivateKeySigner::random();
        let by_stranger = SignedVoucher::sign(&f.domain, &stranger, f.id, eth(1)).unwrap();
        assert_eq!(
            f.book.accept(by_stranger, NOW),
            Err(Refusal::WrongSigner {
                expected: f.payer.address(),
                got: stranger.address()
            })
        );
        let other_chain = ChannelsDomain::new(1338, f.domain.contract());
        let other_contract = ChannelsDomain::new(1337, Address::repeat_byte(5));
        for d in [other_chain, other_contract] {
            let v = SignedVoucher::sign(&d, &f.payer, f.id, eth(1)).unwrap();
            assert!(matches!(
                f.book.accept(v, NOW),
                Err(Refusal::WrongSigner { .. })
            ));
        }
        // Signed for channel B, presented as channel A.
        let mut for_b =
            SignedVoucher::sign(&f.domain, &f.payer, B256::repeat_byte(2), eth(1)).unwrap();
        for_b.channel_id = f.id;
        assert!(matches!(
            f.book.accept(for_b, NOW),
            Err(Refusal::WrongSigner { .. })
        ));
        assert!(f.book.best(&f.id).is_none());
    }

    #[test]
    fn high_s_and_bad_v_are_refused() {
        let mut f = fixture();
        let good = f.voucher(eth(1));
        let n = alloy_primitives::uint!(
            0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141_U256
        );
        let mut sig = good.signature.to_vec();
        let s = U256::from_be_slice(&sig[32..64]);
        sig[32..64].copy_from_slice(&(n - s).to_be_bytes::<32>());
        sig[64] ^= 27 ^ 28;
        let high_s = SignedVoucher {
            signature: sig.into(),
            ..good.clone()
        };
        assert_eq!(
            f.book.accept(high_s, NOW),
            Err(Refusal::Signature(SignatureError::HighS))
        );
        let mut sig = good.signature.to_vec();
        sig[64] -= 27;
        let v01 = SignedVoucher {
            signature: sig.into(),
            ..good.clone()
        };
        assert!(matches!(
            f.book.accept(v01, NOW),
            Err(Refusal::Signature(SignatureError::BadV(_)))
        ));
        f.book.accept(good, NOW).unwrap();
    }

    #[test]
    fn unknown_and_foreign_channels_are_refused() {
        let mut f = fixture();
        let other = B256::repeat_byte(9);
        let v = SignedVoucher::sign(&f.domain, &f.payer, other, eth(1)).unwrap();
        assert_eq!(f.book.accept(v, NOW), Err(Refusal::UnknownChannel(other)));
        let mut info = f.info();
        info.payee = Address::repeat_byte(1);
        assert!(matches!(
            f.book.track(other, info),
            Err(Refusal::NotOurChannel { .. })
        ));
        assert!(f.book.channel(&other).is_none());
        assert_eq!(
            f.book.track(other, ChannelInfo::default()),
            Err(Refusal::UnknownChannel(other))
        );
        assert_eq!(f.book.payee(), f.payee);
    }
}
