//! Devnet state overrides ("cheats": anvil_setBalance, anvil_setCode, anvil_setNonce,
//! anvil_setStorageAt) as part of a block, so they are on the record.
//!
//! Why a block: a test suite that sets a balance and then checks `eth_getProof`, a receipts
//! root or a block hash must see a chain whose headers commit to every state it can read.
//! anvil edits its state in place; bttd instead mines one block whose state transition is the
//! block's system call, its transactions (none for a cheat block) and then the overrides, so
//! the header's `stateRoot` covers the change and the state history records the previous
//! values (which is what lets `evm_revert` unwind the block). docs/devnet.md documents it.
//!
//! Only the single producer of `bttd devnet` builds such blocks: a voter or an importing node
//! would refuse them (their state root is not what re-execution gives).

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use revm::bytecode::Bytecode;
use revm::database::states::{PlainStorageChangeset, StateChangeset};
use revm::primitives::KECCAK_EMPTY;
use revm::state::AccountInfo;

use crate::state::{StateError, StateView};

/// New values for one account; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountOverride {
    pub address: Address,
    pub balance: Option<U256>,
    pub nonce: Option<u64>,
    /// New runtime code (empty: no code).
    pub code: Option<Bytes>,
    /// Storage slots and their new values.
    pub storage: Vec<(B256, B256)>,
}

/// Applies `overrides` on top of a block's change set (the state after its transactions):
/// each named field replaces what the block or the state before it left.
pub(crate) fn merge(
    view: StateView<'_>,
    changes: &mut StateChangeset,
    overrides: &[AccountOverride],
) -> Result<(), StateError> {
    let mut infos: BTreeMap<Address, Option<AccountInfo>> =
        std::mem::take(&mut changes.accounts).into_iter().collect();
    let mut slots: BTreeMap<Address, PlainStorageChangeset> = BTreeMap::new();
    for change in std::mem::take(&mut changes.storage) {
        slots
            .entry(change.address)
            .and_modify(|existing| {
                existing.wipe_storage |= change.wipe_storage;
                existing.storage.extend(change.storage.iter().copied());
            })
            .or_insert(change);
    }
    for item in overrides {
        let current = match infos.get(&item.address) {
            Some(info) => info.clone(),
            None => view.account(item.address)?.map(|a| AccountInfo {
                balance: a.balance,
                nonce: a.nonce,
                code_hash: a.code_hash,
                ..Default::default()
            }),
        };
        let mut info = current.unwrap_or_default();
        info.code = None;
        if let Some(balance) = item.balance {
            info.balance = balance;
        }
        if let Some(nonce) = item.nonce {
            info.nonce = nonce;
        }
        if let Some(code) = &item.code {
            if code.is_empty() {
                info.code_hash = KECCAK_EMPTY;
            } else {
                let hash = keccak256(code);
                info.code_hash = hash;
                changes
                    .contracts
                    .push((hash, Bytecode::new_raw(code.clone())));
            }
        }
        infos.insert(item.address, Some(info));
        if !item.storage.is_empty() {
            let entry = slots
                .entry(item.address)
                .or_insert_with(|| PlainStorageChangeset {
                    address: item.address,
                    wipe_storage: false,
                    storage: Vec::new(),
                });
            for (slot, value) in &item.storage {
                let slot = U256::from_be_bytes(slot.0);
                let value = U256::from_be_bytes(value.0);
                // The last write of a slot wins (the block's own, then each override's).
                entry.storage.retain(|(s, _)| *s != slot);
                entry.storage.push((slot, value));
            }
        }
    }
    // A slot written twice by the block itself keeps its last value only.
    for change in slots.values_mut() {
        let mut last: BTreeMap<U256, U256> = BTreeMap::new();
        for (slot, value) in change.storage.drain(..) {
            last.insert(slot, value);
        }
        change.storage = last.into_iter().collect();
    }
    changes.accounts = infos.into_iter().collect();
    changes.storage = slots.into_values().collect();
    Ok(())
}

/// What the devnet's producer asks for: a child of the head with this timestamp (raised to the
/// parent's if below), optionally a chosen base fee (anvil_setNextBlockBaseFeePerGas), the
/// transactions to try in order and the overrides applied after them.
#[derive(Debug, Clone, Default)]
pub struct DevBlock {
    pub timestamp: u64,
    pub beneficiary: Address,
    pub base_fee: Option<u64>,
    pub transactions: Vec<crate::RecoveredTx>,
    pub overrides: Vec<AccountOverride>,
    /// The header's `extraData` (the devnet names the cheat a block carries there).
    pub extra_data: Bytes,
}
