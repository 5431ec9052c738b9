//! Runtime tests without any network: real signed transactions through build, commit,
//! import on a second store, history reads and the fee split.

use std::sync::Arc;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_genesis::{Genesis, GenesisAccount};
use alloy_primitives::{Address, Bytes, TxKind, U256, address, hex};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;

use crate::storage::MemoryStore;
use crate::{Chain, ChainConfig, RecoveredTx, TxError};

pub(crate) const CHAIN_ID: u64 = 1337;
const FEE_POOL: Address = address!("0x0000000000000000000000000000000000001000");
pub(crate) const PROPOSER: Address = address!("0x00000000000000000000000000000000000000aa");
pub(crate) const GWEI: u128 = 1_000_000_000;

fn config() -> ChainConfig {
    ChainConfig {
        chain_id: CHAIN_ID,
        min_base_fee: GWEI as u64,
        fee_pool: FEE_POOL,
        block_gas_limit: 30_000_000,
        staking: None,
    }
}

pub(crate) fn key(i: u8) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&alloy_primitives::B256::with_last_byte(i + 1)).unwrap()
}

pub(crate) fn genesis(funded: &[Address]) -> Genesis {
    let mut genesis = Genesis {
        gas_limit: 30_000_000,
        ..Default::default()
    };
    genesis.config.chain_id = CHAIN_ID;
    for a in funded {
        genesis.alloc.insert(
            *a,
            GenesisAccount {
                balance: U256::from(10u128.pow(24)),
                ..Default::default()
            },
        );
    }
    genesis.alloc.insert(
        alloy_eips::eip2935::HISTORY_STORAGE_ADDRESS,
        GenesisAccount {
            nonce: Some(1),
            code: Some(alloy_eips::eip2935::HISTORY_STORAGE_CODE.clone()),
            ..Default::default()
        },
    );
    genesis
}

pub(crate) fn signed<T: SignableTransaction<alloy_primitives::Signature>>(
    key: &PrivateKeySigner,
    tx: T,
) -> RecoveredTx
where
    alloy_consensus::Signed<T>: Into<TxEnvelope>,
{
    let signature = key.sign_hash_sync(&tx.signature_hash()).unwrap();
    let raw = tx.into_signed(signature).into().encoded_2718();
    RecoveredTx::decode(&raw, CHAIN_ID, 30_000_000).unwrap()
}

pub(crate) fn transfer(
    key: &PrivateKeySigner,
    nonce: u64,
    to: Address,
    value: u64,
    tip: u128,
) -> RecoveredTx {
    signed(
        key,
        TxEip1559 {
            chain_id: CHAIN_ID,
            nonce,
            gas_limit: 21_000,
            max_fee_per_gas: 10 * GWEI,
            max_priority_fee_per_gas: tip,
            to: TxKind::Call(to),
            value: U256::from(value),
            ..Default::default()
        },
    )
}

pub(crate) fn open(genesis: &Genesis) -> Chain {
    Chain::open(Arc::new(MemoryStore::new()), config(), genesis).unwrap()
}

#[test]
fn transfers_pay_tip_to_proposer_and_base_fee_to_the_pool() {
    let (a, b) = (key(1), key(2));
    let genesis = genesis(&[a.address(), b.address()]);
    let chain = open(&genesis);
    let to = Address::with_last_byte(0x42);
    let txs = vec![
        transfer(&a, 0, to, 5, GWEI),
        transfer(&b, 0, to, 7, 2 * GWEI),
        transfer(&a, 1, to, 11, GWEI),
    ];
    let executed = chain.build(1, PROPOSER, txs).unwrap();
    assert!(executed.rejected.is_empty(), "{:?}", executed.rejected);
    let block = chain.commit(executed).unwrap();
    let base = block.header.base_fee_per_gas.unwrap() as u128;
    assert_eq!(base, GWEI, "the first block keeps the minimum base fee");
    assert_eq!(block.header.gas_used, 63_000);
    let state = chain.state();
    assert_eq!(state.balance(to).unwrap(), U256::from(23));
    assert_eq!(state.balance(FEE_POOL).unwrap(), U256::from(63_000 * base));
    assert_eq!(
        state.balance(PROPOSER).unwrap(),
        U256::from(21_000 * (GWEI + 2 * GWEI + GWEI))
    );
    assert_eq!(state.nonce(a.address()).unwrap(), 2);
    let spent_a = U256::from(10u128.pow(24)) - state.balance(a.address()).unwrap();
    assert_eq!(spent_a, U256::from(16 + 2 * 21_000 * (base + GWEI)));
    // Nothing was burned: supply is conserved.
    let total: U256 = [a.address(), b.address(), to, FEE_POOL, PROPOSER]
        .iter()
        .map(|x| state.balance(*x).unwrap())
        .sum();
    assert_eq!(total, U256::from(2 * 10u128.pow(24)));
}

