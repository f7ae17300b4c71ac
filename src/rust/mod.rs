//! The flow of one rustc call (from `RUSTC_WRAPPER=cachepot`, a `rustc` shim or
//! `cachepot rustc …`): parse, resolve the toolchain, key what is known before compiling, check
//! the manifest of earlier dep-info passes, and restore a hit without starting any rustc process;
//! on a miss run rustc once, streaming its stderr (cargo starts dependent crates on its artifact
//! lines), and store the outputs and a manifest candidate from the dep-info it wrote.
//!
//! Paths: the out dir is taken out of keys; the `.d` file and rustc's JSON artifact lines name it,
//! so entries hold them with the out dir replaced by `OUT_DIR_MARK` and a hit puts this call's out
//! dir back. Other paths under a base directory (`$CARGO_HOME`, the profile dir, the configured
//! ones: bases.rs) are keyed by the base's name, rustc records them so, and stored text carries
//! marks a hit resolves; an output that still names a base by its absolute path is stored under a
//! key bound to this location (`stored_location_bound`). With the implicit bases off, a crate whose
//! inputs lie inside the target dir (OUT_DIR files, `env!("OUT_DIR")`) keys those absolute paths, so
//! it hits only within the same target dir; such misses are counted under
//! `rust.target_dir_in_inputs`.

pub mod bases;
pub mod link;
pub mod manifest;
mod remote;
pub mod toolchain;

use crate::background;
use crate::call::{self, CallCtx, Wanted};
use crate::compiler::NotCacheable;
use crate::compiler::rustc::{self, Refusal, RustcCompile};
use crate::entry::Entry;
use crate::key::{KeyBuilder, hex, sha256_hex};
use crate::locate;
use crate::stats::{self, Fault, Outcome};
use crate::store::Storage;
use bases::RustBases;
use manifest::{Candidate, HashCache, Manifest};
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

/// Stands for this call's out dir inside stored `.d` files and stderr.
const OUT_DIR_MARK: &[u8] = b"\0cachepot-out-dir\0";
/// Bump when what this flow feeds into keys changes.
/// 2: environment values keyed and stored as digests; an allow-list of cargo's variables.
/// 3: base directories (paths named by base, rustc given remappings, marks in stored text).
/// 4: file digests are XXH3-128 (manifest.rs).
const RUST_KEY_VERSION: &str = "4";
/// Counter for misses of crates whose inputs name the target dir.
const TARGET_DIR_COUNTER: &str = "rust.target_dir_in_inputs";

/// Run one rustc call through the cache; returns the exit status to exit with.
pub fn run(ctx: CallCtx, invoked: &OsStr) -> i32 {
    let mut call = RustCall {
        clippy: Path::new(invoked).file_name().is_some_and(|n| n == "clippy-driver"),
        ctx,
        crate_name: None,
        started: std::time::Instant::now(),
        rustc_time: None,
        detached: None,
    };
    call::guarded(&mut call, |c| &c.ctx, RustCall::cached)
}

struct RustCall {
    ctx: CallCtx,
    clippy: bool,
    /// For the log line that says how the call ended.
    crate_name: Option<String>,
    started: std::time::Instant,
    /// How long rustc itself ran, for the miss line of the log (the rest is the cache's).
    rustc_time: Option<std::time::Duration>,
    /// When the call forked to store in the background (background.rs).
    detached: Option<std::time::Instant>,
}

/// What is known before compiling: the request, its manifest key, the file-hash cache.
struct Prepared {
    req: RustcCompile,
    cwd: PathBuf,
    bases: RustBases,
    manifest_key: String,
    hashes: HashCache,
}

impl Prepared {
    /// The key under which what names this build's location is kept (never handed elsewhere).
    fn bound(&self, key: &str) -> String {
        sha256_hex(format!("{key}\nlocation\n{}", self.bases.location()).as_bytes())
    }
}

