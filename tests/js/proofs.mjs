// eth_getProof and block hashes checked by code that shares nothing with bttd: @ethereumjs/trie
// verifies the Merkle-Patricia proofs against the block's stateRoot, and viem's RLP + keccak
// recompute each block hash from the header fields the RPC returns.
//
//   RPC_URL=http://127.0.0.1:8545 CHAIN_ID=31337 node tests/js/proofs.mjs
//
// Dev account 0 deploys TestToken (whole supply to itself); its balanceOf entry is the present
// slot, a fresh address's entry the absent one.
import {
  createPublicClient,
  createWalletClient,
  http,
  keccak256,
  concat,
  pad,
  toHex,
  toRlp,
  hexToBytes,
  bytesToHex,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { Trie } from "@ethereumjs/trie";
import { env, chain, devAccount, loadArtifact, rpc, check, finish, assert, assertEq } from "./lib.mjs";

const TOKEN = loadArtifact("TestToken");
const SUPPLY = 1_000_000n * 10n ** 18n;
/** Storage index of `balanceOf` in contracts/src/TestToken.sol: name 0, symbol 1, totalSupply 2
 * (the constant `decimals` takes no slot). */
const BALANCE_OF_SLOT = 3n;
const KECCAK_EMPTY = "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470";
const EMPTY_ROOT = "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421";

const pub = createPublicClient({ chain, transport: http(env.rpcUrl), pollingInterval: 200 });
const deployer = devAccount(0);

/** An RLP integer: big-endian bytes without leading zeros (0 is the empty string). */
function rlpInt(value) {
  const n = BigInt(value);
  return n === 0n ? "0x" : toHex(n);
}

function mappingSlot(holder) {
  return keccak256(concat([pad(holder), pad(toHex(BALANCE_OF_SLOT))]));
}

/** The value a proof proves for `key` (hashed, as in the state and storage tries) under
 * `root`, or null for an exclusion proof; throws if the proof does not lead to `root`. */
async function proven(root, key, proof) {
  // The empty trie holds nothing and has no nodes to prove it (geth answers the same way);
  // @ethereumjs/trie rejects a proof without nodes, so this case is checked here.
  if (root === EMPTY_ROOT) {
    assertEq(proof.length, 0, "proof nodes under the empty root");
    return null;
  }
  const value = await new Trie().verifyProof(hexToBytes(root), hexToBytes(keccak256(key)), proof.map(hexToBytes));
  return value === null ? null : bytesToHex(value);
}

/** eth_getProof at the current head, with that head's header (retried if a block lands between). */
async function proofAtHead(address, keys) {
  for (let attempt = 0; attempt < 20; attempt++) {
    const block = (await rpc("eth_getBlockByNumber", ["latest", false])).result;
    const res = await rpc("eth_getProof", [address, keys, block.number]);
    if (res.result) return { block, proof: res.result };
    if (!String(res.error?.message).startsWith("proofs are only served for the latest block")) {
      throw new Error(`eth_getProof: ${JSON.stringify(res.error)}`);
    }
  }
  throw new Error("the head kept moving");
}

/** Verifies the account proof and every storage proof; returns the proof. */
async function verifyAccount(address, keys, { present }) {
  const { block, proof } = await proofAtHead(address, keys);
  assertEq(proof.address.toLowerCase(), address.toLowerCase(), "address");
  const account = await proven(block.stateRoot, address, proof.accountProof);
  if (present) {
    const expected = toRlp([rlpInt(proof.nonce), rlpInt(proof.balance), proof.storageHash, proof.codeHash]);
    assertEq(account, expected, "proven account RLP");
  } else {
    assertEq(account, null, "proven account (exclusion)");
    assertEq(BigInt(proof.balance), 0n, "absent balance");
    assertEq(BigInt(proof.nonce), 0n, "absent nonce");
    assertEq(proof.codeHash, KECCAK_EMPTY, "absent codeHash");
    assertEq(proof.storageHash, EMPTY_ROOT, "absent storageHash");
    assert(proof.accountProof.length > 0, "an exclusion proof has nodes");
  }
  for (const slot of proof.storageProof) {
    const value = BigInt(slot.value);
    const provenValue = await proven(proof.storageHash, pad(toHex(BigInt(slot.key))), slot.proof);
    assertEq(provenValue, value === 0n ? null : toRlp(toHex(value)), `proven value of slot ${slot.key}`);
  }
  return proof;
}

/** The Prague header's fields in consensus order, from an RPC block. */
function headerRlp(b) {
  const fields = [
    b.parentHash,
    b.sha3Uncles,
    b.miner,
    b.stateRoot,
    b.transactionsRoot,
    b.receiptsRoot,
    b.logsBloom,
    rlpInt(b.difficulty),
    rlpInt(b.number),
    rlpInt(b.gasLimit),
    rlpInt(b.gasUsed),
    rlpInt(b.timestamp),
    b.extraData,
    b.mixHash,
    b.nonce,
    rlpInt(b.baseFeePerGas),
    b.withdrawalsRoot,
    rlpInt(b.blobGasUsed),
    rlpInt(b.excessBlobGas),
    b.parentBeaconBlockRoot,
    b.requestsHash,
  ];
  assert(fields.every((f) => typeof f === "string"), `block ${b.number} lacks a Prague header field`);
  return toRlp(fields);
}

let token;

await check("deploy TestToken", async () => {
  const wallet = createWalletClient({ account: deployer, chain, transport: http(env.rpcUrl) });
  const hash = await wallet.deployContract({ abi: TOKEN.abi, bytecode: TOKEN.bytecode, args: ["Test Token", "TT", SUPPLY] });
  const receipt = await pub.waitForTransactionReceipt({ hash, timeout: 30_000 });
  assertEq(receipt.status, "success", "deploy status");
  token = receipt.contractAddress;
  return token;
});

await check("dev account proof verifies against stateRoot", async () => {
  const proof = await verifyAccount(deployer.address, [], { present: true });
  assertEq(BigInt(proof.balance), await pub.getBalance({ address: deployer.address }), "balance");
  assertEq(proof.codeHash, KECCAK_EMPTY, "EOA codeHash");
  assertEq(proof.storageHash, EMPTY_ROOT, "EOA storageHash");
});

await check("absent account: exclusion proof and empty fields", async () => {
  const nobody = privateKeyToAccount(generatePrivateKey()).address;
  await verifyAccount(nobody, [pad("0x00")], { present: false });
});

await check("contract: present and absent balanceOf slots verify against storageHash", async () => {
  const present = mappingSlot(deployer.address);
  const absent = mappingSlot(privateKeyToAccount(generatePrivateKey()).address);
  const proof = await verifyAccount(token, [present, absent], { present: true });
  assertEq(proof.codeHash, keccak256(await pub.getCode({ address: token })), "contract codeHash");
  assert(proof.storageHash !== EMPTY_ROOT, "contract has storage");
  assertEq(BigInt(proof.storageProof[0].value), SUPPLY, "holder's balance slot");
  assertEq(BigInt(proof.storageProof[1].value), 0n, "absent slot value");
  assertEq(proof.storageProof[1].key, absent, "storage key echoed");
});

await check("older block is refused with -32000", async () => {
  const res = await rpc("eth_getProof", [deployer.address, [], "0x0"]);
  assertEq(res.error?.code, -32000, "code");
  assert(res.error.message.startsWith("proofs are only served for the latest block ("), res.error.message);
});

await check("block hashes recomputed from RPC header fields", async () => {
  const head = BigInt((await rpc("eth_blockNumber")).result);
  const numbers = [0n, head / 2n, head - 1n, head].filter((n, i, all) => n >= 0n && all.indexOf(n) === i);
  for (const n of numbers) {
    const block = (await rpc("eth_getBlockByNumber", [toHex(n), false])).result;
    assertEq(keccak256(headerRlp(block)), block.hash, `hash of block ${n}`);
  }
  return `${numbers.length} blocks`;
});

finish("proofs.mjs");
