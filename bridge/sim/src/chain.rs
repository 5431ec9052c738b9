//! The simulated chain: blocks, the transactions in them, the state after each unsolidified
//! block, and the checks java-tron makes when a transaction is broadcast (TaPoS reference
//! block, expiration against the head block's time, duplicates, the owner's signature, the
//! contract's own validation). A broadcast transaction runs at once against the open block's
//! state and becomes visible when the block is sealed; a block is solidified `solidify_depth`
//! blocks later. `reorg` replaces unsolidified blocks, which only the simulator can do.

use std::collections::{HashMap, HashSet};

use alloy_primitives::{Address, B256, Bytes, Log, U256};
use bttd_bridge::TronAddress;
use bttd_bridge::proto::{
    BlockHeaderRaw, ContractType, CreateSmartContract, SmartContract, Transaction,
    TransferContract, TriggerSmartContract,
};
use bttd_bridge::tx::{contract_address, recover, txid};
use prost::Message;
use revm::database::CacheDB;
use revm::state::AccountInfo;
use sha2::{Digest, Sha256};

use crate::exec::{self, BlockInfo, Call, ContractResult, Db, Target};
use crate::journal::{Event, Header, Journal, JournalError};

/// java-tron's largest transaction (`TRANSACTION_MAX_BYTE_SIZE`).
pub const MAX_TX_BYTES: usize = 500 * 1024;
/// java-tron's longest expiration after the head block (`MAXIMUM_TIME_UNTIL_EXPIRATION`).
pub const MAX_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;
/// The highest fee_limit java-tron accepts (`getMaxFeeLimit`, 15 000 TRX).
pub const MAX_FEE_LIMIT: i64 = 15_000_000_000;

/// java-tron's `response_code` for a refused broadcast, with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refused {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refused {
    Refused {
        code,
        message: message.into(),
    }
}

fn invalid(message: impl Into<String>) -> Refused {
    refuse("CONTRACT_VALIDATE_ERROR", message)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReorgError {
    #[error("depth {depth} is not within the {unsolidified} unsolidified blocks")]
    Depth { depth: u64, unsolidified: u64 },
    #[error("transaction {0} is not in the blocks being replaced")]
    NotInReplaced(B256),
    #[error("no state kept for block {0}")]
    NoSnapshot(u64),
}

/// Which transactions of the replaced blocks a reorg removes.
#[derive(Debug, Clone)]
pub enum Drop {
    All,
    Listed(Vec<B256>),
}

/// Fixed parameters of a simulated chain.
#[derive(Debug, Clone)]
pub struct ChainConfig {
    pub solidify_depth: u64,
    /// Sun per unit of energy (`getEnergyFee`).
    pub energy_price: u64,
    pub funded: Vec<(Address, u64)>,
    pub genesis_time_ms: i64,
}

/// State and contract metadata: what a reorg restores.
#[derive(Debug, Clone, Default)]
pub struct World {
    pub db: Db,
    pub contracts: HashMap<Address, SmartContract>,
}

#[derive(Debug, Clone)]
pub struct Block {
    pub number: u64,
    pub id: B256,
    pub parent: B256,
    pub timestamp_ms: i64,
    pub tx_root: B256,
    pub generation: i64,
    pub txids: Vec<B256>,
    world_after: Option<World>,
}

impl Block {
    pub fn header(&self, witness: &TronAddress) -> BlockHeaderRaw {
        BlockHeaderRaw {
            timestamp: self.timestamp_ms,
            tx_trie_root: self.tx_root.to_vec(),
            parent_hash: self.parent.to_vec(),
            number: self.number as i64,
            witness_id: self.generation,
            witness_address: witness.to_bytes21().to_vec(),
            version: 32,
            account_state_root: Vec::new(),
        }
    }
}

/// A transaction and what running it did.
#[derive(Debug, Clone)]
pub struct TxRecord {
    pub id: B256,
    pub tx: Transaction,
    pub kind: ContractType,
    pub owner: TronAddress,
    pub result: ContractResult,
    pub fee: u64,
    pub energy_used: u64,
    pub net_usage: u64,
    pub output: Bytes,
    pub logs: Vec<Log>,
    pub contract_address: Option<TronAddress>,
    /// Block number and time, once sealed.
    pub block: Option<(u64, i64)>,
}

pub struct Chain {
    config: ChainConfig,
    pub witness: TronAddress,
    pub chain_id: u64,
    blocks: Vec<Block>,
    world: World,
    pending: Vec<TxRecord>,
    txs: HashMap<B256, TxRecord>,
    tapos: HashMap<[u8; 2], [u8; 8]>,
    generation: i64,
    journal: Option<Journal>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("head", &self.head().number)
            .field("pending", &self.pending.len())
            .finish()
    }
}

