// Shared helpers for the end-to-end client scripts: environment, dev accounts, a raw JSON-RPC
// client, and a tiny PASS/FAIL check runner.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { defineChain, getAddress } from "viem";
import { mnemonicToAccount } from "viem/accounts";

const HERE = dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------------

function required(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`missing env ${name} (need RPC_URL, WS_URL, CHAIN_ID; optional FEE_POOL, EXPECT_GETH_ERRORS=1)`);
    process.exit(2);
  }
  return v;
}

export const env = {
  rpcUrl: required("RPC_URL"),
  wsUrl: process.env.WS_URL ?? "",
  chainId: Number(required("CHAIN_ID")),
  feePool: process.env.FEE_POOL ? getAddress(process.env.FEE_POOL) : undefined,
  gethErrors: process.env.EXPECT_GETH_ERRORS === "1",
};

export const chain = defineChain({
  id: env.chainId,
  name: "bttd-under-test",
  nativeCurrency: { name: "BitTorrent", symbol: "BTT", decimals: 18 },
  rpcUrls: { default: { http: [env.rpcUrl], webSocket: env.wsUrl ? [env.wsUrl] : [] } },
});

// ---------------------------------------------------------------------------------------------
// Dev accounts: anvil's / bttd devnet's defaults.
// ---------------------------------------------------------------------------------------------

export const MNEMONIC = "test test test test test test test test test test test junk";

/** Dev account i: m/44'/60'/0'/0/i of the well-known test mnemonic. */
export function devAccount(i) {
  return mnemonicToAccount(MNEMONIC, { addressIndex: i });
}

// ---------------------------------------------------------------------------------------------
// Artifacts
// ---------------------------------------------------------------------------------------------

/** Loads contracts/artifacts/<name>.json ({abi, bytecode, deployedBytecode, ...}). */
export function loadArtifact(name) {
  return JSON.parse(readFileSync(join(HERE, "..", "..", "contracts", "artifacts", `${name}.json`), "utf8"));
}

// ---------------------------------------------------------------------------------------------
// Raw JSON-RPC over fetch (to see exactly what the node answers, codes and all).
// ---------------------------------------------------------------------------------------------

let nextId = 1;

/** POSTs `body` (string) and returns {status, json, text}. */
export async function postRaw(body, { contentType = "application/json" } = {}) {
  const res = await fetch(env.rpcUrl, { method: "POST", headers: { "content-type": contentType }, body });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

/** One JSON-RPC call; returns the whole response object ({result} or {error}). */
export async function rpc(method, params = []) {
  const { json, status, text } = await postRaw(JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params }));
  if (!json) throw new Error(`${method}: HTTP ${status}, non-JSON body: ${text.slice(0, 200)}`);
  return json;
}

/** A JSON-RPC call that must fail; returns its `error` object. */
export async function rpcError(method, params = []) {
  const res = await rpc(method, params);
  if (!res.error) throw new Error(`${method} succeeded (result ${JSON.stringify(res.result)}) but an error was expected`);
  return res.error;
}

// ---------------------------------------------------------------------------------------------
// Assertions and the check runner.
// ---------------------------------------------------------------------------------------------

export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

export function assertEq(actual, expected, what) {
  if (actual !== expected) throw new Error(`${what}: expected ${fmt(expected)}, got ${fmt(actual)}`);
}

export function assertIncludes(haystack, needle, what) {
  if (typeof haystack !== "string" || !haystack.includes(needle)) {
    throw new Error(`${what}: expected to contain ${JSON.stringify(needle)}, got ${JSON.stringify(haystack)}`);
  }
}

function fmt(v) {
  return typeof v === "bigint" ? `${v}n` : JSON.stringify(v);
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Rejects with a clear message if `promise` does not settle within `ms`. */
export function withTimeout(promise, ms, what) {
  let t;
  const timeout = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(t));
}

const results = [];

/**
 * Runs one named check. Prints `PASS name` or `FAIL name: reason`; never throws.
 * Returns the check's value (or undefined on failure) so later checks can build on it.
 */
export async function check(name, fn) {
  const started = Date.now();
  try {
    const value = await fn();
    const note = typeof value === "string" ? ` (${value})` : "";
    console.log(`PASS ${name}${note} [${Date.now() - started} ms]`);
    results.push({ name, ok: true });
    return value;
  } catch (e) {
    const reason = e?.shortMessage ?? e?.message ?? String(e);
    console.log(`FAIL ${name}: ${reason}`);
    if (process.env.VERBOSE) console.log(e);
    results.push({ name, ok: false });
    return undefined;
  }
}

/** Prints the summary and exits 0 only if every check passed. */
export function finish(script) {
  const failed = results.filter((r) => !r.ok);
  console.log(`${failed.length === 0 ? "PASS" : "FAIL"} ${script}: ${results.length - failed.length}/${results.length} checks passed`);
  process.exit(failed.length === 0 ? 0 : 1);
}
