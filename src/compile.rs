//! The flow of one compile call, and only the flow: find the compiler, parse, key, look up, then
//! restore a hit or compile and store a miss, and count the call once. The details live in the
//! modules called from here. Any cache fault falls back to running the real compiler.

use crate::compiler::{self, CCompile, ColorChoice, DepStyle, Family, NotCacheable};
use crate::config::Config;
use crate::depfile::prerequisites;
use crate::entry::{self, Entry};
use crate::include_search;
use crate::key::{KeyBuilder, sha256_hex};
use crate::locate::{self, SelfIdentity};
use crate::manifest::{
    self, Check, IncludeFile, Manifest, ResultSet, content_digest, has_time_macros, modified_or_changed_after,
    trusted_stat,
};
use crate::stats::{self, Outcome};
use crate::store::{self, Storage};
use crate::{logging, outputs};
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::SystemTime;

/// A compile call: the compiler as named (a bare name or a path) and its arguments.
pub struct Invocation {
    pub compiler: OsString,
    pub args: Vec<OsString>,
}

/// Run one compile call through the cache; returns the exit status to exit with.
pub fn run(inv: Invocation) -> i32 {
    let me = SelfIdentity::current();
    let real = match locate::find_compiler(&inv.compiler, &me) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cachepot: error: {e}");
            return 127;
        }
    };
    if locate::inside_cachepot() {
        // A cachepot up the call chain is already caching this compile (or we found a copy of
        // ourselves as the "compiler"): run the real thing, never recurse.
        return exec_passthrough(&real, &inv.args);
    }
    let cfg = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cachepot: warning: {e}; caching is off for this call");
            return exec_passthrough(&real, &inv.args);
        }
    };
    logging::init(&cfg);
    if cfg.disable.value {
        return exec_passthrough(&real, &inv.args);
    }
    // Before this call's entries take the last blocks or inodes, so that it can still be counted.
    stats::prepare(&cfg.dir.value);
    if crate::rust::is_rustc(&inv.compiler) {
        return crate::rust::run(cfg, real, &inv.compiler, inv.args);
    }
    let mut call = Call {
        cfg,
        real,
        invoked: inv.compiler,
        args: inv.args,
        errors: Vec::new(),
        compiled: None,
    };
    guarded("compile", &mut call, Call::cached, |c| {
        c.compiled.unwrap_or_else(|| exec_passthrough(&c.real, &c.args))
    })
}

/// Run one cached call. A panic is a bug: it must not print a backtrace over the compiler's
/// output, nor fail the build. After one, `after_panic` gives the status: the compiler's, if it
/// already ran, else that of the compiler run now without the cache.
pub(crate) fn guarded<C>(
    target: &'static str,
    call: &mut C,
    cached: impl FnOnce(&mut C) -> i32,
    after_panic: impl FnOnce(&C) -> i32,
) -> i32 {
    std::panic::set_hook(Box::new(move |info| log::error!(target: target, "panic: {info}")));
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cached(call))) {
        Ok(status) => status,
        Err(_) => {
            log::error!(target: target, "internal error in cachepot; running the compiler without the cache");
            after_panic(call)
        }
    }
}

struct Call {
    cfg: Config,
    real: PathBuf,
    invoked: OsString,
    args: Vec<OsString>,
    /// Cache faults met by this call (statistics counter names).
    errors: Vec<&'static str>,
    /// Set once the real compiler ran and its output was replayed.
    compiled: Option<i32>,
}

/// What is known before compiling: the parsed request and the inputs of every key.
struct Known {
    req: CCompile,
    cwd: PathBuf,
    identity: String,
    source: Vec<u8>,
    /// When this call started: include files changed after it are not trusted.
    start: SystemTime,
    /// A precompiled header may stand in for a header: the dependency output is incomplete.
    pch_in_use: bool,
}

