// Bandwidth payment channels end to end on a bttd devnet, with viem as the client:
//
//  1. channel A (payer -> payee): open, 1,000 vouchers signed off-chain with viem's standard
//     signTypedData (increasing cumulative amounts), every one checked by channel_verifyVoucher,
//     the newest settled by a relayer; payer, payee, relayer, contract, fee pool and miner
//     balances match to the wei. The channel_ RPC (getInfo, listByPayer/Payee,
//     voucherTypedData) and `bttd channel voucher` agree with viem.
//  2. channel B: the payer requests a close while `bttd channel watch` (started by the Rust
//     test with the payee's dev account, reading VOUCHER_DIR) holds the payee's vouchers; the
//     watcher settles the best one inside the settle window; after the window the payer
//     withdraws exactly deposit - settled.
//
//   RPC_URL=... CHAIN_ID=1337 FEE_POOL=0x…1000 VOUCHER_DIR=/tmp/v [BTTD=target/release/bttd] \
//     node tests/js/channels-e2e.mjs
//
// Dev accounts: 6 payer, 7 payee (the watcher's key), 8 relayer.
import { execFileSync } from "node:child_process";
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { createPublicClient, createWalletClient, hashTypedData, http, parseEventLogs, recoverTypedDataAddress } from "viem";
import { privateKeyToAccount, generatePrivateKey } from "viem/accounts";
import { env, chain, devAccount, loadArtifact, rpc, check, finish, assert, assertEq, assertIncludes, sleep } from "./lib.mjs";

const CONTRACT = "0x0000000000000000000000000000000000001002";
const { abi } = loadArtifact("BandwidthChannels");
const BTT = 10n ** 18n;
const VOUCHERS = 1000n;
const amountOf = (k) => k * 10n ** 15n + k; // 0.001 BTT + k wei per step
const DEPOSIT_A = 2n * BTT;
const DEPOSIT_B = 5n * BTT;
const WINDOW_B = 4n; // seconds the watcher has to settle

const voucherDir = process.env.VOUCHER_DIR;
const bttd = process.env.BTTD;
if (!voucherDir) {
  console.error("missing env VOUCHER_DIR (the directory `bttd channel watch --vouchers` reads)");
  process.exit(2);
}

const pub = createPublicClient({ chain, transport: http(env.rpcUrl), pollingInterval: 100 });
const payer = devAccount(6);
const payee = devAccount(7);
const relayer = devAccount(8);
const wallet = (account) => createWalletClient({ account, chain, transport: http(env.rpcUrl) });
const domain = { name: "BandwidthChannels", version: "1", chainId: env.chainId, verifyingContract: CONTRACT };
const fields = [
  { name: "channelId", type: "bytes32" },
  { name: "cumulativeAmount", type: "uint256" },
];
const types = { Voucher: fields };

/** Every receipt this script caused, for the per-block fee split. */
const receipts = [];

async function send(account, functionName, args, value = 0n) {
  const hash = await wallet(account).writeContract({ address: CONTRACT, abi, functionName, args, value });
  const receipt = await pub.waitForTransactionReceipt({ hash });
  assertEq(receipt.status, "success", `${functionName} status`);
  receipts.push(receipt);
  return receipt;
}
/** Addresses compare case-insensitively (checksummed or not). */
const assertAddr = (actual, expected, what) => assertEq(actual?.toLowerCase(), expected.toLowerCase(), what);
const fee = (r) => r.gasUsed * r.effectiveGasPrice;
const balanceAt = (address, blockNumber) => pub.getBalance({ address, blockNumber });
const ok = (res, what) => {
  if (res.error) throw new Error(`${what}: ${JSON.stringify(res.error)}`);
  return res.result;
};
const signVoucher = (channelId, cumulativeAmount) =>
  payer.signTypedData({ domain, types, primaryType: "Voucher", message: { channelId, cumulativeAmount } });

let idA;
let openA;
let vouchersA = [];
let settleA;
let idB;

// ---------------------------------------------------------------------------------------------
// Channel A
// ---------------------------------------------------------------------------------------------

