//! What every compile flow shares, so that the C flow (compile.rs) and the Rust flow (rust/) are
//! two users of one call, not two copies: finding the compiler and the settings, choosing the
//! flow by compiler family, the panic guard, passing a call through, fetching and verifying an
//! entry and putting its files in place, replaying the compiler's output, and counting the call
//! once with its faults. A flow holds a `CallCtx` and adds only what its family needs.

use crate::compiler::{self, FamilyKind, NotCacheable};
use crate::config::Config;
use crate::entry;
use crate::locate::{self, SelfIdentity};
use crate::outputs::PendingOutput;
use crate::stats::{self, Fault, Outcome};
use crate::store::Storage;
use std::cell::RefCell;
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::rc::Rc;

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
        // Nothing on the compiler's stderr: a build may read it (bad_setting.rs).
        Err(_) => return crate::bad_setting::compile_anyway(&real, &inv.args),
    };
    crate::logging::init(&cfg);
    if cfg.disable.value {
        return exec_passthrough(&real, &inv.args);
    }
    // Before this call's entries take the last blocks or inodes, so that it can still be counted.
    crate::stats::prepare(&cfg.dir.value);
    match compiler::detect(&inv.compiler, &real) {
        Some(FamilyKind::Rust) => {
            let ctx = CallCtx::new(cfg, real, inv.args, "rust");
            crate::rust::run(ctx, &inv.compiler)
        }
        Some(FamilyKind::C(family)) => {
            let ctx = CallCtx::new(cfg, real, inv.args, "compile");
            crate::compile::run(ctx, family, inv.compiler)
        }
        None => {
            let mut ctx = CallCtx::new(cfg, real, inv.args, "compile");
            ctx.not_cacheable(NotCacheable::UnknownCompiler)
        }
    }
}

/// One call's shared state: settings, the real compiler and the user's arguments, the faults met
/// so far, and whether the compiler already ran (and its output was shown).
pub struct CallCtx {
    pub cfg: Config,
    pub real: PathBuf,
    pub args: Vec<OsString>,
    pub faults: Vec<Fault>,
    /// Set once the real compiler ran and its output was replayed: after a panic this is the
    /// status to exit with, instead of compiling a second time.
    pub compiled: Option<i32>,
    /// The log target of the flow.
    pub target: &'static str,
}

/// One file a hit writes: the path from the command line (never from the entry), whether the
/// entry may lack it, and a rewrite of its bytes before they are put in place (the Rust flow puts
/// this call's out dir into dep-info).
pub struct Wanted<'a> {
    pub role: &'a str,
    pub path: PathBuf,
    pub optional: bool,
    pub rewrite: Option<&'a Rewrite<'a>>,
    /// An executable or shared object: restored with execute permission where read is allowed.
    pub executable: bool,
}

/// A change to a restored file's bytes.
pub type Rewrite<'a> = dyn Fn(&[u8]) -> Vec<u8> + 'a;

/// An output being restored, with the file and buffer of one whose bytes are rewritten.
type Restoring = (PendingOutput, Option<(std::fs::File, SharedBuf, usize)>);

impl CallCtx {
    pub fn new(cfg: Config, real: PathBuf, args: Vec<OsString>, target: &'static str) -> CallCtx {
        CallCtx {
            cfg,
            real,
            args,
            faults: Vec::new(),
            compiled: None,
            target,
        }
    }

    /// A cache fault: logged, counted with the call, and the call goes on without the cache.
    pub fn fault(&mut self, message: &str, fault: Fault) {
        log::warn!(target: self.target, "cache fault, compiling instead: {message}");
        self.faults.push(fault);
    }

    pub fn count(&self, outcome: Outcome) {
        stats::record(&self.cfg.dir.value, &outcome, &self.faults);
    }

    pub fn count_returning(&self, outcome: Outcome, status: i32) -> i32 {
        self.count(outcome);
        status
    }