fn block_id(number: u64, header: &BlockHeaderRaw) -> B256 {
    let hash = Sha256::digest(header.encode_to_vec());
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&number.to_be_bytes());
    id[8..].copy_from_slice(&hash[8..]);
    B256::from(id)
}

fn tx_root(txids: &[B256]) -> B256 {
    let mut h = Sha256::new();
    for id in txids {
        h.update(id);
    }
    B256::from_slice(&h.finalize())
}

impl Chain {
    pub fn new(config: ChainConfig) -> Self {
        let witness = TronAddress::from_evm(Address::from_slice(
            &alloy_primitives::keccak256("bttd tron-sim witness")[12..],
        ));
        let mut world = World::default();
        for (address, sun) in &config.funded {
            world.db.insert_account_info(
                *address,
                AccountInfo {
                    balance: U256::from(*sun),
                    ..Default::default()
                },
            );
        }
        let mut genesis = Block {
            number: 0,
            id: B256::ZERO,
            parent: B256::ZERO,
            timestamp_ms: config.genesis_time_ms,
            tx_root: tx_root(&[]),
            generation: 0,
            txids: Vec::new(),
            world_after: Some(world.clone()),
        };
        genesis.id = block_id(0, &genesis.header(&witness));
        // TVM's CHAINID is the last four bytes of the genesis block id.
        let chain_id = u64::from(u32::from_be_bytes(
            genesis.id[28..32].try_into().expect("four bytes"),
        ));
        let mut chain = Self {
            config,
            witness,
            chain_id,
            blocks: Vec::new(),
            world,
            pending: Vec::new(),
            txs: HashMap::new(),
            tapos: HashMap::new(),
            generation: 0,
            journal: None,
        };
        chain.remember_tapos(&genesis);
        chain.blocks.push(genesis);
        chain
    }

    /// A chain kept in `dir`: replays what `dir` holds (made with the same settings), then
    /// records every change there. See `journal`.
    pub fn open(mut config: ChainConfig, dir: &std::path::Path) -> Result<Self, JournalError> {
        let header = Header {
            version: 1,
            genesis_time_ms: config.genesis_time_ms,
            accounts: config
                .funded
                .iter()
                .map(|(a, _)| TronAddress::from_evm(*a).to_hex41())
                .collect(),
            balance_sun: config.funded.first().map(|f| f.1).unwrap_or(0),
            solidify_depth: config.solidify_depth,
            energy_price: config.energy_price,
        };
        let (journal, stored, events) = Journal::open(dir, &header)?;
        let replay = |reason: String| JournalError::Replay {
            path: journal.path().to_path_buf(),
            reason,
        };
        config.genesis_time_ms = stored.genesis_time_ms;
        let mut chain = Self::new(config);
        for event in events {
            match event {
                Event::Tx { tx } => {
                    let bytes = hex::decode(&tx).map_err(|e| replay(e.to_string()))?;
                    let tx =
                        Transaction::decode(bytes.as_slice()).map_err(|e| replay(e.to_string()))?;
                    chain.submit(tx).map_err(|e| replay(e.to_string()))?;
                }
                Event::Seal { time_ms } => {
                    chain.seal(time_ms);
                }
                Event::Reorg { depth, drop } => {
                    let drop = drop.map(Drop::Listed).unwrap_or(Drop::All);
                    chain
                        .reorg(depth, drop)
                        .map_err(|e| replay(e.to_string()))?;
                }
            }
        }
        tracing::info!(target: "bttd::tron_sim", head = chain.head().number, "resumed from the datadir");
        chain.journal = Some(journal);
        Ok(chain)
    }

