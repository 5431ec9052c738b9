//! Proof of stake on real processes (issue 12): `bttd testnet init --validators 4 --full-nodes
//! 1` with 10-block epochs. The full node's operator makes keys, is funded from a dev account,
//! registers with `bttd validator register`, restarts `bttd node --home`, and signs commit
//! certificates from the next epoch; block intervals at the epoch boundaries stay under two
//! block times; a delegator delegates, claims, undelegates, is refused an early withdrawal and
//! is paid exactly the amount after the unbonding epochs; a genesis validator that undelegates
//! its self-stake leaves the set at the next epoch and the chain goes on.

use std::process::Command;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use eyre::{Result, ensure, eyre};
use serde_json::{Value, json};

use crate::support::{Devnet, quantity, transfer_1559};
use crate::validators::{dev_signer, tail, testnet_init, wait_height};

const CHAIN_ID: u64 = 1337;
const EPOCH: u64 = 10;
const BLOCK_TIME: Duration = Duration::from_millis(300);
const BTT: u128 = 1_000_000_000_000_000_000;

/// Runs `bttd <args>`; its stdout as JSON (or its last line, or `null`), failing on a
/// non-zero exit.
pub(crate) fn bttd(args: &[&str]) -> Result<Value> {
    let out = Command::new(crate::support::bttd_bin())
        .args(args)
        .output()?;
    ensure!(
        out.status.success(),
        "bttd {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout)?;
    if let Ok(v) = serde_json::from_str(stdout.trim()) {
        return Ok(v);
    }
    Ok(stdout
        .lines()
        .last()
        .map(serde_json::from_str)
        .transpose()?
        .unwrap_or(Value::Null))
}

/// Like [`bttd`], expecting a failure; returns stderr.
pub(crate) fn bttd_fails(args: &[&str]) -> Result<String> {
    let out = Command::new(crate::support::bttd_bin())
        .args(args)
        .output()?;
    ensure!(!out.status.success(), "bttd {} succeeded", args.join(" "));
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

pub(crate) fn wei(v: &Value) -> Result<U256> {
    let s = v.as_str().ok_or_else(|| eyre!("not an amount: {v}"))?;
    Ok(s.parse()?)
}

/// Owners of the set deciding `block`, in index order.
pub(crate) fn set_owners(node: &Devnet, block: u64) -> Result<Vec<Address>> {
    let set = node.call("bttd_getValidatorSet", json!([format!("0x{block:x}")]))?;
    set["validators"]
        .as_array()
        .ok_or_else(|| eyre!("{set}"))?
        .iter()
        .map(|v| Ok(v["owner"].as_str().unwrap_or_default().parse()?))
        .collect()
}

fn epoch_of(block: u64) -> u64 {
    block.saturating_sub(1) / EPOCH
}

/// Waits until the head is in epoch `epoch` or later; returns the head.
fn wait_epoch(node: &Devnet, epoch: u64) -> Result<u64> {
    wait_height(node, epoch * EPOCH + 1, Duration::from_secs(90))
}

/// `delegationOf(delegator, validator)` through `bttd_getDelegations`: (stake, pending).
fn delegation(node: &Devnet, delegator: Address, validator: Address) -> Result<(U256, U256)> {
    let d = node.call("bttd_getDelegations", json!([delegator]))?;
    for entry in d["delegations"].as_array().ok_or_else(|| eyre!("{d}"))? {
        if entry["validator"]
            .as_str()
            .unwrap_or_default()
            .parse::<Address>()?
            == validator
        {
            return Ok((wei(&entry["stake"])?, wei(&entry["pendingRewards"])?));
        }
    }
    Ok((U256::ZERO, U256::ZERO))
}

/// The wall-clock intervals between the blocks around each epoch boundary node sees while
/// the head moves from `from` to `to` (polled every 10 ms).
fn boundary_intervals(node: &Devnet, to: u64) -> Result<Vec<(u64, Duration)>> {
    let mut seen = Vec::new();
    let mut last = node.block_number()?;
    let mut last_at = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    while last < to {
        ensure!(Instant::now() < deadline, "stuck at {last}");
        std::thread::sleep(Duration::from_millis(10));
        let n = node.block_number()?;
        if n == last + 1 {
            let now = Instant::now();
            // The first block of an epoch and the one after it.
            if n % EPOCH == 1 || n % EPOCH == 2 {
                seen.push((n, now - last_at));
            }
            last_at = now;
        } else if n > last {
            last_at = Instant::now();
        }
        last = n;
    }
    Ok(seen)
}

#[test]
fn a_full_node_registers_and_signs_delegators_are_paid_and_a_leaving_validator_goes() -> Result<()>
{
    let dir = tempfile::tempdir()?;
    let rpc_port = crate::support::free_port_range(5);
    let p2p_port = crate::support::free_port_range(5);
    testnet_init(
        dir.path(),
        rpc_port,
        p2p_port,
        &["--full-nodes", "1", "--epoch-length", &EPOCH.to_string()],
    )?;
    let home = |name: &str| dir.path().join(name);
    let mut nodes: Vec<Devnet> = ["node0", "node1", "node2", "node3", "full0"]
        .iter()
        .enumerate()
        .map(|(i, name)| Devnet::start_home(&home(name), rpc_port + i as u16))
        .collect::<Result<_>>()?;
    let url = nodes[0].rpc_url.clone();
    wait_height(&nodes[0], 2, Duration::from_secs(60))?;

    // The full node's operator: new keys, funded from a dev account, registered.
    let full = home("full0");
    let password = dir.path().join("full0-password");
    std::fs::write(&password, "operator password\n")?;
    let pw = password.display().to_string();
    let full_home = full.display().to_string();
    let keys = bttd(&[
        "keys",
        "new",
        "--home",
        &full_home,
        "--password-file",
        &pw,
        "--light-kdf",
        "--json",
    ])?;
    let operator: Address = keys["address"]
        .as_str()
        .ok_or_else(|| eyre!("{keys}"))?
        .parse()?;
    let funder = dev_signer(0)?;
    let nonce = nodes[0].nonce(funder.address(), "pending")?;
    let raw = transfer_1559(
        &funder,
        CHAIN_ID,
        nonce,
        operator,
        U256::from(1_000 * BTT),
        100_000_000_000,
        1_000_000_000,
    );
    let hash = nodes[0].send_raw(&raw)?;
    nodes[0]
        .wait_receipt(hash, Duration::from_secs(60))?
        .ok_or_else(|| eyre!("funding not included"))?;
    let registered = bttd(&[
        "validator",
        "register",
        "--home",
        &full_home,
        "--password-file",
        &pw,
        "--stake",
        "100btt",
        "--commission-bps",
        "500",
        "--rpc-url",
        &url,
    ])?;
    ensure!(registered["status"] == json!(true), "{registered}");
    ensure!(registered["configWritten"] == json!(true), "{registered}");
    let at = block_of(&registered)?;
    let info = bttd(&[
        "validator",
        "info",
        &operator.to_string(),
        "--json",
        "--rpc-url",
        &url,
    ])?;
    ensure!(info["status"] == json!("candidate"), "{info}");

    // Restart the full node as a validator: its config now has a [validator] section.
    nodes[4].terminate()?;
    nodes[4] = Devnet::start_home(&full, rpc_port + 4)?;

    // From the next epoch the set names it, and it signs.
    let next = epoch_of(at) + 1;
    wait_epoch(&nodes[0], next)?;
    let first = next * EPOCH + 1;
    let owners = set_owners(&nodes[0], first)?;
    let index = owners
        .iter()
        .position(|o| *o == operator)
        .ok_or_else(|| eyre!("{operator} not in the set of block {first}: {owners:?}"))?;
    let info = bttd(&[
        "validator",
        "info",
        &operator.to_string(),
        "--json",
        "--rpc-url",
        &url,
    ])?;
    ensure!(info["status"] == json!("active"), "{info}");
    let signed = wait_for(Duration::from_secs(60), || {
        let head = nodes[0].block_number()?;
        for b in first..=head {
            let cert = nodes[0].call("bttd_getCommitCertificate", json!([format!("0x{b:x}")]))?;
            if cert["signerIndices"]
                .as_array()
                .is_some_and(|s| s.contains(&json!(index)))
            {
                return Ok(Some(b));
            }
        }
        Ok(None)
    })
    .map_err(|e| eyre!("{e}\n{}", tail(&nodes[4].log_text())))?;
    eprintln!("the registered validator (index {index}) signed block {signed}");

    // Block intervals at the next two epoch boundaries.
    let head = nodes[0].block_number()?;
    let to = (epoch_of(head) + 2) * EPOCH + 2;
    let intervals = boundary_intervals(&nodes[0], to)?;
    eprintln!("intervals at epoch boundaries: {intervals:?}");
    for (block, interval) in &intervals {
        ensure!(
            *interval <= 2 * BLOCK_TIME,
            "block {block} came {interval:?} after its parent (block time {BLOCK_TIME:?})"
        );
    }

    // A delegator delegates to the new validator, and claims.
    let delegator = dev_signer(1)?.address();
    let d = bttd(&[
        "validator",
        "delegate",
        "--validator",
        &operator.to_string(),
        "--amount",
        "20btt",
        "--dev-account",
        "1",
        "--rpc-url",
        &url,
    ])?;
    ensure!(d["status"] == json!(true), "{d}");
    let (stake, _) = delegation(&nodes[0], delegator, operator)?;
    ensure!(stake == U256::from(20 * BTT), "stake {stake}");
    let head = nodes[0].block_number()?;
    wait_height(&nodes[0], head + 5, Duration::from_secs(60))?;
    let before = nodes[0].balance(delegator)?;
    let claim = bttd(&[
        "validator",
        "claim",
        "--validator",
        &operator.to_string(),
        "--dev-account",
        "1",
        "--rpc-url",
        &url,
    ])?;
    ensure!(claim["status"] == json!(true), "{claim}");
    let claim_block = block_of(&claim)?;
    let claimed = claimed_amount(&nodes[0], claim_block, delegator)?;
    let after = nodes[0].balance(delegator)?;
    let fee = fee_paid(&nodes[0], &claim)?;
    ensure!(claimed > U256::ZERO, "nothing claimed");
    let expected = delegator_reward(
        &nodes[0],
        operator,
        U256::from(20 * BTT),
        U256::from(120 * BTT),
        500,
        block_of(&d)? + 1,
        claim_block,
    )?;
    ensure!(
        claimed == expected,
        "claimed {claimed} wei, the formula of docs/staking.md gives {expected}"
    );
    ensure!(
        after + fee == before + claimed,
        "balance {before} -> {after} with fee {fee} does not move by the claimed {claimed}"
    );
    eprintln!("claimed {claimed} wei after {} blocks", claim_block - head);

    // Undelegate: nothing to withdraw before the unbonding epochs, exactly the amount after.
    let u = bttd(&[
        "validator",
        "undelegate",
        "--validator",
        &operator.to_string(),
        "--amount",
        "20btt",
        "--dev-account",
        "1",
        "--rpc-url",
        &url,
    ])?;
    ensure!(u["status"] == json!(true), "{u}");
    let unbonding = nodes[0].call("bttd_getDelegations", json!([delegator]))?;
    let completes = quantity(&unbonding["unbonding"][0]["completesAtEpoch"])?;
    let refused = bttd_fails(&[
        "validator",
        "withdraw",
        "--dev-account",
        "1",
        "--rpc-url",
        &url,
    ])?;
    ensure!(refused.contains("nothing unbonded"), "{refused}");

    // Meanwhile a genesis validator undelegates its whole self-stake: it leaves the set.
    let leaver_home = home("node3");
    let leaver: Address = bttd(&[
        "keys",
        "show",
        "--home",
        &leaver_home.display().to_string(),
        "--json",
    ])?["address"]
        .as_str()
        .ok_or_else(|| eyre!("no address"))?
        .parse()?;
    let leave = bttd(&[
        "validator",
        "undelegate",
        "--validator",
        &leaver.to_string(),
        "--amount",
        "100btt",
        "--home",
        &leaver_home.display().to_string(),
        "--password-file",
        &leaver_home.join("password.txt").display().to_string(),
        "--rpc-url",
        &url,
    ])?;
    ensure!(leave["status"] == json!(true), "{leave}");
    let left_at = block_of(&leave)?;
    let gone = epoch_of(left_at) + 1;
    wait_epoch(&nodes[0], gone)?;
    let owners = set_owners(&nodes[0], gone * EPOCH + 1)?;
    ensure!(!owners.contains(&leaver), "{leaver} still in {owners:?}");
    let head = nodes[0].block_number()?;
    wait_height(&nodes[0], head + EPOCH, Duration::from_secs(60))?;

    // Withdraw once the unbonding has completed.
    wait_epoch(&nodes[0], completes)?;
    let before = nodes[0].balance(delegator)?;
    let w = bttd(&[
        "validator",
        "withdraw",
        "--dev-account",
        "1",
        "--rpc-url",
        &url,
    ])?;
    ensure!(w["status"] == json!(true), "{w}");
    let after = nodes[0].balance(delegator)?;
    let fee = fee_paid(&nodes[0], &w)?;
    ensure!(
        after + fee == before + U256::from(20 * BTT),
        "withdraw paid {} wei, not 20 BTT",
        after + fee - before
    );

    // Every node agrees, and nobody equivocated.
    let lowest = nodes
        .iter()
        .map(|n| n.block_number())
        .collect::<Result<Vec<_>>>()?;
    let lowest = *lowest.iter().min().unwrap_or(&0);
    let reference = nodes[0].call(
        "eth_getBlockByNumber",
        json!([format!("0x{lowest:x}"), false]),
    )?;
    for n in &nodes[1..] {
        let b = n.call(
            "eth_getBlockByNumber",
            json!([format!("0x{lowest:x}"), false]),
        )?;
        ensure!(b["hash"] == reference["hash"], "fork at {lowest}");
        ensure!(
            n.call("bttd_getEvidence", json!([]))? == json!([]),
            "evidence"
        );
    }
    for n in &mut nodes {
        n.kill();
    }
    Ok(())
}

/// Polls `check` until it returns a value.
fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        ensure!(Instant::now() < deadline, "timed out after {timeout:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Gas used times the effective gas price of the transaction a CLI receipt names.
fn fee_paid(node: &Devnet, receipt: &Value) -> Result<U256> {
    let full = node.call(
        "eth_getTransactionReceipt",
        json!([receipt["transactionHash"]]),
    )?;
    let gas = quantity(&full["gasUsed"])?;
    let price = quantity(&full["effectiveGasPrice"])?;
    Ok(U256::from(gas) * U256::from(price))
}

/// The amount of the `RewardsClaimed` event `delegator` emitted in block `number`.
fn claimed_amount(node: &Devnet, number: u64, delegator: Address) -> Result<U256> {
    use alloy_sol_types::SolEvent;
    let topic = bttd_contracts::StakeManager::RewardsClaimed::SIGNATURE_HASH;
    let logs = node.call(
        "eth_getLogs",
        json!([{
            "fromBlock": format!("0x{number:x}"),
            "toBlock": format!("0x{number:x}"),
            "address": bttd_contracts::STAKE_MANAGER_ADDRESS,
            "topics": [topic, alloy_primitives::B256::left_padding_from(delegator.as_slice())],
        }]),
    )?;
    let data = logs[0]["data"]
        .as_str()
        .ok_or_else(|| eyre!("no RewardsClaimed in block {number}: {logs}"))?;
    Ok(U256::from_str_radix(data.trim_start_matches("0x"), 16)?)
}

/// A StakeManager view at block `number`, decoded.
fn view<C: alloy_sol_types::SolCall>(node: &Devnet, number: u64, call: C) -> Result<C::Return> {
    let out = node.call(
        "eth_call",
        json!([
            { "to": bttd_contracts::STAKE_MANAGER_ADDRESS, "input": alloy_primitives::Bytes::from(call.abi_encode()) },
            format!("0x{number:x}")
        ]),
    )?;
    let bytes: alloy_primitives::Bytes = serde_json::from_value(out)?;
    Ok(C::abi_decode_returns(&bytes)?)
}

/// What a delegation of `stake` to `validator` (total stake `total`, commission
/// `commission_bps`, unchanged meanwhile) earns from the rewards calls of blocks `from..=to`,
/// by docs/staking.md's formula, from chain data alone: each block's pool is StakeManager's
/// balance above what it owes after the parent; the signers are the bitmap of the parent's
/// certificate in the block's own `extraData`; powers are those of the parent's set.
fn delegator_reward(
    node: &Devnet,
    validator: Address,
    stake: U256,
    total: U256,
    commission_bps: u64,
    from: u64,
    to: u64,
) -> Result<U256> {
    use bttd_contracts::StakeManager as S;
    let scale = U256::from(10u64).pow(U256::from(30));
    let mut per_stake = U256::ZERO;
    for b in from..=to {
        let parent = b - 1;
        let balance = U256::from_str_radix(
            node.call(
                "eth_getBalance",
                json!([
                    bttd_contracts::STAKE_MANAGER_ADDRESS,
                    format!("0x{parent:x}")
                ]),
            )?
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("0x"),
            16,
        )?;
        let owed = view(node, parent, S::totalBondedCall {})?
            + view(node, parent, S::totalUnbondingCall {})?
            + view(node, parent, S::totalRewardsOwedCall {})?;
        let pool = balance - owed;
        let set = node.call("bttd_getValidatorSet", json!([format!("0x{parent:x}")]))?;
        let members = set["validators"].as_array().ok_or_else(|| eyre!("{set}"))?;
        let block = node.call("eth_getBlockByNumber", json!([format!("0x{b:x}"), false]))?;
        let extra = alloy_primitives::hex::decode(
            block["extraData"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches("0x"),
        )?;
        let bitmap = &extra[100..100 + members.len().div_ceil(8)];
        let mut signed_power = U256::ZERO;
        let mut ours = U256::ZERO;
        for (i, m) in members.iter().enumerate() {
            if bitmap[i / 8] & (1 << (i % 8)) != 0 {
                let power = U256::from(quantity(&m["power"])?);
                signed_power += power;
                if m["owner"].as_str().unwrap_or_default().parse::<Address>()? == validator {
                    ours = power;
                }
            }
        }
        if ours.is_zero() {
            continue;
        }
        let rest = pool - pool * U256::from(1_000) / U256::from(10_000);
        let share = rest * ours / signed_power;
        let commission = share * U256::from(commission_bps) / U256::from(10_000);
        per_stake += (share - commission) * scale / total;
    }
    Ok(stake * per_stake / scale)
}

/// The block number of a CLI receipt.
fn block_of(receipt: &Value) -> Result<u64> {
    receipt["blockNumber"]
        .as_u64()
        .ok_or_else(|| eyre!("no block number in {receipt}"))
}
