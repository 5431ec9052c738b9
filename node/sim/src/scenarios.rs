//! Seeded scenario builders: each seed gives a different shape (set sizes,
//! stakes, epoch changes, fault times, link quality) inside the scenario's
//! family, and the run itself is seeded by the same number.

use crate::config::{Behaviour, Fault, Liveness, NetConfig, NodeSpec, Scheme, SimConfig};
use bttd_consensus::TimeoutConfig;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Timeouts scaled to simulated links of a few tens of milliseconds.
pub fn sim_timeouts() -> TimeoutConfig {
    TimeoutConfig {
        propose: ms(200),
        propose_delta: ms(100),
        prevote: ms(100),
        prevote_delta: ms(50),
        precommit: ms(100),
        precommit_delta: ms(50),
    }
}

fn shape_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_5ca1_ab1e_0000)
}

/// `n` validators plus one spare identity, a different set in every epoch for six epochs
/// (the last then stays): stake shifts (epochs 1 and 4: new powers), a join (epoch 2: the
/// spare joins, `n + 1` members), a leave (epoch 3: a random original leaves) and a rejoin
/// (epoch 5: it returns with new power, the spare stays). Members outside a set follow as
/// observers until a set names them.
fn changing_epochs(rng: &mut ChaCha8Rng, n: usize) -> Vec<Vec<(usize, u64)>> {
    let powers = |rng: &mut ChaCha8Rng, ids: &[usize]| {
        ids.iter()
            .map(|&i| (i, rng.random_range(1..=10)))
            .collect::<Vec<_>>()
    };
    let ids: Vec<usize> = (0..n).collect();
    let with_spare: Vec<usize> = (0..=n).collect();
    let leaver = rng.random_range(0..n);
    let without_leaver: Vec<usize> = with_spare
        .iter()
        .copied()
        .filter(|&i| i != leaver)
        .collect();
    vec![
        powers(rng, &ids),
        powers(rng, &ids),
        powers(rng, &with_spare),
        powers(rng, &without_leaver),
        powers(rng, &without_leaver),
        powers(rng, &with_spare),
    ]
}

fn honest_nodes(identities: usize) -> Vec<NodeSpec> {
    (0..identities)
        .map(|identity| NodeSpec {
            identity,
            behaviour: Behaviour::Honest,
        })
        .collect()
}

fn base(
    seed: u64,
    identities: usize,
    epochs: Vec<Vec<(usize, u64)>>,
    epoch_length: u64,
    nodes: Vec<NodeSpec>,
    net: NetConfig,
) -> SimConfig {
    SimConfig {
        seed,
        scheme: Scheme::Test,
        identities,
        epochs,
        epoch_length,
        nodes,
        net,
        timeouts: sim_timeouts(),
        rebroadcast: ms(300),
        faults: Vec::new(),
        liveness: None,
        stop_at: ms(600_000),
        verbose: false,
        tombstone_equivocators: false,
    }
}

fn live(from: Duration, heights: u64, within: Duration) -> Option<Liveness> {
    Some(Liveness {
        from,
        heights,
        within,
    })
}

fn net(rng: &mut ChaCha8Rng, max_jitter: u64, max_loss: f64) -> NetConfig {
    NetConfig {
        latency: ms(rng.random_range(1..=10)),
        jitter: ms(rng.random_range(0..=max_jitter)),
        loss: rng.random_range(0.0..=max_loss),
        duplicate: rng.random_range(0.0..=0.05),
    }
}

/// One or two partitions into random groups, then a heal; epochs change.
pub fn partition_heal(seed: u64) -> SimConfig {
    let mut rng = shape_rng(seed);
    let n = rng.random_range(4..=7);
    let epochs = changing_epochs(&mut rng, n);
    let net = net(&mut rng, 30, 0.02);
    let mut cfg = base(
        seed,
        n + 1,
        epochs,
        rng.random_range(2..=4),
        honest_nodes(n + 1),
        net,
    );
    let mut t = rng.random_range(0..=1500);
    for _ in 0..rng.random_range(1..=2) {
        let groups = (0..=n).map(|_| rng.random_range(0..=1u8)).collect();
        let heal = t + rng.random_range(300..=4000);
        cfg.faults.push(Fault::Partition {
            at: ms(t),
            heal: ms(heal),
            groups,
        });
        t = heal + rng.random_range(0..=1000);
    }
    cfg.liveness = live(ms(t), 3, ms(60_000));
    cfg
}

