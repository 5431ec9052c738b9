// Differential test of debug_traceTransaction: the same signed transactions go to the node
// under test (RPC_URL) and to a fresh anvil started here with the same chain id, mnemonic and
// hardfork, and the callTracer trees must agree field by field (type, from, to, value, gas,
// gasUsed, input, output, error, revertReason, logs, calls recursively). One documented
// difference: the root frame's `gas` is the transaction's gas limit in geth and bttd, but the
// gas left after the intrinsic cost in anvil; bttd's is checked against the limit instead. The default struct
// logger is compared on its summary (failed, gas, returnValue, and each step's depth, opcode,
// gas and cost; anvil records steps only with --steps-tracing).
//
//   RPC_URL=http://127.0.0.1:8545 CHAIN_ID=1337 node tests/js/trace-diff.mjs
//
// Why gas agrees exactly: both nodes execute with revm at Prague, and a trace's gas figures
// depend only on the transaction and the state, not on the base fee (anvil burns it, bttd pays
// it to the fee pool; neither shows in a call frame). Transactions are signed once, with a
// dev account no other script uses (index 7), so sender, nonces and addresses are identical.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { encodeDeployData, encodeFunctionData, getContractAddress, concat, keccak256 } from "viem";
import { MNEMONIC, env, devAccount, loadArtifact, check, finish, assert, assertEq, sleep } from "./lib.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const ANVIL = join(HERE, "node_modules", "@foundry-rs", "anvil-linux-amd64", "bin", "anvil");
const TOKEN = loadArtifact("TestToken");
const sender = devAccount(7);
const stranger = devAccount(8).address;
const GWEI = 1_000_000_000n;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

let nextId = 1;
async function call(url, method, params = []) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params }),
  });
  const json = await res.json();
  if (json.error) throw new Error(`${method} on ${url}: ${JSON.stringify(json.error)}`);
  return json.result;
}

async function receipt(url, hash) {
  for (let i = 0; i < 200; i++) {
    const r = await call(url, "eth_getTransactionReceipt", [hash]);
    if (r) return r;
    await sleep(50);
  }
  throw new Error(`no receipt for ${hash} on ${url}`);
}

/** Compares two callTracer frames field by field, recursively; throws at the first difference. */
function compareFrames(a, b, path) {
  const fields = ["type", "from", "to", "value", "gas", "gasUsed", "input", "output", "error", "revertReason"];
  for (const f of fields) {
    // The root frame's gas: geth (and bttd) report the transaction's gas limit; anvil reports
    // what is left after the intrinsic cost. Checked against the limit by the caller instead.
    if (path === "root" && f === "gas") continue;
    const x = a[f] === undefined ? undefined : String(a[f]).toLowerCase();
    const y = b[f] === undefined ? undefined : String(b[f]).toLowerCase();
    // geth omits a zero value on some frames and writes 0x0 on others; both mean zero.
    const norm = (v) => (f === "value" && (v === undefined || v === "0x0") ? "0x0" : v);
    assertEq(norm(x), norm(y), `${path}.${f}`);
  }
  assertEq(JSON.stringify(a.logs ?? []), JSON.stringify(b.logs ?? []), `${path}.logs`);
  const ca = a.calls ?? [];
  const cb = b.calls ?? [];
  assertEq(ca.length, cb.length, `${path}.calls.length`);
  ca.forEach((c, i) => compareFrames(c, cb[i], `${path}.calls[${i}]`));
}

/** Runtime code that forwards its calldata to `target` with CALL and returns 32 bytes. */
function forwarderInitCode(target) {
  const runtime = concat([
    "0x366000600037", // CALLDATACOPY(0, 0, CALLDATASIZE)
    "0x60206000366000600073", // retSize 32, retOffset 0, argsSize, argsOffset 0, value 0, PUSH20
    target,
    "0x5af150", // GAS CALL POP
    "0x60206000f3", // RETURN(0, 32)
  ]);
  const len = (runtime.length - 2) / 2;
  // CODECOPY(0, 12, len); RETURN(0, len) — a 12-byte constructor in front of the runtime.
  const ctor = `0x60${len.toString(16).padStart(2, "0")}600c60003960${len.toString(16).padStart(2, "0")}6000f3`;
  return concat([ctor, runtime]);
}

const port = await freePort();
const anvilUrl = `http://127.0.0.1:${port}`;
const anvil = spawn(
  ANVIL,
  ["--host", "127.0.0.1", "--port", String(port), "--chain-id", String(env.chainId), "--mnemonic", MNEMONIC, "--hardfork", "prague", "--steps-tracing"],
  { stdio: ["ignore", "ignore", "inherit"] },
);
process.on("exit", () => anvil.kill());
for (let i = 0; i < 100; i++) {
  try {
    await call(anvilUrl, "eth_chainId");
    break;
  } catch {
    await sleep(100);
  }
}

