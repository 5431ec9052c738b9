//! Slashing (issue 13): double-signing takes `slashDoubleSignBps` of the stake bonded at the
//! offence, from the validator and its delegators, bonded or unbonding since, and tombstones
//! it; downtime jails and takes `slashDowntimeBps`; `unjail()` after `jailEpochs`.

use alloy_primitives::{Address, U256};
use alloy_sol_types::SolEvent;
use bttd_contracts::StakeManager;

use crate::harness::{CHAIN_ID, Chain, Outcome, btt};
use crate::keys::ValidatorKeys;
use crate::registration::genesis_of;

const JAILED: u8 = 2;
const TOMBSTONED: u8 = 3;
const ACTIVE: u8 = 4;
const CANDIDATE: u8 = 1;

fn status(chain: &mut Chain, owner: Address) -> u8 {
    chain
        .view(&StakeManager::validatorInfoCall { owner })
        .status
}

fn stake(chain: &mut Chain, delegator: Address, validator: Address) -> U256 {
    chain
        .view(&StakeManager::delegationOfCall {
            delegator,
            validator,
        })
        .stake
}

fn entries(chain: &mut Chain, delegator: Address) -> Vec<U256> {
    chain
        .view(&StakeManager::unbondingOfCall { delegator })
        .iter()
        .map(|u| u.amount)
        .collect()
}

/// Wei the contract owes to stakers (the rest of its balance is the reward pool).
fn owed(chain: &mut Chain) -> U256 {
    chain.view(&StakeManager::totalBondedCall {})
        + chain.view(&StakeManager::totalUnbondingCall {})
        + chain.view(&StakeManager::totalRewardsOwedCall {})
}

fn delegate(chain: &mut Chain, from: Address, validator: Address, amount: U256) {
    chain
        .send(from, amount, &StakeManager::delegateCall { validator })
        .ok();
}

fn undelegate(chain: &mut Chain, from: Address, validator: Address, amount: U256) {
    chain
        .send(
            from,
            U256::ZERO,
            &StakeManager::undelegateCall { validator, amount },
        )
        .ok();
}

fn double_sign(chain: &mut Chain, owner: Address, offence_block: u64) -> Outcome {
    chain
        .system(&StakeManager::slashDoubleSignCall {
            owner,
            offenceBlock: offence_block,
            round: 0,
            kind: 0,
        })
        .ok()
}

fn slashed_amount(outcome: &Outcome) -> Option<U256> {
    outcome
        .logs
        .iter()
        .find_map(|l| StakeManager::Slashed::decode_log_data(&l.data).ok())
        .map(|e| e.amount)
}

fn ignored_reason(outcome: &Outcome) -> Option<String> {
    outcome
        .logs
        .iter()
        .find_map(|l| StakeManager::DoubleSignIgnored::decode_log_data(&l.data).ok())
        .map(|e| e.reason)
}

fn end_epoch(chain: &mut Chain) {
    chain.system(&StakeManager::endEpochCall {}).ok();
    chain.next_block();
}

/// 5 % of `amount`, floored as the contract floors it.
fn five_percent(amount: U256) -> U256 {
    amount * U256::from(500) / U256::from(10_000)
}

