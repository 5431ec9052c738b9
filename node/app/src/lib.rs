//! The chain as the consensus engine sees it ([`bttd_engine::Application`]): blocks built from
//! the pool, the block rules a voter enforces, commits with certificates, and the blocks sync
//! serves, over the node's [`NodeContext`].
//!
//! On a staking chain (every chain with validators) the sets come from chain state
//! ([`ChainSets`]): a block's rewards call pays the owners whose precommits its `extraData`
//! certificate holds, and an epoch's last block commits to the set its `endEpoch` installed,
//! which only its execution tells, so builders append the commitment after executing and
//! voters compare it after re-executing.

mod evidence;
mod sets;

use std::collections::HashMap;
use std::sync::Arc;

use alloy_primitives::{Address, B256};
use bttd_consensus::{Block, CertificateError, CommitCertificate, Evidence, Height, Verifier};
use bttd_engine::timestamp::{self, TooFarAhead};
use bttd_engine::wire::{self, CertifiedBlock};
use bttd_engine::{Application, ConsensusInfo, next_set_commitment};
use bttd_runtime::{
    BodyMismatch, ChainError, ConsensusInputs, ExecutedBlock, SealedBlock, WireBlock,
};
use bttd_txpool::context::NodeContext;
use parking_lot::Mutex;

pub use evidence::EvidenceError;
pub use sets::{ChainSets, EpochSet, SetReadError};

/// The node's chain and pool, for the engine.
#[derive(Clone)]
pub struct NodeApp {
    ctx: Arc<NodeContext>,
    info: Arc<ConsensusInfo>,
    /// Checks the parent's certificate a block carries.
    verifier: Arc<dyn Verifier>,
    /// The sets from chain state, on a staking chain; `None` when the sets are given
    /// (the simulator's fixed sets over a chain without StakeManager calls).
    staked: Option<Arc<ChainSets>>,
    /// The evidence each executed, uncommitted block carries (by hash, with its height), so
    /// its commit records where the evidence went.
    carried: Arc<Mutex<HashMap<B256, Carried>>>,
}

/// The height of an executed block and the evidence it carries.
type Carried = (Height, Vec<Evidence>);

/// What a block's `extraData` says, checked against the parent's set.
struct ParentProof {
    extra: wire::ExtraData,
    /// What the block's system calls take from it: the owners whose precommits the
    /// certificate holds, ascending, and the offences its evidence proves (both empty
    /// without staking).
    inputs: ConsensusInputs,
}

impl std::fmt::Debug for NodeApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeApp")
            .field("head", &self.head())
            .finish()
    }
}

impl NodeApp {
    pub fn new(
        ctx: Arc<NodeContext>,
        info: Arc<ConsensusInfo>,
        verifier: Arc<dyn Verifier>,
    ) -> Self {
        assert!(
            ctx.chain.config().staking.is_none(),
            "a staking chain needs NodeApp::staking (its rewards and sets come from chain state)"
        );
        Self {
            ctx,
            info,
            verifier,
            staked: None,
            carried: Default::default(),
        }
    }

    /// The application of a staking chain: `sets` must be the provider `info` holds.
    pub fn staking(
        ctx: Arc<NodeContext>,
        info: Arc<ConsensusInfo>,
        verifier: Arc<dyn Verifier>,
        sets: Arc<ChainSets>,
    ) -> Self {
        Self {
            ctx,
            info,
            verifier,
            staked: Some(sets),
            carried: Default::default(),
        }
    }

    /// The node context the application works on.
    pub fn context(&self) -> &Arc<NodeContext> {
        &self.ctx
    }
}

impl NodeApp {
    /// Whether `height` is the last block of its epoch, so its `extraData` ends with the
    /// commitment to the next epoch's set.
    fn ends_epoch(&self, height: Height) -> bool {
        match &self.staked {
            Some(sets) => sets.staking().ends_epoch(height),
            None => self.info.sets.epoch_of(height) != self.info.sets.epoch_of(height + 1),
        }
    }

