//! File handling shared by the keystores: secrets are written with mode 0600 into directories
//! with mode 0700, never over an existing file, and fsynced, so a crash cannot leave a half
//! key behind a name the node will later read.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::KeyError;

/// Fails with [`KeyError::Exists`] when `path` exists.
pub fn refuse_existing(path: &Path) -> Result<(), KeyError> {
    if path.exists() {
        return Err(KeyError::Exists {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// The directory and file name of `path`.
pub fn split(path: &Path) -> Result<(&Path, &str), KeyError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| KeyError::Write {
            path: path.to_path_buf(),
            reason: "not a file name".into(),
        })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok((dir, name))
}

/// Creates `dir` (and parents); a directory created here gets mode 0700.
pub fn create_dir(dir: &Path) -> Result<(), KeyError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| write_error(dir, e))
}

/// Reads a text file; a missing file is [`KeyError::Missing`].
pub fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => KeyError::Missing {
            path: path.to_path_buf(),
        },
        _ => KeyError::Read {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// Writes a new file (refusing an existing one) with mode 0600 and fsyncs it.
pub fn write_new(path: &Path, contents: &str) -> Result<(), KeyError> {
    let (dir, _) = split(path)?;
    create_dir(dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => KeyError::Exists {
            path: path.to_path_buf(),
        },
        _ => write_error(path, e),
    })?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| write_error(path, e))
}

/// Atomically replaces `path` with `contents` (mode 0600): a temporary file, fsync, rename.
pub fn replace(path: &Path, contents: &str) -> Result<(), KeyError> {
    let mut tmp = PathBuf::from(path);
    tmp.as_mut_os_string().push(".tmp");
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, contents)?;
    std::fs::rename(&tmp, path).map_err(|e| write_error(path, e))
}

/// Removes files written by a step that failed later, so bad input leaves nothing behind.
pub fn remove_all(paths: &[PathBuf]) {
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
}

fn write_error(path: &Path, e: std::io::Error) -> KeyError {
    KeyError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}
