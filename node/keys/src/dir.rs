//! A keystore directory: the account keystore, the BLS keystore and the BLS proof of
//! possession, under fixed names, so `bttd keys`, `bttd testnet init` and the `[validator]`
//! section of config.toml agree on where a validator's keys live.
//!
//! ```text
//! keystore/
//!   account.json   Web3 Secret Storage v3 (secp256k1 account key), with geth's `address`
//!   bls.json       EIP-2335 (BLS consensus key), with its `pubkey`
//!   bls.pop        the proof of possession of the BLS key: 0x + 192 hex digits
//! ```
//!
//! The proof of possession lives in a sidecar file because EIP-2335 has no field for it and
//! tools reading the keystore must not choke on an extra one. It is public (it goes into the
//! genesis file) and deterministic (a BLS signature of the public key), so it is stored in the
//! clear: `bttd keys show` prints it without the password, after checking it against the
//! keystore's public key. A missing or wrong sidecar is recomputed from the secret whenever the
//! password is at hand.

use std::path::{Path, PathBuf};

use alloy_primitives::Address;
use bttd_consensus::bls::{self, BlsSecretKey, PublicKeyBytes, SignatureBytes};
use serde::Serialize;

use super::eip2335::{Kdf, Keystore};
use super::{KeyError, ValidatorKeys, account, fs};

/// File name of the account keystore in a keystore directory.
pub const ACCOUNT_FILE: &str = "account.json";
/// File name of the BLS keystore in a keystore directory.
pub const BLS_FILE: &str = "bls.json";
/// File name of the proof of possession in a keystore directory.
pub const POP_FILE: &str = "bls.pop";

/// The public side of a validator's keys, as `bttd keys new|show|import` print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    pub address: Address,
    pub bls_public_key: PublicKeyBytes,
    pub proof_of_possession: SignatureBytes,
    pub account_keystore: PathBuf,
    pub bls_keystore: PathBuf,
}

/// A directory holding one validator's keystores.
#[derive(Debug, Clone)]
pub struct KeystoreDir {
    dir: PathBuf,
}

impl KeystoreDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn account_path(&self) -> PathBuf {
        self.dir.join(ACCOUNT_FILE)
    }

    pub fn bls_path(&self) -> PathBuf {
        self.dir.join(BLS_FILE)
    }

    pub fn pop_path(&self) -> PathBuf {
        self.dir.join(POP_FILE)
    }

    /// Encrypts both keys under `password` and writes them with the proof of possession.
    /// Refuses when any of the three files exists; when a later write fails, the files written
    /// before it are removed, so a failed call leaves the directory as it was.
    pub fn create(
        &self,
        keys: &ValidatorKeys,
        password: &str,
        kdf: Kdf,
    ) -> Result<KeyInfo, KeyError> {
        let paths = [self.account_path(), self.bls_path(), self.pop_path()];
        for path in &paths {
            fs::refuse_existing(path)?;
        }
        let keystore = Keystore::encrypt(&keys.bls, password, kdf, "bttd validator BLS key");
        let mut written = Vec::new();
        let mut result = account::write(&paths[0], &keys.account, password);
        if result.is_ok() {
            written.push(paths[0].clone());
            result = fs::write_new(&paths[1], &keystore.to_json());
        }
        if result.is_ok() {
            written.push(paths[1].clone());
            result = fs::write_new(&paths[2], &pop_text(&keys.proof_of_possession()));
        }
        if let Err(e) = result {
            fs::remove_all(&written);
            return Err(e);
        }
        Ok(self.info_of(keys))
    }

    /// The public parts, without the password: the address from the account keystore, the BLS
    /// public key from the EIP-2335 keystore, the proof of possession from `bls.pop` (checked).
    pub fn show(&self) -> Result<KeyInfo, KeyError> {
        let address =
            account::address(&self.account_path())?.ok_or_else(|| KeyError::InvalidKeystore {
                path: self.account_path(),
                reason: "it names no address; give the password to decrypt it".into(),
            })?;
        let bls_public_key = read_bls_keystore(&self.bls_path())?
            .public_key()
            .map_err(|e| KeyError::from_eip2335(&self.bls_path(), e))?;
        let proof_of_possession = read_pop(&self.pop_path(), &bls_public_key)?;
        Ok(KeyInfo {
            address,
            bls_public_key,
            proof_of_possession,
            account_keystore: self.account_path(),
            bls_keystore: self.bls_path(),
        })
    }

    /// Decrypts both keys. A missing or wrong `bls.pop` is rewritten from the secret.
    pub fn unlock(&self, password: &str) -> Result<ValidatorKeys, KeyError> {
        let keys = ValidatorKeys {
            account: account::decrypt(&self.account_path(), password)?,
            bls: open_bls_keystore(&self.bls_path(), password)?,
        };
        let pop_path = self.pop_path();
        if read_pop(&pop_path, &keys.bls_public_key()).is_err() {
            fs::replace(&pop_path, &pop_text(&keys.proof_of_possession()))?;
        }
        Ok(keys)
    }

    /// The public parts of `keys` with this directory's file names.
    pub fn info_of(&self, keys: &ValidatorKeys) -> KeyInfo {
        KeyInfo {
            address: keys.address(),
            bls_public_key: keys.bls_public_key(),
            proof_of_possession: keys.proof_of_possession(),
            account_keystore: self.account_path(),
            bls_keystore: self.bls_path(),
        }
    }
}