await check("open channel A (ChannelOpened, channel_getInfo)", async () => {
  openA = await send(payer, "open", [payee.address, 60n], DEPOSIT_A);
  const [ev] = parseEventLogs({ abi, logs: openA.logs, eventName: "ChannelOpened" });
  idA = ev.args.channelId;
  assertEq(ev.args.payer, payer.address, "event payer");
  assertEq(ev.args.payee, payee.address, "event payee");
  assertEq(ev.args.deposit, DEPOSIT_A, "event deposit");
  const info = ok(await rpc("channel_getInfo", [idA]), "channel_getInfo");
  assertEq(info.channelId, idA, "channelId");
  assertAddr(info.payer, payer.address, "payer");
  assertAddr(info.payee, payee.address, "payee");
  assertEq(BigInt(info.deposit), DEPOSIT_A, "deposit");
  assertEq(BigInt(info.claimed), 0n, "claimed");
  assertEq(BigInt(info.remaining), DEPOSIT_A, "remaining");
  assertEq(info.settleWindow, 60, "settleWindow");
  assertEq(info.closesAt, 0, "closesAt");
  assertEq(info.state, "open", "state");
  // The contract's own getter agrees.
  const [p, q, d] = await pub.readContract({ address: CONTRACT, abi, functionName: "channels", args: [idA] });
  assertEq(p, payer.address, "channels().payer");
  assertEq(q, payee.address, "channels().payee");
  assertEq(d, DEPOSIT_A, "channels().deposit");
  // Before the open block, the channel did not exist.
  const before = ok(await rpc("channel_getInfo", [idA, `0x${(openA.blockNumber - 1n).toString(16)}`]), "getInfo at n-1");
  assertEq(before, null, "channel_getInfo before the open block");
  return idA;
});

await check("channel_listByPayer / channel_listByPayee find channel A", async () => {
  const byPayer = ok(await rpc("channel_listByPayer", [payer.address]), "listByPayer");
  const byPayee = ok(await rpc("channel_listByPayee", [payee.address]), "listByPayee");
  assert(byPayer.some((c) => c.channelId === idA && c.openedInBlock === Number(openA.blockNumber)), "A in listByPayer");
  assert(byPayee.some((c) => c.channelId === idA), "A in listByPayee");
  const stranger = privateKeyToAccount(generatePrivateKey()).address;
  assertEq(ok(await rpc("channel_listByPayer", [stranger]), "listByPayer stranger").length, 0, "stranger's channels");
  assertEq(ok(await rpc("channel_listByPayee", [payer.address]), "listByPayee payer").length, 0, "payer as payee");
  const after = `0x${(openA.blockNumber + 1n).toString(16)}`;
  assertEq(ok(await rpc("channel_listByPayer", [payer.address, after]), "listByPayer from n+1").length, 0, "from after the open");
  assertEq(ok(await rpc("channel_listByPayer", [payer.address, "0xffffffff"]), "listByPayer beyond head").length, 0, "from beyond the head");
  const only = ok(await rpc("channel_listByPayer", [payer.address, `0x${openA.blockNumber.toString(16)}`, `0x${openA.blockNumber.toString(16)}`]), "listByPayer [n, n]");
  assertEq(only.length, 1, "exactly the open block");
  const bad = await rpc("channel_listByPayer", [payer.address, `0x${openA.blockNumber.toString(16)}`, `0x${(openA.blockNumber - 1n).toString(16)}`]);
  assertEq(bad.error?.code, -32602, "from > to is invalid params");
});

await check(`sign ${VOUCHERS} vouchers with viem signTypedData`, async () => {
  const started = Date.now();
  for (let k = 1n; k <= VOUCHERS; k++) {
    const amount = amountOf(k);
    vouchersA.push({ amount, signature: await signVoucher(idA, amount) });
  }
  return `${Date.now() - started} ms`;
});

await check("channel_voucherTypedData is what viem signs (hash and signature)", async () => {
  const { amount, signature } = vouchersA[VOUCHERS - 1n];
  const typed = ok(await rpc("channel_voucherTypedData", [idA, `0x${amount.toString(16)}`]), "voucherTypedData");
  assertEq(typed.primaryType, "Voucher", "primaryType");
  assertEq(typed.domain.chainId, env.chainId, "domain.chainId");
  assertEq(typed.domain.verifyingContract.toLowerCase(), CONTRACT, "domain.verifyingContract");
  assertEq(BigInt(typed.message.cumulativeAmount), amount, "message.cumulativeAmount");
  const { EIP712Domain, ...rest } = typed.types;
  assert(EIP712Domain.length === 4, "EIP712Domain has 4 fields");
  const asSigned = { domain: typed.domain, types: rest, primaryType: typed.primaryType, message: typed.message };
  assertEq(hashTypedData(asSigned), hashTypedData({ domain, types, primaryType: "Voucher", message: { channelId: idA, cumulativeAmount: amount } }), "hash");
  assertEq(await payer.signTypedData(asSigned), signature, "signature of the RPC's typed data");
  // The Close kind, for a payee's cooperative close.
  const close = ok(await rpc("channel_voucherTypedData", [idA, "0x1", "Close"]), "voucherTypedData Close");
  assertEq(close.primaryType, "Close", "Close primaryType");
  const bad = await rpc("channel_voucherTypedData", [idA, "0x1", "Cheque"]);
  assertEq(bad.error?.code, -32602, "unknown kind is invalid params");
});