impl Call {
    fn cached(&mut self) -> i32 {
        let start = SystemTime::now();
        let cwd = match std::env::current_dir() {
            Ok(d) => d,
            Err(_) => return self.not_cacheable(NotCacheable::BadArguments),
        };
        let Some(family) = Family::detect(&self.invoked, &self.real) else {
            return self.not_cacheable(NotCacheable::UnknownCompiler);
        };
        let expanded = match compiler::args::expand_response_files(&self.args, &cwd) {
            Ok(a) => a,
            Err(e) => {
                log::debug!(target: "compile", "{e}");
                return self.not_cacheable(NotCacheable::BadArguments);
            }
        };
        let mut req = match compiler::gcc::parse(family, &expanded, &cwd, &|v| std::env::var_os(v)) {
            Ok(r) => r,
            Err(reason) => return self.not_cacheable(reason),
        };
        // gcc and clang silently use `h.h.gch` in place of `h.h`, and leave both out of the
        // dependency output: hash every precompiled header they could pick up.
        let pch = precompiled_headers(&req, &cwd);
        let pch_in_use = !pch.is_empty();
        req.extra_inputs.extend(pch);
        log::debug!(target: "compile", "{} compile of {} (language {})", family.name(), req.source.display(), req.language);
        let identity = match compiler::identity(&self.real) {
            Ok(id) => id,
            Err(e) => {
                log::warn!(target: "compile", "cannot identify compiler {}: {e}", self.real.display());
                return self.not_cacheable(NotCacheable::UnknownCompiler);
            }
        };
        let Ok(source) = crate::limits::read_regular(&cwd.join(&req.source), crate::limits::INPUT_FILE) else {
            return self.not_cacheable(NotCacheable::MissingInput);
        };
        if manifest::has_incbin(&source) {
            // The assembler reads the named file; neither the dependency output nor the
            // preprocessed text holds it.
            return self.not_cacheable(NotCacheable::TooHard(".incbin"));
        }
        let known = Known {
            req,
            cwd,
            identity,
            source,
            start,
            pch_in_use,
        };
        let store = store::open(&self.cfg);
        if self.cfg.direct.value {
            self.direct_mode(&*store, &known)
        } else {
            self.preprocessor_mode(&*store, &known, None)
        }
    }

    /// Feed what every key of this call shares: compiler, arguments, environment, source.
    fn add_common_inputs(&self, kb: &mut KeyBuilder, k: &Known) -> Result<(), NotCacheable> {
        let req = &k.req;
        kb.add_str("compiler", &k.identity);
        kb.add_os("invoked as", Path::new(&self.invoked).file_name().unwrap_or_default());
        kb.add_str("language", &req.language);
        for a in &req.key_args {
            kb.add_os("arg", a);
        }
        for var in compiler::gcc::KEY_ENV {
            match std::env::var_os(var) {
                Some(v) => kb.add_os(&format!("env {var}"), &v),
                None => kb.add_str(&format!("env {var}"), "<unset>"),
            }
        }
        if let Some(dir) = &req.hash_cwd {
            kb.add_os("cwd", dir.as_os_str());
        }
        if let Some(p) = &req.output_path_in_key {
            kb.add_os("output path", p.as_os_str());
        }
        for o in req.outputs.iter().filter(|o| outputs::needs_no_restore(&o.path)) {
            // Its bytes are not in the entry (or are in its stdout): never share it with a call
            // that needs them as a file.
            kb.add_os(&format!("{} output elsewhere", o.role), o.path.as_os_str());
        }
        kb.add_digest("source", &sha256_hex(&k.source));
        for f in &req.extra_inputs {
            let data = crate::limits::read_regular(&k.cwd.join(f), crate::limits::INPUT_FILE)
                .map_err(|_| NotCacheable::MissingInput)?;
            kb.add_digest(&format!("input file {}", f.display()), &sha256_hex(&data));
        }
        Ok(())
    }