impl RustCall {
    fn cached(&mut self) -> i32 {
        if self.clippy {
            // Clippy's lints come from running it; a cached rmeta would silently skip them.
            return self.not_cacheable(NotCacheable::ClippyDriver);
        }
        let req = match rustc::parse(&self.ctx.args) {
            Ok(r) => r,
            Err(Refusal::Query) => return self.not_cacheable(NotCacheable::Informational),
            Err(Refusal::NotCacheable(r @ NotCacheable::TooHard(_))) => return self.uncached_compile(r),
            Err(Refusal::NotCacheable(r)) => return self.not_cacheable(r),
        };
        let Ok(cwd) = std::env::current_dir() else {
            return self.not_cacheable(NotCacheable::BadArguments);
        };
        let tc = match toolchain::resolve(&self.ctx.real, &self.ctx.cfg) {
            Ok(t) => t,
            Err(why) => return self.not_cacheable(NotCacheable::TooHard(why)),
        };
        // Run the toolchain we keyed, not whatever a proxy would pick by then.
        self.ctx.real = tc.rustc.clone();
        let out_dir_text = req.out_dir.as_os_str().as_bytes();
        if out_dir_text.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20) {
            return self.not_cacheable(NotCacheable::TooHard("rustc out dir with quotes or escapes"));
        }
        let mut hashes = HashCache::load(Some(self.hash_cache_file(&req, &cwd)));
        let mut bases = self.bases(&cwd, &req.out_dir);
        if let Some(sysroot) = tc.rustc.parent().and_then(Path::parent) {
            bases = bases.with_sysroot(sysroot);
        }
        let manifest_key = match self.manifest_key(&req, &cwd, &bases, &tc.identity, &mut hashes) {
            Ok(k) => k,
            Err(r) => return self.not_cacheable(r),
        };
        log::debug!(target: "rust", "crate {} manifest key {manifest_key}", req.crate_name);
        let mut p = Prepared {
            req,
            cwd,
            bases,
            manifest_key,
            hashes,
        };
        // The same store as C compiles: the local disk, with the configured remote behind it.
        let store = self.ctx.open_store();
        let store = store.as_ref();
        // A store of this very key still in flight in the background: wait for it, then look again.
        if !self.ctx.cfg.recache.value
            && let Some(status) = self.try_hit(store, &mut p).or_else(|| {
                background::wait_for(&self.ctx.cfg.dir.value, &p.manifest_key)
                    .then(|| self.try_hit(store, &mut p))
                    .flatten()
            })
        {
            p.hashes.save();
            log::info!(
                target: "rust",
                "crate {}: hit ({:.1} ms)",
                p.req.crate_name,
                self.started.elapsed().as_secs_f64() * 1000.0
            );
            self.ctx.count(Outcome::HitDirect);
            return status;
        }
        self.compile_and_store(store, &mut p)
    }

    /// Everything known before compiling: toolchain, cwd (debug info records it), arguments with
    /// target-dir paths taken out, the crates and native libraries read (by content) and the
    /// environment cargo sets for the crate.
    fn manifest_key(
        &self,
        req: &RustcCompile,
        cwd: &Path,
        bases: &RustBases,
        toolchain: &str,
        hashes: &mut HashCache,
    ) -> Result<String, NotCacheable> {
        let mut kb = KeyBuilder::new("rust manifest", self.ctx.cfg.debug.value);
        kb.add_str("rust key version", RUST_KEY_VERSION);
        kb.add_str("toolchain", toolchain);
        // Paths under a base are keyed by the base's name (bases.rs), and rustc records them so.
        kb.add_str("bases", &bases.key_names());
        for r in bases.key_remaps() {
            kb.add_str("remap", &r);
        }
        kb.add_os("cwd", &bases.key_path(cwd));
        kb.add_os("input", &bases.key_path(&req.input));
        for a in &req.key_args {
            kb.add_os("arg", OsStr::from_bytes(&bases.key_text(a.as_bytes())));
        }
        let native: Vec<&OsStr> = req
            .key_args
            .iter()
            .map(OsStr::new)
            .filter(|a| crate::identity::is_native(a))
            .collect();
        if !native.is_empty() {
            // "native" names no CPU: key what it means for this rustc on this machine.
            let resolved = crate::identity::resolve_native(&self.ctx.cfg.dir.value, toolchain, &native, || {
                let _slot = crate::coordinator::slot(&self.ctx.cfg);
                native_cpu(&self.ctx.real)
            })
            .ok_or(NotCacheable::TooHard("target-cpu=native that rustc does not explain"))?;
            let (cpu, features) = resolved.split_once('\n').unwrap_or((&resolved, ""));
            kb.add_str("native cpu", cpu);
            kb.add_str("native cpu features", features);
        }
        for e in &req.externs {
            match &e.path {
                Some(p) => {
                    let d = hashes.digest(&cwd.join(p)).ok_or(NotCacheable::MissingInput)?;
                    kb.add_digest(&format!("extern {}", e.name), &d);
                }
                None => kb.add_str("extern from sysroot", &e.name),
            }
        }
        for lib in &req.native_libs {
            // A static library is bundled into the rlib; others are only named.
            if lib.kind == "static" || lib.kind.is_empty() {
                let file = format!("lib{}.a", lib.name);
                let found = req
                    .native_dirs
                    .iter()
                    .map(|d| cwd.join(d).join(&file))
                    .find(|p| p.is_file());
                match found.and_then(|p| hashes.digest(&p)) {
                    Some(d) => kb.add_digest(&format!("native library {}", lib.name), &d),
                    None => kb.add_str(
                        &format!("native library {}", lib.name),
                        "<not found as a static library>",
                    ),
                }
            }
        }
        if req.links() {
            // What the link reads beyond rustc's inputs is learnt on a miss (link.rs); its
            // programs are known now.
            if let Some(why) = link::refusal(req) {
                return Err(NotCacheable::TooHard(why));
            }
            link::add_to_key(&mut kb, req, cwd, &self.ctx.real, &self.ctx.cfg).map_err(NotCacheable::TooHard)?;
        }
        if let Some(spec) = &req.target_spec {
            let d = hashes.digest(&cwd.join(spec)).ok_or(NotCacheable::MissingInput)?;
            kb.add_digest("target spec", &d);
        }
        if let Some(spec) = target_path_spec(req) {
            let d = hashes.digest(&spec).ok_or(NotCacheable::MissingInput)?;
            kb.add_digest("target spec from RUST_TARGET_PATH", &d);
        }
        let mut vars: Vec<(OsString, OsString)> = std::env::vars_os().filter(|(k, _)| keyed_env(k)).collect();
        vars.sort();
        for (k, v) in vars {
            kb.add_os(
                &format!("env {}", k.to_string_lossy()),
                OsStr::from_bytes(&bases.key_text(v.as_bytes())),
            );
        }
        let (key, dump) = kb.finish();
        if let Some(dump) = dump {
            log::debug!(target: "rust", "manifest key {key} inputs:\n{dump}");
        }
        // Manifests' keys say so (store/mod.rs): trust.rs signs the kind with the key.
        Ok(format!("{key}.manifest"))
    }

    fn try_hit(&mut self, store: &dyn Storage, p: &mut Prepared) -> Option<i32> {
        let bound_key = format!("{}.manifest", p.bound(&p.manifest_key));
        let profile = rustc::profile_dir(&p.req.out_dir);
        let key = [p.manifest_key.clone(), bound_key].iter().find_map(|mkey| {
            let manifest = self.load_manifest(store, mkey)?;
            manifest
                .candidates
                .iter()
                .find(|c| {
                    candidate_matches(c, &p.cwd, &p.bases, &mut p.hashes)
                        && link::inputs_match(&c.link, &p.cwd, &p.bases, profile.as_deref(), &mut p.hashes)
                })
                .map(|c| c.result_key.clone())
        })?;
        let out_dir = p.req.out_dir.as_os_str().as_bytes();
        let bases = &p.bases;
        let with_out_dir = |data: &[u8]| replace(&bases.restore_text(data), OUT_DIR_MARK, out_dir);
        let wanted: Vec<Wanted> = p
            .req
            .outputs()
            .into_iter()
            .map(|o| Wanted {
                role: o.role,
                path: p.cwd.join(&o.path),
                optional: false,
                rewrite: (o.role == "dep-info").then_some(&with_out_dir as &call::Rewrite<'_>),
                executable: o.role == "executable" || o.role == "shared-object",
            })
            .collect();
        // rustc creates its out dir; so do we.
        let _ = std::fs::create_dir_all(p.cwd.join(&p.req.out_dir));
        let r = self.ctx.restore(store, &key, &wanted)?;
        log::debug!(target: "rust", "hit {key} for crate {}", p.req.crate_name);
        // Every file is in place before the artifact lines that announce them.
        let _ = std::io::stdout().write_all(&r.stdout);
        let _ = std::io::stderr().write_all(&with_out_dir(&r.stderr));
        Some(r.exit_status)
    }

    fn load_manifest(&mut self, store: &dyn Storage, key: &str) -> Option<Manifest> {
        let bytes = self.ctx.fetch(store, key)?;
        match Manifest::decode(&bytes) {
            Ok(m) => Some(m),
            Err(e) => {
                self.ctx.corrupt(store, key, &e);
                None
            }
        }
    }

    fn compile_and_store(&mut self, store: &dyn Storage, p: &mut Prepared) -> i32 {
        let req = &p.req;
        self.crate_name = Some(req.crate_name.clone());
        let outputs = req.outputs();
        let own_dep_info = (!req.emit.dep_info).then(|| {
            req.out_dir.join(format!(
                ".{}{}.cachepot-{}.d",
                req.crate_name,
                req.extra_filename,
                std::process::id()
            ))
        });
        let mut cmd = Command::new(&self.ctx.real);
        // Before the user's arguments: where the user remaps a path too, the user's remapping wins.
        cmd.args(p.bases.remap_args());
        cmd.args(&self.ctx.args);
        if let Some(d) = &own_dep_info {
            // rustc makes a missing --out-dir for its outputs, but writes a dep-info path given
            // with --emit only into an existing directory: our own file must not fail the build.
            let _ = std::fs::create_dir_all(p.cwd.join(&req.out_dir));
            let mut a = OsString::from("--emit=dep-info=");
            a.push(d);
            cmd.arg(a);
            if req.emit.link {
                // Any --emit replaces rustc's default (link): say it again, or a call without
                // --emit would write nothing but our dep-info.
                cmd.arg("--emit=link");
            }
        }
        let tmp = self.ctx.cfg.dir.value.join("tmp");
        if req.links()
            && let Err(e) = std::fs::create_dir_all(&tmp)
        {
            // Without the linker's list the entry would lack what the link read: do not cache.
            self.ctx
                .fault(&format!("cannot create {}: {e}", tmp.display()), Fault::WriteFailed);
            return self.not_cacheable(NotCacheable::TooHard("no temp dir for the linker's dependency file"));
        }
        let link_deps = req.links().then(|| {
            let nanos = SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_nanos();
            tmp.join(format!("link-{}-{nanos}.d", std::process::id()))
        });
        if let Some(d) = &link_deps {
            cmd.arg(link::dep_file_arg(d));
        }
        let started = SystemTime::now();
        // A miss may compile on a REAPI engine instead (remote.rs); `None` compiles here.
        let rustc_started = std::time::Instant::now();
        let out = match remote::compile(&mut self.ctx, p, &cmd) {
            Some(out) => Ok(out),
            None => {
                // A machine-wide compile slot when the coordinator is on (cargo's own jobserver
                // token is the one cargo already holds for this call).
                let slot = crate::coordinator::slot(&self.ctx.cfg);
                // A link's output is held back until we know the linker took the dependency-file option.
                let out = run_streaming(cmd, link_deps.is_none());
                drop(slot);
                out
            }
        };
        self.rustc_time = Some(rustc_started.elapsed());
        let link_text = link_deps.as_ref().map(|d| {
            let text = crate::limits::read_regular(d, crate::limits::DEP_FILE);
            let _ = std::fs::remove_file(d);
            text
        });
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                eprintln!("cachepot: error: cannot run {}: {e}", self.ctx.real.display());
                return 127;
            }
        };
        if let Some(d) = &link_deps {
            let name = d.file_name().unwrap_or_default().as_bytes();
            if crate::paths::contains(&out.stderr, name) || crate::paths::contains(&out.stdout, name) {
                // The output shows the option we added (rustc prints the linker's command line when
                // a link fails; a verbose linker prints its own): run again as the user asked, and
                // show only that.
                if out.status == 0 {
                    return self.not_cacheable(NotCacheable::TooHard("a link whose messages show its command line"));
                }
                if link::rejected_dep_file(&out.stderr) {
                    log::debug!(target: "rust", "the linker rejected --dependency-file; linking without the cache");
                    let mut c = stats::Counters::new();
                    c.insert(link::NO_DEP_FILE_COUNTER.to_string(), 1);
                    let _ = stats::add_counters(&self.ctx.cfg.dir.value, &c);
                    return self.not_cacheable(NotCacheable::TooHard("a linker without --dependency-file"));
                }
                return self.not_cacheable(NotCacheable::CompileFailed);
            }
            let _ = std::io::stdout().write_all(&out.stdout);
            let _ = std::io::stderr().write_all(&out.stderr);
        }
        self.ctx.compiled = Some(out.status);
        if out.status != 0 {
            return self.count_returning(Outcome::NotCacheable(NotCacheable::CompileFailed), out.status);
        }
        let dep_path = match &own_dep_info {
            Some(d) => d.clone(),
            None => outputs
                .iter()
                .find(|o| o.role == "dep-info")
                .map(|o| o.path.clone())
                .unwrap_or_default(),
        };
        let dep_text = crate::limits::read_regular(&p.cwd.join(&dep_path), crate::limits::DEP_FILE);
        if let Some(d) = &own_dep_info {
            let _ = std::fs::remove_file(p.cwd.join(d));
        }
        let Ok(dep_text) = dep_text else {
            self.ctx.fault(
                &format!("cannot read dep-info {}", dep_path.display()),
                Fault::ReadFailed,
            );
            return self.count_returning(Outcome::Miss, out.status);
        };
        // The outputs as the compiler left them, read before anything else of the build can
        // touch them: what is stored is this snapshot, whether now or in the background.
        let mut snapshot = Vec::with_capacity(outputs.len());
        for o in &outputs {
            let path = p.cwd.join(&o.path);
            if !crate::outputs::is_regular_file(&path) {
                log::debug!(target: "rust", "{} is not a regular file; not storing", path.display());
                return self.count_returning(Outcome::Miss, out.status);
            }
            match std::fs::read(&path) {
                Ok(data) => snapshot.push((o.role, data)),
                Err(e) => {
                    self.ctx
                        .fault(&format!("cannot read back {}: {e}", path.display()), Fault::ReadFailed);
                    return self.count_returning(Outcome::Miss, out.status);
                }
            }
        }
        let _pending = match self.detach(&p.manifest_key, snapshot.iter().map(|(_, d)| d.len()).sum()) {
            Some(background::Detached::Parent) => return out.status,
            Some(background::Detached::Child(pending)) => {
                self.detached = Some(std::time::Instant::now());
                Some(pending)
            }
            None => None,
        };
        let deps = rustc::parse_dep_info(&String::from_utf8_lossy(&dep_text));
        let mut candidate = Candidate::default();
        let mut kb = KeyBuilder::new("rust result", self.ctx.cfg.debug.value);
        kb.add_str("manifest key", &p.manifest_key);
        for src in &deps.sources {
            let full = p.cwd.join(src);
            // The ctime too: a file replaced by one with an older mtime (`cp -p`, `rsync -t`, an
            // archive) changed all the same, and rustc may have read the one before.
            let changed = std::fs::metadata(&full)
                .map(|m| crate::manifest::modified_or_changed_after(&m, started))
                .unwrap_or(true);
            let digest = match p.hashes.digest(&full) {
                Some(d) if !changed => d,
                _ => {
                    log::debug!(target: "rust", "{} changed or vanished during the compile; not storing", src.display());
                    return self.count_returning(Outcome::NotCacheable(NotCacheable::InputChanged), out.status);
                }
            };
            kb.add_os("source path", &p.bases.key_path(src));
            kb.add_digest("source", &digest);
            let stored = p.bases.store_text(src.as_os_str().as_bytes());
            candidate
                .sources
                .push((PathBuf::from(OsStr::from_bytes(&stored)), digest));
        }
        if let Some((name, _)) = deps.env.iter().find(|(n, _)| is_secret_name(n)) {
            // rustc writes the value into the dep-info file, which the entry would carry to every
            // reader of the cache: a credential must not travel that way.
            log::debug!(target: "rust", "crate {} reads {name}, a credential; not storing", req.crate_name);
            let mut c = stats::Counters::new();
            c.insert("rust.secret_env_not_stored".to_string(), 1);
            let _ = stats::add_counters(&self.ctx.cfg.dir.value, &c);
            return self.count_returning(Outcome::Miss, out.status);
        }
        // Values are keyed and stored as digests: a manifest names no value.
        candidate.env = deps
            .env
            .iter()
            .map(|(n, v)| (n.clone(), v.as_deref().map(|v| env_digest(&p.bases, v))))
            .collect();
        for (name, digest) in &candidate.env {
            kb.add_str(&format!("env-dep {name}"), digest.as_deref().unwrap_or("<unset>"));
        }
        if let Some(text) = link_text {
            let profile = rustc::profile_dir(&req.out_dir);
            let inputs = text
                .map_err(|e| format!("cannot read the linker's dependency file: {e}"))
                .and_then(|t| {
                    link::read_inputs(&String::from_utf8_lossy(&t), &p.cwd, &req.out_dir, profile.as_deref())
                });
            let inputs = match inputs {
                Ok(i) => i,
                Err(why) => {
                    log::debug!(target: "rust", "crate {}: {why}; not storing", req.crate_name);
                    return self.count_returning(Outcome::Miss, out.status);
                }
            };
            for input in inputs {
                let changed = std::fs::metadata(&input.path)
                    .and_then(|m| m.modified())
                    .map(|t| t >= started)
                    .unwrap_or(true);
                let Some(digest) = p.hashes.digest(&input.path).filter(|_| !changed) else {
                    log::debug!(target: "rust", "linker input {} changed during the link; not storing", input.path.display());
                    return self.count_returning(Outcome::Miss, out.status);
                };
                // Outside the profile dir (the toolchain's, a registry crate's), named by base.
                let recorded = input.recorded.as_os_str().as_bytes();
                kb.add_os("link input path", OsStr::from_bytes(&p.bases.key_text(recorded)));
                kb.add_digest("link input", &digest);
                let stored = p.bases.store_text(recorded);
                candidate.link.push((PathBuf::from(OsStr::from_bytes(&stored)), digest));
            }
        }
        let (mut result_key, dump) = kb.finish();
        if let Some(dump) = dump {
            log::debug!(target: "rust", "result key {result_key} inputs:\n{dump}");
        }
        let out_dir = req.out_dir.as_os_str().as_bytes();
        let for_store = |data: &[u8]| p.bases.store_text(&replace(data, out_dir, OUT_DIR_MARK));
        let mut entry = Entry {
            exit_status: out.status,
            files: Vec::new(),
            stdout: out.stdout,
            stderr: for_store(&out.stderr),
        };
        // An output that still names a base by its absolute path is kept for this location only.
        let mut names_location = false;
        for (role, data) in snapshot {
            if role == "dep-info" {
                entry.files.push((role.to_string(), for_store(&data)));
            } else {
                names_location |= p.bases.embedded_in(&data);
                entry.files.push((role.to_string(), data));
            }
        }
        let mut manifest_key = p.manifest_key.clone();
        if names_location && !p.bases.is_empty() {
            log::debug!(target: "rust", "crate {}: an output names a base directory's absolute path; stored for this location only", req.crate_name);
            let mut c = stats::Counters::new();
            c.insert("stored_location_bound".to_string(), 1);
            let _ = stats::add_counters(&self.ctx.cfg.dir.value, &c);
            result_key = p.bound(&result_key);
            manifest_key = format!("{}.manifest", p.bound(&p.manifest_key));
        }
        candidate.result_key = result_key.clone();
        if self
            .ctx
            .put(store, &result_key, &entry.encode_for(store.wants_large_compressed()))
        {
            let mut manifest = self.load_manifest(store, &manifest_key).unwrap_or_default();
            manifest.add(candidate);
            self.ctx.put(store, &manifest_key, &manifest.encode());
        }
        p.hashes.save();
        if !p.bases.names_profile() && names_target_dir(req, &deps) {
            log::debug!(target: "rust", "crate {} reads files or variables naming the target dir; it hits only in this target dir", req.crate_name);
            let mut c = stats::Counters::new();
            c.insert(TARGET_DIR_COUNTER.to_string(), 1);
            let _ = stats::add_counters(&self.ctx.cfg.dir.value, &c);
        }
        self.count_returning(Outcome::Miss, out.status)
    }

    /// Finish this miss in the background when its store is large (background.rs).
    fn detach(&self, key: &str, output_bytes: usize) -> Option<background::Detached> {
        let cfg = &self.ctx.cfg;
        if !cfg.background_store.value || output_bytes < background::WORTH_BYTES || !background::forkable(cfg) {
            return None;
        }
        background::detach(&cfg.dir.value, key)
    }

    /// One local file per crate compile holds its files' stat data and digests. It is named by what
    /// does not change with the target dir (cwd, input, key arguments), so a new target dir of the
    /// same checkout finds the sources' digests without reading them.
    fn hash_cache_file(&self, req: &RustcCompile, cwd: &Path) -> PathBuf {
        let mut h = cwd.as_os_str().as_bytes().to_vec();
        h.push(0);
        h.extend_from_slice(req.input.as_os_str().as_bytes());
        for a in &req.key_args {
            h.push(0);
            h.extend_from_slice(a.as_bytes());
        }
        let name = hex(&xxhash_rust::xxh3::xxh3_128(&h).to_le_bytes());
        self.ctx.cfg.dir.value.join("rust-hashes").join(&name[..2]).join(name)
    }

    fn count_returning(&self, outcome: Outcome, status: i32) -> i32 {
        let name = self.crate_name.as_deref().unwrap_or("?");
        match &outcome {
            Outcome::Miss => {
                let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
                let end = std::time::Instant::now();
                let exit = self.detached.unwrap_or(end);
                let rustc = self.rustc_time.unwrap_or_default();
                log::info!(
                    target: "rust",
                    "crate {name}: miss (rustc {:.1} ms, cachepot {:.1} ms, then {:.1} ms in the background)",
                    ms(rustc),
                    ms((exit - self.started).saturating_sub(rustc)),
                    ms(end - exit)
                )
            }
            Outcome::NotCacheable(why) => log::info!(target: "rust", "crate {name}: not cacheable: {}", why.describe()),
            _ => {}
        }
        self.ctx.count_returning(outcome, status)
    }

    /// The base directories this call's settings put in force for `out_dir`.
    fn bases(&self, cwd: &Path, out_dir: &Path) -> RustBases {
        let cfg = &self.ctx.cfg;
        remote::bases(
            cfg,
            RustBases::new(&cfg.basedirs.value, cfg.rust_implicit_basedirs.value, cwd, out_dir),
        )
    }

    /// A compile we do not cache (a crate that links, say) still records paths as cached crates
    /// do: its output then is the same on every machine, and so are the keys of the crates built
    /// on it (a proc macro's bytes key every crate that uses it).
    fn uncached_compile(&mut self, reason: NotCacheable) -> i32 {
        if let (Some(out_dir), Ok(cwd)) = (out_dir_arg(&self.ctx.args), std::env::current_dir()) {
            let bases = self.bases(&cwd, &out_dir);
            let mut args = bases.remap_args();
            args.append(&mut self.ctx.args);
            self.ctx.args = args;
        }
        self.not_cacheable(reason)
    }

    fn not_cacheable(&mut self, reason: NotCacheable) -> i32 {
        self.ctx.not_cacheable(reason)
    }
}

