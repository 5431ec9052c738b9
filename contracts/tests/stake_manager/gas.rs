//! Gas of the user calls and of the system calls at 4 and 100 validators; the reward call
//! must not grow with the number of delegators.

use alloy_primitives::{Address, U256};
use bttd_contracts::StakeManager;

use crate::harness::{CHAIN_ID, Chain, Genesis, btt, default_params};
use crate::keys::ValidatorKeys;

struct Figures {
    reward_call: u64,
    reward_call_many_delegators: u64,
    end_epoch: u64,
}

/// A chain with `n` genesis validators (all in the set), `rounds` steady reward calls
/// measured before and after 50 delegators join every validator.
fn system_figures(n: u64) -> Figures {
    let keys: Vec<_> = (0..n).map(|i| ValidatorKeys::new(1000 + i)).collect();
    let mut params = default_params();
    params.maxValidators = U256::from(n);
    let genesis = Genesis {
        params,
        validators: keys
            .iter()
            .map(|k| (k.owner, k.signer, k.compressed(), btt(100)))
            .collect(),
    };
    let mut chain = Chain::new(&genesis);
    let mut signers: Vec<Address> = keys.iter().map(|k| k.owner).collect();
    signers.sort();
    let proposer = Address::repeat_byte(0xb3);
    chain.fund(proposer, btt(1));
    let reward = |chain: &mut Chain| {
        chain.credit_stake_manager(btt(1), true);
        chain.next_block();
        chain
            .system(&StakeManager::distributeBlockRewardCall {
                proposer,
                signers: signers.clone(),
            })
            .ok()
            .gas_used
    };
    // Warm-up: the first rewards turn zero slots non-zero.
    chain.next_block();
    reward(&mut chain);
    reward(&mut chain);
    let steady = reward(&mut chain);
    assert_eq!(reward(&mut chain), steady, "steady state");
    for i in 0..50u64 {
        let delegator = Address::left_padding_from(&(0x1_0000 + i).to_be_bytes());
        chain.fund(delegator, btt(1000));
        for k in &keys {
            chain
                .send(
                    delegator,
                    btt(1),
                    &StakeManager::delegateCall { validator: k.owner },
                )
                .ok();
        }
    }
    let many = reward(&mut chain);
    let end_epoch = chain.system(&StakeManager::endEpochCall {}).ok().gas_used;
    Figures {
        reward_call: steady,
        reward_call_many_delegators: many,
        end_epoch,
    }
}

#[test]
fn stake_manager_gas() {
    let keys: Vec<_> = (0..4).map(|i| ValidatorKeys::new(900 + i)).collect();
    let genesis = Genesis {
        params: default_params(),
        validators: keys
            .iter()
            .map(|k| (k.owner, k.signer, k.compressed(), btt(100)))
            .collect(),
    };
    let mut chain = Chain::new(&genesis);
    let newcomer = ValidatorKeys::new(950);
    chain.fund(newcomer.owner, btt(1000));
    let register = chain
        .send(
            newcomer.owner,
            btt(50),
            &newcomer.register_call(CHAIN_ID, 500),
        )
        .ok()
        .gas_used;
    let delegator = Address::repeat_byte(0xd9);
    chain.fund(delegator, btt(1000));
    let validator = keys[0].owner;
    let delegate_first = chain
        .send(
            delegator,
            btt(10),
            &StakeManager::delegateCall { validator },
        )
        .ok()
        .gas_used;
    chain.credit_stake_manager(btt(1), true);
    chain.next_block();
    let mut signers: Vec<Address> = keys.iter().map(|k| k.owner).collect();
    signers.sort();
    chain
        .system(&StakeManager::distributeBlockRewardCall {
            proposer: delegator,
            signers,
        })
        .ok();
    let delegate_more = chain
        .send(
            delegator,
            btt(10),
            &StakeManager::delegateCall { validator },
        )
        .ok()
        .gas_used;
    let undelegate = chain
        .send(
            delegator,
            U256::ZERO,
            &StakeManager::undelegateCall {
                validator,
                amount: btt(5),
            },
        )
        .ok()
        .gas_used;
    let claim = chain
        .send(
            delegator,
            U256::ZERO,
            &StakeManager::claimRewardsCall { validator },
        )
        .ok()
        .gas_used;
    for _ in 0..3 {
        chain.system(&StakeManager::endEpochCall {}).ok();
        chain.next_block();
    }
    let withdraw = chain
        .send(
            delegator,
            U256::ZERO,
            &StakeManager::withdrawUnbondedCall {},
        )
        .ok()
        .gas_used;

    let four = system_figures(4);
    let hundred = system_figures(100);
    for f in [&four, &hundred] {
        assert_eq!(
            f.reward_call, f.reward_call_many_delegators,
            "the reward call does not depend on delegators"
        );
    }
    println!("gas (transaction totals, 21,000 intrinsic included):");
    println!("  registerValidator          {register}");
    println!("  delegate (new delegation)  {delegate_first}");
    println!("  delegate (top-up)          {delegate_more}");
    println!("  undelegate                 {undelegate}");
    println!("  claimRewards               {claim}");
    println!("  withdrawUnbonded (1 entry) {withdraw}");
    println!(
        "  distributeBlockReward, 4 validators signing   {} (with 50 delegators each: {})",
        four.reward_call, four.reward_call_many_delegators
    );
    println!(
        "  distributeBlockReward, 100 validators signing {} (with 50 delegators each: {})",
        hundred.reward_call, hundred.reward_call_many_delegators
    );
    println!("  endEpoch, 4 validators     {}", four.end_epoch);
    println!("  endEpoch, 100 validators   {}", hundred.end_epoch);
    // Guards: well inside a 30M block and the 30M system-call budget.
    assert!(register < 1_000_000, "register {register}");
    assert!(hundred.reward_call < 5_000_000);
    assert!(hundred.end_epoch < 15_000_000);
}