    /// Direct mode: look the manifest up; a recorded include set that still holds names the result
    /// without running anything. On a miss, compile once and learn the include set from the
    /// compiler's dependency output (depend mode), or from a preprocessor run where that is not
    /// possible (-MMD, time macros).
    fn direct_mode(&mut self, store: &dyn Storage, k: &Known) -> i32 {
        let mut kb = KeyBuilder::new("manifest", self.cfg.debug.value);
        if let Err(reason) = self.add_common_inputs(&mut kb, k) {
            return self.not_cacheable(reason);
        }
        let (manifest_key, manifest_dump) = kb.finish();
        let manifest_key = format!("{manifest_key}.manifest");
        log::debug!(target: "compile", "manifest key {manifest_key}");
        let mut manifest = self.load_manifest(store, &manifest_key);
        if !self.cfg.recache.value {
            for (i, set) in manifest.results.iter().enumerate() {
                let check = set.check(&k.cwd);
                if check == Check::Fails {
                    continue;
                }
                let Some(status) = self.try_hit(store, &set.result_key, &k.req) else {
                    break;
                };
                log::debug!(target: "compile", "direct hit {} (include set {i})", set.result_key);
                self.write_debug_dump(
                    &k.req,
                    &[
                        ("manifest key", &manifest_key, manifest_dump.as_deref()),
                        ("result key", &set.result_key, None),
                    ],
                );
                if check == Check::HoldsAfterReading {
                    // Record fresh stats so the next hit need not read these files.
                    if let Some(fresh) = self.record_set(
                        k,
                        &set.result_key,
                        &set.files.iter().map(|f| f.path.clone()).collect::<Vec<_>>(),
                    ) {
                        let mut m = manifest.clone();
                        m.add(fresh);
                        self.put_manifest(store, &manifest_key, &m);
                    }
                }
                self.count(Outcome::HitDirect);
                return status;
            }
        }
        let date_free = !has_time_macros(&k.source) || std::env::var_os("SOURCE_DATE_EPOCH").is_some();
        if !date_free {
            // The result depends on the time: key it on the preprocessed output (which holds the
            // expanded time) and record no manifest, so no direct hit can freeze it.
            return self.preprocessor_mode(store, k, None);
        }
        // A dependency output to a special file (`-MF /dev/stdout`, a FIFO) cannot be read back.
        let dep_elsewhere = k
            .req
            .outputs
            .iter()
            .any(|o| o.role == "dep" && outputs::is_special_output(&o.path));
        if k.req.dep_style == DepStyle::UserWithoutSystem || k.pch_in_use || dep_elsewhere {
            return self.preprocessor_mode(store, k, Some((manifest_key, manifest, manifest_dump)));
        }
        self.depend_mode(store, k, &manifest_key, &mut manifest, manifest_dump.as_deref())
    }

