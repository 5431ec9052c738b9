//! Voucher throughput on one core: signing (payer side), bare verification (strict signature
//! check + recovery) and `PayeeBook::accept` (the per-piece path of a seeder). Issue 5's goal
//! is >= 10,000 verifications per second per core.
//!
//! `cargo bench -p bttd-contracts --bench voucher`

use alloy_primitives::{Address, B256, U256, address};
use alloy_signer_local::PrivateKeySigner;
use bttd_contracts::channels::{ChannelInfo, ChannelsDomain, PayeeBook, SignedVoucher};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn domain() -> ChannelsDomain {
    ChannelsDomain::new(1337, address!("0000000000000000000000000000000000001002"))
}

fn bench(c: &mut Criterion) {
    let d = domain();
    let payer = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).unwrap();
    let id = B256::repeat_byte(7);
    let mut g = c.benchmark_group("voucher");
    g.throughput(Throughput::Elements(1));

    g.bench_function("hash", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            black_box(d.voucher_hash(id, U256::from(n)))
        })
    });

    g.bench_function("sign", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            black_box(SignedVoucher::sign(&d, &payer, id, U256::from(n)).unwrap())
        })
    });

    let vouchers: Vec<SignedVoucher> = (1..=1_000u64)
        .map(|n| SignedVoucher::sign(&d, &payer, id, U256::from(n)).unwrap())
        .collect();

    g.bench_function("verify", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % vouchers.len();
            let signer = vouchers[i].recover_signer(&d).unwrap();
            assert_eq!(signer, payer.address());
        })
    });

    // The per-piece path: a fresh book per batch of 1,000 increasing vouchers.
    let payee = Address::repeat_byte(0xee);
    let info = ChannelInfo {
        payer: payer.address(),
        payee,
        deposit: U256::from(1_000_000u64),
        claimed: U256::ZERO,
        settle_window: 60,
        closes_at: 0,
    };
    g.throughput(Throughput::Elements(vouchers.len() as u64));
    g.sample_size(20);
    g.bench_function("payee_book_accept_x1000", |b| {
        b.iter_batched(
            || {
                let mut book = PayeeBook::new(payee, d.clone());
                book.track(id, info.clone()).unwrap();
                (book, vouchers.clone())
            },
            |(mut book, vs)| {
                for v in vs {
                    book.accept(v, 0).unwrap();
                }
                book
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
