//! One way to replace a file: write a temporary file beside it, then rename it into place, so no
//! reader ever sees half of it, and the temporary file is removed whatever fails. Never renames
//! over anything but a regular file: as root, renaming over /dev/null would replace it for the
//! whole machine. (Compile outputs have their own rules — modes, symlinks, special files — in
//! outputs.rs.)

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A temporary file beside its destination; removed when dropped unless persisted.
pub struct TempFile {
    path: PathBuf,
    persisted: bool,
}

impl TempFile {
    /// Create a new, empty temporary file in the directory of `dest` (created if missing), with
    /// `mode` (before the umask).
    pub fn beside(dest: &Path, mode: u32) -> io::Result<(TempFile, File)> {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir)?;
        let name = dest.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let path = dir.join(format!(
            ".{name}.tmp.{}.{nanos}.{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&path)?;
        Ok((TempFile { path, persisted: false }, f))
    }

    /// Link into place, never over anything: `AlreadyExists` when `dest` exists (keys, which must
    /// not change under what was signed with them). The temporary name is removed when dropped.
    pub fn persist_new(self, dest: &Path) -> io::Result<()> {
        std::fs::hard_link(&self.path, dest)
    }

    /// Rename into place. Refuses when `dest` exists and is not a regular file.
    pub fn persist(mut self, dest: &Path) -> io::Result<()> {
        refuse_special(dest)?;
        std::fs::rename(&self.path, dest)?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Replace `dest` with `data` (mode 0644 before the umask).
pub fn write(dest: &Path, data: &[u8]) -> io::Result<()> {
    write_mode(dest, data, 0o644)
}

/// Replace `dest` with `data` readable by this user only (0600): credentials, tokens, keys.
pub fn write_private(dest: &Path, data: &[u8]) -> io::Result<()> {
    write_mode(dest, data, 0o600)
}

/// Create `dest` with `data`, readable by this user only (0600), never replacing anything: fails with
/// `AlreadyExists` when `dest` exists. Readers never see half of it (it is linked into place whole).
pub fn create_private(dest: &Path, data: &[u8]) -> io::Result<()> {
    // Checked first too: no temporary file is made beside something that exists (a device).
    if std::fs::symlink_metadata(dest).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists", dest.display()),
        ));
    }
    let (tmp, mut f) = TempFile::beside(dest, 0o600)?;
    f.write_all(data)?;
    drop(f);
    tmp.persist_new(dest)
}

fn refuse_special(dest: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(dest) {
        Ok(m) if !m.is_file() => Err(io::Error::other(format!(
            "{} is not a regular file; not replacing it",
            dest.display()
        ))),
        _ => Ok(()),
    }
}

fn write_mode(dest: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    // Checked before and at the rename: no temporary file is ever made beside a device.
    refuse_special(dest)?;
    let (tmp, mut f) = TempFile::beside(dest, mode)?;
    f.write_all(data)?;
    drop(f);
    tmp.persist(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("cachepot-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let f = dir.join("sub/file");
        write(&f, b"one").unwrap();
        write(&f, b"two").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        // A directory where the file belongs: an error, and no temp file left behind.
        let d = dir.join("sub/dir");
        std::fs::create_dir_all(&d).unwrap();
        assert!(write(&d, b"x").is_err());
        let names: Vec<_> = std::fs::read_dir(dir.join("sub"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn create_private_never_replaces() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("cachepot-atomic-new-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let f = dir.join("key");
        create_private(&f, b"one").unwrap();
        let e = create_private(&f, b"two").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&f).unwrap(), b"one");
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "a temporary file was left");
        assert!(create_private(Path::new("/dev/null"), b"x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn never_renames_over_a_special_file() {
        use std::os::unix::fs::FileTypeExt;
        assert!(write(Path::new("/dev/null"), b"x").is_err());
        assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
    }
}