    fn evidence_rules(&self) -> evidence::EvidenceRules<'_> {
        evidence::EvidenceRules {
            chain: self.ctx.chain.genesis_hash(),
            info: &self.info,
            staked: self.staked.as_deref(),
            verifier: self.verifier.as_ref(),
        }
    }

    /// The owners, ascending, whose precommits `certificate` (of the head) holds.
    fn certificate_owners(
        &self,
        certificate: &CommitCertificate,
    ) -> Result<Vec<Address>, ProviderError> {
        let Some(sets) = &self.staked else {
            return Ok(Vec::new());
        };
        sets.certificate_owners(certificate)?
            .ok_or(ProviderError::NoParentSet(certificate.height))
    }

    /// The block rules that need consensus context, checked alike by a voter and by a node
    /// executing a certified block from sync: on our head; `miner` a validator of the height
    /// and, for a fresh proposal, its `proposer` (a re-proposal's and a certified block's
    /// proposer is vouched for by the quorum that justifies it); `extraData` the parent's
    /// certificate, verified against the parent's set, followed at an epoch's last block by
    /// the commitment to the next epoch's set (compared here for given sets, after execution
    /// by [`NodeApp::execute_checked`] for sets from chain state).
    fn check_consensus_rules(
        &self,
        sealed: &SealedBlock,
        height: Height,
        proposer: Option<Address>,
    ) -> Result<Option<ParentProof>, ValidationError> {
        let miner = sealed.header.beneficiary;
        if let Some(proposer) = proposer
            && miner != proposer
        {
            return Err(ValidationError::NotTheProposer { miner, proposer });
        }
        let head = self.ctx.chain.head();
        if sealed.number() != height || sealed.header.parent_hash != head.hash() {
            return Err(ValidationError::NotOnHead {
                number: sealed.number(),
                head: head.number,
            });
        }
        let set = self
            .info
            .sets
            .validator_set(height)
            .ok_or(ValidationError::NoValidatorSet(height))?;
        if !set.validators().iter().any(|v| v.address == miner) {
            return Err(ValidationError::NotAValidator(miner));
        }
        if height == 1 {
            if !sealed.header.extra_data.is_empty() {
                return Err(ValidationError::ExtraDataOnFirstBlock);
            }
            return Ok(None);
        }
        let parent_set = self
            .info
            .sets
            .validator_set(head.number)
            .ok_or(ValidationError::NoValidatorSet(head.number))?;
        let extra = wire::ExtraData::decode(
            &sealed.header.extra_data,
            head.number,
            head.hash(),
            parent_set.len(),
            self.ends_epoch(height),
        )
        .ok_or(ValidationError::ExtraData)?;
        extra.parent.verify(
            &self.ctx.chain.genesis_hash(),
            &parent_set,
            self.verifier.as_ref(),
        )?;
        if self.staked.is_none() && extra.next_set != next_set_commitment(&self.info, height) {
            return Err(ValidationError::NextSet);
        }
        let provider = |e| ValidationError::Provider(Box::new(e));
        let parent_signers = self.certificate_owners(&extra.parent).map_err(provider)?;
        let offences = self
            .evidence_rules()
            .check_block(&extra.evidence, height)
            .map_err(provider)??;
        Ok(Some(ParentProof {
            extra,
            inputs: ConsensusInputs {
                parent_signers,
                offences,
            },
        }))
    }

    /// Checks the consensus rules, executes the block on the head (its rewards call paying
    /// the certificate's signers) and, on a staking chain's epoch end, compares the set it
    /// installed with the commitment in its `extraData`.
    fn execute_checked(
        &self,
        sealed: SealedBlock,
        height: Height,
        proposer: Option<Address>,
    ) -> Result<ExecutedBlock, ValidationError> {
        let proof = self.check_consensus_rules(&sealed, height, proposer)?;
        let (inputs, committed, evidence) = match proof {
            Some(p) => (p.inputs, p.extra.next_set, p.extra.evidence),
            None => (ConsensusInputs::default(), None, Vec::new()),
        };
        let executed = self.ctx.chain.import_with_consensus(sealed, inputs)?;
        if self.staked.is_some() && committed != executed.next_set.as_ref().map(|s| s.commitment())
        {
            return Err(ValidationError::NextSet);
        }
        self.carry(&executed, evidence);
        Ok(executed)
    }

    /// Remembers the evidence an executed block carries until it commits.
    fn carry(&self, executed: &ExecutedBlock, evidence: Vec<Evidence>) {
        if !evidence.is_empty() {
            let block = &executed.block;
            self.carried
                .lock()
                .insert(block.hash(), (block.number(), evidence));
        }
    }

    /// At the commit of `executed`: records where its evidence went and what each slashing
    /// call took, and forgets what other blocks of its height carried.
    fn record_carried(&self, number: Height, hash: B256, slashes: &[bttd_runtime::SlashOutcome]) {
        let mut carried = self.carried.lock();
        if let Some((_, evidence)) = carried.remove(&hash) {
            for (i, e) in evidence.iter().enumerate() {
                let slashed = slashes.get(i).and_then(|s| s.slashed);
                self.info.record_inclusion(e, number, slashed);
            }
        }
        carried.retain(|_, (height, _)| *height > number);
    }
}