#[test]
fn a_built_block_imports_on_another_node_with_the_same_hash() {
    let a = key(1);
    let genesis = genesis(&[a.address()]);
    let (producer, follower) = (open(&genesis), open(&genesis));
    assert_eq!(producer.genesis_hash(), follower.genesis_hash());
    for height in 1..=3u64 {
        let txs = (0..5).map(|i| {
            transfer(
                &a,
                (height - 1) * 5 + i,
                Address::with_last_byte(i as u8),
                1,
                GWEI,
            )
        });
        let block = producer
            .commit(producer.build(height, PROPOSER, txs).unwrap())
            .unwrap();
        let imported = follower.import(block.clone()).unwrap();
        assert_eq!(imported.block.hash(), block.hash());
        follower.commit(imported).unwrap();
    }
    assert_eq!(producer.head().state_root, follower.head().state_root);

    // A tampered block is refused and changes nothing.
    let mut bad = producer
        .commit(
            producer
                .build(4, PROPOSER, [transfer(&a, 15, PROPOSER, 1, GWEI)])
                .unwrap(),
        )
        .unwrap();
    let mut header = bad.header.clone().into_inner();
    header.state_root = alloy_primitives::B256::repeat_byte(1);
    bad.header = crate::block::seal(header);
    let head_before = follower.head().hash();
    let err = follower.import(bad).unwrap_err();
    assert!(err.to_string().contains("stateRoot"), "{err}");
    assert_eq!(follower.head().hash(), head_before);
}

#[test]
fn state_is_readable_at_every_height() {
    let a = key(1);
    let genesis = genesis(&[a.address()]);
    let chain = open(&genesis);
    let to = Address::with_last_byte(0x77);
    for n in 0..4u64 {
        chain
            .commit(
                chain
                    .build(n + 1, PROPOSER, [transfer(&a, n, to, 100, GWEI)])
                    .unwrap(),
            )
            .unwrap();
    }
    for height in 0..=4u64 {
        let view = chain.state_at(height).unwrap();
        assert_eq!(
            view.balance(to).unwrap(),
            U256::from(100 * height),
            "balance at {height}"
        );
        assert_eq!(
            view.nonce(a.address()).unwrap(),
            height,
            "nonce at {height}"
        );
    }
    assert!(chain.state_at(5).is_none());
    // EIP-2935: the history contract holds parent hashes.
    let parent_of_4 = chain.block_hash(3).unwrap().unwrap();
    // Block 4 stored its parent's hash at slot (4 - 1) % 8191.
    let slot = alloy_primitives::B256::from(U256::from(3u64));
    assert_eq!(
        chain
            .state()
            .storage(alloy_eips::eip2935::HISTORY_STORAGE_ADDRESS, slot)
            .unwrap(),
        U256::from_be_bytes(parent_of_4.0)
    );
}

