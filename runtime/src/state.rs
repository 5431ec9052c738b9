//! World state at the head: flat reads for execution ([`StateView`], a revm `DatabaseRef`),
//! and the translation of a block's state changes into storage writes plus the new
//! Merkle-Patricia root ([`apply_changes`]).
//!
//! Layout (see docs/storage.md): accounts by address, storage by address ++ slot, code by
//! hash; the account trie and one storage trie per account are kept as path-keyed nodes and
//! updated incrementally, so a block's root costs what the block touched.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_rlp::{Decodable, Encodable};
use alloy_trie::{EMPTY_ROOT_HASH, TrieAccount};
use revm::bytecode::Bytecode;
use revm::database::states::StateChangeset;
use revm::database_interface::{DBErrorMarker, DatabaseRef};
use revm::primitives::KECCAK_EMPTY;
use revm::state::AccountInfo;

use crate::storage::{Column, KvStore, StorageError, WriteBatch};
use crate::trie::{self, Nibbles, NodeReader, TrieError};

/// A state read failed; execution treats this as fatal for the block.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Trie(#[from] TrieError),
    #[error("corrupt {what} for {key}: {reason}")]
    Corrupt {
        what: &'static str,
        key: String,
        reason: String,
    },
}

impl DBErrorMarker for StateError {}

/// Key of a storage slot in the flat `Storage` column.
pub fn storage_key(address: Address, slot: &B256) -> [u8; 52] {
    let mut key = [0u8; 52];
    key[..20].copy_from_slice(address.as_slice());
    key[20..].copy_from_slice(slot.as_slice());
    key
}

/// Reads the flat account record (the same RLP the trie leaf holds).
pub fn read_account(
    store: &dyn KvStore,
    address: Address,
) -> Result<Option<TrieAccount>, StateError> {
    let Some(bytes) = store.get(Column::Accounts, address.as_slice())? else {
        return Ok(None);
    };
    decode_account(address, &bytes).map(Some)
}

fn decode_account(address: Address, bytes: &[u8]) -> Result<TrieAccount, StateError> {
    TrieAccount::decode(&mut &bytes[..]).map_err(|e| StateError::Corrupt {
        what: "account",
        key: address.to_string(),
        reason: e.to_string(),
    })
}

fn decode_slot(address: Address, slot: B256, bytes: &[u8]) -> Result<U256, StateError> {
    U256::decode(&mut &bytes[..]).map_err(|e| StateError::Corrupt {
        what: "storage slot",
        key: format!("{address}/{slot}"),
        reason: e.to_string(),
    })
}

/// Reads a storage slot (zero when absent).
pub fn read_storage(store: &dyn KvStore, address: Address, slot: B256) -> Result<U256, StateError> {
    let Some(bytes) = store.get(Column::Storage, &storage_key(address, &slot))? else {
        return Ok(U256::ZERO);
    };
    decode_slot(address, slot, &bytes)
}

/// Reads code by hash (empty for the empty-code hash).
pub fn read_code(store: &dyn KvStore, code_hash: B256) -> Result<Bytes, StateError> {
    if code_hash == KECCAK_EMPTY {
        return Ok(Bytes::new());
    }
    Ok(store
        .get(Column::Code, code_hash.as_slice())?
        .map(Bytes::from)
        .unwrap_or_default())
}

/// A read-only view of the state after some block, for revm and RPC. The head is read from
/// flat state; an older block `n` is read through the history columns: the first change to a
/// key after `n` recorded the value the key had at `n`. revm's `State` caches what a block
/// touches on top of this.
#[derive(Clone, Copy)]
pub struct StateView<'a> {
    store: &'a dyn KvStore,
    /// None: the head.
    at: Option<u64>,
}

impl std::fmt::Debug for StateView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateView({:?})", self.at)
    }
}

fn account_history_key(address: Address, block: u64) -> [u8; 28] {
    let mut key = [0u8; 28];
    key[..20].copy_from_slice(address.as_slice());
    key[20..].copy_from_slice(&block.to_be_bytes());
    key
}

fn storage_history_key(address: Address, slot: &B256, block: u64) -> [u8; 60] {
    let mut key = [0u8; 60];
    key[..52].copy_from_slice(&storage_key(address, slot));
    key[52..].copy_from_slice(&block.to_be_bytes());
    key
}

