//! EIP-2335 keystores for the BLS consensus key.
//!
//! Why this format: it is what every Ethereum consensus client and staking tool reads and
//! writes, so an operator can move a BLS key between bttd and those tools. The secret is
//! encrypted with AES-128-CTR under the first half of a key derived from the password (scrypt
//! or PBKDF2-HMAC-SHA256); SHA-256 of the second half and the ciphertext is the checksum that
//! tells a wrong password (or a modified file) from a right one. The password is NFKD-normalised
//! and stripped of control characters first, as the EIP says, so the same password typed on
//! different systems opens the same keystore.
//!
//! EIP-2335 has no field for the proof of possession; [`super::dir`] keeps it in a sidecar file.

use aes::cipher::{KeyIvInit, StreamCipher};
use bttd_consensus::bls::{BlsSecretKey, PublicKeyBytes};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// The only keystore version this module reads and writes.
pub const VERSION: u32 = 4;
/// Derived key length: 16 bytes of AES key, 16 bytes of checksum key.
const DKLEN: u32 = 32;
/// Refuse scrypt costs above 2^20 (1 GiB of memory): a hostile file must not exhaust the host.
const MAX_SCRYPT_LOG_N: u8 = 20;

/// Why a keystore could not be read or opened. The caller adds the file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Eip2335Error {
    #[error("not an EIP-2335 keystore: {0}")]
    BadJson(String),
    #[error("unsupported {0}")]
    Unsupported(String),
    #[error("wrong password (or the keystore was modified: its checksum does not match)")]
    WrongPassword,
    #[error(
        "the decrypted secret key's public key {derived} is not the keystore's pubkey {stored}"
    )]
    PubkeyMismatch { stored: String, derived: String },
    #[error("the decrypted secret is not a BLS secret key: {0}")]
    BadSecret(String),
}

/// How the password becomes the encryption key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kdf {
    /// scrypt with n = 2^log_n, r = 8, p = 1.
    Scrypt { log_n: u8 },
    /// PBKDF2-HMAC-SHA256 with this many rounds.
    Pbkdf2 { rounds: u32 },
}

impl Kdf {
    /// EIP-2335's own parameters (scrypt n = 2^18): 256 MiB and about a second to open. For
    /// keys an operator creates or imports by hand (`bttd keys new|import`).
    pub const STANDARD: Kdf = Kdf::Scrypt { log_n: 18 };
    /// scrypt n = 2^12 (4 MiB, milliseconds). For generated testnet homes, whose password file
    /// sits next to the keystore anyway: a strong KDF would only slow down starting N nodes.
    pub const LIGHT: Kdf = Kdf::Scrypt { log_n: 12 };
}

/// One EIP-2335 keystore (the JSON document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keystore {
    pub crypto: Crypto,
    #[serde(default)]
    pub description: String,
    #[serde(with = "hex_bytes")]
    pub pubkey: Vec<u8>,
    /// EIP-2334 derivation path; empty for keys not derived from a mnemonic.
    #[serde(default)]
    pub path: String,
    pub uuid: Uuid,
    pub version: u32,
}

