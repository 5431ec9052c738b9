//! Removing blocks above a height (the devnet's evm_revert and anvil_reset).
//!
//! Why it works: every committed block already records the previous value of each account
//! and slot it changed (the state history, docs/storage.md). What was missing is the list of
//! those keys per block; [`record_changes`] writes it (`block_changes[number]`) in the same
//! batch as the block. Unwinding block n reads that list, writes the previous values back to
//! the flat state, updates the path-keyed tries with them (a Merkle-Patricia trie is a
//! function of its contents, so the nodes come out as they were), removes the block's data,
//! history rows and indices, and moves the head to the parent, in one atomic batch. The
//! state root the update produces must equal the parent's `stateRoot`: anything else is a
//! corrupt database and the unwind stops with an error before writing.

use std::collections::{BTreeMap, BTreeSet};

use alloy_consensus::ReceiptEnvelope;
use alloy_primitives::{Address, B256, U256};
use alloy_rlp::Decodable;
use alloy_trie::TrieAccount;
use revm::database::states::{PlainStorageChangeset, StateChangeset};
use revm::state::AccountInfo;

use crate::block::{SealedBlock, SealedHeader};
use crate::chain::{ChainError, HEAD_KEY};
use crate::state;
use crate::storage::{Column, KvStore, WriteBatch, WriteOp};

/// A block removed by [`crate::Chain::unwind_to`], with its receipts (for removed logs).
#[derive(Debug, Clone)]
pub struct Unwound {
    pub block: SealedBlock,
    pub receipts: Vec<ReceiptEnvelope>,
}

const ACCOUNT_KEY: usize = 20;
const SLOT_KEY: usize = 52;

/// Adds block `number`'s change record to its commit batch: the addresses and the
/// address ‖ slot keys whose history rows the batch writes. Format: u32 BE count of
/// addresses, the addresses, then the 52-byte slot keys.
pub(crate) fn record_changes(batch: &mut WriteBatch, number: u64) {
    let suffix = number.to_be_bytes();
    let mut accounts = BTreeSet::new();
    let mut slots = BTreeSet::new();
    for op in batch.ops() {
        match op {
            WriteOp::Put(Column::AccountHistory, key, _)
                if key.len() == ACCOUNT_KEY + 8 && key.ends_with(&suffix) =>
            {
                accounts.insert(key[..ACCOUNT_KEY].to_vec());
            }
            WriteOp::Put(Column::StorageHistory, key, _)
                if key.len() == SLOT_KEY + 8 && key.ends_with(&suffix) =>
            {
                slots.insert(key[..SLOT_KEY].to_vec());
            }
            _ => {}
        }
    }
    let mut record = Vec::with_capacity(4 + accounts.len() * ACCOUNT_KEY + slots.len() * SLOT_KEY);
    record.extend_from_slice(&(accounts.len() as u32).to_be_bytes());
    for key in accounts.iter().chain(slots.iter()) {
        record.extend_from_slice(key);
    }
    batch.put(Column::BlockChanges, suffix.to_vec(), record);
}

fn corrupt(reason: String) -> ChainError {
    ChainError::Corrupt {
        what: "block change record",
        reason,
    }
}

/// What one block changed: the addresses, and the storage slots as (address, key).
type ChangeRecord = (Vec<Address>, Vec<(Address, B256)>);

/// The change record of block `number`.
fn read_record(store: &dyn KvStore, number: u64) -> Result<ChangeRecord, ChainError> {
    let record = store
        .get(Column::BlockChanges, &number.to_be_bytes())?
        .ok_or_else(|| corrupt(format!("block {number} has none")))?;
    let (count, rest) = record
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt(format!("block {number}: {} bytes", record.len())))?;
    let count = u32::from_be_bytes(*count) as usize;
    let accounts_len = count
        .checked_mul(ACCOUNT_KEY)
        .filter(|len| *len <= rest.len())
        .ok_or_else(|| corrupt(format!("block {number}: {count} accounts do not fit")))?;
    let (accounts, slots) = rest.split_at(accounts_len);
    if slots.len() % SLOT_KEY != 0 {
        return Err(corrupt(format!("block {number}: ragged slot keys")));
    }
    Ok((
        accounts
            .chunks(ACCOUNT_KEY)
            .map(Address::from_slice)
            .collect(),
        slots
            .chunks(SLOT_KEY)
            .map(|k| (Address::from_slice(&k[..20]), B256::from_slice(&k[20..])))
            .collect(),
    ))
}

fn history_key(prefix: &[u8], number: u64) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&number.to_be_bytes());
    key
}

/// The batch that removes `block` (the head) and makes `parent` the head again.
pub(crate) fn unwind_batch(
    store: &dyn KvStore,
    block: &SealedBlock,
    parent: &SealedHeader,
) -> Result<WriteBatch, ChainError> {
    let number = block.number();
    let (accounts, slots) = read_record(store, number)?;
    let mut batch = WriteBatch::default();
    let mut changes = StateChangeset::default();
    for address in accounts {
        let key = history_key(address.as_slice(), number);
        let old = store
            .get(Column::AccountHistory, &key)?
            .ok_or_else(|| corrupt(format!("block {number}: no history of {address}")))?;
        let info = if old.is_empty() {
            None
        } else {
            let account = TrieAccount::decode(&mut &old[..])
                .map_err(|e| corrupt(format!("block {number}: history of {address}: {e}")))?;
            Some(AccountInfo {
                balance: account.balance,
                nonce: account.nonce,
                code_hash: account.code_hash,
                ..Default::default()
            })
        };
        changes.accounts.push((address, info));
        batch.delete(Column::AccountHistory, key);
    }
    let mut storage: BTreeMap<Address, Vec<(U256, U256)>> = BTreeMap::new();
    for (address, slot) in slots {
        let key = history_key(&state::storage_key(address, &slot), number);
        let old = store
            .get(Column::StorageHistory, &key)?
            .ok_or_else(|| corrupt(format!("block {number}: no history of {address}/{slot}")))?;
        let value = if old.is_empty() {
            U256::ZERO
        } else {
            U256::decode(&mut &old[..])
                .map_err(|e| corrupt(format!("block {number}: history of {address}/{slot}: {e}")))?
        };
        storage
            .entry(address)
            .or_default()
            .push((U256::from_be_bytes(slot.0), value));
        batch.delete(Column::StorageHistory, key);
    }
    changes.storage = storage
        .into_iter()
        .map(|(address, storage)| PlainStorageChangeset {
            address,
            wipe_storage: false,
            storage,
        })
        .collect();
    let root = state::apply_changes(store, changes, &mut batch, None)?;
    if root != parent.state_root {
        return Err(ChainError::Corrupt {
            what: "state after unwinding",
            reason: format!(
                "block {number}: root {root}, parent's stateRoot {}",
                parent.state_root
            ),
        });
    }
    let hash = block.hash();
    batch.delete(Column::Headers, hash.as_slice());
    batch.delete(Column::Bodies, hash.as_slice());
    batch.delete(Column::Receipts, hash.as_slice());
    batch.delete(Column::NumberToHash, number.to_be_bytes());
    batch.delete(Column::Certificates, number.to_be_bytes());
    batch.delete(Column::BlockChanges, number.to_be_bytes());
    for tx in &block.body.transactions {
        batch.delete(Column::TxIndex, tx.tx_hash().as_slice());
    }
    batch.put(Column::Meta, HEAD_KEY, parent.hash().as_slice());
    Ok(batch)
}
