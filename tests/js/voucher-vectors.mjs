// Generates contracts/src/channels/testdata/viem-vectors.json: EIP-712 hashes and signatures of
// BandwidthChannels Voucher / Close messages computed by viem's hashTypedData and
// signTypedData (what wallets and the e2e scripts use). The Rust voucher library must produce
// exactly these bytes (contracts/src/channels/vectors.rs checks them; it also re-runs this
// script with --check when tests/js/node_modules exists, so the file cannot drift).
//
//   node tests/js/voucher-vectors.mjs            # print
//   node tests/js/voucher-vectors.mjs --write    # rewrite the checked-in file
//   node tests/js/voucher-vectors.mjs --check    # exit 1 if the checked-in file differs
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { hashTypedData } from "viem";
import { mnemonicToAccount, privateKeyToAccount } from "viem/accounts";

const OUT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "contracts", "src", "channels", "testdata", "viem-vectors.json");
const MNEMONIC = "test test test test test test test test test test test junk";

const fields = [
  { name: "channelId", type: "bytes32" },
  { name: "cumulativeAmount", type: "uint256" },
];
const types = { Voucher: fields, Close: fields };

const accounts = [
  mnemonicToAccount(MNEMONIC, { addressIndex: 0 }),
  mnemonicToAccount(MNEMONIC, { addressIndex: 1 }),
  privateKeyToAccount("0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"),
];
const domains = [
  { chainId: 1337, verifyingContract: "0x0000000000000000000000000000000000001002" },
  { chainId: 199, verifyingContract: "0x0000000000000000000000000000000000001002" },
  { chainId: 1337, verifyingContract: "0xcA11bde05977b3631167028862bE2a173976CA11" },
];
const messages = [
  { channelId: "0x" + "00".repeat(32), cumulativeAmount: 0n },
  { channelId: "0x" + "01".repeat(32), cumulativeAmount: 1n },
  { channelId: "0x9c22ff5f21f0b81b113e63f7db6da94fedef11b2119b4088b89664fb9a3cb658", cumulativeAmount: 10n ** 18n * 12345n + 6789n },
  { channelId: "0x" + "ff".repeat(32), cumulativeAmount: 2n ** 256n - 1n },
];

const vectors = [];
let k = 0;
for (const d of domains) {
  const domain = { name: "BandwidthChannels", version: "1", ...d };
  for (const m of messages) {
    for (const primaryType of ["Voucher", "Close"]) {
      const account = accounts[k++ % accounts.length];
      const typed = { domain, types, primaryType, message: m };
      vectors.push({
        signer: account.address,
        chainId: d.chainId,
        verifyingContract: d.verifyingContract,
        primaryType,
        channelId: m.channelId,
        cumulativeAmount: m.cumulativeAmount.toString(),
        hash: hashTypedData(typed),
        signature: await account.signTypedData(typed),
      });
    }
  }
}
const text = JSON.stringify({ generator: "tests/js/voucher-vectors.mjs (viem hashTypedData / signTypedData)", keys: { mnemonic: MNEMONIC, indices: [0, 1], privateKey: "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318" }, vectors }, null, 2) + "\n";

const mode = process.argv[2];
if (mode === "--write") {
  writeFileSync(OUT, text);
  console.log(`wrote ${vectors.length} vectors to ${OUT}`);
} else if (mode === "--check") {
  const old = readFileSync(OUT, "utf8");
  if (old !== text) {
    console.error(`${OUT} is stale: run node tests/js/voucher-vectors.mjs --write`);
    process.exit(1);
  }
  console.log(`PASS ${vectors.length} vectors unchanged`);
} else {
  process.stdout.write(text);
}
