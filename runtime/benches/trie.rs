//! Incremental state-root cost: a trie of 1,000,000 accounts in memory, then batches of 2,000
//! updated accounts plus 100 new ones (a block of ~1,000 transfers touches ~2,000 accounts).

use alloy_primitives::{B256, Bytes, U256, keccak256};
use alloy_rlp::{Encodable, Header};
use alloy_trie::{EMPTY_ROOT_HASH, KECCAK_EMPTY};
use bttd_runtime::trie::{MemoryNodes, update};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::{hint::black_box, time::Instant};

const ACCOUNTS: u64 = 1_000_000;
const UPDATED: usize = 2_000;
const CREATED: usize = 100;

/// RLP of an account `[nonce, balance, storageRoot, codeHash]` as the state trie holds it.
fn account(nonce: u64, balance: u64) -> Bytes {
    let balance = U256::from(balance) * U256::from(10u64).pow(U256::from(18));
    let mut payload = Vec::with_capacity(80);
    nonce.encode(&mut payload);
    balance.encode(&mut payload);
    EMPTY_ROOT_HASH.encode(&mut payload);
    KECCAK_EMPTY.encode(&mut payload);
    let mut out = Vec::with_capacity(payload.len() + 2);
    Header {
        list: true,
        payload_length: payload.len(),
    }
    .encode(&mut out);
    out.extend_from_slice(&payload);
    Bytes::from(out)
}

fn key(i: u64) -> B256 {
    keccak256(i.to_be_bytes())
}

fn build() -> MemoryNodes {
    let started = Instant::now();
    let mut nodes = MemoryNodes::new();
    let result = update(
        &nodes,
        (0..ACCOUNTS).map(|i| (key(i), Some(account(0, i + 1)))),
    )
    .unwrap();
    nodes.apply(&result);
    eprintln!(
        "built {ACCOUNTS} leaves ({} stored nodes) in {:.2?}",
        nodes.len(),
        started.elapsed()
    );
    nodes
}

fn batch(rng: &mut StdRng, fresh: &mut u64) -> Vec<(B256, Option<Bytes>)> {
    let mut changes = Vec::with_capacity(UPDATED + CREATED);
    for _ in 0..UPDATED {
        let i = rng.random_range(0..ACCOUNTS);
        changes.push((
            key(i),
            Some(account(
                rng.random_range(1..1000),
                rng.random_range(1..1_000_000),
            )),
        ));
    }
    for _ in 0..CREATED {
        *fresh += 1;
        changes.push((key(*fresh), Some(account(0, 1))));
    }
    changes
}

fn bench(c: &mut Criterion) {
    let mut nodes = build();
    let mut rng = StdRng::seed_from_u64(7);
    let mut fresh = ACCOUNTS;

    let mut group = c.benchmark_group("trie_1m");
    group.sample_size(30);
    group.bench_function("update_2000_plus_100_new", |b| {
        b.iter_batched(
            || batch(&mut rng, &mut fresh),
            |changes| black_box(update(&nodes, changes).unwrap()),
            BatchSize::LargeInput,
        )
    });
    // Blocks in sequence: the update is applied, so the next batch sees the new trie.
    group.bench_function("update_and_apply_2000_plus_100_new", |b| {
        b.iter_batched(
            || batch(&mut rng, &mut fresh),
            |changes| {
                let result = update(&nodes, changes).unwrap();
                nodes.apply(&result);
                black_box(result.root)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
