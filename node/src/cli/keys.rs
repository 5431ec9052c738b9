//! `bttd keys new|show|import`: a validator's account key (Web3 Secret Storage v3) and BLS key
//! (EIP-2335, with its proof of possession) in one keystore directory, under one password.
//!
//! `new` and `import` use EIP-2335's standard scrypt (n = 2^18) for the BLS keystore unless
//! `--light-kdf` asks for n = 2^12 (throwaway test keys); `show` needs no password.

use std::io::Write;
use std::path::PathBuf;

use bttd_keys::{
    Kdf, KeyInfo, KeystoreDir, ValidatorKeys, open_account_keystore, open_bls_keystore,
    read_password_file,
};
use clap::{ArgGroup, Args, Subcommand};
use eyre::{WrapErr, eyre};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate an account key and a BLS key and write their keystores.
    New(NewArgs),
    /// Print the address, BLS public key and proof of possession of existing keystores.
    Show(ShowArgs),
    /// Write keystores for existing keys (raw hex or keystores from other tools).
    Import(ImportArgs),
}

/// Where the keystores are: a node home (its `keystore/`) or the directory itself.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("location").required(true).args(["home", "keystore_dir"])))]
pub struct Location {
    /// Node home: the keystores live in HOME/keystore (as `[validator]` of config.toml expects).
    #[arg(long)]
    home: Option<PathBuf>,
    /// The keystore directory itself.
    #[arg(long)]
    keystore_dir: Option<PathBuf>,
}

impl Location {
    fn dir(&self) -> KeystoreDir {
        match (&self.home, &self.keystore_dir) {
            (_, Some(dir)) => KeystoreDir::new(dir),
            (Some(home), None) => KeystoreDir::new(home.join(bttd_node::testnet::KEYSTORE_DIR)),
            (None, None) => unreachable!("clap requires one of --home, --keystore-dir"),
        }
    }
}

#[derive(Debug, Args)]
pub struct NewArgs {
    #[command(flatten)]
    location: Location,
    /// File whose first line is the password for both keystores.
    #[arg(long)]
    password_file: PathBuf,
    /// scrypt n = 2^12 instead of 2^18 for the BLS keystore: fast, weak; for test keys only.
    #[arg(long)]
    light_kdf: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    location: Location,
    /// Also decrypt both keystores with this password and check them (and rewrite a missing
    /// bls.pop).
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("account").required(true).args(["account_key", "account_keystore"])))]
#[command(group(ArgGroup::new("bls").required(true).args(["bls_key", "bls_keystore"])))]
pub struct ImportArgs {
    #[command(flatten)]
    location: Location,
    /// File whose first line is the password of the new keystores.
    #[arg(long)]
    password_file: PathBuf,
    /// The account's secp256k1 private key, 32 bytes of hex (visible in `ps` and shell
    /// history: prefer --account-keystore).
    #[arg(long)]
    account_key: Option<String>,
    /// A Web3 Secret Storage (v3) keystore holding the account key.
    #[arg(long)]
    account_keystore: Option<PathBuf>,
    /// The BLS secret key, 32 bytes of big-endian hex.
    #[arg(long)]
    bls_key: Option<String>,
    /// An EIP-2335 keystore holding the BLS key.
    #[arg(long)]
    bls_keystore: Option<PathBuf>,
    /// Password of the keystores being imported (default: --password-file).
    #[arg(long)]
    source_password_file: Option<PathBuf>,
    /// scrypt n = 2^12 instead of 2^18 for the BLS keystore: fast, weak; for test keys only.
    #[arg(long)]
    light_kdf: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(command: KeysCommand) -> eyre::Result<()> {
    match command {
        KeysCommand::New(args) => {
            let password = read_password_file(&args.password_file)?;
            let dir = args.location.dir();
            let info = dir.create(&ValidatorKeys::generate(), &password, kdf(args.light_kdf))?;
            print(&info, args.json)
        }
        KeysCommand::Show(args) => {
            let dir = args.location.dir();
            if let Some(path) = &args.password_file {
                dir.unlock(&read_password_file(path)?)?;
            }
            print(&dir.show()?, args.json)
        }
        KeysCommand::Import(args) => {
            let password = read_password_file(&args.password_file)?;
            let source_password = || -> eyre::Result<String> {
                let path = args
                    .source_password_file
                    .as_ref()
                    .unwrap_or(&args.password_file);
                Ok(read_password_file(path)?)
            };
            let account = match (&args.account_key, &args.account_keystore) {
                (Some(hex), _) => secret("--account-key", hex)?,
                (None, Some(path)) => open_account_keystore(path, &source_password()?)?
                    .to_bytes()
                    .to_vec(),
                (None, None) => unreachable!("clap requires an account key"),
            };
            let bls = match (&args.bls_key, &args.bls_keystore) {
                (Some(hex), _) => secret("--bls-key", hex)?,
                (None, Some(path)) => open_bls_keystore(path, &source_password()?)?
                    .to_bytes()
                    .to_vec(),
                (None, None) => unreachable!("clap requires a BLS key"),
            };
            let keys = ValidatorKeys::from_secrets(&account, &bls)?;
            let info = args
                .location
                .dir()
                .create(&keys, &password, kdf(args.light_kdf))?;
            print(&info, args.json)
        }
    }
}

fn kdf(light: bool) -> Kdf {
    if light { Kdf::LIGHT } else { Kdf::STANDARD }
}

/// A 32-byte secret given as hex on the command line.
fn secret(flag: &str, text: &str) -> eyre::Result<Vec<u8>> {
    let digits = text.trim().strip_prefix("0x").unwrap_or(text.trim());
    let bytes = hex::decode(digits).map_err(|e| eyre!("{flag}: not hex: {e}"))?;
    if bytes.len() != 32 {
        return Err(eyre!("{flag}: {} bytes, expected 32", bytes.len()));
    }
    Ok(bytes)
}

fn print(info: &KeyInfo, json: bool) -> eyre::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(info)?)?;
    } else {
        writeln!(out, "Account address:     {}", info.address)?;
        writeln!(out, "BLS public key:      {}", info.bls_public_key)?;
        writeln!(out, "Proof of possession: {}", info.proof_of_possession)?;
        writeln!(
            out,
            "Account keystore:    {}",
            info.account_keystore.display()
        )?;
        writeln!(out, "BLS keystore:        {}", info.bls_keystore.display())?;
    }
    out.flush().wrap_err("writing to stdout")
}
