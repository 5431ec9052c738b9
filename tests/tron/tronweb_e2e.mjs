// tronweb from npm, unchanged, against `bttd tron-sim`.
//
// Run by tests/e2e/tron.rs as `node tronweb_e2e.mjs '<the simulator's --json line>' <repo root>`.
// tronweb builds transfers and deployments itself (protobuf, txID) and rebuilds the txID of
// what the node returns from `raw_data_hex` before it signs, so every byte must be exact.
import { readFileSync } from "node:fs";
import { TronWeb } from "tronweb";

const info = JSON.parse(process.argv[2]);
const root = process.argv[3];
const [a0, a1] = info.accounts;
const tronWeb = new TronWeb({ fullHost: info.url, privateKey: a0.private_key });
let passed = 0;
const ok = (what) => console.log(`ok ${++passed} - ${what}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function assert(cond, what) {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}

async function waitInfo(txid) {
  for (let i = 0; i < 600; i++) {
    const r = await tronWeb.trx.getUnconfirmedTransactionInfo(txid);
    if (r && r.id) return r;
    await sleep(50);
  }
  throw new Error(`${txid} not included`);
}
const balance = async (addr) => (await tronWeb.trx.getUnconfirmedAccount(addr)).balance ?? 0;

// 1. A TRX transfer built by tronweb (its own protobuf and txID), signed, broadcast.
const before0 = await balance(a0.address);
const before1 = await balance(a1.address);
const tx = await tronWeb.transactionBuilder.sendTrx(a1.address, 777_000, a0.address);
const signed = await tronWeb.trx.sign(tx);
const sent = await tronWeb.trx.sendRawTransaction(signed);
assert(sent.result === true, `broadcast: ${JSON.stringify(sent)}`);
const transferInfo = await waitInfo(tx.txID);
const onChain = await tronWeb.trx.getTransaction(tx.txID);
assert(onChain.raw_data_hex === tx.raw_data_hex, "the node's raw_data_hex differs from tronweb's");
const fee = transferInfo.fee ?? 0;
assert((await balance(a0.address)) === before0 - 777_000 - fee, "sender balance to the sun");
assert((await balance(a1.address)) === before1 + 777_000, "recipient balance");
ok(`TRX transfer ${tx.txID}: the node's txID and bytes equal tronweb's`);

// 2. The TRC-20 deployed with tronweb's own CreateSmartContract builder.
const artifact = JSON.parse(readFileSync(`${root}/contracts/artifacts/TronTestToken.json`, "utf8"));
const deployTx = await tronWeb.transactionBuilder.createSmartContract(
  {
    abi: artifact.abi,
    bytecode: artifact.bytecode.replace(/^0x/, ""),
    feeLimit: 1_000_000_000,
    parameters: ["Tronweb Token", "TWT", 1_000_000],
    name: "TronTestToken",
  },
  a0.address,
);
const deploySent = await tronWeb.trx.sendRawTransaction(await tronWeb.trx.sign(deployTx));
assert(deploySent.result === true, `deploy: ${JSON.stringify(deploySent)}`);
const deployed = await waitInfo(deployTx.txID);
assert(deployed.receipt.result === "SUCCESS", `deploy receipt ${JSON.stringify(deployed)}`);
const tokenHex = deployed.contract_address;
assert(tokenHex === deployTx.contract_address, `contract address ${tokenHex} != tronweb's ${deployTx.contract_address}`);
ok(`TRC-20 deployed by tronweb at ${tronWeb.address.fromHex(tokenHex)}`);

// 3. A contract trigger through wallet/triggersmartcontract: tronweb checks the node's bytes.
const trigger = await tronWeb.transactionBuilder.triggerSmartContract(
  tokenHex,
  "transfer(address,uint256)",
  { feeLimit: 100_000_000 },
  [
    { type: "address", value: a1.address },
    { type: "uint256", value: 4242 },
  ],
  a0.address,
);
assert(trigger.result && trigger.result.result === true, `trigger: ${JSON.stringify(trigger)}`);
const triggerSent = await tronWeb.trx.sendRawTransaction(await tronWeb.trx.sign(trigger.transaction));
assert(triggerSent.result === true, `trigger broadcast: ${JSON.stringify(triggerSent)}`);
const triggered = await waitInfo(trigger.transaction.txID);
assert(triggered.receipt.result === "SUCCESS", `trigger receipt ${JSON.stringify(triggered)}`);
const constant = await tronWeb.transactionBuilder.triggerConstantContract(
  tokenHex,
  "balanceOf(address)",
  {},
  [{ type: "address", value: a1.address }],
  a0.address,
);
assert(BigInt(`0x${constant.constant_result[0]}`) === 4242n, `balanceOf ${JSON.stringify(constant)}`);
ok("contract trigger built by the node, checked and signed by tronweb, balanceOf by constant call");

console.log(`${passed} passed, 0 failed`);
