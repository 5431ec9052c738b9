//! The chain as the runtime keeps it: genesis initialisation, building a block on the head,
//! importing (re-executing and checking) a block from elsewhere, committing a block in one
//! atomic write, and reading blocks, receipts and transactions back.

use std::sync::Arc;

use alloy_consensus::{EMPTY_OMMER_ROOT_HASH, Header, ReceiptEnvelope, TxReceipt, proofs};
use alloy_eips::eip7685::EMPTY_REQUESTS_HASH;
use alloy_genesis::Genesis;
use alloy_primitives::{Address, B256, Bloom, Bytes, U256, keccak256};
use alloy_rlp::{Decodable, Encodable};
use alloy_trie::EMPTY_ROOT_HASH;
use parking_lot::{Mutex, RwLock};
use revm::bytecode::Bytecode;
use revm::database::states::{PlainStorageChangeset, StateChangeset};
use revm::primitives::KECCAK_EMPTY;
use revm::state::AccountInfo;

use crate::block::{
    BlockReceipts, Body, SealedBlock, SealedHeader, next_base_fee, next_mix_hash, seal,
};
use crate::config::ChainConfig;
use crate::executor::{BlockContext, ConsensusInputs, ExecutionError, Mode, execute_block};
use crate::state::{self, StateError, StateView};
use crate::storage::{Column, KvStore, StorageError, WriteBatch};
use crate::tx::RecoveredTx;

pub(crate) const HEAD_KEY: &[u8] = b"head";

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Execution(#[from] ExecutionError),
    #[error("the datadir holds another chain: genesis {stored}, expected {expected}")]
    GenesisMismatch { stored: B256, expected: B256 },
    #[error("block {number} does not extend the head {head}")]
    NotOnHead { number: u64, head: B256 },
    #[error("invalid block {number}: {field} is {got}, expected {want}")]
    InvalidHeader {
        number: u64,
        field: &'static str,
        got: String,
        want: String,
    },
    #[error("corrupt {what}: {reason}")]
    Corrupt { what: &'static str, reason: String },
}

/// A block that was executed and is ready to commit: the block, its receipts, and every
/// write (state, trie, indices) it needs, kept together so the commit is one batch.
#[derive(Debug)]
pub struct ExecutedBlock {
    pub block: SealedBlock,
    pub receipts: Vec<ReceiptEnvelope>,
    /// Transactions left out when building (hash, reason); empty for imported blocks.
    pub rejected: Vec<(B256, String)>,
    /// At an epoch's last block on a staking chain: the next epoch's set, which the block's
    /// `extraData` must commit to.
    pub next_set: Option<crate::staking::StakedSet>,
    /// What the block's slashing calls did (docs/block-format.md, "System calls").
    pub slashes: Vec<crate::staking::SlashOutcome>,
    batch: WriteBatch,
}

impl ExecutedBlock {
    /// Replaces the header's `extraData` and reseals. `extraData` is not an input of
    /// execution (the parent signers the rewards call pays were passed in already), so this
    /// is how a builder appends what only execution tells it: the next set's commitment.
    pub fn set_extra_data(&mut self, extra_data: Bytes) {
        let mut header = self.block.header.inner().clone();
        header.extra_data = extra_data;
        self.block.header = seal(header);
    }
}

/// Where a transaction sits in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxLocation {
    pub block_number: u64,
    pub block_hash: B256,
    pub index: usize,
}

/// The chain: storage, configuration, and the head.
pub struct Chain {
    store: Arc<dyn KvStore>,
    config: ChainConfig,
    genesis_hash: B256,
    head: RwLock<SealedHeader>,
    /// Serialises build-then-commit against concurrent commits.
    commit_lock: Mutex<()>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("config", &self.config)
            .field("head", &self.head.read().hash())
            .finish()
    }
}

fn rlp_bytes(value: &impl Encodable) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.length());
    value.encode(&mut out);
    out
}

fn decode<T: Decodable>(what: &'static str, bytes: &[u8]) -> Result<T, ChainError> {
    T::decode(&mut &bytes[..]).map_err(|e| ChainError::Corrupt {
        what,
        reason: e.to_string(),
    })
}

