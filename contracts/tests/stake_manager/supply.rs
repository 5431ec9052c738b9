//! Supply and accounting invariants over a long random history, and re-entrant claimers.

use alloy_primitives::{Address, U256};
use alloy_sol_types::SolConstructor;
use bttd_contracts::{STAKE_MANAGER_ADDRESS, StakeManager};

use crate::harness::{CHAIN_ID, Chain, Rng, btt};
use crate::keys::ValidatorKeys;
use crate::registration::genesis_of;

alloy_sol_types::sol!(
    #[sol(all_derives)]
    ReentrantStaker,
    "artifacts/ReentrantStaker.json"
);

fn deploy_staker(chain: &mut Chain) -> Address {
    let deployer = Address::repeat_byte(0xee);
    let mut code = ReentrantStaker::BYTECODE.to_vec();
    code.extend_from_slice(
        &ReentrantStaker::constructorCall {
            stakeManager_: STAKE_MANAGER_ADDRESS,
        }
        .abi_encode(),
    );
    chain.deploy(deployer, code)
}

/// Pays one block's rewards to every member of the current set, then credits fees and
/// issuance as the protocol does, and ends the epoch every 10 blocks.
fn block(chain: &mut Chain, rng: &mut Rng, proposer: Address) {
    let mut signers: Vec<Address> = chain
        .view(&StakeManager::activeValidatorsCall {})
        .into_iter()
        .filter(|_| rng.chance(85))
        .collect();
    signers.sort();
    chain
        .system(&StakeManager::distributeBlockRewardCall { proposer, signers })
        .ok();
    chain.credit_stake_manager(U256::from(rng.below(10_000_000_000_000_000)), false);
    chain.credit_stake_manager(btt(1), true);
    if chain.number.is_multiple_of(10) {
        chain.system(&StakeManager::endEpochCall {}).ok();
    }
    chain.next_block();
}

#[test]
fn stake_manager_reentrant_claimers_get_paid_once() {
    let keys: Vec<_> = (0..4).map(|i| ValidatorKeys::new(300 + i)).collect();
    let mut chain = Chain::new(&genesis_of(&keys, btt(100)));
    let mut rng = Rng::new(3);
    let proposer = Address::repeat_byte(0xb1);
    chain.remember(proposer);
    let staker = deploy_staker(&mut chain);
    let funder = Address::repeat_byte(0xf0);
    chain.fund(funder, btt(100));
    chain
        .send_to(
            funder,
            staker,
            btt(20),
            &ReentrantStaker::delegateCall {
                validator_: keys[0].owner,
            },
        )
        .ok();
    for _ in 0..25 {
        block(&mut chain, &mut rng, proposer);
    }
    let pending = chain
        .view(&StakeManager::delegationOfCall {
            delegator: staker,
            validator: keys[0].owner,
        })
        .pendingRewards;
    assert!(!pending.is_zero());
    chain
        .send_to(funder, staker, U256::ZERO, &ReentrantStaker::claimCall {})
        .ok();
    assert_eq!(chain.balance(staker), pending, "paid exactly once");
    let reverts = |chain: &mut Chain| {
        let out = chain.send_to(
            funder,
            staker,
            U256::ZERO,
            &ReentrantStaker::reentryRevertsCall {},
        );
        U256::from_be_slice(&out.output)
    };
    assert_eq!(
        reverts(&mut chain),
        U256::from(2),
        "both re-entries refused"
    );
    chain
        .send_to(funder, staker, U256::ZERO, &ReentrantStaker::claimCall {})
        .reverts_with("no rewards");

    // Unbonding: withdrawal pays once, re-entries refused.
    chain
        .send_to(
            funder,
            staker,
            U256::ZERO,
            &ReentrantStaker::undelegateCall { amount: btt(20) },
        )
        .ok();
    chain
        .send_to(
            funder,
            staker,
            U256::ZERO,
            &ReentrantStaker::withdrawCall {},
        )
        .reverts_with("nothing unbonded to withdraw");
    for _ in 0..20 {
        block(&mut chain, &mut rng, proposer);
    }
    let before = chain.balance(staker);
    chain
        .send_to(
            funder,
            staker,
            U256::ZERO,
            &ReentrantStaker::withdrawCall {},
        )
        .ok();
    assert_eq!(chain.balance(staker) - before, btt(20));
    assert_eq!(reverts(&mut chain), U256::from(4));
    assert_eq!(chain.total_balances(), chain.genesis_supply + chain.issued);
}

