//! Cross-check against viem: `testdata/viem-vectors.json` holds hashes and signatures that
//! viem's `hashTypedData` / `signTypedData` produced (generator: `tests/js/voucher-vectors.mjs`).
//! Our digests and signatures (RFC 6979, like viem's) must equal them byte for byte, and our
//! verifier must recover viem's signer.

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_signer_local::{MnemonicBuilder, PrivateKeySigner, coins_bip39::English};
use serde::Deserialize;
use std::path::Path;
use std::process::Command;

use super::eip712::ChannelsDomain;
use super::voucher::{CloseSignature, SignedVoucher};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    keys: Keys,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Keys {
    mnemonic: String,
    indices: Vec<u32>,
    private_key: B256,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vector {
    signer: Address,
    chain_id: u64,
    verifying_contract: Address,
    primary_type: String,
    channel_id: B256,
    cumulative_amount: U256,
    hash: B256,
    signature: Bytes,
}

fn signers(keys: &Keys) -> Vec<PrivateKeySigner> {
    let mut out: Vec<PrivateKeySigner> = keys
        .indices
        .iter()
        .map(|&i| {
            MnemonicBuilder::<English>::default()
                .phrase(keys.mnemonic.as_str())
                .index(i)
                .unwrap()
                .build()
                .unwrap()
        })
        .collect();
    out.push(PrivateKeySigner::from_bytes(&keys.private_key).unwrap());
    out
}

#[test]
fn hashes_and_signatures_equal_viems() {
    let file: File =
        serde_json::from_str(include_str!("testdata/viem-vectors.json")).expect("vector file");
    assert_eq!(file.vectors.len(), 24);
    let signers = signers(&file.keys);
    let (mut vouchers, mut closes) = (0, 0);
    for (i, v) in file.vectors.iter().enumerate() {
        let key = signers
            .iter()
            .find(|s| s.address() == v.signer)
            .expect("vector signer is one of the keys");
        let domain = ChannelsDomain::new(v.chain_id, v.verifying_contract);
        let (hash, ours, recovered) = match v.primary_type.as_str() {
            "Voucher" => {
                vouchers += 1;
                let s =
                    SignedVoucher::sign(&domain, key, v.channel_id, v.cumulative_amount).unwrap();
                let theirs = SignedVoucher {
                    signature: v.signature.clone(),
                    ..s.clone()
                };
                (
                    s.digest(&domain),
                    s.signature,
                    theirs.recover_signer(&domain).unwrap(),
                )
            }
            "Close" => {
                closes += 1;
                let s =
                    CloseSignature::sign(&domain, key, v.channel_id, v.cumulative_amount).unwrap();
                let theirs = CloseSignature {
                    signature: v.signature.clone(),
                    ..s.clone()
                };
                (
                    domain.close_hash(v.channel_id, v.cumulative_amount),
                    s.signature,
                    theirs.recover_signer(&domain).unwrap(),
                )
            }
            other => panic!("unexpected primaryType {other}"),
        };
        assert_eq!(hash, v.hash, "vector {i}: hash");
        assert_eq!(ours, v.signature, "vector {i}: signature");
        assert_eq!(recovered, v.signer, "vector {i}: recovered signer");
    }
    assert_eq!((vouchers, closes), (12, 12));
}

/// The checked-in vectors are what viem produces today (skipped without tests/js/node_modules,
/// a failure under CI).
#[test]
fn vectors_are_what_viem_generates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let js = root.join("tests").join("js");
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    if !js.join("node_modules").join("viem").exists() {
        assert!(
            !ci,
            "CI is set but tests/js/node_modules is missing: run `npm ci --prefix tests/js`"
        );
        eprintln!("SKIPPED vectors_are_what_viem_generates: tests/js/node_modules missing");
        return;
    }
    let out = Command::new("node")
        .arg("voucher-vectors.mjs")
        .arg("--check")
        .current_dir(&js)
        .output()
        .expect("failed to run `node`");
    assert!(
        out.status.success(),
        "viem vectors are stale:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
