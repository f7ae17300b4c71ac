//! Base directories for rustc calls: what lets a crate compiled under another `$CARGO_HOME`,
//! another target dir or another checkout share its entry.
//!
//! Three kinds of base, innermost first when they nest:
//! - the build's profile dir (`<target>/debug`, the parent of `deps/` or `build/<unit>/`), named
//!   `$TARGET_PROFILE` in keys and stored files, and remapped to `target/<profile>` in what rustc
//!   writes (the path it has when the target dir is `./target` of the workspace);
//! - `$CARGO_HOME` (the variable, else `~/.cargo`): registry and git sources, named and remapped
//!   `$CARGO_HOME`;
//! - the configured `CACHEPOT_BASEDIRS`, named by their path from the working directory, as for C.
//!
//! The first two are implicit (`rust_implicit_basedirs`, on by default). An absolute path under a
//! base is keyed by its name; rustc is given `--remap-path-prefix=<base>=<name>` for each base (and
//! `<cwd>=.` when the working directory is under a configured base) before the user's own
//! arguments, so where the user remaps too, the user's remapping wins (rustc applies the last
//! matching one). Stored dep-info and messages carry marks (`paths::mark`) that a hit turns back
//! into this build's paths. An output that still names a base by its absolute path is stored for
//! this location only (rust/mod.rs).

use crate::paths::{self, normalize, relative};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const CARGO_HOME: &str = "$CARGO_HOME";
const PROFILE: &str = "$TARGET_PROFILE";
const SYSROOT: &str = "$RUST_SYSROOT";

#[derive(Debug, Clone)]
struct Base {
    dir: PathBuf,
    /// `$CARGO_HOME` or `$TARGET_PROFILE`; none for a configured base (named relative to the cwd).
    name: Option<&'static str>,
    /// What rustc writes in its place (none: not remapped).
    remap_to: Option<OsString>,
}

/// The bases in force for one rustc call.
#[derive(Debug, Clone)]
pub struct RustBases {
    cwd: PathBuf,
    /// Longest first.
    bases: Vec<Base>,
    /// The working directory is under a configured base: rustc records it as ".".
    cwd_remapped: bool,
    /// Every path is remapped to itself (`with_root_remap`).
    root_remapped: bool,
}

impl RustBases {
    /// `configured`: `CACHEPOT_BASEDIRS`; `implicit`: whether `$CARGO_HOME` and the profile dir
    /// count; `out_dir` as the call names it.
    pub fn new(configured: &[PathBuf], implicit: bool, cwd: &Path, out_dir: &Path) -> RustBases {
        let mut bases: Vec<Base> = configured
            .iter()
            .filter(|d| d.is_absolute() && d.parent().is_some())
            .map(|d| {
                let dir = normalize(d);
                let remap_to = Some(relative(cwd, &dir).into_os_string());
                Base {
                    dir,
                    name: None,
                    remap_to,
                }
            })
            .collect();
        if implicit {
            if let Some(home) = cargo_home().filter(|h| h.is_absolute() && h.parent().is_some()) {
                bases.push(Base {
                    dir: normalize(&home),
                    name: Some(CARGO_HOME),
                    remap_to: Some(CARGO_HOME.into()),
                });
            }
            if let Some(profile) = crate::compiler::rustc::profile_dir(&cwd.join(out_dir))
                && let Some(pname) = profile.file_name()
            {
                let mut remap_to = OsString::from("target/");
                remap_to.push(pname);
                bases.push(Base {
                    dir: profile,
                    name: Some(PROFILE),
                    remap_to: Some(remap_to),
                });
            }
        }
        bases.sort_by_key(|b| std::cmp::Reverse(b.dir.as_os_str().len()));
        bases.dedup_by(|a, b| a.dir == b.dir);
        let cwd_remapped = bases.iter().any(|b| b.name.is_none() && cwd.starts_with(&b.dir));
        RustBases {
            cwd: cwd.to_path_buf(),
            bases,
            cwd_remapped,
            root_remapped: false,
        }
    }

    /// The toolchain's sysroot as a base too: the standard library a link reads is named by it
    /// (its content is the toolchain's identity). rustc already records its own sources as
    /// `/rustc/<hash>`: no remapping.
    pub fn with_sysroot(mut self, sysroot: &Path) -> RustBases {
        if sysroot.is_absolute() && sysroot.parent().is_some() {
            self.bases.push(Base {
                dir: normalize(sysroot),
                name: Some(SYSROOT),
                remap_to: None,
            });
            self.bases.sort_by_key(|b| std::cmp::Reverse(b.dir.as_os_str().len()));
            self.bases.dedup_by(|a, b| a.dir == b.dir);
        }
        self
    }

