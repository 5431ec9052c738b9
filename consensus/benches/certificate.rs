//! Cost of verifying one commit certificate with real BLS at 4, 32 and 100
//! validators, with the epoch's validated keys already cached (the steady
//! state of a full node). Goal: under 2 ms.
//!
//! `cargo bench -p bttd-consensus --bench certificate`

use alloy_primitives::{Address, B256};
use bttd_consensus::bls::BlsSecretKey;
use bttd_consensus::{
    BlsVerifier, CommitCertificate, SignerBitmap, Validator, ValidatorSet, Verifier,
};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn setup(n: usize) -> (B256, ValidatorSet, CommitCertificate) {
    let keys: Vec<BlsSecretKey> = (0..n)
        .map(|i| {
            let mut ikm = [7u8; 32];
            ikm[..8].copy_from_slice(&(i as u64).to_be_bytes());
            BlsSecretKey::from_ikm(&ikm).expect("ikm")
        })
        .collect();
    let entries = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let mut addr = [0u8; 20];
            addr[..8].copy_from_slice(&(i as u64).to_be_bytes());
            (
                Validator {
                    address: Address::from(addr),
                    public_key: k.public_key(),
                    power: 10,
                },
                k.proof_of_possession(),
            )
        })
        .collect();
    let set = ValidatorSet::new_with_proofs(entries, 0, 1).expect("set");
    let chain = B256::repeat_byte(0x42);
    // Every validator signs: the worst case for key aggregation.
    let mut cert = CommitCertificate {
        height: 1,
        round: 0,
        block_id: B256::repeat_byte(9),
        signature: Default::default(),
        signers: SignerBitmap::from_indices(n, 0..n as u32),
    };
    let msg = cert.sign_bytes(&chain, set.epoch());
    let sigs: Vec<_> = keys.iter().map(|k| k.sign(&msg)).collect();
    cert.signature = BlsVerifier
        .aggregate(&sigs.iter().collect::<Vec<_>>())
        .expect("aggregate");
    cert.verify(&chain, &set, &BlsVerifier)
        .expect("valid certificate");
    (chain, set, cert)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("certificate_verify");
    for n in [4usize, 32, 100] {
        let (chain, set, cert) = setup(n);
        g.bench_function(format!("{n}_validators"), |b| {
            b.iter(|| {
                black_box(&cert)
                    .verify(&chain, black_box(&set), &BlsVerifier)
                    .expect("valid")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
