//! Simulator scenarios: thousands of seeded adversarial runs per scenario,
//! each checked for agreement, validity, certificate validity, honest
//! non-equivocation and liveness after faults end.
//!
//! `BTTD_SIM_SEEDS` overrides the number of seeds per scenario; the soak
//! (`cargo test --release -p bttd-sim -- --ignored soak`) runs 100,000
//! per scenario by default.

use bttd_sim::{self as sim, SimConfig, SimReport, Violation, scenarios};
use std::time::Instant;

fn seeds(default: u64) -> u64 {
    std::env::var("BTTD_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[derive(Default, Debug)]
struct Totals {
    runs: u64,
    events: u64,
    evidence: u64,
    rejected: u64,
    max_height: u64,
    /// Runs in which some identity was tombstoned.
    slashed_runs: u64,
}

/// Runs `count` seeds on `threads` threads; panics on the first violation
/// with the seed that reproduces it.
fn run_many(
    name: &str,
    build: fn(u64) -> SimConfig,
    start: u64,
    count: u64,
    threads: u64,
) -> Totals {
    let t0 = Instant::now();
    let totals = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut tot = Totals::default();
                    let mut seed = start + t;
                    while seed < start + count {
                        let cfg = build(seed);
                        let r = sim::run(&cfg);
                        assert!(
                            r.violations.is_empty(),
                            "{name} seed {seed}: {:?}\n{:#?}",
                            r.violations,
                            r.states
                        );
                        check_slashing(name, seed, &cfg, &r);
                        tot.slashed_runs += u64::from(!r.slashed.is_empty());
                        tot.runs += 1;
                        tot.events += r.events;
                        tot.evidence += r.evidence;
                        tot.rejected += r.rejected;
                        tot.max_height = tot.max_height.max(r.decided);
                        seed += threads;
                    }
                    tot
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .fold(Totals::default(), |a, b| Totals {
                runs: a.runs + b.runs,
                events: a.events + b.events,
                evidence: a.evidence + b.evidence,
                rejected: a.rejected + b.rejected,
                max_height: a.max_height.max(b.max_height),
                slashed_runs: a.slashed_runs + b.slashed_runs,
            })
    });
    eprintln!("{name}: {totals:?} in {:.2?}", t0.elapsed());
    totals
}

#[test]
fn partition_and_heal() {
    run_many(
        "partition_heal",
        scenarios::partition_heal,
        0,
        seeds(1000),
        1,
    );
}

#[test]
fn crash_and_restart() {
    run_many("crash_restart", scenarios::crash_restart, 0, seeds(1000), 1);
}

#[test]
fn loss_and_reordering() {
    run_many("loss_reorder", scenarios::loss_reorder, 0, seeds(1000), 1);
}

#[test]
fn byzantine_equivocators_under_one_third() {
    let t = run_many("equivocators", scenarios::equivocators, 0, seeds(1000), 1);
    assert!(
        t.evidence > 0,
        "twins must be caught equivocating in some runs"
    );
    assert!(
        t.rejected > 0,
        "bad signatures must be refused in some runs"
    );
}

/// The hostile-peers issue, faults 1-3 and 6: a validator under 1/3 floods forged
/// next-height votes (1,000 with each of its precommits), swaps relayed payloads and sends
/// absurd heights and rounds, next to equivocators. Honest nodes agree and progress, blame
/// no honest peer, accuse no honest validator and keep their buffers under the bound.
#[test]
fn hostile_peers_under_one_third() {
    let t = run_many(
        "hostile_peers",
        |seed| scenarios::hostile_peers(seed, 1_000),
        0,
        seeds(1000),
        1,
    );
    assert!(t.rejected > 0, "the forgeries must be refused");
}

/// Only byzantine identities are slashed, and a slashed identity is out of the set of every
/// epoch fixed after the block that carried its evidence.
fn check_slashing(name: &str, seed: u64, cfg: &SimConfig, r: &SimReport) {
    let top = r.decided.max(1);
    let epoch_of = |h: u64| h.saturating_sub(1) / cfg.epoch_length;
    for &(id, block) in &r.slashed {
        assert!(
            cfg.nodes
                .iter()
                .any(|n| n.identity == id && n.behaviour.is_byzantine()),
            "{name} seed {seed}: honest identity {id} slashed at block {block}"
        );
        // Block `e·len − 1` fixes the set of epoch `e`.
        let out_from = (block + 1).div_ceil(cfg.epoch_length);
        if epoch_of(top) >= out_from {
            assert!(
                !r.final_set.contains(&id),
                "{name} seed {seed}: identity {id}, slashed at block {block}, still in the set at height {top}"
            );
        }
    }
}

/// Issue 13: double-signers under 1/3 of the stake are slashed (an honest proposer includes
/// the evidence, voters check it) and leave the set from the next epoch on; the others keep
/// deciding through the change (the liveness bound spans four epochs).
#[test]
fn equivocators_are_slashed_and_leave_the_set() {
    let t = run_many(
        "slashed_equivocators",
        scenarios::slashed_equivocators,
        0,
        seeds(1000),
        1,
    );
    assert!(t.evidence > 0 && t.slashed_runs > 0, "{t:?}");
}