/// The `crypto` object: three modules, each a function with parameters and a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crypto {
    pub kdf: Module,
    pub checksum: Module,
    pub cipher: Module,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    pub function: String,
    pub params: serde_json::Map<String, serde_json::Value>,
    #[serde(with = "hex_bytes")]
    pub message: Vec<u8>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScryptParams {
    dklen: u32,
    n: u64,
    r: u32,
    p: u32,
    #[serde(with = "hex_bytes")]
    salt: Vec<u8>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pbkdf2Params {
    dklen: u32,
    c: u32,
    prf: String,
    #[serde(with = "hex_bytes")]
    salt: Vec<u8>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CipherParams {
    #[serde(with = "hex_bytes")]
    iv: Vec<u8>,
}

/// EIP-2335 password processing: NFKD, then the C0, C1 and DEL control codes removed, then
/// UTF-8.
pub fn normalize_password(password: &str) -> Vec<u8> {
    password
        .nfkd()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .into_bytes()
}

impl Keystore {
    /// Parses a keystore and checks its shape (version, functions, parameter types), so a
    /// file that could never be opened is refused before any password is asked for.
    pub fn from_json(json: &str) -> Result<Self, Eip2335Error> {
        let keystore: Keystore =
            serde_json::from_str(json).map_err(|e| Eip2335Error::BadJson(e.to_string()))?;
        if keystore.version != VERSION {
            return Err(Eip2335Error::Unsupported(format!(
                "keystore version {} (expected {VERSION})",
                keystore.version
            )));
        }
        keystore.public_key()?;
        keystore.kdf_params()?;
        keystore.iv()?;
        if keystore.crypto.checksum.function != "sha256" {
            return Err(Eip2335Error::Unsupported(format!(
                "checksum function {:?}",
                keystore.crypto.checksum.function
            )));
        }
        if keystore.crypto.checksum.message.len() != 32 {
            return Err(Eip2335Error::BadJson("checksum is not 32 bytes".into()));
        }
        Ok(keystore)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a keystore always serialises")
    }

    /// The public key the keystore says it holds (no password needed).
    pub fn public_key(&self) -> Result<PublicKeyBytes, Eip2335Error> {
        PublicKeyBytes::try_from(self.pubkey.as_slice()).map_err(|_| {
            Eip2335Error::BadJson(format!("pubkey is {} bytes, not 48", self.pubkey.len()))
        })
    }

    /// Encrypts `secret` under `password` with fresh random salt, IV and UUID.
    pub fn encrypt(secret: &BlsSecretKey, password: &str, kdf: Kdf, description: &str) -> Self {
        let mut rng = rand::rng();
        let mut salt = [0u8; 32];
        let mut iv = [0u8; 16];
        rng.fill_bytes(&mut salt);
        rng.fill_bytes(&mut iv);
        Self::encrypt_with(
            secret,
            password,
            kdf,
            &salt,
            &iv,
            Uuid::new_v4(),
            "",
            description,
        )
    }

    /// Encrypts with given salt, IV and UUID (deterministic: what the test vectors need).
    #[allow(clippy::too_many_arguments)]
    pub fn encrypt_with(
        secret: &BlsSecretKey,
        password: &str,
        kdf: Kdf,
        salt: &[u8],
        iv: &[u8; 16],
        uuid: Uuid,
        path: &str,
        description: &str,
    ) -> Self {
        let kdf_module = match kdf {
            Kdf::Scrypt { log_n } => Module {
                function: "scrypt".into(),
                params: object(serde_json::json!({
                    "dklen": DKLEN, "n": 1u64 << log_n, "r": 8, "p": 1, "salt": hex::encode(salt),
                })),
                message: Vec::new(),
            },
            Kdf::Pbkdf2 { rounds } => Module {
                function: "pbkdf2".into(),
                params: object(serde_json::json!({
                    "dklen": DKLEN, "c": rounds, "prf": "hmac-sha256", "salt": hex::encode(salt),
                })),
                message: Vec::new(),
            },
        };
        let derived = derive(&kdf_params(&kdf_module).expect("built above"), password)
            .expect("parameters built above are valid");
        let mut ciphertext = secret.to_bytes().to_vec();
        Aes128Ctr::new(derived[..16].into(), iv.into()).apply_keystream(&mut ciphertext);
        let checksum = checksum(&derived, &ciphertext);
        Self {
            crypto: Crypto {
                kdf: kdf_module,
                checksum: Module {
                    function: "sha256".into(),
                    params: Default::default(),
                    message: checksum.to_vec(),
                },
                cipher: Module {
                    function: "aes-128-ctr".into(),
                    params: object(serde_json::json!({ "iv": hex::encode(iv) })),
                    message: ciphertext,
                },
            },
            description: description.into(),
            pubkey: secret.public_key().to_vec(),
            path: path.into(),
            uuid,
            version: VERSION,
        }
    }

    /// Decrypts the secret key and checks that it is the key named by `pubkey`.
    pub fn decrypt(&self, password: &str) -> Result<BlsSecretKey, Eip2335Error> {
        let derived = derive(&self.kdf_params()?, password)?;
        if checksum(&derived, &self.crypto.cipher.message) != self.crypto.checksum.message[..] {
            return Err(Eip2335Error::WrongPassword);
        }
        let iv = self.iv()?;
        let mut secret = self.crypto.cipher.message.clone();
        Aes128Ctr::new(derived[..16].into(), (&iv).into()).apply_keystream(&mut secret);
        let key = BlsSecretKey::from_bytes(&secret)
            .map_err(|e| Eip2335Error::BadSecret(e.to_string()))?;
        let stored = self.public_key()?;
        if key.public_key() != stored {
            return Err(Eip2335Error::PubkeyMismatch {
                stored: stored.to_string(),
                derived: key.public_key().to_string(),
            });
        }
        Ok(key)
    }

    fn kdf_params(&self) -> Result<KdfParams, Eip2335Error> {
        kdf_params(&self.crypto.kdf)
    }

    fn iv(&self) -> Result<[u8; 16], Eip2335Error> {
        let cipher = &self.crypto.cipher;
        if cipher.function != "aes-128-ctr" {
            return Err(Eip2335Error::Unsupported(format!(
                "cipher function {:?}",
                cipher.function
            )));
        }
        let params: CipherParams = parse_params(&cipher.params, "cipher")?;
        params
            .iv
            .try_into()
            .map_err(|_| Eip2335Error::BadJson("cipher iv is not 16 bytes".into()))
    }
}

enum KdfParams {
    Scrypt {
        params: scrypt::Params,
        salt: Vec<u8>,
    },
    Pbkdf2 {
        rounds: u32,
        salt: Vec<u8>,
    },
}

fn kdf_params(module: &Module) -> Result<KdfParams, Eip2335Error> {
    match module.function.as_str() {
        "scrypt" => {
            let p: ScryptParams = parse_params(&module.params, "scrypt")?;
            check_dklen(p.dklen)?;
            if !p.n.is_power_of_two() || p.n < 2 {
                return Err(Eip2335Error::BadJson(format!(
                    "scrypt n = {} is not a power of two",
                    p.n
                )));
            }
            let log_n = p.n.trailing_zeros() as u8;
            if log_n > MAX_SCRYPT_LOG_N {
                return Err(Eip2335Error::Unsupported(format!(
                    "scrypt n = 2^{log_n} (at most 2^{MAX_SCRYPT_LOG_N})"
                )));
            }
            let params = scrypt::Params::new(log_n, p.r, p.p, DKLEN as usize)
                .map_err(|e| Eip2335Error::Unsupported(format!("scrypt parameters: {e}")))?;
            Ok(KdfParams::Scrypt {
                params,
                salt: p.salt,
            })
        }
        "pbkdf2" => {
            let p: Pbkdf2Params = parse_params(&module.params, "pbkdf2")?;
            check_dklen(p.dklen)?;
            if p.prf != "hmac-sha256" {
                return Err(Eip2335Error::Unsupported(format!("pbkdf2 prf {:?}", p.prf)));
            }
            if p.c == 0 {
                return Err(Eip2335Error::BadJson("pbkdf2 c = 0".into()));
            }
            Ok(KdfParams::Pbkdf2 {
                rounds: p.c,
                salt: p.salt,
            })
        }
        other => Err(Eip2335Error::Unsupported(format!("kdf function {other:?}"))),
    }
}

fn derive(params: &KdfParams, password: &str) -> Result<[u8; 32], Eip2335Error> {
    let password = normalize_password(password);
    let mut out = [0u8; 32];
    match params {
        KdfParams::Scrypt { params, salt } => scrypt::scrypt(&password, salt, params, &mut out)
            .map_err(|e| Eip2335Error::Unsupported(format!("scrypt: {e}")))?,
        KdfParams::Pbkdf2 { rounds, salt } => {
            pbkdf2::pbkdf2_hmac::<Sha256>(&password, salt, *rounds, &mut out)
        }
    }
    Ok(out)
}

fn checksum(derived: &[u8; 32], ciphertext: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(&derived[16..]);
    hasher.update(ciphertext);
    hasher.finalize().into()
}

fn check_dklen(dklen: u32) -> Result<(), Eip2335Error> {
    if dklen != DKLEN {
        return Err(Eip2335Error::Unsupported(format!(
            "kdf dklen {dklen} (expected {DKLEN})"
        )));
    }
    Ok(())
}

fn parse_params<T: serde::de::DeserializeOwned>(
    params: &serde_json::Map<String, serde_json::Value>,
    what: &str,
) -> Result<T, Eip2335Error> {
    serde_json::from_value(serde_json::Value::Object(params.clone()))
        .map_err(|e| Eip2335Error::BadJson(format!("{what} params: {e}")))
}

fn object(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("called with object literals only"),
    }
}

/// Hex without `0x` (as EIP-2335 writes it); `0x` is accepted when reading.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        let digits = text.strip_prefix("0x").unwrap_or(&text);
        hex::decode(digits).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The EIP's test password: NFKD turns the Fraktur letters into ASCII, the key stays.
    const PASSWORD: &str = "𝔱𝔢𝔰𝔱𝔭𝔞𝔰𝔰𝔴𝔬𝔯𝔡🔑";
    const SECRET: &str = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";
    const PUBKEY: &str = "9612d7a727c9d0a22e185a1c768478dfe919cada9266988cb32359c11f2b7b27f4ae4040902382ae2910c15e2b420d07";
    const SALT: &str = "d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3";
    const IV: &str = "264daa3f303d7259501c93d997d84fe6";

    /// The scrypt test vector of EIP-2335.
    const SCRYPT_VECTOR: &str = r#"{
        "crypto": {
            "kdf": {
                "function": "scrypt",
                "params": {"dklen": 32, "n": 262144, "p": 1, "r": 8,
                           "salt": "d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3"},
                "message": ""
            },
            "checksum": {
                "function": "sha256",
                "params": {},
                "message": "d2217fe5f3e9a1e34581ef8a78f7c9928e436d36dacc5e846690a5581e8ea484"
            },
            "cipher": {
                "function": "aes-128-ctr",
                "params": {"iv": "264daa3f303d7259501c93d997d84fe6"},
                "message": "06ae90d55fe0a6e9c5c3bc5b170827b2e5cce3929ed3f116c2811e6366dfe20f"
            }
        },
        "description": "This is a test keystore that uses scrypt to secure the secret.",
        "pubkey": "9612d7a727c9d0a22e185a1c768478dfe919cada9266988cb32359c11f2b7b27f4ae4040902382ae2910c15e2b420d07",
        "path": "m/12381/60/3141592653/589793238",
        "uuid": "1d85ae20-35c5-4611-98e8-aa14a633906f",
        "version": 4
    }"#;

    /// The PBKDF2 test vector of EIP-2335.
    const PBKDF2_VECTOR: &str = r#"{
        "crypto": {
            "kdf": {
                "function": "pbkdf2",
                "params": {"dklen": 32, "c": 262144, "prf": "hmac-sha256",
                           "salt": "d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3"},
                "message": ""
            },
            "checksum": {
                "function": "sha256",
                "params": {},
                "message": "8a9f5d9912ed7e75ea794bc5a89bca5f193721d30868ade6f73043c6ea6febf1"
            },
            "cipher": {
                "function": "aes-128-ctr",
                "params": {"iv": "264daa3f303d7259501c93d997d84fe6"},
                "message": "cee03fde2af33149775b7223e7845e4fb2c8ae1792e5f99fe9ecf474cc8c16ad"
            }
        },
        "description": "This is a test keystore that uses PBKDF2 to secure the secret.",
        "pubkey": "9612d7a727c9d0a22e185a1c768478dfe919cada9266988cb32359c11f2b7b27f4ae4040902382ae2910c15e2b420d07",
        "path": "m/12381/60/0/0",
        "uuid": "64625def-3331-4eea-ab6f-782f3ed16a83",
        "version": 4
    }"#;

    fn secret() -> BlsSecretKey {
        BlsSecretKey::from_bytes(&hex::decode(SECRET).unwrap()).unwrap()
    }

    fn light_key() -> (BlsSecretKey, Keystore) {
        let key = BlsSecretKey::from_ikm(&[7; 32]).unwrap();
        let keystore = Keystore::encrypt(&key, "hunter2", Kdf::LIGHT, "test");
        (key, keystore)
    }

    #[test]
    fn the_eip_password_normalises_to_the_eip_bytes() {
        assert_eq!(
            hex::encode(normalize_password(PASSWORD)),
            "7465737470617373776f7264f09f9491"
        );
        // Control characters go; NFKD turns the ligature into two letters.
        assert_eq!(
            normalize_password("a\u{0}b\u{7f}c\u{85}d\u{fb01}"),
            b"abcdfi"
        );
    }

    fn check_vector(json: &str, kdf: Kdf) {
        let keystore = Keystore::from_json(json).unwrap();
        let key = keystore.decrypt(PASSWORD).unwrap();
        assert_eq!(hex::encode(key.to_bytes()), SECRET);
        assert_eq!(hex::encode(key.public_key()), PUBKEY);
        // Encrypting the same secret with the vector's salt, IV and UUID gives the same file.
        let again = Keystore::encrypt_with(
            &secret(),
            PASSWORD,
            kdf,
            &hex::decode(SALT).unwrap(),
            &hex::decode(IV).unwrap().try_into().unwrap(),
            keystore.uuid,
            &keystore.path,
            &keystore.description,
        );
        assert_eq!(again, keystore);
        assert!(matches!(
            keystore.decrypt("testpassword"),
            Err(Eip2335Error::WrongPassword)
        ));
    }

    #[test]
    fn the_eip_scrypt_vector_decrypts_and_reencrypts() {
        check_vector(SCRYPT_VECTOR, Kdf::STANDARD);
    }

    #[test]
    fn the_eip_pbkdf2_vector_decrypts_and_reencrypts() {
        check_vector(PBKDF2_VECTOR, Kdf::Pbkdf2 { rounds: 262_144 });
    }

    #[test]
    fn round_trip_through_json() {
        let (key, keystore) = light_key();
        let parsed = Keystore::from_json(&keystore.to_json()).unwrap();
        assert_eq!(parsed, keystore);
        assert_eq!(
            parsed.decrypt("hunter2").unwrap().to_bytes(),
            key.to_bytes()
        );
        assert_eq!(parsed.public_key().unwrap(), key.public_key());
        // Two encryptions of one key differ (fresh salt, IV and UUID).
        let other = Keystore::encrypt(&key, "hunter2", Kdf::LIGHT, "test");
        assert_ne!(other.crypto, keystore.crypto);
        assert_ne!(other.uuid, keystore.uuid);
    }

    #[test]
    fn a_wrong_password_is_refused() {
        let (_, keystore) = light_key();
        assert_eq!(
            keystore.decrypt("hunter3").unwrap_err(),
            Eip2335Error::WrongPassword
        );
        assert_eq!(
            keystore.decrypt("").unwrap_err(),
            Eip2335Error::WrongPassword
        );
    }

    #[test]
    fn a_tampered_ciphertext_or_checksum_is_refused() {
        let (_, keystore) = light_key();
        let mut tampered = keystore.clone();
        tampered.crypto.cipher.message[0] ^= 1;
        assert_eq!(
            tampered.decrypt("hunter2").unwrap_err(),
            Eip2335Error::WrongPassword
        );
        let mut tampered = keystore;
        tampered.crypto.checksum.message[31] ^= 1;
        assert_eq!(
            tampered.decrypt("hunter2").unwrap_err(),
            Eip2335Error::WrongPassword
        );
    }

    #[test]
    fn a_swapped_pubkey_is_refused() {
        let (_, mut keystore) = light_key();
        keystore.pubkey = BlsSecretKey::from_ikm(&[8; 32])
            .unwrap()
            .public_key()
            .to_vec();
        assert!(matches!(
            keystore.decrypt("hunter2"),
            Err(Eip2335Error::PubkeyMismatch { .. })
        ));
    }

    #[test]
    fn malformed_or_unsupported_files_are_refused_before_decryption() {
        let (_, keystore) = light_key();
        let json: serde_json::Value = serde_json::from_str(&keystore.to_json()).unwrap();
        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut j = json.clone();
            f(&mut j);
            Keystore::from_json(&j.to_string()).unwrap_err()
        };
        assert!(matches!(
            Keystore::from_json("{not json"),
            Err(Eip2335Error::BadJson(_))
        ));
        assert!(matches!(
            edit(&|j| j["version"] = 3.into()),
            Eip2335Error::Unsupported(_)
        ));
        assert!(matches!(
            edit(&|j| j["crypto"]["kdf"]["function"] = "argon2".into()),
            Eip2335Error::Unsupported(_)
        ));
        assert!(matches!(
            edit(&|j| j["crypto"]["cipher"]["function"] = "aes-256-gcm".into()),
            Eip2335Error::Unsupported(_)
        ));
        assert!(matches!(
            edit(&|j| j["crypto"]["kdf"]["params"]["n"] = 1000.into()),
            Eip2335Error::BadJson(_)
        ));
        assert!(matches!(
            edit(&|j| j["crypto"]["kdf"]["params"]["n"] = (1u64 << 30).into()),
            Eip2335Error::Unsupported(_)
        ));
        assert!(matches!(
            edit(&|j| j["pubkey"] = "abcd".into()),
            Eip2335Error::BadJson(_)
        ));
        assert!(matches!(
            edit(&|j| j["crypto"]["cipher"]["params"]["iv"] = "zz".into()),
            Eip2335Error::BadJson(_)
        ));
    }
}
