//! The flow of one compile call, and only the flow: find the compiler, parse, key, look up, then
//! restore a hit or compile and store a miss, and count the call once. The details live in the
//! modules called from here. Any cache fault falls back to running the real compiler.

use crate::call::{self, CallCtx, Wanted, replay, want_color};
use crate::compiler::probes::{self, Resolved};
use crate::compiler::{self, CCompile, CFamily, ColorChoice, DepStyle, ListingSource, NotCacheable};
use crate::entry::Entry;
use crate::key::{KeyBuilder, sha256_hex};
use crate::manifest::{
    self, Check, IncludeFile, Manifest, ResultSet, content_digest, has_time_macros, modified_or_changed_after,
    trusted_stat,
};
use crate::outputs;
use crate::paths::{self, Bases};
use crate::stats::{self, Fault, Outcome};
use crate::store::Storage;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::SystemTime;

/// Run one C-family compile call through the cache; returns the exit status to exit with.
pub fn run(ctx: CallCtx, family: &'static dyn CFamily, invoked: OsString) -> i32 {
    let mut call = Call { ctx, family, invoked };
    call::guarded(&mut call, |c| &c.ctx, Call::cached)
}

struct Call {
    ctx: CallCtx,
    family: &'static dyn CFamily,
    invoked: OsString,
}

/// What is known before compiling: the parsed request and the inputs of every key.
struct Known {
    req: CCompile,
    /// What `-march=native` and friends mean here (keyed in their place).
    native: Option<String>,
    cwd: PathBuf,
    identity: String,
    source: Vec<u8>,
    /// The source's stat before it was read: compared after the compile (`changed_during_call`).
    source_stat: Option<InputStat>,
    /// When this call started: include files changed after it are not trusted.
    start: SystemTime,
    /// A precompiled header may stand in for a header: the dependency output is incomplete.
    pch_in_use: bool,
    /// Base directories for this call (paths.rs), and the arguments that make the compiler record
    /// the configured ones relative (passed to every compiler run, keyed in their rebased form).
    bases: Bases,
    remap: Vec<OsString>,
    /// With base directories: this build's location, which keys the entries whose outputs still
    /// name a base by its absolute path (they are never handed to another location).
    location: Option<String>,
}

impl Known {
    /// The key under which an output that names this location is stored.
    fn bound(&self, key: &str) -> Option<String> {
        let loc = self.location.as_ref()?;
        Some(sha256_hex(format!("{key}\nlocation\n{loc}").as_bytes()))
    }
}

