// Contract tests of BandwidthChannels (issue 5) on the npm-pinned anvil, started here: the
// committed artifact is deployed with settle-window bounds (1 s, 30 days) and driven by viem,
// vouchers signed with viem's signTypedData as a wallet would. One line per check, exit 1 if
// any fails (run by tests/e2e/channels_contract.rs).
//
//   (cd tests/js && npm ci) && node tests/js/channels-contract.mjs
//
// Balances are compared to the wei: payees never send a transaction here (a relayer does),
// so their balance changes only by what the contract pays them; a payer's refund is checked
// net of the gas its own transactions cost.
import { getAddress, pad, parseEther, toHex, zeroAddress } from "viem";
import {
  CHAIN_ID,
  MAX_WINDOW,
  MIN_WINDOW,
  account,
  deploy,
  domainOf,
  events,
  expectRevert,
  highS,
  rpc,
  send,
  signClose,
  signVoucher,
  startAnvil,
  walletFor,
} from "./channels-lib.mjs";

const { url, chain, publicClient: pc } = await startAnvil();
const { check, finish, assert, assertEq, loadArtifact } = await import("./lib.mjs");

const CH = loadArtifact("BandwidthChannels");
const ATTACKER = loadArtifact("ReentrantPayee");
const abi = CH.abi;

const deployer = walletFor(chain, url, account(0));
const payerAcct = account(1);
const payer = walletFor(chain, url, payerAcct);
const relayer = walletFor(chain, url, account(2));
const stranger = walletFor(chain, url, account(3));
// Payees never send transactions, so their balances move only by payments.
const payee1 = account(10).address;
const payee2 = account(11).address;
const payee3 = account(12).address;
const otherSigner = account(13);

const WINDOW = 3600n;
const bal = (a) => pc.getBalance({ address: a });
const read = (address, functionName, args) => pc.readContract({ address, abi, functionName, args });
const gasCost = (r) => r.gasUsed * r.effectiveGasPrice;
const warp = async (seconds) => {
  await rpc(url, "evm_increaseTime", [Number(seconds)]);
  await rpc(url, "evm_mine");
};
const nextBlockAt = (ts) => rpc(url, "evm_setNextBlockTimestamp", [Number(ts)]);

const channels = await deploy(pc, deployer, CH, [MIN_WINDOW, MAX_WINDOW]);
const otherChannels = await deploy(pc, deployer, CH, [MIN_WINDOW, MAX_WINDOW]);

const req = (functionName, args, wallet = relayer, value) => ({
  address: channels,
  abi,
  functionName,
  args,
  account: wallet.account,
  ...(value === undefined ? {} : { value }),
});
const call = (wallet, functionName, args, value) => send(pc, wallet, req(functionName, args, wallet, value));

/** Opens a channel from `wallet` and returns its id (from the ChannelOpened event). */
async function open(payeeAddr, deposit, wallet = payer, window = WINDOW) {
  const receipt = await call(wallet, "open", [payeeAddr, window], deposit);
  const [ev] = events(abi, receipt, "ChannelOpened");
  return ev.args.channelId;
}

const voucher = (id, amount, signer = payerAcct, domain) => signVoucher(signer, channels, id, amount, domain);

async function state(id) {
  const [p, q, deposit, claimed, settleWindow, closesAt] = await read(channels, "channels", [id]);
  return { payer: p, payee: q, deposit, claimed, settleWindow, closesAt };
}

// ---------------------------------------------------------------------------------------------