/// Everything the contract owes, read from its views.
fn liabilities(
    chain: &mut Chain,
    pairs: &[(Address, Address)],
    owners: &[Address],
    delegators: &[Address],
) -> (U256, U256, U256) {
    let mut bonded = U256::ZERO;
    let mut rewards = U256::ZERO;
    for (d, v) in pairs {
        let view = chain.view(&StakeManager::delegationOfCall {
            delegator: *d,
            validator: *v,
        });
        bonded = bonded.checked_add(view.stake).expect("fits");
        rewards = rewards.checked_add(view.pendingRewards).expect("fits");
    }
    for o in owners {
        let keys = chain.view(&StakeManager::validatorKeysCall { owner: *o });
        rewards = rewards.checked_add(keys.commissionOwed).expect("fits");
    }
    let mut unbonding = U256::ZERO;
    for d in delegators {
        for u in chain.view(&StakeManager::unbondingOfCall { delegator: *d }) {
            unbonding = unbonding.checked_add(u.amount).expect("fits");
        }
    }
    (bonded, unbonding, rewards)
}

#[test]
fn stake_manager_supply_invariant_over_a_random_history() {
    let seeds: u64 = std::env::var("STAKE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    for seed in 1..=seeds {
        random_history(seed, 1500);
    }
}

