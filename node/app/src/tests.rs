//! The block rules and the staking wiring, over an in-memory chain of four validators.
use super::*;
use alloy_primitives::Bytes;
use bttd_engine::Application;
use bttd_genesis::{BttdParams, DevnetOptions, GenesisValidator, devnet_genesis};
use bttd_keys::ValidatorKeys;
use bttd_runtime::Chain;
use bttd_runtime::storage::MemoryStore;
use bttd_txpool::{Pool, PoolConfig};

const NOW: u64 = 1_700_000_000;

/// A chain whose genesis names four validators, as a voter sees it.
fn validator_app() -> (NodeApp, Arc<ConsensusInfo>) {
    let (app, info, _) = validator_app_with_epochs_of(BttdParams::default().epoch_length);
    (app, info)
}

/// [`validator_app`] with epochs of `epoch_length` blocks, and the validators' keys.
fn validator_app_with_epochs_of(
    epoch_length: u64,
) -> (NodeApp, Arc<ConsensusInfo>, Vec<ValidatorKeys>) {
    let keys: Vec<ValidatorKeys> = (0..4).map(|_| ValidatorKeys::generate()).collect();
    let params = BttdParams {
        validators: keys
            .iter()
            .map(|k| {
                GenesisValidator::new(k.address(), k.bls_public_key(), k.proof_of_possession(), 1)
            })
            .collect(),
        epoch_length,
        staking: bttd_genesis::StakingParams::devnet(),
        ..BttdParams::default()
    };
    let (spec, _) = devnet_genesis(&DevnetOptions {
        params,
        ..DevnetOptions::default()
    })
    .expect("genesis");
    let chain = Arc::new(
        Chain::open(
            Arc::new(MemoryStore::new()),
            spec.chain_config(),
            &spec.genesis,
        )
        .unwrap(),
    );
    let staking = spec.chain_config().staking.unwrap();
    let sets = Arc::new(ChainSets::new(chain.clone(), staking));
    let ctx = Arc::new(NodeContext::new(chain, Pool::new(PoolConfig::default())));
    let info = Arc::new(ConsensusInfo::new(sets.clone(), 0, 1 << 20, None));
    let verifier = Arc::new(bttd_consensus::BlsVerifier);
    (
        NodeApp::staking(ctx, info.clone(), verifier, sets),
        info,
        keys,
    )
}

/// A certificate for `block` at `height` signed by every validator of the set.
fn certify(
    app: &NodeApp,
    info: &ConsensusInfo,
    keys: &[ValidatorKeys],
    height: Height,
    block: B256,
) -> CommitCertificate {
    let set = info.sets.validator_set(height).unwrap();
    let mut certificate = CommitCertificate {
        height,
        round: 0,
        block_id: block,
        signature: Default::default(),
        signers: bttd_consensus::SignerBitmap::from_indices(set.len(), 0..set.len() as u32),
    };
    let msg = certificate.sign_bytes(&app.genesis_hash(), set.epoch());
    let signatures: Vec<_> = set
        .validators()
        .iter()
        .map(|v| {
            let key = keys
                .iter()
                .find(|k| k.bls_public_key() == v.public_key)
                .unwrap();
            key.bls.sign(&msg)
        })
        .collect();
    certificate.signature = bttd_consensus::BlsVerifier
        .aggregate(&signatures.iter().collect::<Vec<_>>())
        .unwrap();
    certificate
}

