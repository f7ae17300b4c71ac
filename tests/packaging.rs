//! Packaging as a user meets it: install.sh installs relative shim links and `--uninstall` takes
//! away exactly what it put down; `--install-shims --only`; the shell scripts are shellcheck clean
//! and the man page is groff clean. The Debian package itself is tested in a clean Debian root by
//! pkg/test-deb.sh (run by .ci/run: it needs root and Debian's mirror).
mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every path under `root` with what it is: a file's bytes, a link's text, or a directory.
fn tree(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let meta = p.symlink_metadata().unwrap();
            let what = if meta.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if meta.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else {
                format!("file {:?}", std::fs::read(&p).unwrap())
            };
            out.insert(p.strip_prefix(root).unwrap().to_path_buf(), what);
        }
    }
    out
}

fn install_sh(env: &Env, args: &[&str]) -> std::process::Output {
    let out = env
        .cmd("sh")
        .arg(repo().join("install.sh"))
        .args(args)
        .env("CACHEPOT_BIN", cachepot_bin())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "install.sh {args:?}: {}\n{}",
        s(&out.stdout),
        s(&out.stderr)
    );
    out
}

#[test]
fn install_sh_uninstall_removes_exactly_what_it_installed() {
    require_tool("gcc");
    let env = Env::new("uninstall");
    let prefix = env.dir.join("prefix");
    // What was there before: a foreign binary, a man page of another tool, a file of the user's
    // in the shim directory.
    env.dir.write("prefix/bin/other-tool", "#!/bin/sh\n");
    env.dir.write("prefix/share/man/man1/other.1", ".TH OTHER 1\n");
    env.dir.write("prefix/lib/cachepot/notes.txt", "mine");
    let before = tree(&prefix);
    let p = prefix.to_str().unwrap();
    install_sh(&env, &["--no-build", "--prefix", p]);
    assert!(prefix.join("bin/cachepot").is_file());
    assert!(prefix.join("share/man/man1/cachepot.1").is_file());
    assert!(prefix.join("share/doc/cachepot/README.md").is_file());
    assert_eq!(
        std::fs::read_link(prefix.join("lib/cachepot/gcc")).unwrap(),
        PathBuf::from("../../bin/cachepot")
    );
    // The link works: a compile through it is counted by cachepot.
    env.dir.write("a.c", "int f(void) { return 1; }\n");
    let out = env
        .cmd(prefix.join("lib/cachepot/gcc"))
        .args(["-c", "a.c", "-o", "a.o"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    assert_eq!(env.stat("misses"), 1);
    // A refresh after install (a compiler added later) is removed too.
    std::os::unix::fs::symlink("../../bin/cachepot", prefix.join("lib/cachepot/gcc-99")).unwrap();
    install_sh(&env, &["--uninstall", "--prefix", p]);
    assert_eq!(tree(&prefix), before);
    // Nothing to uninstall: one line saying so, and a failure.
    let out = env
        .cmd("sh")
        .arg(repo().join("install.sh"))
        .args(["--uninstall", "--prefix", p])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        s(&out.stderr).contains("install-manifest not found"),
        "{}",
        s(&out.stderr)
    );
}

#[test]
fn install_sh_destdir_stage_has_relative_links_and_no_shims_on_request() {
    let env = Env::new("stage");
    let stage = env.dir.join("stage");
    let st = stage.to_str().unwrap();
    install_sh(&env, &["--no-build", "--prefix", "/usr", "--destdir", st, "--no-shims"]);
    assert!(stage.join("usr/bin/cachepot").is_file());
    assert!(stage.join("usr/lib/cachepot").is_dir());
    assert_eq!(std::fs::read_dir(stage.join("usr/lib/cachepot")).unwrap().count(), 0);
    // The binary itself makes the same relative links there.
    let out = env.ok(&[
        "--install-shims",
        stage.join("usr/lib/cachepot").to_str().unwrap(),
        "--shim-target",
        stage.join("usr/bin/cachepot").to_str().unwrap(),
    ]);
    assert!(
        s(&out.stdout).contains("linked to ../../bin/cachepot"),
        "{}",
        s(&out.stdout)
    );
    let bad = env
        .cmd("sh")
        .arg(repo().join("install.sh"))
        .args(["--no-build", "--prefix", "usr"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(s(&bad.stderr).contains("not an absolute path"), "{}", s(&bad.stderr));
}

#[test]
fn install_shims_says_rustc_is_linked_and_only_c_leaves_it_out() {
    require_tool("rustc");
    require_tool("gcc");
    let env = Env::new("only");
    let dir = env.dir.join("shims");
    let d = dir.to_str().unwrap();
    let out = s(&env.ok(&["--install-shims", d]).stdout);
    assert!(dir.join("rustc").symlink_metadata().is_ok(), "{out}");
    assert!(
        out.contains("cargo builds go through cachepot") && out.contains("--only c"),
        "{out}"
    );
    let out = s(&env.ok(&["--install-shims", d, "--only", "c"]).stdout);
    assert!(dir.join("rustc").symlink_metadata().is_err(), "{out}");
    assert!(dir.join("gcc").symlink_metadata().is_ok(), "{out}");
    assert!(!out.contains("cargo builds"), "{out}");
    let out = env.cachepot(&["--install-shims", d, "--only", "fortran"]);
    assert!(!out.status.success());
    assert!(s(&out.stderr).contains("accepted: c"), "{}", s(&out.stderr));
}

#[test]
fn shell_scripts_are_shellcheck_clean() {
    let shellcheck = require_tool("shellcheck");
    let r = repo();
    let mut scripts: Vec<PathBuf> = [
        "install.sh",
        "demo/demo.sh",
        ".ci/run",
        "pkg/deb/postinst",
        "pkg/deb/prerm",
        "pkg/deb/postrm",
    ]
    .iter()
    .map(|p| r.join(p))
    .collect();
    for dir in [".ci", "pkg"] {
        for e in std::fs::read_dir(r.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "sh") {
                scripts.push(p);
            }
        }
    }
    let out = std::process::Command::new(shellcheck).args(&scripts).output().unwrap();
    assert!(
        out.status.success(),
        "shellcheck:\n{}{}",
        s(&out.stdout),
        s(&out.stderr)
    );
}

#[test]
fn man_page_is_groff_clean() {
    let groff = require_tool("groff");
    let out = std::process::Command::new(groff)
        .args(["-man", "-ww", "-z"])
        .arg(repo().join("man/cachepot.1"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
        "groff -man -ww -z:\n{}",
        s(&out.stderr)
    );
}