    /// `/` remapped to `/`, outermost: rustc then records every path as remapped, with the same
    /// text. A remote compile (rust/remote.rs) remaps its input root to `/`, which marks its paths
    /// so; with this, a local compile writes the same bytes, and keys say so.
    pub fn with_root_remap(mut self) -> RustBases {
        self.root_remapped = true;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.bases.is_empty()
    }

    fn dirs(&self) -> Vec<PathBuf> {
        self.bases.iter().map(|b| b.dir.clone()).collect()
    }

    /// Each remapped directory with what rustc writes for it, outermost first: rustc applies the
    /// last matching remapping, so the innermost wins. The working directory is one of them when it
    /// lies under a configured base (it becomes ".").
    fn remaps(&self) -> Vec<(&Path, &OsStr, &str)> {
        let mut r: Vec<(&Path, &OsStr, &str)> = self
            .bases
            .iter()
            .filter_map(|b| {
                Some((
                    b.dir.as_path(),
                    b.remap_to.as_deref()?,
                    b.name.unwrap_or("<configured>"),
                ))
            })
            .collect();
        if self.cwd_remapped && !self.bases.iter().any(|b| b.dir == self.cwd) {
            r.push((&self.cwd, OsStr::new("."), "<cwd>"));
        }
        if self.root_remapped {
            r.push((Path::new("/"), OsStr::new("/"), "<root>"));
        }
        r.sort_by_key(|(d, _, _)| d.as_os_str().len());
        r
    }

    /// The arguments that make rustc record base paths by name.
    pub fn remap_args(&self) -> Vec<OsString> {
        self.remaps().into_iter().map(|(d, to, _)| remap_arg(d, to)).collect()
    }

    /// What the remapping arguments are keyed as: their effect, not the absolute paths.
    pub fn key_remaps(&self) -> Vec<String> {
        self.remaps()
            .into_iter()
            .map(|(_, to, name)| format!("{name} -> {}", to.to_string_lossy()))
            .collect()
    }

    /// How a key names `p` (absolute and normalized): its base's name and the rest, or as is.
    fn keyed(&self, p: &Path) -> Vec<u8> {
        match self.bases.iter().find(|b| p.starts_with(&b.dir)) {
            Some(b @ Base { name: Some(n), .. }) => {
                let rest = p.strip_prefix(&b.dir).unwrap_or(p);
                let mut out = n.as_bytes().to_vec();
                if !rest.as_os_str().is_empty() {
                    out.push(b'/');
                    out.extend_from_slice(rest.as_os_str().as_bytes());
                }
                out
            }
            Some(_) => relative(&self.cwd, p).into_os_string().into_encoded_bytes(),
            None => p.as_os_str().as_bytes().to_vec(),
        }
    }

    /// A path for a key: under a base, by the base's name; else as written.
    pub fn key_path(&self, p: &Path) -> OsString {
        if p.is_absolute() {
            OsStr::from_bytes(&self.keyed(&normalize(p))).to_os_string()
        } else {
            p.as_os_str().to_os_string()
        }
    }

    /// Text for a key (an argument, a variable's value): each absolute path under a base named.
    pub fn key_text(&self, data: &[u8]) -> Vec<u8> {
        paths::rewrite_paths(&self.dirs(), data, |p| self.keyed(p))
    }

    /// Text to store (dep-info, messages, a manifest's source path): each absolute path under a base
    /// in a mark that `restore_text` turns into this build's path.
    pub fn store_text(&self, data: &[u8]) -> Vec<u8> {
        paths::rewrite_paths(&self.dirs(), data, |p| paths::mark(&self.keyed(p)))
    }

    /// Stored text with this build's paths put back.
    pub fn restore_text(&self, data: &[u8]) -> Vec<u8> {
        paths::restore_listing_with(data, &self.cwd, &|name| {
            self.bases.iter().find(|b| b.name == Some(name)).map(|b| b.dir.clone())
        })
    }

    /// Whether `data` names a base by its absolute path (or the working directory, when it is
    /// remapped).
    pub fn embedded_in(&self, data: &[u8]) -> bool {
        self.bases
            .iter()
            .any(|b| paths::contains(data, b.dir.as_os_str().as_bytes()))
    }

    /// This build's location: the key of what may only be handed back here.
    pub fn location(&self) -> String {
        let mut l = self.cwd.display().to_string();
        for b in &self.bases {
            l.push('\n');
            l.push_str(&b.dir.display().to_string());
        }
        l
    }

