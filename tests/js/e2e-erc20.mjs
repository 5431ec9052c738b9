// End-to-end client check with viem: deploy TestToken, native transfers with exact fee
// accounting, ERC-20 calls, revert reasons and custom errors, logs, WebSocket subscriptions.
//
//   RPC_URL=http://127.0.0.1:8545 WS_URL=ws://127.0.0.1:8545 CHAIN_ID=31337 \
//     [FEE_POOL=0x...] node tests/js/e2e-erc20.mjs
//
// Dev accounts used: 0 (deployer), 1 (native sender / token-less caller), 2 (token holder),
// 3 (ethers v6 wallet).
import {
  createPublicClient,
  createWalletClient,
  http,
  webSocket,
  parseEther,
  encodeFunctionData,
  decodeErrorResult,
  decodeEventLog,
  parseEventLogs,
  toEventSelector,
  pad,
  ContractFunctionRevertedError,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { Contract, HDNodeWallet, JsonRpcProvider } from "ethers";
import {
  MNEMONIC,
  env,
  chain,
  devAccount,
  loadArtifact,
  rpcError,
  check,
  finish,
  assert,
  assertEq,
  assertIncludes,
  withTimeout,
} from "./lib.mjs";

const TOKEN = loadArtifact("TestToken");
const abi = TOKEN.abi;
const SUPPLY = 1_000_000n * 10n ** 18n;
const TRANSFER_TOPIC = toEventSelector("Transfer(address,address,uint256)");
const REASON = "ERC20: insufficient balance";

const pub = createPublicClient({ chain, transport: http(env.rpcUrl), pollingInterval: 200 });
const deployer = devAccount(0);
const alice = devAccount(1); // sends BTT; holds no tokens
const bob = devAccount(2); // receives tokens

/** Every receipt of a tx this script mined, for the per-block fee split check. */
const receipts = [];
/** Transfer logs we caused (from receipts), for the eth_getLogs check. */
const expectedTransfers = [];
let tokenAddress;
let firstBlock;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

function wallet(account) {
  return createWalletClient({ account, chain, transport: http(env.rpcUrl) });
}

async function mined(hash) {
  const r = await pub.waitForTransactionReceipt({ hash, timeout: 60_000 });
  receipts.push(r);
  for (const log of parseEventLogs({ abi, logs: r.logs, eventName: "Transfer" })) {
    if (log.address.toLowerCase() === tokenAddress?.toLowerCase()) expectedTransfers.push(log);
  }
  return r;
}

function freshAddress() {
  return privateKeyToAccount(generatePrivateKey()).address;
}

function balanceOf(who) {
  return pub.readContract({ address: tokenAddress, abi, functionName: "balanceOf", args: [who] });
}

/** Finds the decoded revert (ContractFunctionRevertedError) inside a viem error chain. */
function revertedCause(err) {
  const found = err?.walk?.((e) => e instanceof ContractFunctionRevertedError);
  if (!found) throw new Error(`expected a contract revert, got: ${err?.shortMessage ?? err}`);
  return found;
}

async function expectThrow(promise, what) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error(`${what} succeeded but should have reverted`);
}

/**
 * Sends `value` BTT from alice to a fresh address with the given fee fields and checks the
 * sender paid exactly value + gasUsed * effectiveGasPrice and the recipient got exactly value.
 */
