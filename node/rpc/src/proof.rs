//! eth_getProof (EIP-1186): an account and some of its storage slots with Merkle-Patricia
//! proofs against a block's stateRoot, so light clients and bridges can check state without
//! trusting the node.
//!
//! Why it looks like this:
//! - **Head only.** Trie nodes are stored by path and overwritten by each commit, so only the
//!   head's trie exists; history columns keep old values, not old nodes. An older block is
//!   refused with -32000 "proofs are only served for the latest block (N)" (docs/rpc.md).
//! - **Consistent reads.** A commit writes the new state before it moves the head, so values and
//!   proofs read while a block is being committed could belong to the next state. The answer is
//!   accepted only if the head did not change during the reads and the account proof's root is
//!   the head's stateRoot (and each storage proof's root the account's storageHash); otherwise
//!   it is read again.
//! - **Absent accounts** answer with zero fields, codeHash = keccak of empty code,
//!   storageHash = the empty root, and the exclusion proof, as geth does.

use alloy_consensus::constants::{EMPTY_ROOT_HASH, KECCAK_EMPTY};
use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, Bytes, keccak256};
use alloy_rpc_types_eth::{EIP1186AccountProofResponse, EIP1186StorageProof};
use alloy_serde::JsonStorageKey;
use bttd_runtime::Chain;
use bttd_runtime::state::{StateError, StateView, account_proof, storage_proof};
use jsonrpsee::proc_macros::rpc;

use super::Rpc;
use super::error::{RpcResult, internal, invalid_params, server_error};
use super::resolve::state_number;

/// Most storage keys one request may ask for (geth has no limit; this bounds the work).
const MAX_STORAGE_KEYS: usize = 1024;
/// Reads attempted before giving up while blocks are committed under us.
const MAX_ATTEMPTS: usize = 8;

#[rpc(server, namespace = "eth")]
pub(crate) trait EthProofApi {
    #[method(name = "getProof")]
    fn proof(
        &self,
        address: Address,
        keys: Vec<JsonStorageKey>,
        block: Option<BlockId>,
    ) -> RpcResult<EIP1186AccountProofResponse>;
}

impl EthProofApiServer for Rpc {
    fn proof(
        &self,
        address: Address,
        keys: Vec<JsonStorageKey>,
        block: Option<BlockId>,
    ) -> RpcResult<EIP1186AccountProofResponse> {
        if keys.len() > MAX_STORAGE_KEYS {
            return Err(invalid_params(format!(
                "too many storage keys (max {MAX_STORAGE_KEYS})"
            )));
        }
        get_proof(&self.ctx.chain, address, &keys, block)
    }
}

/// The proof at the head, or an error if `block` names another block.
pub(crate) fn get_proof(
    chain: &Chain,
    address: Address,
    keys: &[JsonStorageKey],
    block: Option<BlockId>,
) -> RpcResult<EIP1186AccountProofResponse> {
    let head_tag = matches!(
        block,
        None | Some(BlockId::Number(
            BlockNumberOrTag::Latest
                | BlockNumberOrTag::Pending
                | BlockNumberOrTag::Safe
                | BlockNumberOrTag::Finalized
        ))
    );
    let wanted = if head_tag {
        None
    } else {
        Some(state_number(chain, block)?)
    };
    for _ in 0..MAX_ATTEMPTS {
        let head = chain.head();
        if let Some(number) = wanted
            && number != head.number
        {
            return Err(server_error(format!(
                "proofs are only served for the latest block ({})",
                head.number
            )));
        }
        let response = read_proof(chain.state(), address, keys).map_err(internal)?;
        let consistent = chain.head().hash() == head.hash()
            && proof_root(&response.account_proof) == head.state_root
            && response
                .storage_proof
                .iter()
                .all(|p| proof_root(&p.proof) == response.storage_hash);
        if consistent {
            return Ok(response);
        }
    }
    Err(server_error(
        "state changed while reading the proof; try again",
    ))
}

/// The root a proof starts from: the hash of its first node (the root node is always hashed).
fn proof_root(proof: &[Bytes]) -> B256 {
    proof.first().map_or(EMPTY_ROOT_HASH, keccak256)
}