/// The state changes that create the genesis allocation.
fn genesis_changes(genesis: &Genesis) -> StateChangeset {
    let mut accounts = Vec::new();
    let mut storage = Vec::new();
    let mut contracts = Vec::new();
    for (address, account) in &genesis.alloc {
        let code_hash = match &account.code {
            Some(code) if !code.is_empty() => {
                let hash = keccak256(code);
                contracts.push((hash, Bytecode::new_raw(code.clone())));
                hash
            }
            _ => KECCAK_EMPTY,
        };
        accounts.push((
            *address,
            Some(AccountInfo {
                balance: account.balance,
                nonce: account.nonce.unwrap_or_default(),
                code_hash,
                ..Default::default()
            }),
        ));
        if let Some(slots) = &account.storage {
            storage.push(PlainStorageChangeset {
                address: *address,
                wipe_storage: false,
                storage: slots
                    .iter()
                    .map(|(k, v)| (U256::from_be_bytes(k.0), U256::from_be_bytes(v.0)))
                    .collect(),
            });
        }
    }
    StateChangeset {
        accounts,
        storage,
        contracts,
    }
}

/// The fields every bttd header has the same value in (docs/block-format.md): no ommers, no
/// difficulty or nonce, no withdrawals, blobs, beacon root or requests.
fn fixed_header_fields() -> Header {
    Header {
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        transactions_root: EMPTY_ROOT_HASH,
        receipts_root: EMPTY_ROOT_HASH,
        difficulty: U256::ZERO,
        nonce: Default::default(),
        withdrawals_root: Some(EMPTY_ROOT_HASH),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        parent_beacon_block_root: Some(B256::ZERO),
        requests_hash: Some(EMPTY_REQUESTS_HASH),
        ..Default::default()
    }
}

/// The genesis header, given the genesis state root.
pub fn genesis_header(genesis: &Genesis, config: &ChainConfig, state_root: B256) -> Header {
    Header {
        beneficiary: genesis.coinbase,
        state_root,
        gas_limit: config.block_gas_limit,
        timestamp: genesis.timestamp,
        extra_data: genesis.extra_data.clone(),
        mix_hash: genesis.mix_hash,
        base_fee_per_gas: Some(
            genesis
                .base_fee_per_gas
                .map_or(config.min_base_fee, |f| f as u64)
                .max(config.min_base_fee),
        ),
        ..fixed_header_fields()
    }
}

impl Chain {
    /// Opens the chain in `store`, writing genesis if the store is empty, and refusing a store
    /// that holds a different chain.
    pub fn open(
        store: Arc<dyn KvStore>,
        config: ChainConfig,
        genesis: &Genesis,
    ) -> Result<Self, ChainError> {
        match store.get(Column::Meta, HEAD_KEY)? {
            Some(head_hash) => {
                let head_hash = hash_from_bytes("head pointer", &head_hash)?;
                let stored_genesis = read_hash(&*store, 0)?.ok_or(ChainError::Corrupt {
                    what: "canonical index",
                    reason: "no block 0".into(),
                })?;
                let expected = Self::compute_genesis_hash(genesis, &config)?;
                if stored_genesis != expected {
                    return Err(ChainError::GenesisMismatch {
                        stored: stored_genesis,
                        expected,
                    });
                }
                let head = read_header(&*store, head_hash)?.ok_or(ChainError::Corrupt {
                    what: "head",
                    reason: format!("header {head_hash} missing"),
                })?;
                tracing::info!(target: "bttd::chain", number = head.number, hash = %head.hash(), "opened chain");
                Ok(Self {
                    store,
                    config,
                    genesis_hash: stored_genesis,
                    head: RwLock::new(head),
                    commit_lock: Mutex::new(()),
                })
            }
            None => {
                let mut batch = WriteBatch::default();
                let root =
                    state::apply_changes(&*store, genesis_changes(genesis), &mut batch, None)?;
                let header = seal(genesis_header(genesis, &config, root));
                write_block_data(
                    &mut batch,
                    &header,
                    &Body::default(),
                    &BlockReceipts::default(),
                );
                store.write(batch)?;
                tracing::info!(target: "bttd::chain", hash = %header.hash(), state_root = %root, "wrote genesis");
                Ok(Self {
                    store,
                    genesis_hash: header.hash(),
                    config,
                    head: RwLock::new(header),
                    commit_lock: Mutex::new(()),
                })
            }
        }
    }

