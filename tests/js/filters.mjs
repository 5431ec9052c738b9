// Polling filters through viem over HTTP: createEventFilter + getFilterChanges (each Transfer
// exactly once, nothing on a further poll), a block filter, and watchContractEvent in polling
// mode (which viem drives with eth_newFilter / eth_getFilterChanges). Then exactly-once under
// load: 200 ERC-20 transfers from four senders, some replaced by a fee bump, while the
// newPendingTransactions WebSocket subscription, a pending-transaction filter, a block filter
// and a log filter run; each must deliver every event once, none missing, none twice.
//
//   RPC_URL=http://127.0.0.1:8545 CHAIN_ID=31337 node tests/js/filters.mjs
import { createPublicClient, createWalletClient, http, webSocket } from "viem";
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

/** Items of `list` that occur more than once. */
function duplicates(list) {
  const seen = new Set();
  return list.filter((x) => (seen.has(x) ? true : (seen.add(x), false)));
}

/** Checks that `got` holds exactly the items of `expected`, each once. */
function exactlyOnce(got, expected, what) {
  const dup = duplicates(got);
  assert(dup.length === 0, `${what}: ${dup.length} delivered twice, e.g. ${dup[0]}`);
  const have = new Set(got);
  const missing = [...expected].filter((x) => !have.has(x));
  assert(missing.length === 0, `${what}: ${missing.length} of ${expected.size} missing, e.g. ${missing[0]}`);
  const extra = got.filter((x) => !expected.has(x));
  assert(extra.length === 0, `${what}: ${extra.length} unexpected, e.g. ${extra[0]}`);
}

const SENDERS = 4;
const PER_SENDER = 50;

async function manyExactlyOnce() {
  assert(env.wsUrl, "WS_URL not set");
  const senders = [3, 4, 5, 6].slice(0, SENDERS).map(devAccount);
  for (const s of senders) {
    const hash = await wallet.writeContract({ address: token, abi, functionName: "transfer", args: [s.address, 10n ** 21n] });
    await pub.waitForTransactionReceipt({ hash, timeout: 20_000 });
  }

  const ws = createPublicClient({ chain, transport: webSocket(env.wsUrl) });
  const wsHashes = [];
  const unwatch = ws.watchPendingTransactions({ onTransactions: (hashes) => wsHashes.push(...hashes) });
  const pendingFilter = await pub.createPendingTransactionFilter();
  const blockFilter = await pub.createBlockFilter();
  const startBlock = await pub.getBlockNumber();
  const logFilter = await pub.createContractEventFilter({ abi, address: token, eventName: "Transfer" });
  await sleep(800); // let viem's eth_subscribe land before the first transaction

  // Poll the filters all along, so deliveries are spread over many polls.
  const polled = { pending: [], blocks: [], logs: [] };
  const pollOnce = async () => {
    polled.pending.push(...(await pub.getFilterChanges({ filter: pendingFilter })));
    polled.blocks.push(...(await pub.getFilterChanges({ filter: blockFilter })));
    polled.logs.push(...(await pub.getFilterChanges({ filter: logFilter })));
  };
  let polling = true;
  const poller = (async () => {
    while (polling) {
      await pollOnce();
      await sleep(150);
    }
  })();

  const fees = await pub.estimateFeesPerGas();
  const accepted = new Set();
  let replaced = 0;
  let replacementsRefused = 0;
  const send = (account, nonce, amount, bump) =>
    createWalletClient({ account, chain, transport: http(env.rpcUrl) }).writeContract({
      address: token,
      abi,
      functionName: "transfer",
      args: [bob.address, amount],
      nonce,
      gas: 100_000n,
      maxFeePerGas: fees.maxFeePerGas * bump,
      maxPriorityFeePerGas: fees.maxPriorityFeePerGas * bump,
    });
  await Promise.all(
    senders.map(async (account, s) => {
      const first = await pub.getTransactionCount({ address: account.address, blockTag: "pending" });
      for (let i = 0; i < PER_SENDER; i++) {
        accepted.add(await send(account, first + i, BigInt(i + 1), 1n));
        // Every tenth transaction of the first sender is replaced by a fee bump at once; if
        // the original was mined first, the node refuses the replacement and that is fine.
        if (s === 0 && i % 10 === 0) {
          try {
            accepted.add(await send(account, first + i, BigInt(1000 + i), 2n));
            replaced++;
          } catch {
            replacementsRefused++;
          }
        }
      }
    }),
  );

  // Wait until every sender's nonces are mined, then collect what was mined.
  const deadline = Date.now() + 60_000;
  for (const account of senders) {
    const target = (await pub.getTransactionCount({ address: account.address, blockTag: "pending" }));
    while ((await pub.getTransactionCount({ address: account.address })) < target) {
      assert(Date.now() < deadline, "transactions not mined within 60 s");
      await sleep(200);
    }
  }
  const mined = new Set();
  for (const hash of accepted) {
    const receipt = await pub.getTransactionReceipt({ hash }).catch(() => null);
    if (receipt) {
      assertEq(receipt.status, "success", "transfer status");
      mined.add(hash);
    }
  }
  assertEq(mined.size, SENDERS * PER_SENDER, "one mined transaction per nonce");
  const endBlock = await pub.getBlockNumber();
  await sleep(1000);
  polling = false;
  await poller;
  await pollOnce();
  unwatch();

  exactlyOnce(wsHashes, accepted, "eth_subscribe newPendingTransactions");
  exactlyOnce(polled.pending, accepted, "eth_newPendingTransactionFilter");
  exactlyOnce(polled.logs.map((l) => l.transactionHash), mined, "eth_newFilter Transfer logs");
  const blocks = await Promise.all(polled.blocks.map((hash) => pub.getBlock({ blockHash: hash })));
  const numbers = blocks.map((b) => b.number).sort((a, b) => (a < b ? -1 : 1));
  assertEq(duplicates(polled.blocks).length, 0, "block hashes delivered twice");
  for (let n = startBlock + 1n; n <= endBlock; n++) assert(numbers.includes(n), `block ${n} missing from the block filter`);
  for (let i = 1; i < numbers.length; i++) assertEq(numbers[i], numbers[i - 1] + 1n, "consecutive blocks");
  return `${accepted.size} pending (${replaced} replacements, ${replacementsRefused} refused), ${mined.size} mined, ${numbers.length} blocks`;
}

await check("deploy TestToken", deploy);
await check("createContractEventFilter + getFilterChanges: each Transfer once", eventFilter);
await check("createBlockFilter: each block once", blockFilter);
await check("watchContractEvent over HTTP polling: each Transfer once", watch);
await check("200 transfers with fee bumps: pending subscription and filters, block and log filters each deliver every event once", manyExactlyOnce);
finish("filters");