await check("deployment: bounds, EIP-712 domain (ERC-5267) and type hashes", async () => {
  assertEq(await read(channels, "minSettleWindow"), MIN_WINDOW, "minSettleWindow");
  assertEq(await read(channels, "maxSettleWindow"), MAX_WINDOW, "maxSettleWindow");
  const d = await pc.getEip712Domain({ address: channels });
  assertEq(d.fields, "0x0f", "eip712Domain fields (name, version, chainId, verifyingContract)");
  for (const [k, v] of Object.entries(domainOf(channels))) assertEq(d.domain[k], k === "verifyingContract" ? getAddress(v) : v, `eip712Domain.${k}`);
  const { hashDomain, keccak256, toBytes } = await import("viem");
  assertEq(
    await read(channels, "DOMAIN_SEPARATOR"),
    hashDomain({ domain: domainOf(channels), types: { EIP712Domain: [
      { name: "name", type: "string" }, { name: "version", type: "string" },
      { name: "chainId", type: "uint256" }, { name: "verifyingContract", type: "address" },
    ] } }),
    "DOMAIN_SEPARATOR",
  );
  assertEq(await read(channels, "VOUCHER_TYPEHASH"), keccak256(toBytes("Voucher(bytes32 channelId,uint256 cumulativeAmount)")), "VOUCHER_TYPEHASH");
  assertEq(await read(channels, "CLOSE_TYPEHASH"), keccak256(toBytes("Close(bytes32 channelId,uint256 cumulativeAmount)")), "CLOSE_TYPEHASH");
  // The constructor refuses bounds it cannot honour (checked through eth_call of the creation code).
  const { encodeDeployData } = await import("viem");
  for (const args of [[0n, 10n], [11n, 10n], [1n, 2n ** 32n]]) {
    const data = encodeDeployData({ abi, bytecode: CH.bytecode, args });
    const err = await pc.call({ account: deployer.account, data }).then(() => null, (e) => e);
    assert(err !== null, `constructor accepted bounds ${args}`);
  }
});

await check("open: ids are payer<<96|nonce and never repeat; bad payee or window refused", async () => {
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push(await open(payee1, 0n, i === 1 ? stranger : payer));
  assertEq(new Set(ids).size, 3, "distinct ids");
  for (const [i, id] of ids.entries()) {
    const who = i === 1 ? stranger.account.address : payerAcct.address;
    assertEq(getAddress(`0x${id.slice(2, 42)}`), who, `payer folded into id ${i}`);
  }
  const nonces = ids.map((id) => BigInt(`0x${id.slice(42)}`));
  assert(nonces[0] < nonces[1] && nonces[1] < nonces[2], `nonces increase: ${nonces}`);
  const s = await state(ids[1]);
  assertEq(s.payer, stranger.account.address, "payer");
  assertEq(s.payee, payee1, "payee");
  await expectRevert(pc, req("open", [zeroAddress, WINDOW], payer, 1n), "InvalidPayee");
  await expectRevert(pc, req("open", [channels, WINDOW], payer, 1n), "InvalidPayee");
  await expectRevert(pc, req("open", [payee1, MIN_WINDOW - 1n], payer, 1n), "SettleWindowOutOfBounds");
  await expectRevert(pc, req("open", [payee1, MAX_WINDOW + 1n], payer, 1n), "SettleWindowOutOfBounds");
  const unknown = await state(pad("0x1234", { size: 32 }));
  assertEq(unknown.payer, zeroAddress, "unknown channel reads as zero");
  await expectRevert(pc, req("settle", [pad("0x1234", { size: 32 }), 1n, "0x"]), "UnknownChannel");
});

