//! Registration's key checks: only a valid key, held by the registering owner for this chain
//! and signer, gets in.

use alloy_primitives::{Address, Bytes, U256, hex};
use bttd_contracts::StakeManager;

use crate::harness::{CHAIN_ID, Chain, Genesis, btt, default_params};
use crate::keys::{ValidatorKeys, uncompressed_sig};

/// A point on G1's curve outside its prime-order subgroup (x = 5), uncompressed.
const NOT_IN_SUBGROUP: [u8; 96] = hex!(
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000005"
    "0d3c6da1211ebe797bc0790f1e6e7d669b180a8e59196825506d2bb2185f53715df092c8a7ceb64843ea7df67dbad60d"
);

pub fn genesis_of(keys: &[ValidatorKeys], stake: U256) -> Genesis {
    Genesis {
        params: default_params(),
        validators: keys
            .iter()
            .map(|k| (k.owner, k.signer, k.compressed(), stake))
            .collect(),
    }
}

fn chain_with_genesis() -> (Chain, Vec<ValidatorKeys>) {
    let keys: Vec<_> = (0..4).map(ValidatorKeys::new).collect();
    let chain = Chain::new(&genesis_of(&keys, btt(100)));
    (chain, keys)
}

#[test]
fn stake_manager_registration_accepts_bttd_keys() {
    let (mut chain, _) = chain_with_genesis();
    let k = ValidatorKeys::new(10);
    chain.fund(k.owner, btt(1000));
    let out = chain
        .send(k.owner, btt(50), &k.register_call(CHAIN_ID, 500))
        .ok();
    assert!(!out.logs.is_empty());
    let info = chain.view(&StakeManager::validatorInfoCall { owner: k.owner });
    assert_eq!(info.selfStake, btt(50));
    assert_eq!(info.totalStake, btt(50));
    assert_eq!(info.commissionBps, 500);
    assert_eq!(info.status, 1, "candidate");
    let stored = chain.view(&StakeManager::validatorKeysCall { owner: k.owner });
    // The contract's compression of the uncompressed key is bttd's compressed key.
    assert_eq!(stored.blsPublicKey, k.compressed());
    assert_eq!(stored.signer, k.signer);
    assert_eq!(chain.balance(k.owner), btt(950));
}

#[test]
fn stake_manager_bad_keys_are_refused() {
    let (mut chain, _) = chain_with_genesis();
    let k = ValidatorKeys::new(11);
    chain.fund(k.owner, btt(1000));
    let good = k.register_call(CHAIN_ID, 0);
    let with_key = |key: Bytes| StakeManager::registerValidatorCall {
        blsPublicKey: key,
        ..good.clone()
    };

    // The compressed form, wrong lengths, and flag bits.
    chain
        .send(k.owner, btt(50), &with_key(k.compressed()))
        .reverts_with("96-byte uncompressed G1 point expected");
    chain
        .send(k.owner, btt(50), &with_key(Bytes::from(vec![0u8; 95])))
        .reverts_with("96-byte uncompressed G1 point expected");
    let mut flagged = k.uncompressed().to_vec();
    flagged[0] |= 0x80;
    chain
        .send(k.owner, btt(50), &with_key(flagged.into()))
        .reverts_with("flag bits set");
    // The identity, in both its forms.
    chain
        .send(k.owner, btt(50), &with_key(Bytes::from(vec![0u8; 96])))
        .reverts_with("point at infinity");
    let mut infinity = vec![0u8; 96];
    infinity[0] = 0x40;
    chain
        .send(k.owner, btt(50), &with_key(infinity.into()))
        .reverts_with("flag bits set");
    // Off the curve.
    let mut off = k.uncompressed().to_vec();
    off[95] ^= 1;
    chain
        .send(k.owner, btt(50), &with_key(off.into()))
        .reverts_with("not on the curve or not in the subgroup");
    // On the curve, outside the subgroup.
    chain
        .send(
            k.owner,
            btt(50),
            &with_key(Bytes::copy_from_slice(&NOT_IN_SUBGROUP)),
        )
        .reverts_with("not on the curve or not in the subgroup");
    // A coordinate at or above p.
    let mut big = k.uncompressed().to_vec();
    big[0] = 0x1f;
    chain
        .send(k.owner, btt(50), &with_key(big.into()))
        .reverts_with("coordinate not below p");

    // Proofs of possession: another key's, one under the consensus DST, the identity.
    let other = ValidatorKeys::new(12);
    let pop = |p: Bytes| StakeManager::registerValidatorCall {
        proofOfPossession: p,
        ..good.clone()
    };
    chain
        .send(k.owner, btt(50), &pop(other.pop()))
        .reverts_with("invalid proof of possession");
    let consensus_dst = uncompressed_sig(k.bls.sign(k.compressed().as_ref()).as_slice());
    chain
        .send(k.owner, btt(50), &pop(consensus_dst))
        .reverts_with("invalid proof of possession");
    chain
        .send(k.owner, btt(50), &pop(Bytes::from(vec![0u8; 192])))
        .reverts_with("point at infinity");
    chain
        .send(k.owner, btt(50), &pop(Bytes::from(vec![0u8; 96])))
        .reverts_with("192-byte uncompressed G2 point expected");

    // Other checks before any key work.
    chain
        .send(k.owner, btt(9), &good)
        .reverts_with("self-stake below minSelfStake");
    chain
        .send(
            k.owner,
            btt(50),
            &StakeManager::registerValidatorCall {
                commissionBps: 10_001,
                ..good.clone()
            },
        )
        .reverts_with("commission over 10000 bps");

    // Nothing above registered anything; the good one still goes through.
    assert_eq!(chain.balance(k.owner), btt(1000));
    chain.send(k.owner, btt(50), &good).ok();
}