#[test]
fn contracts_storage_and_reverts_produce_receipts_and_roots() {
    let a = key(1);
    let genesis = genesis(&[a.address()]);
    let chain = open(&genesis);
    // Creation code whose runtime stores calldata[0..32] at slot 0, or reverts when calldata is empty.
    // runtime: CALLDATASIZE ISZERO PUSH1 0x0c JUMPI  PUSH1 0 CALLDATALOAD PUSH1 0 SSTORE STOP  JUMPDEST PUSH1 0 DUP1 REVERT
    let runtime = hex!("3615600c57600035600055005b600080fd");
    let mut creation = hex!("6011600c60003960116000f3").to_vec();
    creation.extend_from_slice(&runtime);
    let deploy = signed(
        &a,
        TxLegacy {
            chain_id: Some(CHAIN_ID),
            nonce: 0,
            gas_price: 2 * GWEI,
            gas_limit: 200_000,
            to: TxKind::Create,
            value: U256::ZERO,
            input: Bytes::from(creation),
        },
    );
    let contract = a.address().create(0);
    let call = |nonce, data: Vec<u8>| {
        signed(
            &a,
            TxEip1559 {
                chain_id: CHAIN_ID,
                nonce,
                gas_limit: 100_000,
                max_fee_per_gas: 10 * GWEI,
                max_priority_fee_per_gas: GWEI,
                to: TxKind::Call(contract),
                input: Bytes::from(data),
                ..Default::default()
            },
        )
    };
    let executed = chain
        .build(
            1,
            PROPOSER,
            [
                deploy,
                call(1, U256::from(9).to_be_bytes_vec()),
                call(2, vec![]),
            ],
        )
        .unwrap();
    let receipts = executed.receipts.clone();
    let block = chain.commit(executed).unwrap();
    assert_eq!(block.body.transactions.len(), 3);
    assert!(receipts[0].status() && receipts[1].status());
    assert!(!receipts[2].status(), "the empty call reverts but is mined");
    assert_eq!(chain.state().code(contract).unwrap().as_ref(), &runtime);
    assert_eq!(
        chain.state().storage(contract, Default::default()).unwrap(),
        U256::from(9)
    );
    assert_eq!(
        chain.state().storage(contract, Default::default()).unwrap(),
        U256::from(9)
    );
    // Clearing the slot deletes it from state and trie; the root matches a fresh chain holding the same state.
    let executed = chain
        .build(2, PROPOSER, [call(3, U256::ZERO.to_be_bytes_vec())])
        .unwrap();
    assert!(executed.rejected.is_empty(), "{:?}", executed.rejected);
    assert!(executed.receipts[0].status());
    chain.commit(executed).unwrap();
    assert_eq!(
        chain.state().storage(contract, Default::default()).unwrap(),
        U256::ZERO
    );
    assert_eq!(
        chain
            .state_at(1)
            .unwrap()
            .storage(contract, Default::default())
            .unwrap(),
        U256::from(9)
    );
}

#[test]
fn stateless_checks_refuse_bad_transactions() {
    let a = key(1);
    let tx = |chain_id| TxEip1559 {
        chain_id,
        gas_limit: 21_000,
        max_fee_per_gas: GWEI,
        to: TxKind::Call(Address::ZERO),
        ..Default::default()
    };
    let raw = |t: TxEip1559| {
        let sig = a.sign_hash_sync(&t.signature_hash()).unwrap();
        TxEnvelope::from(t.into_signed(sig)).encoded_2718()
    };
    assert!(matches!(
        RecoveredTx::decode(&raw(tx(1)), CHAIN_ID, 30_000_000),
        Err(TxError::WrongChainId { have: 1, .. })
    ));
    assert!(matches!(
        RecoveredTx::decode(&[0x02, 0xc0], CHAIN_ID, 30_000_000),
        Err(TxError::Decode(_))
    ));
    let mut low_gas = tx(CHAIN_ID);
    low_gas.gas_limit = 20_000;
    assert!(matches!(
        RecoveredTx::decode(&raw(low_gas), CHAIN_ID, 30_000_000),
        Err(TxError::IntrinsicGasTooLow { .. })
    ));
    let mut huge = tx(CHAIN_ID);
    huge.gas_limit = 40_000_000;
    assert!(matches!(
        RecoveredTx::decode(&raw(huge), CHAIN_ID, 30_000_000),
        Err(TxError::GasLimitExceeded)
    ));
    // High s (EIP-2) is refused even though alloy would recover it.
    let t = tx(CHAIN_ID);
    let sig = a.sign_hash_sync(&t.signature_hash()).unwrap();
    let n = U256::from_str_radix(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        16,
    )
    .unwrap();
    let high = alloy_primitives::Signature::new(sig.r(), n - sig.s(), !sig.v());
    let bytes = TxEnvelope::from(t.into_signed(high)).encoded_2718();
    assert!(matches!(
        RecoveredTx::decode(&bytes, CHAIN_ID, 30_000_000),
        Err(TxError::InvalidSignature)
    ));
}

