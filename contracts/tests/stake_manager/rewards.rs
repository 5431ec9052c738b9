//! Rewards to the wei: 3 delegators over 1,000 blocks with stake and commission changes,
//! against a model that follows every delegation block by block (a loop over delegators,
//! which the contract must not need) and never reads the contract's accumulators.

use std::collections::BTreeMap;

use alloy_primitives::{Address, U256};
use bttd_contracts::{STAKE_MANAGER_ADDRESS, StakeManager};

use crate::harness::{Chain, Genesis, Rng, btt, default_params};
use crate::keys::ValidatorKeys;

const SCALE: u128 = 1_000_000_000_000_000_000_000_000_000_000; // 1e30, the documented scale
const EPOCH: u64 = 10;

fn add(a: U256, b: U256) -> U256 {
    a.checked_add(b).expect("model overflow")
}
fn sub(a: U256, b: U256) -> U256 {
    a.checked_sub(b).expect("model underflow")
}
fn mul(a: U256, b: U256) -> U256 {
    a.checked_mul(b).expect("model overflow")
}
fn div(a: U256, b: U256) -> U256 {
    a.checked_div(b).expect("model division by zero")
}

#[derive(Default, Clone)]
struct ModelDelegation {
    stake: U256,
    /// Sum of the per-stake increments since the last settlement (scaled by 1e30).
    unsettled: U256,
    pending: U256,
}

#[derive(Default)]
pub struct Model {
    commission: BTreeMap<Address, u16>,
    commission_owed: BTreeMap<Address, U256>,
    delegations: BTreeMap<(Address, Address), ModelDelegation>,
    /// Power of the set deciding blocks after the last change, and before it.
    powers: BTreeMap<Address, U256>,
    prev_powers: BTreeMap<Address, U256>,
    last_change: u64,
    /// Credited to 0x1000 and not yet handed out.
    pub pool: U256,
    pub proposer_paid: U256,
    /// Settlements and validator credits, each of which may leave < 1 wei behind.
    pub roundings: u64,
}

impl Model {
    fn total_stake(&self, validator: Address) -> U256 {
        self.delegations
            .iter()
            .filter(|((_, v), _)| *v == validator)
            .fold(U256::ZERO, |acc, (_, d)| add(acc, d.stake))
    }

    fn settle(&mut self, delegator: Address, validator: Address) {
        let d = self.delegations.entry((delegator, validator)).or_default();
        let earned = div(mul(d.stake, d.unsettled), U256::from(SCALE));
        d.pending = add(d.pending, earned);
        d.unsettled = U256::ZERO;
        self.roundings += 1;
    }

    fn stake(&mut self, delegator: Address, validator: Address, amount: U256, up: bool) {
        self.settle(delegator, validator);
        let d = self.delegations.entry((delegator, validator)).or_default();
        d.stake = if up {
            add(d.stake, amount)
        } else {
            sub(d.stake, amount)
        };
    }

    fn claim(&mut self, delegator: Address, validator: Address) -> U256 {
        self.settle(delegator, validator);
        let d = self.delegations.entry((delegator, validator)).or_default();
        let mut paid = std::mem::take(&mut d.pending);
        if delegator == validator {
            paid = add(
                paid,
                self.commission_owed.remove(&validator).unwrap_or_default(),
            );
        }
        paid
    }

    fn pending(&self, delegator: Address, validator: Address) -> U256 {
        let d = self
            .delegations
            .get(&(delegator, validator))
            .cloned()
            .unwrap_or_default();
        add(d.pending, div(mul(d.stake, d.unsettled), U256::from(SCALE)))
    }

    fn end_epoch(&mut self, block: u64, validators: &[Address]) {
        self.prev_powers = std::mem::take(&mut self.powers);
        for v in validators {
            let power = div(
                self.total_stake(*v),
                U256::from(1_000_000_000_000_000_000u128),
            );
            self.powers.insert(*v, power);
        }
        self.last_change = block;
    }

