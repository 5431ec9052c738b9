//! The validator's account key (secp256k1) in a Web3 Secret Storage v3 keystore.
//!
//! Why secp256k1 next to BLS: the account receives priority fees and signs the checkpoints
//! sent to Tron, whose VM has no BLS12-381. The v3 format is what geth, foundry (`cast wallet`)
//! and every Ethereum wallet read, so the key can be moved to and from them.
//!
//! Encryption and decryption are alloy-signer-local's (`keystore` feature: scrypt n = 2^13,
//! AES-128-CTR, keccak MAC). Its files carry no address; we add geth's `address` field after
//! writing so `bttd keys show` can name the account without the password.

use std::path::Path;

use alloy_primitives::Address;
use alloy_signer_local::{LocalSignerError, PrivateKeySigner};

use super::{KeyError, fs};

/// Writes `signer` encrypted under `password` to `path` (which must not exist), with the
/// `address` field geth writes, mode 0600.
pub fn write(path: &Path, signer: &PrivateKeySigner, password: &str) -> Result<(), KeyError> {
    fs::refuse_existing(path)?;
    let (dir, name) = fs::split(path)?;
    fs::create_dir(dir)?;
    let mut rng = rand_08::thread_rng();
    PrivateKeySigner::encrypt_keystore(dir, &mut rng, signer.to_bytes(), password, Some(name))
        .map_err(|e| KeyError::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    // Add the address (and restrict the mode) by rewriting the file alloy just wrote.
    let text = fs::read(path)?;
    let mut json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad_json(path, e.to_string()))?;
    json["address"] = hex::encode(signer.address()).into();
    fs::replace(
        path,
        &serde_json::to_string(&json).expect("json serialises"),
    )
}

/// The account address a keystore names (geth's `address` field), read without the password.
/// `None` when the file has no such field (keystores from some tools).
pub fn address(path: &Path) -> Result<Option<Address>, KeyError> {
    let json = parse(path)?;
    match json.get("address") {
        None => Ok(None),
        Some(value) => {
            let text = value
                .as_str()
                .ok_or_else(|| bad_json(path, "address is not a string".into()))?;
            let digits = text.strip_prefix("0x").unwrap_or(text);
            let address = format!("0x{digits}")
                .parse()
                .map_err(|e| bad_json(path, format!("address {text:?}: {e}")))?;
            Ok(Some(address))
        }
    }
}

/// Decrypts the keystore; checks the decrypted key against the file's `address`, if any.
pub fn decrypt(path: &Path, password: &str) -> Result<PrivateKeySigner, KeyError> {
    let stored = address(path)?;
    let signer = PrivateKeySigner::decrypt_keystore(path, password).map_err(|e| match e {
        LocalSignerError::EthKeystoreError(eth_keystore::KeystoreError::MacMismatch) => {
            KeyError::WrongPassword {
                path: path.to_path_buf(),
            }
        }
        LocalSignerError::EthKeystoreError(eth_keystore::KeystoreError::SerdeJson(reason)) => {
            bad_json(path, reason)
        }
        other => KeyError::InvalidKeystore {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })?;
    if let Some(stored) = stored
        && stored != signer.address()
    {
        return Err(KeyError::Mismatch {
            path: path.to_path_buf(),
            what: "address",
            stored: stored.to_string(),
            derived: signer.address().to_string(),
        });
    }
    Ok(signer)
}

/// Parses the file as JSON and checks it looks like a v3 keystore.
fn parse(path: &Path) -> Result<serde_json::Value, KeyError> {
    let text = fs::read(path)?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad_json(path, e.to_string()))?;
    if json.get("version").and_then(|v| v.as_u64()) != Some(3) {
        return Err(bad_json(
            path,
            "not a Web3 Secret Storage keystore (no \"version\": 3)".into(),
        ));
    }
    if !json.get("crypto").is_some_and(|c| c.is_object()) {
        return Err(bad_json(path, "no \"crypto\" object".into()));
    }
    Ok(json)
}

fn bad_json(path: &Path, reason: String) -> KeyError {
    KeyError::BadJson {
        path: path.to_path_buf(),
        kind: "Web3 Secret Storage (v3)",
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_address_and_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore/account.json");
        let signer = PrivateKeySigner::random();
        write(&path, &signer, "pw").unwrap();
        assert_eq!(address(&path).unwrap(), Some(signer.address()));
        assert_eq!(decrypt(&path, "pw").unwrap(), signer);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Refuses to overwrite, and the old file stays.
        let other = PrivateKeySigner::random();
        assert!(matches!(
            write(&path, &other, "pw"),
            Err(KeyError::Exists { .. })
        ));
        assert_eq!(decrypt(&path, "pw").unwrap(), signer);
    }

    #[test]
    fn wrong_password_missing_file_bad_json_and_swapped_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("account.json");
        let signer = PrivateKeySigner::random();
        write(&path, &signer, "pw").unwrap();
        assert!(matches!(
            decrypt(&path, "pw2"),
            Err(KeyError::WrongPassword { .. })
        ));
        assert!(matches!(
            decrypt(&dir.path().join("none.json"), "pw"),
            Err(KeyError::Missing { .. })
        ));
        let junk = dir.path().join("junk.json");
        std::fs::write(&junk, "{\"version\": 4}").unwrap();
        assert!(matches!(
            decrypt(&junk, "pw"),
            Err(KeyError::BadJson { .. })
        ));
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        json["address"] = hex::encode(Address::repeat_byte(1)).into();
        std::fs::write(&path, json.to_string()).unwrap();
        assert!(matches!(
            decrypt(&path, "pw"),
            Err(KeyError::Mismatch {
                what: "address",
                ..
            })
        ));
    }

    #[test]
    fn a_geth_style_keystore_without_address_opens() {
        let dir = tempfile::tempdir().unwrap();
        let signer = PrivateKeySigner::random();
        let mut rng = rand_08::thread_rng();
        PrivateKeySigner::encrypt_keystore(
            dir.path(),
            &mut rng,
            signer.to_bytes(),
            "pw",
            Some("k"),
        )
        .unwrap();
        let path = dir.path().join("k");
        assert_eq!(address(&path).unwrap(), None);
        assert_eq!(decrypt(&path, "pw").unwrap().address(), signer.address());
    }
}