    /// A direct-mode miss: compile with dependency output, then key the result on the manifest key
    /// plus the content of every file the compiler read.
    fn depend_mode(
        &mut self,
        store: &dyn Storage,
        k: &Known,
        manifest_key: &str,
        manifest: &mut Manifest,
        manifest_dump: Option<&str>,
    ) -> i32 {
        // Without the user's own -MD, ask for a dependency file in the cache dir. Only a file we
        // could create there goes on the command line: a cache fault must never reach the compiler.
        let own_dep = match k.req.dep_style {
            DepStyle::None => match self.temp_dep_file() {
                Ok(d) => Some(d),
                Err(e) => {
                    self.fault(
                        &format!(
                            "cannot create a dependency file in {}: {e}; preprocessing instead",
                            self.cfg.dir.value.display()
                        ),
                        "dep-file-failed",
                    );
                    let record = (
                        manifest_key.to_string(),
                        manifest.clone(),
                        manifest_dump.map(str::to_string),
                    );
                    return self.preprocessor_mode(store, k, Some(record));
                }
            },
            _ => None,
        };
        let mut extra: Vec<OsString> = Vec::new();
        if let Some(d) = &own_dep {
            extra.extend([OsString::from("-MD"), OsString::from("-MF"), d.clone().into_os_string()]);
        }
        let out = match self.run_compiler(&k.req, &extra, own_dep.is_none()) {
            Ok(o) => o,
            Err(status) => return status,
        };
        if let Some(d) = &own_dep
            && out.status != 0
            && (contains(&out.stderr, d.as_os_str().as_encoded_bytes()) || !d.parent().is_some_and(Path::exists))
        {
            // The compile failed on our dependency file (disk full, cache dir made read-only or
            // removed meanwhile): that failure is ours, not the user's. Compile again as asked.
            let _ = std::fs::remove_file(d);
            self.fault(
                &format!(
                    "the compiler could not write the dependency file {}; compiling without it",
                    d.display()
                ),
                "dep-file-failed",
            );
            let status = match self.run_compiler(&k.req, &[], true) {
                Ok(o) => o.status,
                Err(status) => return status,
            };
            return self.count_returning(Outcome::Miss, status);
        }
        if own_dep.is_some() {
            replay(&out.stdout, &out.stderr, want_color(k.req.color));
            self.compiled = Some(out.status);
        }
        let dep_path = own_dep
            .clone()
            .or_else(|| k.req.outputs.iter().find(|o| o.role == "dep").map(|o| o.path.clone()));
        // Only a regular file can be the dependency output (-MF /dev/null reads back empty).
        let dep_text = dep_path
            .as_ref()
            .filter(|p| outputs::is_regular_file(&k.cwd.join(p)))
            .and_then(|p| crate::limits::read_regular(&k.cwd.join(p), crate::limits::DEP_FILE).ok());
        if let Some(d) = &own_dep {
            let _ = std::fs::remove_file(d);
        }
        if out.status != 0 {
            return self.count_returning(Outcome::NotCacheable(NotCacheable::CompileFailed.reason()), out.status);
        }
        let Some(dep_text) = dep_text else {
            log::debug!(target: "compile", "no dependency output to learn the include set from; not storing");
            return self.count_returning(Outcome::Miss, out.status);
        };
        let source_abs = k.cwd.join(&k.req.source);
        let listed = prerequisites(&dep_text);
        if !listed.iter().any(|p| k.cwd.join(p) == source_abs) {
            // A listing that does not even name the source is not the list of what was read.
            log::debug!(target: "compile", "dependency output does not list the source; not storing");
            return self.count_returning(Outcome::Miss, out.status);
        }
        let includes: Vec<PathBuf> = listed.into_iter().filter(|p| k.cwd.join(p) != source_abs).collect();
        let Some(set_files) = self.hash_includes(k, &includes) else {
            return self.count_returning(Outcome::Miss, out.status);
        };
        let mut kb = KeyBuilder::new("depend result", self.cfg.debug.value);
        kb.add_str("manifest key", manifest_key);
        for f in &set_files {
            kb.add_str(&format!("include {}", f.path.display()), &format!("{:032x}", f.digest));
        }
        let (result_key, result_dump) = kb.finish();
        self.write_debug_dump(
            &k.req,
            &[
                ("manifest key", manifest_key, manifest_dump),
                ("result key", &result_key, result_dump.as_deref()),
            ],
        );
        if self.store_result(store, &result_key, &k.req, out) {
            let set = ResultSet {
                result_key: result_key.clone(),
                dirs: self.watched_dirs(k, &includes),
                files: set_files,
            };
            manifest.add(set);
            self.put_manifest(store, manifest_key, manifest);
        }
        self.count_returning(Outcome::Miss, self.compiled.unwrap_or(0))
    }