/// Values and proofs from the head's flat state and trie.
fn read_proof(
    state: StateView<'_>,
    address: Address,
    keys: &[JsonStorageKey],
) -> Result<EIP1186AccountProofResponse, StateError> {
    let store = state.store();
    let account = state.account(address)?;
    let storage_proof = keys
        .iter()
        .map(|key| {
            let slot = key.as_b256();
            Ok(EIP1186StorageProof {
                key: *key,
                value: state.storage(address, slot)?,
                proof: storage_proof(store, address, slot)?,
            })
        })
        .collect::<Result<Vec<_>, StateError>>()?;
    Ok(EIP1186AccountProofResponse {
        address,
        balance: account.map(|a| a.balance).unwrap_or_default(),
        nonce: account.map(|a| a.nonce).unwrap_or_default(),
        code_hash: account.map_or(KECCAK_EMPTY, |a| a.code_hash),
        storage_hash: account.map_or(EMPTY_ROOT_HASH, |a| a.storage_root),
        account_proof: account_proof(store, address)?,
        storage_proof,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use alloy_genesis::GenesisAccount;
    use alloy_primitives::{U256, address};
    use alloy_rlp::Encodable;
    use alloy_trie::{Nibbles, TrieAccount, proof::verify_proof};
    use bttd_genesis::{DevnetOptions, devnet_genesis};
    use bttd_runtime::storage::MemoryStore;

    use super::*;

    const HOLDER: Address = address!("00000000000000000000000000000000000000aa");

    /// A devnet chain whose genesis also holds an account with two storage slots.
    fn chain() -> Chain {
        let (mut spec, _) = devnet_genesis(&DevnetOptions::default()).expect("devnet genesis");
        let storage = BTreeMap::from([
            (B256::with_last_byte(1), B256::with_last_byte(7)),
            (B256::with_last_byte(2), B256::with_last_byte(9)),
        ]);
        let account = GenesisAccount {
            balance: U256::from(5),
            code: Some(Bytes::from_static(&[0x60, 0x00])),
            storage: Some(storage),
            ..GenesisAccount::default()
        };
        spec.genesis.alloc.insert(HOLDER, account);
        Chain::open(
            Arc::new(MemoryStore::new()),
            spec.chain_config(),
            &spec.genesis,
        )
        .expect("open chain")
    }

    fn rlp(value: &impl Encodable) -> Vec<u8> {
        let mut out = Vec::new();
        value.encode(&mut out);
        out
    }

    /// Checks the account proof against `root` and every storage proof against storageHash.
    fn verify(response: &EIP1186AccountProofResponse, root: B256, present: bool) {
        let account = TrieAccount {
            nonce: response.nonce,
            balance: response.balance,
            storage_root: response.storage_hash,
            code_hash: response.code_hash,
        };
        let expected = present.then(|| rlp(&account));
        let key = Nibbles::unpack(keccak256(response.address));
        verify_proof(root, key, expected, &response.account_proof).expect("account proof");
        for slot in &response.storage_proof {
            let expected = (!slot.value.is_zero()).then(|| rlp(&slot.value));
            let key = Nibbles::unpack(keccak256(slot.key.as_b256()));
            verify_proof(response.storage_hash, key, expected, &slot.proof).expect("storage proof");
        }
    }

    #[test]
    fn proofs_verify_against_the_state_root() {
        let chain = chain();
        let root = chain.head().state_root;
        let keys = [
            JsonStorageKey::from(B256::with_last_byte(1)),
            JsonStorageKey::from(B256::with_last_byte(3)),
        ];

        let present = get_proof(&chain, HOLDER, &keys, None).expect("proof");
        assert_eq!(present.balance, U256::from(5));
        assert_eq!(present.code_hash, keccak256([0x60, 0x00]));
        assert_ne!(present.storage_hash, EMPTY_ROOT_HASH);
        assert_eq!(present.storage_proof[0].value, U256::from(7));
        assert!(present.storage_proof[1].value.is_zero());
        verify(&present, root, true);

        let absent = address!("00000000000000000000000000000000deadbeef");
        let missing = get_proof(&chain, absent, &keys, Some(BlockId::latest())).expect("proof");
        assert_eq!((missing.balance, missing.nonce), (U256::ZERO, 0));
        assert_eq!(
            (missing.code_hash, missing.storage_hash),
            (KECCAK_EMPTY, EMPTY_ROOT_HASH)
        );
        assert!(!missing.account_proof.is_empty());
        verify(&missing, root, false);
    }

    #[test]
    fn only_the_head_is_served() {
        let chain = chain();
        let genesis = chain.head().hash();
        let executed = chain
            .build(chain.head().timestamp + 1, Address::ZERO, Vec::new())
            .expect("build");
        chain.commit(executed).expect("commit");
        for block in [
            BlockId::number(1),
            BlockId::hash(chain.head().hash()),
            BlockId::finalized(),
        ] {
            let response = get_proof(&chain, HOLDER, &[], Some(block)).expect("head proof");
            verify(&response, chain.head().state_root, true);
        }
        for old in [
            BlockId::number(0),
            BlockId::earliest(),
            BlockId::hash(genesis),
        ] {
            let error = get_proof(&chain, HOLDER, &[], Some(old)).unwrap_err();
            assert_eq!(
                (error.code(), error.message()),
                (-32000, "proofs are only served for the latest block (1)")
            );
        }
        let beyond = get_proof(&chain, HOLDER, &[], Some(BlockId::number(2))).unwrap_err();
        assert_eq!(beyond.message(), "header not found");
    }
}