    /// Pass the call straight through, counting it with its reason.
    pub fn not_cacheable(&mut self, reason: NotCacheable) -> i32 {
        log::debug!(target: self.target, "not cacheable: {}", reason.describe());
        self.count(Outcome::NotCacheable(reason));
        exec_passthrough(&self.real, &self.args)
    }

    /// The real compiler as a command, with the recursion guard set.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.real);
        c.env(locate::GUARD_VAR, locate::guard_value());
        c
    }

    /// The cache as the settings describe it: the local disk, with the remote level behind it.
    pub fn open_store(&self) -> Box<dyn Storage> {
        let c = &self.cfg;
        crate::store::open(
            &c.dir.value,
            c.max_size.value,
            c.remote.as_ref(),
            c.direct.value,
            &c.trust,
        )
    }

    /// The bytes stored under `key`; `None` on a miss or a fault (counted).
    pub fn fetch(&mut self, store: &dyn Storage, key: &str) -> Option<Vec<u8>> {
        let found = store.get(key);
        self.found(found)
    }

    /// What a lookup found; a store fault is counted and reads as a miss.
    fn found<T>(&mut self, lookup: Result<Option<T>, crate::store::StoreError>) -> Option<T> {
        lookup.unwrap_or_else(|e| {
            self.fault(&e.to_string(), e.fault());
            None
        })
    }

    /// An entry or manifest that failed verification: counted, and removed so it is made anew.
    pub fn corrupt(&mut self, store: &dyn Storage, key: &str, why: &dyn std::fmt::Display) {
        self.fault(&format!("{key}: {why}; removed"), Fault::CorruptEntry);
        let _ = store.remove(key);
    }

    /// Store `bytes` under `key`; false (and a counted fault) when it could not be stored.
    pub fn put(&mut self, store: &dyn Storage, key: &str, bytes: &[u8]) -> bool {
        match store.put(key, bytes) {
            Ok(()) => true,
            Err(e) => {
                self.fault(&format!("cannot store {key}: {e}"), e.fault());
                false
            }
        }
    }

    /// Look `key` up and put the entry's files at the wanted paths. Files are streamed out of the
    /// entry into temporary files while its checksum is verified, and put in place only once it
    /// is, and only when every non-optional file was there. `None` means "compile instead" (a
    /// miss, or a fault, counted); the caller replays the returned output.
    pub fn restore(&mut self, store: &dyn Storage, key: &str, wanted: &[Wanted]) -> Option<entry::Replay> {
        let found = store.get_entry(key);
        let found = self.found(found)?;
        let spare = self.cfg.dir.value.join("tmp");
        let mut pending: Vec<Restoring> = Vec::new();
        let mut open = |role: &str| {
            let Some((i, w)) = wanted.iter().enumerate().find(|(_, w)| w.role == role) else {
                return Ok(None);
            };
            let (p, file) = PendingOutput::create(&w.path, &spare)?;
            if w.executable {
                use std::os::unix::fs::PermissionsExt;
                let mode = crate::outputs::new_file_mode();
                file.set_permissions(std::fs::Permissions::from_mode(mode | ((mode & 0o444) >> 2)))?;
            }
            if w.rewrite.is_some() {
                let buf = SharedBuf::default();
                pending.push((p, Some((file, buf.clone(), i))));
                Ok(Some(SectionWriter::Buffer(buf)))
            } else {
                pending.push((p, None));
                Ok(Some(SectionWriter::File(std::io::BufWriter::new(file))))
            }
        };
        let streamed = match found {
            crate::store::Found::Bytes(bytes) => entry::stream(&bytes[..], &mut open),
            // The local disk's file, read as it is decoded: no copy of a large entry in memory.
            crate::store::Found::File(f, len) => {
                let buffer = (len as usize).clamp(4 << 10, 64 << 10);
                entry::stream(std::io::BufReader::with_capacity(buffer, f), &mut open)
            }
        };
        let abort = |pending: Vec<Restoring>| pending.into_iter().for_each(|(p, _)| p.abort());
        let replay = match streamed {
            Ok(r) => r,
            Err(entry::StreamError::Entry(e)) => {
                abort(pending);
                self.corrupt(store, key, &e);
                return None;
            }
            Err(entry::StreamError::Output(e)) => {
                abort(pending);
                self.fault(&format!("cannot write an output: {e}"), Fault::RestoreFailed);
                return None;
            }
        };
        if let Some(missing) = wanted
            .iter()
            .find(|w| !w.optional && !replay.roles.iter().any(|r| r == w.role))
        {
            abort(pending);
            self.fault(
                &format!("entry {key} lacks its {} file", missing.role),
                Fault::CorruptEntry,
            );
            return None;
        }
        let mut ready = Vec::with_capacity(pending.len());
        for (p, rewritten) in pending {
            if let Some((mut file, buf, i)) = rewritten {
                let rewrite = wanted[i].rewrite.expect("buffered only when rewritten");
                let data = rewrite(&buf.0.borrow());
                if let Err(e) = file.write_all(&data) {
                    p.abort();
                    ready.into_iter().for_each(PendingOutput::abort);
                    self.fault(&format!("cannot write an output: {e}"), Fault::RestoreFailed);
                    return None;
                }
            }
            ready.push(p);
        }
        for p in ready {
            if let Err(e) = p.commit() {
                self.fault(&format!("cannot put an output in place: {e}"), Fault::RestoreFailed);
                return None;
            }
        }
        log::debug!(target: self.target, "hit {key}");
        Some(replay)
    }
}