    /// Preprocessor mode: the result key covers the `-E` output. With `record`, also learn the
    /// include set from the line markers and add it to the manifest.
    fn preprocessor_mode(
        &mut self,
        store: &dyn Storage,
        k: &Known,
        record: Option<(String, Manifest, Option<String>)>,
    ) -> i32 {
        let mut kb = KeyBuilder::new("result", self.cfg.debug.value);
        if let Err(reason) = self.add_common_inputs(&mut kb, k) {
            return self.not_cacheable(reason);
        }
        let preprocessed = match self.preprocess(&k.req) {
            Ok(p) => p,
            Err(reason) => return self.not_cacheable(reason),
        };
        if manifest::has_incbin(&preprocessed) {
            return self.not_cacheable(NotCacheable::TooHard(".incbin"));
        }
        kb.add_digest("preprocessed source", &sha256_hex(&preprocessed));
        let (key, dump) = kb.finish();
        log::debug!(target: "compile", "result key {key}");
        self.write_debug_dump(&k.req, &[("result key", &key, dump.as_deref())]);
        let remember = |this: &mut Call| {
            if let Some((manifest_key, mut manifest, _)) = record.clone() {
                let source_abs = k.cwd.join(&k.req.source);
                let includes: Vec<PathBuf> = included_files(&preprocessed)
                    .into_iter()
                    .filter(|p| k.cwd.join(p) != source_abs)
                    .collect();
                if let Some(set) = this.record_set(k, &key, &includes) {
                    manifest.add(set);
                    this.put_manifest(store, &manifest_key, &manifest);
                }
            }
        };
        if !self.cfg.recache.value
            && let Some(status) = self.try_hit(store, &key, &k.req)
        {
            remember(self);
            self.count(Outcome::HitPreprocessed);
            return status;
        }
        let out = match self.run_compiler(&k.req, &[], true) {
            Ok(o) => o,
            Err(status) => return status,
        };
        if out.status != 0 {
            return self.count_returning(Outcome::NotCacheable(NotCacheable::CompileFailed.reason()), out.status);
        }
        let status = out.status;
        if self.store_result(store, &key, &k.req, out) {
            remember(self);
        }
        self.count_returning(Outcome::Miss, status)
    }

    /// Hash the include files of a new include set; `None` when the set must not be recorded (a
    /// file is missing, changed after the call started, or uses time macros).
    fn hash_includes(&mut self, k: &Known, includes: &[PathBuf]) -> Option<Vec<IncludeFile>> {
        let date_ok = std::env::var_os("SOURCE_DATE_EPOCH").is_some();
        let mut files = Vec::with_capacity(includes.len());
        for inc in includes {
            let path = k.cwd.join(inc);
            let meta = std::fs::metadata(&path).ok()?;
            if modified_or_changed_after(&meta, k.start) {
                log::debug!(target: "compile", "{} changed during the compile; not recording it", inc.display());
                return None;
            }
            let data = crate::limits::read_regular(&path, crate::limits::INPUT_FILE).ok()?;
            if manifest::has_incbin(&data) {
                log::debug!(target: "compile", "{} uses .incbin, which reads a file no listing names", inc.display());
                return None;
            }
            if !date_ok && has_time_macros(&data) {
                log::debug!(target: "compile", "{} uses __DATE__/__TIME__; no direct-mode entry", inc.display());
                return None;
            }
            files.push(IncludeFile {
                path: inc.clone(),
                digest: content_digest(&data),
                stat: trusted_stat(&meta, k.start),
            });
        }
        Some(files)
    }

    fn record_set(&mut self, k: &Known, result_key: &str, includes: &[PathBuf]) -> Option<ResultSet> {
        let files = self.hash_includes(k, includes)?;
        Some(ResultSet {
            result_key: result_key.to_string(),
            dirs: self.watched_dirs(k, includes),
            files,
        })
    }

    /// The directories to watch for headers that would shadow `includes`.
    fn watched_dirs(&self, k: &Known, includes: &[PathBuf]) -> Vec<manifest::WatchedDir> {
        let Some(system) = include_search::system_dirs(&self.real, &k.identity, &k.req, &self.cfg) else {
            return Vec::new();
        };
        let chain = include_search::search_chain(&k.req, &system);
        let mut with_source = vec![k.req.source.clone()];
        with_source.extend(includes.iter().cloned());
        let absent = include_search::must_be_absent(&with_source, &chain, &k.cwd);
        manifest::watch_dirs(&absent, &k.cwd)
    }

    fn load_manifest(&mut self, store: &dyn Storage, key: &str) -> Manifest {
        match store.get(key) {
            Ok(Some(bytes)) => match Manifest::decode(&bytes) {
                Ok(m) => m,
                Err(e) => {
                    self.fault(&format!("manifest {key}: {e}; removed"), "corrupt-entry");
                    let _ = store.remove(key);
                    Manifest::default()
                }
            },
            Ok(None) => Manifest::default(),
            Err(e) => {
                self.fault(&e.to_string(), e.stat_name());
                Manifest::default()
            }
        }
    }