    /// The reward call of block `number` (paying `number - 1`).
    fn reward(&mut self, number: u64, signers: &[Address]) {
        if number <= 1 {
            return;
        }
        let h = number - 1;
        let powers = if h > self.last_change {
            &self.powers
        } else {
            &self.prev_powers
        };
        let signed: Vec<(Address, U256)> = signers
            .iter()
            .map(|s| (*s, powers.get(s).copied().unwrap_or_default()))
            .filter(|(_, p)| !p.is_zero())
            .collect();
        let signed_power = signed.iter().fold(U256::ZERO, |a, (_, p)| add(a, *p));
        if signed_power.is_zero() {
            return;
        }
        let pool = self.pool;
        let bonus = div(mul(pool, U256::from(1000)), U256::from(10_000));
        let rest = sub(pool, bonus);
        for (s, power) in signed {
            let share = div(mul(rest, power), signed_power);
            let bps = U256::from(self.commission[&s]);
            let total = self.total_stake(s);
            let commission = if total.is_zero() {
                share
            } else {
                let c = div(mul(share, bps), U256::from(10_000));
                let increment = div(mul(sub(share, c), U256::from(SCALE)), total);
                for ((_, v), d) in self.delegations.iter_mut() {
                    if *v == s && !d.stake.is_zero() {
                        d.unsettled = add(d.unsettled, increment);
                    }
                }
                c
            };
            let owed = self.commission_owed.entry(s).or_default();
            *owed = add(*owed, commission);
            self.pool = sub(self.pool, share);
            self.roundings += 1;
        }
        self.pool = sub(self.pool, bonus);
        self.proposer_paid = add(self.proposer_paid, bonus);
    }
}

