//! Consensus over JSON-RPC: commit certificates and equivocation evidence (`bttd_`), and the
//! BTTC/Bor names validator tooling already calls (`bor_`).
//!
//! On a node without consensus (the single-producer devnet) certificates are absent (null),
//! the validator set is empty and the proposer is the producer's coinbase of the head block.

use alloy_eips::BlockId;
use alloy_primitives::{Address, B256, Bytes, FixedBytes, U64, U256};
use bttd_consensus::CommitCertificate;
use bttd_engine::EvidenceReport;
use jsonrpsee::proc_macros::rpc;
use serde::Serialize;

use super::Rpc;
use super::error::{RpcResult, header_not_found, internal};
use super::resolve::header_by_id;
use bttd_engine::wire;

/// A commit certificate as served: who signed the block at which round, and the aggregate.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RpcCertificate {
    pub block_number: U64,
    pub block_hash: B256,
    pub round: U64,
    /// BLS aggregate of the signers' precommits (96 bytes).
    pub signature: Bytes,
    /// Bit i (byte i/8, LSB first) set when validator i signed.
    pub signers: Bytes,
    /// The signers' indices, decoded from the bitmap.
    pub signer_indices: Vec<u32>,
    pub epoch: U64,
}

/// A validator as bor_getCurrentValidators lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RpcValidator {
    #[serde(rename = "ID")]
    pub id: U64,
    pub signer: Address,
    pub power: U64,
    pub voting_power: U64,
    pub bls_public_key: FixedBytes<48>,
    /// StakeManager's owner of the validator (holds the stake, receives the rewards).
    pub owner: Address,
    /// Total stake (self and delegated) in wei at the head.
    pub stake: U256,
    /// StakeManager's status at the head: none, candidate, jailed, tombstoned or active.
    pub status: &'static str,
    /// Blocks this validator did not sign in the downtime window of the head (windows of
    /// `downtimeWindow` blocks from block 1); 0 when it has no miss counted in that window.
    pub missed_blocks: U64,
    /// The first epoch `unjail()` is allowed in once jailed (0 if never jailed).
    pub jailed_until_epoch: U64,
}

/// StakeManager's `validatorInfo` status code as a word (docs/staking.md).
fn status_name(code: u8) -> &'static str {
    match code {
        1 => "candidate",
        2 => "jailed",
        3 => "tombstoned",
        4 => "active",
        _ => "none",
    }
}

#[rpc(server, namespace = "bttd")]
pub(crate) trait BttdConsensusApi {
    /// The certificate that finalised a block (by number, tag or hash); null before genesis
    /// validators or for an unknown block.
    #[method(name = "getCommitCertificate")]
    fn commit_certificate(&self, block: BlockId) -> RpcResult<Option<RpcCertificate>>;

    /// Every piece of equivocation evidence this node has seen (two conflicting signed
    /// messages by one validator), each with the block that carried it and what its
    /// slashing took, once a committed block did.
    #[method(name = "getEvidence")]
    fn evidence(&self) -> RpcResult<Vec<EvidenceReport>>;
}

#[rpc(server, namespace = "bor")]
pub(crate) trait BorApi {
    /// The block's proposer (its `miner`).
    #[method(name = "getAuthor")]
    fn author(&self, block: Option<BlockId>) -> RpcResult<Address>;

    /// The validator set deciding the next block.
    #[method(name = "getCurrentValidators")]
    async fn current_validators(&self) -> RpcResult<Vec<RpcValidator>>;

    /// The proposer of the round being decided now.
    #[method(name = "getCurrentProposer")]
    fn current_proposer(&self) -> RpcResult<Address>;
}

impl BttdConsensusApiServer for Rpc {
    fn commit_certificate(&self, block: BlockId) -> RpcResult<Option<RpcCertificate>> {
        let chain = &self.ctx.chain;
        let Some(header) = header_by_id(chain, block)? else {
            return Ok(None);
        };
        let Some(bytes) = chain.certificate(header.number).map_err(internal)? else {
            return Ok(None);
        };
        let cert: CommitCertificate = wire::store::decode_certificate(&bytes).map_err(internal)?;
        let info = self.consensus.as_deref();
        let set = info.and_then(|i| i.sets.validator_set(cert.height));
        Ok(Some(RpcCertificate {
            block_number: U64::from(cert.height),
            block_hash: cert.block_id,
            round: U64::from(cert.round),
            signature: Bytes::copy_from_slice(cert.signature.as_slice()),
            signer_indices: set
                .as_ref()
                .and_then(|s| cert.signers.indices(s.len()))
                .unwrap_or_default(),
            signers: cert.signers.0,
            epoch: U64::from(set.map(|s| s.epoch()).unwrap_or_default()),
        }))
    }

    fn evidence(&self) -> RpcResult<Vec<EvidenceReport>> {
        Ok(self
            .consensus
            .as_deref()
            .map(|i| i.evidence_reports())
            .unwrap_or_default())
    }
}

#[jsonrpsee::core::async_trait]
impl BorApiServer for Rpc {
    fn author(&self, block: Option<BlockId>) -> RpcResult<Address> {
        let id = block.unwrap_or_else(BlockId::latest);
        let header = header_by_id(&self.ctx.chain, id)?.ok_or_else(header_not_found)?;
        Ok(header.beneficiary)
    }

    /// Three StakeManager views per member: on the heavy-request pool, like eth_call.
    async fn current_validators(&self) -> RpcResult<Vec<RpcValidator>> {
        self.heavy(|rpc| rpc.current_validators_now()).await
    }

    fn current_proposer(&self) -> RpcResult<Address> {
        match self.consensus.as_deref() {
            Some(info) => info
                .round_status()
                .proposer
                .ok_or_else(|| internal("no validator set for the current height")),
            None => Ok(self.ctx.chain.head().beneficiary),
        }
    }
}

impl Rpc {
    /// `bor_getCurrentValidators`, on the calling thread.
    fn current_validators_now(&self) -> RpcResult<Vec<RpcValidator>> {
        let Some(info) = self.consensus.as_deref() else {
            return Ok(Vec::new());
        };
        let chain = &self.ctx.chain;
        let head = chain.head().number;
        let set = info
            .sets
            .validator_set(head + 1)
            .ok_or_else(|| internal("no validator set"))?;
        let staked = super::staking::set_deciding(chain, head + 1)?;
        set.validators()
            .iter()
            .zip(&staked.validators)
            .enumerate()
            .map(|(i, (v, member))| {
                let standing = super::staking::standing(chain, head, member.owner)?;
                Ok(RpcValidator {
                    id: U64::from(i),
                    signer: v.address,
                    power: U64::from(v.power),
                    voting_power: U64::from(v.power),
                    bls_public_key: v.public_key,
                    owner: member.owner,
                    stake: standing.stake,
                    status: status_name(standing.status),
                    missed_blocks: U64::from(standing.missed_blocks),
                    jailed_until_epoch: U64::from(standing.jailed_until_epoch),
                })
            })
            .collect()
    }
}