#[test]
fn stake_manager_double_sign_slashes_the_stake_bonded_at_the_offence_to_the_wei() {
    let keys: Vec<_> = (0..4).map(ValidatorKeys::new).collect();
    let mut chain = Chain::new(&genesis_of(&keys, btt(100)));
    let v = keys[0].owner;
    let [a, b, c] = [0xa1, 0xb1, 0xc1].map(Address::repeat_byte);
    for who in [a, b, c] {
        chain.fund(who, btt(1000));
    }
    let supply = chain.total_balances();

    // Before the offence (block 6): A bonds 40; B bonds 30 and undelegates 10 (an entry that
    // left before the offence: not slashable).
    delegate(&mut chain, a, v, btt(40)); // block 1
    chain.next_block();
    delegate(&mut chain, b, v, btt(30)); // block 2
    chain.next_block();
    undelegate(&mut chain, b, v, btt(10)); // block 3
    // Two undelegations in one block share an entry.
    undelegate(&mut chain, b, v, btt(1));
    assert_eq!(entries(&mut chain, b), vec![btt(11)]);
    while chain.number < 7 {
        chain.next_block();
    }
    // After it: B undelegates 5 (all bonded at the offence); A adds 10 then undelegates 15
    // (the newest stake leaves first: 10 new, 5 bonded at the offence); C bonds 50.
    undelegate(&mut chain, b, v, btt(5)); // block 7
    chain.next_block();
    delegate(&mut chain, a, v, btt(10)); // block 8
    delegate(&mut chain, c, v, btt(50));
    chain.next_block();
    undelegate(&mut chain, a, v, btt(15)); // block 9
    chain.next_block();

    let owed_before = owed(&mut chain);
    let total_before = chain
        .view(&StakeManager::validatorInfoCall { owner: v })
        .totalStake;
    let outcome = double_sign(&mut chain, v, 6);

    // The model: each part of the stake bonded at block 6, floored separately.
    let self_cut = five_percent(btt(100));
    let a_bonded_cut = five_percent(btt(35)); // 40 bonded at the offence, 5 of it left
    let a_entry_cut = five_percent(btt(5));
    let b_bonded_cut = five_percent(btt(14)); // 19 bonded at the offence, 5 of it left
    let b_entry_cut = five_percent(btt(5));
    let bonded_cut = self_cut + a_bonded_cut + b_bonded_cut;
    let total_cut = bonded_cut + a_entry_cut + b_entry_cut;
    assert_eq!(slashed_amount(&outcome), Some(total_cut));

    assert_eq!(stake(&mut chain, v, v), btt(100) - self_cut);
    assert_eq!(stake(&mut chain, a, v), btt(35) - a_bonded_cut);
    assert_eq!(entries(&mut chain, a), vec![btt(15) - a_entry_cut]);
    assert_eq!(stake(&mut chain, b, v), btt(14) - b_bonded_cut);
    assert_eq!(entries(&mut chain, b), vec![btt(11), btt(5) - b_entry_cut]);
    assert_eq!(
        stake(&mut chain, c, v),
        btt(50),
        "stake bonded after the offence"
    );
    let info = chain.view(&StakeManager::validatorInfoCall { owner: v });
    assert_eq!(info.totalStake, total_before - bonded_cut);
    assert_eq!(info.status, TOMBSTONED);

    // The slashed wei stay in the contract, owed to nobody: the next block's reward pool.
    assert_eq!(owed(&mut chain), owed_before - total_cut);
    assert_eq!(chain.total_balances(), supply, "slashing moves no wei out");

    // The same offence again, or another offence of a tombstoned validator: nothing changes.
    let again = double_sign(&mut chain, v, 6);
    assert_eq!(slashed_amount(&again), None);
    assert_eq!(
        ignored_reason(&again).as_deref(),
        Some("offence already slashed")
    );
    let other = double_sign(&mut chain, v, 7);
    assert_eq!(
        ignored_reason(&other).as_deref(),
        Some("validator already tombstoned")
    );
    assert_eq!(stake(&mut chain, a, v), btt(35) - a_bonded_cut);

    // Out of the next set, and never back: no delegation, no re-registration of the owner
    // or the key.
    end_epoch(&mut chain);
    let set = chain.view(&StakeManager::validatorSetCall {});
    assert!(!set.owners.contains(&v));
    chain
        .send(c, btt(1), &StakeManager::delegateCall { validator: v })
        .reverts_with("validator tombstoned");
    chain
        .send(v, U256::ZERO, &StakeManager::unjailCall {})
        .reverts_with("validator tombstoned");
    chain.fund(v, btt(100));
    chain
        .send(v, btt(10), &keys[0].register_call(CHAIN_ID, 0))
        .reverts_with("owner already registered");

    // Delegators still withdraw what is left once unbonding completes.
    end_epoch(&mut chain);
    end_epoch(&mut chain);
    let before = chain.balance(a);
    chain
        .send(a, U256::ZERO, &StakeManager::withdrawUnbondedCall {})
        .ok();
    assert_eq!(chain.balance(a) - before, btt(15) - a_entry_cut);
}