/// The value recorded by the first change after `block` to the key `prefix` (`prefix ++ u64`
/// keys), if any change happened after `block`.
fn value_after(
    store: &dyn KvStore,
    column: Column,
    prefix: &[u8],
    block: u64,
) -> Result<Option<Vec<u8>>, StateError> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&(block + 1).to_be_bytes());
    Ok(store
        .seek(column, &key)?
        .filter(|(k, _)| k.len() == prefix.len() + 8 && k.starts_with(prefix))
        .map(|(_, v)| v))
}

impl<'a> StateView<'a> {
    /// The state at the head.
    pub fn new(store: &'a dyn KvStore) -> Self {
        Self { store, at: None }
    }
    /// The state after block `number` (which must not be above the head).
    pub fn at_block(store: &'a dyn KvStore, number: u64) -> Self {
        Self {
            store,
            at: Some(number),
        }
    }
    pub fn store(&self) -> &'a dyn KvStore {
        self.store
    }
    pub fn account(&self, address: Address) -> Result<Option<TrieAccount>, StateError> {
        if let Some(block) = self.at
            && let Some(old) = value_after(
                self.store,
                Column::AccountHistory,
                address.as_slice(),
                block,
            )?
        {
            if old.is_empty() {
                return Ok(None);
            }
            return decode_account(address, &old).map(Some);
        }
        read_account(self.store, address)
    }
    pub fn balance(&self, address: Address) -> Result<U256, StateError> {
        Ok(self
            .account(address)?
            .map(|a| a.balance)
            .unwrap_or_default())
    }
    pub fn nonce(&self, address: Address) -> Result<u64, StateError> {
        Ok(self.account(address)?.map(|a| a.nonce).unwrap_or_default())
    }
    pub fn code(&self, address: Address) -> Result<Bytes, StateError> {
        match self.account(address)? {
            Some(account) => read_code(self.store, account.code_hash),
            None => Ok(Bytes::new()),
        }
    }
    pub fn storage(&self, address: Address, slot: B256) -> Result<U256, StateError> {
        if let Some(block) = self.at
            && let Some(old) = value_after(
                self.store,
                Column::StorageHistory,
                &storage_key(address, &slot),
                block,
            )?
        {
            if old.is_empty() {
                return Ok(U256::ZERO);
            }
            return decode_slot(address, slot, &old);
        }
        read_storage(self.store, address, slot)
    }
}

impl DatabaseRef for StateView<'_> {
    type Error = StateError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        // `code: None` makes revm load the code by hash; AccountInfo's default would claim
        // the account has empty code.
        Ok(self.account(address)?.map(|a| AccountInfo {
            balance: a.balance,
            nonce: a.nonce,
            code_hash: a.code_hash,
            code: None,
            account_id: None,
        }))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, StateError> {
        let code = read_code(self.store, code_hash)?;
        Ok(if code.is_empty() {
            Bytecode::default()
        } else {
            Bytecode::new_raw(code)
        })
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, StateError> {
        self.storage(address, B256::from(index))
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, StateError> {
        Ok(self
            .store
            .get(Column::NumberToHash, &number.to_be_bytes())?
            .map(|h| B256::from_slice(&h))
            .unwrap_or_default())
    }
}

/// Trie nodes of the account trie.
struct AccountTrieNodes<'a>(&'a dyn KvStore);

impl NodeReader for AccountTrieNodes<'_> {
    fn read_node(&self, path: &Nibbles) -> Result<Option<Bytes>, TrieError> {
        self.0
            .get(Column::AccountTrie, &trie::encode_path(path))
            .map(|v| v.map(Bytes::from))
            .map_err(|e| TrieError::Storage(e.to_string()))
    }
}

/// Trie nodes of one account's storage trie (prefixed by the hashed address), or an empty
/// trie when the account's storage was wiped in this block.
struct StorageTrieNodes<'a> {
    store: &'a dyn KvStore,
    hashed_address: B256,
    wiped: bool,
}

impl NodeReader for StorageTrieNodes<'_> {
    fn read_node(&self, path: &Nibbles) -> Result<Option<Bytes>, TrieError> {
        if self.wiped {
            return Ok(None);
        }
        self.store
            .get(
                Column::StorageTrie,
                &storage_trie_key(&self.hashed_address, path),
            )
            .map(|v| v.map(Bytes::from))
            .map_err(|e| TrieError::Storage(e.to_string()))
    }
}