await check(`channel_verifyVoucher accepts all ${VOUCHERS} vouchers (batches of 100)`, async () => {
  for (let i = 0; i < vouchersA.length; i += 100) {
    const batch = vouchersA.slice(i, i + 100).map((v, j) => ({
      jsonrpc: "2.0",
      id: i + j,
      method: "channel_verifyVoucher",
      params: [idA, `0x${v.amount.toString(16)}`, v.signature],
    }));
    const res = await fetch(env.rpcUrl, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(batch) });
    const answers = await res.json();
    assertEq(answers.length, batch.length, "batch answers");
    for (const a of answers) {
      const v = vouchersA[a.id];
      const r = ok(a, `verify ${a.id}`);
      assert(r.valid === true, `voucher ${a.id} not valid: ${r.reason}`);
      assertAddr(r.signer, payer.address, `voucher ${a.id} signer`);
      assertEq(BigInt(r.claimable), v.amount, `voucher ${a.id} claimable`);
      assertEq(BigInt(r.remaining), DEPOSIT_A - v.amount, `voucher ${a.id} remaining`);
    }
  }
});

await check("channel_verifyVoucher refuses a tampered amount, an over-deposit amount and a high-s twin", async () => {
  const { amount, signature } = vouchersA[0];
  const tampered = ok(await rpc("channel_verifyVoucher", [idA, `0x${(amount + 1n).toString(16)}`, signature]), "tampered");
  assertEq(tampered.valid, false, "tampered valid");
  assert(tampered.signer.toLowerCase() !== payer.address.toLowerCase(), "tampered recovers someone else");
  assertIncludes(tampered.reason, "not by the payer", "tampered reason");
  const over = DEPOSIT_A + 1n;
  const big = ok(await rpc("channel_verifyVoucher", [idA, `0x${over.toString(16)}`, await signVoucher(idA, over)]), "over");
  assertEq(big.valid, false, "over-deposit valid");
  assertIncludes(big.reason, "exceeds the deposit", "over-deposit reason");
  const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
  const s = BigInt(`0x${signature.slice(66, 130)}`);
  const v = parseInt(signature.slice(130, 132), 16);
  const twin = `${signature.slice(0, 66)}${(N - s).toString(16).padStart(64, "0")}${(v === 27 ? 28 : 27).toString(16)}`;
  assertEq(await recoverTypedDataAddress({ domain, types, primaryType: "Voucher", message: { channelId: idA, cumulativeAmount: amount }, signature: twin }), payer.address, "viem recovers the twin");
  const hs = ok(await rpc("channel_verifyVoucher", [idA, `0x${amount.toString(16)}`, twin]), "high-s");
  assertEq(hs.valid, false, "high-s valid");
  assertEq(hs.signer, null, "high-s signer");
  assertIncludes(hs.reason, "high-s", "high-s reason");
});

if (bttd) {
  await check("`bttd channel voucher` signs what viem signs; `bttd channel info` reads the channel", async () => {
    const { amount, signature } = vouchersA[499];
    const out = execFileSync(bttd, ["channel", "voucher", "--rpc-url", env.rpcUrl, "--dev-account", "6", "--channel", idA, "--amount", amount.toString()], { encoding: "utf8" });
    const line = JSON.parse(out);
    assertEq(line.channelId, idA, "cli channelId");
    assertEq(line.cumulativeAmount, amount.toString(), "cli cumulativeAmount");
    assertEq(line.signature, signature, "cli signature");
    const info = JSON.parse(execFileSync(bttd, ["channel", "info", "--rpc-url", env.rpcUrl, "--channel", idA], { encoding: "utf8" }));
    assertEq(info.state, "open", "cli info state");
  });
}

