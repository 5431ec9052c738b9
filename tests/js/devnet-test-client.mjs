// viem's test client (createTestClient({ mode: "anvil" })) against `bttd devnet --automine`:
// mining, setBalance, setCode, setStorageAt, setNonce, impersonation (a transfer from an account
// whose key nobody has), snapshot and revert (balances, nonces, code and the block number back
// exactly, WebSocket subscribers and filters see a reorg), time, automine on and off, reset.
// Afterwards every block hash is recomputed from the RPC header fields, every receipts root
// from the RPC receipts, and eth_getProof proofs verify against the head's stateRoot: the
// cheats are on the record.
//
//   RPC_URL=http://127.0.0.1:8545 WS_URL=ws://127.0.0.1:8545 CHAIN_ID=1337 node tests/js/devnet-test-client.mjs
//
// Also runs against anvil (CHAIN_ID=31337), except the checks of bttd's own records.
import {
  createPublicClient,
  createTestClient,
  createWalletClient,
  http,
  webSocket,
  keccak256,
  toHex,
  toRlp,
  hexToBytes,
  bytesToHex,
  concat,
  pad,
  parseEther,
  encodeFunctionData,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { Trie } from "@ethereumjs/trie";
import { env, chain, devAccount, loadArtifact, rpc, check, finish, assert, assertEq, sleep, withTimeout } from "./lib.mjs";

const TOKEN = loadArtifact("TestToken");
const EMPTY_ROOT = "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421";
const TRANSFER_TOPIC = keccak256(new TextEncoder().encode("Transfer(address,address,uint256)"));

/** bttd records cheats and reverts (a reorg for subscribers); anvil does not. */
const isBttd = String((await rpc("web3_clientVersion")).result).startsWith("bttd");

const test = createTestClient({ mode: "anvil", chain, transport: http(env.rpcUrl) });
const pub = createPublicClient({ chain, transport: http(env.rpcUrl), pollingInterval: 100 });
const deployer = devAccount(0);
const alice = devAccount(1);
const wallet = (account) => createWalletClient({ account, chain, transport: http(env.rpcUrl) });
const fresh = () => privateKeyToAccount(generatePrivateKey()).address;

/** The head number, uncached (viem's getBlockNumber caches for the polling interval). */
async function blockNumber() {
  return BigInt((await rpc("eth_blockNumber")).result);
}

async function receipt(hash) {
  return pub.waitForTransactionReceipt({ hash, timeout: 30_000 });
}

// ---------------------------------------------------------------------------------------------
// Mining
// ---------------------------------------------------------------------------------------------

await check("automine is on (--automine) and a transaction is mined before its hash returns", async () => {
  assertEq(await test.getAutomine(), true, "getAutomine");
  const hash = await wallet(alice).sendTransaction({ to: fresh(), value: 1n });
  const r = await rpc("eth_getTransactionReceipt", [hash]);
  assert(r.result && r.result.status === "0x1", `receipt right after sendTransaction: ${JSON.stringify(r)}`);
});

await check("mine 3 blocks 10 s apart", async () => {
  const before = await pub.getBlock();
  await test.mine({ blocks: 3, interval: 10 });
  const after = await pub.getBlock();
  assertEq(after.number, before.number + 3n, "block number");
  const middle = await pub.getBlock({ blockNumber: before.number + 2n });
  assertEq(after.timestamp - middle.timestamp, 10n, "interval between mined blocks");
});

// ---------------------------------------------------------------------------------------------
// Cheats
// ---------------------------------------------------------------------------------------------

const target = fresh();
const CODE = "0x6080604052600080fd";

await check("setBalance, setCode, setStorageAt, setNonce", async () => {
  const before = await blockNumber();
  await test.setBalance({ address: target, value: parseEther("12.5") });
  assertEq(await pub.getBalance({ address: target }), parseEther("12.5"), "balance");
  await test.setCode({ address: target, bytecode: CODE });
  assertEq(await pub.getCode({ address: target }), CODE, "code");
  await test.setStorageAt({ address: target, index: 2, value: pad("0x45") });
  assertEq(await pub.getStorageAt({ address: target, slot: toHex(2) }), pad("0x45"), "storage");
  await test.setNonce({ address: target, nonce: 17 });
  assertEq(await pub.getTransactionCount({ address: target }), 17, "nonce");
  const mined = (await blockNumber()) - before;
  if (isBttd) assertEq(mined, 4n, "blocks mined by 4 cheats (each is a block on bttd)");
  return `${mined} blocks mined by 4 cheats`;
});

const keyless = fresh();
const recipient = fresh();

await check("impersonateAccount: a transfer from an account whose key nobody has", async () => {
  await test.setBalance({ address: keyless, value: parseEther("10") });
  await test.impersonateAccount({ address: keyless });
  const hash = await wallet(keyless).sendTransaction({ account: keyless, to: recipient, value: parseEther("1") });
  const r = await receipt(hash);
  assertEq(r.status, "success", "status");
  assertEq(r.from.toLowerCase(), keyless.toLowerCase(), "receipt from");
  const tx = await pub.getTransaction({ hash });
  assertEq(tx.from.toLowerCase(), keyless.toLowerCase(), "transaction from");
  assertEq(await pub.getBalance({ address: recipient }), parseEther("1"), "recipient balance");
  assertEq(await pub.getTransactionCount({ address: keyless }), 1, "sender nonce");
  await test.stopImpersonatingAccount({ address: keyless });
  const refused = await rpc("eth_sendTransaction", [{ from: keyless, to: recipient, value: "0x1" }]);
  assert(refused.error, `sending after stopImpersonatingAccount succeeded: ${JSON.stringify(refused)}`);
});

// ---------------------------------------------------------------------------------------------
// Snapshot and revert, seen by a WebSocket subscriber and by filters
// ---------------------------------------------------------------------------------------------

let token;

await check("deploy TestToken", async () => {
  const hash = await wallet(deployer).deployContract({ abi: TOKEN.abi, bytecode: TOKEN.bytecode, args: ["T", "T", 10n ** 24n] });
  token = (await receipt(hash)).contractAddress;
  return token;
});

await check("snapshot and revert: balances, nonces, code and the block number back exactly; a reorg for subscribers and filters", async () => {
  const watched = [target, keyless, recipient, deployer.address, token];
  const state = async () => {
    const out = { number: await blockNumber() };
    for (const a of watched) {
      out[a] = [await pub.getBalance({ address: a }), await pub.getTransactionCount({ address: a }), await pub.getCode({ address: a })];
    }
    out.slot = await pub.getStorageAt({ address: target, slot: toHex(2) });
    return out;
  };
  const before = await state();
  const head = await pub.getBlock();
  const id = await test.snapshot();

  const ws = createPublicClient({ chain, transport: webSocket(env.wsUrl) });
  const heads = [];
  const logs = [];
  const headSub = await ws.transport.subscribe({ params: ["newHeads"], onData: ({ result }) => heads.push(result) });
  const logSub = await ws.transport.subscribe({
    params: ["logs", { address: token, topics: [TRANSFER_TOPIC] }],
    onData: ({ result }) => logs.push(result),
  });
  const polled = (await rpc("eth_newFilter", [{ address: token }])).result;
  const unpolled = (await rpc("eth_newFilter", [{ address: token }])).result;

  await test.setBalance({ address: target, value: 1n });
  await test.setNonce({ address: keyless, nonce: 99 });
  await test.setCode({ address: recipient, bytecode: CODE });
  await test.setStorageAt({ address: target, index: 2, value: pad("0x99") });
  const transfer = await wallet(deployer).writeContract({
    address: token,
    abi: TOKEN.abi,
    functionName: "transfer",
    args: [recipient, 5n],
  });
  await receipt(transfer);
  await test.mine({ blocks: 2 });
  await withTimeout(
    (async () => {
      while (!logs.some((l) => l.transactionHash === transfer)) await sleep(50);
    })(),
    10_000,
    "the live Transfer log",
  );
  const live = (await rpc("eth_getFilterChanges", [polled])).result;
  assert(live.some((l) => l.transactionHash === transfer && !l.removed), "the polled filter saw the transfer live");

  assertEq(await test.revert({ id }), undefined, "revert result (viem returns nothing)");
  const after = await state();
  for (const key of Object.keys(before)) {
    // anvil mines a block on revert; bttd is back at the snapshot's head exactly.
    if (key === "number" && !isBttd) continue;
    const show = (v) => JSON.stringify(v, (_, x) => (typeof x === "bigint" ? x.toString() : x)).slice(0, 200);
    assertEq(show(after[key]), show(before[key]), `${key} after revert`);
  }
  if (isBttd) assertEq((await pub.getBlock()).hash, head.hash, "head hash after revert");
  assertEq(await pub.getTransaction({ hash: transfer }).catch(() => null), null, "the reverted transaction is gone");
  const again = await rpc("evm_revert", [id]);
  assertEq(again.result, false, "a consumed snapshot cannot be reverted to again");

  if (!isBttd) return `snapshot ${id} (anvil: no reorg notifications)`;
  await withTimeout(
    (async () => {
      while (!logs.some((l) => l.transactionHash === transfer && l.removed === true)) await sleep(50);
    })(),
    10_000,
    "the Transfer log with removed: true",
  );
  // The subscription began after `head` was mined, so seeing its hash means the revert
  // announced the reverted-to block again (heads of the mined blocks may still be in flight).
  await withTimeout(
    (async () => {
      while (!heads.some((h) => h.hash === head.hash)) await sleep(50);
    })(),
    10_000,
    "newHeads from the reverted height",
  );
  const afterPolled = (await rpc("eth_getFilterChanges", [polled])).result;
  assert(
    afterPolled.every((l) => l.removed === true) && afterPolled.some((l) => l.transactionHash === transfer),
    `polled filter after revert: ${JSON.stringify(afterPolled)}`,
  );
  const afterUnpolled = (await rpc("eth_getFilterChanges", [unpolled])).result;
  assert(
    afterUnpolled.every((l) => l.removed === true),
    `a filter created before the revert returned reverted logs as live: ${JSON.stringify(afterUnpolled)}`,
  );
  await headSub.unsubscribe();
  await logSub.unsubscribe();
  return `snapshot ${id}, back to #${head.number}`;
});

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

await check("increaseTime and setNextBlockTimestamp are seen in the next block's timestamp", async () => {
  const before = await pub.getBlock();
  await test.increaseTime({ seconds: 3600 });
  await test.mine({ blocks: 1 });
  const later = await pub.getBlock();
  assert(later.timestamp >= before.timestamp + 3600n, `timestamp ${later.timestamp} after ${before.timestamp} + 3600`);
  const pinned = later.timestamp + 10_000n;
  await test.setNextBlockTimestamp({ timestamp: pinned });
  await test.mine({ blocks: 1 });
  assertEq((await pub.getBlock()).timestamp, pinned, "pinned timestamp");
});

await check("setNextBlockBaseFeePerGas is the next block's base fee", async () => {
  await test.setNextBlockBaseFeePerGas({ baseFeePerGas: 3_000_000_000n });
  await test.mine({ blocks: 1 });
  assertEq((await pub.getBlock()).baseFeePerGas, 3_000_000_000n, "baseFeePerGas");
});

// ---------------------------------------------------------------------------------------------
// Automine off and on
// ---------------------------------------------------------------------------------------------

await check("automine off: a transaction waits for mine; on again: mined at once", async () => {
  await test.setAutomine(false);
  assertEq(await test.getAutomine(), false, "getAutomine");
  const hash = await wallet(alice).sendTransaction({ to: fresh(), value: 2n });
  await sleep(1500);
  assertEq((await rpc("eth_getTransactionReceipt", [hash])).result, null, "receipt before mine");
  await test.mine({ blocks: 1 });
  assertEq((await receipt(hash)).status, "success", "mined by mine");
  await test.setAutomine(true);
  assertEq(await test.getAutomine(), true, "getAutomine");
  const next = await wallet(alice).sendTransaction({ to: fresh(), value: 3n });
  assert((await rpc("eth_getTransactionReceipt", [next])).result, "mined before the hash returned");
});

await check("dropTransaction removes a pooled transaction", async () => {
  await test.setAutomine(false);
  const hash = await wallet(alice).sendTransaction({ to: fresh(), value: 4n });
  await test.dropTransaction({ hash });
  await test.mine({ blocks: 1 });
  assertEq((await rpc("eth_getTransactionByHash", [hash])).result, null, "dropped transaction");
  await test.setAutomine(true);
});

// ---------------------------------------------------------------------------------------------
// Reset, then a chain whose records must all verify
// ---------------------------------------------------------------------------------------------

await check("reset goes back to genesis", async () => {
  if (!isBttd) return "skipped: anvil without --fork-url refuses viem's reset";
  await test.reset();
  assertEq(await blockNumber(), 0n, "block number");
  assertEq(await pub.getBalance({ address: target }), 0n, "cheated balance gone");
  assertEq(await pub.getTransactionCount({ address: alice.address }), 0, "dev nonce");
  const forked = await rpc("anvil_reset", [{ forking: { jsonRpcUrl: "http://127.0.0.1:1", blockNumber: null } }]);
  assert(forked.error && /fork/.test(forked.error.message), `forking refused: ${JSON.stringify(forked)}`);
});

let proofToken;
await check("after reset: cheats and transactions again", async () => {
  await test.setBalance({ address: target, value: 7n });
  await test.setCode({ address: target, bytecode: CODE });
  await test.setStorageAt({ address: target, index: 1, value: pad("0x01") });
  const hash = await wallet(deployer).deployContract({ abi: TOKEN.abi, bytecode: TOKEN.bytecode, args: ["T", "T", 10n ** 24n] });
  proofToken = (await receipt(hash)).contractAddress;
  await receipt(
    await wallet(deployer).sendTransaction({
      to: proofToken,
      data: encodeFunctionData({ abi: TOKEN.abi, functionName: "transfer", args: [alice.address, 9n] }),
    }),
  );
});

/** An RLP integer: big-endian bytes without leading zeros (0 is the empty string). */
function rlpInt(value) {
  const n = BigInt(value);
  return n === 0n ? "0x" : toHex(n);
}

function headerRlp(b) {
  return toRlp([
    b.parentHash, b.sha3Uncles, b.miner, b.stateRoot, b.transactionsRoot, b.receiptsRoot, b.logsBloom,
    rlpInt(b.difficulty), rlpInt(b.number), rlpInt(b.gasLimit), rlpInt(b.gasUsed), rlpInt(b.timestamp),
    b.extraData, b.mixHash, b.nonce, rlpInt(b.baseFeePerGas), b.withdrawalsRoot, rlpInt(b.blobGasUsed),
    rlpInt(b.excessBlobGas), b.parentBeaconBlockRoot, b.requestsHash,
  ]);
}

/** EIP-2718 receipt encoding from an RPC receipt. */
function receiptBytes(r) {
  const body = toRlp([
    r.status === "0x1" ? "0x01" : "0x",
    rlpInt(r.cumulativeGasUsed),
    r.logsBloom,
    r.logs.map((l) => [l.address, l.topics, l.data]),
  ]);
  const type = Number(r.type);
  return type === 0 ? body : concat([toHex(type, { size: 1 }), body]);
}

await check("every block hash and receipts root recomputed from the RPC verifies", async () => {
  const head = BigInt((await rpc("eth_blockNumber")).result);
  for (let n = 0n; n <= head; n++) {
    const block = (await rpc("eth_getBlockByNumber", [toHex(n), false])).result;
    assertEq(keccak256(headerRlp(block)), block.hash, `hash of block ${n}`);
    const trie = new Trie();
    for (const [i, hash] of block.transactions.entries()) {
      const r = (await rpc("eth_getTransactionReceipt", [hash])).result;
      await trie.put(hexToBytes(toRlp(rlpInt(i))), hexToBytes(receiptBytes(r)));
    }
    assertEq(bytesToHex(trie.root()), block.receiptsRoot, `receiptsRoot of block ${n}`);
  }
  return `${head + 1n} blocks`;
});

async function proven(root, key, proof) {
  if (root === EMPTY_ROOT) return null;
  const value = await new Trie().verifyProof(hexToBytes(root), hexToBytes(keccak256(key)), proof.map(hexToBytes));
  return value === null ? null : bytesToHex(value);
}

await check("eth_getProof of cheated and transacting accounts verifies against the head's stateRoot", async () => {
  const block = (await rpc("eth_getBlockByNumber", ["latest", false])).result;
  for (const [address, slots] of [
    [target, [pad("0x01")]],
    [proofToken, [keccak256(concat([pad(alice.address), pad(toHex(3n))]))]],
    [deployer.address, []],
  ]) {
    const proof = (await rpc("eth_getProof", [address, slots, block.number])).result;
    const account = await proven(block.stateRoot, address, proof.accountProof);
    const expected = toRlp([rlpInt(proof.nonce), rlpInt(proof.balance), proof.storageHash, proof.codeHash]);
    assertEq(account, expected, `proven account ${address}`);
    for (const slot of proof.storageProof) {
      const value = BigInt(slot.value);
      assert(value !== 0n, `slot ${slot.key} of ${address} is set`);
      const provenValue = await proven(proof.storageHash, pad(toHex(BigInt(slot.key))), slot.proof);
      assertEq(provenValue, toRlp(toHex(value)), `proven slot ${slot.key} of ${address}`);
    }
  }
  const cheated = (await rpc("eth_getProof", [target, [], block.number])).result;
  assertEq(BigInt(cheated.balance), 7n, "cheated balance in the proof");
  assertEq(cheated.codeHash, keccak256(CODE), "cheated code hash in the proof");
});

finish("devnet-test-client.mjs");