    fn record(&mut self, event: Event) {
        if let Some(journal) = &mut self.journal
            && let Err(e) = journal.append(&event)
        {
            tracing::error!(target: "bttd::tron_sim", error = %e, "the datadir is no longer written");
            self.journal = None;
        }
    }

    pub fn energy_price(&self) -> u64 {
        self.config.energy_price
    }

    pub fn head(&self) -> &Block {
        self.blocks.last().expect("genesis is never removed")
    }

    pub fn solid_number(&self) -> u64 {
        self.head()
            .number
            .saturating_sub(self.config.solidify_depth)
    }

    pub fn solid(&self) -> &Block {
        &self.blocks[self.solid_number() as usize]
    }

    pub fn block(&self, number: u64) -> Option<&Block> {
        usize::try_from(number)
            .ok()
            .and_then(|n| self.blocks.get(n))
    }

    pub fn block_by_id(&self, id: &B256) -> Option<&Block> {
        let number = u64::from_be_bytes(id[..8].try_into().expect("eight bytes"));
        self.block(number).filter(|b| b.id == *id)
    }

    /// A sealed transaction.
    pub fn tx(&self, id: &B256) -> Option<&TxRecord> {
        self.txs.get(id)
    }

    /// A sealed transaction in a solidified block.
    pub fn solid_tx(&self, id: &B256) -> Option<&TxRecord> {
        self.tx(id)
            .filter(|r| r.block.is_some_and(|(n, _)| n <= self.solid_number()))
    }

    /// Balance in sun and whether the account holds code; `None` if it does not exist.
    pub fn account(&self, address: &Address) -> Option<(U256, bool)> {
        let account = self.world.db.cache.accounts.get(address)?;
        let has_code = account.info.code.as_ref().is_some_and(|c| !c.is_empty());
        Some((account.info.balance, has_code))
    }

    /// Like [`Chain::account`], in the state of the solidified block.
    pub fn solid_account(&self, address: &Address) -> Option<(U256, bool)> {
        let world = self.solid().world_after.as_ref()?;
        let account = world.db.cache.accounts.get(address)?;
        let has_code = account.info.code.as_ref().is_some_and(|c| !c.is_empty());
        Some((account.info.balance, has_code))
    }

    pub fn contract(&self, address: &Address) -> Option<&SmartContract> {
        self.world.contracts.get(address)
    }

    fn block_info(&self) -> BlockInfo {
        let head = self.head();
        BlockInfo {
            number: head.number + 1,
            timestamp: u64::try_from(head.timestamp_ms / 1000).unwrap_or(0),
            chain_id: self.chain_id,
        }
    }

    /// A read-only call on the open block's state (`triggerconstantcontract`).
    pub fn constant_call(
        &self,
        caller: Address,
        contract: Address,
        data: Bytes,
        value: u64,
        energy_limit: u64,
    ) -> Result<exec::Outcome, exec::Invalid> {
        let mut scratch = CacheDB::new(&self.world.db);
        // A constant call must not fail for want of balance to pay its energy.
        scratch.insert_account_info(
            caller,
            AccountInfo {
                balance: U256::MAX >> 1,
                ..self
                    .world
                    .db
                    .cache
                    .accounts
                    .get(&caller)
                    .map(|a| a.info.clone())
                    .unwrap_or_default()
            },
        );
        let call = Call {
            caller,
            target: Target::Call(contract),
            data,
            value,
            energy_limit,
            energy_price: 0,
        };
        exec::execute(&mut scratch, self.block_info(), &call)
    }

