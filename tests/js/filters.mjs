// Polling filters through viem over HTTP: createEventFilter + getFilterChanges (each Transfer
// exactly once, nothing on a further poll), a block filter, and watchContractEvent in polling
// mode (which viem drives with eth_newFilter / eth_getFilterChanges).
//
//   RPC_URL=http://127.0.0.1:8545 CHAIN_ID=31337 node tests/js/filters.mjs
import { createPublicClient, createWalletClient, http } from "viem";
import { env, chain, devAccount, loadArtifact, check, finish, assert, assertEq, sleep } from "./lib.mjs";

const TOKEN = loadArtifact("TestToken");
const abi = TOKEN.abi;
const pub = createPublicClient({ chain, transport: http(env.rpcUrl), pollingInterval: 200 });
const deployer = devAccount(0);
const bob = devAccount(2);
const wallet = createWalletClient({ account: deployer, chain, transport: http(env.rpcUrl) });
let token;

async function transfer(amount) {
  const hash = await wallet.writeContract({ address: token, abi, functionName: "transfer", args: [bob.address, amount] });
  const r = await pub.waitForTransactionReceipt({ hash, timeout: 20_000 });
  assertEq(r.status, "success", "transfer status");
  return hash;
}

/** Polls until `count` items arrived, then checks one more poll brings nothing. */
async function pollExactly(filter, count) {
  const seen = [];
  const deadline = Date.now() + 20_000;
  while (seen.length < count) {
    assert(Date.now() < deadline, `only ${seen.length} of ${count} changes`);
    seen.push(...(await pub.getFilterChanges({ filter })));
    await sleep(100);
  }
  assertEq(seen.length, count, "number of changes");
  await sleep(600);
  assertEq((await pub.getFilterChanges({ filter })).length, 0, "changes on a further poll");
  return seen;
}

async function deploy() {
  const hash = await wallet.deployContract({ abi, bytecode: TOKEN.bytecode, args: ["Test Token", "TT", 10n ** 24n] });
  token = (await pub.waitForTransactionReceipt({ hash, timeout: 20_000 })).contractAddress;
  assert(token, "no contract address");
}

async function eventFilter() {
  const filter = await pub.createContractEventFilter({ abi, address: token, eventName: "Transfer" });
  const a = await transfer(1n);
  const first = await pollExactly(filter, 1);
  assertEq(first[0].transactionHash, a, "first log");
  assertEq(first[0].args.value, 1n, "decoded value");
  const b = await transfer(2n);
  const c = await transfer(3n);
  const more = await pollExactly(filter, 2);
  assertEq(more.map((l) => l.transactionHash).join(), [b, c].join(), "next logs");
  // Without fromBlock a filter starts at "latest" at query time (geth), so ask for a range.
  const ranged = await pub.createContractEventFilter({ abi, address: token, eventName: "Transfer", fromBlock: 0n });
  const all = await pub.getFilterLogs({ filter: ranged });
  assertEq(all.length, 4, "eth_getFilterLogs (mint + 3 transfers)");
  assertEq(await pub.uninstallFilter({ filter }), true, "uninstall");
}

async function blockFilter() {
  const filter = await pub.createBlockFilter();
  const start = await pub.getBlockNumber();
  const deadline = Date.now() + 20_000;
  while ((await pub.getBlockNumber()) < start + 3n) {
    assert(Date.now() < deadline, "no new blocks");
    await sleep(100);
  }
  await sleep(400);
  const hashes = await pub.getFilterChanges({ filter });
  assert(hashes.length >= 3, `only ${hashes.length} block hashes`);
  assertEq(new Set(hashes).size, hashes.length, "distinct block hashes");
  return `${hashes.length} blocks`;
}

async function watch() {
  const got = [];
  const unwatch = pub.watchContractEvent({ abi, address: token, eventName: "Transfer", poll: true, onLogs: (logs) => got.push(...logs) });
  await sleep(600); // let viem install its filter
  const sent = [await transfer(10n), await transfer(11n)];
  const deadline = Date.now() + 20_000;
  while (got.length < 2 && Date.now() < deadline) await sleep(100);
  await sleep(800);
  unwatch();
  assertEq(got.map((l) => l.transactionHash).join(), sent.join(), "watched logs, each once");
}

await check("deploy TestToken", deploy);
await check("createContractEventFilter + getFilterChanges: each Transfer once", eventFilter);
await check("createBlockFilter: each block once", blockFilter);
await check("watchContractEvent over HTTP polling: each Transfer once", watch);
finish("filters");