async function nativeTransferExactFees(kind) {
  const to = freshAddress();
  const value = parseEther("1.25");
  const before = await pub.getBalance({ address: alice.address });
  let fees;
  if (kind === "eip1559") {
    const f = await pub.estimateFeesPerGas();
    fees = { type: "eip1559", maxFeePerGas: f.maxFeePerGas, maxPriorityFeePerGas: f.maxPriorityFeePerGas };
  } else {
    fees = { type: "legacy", gasPrice: await pub.getGasPrice() };
  }
  const hash = await wallet(alice).sendTransaction({ to, value, ...fees });
  const r = await mined(hash);
  assertEq(r.status, "success", "receipt status");
  assertEq(r.type, kind, "receipt type");
  const block = await pub.getBlock({ blockNumber: r.blockNumber });
  assert(block.miner.toLowerCase() !== alice.address.toLowerCase(), "sender is the block's miner; cannot account fees");
  const base = block.baseFeePerGas;
  const expectedPrice =
    kind === "eip1559"
      ? base + fees.maxPriorityFeePerGas < fees.maxFeePerGas
        ? base + fees.maxPriorityFeePerGas
        : fees.maxFeePerGas
      : fees.gasPrice;
  assertEq(r.effectiveGasPrice, expectedPrice, "effectiveGasPrice");
  assertEq(r.gasUsed, 21000n, "gasUsed of a plain transfer");
  const after = await pub.getBalance({ address: alice.address });
  assertEq(before - after, value + r.gasUsed * r.effectiveGasPrice, "sender balance drop");
  assertEq(await pub.getBalance({ address: to }), value, "recipient balance");
  return `block ${r.blockNumber}, baseFee ${base}, price ${r.effectiveGasPrice}`;
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

async function checkChainId() {
  assertEq(await pub.getChainId(), env.chainId, "eth_chainId");
  firstBlock = await pub.getBlockNumber();
}

async function checkDeploy() {
  const hash = await wallet(deployer).deployContract({ abi, bytecode: TOKEN.bytecode, args: ["Test Token", "TT", SUPPLY] });
  const r = await mined(hash);
  assertEq(r.status, "success", "deploy receipt status");
  assert(r.contractAddress, "receipt has no contractAddress");
  tokenAddress = r.contractAddress;
  // Collect the mint's Transfer now that the address is known.
  for (const log of parseEventLogs({ abi, logs: r.logs, eventName: "Transfer" })) expectedTransfers.push(log);
  assertEq(await pub.getCode({ address: tokenAddress }), TOKEN.deployedBytecode, "eth_getCode vs artifact");
  assertEq(await pub.readContract({ address: tokenAddress, abi, functionName: "totalSupply" }), SUPPLY, "totalSupply");
  assertEq(await balanceOf(deployer.address), SUPPLY, "deployer balance");
  assertEq(await pub.readContract({ address: tokenAddress, abi, functionName: "symbol" }), "TT", "symbol");
  return tokenAddress;
}

async function checkErc20Transfer() {
  const amount = 1000n;
  const hash = await wallet(deployer).writeContract({ address: tokenAddress, abi, functionName: "transfer", args: [bob.address, amount] });
  const r = await mined(hash);
  assertEq(r.status, "success", "receipt status");
  const [log, ...rest] = parseEventLogs({ abi, logs: r.logs, eventName: "Transfer" });
  assert(log && rest.length === 0, "expected exactly one Transfer log");
  assertEq(log.args.from, deployer.address, "Transfer.from");
  assertEq(log.args.to, bob.address, "Transfer.to");
  assertEq(log.args.value, amount, "Transfer.value");
  assertEq(await balanceOf(bob.address), amount, "balanceOf(bob) via eth_call");
  assertEq(await balanceOf(deployer.address), SUPPLY - amount, "balanceOf(deployer) via eth_call");
}

async function checkEstimateGasAndUse() {
  const args = [alice.address, 5n];
  const gas = await pub.estimateContractGas({ address: tokenAddress, abi, functionName: "transfer", args, account: bob });
  assert(gas > 21000n, `estimate ${gas} too small`);
  const hash = await wallet(bob).writeContract({ address: tokenAddress, abi, functionName: "transfer", args, gas });
  const r = await mined(hash);
  assertEq(r.status, "success", "receipt status with the estimated gas limit");
  assert(r.gasUsed <= gas, `gasUsed ${r.gasUsed} > estimate ${gas}`);
  return `estimate ${gas}, used ${r.gasUsed}`;
}

/** eth_call and eth_estimateGas both surface `execution reverted: <reason>` with decodable data. */
async function checkRevertReason() {
  const data = encodeFunctionData({ abi, functionName: "transfer", args: [deployer.address, 10n ** 30n] });
  const tx = { from: alice.address, to: tokenAddress, data };
  for (const [method, params] of [
    ["eth_call", [tx, "latest"]],
    ["eth_estimateGas", [tx]],
  ]) {
    const err = await rpcError(method, params);
    assertIncludes(err.message, "execution reverted", `${method} message`);
    assertIncludes(err.message, REASON, `${method} message`);
    assertEq(err.code, 3, `${method} error code`);
    const decoded = decodeErrorResult({ abi, data: err.data });
    assertEq(decoded.errorName, "Error", `${method} decoded error name`);
    assertEq(decoded.args[0], REASON, `${method} decoded reason`);
  }
  // And viem's high-level path decodes it the same way.
  const e = await expectThrow(
    pub.simulateContract({ address: tokenAddress, abi, functionName: "transfer", args: [deployer.address, 10n ** 30n], account: alice }),
    "simulateContract",
  );
  assertEq(revertedCause(e).reason, REASON, "viem ContractFunctionRevertedError.reason");
}

/** Custom errors with arguments come back as raw data that decodes against the ABI. */
async function checkCustomErrors() {
  const always = await rpcError("eth_call", [
    { from: bob.address, to: tokenAddress, data: encodeFunctionData({ abi, functionName: "alwaysRevert", args: [42n, "custom"] }) },
    "latest",
  ]);
  assertIncludes(always.message, "execution reverted", "alwaysRevert message");
  const a = decodeErrorResult({ abi, data: always.data });
  assertEq(a.errorName, "AlwaysFails", "alwaysRevert error name");
  assertEq(a.args[0], bob.address, "AlwaysFails.caller");
  assertEq(a.args[1], 42n, "AlwaysFails.code");
  assertEq(a.args[2], "custom", "AlwaysFails.why");

  // transferFrom without allowance -> InsufficientAllowance(spender, 0, needed), through viem.
  const e = await expectThrow(
    pub.readContract({ address: tokenAddress, abi, functionName: "transferFrom", args: [deployer.address, bob.address, 7n], account: bob }),
    "transferFrom without allowance",
  );
  const cause = revertedCause(e);
  assertEq(cause.data?.errorName, "InsufficientAllowance", "viem decoded error name");
  assertEq(cause.data.args[0], bob.address, "InsufficientAllowance.spender");
  assertEq(cause.data.args[1], 0n, "InsufficientAllowance.allowance");
  assertEq(cause.data.args[2], 7n, "InsufficientAllowance.needed");
}

/** A reverting tx with an explicit gas limit is mined with status 0, and the sender pays gas. */
async function checkRevertedTxMined() {
  const before = await pub.getBalance({ address: alice.address });
  const hash = await wallet(alice).writeContract({
    address: tokenAddress,
    abi,
    functionName: "transfer",
    args: [deployer.address, 10n ** 30n],
    gas: 100_000n,
  });
  const r = await mined(hash);
  assertEq(r.status, "reverted", "receipt status");
  assertEq(r.logs.length, 0, "logs of a reverted tx");
  assert(r.gasUsed > 21000n && r.gasUsed < 100_000n, `gasUsed ${r.gasUsed}`);
  const after = await pub.getBalance({ address: alice.address });
  assertEq(before - after, r.gasUsed * r.effectiveGasPrice, "fee charged for the reverted tx");
  // The raw receipt says "0x0".
  const raw = await pub.request({ method: "eth_getTransactionReceipt", params: [hash] });
  assertEq(raw.status, "0x0", "raw receipt status");
}

/** ethers v6, unchanged: HD wallet send + wait, Contract read, revert reason decoding. */
async function checkEthers() {
  const provider = new JsonRpcProvider(env.rpcUrl, env.chainId, { staticNetwork: true });
  provider.pollingInterval = 200;
  try {
    const w = HDNodeWallet.fromPhrase(MNEMONIC, undefined, "m/44'/60'/0'/0/3").connect(provider);
    const to = freshAddress();
    const tx = await w.sendTransaction({ to, value: 12345n });
    const rc = await tx.wait(1, 60_000);
    assertEq(rc.status, 1, "ethers receipt status");
    receipts.push(await pub.getTransactionReceipt({ hash: rc.hash }));
    assertEq(await provider.getBalance(to), 12345n, "ethers getBalance(recipient)");
    const token = new Contract(tokenAddress, abi, provider);
    assertEq(await token.balanceOf(bob.address), await balanceOf(bob.address), "ethers Contract.balanceOf");
    try {
      await token.connect(w).transfer.staticCall(deployer.address, 10n ** 30n);
      throw new Error("staticCall did not revert");
    } catch (e) {
      assertEq(e.code, "CALL_EXCEPTION", `ethers error code (${e.shortMessage ?? e.message})`);
      assertEq(e.reason, REASON, "ethers revert reason");
    }
    return `type ${rc.type} tx in block ${rc.blockNumber}`;
  } finally {
    provider.destroy();
  }
}

/** eth_subscribe("logs") over WebSocket delivers the Transfer of a tx sent after subscribing. */
async function checkWsLogs(ws) {
  let resolveLog;
  const got = new Promise((r) => {
    resolveLog = r;
  });
  let sent;
  const sub = await ws.transport.subscribe({
    params: ["logs", { address: tokenAddress, topics: [TRANSFER_TOPIC] }],
    // viem hands over the notification's params: {subscription, result}.
    onData: ({ result: log }) => {
      if (log?.transactionHash === sent) resolveLog(log);
    },
    onError: (e) => console.log(`  ws error: ${e?.message ?? e}`),
  });
  try {
    const hash = await wallet(deployer).writeContract({ address: tokenAddress, abi, functionName: "transfer", args: [bob.address, 77n] });
    sent = hash;
    await mined(hash);
    const log = await withTimeout(got, 30_000, "the Transfer log over eth_subscribe");
    assertEq(log.transactionHash, hash, "subscribed log's transactionHash");
    const ev = decodeEventLog({ abi, data: log.data, topics: log.topics });
    assertEq(ev.eventName, "Transfer", "event name");
    assertEq(ev.args.to, bob.address, "Transfer.to");
    assertEq(ev.args.value, 77n, "Transfer.value");
    return `subscription ${sub.subscriptionId}`;
  } finally {
    await sub.unsubscribe();
  }
}

/** eth_subscribe("newHeads") delivers a header that matches eth_getBlockByNumber. */
async function checkWsNewHeads(ws) {
  let resolveHead;
  const got = new Promise((r) => {
    resolveHead = r;
  });
  const sub = await ws.transport.subscribe({
    params: ["newHeads"],
    onData: ({ result: head }) => resolveHead(head),
    onError: (e) => console.log(`  ws error: ${e?.message ?? e}`),
  });
  try {
    // Make sure a block gets produced even on an instamine chain (anvil).
    await mined(await wallet(alice).sendTransaction({ to: freshAddress(), value: 1n }));
    const head = await withTimeout(got, 30_000, "a newHeads notification");
    for (const field of ["number", "hash", "parentHash", "miner", "stateRoot", "timestamp", "baseFeePerGas"]) {
      assert(typeof head[field] === "string" && head[field].startsWith("0x"), `head.${field} = ${head[field]}`);
    }
    const block = await pub.getBlock({ blockNumber: BigInt(head.number) });
    assertEq(block.hash, head.hash, "head hash vs eth_getBlockByNumber");
    return `head #${BigInt(head.number)}`;
  } finally {
    await sub.unsubscribe();
  }
}

/** eth_getLogs by address+event, and by topic filter, returns exactly the Transfers we caused. */
async function checkGetLogs() {
  const toBlock = await pub.getBlockNumber();
  const key = (l) => `${l.transactionHash}:${l.logIndex}`;
  const want = expectedTransfers.map(key).sort();
  const logs = await pub.getLogs({
    address: tokenAddress,
    event: abi.find((x) => x.type === "event" && x.name === "Transfer"),
    fromBlock: firstBlock,
    toBlock,
  });
  assertEq(JSON.stringify(logs.map(key).sort()), JSON.stringify(want), "getLogs(address, Transfer)");
  for (const l of logs) assert(l.args.value !== undefined && !l.removed, "decoded, not removed");

  // Raw topic filter: Transfers *to bob* only.
  const res = await pub.request({
    method: "eth_getLogs",
    params: [
      {
        address: tokenAddress,
        fromBlock: `0x${firstBlock.toString(16)}`,
        toBlock: `0x${toBlock.toString(16)}`,
        topics: [TRANSFER_TOPIC, null, pad(bob.address).toLowerCase()],
      },
    ],
  });
  const wantToBob = expectedTransfers.filter((l) => l.args.to === bob.address).map(key).sort();
  const gotToBob = res.map((l) => `${l.transactionHash}:${Number(l.logIndex)}`).sort();
  assertEq(JSON.stringify(gotToBob), JSON.stringify(wantToBob), "eth_getLogs(topics=[Transfer,*,bob])");
  return `${logs.length} Transfer logs, ${gotToBob.length} to bob`;
}

/**
 * For every block holding one of our txs: the fee pool grows by sum(baseFee * gasUsed) (bttd does
 * not burn the base fee) and the miner by sum((effectiveGasPrice - baseFee) * gasUsed).
 */
async function checkFeeSplitPerBlock() {
  const blocks = [...new Set(receipts.map((r) => r.blockNumber))].sort((a, b) => (a < b ? -1 : 1));
  const notes = [];
  let minerChecked = 0;
  let poolChecked = 0;
  for (const n of blocks) {
    const block = await pub.getBlock({ blockNumber: n });
    const rs = await Promise.all(block.transactions.map((hash) => pub.getTransactionReceipt({ hash })));
    const base = block.baseFeePerGas;
    let sumBase = 0n;
    let sumTip = 0n;
    let sumGas = 0n;
    const parties = new Set();
    for (const r of rs) {
      sumBase += base * r.gasUsed;
      sumTip += (r.effectiveGasPrice - base) * r.gasUsed;
      sumGas += r.gasUsed;
      for (const a of [r.from, r.to, r.contractAddress]) if (a) parties.add(a.toLowerCase());
    }
    assertEq(sumGas, block.gasUsed, `block ${n}: sum of receipts' gasUsed vs block.gasUsed`);
    const delta = async (address) =>
      (await pub.getBalance({ address, blockNumber: n })) - (await pub.getBalance({ address, blockNumber: n - 1n }));
    const miner = block.miner.toLowerCase();
    if (env.feePool && !parties.has(env.feePool.toLowerCase())) {
      assertEq(await delta(env.feePool), sumBase, `block ${n}: FEE_POOL gain vs sum(baseFee*gasUsed)`);
      poolChecked++;
    }
    if (!parties.has(miner) && miner !== env.feePool?.toLowerCase()) {
      assertEq(await delta(block.miner), sumTip, `block ${n}: miner ${block.miner} gain vs sum(tip*gasUsed)`);
      minerChecked++;
    } else {
      notes.push(`miner check skipped in block ${n} (miner is a tx party or the fee pool)`);
    }
  }
  for (const note of notes) console.log(`  note: ${note}`);
  assert(minerChecked + poolChecked > 0, "no block could be checked");
  return `${blocks.length} blocks; miner checked in ${minerChecked}, fee pool ${env.feePool ? `checked in ${poolChecked}` : "unset (base fee destination not checked)"}`;
}

// ---------------------------------------------------------------------------------------------

await check("eth_chainId matches CHAIN_ID", checkChainId);
await check("deploy TestToken (code == artifact deployedBytecode)", checkDeploy);
await check("EIP-1559 BTT transfer: exact fee accounting", () => nativeTransferExactFees("eip1559"));
await check("legacy (type 0) BTT transfer: exact fee accounting", () => nativeTransferExactFees("legacy"));
await check("ERC-20 transfer + balanceOf via eth_call", checkErc20Transfer);
await check("eth_estimateGas then send with that gas limit", checkEstimateGasAndUse);
await check("revert reason string via eth_call and eth_estimateGas", checkRevertReason);
await check("custom errors decode with the ABI", checkCustomErrors);
await check("reverted tx with explicit gas is mined with status 0", checkRevertedTxMined);
await check("ethers v6: wallet send/wait, Contract call, revert reason", checkEthers);
if (env.wsUrl) {
  const ws = createPublicClient({ chain, transport: webSocket(env.wsUrl) });
  await check("WebSocket eth_subscribe logs receives the Transfer", () => checkWsLogs(ws));
  await check("WebSocket eth_subscribe newHeads receives a head", () => checkWsNewHeads(ws));
} else {
  await check("WebSocket checks (WS_URL is set)", () => {
    throw new Error("WS_URL not set");
  });
}
await check("eth_getLogs by address/topic returns exactly our Transfers", checkGetLogs);
await check("per-block fee split (fee pool / miner tip)", checkFeeSplitPerBlock);
finish("e2e-erc20");