await check("a relayer settles the newest voucher: payee gets it to the wei", async () => {
  const newest = vouchersA[vouchersA.length - 1];
  settleA = await send(relayer, "settle", [idA, newest.amount, newest.signature]);
  const [ev] = parseEventLogs({ abi, logs: settleA.logs, eventName: "Settled" });
  assertEq(ev.args.claimed, newest.amount, "Settled.claimed");
  const n = settleA.blockNumber;
  assertEq((await balanceAt(payee.address, n)) - (await balanceAt(payee.address, n - 1n)), newest.amount, "payee gain");
  assertEq((await balanceAt(relayer.address, n - 1n)) - (await balanceAt(relayer.address, n)), fee(settleA), "relayer pays only gas");
  const info = ok(await rpc("channel_getInfo", [idA]), "getInfo");
  assertEq(BigInt(info.claimed), newest.amount, "claimed");
  assertEq(BigInt(info.remaining), DEPOSIT_A - newest.amount, "remaining");
  return `${newest.amount} wei, ${settleA.gasUsed} gas`;
});

await check("payer's and contract's balances over channel A match to the wei", async () => {
  const a = openA.blockNumber;
  const b = settleA.blockNumber;
  // The payer sent nothing else between its open and the settlement.
  assertEq((await balanceAt(payer.address, a - 1n)) - (await balanceAt(payer.address, b)), DEPOSIT_A + fee(openA), "payer spent deposit + gas");
  const c0 = await balanceAt(CONTRACT, a - 1n);
  assertEq((await balanceAt(CONTRACT, a)) - c0, DEPOSIT_A, "contract holds the deposit");
  assertEq(c0 + DEPOSIT_A - (await balanceAt(CONTRACT, b)), vouchersA[vouchersA.length - 1].amount, "contract paid the voucher");
});

await check("older vouchers and the same voucher again pay nothing", async () => {
  const newest = vouchersA[vouchersA.length - 1];
  for (const v of [vouchersA[10], newest]) {
    const r = ok(await rpc("channel_verifyVoucher", [idA, `0x${v.amount.toString(16)}`, v.signature]), "verify old");
    assertEq(r.valid, false, "old valid");
    assertIncludes(r.reason, "not above", "old reason");
  }
  let reverted = false;
  try {
    await pub.simulateContract({ account: relayer, address: CONTRACT, abi, functionName: "settle", args: [idA, newest.amount, newest.signature] });
  } catch {
    reverted = true;
  }
  assert(reverted, "settling the same voucher twice must revert");
});

// ---------------------------------------------------------------------------------------------
// Channel B: request / window / withdraw, with the payee's watcher
// ---------------------------------------------------------------------------------------------

let openB;
let closeB;
let settledB;
let best;
let closesAt;

await check("open channel B and hand the payee's watcher its vouchers", async () => {
  openB = await send(payer, "open", [payee.address, WINDOW_B], DEPOSIT_B);
  idB = parseEventLogs({ abi, logs: openB.logs, eventName: "ChannelOpened" })[0].args.channelId;
  const file = join(voucherDir, "channel-b.jsonl");
  const line = (amount, signature) => JSON.stringify({ channelId: idB, cumulativeAmount: amount.toString(), signature }) + "\n";
  for (let k = 1n; k <= 50n; k++) {
    best = k * 7n * 10n ** 16n + k; // up to 3.5 BTT + 50 wei
    appendFileSync(file, line(best, await signVoucher(idB, best)));
  }
  // Noise the watcher must refuse: garbage, a forged voucher for more, one above the deposit.
  appendFileSync(file, "not json\n");
  const forged = 4n * BTT;
  appendFileSync(file, line(forged, await relayer.signTypedData({ domain, types, primaryType: "Voucher", message: { channelId: idB, cumulativeAmount: forged } })));
  const over = DEPOSIT_B + 1n;
  appendFileSync(file, line(over, await signVoucher(idB, over)));
  // A voucher for channel A (already settled higher) is no use either.
  appendFileSync(file, JSON.stringify({ channelId: idA, cumulativeAmount: "1", signature: vouchersA[0].signature }) + "\n");
  await sleep(1500); // a few watcher rounds
  return `best ${best} wei`;
});

await check("payer requests the close (CloseRequested, state closing)", async () => {
  closeB = await send(payer, "requestClose", [idB]);
  const [ev] = parseEventLogs({ abi, logs: closeB.logs, eventName: "CloseRequested" });
  closesAt = ev.args.closesAt;
  const block = await pub.getBlock({ blockNumber: closeB.blockNumber });
  assertEq(closesAt, block.timestamp + WINDOW_B, "closesAt = timestamp + window");
  const info = ok(await rpc("channel_getInfo", [idB, `0x${closeB.blockNumber.toString(16)}`]), "getInfo");
  assertEq(info.state, "closing", "state");
  return `closesAt ${closesAt}`;
});

