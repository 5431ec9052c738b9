//! Password files: the first line of the file is the password (a trailing `\r` is dropped,
//! other whitespace is kept: it may be part of the password).

use std::path::Path;

use rand::RngCore;

use super::{KeyError, fs};

/// Reads the password from the first line of `path`; an empty password is refused.
pub fn read_password_file(path: &Path) -> Result<String, KeyError> {
    let text = fs::read(path)?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(KeyError::EmptyPassword {
            path: path.to_path_buf(),
        });
    }
    Ok(line.to_string())
}

/// A random password: 32 hex characters (128 bits).
pub fn random_password() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Writes a new password file (mode 0600; refuses an existing file).
pub fn write_password_file(path: &Path, password: &str) -> Result<(), KeyError> {
    fs::write_new(path, &format!("{password}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_is_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, " pass word \r\nsecond line\n").unwrap();
        assert_eq!(read_password_file(&path).unwrap(), " pass word ");
        std::fs::write(&path, "\nx").unwrap();
        assert!(matches!(
            read_password_file(&path),
            Err(KeyError::EmptyPassword { .. })
        ));
        assert!(matches!(
            read_password_file(&dir.path().join("none")),
            Err(KeyError::Missing { .. })
        ));
        let generated = dir.path().join("generated");
        let password = random_password();
        assert_eq!(password.len(), 32);
        write_password_file(&generated, &password).unwrap();
        assert_eq!(read_password_file(&generated).unwrap(), password);
        assert_ne!(random_password(), password);
    }
}
