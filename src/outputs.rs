//! Writing a hit's files to the paths from the command line. A regular file (or a new path) is
//! written to a temporary file beside it and renamed into place, so a build never sees half an
//! object; anything else (`/dev/null`, a FIFO, a terminal) is written through and never renamed
//! over: as root, renaming over /dev/null would replace it for the whole machine.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Write `data` to `path` as the compiler would have: atomically for regular files, with the mode
/// a compiler gives new files (0666 minus the umask).
#[allow(dead_code)] // hits stream through PendingOutput; kept for whole-buffer writers
pub fn write_output(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Ok(meta) = fs::symlink_metadata(path) {
        let ft = meta.file_type();
        if ft.is_symlink() {
            // Follow a symlinked output the way the compiler's open() would: to whatever it names.
            if let Ok(target) = fs::metadata(path)
                && !target.is_file()
            {
                return write_through(path, data);
            }
        } else if !ft.is_file() {
            if ft.is_dir() {
                return Err(std::io::Error::other(format!("{} is a directory", path.display())));
            }
            return write_through(path, data);
        }
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.cachepot-{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o666)
            .open(&tmp)?;
        f.write_all(data)?;
        // The umask applied at open already; set it explicitly in case the temp file pre-existed.
        f.set_permissions(fs::Permissions::from_mode(new_file_mode()))?;
        drop(f);
        fs::rename(&tmp, rename_target(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// An output being written: to a temporary file beside its destination (or, for a special file,
/// in `spare_dir`), made visible by `commit` only after the entry it comes from was verified.
pub struct PendingOutput {
    tmp: PathBuf,
    dest: PathBuf,
    special: bool,
}

impl PendingOutput {
    pub fn create(dest: &Path, spare_dir: &Path) -> std::io::Result<(PendingOutput, fs::File)> {
        let special = is_special(dest)?;
        let dir = if special {
            fs::create_dir_all(spare_dir)?;
            spare_dir.to_path_buf()
        } else {
            match dest.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            }
        };
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let tmp = dir.join(format!(".{name}.cachepot-{}-{nanos}.tmp", std::process::id()));
        let f = OpenOptions::new().write(true).create_new(true).mode(0o666).open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(new_file_mode()))?;
        Ok((
            PendingOutput {
                tmp,
                dest: dest.to_path_buf(),
                special,
            },
            f,
        ))
    }

    /// Put the file in place: rename over a regular file, write through to a special one.
    pub fn commit(self) -> std::io::Result<()> {
        let result = if self.special {
            fs::read(&self.tmp).and_then(|data| write_through(&self.dest, &data))
        } else {
            fs::rename(&self.tmp, rename_target(&self.dest))
        };
        if self.special || result.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        result
    }

    pub fn abort(self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Where to rename a new output to put it at `path`. rename() onto a symlink replaces the link
/// itself, where the compiler would have written through it: a symlink is resolved first. Only the
/// last component matters (a rename through a linked directory lands where an open would), so a
/// plain file costs one `lstat`, not a `readlink` per component.
fn rename_target(path: &Path) -> PathBuf {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

/// Does `path` name something other than a regular file (or a symlink to one, or nothing)?
/// Anything under `/dev` or `/proc`, or a link into `/proc` (`/dev/stdout` → `/proc/self/fd/1`),
/// counts as special even when it resolves to a regular file (stdout redirected to one): no temp
/// file may be made beside it, and no rename may land on what it points to.
fn is_special(path: &Path) -> std::io::Result<bool> {
    if in_dev_or_proc(path) {
        return Ok(true);
    }
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(std::io::Error::other(format!("{} is a directory", path.display()))),
        Ok(m) => Ok(!m.is_file()),
        Err(_) => Ok(false),
    }
}

fn in_dev_or_proc(path: &Path) -> bool {
    let system = |p: &Path| p.starts_with("/dev") || p.starts_with("/proc");
    system(path) || fs::read_link(path).is_ok_and(|t| system(&t))
}

/// Is `path` an output that is not stored and not restored: `/dev/null`, or the compiler's own
/// stdout/stderr (`-MF /dev/stdout`), whose bytes are in the captured output that a hit replays
/// (writing them again would print them twice).
pub fn needs_no_restore(path: &Path) -> bool {
    matches!(
        path.to_str(),
        Some(
            "/dev/null"
                | "/dev/stdout"
                | "/dev/stderr"
                | "/dev/fd/1"
                | "/dev/fd/2"
                | "/proc/self/fd/1"
                | "/proc/self/fd/2"
        )
    )
}

/// Is `path` something other than a regular file we could read back after a compile (a device,
/// a FIFO, a path under `/dev` or `/proc`)?
pub fn is_special_output(path: &Path) -> bool {
    is_special(path).unwrap_or(true)
}

fn write_through(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    f.write_all(data)
}

/// 0666 minus the process umask.
pub fn new_file_mode() -> u32 {
    static MODE: OnceLock<u32> = OnceLock::new();
    *MODE.get_or_init(|| {
        // SAFETY: umask() cannot fail; we set it back at once. cachepot is single-threaded here,
        // so no other thread creates files between the two calls.
        let mask = unsafe {
            let m = libc::umask(0o022);
            libc::umask(m);
            m
        };
        0o666 & !(mask as u32)
    })
}

/// Is this path something we may read back as a regular file after a compile?
pub fn is_regular_file(path: &Path) -> bool {
    fs::metadata(path).map(|m| m.is_file()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn regular_and_special_files() {
        let d = std::env::temp_dir().join(format!("cachepot-out-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        let p = d.join("a.o");
        write_output(&p, b"one").unwrap();
        write_output(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, new_file_mode());
        write_output(Path::new("/dev/null"), b"x").unwrap();
        assert!(fs::metadata("/dev/null").unwrap().file_type().is_char_device());
        // /dev/stdout is special even when this process's stdout is a regular file.
        assert!(is_special(Path::new("/dev/stdout")).unwrap());
        assert!(is_special(Path::new("/proc/self/fd/1")).unwrap());
        assert!(!is_special(&p).unwrap());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_symlinked_output_is_written_through_the_link() {
        let d = std::env::temp_dir().join(format!("cachepot-out-link-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("real")).unwrap();
        fs::write(d.join("real/a.o"), "old").unwrap();
        std::os::unix::fs::symlink(d.join("real/a.o"), d.join("a.o")).unwrap();
        write_output(&d.join("a.o"), b"one").unwrap();
        let (pending, mut f) = PendingOutput::create(&d.join("a.o"), &d.join("spare")).unwrap();
        f.write_all(b"two").unwrap();
        drop(f);
        pending.commit().unwrap();
        assert!(fs::symlink_metadata(d.join("a.o")).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(d.join("real/a.o")).unwrap(), b"two");
        // Nothing left behind but the two files.
        assert_eq!(
            fs::read_dir(&d).unwrap().count() + fs::read_dir(d.join("real")).unwrap().count(),
            3
        );
        fs::remove_dir_all(&d).unwrap();
    }
}