/// The variables cargo sets for a crate that can change its output (read by a proc macro or a
/// build without showing in dep-info), keyed by value. Nothing else of the environment is: not
/// the user's, not the machine's, never a credential.
const KEYED_CARGO_ENV: &[&str] = &[
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_PKG_AUTHORS",
    "CARGO_PKG_DESCRIPTION",
    "CARGO_PKG_HOMEPAGE",
    "CARGO_PKG_LICENSE",
    "CARGO_PKG_LICENSE_FILE",
    "CARGO_PKG_NAME",
    "CARGO_PKG_README",
    "CARGO_PKG_REPOSITORY",
    "CARGO_PKG_RUST_VERSION",
    "CARGO_PKG_VERSION",
    "CARGO_PKG_VERSION_MAJOR",
    "CARGO_PKG_VERSION_MINOR",
    "CARGO_PKG_VERSION_PATCH",
    "CARGO_PKG_VERSION_PRE",
    "CARGO_PRIMARY_PACKAGE",
    "RUSTC_BOOTSTRAP",
    "RUSTC_FORCE_RUSTC_VERSION",
    // rustc's own (the audit of what it reads): where `--target NAME` finds NAME.json (its
    // content is keyed too, `target_path_spec`), and Apple's SDK and deployment targets.
    "RUST_TARGET_PATH",
    "SDKROOT",
    "MACOSX_DEPLOYMENT_TARGET",
    "IPHONEOS_DEPLOYMENT_TARGET",
    "TVOS_DEPLOYMENT_TARGET",
    "WATCHOS_DEPLOYMENT_TARGET",
];

