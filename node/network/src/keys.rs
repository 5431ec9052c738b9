//! The node's libp2p identity on disk.
//!
//! The key file holds the 32-byte ed25519 secret key as 64 lowercase hex characters and a
//! newline, nothing else. `bttd testnet init` writes these files ahead of time so every
//! node's peer id (and thus every bootnode multiaddr) is known before any node starts; a node
//! whose file is missing creates one on first start. A file that exists but does not hold a
//! valid key is an error, never silently replaced: replacing it would change the peer id that
//! other nodes have configured as a bootnode.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use alloy_primitives::hex;
use libp2p::{PeerId, identity::Keypair};

use super::error::P2pError;

/// Reads the identity from `path`, or creates a fresh one there (mode 0600, parent
/// directories included) when the file does not exist.
pub fn load_or_create_keypair(path: &Path) -> Result<Keypair, P2pError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_key(path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            write_key_file(path, &keypair)?;
            tracing::info!(target: "bttd::p2p", path = %path.display(), peer_id = %keypair.public().to_peer_id(), "created p2p key file");
            Ok(keypair)
        }
        Err(source) => Err(io_error(path, source)),
    }
}

/// The peer id of the identity stored in `path` (which must exist).
pub fn peer_id_from_key_file(path: &Path) -> Result<PeerId, P2pError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    Ok(parse_key(path, &text)?.public().to_peer_id())
}

/// Writes `keypair` (which must be ed25519) to `path` in the key-file format. Refuses to
/// overwrite an existing file.
pub fn write_key_file(path: &Path, keypair: &Keypair) -> Result<(), P2pError> {
    let text = encode_key(keypair).map_err(|reason| P2pError::KeyFileFormat {
        path: path.to_path_buf(),
        reason,
    })?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| io_error(path, e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(path, e))
}

/// The key-file text of an ed25519 keypair: hex of the 32-byte secret and a newline.
pub fn encode_key(keypair: &Keypair) -> Result<String, String> {
    let ed = keypair
        .clone()
        .try_into_ed25519()
        .map_err(|_| "only ed25519 identities are supported".to_string())?;
    Ok(format!("{}\n", hex::encode(ed.secret().as_ref())))
}

fn parse_key(path: &Path, text: &str) -> Result<Keypair, P2pError> {
    let format_error = |reason: String| P2pError::KeyFileFormat {
        path: path.to_path_buf(),
        reason,
    };
    let trimmed = text.trim_end_matches(['\n', '\r']);
    if trimmed.len() != 64 {
        return Err(format_error(format!(
            "{} characters before the newline",
            trimmed.len()
        )));
    }
    let mut secret = [0u8; 32];
    hex::decode_to_slice(trimmed, &mut secret).map_err(|e| format_error(e.to_string()))?;
    Keypair::ed25519_from_bytes(secret).map_err(|e| format_error(e.to_string()))
}

fn io_error(path: &Path, source: std::io::Error) -> P2pError {
    P2pError::KeyFileIo {
        path: PathBuf::from(path),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_on_first_use_and_stable_afterwards() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/p2p.key");
        let first = load_or_create_keypair(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65);
        assert!(text.ends_with('\n'));
        assert!(
            text[..64]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = load_or_create_keypair(&path).unwrap();
        assert_eq!(first.public(), second.public());
        assert_eq!(
            peer_id_from_key_file(&path).unwrap(),
            first.public().to_peer_id()
        );
    }

    #[test]
    fn known_secret_gives_known_peer_id() {
        // The secret below is what `bttd testnet init` or any other tool writes: the peer id
        // must be the one libp2p derives from the same 32 bytes.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p2p.key");
        let secret = [7u8; 32];
        std::fs::write(&path, format!("{}\n", hex::encode(secret))).unwrap();
        let expected = Keypair::ed25519_from_bytes(secret)
            .unwrap()
            .public()
            .to_peer_id();
        assert_eq!(peer_id_from_key_file(&path).unwrap(), expected);
        // Round trip through the writer gives byte-identical text.
        let keypair = load_or_create_keypair(&path).unwrap();
        assert_eq!(
            encode_key(&keypair).unwrap(),
            std::fs::read_to_string(&path).unwrap()
        );
    }

    #[test]
    fn bad_files_are_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p2p.key");
        for bad in [
            "",
            "abcd\n",
            &"zz".repeat(32),
            &format!("0x{}", "11".repeat(32)),
        ] {
            std::fs::write(&path, bad).unwrap();
            let err = load_or_create_keypair(&path).unwrap_err();
            assert!(
                matches!(err, P2pError::KeyFileFormat { .. }),
                "{bad:?}: {err}"
            );
            assert_eq!(std::fs::read_to_string(&path).unwrap(), bad);
        }
        assert!(matches!(
            peer_id_from_key_file(&dir.path().join("missing")),
            Err(P2pError::KeyFileIo { .. })
        ));
    }
}