#[test]
fn stake_manager_rewards_to_the_wei_over_1000_blocks() {
    let keys: Vec<_> = (0..3).map(|i| ValidatorKeys::new(200 + i)).collect();
    let validators: Vec<Address> = keys.iter().map(|k| k.owner).collect();
    let genesis = Genesis {
        params: default_params(),
        validators: keys
            .iter()
            .map(|k| (k.owner, k.signer, k.compressed(), btt(100)))
            .collect(),
    };
    let mut chain = Chain::new(&genesis);
    let mut model = Model::default();
    for v in &validators {
        model.commission.insert(*v, 0);
        model.stake(*v, *v, btt(100), true);
        chain.fund(*v, btt(1000));
    }
    model.end_epoch(0, &validators);
    model.prev_powers = model.powers.clone();

    let delegators = [
        Address::repeat_byte(0xd1),
        Address::repeat_byte(0xd2),
        Address::repeat_byte(0xd3),
    ];
    for d in delegators {
        chain.fund(d, btt(1000));
    }
    let proposer = Address::repeat_byte(0xb0);
    chain.remember(proposer);
    let mut rng = Rng::new(12);
    let mut claimed_total = U256::ZERO;

    // Initial delegations: D1 and D2 to validator 0, D3 to validator 1.
    let initial = [(0usize, 0usize, 50u128), (1, 0, 30), (2, 1, 10)];
    for (d, v, amount) in initial {
        chain
            .send(
                delegators[d],
                btt(amount),
                &StakeManager::delegateCall {
                    validator: validators[v],
                },
            )
            .ok();
        model.stake(delegators[d], validators[v], btt(amount), true);
    }

    for number in 1..=1000u64 {
        // 1. Rewards for the parent.
        let deciding = if number - 1 > model.last_change {
            model.powers.clone()
        } else {
            model.prev_powers.clone()
        };
        let mut signers: Vec<Address> = deciding
            .keys()
            .copied()
            .filter(|_| rng.chance(80))
            .collect();
        if signers.is_empty() {
            signers.push(*deciding.keys().next().expect("a set"));
        }
        signers.sort();
        chain
            .system(&StakeManager::distributeBlockRewardCall {
                proposer,
                signers: signers.clone(),
            })
            .ok();
        model.reward(number, &signers);

        // 2. Transactions: stake and commission changes, claims.
        match number {
            300 => {
                let amount = btt(5);
                chain
                    .send(
                        delegators[1],
                        U256::ZERO,
                        &StakeManager::undelegateCall {
                            validator: validators[0],
                            amount,
                        },
                    )
                    .ok();
                model.stake(delegators[1], validators[0], amount, false);
            }
            400 => {
                chain
                    .send(
                        delegators[0],
                        btt(25),
                        &StakeManager::delegateCall {
                            validator: validators[0],
                        },
                    )
                    .ok();
                model.stake(delegators[0], validators[0], btt(25), true);
            }
            600 => {
                chain
                    .send(
                        delegators[2],
                        U256::ZERO,
                        &StakeManager::undelegateCall {
                            validator: validators[1],
                            amount: btt(10),
                        },
                    )
                    .ok();
                model.stake(delegators[2], validators[1], btt(10), false);
                chain
                    .send(
                        delegators[2],
                        btt(40),
                        &StakeManager::delegateCall {
                            validator: validators[2],
                        },
                    )
                    .ok();
                model.stake(delegators[2], validators[2], btt(40), true);
            }
            _ => {}
        }
        // Commission: validator 0 climbs 100 bps per epoch to 2,000; validator 1 moves
        // randomly within the rule.
        if number % EPOCH == 3 {
            let v = validators[0];
            let bps = (model.commission[&v] + 100).min(2000);
            chain
                .send(
                    v,
                    U256::ZERO,
                    &StakeManager::setCommissionCall { commissionBps: bps },
                )
                .ok();
            model.commission.insert(v, bps);
        }
        if number % 37 == 0 {
            let v = validators[1];
            let bps =
                (model.commission[&v] + rng.below(101) as u16).saturating_sub(rng.below(60) as u16);
            chain
                .send(
                    v,
                    U256::ZERO,
                    &StakeManager::setCommissionCall { commissionBps: bps },
                )
                .ok();
            model.commission.insert(v, bps);
        }
        // Claims, now and then, by delegators and owners.
        if rng.chance(4) {
            let who = if rng.chance(70) {
                delegators[rng.below(3) as usize]
            } else {
                validators[rng.below(3) as usize]
            };
            let validator = if validators.contains(&who) {
                who
            } else {
                validators[rng.below(3) as usize]
            };
            let expected = model.claim(who, validator);
            let before = chain.balance(who);
            let out = chain.send(
                who,
                U256::ZERO,
                &StakeManager::claimRewardsCall { validator },
            );
            if expected.is_zero() {
                out.reverts_with("no rewards");
            } else {
                out.ok();
                assert_eq!(
                    chain.balance(who) - before,
                    expected,
                    "claim by {who} from {validator} at block {number}"
                );
                claimed_total = add(claimed_total, expected);
            }
        }

        // 3. The block's base fees and issuance reach 0x1000.
        let fees = U256::from(rng.below(1_000_000_000_000_000));
        chain.credit_stake_manager(fees, false);
        chain.credit_stake_manager(btt(1), true);
        model.pool = add(model.pool, add(fees, btt(1)));

        // 4. The epoch's last block computes the next set.
        if number % EPOCH == 0 {
            chain.system(&StakeManager::endEpochCall {}).ok();
            model.end_epoch(number, &validators);
        }
        chain.next_block();
    }

    // Every delegation's pending rewards and every commission, to the wei.
    let mut entitled = add(add(claimed_total, model.proposer_paid), model.pool);
    for ((delegator, validator), _) in model.delegations.clone() {
        let view = chain.view(&StakeManager::delegationOfCall {
            delegator,
            validator,
        });
        let expected = model.pending(delegator, validator);
        assert_eq!(
            view.pendingRewards, expected,
            "{delegator} with {validator}"
        );
        assert_eq!(view.stake, model.delegations[&(delegator, validator)].stake);
        entitled = add(entitled, expected);
    }
    for v in &validators {
        let keys = chain.view(&StakeManager::validatorKeysCall { owner: *v });
        let expected = model.commission_owed.get(v).copied().unwrap_or_default();
        assert_eq!(keys.commissionOwed, expected, "commission of {v}");
        entitled = add(entitled, expected);
    }
    assert_eq!(chain.balance(proposer), model.proposer_paid);
    // The undistributed pool the contract sees is the model's.
    let owed = add(
        add(
            chain.view(&StakeManager::totalBondedCall {}),
            chain.view(&StakeManager::totalUnbondingCall {}),
        ),
        chain.view(&StakeManager::totalRewardsOwedCall {}),
    );
    assert_eq!(sub(chain.balance(STAKE_MANAGER_ADDRESS), owed), model.pool);
    // What was credited is what everyone is entitled to, less < 1 wei per rounding.
    let credited = add(
        chain.issued,
        sub(chain.genesis_supply, btt(300 + 3000 + 3000)),
    );
    assert!(entitled <= credited);
    let lost = sub(credited, entitled);
    let bound = model.roundings + model.delegations.len() as u64;
    assert!(
        lost <= U256::from(bound),
        "{lost} wei lost to rounding in {} roundings",
        model.roundings
    );
    println!(
        "rewards: credited {credited} wei, {lost} wei left as rounding dust over {} roundings",
        model.roundings
    );
}
