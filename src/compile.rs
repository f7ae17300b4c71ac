//! The flow of one compile call, and only the flow: find the compiler, parse, key, look up, then
//! restore a hit or compile and store a miss, and count the call once. The details live in the
//! modules called from here. Any cache fault falls back to running the real compiler.

use crate::compiler::{self, CCompile, ColorChoice, Family, NotCacheable};
use crate::config::Config;
use crate::entry::Entry;
use crate::key::{KeyBuilder, sha256_hex};
use crate::locate::{self, SelfIdentity};
use crate::stats::{self, Outcome};
use crate::store::Storage;
use crate::store::disk::DiskStore;
use crate::{logging, outputs};
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

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
    quiet_panics();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call.cached())) {
        Ok(status) => status,
        Err(_) => {
            log::error!(target: "compile", "internal error in cachepot; running the compiler without the cache");
            match call.compiled {
                Some(status) => status,
                None => exec_passthrough(&call.real, &call.args),
            }
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

impl Call {
    fn cached(&mut self) -> i32 {
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
        let req = match compiler::gcc::parse(family, &expanded, &cwd, &|v| std::env::var_os(v)) {
            Ok(r) => r,
            Err(reason) => return self.not_cacheable(reason),
        };
        log::debug!(target: "compile", "{} compile of {} (language {})", family.name(), req.source.display(), req.language);
        let store = DiskStore::new(&self.cfg.dir.value, self.cfg.max_size.value);
        let key = match self.result_key(&req, &cwd) {
            Ok(k) => k,
            Err(reason) => return self.not_cacheable(reason),
        };
        log::debug!(target: "compile", "result key {key}");
        if !self.cfg.recache.value
            && let Some(status) = self.try_hit(&store, &key, &req)
        {
            self.count(Outcome::HitPreprocessed);
            return status;
        }
        self.compile_and_store(&store, &key, &req)
    }

    /// Preprocessor mode: hash the compiler, the arguments, the relevant environment, the source
    /// and the `-E` output.
    fn result_key(&mut self, req: &CCompile, cwd: &Path) -> Result<String, NotCacheable> {
        let mut kb = KeyBuilder::new("result", self.cfg.debug.value);
        match compiler::identity(&self.real) {
            Ok(id) => kb.add_str("compiler", &id),
            Err(e) => {
                log::warn!(target: "compile", "cannot identify compiler {}: {e}", self.real.display());
                return Err(NotCacheable::UnknownCompiler);
            }
        }
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
        let source = std::fs::read(cwd.join(&req.source)).map_err(|_| NotCacheable::MissingInput)?;
        kb.add_digest("source", &sha256_hex(&source));
        for f in &req.extra_inputs {
            let data = std::fs::read(cwd.join(f)).map_err(|_| NotCacheable::MissingInput)?;
            kb.add_digest(&format!("input file {}", f.display()), &sha256_hex(&data));
        }
        let preprocessed = self.preprocess(req)?;
        kb.add_digest("preprocessed source", &sha256_hex(&preprocessed));
        let (key, dump) = kb.finish();
        if let Some(dump) = dump {
            self.write_debug_dump(req, &key, &dump);
        }
        Ok(key)
    }

    fn preprocess(&mut self, req: &CCompile) -> Result<Vec<u8>, NotCacheable> {
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
    fn try_hit(&mut self, store: &DiskStore, key: &str, req: &CCompile) -> Option<i32> {
        let bytes = match store.get(key) {
            Ok(Some(b)) => b,
            Ok(None) => return None,
            Err(e) => {
                self.fault(&e.to_string(), e.stat_name());
                return None;
            }
        };
        let entry = match Entry::decode(&bytes) {
            Ok(e) => e,
            Err(e) => {
                self.fault(&format!("entry {key}: {e}; removed"), "corrupt-entry");
                let _ = store.remove(key);
                return None;
            }
        };
        for out in &req.outputs {
            let data = match entry.file(out.role) {
                Some(d) => d,
                None if out.optional => continue,
                None => {
                    self.fault(&format!("entry {key} lacks its {} file", out.role), "corrupt-entry");
                    return None;
                }
            };
            if let Err(e) = outputs::write_output(&out.path, data) {
                self.fault(&format!("cannot write {}: {e}", out.path.display()), "restore-failed");
                return None;
            }
        }
        log::debug!(target: "compile", "hit {key}");
        replay(&entry.stdout, &entry.stderr, want_color(req.color));
        Some(entry.exit_status)
    }

    fn compile_and_store(&mut self, store: &DiskStore, key: &str, req: &CCompile) -> i32 {
        let mut cmd = self.command();
        cmd.args(&self.args);
        if req.color == ColorChoice::Auto && std::io::stderr().is_terminal() {
            // Captured stderr is not a terminal, so ask for the colour the user would have seen.
            cmd.arg(compiler::gcc::color_flag(req.family));
        }
        let out = match cmd.stdin(Stdio::inherit()).output() {
            Ok(o) => o,
            Err(e) => {
                eprintln!("cachepot: error: cannot run {}: {e}", self.real.display());
                return 127;
            }
        };
        let status = exit_code(out.status);
        replay(&out.stdout, &out.stderr, want_color(req.color));
        self.compiled = Some(status);
        if status != 0 {
            return self.count_returning(Outcome::NotCacheable(NotCacheable::CompileFailed.reason()), status);
        }
        let mut entry = Entry {
            exit_status: status,
            files: Vec::new(),
            stdout: out.stdout,
            stderr: out.stderr,
        };
        for o in &req.outputs {
            if !outputs::is_regular_file(&o.path) {
                if o.optional && !o.path.exists() {
                    continue;
                }
                // Written to /dev/null or another special file: nothing to read back and store.
                log::debug!(target: "compile", "{} is not a regular file; not storing", o.path.display());
                return self.count_returning(Outcome::Miss, status);
            }
            match std::fs::read(&o.path) {
                Ok(data) => entry.files.push((o.role.to_string(), data)),
                Err(e) => {
                    self.fault(&format!("cannot read back {}: {e}", o.path.display()), "read-failed");
                    return self.count_returning(Outcome::Miss, status);
                }
            }
        }
        if let Err(e) = store.put(key, &entry.encode()) {
            self.fault(&format!("cannot store entry {key}: {e}"), e.stat_name());
        }
        self.count_returning(Outcome::Miss, status)
    }

    /// The real compiler as a command, with the recursion guard set.
    fn command(&self) -> Command {
        let mut c = Command::new(&self.real);
        c.env(locate::GUARD_VAR, locate::guard_value());
        c
    }

    fn write_debug_dump(&self, req: &CCompile, key: &str, dump: &str) {
        let object = &req.outputs[0].path;
        if object.as_os_str().is_empty() || !object.parent().is_none_or(|p| p.as_os_str().is_empty() || p.is_dir()) {
            return;
        }
        let mut path = object.clone().into_os_string();
        path.push(".cachepot-key.txt");
        let text = format!("result key {key}\n{dump}");
        if !outputs::is_regular_file(object) && object.exists() {
            return;
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

/// Replace this process with the real compiler (stdio untouched). Returns only on failure.
fn exec_passthrough(real: &Path, args: &[OsString]) -> i32 {
    let err = Command::new(real)
        .args(args)
        .env(locate::GUARD_VAR, locate::guard_value())
        .exec();
    eprintln!("cachepot: error: cannot run {}: {err}", real.display());
    127
}

fn exit_code(status: ExitStatus) -> i32 {
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

/// Panics are bugs; in a compile call they must not print a backtrace over the compiler's output.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        log::error!(target: "compile", "panic: {info}");
    }));
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