await check("full lifecycle: open, topUp, settle, requestClose, settle in the window, withdraw", async () => {
  const deposit = parseEther("10");
  const p0 = await bal(payee1);
  const c0 = await bal(channels);
  const payerStart = await bal(payerAcct.address);
  let payerGas = 0n;

  const r1 = await call(payer, "open", [payee1, WINDOW], deposit);
  payerGas += gasCost(r1);
  const [opened] = events(abi, r1, "ChannelOpened");
  const id = opened.args.channelId;
  assertEq(opened.args.payer, payerAcct.address, "event payer");
  assertEq(opened.args.payee, payee1, "event payee");
  assertEq(opened.args.deposit, deposit, "event deposit");
  assertEq(opened.args.settleWindow, WINDOW, "event window");

  const r2 = await call(payer, "topUp", [id], parseEther("5"));
  payerGas += gasCost(r2);
  const [topped] = events(abi, r2, "ToppedUp");
  assertEq(topped.args.deposit, parseEther("15"), "ToppedUp deposit");

  const r3 = await call(relayer, "settle", [id, parseEther("3"), await voucher(id, parseEther("3"))]);
  assertEq(events(abi, r3, "Settled")[0].args.claimed, parseEther("3"), "Settled claimed");
  assertEq((await bal(payee1)) - p0, parseEther("3"), "payee after first settle");
  await call(relayer, "settle", [id, parseEther("7"), await voucher(id, parseEther("7"))]);
  assertEq((await bal(payee1)) - p0, parseEther("7"), "payee after second settle");

  const r4 = await call(payer, "requestClose", [id]);
  payerGas += gasCost(r4);
  const block = await pc.getBlock({ blockNumber: r4.blockNumber });
  const [closeEv] = events(abi, r4, "CloseRequested");
  assertEq(closeEv.args.closesAt, block.timestamp + WINDOW, "closesAt");

  // The payee's watcher settles the newest voucher inside the window.
  await warp(WINDOW - 10n);
  await call(relayer, "settle", [id, parseEther("9.5"), await voucher(id, parseEther("9.5"))]);
  assertEq((await bal(payee1)) - p0, parseEther("9.5"), "payee after settling in the window");

  await warp(10n);
  const r5 = await call(payer, "withdraw", [id]);
  payerGas += gasCost(r5);
  assertEq(events(abi, r5, "Withdrawn")[0].args.refunded, parseEther("5.5"), "refund");
  assertEq((await bal(payerAcct.address)) + payerGas - payerStart, -parseEther("9.5"), "payer paid exactly 9.5");
  assertEq(await bal(channels), c0, "contract keeps nothing");
  const s = await state(id);
  assertEq(s.deposit, parseEther("9.5"), "deposit after withdraw");
  assertEq(s.claimed, parseEther("9.5"), "claimed after withdraw");
  await expectRevert(pc, req("withdraw", [id]), "NothingToWithdraw");
  await expectRevert(pc, req("settle", [id, parseEther("10"), await voucher(id, parseEther("10"))]), "SettleWindowOver");
});

await check("full lifecycle: cooperativeClose pays the payee, refunds the payer, closes at once", async () => {
  const id = await open(payee2, parseEther("4"));
  await call(relayer, "settle", [id, parseEther("1"), await voucher(id, parseEther("1"))]);
  const p0 = await bal(payee2);
  const payer0 = await bal(payerAcct.address);
  const amount = parseEther("2.25");
  const payeeSig = await signClose(account(11), channels, id, amount);
  // The payee's Close signature alone, or a Close signature by the payer, does not do.
  await expectRevert(pc, req("cooperativeClose", [id, amount, payeeSig, payeeSig]), "WrongSigner");
  await expectRevert(pc, req("cooperativeClose", [id, amount, await voucher(id, amount), await signClose(payerAcct, channels, id, amount)]), "WrongSigner");
  await expectRevert(pc, req("cooperativeClose", [id, parseEther("5"), await voucher(id, parseEther("5")), await signClose(account(11), channels, id, parseEther("5"))]), "ExceedsDeposit");
  const r = await call(relayer, "cooperativeClose", [id, amount, await voucher(id, amount), payeeSig]);
  assertEq(events(abi, r, "Closed")[0].args.refunded, parseEther("1.75"), "Closed refunded");
  assertEq((await bal(payee2)) - p0, parseEther("1.25"), "payee got the rest of the voucher");
  assertEq((await bal(payerAcct.address)) - payer0, parseEther("1.75"), "payer refunded");
  const s = await state(id);
  assert(s.closesAt > 0n, "closed");
  await expectRevert(pc, req("settle", [id, parseEther("3"), await voucher(id, parseEther("3"))]), "SettleWindowOver");
  await expectRevert(pc, req("topUp", [id], payer, 1n), "CloseAlreadyRequested");
  await expectRevert(pc, req("withdraw", [id]), "NothingToWithdraw");
});

await check("the same voucher settled twice pays once (settle and settleBatch)", async () => {
  const id = await open(payee1, parseEther("3"));
  const sig = await voucher(id, parseEther("1"));
  const p0 = await bal(payee1);
  await call(relayer, "settle", [id, parseEther("1"), sig]);
  await expectRevert(pc, req("settle", [id, parseEther("1"), sig]), "StaleAmount");
  // An older (lower) voucher is stale too.
  await expectRevert(pc, req("settle", [id, parseEther("0.5"), await voucher(id, parseEther("0.5"))]), "StaleAmount");
  const sig2 = await voucher(id, parseEther("2"));
  const r = await call(relayer, "settleBatch", [[id, id, id], [parseEther("2"), parseEther("2"), parseEther("1")], [sig2, sig2, sig]]);
  const skipped = events(abi, r, "SettleSkipped");
  assertEq(skipped.map((e) => `${e.args.index}:${e.args.reason}`).join(","), "1:3,2:3", "skipped items (StaleAmount = 3)");
  assertEq((await bal(payee1)) - p0, parseEther("2"), "payee paid once per amount");
  assertEq((await state(id)).claimed, parseEther("2"), "claimed");
});

