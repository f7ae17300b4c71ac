//! A miss on a cache dir that cannot take cachepot's own dependency file (issue: "a cache never
//! breaks a build"): without the user's `-MD`, cachepot asks the compiler for one in the cache
//! dir. When that place is full, read-only or not this user's, the build must still succeed with
//! the compiler's own object and output, and nothing of cachepot's on stderr. The cache dir is a
//! real tmpfs (the tests run as root, as CI does) and another uid via setpriv.
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for one test, unmounted when dropped (even when the test fails).
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    fn mount(at: &Path, opts: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(
            st.success(),
            "mount -t tmpfs failed (the tests run as root, as CI does)"
        );
        Tmpfs { at: at.to_path_buf() }
    }

    /// Fill the file system to the last block.
    fn fill(&self) {
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=4k"])
            .arg(format!("of={}", self.at.join("filler").display()))
            .stderr(std::process::Stdio::null())
            .status();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

const SOURCE: &str = "#include <stdio.h>\nint main(void) { printf(\"hi\\n\"); return 0; }\n";

fn plain_object(env: &Env) -> Vec<u8> {
    let gcc = require_tool("gcc");
    let st = Command::new(gcc)
        .current_dir(&env.dir.path)
        .args(["-O1", "-c", "a.c", "-o", "plain.o"])
        .status()
        .unwrap();
    assert!(st.success());
    env.dir.read("plain.o")
}

/// The cache dir's file system is full: the compiler cannot write the dependency file there.
#[test]
fn full_cache_disk_miss_builds() {
    let env = Env::new("depfile-full");
    env.dir.write("a.c", SOURCE);
    let fs = Tmpfs::mount(&env.cache, "size=256k");
    // One call while there is room, so the cache's own directories exist; then fill it.
    env.ok(&["gcc", "-O1", "-c", "a.c", "-o", "first.o"]);
    fs.fill();
    env.dir.write("a.c", format!("{SOURCE}int changed;\n"));
    let out = env.cachepot(&["gcc", "-O1", "-c", "a.c", "-o", "a.o"]);
    assert!(out.status.success(), "the build failed: {}", s(&out.stderr));
    assert_eq!(s(&out.stderr), "", "nothing of cachepot's on stderr");
    assert_eq!(env.dir.read("a.o"), plain_object(&env));
}

/// The cache dir belongs to root, and the compile runs as another user: nothing can be created
/// in it, not even the dependency file (its tmp/ already exists, so only a write would tell).
#[test]
fn cache_dir_of_another_user_miss_builds() {
    let setpriv = require_tool("setpriv");
    let env = Env::new("depfile-otheruid");
    env.dir.write("a.c", SOURCE);
    env.ok(&["gcc", "-O1", "-c", "a.c", "-o", "first.o"]);
    assert!(
        env.cache.join("tmp").is_dir(),
        "the first call made the cache's tmp dir"
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&env.dir.path, std::fs::Permissions::from_mode(0o777)).unwrap();
    env.dir.write("a.c", format!("{SOURCE}int changed;\n"));
    std::fs::set_permissions(env.dir.join("a.c"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env
        .cmd(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(cachepot_bin())
        .args(["gcc", "-O1", "-c", "a.c", "-o", "a.o"])
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert!(out.status.success(), "the build failed: {}", s(&out.stderr));
    assert_eq!(s(&out.stderr), "", "nothing of cachepot's on stderr");
    assert_eq!(env.dir.read("a.o"), plain_object(&env));
}

/// A read-only cache dir (a read-only bind mount of it): builds work, and since the compiles still
/// go through the cache's keys, a writable cache later hits what a read-only one could not store.
#[test]
fn read_only_cache_dir_miss_builds() {
    let env = Env::new("depfile-ro");
    env.dir.write("a.c", SOURCE);
    env.ok(&["gcc", "-O1", "-c", "a.c", "-o", "first.o"]);
    let st = Command::new("mount")
        .arg("--bind")
        .arg(&env.cache)
        .arg(&env.cache)
        .status()
        .unwrap();
    assert!(st.success(), "mount --bind");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _bind = Unmount(env.cache.clone());
    let st = Command::new("mount")
        .args(["-o", "remount,bind,ro"])
        .arg(&env.cache)
        .status()
        .unwrap();
    assert!(st.success(), "remount read-only");
    env.dir.write("a.c", format!("{SOURCE}int changed;\n"));
    let out = env.cachepot(&["gcc", "-O1", "-c", "a.c", "-o", "a.o"]);
    assert!(out.status.success(), "the build failed: {}", s(&out.stderr));
    assert_eq!(s(&out.stderr), "", "nothing of cachepot's on stderr");
    assert_eq!(env.dir.read("a.o"), plain_object(&env));
}