#[test]
fn stake_manager_refuses_stale_future_and_unauthorised_evidence() {
    let keys: Vec<_> = (0..4).map(ValidatorKeys::new).collect();
    let mut chain = Chain::new(&genesis_of(&keys, btt(100)));
    let v = keys[1].owner;
    while chain.number < 5 {
        chain.next_block();
    }
    // Only the protocol slashes.
    chain
        .send(
            keys[2].owner,
            U256::ZERO,
            &StakeManager::slashDoubleSignCall {
                owner: v,
                offenceBlock: 3,
                round: 0,
                kind: 0,
            },
        )
        .reverts_with("only the system caller");
    // Not an offence of the past.
    let future = double_sign(&mut chain, v, 5);
    assert_eq!(
        ignored_reason(&future).as_deref(),
        Some("offence not before this block")
    );
    let unknown = double_sign(&mut chain, Address::repeat_byte(0x77), 3);
    assert_eq!(ignored_reason(&unknown).as_deref(), Some("not a validator"));
    // unbondingEpochs = 2: an offence of epoch 0 is slashable while the current epoch is
    // below 2, when every entry that left after it is still unbonding.
    end_epoch(&mut chain);
    end_epoch(&mut chain);
    let stale = double_sign(&mut chain, v, 3);
    assert_eq!(
        ignored_reason(&stale).as_deref(),
        Some("evidence older than the unbonding period")
    );
    assert_eq!(stake(&mut chain, v, v), btt(100));
    assert_eq!(status(&mut chain, v), ACTIVE);
    // An offence of epoch 1 (blocks 11..20) still is.
    while chain.number <= 12 {
        chain.next_block();
    }
    let fresh = double_sign(&mut chain, v, 12);
    assert_eq!(slashed_amount(&fresh), Some(five_percent(btt(100))));
}

/// Rewards call for the block before this one, signed by `signers` (owners, ascending).
fn reward(chain: &mut Chain, signers: &[Address]) -> Outcome {
    let out = chain
        .system(&StakeManager::distributeBlockRewardCall {
            proposer: signers[0],
            signers: signers.to_vec(),
        })
        .ok();
    chain.next_block();
    out
}

#[test]
fn stake_manager_downtime_jails_slashes_and_unjails_after_jail_epochs() {
    let keys: Vec<_> = (0..4).map(ValidatorKeys::new).collect();
    let mut chain = Chain::new(&genesis_of(&keys, btt(100)));
    let mut owners: Vec<Address> = keys.iter().map(|k| k.owner).collect();
    owners.sort();
    let (offline, online) = (owners[3], &owners[..3]);
    // downtimeWindow 20 and downtimeMinSignedBps 5000: 10 misses a window are tolerated.
    // 10 misses in window 0 (blocks 1..20) and 10 in window 1: never jailed.
    chain.next_block(); // the rewards call of block h runs in block h + 1
    for _ in 0..10 {
        reward(&mut chain, online);
    }
    for _ in 0..10 {
        reward(&mut chain, &owners);
    }
    for _ in 0..10 {
        reward(&mut chain, online);
    }
    assert_eq!(
        status(&mut chain, offline),
        ACTIVE,
        "10 misses a window are tolerated"
    );
    let (missed_window, missed) = {
        let u = chain.view(&StakeManager::uptimeCall { owner: offline });
        (u.window, u.missed)
    };
    assert_eq!((missed_window, missed), (1, 10));

    // The 11th miss of window 1 jails it and takes 1 bps of its stake.
    let out = reward(&mut chain, online);
    assert_eq!(slashed_amount(&out), Some(btt(100) / U256::from(10_000)));
    assert_eq!(status(&mut chain, offline), JAILED);
    assert_eq!(
        stake(&mut chain, offline, offline),
        btt(100) - btt(100) / U256::from(10_000)
    );
    // Jailed: not counted again, out of the next set, no unjail within jailEpochs (1).
    let again = reward(&mut chain, online);
    assert_eq!(slashed_amount(&again), None);
    chain
        .send(offline, U256::ZERO, &StakeManager::unjailCall {})
        .reverts_with("still jailed");
    end_epoch(&mut chain);
    let set = chain.view(&StakeManager::validatorSetCall {});
    assert!(!set.owners.contains(&offline));
    chain
        .send(online[0], U256::ZERO, &StakeManager::unjailCall {})
        .reverts_with("not jailed");
    chain
        .send(offline, U256::ZERO, &StakeManager::unjailCall {})
        .ok();
    assert_eq!(status(&mut chain, offline), CANDIDATE);
    end_epoch(&mut chain);
    let set = chain.view(&StakeManager::validatorSetCall {});
    assert!(
        set.owners.contains(&offline),
        "back in the set after unjail"
    );
    assert_eq!(status(&mut chain, offline), ACTIVE);
}