impl Call {
    fn cached(&mut self) -> i32 {
        let start = SystemTime::now();
        let cwd = match std::env::current_dir() {
            Ok(d) => d,
            Err(_) => return self.not_cacheable(NotCacheable::BadArguments),
        };
        let family = self.family;
        let expanded = match family.expand_args(&self.ctx.args, &cwd) {
            Ok(a) => a,
            Err(e) => {
                log::debug!(target: "compile", "{e}");
                return self.not_cacheable(NotCacheable::BadArguments);
            }
        };
        let mut req = match family.parse(&expanded, &cwd, &|v| std::env::var_os(v)) {
            Ok(r) => r,
            Err(reason) => return self.not_cacheable(reason),
        };
        // gcc and clang silently use `h.h.gch` in place of `h.h`, and leave both out of the
        // dependency output: hash every precompiled header they could pick up.
        let pch = family.precompiled_headers(&req, &cwd);
        let pch_in_use = !pch.is_empty();
        req.extra_inputs.extend(pch);
        log::debug!(target: "compile", "{} compile of {} (language {})", family.name(), req.source.display(), req.language);
        let identity = match compiler::call_identity(self.family, &self.ctx.real, &req, &cwd, &self.ctx.cfg) {
            Ok(id) => id,
            Err(reason) => return self.not_cacheable(reason),
        };
        let source_stat = InputStat::of(&cwd.join(&req.source));
        let Ok(source) = crate::limits::read_regular(&cwd.join(&req.source), crate::limits::INPUT_FILE) else {
            return self.not_cacheable(NotCacheable::MissingInput);
        };
        if manifest::has_incbin(&source) {
            // The assembler reads the named file; neither the dependency output nor the
            // preprocessed text holds it.
            return self.not_cacheable(NotCacheable::Incbin);
        }
        if is_assembler(&req.language) && manifest::has_asm_include(&source) {
            return self.not_cacheable(NotCacheable::TooHard(ASM_INCLUDE));
        }
        let native_args: Vec<&std::ffi::OsStr> = req
            .key_args
            .iter()
            .filter(|a| crate::identity::is_native(a))
            .map(|a| a.as_os_str())
            .collect();
        let native = if native_args.is_empty() {
            None
        } else {
            let resolved = crate::identity::resolve_native(&self.ctx.cfg.dir.value, &identity, &native_args, || {
                let _slot = crate::coordinator::slot(&self.ctx.cfg);
                family.resolve_native(&self.ctx.real, &req.key_args)
            });
            match resolved {
                Some(r) => Some(r),
                None => {
                    return self.not_cacheable(NotCacheable::TooHard(
                        "-march=native that the compiler does not explain",
                    ));
                }
            }
        };
        let configured = &self.ctx.cfg.basedirs.value;
        let bases = Bases::new(configured.iter().cloned().chain(req.path_maps.iter().cloned()));
        // What the compiler records is made relative to the working directory: each configured base
        // as the path from here to it, and (last, so it wins) the working directory itself as ".".
        // Two build dirs at the same depth then write the same bytes, and a debugger started in
        // the build dir finds every file.
        let mut remap: Vec<OsString> = configured
            .iter()
            .flat_map(|b| family.remap_args(b, &paths::relative(&cwd, b)))
            .collect();
        if configured.iter().any(|b| cwd.starts_with(b)) {
            remap.extend(family.remap_args(&cwd, Path::new(".")));
        }
        let location = (!bases.is_empty()).then(|| {
            let mut l = cwd.display().to_string();
            for b in bases.dirs() {
                l.push('\n');
                l.push_str(&b.display().to_string());
            }
            l
        });
        let known = Known {
            bases,
            remap,
            location,
            native,
            req,
            cwd,
            identity,
            source,
            source_stat,
            start,
            pch_in_use,
        };
        let store = self.ctx.open_store();
        if self.ctx.cfg.direct.value {
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
        // Under a base directory, paths are keyed relative to the working directory.
        for a in &req.key_args {
            kb.add_os("arg", &k.bases.key_arg(a, &k.cwd));
        }
        for a in &k.remap {
            kb.add_os("remap", &k.bases.key_arg(a, &k.cwd));
        }
        if let Some(native) = &k.native {
            // The word "native" names no CPU: key what it means on this machine (the CPU on the
            // first line, then the features it implies).
            let (cpu, features) = native.split_once('\n').unwrap_or((native, ""));
            kb.add_str("native cpu", cpu);
            kb.add_str("native cpu features", features);
        }
        for var in self.family.key_env() {
            match std::env::var_os(var) {
                Some(v) => kb.add_os(&format!("env {var}"), &v),
                None => kb.add_str(&format!("env {var}"), "<unset>"),
            }
        }
        if let Some(dir) = &req.hash_cwd {
            // As the compiler records it: "." when we remap the working directory (under a base).
            // A family that cannot remap (nvcc: none for device code) records the real one.
            let remapped = dir == &k.cwd
                && !k.remap.is_empty()
                && self.ctx.cfg.basedirs.value.iter().any(|b| k.cwd.starts_with(b));
            kb.add_os("cwd", if remapped { Path::new(".") } else { dir }.as_os_str());
        }
        if let Some(p) = &req.output_path_in_key {
            kb.add_os("output path", p.as_os_str());
        }
        for o in req.outputs.iter().filter(|o| outputs::needs_no_restore(&o.path)) {
            // Its bytes are not in the entry (or are in its stdout): never share it with a call
            // that needs them as a file.
            kb.add_os(&format!("{} output elsewhere", o.role), o.path.as_os_str());
        }
        kb.add_digest("source", &crate::key::hex(&content_digest(&k.source).to_le_bytes()));
        for f in &req.extra_inputs {
            let data = crate::limits::read_regular(&k.cwd.join(f), crate::limits::INPUT_FILE)
                .map_err(|_| NotCacheable::MissingInput)?;
            let named = k.bases.key_path(f, &k.cwd);
            kb.add_digest(&format!("input file {}", named.display()), &sha256_hex(&data));
        }
        Ok(())
    }

    /// Direct mode: look the manifest up; a recorded include set that still holds names the result
    /// without running anything. On a miss, compile once and learn the include set from the
    /// compiler's dependency output (depend mode), or from a preprocessor run where that is not
    /// possible (-MMD, time macros).
    fn direct_mode(&mut self, store: &dyn Storage, k: &Known) -> i32 {
        let mut kb = KeyBuilder::new("manifest", self.ctx.cfg.debug.value);
        kb.add_str("manifest format", &manifest::FORMAT.to_string());
        if let Err(reason) = self.add_common_inputs(&mut kb, k) {
            return self.not_cacheable(reason);
        }
        let (manifest_key, manifest_dump) = kb.finish();
        let manifest_key = format!("{manifest_key}.manifest");
        log::debug!(target: "compile", "manifest key {manifest_key}");
        let mut manifest = self.load_manifest(store, &manifest_key);
        if !self.ctx.cfg.recache.value
            && let Some(status) = self.direct_lookup(store, k, &manifest_key, &manifest, manifest_dump.as_deref())
        {
            return status;
        }
        if !self.ctx.cfg.recache.value
            && let Some(bound_key) = k.bound(&manifest_key).map(|b| format!("{b}.manifest"))
        {
            let bound = self.load_manifest(store, &bound_key);
            if let Some(status) = self.direct_lookup(store, k, &bound_key, &bound, manifest_dump.as_deref()) {
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
        // With remote execution, a miss is compiled from its preprocessed source, which also
        // gives the include set (line markers).
        if k.req.dep_style == DepStyle::UserWithoutSystem
            || k.pch_in_use
            || dep_elsewhere
            || self.family.listing_source() == ListingSource::Preprocessor
            || self.remote_execution_for(&k.req).is_some()
        {
            return self.preprocessor_mode(store, k, Some((manifest_key, manifest, manifest_dump)));
        }
        self.depend_mode(store, k, &manifest_key, &mut manifest, manifest_dump.as_deref())
    }

    /// The first include set of `manifest` that still holds and whose entry restores: a hit.
    fn direct_lookup(
        &mut self,
        store: &dyn Storage,
        k: &Known,
        manifest_key: &str,
        manifest: &Manifest,
        manifest_dump: Option<&str>,
    ) -> Option<i32> {
        {
            for (i, set) in manifest.results.iter().enumerate() {
                if set.result_key == manifest::PREPROCESSOR_MODE {
                    return Some(self.preprocessor_mode(store, k, None));
                }
                let check = set.check(&k.cwd, k.start);
                if check == Check::Fails {
                    continue;
                }
                let status = self.try_hit(store, &set.result_key, k)?;
                log::debug!(target: "compile", "direct hit {} (include set {i})", set.result_key);
                self.write_debug_dump(
                    &k.req,
                    &[
                        ("manifest key", manifest_key, manifest_dump),
                        ("result key", &set.result_key, None),
                    ],
                );
                if let Check::HoldsRefreshed(fresh, cost) = check
                    && cost.worth_recording()
                {
                    // Record the stats learned again so the next hit need not read these files or
                    // list these directories.
                    let mut m = manifest.clone();
                    m.add(fresh);
                    self.put_manifest(store, manifest_key, &m);
                }
                self.ctx.count(Outcome::HitDirect);
                return Some(status);
            }
        }
        None
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
        if self
            .ctx
            .cfg
            .remote
            .as_ref()
            .and_then(|r| r.remote_execution())
            .is_some()
        {
            // With remote execution on, only a call that cannot go remote compiles here.
            let mut c = stats::Counters::new();
            c.insert("remote_execution.not_eligible".to_string(), 1);
            let _ = stats::add_counters(&self.ctx.cfg.dir.value, &c);
        }
        // Without the user's own -MD, ask for a dependency file in the cache dir. Only a file we
        // could create there goes on the command line: a cache fault must never reach the compiler.
        // A family that lists on stdout (/showIncludes) needs no file: its listing is taken out of
        // the stdout the user sees, unless the user asked for it too.
        let on_stdout = self.family.listing_source() == ListingSource::Stdout;
        let own_stdout_listing = on_stdout && k.req.dep_style == DepStyle::None;
        let own_dep = match k.req.dep_style {
            DepStyle::None if on_stdout => None,
            DepStyle::None => match self.temp_dep_file() {
                Ok(d) => Some(d),
                Err(e) => {
                    self.fault(
                        &format!(
                            "cannot create a dependency file in {}: {e}; preprocessing instead",
                            self.ctx.cfg.dir.value.display()
                        ),
                        Fault::DepFileFailed,
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
        let mut extra: Vec<OsString> = k.remap.clone();
        if let Some(d) = &own_dep {
            extra.extend(self.family.dependency_args(d));
        }
        if own_stdout_listing {
            extra.extend(self.family.dependency_args(Path::new("")));
        }
        let mut out = match self.run_compiler(&k.req, &extra, own_dep.is_none() && !own_stdout_listing) {
            Ok(o) => o,
            Err(status) => return status,
        };
        if let Some(d) = &own_dep
            && out.status != 0
            && (paths::contains(&out.stderr, d.as_os_str().as_encoded_bytes()) || !d.parent().is_some_and(Path::exists))
        {
            // The compile failed on our dependency file (disk full, cache dir made read-only or
            // removed meanwhile): that failure is ours, not the user's. Compile again as asked.
            let _ = std::fs::remove_file(d);
            self.fault(
                &format!(
                    "the compiler could not write the dependency file {}; compiling without it",
                    d.display()
                ),
                Fault::DepFileFailed,
            );
            let status = match self.run_compiler(&k.req, &k.remap, true) {
                Ok(o) => o.status,
                Err(status) => return status,
            };
            return self.count_returning(Outcome::Miss, status);
        }
        let mut stdout_listing = None;
        if on_stdout {
            let (listed, rest) = self.family.split_listing(&k.req, &k.cwd, &out.stdout);
            stdout_listing = listed;
            if own_stdout_listing {
                out.stdout = rest;
            }
        }
        if own_dep.is_some() || own_stdout_listing {
            replay(&out.stdout, &out.stderr, want_color(k.req.color));
            self.ctx.compiled = Some(out.status);
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
            return self.count_returning(Outcome::NotCacheable(NotCacheable::CompileFailed), out.status);
        }
        // The include files are checked when they are hashed (hash_includes).
        if self.changed_during_call(k, &[]) {
            return self.count_returning(Outcome::NotCacheable(NotCacheable::InputChanged), out.status);
        }
        let listed = if on_stdout {
            stdout_listing
        } else {
            dep_text.map(|text| self.family.dependencies(&text))
        };
        let Some(listed) = listed else {
            log::debug!(target: "compile", "no dependency output to learn the include set from; not storing");
            return self.count_returning(Outcome::Miss, out.status);
        };
        let source_abs = k.cwd.join(&k.req.source);
        if !listed.iter().any(|p| k.cwd.join(p) == source_abs) {
            // A listing that does not even name the source is not the list of what was read.
            log::debug!(target: "compile", "dependency output does not list the source; not storing");
            return self.count_returning(Outcome::Miss, out.status);
        }
        // gcc lists a header once per time it is entered: a set records each file once.
        let mut seen = std::collections::HashSet::new();
        let includes: Vec<PathBuf> = listed
            .into_iter()
            .filter(|p| k.cwd.join(p) != source_abs && seen.insert(p.clone()))
            .collect();
        let probed = match self.unlisted_reads(k, &includes) {
            Err(Unlisted::AsmInclude) => {
                return self.count_returning(Outcome::NotCacheable(NotCacheable::TooHard(ASM_INCLUDE)), out.status);
            }
            Err(Unlisted::ProbeChanged) => return self.count_returning(Outcome::Miss, out.status),
            Err(Unlisted::Probes) => {
                manifest.add(preprocessor_mode_marker());
                self.put_manifest(store, manifest_key, manifest);
                // Later calls look this source up in preprocessor mode: store the result under
                // that key (one preprocessor run, on this first miss only), unless an input was
                // saved again since the call started (the compile may have seen other content).
                let status = out.status;
                if let Ok((key, dump, _)) = self.preprocessed_key(k, &[])
                    && !self.changed_during_call(k, &includes)
                {
                    self.write_debug_dump(&k.req, &[("result key", &key, dump.as_deref())]);
                    self.store_result(store, &key, k, out);
                }
                return self.count_returning(Outcome::Miss, status);
            }
            Ok(probed) => probed,
        };
        let Some(mut set_files) = self.hash_includes(k, &includes) else {
            return self.count_returning(Outcome::Miss, out.status);
        };
        let Some(probe_files) = self.hash_probed(k, &probed.found, &includes) else {
            return self.count_returning(Outcome::Miss, out.status);
        };
        let mut kb = KeyBuilder::new("depend result", self.ctx.cfg.debug.value);
        kb.add_str("manifest key", manifest_key);
        for f in &set_files {
            kb.add_str(&format!("include {}", f.path.display()), &format!("{:032x}", f.digest));
        }
        // What the probes found decides the object as much as what was read (`#if
        // __has_include("opt.h")` may only define a macro): sets that differ in it never share
        // a result.
        for f in &probe_files {
            kb.add_str(
                &format!("probe found {}", f.path.display()),
                &format!("{:032x}", f.digest),
            );
        }
        for a in &probed.absent {
            kb.add_str("probe absent", &k.bases.key_path(a, &k.cwd).display().to_string());
        }
        set_files.extend(probe_files);
        let (result_key, result_dump) = kb.finish();
        self.write_debug_dump(
            &k.req,
            &[
                ("manifest key", manifest_key, manifest_dump),
                ("result key", &result_key, result_dump.as_deref()),
            ],
        );
        match self.store_result(store, &result_key, k, out) {
            Stored::Shared => {
                let set = ResultSet {
                    result_key: result_key.clone(),
                    dirs: self.watched_dirs(k, &includes, &probed.absent),
                    files: set_files,
                };
                manifest.add(set);
                self.put_manifest(store, manifest_key, manifest);
            }
            Stored::Bound(bound_result) => {
                // Recorded only in this location's manifest: no other checkout ever finds it.
                if let Some(bound_key) = k.bound(manifest_key).map(|b| format!("{b}.manifest")) {
                    let mut bound = self.load_manifest(store, &bound_key);
                    bound.add(ResultSet {
                        result_key: bound_result,
                        dirs: self.watched_dirs(k, &includes, &probed.absent),
                        files: set_files,
                    });
                    self.put_manifest(store, &bound_key, &bound);
                }
            }
            Stored::No => {}
        }
        self.count_returning(Outcome::Miss, self.ctx.compiled.unwrap_or(0))
    }

    /// Preprocessor mode: the result key covers the `-E` output. With `record`, also learn the
    /// include set from the line markers and add it to the manifest.
    fn preprocessor_mode(
        &mut self,
        store: &dyn Storage,
        k: &Known,
        record: Option<(String, Manifest, Option<String>)>,
    ) -> i32 {
        if !self.family.preprocessor_mode_sound() {
            return self.not_cacheable(NotCacheable::TooHard(
                "needs preprocessor mode, which this compiler lacks",
            ));
        }
        // A miss that may compile remotely has its dependency file written by this run.
        let dep_args = match self.remote_execution_for(&k.req) {
            Some(_) => self.family.preprocess_dependency_args(&k.req).unwrap_or_default(),
            None => Vec::new(),
        };
        let (key, dump, preprocessed) = match self.preprocessed_key(k, &dep_args) {
            Ok(x) => x,
            Err(reason) => return self.not_cacheable(reason),
        };
        self.write_debug_dump(&k.req, &[("result key", &key, dump.as_deref())]);
        let remember = |this: &mut Call, result_key: &str, bound: bool| {
            if let Some((manifest_key, manifest, _)) = record.clone() {
                // A location-bound result goes to this location's manifest only.
                let (manifest_key, mut manifest) = if bound {
                    let Some(b) = k.bound(&manifest_key).map(|b| format!("{b}.manifest")) else {
                        return;
                    };
                    let m = this.load_manifest(store, &b);
                    (b, m)
                } else {
                    (manifest_key, manifest)
                };
                let source_abs = k.cwd.join(&k.req.source);
                let includes: Vec<PathBuf> = this
                    .family
                    .included_files(&preprocessed)
                    .into_iter()
                    .filter(|p| k.cwd.join(p) != source_abs)
                    .collect();
                match this.unlisted_reads(k, &includes) {
                    Err(Unlisted::ProbeChanged) => {}
                    Err(_) => {
                        manifest.add(preprocessor_mode_marker());
                        this.put_manifest(store, &manifest_key, &manifest);
                    }
                    Ok(probed) => {
                        if let Some(set) = this.record_set(k, result_key, &includes, &probed) {
                            manifest.add(set);
                            this.put_manifest(store, &manifest_key, &manifest);
                        }
                    }
                }
            }
        };
        if !self.ctx.cfg.recache.value {
            if let Some(status) = self.try_hit(store, &key, k) {
                remember(self, &key, false);
                self.ctx.count(Outcome::HitPreprocessed);
                return status;
            }
            if let Some(bound) = k.bound(&key)
                && let Some(status) = self.try_hit(store, &bound, k)
            {
                remember(self, &bound, true);
                self.ctx.count(Outcome::HitPreprocessed);
                return status;
            }
        }
        let remote = self.compile_remotely(k, &preprocessed);
        let out = match remote {
            Some(o) => o,
            None => match self.run_compiler(&k.req, &k.remap, true) {
                Ok(o) => o,
                Err(status) => return status,
            },
        };
        if out.status != 0 {
            return self.count_returning(Outcome::NotCacheable(NotCacheable::CompileFailed), out.status);
        }
        let status = out.status;
        let source_abs = k.cwd.join(&k.req.source);
        let included: Vec<PathBuf> = self
            .family
            .included_files(&preprocessed)
            .into_iter()
            .filter(|p| k.cwd.join(p) != source_abs)
            .collect();
        if self.changed_during_call(k, &included) {
            return self.count_returning(Outcome::NotCacheable(NotCacheable::InputChanged), status);
        }
        match self.store_result(store, &key, k, out) {
            Stored::Shared => remember(self, &key, false),
            Stored::Bound(bound) => remember(self, &bound, true),
            Stored::No => {}
        }
        self.count_returning(Outcome::Miss, status)
    }

    /// The REAPI settings and the remote compile arguments when this request's miss is to be
    /// compiled on the engine (remote_exec.rs says which requests can be).
    fn remote_execution_for(&self, req: &CCompile) -> Option<(&crate::store::reapi::ReapiConfig, Vec<OsString>)> {
        let cfg = self.ctx.cfg.remote.as_ref()?.remote_execution()?;
        match crate::remote_exec::eligible(self.family, req) {
            Ok(args) => Some((cfg, args)),
            Err(why) => {
                log::debug!(target: "compile", "compiling locally: {why}");
                None
            }
        }
    }

    /// A miss compiled on the REAPI engine: its output replayed and the object written, or `None`
    /// to compile locally (not eligible, backing off, failed: counted).
    fn compile_remotely(&mut self, k: &Known, preprocessed: &[u8]) -> Option<Compiled> {
        let remote = self.ctx.cfg.remote.as_ref()?;
        let cfg = remote.remote_execution()?;
        let mut counters = stats::Counters::new();
        let mut count = |name: &str, n: u64| *counters.entry(name.to_string()).or_default() += n;
        let backoff = crate::remote_exec::backoff(&self.ctx.cfg.dir.value, cfg, remote.backoff.value);
        let result = match crate::remote_exec::eligible(self.family, &k.req) {
            Err(why) => Err(crate::remote_exec::Declined::NotEligible(why)),
            Ok(_) if backoff.active() => Err(crate::remote_exec::Declined::BackingOff),
            Ok(mut args) => {
                if k.req.color == ColorChoice::Auto && std::io::stderr().is_terminal() {
                    args.push(OsString::from(self.family.color_flag()));
                }
                let env: Vec<(&str, String)> = crate::remote_exec::MESSAGE_ENV
                    .iter()
                    .filter_map(|n| std::env::var(n).ok().map(|v| (*n, v)))
                    .collect();
                let name = self
                    .ctx
                    .real
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                let toolchain = cfg.toolchain_upload.value.then(|| {
                    crate::remote_exec::toolchain(self.family, &self.ctx.real, &k.identity, &self.ctx.cfg)
                        .inspect_err(
                            |why| log::debug!(target: "compile", "toolchain not uploaded, the worker's runs: {why}"),
                        )
                        .ok()
                });
                crate::remote_exec::compile(
                    cfg,
                    remote.timeouts(),
                    &self.ctx.real,
                    &name,
                    &k.identity,
                    &args,
                    &env,
                    preprocessed,
                    &k.cwd.join(&k.req.outputs[0].path),
                    toolchain.flatten().as_deref(),
                )
            }
        };
        let out = match result {
            Ok(done) => {
                count("remote_execution.compiled", 1);
                count("remote_execution.uploaded_bytes", done.uploaded);
                if done.cached {
                    count("remote_execution.engine_cache_hit", 1);
                }
                replay(&done.stdout, &done.stderr, want_color(k.req.color));
                self.ctx.compiled = Some(0);
                Some(Compiled {
                    status: 0,
                    stdout: done.stdout,
                    stderr: done.stderr,
                })
            }
            Err(crate::remote_exec::Declined::NotEligible(why)) => {
                log::debug!(target: "compile", "compiling locally: {why}");
                count("remote_execution.not_eligible", 1);
                None
            }
            Err(crate::remote_exec::Declined::BackingOff) => {
                count("remote_execution.skipped_backoff", 1);
                None
            }
            Err(crate::remote_exec::Declined::CompileFailed) => {
                count("remote_execution.compile_failed", 1);
                None
            }
            Err(crate::remote_exec::Declined::Diagnostics) => {
                count("remote_execution.diagnostics_local", 1);
                None
            }
            Err(crate::remote_exec::Declined::Fault(e)) => {
                count("remote_execution.local_fallback", 1);
                backoff.start();
                let fault = e.fault();
                self.fault(&format!("remote execution failed: {e}; compiling locally"), fault);
                None
            }
        };
        if let Err(e) = stats::add_counters(&self.ctx.cfg.dir.value, &counters) {
            log::warn!(target: "compile", "could not update statistics: {e}");
        }
        out
    }

    /// Hash the include files of a new include set; `None` when the set must not be recorded (a
    /// file is missing, changed after the call started, or uses time macros).
    fn hash_includes(&mut self, k: &Known, includes: &[PathBuf]) -> Option<Vec<IncludeFile>> {
        let date_ok = std::env::var_os("SOURCE_DATE_EPOCH").is_some();
        let mut files = Vec::with_capacity(includes.len());
        for inc in includes {
            let (meta, data) = read_unchanged(k, inc)?;
            if manifest::has_incbin(&data) {
                log::debug!(target: "compile", "{} uses .incbin, which reads a file no listing names", inc.display());
                return None;
            }
            if !date_ok && has_time_macros(&data) {
                log::debug!(target: "compile", "{} uses __DATE__/__TIME__; no direct-mode entry", inc.display());
                return None;
            }
            files.push(include_file(k, inc, &meta, &data));
        }
        Some(files)
    }

    /// A preprocessor-mode include set: its result key is the preprocessed text's, which holds
    /// what the probes found.
    fn record_set(
        &mut self,
        k: &Known,
        result_key: &str,
        includes: &[PathBuf],
        probed: &Resolved,
    ) -> Option<ResultSet> {
        let mut files = self.hash_includes(k, includes)?;
        files.extend(self.hash_probed(k, &probed.found, includes)?);
        Some(ResultSet {
            result_key: result_key.to_string(),
            dirs: self.watched_dirs(k, includes, &probed.absent),
            files,
        })
    }

    /// Hash the probed headers that exist and were not read (those that were are in `includes`):
    /// their content is recorded like a header's (a change costs a miss). `None` when one was
    /// created or changed while the call ran: the compiler may not have seen it.
    fn hash_probed(&self, k: &Known, found: &[PathBuf], includes: &[PathBuf]) -> Option<Vec<IncludeFile>> {
        let read: std::collections::HashSet<PathBuf> = includes.iter().map(|p| k.cwd.join(p)).collect();
        let mut files = Vec::new();
        for p in found.iter().filter(|p| !read.contains(&k.cwd.join(p))) {
            let (meta, data) = read_unchanged(k, p)?;
            files.push(include_file(k, p, &meta, &data));
        }
        Some(files)
    }

    /// The directories to watch for headers that would shadow `includes`, and for the probed
    /// headers that must stay absent (`probe_absent`).
    fn watched_dirs(&self, k: &Known, includes: &[PathBuf], probe_absent: &[PathBuf]) -> Vec<manifest::WatchedDir> {
        let mut read = vec![k.req.source.clone()];
        read.extend(includes.iter().cloned());
        let mut absent = self
            .family
            .shadowing_candidates(&self.ctx.real, &k.identity, &k.req, &self.ctx.cfg, &read, &k.cwd)
            .unwrap_or_default();
        absent.extend(probe_absent.iter().cloned());
        let absent: Vec<PathBuf> = absent.iter().map(|a| k.bases.key_path(a, &k.cwd)).collect();
        manifest::watch_dirs(&absent, &k.cwd, k.start)
    }

    fn load_manifest(&mut self, store: &dyn Storage, key: &str) -> Manifest {
        let Some(bytes) = self.ctx.fetch(store, key) else {
            return Manifest::default();
        };
        Manifest::decode(&bytes).unwrap_or_else(|e| {
            self.ctx.corrupt(store, key, &e);
            Manifest::default()
        })
    }

    fn put_manifest(&mut self, store: &dyn Storage, key: &str, m: &Manifest) {
        self.ctx.put(store, key, &m.encode());
    }

    /// Create an empty, new dependency file in the cache's tmp dir (so that the place is known to
    /// take a file before the compiler is told to write there).
    fn temp_dep_file(&self) -> std::io::Result<PathBuf> {
        let dir = self.ctx.cfg.dir.value.join("tmp");
        std::fs::create_dir_all(&dir)?;
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let path = dir.join(format!("dep.{}.{nanos}.d", std::process::id()));
        std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
        Ok(path)
    }

    fn preprocess(&mut self, req: &CCompile, remap: &[OsString], extra: &[OsString]) -> Result<Vec<u8>, NotCacheable> {
        let _slot = crate::coordinator::slot(&self.ctx.cfg);
        let out = self
            .ctx
            .command()
            .args(remap)
            .args(self.family.preprocess_args(req))
            .args(extra)
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
    /// Dependency files and the compiler's output name this build's base directories.
    fn try_hit(&mut self, store: &dyn Storage, key: &str, k: &Known) -> Option<i32> {
        let cwd = k.cwd.as_path();
        let with_bases = |data: &[u8]| paths::restore_listing(data, cwd);
        let wanted: Vec<Wanted> = k
            .req
            .outputs
            .iter()
            // /dev/null, or the compiler's stdout/stderr: their bytes are in the replayed output.
            .filter(|o| !outputs::needs_no_restore(&o.path))
            .map(|o| Wanted {
                role: o.role,
                path: o.path.clone(),
                optional: o.optional,
                rewrite: (o.role == "dep").then_some(&with_bases as &call::Rewrite<'_>),
                executable: false,
            })
            .collect();
        let r = self.ctx.restore(store, key, &wanted)?;
        replay(&with_bases(&r.stdout), &with_bases(&r.stderr), want_color(k.req.color));
        Some(r.exit_status)
    }

    /// Run the real compiler on the user's arguments (plus `extra`), capture its output and replay
    /// it (unless `replay_now` is false: the caller replays it, or discards it and compiles again).
    /// `Err(status)` when it could not be started at all.
    fn run_compiler(&mut self, req: &CCompile, extra: &[OsString], replay_now: bool) -> Result<Compiled, i32> {
        let mut cmd = self.ctx.command();
        cmd.args(&self.ctx.args).args(extra);
        if req.color == ColorChoice::Auto && std::io::stderr().is_terminal() {
            // Captured stderr is not a terminal, so ask for the colour the user would have seen.
            cmd.arg(self.family.color_flag());
        }
        let _slot = crate::coordinator::slot(&self.ctx.cfg);
        let out = match cmd.stdin(Stdio::inherit()).output() {
            Ok(o) => o,
            Err(e) => {
                eprintln!("cachepot: error: cannot run {}: {e}", self.ctx.real.display());
                return Err(127);
            }
        };
        let status = call::exit_code(out.status);
        if replay_now {
            replay(&out.stdout, &out.stderr, want_color(req.color));
            self.ctx.compiled = Some(status);
        }
        Ok(Compiled {
            status,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    /// Read the outputs back and store them under `key`. Under base directories, the dependency
    /// file and the compiler's output are stored with the bases marked (a hit names its own), and
    /// an output that still names a base by its absolute path is stored under this location's key
    /// only: it is never handed to another checkout.
    fn store_result(&mut self, store: &dyn Storage, key: &str, k: &Known, out: Compiled) -> Stored {
        let bases = &k.bases;
        let mut entry = Entry {
            exit_status: out.status,
            files: Vec::new(),
            stdout: bases.store_listing(&out.stdout, &k.cwd),
            stderr: bases.store_listing(&out.stderr, &k.cwd),
        };
        let mut names_location = false;
        for o in &k.req.outputs {
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
                return Stored::No;
            }
            match std::fs::read(&o.path) {
                Ok(data) if o.role == "dep" => entry
                    .files
                    .push((o.role.to_string(), bases.store_listing(&data, &k.cwd))),
                Ok(data) => {
                    names_location |= bases.embedded_in(&data);
                    entry.files.push((o.role.to_string(), data))
                }
                Err(e) => {
                    self.ctx.fault(
                        &format!("cannot read back {}: {e}", o.path.display()),
                        Fault::ReadFailed,
                    );
                    return Stored::No;
                }
            }
        }
        let bound = if names_location { k.bound(key) } else { None };
        if let Some(bound) = bound {
            log::debug!(target: "compile", "an output names a base directory's absolute path; stored for this location only");
            let mut c = stats::Counters::new();
            c.insert("stored_location_bound".to_string(), 1);
            let _ = stats::add_counters(&self.ctx.cfg.dir.value, &c);
            return if self
                .ctx
                .put(store, &bound, &entry.encode_for(store.wants_large_compressed()))
            {
                Stored::Bound(bound)
            } else {
                Stored::No
            };
        }
        if self
            .ctx
            .put(store, key, &entry.encode_for(store.wants_large_compressed()))
        {
            Stored::Shared
        } else {
            Stored::No
        }
    }

    /// `CACHEPOT_DEBUG`: the labelled inputs of this call's keys, next to the object, so that two
    /// builds' files can be diffed to see why one missed.
    fn write_debug_dump(&self, req: &CCompile, keys: &[(&str, &str, Option<&str>)]) {
        if !self.ctx.cfg.debug.value {
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

    /// Whether an input was saved again while this call ran, so the compiler may have read other
    /// content than the key holds: an object must never be stored under content the compiler did
    /// not see. The source: its stat (inode, size, mtime, ctime) and content are compared with
    /// those read before keying. Extra inputs and `included` (the preprocessed text's files, keyed
    /// by a separate `-E` run): their inode changed since the call started.
    fn changed_during_call(&self, k: &Known, included: &[PathBuf]) -> bool {
        let source = k.cwd.join(&k.req.source);
        let source_changed = InputStat::of(&source) != k.source_stat
            || crate::limits::read_regular(&source, crate::limits::INPUT_FILE)
                .ok()
                .as_deref()
                != Some(&k.source[..]);
        let changed = if source_changed {
            Some(k.req.source.clone())
        } else {
            k.req
                .extra_inputs
                .iter()
                .chain(included)
                .find(|f| std::fs::metadata(k.cwd.join(f)).is_ok_and(|m| InputStat::changed_after(&m, k.start)))
                .cloned()
        };
        if let Some(f) = &changed {
            log::debug!(target: "compile", "{} changed while this call ran; not storing", f.display());
        }
        changed.is_some()
    }

    /// Preprocessor mode's result key: the common inputs and the preprocessed text (its line
    /// markers rebased); with the dump and the text.
    fn preprocessed_key(
        &mut self,
        k: &Known,
        dep_args: &[OsString],
    ) -> Result<(String, Option<String>, Vec<u8>), NotCacheable> {
        let mut kb = KeyBuilder::new("result", self.ctx.cfg.debug.value);
        self.add_common_inputs(&mut kb, k)?;
        let preprocessed = self.preprocess(&k.req, &k.remap, dep_args)?;
        if manifest::has_incbin(&preprocessed) {
            return Err(NotCacheable::Incbin);
        }
        if is_assembler(&k.req.language) && manifest::has_asm_include(&preprocessed) {
            return Err(NotCacheable::TooHard(ASM_INCLUDE));
        }
        // Line markers name files by their absolute paths: key them relative under a base.
        kb.add_digest(
            "preprocessed source",
            &sha256_hex(&k.bases.rebase_text(&preprocessed, &k.cwd)),
        );
        let (key, dump) = kb.finish();
        log::debug!(target: "compile", "result key {key}");
        Ok((key, dump, preprocessed))
    }

    /// What the include set must hold beyond the files the compile read: for the files of this
    /// build (the source, and headers under its directory, the working directory or a directory
    /// of the command line) that look for headers with `__has_include`, where each probed header
    /// is now or must stay absent (compiler/probes.rs). `Err` when that cannot be known (a probe
    /// not understood, a family that does not resolve probes), and, in assembler,
    /// for an `.include`d file. The compiler's own headers are trusted to probe only its own
    /// directories.
    fn unlisted_reads(&self, k: &Known, includes: &[PathBuf]) -> Result<Resolved, Unlisted> {
        let asm = is_assembler(&k.req.language);
        let ours = |p: &Path| {
            let abs = k.cwd.join(p);
            p.is_relative()
                || abs.starts_with(&k.cwd)
                || k.req.include_dirs.iter().any(|(_, d)| abs.starts_with(k.cwd.join(d)))
        };
        let mut read: Vec<(PathBuf, bool, Vec<u8>)> = Vec::new();
        for inc in includes {
            let Ok(data) = crate::limits::read_regular(&k.cwd.join(inc), crate::limits::INPUT_FILE) else {
                continue;
            };
            if asm && manifest::has_asm_include(&data) {
                return Err(Unlisted::AsmInclude);
            }
            read.push((inc.clone(), ours(inc), data));
        }
        // The source first.
        let files: Vec<probes::ReadFile> = std::iter::once(probes::ReadFile {
            path: &k.req.source,
            ours: true,
            text: &k.source,
        })
        .chain(read.iter().map(|(path, ours, text)| probes::ReadFile {
            path,
            ours: *ours,
            text,
        }))
        .collect();
        // A cheap test first: `__has_include` anywhere (a file of ours may probe through a macro
        // that a header of the compiler's defines), or `#include_next` in a file of ours.
        let probing = |f: &probes::ReadFile| f.ours && manifest::probes_headers(f.text);
        if !files.iter().any(|f| probing(f) || probes::mentions_has_include(f.text)) {
            return Ok(Resolved::default());
        }
        let Some(chain) = self
            .family
            .probe_search_dirs(&self.ctx.real, &k.identity, &k.req, &self.ctx.cfg)
        else {
            return match files.iter().find(|f| probing(f)) {
                Some(f) => {
                    log::debug!(target: "compile", "{} looks for headers, which this compiler's calls cannot follow; preprocessor mode", f.path.display());
                    Err(Unlisted::Probes)
                }
                None => Ok(Resolved::default()),
            };
        };
        let output_dirs: Vec<&Path> = k
            .req
            .outputs
            .iter()
            .map(|o| o.path.parent().unwrap_or(Path::new("")))
            .collect();
        let search = probes::Where {
            chain: &chain,
            cwd: &k.cwd,
            start: k.start,
            output_dirs: &output_dirs,
        };
        match probes::follow(&files, &k.req.key_args, &search) {
            Ok(r) => {
                log::debug!(target: "compile", "header probes: {} found, {} places must stay absent", r.found.len(), r.absent.len());
                Ok(r)
            }
            Err(probes::NotFollowed::Unknown(why)) => {
                log::debug!(target: "compile", "{why}; no include set, preprocessor mode");
                Err(Unlisted::Probes)
            }
            Err(probes::NotFollowed::Changed(p)) => {
                log::debug!(target: "compile", "the directory of probed header {} changed during the call; not recording", p.display());
                Err(Unlisted::ProbeChanged)
            }
        }
    }

    fn fault(&mut self, message: &str, fault: Fault) {
        self.ctx.fault(message, fault);
    }

    fn count_returning(&self, outcome: Outcome, status: i32) -> i32 {
        self.ctx.count_returning(outcome, status)
    }

    fn not_cacheable(&mut self, reason: NotCacheable) -> i32 {
        self.ctx.not_cacheable(reason)
    }
}

/// Where a result went.
enum Stored {
    /// Under its key, for every location.
    Shared,
    /// Under this location's key (an output names a base directory's absolute path).
    Bound(String),
    No,
}

/// The option detail of an assembler source or header that uses `.include`.
const ASM_INCLUDE: &str = ".include in assembler";

fn is_assembler(language: &str) -> bool {
    language == "assembler" || language == "assembler-with-cpp"
}

/// What an include set cannot hold (`unlisted_reads`).
enum Unlisted {
    /// A file of the build looks for headers in a way that cannot be recorded: only the
    /// preprocessed text keys what it found.
    Probes,
    /// A directory where a probed header must stay absent changed while the call ran: this
    /// call records no set (the next miss may).
    ProbeChanged,
    /// Assembler `.include`: nothing keys the included file.
    AsmInclude,
}

/// A file the compile read (a header, a probed header), with its stat data; `None` when it is gone
/// or changed after the call started (the compiler may have seen other bytes): not recorded.
fn read_unchanged(k: &Known, rel: &Path) -> Option<(std::fs::Metadata, Vec<u8>)> {
    let path = k.cwd.join(rel);
    let meta = std::fs::metadata(&path).ok()?;
    if modified_or_changed_after(&meta, k.start) {
        log::debug!(target: "compile", "{} changed during the compile; not recording it", rel.display());
        return None;
    }
    let data = crate::limits::read_regular(&path, crate::limits::INPUT_FILE).ok()?;
    Some((meta, data))
}

/// An include set's record of a file: under a base, relative to the working directory (checked
/// from there), with its content digest and trusted stat data.
fn include_file(k: &Known, rel: &Path, meta: &std::fs::Metadata, data: &[u8]) -> IncludeFile {
    IncludeFile {
        path: k.bases.key_path(rel, &k.cwd),
        digest: content_digest(data),
        stat: trusted_stat(meta, k.start),
    }
}

/// The manifest's marker that sends this source's lookups to preprocessor mode.
fn preprocessor_mode_marker() -> ResultSet {
    ResultSet {
        result_key: manifest::PREPROCESSOR_MODE.to_string(),
        files: Vec::new(),
        dirs: Vec::new(),
    }
}

/// The stat of an input that changes whenever it is saved again (written in place or replaced).
#[derive(Debug, PartialEq, Eq)]
struct InputStat {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl InputStat {
    fn of(path: &Path) -> Option<InputStat> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(InputStat {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }

    /// Was the file's inode changed (written, replaced, touched) after `start`? ctime only: the
    /// kernel sets it, so an mtime in the future (a tarball from a skewed clock) does not make a
    /// file look changed forever. File-system clocks are coarse (they may stamp a change up to
    /// one tick, a few ms, before the precise `start`), but the change that matters comes after
    /// a compiler process read the file, which is started well over a tick after `start`.
    fn changed_after(m: &std::fs::Metadata, start: SystemTime) -> bool {
        use std::os::unix::fs::MetadataExt;
        let ctime = std::time::UNIX_EPOCH
            + std::time::Duration::new(m.ctime().max(0) as u64, m.ctime_nsec().clamp(0, 999_999_999) as u32);
        ctime >= start
    }
}

/// What a compiler run gave.
struct Compiled {
    status: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}