    /// The genesis block hash this genesis file produces (without touching any datadir).
    pub fn compute_genesis_hash(
        genesis: &Genesis,
        config: &ChainConfig,
    ) -> Result<B256, ChainError> {
        let scratch = crate::storage::MemoryStore::new();
        let mut batch = WriteBatch::default();
        let root = state::apply_changes(&scratch, genesis_changes(genesis), &mut batch, None)?;
        Ok(genesis_header(genesis, config, root).hash_slow())
    }

    pub fn config(&self) -> &ChainConfig {
        &self.config
    }
    pub fn genesis_hash(&self) -> B256 {
        self.genesis_hash
    }
    pub fn head(&self) -> SealedHeader {
        self.head.read().clone()
    }
    pub fn store(&self) -> &dyn KvStore {
        &*self.store
    }
    /// The state at the head.
    pub fn state(&self) -> StateView<'_> {
        StateView::new(&*self.store)
    }
    /// The state after block `number`, or None above the head.
    pub fn state_at(&self, number: u64) -> Option<StateView<'_>> {
        (number <= self.head().number).then(|| StateView::at_block(&*self.store, number))
    }

    /// The execution context of a child of the head.
    pub fn next_block_context(&self, timestamp: u64, beneficiary: Address) -> BlockContext {
        let parent = self.head();
        BlockContext {
            number: parent.number + 1,
            timestamp: timestamp.max(parent.timestamp),
            beneficiary,
            base_fee: next_base_fee(&parent, self.config.min_base_fee),
            gas_limit: self.config.block_gas_limit,
            prevrandao: next_mix_hash(&parent),
            parent_hash: parent.hash(),
            parent_beneficiary: parent.beneficiary,
            consensus: ConsensusInputs::default(),
        }
    }

    /// Builds a block on the head from `txs` (in order), leaving out any that fail.
    pub fn build(
        &self,
        timestamp: u64,
        beneficiary: Address,
        txs: impl IntoIterator<Item = RecoveredTx>,
    ) -> Result<ExecutedBlock, ChainError> {
        self.build_with_extra(
            timestamp,
            beneficiary,
            txs,
            Bytes::new(),
            ConsensusInputs::default(),
        )
    }

    /// [`Chain::build`] with the header's `extraData` (consensus puts the parent's commit
    /// certificate and evidence there) and what it tells the system calls: the owners whose
    /// precommits that certificate holds and the offences the evidence proves (ignored on a
    /// chain without staking).
    pub fn build_with_extra(
        &self,
        timestamp: u64,
        beneficiary: Address,
        txs: impl IntoIterator<Item = RecoveredTx>,
        extra_data: Bytes,
        consensus: ConsensusInputs,
    ) -> Result<ExecutedBlock, ChainError> {
        let ctx = BlockContext {
            consensus,
            ..self.next_block_context(timestamp, beneficiary)
        };
        self.execute(&ctx, txs, Mode::Build, extra_data, &[])
    }

    /// Builds a devnet block (docs/devnet.md): [`Chain::build_with_extra`] with an optional
    /// base fee of the caller's choosing and state overrides applied after the transactions.
    /// Only a single producer may build these: re-execution would not reproduce them.
    pub fn build_devnet(
        &self,
        block: crate::cheats::DevBlock,
    ) -> Result<ExecutedBlock, ChainError> {
        let mut ctx = self.next_block_context(block.timestamp, block.beneficiary);
        if let Some(base_fee) = block.base_fee {
            ctx.base_fee = base_fee;
        }
        self.execute(
            &ctx,
            block.transactions,
            Mode::Build,
            block.extra_data,
            &block.overrides,
        )
    }

    /// Re-executes a block received from elsewhere and checks every header field against the
    /// result. Senders are recovered from the signatures here; the body's `senders` are ignored.
    pub fn import(&self, block: SealedBlock) -> Result<ExecutedBlock, ChainError> {
        self.import_with_consensus(block, ConsensusInputs::default())
    }

    /// [`Chain::import`] of a block whose `extraData` tells its system calls `consensus`: the
    /// owners whose precommits certify the parent (the rewards call pays them) and the
    /// offences its evidence proves (slashed).
    pub fn import_with_consensus(
        &self,
        block: SealedBlock,
        consensus: ConsensusInputs,
    ) -> Result<ExecutedBlock, ChainError> {
        let head = self.head();
        let header = &block.header;
        if header.parent_hash != head.hash() || header.number != head.number + 1 {
            return Err(ChainError::NotOnHead {
                number: header.number,
                head: head.hash(),
            });
        }
        if header.timestamp < head.timestamp {
            return Err(invalid(
                header,
                "timestamp",
                header.timestamp,
                format!(">= {}", head.timestamp),
            ));
        }
        let ctx = BlockContext {
            timestamp: header.timestamp,
            consensus,
            ..self.next_block_context(header.timestamp, header.beneficiary)
        };
        let txs = block
            .body
            .transactions
            .iter()
            .map(|tx| {
                RecoveredTx::from_envelope(
                    tx.clone(),
                    self.config.chain_id,
                    self.config.block_gas_limit,
                )
                .map_err(|e| ExecutionError::InvalidTransaction {
                    hash: *tx.tx_hash(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let executed = self.execute(&ctx, txs, Mode::Verify, header.extra_data.clone(), &[])?;
        if executed.block.hash() != block.hash() {
            let got = &executed.block.header;
            for (field, mine, theirs) in [
                ("stateRoot", got.state_root, header.state_root),
                ("receiptsRoot", got.receipts_root, header.receipts_root),
                (
                    "transactionsRoot",
                    got.transactions_root,
                    header.transactions_root,
                ),
            ] {
                if mine != theirs {
                    return Err(invalid(header, field, theirs, mine));
                }
            }
            return Err(invalid(header, "hash", block.hash(), executed.block.hash()));
        }
        Ok(executed)
    }

    fn execute(
        &self,
        ctx: &BlockContext,
        txs: impl IntoIterator<Item = RecoveredTx>,
        mode: Mode,
        extra_data: Bytes,
        overrides: &[crate::cheats::AccountOverride],
    ) -> Result<ExecutedBlock, ChainError> {
        let mut executed = execute_block(self.state(), &self.config, ctx, txs, mode)?;
        if !overrides.is_empty() {
            crate::cheats::merge(self.state(), &mut executed.changes, overrides)?;
        }
        let mut batch = WriteBatch::default();
        let state_root =
            state::apply_changes(&*self.store, executed.changes, &mut batch, Some(ctx.number))?;
        let logs_bloom = executed.receipts.iter().fold(Bloom::ZERO, |mut acc, r| {
            acc.accrue_bloom(&r.bloom());
            acc
        });
        let envelopes: Vec<_> = executed
            .transactions
            .iter()
            .map(|t| t.envelope().clone())
            .collect();
        let header = Header {
            parent_hash: ctx.parent_hash,
            beneficiary: ctx.beneficiary,
            state_root,
            transactions_root: proofs::calculate_transaction_root(&envelopes),
            receipts_root: proofs::calculate_receipt_root(&executed.receipts),
            logs_bloom,
            number: ctx.number,
            gas_limit: ctx.gas_limit,
            gas_used: executed.gas_used,
            timestamp: ctx.timestamp,
            extra_data,
            mix_hash: ctx.prevrandao,
            base_fee_per_gas: Some(ctx.base_fee),
            ..fixed_header_fields()
        };
        let senders = executed.transactions.iter().map(|t| t.sender()).collect();
        let block = SealedBlock {
            header: seal(header),
            body: Body {
                transactions: envelopes,
                senders,
            },
        };
        Ok(ExecutedBlock {
            block,
            receipts: executed.receipts,
            rejected: executed.rejected,
            next_set: executed.next_set,
            slashes: executed.slashes,
            batch,
        })
    }

    /// Writes an executed block and moves the head to it, in one atomic batch.
    pub fn commit(&self, executed: ExecutedBlock) -> Result<SealedBlock, ChainError> {
        self.commit_inner(executed, None)
    }

    /// [`Chain::commit`] together with the commit certificate that finalised the block, in the
    /// same atomic batch: a block is never on disk without its proof.
    pub fn commit_certified(
        &self,
        executed: ExecutedBlock,
        certificate: Vec<u8>,
    ) -> Result<SealedBlock, ChainError> {
        self.commit_inner(executed, Some(certificate))
    }

    /// The commit certificate stored with block `number`, if it was committed by consensus.
    pub fn certificate(&self, number: u64) -> Result<Option<Vec<u8>>, ChainError> {
        Ok(self
            .store
            .get(Column::Certificates, &number.to_be_bytes())?)
    }

    fn commit_inner(
        &self,
        executed: ExecutedBlock,
        certificate: Option<Vec<u8>>,
    ) -> Result<SealedBlock, ChainError> {
        let _guard = self.commit_lock.lock();
        let head = self.head();
        let ExecutedBlock {
            block,
            receipts,
            mut batch,
            ..
        } = executed;
        if let Some(certificate) = certificate {
            batch.put(
                Column::Certificates,
                block.number().to_be_bytes(),
                certificate,
            );
        }
        if block.header.parent_hash != head.hash() {
            return Err(ChainError::NotOnHead {
                number: block.number(),
                head: head.hash(),
            });
        }
        write_block_data(
            &mut batch,
            &block.header,
            &block.body,
            &BlockReceipts { receipts },
        );
        crate::unwind::record_changes(&mut batch, block.number());
        self.store.write(batch)?;
        *self.head.write() = block.header.clone();
        metrics::gauge!("bttd_chain_head").set(block.number() as f64);
        metrics::counter!("bttd_chain_transactions_total")
            .increment(block.body.transactions.len() as u64);
        tracing::debug!(target: "bttd::chain", number = block.number(), hash = %block.hash(), txs = block.body.transactions.len(), "committed block");
        Ok(block)
    }

    /// Removes every block above `number` (newest first, one atomic batch each, so a crash
    /// leaves a consistent chain at some height in between) and returns them with their
    /// receipts, newest first. Used by the devnet's evm_revert and anvil_reset; a chain run by
    /// consensus never unwinds (its blocks are final).
    pub fn unwind_to(&self, number: u64) -> Result<Vec<crate::unwind::Unwound>, ChainError> {
        let _guard = self.commit_lock.lock();
        let mut removed = Vec::new();
        loop {
            let head = self.head();
            if head.number <= number {
                break;
            }
            let hash = head.hash();
            let body = self.body(hash)?.unwrap_or_default();
            let receipts = self.receipts(hash)?.unwrap_or_default();
            let parent = self.header(head.parent_hash)?.ok_or(ChainError::Corrupt {
                what: "header",
                reason: format!("parent of block {} missing", head.number),
            })?;
            let block = SealedBlock { header: head, body };
            let batch = crate::unwind::unwind_batch(&*self.store, &block, &parent)?;
            self.store.write(batch)?;
            *self.head.write() = parent;
            metrics::gauge!("bttd_chain_head").set(self.head().number as f64);
            tracing::info!(target: "bttd::chain", number = block.number(), hash = %block.hash(), "unwound block");
            removed.push(crate::unwind::Unwound { block, receipts });
        }
        Ok(removed)
    }

    pub fn block_hash(&self, number: u64) -> Result<Option<B256>, ChainError> {
        read_hash(&*self.store, number)
    }
    pub fn header(&self, hash: B256) -> Result<Option<SealedHeader>, ChainError> {
        read_header(&*self.store, hash)
    }
    pub fn header_by_number(&self, number: u64) -> Result<Option<SealedHeader>, ChainError> {
        match self.block_hash(number)? {
            Some(hash) => self.header(hash),
            None => Ok(None),
        }
    }
    pub fn body(&self, hash: B256) -> Result<Option<Body>, ChainError> {
        self.store
            .get(Column::Bodies, hash.as_slice())?
            .map(|b| decode("body", &b))
            .transpose()
    }
    pub fn block(&self, hash: B256) -> Result<Option<SealedBlock>, ChainError> {
        let Some(header) = self.header(hash)? else {
            return Ok(None);
        };
        let body = self.body(hash)?.unwrap_or_default();
        Ok(Some(SealedBlock { header, body }))
    }
    pub fn receipts(&self, hash: B256) -> Result<Option<Vec<ReceiptEnvelope>>, ChainError> {
        Ok(self
            .store
            .get(Column::Receipts, hash.as_slice())?
            .map(|b| decode::<BlockReceipts>("receipts", &b))
            .transpose()?
            .map(|r| r.receipts))
    }
    pub fn transaction_location(&self, tx_hash: B256) -> Result<Option<TxLocation>, ChainError> {
        let Some(bytes) = self.store.get(Column::TxIndex, tx_hash.as_slice())? else {
            return Ok(None);
        };
        if bytes.len() != 12 {
            return Err(ChainError::Corrupt {
                what: "tx index",
                reason: format!("{} bytes", bytes.len()),
            });
        }
        let block_number = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
        let index = u32::from_be_bytes(bytes[8..].try_into().expect("4 bytes")) as usize;
        let block_hash = self.block_hash(block_number)?.ok_or(ChainError::Corrupt {
            what: "tx index",
            reason: format!("block {block_number} not canonical"),
        })?;
        Ok(Some(TxLocation {
            block_number,
            block_hash,
            index,
        }))
    }
}

fn invalid(
    header: &Header,
    field: &'static str,
    got: impl ToString,
    want: impl ToString,
) -> ChainError {
    ChainError::InvalidHeader {
        number: header.number,
        field,
        got: got.to_string(),
        want: want.to_string(),
    }
}

fn read_hash(store: &dyn KvStore, number: u64) -> Result<Option<B256>, ChainError> {
    store
        .get(Column::NumberToHash, &number.to_be_bytes())?
        .map(|h| hash_from_bytes("canonical index", &h))
        .transpose()
}

/// A stored 32-byte hash; anything else is a corrupt database (an error, never a panic).
fn hash_from_bytes(what: &'static str, bytes: &[u8]) -> Result<B256, ChainError> {
    <[u8; 32]>::try_from(bytes)
        .map(B256::from)
        .map_err(|_| ChainError::Corrupt {
            what,
            reason: format!("a hash of {} bytes", bytes.len()),
        })
}

fn read_header(store: &dyn KvStore, hash: B256) -> Result<Option<SealedHeader>, ChainError> {
    let Some(bytes) = store.get(Column::Headers, hash.as_slice())? else {
        return Ok(None);
    };
    let header: Header = decode("header", &bytes)?;
    Ok(Some(alloy_primitives::Sealed::new_unchecked(header, hash)))
}

/// Header, body, receipts, indices and the head pointer of one block.
fn write_block_data(
    batch: &mut WriteBatch,
    header: &SealedHeader,
    body: &Body,
    receipts: &BlockReceipts,
) {
    let hash = header.hash();
    batch.put(Column::Headers, hash.as_slice(), rlp_bytes(header.inner()));
    batch.put(Column::Bodies, hash.as_slice(), rlp_bytes(body));
    batch.put(Column::Receipts, hash.as_slice(), rlp_bytes(receipts));
    batch.put(
        Column::NumberToHash,
        header.number.to_be_bytes(),
        hash.as_slice(),
    );
    for (index, tx) in body.transactions.iter().enumerate() {
        let mut location = header.number.to_be_bytes().to_vec();
        location.extend_from_slice(&(index as u32).to_be_bytes());
        batch.put(Column::TxIndex, tx.tx_hash().as_slice(), location);
    }
    batch.put(Column::Meta, HEAD_KEY, hash.as_slice());
}