    /// Whether the profile dir is a base (paths in the target dir are then keyed by name).
    pub fn names_profile(&self) -> bool {
        self.bases.iter().any(|b| b.name == Some(PROFILE))
    }

    /// Which bases are in force, for the key (stored marks name them).
    pub fn key_names(&self) -> String {
        let names: Vec<&str> = self.bases.iter().map(|b| b.name.unwrap_or("<configured>")).collect();
        names.join(",")
    }
}

fn remap_arg(from: &Path, to: &OsStr) -> OsString {
    let mut a = OsString::from("--remap-path-prefix=");
    a.push(from);
    a.push("=");
    a.push(to);
    a
}

/// `$CARGO_HOME`, else `~/.cargo`, as cargo finds it.
fn cargo_home() -> Option<PathBuf> {
    match std::env::var_os("CARGO_HOME").filter(|h| !h.is_empty()) {
        Some(h) => Some(PathBuf::from(h)),
        None => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".cargo")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bases(configured: &[&str], cwd: &str) -> RustBases {
        let configured: Vec<PathBuf> = configured.iter().map(PathBuf::from).collect();
        let b = RustBases::new(&configured, false, Path::new(cwd), Path::new("/ws/target/debug/deps"));
        // Implicit bases by hand (the process's CARGO_HOME is not the test's).
        let mut b = b;
        b.bases.push(Base {
            dir: "/home/u/.cargo".into(),
            name: Some(CARGO_HOME),
            remap_to: Some(CARGO_HOME.into()),
        });
        b.bases.push(Base {
            dir: "/ws/target/debug".into(),
            name: Some(PROFILE),
            remap_to: Some("target/debug".into()),
        });
        b.bases.sort_by_key(|b| std::cmp::Reverse(b.dir.as_os_str().len()));
        b
    }

    #[test]
    fn keys_name_bases_and_restores_put_this_builds_paths_back() {
        let b = bases(&["/ws"], "/ws");
        assert_eq!(
            b.key_path(Path::new("/home/u/.cargo/registry/src/x/serde-1.0/src/lib.rs")),
            OsString::from("$CARGO_HOME/registry/src/x/serde-1.0/src/lib.rs")
        );
        assert_eq!(
            b.key_path(Path::new("/ws/target/debug/build/a-1/out/gen.rs")),
            OsString::from("$TARGET_PROFILE/build/a-1/out/gen.rs")
        );
        assert_eq!(
            b.key_path(Path::new("/ws/util/src/lib.rs")),
            OsString::from("util/src/lib.rs")
        );
        assert_eq!(b.key_path(Path::new("src/lib.rs")), OsString::from("src/lib.rs"));
        assert_eq!(b.key_path(Path::new("/usr/lib/x")), OsString::from("/usr/lib/x"));

        let dep = b"/ws/target/debug/deps/a.d: /home/u/.cargo/registry/src/x/a-1/src/lib.rs util/x.rs\n\n# env-dep:OUT_DIR=/ws/target/debug/build/a-1/out\n";
        let stored = b.store_text(dep);
        assert!(!paths::contains(&stored, b"/ws/") && !paths::contains(&stored, b"/home/u"));
        // Another machine: other checkout, other CARGO_HOME, other target dir.
        let mut other = bases(&["/w2"], "/w2");
        other.bases[0].dir = "/tmp/t2/debug".into();
        other.bases[1].dir = "/root/.cargo".into();
        let restored = other.restore_text(&stored);
        assert_eq!(
            String::from_utf8(restored).unwrap(),
            "/tmp/t2/debug/deps/a.d: /root/.cargo/registry/src/x/a-1/src/lib.rs util/x.rs\n\n# env-dep:OUT_DIR=/tmp/t2/debug/build/a-1/out\n"
        );
        assert_eq!(b.restore_text(&stored), dep.to_vec());
    }

    #[test]
    fn remaps_outermost_first_and_the_cwd_last() {
        let b = bases(&["/"], "/ws");
        assert!(b.bases.iter().all(|b| b.dir != Path::new("/")), "/ is no base");
        let b = bases(&["/ws"], "/ws");
        let args: Vec<String> = b
            .remap_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "--remap-path-prefix=/ws=.",
                "--remap-path-prefix=/home/u/.cargo=$CARGO_HOME",
                "--remap-path-prefix=/ws/target/debug=target/debug",
            ]
        );
        assert!(b.embedded_in(b"xx/home/u/.cargo/registry"));
        assert!(!b.embedded_in(b"$CARGO_HOME/registry"));
    }
}
