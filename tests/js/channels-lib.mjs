// Shared by channels-contract.mjs and channels-gas.mjs: starts the npm-pinned anvil on a free
// port, deploys BandwidthChannels from the committed artifact, and signs vouchers and close
// messages exactly as a wallet does (viem's signTypedData, EIP-712).
//
// The settle-window bounds of the anvil deployment are (1 s, 30 days), as on the devnet.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  BaseError,
  ContractFunctionRevertedError,
  createPublicClient,
  createWalletClient,
  defineChain,
  http,
  parseEventLogs,
} from "viem";
import { mnemonicToAccount } from "viem/accounts";

const HERE = dirname(fileURLToPath(import.meta.url));
const ANVIL = join(HERE, "node_modules", "@foundry-rs", "anvil-linux-amd64", "bin", "anvil");
export const MNEMONIC = "test test test test test test test test test test test junk";
export const CHAIN_ID = 31337;
export const MIN_WINDOW = 1n;
export const MAX_WINDOW = 30n * 24n * 3600n;
/// secp256k1 group order.
export const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

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

/**
 * Starts anvil (Prague, the test mnemonic, 20 accounts of 10,000,000 ETH-units each) and sets
 * RPC_URL / CHAIN_ID so lib.mjs can be imported afterwards. `extraArgs` go to anvil (e.g.
 * `--steps-tracing` for opcode-level traces). Returns {url, chain, publicClient}.
 */
export async function startAnvil(extraArgs = []) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const anvil = spawn(
    ANVIL,
    [
      "--host", "127.0.0.1", "--port", String(port), "--chain-id", String(CHAIN_ID), "--mnemonic", MNEMONIC,
      "--hardfork", "prague", "--accounts", "20", "--balance", "10000000", "--gas-limit", "100000000",
      ...extraArgs,
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  process.on("exit", () => anvil.kill());
  const chain = defineChain({
    id: CHAIN_ID,
    name: "anvil",
    nativeCurrency: { name: "BitTorrent", symbol: "BTT", decimals: 18 },
    rpcUrls: { default: { http: [url] } },
  });
  const publicClient = createPublicClient({ chain, transport: http(url), pollingInterval: 50 });
  for (let i = 0; ; i++) {
    try {
      await publicClient.getChainId();
      break;
    } catch (e) {
      if (i > 200) throw new Error(`anvil did not start at ${url}: ${e.message}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  process.env.RPC_URL = url;
  process.env.CHAIN_ID = String(CHAIN_ID);
  return { url, chain, publicClient, anvil };
}

export function account(i) {
  return mnemonicToAccount(MNEMONIC, { addressIndex: i });
}

export function walletFor(chain, url, acct) {
  return createWalletClient({ account: acct, chain, transport: http(url) });
}

/** A raw JSON-RPC call (anvil's evm_* and anvil_* methods). */
export async function rpc(url, method, params = []) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  const json = await res.json();
  if (json.error) throw new Error(`${method}: ${JSON.stringify(json.error)}`);
  return json.result;
}

/** Deploys `artifact` with `args` from `wallet`; returns the contract address. */
export async function deploy(publicClient, wallet, artifact, args = []) {
  const hash = await wallet.deployContract({ abi: artifact.abi, bytecode: artifact.bytecode, args });
  const receipt = await publicClient.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success") throw new Error(`deploying ${artifact.contractName} failed`);
  return receipt.contractAddress;
}

/** The EIP-712 types of BandwidthChannels (viem adds EIP712Domain itself). */
export const TYPES = {
  Voucher: [
    { name: "channelId", type: "bytes32" },
    { name: "cumulativeAmount", type: "uint256" },
  ],
  Close: [
    { name: "channelId", type: "bytes32" },
    { name: "cumulativeAmount", type: "uint256" },
  ],
};

export function domainOf(contract, chainId = CHAIN_ID) {
  return { name: "BandwidthChannels", version: "1", chainId, verifyingContract: contract };
}

/** `signer`'s Voucher signature (65 bytes r‖s‖v, v in {27, 28}) as viem produces it. */
export function signVoucher(signer, contract, channelId, cumulativeAmount, domain = domainOf(contract)) {
  return signer.signTypedData({ domain, types: TYPES, primaryType: "Voucher", message: { channelId, cumulativeAmount } });
}

export function signClose(signer, contract, channelId, cumulativeAmount, domain = domainOf(contract)) {
  return signer.signTypedData({ domain, types: TYPES, primaryType: "Close", message: { channelId, cumulativeAmount } });
}

/** The same signature with s -> n - s and v flipped: valid for ecrecover, but malleable. */
export function highS(signature) {
  const r = signature.slice(2, 66);
  const s = BigInt(`0x${signature.slice(66, 130)}`);
  const v = parseInt(signature.slice(130, 132), 16);
  const s2 = (N - s).toString(16).padStart(64, "0");
  const v2 = (v === 27 ? 28 : 27).toString(16);
  return `0x${r}${s2}${v2}`;
}

/** Sends a contract call and waits; returns the receipt (throws if it reverted). */
export async function send(publicClient, wallet, request) {
  const hash = await wallet.writeContract(request);
  const receipt = await publicClient.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success") throw new Error(`${request.functionName} reverted on chain (${hash})`);
  return receipt;
}

/** Decoded events of `abi` in a receipt, optionally only those named `eventName`. */
export function events(abi, receipt, eventName) {
  return parseEventLogs({ abi, logs: receipt.logs, eventName });
}

/**
 * Expects `request` (a writeContract request) to revert with the custom error `errorName`,
 * by simulating it; returns the decoded error args.
 */
export async function expectRevert(publicClient, request, errorName) {
  try {
    await publicClient.simulateContract(request);
  } catch (e) {
    const revert = e instanceof BaseError ? e.walk((x) => x instanceof ContractFunctionRevertedError) : null;
    const name = revert?.data?.errorName ?? revert?.reason ?? e.shortMessage;
    if (name !== errorName) throw new Error(`expected revert ${errorName}, got ${name}`);
    return revert.data.args;
  }
  throw new Error(`expected revert ${errorName}, but the call succeeded`);
}