/// A corrupt head pointer or canonical index is an error at open, never a panic (issue 9,
/// fault 8: a corrupt database at start is an error message).
#[test]
fn a_corrupt_head_pointer_or_index_is_an_error_not_a_panic() {
    use crate::storage::{Column, KvStore, WriteBatch};
    let genesis = genesis(&[key(1).address()]);
    for (column, key, what) in [
        (Column::Meta, b"head".to_vec(), "head pointer"),
        (
            Column::NumberToHash,
            0u64.to_be_bytes().to_vec(),
            "canonical index",
        ),
    ] {
        let store = Arc::new(MemoryStore::new());
        Chain::open(store.clone(), config(), &genesis).unwrap();
        let mut batch = WriteBatch::default();
        batch.put(column, key.clone(), b"garbage".to_vec());
        store.write(batch).unwrap();
        match Chain::open(store, config(), &genesis) {
            Err(crate::ChainError::Corrupt { what: w, .. }) => assert_eq!(w, what),
            other => panic!("expected a corrupt {what} error, got {other:?}"),
        }
    }
}

/// The bytes beside a signed or certified id must be that block: same header, and the body
/// the header commits to. A body with one transaction removed keeps the header (and its hash)
/// but not the transactions root.
#[test]
fn decode_for_refuses_a_swapped_or_edited_body() {
    use crate::block::{Body, BodyMismatch, SealedBlock, WireBlock, seal};
    use alloy_consensus::proofs::calculate_transaction_root;
    use alloy_primitives::B256;
    let to = Address::repeat_byte(9);
    let transactions: Vec<TxEnvelope> = (0..2)
        .map(|n| transfer(&key(0), n, to, 1, GWEI).into_envelope())
        .collect();
    let header = alloy_consensus::Header {
        number: 7,
        transactions_root: calculate_transaction_root(&transactions),
        base_fee_per_gas: Some(GWEI as u64),
        withdrawals_root: Some(alloy_trie::EMPTY_ROOT_HASH),
        ..Default::default()
    };
    let block = SealedBlock {
        header: seal(header),
        body: Body {
            transactions,
            senders: Vec::new(),
        },
    };
    let id = block.hash();
    let bytes = WireBlock::encode(&block);
    assert_eq!(WireBlock::decode_for(&bytes, id).unwrap().hash(), id);
    assert!(matches!(
        WireBlock::decode_for(&bytes, B256::repeat_byte(1)),
        Err(BodyMismatch::Hash { .. })
    ));
    let mut edited = block.clone();
    edited.body.transactions.pop();
    assert!(matches!(
        WireBlock::decode_for(&WireBlock::encode(&edited), id),
        Err(BodyMismatch::TransactionsRoot { .. })
    ));
    assert!(matches!(
        WireBlock::decode_for(&bytes[1..], id),
        Err(BodyMismatch::Undecodable(_))
    ));
}

/// Issue 10, step 4: "only replay-protected transactions over RPC" is geth's admission policy
/// (`--rpc.allow-unprotected-txs`), not a block rule: a block holding a legacy transaction
/// signed without a chain id (as pre-EIP-155 deployment transactions such as the CREATE2
/// factory's are) is valid and imports, while RPC and gossip admission still refuse it.
#[test]
fn unprotected_transactions_are_refused_by_admission_but_valid_in_blocks() {
    let a = key(1);
    let genesis = genesis(&[a.address()]);
    let (producer, follower) = (open(&genesis), open(&genesis));
    let legacy = TxLegacy {
        chain_id: None,
        nonce: 0,
        gas_price: 2 * GWEI,
        gas_limit: 21_000,
        to: TxKind::Call(PROPOSER),
        value: U256::from(1),
        input: Bytes::new(),
    };
    let signature = a.sign_hash_sync(&legacy.signature_hash()).unwrap();
    let envelope: TxEnvelope = legacy.into_signed(signature).into();
    assert!(matches!(
        RecoveredTx::decode(&envelope.encoded_2718(), CHAIN_ID, 30_000_000),
        Err(TxError::NotReplayProtected)
    ));
    let tx = RecoveredTx::from_envelope(envelope, CHAIN_ID, 30_000_000)
        .expect("an unprotected transaction is a valid block transaction");
    let block = producer
        .commit(producer.build(1, PROPOSER, [tx]).unwrap())
        .unwrap();
    assert_eq!(block.body.transactions.len(), 1);
    let imported = follower.import(block.clone()).unwrap();
    assert_eq!(imported.block.hash(), block.hash());
}