/// The spec file `--target NAME` reads through `RUST_TARGET_PATH` (its first `NAME.json`), or
/// `None` when the variable is unset or names none: then NAME is a built-in target.
fn target_path_spec(req: &RustcCompile) -> Option<PathBuf> {
    let name = req.key_args.iter().find_map(|a| a.strip_prefix("--target "))?;
    let dirs = std::env::var_os("RUST_TARGET_PATH")?;
    std::env::split_paths(&dirs)
        .map(|d| d.join(format!("{name}.json")))
        .find(|p| p.is_file())
}

/// Environment that goes into every key: the allow-list above, and the paths of binaries cargo
/// names for integration tests.
fn keyed_env(name: &OsStr) -> bool {
    let n = name.to_string_lossy();
    if is_secret_name(&n) {
        return false;
    }
    KEYED_CARGO_ENV.contains(&n.as_ref()) || n.starts_with("CARGO_BIN_EXE_")
}

/// A variable that holds a credential by its name: never keyed, logged or stored.
fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    ["TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL"]
        .iter()
        .any(|w| n.contains(w))
}

/// What `-C target-cpu=native` means for this rustc here: the CPU it picks and the target
/// features that follow.
fn native_cpu(rustc: &Path) -> Option<String> {
    let out = Command::new(rustc)
        .args(["-C", "target-cpu=native", "--print", "target-cpus", "--print", "cfg"])
        .env(locate::GUARD_VAR, locate::guard_value())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| (l.starts_with("native") && l.contains("currently")) || l.starts_with("target_feature="))
        .collect();
    (out.status.success() && !lines.is_empty()).then(|| lines.join("\n"))
}

