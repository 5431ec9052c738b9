//! A validator's keys on disk: the BLS consensus key in an EIP-2335 keystore (with its proof
//! of possession beside it) and the secp256k1 account key in a Web3 Secret Storage v3
//! keystore, both under the password of one password file.
//!
//! Why two keys: BLS signatures aggregate into one commit certificate per block; the account
//! key receives fees and signs checkpoints for Tron, which cannot verify BLS. Why standard
//! keystore formats: operators move keys between bttd, Ethereum staking tools and wallets.
//!
//! The node calls [`load_validator_keys`] with its `[validator]` section; `bttd keys` and
//! `bttd testnet init` write keystore directories through [`KeystoreDir`].

mod account;
mod dir;
pub mod eip2335;
mod fs;
mod password;
pub mod slashing_db;

use std::path::{Path, PathBuf};

use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;
use bttd_consensus::bls::{BlsSecretKey, PublicKeyBytes, SignatureBytes};
use rand::RngCore;
use serde::{Deserialize, Serialize};

pub use account::{
    address as account_keystore_address, decrypt as open_account_keystore,
    write as write_account_keystore,
};
pub use dir::{
    ACCOUNT_FILE, BLS_FILE, KeyInfo, KeystoreDir, POP_FILE, open_bls_keystore, read_bls_keystore,
};
pub use eip2335::{Eip2335Error, Kdf, Keystore as BlsKeystore};
pub use password::{random_password, read_password_file, write_password_file};

/// Why keys could not be read, opened or written. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: no such file")]
    Missing { path: PathBuf },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("{path} already exists; refusing to overwrite a key")]
    Exists { path: PathBuf },
    #[error("{path}: not a valid {kind} keystore: {reason}")]
    BadJson {
        path: PathBuf,
        kind: &'static str,
        reason: String,
    },
    #[error("{path}: {reason}")]
    InvalidKeystore { path: PathBuf, reason: String },
    #[error("{path}: wrong password (or the keystore was modified)")]
    WrongPassword { path: PathBuf },
    #[error("{path}: the decrypted key's {what} {derived} is not the {stored} the file names")]
    Mismatch {
        path: PathBuf,
        what: &'static str,
        stored: String,
        derived: String,
    },
    #[error("password file {path} is empty (its first line is the password)")]
    EmptyPassword { path: PathBuf },
    #[error("{path}: not a valid proof of possession of the BLS keystore's public key")]
    BadProofOfPossession { path: PathBuf },
    #[error("invalid {what}: {reason}")]
    InvalidKey { what: &'static str, reason: String },
}

impl KeyError {
    fn from_eip2335(path: &Path, error: Eip2335Error) -> Self {
        let path = path.to_path_buf();
        match error {
            Eip2335Error::BadJson(reason) => KeyError::BadJson {
                path,
                kind: "EIP-2335",
                reason,
            },
            Eip2335Error::WrongPassword => KeyError::WrongPassword { path },
            Eip2335Error::PubkeyMismatch { stored, derived } => KeyError::Mismatch {
                path,
                what: "BLS public key",
                stored,
                derived,
            },
            e @ (Eip2335Error::Unsupported(_) | Eip2335Error::BadSecret(_)) => {
                KeyError::InvalidKeystore {
                    path,
                    reason: e.to_string(),
                }
            }
        }
    }
}

/// A validator's decrypted keys. `Debug` prints only the public parts.
#[derive(Clone)]
pub struct ValidatorKeys {
    /// The consensus key: votes and proposals, aggregated into commit certificates.
    pub bls: BlsSecretKey,
    /// The account key: receives priority fees, signs Tron checkpoints.
    pub account: PrivateKeySigner,
}

impl std::fmt::Debug for ValidatorKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidatorKeys")
            .field("address", &self.address())
            .field("bls_public_key", &self.bls_public_key())
            .finish()
    }
}

impl ValidatorKeys {
    /// Fresh random keys (BLS from 32 bytes of OS randomness through IETF KeyGen).
    pub fn generate() -> Self {
        let mut ikm = [0u8; 32];
        rand::rng().fill_bytes(&mut ikm);
        Self {
            bls: BlsSecretKey::from_ikm(&ikm).expect("32 bytes of key material suffice"),
            account: PrivateKeySigner::random(),
        }
    }

    /// Keys from raw secrets: a 32-byte secp256k1 scalar and a 32-byte BLS scalar.
    pub fn from_secrets(account: &[u8], bls: &[u8]) -> Result<Self, KeyError> {
        Ok(Self {
            account: PrivateKeySigner::from_slice(account).map_err(|e| KeyError::InvalidKey {
                what: "account key",
                reason: e.to_string(),
            })?,
            bls: BlsSecretKey::from_bytes(bls).map_err(|e| KeyError::InvalidKey {
                what: "BLS key",
                reason: e.to_string(),
            })?,
        })
    }

    pub fn address(&self) -> Address {
        self.account.address()
    }

    pub fn bls_public_key(&self) -> PublicKeyBytes {
        self.bls.public_key()
    }

    pub fn proof_of_possession(&self) -> SignatureBytes {
        self.bls.proof_of_possession()
    }
}

