//! Devnet blocks: state overrides carried by a block (on the record: the header's state root
//! covers them) and unwinding blocks back to an earlier head with the exact earlier state.

use alloy_consensus::TxEip1559;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};

use crate::cheats::{AccountOverride, DevBlock};
use crate::state;
use crate::tests::{CHAIN_ID, GWEI, PROPOSER, genesis, key, open, signed, transfer};

/// Init code that stores 1 in slot 0 and deploys no code: a created account with storage.
const STORE_ONE: [u8; 6] = [0x60, 0x01, 0x60, 0x00, 0x55, 0x00];

#[test]
fn cheat_blocks_are_on_the_record_and_unwinding_restores_every_earlier_head() {
    let a = key(1);
    let chain = open(&genesis(&[a.address()]));
    let to = Address::with_last_byte(0x42);
    let target = Address::with_last_byte(0x77);

    let block1 = chain
        .commit(
            chain
                .build(1, PROPOSER, vec![transfer(&a, 0, to, 5, GWEI)])
                .unwrap(),
        )
        .unwrap();
    let create = signed(
        &a,
        TxEip1559 {
            chain_id: CHAIN_ID,
            nonce: 1,
            gas_limit: 100_000,
            max_fee_per_gas: 10 * GWEI,
            max_priority_fee_per_gas: GWEI,
            to: TxKind::Create,
            input: Bytes::copy_from_slice(&STORE_ONE),
            ..Default::default()
        },
    );
    let created = a.address().create(1);
    let block2 = chain
        .commit(chain.build(2, PROPOSER, vec![create]).unwrap())
        .unwrap();
    assert_eq!(
        chain.state().storage(created, B256::ZERO).unwrap(),
        U256::from(1)
    );

    let cheat = DevBlock {
        timestamp: 3,
        beneficiary: PROPOSER,
        base_fee: Some(7 * GWEI as u64),
        overrides: vec![
            AccountOverride {
                address: target,
                balance: Some(U256::from(123)),
                nonce: Some(9),
                code: Some(Bytes::from_static(&[0x60, 0x00])),
                storage: vec![(B256::with_last_byte(1), B256::with_last_byte(2))],
            },
            AccountOverride {
                address: to,
                balance: Some(U256::from(1)),
                ..Default::default()
            },
        ],
        extra_data: Bytes::from_static(b"anvil_setBalance"),
        ..Default::default()
    };
    let block3 = chain.commit(chain.build_devnet(cheat).unwrap()).unwrap();
    assert_eq!(block3.header.base_fee_per_gas, Some(7 * GWEI as u64));
    assert_eq!(
        state::state_root(chain.store()).unwrap(),
        block3.header.state_root
    );
    let view = chain.state();
    assert_eq!(view.balance(target).unwrap(), U256::from(123));
    assert_eq!(view.nonce(target).unwrap(), 9);
    assert_eq!(
        view.code(target).unwrap(),
        Bytes::from_static(&[0x60, 0x00])
    );
    assert_eq!(
        view.storage(target, B256::with_last_byte(1)).unwrap(),
        U256::from(2)
    );
    assert_eq!(view.balance(to).unwrap(), U256::from(1));
    // History still answers for the block before the cheat.
    assert_eq!(
        chain.state_at(2).unwrap().balance(to).unwrap(),
        U256::from(5)
    );

    let later = transfer(&a, 2, to, 3, GWEI);
    let later_hash = later.hash();
    chain
        .commit(chain.build(4, PROPOSER, vec![later]).unwrap())
        .unwrap();

    let removed = chain.unwind_to(2).unwrap();
    assert_eq!(
        removed.iter().map(|u| u.block.number()).collect::<Vec<_>>(),
        vec![4, 3]
    );
    assert_eq!(chain.head().hash(), block2.hash());
    assert_eq!(
        state::state_root(chain.store()).unwrap(),
        block2.header.state_root
    );
    assert_eq!(chain.state().account(target).unwrap(), None);
    assert_eq!(chain.state().balance(to).unwrap(), U256::from(5));
    assert_eq!(chain.block_hash(3).unwrap(), None);
    assert_eq!(chain.transaction_location(later_hash).unwrap(), None);

    chain.unwind_to(1).unwrap();
    assert_eq!(chain.head().hash(), block1.hash());
    assert_eq!(
        state::state_root(chain.store()).unwrap(),
        block1.header.state_root
    );
    assert_eq!(chain.state().account(created).unwrap(), None);
    assert_eq!(
        chain.state().storage(created, B256::ZERO).unwrap(),
        U256::ZERO
    );
    assert_eq!(chain.state().nonce(a.address()).unwrap(), 1);

    // The chain goes on from there, and the unwound transaction can be mined again.
    let again = chain
        .commit(
            chain
                .build(5, PROPOSER, vec![transfer(&a, 1, to, 3, GWEI)])
                .unwrap(),
        )
        .unwrap();
    assert_eq!(again.number(), 2);
    assert_eq!(
        state::state_root(chain.store()).unwrap(),
        again.header.state_root
    );
    assert!(chain.unwind_to(0).unwrap().len() == 2);
    assert_eq!(chain.head().number, 0);
    assert_eq!(
        state::state_root(chain.store()).unwrap(),
        chain.header_by_number(0).unwrap().unwrap().state_root
    );
}