fn storage_trie_key(hashed_address: &B256, path: &Nibbles) -> Vec<u8> {
    let mut key = hashed_address.to_vec();
    key.extend_from_slice(&trie::encode_path(path));
    key
}

/// A reader for the proofs served by eth_getProof.
pub fn account_proof(store: &dyn KvStore, address: Address) -> Result<Vec<Bytes>, StateError> {
    Ok(trie::proof(&AccountTrieNodes(store), keccak256(address))?)
}

/// Storage proof for `slot` of `address` at the head.
pub fn storage_proof(
    store: &dyn KvStore,
    address: Address,
    slot: B256,
) -> Result<Vec<Bytes>, StateError> {
    let reader = StorageTrieNodes {
        store,
        hashed_address: keccak256(address),
        wiped: false,
    };
    Ok(trie::proof(&reader, keccak256(slot))?)
}

/// The root of the account trie as stored.
pub fn state_root(store: &dyn KvStore) -> Result<B256, StateError> {
    Ok(trie::root(&AccountTrieNodes(store))?)
}

fn rlp(value: &impl Encodable) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.length());
    value.encode(&mut out);
    out
}

#[derive(Default)]
struct AccountChange {
    /// `Some(None)`: the account no longer exists; `None`: info unchanged.
    info: Option<Option<AccountInfo>>,
    wipe_storage: bool,
    storage: Vec<(U256, U256)>,
}

/// Turns a block's state changes into writes on `batch` (flat state, code, trie nodes, and
/// the previous values as history of block `history_block`, if given) and returns the new
/// state root. Reads see the state before the block; nothing is written to the store here.
///
/// Storage wiped by a destroyed account has no per-slot history: since Cancun only an account
/// created in the same transaction can be destroyed, so it had no earlier storage.
pub fn apply_changes(
    store: &dyn KvStore,
    changes: StateChangeset,
    batch: &mut WriteBatch,
    history_block: Option<u64>,
) -> Result<B256, StateError> {
    let mut by_address: BTreeMap<Address, AccountChange> = BTreeMap::new();
    for (address, info) in changes.accounts {
        by_address.entry(address).or_default().info = Some(info);
    }
    for change in changes.storage {
        let entry = by_address.entry(change.address).or_default();
        entry.wipe_storage |= change.wipe_storage;
        entry.storage.extend(change.storage);
    }
    for (hash, code) in changes.contracts {
        let bytes = code.original_bytes();
        if !bytes.is_empty() {
            batch.put(Column::Code, hash.as_slice(), bytes.to_vec());
        }
    }

    let mut account_leaves = Vec::with_capacity(by_address.len());
    for (address, change) in by_address {
        let hashed_address = keccak256(address);
        let previous = read_account(store, address)?;
        if let Some(block) = history_block {
            let old = previous.as_ref().map(rlp).unwrap_or_default();
            batch.put(
                Column::AccountHistory,
                account_history_key(address, block).to_vec(),
                old,
            );
        }
        let info = match change.info {
            Some(info) => info,
            None => previous.as_ref().map(|a| AccountInfo {
                balance: a.balance,
                nonce: a.nonce,
                code_hash: a.code_hash,
                ..Default::default()
            }),
        };
        let Some(info) = info else {
            // Deleted (EIP-161 touched-empty, or destroyed): drop flat state and both tries.
            batch.delete(Column::Accounts, address.as_slice());
            if previous.is_some_and(|a| a.storage_root != EMPTY_ROOT_HASH) {
                batch.delete_prefix(Column::Storage, address.as_slice());
                batch.delete_prefix(Column::StorageTrie, hashed_address.as_slice());
            }
            account_leaves.push((hashed_address, None));
            continue;
        };

        let mut storage_root = previous
            .as_ref()
            .map_or(EMPTY_ROOT_HASH, |a| a.storage_root);
        let wiped = change.wipe_storage && storage_root != EMPTY_ROOT_HASH;
        if wiped {
            batch.delete_prefix(Column::Storage, address.as_slice());
            batch.delete_prefix(Column::StorageTrie, hashed_address.as_slice());
            storage_root = EMPTY_ROOT_HASH;
        }
        if !change.storage.is_empty() || wiped {
            let mut leaves = Vec::with_capacity(change.storage.len());
            for (slot, value) in change.storage {
                let slot = B256::from(slot);
                let key = storage_key(address, &slot);
                if let Some(block) = history_block {
                    let old = if wiped {
                        U256::ZERO
                    } else {
                        read_storage(store, address, slot)?
                    };
                    let old = if old.is_zero() { Vec::new() } else { rlp(&old) };
                    batch.put(
                        Column::StorageHistory,
                        storage_history_key(address, &slot, block).to_vec(),
                        old,
                    );
                }
                if value.is_zero() {
                    batch.delete(Column::Storage, key.to_vec());
                    leaves.push((keccak256(slot), None));
                } else {
                    let encoded = rlp(&value);
                    batch.put(Column::Storage, key.to_vec(), encoded.clone());
                    leaves.push((keccak256(slot), Some(Bytes::from(encoded))));
                }
            }
            let reader = StorageTrieNodes {
                store,
                hashed_address,
                wiped,
            };
            let update = trie::update(&reader, leaves)?;
            for (path, node) in update.writes {
                let key = storage_trie_key(&hashed_address, &path);
                match node {
                    Some(node) => batch.put(Column::StorageTrie, key, node.to_vec()),
                    None => batch.delete(Column::StorageTrie, key),
                }
            }
            storage_root = update.root;
        }
        let account = TrieAccount {
            nonce: info.nonce,
            balance: info.balance,
            storage_root,
            code_hash: info.code_hash,
        };
        let encoded = rlp(&account);
        batch.put(Column::Accounts, address.as_slice(), encoded.clone());
        account_leaves.push((hashed_address, Some(Bytes::from(encoded))));
    }

    let update = trie::update(&AccountTrieNodes(store), account_leaves)?;
    for (path, node) in update.writes {
        let key = trie::encode_path(&path);
        match node {
            Some(node) => batch.put(Column::AccountTrie, key, node.to_vec()),
            None => batch.delete(Column::AccountTrie, key),
        }
    }
    Ok(update.root)
}