await check("a voucher for channel A is refused on channel B (same payer, same payee)", async () => {
  const a = await open(payee1, parseEther("2"));
  const b = await open(payee1, parseEther("2"));
  const sigA = await voucher(a, parseEther("1"));
  const args = await expectRevert(pc, req("settle", [b, parseEther("1"), sigA]), "WrongSigner");
  assertEq(args[1], payerAcct.address, "expected signer");
  assert(args[0] !== payerAcct.address, "recovered someone else");
  assertEq((await state(b)).claimed, 0n, "B unchanged");
  await call(relayer, "settle", [a, parseEther("1"), sigA]); // and it is good on A
});

await check("signatures for another chain id or another contract are refused", async () => {
  const id = await open(payee1, parseEther("2"));
  const amount = parseEther("1");
  await expectRevert(pc, req("settle", [id, amount, await voucher(id, amount, payerAcct, domainOf(channels, 1))]), "WrongSigner");
  await expectRevert(pc, req("settle", [id, amount, await voucher(id, amount, payerAcct, domainOf(otherChannels))]), "WrongSigner");
  await expectRevert(pc, req("settle", [id, amount, await voucher(id, amount, payerAcct, { ...domainOf(channels), version: "2" })]), "WrongSigner");
  // A Close signature is not a Voucher signature.
  await expectRevert(pc, req("settle", [id, amount, await signClose(payerAcct, channels, id, amount)]), "WrongSigner");
  await expectRevert(pc, req("settle", [id, amount, await voucher(id, amount, otherSigner)]), "WrongSigner");
  assertEq((await state(id)).claimed, 0n, "unchanged");
  assertEq(CHAIN_ID, await pc.getChainId(), "chain id");
});

await check("high-s, bad v, bad length and unrecoverable signatures are refused", async () => {
  const id = await open(payee1, parseEther("2"));
  const amount = parseEther("1");
  const sig = await voucher(id, amount);
  const flipped = highS(sig);
  assert(flipped !== sig, "flipped");
  // The flipped signature is a valid ECDSA signature of the payer (what ecrecover accepts).
  const { recoverAddress, hashTypedData } = await import("viem");
  const digest = hashTypedData({ domain: domainOf(channels), types: { Voucher: [{ name: "channelId", type: "bytes32" }, { name: "cumulativeAmount", type: "uint256" }] }, primaryType: "Voucher", message: { channelId: id, cumulativeAmount: amount } });
  assertEq(await recoverAddress({ hash: digest, signature: flipped }), payerAcct.address, "high-s twin recovers the payer");
  await expectRevert(pc, req("settle", [id, amount, flipped]), "SignatureHighS");
  const v = parseInt(sig.slice(130), 16);
  await expectRevert(pc, req("settle", [id, amount, `${sig.slice(0, 130)}${toHex(v - 27, { size: 1 }).slice(2)}`]), "SignatureBadV");
  await expectRevert(pc, req("settle", [id, amount, sig.slice(0, 130)]), "BadSignatureLength");
  await expectRevert(pc, req("settle", [id, amount, `${sig}00`]), "BadSignatureLength");
  const zeroR = `0x${"00".repeat(32)}${sig.slice(66)}`;
  const args = await expectRevert(pc, req("settle", [id, amount, zeroR]), "WrongSigner");
  assertEq(args[0], zeroAddress, "unrecoverable signer is 0");
  assertEq((await state(id)).claimed, 0n, "unchanged");
  await call(relayer, "settle", [id, amount, sig]); // the low-s original is fine
});

