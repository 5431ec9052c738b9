// Bad input must produce clean JSON-RPC errors and never hurt the node: after every check,
// eth_chainId must still answer.
//
//   RPC_URL=http://127.0.0.1:8545 CHAIN_ID=31337 [EXPECT_GETH_ERRORS=1] node tests/js/bad-input.mjs
//
// EXPECT_GETH_ERRORS=1 (bttd): error codes and txpool messages must be exactly geth's.
// Unset (anvil): only require that an error came back; anvil words/codes some differently.
// Dev accounts used: 4 (nonce too low), 5 (funds a fresh key for the replacement test).
import { connect } from "node:net";
import { createPublicClient, http, parseEther, parseTransaction, serializeTransaction, toHex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { env, chain, devAccount, postRaw, rpc, check, finish, assert, assertEq, assertIncludes, sleep } from "./lib.mjs";

const pub = createPublicClient({ chain, transport: http(env.rpcUrl), pollingInterval: 200 });

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** Checks a JSON-RPC error code: exact under EXPECT_GETH_ERRORS, else any of `alsoOk` too. */
function expectCode(err, code, alsoOk = []) {
  assert(err && typeof err.code === "number", `expected a JSON-RPC error object, got ${JSON.stringify(err)}`);
  if (err.code === code) return `code ${code}`;
  if (!env.gethErrors && alsoOk.includes(err.code)) return `code ${err.code} (strict: ${code}) "${err.message}"`;
  throw new Error(`expected error code ${code}, got ${err.code} "${err.message}"`);
}

/** Checks an error message: geth's exact substring under EXPECT_GETH_ERRORS, else any error. */
function expectMessage(err, gethSubstring) {
  assert(err && typeof err.message === "string", `expected an error, got ${JSON.stringify(err)}`);
  if (env.gethErrors) assertIncludes(err.message, gethSubstring, "error message");
  return `"${err.message}"`;
}

/** POSTs a raw body and returns the single JSON-RPC error it must produce. */
async function rawError(body) {
  const { status, json, text } = await postRaw(body);
  assert(json && json.error, `HTTP ${status}: expected a JSON-RPC error, got ${text.slice(0, 200)}`);
  return json.error;
}

/** eth_sendRawTransaction that must fail; returns the error. */
async function sendRawError(raw) {
  const res = await rpc("eth_sendRawTransaction", [raw]);
  assert(res.error, `eth_sendRawTransaction accepted it (hash ${res.result})`);
  return res.error;
}

async function legacyFees() {
  return { type: "legacy", gasPrice: (await pub.getGasPrice()) * 2n };
}

/** A signed plain transfer from `account` with the given overrides. */
async function signTransfer(account, overrides = {}) {
  return account.signTransaction({
    chainId: env.chainId,
    to: privateKeyToAccount(generatePrivateKey()).address,
    value: 1n,
    gas: 21000n,
    nonce: await pub.getTransactionCount({ address: account.address, blockTag: "pending" }),
    ...(await legacyFees()),
    ...overrides,
  });
}

async function sendAndWait(raw) {
  const res = await rpc("eth_sendRawTransaction", [raw]);
  if (res.error) throw new Error(`eth_sendRawTransaction failed: ${res.error.message}`);
  return pub.waitForTransactionReceipt({ hash: res.result, timeout: 60_000 });
}

/** Wraps a check so that, afterwards, eth_chainId must still answer correctly. */
function thenAlive(fn) {
  return async () => {
    const note = await fn();
    const res = await rpc("eth_chainId");
    assert(res.result !== undefined, `node stopped answering eth_chainId: ${JSON.stringify(res.error)}`);
    assertEq(Number(res.result), env.chainId, "eth_chainId afterwards");
    return note;
  };
}

// ---------------------------------------------------------------------------------------------
// Checks: malformed requests
// ---------------------------------------------------------------------------------------------

async function checkParseError() {
  return expectCode(await rawError('{"jsonrpc":"2.0","id":1,"method":'), -32700, [-32600]);
}

async function checkMethodNotFound() {
  return expectCode(await rawError('{"jsonrpc":"2.0","id":1,"method":"nope"}'), -32601);
}

async function checkInvalidParams() {
  const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_getBalance", params: ["0x1234", "latest"] });
  return expectCode(await rawError(body), -32602);
}

async function checkInvalidRequest() {
  // Well-formed JSON, valid id, but no method: not a request.
  return expectCode(await rawError('{"jsonrpc":"2.0","id":1,"params":[]}'), -32600);
}

/**
 * POSTs a large `body` over a raw socket, as curl does: `Expect: 100-continue`, the body in
 * 64 KiB chunks, and the answer read while still sending. A server that refuses the size (413,
 * or a JSON-RPC error) usually answers early and closes; fetch() then reports EPIPE and loses
 * the answer, which is why this does not use fetch.
 */
function postLarge(body) {
  return new Promise((resolve, reject) => {
    const url = new URL(env.rpcUrl);
    const sock = connect({ host: url.hostname, port: Number(url.port || 80) });
    let received = "";
    let done = false;
    const finishWith = () => {
      if (done) return;
      done = true;
      sock.destroy();
      // Skip interim 1xx answers (100 Continue); parse the final one.
      const responses = received.split(/(?=HTTP\/1\.[01] )/).filter((r) => !/^HTTP\/1\.[01] 1\d\d/.test(r));
      const final = responses[0];
      if (!final) return reject(new Error(`no HTTP answer (got ${JSON.stringify(received.slice(0, 100))})`));
      const status = Number(final.slice(9, 12));
      const text = final.slice(final.indexOf("\r\n\r\n") + 4);
      resolve({ status, text });
    };
    const hasFinal = () => /HTTP\/1\.[01] [2-5]\d\d[^]*\r\n\r\n/.test(received);
    sock.setEncoding("utf8");
    sock.on("data", (c) => {
      received += c;
      // Answer complete? (Content-Length reached.)
      const m = /HTTP\/1\.[01] [2-5]\d\d[^]*?content-length: *(\d+)\r\n[^]*?\r\n\r\n([^]*)$/i.exec(received);
      if (m && Buffer.byteLength(m[2]) >= Number(m[1])) finishWith();
    });
    sock.on("error", () => setTimeout(finishWith, 200));
    sock.on("close", () => setTimeout(finishWith, 200));
    sock.on("connect", async () => {
      const len = Buffer.byteLength(body);
      sock.write(
        `POST ${url.pathname || "/"}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\ncontent-type: application/json\r\n` +
          `content-length: ${len}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n`,
      );
      // Wait for 100 Continue (or an early final answer), at most one second.
      for (let i = 0; i < 100 && !received && !done; i++) await sleep(10);
      const buf = Buffer.from(body);
      for (let off = 0; off < len && !done && !hasFinal() && !sock.destroyed; off += 65536) {
        // One chunk at a time, yielding to the event loop so an early answer is read before
        // the server's reset (sent once we write to a closed socket) can discard it.
        await new Promise((r) => {
          sock.write(buf.subarray(off, off + 65536), r);
          sock.once("close", r);
        });
        await new Promise((r) => setImmediate(r));
      }
    });
    setTimeout(() => (done ? undefined : finishWith()), 30_000);
  });
}

async function checkHugeBody() {
  // A valid eth_chainId call padded with 8 MiB of JSON whitespace: only the size is wrong.
  const body = `{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]${" ".repeat(8 * 1024 * 1024)}}`;
  // A server that reads part of the body, answers and closes races its own reset against our
  // reading of the answer; try a few times before calling it "no answer".
  let res;
  let lastErr;
  for (let attempt = 0; attempt < 3 && !res; attempt++) {
    res = await postLarge(body).catch((e) => {
      lastErr = e;
      return undefined;
    });
  }
  if (!res) throw new Error(`8 MiB body: connection failed without an answer (${lastErr?.code ?? lastErr?.message})`);
  if (res.status === 413) return "HTTP 413";
  let json;
  try {
    json = JSON.parse(res.text);
  } catch {
    json = undefined;
  }
  assert(json?.error, `8 MiB body: HTTP ${res.status}, expected 413 or a JSON-RPC error, got ${res.text.slice(0, 200)}`);
  return `HTTP ${res.status}, JSON-RPC error ${json.error.code} "${json.error.message}"`;
}

// ---------------------------------------------------------------------------------------------
// Checks: bad transactions
// ---------------------------------------------------------------------------------------------

async function checkGarbageRawTx() {
  const err = await sendRawError("0xdeadbeef");
  return `${err.code} "${err.message}"`;
}

async function checkCorruptedSignature() {
  const signed = await signTransfer(devAccount(4));
  const tx = parseTransaction(signed);
  // r = 0 is never a valid secp256k1 signature.
  const corrupted = serializeTransaction(tx, { r: toHex(0n, { size: 32 }), s: tx.s, yParity: tx.yParity ?? 0, v: tx.v });
  assert(corrupted !== signed, "corruption did not change the bytes");
  const err = await sendRawError(corrupted);
  return `${err.code} "${err.message}"`;
}

async function checkWrongChainId() {
  const acct = devAccount(4);
  const gasPrice = (await pub.getGasPrice()) * 2n;
  const eip1559 = await signTransfer(acct, { chainId: env.chainId + 1, type: "eip1559", maxFeePerGas: gasPrice, maxPriorityFeePerGas: 1n });
  const err = await sendRawError(eip1559);
  // Legacy EIP-155 (chain id folded into v): must be rejected too, or it could be replayed.
  const legacy = await signTransfer(acct, { chainId: env.chainId + 1 });
  const res = await rpc("eth_sendRawTransaction", [legacy]);
  if (!res.error) {
    assert(!env.gethErrors, `legacy EIP-155 tx for chain ${env.chainId + 1} was accepted (replayable)`);
    return `eip1559: "${err.message}"; note: legacy EIP-155 tx for another chain ACCEPTED (anvil leniency; strict mode fails this)`;
  }
  return `eip1559: "${err.message}"; legacy: "${res.error.message}"`;
}

async function checkNonceTooLow() {
  const acct = devAccount(4);
  const r = await sendAndWait(await signTransfer(acct));
  assertEq(r.status, "success", "first tx");
  const usedNonce = (await pub.getTransaction({ hash: r.transactionHash })).nonce;
  const err = await sendRawError(await signTransfer(acct, { nonce: usedNonce, value: 2n }));
  return expectMessage(err, "nonce too low");
}

/**
 * Same nonce, same / +1 wei fees, while the first is still in the pool. A future nonce (gap of one)
 * keeps the first tx queued however fast blocks are. Returns the state for the promotion check.
 */
let queued;
async function checkUnderpricedReplacement() {
  const funder = devAccount(5);
  const key = privateKeyToAccount(generatePrivateKey());
  const fund = await sendAndWait(await signTransfer(funder, { to: key.address, value: parseEther("1") }));
  assertEq(fund.status, "success", "funding tx");

  const gasPrice = (await pub.getGasPrice()) * 2n;
  const first = await signTransfer(key, { nonce: 1, type: "legacy", gasPrice });
  const res = await rpc("eth_sendRawTransaction", [first]);
  assert(!res.error, `queued (nonce 1) tx rejected: ${res.error?.message}`);
  queued = { key, hash: res.result, gasPrice };

  // Same fee, different tx: every pool rejects it.
  const same = await sendRawError(await signTransfer(key, { nonce: 1, type: "legacy", gasPrice, value: 2n }));
  const sameNote = expectMessage(same, "replacement transaction underpriced");
  // +1 wei: geth wants a 10% bump, so this is underpriced too (anvil takes any bump).
  const plusOne = await signTransfer(key, { nonce: 1, type: "legacy", gasPrice: gasPrice + 1n, value: 3n });
  const bumped = await rpc("eth_sendRawTransaction", [plusOne]);
  if (!bumped.error) {
    assert(!env.gethErrors, "+1 wei replacement was accepted; geth requires a 10% price bump");
    queued.hash = bumped.result; // it replaced the queued tx
    return `same fee: ${sameNote}; note: +1 wei replacement ACCEPTED (anvil needs no 10% bump)`;
  }
  return `same fee: ${sameNote}; +1 wei: ${expectMessage(bumped.error, "replacement transaction underpriced")}`;
}

/** Filling the nonce gap promotes the queued tx (and leaves no junk in the pool). */
async function checkQueuedPromoted() {
  assert(queued, "no queued tx (previous check failed)");
  const r0 = await sendAndWait(await signTransfer(queued.key, { nonce: 0, type: "legacy", gasPrice: queued.gasPrice }));
  assertEq(r0.status, "success", "gap-filling tx");
  const r1 = await pub.waitForTransactionReceipt({ hash: queued.hash, timeout: 60_000 });
  assertEq(r1.status, "success", "queued tx");
  return `queued tx mined in block ${r1.blockNumber}`;
}

async function checkInsufficientFunds() {
  const pauper = privateKeyToAccount(generatePrivateKey());
  const err = await sendRawError(await signTransfer(pauper, { nonce: 0 }));
  return expectMessage(err, "insufficient funds for gas * price + value");
}

// ---------------------------------------------------------------------------------------------

console.log(`bad-input: ${env.gethErrors ? "strict geth error codes/messages" : "lenient (any error)"} mode`);
await check("malformed JSON -> -32700", thenAlive(checkParseError));
await check("unknown method -> -32601", thenAlive(checkMethodNotFound));
await check("eth_getBalance(non-address) -> -32602", thenAlive(checkInvalidParams));
await check("invalid request object -> -32600", thenAlive(checkInvalidRequest));
await check("8 MiB body -> HTTP 413 or JSON-RPC error", thenAlive(checkHugeBody));
await check("eth_sendRawTransaction(garbage) -> error", thenAlive(checkGarbageRawTx));
await check("corrupted signature -> error", thenAlive(checkCorruptedSignature));
await check("signed for another chain id -> error", thenAlive(checkWrongChainId));
await check("nonce too low", thenAlive(checkNonceTooLow));
await check("replacement transaction underpriced", thenAlive(checkUnderpricedReplacement));
await check("queued future-nonce tx is promoted when the gap fills", thenAlive(checkQueuedPromoted));
await check("insufficient funds for gas * price + value", thenAlive(checkInsufficientFunds));
finish("bad-input");
