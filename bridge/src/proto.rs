//! The TRON protobuf messages the bridge and the simulator need, written by hand with prost's
//! derive (no protoc, no build script). Field numbers are those of tronprotocol/protocol
//! (`core/Tron.proto`, `core/contract/balance_contract.proto`, `core/contract/smart_contract.proto`);
//! a transaction's id is the sha256 of `Transaction.raw`'s encoding, so a wrong number here is
//! a wrong txID everywhere, and the tests pin the encoding against tronpy and TRON's docs.

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `protocol.Transaction`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Transaction {
    #[prost(message, optional, tag = "1")]
    pub raw_data: Option<TransactionRaw>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub signature: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "5")]
    pub ret: Vec<TransactionResult>,
}

/// `protocol.Transaction.raw`: what the txID hashes and the owner signs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TransactionRaw {
    #[prost(bytes = "vec", tag = "1")]
    pub ref_block_bytes: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub ref_block_num: i64,
    #[prost(bytes = "vec", tag = "4")]
    pub ref_block_hash: Vec<u8>,
    #[prost(int64, tag = "8")]
    pub expiration: i64,
    #[prost(message, repeated, tag = "9")]
    pub auths: Vec<Authority>,
    #[prost(bytes = "vec", tag = "10")]
    pub data: Vec<u8>,
    #[prost(message, repeated, tag = "11")]
    pub contract: Vec<Contract>,
    #[prost(bytes = "vec", tag = "12")]
    pub scripts: Vec<u8>,
    #[prost(int64, tag = "14")]
    pub timestamp: i64,
    #[prost(int64, tag = "18")]
    pub fee_limit: i64,
}

/// `protocol.authority` (kept so that a raw transaction carrying one decodes; the simulator
/// refuses them).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Authority {
    #[prost(message, optional, tag = "1")]
    pub account: Option<AccountId>,
    #[prost(bytes = "vec", tag = "2")]
    pub permission_name: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AccountId {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub address: Vec<u8>,
}

/// `protocol.Transaction.Contract`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Contract {
    #[prost(enumeration = "ContractType", tag = "1")]
    pub r#type: i32,
    #[prost(message, optional, tag = "2")]
    pub parameter: Option<Any>,
    #[prost(bytes = "vec", tag = "3")]
    pub provider: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub contract_name: Vec<u8>,
    #[prost(int32, tag = "5")]
    pub permission_id: i32,
}

/// The contract types the simulator executes (`Transaction.Contract.ContractType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ContractType {
    AccountCreateContract = 0,
    TransferContract = 1,
    TransferAssetContract = 2,
    CreateSmartContract = 30,
    TriggerSmartContract = 31,
}

impl ContractType {
    pub const fn name(self) -> &'static str {
        match self {
            Self::AccountCreateContract => "AccountCreateContract",
            Self::TransferContract => "TransferContract",
            Self::TransferAssetContract => "TransferAssetContract",
            Self::CreateSmartContract => "CreateSmartContract",
            Self::TriggerSmartContract => "TriggerSmartContract",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::AccountCreateContract,
            Self::TransferContract,
            Self::TransferAssetContract,
            Self::CreateSmartContract,
            Self::TriggerSmartContract,
        ]
        .into_iter()
        .find(|t| t.name() == name)
    }

    /// The `type_url` of the `Any` that carries this contract.
    pub fn type_url(self) -> String {
        format!("type.googleapis.com/protocol.{}", self.name())
    }
}

/// `protocol.Transaction.Result` (only what the simulator reports).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TransactionResult {
    #[prost(int64, tag = "1")]
    pub fee: i64,
    #[prost(int32, tag = "2")]
    pub ret: i32,
    #[prost(int32, tag = "3")]
    pub contract_ret: i32,
}

/// `protocol.TransferContract` (balance_contract.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TransferContract {
    #[prost(bytes = "vec", tag = "1")]
    pub owner_address: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub to_address: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub amount: i64,
}

/// `protocol.TriggerSmartContract` (smart_contract.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TriggerSmartContract {
    #[prost(bytes = "vec", tag = "1")]
    pub owner_address: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub contract_address: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub call_value: i64,
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
    #[prost(int64, tag = "5")]
    pub call_token_value: i64,
    #[prost(int64, tag = "6")]
    pub token_id: i64,
}

/// `protocol.CreateSmartContract` (smart_contract.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateSmartContract {
    #[prost(bytes = "vec", tag = "1")]
    pub owner_address: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    pub new_contract: Option<SmartContract>,
    #[prost(int64, tag = "3")]
    pub call_token_value: i64,
    #[prost(int64, tag = "4")]
    pub token_id: i64,
}

/// `protocol.SmartContract`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SmartContract {
    #[prost(bytes = "vec", tag = "1")]
    pub origin_address: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub contract_address: Vec<u8>,
    #[prost(message, optional, tag = "3")]
    pub abi: Option<Abi>,
    #[prost(bytes = "vec", tag = "4")]
    pub bytecode: Vec<u8>,
    #[prost(int64, tag = "5")]
    pub call_value: i64,
    #[prost(int64, tag = "6")]
    pub consume_user_resource_percent: i64,
    #[prost(string, tag = "7")]
    pub name: String,
    #[prost(int64, tag = "8")]
    pub origin_energy_limit: i64,
    #[prost(bytes = "vec", tag = "9")]
    pub code_hash: Vec<u8>,
    #[prost(bytes = "vec", tag = "10")]
    pub trx_hash: Vec<u8>,
    #[prost(int32, tag = "11")]
    pub version: i32,
}

/// `protocol.SmartContract.ABI`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Abi {
    #[prost(message, repeated, tag = "1")]
    pub entrys: Vec<AbiEntry>,
}

/// `protocol.SmartContract.ABI.Entry`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AbiEntry {
    #[prost(bool, tag = "1")]
    pub anonymous: bool,
    #[prost(bool, tag = "2")]
    pub constant: bool,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(message, repeated, tag = "4")]
    pub inputs: Vec<AbiParam>,
    #[prost(message, repeated, tag = "5")]
    pub outputs: Vec<AbiParam>,
    #[prost(enumeration = "AbiEntryType", tag = "6")]
    pub r#type: i32,
    #[prost(bool, tag = "7")]
    pub payable: bool,
    #[prost(enumeration = "StateMutability", tag = "8")]
    pub state_mutability: i32,
}

/// `protocol.SmartContract.ABI.Entry.Param`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AbiParam {
    #[prost(bool, tag = "1")]
    pub indexed: bool,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub r#type: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum AbiEntryType {
    UnknownEntryType = 0,
    Constructor = 1,
    Function = 2,
    Event = 3,
    Fallback = 4,
    Receive = 5,
    Error = 6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum StateMutability {
    UnknownMutabilityType = 0,
    Pure = 1,
    View = 2,
    Nonpayable = 3,
    Payable = 4,
}

/// `protocol.BlockHeader.raw`: the simulator hashes its encoding for block ids, as java-tron.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BlockHeaderRaw {
    #[prost(int64, tag = "1")]
    pub timestamp: i64,
    #[prost(bytes = "vec", tag = "2")]
    pub tx_trie_root: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub parent_hash: Vec<u8>,
    #[prost(int64, tag = "7")]
    pub number: i64,
    #[prost(int64, tag = "8")]
    pub witness_id: i64,
    #[prost(bytes = "vec", tag = "9")]
    pub witness_address: Vec<u8>,
    #[prost(int32, tag = "10")]
    pub version: i32,
    #[prost(bytes = "vec", tag = "11")]
    pub account_state_root: Vec<u8>,
}
