// Dev accounts and devnet predeploys, through real clients:
// - ethers v6 `provider.getSigner()` (a JsonRpcSigner: no local key) sends a transfer with
//   eth_sendTransaction and the balances move; personal_sign / signTypedData recover.
// - viem's `multicall` action finds Multicall3 through the chain's contracts.multicall3.
// - A CREATE2 deployment through the deterministic deployer lands where viem (and forge)
//   predict.
//
//   RPC_URL=http://127.0.0.1:8545 CHAIN_ID=1337 node tests/js/dev-accounts.mjs
//
// Dev accounts used: 6 (sender), 7 (recipient), 8 (CREATE2 deployment).
import { JsonRpcProvider, verifyMessage, verifyTypedData } from "ethers";
import { createPublicClient, createWalletClient, concat, getContractAddress, http, keccak256, parseEther, toHex } from "viem";
import { env, chain, devAccount, rpc, check, finish, assert, assertEq } from "./lib.mjs";

const MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11";
const CREATE2_DEPLOYER = "0x4e59b44847b379578588920ca78fbf26c0b4956c";
const multicallChain = { ...chain, contracts: { multicall3: { address: MULTICALL3, blockCreated: 0 } } };
const pub = createPublicClient({ chain: multicallChain, transport: http(env.rpcUrl), pollingInterval: 200 });
const provider = new JsonRpcProvider(env.rpcUrl, env.chainId, { staticNetwork: true, polling: true, pollingInterval: 200 });
const [sender, recipient, deployer] = [devAccount(6), devAccount(7), devAccount(8)];

await check("eth_accounts lists the dev accounts", async () => {
  const accounts = (await rpc("eth_accounts")).result.map((a) => a.toLowerCase());
  for (const i of [0, 6, 7, 8]) assert(accounts.includes(devAccount(i).address.toLowerCase()), `dev account ${i} missing`);
  return `${accounts.length} accounts`;
});

await check("ethers getSigner() sends a transfer through eth_sendTransaction", async () => {
  const signer = await provider.getSigner(sender.address);
  const tx = await signer.sendTransaction({ to: recipient.address, value: parseEther("1.5") });
  const receipt = await tx.wait(1, 30_000);
  assertEq(receipt.status, 1, "receipt status");
  assertEq(receipt.from.toLowerCase(), sender.address.toLowerCase(), "receipt sender");
  const before = await provider.getBalance(recipient.address, receipt.blockNumber - 1);
  const after = await provider.getBalance(recipient.address, receipt.blockNumber);
  assertEq(after - before, parseEther("1.5"), "recipient balance change");
  return `tx ${tx.hash}`;
});

await check("ethers signMessage / signTypedData recover to the dev account", async () => {
  const signer = await provider.getSigner(sender.address);
  const signature = await signer.signMessage("hello");
  assertEq(verifyMessage("hello", signature), sender.address, "personal_sign signer");
  assertEq(signature, await sender.signMessage({ message: "hello" }), "same signature as a local key");
  const domain = { name: "Ether Mail", version: "1", chainId: env.chainId, verifyingContract: MULTICALL3 };
  const types = { Person: [{ name: "name", type: "string" }, { name: "wallet", type: "address" }] };
  const value = { name: "Cow", wallet: recipient.address };
  const typed = await signer.signTypedData(domain, types, value);
  assertEq(verifyTypedData(domain, types, value, typed), sender.address, "eth_signTypedData_v4 signer");
});

await check("viem multicall reads balances and the block number through Multicall3", async () => {
  const abi = [
    { type: "function", name: "getEthBalance", stateMutability: "view", inputs: [{ name: "addr", type: "address" }], outputs: [{ name: "balance", type: "uint256" }] },
    { type: "function", name: "getBlockNumber", stateMutability: "view", inputs: [], outputs: [{ name: "blockNumber", type: "uint256" }] },
  ];
  const blockNumber = await pub.getBlockNumber();
  const results = await pub.multicall({
    contracts: [
      { address: MULTICALL3, abi, functionName: "getEthBalance", args: [sender.address] },
      { address: MULTICALL3, abi, functionName: "getEthBalance", args: [recipient.address] },
      { address: MULTICALL3, abi, functionName: "getBlockNumber" },
    ],
    blockNumber,
    allowFailure: false,
  });
  assertEq(results[0], await pub.getBalance({ address: sender.address, blockNumber }), "sender balance");
  assertEq(results[1], await pub.getBalance({ address: recipient.address, blockNumber }), "recipient balance");
  // eth_call at block N runs in N's environment, as in geth and anvil.
  assertEq(results[2], blockNumber, "block.number inside a call at that block");
  return `block ${blockNumber}`;
});

await check("CREATE2 through the deterministic deployer lands at the predicted address", async () => {
  // Init code returning a 1-byte runtime (0x00, STOP): PUSH1 1 PUSH1 0x0c PUSH1 0 CODECOPY PUSH1 1 PUSH1 0 RETURN ‖ 00
  const bytecode = "0x6001600c60003960016000f300";
  const salt = keccak256(toHex(`bttd create2 ${Date.now()}`));
  const predicted = getContractAddress({ opcode: "CREATE2", from: CREATE2_DEPLOYER, salt, bytecode });
  assertEq(await pub.getCode({ address: predicted }), undefined, "code before");
  const wallet = createWalletClient({ account: deployer, chain, transport: http(env.rpcUrl) });
  const hash = await wallet.sendTransaction({ to: CREATE2_DEPLOYER, data: concat([salt, bytecode]) });
  const receipt = await pub.waitForTransactionReceipt({ hash, timeout: 30_000 });
  assertEq(receipt.status, "success", "receipt status");
  assertEq(await pub.getCode({ address: predicted }), "0x00", "deployed code");
  return predicted;
});

finish("dev-accounts.mjs");