/// The value of `--out-dir` (cargo gives one to every compile).
fn out_dir_arg(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--out-dir" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.as_bytes().strip_prefix(b"--out-dir=") {
            return Some(PathBuf::from(OsStr::from_bytes(v)));
        }
    }
    None
}

/// Do this candidate's files and variables all match now? (Paths in it are stored with marks.)
fn candidate_matches(c: &Candidate, cwd: &Path, bases: &RustBases, hashes: &mut HashCache) -> bool {
    c.env
        .iter()
        .all(|(name, digest)| std::env::var(name).ok().map(|v| env_digest(bases, &v)) == *digest)
        && c.sources.iter().all(|(path, digest)| {
            let path = bases.restore_text(path.as_os_str().as_bytes());
            hashes.digest(&cwd.join(OsStr::from_bytes(&path))).as_ref() == Some(digest)
        })
}

/// An environment value as manifests and keys hold it: the digest of its text with base paths
/// named (`OUT_DIR` names the profile dir).
fn env_digest(bases: &RustBases, value: &str) -> String {
    sha256_hex(&bases.key_text(value.as_bytes()))
}

/// Does the crate read a file or variable that names the build's profile (target) dir?
fn names_target_dir(req: &RustcCompile, deps: &rustc::DepInfo) -> bool {
    let Some(profile) = rustc::profile_dir(&req.out_dir) else {
        return false;
    };
    deps.sources.iter().any(|s| s.starts_with(&profile))
        || deps
            .env
            .iter()
            .any(|(_, v)| v.as_deref().is_some_and(|v| Path::new(v).starts_with(&profile)))
}