/// Issue 10 item 4: a syncing node checks a certified block by the same rules as a voter
/// (all but the clock). Before, it executed whatever `extraData` a certified block
/// carried, so its view of the next epoch's set went unchecked.
#[test]
fn a_synced_block_is_held_to_the_block_rules() {
    let (app, info, keys) = validator_app_with_epochs_of(2);
    let set = info.sets.validator_set(1).unwrap();
    let proposer = |height| set.validators()[set.proposer(height, 0) as usize].address;
    let (first, executed) = app.build(1, proposer(1), None, NOW).unwrap();
    app.commit(executed, &certify(&app, &info, &keys, 1, first.id))
        .unwrap();
    let parent = certify(&app, &info, &keys, 1, first.id);
    // Block 2 as `miner` builds it, its extraData then replaced (not an input of
    // execution, so only the commitment differs).
    let second = |next_set, miner| {
        let (_, mut executed) = app.build(2, miner, Some(parent.clone()), NOW + 1).unwrap();
        let extra = wire::ExtraData {
            parent: parent.clone(),
            next_set,
            evidence: Vec::new(),
        };
        executed.set_extra_data(extra.encode());
        Block {
            id: executed.block.hash(),
            payload: WireBlock::encode(&executed.block).into(),
        }
    };
    // Block 2 ends epoch 0: it must commit to the set of epoch 1, which its own
    // execution installs.
    let (_, honest) = app
        .build(2, proposer(2), Some(parent.clone()), NOW + 1)
        .unwrap();
    let expected = honest.next_set.as_ref().map(|s| s.commitment());
    assert!(expected.is_some());
    let err = app
        .execute_decided(&second(Some(B256::repeat_byte(7)), proposer(2)))
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::DecidedBlockInvalid(ValidationError::NextSet)
        ),
        "{err}"
    );
    let err = app.execute_decided(&second(None, proposer(2))).unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::DecidedBlockInvalid(ValidationError::ExtraData)
        ),
        "{err}"
    );
    let outsider = Address::repeat_byte(0x55);
    let err = app
        .execute_decided(&second(expected, outsider))
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::DecidedBlockInvalid(ValidationError::NotAValidator(_))
        ),
        "{err}"
    );
    app.execute_decided(&second(expected, proposer(2))).unwrap();
}

fn block_by(app: &NodeApp, miner: Address) -> Block {
    app.build(1, miner, None, NOW).unwrap().0
}

/// Fault 7: nothing checked `miner`, so a proposer could credit its tips (and its
/// `bor_getAuthor`) to any account. Voters refuse a block not mined by the proposer
/// that proposed it fresh.
#[test]
fn voters_refuse_a_block_whose_miner_is_not_the_proposer() {
    let (app, info) = validator_app();
    let set = info.sets.validator_set(1).unwrap();
    let proposer = set.proposer(1, 0) as usize;
    let own = set.validators()[proposer].address;
    let other = set.validators()[(proposer + 1) % 4].address;
    let err = app
        .verify(1, &block_by(&app, other), Some(own), NOW)
        .unwrap_err();
    assert!(
        matches!(err, ValidationError::NotTheProposer { .. }),
        "{err}"
    );
    assert!(app.verify(1, &block_by(&app, own), Some(own), NOW).is_ok());
    // A re-proposal carries no fresh proposer: its prevote quorum vouches for it.
    assert!(app.verify(1, &block_by(&app, other), None, NOW).is_ok());
}

/// Fault 3/4: bytes beside a signed or certified id that are not that block are refused
/// before anything executes them.
#[test]
fn a_payload_that_is_not_the_signed_block_is_refused() {
    let (app, info) = validator_app();
    let set = info.sets.validator_set(1).unwrap();
    let proposer = set.proposer(1, 0) as usize;
    let own = set.validators()[proposer].address;
    let real = block_by(&app, own);
    let swapped = Block {
        id: real.id,
        payload: block_by(&app, set.validators()[(proposer + 1) % 4].address).payload,
    };
    let err = app.verify(1, &swapped, Some(own), NOW).unwrap_err();
    assert!(err.to_string().contains("is not the block id"), "{err}");
    assert!(app.check_payload(&swapped).is_err());
    assert!(app.execute_decided(&swapped).is_err());
}

/// A signed call to StakeManager from dev account `index` of the test mnemonic.
fn stake_manager_call(
    chain_id: u64,
    index: u32,
    nonce: u64,
    input: Bytes,
    value: alloy_primitives::U256,
) -> Vec<u8> {
    use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
    use alloy_eips::eip2718::Encodable2718;
    use alloy_signer::SignerSync;
    let account = &bttd_genesis::dev_accounts(index + 1).unwrap()[index as usize];
    let key = alloy_signer_local::PrivateKeySigner::from_bytes(&account.private_key).unwrap();
    let tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit: 500_000,
        max_fee_per_gas: 10_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: alloy_primitives::TxKind::Call(bttd_contracts::STAKE_MANAGER_ADDRESS),
        value,
        access_list: Default::default(),
        input,
    };
    let signature = key.sign_hash_sync(&tx.signature_hash()).unwrap();
    let envelope: TxEnvelope = tx.into_signed(signature).into();
    envelope.encoded_2718()
}