/// Reads and checks the shape of an EIP-2335 keystore file.
pub fn read_bls_keystore(path: &Path) -> Result<Keystore, KeyError> {
    Keystore::from_json(&fs::read(path)?).map_err(|e| KeyError::from_eip2335(path, e))
}

/// Decrypts an EIP-2335 keystore file.
pub fn open_bls_keystore(path: &Path, password: &str) -> Result<BlsSecretKey, KeyError> {
    read_bls_keystore(path)?
        .decrypt(password)
        .map_err(|e| KeyError::from_eip2335(path, e))
}

fn pop_text(pop: &SignatureBytes) -> String {
    format!("{pop}\n")
}

/// Reads `bls.pop` and checks it is a proof of possession of `public_key`.
fn read_pop(path: &Path, public_key: &PublicKeyBytes) -> Result<SignatureBytes, KeyError> {
    let text = fs::read(path)?;
    let bad = || KeyError::BadProofOfPossession {
        path: path.to_path_buf(),
    };
    let pop: SignatureBytes = text.trim().parse().map_err(|_| bad())?;
    let key = bls::validate_public_key(public_key).map_err(|_| bad())?;
    bls::verify_proof_of_possession(&key, &pop).map_err(|_| bad())?;
    Ok(pop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_show_unlock() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeystoreDir::new(dir.path().join("keystore"));
        let keys = ValidatorKeys::generate();
        let created = store.create(&keys, "pw", Kdf::LIGHT).unwrap();
        assert_eq!(created.address, keys.address());
        assert_eq!(store.show().unwrap(), created);
        let unlocked = store.unlock("pw").unwrap();
        assert_eq!(unlocked.bls.to_bytes(), keys.bls.to_bytes());
        assert_eq!(unlocked.account, keys.account);
        assert!(matches!(
            store.unlock("nope"),
            Err(KeyError::WrongPassword { .. })
        ));
    }

    #[test]
    fn create_refuses_existing_keys_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeystoreDir::new(dir.path());
        let first = store
            .create(&ValidatorKeys::generate(), "pw", Kdf::LIGHT)
            .unwrap();
        let err = store
            .create(&ValidatorKeys::generate(), "pw", Kdf::LIGHT)
            .unwrap_err();
        assert!(matches!(err, KeyError::Exists { .. }), "{err}");
        assert_eq!(store.show().unwrap(), first);
        // Only the BLS keystore present: still refused, and the account is not written.
        let dir2 = tempfile::tempdir().unwrap();
        std::fs::copy(store.bls_path(), dir2.path().join(BLS_FILE)).unwrap();
        let store2 = KeystoreDir::new(dir2.path());
        assert!(matches!(
            store2.create(&ValidatorKeys::generate(), "pw", Kdf::LIGHT),
            Err(KeyError::Exists { .. })
        ));
        assert!(!store2.account_path().exists());
    }

    #[test]
    fn a_wrong_pop_is_caught_by_show_and_repaired_by_unlock() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeystoreDir::new(dir.path());
        let keys = ValidatorKeys::generate();
        store.create(&keys, "pw", Kdf::LIGHT).unwrap();
        let other = ValidatorKeys::generate();
        std::fs::write(store.pop_path(), pop_text(&other.proof_of_possession())).unwrap();
        assert!(matches!(
            store.show(),
            Err(KeyError::BadProofOfPossession { .. })
        ));
        std::fs::remove_file(store.pop_path()).unwrap();
        assert!(matches!(store.show(), Err(KeyError::Missing { .. })));
        store.unlock("pw").unwrap();
        assert_eq!(
            store.show().unwrap().proof_of_possession,
            keys.proof_of_possession()
        );
    }
}
