//! The whole lifecycle of a validator and a delegation, through the views and events.

use alloy_primitives::{Address, U256};
use alloy_sol_types::SolEvent;
use bttd_contracts::StakeManager;

use crate::harness::{CHAIN_ID, Chain, btt};
use crate::keys::ValidatorKeys;
use crate::registration::genesis_of;

fn status(chain: &mut Chain, owner: Address) -> u8 {
    chain
        .view(&StakeManager::validatorInfoCall { owner })
        .status
}

fn end_epoch(chain: &mut Chain) {
    chain.system(&StakeManager::endEpochCall {}).ok();
    chain.next_block();
}

#[test]
fn stake_manager_lifecycle() {
    let genesis_keys: Vec<_> = (0..4).map(ValidatorKeys::new).collect();
    let mut chain = Chain::new(&genesis_of(&genesis_keys, btt(100)));
    let owners: Vec<Address> = genesis_keys.iter().map(|k| k.owner).collect();

    // Genesis: epoch 0's set is the genesis validators, power = stake / 1 BTT.
    let set = chain.view(&StakeManager::validatorSetCall {});
    assert_eq!(set.epoch, U256::ZERO);
    assert_eq!(set.owners.len(), 4);
    for (i, owner) in set.owners.iter().enumerate() {
        let k = genesis_keys
            .iter()
            .find(|k| k.owner == *owner)
            .expect("genesis owner");
        assert_eq!(set.signers[i], k.signer);
        assert_eq!(set.blsKeys[i], k.compressed());
        assert_eq!(set.powers[i], U256::from(100));
    }
    // Equal stakes: ordered by address.
    let mut sorted = owners.clone();
    sorted.sort();
    assert_eq!(set.owners, sorted);
    assert_eq!(status(&mut chain, owners[0]), 4);

    // Only the system caller ends epochs and pays rewards.
    chain
        .send(owners[0], U256::ZERO, &StakeManager::endEpochCall {})
        .reverts_with("only the system caller");
    chain
        .send(
            owners[0],
            U256::ZERO,
            &StakeManager::distributeBlockRewardCall {
                proposer: owners[0],
                signers: vec![],
            },
        )
        .reverts_with("only the system caller");

    // A newcomer registers with more stake than anyone: a candidate until the epoch ends.
    let newcomer = ValidatorKeys::new(100);
    chain.fund(newcomer.owner, btt(1000));
    chain
        .send(
            newcomer.owner,
            btt(150),
            &newcomer.register_call(CHAIN_ID, 1000),
        )
        .ok();
    assert_eq!(status(&mut chain, newcomer.owner), 1);
    assert_eq!(
        chain.view(&StakeManager::activeValidatorsCall {}),
        sorted,
        "the set changes only at the epoch's end"
    );

    // A delegator stakes with a genesis validator.
    let delegator = Address::repeat_byte(0xd1);
    chain.fund(delegator, btt(100));
    chain
        .send(
            delegator,
            btt(1) - U256::from(1),
            &StakeManager::delegateCall {
                validator: owners[1],
            },
        )
        .reverts_with("delegation below minDelegation");
    chain
        .send(
            delegator,
            btt(20),
            &StakeManager::delegateCall {
                validator: Address::repeat_byte(0x42),
            },
        )
        .reverts_with("not a validator");
    let out = chain
        .send(
            delegator,
            btt(20),
            &StakeManager::delegateCall {
                validator: owners[1],
            },
        )
        .ok();
    let event = StakeManager::Delegated::decode_log_data(&out.logs[0].data).expect("Delegated");
    assert_eq!(
        (event.delegator, event.validator, event.amount),
        (delegator, owners[1], btt(20))
    );
    let d = chain.view(&StakeManager::delegationOfCall {
        delegator,
        validator: owners[1],
    });
    assert_eq!(d.stake, btt(20));

    // Epoch 1: newcomer (150) and owners[1] (120) first; of the three at 100, the two lowest
    // addresses; one genesis validator drops out (maxValidators = 4).
    end_epoch(&mut chain);
    let set = chain.view(&StakeManager::validatorSetCall {});
    assert_eq!(set.epoch, U256::from(1));
    assert_eq!(set.owners[0], newcomer.owner);
    assert_eq!(set.powers[0], U256::from(150));
    assert_eq!(set.owners[1], owners[1]);
    assert_eq!(set.powers[1], U256::from(120));
    let mut rest: Vec<Address> = owners.iter().copied().filter(|o| *o != owners[1]).collect();
    rest.sort();
    assert_eq!(&set.owners[2..], &rest[..2]);
    assert_eq!(status(&mut chain, newcomer.owner), 4);
    assert_eq!(
        status(&mut chain, rest[2]),
        1,
        "dropped out: a candidate again"
    );

    // Commission: +100 bps per epoch at most, never above 10,000; lowering is free.
    let set_commission = |bps| StakeManager::setCommissionCall { commissionBps: bps };
    chain
        .send(newcomer.owner, U256::ZERO, &set_commission(1101))
        .reverts_with("commission rises over 100 bps");
    chain
        .send(newcomer.owner, U256::ZERO, &set_commission(1100))
        .ok();
    chain
        .send(newcomer.owner, U256::ZERO, &set_commission(1101))
        .reverts_with("commission rises over 100 bps");
    chain
        .send(newcomer.owner, U256::ZERO, &set_commission(500))
        .ok();
    chain
        .send(newcomer.owner, U256::ZERO, &set_commission(1100))
        .ok();
    end_epoch(&mut chain);
    chain
        .send(newcomer.owner, U256::ZERO, &set_commission(1200))
        .ok();
    chain
        .send(owners[0], U256::ZERO, &set_commission(10_001))
        .reverts_with("commission over 10000 bps");
    let info = chain.view(&StakeManager::validatorInfoCall {
        owner: newcomer.owner,
    });
    assert_eq!(info.commissionBps, 1200);

    // Signer rotation: the set carries the new signer from the next epoch.
    let new_signer = Address::repeat_byte(0x5e);
    chain
        .send(
            newcomer.owner,
            U256::ZERO,
            &StakeManager::setSignerCall { signer: owners[0] },
        )
        .ok();
    chain
        .send(
            newcomer.owner,
            U256::ZERO,
            &StakeManager::setSignerCall { signer: new_signer },
        )
        .ok();
    chain
        .send(
            owners[2],
            U256::ZERO,
            &StakeManager::setSignerCall { signer: new_signer },
        )
        .reverts_with("signer already registered");
    chain
        .send(
            owners[2],
            U256::ZERO,
            &StakeManager::setSignerCall {
                signer: newcomer.signer,
            },
        )
        .reverts_with("signer already registered");
    let set = chain.view(&StakeManager::validatorSetCall {});
    assert_eq!(set.signers[0], newcomer.signer);
    end_epoch(&mut chain);
    let set = chain.view(&StakeManager::validatorSetCall {});
    assert_eq!(set.signers[0], new_signer);

    // Undelegation: unbonding entries, at most 7 per pair, no early withdrawal.
    let epoch = chain.view(&StakeManager::currentEpochCall {});
    chain
        .send(
            delegator,
            U256::ZERO,
            &StakeManager::undelegateCall {
                validator: owners[1],
                amount: btt(21),
            },
        )
        .reverts_with("amount above stake");
    for _ in 0..7 {
        chain
            .send(
                delegator,
                U256::ZERO,
                &StakeManager::undelegateCall {
                    validator: owners[1],
                    amount: btt(1),
                },
            )
            .ok();
        chain.next_block(); // undelegations of one block share an entry
    }
    chain
        .send(
            delegator,
            U256::ZERO,
            &StakeManager::undelegateCall {
                validator: owners[1],
                amount: btt(1),
            },
        )
        .reverts_with("too many unbonding entries");
    let unbonding = chain.view(&StakeManager::unbondingOfCall { delegator });
    assert_eq!(unbonding.len(), 7);
    for u in &unbonding {
        assert_eq!(u.validator, owners[1]);
        assert_eq!(u.amount, btt(1));
        assert_eq!(U256::from(u.completesAtEpoch), epoch + U256::from(2));
    }
    assert_eq!(
        chain
            .view(&StakeManager::delegationOfCall {
                delegator,
                validator: owners[1]
            })
            .stake,
        btt(13)
    );
    let before = chain.balance(delegator);
    chain
        .send(
            delegator,
            U256::ZERO,
            &StakeManager::withdrawUnbondedCall {},
        )
        .reverts_with("nothing unbonded to withdraw");
    end_epoch(&mut chain);
    chain
        .send(
            delegator,
            U256::ZERO,
            &StakeManager::withdrawUnbondedCall {},
        )
        .reverts_with("nothing unbonded to withdraw");
    end_epoch(&mut chain);
    chain
        .send(
            delegator,
            U256::ZERO,
            &StakeManager::withdrawUnbondedCall {},
        )
        .ok();
    assert_eq!(chain.balance(delegator), before + btt(7));
    assert!(
        chain
            .view(&StakeManager::unbondingOfCall { delegator })
            .is_empty()
    );
    chain
        .send(
            delegator,
            U256::ZERO,
            &StakeManager::withdrawUnbondedCall {},
        )
        .reverts_with("nothing unbonded to withdraw");

    // A validator leaves by undelegating its self-stake below minSelfStake (10 BTT).
    let leaver = owners[1];
    let out = chain
        .send(
            leaver,
            U256::ZERO,
            &StakeManager::undelegateCall {
                validator: leaver,
                amount: btt(91),
            },
        )
        .ok();
    assert!(
        out.logs
            .iter()
            .any(|l| StakeManager::ValidatorLeft::decode_log_data(&l.data).is_ok()),
        "ValidatorLeft emitted"
    );
    assert_eq!(
        status(&mut chain, leaver),
        4,
        "still active until the epoch ends"
    );
    end_epoch(&mut chain);
    assert_eq!(status(&mut chain, leaver), 0);
    // It no longer costs endEpoch anything: pruned from the candidate list.
    assert_eq!(
        chain.view(&StakeManager::validatorCountCall {}),
        U256::from(4)
    );
    let active = chain.view(&StakeManager::activeValidatorsCall {});
    assert!(!active.contains(&leaver));
    assert_eq!(active.len(), 4, "the dropped-out candidate is back");
    assert!(active.contains(&rest[2]));
    // Its delegator still holds a delegation it can undelegate.
    chain
        .send(
            delegator,
            U256::ZERO,
            &StakeManager::undelegateCall {
                validator: leaver,
                amount: btt(13),
            },
        )
        .ok();
    // Topping the self-stake back up makes it a candidate again.
    chain.fund(leaver, btt(100));
    chain
        .send(
            leaver,
            btt(100),
            &StakeManager::delegateCall { validator: leaver },
        )
        .ok();
    assert_eq!(status(&mut chain, leaver), 1);
    assert_eq!(
        chain.view(&StakeManager::validatorCountCall {}),
        U256::from(5)
    );
    end_epoch(&mut chain);
    assert!(
        chain
            .view(&StakeManager::activeValidatorsCall {})
            .contains(&leaver),
        "back in the set with 109 BTT"
    );
}