/// `delegationOf(delegator, validator)` after block `number`: (stake, pending rewards).
fn delegation_of(
    app: &NodeApp,
    number: u64,
    delegator: Address,
    validator: Address,
) -> (alloy_primitives::U256, alloy_primitives::U256) {
    use alloy_sol_types::SolCall;
    use bttd_contracts::StakeManager::delegationOfCall;
    let out = bttd_runtime::staking::view_after(
        &app.context().chain,
        number,
        delegationOfCall {
            delegator,
            validator,
        }
        .abi_encode()
        .into(),
    )
    .unwrap();
    let r = delegationOfCall::abi_decode_returns(&out).unwrap();
    (r.stake, r.pendingRewards)
}

/// Builds the next block as its round-0 proposer and commits it with every validator's
/// precommit; returns it.
fn build_and_commit(
    app: &NodeApp,
    info: &ConsensusInfo,
    keys: &[ValidatorKeys],
    height: Height,
) -> SealedBlock {
    let set = info.sets.validator_set(height).unwrap();
    let proposer = set.validators()[set.proposer(height, 0) as usize].address;
    let parent = app.certificate(height - 1);
    let (block, executed) = app.build(height, proposer, parent, NOW + height).unwrap();
    let sealed = executed.block.clone();
    app.commit(executed, &certify(app, info, keys, height, block.id))
        .unwrap();
    sealed
}

/// Issue 12: the sets come from StakeManager. A delegation changes the next epoch's power;
/// block 2's rewards call pays block 1's pool to the four signers of its certificate by the
/// formula of docs/staking.md, to the wei; the epoch's last block commits to the set its
/// `endEpoch` installed, and the next epoch is decided by that set.
#[test]
fn sets_and_rewards_follow_stake_manager() {
    use alloy_primitives::U256;
    use alloy_sol_types::SolCall;
    let (app, info, keys) = validator_app_with_epochs_of(3);
    let chain = app.context().chain.clone();
    let chain_id = chain.config().chain_id;
    let btt = U256::from(bttd_genesis::WEI_PER_BTT);
    let target = keys[0].address();
    let delegator = bttd_genesis::dev_accounts(1).unwrap()[0].address;
    let delegate = bttd_contracts::StakeManager::delegateCall { validator: target }.abi_encode();
    app.context()
        .submit_raw(&stake_manager_call(
            chain_id,
            0,
            0,
            delegate.into(),
            btt * U256::from(5),
        ))
        .unwrap();

    let first = build_and_commit(&app, &info, &keys, 1);
    assert_eq!(
        first.body.transactions.len(),
        1,
        "the delegation is in block 1"
    );
    let receipts = chain.receipts(first.hash()).unwrap().unwrap();
    assert!(receipts[0].status(), "delegate succeeded");
    build_and_commit(&app, &info, &keys, 2);

    // Block 1's pool: its base fees plus the devnet's issuance of 1 BTT; 10% to its miner,
    // the rest to the four signers by their epoch-0 power (1 each), commission 0.
    let base_fee = U256::from(first.header.base_fee_per_gas.unwrap());
    let pool = base_fee * U256::from(first.header.gas_used) + btt;
    let rest = pool - pool * U256::from(1_000) / U256::from(10_000);
    let share = rest / U256::from(4);
    let scale = U256::from(10).pow(U256::from(30));
    let paid = |stake: U256, total: U256| stake * (share * scale / total) / scale;
    for k in &keys[1..] {
        let (stake, pending) = delegation_of(&app, 2, k.address(), k.address());
        assert_eq!(stake, btt);
        assert_eq!(pending, paid(btt, btt), "validator {}", k.address());
    }
    let six = btt * U256::from(6);
    assert_eq!(
        delegation_of(&app, 2, delegator, target),
        (btt * U256::from(5), paid(btt * U256::from(5), six))
    );
    assert_eq!(delegation_of(&app, 2, target, target).1, paid(btt, six));

    // Block 3 ends epoch 0: it commits to the set with the delegation counted.
    let third = build_and_commit(&app, &info, &keys, 3);
    let sets = app.staked.clone().unwrap();
    let next = sets.epoch(1).unwrap().unwrap();
    assert_eq!(next.staked.validators[0].owner, target);
    assert_eq!(next.staked.validators[0].power, 6);
    assert!(next.staked.validators[1..].iter().all(|v| v.power == 1));
    assert!(
        third
            .header
            .extra_data
            .ends_with(next.staked.commitment().as_slice()),
        "block 3's extraData ends with the commitment to epoch 1's set"
    );
    let set = info.sets.validator_set(4).unwrap();
    assert_eq!(set.epoch(), 1);
    assert_eq!(set.total_power(), 9);
    // Epoch 1 is decided by the new set; its blocks' certificates check against it.
    let fourth = build_and_commit(&app, &info, &keys, 4);
    assert!(app.certificate(4).is_some());
    assert_eq!(fourth.number(), 4);

    // Supply (docs/architecture.md): every account that exists holds, in sum, genesis plus
    // the issuance of each block since; nothing is burned or created elsewhere.
    let accounts: Vec<Address> = chain_accounts(&keys);
    let supply = |n: u64| -> U256 {
        let state = chain.state_at(n).unwrap();
        accounts.iter().map(|a| state.balance(*a).unwrap()).sum()
    };
    assert_eq!(supply(4), supply(0) + btt * U256::from(4));
}