/// `data` with every `from` replaced by `to`.
fn replace(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() {
        return data.to_vec();
    }
    let mut out = Vec::with_capacity(data.len());
    let mut last = 0;
    for at in memchr::memmem::find_iter(data, from) {
        out.extend_from_slice(&data[last..at]);
        out.extend_from_slice(to);
        last = at + from.len();
    }
    out.extend_from_slice(&data[last..]);
    out
}

struct Captured {
    status: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Run rustc, passing its stderr on as it comes (cargo acts on artifact lines at once) while
/// keeping a copy of stdout and stderr for the entry; with `live` false, only keeping it.
fn run_streaming(mut cmd: Command, live: bool) -> std::io::Result<Captured> {
    cmd.env(locate::GUARD_VAR, locate::guard_value())
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let mut child_out = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = child_out.read_to_end(&mut v);
        v
    });
    let mut stderr = Vec::new();
    let mut child_err = child.stderr.take().expect("piped stderr");
    let mut buf = [0u8; 8192];
    let mut own = std::io::stderr();
    loop {
        match child_err.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if live {
                    let _ = own.write_all(&buf[..n]);
                }
                stderr.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let status = child.wait()?;
    let stdout = reader.join().unwrap_or_default();
    if live {
        let _ = std::io::stdout().write_all(&stdout);
    }
    let status = call::exit_code(status);
    Ok(Captured { status, stdout, stderr })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_round_trips_out_dir() {
        let d = b"/t/deps/a.d: src/lib.rs\n/t/deps/liba.rlib: src/lib.rs\n";
        let stored = replace(d, b"/t/deps", OUT_DIR_MARK);
        assert!(!stored.windows(7).any(|w| w == b"/t/deps"));
        assert_eq!(
            replace(&stored, OUT_DIR_MARK, b"/u/deps"),
            b"/u/deps/a.d: src/lib.rs\n/u/deps/liba.rlib: src/lib.rs\n"
        );
    }

    #[test]
    fn env_in_keys() {
        assert!(keyed_env(OsStr::new("CARGO_PKG_NAME")));
        assert!(keyed_env(OsStr::new("RUSTC_BOOTSTRAP")));
        assert!(keyed_env(OsStr::new("RUST_TARGET_PATH")));
        assert!(keyed_env(OsStr::new("CARGO_BIN_EXE_app")));
        assert!(!keyed_env(OsStr::new("CARGO_MAKEFLAGS")));
        assert!(!keyed_env(OsStr::new("CARGO_TARGET_DIR")));
        assert!(!keyed_env(OsStr::new("OUT_DIR")));
        assert!(!keyed_env(OsStr::new("CARGO_HOME")));
        assert!(!keyed_env(OsStr::new("CARGO_REGISTRY_TOKEN")));
        assert!(!keyed_env(OsStr::new("CARGO_REGISTRIES_MY_TOKEN")));
        assert!(!keyed_env(OsStr::new("CARGO_BIN_EXE_SECRET_tool")));
        assert!(is_secret_name("GITHUB_TOKEN") && is_secret_name("db_password") && !is_secret_name("PATH"));
    }
}
