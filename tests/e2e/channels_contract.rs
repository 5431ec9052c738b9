//! Contract tests of `BandwidthChannels` on the npm-pinned anvil (started by the script, not
//! a bttd node): `tests/js/channels-contract.mjs` deploys the committed artifact and checks
//! every item of issue 5's contract-test list; `tests/js/channels-gas.mjs` measures the gas
//! table of `docs/payment-channels.md` and guards its goals.

use std::process::Command;

use eyre::{Result, bail};

use crate::support::{js_dir, repo_root};

/// Runs a script of tests/js and returns its stdout; fails if it exits non-zero.
fn run(script: &str) -> Result<String> {
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
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    if !output.status.success() {
        bail!("{script} failed ({}):\n{stdout}\n{stderr}", output.status);
    }
    Ok(stdout)
}

/// Every check must have run and passed (a check missing from the output fails too).
fn assert_passed(stdout: &str, checks: &[&str]) -> Result<()> {
    for check in checks {
        if !stdout
            .lines()
            .any(|l| l.starts_with("PASS ") && l.contains(check))
        {
            bail!("check {check:?} did not pass:\n{stdout}");
        }
    }
    if stdout.lines().any(|l| l.starts_with("FAIL")) {
        bail!("a check failed:\n{stdout}");
    }
    Ok(())
}

#[test]
fn bandwidth_channels_contract_tests_on_anvil() -> Result<()> {
    let stdout = run("channels-contract.mjs")?;
    assert_passed(
        &stdout,
        &[
            "deployment: bounds, EIP-712 domain",
            "open: ids are payer<<96|nonce and never repeat",
            "full lifecycle: open, topUp, settle, requestClose, settle in the window, withdraw",
            "full lifecycle: cooperativeClose",
            "the same voucher settled twice pays once",
            "a voucher for channel A is refused on channel B",
            "signatures for another chain id or another contract are refused",
            "high-s, bad v, bad length and unrecoverable signatures are refused",
            "a claim above the deposit is refused",
            "settling at or after closesAt is refused",
            "the payer cannot withdraw before the window ends",
            "topUp after requestClose is refused",
            "a payee contract that re-enters on receipt cannot take more",
            "a batch with bad items pays exactly the good ones",
            "channels-contract.mjs: 14/14 checks passed",
        ],
    )
}

#[test]
fn bandwidth_channels_gas_figures_meet_their_bounds() -> Result<()> {
    let stdout = run("channels-gas.mjs")?;
    assert_passed(
        &stdout,
        &[
            "measure every operation",
            "goal: open <= 75,000 gas",
            "goal: settleBatch <= 15,000 gas per voucher at 100 vouchers to one payee",
        ],
    )
}