fn random_history(seed: u64, blocks: u64) {
    let keys: Vec<_> = (0..4).map(|i| ValidatorKeys::new(400 + i)).collect();
    let mut chain = Chain::new(&genesis_of(&keys, btt(100)));
    let mut rng = Rng::new(seed);
    let proposer = Address::repeat_byte(0xb2);
    chain.remember(proposer);
    let mut owners: Vec<Address> = keys.iter().map(|k| k.owner).collect();
    let mut newcomers: Vec<ValidatorKeys> = (0..3).map(|i| ValidatorKeys::new(500 + i)).collect();
    let delegators: Vec<Address> = (0..6).map(|i| Address::repeat_byte(0xa0 + i)).collect();
    let staker = deploy_staker(&mut chain);
    for a in owners.iter().chain(&delegators) {
        chain.fund(*a, btt(500));
    }
    for k in &newcomers {
        chain.fund(k.owner, btt(500));
    }
    let mut pairs: Vec<(Address, Address)> = owners.iter().map(|o| (*o, *o)).collect();
    let mut all_delegators: Vec<Address> = delegators.clone();
    all_delegators.extend(owners.iter().copied());
    all_delegators.push(staker);
    let mut rounding_events: u64 = 0;
    let mut refused: u64 = 0;

    for _ in 0..blocks {
        for _ in 0..rng.below(4) {
            let action = rng.below(100);
            let who = if rng.chance(75) {
                delegators[rng.below(delegators.len() as u64) as usize]
            } else {
                owners[rng.below(owners.len() as u64) as usize]
            };
            let validator = owners[rng.below(owners.len() as u64) as usize];
            let out = match action {
                0..=29 => {
                    let amount = btt(1 + u128::from(rng.below(40)));
                    if chain.balance(who) < amount {
                        continue;
                    }
                    if !pairs.contains(&(who, validator)) {
                        pairs.push((who, validator));
                    }
                    chain.send(who, amount, &StakeManager::delegateCall { validator })
                }
                30..=49 => {
                    let stake = chain
                        .view(&StakeManager::delegationOfCall {
                            delegator: who,
                            validator,
                        })
                        .stake;
                    let amount = if stake.is_zero() {
                        U256::from(1)
                    } else {
                        U256::from(rng.next()) % stake + U256::from(1)
                    };
                    chain.send(
                        who,
                        U256::ZERO,
                        &StakeManager::undelegateCall { validator, amount },
                    )
                }
                50..=64 => chain.send(who, U256::ZERO, &StakeManager::withdrawUnbondedCall {}),
                65..=84 => chain.send(
                    who,
                    U256::ZERO,
                    &StakeManager::claimRewardsCall { validator },
                ),
                85..=89 => {
                    let bps = rng.below(2000) as u16;
                    chain.send(
                        who,
                        U256::ZERO,
                        &StakeManager::setCommissionCall { commissionBps: bps },
                    )
                }
                90..=94 => {
                    let funder = delegators[0];
                    match rng.below(4) {
                        0 if chain.balance(funder) > btt(10) => {
                            if !pairs.contains(&(staker, validator)) {
                                pairs.push((staker, validator));
                            }
                            chain.send_to(
                                funder,
                                staker,
                                btt(5),
                                &ReentrantStaker::delegateCall {
                                    validator_: validator,
                                },
                            )
                        }
                        1 => chain.send_to(
                            funder,
                            staker,
                            U256::ZERO,
                            &ReentrantStaker::claimCall {},
                        ),
                        2 => chain.send_to(
                            funder,
                            staker,
                            U256::ZERO,
                            &ReentrantStaker::undelegateCall { amount: btt(1) },
                        ),
                        _ => chain.send_to(
                            funder,
                            staker,
                            U256::ZERO,
                            &ReentrantStaker::withdrawCall {},
                        ),
                    }
                }
                _ => {
                    let Some(k) = newcomers.pop() else { continue };
                    let out = chain.send(
                        k.owner,
                        btt(20 + u128::from(rng.below(100))),
                        &k.register_call(CHAIN_ID, 300),
                    );
                    if out.success {
                        owners.push(k.owner);
                        pairs.push((k.owner, k.owner));
                        all_delegators.push(k.owner);
                    }
                    out
                }
            };
            rounding_events += 1;
            if !out.success {
                refused += 1;
            }
        }
        block(&mut chain, &mut rng, proposer);
        rounding_events += owners.len() as u64 + 1;

        // Supply: every wei is genesis's or issuance's.
        assert_eq!(
            chain.total_balances(),
            chain.genesis_supply + chain.issued,
            "seed {seed}"
        );
        if chain.number.is_multiple_of(50) {
            check_accounts(
                &mut chain,
                &pairs,
                &owners,
                &all_delegators,
                rounding_events,
                seed,
            );
        }
    }
    check_accounts(
        &mut chain,
        &pairs,
        &owners,
        &all_delegators,
        rounding_events,
        seed,
    );
    println!("supply seed {seed}: {blocks} blocks, {refused} refused calls, invariants held");
}

fn check_accounts(
    chain: &mut Chain,
    pairs: &[(Address, Address)],
    owners: &[Address],
    delegators: &[Address],
    rounding_events: u64,
    seed: u64,
) {
    let (bonded, unbonding, rewards) = liabilities(chain, pairs, owners, delegators);
    let total_bonded = chain.view(&StakeManager::totalBondedCall {});
    let total_unbonding = chain.view(&StakeManager::totalUnbondingCall {});
    let total_rewards = chain.view(&StakeManager::totalRewardsOwedCall {});
    assert_eq!(bonded, total_bonded, "seed {seed}: bonded");
    let by_validator = owners.iter().fold(U256::ZERO, |acc, o| {
        acc + chain
            .view(&StakeManager::validatorInfoCall { owner: *o })
            .totalStake
    });
    assert_eq!(by_validator, total_bonded, "seed {seed}: validator totals");
    assert_eq!(unbonding, total_unbonding, "seed {seed}: unbonding");
    assert!(
        rewards <= total_rewards,
        "seed {seed}: rewards owed cover every claim"
    );
    assert!(
        total_rewards - rewards <= U256::from(rounding_events + pairs.len() as u64),
        "seed {seed}: rounding dust {} over {rounding_events} events",
        total_rewards - rewards
    );
    let owed = total_bonded + total_unbonding + total_rewards;
    assert!(
        chain.balance(STAKE_MANAGER_ADDRESS) >= owed,
        "seed {seed}: solvent"
    );
}