/// The `[validator]` section: present only on a validator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ValidatorSection {
    /// EIP-2335 keystore of the BLS consensus key.
    pub bls_keystore: PathBuf,
    /// Web3 Secret Storage (v3) keystore of the account key (priority fees, Tron checkpoints).
    pub account_keystore: PathBuf,
    /// File whose first line is the password of both keystores.
    pub password_file: PathBuf,
    /// Slashing-protection record (fsynced before any vote leaves the process); relative
    /// paths are relative to the datadir.
    #[serde(default = "default_slashing_db")]
    pub slashing_db: PathBuf,
}

fn default_slashing_db() -> PathBuf {
    PathBuf::from("slashing-protection.json")
}

/// Decrypts the keys named by a `[validator]` section. Relative paths resolve against
/// `base_dir` (the node's home). Errors name the file: missing, unreadable, not a keystore,
/// wrong password, or a key that is not the one the file says it holds.
pub fn load_validator_keys(
    section: &ValidatorSection,
    base_dir: &Path,
) -> Result<ValidatorKeys, KeyError> {
    let resolve = |p: &Path| base_dir.join(p);
    let password = read_password_file(&resolve(&section.password_file))?;
    let account = open_account_keystore(&resolve(&section.account_keystore), &password)?;
    let bls = open_bls_keystore(&resolve(&section.bls_keystore), &password)?;
    Ok(ValidatorKeys { bls, account })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> ValidatorSection {
        ValidatorSection {
            bls_keystore: "keystore/bls.json".into(),
            account_keystore: "keystore/account.json".into(),
            password_file: "password.txt".into(),
            slashing_db: "slashing-protection.json".into(),
        }
    }

    fn home() -> (tempfile::TempDir, ValidatorKeys) {
        let home = tempfile::tempdir().unwrap();
        let keys = ValidatorKeys::generate();
        KeystoreDir::new(home.path().join("keystore"))
            .create(&keys, "secret", Kdf::LIGHT)
            .unwrap();
        write_password_file(&home.path().join("password.txt"), "secret").unwrap();
        (home, keys)
    }

    #[test]
    fn loads_the_keys_of_a_validator_section() {
        let (home, keys) = home();
        let loaded = load_validator_keys(&section(), home.path()).unwrap();
        assert_eq!(loaded.address(), keys.address());
        assert_eq!(loaded.bls.to_bytes(), keys.bls.to_bytes());
        // Absolute paths are used as they are.
        let mut absolute = section();
        absolute.password_file = home.path().join("password.txt");
        load_validator_keys(&absolute, Path::new("/nonexistent")).unwrap_err();
        absolute.bls_keystore = home.path().join("keystore/bls.json");
        absolute.account_keystore = home.path().join("keystore/account.json");
        load_validator_keys(&absolute, Path::new("/nonexistent")).unwrap();
        let debug = format!("{loaded:?}");
        assert!(!debug.contains(&hex::encode(keys.bls.to_bytes())));
    }

    #[test]
    fn each_failure_has_its_own_error() {
        let (home, _) = home();
        let p = home.path();
        std::fs::write(p.join("password.txt"), "wrong\n").unwrap();
        let err = load_validator_keys(&section(), p).unwrap_err();
        assert!(matches!(&err, KeyError::WrongPassword { path } if path.ends_with("account.json")));
        assert!(err.to_string().contains("wrong password"), "{err}");

        std::fs::write(p.join("password.txt"), "secret\n").unwrap();
        std::fs::write(p.join("keystore/bls.json"), "[]").unwrap();
        let err = load_validator_keys(&section(), p).unwrap_err();
        assert!(
            matches!(
                err,
                KeyError::BadJson {
                    kind: "EIP-2335",
                    ..
                }
            ),
            "{err}"
        );

        std::fs::remove_file(p.join("keystore/bls.json")).unwrap();
        let err = load_validator_keys(&section(), p).unwrap_err();
        assert!(matches!(&err, KeyError::Missing { path } if path.ends_with("bls.json")));

        // A BLS keystore whose pubkey was swapped for another validator's.
        let other = KeystoreDir::new(p.join("other"));
        other
            .create(&ValidatorKeys::generate(), "secret", Kdf::LIGHT)
            .unwrap();
        let mut keystore = read_bls_keystore(&other.bls_path()).unwrap();
        keystore.pubkey = ValidatorKeys::generate().bls_public_key().to_vec();
        std::fs::write(p.join("keystore/bls.json"), keystore.to_json()).unwrap();
        let err = load_validator_keys(&section(), p).unwrap_err();
        assert!(
            matches!(
                err,
                KeyError::Mismatch {
                    what: "BLS public key",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn raw_secrets_are_checked() {
        assert!(matches!(
            ValidatorKeys::from_secrets(&[0; 32], &[1; 32]),
            Err(KeyError::InvalidKey {
                what: "account key",
                ..
            })
        ));
        assert!(matches!(
            ValidatorKeys::from_secrets(&[1; 32], &[0xff; 32]),
            Err(KeyError::InvalidKey {
                what: "BLS key",
                ..
            })
        ));
        let keys = ValidatorKeys::from_secrets(&[1; 32], &[1; 32]).unwrap();
        assert_eq!(keys.bls.to_bytes(), [1; 32]);
    }
}
