"""tronpy from PyPI, unchanged, against `bttd tron-sim`.

Run by tests/e2e/tron.rs as `python tronpy_e2e.py '<the simulator's --json line>' <repo root>`
with the virtualenv scripts/setup makes (tests/tron/.venv, tronpy[offline,mnemonic]==0.6.2).
Every step checks one thing a TRON client depends on; any failure raises and exits non-zero.
"""

import json
import sys
import time

from tronpy import Tron, keys
from tronpy.contract import Contract
from tronpy.exceptions import BadSignature, TransactionError, TransactionNotFound, ValidationError
from tronpy.keys import PrivateKey
from tronpy.proto import calculate_txid_from_raw_data
from tronpy.providers import HTTPProvider

info = json.loads(sys.argv[1])
root = sys.argv[2]
client = Tron(HTTPProvider(info["url"]))
depth = info["solidify_depth"]
a0, a1, a2 = info["accounts"][0], info["accounts"][1], info["accounts"][2]
k0 = PrivateKey(bytes.fromhex(a0["private_key"]))
k1 = PrivateKey(bytes.fromhex(a1["private_key"]))
FEE_LIMIT = 1_000_000_000
passed = 0


def ok(what):
    global passed
    passed += 1
    print(f"ok {passed} - {what}", flush=True)


def balance(addr):
    return client.get_account(addr).get("balance", 0)