await check("a claim above the deposit is refused (and paid after a topUp)", async () => {
  const id = await open(payee1, parseEther("1"));
  const sig = await voucher(id, parseEther("1.5"));
  const args = await expectRevert(pc, req("settle", [id, parseEther("1.5"), sig]), "ExceedsDeposit");
  assertEq(args[1], parseEther("1"), "deposit in error");
  const p0 = await bal(payee1);
  await call(payer, "topUp", [id], parseEther("0.5"));
  await call(relayer, "settle", [id, parseEther("1.5"), sig]);
  assertEq((await bal(payee1)) - p0, parseEther("1.5"), "paid after topUp");
});

await check("settling at or after closesAt is refused; one second before is fine", async () => {
  const id = await open(payee1, parseEther("2"), payer, 100n);
  const r = await call(payer, "requestClose", [id]);
  const closesAt = events(abi, r, "CloseRequested")[0].args.closesAt;
  await nextBlockAt(closesAt - 1n);
  await call(relayer, "settle", [id, parseEther("1"), await voucher(id, parseEther("1"))]);
  await nextBlockAt(closesAt);
  await rpc(url, "evm_mine");
  const sig = await voucher(id, parseEther("2"));
  await expectRevert(pc, req("settle", [id, parseEther("2"), sig]), "SettleWindowOver");
  const batch = await call(relayer, "settleBatch", [[id], [parseEther("2")], [sig]]);
  assertEq(events(abi, batch, "SettleSkipped")[0].args.reason, 2, "batch skip reason SettleWindowOver");
  assertEq((await state(id)).claimed, parseEther("1"), "claimed unchanged");
});

await check("the payer cannot withdraw before the window ends; only the payer requests a close", async () => {
  const id = await open(payee1, parseEther("2"), payer, 50n);
  await expectRevert(pc, req("withdraw", [id], payer), "CloseNotRequested");
  await expectRevert(pc, req("requestClose", [id], stranger), "NotPayer");
  await expectRevert(pc, req("requestClose", [id], relayer), "NotPayer");
  const r = await call(payer, "requestClose", [id]);
  const closesAt = events(abi, r, "CloseRequested")[0].args.closesAt;
  await expectRevert(pc, req("requestClose", [id], payer), "CloseAlreadyRequested");
  await nextBlockAt(closesAt - 1n);
  await rpc(url, "evm_mine");
  await expectRevert(pc, req("withdraw", [id], payer), "SettleWindowNotOver");
  await nextBlockAt(closesAt);
  const before = await bal(payerAcct.address);
  const w = await call(payer, "withdraw", [id]);
  assertEq((await bal(payerAcct.address)) + gasCost(w) - before, parseEther("2"), "refund at closesAt");
});

await check("topUp after requestClose is refused", async () => {
  const id = await open(payee1, parseEther("1"));
  await call(stranger, "topUp", [id], parseEther("1")); // anyone may top up an open channel
  assertEq((await state(id)).deposit, parseEther("2"), "deposit");
  await expectRevert(pc, req("topUp", [id], payer, 0n), "ZeroValue");
  await call(payer, "requestClose", [id]);
  await expectRevert(pc, req("topUp", [id], payer, parseEther("1")), "CloseAlreadyRequested");
  await expectRevert(pc, req("topUp", [id], stranger, parseEther("1")), "CloseAlreadyRequested");
  assertEq((await state(id)).deposit, parseEther("2"), "deposit unchanged");
});

await check("a payee contract that re-enters on receipt cannot take more", async () => {
  const attacker = await deploy(pc, deployer, ATTACKER, [channels]);
  const aread = (functionName) => pc.readContract({ address: attacker, abi: ATTACKER.abi, functionName });
  const id = await open(attacker, parseEther("10"));
  const c0 = await bal(channels);
  // settle: the attacker re-enters settle and settleBatch with the voucher it was just paid for.
  const sig3 = await voucher(id, parseEther("3"));
  await send(pc, deployer, { address: attacker, abi: ATTACKER.abi, functionName: "arm", args: [id, parseEther("3"), sig3, 5n] });
  await call(relayer, "settle", [id, parseEther("3"), sig3]);
  assertEq(await bal(attacker), parseEther("3"), "attacker balance after settle");
  assert((await aread("attempts")) >= 1n, "the attacker did re-enter");
  assertEq(await aread("settleReverts"), await aread("attempts"), "every re-entered settle reverted");
  // settleBatch: state is written for every item before the one payout per payee.
  const sig6 = await voucher(id, parseEther("6"));
  await send(pc, deployer, { address: attacker, abi: ATTACKER.abi, functionName: "arm", args: [id, parseEther("6"), sig6, 5n] });
  await call(relayer, "settleBatch", [[id], [parseEther("6")], [sig6]]);
  assertEq(await bal(attacker), parseEther("6"), "attacker balance after settleBatch");
  assert((await aread("attempts")) >= 1n, "re-entered again");
  assertEq(await aread("received"), parseEther("6"), "received in total");
  assertEq((await state(id)).claimed, parseEther("6"), "claimed");
  assertEq(c0 - (await bal(channels)), parseEther("6"), "contract paid out exactly 6");
});

