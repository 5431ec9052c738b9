//! The chain as the consensus engine sees it ([`bttd_engine::Application`]): blocks built from
//! the pool, the block rules a voter enforces, commits with certificates, and the blocks sync
//! serves, over the node's [`NodeContext`].

use std::sync::Arc;

use alloy_primitives::{Address, B256, Bytes};
use bttd_consensus::{Block, CertificateError, CommitCertificate, Height, Verifier};
use bttd_engine::timestamp::{self, TooFarAhead};
use bttd_engine::wire::{self, CertifiedBlock};
use bttd_engine::{Application, ConsensusInfo, next_set_commitment};
use bttd_runtime::{BodyMismatch, ChainError, ExecutedBlock, SealedBlock, WireBlock};
use bttd_txpool::context::NodeContext;

/// The node's chain and pool, for the engine.
#[derive(Clone)]
pub struct NodeApp {
    ctx: Arc<NodeContext>,
    info: Arc<ConsensusInfo>,
    /// Checks the parent's certificate a block carries.
    verifier: Arc<dyn Verifier>,
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
        Self {
            ctx,
            info,
            verifier,
        }
    }

    /// The node context the application works on.
    pub fn context(&self) -> &Arc<NodeContext> {
        &self.ctx
    }
}

impl NodeApp {
    /// The block rules that need consensus context, checked alike by a voter and by a node
    /// executing a certified block from sync: on our head; `miner` a validator of the height
    /// and, for a fresh proposal, its `proposer` (a re-proposal's and a certified block's
    /// proposer is vouched for by the quorum that justifies it); `extraData` the parent's
    /// certificate, verified against the parent's set, followed at an epoch's last block by
    /// the commitment to the next epoch's set.
    fn check_consensus_rules(
        &self,
        sealed: &SealedBlock,
        height: Height,
        proposer: Option<Address>,
    ) -> Result<(), ValidationError> {
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
            return Ok(());
        }
        let parent_set = self
            .info
            .sets
            .validator_set(head.number)
            .ok_or(ValidationError::NoValidatorSet(head.number))?;
        let next_set = next_set_commitment(&self.info, height);
        let extra = wire::ExtraData::decode(
            &sealed.header.extra_data,
            head.number,
            head.hash(),
            parent_set.len(),
            next_set.is_some(),
        )
        .ok_or(ValidationError::ExtraData)?;
        extra.parent.verify(
            &self.ctx.chain.genesis_hash(),
            &parent_set,
            self.verifier.as_ref(),
        )?;
        if extra.next_set != next_set {
            return Err(ValidationError::NextSet);
        }
        Ok(())
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
    Execution(#[from] ChainError),
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

    /// Builds the proposal for `height` on the head from the pool's best transactions.
    fn build(
        &self,
        height: Height,
        beneficiary: Address,
        extra: Bytes,
        now: u64,
    ) -> Result<(Block, ExecutedBlock), ProviderError> {
        let head = self.ctx.chain.head();
        if head.number + 1 != height {
            return Err(ProviderError::NotOnHead {
                head: head.number,
                height,
            });
        }
        let block_ctx = self.ctx.chain.next_block_context(now, beneficiary);
        let candidates = self
            .ctx
            .block_candidates(block_ctx.base_fee, block_ctx.gas_limit);
        let executed =
            self.ctx
                .chain
                .build_with_extra(block_ctx.timestamp, beneficiary, candidates, extra)?;
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
        self.check_consensus_rules(&sealed, height, proposer)?;
        timestamp::check(sealed.header.timestamp, now)?;
        Ok(self.ctx.chain.import(sealed)?)
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
        self.check_consensus_rules(&sealed, sealed.number(), None)
            .map_err(ProviderError::DecidedBlockInvalid)?;
        Ok(self.ctx.chain.import(sealed)?)
    }

    fn commit(
        &self,
        executed: ExecutedBlock,
        certificate: &CommitCertificate,
    ) -> Result<(), ProviderError> {
        let rejected = executed.rejected.clone();
        let receipts = executed.receipts.clone();
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
        self.ctx.on_block_committed(sealed, receipts, &rejected);
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
mod tests {
    use super::*;
    use bttd_engine::{Application, GenesisSets};
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
                .map(|k| GenesisValidator {
                    address: k.address(),
                    bls_public_key: k.bls_public_key(),
                    proof_of_possession: k.proof_of_possession(),
                    power: 1,
                })
                .collect(),
            epoch_length,
            ..BttdParams::default()
        };
        let (spec, _) = devnet_genesis(&DevnetOptions {
            params,
            ..DevnetOptions::default()
        })
        .expect("genesis");
        let chain = Chain::open(
            Arc::new(MemoryStore::new()),
            spec.chain_config(),
            &spec.genesis,
        )
        .unwrap();
        let sets = Arc::new(GenesisSets::new(
            spec.validator_set().unwrap(),
            spec.params.epoch_length,
        ));
        let ctx = Arc::new(NodeContext::new(
            Arc::new(chain),
            Pool::new(PoolConfig::default()),
        ));
        let info = Arc::new(ConsensusInfo::new(sets, 0, 1 << 20, None));
        let verifier = Arc::new(bttd_consensus::BlsVerifier);
        (NodeApp::new(ctx, info.clone(), verifier), info, keys)
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
        let (first, executed) = app.build(1, proposer(1), Bytes::new(), NOW).unwrap();
        app.commit(executed, &certify(&app, &info, &keys, 1, first.id))
            .unwrap();
        let parent = certify(&app, &info, &keys, 1, first.id);
        let second = |next_set, miner| {
            let extra = wire::ExtraData {
                parent: parent.clone(),
                next_set,
            };
            app.build(2, miner, extra.encode(), NOW + 1).unwrap().0
        };
        // Block 2 ends epoch 0: it must commit to the set of epoch 1.
        let expected = next_set_commitment(&info, 2);
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
        app.build(1, miner, Bytes::new(), NOW).unwrap().0
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
}