/// Up to three crashes of random nodes, each restarting from its persisted
/// chain and slashing record; epochs change.
pub fn crash_restart(seed: u64) -> SimConfig {
    let mut rng = shape_rng(seed);
    let n = rng.random_range(4..=7);
    let epochs = changing_epochs(&mut rng, n);
    let net = net(&mut rng, 30, 0.02);
    let mut cfg = base(
        seed,
        n + 1,
        epochs,
        rng.random_range(2..=4),
        honest_nodes(n + 1),
        net,
    );
    let mut last = 0;
    for _ in 0..rng.random_range(1..=3) {
        let node = rng.random_range(0..=n);
        let at = rng.random_range(0..=3000);
        let restart = at + rng.random_range(50..=3000);
        last = last.max(restart);
        cfg.faults.push(Fault::Crash {
            node,
            at: ms(at),
            restart: Some(ms(restart)),
        });
    }
    cfg.liveness = live(ms(last), 3, ms(60_000));
    cfg
}

/// Heavy loss, duplication and reordering (jitter far above latency).
pub fn loss_reorder(seed: u64) -> SimConfig {
    let mut rng = shape_rng(seed);
    let n = rng.random_range(4..=7);
    let epochs = changing_epochs(&mut rng, n);
    let net = NetConfig {
        latency: ms(rng.random_range(1..=10)),
        jitter: ms(rng.random_range(20..=150)),
        loss: rng.random_range(0.05..=0.25),
        duplicate: rng.random_range(0.0..=0.10),
    };
    let mut cfg = base(
        seed,
        n + 1,
        epochs,
        rng.random_range(2..=4),
        honest_nodes(n + 1),
        net,
    );
    cfg.liveness = live(Duration::ZERO, 5, ms(120_000));
    cfg
}

/// Byzantine validators holding just under 1/3 of the stake: the first runs
/// as equivocating twins, the second (if any) as twins, a conflicting
/// proposer, a bad-signature sender or a silent node. Optionally a partition
/// separates the twins for a while so they vote on different things.
pub fn equivocators(seed: u64) -> SimConfig {
    let mut rng = shape_rng(seed);
    let honest = rng.random_range(3..=5);
    let mut members: Vec<(usize, u64)> =
        (0..honest).map(|i| (i, rng.random_range(1..=10))).collect();
    let h: u64 = members.iter().map(|m| m.1).sum();
    let b = (h - 1) / 2; // largest b with 3b < h + b
    let byz = if b >= 2 { rng.random_range(1..=2) } else { 1 };
    let first = if byz == 2 { rng.random_range(1..b) } else { b };
    let byz_powers: Vec<u64> = if byz == 2 {
        vec![first, b - first]
    } else {
        vec![b]
    };
    let mut nodes = honest_nodes(honest);
    for (k, &p) in byz_powers.iter().enumerate() {
        let id = honest + k;
        members.push((id, p));
        let behaviour = if k == 0 {
            Behaviour::Twin
        } else {
            *[
                Behaviour::Twin,
                Behaviour::ConflictingProposer,
                Behaviour::BadSignatures,
                Behaviour::Silent,
            ]
            .choose(&mut rng)
            .expect("non-empty")
        };
        nodes.push(NodeSpec {
            identity: id,
            behaviour,
        });
        if behaviour == Behaviour::Twin {
            nodes.push(NodeSpec {
                identity: id,
                behaviour,
            });
        }
    }
    members.shuffle(&mut rng);
    let identities = honest + byz;
    let net = net(&mut rng, 40, 0.05);
    let node_count = nodes.len();
    let mut cfg = base(seed, identities, vec![members], 1_000, nodes, net);
    let mut from = Duration::ZERO;
    if rng.random_bool(0.5) {
        let at = rng.random_range(0..=1000);
        let heal = at + rng.random_range(300..=3000);
        let groups = (0..node_count).map(|_| rng.random_range(0..=1u8)).collect();
        cfg.faults.push(Fault::Partition {
            at: ms(at),
            heal: ms(heal),
            groups,
        });
        from = ms(heal);
    }
    cfg.liveness = live(from, 4, ms(60_000));
    cfg
}