/// The same with 10,000 forged votes per precommit, at 100 seeds.
#[test]
fn hostile_peers_ten_thousand_forgeries() {
    run_many(
        "hostile_peers_10k",
        |seed| scenarios::hostile_peers(seed, 10_000),
        0,
        seeds(1000).min(100),
        1,
    );
}

#[test]
fn real_bls_scenario() {
    let t = run_many("real_bls", scenarios::real_bls, 0, seeds(1000).min(4), 1);
    assert!(t.max_height >= 5);
}

#[test]
fn split_brain_over_one_third_is_reported() {
    for seed in 0..seeds(1000).min(50) {
        let r: SimReport = sim::run(&scenarios::split_brain(seed));
        assert!(
            r.violations
                .iter()
                .any(|v| matches!(v, Violation::Agreement { .. })),
            "seed {seed}: the checker must see the fork, got {:?}",
            r.violations
        );
    }
}

#[test]
fn same_seed_same_trace() {
    for build in [
        scenarios::partition_heal,
        scenarios::crash_restart,
        scenarios::equivocators,
    ] {
        let a = sim::run(&build(7));
        let b = sim::run(&build(7));
        let c = sim::run(&build(8));
        assert_eq!(a.trace_hash, b.trace_hash);
        assert_eq!(a.heights, b.heights);
        assert_ne!(a.trace_hash, c.trace_hash);
    }
}

#[test]
#[ignore = "soak: BTTD_SIM_SEEDS=100000 cargo test --release -p bttd-sim -- --ignored soak"]
fn soak() {
    let n = seeds(100_000);
    let threads = std::thread::available_parallelism().map_or(2, |p| p.get() as u64);
    let t0 = Instant::now();
    let mut ran = Vec::new();
    for (name, build) in [
        (
            "partition_heal",
            scenarios::partition_heal as fn(u64) -> SimConfig,
        ),
        ("crash_restart", scenarios::crash_restart),
        ("loss_reorder", scenarios::loss_reorder),
        ("equivocators", scenarios::equivocators),
        ("hostile_peers", |seed| {
            scenarios::hostile_peers(seed, 1_000)
        }),
        ("slashed_equivocators", scenarios::slashed_equivocators),
    ] {
        if std::env::var("BTTD_SIM_ONLY").is_ok_and(|only| !only.split(',').any(|o| o == name)) {
            continue;
        }
        // Start above the CI seeds so the soak explores new schedules.
        run_many(name, build, 1_000_000, n, threads);
        ran.push(name);
    }
    eprintln!(
        "soak: {n} seeds x {} scenarios ({}), no violation, {:.1?}",
        ran.len(),
        ran.join(", "),
        t0.elapsed()
    );
}

/// Seeds the soak found failing, kept as regression tests after their fix.
const SOAK_FINDINGS: &[(&str, u64)] = &[
    // One honest node left round 0 on a quorum of precommits that held the forger's, which
    // no other node received; the others stayed one vote short.
    ("hostile_peers", 1_060_234),
];

#[test]
fn soak_findings_stay_fixed() {
    for &(name, seed) in SOAK_FINDINGS {
        let r = sim::run(&scenario(name, seed));
        assert!(
            r.violations.is_empty(),
            "{name} seed {seed}: {:?}",
            r.violations
        );
    }
}

fn scenario(name: &str, seed: u64) -> SimConfig {
    match name {
        "partition_heal" => scenarios::partition_heal(seed),
        "crash_restart" => scenarios::crash_restart(seed),
        "loss_reorder" => scenarios::loss_reorder(seed),
        "equivocators" => scenarios::equivocators(seed),
        "split_brain" => scenarios::split_brain(seed),
        "hostile_peers" => scenarios::hostile_peers(seed, 1_000),
        "real_bls" => scenarios::real_bls(seed),
        "slashed_equivocators" => scenarios::slashed_equivocators(seed),
        other => panic!("unknown scenario {other}"),
    }
}

/// Replays one seed verbosely: `BTTD_SIM_DEBUG=partition_heal:177 cargo test
/// --release -p bttd-sim --test sim -- --ignored debug_seed --nocapture`.
#[test]
#[ignore = "diagnostic"]
fn debug_seed() {
    let spec = std::env::var("BTTD_SIM_DEBUG").expect("BTTD_SIM_DEBUG=scenario:seed");
    let (name, seed) = spec.split_once(':').expect("scenario:seed");
    let seed: u64 = seed.parse().expect("seed");
    let mut cfg = scenario(name, seed);
    cfg.verbose = true;
    eprintln!("{cfg:#?}");
    let r = sim::run(&cfg);
    eprintln!("{:#?}\n{:#?}", r.violations, r.states);
}