    fn remember_tapos(&mut self, block: &Block) {
        let slot = [block.id[6], block.id[7]];
        let mut hash = [0u8; 8];
        hash.copy_from_slice(&block.id[8..16]);
        self.tapos.insert(slot, hash);
    }

    fn check_tapos(&self, raw: &bttd_bridge::proto::TransactionRaw) -> Result<(), Refused> {
        let slot: [u8; 2] = raw.ref_block_bytes.as_slice().try_into().map_err(|_| {
            refuse(
                "TAPOS_ERROR",
                "Tapos check error: ref_block_bytes is not 2 bytes",
            )
        })?;
        let hash: [u8; 8] = raw.ref_block_hash.as_slice().try_into().map_err(|_| {
            refuse(
                "TAPOS_ERROR",
                "Tapos check error: ref_block_hash is not 8 bytes",
            )
        })?;
        match self.tapos.get(&slot) {
            Some(known) if *known == hash => Ok(()),
            _ => Err(refuse(
                "TAPOS_ERROR",
                format!(
                    "Tapos check error: no recent block {} with hash {}",
                    hex::encode(slot),
                    hex::encode(hash)
                ),
            )),
        }
    }

    /// java-tron's broadcast checks, then the transaction runs against the open block.
    pub fn submit(&mut self, tx: Transaction) -> Result<B256, Refused> {
        let size = tx.encoded_len();
        if size > MAX_TX_BYTES {
            return Err(refuse(
                "TOO_BIG_TRANSACTION_ERROR",
                format!("Transaction size is too big: {size} bytes, the limit is {MAX_TX_BYTES}"),
            ));
        }
        let raw = tx
            .raw_data
            .as_ref()
            .ok_or_else(|| refuse("OTHER_ERROR", "transaction has no raw_data"))?;
        let id = txid(raw);
        self.check_tapos(raw)?;
        let head_time = self.head().timestamp_ms;
        if raw.expiration <= head_time {
            return Err(refuse(
                "TRANSACTION_EXPIRATION_ERROR",
                format!(
                    "Transaction expired: expiration {}, head block time {head_time}",
                    raw.expiration
                ),
            ));
        }
        if raw.expiration > head_time.saturating_add(MAX_EXPIRATION_MS) {
            return Err(refuse(
                "TRANSACTION_EXPIRATION_ERROR",
                format!(
                    "Transaction expiration time is {}, but the latest allowed is head block time {head_time} + {MAX_EXPIRATION_MS} ms",
                    raw.expiration
                ),
            ));
        }
        if self.txs.contains_key(&id) || self.pending.iter().any(|r| r.id == id) {
            return Err(refuse("DUP_TRANSACTION_ERROR", "dup trans"));
        }
        let owner = owner_of(&tx)?;
        match tx.signature.as_slice() {
            [sig] => {
                let signer = recover(&id, sig)
                    .map_err(|e| refuse("SIGERROR", format!("Validate signature error: {e}")))?;
                if signer != owner {
                    return Err(refuse(
                        "SIGERROR",
                        format!(
                            "Validate signature error: {} is signed by {signer}, not by its owner {owner}",
                            hex::encode(id)
                        ),
                    ));
                }
            }
            [] => {
                return Err(refuse(
                    "SIGERROR",
                    "Validate signature error: miss sig or contract",
                ));
            }
            _ => {
                return Err(refuse(
                    "SIGERROR",
                    "Validate signature error: the simulator accepts the owner's signature only (no multisig permissions)",
                ));
            }
        }
        let bytes = self
            .journal
            .as_ref()
            .map(|_| hex::encode(tx.encode_to_vec()));
        let record = self.apply(id, tx, owner)?;
        self.pending.push(record);
        if let Some(tx) = bytes {
            self.record(Event::Tx { tx });
        }
        Ok(id)
    }