const urls = { bttd: env.rpcUrl, anvil: anvilUrl };

const start = await check("same sender nonce on both nodes", async () => {
  const a = await call(urls.bttd, "eth_getTransactionCount", [sender.address, "latest"]);
  const b = await call(urls.anvil, "eth_getTransactionCount", [sender.address, "latest"]);
  assertEq(a, b, "nonce");
  return Number(a);
});

// The transactions, signed once, sent to both nodes in order.
const txs = [];
if (start !== undefined) {
  const token = getContractAddress({ from: sender.address, nonce: BigInt(start) });
  const forwarder = getContractAddress({ from: sender.address, nonce: BigInt(start + 1) });
  const plan = [
    ["deploy TestToken", undefined, encodeDeployData({ abi: TOKEN.abi, bytecode: TOKEN.bytecode, args: ["Trace", "TRC", 10n ** 24n] }), 3_000_000n],
    ["deploy forwarder", undefined, forwarderInitCode(token), 200_000n],
    ["transfer", token, encodeFunctionData({ abi: TOKEN.abi, functionName: "transfer", args: [stranger, 12345n] }), 200_000n],
    ["transferFrom reverting with InsufficientAllowance", token, encodeFunctionData({ abi: TOKEN.abi, functionName: "transferFrom", args: [stranger, sender.address, 1n] }), 200_000n],
    ["nested call through the forwarder", forwarder, encodeFunctionData({ abi: TOKEN.abi, functionName: "balanceOf", args: [stranger] }), 200_000n],
    ["nested alwaysRevert through the forwarder", forwarder, encodeFunctionData({ abi: TOKEN.abi, functionName: "alwaysRevert", args: [7n, "boom"] }), 200_000n],
  ];
  for (const [i, [name, to, data, gas]] of plan.entries()) {
    const raw = await sender.signTransaction({
      type: "eip1559",
      chainId: env.chainId,
      nonce: start + i,
      to,
      data,
      gas,
      maxFeePerGas: 100n * GWEI,
      maxPriorityFeePerGas: GWEI,
      value: 0n,
    });
    txs.push({ name, raw, gas });
  }
}

for (const tx of txs) {
  await check(`${tx.name}: callTracer trees agree`, async () => {
    const hashes = {};
    for (const [node, url] of Object.entries(urls)) hashes[node] = await call(url, "eth_sendRawTransaction", [tx.raw]);
    assertEq(hashes.bttd, hashes.anvil, "transaction hash");
    const receipts = {};
    for (const [node, url] of Object.entries(urls)) receipts[node] = await receipt(url, hashes[node]);
    assertEq(receipts.bttd.status, receipts.anvil.status, "receipt status");
    assertEq(receipts.bttd.gasUsed, receipts.anvil.gasUsed, "receipt gasUsed");
    const traces = {};
    for (const [node, url] of Object.entries(urls)) {
      traces[node] = await call(url, "debug_traceTransaction", [hashes[node], { tracer: "callTracer", tracerConfig: { withLog: true } }]);
    }
    compareFrames(traces.bttd, traces.anvil, "root");
    assertEq(traces.bttd.gasUsed, receipts.bttd.gasUsed, "root gasUsed vs receipt");
    assertEq(BigInt(traces.bttd.gas), tx.gas, "bttd root gas vs the transaction's gas limit (geth)");
    const depth = (f) => 1 + Math.max(0, ...(f.calls ?? []).map(depth));
    return `${traces.bttd.type}, depth ${depth(traces.bttd)}, gasUsed ${BigInt(traces.bttd.gasUsed)}${traces.bttd.error ? `, ${traces.bttd.error}` : ""}`;
  });
  await check(`${tx.name}: struct logger summaries agree`, async () => {
    const logs = {};
    const hash = keccak256(tx.raw);
    for (const [node, url] of Object.entries(urls)) {
      logs[node] = await call(url, "debug_traceTransaction", [hash, { disableStorage: true, disableMemory: true }]);
    }
    assertEq(logs.bttd.failed, logs.anvil.failed, "failed");
    assertEq(logs.bttd.gas, logs.anvil.gas, "gas");
    assertEq(logs.bttd.returnValue.replace(/^0x/, ""), logs.anvil.returnValue.replace(/^0x/, ""), "returnValue");
    assertEq(logs.bttd.structLogs.length, logs.anvil.structLogs.length, "step count");
    const ops = (l) => l.structLogs.map((s) => `${s.depth}:${s.op}:${s.gas}:${s.gasCost}`).join(",");
    assert(ops(logs.bttd) === ops(logs.anvil), "opcode sequences (depth, op, gas, gasCost) differ");
    return `${logs.bttd.structLogs.length} steps`;
  });
}

finish("trace-diff.mjs");
