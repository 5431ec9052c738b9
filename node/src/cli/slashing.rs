//! `bttd slashing-protection export|import`: move a validator's record of what it signed to
//! another machine, so the validator can never sign a conflicting vote after a migration.
//! Import keeps whichever record is further along; neither command runs while the node does
//! (the node holds the record and rewrites it before every vote).

use std::path::{Path, PathBuf};

use bttd_genesis::ChainSpec;
use bttd_keys::slashing_db::FileSlashingStore;
use bttd_node::config::NodeConfig;
use clap::{Args, Subcommand};
use eyre::WrapErr;

#[derive(Debug, Subcommand)]
pub enum SlashingCommand {
    /// Write the validator's slashing-protection record to a file.
    Export(ExportArgs),
    /// Merge an exported record into the validator's (the later record wins).
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The validator's node home.
    #[arg(long)]
    home: PathBuf,
    /// Where to write the record.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The validator's node home.
    #[arg(long)]
    home: PathBuf,
    /// A record written by `export`.
    #[arg(long)]
    file: PathBuf,
}

/// The record's path and the chain (genesis hash) of a node home.
fn locate(home: &Path) -> eyre::Result<(PathBuf, alloy_primitives::B256)> {
    let mut config = NodeConfig::load(&home.join("config.toml"))?;
    config.resolve_paths(home);
    let datadir = config
        .datadir
        .clone()
        .expect("resolve_paths sets the datadir");
    let genesis = config
        .genesis
        .clone()
        .expect("resolve_paths sets the genesis");
    let spec = ChainSpec::load(&genesis)?;
    let chain = spec.genesis_hash()?;
    let record = config
        .validator
        .as_ref()
        .map(|v| v.slashing_db.clone())
        .ok_or_else(|| eyre::eyre!("{} has no [validator] section", home.display()))?;
    let record = if record.is_relative() {
        datadir.join(record)
    } else {
        record
    };
    Ok((record, chain))
}

pub fn run(command: SlashingCommand) -> eyre::Result<()> {
    match command {
        SlashingCommand::Export(args) => {
            let (path, chain) = locate(&args.home)?;
            // Opening checks the format and the chain before anything is written.
            let (_, record) = FileSlashingStore::open(&path, chain)?;
            let (mut out, _) = FileSlashingStore::open(&args.out, chain)
                .wrap_err_with(|| format!("{} exists and is not a record", args.out.display()))?;
            bttd_consensus::SlashingStore::save(&mut out, &record)
                .map_err(|e| eyre::eyre!("writing {}: {e}", args.out.display()))?;
            println!("exported {} to {}", path.display(), args.out.display());
        }
        SlashingCommand::Import(args) => {
            let (path, chain) = locate(&args.home)?;
            let record = FileSlashingStore::import(&path, chain, &args.file)?;
            let latest = record
                .latest
                .map(|l| format!("height {} round {}", l.height, l.round))
                .unwrap_or_else(|| "nothing signed".into());
            println!(
                "imported into {}: latest signature at {latest}",
                path.display()
            );
        }
    }
    Ok(())
}