    /// Validates and runs one transaction's contract against the open block's state.
    fn apply(
        &mut self,
        id: B256,
        tx: Transaction,
        owner: TronAddress,
    ) -> Result<TxRecord, Refused> {
        let raw = tx.raw_data.clone().unwrap_or_default();
        let contract = &raw.contract[0];
        let kind = ContractType::try_from(contract.r#type).map_err(|_| {
            invalid(format!(
                "contract type {} is not supported",
                contract.r#type
            ))
        })?;
        let value = contract
            .parameter
            .as_ref()
            .map(|p| p.value.as_slice())
            .unwrap_or_default();
        let net_usage = tx.encoded_len() as u64;
        let mut record = TxRecord {
            id,
            tx: tx.clone(),
            kind,
            owner,
            result: ContractResult::Success,
            fee: 0,
            energy_used: 0,
            net_usage,
            output: Bytes::new(),
            logs: Vec::new(),
            contract_address: None,
            block: None,
        };
        match kind {
            ContractType::TransferContract => {
                let t = TransferContract::decode(value)
                    .map_err(|e| invalid(format!("TransferContract does not decode: {e}")))?;
                let to = TronAddress::from_bytes21(&t.to_address)
                    .map_err(|e| invalid(format!("Invalid toAddress: {e}")))?;
                self.transfer(owner, to, t.amount)?;
            }
            ContractType::TriggerSmartContract => {
                let t = TriggerSmartContract::decode(value)
                    .map_err(|e| invalid(format!("TriggerSmartContract does not decode: {e}")))?;
                if t.call_token_value != 0 || t.token_id != 0 {
                    return Err(invalid(
                        "TRC-10 call_token_value is not supported by the simulator",
                    ));
                }
                let to = TronAddress::from_bytes21(&t.contract_address)
                    .map_err(|e| invalid(format!("Invalid contract address: {e}")))?;
                if !self.account(&to.evm()).is_some_and(|(_, code)| code) {
                    return Err(invalid("No contract or not a smart contract"));
                }
                self.run(
                    &mut record,
                    &raw,
                    Target::Call(to.evm()),
                    t.data.into(),
                    t.call_value,
                )?;
            }
            ContractType::CreateSmartContract => {
                let c = CreateSmartContract::decode(value)
                    .map_err(|e| invalid(format!("CreateSmartContract does not decode: {e}")))?;
                if c.call_token_value != 0 || c.token_id != 0 {
                    return Err(invalid(
                        "TRC-10 call_token_value is not supported by the simulator",
                    ));
                }
                let mut new = c
                    .new_contract
                    .ok_or_else(|| invalid("CreateSmartContract has no new_contract"))?;
                if new.origin_address != c.owner_address {
                    return Err(invalid("OwnerAddress is not equals OriginAddress"));
                }
                if new.bytecode.is_empty() {
                    return Err(invalid("bytecode is empty"));
                }
                if !(0..=100).contains(&new.consume_user_resource_percent) {
                    return Err(invalid("percent must be >= 0 and <= 100"));
                }
                let address = contract_address(&id, &owner);
                self.run(
                    &mut record,
                    &raw,
                    Target::Create(address.evm()),
                    new.bytecode.clone().into(),
                    new.call_value,
                )?;
                if record.result == ContractResult::Success {
                    new.contract_address = address.to_bytes21().to_vec();
                    new.trx_hash = id.to_vec();
                    self.world.contracts.insert(address.evm(), new);
                    record.contract_address = Some(address);
                }
            }
            other => {
                return Err(invalid(format!(
                    "{} is not supported by the simulator",
                    other.name()
                )));
            }
        }
        Ok(record)
    }

    fn transfer(&mut self, from: TronAddress, to: TronAddress, amount: i64) -> Result<(), Refused> {
        if amount <= 0 {
            return Err(invalid("Amount must be greater than 0."));
        }
        if from == to {
            return Err(invalid("Cannot transfer TRX to yourself."));
        }
        if self.account(&to.evm()).is_some_and(|(_, code)| code) {
            return Err(invalid("Cannot transfer TRX to a smartContract."));
        }
        let amount = U256::from(amount as u64);
        let balance = self
            .account(&from.evm())
            .map(|(b, _)| b)
            .unwrap_or_default();
        let rest = balance.checked_sub(amount).ok_or_else(|| {
            invalid("Validate TransferContract error, balance is not sufficient.")
        })?;
        let to_balance = self.account(&to.evm()).map(|(b, _)| b).unwrap_or_default();
        let to_new = to_balance
            .checked_add(amount)
            .ok_or_else(|| invalid("long overflow"))?;
        let db = &mut self.world.db;
        db.load_account(from.evm())
            .map_err(|e| invalid(e.to_string()))?
            .info
            .balance = rest;
        db.load_account(to.evm())
            .map_err(|e| invalid(e.to_string()))?
            .info
            .balance = to_new;
        Ok(())
    }

    fn run(
        &mut self,
        record: &mut TxRecord,
        raw: &bttd_bridge::proto::TransactionRaw,
        target: Target,
        data: Bytes,
        call_value: i64,
    ) -> Result<(), Refused> {
        if !(0..=MAX_FEE_LIMIT).contains(&raw.fee_limit) {
            return Err(invalid(format!(
                "feeLimit must be >= 0 and <= {MAX_FEE_LIMIT}"
            )));
        }
        let call_value =
            u64::try_from(call_value).map_err(|_| invalid("callValue must be >= 0"))?;
        let owner = record.owner.evm();
        let balance = self.account(&owner).map(|(b, _)| b).unwrap_or_default();
        if balance < U256::from(call_value) {
            return Err(invalid(format!(
                "balance is not sufficient: {balance} sun, call value {call_value}"
            )));
        }
        let price = self.config.energy_price.max(1);
        // What the owner can pay for, at most fee_limit (java-tron's energy limit).
        let spendable = (balance - U256::from(call_value)).min(U256::from(raw.fee_limit as u64));
        let energy_limit = u64::try_from(spendable / U256::from(price)).unwrap_or(u64::MAX);
        let call = Call {
            caller: owner,
            target,
            data,
            value: call_value,
            energy_limit,
            energy_price: price,
        };
        let info = self.block_info();
        let outcome = exec::execute(&mut self.world.db, info, &call)
            .map_err(|e| invalid(format!("energy limit {energy_limit} at {price} sun: {e}")))?;
        record.result = outcome.result;
        record.energy_used = outcome.energy_used;
        record.fee = outcome
            .energy_used
            .checked_mul(price)
            .ok_or_else(|| invalid("fee overflows"))?;
        record.output = outcome.output;
        record.logs = outcome.logs;
        Ok(())
    }

    /// Seals the open block at `now_ms` (never earlier than its parent).
    pub fn seal(&mut self, now_ms: i64) -> &Block {
        let time_ms = self.seal_block(now_ms);
        self.record(Event::Seal { time_ms });
        self.head()
    }

    /// Seals the open block; returns its time.
    fn seal_block(&mut self, now_ms: i64) -> i64 {
        let parent = self.head();
        let number = parent.number + 1;
        let timestamp_ms = now_ms.max(parent.timestamp_ms + 1);
        let parent_id = parent.id;
        let records = std::mem::take(&mut self.pending);
        let txids: Vec<B256> = records.iter().map(|r| r.id).collect();
        let mut block = Block {
            number,
            id: B256::ZERO,
            parent: parent_id,
            timestamp_ms,
            tx_root: tx_root(&txids),
            generation: self.generation,
            txids,
            world_after: Some(self.world.clone()),
        };
        block.id = block_id(number, &block.header(&self.witness));
        for mut record in records {
            record.block = Some((number, timestamp_ms));
            self.txs.insert(record.id, record);
        }
        self.remember_tapos(&block);
        self.blocks.push(block);
        // Snapshots below the solidified block can never be restored.
        let solid = self.solid_number();
        if let Some(old) = solid
            .checked_sub(1)
            .and_then(|n| self.blocks.get_mut(n as usize))
        {
            old.world_after = None;
        }
        timestamp_ms
    }

    /// Replaces the last `depth` unsolidified blocks with as many new ones (new ids, same
    /// times). The surviving transactions of the replaced blocks and the open block's run
    /// again, in their order, in the first replacement; the dropped ones are gone.
    pub fn reorg(&mut self, depth: u64, drop: Drop) -> Result<&Block, ReorgError> {
        let head = self.head().number;
        let unsolidified = head - self.solid_number();
        if depth == 0 || depth > unsolidified {
            return Err(ReorgError::Depth {
                depth,
                unsolidified,
            });
        }
        let base = head - depth;
        let replaced: Vec<B256> = self.blocks[(base + 1) as usize..]
            .iter()
            .flat_map(|b| b.txids.iter().copied())
            .collect();
        let recorded = match &drop {
            Drop::All => None,
            Drop::Listed(ids) => Some(ids.clone()),
        };
        let dropped: HashSet<B256> = match drop {
            Drop::All => replaced.iter().copied().collect(),
            Drop::Listed(ids) => {
                if let Some(id) = ids.iter().find(|id| !replaced.contains(id)) {
                    return Err(ReorgError::NotInReplaced(*id));
                }
                ids.into_iter().collect()
            }
        };
        let world = self.blocks[base as usize]
            .world_after
            .clone()
            .ok_or(ReorgError::NoSnapshot(base))?;
        let removed = self.blocks.split_off((base + 1) as usize);
        let mut survivors = Vec::new();
        for id in &replaced {
            if let Some(record) = self.txs.remove(id)
                && !dropped.contains(id)
            {
                survivors.push(record);
            }
        }
        survivors.extend(std::mem::take(&mut self.pending));
        self.world = world;
        self.generation += 1;
        for record in survivors {
            let (id, owner) = (record.id, record.owner);
            match self.apply(id, record.tx, owner) {
                Ok(again) => self.pending.push(again),
                Err(e) => {
                    tracing::info!(target: "bttd::tron_sim", txid = %id, error = %e, "reorg: transaction no longer applies, dropped")
                }
            }
        }
        for old in &removed {
            self.seal_block(old.timestamp_ms);
        }
        self.record(Event::Reorg {
            depth,
            drop: recorded,
        });
        Ok(self.head())
    }
}