#[cfg(test)]
mod tests {
    //! The incremental state root against a from-scratch one, over random blocks of account
    //! creations, updates, deletions, storage writes, storage clears and storage wipes.

    use std::collections::BTreeMap;

    use alloy_primitives::{Address, B256, U256, keccak256};
    use alloy_trie::root::{state_root_unhashed, storage_root_unhashed};
    use alloy_trie::{EMPTY_ROOT_HASH, TrieAccount};
    use proptest::prelude::*;
    use revm::database::states::{PlainStorageChangeset, StateChangeset};
    use revm::primitives::KECCAK_EMPTY;
    use revm::state::AccountInfo;

    use super::{StateView, apply_changes, state_root};
    use crate::storage::{KvStore, MemoryStore, WriteBatch};

    #[derive(Debug, Clone)]
    enum Op {
        Upsert {
            account: u8,
            nonce: u64,
            balance: u64,
            code: bool,
        },
        Delete {
            account: u8,
        },
        Store {
            account: u8,
            slot: u8,
            value: u8,
        },
        /// Destroyed and re-created in the block: storage starts empty, then these slots.
        Recreate {
            account: u8,
            slots: Vec<(u8, u8)>,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..12, 0u64..4, 0u64..1000, any::<bool>()).prop_map(
                |(account, nonce, balance, code)| Op::Upsert {
                    account,
                    nonce,
                    balance,
                    code
                }
            ),
            (0u8..12).prop_map(|account| Op::Delete { account }),
            (0u8..12, 0u8..8, 0u8..4).prop_map(|(account, slot, value)| Op::Store {
                account,
                slot,
                value
            }),
            (0u8..12, prop::collection::vec((0u8..8, 1u8..4), 0..3))
                .prop_map(|(account, slots)| Op::Recreate { account, slots }),
        ]
    }

    #[derive(Debug, Clone, Default)]
    struct Model {
        accounts: BTreeMap<Address, (AccountInfo, BTreeMap<U256, U256>)>,
    }

    impl Model {
        fn root(&self) -> B256 {
            state_root_unhashed(self.accounts.iter().map(|(address, (info, storage))| {
                let storage_root =
                    storage_root_unhashed(storage.iter().map(|(k, v)| (B256::from(*k), *v)));
                (
                    *address,
                    TrieAccount {
                        nonce: info.nonce,
                        balance: info.balance,
                        storage_root,
                        code_hash: info.code_hash,
                    },
                )
            }))
        }
    }

    fn info(nonce: u64, balance: u64, code: bool) -> AccountInfo {
        let code_hash = if code {
            keccak256([nonce as u8])
        } else {
            KECCAK_EMPTY
        };
        AccountInfo {
            nonce,
            balance: U256::from(balance),
            code_hash,
            code: None,
            account_id: None,
        }
    }

    /// Applies one block's ops to the model and returns the change set revm would report.
    fn block(model: &mut Model, ops: &[Op]) -> StateChangeset {
        let mut touched = BTreeMap::new();
        let mut wiped = BTreeMap::new();
        let mut slots: BTreeMap<Address, BTreeMap<U256, U256>> = BTreeMap::new();
        for op in ops {
            match op.clone() {
                Op::Upsert {
                    account,
                    nonce,
                    balance,
                    code,
                } => {
                    let address = Address::with_last_byte(account);
                    model.accounts.entry(address).or_default().0 = info(nonce, balance, code);
                    touched.insert(address, ());
                }
                Op::Delete { account } => {
                    let address = Address::with_last_byte(account);
                    if model.accounts.remove(&address).is_some() {
                        touched.insert(address, ());
                        wiped.insert(address, true);
                        slots.remove(&address);
                    }
                }
                Op::Store {
                    account,
                    slot,
                    value,
                } => {
                    let address = Address::with_last_byte(account);
                    let entry = model
                        .accounts
                        .entry(address)
                        .or_insert_with(|| (info(1, 1, true), BTreeMap::new()));
                    let (slot, value) = (U256::from(slot), U256::from(value));
                    if value.is_zero() {
                        entry.1.remove(&slot);
                    } else {
                        entry.1.insert(slot, value);
                    }
                    touched.insert(address, ());
                    slots.entry(address).or_default().insert(slot, value);
                }
                Op::Recreate {
                    account,
                    slots: new,
                } => {
                    let address = Address::with_last_byte(account);
                    let storage: BTreeMap<_, _> = new
                        .iter()
                        .map(|(s, v)| (U256::from(*s), U256::from(*v)))
                        .collect();
                    model
                        .accounts
                        .insert(address, (info(1, 5, true), storage.clone()));
                    touched.insert(address, ());
                    wiped.insert(address, true);
                    slots.insert(address, storage);
                }
            }
        }
        let accounts = touched
            .keys()
            .map(|a| (*a, model.accounts.get(a).map(|(i, _)| i.clone())))
            .collect();
        let storage = touched
            .keys()
            .filter(|a| wiped.contains_key(*a) || slots.contains_key(*a))
            .map(|a| PlainStorageChangeset {
                address: *a,
                wipe_storage: wiped.contains_key(a),
                storage: slots
                    .get(a)
                    .map(|s| s.iter().map(|(k, v)| (*k, *v)).collect())
                    .unwrap_or_default(),
            })
            .collect();
        StateChangeset {
            accounts,
            storage,
            contracts: Vec::new(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        #[test]
        fn incremental_state_root_matches_a_from_scratch_trie(blocks in prop::collection::vec(prop::collection::vec(op(), 1..12), 1..10)) {
            let store = MemoryStore::new();
            let mut model = Model::default();
            for (number, ops) in blocks.iter().enumerate() {
                let changes = block(&mut model, ops);
                let mut batch = WriteBatch::default();
                let root = apply_changes(&store, changes, &mut batch, Some(number as u64 + 1)).unwrap();
                store.write(batch).unwrap();
                prop_assert_eq!(root, model.root());
                prop_assert_eq!(state_root(&store).unwrap(), root);
                let view = StateView::new(&store);
                for (address, (info, storage)) in &model.accounts {
                    let account = view.account(*address).unwrap().unwrap();
                    prop_assert_eq!(account.balance, info.balance);
                    let expected = storage_root_unhashed(storage.iter().map(|(k, v)| (B256::from(*k), *v)));
                    prop_assert_eq!(account.storage_root, expected);
                    for (slot, value) in storage {
                        prop_assert_eq!(view.storage(*address, B256::from(*slot)).unwrap(), *value);
                    }
                }
            }
            if model.accounts.is_empty() {
                prop_assert_eq!(state_root(&store).unwrap(), EMPTY_ROOT_HASH);
            }
        }
    }
}