/// Why a proposed block breaks a block rule (docs/block-format.md): the proposer's fault.
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    #[error(transparent)]
    Body(#[from] BodyMismatch),
    #[error("miner {miner} is not the round's proposer {proposer}")]
    NotTheProposer { miner: Address, proposer: Address },
    #[error("miner {0} is not a validator of the block's height")]
    NotAValidator(Address),
    #[error("block {number} does not extend our head {head}")]
    NotOnHead { number: Height, head: Height },
    #[error(transparent)]
    Timestamp(#[from] TooFarAhead),
    #[error("no validator set for height {0}")]
    NoValidatorSet(Height),
    #[error("extraData is not the parent's certificate (plus the next set at an epoch end)")]
    ExtraData,
    #[error("parent certificate in extraData: {0}")]
    ParentCertificate(#[from] CertificateError),
    #[error("extraData commits to another next validator set")]
    NextSet,
    #[error("block 1 must have empty extraData")]
    ExtraDataOnFirstBlock,
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
    #[error(transparent)]
    Execution(#[from] ChainError),
    /// This node could not check the block (its own state failed it): not the proposer's
    /// fault, but the block is not voted for.
    #[error("checking the block: {0}")]
    Provider(#[source] Box<ProviderError>),
}

/// A fault of this node while building, executing or committing: the engine stops on it.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("head is {head}, cannot build {height}")]
    NotOnHead { head: Height, height: Height },
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("decided block: {0}")]
    Body(#[from] BodyMismatch),
    /// A certificate of more than 2/3 of the stake for a block that breaks a block rule:
    /// either that much stake is byzantine or this node is broken. Either way the node stops
    /// rather than follow.
    #[error("decided block breaks a block rule: {0}")]
    DecidedBlockInvalid(#[source] ValidationError),
    #[error(transparent)]
    Sets(#[from] SetReadError),
    #[error("no validator set for the parent certificate's height {0}")]
    NoParentSet(Height),
    #[error("no validator set for height {0}, below the head")]
    NoSet(Height),
    #[error("stored certificate of block {height}: {source}")]
    Certificate {
        height: Height,
        source: wire::WireError,
    },
}

impl bttd_engine::Application for NodeApp {
    type Executed = ExecutedBlock;
    type Invalid = ValidationError;
    type Fault = ProviderError;

    fn genesis_hash(&self) -> B256 {
        self.ctx.chain.genesis_hash()
    }

    fn head(&self) -> (Height, B256) {
        let head = self.ctx.chain.head();
        (head.number, head.hash())
    }

    fn check_payload(&self, block: &Block) -> Result<(), ValidationError> {
        WireBlock::decode_for(&block.payload, block.id)?;
        Ok(())
    }

    /// Builds the proposal for `height` on the head from the pool's best transactions, with
    /// the head's certificate `parent` in `extraData` (none for block 1) and, at an epoch's
    /// end, the commitment to the next set: from the given sets before executing, or from
    /// what this block's `endEpoch` installed after.
    fn build(
        &self,
        height: Height,
        beneficiary: Address,
        parent: Option<CommitCertificate>,
        now: u64,
    ) -> Result<(Block, ExecutedBlock), ProviderError> {
        let head = self.ctx.chain.head();
        if head.number + 1 != height {
            return Err(ProviderError::NotOnHead {
                head: head.number,
                height,
            });
        }
        let (mut extra, inputs) = match parent {
            Some(parent) => {
                let parent_signers = self.certificate_owners(&parent)?;
                let next_set = match self.staked {
                    Some(_) => None,
                    None => next_set_commitment(&self.info, height),
                };
                let (evidence, offences) = self.evidence_rules().select(height)?;
                let extra = wire::ExtraData {
                    parent,
                    next_set,
                    evidence,
                };
                let inputs = ConsensusInputs {
                    parent_signers,
                    offences,
                };
                (Some(extra), inputs)
            }
            None => (None, ConsensusInputs::default()),
        };
        let block_ctx = self.ctx.chain.next_block_context(now, beneficiary);
        let candidates = self
            .ctx
            .block_candidates(block_ctx.base_fee, block_ctx.gas_limit);
        let encoded = extra.as_ref().map(|e| e.encode()).unwrap_or_default();
        let mut executed = self.ctx.chain.build_with_extra(
            block_ctx.timestamp,
            beneficiary,
            candidates,
            encoded,
            inputs,
        )?;
        if let (Some(extra), Some(next)) = (extra.as_mut(), &executed.next_set) {
            extra.next_set = Some(next.commitment());
            executed.set_extra_data(extra.encode());
        }
        self.carry(&executed, extra.map(|e| e.evidence).unwrap_or_default());
        let block = Block {
            id: executed.block.hash(),
            payload: WireBlock::encode(&executed.block).into(),
        };
        Ok((block, executed))
    }

    /// The block rules a voter enforces before prevoting (docs/block-format.md): the rules of
    /// [`NodeApp::check_consensus_rules`], a timestamp not too far ahead of our clock, and a
    /// successful re-execution that reproduces every header field.
    fn verify(
        &self,
        height: Height,
        block: &Block,
        proposer: Option<Address>,
        now: u64,
    ) -> Result<ExecutedBlock, ValidationError> {
        let sealed = WireBlock::decode_for(&block.payload, block.id)?;
        timestamp::check(sealed.header.timestamp, now)?;
        self.execute_checked(sealed, height, proposer)
    }

    fn parent_of(executed: &ExecutedBlock) -> B256 {
        executed.block.header.parent_hash
    }

    /// Executes a block decided through sync (its certificate verified by the machine, its
    /// body checked against the certified header on receipt) under the same rules as a
    /// voter's, but for the clock: the block may be old, and a node whose clock is off must
    /// still follow the chain.
    fn execute_decided(&self, block: &Block) -> Result<ExecutedBlock, ProviderError> {
        let sealed = WireBlock::decode_for(&block.payload, block.id)?;
        let height = sealed.number();
        self.execute_checked(sealed, height, None)
            .map_err(|e| match e {
                ValidationError::Provider(ours) => *ours,
                invalid => ProviderError::DecidedBlockInvalid(invalid),
            })
    }

    fn commit(
        &self,
        executed: ExecutedBlock,
        certificate: &CommitCertificate,
    ) -> Result<(), ProviderError> {
        let rejected = executed.rejected.clone();
        let receipts = executed.receipts.clone();
        let slashes = executed.slashes.clone();
        let sealed = self
            .ctx
            .chain
            .commit_certified(executed, wire::store::encode_certificate(certificate))?;
        tracing::info!(
            target: "bttd::consensus",
            number = sealed.number(),
            hash = %sealed.hash(),
            txs = sealed.body.transactions.len(),
            round = certificate.round,
            "committed block"
        );
        let number = sealed.number();
        self.record_carried(number, sealed.hash(), &slashes);
        self.ctx.on_block_committed(sealed, receipts, &rejected);
        // The next epoch's set is readable now: load it here, on the blocking pool, rather
        // than on the engine's loop when the machine enters the next height.
        if let Some(sets) = &self.staked {
            sets.preload(number)?;
        }
        Ok(())
    }

    fn certificate(&self, height: Height) -> Option<CommitCertificate> {
        stored_certificate(&self.ctx, height)
    }

    fn certified_blocks(
        &self,
        from: Height,
        max: u32,
        budget: usize,
    ) -> Result<Vec<CertifiedBlock>, ProviderError> {
        let chain = &self.ctx.chain;
        let mut used = 0usize;
        let mut out = Vec::new();
        for number in (from..).take(max as usize) {
            let Some(hash) = chain.block_hash(number)? else {
                break;
            };
            let Some(block) = chain.block(hash)? else {
                break;
            };
            let Some(cert) = chain.certificate(number)? else {
                // Committed without consensus (never on a validator chain): nothing proves it.
                break;
            };
            let certificate = wire::store::decode_certificate(&cert).map_err(|source| {
                ProviderError::Certificate {
                    height: number,
                    source,
                }
            })?;
            let bytes = WireBlock::encode(&block);
            used = used.saturating_add(bytes.len() + cert.len());
            if used > budget && !out.is_empty() {
                break;
            }
            out.push(CertifiedBlock {
                block: bytes.into(),
                certificate,
            });
        }
        Ok(out)
    }
}

/// The certificate that finalised block `number`, if this node stored one (blocks committed
/// without consensus, genesis included, have none).
pub fn stored_certificate(ctx: &NodeContext, number: Height) -> Option<CommitCertificate> {
    ctx.chain
        .certificate(number)
        .ok()
        .flatten()
        .and_then(|bytes| wire::store::decode_certificate(&bytes).ok())
}

#[cfg(test)]
mod tests;