/// The owner named inside the transaction's only contract.
fn owner_of(tx: &Transaction) -> Result<TronAddress, Refused> {
    let raw = tx.raw_data.as_ref().ok_or_else(|| invalid("no raw_data"))?;
    let [contract] = raw.contract.as_slice() else {
        return Err(invalid(format!(
            "a transaction carries exactly one contract, this one carries {}",
            raw.contract.len()
        )));
    };
    let value = contract
        .parameter
        .as_ref()
        .map(|p| p.value.as_slice())
        .unwrap_or_default();
    let owner = match ContractType::try_from(contract.r#type) {
        Ok(ContractType::TransferContract) => {
            TransferContract::decode(value).map(|c| c.owner_address)
        }
        Ok(ContractType::TriggerSmartContract) => {
            TriggerSmartContract::decode(value).map(|c| c.owner_address)
        }
        Ok(ContractType::CreateSmartContract) => {
            CreateSmartContract::decode(value).map(|c| c.owner_address)
        }
        _ => {
            return Err(invalid(format!(
                "contract type {} is not supported",
                contract.r#type
            )));
        }
    }
    .map_err(|e| invalid(format!("contract does not decode: {e}")))?;
    TronAddress::from_bytes21(&owner).map_err(|e| invalid(format!("Invalid ownerAddress: {e}")))
}