await check("the watcher settles the best voucher inside the window", async () => {
  const deadline = Date.now() + 30_000;
  while (!settledB && Date.now() < deadline) {
    const logs = await pub.getContractEvents({ address: CONTRACT, abi, eventName: "Settled", args: { channelId: idB }, fromBlock: closeB.blockNumber });
    if (logs.length) settledB = logs[0];
    else await sleep(100);
  }
  assert(settledB, "no Settled event for channel B within 30 s");
  assertEq(settledB.args.claimed, best, "settled the best voucher");
  const tx = await pub.getTransaction({ hash: settledB.transactionHash });
  assertAddr(tx.from, payee.address, "settled by the payee's watcher");
  const block = await pub.getBlock({ blockNumber: settledB.blockNumber });
  assert(block.timestamp < closesAt, `settled at ${block.timestamp}, window ends ${closesAt}`);
  return `block ${settledB.blockNumber}, ${closesAt - block.timestamp} s before closesAt`;
});

let withdrawB;
await check("after the window the payer withdraws exactly deposit - settled", async () => {
  // Settling and topping up are over once the head's timestamp reaches closesAt.
  const deadline = Date.now() + 30_000;
  while ((await pub.getBlock()).timestamp < closesAt) {
    assert(Date.now() < deadline, "the chain's clock never reached closesAt");
    await sleep(100);
  }
  const info = ok(await rpc("channel_getInfo", [idB]), "getInfo");
  assertEq(info.state, "closed", "state after the window");
  const late = ok(await rpc("channel_verifyVoucher", [idB, `0x${(best + 1n).toString(16)}`, await signVoucher(idB, best + 1n)]), "late voucher");
  assertEq(late.valid, false, "a voucher after the window");
  withdrawB = await send(payer, "withdraw", [idB]);
  const [ev] = parseEventLogs({ abi, logs: withdrawB.logs, eventName: "Withdrawn" });
  assertEq(ev.args.refunded, DEPOSIT_B - best, "Withdrawn.refunded");
  return `refund ${ev.args.refunded} wei`;
});

await check("balances over channel B match to the wei (payer, payee)", async () => {
  const from = openB.blockNumber - 1n;
  const to = withdrawB.blockNumber;
  const payerSpent = (await balanceAt(payer.address, from)) - (await balanceAt(payer.address, to));
  assertEq(payerSpent, best + fee(openB) + fee(closeB) + fee(withdrawB), "payer: settled amount + its gas");
  const settleReceipt = await pub.getTransactionReceipt({ hash: settledB.transactionHash });
  receipts.push(settleReceipt);
  const payeeGain = (await balanceAt(payee.address, to)) - (await balanceAt(payee.address, from));
  assertEq(payeeGain, best - fee(settleReceipt), "payee: settled amount - its settle gas");
  const info = ok(await rpc("channel_getInfo", [idB]), "getInfo");
  assertEq(BigInt(info.deposit), BigInt(info.claimed), "deposit == claimed after withdraw");
});

await check("fee split per block: fee pool gains sum(baseFee*gasUsed), miner the tips", async () => {
  const blocks = [...new Set(receipts.map((r) => r.blockNumber))];
  let pool = 0;
  let miner = 0;
  for (const n of blocks) {
    const block = await pub.getBlock({ blockNumber: n });
    const rs = await Promise.all(block.transactions.map((hash) => pub.getTransactionReceipt({ hash })));
    let sumBase = 0n;
    let sumTip = 0n;
    const parties = new Set();
    for (const r of rs) {
      sumBase += block.baseFeePerGas * r.gasUsed;
      sumTip += (r.effectiveGasPrice - block.baseFeePerGas) * r.gasUsed;
      for (const a of [r.from, r.to]) if (a) parties.add(a.toLowerCase());
    }
    const delta = async (a) => (await balanceAt(a, n)) - (await balanceAt(a, n - 1n));
    if (env.feePool && !parties.has(env.feePool.toLowerCase())) {
      assertEq(await delta(env.feePool), sumBase, `block ${n}: fee pool`);
      pool++;
    }
    if (!parties.has(block.miner.toLowerCase())) {
      assertEq(await delta(block.miner), sumTip, `block ${n}: miner`);
      miner++;
    }
  }
  assert(pool + miner > 0, "no block checked");
  return `${blocks.length} blocks (pool ${pool}, miner ${miner})`;
});

finish("channels-e2e.mjs");