/// Every account the test chain can have touched: the genesis alloc, the validators (miners)
/// and the fee pool.
fn chain_accounts(keys: &[ValidatorKeys]) -> Vec<Address> {
    let mut accounts: Vec<Address> = bttd_genesis::dev_accounts(10)
        .unwrap()
        .iter()
        .map(|a| a.address)
        .chain(keys.iter().map(|k| k.address()))
        .chain([
            bttd_contracts::STAKE_MANAGER_ADDRESS,
            bttd_contracts::BANDWIDTH_CHANNELS_ADDRESS,
            bttd_contracts::MULTICALL3_ADDRESS,
        ])
        .collect();
    accounts.sort_unstable();
    accounts.dedup();
    accounts
}

/// Issue 13: evidence of double-signing travels in a block's `extraData`. The proposer
/// includes what its node holds, a voter checks it against the set of the offence's height,
/// and the block's slashing call takes `slashDoubleSignBps` (5 %) of the stake bonded at the
/// offence, to the wei, and tombstones the offender, whom the next set leaves out. Forged
/// evidence, evidence against another height's set, evidence that does not conflict, the
/// same offence twice and stale evidence are refused by voters.
#[test]
fn evidence_in_a_block_slashes_the_double_signer_and_voters_refuse_bad_evidence() {
    use alloy_primitives::U256;
    use alloy_sol_types::SolCall;
    use bttd_consensus::{SignedVote, Vote, VoteType};
    let (app, info, keys) = validator_app_with_epochs_of(3);
    build_and_commit(&app, &info, &keys, 1);
    build_and_commit(&app, &info, &keys, 2);
    let chain = app.genesis_hash();
    let set = info.sets.validator_set(2).unwrap();
    let key_of = |index: usize| {
        keys.iter()
            .find(|k| k.bls_public_key() == set.validators()[index].public_key)
            .unwrap()
    };
    // Validator 1 precommitted two blocks at height 2, round 0.
    let vote = |signer: &ValidatorKeys, block: u8, epoch: u64| {
        let vote = Vote {
            vote_type: VoteType::Precommit,
            height: 2,
            round: 0,
            block: Some(B256::repeat_byte(block)),
            validator: 1,
        };
        let signature = signer.bls.sign(&vote.sign_bytes(&chain, epoch));
        Box::new(SignedVote { vote, signature })
    };
    let evidence_by =
        |second_signer: &ValidatorKeys, second_block: u8, epoch: u64| Evidence::DuplicateVote {
            epoch,
            first: vote(key_of(1), 1, epoch),
            second: vote(second_signer, second_block, epoch),
        };
    let double_sign = evidence_by(key_of(1), 2, 0);
    let offender = set.validators()[1].address; // owner = signer at genesis

    // Voters: block 3 as its proposer builds it, its evidence then replaced.
    let proposer = set.validators()[set.proposer(3, 0) as usize].address;
    let parent = app.certificate(2).unwrap();
    // Block 3 ends epoch 0 (of 3 blocks) and follows a set of 4.
    let extra_of = |executed: &ExecutedBlock| {
        let bytes = &executed.block.header.extra_data;
        wire::ExtraData::decode(bytes, 2, parent.block_id, 4, true).unwrap()
    };
    let carrying = |evidence: Vec<Evidence>| {
        let (_, mut executed) = app
            .build(3, proposer, Some(parent.clone()), NOW + 3)
            .unwrap();
        let extra = extra_of(&executed);
        executed.set_extra_data(wire::ExtraData { evidence, ..extra }.encode());
        Block {
            id: executed.block.hash(),
            payload: WireBlock::encode(&executed.block).into(),
        }
    };
    let refused =
        |evidence: Vec<Evidence>| match app.verify(3, &carrying(evidence), Some(proposer), NOW + 3)
        {
            Err(ValidationError::Evidence(e)) => e,
            other => panic!("expected an evidence error, got {other:?}"),
        };
    assert_eq!(
        refused(vec![evidence_by(key_of(2), 2, 0)]),
        EvidenceError::BadSignature,
        "the second vote is signed by another validator"
    );
    assert!(matches!(
        refused(vec![evidence_by(key_of(1), 2, 1)]),
        EvidenceError::WrongEpoch {
            named: 1,
            actual: 0,
            ..
        }
    ));
    assert_eq!(
        refused(vec![evidence_by(key_of(1), 1, 0)]),
        EvidenceError::NoConflict
    );
    assert_eq!(
        refused(vec![double_sign.clone(), double_sign.clone()]),
        EvidenceError::Repeated
    );
    // devnet: unbondingEpochs 2, so an offence of epoch 0 is admissible up to epoch 1's
    // last block (6), and stale from block 7.
    let rules = app.evidence_rules();
    assert!(rules.check(&double_sign, 6).unwrap().is_ok());
    assert_eq!(
        rules.check(&double_sign, 7).unwrap(),
        Err(EvidenceError::NotAdmissible {
            offence: 2,
            block: 7
        })
    );
    assert!(matches!(
        rules.check(&double_sign, 2).unwrap(),
        Err(EvidenceError::NotAdmissible { .. })
    ));

    // The proposer includes the evidence its node holds; a voter accepts the block.
    info.add_evidence(double_sign.clone());
    let (block, executed) = app
        .build(3, proposer, Some(parent.clone()), NOW + 3)
        .unwrap();
    assert_eq!(extra_of(&executed).evidence, vec![double_sign.clone()]);
    let stake = U256::from(bttd_genesis::WEI_PER_BTT); // power 1
    let cut = stake * U256::from(500) / U256::from(10_000);
    assert_eq!(executed.slashes.len(), 1);
    assert_eq!(executed.slashes[0].slashed, Some(cut));
    let voted = app.verify(3, &block, Some(proposer), NOW + 3).unwrap();
    assert_eq!(voted.slashes, executed.slashes);
    app.commit(voted, &certify(&app, &info, &keys, 3, block.id))
        .unwrap();

    // 5 % of the stake bonded at the offence, tombstoned, out of epoch 1's set.
    assert_eq!(delegation_of(&app, 3, offender, offender).0, stake - cut);
    let status = bttd_runtime::staking::view_after(
        &app.context().chain,
        3,
        bttd_contracts::StakeManager::validatorInfoCall { owner: offender }
            .abi_encode()
            .into(),
    )
    .unwrap();
    let status = bttd_contracts::StakeManager::validatorInfoCall::abi_decode_returns(&status)
        .unwrap()
        .status;
    assert_eq!(status, 3, "tombstoned");
    let next = info.sets.validator_set(4).unwrap();
    assert_eq!(next.len(), 3);
    assert!(next.validators().iter().all(|v| v.address != offender));
    // bttd_getEvidence: where it went and what it took; the proposer does not repeat it.
    let reports = info.evidence_reports();
    assert_eq!(reports.len(), 1);
    assert_eq!(
        reports[0].included,
        Some(bttd_engine::Inclusion {
            block: 3,
            slashed: Some(cut)
        })
    );
    let (block4, _) = app
        .build(
            4,
            next.validators()[next.proposer(4, 0) as usize].address,
            app.certificate(3),
            NOW + 4,
        )
        .unwrap();
    let sealed = WireBlock::decode_for(&block4.payload, block4.id).unwrap();
    let extra4 = wire::ExtraData::decode(&sealed.header.extra_data, 3, block.id, 4, false).unwrap();
    assert!(extra4.evidence.is_empty());
}