#[test]
fn stake_manager_reused_keys_and_signers_are_refused() {
    let (mut chain, genesis_keys) = chain_with_genesis();
    let k = ValidatorKeys::new(20);
    chain.fund(k.owner, btt(1000));
    chain
        .send(k.owner, btt(50), &k.register_call(CHAIN_ID, 0))
        .ok();
    chain
        .send(k.owner, btt(50), &k.register_call(CHAIN_ID, 0))
        .reverts_with("owner already registered");

    // The key's holder registers it again for a second owner, with a valid signature.
    let second_owner = Address::repeat_byte(0x51);
    let second_signer = Address::repeat_byte(0x52);
    chain.fund(second_owner, btt(1000));
    let again = StakeManager::registerValidatorCall {
        signer: second_signer,
        blsPublicKey: k.uncompressed(),
        proofOfPossession: k.pop(),
        registrationSignature: k.registration(CHAIN_ID, second_owner, second_signer),
        commissionBps: 0,
    };
    chain
        .send(second_owner, btt(50), &again)
        .reverts_with("BLS key already registered");

    // A genesis validator's key.
    let g = &genesis_keys[0];
    let genesis_key = StakeManager::registerValidatorCall {
        signer: second_signer,
        blsPublicKey: g.uncompressed(),
        proofOfPossession: g.pop(),
        registrationSignature: g.registration(CHAIN_ID, second_owner, second_signer),
        commissionBps: 0,
    };
    chain
        .send(second_owner, btt(50), &genesis_key)
        .reverts_with("BLS key already registered");

    // A fresh key with a signer already taken.
    let fresh = ValidatorKeys::new(21);
    let taken = StakeManager::registerValidatorCall {
        signer: k.signer,
        blsPublicKey: fresh.uncompressed(),
        proofOfPossession: fresh.pop(),
        registrationSignature: fresh.registration(CHAIN_ID, second_owner, k.signer),
        commissionBps: 0,
    };
    chain
        .send(second_owner, btt(50), &taken)
        .reverts_with("signer already registered");
}

#[test]
fn stake_manager_copied_registrations_are_refused() {
    let (mut chain, _) = chain_with_genesis();
    let k = ValidatorKeys::new(30);
    let thief = Address::repeat_byte(0x77);
    chain.fund(k.owner, btt(1000));
    chain.fund(thief, btt(1000));
    let pending = k.register_call(CHAIN_ID, 0);

    // Front-running with the pending transaction's exact calldata.
    chain
        .send(thief, btt(50), &pending)
        .reverts_with("invalid registration signature");
    // ... or with the thief's own signer.
    chain
        .send(
            thief,
            btt(50),
            &StakeManager::registerValidatorCall {
                signer: thief,
                ..pending.clone()
            },
        )
        .reverts_with("invalid registration signature");
    // A registration signed for another chain.
    let other_chain = StakeManager::registerValidatorCall {
        registrationSignature: k.registration(CHAIN_ID + 1, k.owner, k.signer),
        ..pending.clone()
    };
    chain
        .send(k.owner, btt(50), &other_chain)
        .reverts_with("invalid registration signature");
    // The proof of possession in the registration signature's place (another DST).
    chain
        .send(
            k.owner,
            btt(50),
            &StakeManager::registerValidatorCall {
                registrationSignature: k.pop(),
                ..pending.clone()
            },
        )
        .reverts_with("invalid registration signature");

    // The owner's own transaction still goes through.
    chain.send(k.owner, btt(50), &pending).ok();
    let info = chain.view(&StakeManager::validatorInfoCall { owner: thief });
    assert_eq!(info.status, 0);
}