    fn put_manifest(&mut self, store: &dyn Storage, key: &str, m: &Manifest) {
        if let Err(e) = store.put(key, &m.encode()) {
            self.fault(&format!("cannot store manifest {key}: {e}"), e.stat_name());
        }
    }

    /// Create an empty, new dependency file in the cache's tmp dir (so that the place is known to
    /// take a file before the compiler is told to write there).
    fn temp_dep_file(&self) -> std::io::Result<PathBuf> {
        let dir = self.cfg.dir.value.join("tmp");
        std::fs::create_dir_all(&dir)?;
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let path = dir.join(format!("dep.{}.{nanos}.d", std::process::id()));
        std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
        Ok(path)
    }

    fn preprocess(&mut self, req: &CCompile) -> Result<Vec<u8>, NotCacheable> {
        let _slot = crate::coordinator::slot(&self.cfg);
        let out = self
            .command()
            .args(&req.preprocessor_args)
            .arg("-E")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|_| NotCacheable::PreprocessorFailed)?;
        if !out.status.success() {
            return Err(NotCacheable::PreprocessorFailed);
        }
        Ok(out.stdout)
    }

    /// Look the key up and restore the entry; `None` means "compile instead" (a miss, or a fault).
    /// Outputs are streamed out of the entry into temporary files while its checksum is verified,
    /// and put in place only once it is.
    fn try_hit(&mut self, store: &dyn Storage, key: &str, req: &CCompile) -> Option<i32> {
        let bytes = match store.get(key) {
            Ok(Some(b)) => b,
            Ok(None) => return None,
            Err(e) => {
                self.fault(&e.to_string(), e.stat_name());
                return None;
            }
        };
        let spare = self.cfg.dir.value.join("tmp");
        let mut pending: Vec<outputs::PendingOutput> = Vec::new();
        let streamed = entry::stream(&bytes, |role| {
            let Some(out) = req
                .outputs
                .iter()
                .find(|o| o.role == role && !outputs::needs_no_restore(&o.path))
            else {
                return Ok(None);
            };
            let (p, file) = outputs::PendingOutput::create(&out.path, &spare)?;
            pending.push(p);
            Ok(Some(std::io::BufWriter::new(file)))
        });
        let replay_data = match streamed {
            Ok(r) => r,
            Err(e) => {
                pending.into_iter().for_each(outputs::PendingOutput::abort);
                match e {
                    entry::StreamError::Entry(e) => {
                        self.fault(&format!("entry {key}: {e}; removed"), "corrupt-entry");
                        let _ = store.remove(key);
                    }
                    entry::StreamError::Output(e) => {
                        self.fault(&format!("cannot write an output: {e}"), "restore-failed")
                    }
                }
                return None;
            }
        };
        if let Some(missing) = req.outputs.iter().find(|o| {
            !o.optional && !outputs::needs_no_restore(&o.path) && !replay_data.roles.iter().any(|r| r == o.role)
        }) {
            pending.into_iter().for_each(outputs::PendingOutput::abort);
            self.fault(&format!("entry {key} lacks its {} file", missing.role), "corrupt-entry");
            return None;
        }
        for p in pending {
            if let Err(e) = p.commit() {
                self.fault(&format!("cannot put an output in place: {e}"), "restore-failed");
                return None;
            }
        }
        log::debug!(target: "compile", "hit {key}");
        replay(&replay_data.stdout, &replay_data.stderr, want_color(req.color));
        Some(replay_data.exit_status)
    }

    /// Run the real compiler on the user's arguments (plus `extra`), capture its output and replay
    /// it (unless `replay_now` is false: the caller replays it, or discards it and compiles again).
    /// `Err(status)` when it could not be started at all.
    fn run_compiler(&mut self, req: &CCompile, extra: &[OsString], replay_now: bool) -> Result<Compiled, i32> {
        let mut cmd = self.command();
        cmd.args(&self.args).args(extra);
        if req.color == ColorChoice::Auto && std::io::stderr().is_terminal() {
            // Captured stderr is not a terminal, so ask for the colour the user would have seen.
            cmd.arg(compiler::gcc::color_flag(req.family));
        }
        let _slot = crate::coordinator::slot(&self.cfg);
        let out = match cmd.stdin(Stdio::inherit()).output() {
            Ok(o) => o,
            Err(e) => {
                eprintln!("cachepot: error: cannot run {}: {e}", self.real.display());
                return Err(127);
            }
        };
        let status = exit_code(out.status);
        if replay_now {
            replay(&out.stdout, &out.stderr, want_color(req.color));
            self.compiled = Some(status);
        }
        Ok(Compiled {
            status,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    /// Read the outputs back and store them under `key`; false when nothing could be stored.
    fn store_result(&mut self, store: &dyn Storage, key: &str, req: &CCompile, out: Compiled) -> bool {
        let mut entry = Entry {
            exit_status: out.status,
            files: Vec::new(),
            stdout: out.stdout,
            stderr: out.stderr,
        };
        for o in &req.outputs {
            if outputs::needs_no_restore(&o.path) {
                // /dev/null, or the compiler's stdout/stderr: already in `entry.stdout`/`stderr`.
                continue;
            }
            if !outputs::is_regular_file(&o.path) {
                if o.optional && !o.path.exists() {
                    continue;
                }
                // Written to /dev/null or another special file: nothing to read back and store.
                log::debug!(target: "compile", "{} is not a regular file; not storing", o.path.display());
                return false;
            }
            match std::fs::read(&o.path) {
                Ok(data) => entry.files.push((o.role.to_string(), data)),
                Err(e) => {
                    self.fault(&format!("cannot read back {}: {e}", o.path.display()), "read-failed");
                    return false;
                }
            }
        }
        if let Err(e) = store.put(key, &entry.encode()) {
            self.fault(&format!("cannot store entry {key}: {e}"), e.stat_name());
            return false;
        }
        true
    }

    /// The real compiler as a command, with the recursion guard set.
    fn command(&self) -> Command {
        let mut c = Command::new(&self.real);
        c.env(locate::GUARD_VAR, locate::guard_value());
        c
    }

    /// `CACHEPOT_DEBUG`: the labelled inputs of this call's keys, next to the object, so that two
    /// builds' files can be diffed to see why one missed.
    fn write_debug_dump(&self, req: &CCompile, keys: &[(&str, &str, Option<&str>)]) {
        if !self.cfg.debug.value {
            return;
        }
        let object = &req.outputs[0].path;
        if object.exists() && !outputs::is_regular_file(object) {
            return;
        }
        let mut path = object.clone().into_os_string();
        path.push(".cachepot-key.txt");
        let mut text = String::new();
        for (label, key, dump) in keys {
            text.push_str(&format!("{label} {key}\n"));
            if let Some(d) = dump {
                text.push_str(d);
            }
        }
        let _ = std::fs::write(PathBuf::from(path), text);
    }

    fn fault(&mut self, message: &str, stat: &'static str) {
        log::warn!(target: "compile", "cache fault, compiling instead: {message}");
        self.errors.push(stat);
    }

    fn count(&self, outcome: Outcome) {
        stats::record(&self.cfg.dir.value, &outcome, &self.errors);
    }

    fn count_returning(&self, outcome: Outcome, status: i32) -> i32 {
        self.count(outcome);
        status
    }

    /// Pass the call straight through, counting it with its reason.
    fn not_cacheable(&mut self, reason: NotCacheable) -> i32 {
        log::debug!(target: "compile", "not cacheable: {}", reason.reason());
        self.count(Outcome::NotCacheable(reason.reason()));
        exec_passthrough(&self.real, &self.args)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// What a compiler run gave.
struct Compiled {
    status: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Precompiled headers (`*.gch`, `*.pch`) in the directories the compiler looks in for quoted and
/// `-include`d headers.
fn precompiled_headers(req: &CCompile, cwd: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = vec![req.source.parent().map(Path::to_path_buf).unwrap_or_default()];
    dirs.extend(
        req.include_dirs
            .iter()
            .filter(|(k, _)| *k != "-isystem" && *k != "-idirafter")
            .map(|(_, d)| d.clone()),
    );
    dirs.extend(
        req.include_files
            .iter()
            .map(|f| f.parent().map(Path::to_path_buf).unwrap_or_default()),
    );
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(cwd.join(&dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let b = name.as_encoded_bytes();
            if (b.ends_with(b".gch") || b.ends_with(b".pch")) && e.path().is_file() {
                let p = dir.join(&name);
                if !found.contains(&p) {
                    found.push(p);
                }
            }
        }
    }
    found
}

/// The files a preprocessed source came from, from its line markers (`# 12 "inc/h.h" 1`).
fn included_files(preprocessed: &[u8]) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for line in preprocessed.split(|&b| b == b'\n') {
        if !line.starts_with(b"# ") {
            continue;
        }
        let Some(q) = line.iter().position(|&b| b == b'"') else {
            continue;
        };
        let mut path = Vec::new();
        let mut i = q + 1;
        while i < line.len() && line[i] != b'"' {
            if line[i] == b'\\' && i + 1 < line.len() {
                i += 1;
            }
            path.push(line[i]);
            i += 1;
        }
        if path.is_empty() || path.starts_with(b"<") || path.ends_with(b"//") {
            continue;
        }
        if seen.insert(path.clone()) {
            out.push(PathBuf::from(OsString::from_vec(path)));
        }
    }
    out
}

/// Replace this process with the real compiler (stdio untouched). Returns only on failure.
pub(crate) fn exec_passthrough(real: &Path, args: &[OsString]) -> i32 {
    let err = Command::new(real)
        .args(args)
        .env(locate::GUARD_VAR, locate::guard_value())
        .exec();
    eprintln!("cachepot: error: cannot run {}: {err}", real.display());
    127
}

/// The status a shell would report: the exit code, or 128 + the signal that killed it.
pub(crate) fn exit_code(status: ExitStatus) -> i32 {
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn want_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::io::stderr().is_terminal(),
    }
}

/// Write the compiler's stdout and stderr as it would have, minus colour codes when the user's
/// stderr would not have had them.
fn replay(stdout: &[u8], stderr: &[u8], color: bool) {
    let _ = std::io::stdout().lock().write_all(stdout);
    let _ = std::io::stdout().flush();
    if color || !stderr.contains(&0x1b) {
        let _ = std::io::stderr().lock().write_all(stderr);
    } else {
        let _ = std::io::stderr().lock().write_all(&strip_ansi(stderr));
    }
}

/// Remove SGR/erase-line (`ESC [ … letter`) and OSC hyperlink (`ESC ] … ESC \` or BEL) sequences.
pub fn strip_ansi(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == 0x1b && i + 1 < input.len() {
            match input[i + 1] {
                b'[' => {
                    let mut j = i + 2;
                    while j < input.len() && !(0x40..=0x7e).contains(&input[j]) {
                        j += 1;
                    }
                    i = j + 1;
                    continue;
                }
                b']' => {
                    let mut j = i + 2;
                    while j < input.len() && input[j] != 0x07 && !(input[j] == 0x1b && input.get(j + 1) == Some(&b'\\'))
                    {
                        j += 1;
                    }
                    i = if j < input.len() && input[j] == 0x07 {
                        j + 1
                    } else {
                        j + 2
                    };
                    continue;
                }
                _ => {}
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::strip_ansi;

    #[test]
    fn strips_colour_and_links() {
        let coloured = b"\x1b[01m\x1b[Ka.c:1:1:\x1b[m\x1b[K \x1b[01;35m\x1b[Kwarning: \x1b[m\x1b[Kx \x1b]8;;https://gcc.gnu.org/\x1b\\-Wfoo\x1b]8;;\x1b\\\n";
        assert_eq!(strip_ansi(coloured), b"a.c:1:1: warning: x -Wfoo\n");
    }
}