await check("a batch with bad items pays exactly the good ones", async () => {
  const a = await open(payee1, parseEther("5"));
  const b = await open(payee2, parseEther("5"));
  const c = await open(payee1, parseEther("5"));
  const d = await open(payee3, parseEther("5"), payer, 10n);
  const e = await open(payee3, parseEther("5"));
  await call(relayer, "settle", [e, parseEther("2"), await voucher(e, parseEther("2"))]);
  await call(payer, "requestClose", [d]);
  await warp(10n);
  const one = parseEther("1");
  const items = [
    [a, parseEther("1.1"), await voucher(a, parseEther("1.1")), 0], // good: payee1 +1.1
    [b, parseEther("2.2"), await voucher(b, parseEther("2.2"), otherSigner), 8], // WrongSigner
    [b, parseEther("0.7"), await voucher(b, parseEther("0.7")), 0], // good: payee2 +0.7
    [c, parseEther("6"), await voucher(c, parseEther("6")), 4], // ExceedsDeposit
    [pad("0x99", { size: 32 }), one, await voucher(pad("0x99", { size: 32 }), one), 1], // UnknownChannel
    [d, one, await voucher(d, one), 2], // SettleWindowOver
    [e, parseEther("1.5"), await voucher(e, parseEther("1.5")), 3], // StaleAmount (claimed 2)
    [c, parseEther("3.3"), highS(await voucher(c, parseEther("3.3"))), 6], // SignatureHighS
    [c, parseEther("3.3"), (await voucher(c, parseEther("3.3"))).slice(0, 100), 5], // BadSignatureLength
    [c, parseEther("0.3"), await voucher(c, parseEther("0.3")), 0], // good: payee1 +0.3
    [a, parseEther("1.6"), await voucher(a, parseEther("1.6")), 0], // good: payee1 +0.5 more
    [e, parseEther("2.5"), await voucher(e, parseEther("2.5"), payerAcct, domainOf(otherChannels)), 8], // WrongSigner
  ];
  const before = await Promise.all([payee1, payee2, payee3, channels].map(bal));
  const r = await call(relayer, "settleBatch", [items.map((i) => i[0]), items.map((i) => i[1]), items.map((i) => i[2])]);
  const after = await Promise.all([payee1, payee2, payee3, channels].map(bal));
  assertEq(after[0] - before[0], parseEther("1.9"), "payee1 (1.1 + 0.3 + 0.5)");
  assertEq(after[1] - before[1], parseEther("0.7"), "payee2");
  assertEq(after[2] - before[2], 0n, "payee3 (only bad items)");
  assertEq(before[3] - after[3], parseEther("2.6"), "contract paid exactly the good items");
  const skipped = events(abi, r, "SettleSkipped").map((ev) => `${ev.args.index}:${ev.args.reason}`);
  const expected = items.flatMap((it, i) => (it[3] === 0 ? [] : [`${i}:${it[3]}`]));
  assertEq(skipped.join(","), expected.join(","), "SettleSkipped index:reason");
  assertEq(events(abi, r, "Settled").length, 4, "Settled events");
  assertEq((await state(a)).claimed, parseEther("1.6"), "a claimed");
  assertEq((await state(b)).claimed, parseEther("0.7"), "b claimed");
  assertEq((await state(c)).claimed, parseEther("0.3"), "c claimed");
  assertEq((await state(d)).claimed, 0n, "d claimed");
  assertEq((await state(e)).claimed, parseEther("2"), "e claimed");
  // Arrays of different lengths change nothing.
  await expectRevert(pc, req("settleBatch", [[a], [], []]), "LengthMismatch");
});

finish("channels-contract.mjs");
