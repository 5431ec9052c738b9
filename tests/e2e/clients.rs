//! Real Ethereum clients against `bttd devnet`: the viem script deploys an ERC-20 compiled by
//! solc and checks fees, calls, reverts, logs and subscriptions; the bad-input script sends
//! everything a careless or hostile client might and expects geth's errors.

use std::process::Command;

use eyre::{Result, bail};

use crate::support::{Devnet, js_dir, repo_root};

fn run_script(node: &Devnet, script: &str, env: &[(&str, &str)]) -> Result<()> {
    let dir = js_dir();
    if !dir.join("node_modules").exists() {
        bail!(
            "{}/node_modules is missing: run ./scripts/setup",
            dir.display()
        );
    }
    let output = Command::new("node")
        .arg(dir.join(script))
        .current_dir(repo_root())
        .env("RPC_URL", &node.rpc_url)
        .env("WS_URL", &node.ws_url)
        .env("CHAIN_ID", "1337")
        .envs(env.iter().copied())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    if !output.status.success() {
        bail!("{script} failed ({}):\n{stdout}\n{stderr}", output.status);
    }
    Ok(())
}

#[test]
fn viem_deploys_an_erc20_and_checks_fees_calls_reverts_logs_and_subscriptions() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Devnet::start(dir.path(), &["--block-time", "250ms"])?;
    run_script(
        &node,
        "e2e-erc20.mjs",
        &[("FEE_POOL", "0x0000000000000000000000000000000000001000")],
    )?;
    // The node is still healthy afterwards.
    node.block_number()?;
    Ok(())
}

#[test]
fn bad_input_gets_geth_errors_and_the_node_keeps_serving() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Devnet::start(dir.path(), &["--block-time", "250ms"])?;
    run_script(&node, "bad-input.mjs", &[("EXPECT_GETH_ERRORS", "1")])?;
    node.block_number()?;
    Ok(())
}

#[test]
fn get_proof_and_block_hashes_verify_with_independent_code() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Devnet::start(dir.path(), &["--block-time", "250ms"])?;
    run_script(&node, "proofs.mjs", &[])
}

#[test]
fn viem_polling_filters_deliver_each_event_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Devnet::start(dir.path(), &["--block-time", "250ms"])?;
    run_script(&node, "filters.mjs", &[])
}

#[test]
fn dev_accounts_sign_and_send_and_devnet_predeploys_work_from_ethers_and_viem() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Devnet::start(dir.path(), &["--block-time", "250ms"])?;
    run_script(&node, "dev-accounts.mjs", &[])
}

#[test]
fn debug_trace_transaction_call_trees_match_anvil() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Devnet::start(dir.path(), &["--block-time", "250ms"])?;
    run_script(&node, "trace-diff.mjs", &[])
}