#[derive(Default, Clone)]
struct SharedBuf(Rc<RefCell<Vec<u8>>>);

/// Where a file section of an entry goes while it is verified.
enum SectionWriter {
    File(std::io::BufWriter<std::fs::File>),
    Buffer(SharedBuf),
}

impl Write for SectionWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            SectionWriter::File(f) => f.write(data),
            SectionWriter::Buffer(b) => {
                b.0.borrow_mut().extend_from_slice(data);
                Ok(data.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            SectionWriter::File(f) => f.flush(),
            SectionWriter::Buffer(_) => Ok(()),
        }
    }
}

/// Run one cached call. A panic is a bug: it must not print a backtrace over the compiler's
/// output, nor fail the build. After one, the status is the compiler's, if it already ran, else
/// that of the compiler run now without the cache.
pub fn guarded<C>(call: &mut C, ctx: impl Fn(&C) -> &CallCtx, cached: impl FnOnce(&mut C) -> i32) -> i32 {
    let target = ctx(call).target;
    std::panic::set_hook(Box::new(move |info| log::error!(target: target, "panic: {info}")));
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cached(call))) {
        Ok(status) => status,
        Err(_) => {
            log::error!(target: target, "internal error in cachepot; running the compiler without the cache");
            let c = ctx(call);
            c.compiled.unwrap_or_else(|| exec_passthrough(&c.real, &c.args))
        }
    }
}

/// Replace this process with the real compiler (stdio untouched). Returns only on failure.
pub fn exec_passthrough(real: &Path, args: &[OsString]) -> i32 {
    let err = Command::new(real)
        .args(args)
        .env(locate::GUARD_VAR, locate::guard_value())
        .exec();
    eprintln!("cachepot: error: cannot run {}: {err}", real.display());
    127
}

/// The status a shell would report: the exit code, or 128 + the signal that killed it.
pub fn exit_code(status: ExitStatus) -> i32 {
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Whether the user's stderr would have had colour.
pub fn want_color(choice: compiler::ColorChoice) -> bool {
    match choice {
        compiler::ColorChoice::Always => true,
        compiler::ColorChoice::Never => false,
        compiler::ColorChoice::Auto => std::io::stderr().is_terminal(),
    }
}

/// Write the compiler's stdout and stderr as it would have, minus colour codes when the user's
/// stderr would not have had them.
pub fn replay(stdout: &[u8], stderr: &[u8], color: bool) {
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