/// Issue 13: [`equivocators`] with StakeManager's tombstoning modelled and epochs of 3 to 6
/// blocks: the evidence an honest proposer includes takes the offender out of the sets from the
/// next epoch on, while the others keep deciding through several epochs.
pub fn slashed_equivocators(seed: u64) -> SimConfig {
    let mut cfg = equivocators(seed);
    let mut rng = shape_rng(seed ^ 0x5_1a5e);
    cfg.epoch_length = rng.random_range(3..=6);
    cfg.tombstone_equivocators = true;
    let from = cfg.liveness.as_ref().map_or(Duration::ZERO, |l| l.from);
    cfg.liveness = live(from, 4 * cfg.epoch_length, ms(120_000));
    cfg
}

/// A validator under 1/3 of the stake that floods forged next-height votes (`forged` with
/// each of its precommits), swaps the payloads of proposals it relays and sends absurd
/// heights and rounds, sometimes next to an equivocating twin; links lossy, sometimes a
/// partition. Honest nodes must decide, blame nobody honest and keep their buffers bounded.
pub fn hostile_peers(seed: u64, forged: u32) -> SimConfig {
    let mut cfg = equivocators(seed);
    let mut rng = shape_rng(seed ^ 2);
    // equivocators() makes the first byzantine identity a twin pair; the forger replaces one
    // instance, so its identity signs only through the forger (no equivocation by it).
    let first_twin = cfg
        .nodes
        .iter()
        .position(|n| n.behaviour == Behaviour::Twin)
        .expect("equivocators has a twin");
    let identity = cfg.nodes[first_twin].identity;
    cfg.nodes.remove(first_twin + 1);
    cfg.nodes[first_twin] = NodeSpec {
        identity,
        behaviour: Behaviour::FutureForger(forged),
    };
    // A second byzantine validator, if any, keeps its behaviour (twin, conflicting
    // proposer, bad signatures or silent).
    if rng.random_bool(0.5) {
        cfg.faults.clear();
        cfg.liveness = live(Duration::ZERO, 4, ms(60_000));
    }
    cfg
}

/// The attack the protocol cannot survive, to prove the checker sees it: four
/// equal validators, two of them byzantine (1/2 of the stake) and run as
/// twins, one twin on each side of a permanent partition between the two
/// honest validators. Each side holds 3/4 of the stake and decides its own
/// block.
pub fn split_brain(seed: u64) -> SimConfig {
    let mut rng = shape_rng(seed);
    let members = vec![(0, 1), (1, 1), (2, 1), (3, 1)];
    let nodes = vec![
        NodeSpec {
            identity: 0,
            behaviour: Behaviour::Honest,
        },
        NodeSpec {
            identity: 1,
            behaviour: Behaviour::Honest,
        },
        NodeSpec {
            identity: 2,
            behaviour: Behaviour::Twin,
        },
        NodeSpec {
            identity: 2,
            behaviour: Behaviour::Twin,
        },
        NodeSpec {
            identity: 3,
            behaviour: Behaviour::Twin,
        },
        NodeSpec {
            identity: 3,
            behaviour: Behaviour::Twin,
        },
    ];
    let net = net(&mut rng, 20, 0.0);
    let mut cfg = base(seed, 4, vec![members], 1_000, nodes, net);
    cfg.faults.push(Fault::Partition {
        at: Duration::ZERO,
        heal: ms(3_600_000),
        groups: vec![0, 1, 0, 1, 0, 1],
    });
    cfg.stop_at = ms(30_000);
    cfg
}

/// A small run with real BLS signatures and certificates, a partition and an
/// epoch change.
pub fn real_bls(seed: u64) -> SimConfig {
    let mut cfg = partition_heal(seed);
    let mut rng = shape_rng(seed ^ 1);
    let epochs = changing_epochs(&mut rng, 4);
    cfg.identities = 5;
    cfg.epochs = epochs;
    cfg.nodes = honest_nodes(5);
    cfg.scheme = Scheme::Bls;
    cfg.faults = vec![Fault::Partition {
        at: ms(200),
        heal: ms(1200),
        groups: vec![0, 0, 1, 1, 0],
    }];
    cfg.liveness = live(ms(1200), 4, ms(60_000));
    cfg
}