/// The names and types of issue 12 are the product interface.
#[test]
fn stake_manager_interface_matches_issue_12() {
    use alloy_sol_types::SolCall;
    use bttd_contracts::STAKE_MANAGER_ADDRESS;
    let signatures = [
        StakeManager::registerValidatorCall::SIGNATURE,
        StakeManager::delegateCall::SIGNATURE,
        StakeManager::undelegateCall::SIGNATURE,
        StakeManager::withdrawUnbondedCall::SIGNATURE,
        StakeManager::claimRewardsCall::SIGNATURE,
        StakeManager::setCommissionCall::SIGNATURE,
        StakeManager::setSignerCall::SIGNATURE,
        StakeManager::validatorInfoCall::SIGNATURE,
        StakeManager::delegationOfCall::SIGNATURE,
        StakeManager::unbondingOfCall::SIGNATURE,
        StakeManager::activeValidatorsCall::SIGNATURE,
    ];
    assert_eq!(
        signatures,
        [
            "registerValidator(address,bytes,bytes,bytes,uint16)",
            "delegate(address)",
            "undelegate(address,uint256)",
            "withdrawUnbonded()",
            "claimRewards(address)",
            "setCommission(uint16)",
            "setSigner(address)",
            "validatorInfo(address)",
            "delegationOf(address,address)",
            "unbondingOf(address)",
            "activeValidators()",
        ]
    );
    assert_eq!(
        STAKE_MANAGER_ADDRESS,
        alloy_primitives::address!("0x0000000000000000000000000000000000001000")
    );
    let keys: Vec<_> = (0..1).map(|i| ValidatorKeys::new(700 + i)).collect();
    let mut chain = Chain::new(&genesis_of(&keys, btt(10)));
    assert_eq!(
        chain.view(&StakeManager::SYSTEM_CALLERCall {}),
        alloy_primitives::address!("0xfffffffffffffffffffffffffffffffffffffffe")
    );
    assert_eq!(
        chain.view(&StakeManager::proposerBonusBpsCall {}),
        U256::from(1000)
    );
    // The statuses, as numbered by the issue.
    assert_eq!(chain.view(&StakeManager::STATUS_NONECall {}), 0);
    assert_eq!(chain.view(&StakeManager::STATUS_CANDIDATECall {}), 1);
    assert_eq!(chain.view(&StakeManager::STATUS_JAILEDCall {}), 2);
    assert_eq!(chain.view(&StakeManager::STATUS_TOMBSTONEDCall {}), 3);
    assert_eq!(chain.view(&StakeManager::STATUS_ACTIVECall {}), 4);
}