def wait_info(txid, timeout=30):
    """Polls gettransactioninfobyid every 50 ms (tronpy's wait polls every 1.6 s)."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            return client.get_transaction_info(txid)
        except TransactionNotFound:
            time.sleep(0.05)
    raise AssertionError(f"{txid} not included within {timeout}s")


def raw_broadcast(txn):
    return client.provider.make_request("wallet/broadcasttransaction", txn.to_json())


# The funded accounts are tronpy's own derivation of the mnemonic on m/44'/195'/0'/0/i.
for i, acct in enumerate(info["accounts"][:3]):
    derived = client.generate_address_from_mnemonic(info["mnemonic"], account_path=f"m/44'/195'/0'/0/{i}")
    assert derived["base58check_address"] == acct["address"], (derived, acct)
ok("funded accounts are tronpy's derivation of the mnemonic on TRON's path")

# 1. A TRX transfer, balances to the sun with the fee included.
before0, before1 = balance(a0["address"]), balance(a1["address"])
amount = 1_234_567
txn = client.trx.transfer(a0["address"], a1["address"], amount).build()
assert calculate_txid_from_raw_data(txn._raw_data) == txn.txid, "node's txID differs from tronpy's offline protobuf"
txn = txn.sign(k0)
ret = txn.broadcast()
assert ret["result"] is True, ret
transfer_info = wait_info(txn.txid)
fee = transfer_info.get("fee", 0)
assert balance(a0["address"]) == before0 - amount - fee, (before0, balance(a0["address"]), fee)
assert balance(a1["address"]) == before1 + amount
ok(f"TRX transfer {txn.txid}: balances exact to the sun (fee {fee})")

# 2. The transaction is on the full node at once, through walletsolidity only after the depth.
txinfo = client.get_transaction_info(txn.txid)
node = client.get_node_info()
head = int(node["block"].split(",ID:")[0].replace("Num:", ""))
if head - txinfo["blockNumber"] < depth:
    try:
        client.get_solid_transaction_info(txn.txid)
        raise AssertionError("walletsolidity answered before the solidify depth")
    except TransactionNotFound:
        pass
else:
    raise AssertionError(f"block {txinfo['blockNumber']} was already {head - txinfo['blockNumber']} deep; slow machine?")
end = time.time() + 30
while True:
    try:
        solid_info = client.get_solid_transaction_info(txn.txid)
        break
    except TransactionNotFound:
        assert time.time() < end, "never solidified"
        time.sleep(0.05)
solid_num = client.get_latest_solid_block_number()
assert solid_num >= txinfo["blockNumber"] and solid_info["id"] == txn.txid
ok("transaction visible through walletsolidity only after the solidify depth")

# 3. Refusals with java-tron's codes: duplicate, wrong signature, expired, TaPoS, validation.
payload = raw_broadcast(txn)
assert payload.get("code") == "DUP_TRANSACTION_ERROR", payload
ok("duplicate refused with DUP_TRANSACTION_ERROR")

bad = client.trx.transfer(a0["address"], a2["address"], 1).build()
bad._signature.append(k1.sign_msg_hash(bytes.fromhex(bad.txid)).hex())  # a1's key signs a0's transaction
payload = raw_broadcast(bad)
assert payload.get("code") == "SIGERROR", payload
try:
    bad.broadcast()
    raise AssertionError("wrong signature accepted")
except BadSignature:
    pass
ok("signature by another key refused with SIGERROR")

expired = client.trx.transfer(a0["address"], a2["address"], 2).expiration(-60_000).build()
expired._signature.append(k0.sign_msg_hash(bytes.fromhex(expired.txid)).hex())  # tronpy's sign() refuses
payload = raw_broadcast(expired)
assert payload.get("code") == "TRANSACTION_EXPIRATION_ERROR", payload
try:
    expired.broadcast()
    raise AssertionError("expired transaction accepted")
except TransactionError:
    pass
ok("expired transaction refused with TRANSACTION_EXPIRATION_ERROR")

tapos = client.trx.transfer(a0["address"], a2["address"], 3).build(offline=True, ref_block_id="00" * 32)
tapos = tapos.sign(k0)
payload = raw_broadcast(tapos)
assert payload.get("code") == "TAPOS_ERROR", payload
ok("unknown reference block refused with TAPOS_ERROR")

too_much = client.trx.transfer(a2["address"], a0["address"], 10**18).build()
too_much._signature.append(PrivateKey(bytes.fromhex(a2["private_key"])).sign_msg_hash(bytes.fromhex(too_much.txid)).hex())
try:
    too_much.broadcast()
    raise AssertionError("overdraft accepted")
except ValidationError:
    pass
ok("overdraft refused with CONTRACT_VALIDATE_ERROR")

# 4. A TRC-20 compiled by solc-js (contracts/artifacts, shanghai), deployed with deploy_contract.
artifact = json.load(open(f"{root}/contracts/artifacts/TronTestToken.json"))
assert artifact["evmVersion"] == "shanghai"
cntr = Contract(name="TronTestToken", bytecode=artifact["bytecode"][2:], abi=artifact["abi"])
supply = 10**12
cntr.bytecode = artifact["bytecode"][2:] + cntr.constructor.encode_parameter("Bridge Test", "BTT", supply)
before0 = balance(a0["address"])
deploy = client.trx.deploy_contract(a0["address"], cntr).fee_limit(FEE_LIMIT).build().sign(k0)
deploy.broadcast()
deployed = wait_info(deploy.txid)
assert deployed["receipt"]["result"] == "SUCCESS", deployed
want = "41" + keys.keccak256(bytes.fromhex(deploy.txid) + bytes.fromhex(keys.to_hex_address(a0["address"])))[12:].hex()
assert keys.to_hex_address(deployed["contract_address"]) == want, (deployed["contract_address"], want)
assert balance(a0["address"]) == before0 - deployed["fee"], "deploy fee not charged exactly"
token_addr = keys.to_base58check_address(deployed["contract_address"])
ok(f"TRC-20 deployed at {token_addr} = keccak(txID || owner), fee {deployed['fee']} sun")

# 5. transfer(...) built, signed, broadcast and waited for; balanceOf as a constant call.
token = client.get_contract(token_addr)
call = token.functions.transfer(a1["address"], 4242).with_owner(a0["address"]).fee_limit(FEE_LIMIT).build()
assert calculate_txid_from_raw_data(call._raw_data) == call.txid, "node's txID differs from tronpy's offline protobuf"
before0 = balance(a0["address"])
sent = call.sign(k0).broadcast()
assert sent.result(timeout=30, interval=0.2) is True
trc_info = client.get_transaction_info(call.txid)
assert trc_info["receipt"]["result"] == "SUCCESS", trc_info
assert balance(a0["address"]) == before0 - trc_info["fee"]
assert token.functions.balanceOf(a1["address"]) == 4242
assert token.functions.balanceOf(a0["address"]) == supply - 4242
ok("TRC-20 transfer waited for; balanceOf by constant call")

# 6. Its Transfer event decoded from the transaction info. With visible=true (tronpy's
# requests) java-tron rewrites log addresses to base58; without it they are 20-byte hex.
[log] = trc_info["log"]
assert log["address"] == token_addr, log
[event] = list(token.events.Transfer.process_receipt(trc_info))
assert event["args"]["from"] == a0["address"] and event["args"]["to"] == a1["address"], event
assert event["args"]["value"] == 4242
plain = client.provider.make_request("wallet/gettransactioninfobyid", {"value": call.txid})
assert plain["log"][0]["address"] == keys.to_hex_address(token_addr)[2:], plain["log"]
ok("Transfer event decoded from the transaction info (base58 log address; 20-byte hex without visible)")

# 7. A reverting call is included, charged, and reported as java-tron does.
revert = token.functions.transfer(a1["address"], supply * 2).with_owner(a0["address"]).fee_limit(FEE_LIMIT).build().sign(k0)
reverted = revert.broadcast()
try:
    reverted.result(timeout=30, interval=0.2)
    raise AssertionError("reverting transfer reported success")
except Exception as e:  # tronpy raises TvmError with the revert reason
    assert "TRC20: transfer amount exceeds balance" in str(e), e
rinfo = client.get_transaction_info(revert.txid)
assert rinfo["receipt"]["result"] == "REVERT" and rinfo["result"] == "FAILED", rinfo
ok("reverting call: receipt REVERT, reason decoded by tronpy")

# 8. Chain parameters, blocks by number and id, energy estimate.
params = {p["key"]: p.get("value") for p in client.get_chain_parameters()}
assert params["getEnergyFee"] == info["energy_price"], params
block = client.get_block(trc_info["blockNumber"])
assert client.get_block(block["blockID"])["blockID"] == block["blockID"]
assert int(block["blockID"][:16], 16) == trc_info["blockNumber"], "block id must start with its number"
assert call.txid in [t["txID"] for t in block["transactions"]]
estimate = client.get_estimated_energy(
    a0["address"], token_addr, "transfer(address,uint256)",
    "%064x%064x" % (int(keys.to_hex_address(a1["address"])[2:], 16), 1),
)
assert 0 < estimate <= trc_info["receipt"]["energy_usage_total"] * 2, (estimate, trc_info["receipt"])
ok(f"chain parameters, blocks by number and id, estimateenergy ({estimate})")

print(f"{passed} passed, 0 failed")
