//! Reading and writing the keystore file: bounded reads, mode 0600, atomic replacement, and the
//! service user as owner when root edits the service's keystore.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::KeystoreError;
use crate::sealed::MAX_FILE_BYTES;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeystoreError + '_ {
    move |source| KeystoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The file's bytes, `None` when it does not exist.
pub fn read(path: &Path) -> Result<Option<Vec<u8>>, KeystoreError> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io(path))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(KeystoreError::Format(format!(
            "{} is larger than {MAX_FILE_BYTES} bytes",
            path.display()
        )));
    }
    Ok(Some(bytes))
}

/// Writes `bytes` to `path` through a temporary file in the same directory (mode 0600, synced,
/// then renamed). When the writer is root and the directory belongs to someone else (root
/// running `skiff keystore add` for the `skiff` service), the file is given to the directory's
/// owner: the service must read it, and nobody else may.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), KeystoreError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(io(dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        // The mode given to open() is reduced by the umask; 0600 must hold regardless.
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        let mine = f.metadata().map_err(io(&tmp))?;
        let dir_meta = fs::metadata(dir).map_err(io(dir))?;
        if mine.uid() == 0 && dir_meta.uid() != 0 {
            std::os::unix::fs::chown(&tmp, Some(dir_meta.uid()), Some(dir_meta.gid()))
                .map_err(io(&tmp))?;
        }
        fs::rename(&tmp, path).map_err(io(path))?;
        // Make the rename itself durable.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn mode_is_0600_whatever_the_umask_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/ks");
        write(&p, b"one").unwrap();
        write(&p, b"two").unwrap();
        assert_eq!(read(&p).unwrap().unwrap(), b"two");
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["ks"], "temporary file left behind");
    }

    #[test]
    fn oversized_file_is_refused_without_reading_it_all() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ks");
        let f = fs::File::create(&p).unwrap();
        f.set_len(MAX_FILE_BYTES + 10).unwrap();
        assert!(matches!(read(&p), Err(KeystoreError::Format(_))));
    }
}
