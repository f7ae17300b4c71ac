//! A rustc miss compiled on a Remote Execution API engine (`CACHEPOT_REMOTE_EXECUTION=on`): the
//! Rust side of remote_exec.rs. Only library crates (rlib, rmeta) go: nothing that links.
//!
//! What the compile reads is learnt first, locally: rustc with `--emit=dep-info` only (parsing and
//! macro expansion) names the crate's sources and the variables it reads. The input root mirrors
//! this machine's absolute paths (`/w/src/lib.rs` is `w/src/lib.rs` in it) and holds those sources,
//! the `--extern` crates and every crate file of the `-L dependency=` directories (rustc looks up
//! the crates those crates were built on there). The toolchain is the worker's: the same rustc at
//! the same absolute path, named by content in the platform property `cachepot-toolchain`.
//!
//! The command is `/bin/sh -c SCRIPT` around rustc: the script learns the input root's absolute
//! path `R` on the worker, puts it in front of every absolute path of the command line (they carry
//! `MARK` there), runs rustc in the mirrored working directory, and gives rustc
//! `--remap-path-prefix=R=/` ahead of the flow's and the user's remappings (whose directories get
//! `R` too): what rustc records is then what it records here, and the outputs are the local ones
//! byte for byte. The script also writes `R` to the output `cachepot-root`, so that what names
//! the worker's paths anyway (dep-info files, cargo's artifact lines) is put back to this
//! machine's; an rlib or rmeta that still names `R` is not used (compiled locally instead).
//!
//! A variable the crate reads whose value is a path here (`OUT_DIR` of a build script,
//! `CARGO_MANIFEST_DIR`) gets `R` in front on the worker too, so `include!(concat!(env!("OUT_DIR"),
//! …))` reads the input root's copy (dep-info names the file); a crate that embeds such a value
//! itself names the worker's directory, and its output is not used.
//!
//! Not sent (compiled locally, counted as `remote_execution.not_eligible` with the reason in the
//! log): a crate that links, that has native libraries, that reads a credential, or whose inputs
//! pass `INPUT_LIMIT`. A compile that fails on the worker
//! is compiled here, so rustc's errors read exactly as locally; every engine fault too.

use super::{Captured, Prepared, RustBases, is_secret_name, keyed_env};
use crate::call::CallCtx;
use crate::compiler::rustc;
use crate::locate;
use crate::remote_exec::Declined;
use crate::stats;
use crate::store::StoreError;
use crate::store::reapi::{ReapiConfig, ReapiStore};
use crate::store::reapi_exec::Blob;
use crate::store::reapi_proto as pb;
use crate::store::remote::Timeouts;
use prost::Message as _;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Stands for the input root's absolute path on the worker in the command's arguments.
const MARK: &str = "@cachepot-root@";
/// The output in which the worker's script names the input root's absolute path.
const ROOT_FILE: &str = "cachepot-root";
/// Runs rustc (`$1`) in the working directory (`$2`, relative to the input root) with `MARK`
/// replaced by the input root's path in every further argument and in the variables `ROOTED_VARS`
/// names (POSIX sh: no worker needs bash).
const SCRIPT: &str = r#"R=$PWD
printf %s "$R" >cachepot-root || exit 125
rustc=$1 dir=$2
shift 2
for a do
  b=
  while :; do
    case $a in
      *@cachepot-root@*) b=$b${a%%@cachepot-root@*}$R; a=${a#*@cachepot-root@} ;;
      *) break ;;
    esac
  done
  shift
  set -- "$@" "$b$a"
done
for v in $ROOTED_BY_CACHEPOT; do
  eval "a=\$$v"
  b=
  while :; do
    case $a in
      *@cachepot-root@*) b=$b${a%%@cachepot-root@*}$R; a=${a#*@cachepot-root@} ;;
      *) break ;;
    esac
  done
  eval "$v=\$b\$a"
  export "$v"
done
unset ROOTED_BY_CACHEPOT
cd "$R/$dir" || exit 125
exec "$rustc" "--remap-path-prefix=$R=/" "$@"
"#;
/// Names the variables (space-separated) whose values carry `MARK` for the script to replace.
const ROOTED_VARS: &str = "ROOTED_BY_CACHEPOT";
/// A crate whose inputs are larger is compiled locally (an action's input root holds its whole
/// dependency directory).
const INPUT_LIMIT: u64 = 512 << 20;

/// The bases of a rustc call as remote execution (when on) needs them: every path remapped, as
/// the remote compile's are (`RustBases::with_root_remap`), so that where a crate compiled does
/// not change its bytes.
pub(super) fn bases(cfg: &crate::config::Config, bases: RustBases) -> RustBases {
    match cfg.remote.as_ref().and_then(|r| r.remote_execution()) {
        Some(_) => bases.with_root_remap(),
        None => bases,
    }
}

/// Compile this miss on the engine when remote execution is on and the crate can go: its outputs
/// are written and its messages shown, as `run_streaming` would. `None`: compile locally (why is
/// counted, and a fault is recorded on `ctx`).
pub(super) fn compile(ctx: &mut CallCtx, p: &Prepared, cmd: &Command) -> Option<Captured> {
    let remote = ctx.cfg.remote.as_ref()?;
    let cfg = remote.remote_execution()?.clone();
    let timeouts = remote.timeouts();
    let backoff = crate::remote_exec::backoff(&ctx.cfg.dir.value, &cfg, remote.backoff.value);
    let result = if backoff.active() {
        Err(Declined::BackingOff)
    } else {
        run(ctx, &cfg, timeouts, p, cmd)
    };
    let mut counters = stats::Counters::new();
    let mut count = |name: &str, n: u64| *counters.entry(name.to_string()).or_default() += n;
    let out = match result {
        Ok((captured, uploaded)) => {
            count("remote_execution.compiled", 1);
            count("remote_execution.uploaded_bytes", uploaded);
            Some(captured)
        }
        Err(Declined::NotEligible(why)) => {
            log::debug!(target: "rust", "crate {}: compiling locally: {why}", p.req.crate_name);
            count("remote_execution.not_eligible", 1);
            None
        }
        Err(Declined::BackingOff) => {
            count("remote_execution.skipped_backoff", 1);
            None
        }
        Err(Declined::CompileFailed | Declined::Diagnostics) => {
            count("remote_execution.compile_failed", 1);
            None
        }
        Err(Declined::Fault(e)) => {
            count("remote_execution.local_fallback", 1);
            backoff.start();
            ctx.fault(&format!("remote execution failed: {e}; compiling locally"), e.fault());
            None
        }
    };
    if let Err(e) = stats::add_counters(&ctx.cfg.dir.value, &counters) {
        log::warn!(target: "rust", "could not update statistics: {e}");
    }
    out
}

/// `path` inside the input root: its absolute path here without the leading `/`.
fn in_root(cwd: &Path, path: &Path) -> Result<String, &'static str> {
    let full = crate::paths::normalize(&cwd.join(path));
    let rel = full.strip_prefix("/").map_err(|_| "a path that is not absolute")?;
    let rel = rel.to_str().ok_or("a path that is not UTF-8")?.to_string();
    if rel == ROOT_FILE || rel.starts_with(&format!("{ROOT_FILE}/")) {
        return Err("a path under /cachepot-root");
    }
    Ok(rel)
}

fn run(
    ctx: &CallCtx,
    cfg: &ReapiConfig,
    timeouts: Timeouts,
    p: &Prepared,
    cmd: &Command,
) -> Result<(Captured, u64), Declined> {
    use Declined::NotEligible;
    let req = &p.req;
    if req.links() || req.bin || req.shared || req.staticlib {
        return Err(NotEligible("not a library crate (rlib, rmeta): the linker would run"));
    }
    if !req.native_libs.is_empty() {
        return Err(NotEligible("native libraries"));
    }
    let program = Path::new(cmd.get_program());
    let program_text = program
        .to_str()
        .filter(|_| program.is_absolute())
        .ok_or(NotEligible("rustc is not named by an absolute UTF-8 path"))?;
    let cwd_rel = in_root(&p.cwd, Path::new("")).map_err(NotEligible)?;
    let args: Vec<OsString> = cmd.get_args().map(OsString::from).collect();
    if args.iter().any(|a| a.to_string_lossy().contains(MARK)) {
        return Err(NotEligible("an argument holding cachepot's root mark"));
    }
    let place = |path: &str| {
        if path.starts_with('/') {
            format!("{MARK}{path}")
        } else {
            path.to_string()
        }
    };
    let relocated = rustc::relocate(&args, &place).map_err(NotEligible)?;

    // What the compile reads: rustc's dep-info, made here before anything is sent.
    let deps = dep_info(ctx, program, &args)?;
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in std::env::vars_os() {
        if keyed_env(&name)
            && let (Some(n), Some(v)) = (name.to_str(), value.to_str())
        {
            env.insert(n.to_string(), v.to_string());
        }
    }
    let mut rooted: Vec<String> = Vec::new();
    for (name, _) in &deps.env {
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(NotEligible("a variable name the worker's shell cannot set"));
        }
        if is_secret_name(name) {
            return Err(NotEligible("the crate reads a credential variable"));
        }
        if let Some(v) = std::env::var_os(name) {
            let v = v
                .into_string()
                .map_err(|_| NotEligible("a variable that is not UTF-8"))?;
            if v.contains(MARK) {
                return Err(NotEligible("a variable holding cachepot's root mark"));
            }
            if v.starts_with('/') {
                // A path here (OUT_DIR, CARGO_MANIFEST_DIR): the crate reads files through it, which
                // dep-info names and the input root holds; the worker's script puts the root in front.
                // Should the crate embed the value itself, the output names the worker's directory
                // and is not used (below).
                rooted.push(name.clone());
                env.insert(name.clone(), format!("{MARK}{v}"));
            } else {
                env.insert(name.clone(), v);
            }
        }
    }
    if !rooted.is_empty() {
        env.insert(ROOTED_VARS.to_string(), rooted.join(" "));
    }

    // The input root: sources, crates named by --extern, crates in the crate search directories.
    let outputs: Vec<PathBuf> = req.outputs().into_iter().map(|o| o.path).collect();
    let own_outputs: Vec<PathBuf> = outputs
        .iter()
        .chain(&relocated.emit_files)
        .map(|o| crate::paths::normalize(&p.cwd.join(o)))
        .collect();
    let mut wanted: Vec<PathBuf> = deps.sources.clone();
    wanted.extend(req.externs.iter().filter_map(|e| e.path.clone()));
    let mut optional: Vec<PathBuf> = Vec::new();
    for dir in &relocated.crate_dirs {
        let Ok(entries) = std::fs::read_dir(p.cwd.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let crate_file = path
                .extension()
                .is_some_and(|x| x == "rlib" || x == "rmeta" || x == "so");
            if crate_file && !own_outputs.contains(&crate::paths::normalize(&path)) {
                optional.push(path);
            }
        }
    }
    let mut files: BTreeMap<String, pb::Digest> = BTreeMap::new();
    let mut blobs: Vec<Blob> = Vec::new();
    let mut total = 0u64;
    let mut digests = Digests::new(&ctx.cfg.dir.value);
    let must = wanted.iter().map(|p| (p, true));
    for (path, required) in must.chain(optional.iter().map(|p| (p, false))) {
        let rel = in_root(&p.cwd, path).map_err(NotEligible)?;
        if files.contains_key(&rel) {
            continue;
        }
        let full = p.cwd.join(path);
        let digest = match digests.of(&full) {
            Some(d) => d,
            // A crate directory's file may be another compile's, gone by now.
            None if !required => continue,
            None => return Err(NotEligible("an input that cannot be read as a regular file")),
        };
        total += digest.size_bytes as u64;
        if total > INPUT_LIMIT {
            return Err(NotEligible("inputs larger than the limit for one action"));
        }
        files.insert(rel, digest.clone());
        // Read only if the CAS lacks it, and checked against this digest then.
        blobs.push(Blob::File(digest, full));
    }
    digests.save();
    let (root_digest, directories) = input_root(&files, &cwd_rel);

    let mut output_paths: Vec<String> = vec![ROOT_FILE.to_string()];
    for o in &own_outputs {
        output_paths.push(in_root(&p.cwd, o).map_err(NotEligible)?);
    }
    output_paths.sort();
    output_paths.dedup();
    let identity = super::toolchain::resolve(program, &ctx.cfg)
        .map(|t| t.identity)
        .map_err(NotEligible)?;
    let platform = crate::remote_exec::platform(cfg, "rustc", &identity);
    let mut arguments: Vec<String> = ["/bin/sh", "-c", SCRIPT, "cachepot-rustc", program_text, &cwd_rel]
        .iter()
        .map(|s| s.to_string())
        .collect();
    arguments.extend(relocated.args);
    let command = pb::Command {
        arguments,
        environment_variables: env
            .into_iter()
            .map(|(name, value)| pb::EnvironmentVariable { name, value })
            .collect(),
        output_files: output_paths.clone(),
        output_paths: output_paths.clone(),
        platform: Some(platform.clone()),
        working_directory: String::new(),
    }
    .encode_to_vec();
    let action = pb::Action {
        command_digest: Some(pb::Digest::of(&command)),
        input_root_digest: Some(root_digest),
        do_not_cache: false,
        salt: Vec::new(),
        platform: Some(platform),
    }
    .encode_to_vec();
    let action_digest = pb::Digest::of(&action);
    blobs.extend(directories.into_iter().map(Blob::Bytes));
    blobs.push(Blob::Bytes(command));
    blobs.push(Blob::Bytes(action));

    let store = ReapiStore::new(cfg.clone(), String::new(), timeouts);
    let uploaded = store.upload_missing_blobs(blobs).map_err(Declined::Fault)?;
    let done = store
        .execute(&action_digest, cfg.execution_timeout.value)
        .map_err(Declined::Fault)?;
    if done.exit_code != 0 {
        log::debug!(
            target: "rust",
            "crate {}: the remote compile exited with {}; compiling locally. Its messages:\n{}",
            req.crate_name,
            done.exit_code,
            String::from_utf8_lossy(&done.stderr)
        );
        return Err(Declined::CompileFailed);
    }
    let output = |path: &str| -> Result<Vec<u8>, Declined> {
        let (_, digest) = done.outputs.iter().find(|(p, _)| p == path).ok_or_else(|| {
            Declined::Fault(StoreError::Protocol(format!(
                "the remote compile did not return {path}"
            )))
        })?;
        if digest.size_bytes < 0 || digest.size_bytes as u64 > crate::limits::ENTRY_FILE {
            return Err(Declined::Fault(StoreError::Protocol(format!(
                "an output of {} bytes",
                digest.size_bytes
            ))));
        }
        store.read_blob(digest).map_err(Declined::Fault)
    };
    let root = output(ROOT_FILE)?;
    if !root.starts_with(b"/") || root.len() < 2 {
        return Err(Declined::Fault(StoreError::Protocol(
            "the worker named no input root".into(),
        )));
    }
    let here = |data: &[u8]| super::replace(data, &root, b"");
    let mut written: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for o in &own_outputs {
        let bytes = output(&in_root(&p.cwd, o).map_err(NotEligible)?)?;
        let bytes = if o.extension().is_some_and(|x| x == "d") {
            here(&bytes)
        } else if crate::paths::contains(&bytes, &root) {
            return Err(NotEligible("an output names the worker's directory"));
        } else {
            bytes
        };
        written.push((o.clone(), bytes));
    }
    for (path, bytes) in &written {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        crate::outputs::write_output(path, bytes)
            .map_err(|e| Declined::Fault(StoreError::Write(format!("cannot write {}: {e}", path.display()))))?;
    }
    // Every file is in place before the artifact lines that announce them.
    let stdout = here(&done.stdout);
    let stderr = here(&done.stderr);
    let _ = std::io::stdout().write_all(&stdout);
    let _ = std::io::stderr().write_all(&stderr);
    log::debug!(
        target: "rust",
        "crate {}: compiled remotely{}: {uploaded} bytes sent",
        req.crate_name,
        if done.cached { " (engine cache hit)" } else { "" }
    );
    Ok((
        Captured {
            status: 0,
            stdout,
            stderr,
        },
        uploaded,
    ))
}

/// SHA-256 digests of input files by their stat data, one memo per directory, so that a
/// dependency directory's crates are read and digested once, not by every action that sends them
/// (the CAS is asked first; a file is read again only to upload it, and checked then).
///
/// Memo grammar (`<cache dir>/remote-digests/<xxh3-128 of the directory>`, replaced atomically;
/// unknown lines are ignored; a lost update only costs a digest later):
/// ```text
/// line := dev ino size mtime_s mtime_ns ctime_s ctime_ns sha256_hex name_hex "\n"
/// ```
/// A directory's memo: file name → (stat stamp, digest).
type DirMemo = HashMap<Vec<u8>, (String, pb::Digest)>;

struct Digests {
    root: PathBuf,
    /// Directory → (file name → (stat stamp, digest)), and whether it changed.
    memos: HashMap<PathBuf, (DirMemo, bool)>,
    /// The files asked for: a changed memo keeps only those (files gone from a directory go).
    asked: std::collections::HashSet<(PathBuf, Vec<u8>)>,
}

impl Digests {
    fn new(cache_dir: &Path) -> Digests {
        Digests {
            root: cache_dir.join("remote-digests"),
            memos: HashMap::new(),
            asked: Default::default(),
        }
    }

    fn memo_file(&self, dir: &Path) -> PathBuf {
        let h = xxhash_rust::xxh3::xxh3_128(dir.as_os_str().as_bytes()).to_le_bytes();
        self.root.join(crate::key::hex(&h))
    }

    /// The digest of the regular file `path`, or `None` when it is not one (or cannot be read).
    fn of(&mut self, path: &Path) -> Option<pb::Digest> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() || meta.len() > crate::limits::ENTRY_FILE {
            return None;
        }
        let stamp = format!(
            "{} {} {} {} {} {} {}",
            meta.dev(),
            meta.ino(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec()
        );
        let dir = path.parent()?.to_path_buf();
        let name = path.file_name()?.as_bytes().to_vec();
        if !self.memos.contains_key(&dir) {
            let text = std::fs::read_to_string(self.memo_file(&dir)).unwrap_or_default();
            let lines = text
                .lines()
                .filter_map(|l| {
                    let w: Vec<&str> = l.split(' ').collect();
                    let [dev, ino, size, ms, mns, cs, cns, hash, name] = w[..] else {
                        return None;
                    };
                    let digest = pb::Digest {
                        hash: hash.to_string(),
                        size_bytes: size.parse().ok()?,
                    };
                    let stamp = [dev, ino, size, ms, mns, cs, cns].join(" ");
                    Some((crate::key::unhex(name)?, (stamp, digest)))
                })
                .collect();
            self.memos.insert(dir.clone(), (lines, false));
        }
        self.asked.insert((dir.clone(), name.clone()));
        let (memo, changed) = self.memos.get_mut(&dir)?;
        if let Some((s, d)) = memo.get(&name)
            && *s == stamp
        {
            return Some(d.clone());
        }
        let bytes = crate::limits::read_regular(path, crate::limits::ENTRY_FILE).ok()?;
        let digest = pb::Digest::of(&bytes);
        memo.insert(name, (stamp, digest.clone()));
        *changed = true;
        Some(digest)
    }

    fn save(&self) {
        for (dir, (memo, changed)) in &self.memos {
            if !changed {
                continue;
            }
            let mut text = String::new();
            for (name, (stamp, d)) in memo {
                if !self.asked.contains(&(dir.clone(), name.clone())) {
                    continue;
                }
                text.push_str(&format!("{stamp} {} {}\n", d.hash, crate::key::hex(name)));
            }
            let file = self.memo_file(dir);
            let _ = std::fs::create_dir_all(&self.root);
            if let Err(e) = crate::atomic::write(&file, text.as_bytes()) {
                log::debug!(target: "rust", "cannot save {}: {e}", file.display());
            }
        }
    }
}

/// rustc's dep-info for this compile, made here with `--emit=dep-info` in place of the call's
/// `--emit`s (parsing and macro expansion only). A failure is the crate's own error: compiled
/// locally, so rustc shows it as it does.
fn dep_info(ctx: &CallCtx, rustc: &Path, args: &[OsString]) -> Result<rustc::DepInfo, Declined> {
    let tmp = ctx.cfg.dir.value.join("tmp");
    let _ = std::fs::create_dir_all(&tmp);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let file = tmp.join(format!("rust-remote-{}-{nanos}.d", std::process::id()));
    let mut c = Command::new(rustc);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--emit" {
            it.next();
        } else if !a.to_string_lossy().starts_with("--emit=") {
            c.arg(a);
        }
    }
    let mut emit = OsString::from("--emit=dep-info=");
    emit.push(&file);
    c.arg(emit)
        .env(locate::GUARD_VAR, locate::guard_value())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let status = {
        let _slot = crate::coordinator::slot(&ctx.cfg);
        c.status()
    };
    let text = crate::limits::read_regular(&file, crate::limits::DEP_FILE);
    let _ = std::fs::remove_file(&file);
    match (status, text) {
        (Ok(s), Ok(text)) if s.success() => Ok(rustc::parse_dep_info(&String::from_utf8_lossy(&text))),
        (Ok(s), _) if !s.success() => Err(Declined::CompileFailed),
        _ => Err(Declined::NotEligible("rustc wrote no dep-info")),
    }
}

/// The input root's Directory messages for `files` (path in the root → digest) and the empty
/// working directory `cwd`: the root's digest, and every Directory's bytes.
fn input_root(files: &BTreeMap<String, pb::Digest>, cwd: &str) -> (pb::Digest, Vec<Vec<u8>>) {
    #[derive(Default)]
    struct Node {
        files: BTreeMap<String, pb::Digest>,
        dirs: BTreeMap<String, Node>,
    }
    fn node<'a>(mut n: &'a mut Node, dirs: &[&str]) -> &'a mut Node {
        for d in dirs {
            n = n.dirs.entry(d.to_string()).or_default();
        }
        n
    }
    fn encode(n: &Node, out: &mut Vec<Vec<u8>>) -> pb::Digest {
        // The API asks for names sorted: BTreeMap's order.
        let dir = pb::Directory {
            files: n
                .files
                .iter()
                .map(|(name, d)| pb::FileNode {
                    name: name.clone(),
                    digest: Some(d.clone()),
                    is_executable: false,
                })
                .collect(),
            directories: n
                .dirs
                .iter()
                .map(|(name, sub)| pb::DirectoryNode {
                    name: name.clone(),
                    digest: Some(encode(sub, out)),
                })
                .collect(),
        }
        .encode_to_vec();
        let digest = pb::Digest::of(&dir);
        out.push(dir);
        digest
    }
    let mut root = Node::default();
    let cwd_parts: Vec<&str> = cwd.split('/').filter(|s| !s.is_empty()).collect();
    node(&mut root, &cwd_parts);
    for (path, digest) in files {
        let parts: Vec<&str> = path.split('/').collect();
        let (name, dirs) = parts.split_last().expect("a path has a name");
        node(&mut root, dirs).files.insert(name.to_string(), digest.clone());
    }
    let mut out = Vec::new();
    let digest = encode(&root, &mut out);
    (digest, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_root_mirrors_absolute_paths() {
        let mut files = BTreeMap::new();
        files.insert("w/src/lib.rs".to_string(), pb::Digest::of(b"lib"));
        files.insert("t/deps/liba.rmeta".to_string(), pb::Digest::of(b"meta"));
        let (root, dirs) = input_root(&files, "w/ws");
        let by_digest: BTreeMap<String, pb::Directory> = dirs
            .iter()
            .map(|d| (pb::Digest::of(d).hash, pb::Directory::decode(d.as_slice()).unwrap()))
            .collect();
        let top = &by_digest[&root.hash];
        let names: Vec<&str> = top.directories.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["t", "w"]);
        let w = &by_digest[&top.directories[1].digest.as_ref().unwrap().hash];
        let names: Vec<&str> = w.directories.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["src", "ws"], "the working directory exists even when empty");
    }

    #[test]
    fn the_script_is_posix_sh_and_places_the_root() {
        let dir = std::env::temp_dir().join(format!("cachepot-script-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("w")).unwrap();
        let out = Command::new("/bin/sh")
            .args(["-c", SCRIPT, "cachepot-rustc", "/bin/echo", "w"])
            .args([format!("--x={MARK}/a={MARK}/b"), "plain".into()])
            .current_dir(&dir)
            .output()
            .unwrap();
        let root = std::fs::read_to_string(dir.join(ROOT_FILE)).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("--remap-path-prefix={root}=/ --x={root}/a={root}/b plain\n")
        );
    }

    #[test]
    fn digests_are_remembered_by_stat_data_and_follow_changes() {
        let dir = std::env::temp_dir().join(format!("cachepot-digests-{}", std::process::id()));
        let files = dir.join("deps");
        std::fs::create_dir_all(&files).unwrap();
        let (a, b) = (files.join("liba.rlib"), files.join("libb.rlib"));
        std::fs::write(&a, b"first").unwrap();
        std::fs::write(&b, b"other").unwrap();
        let mut d = Digests::new(&dir);
        assert_eq!(d.of(&a), Some(pb::Digest::of(b"first")));
        assert_eq!(d.of(&b), Some(pb::Digest::of(b"other")));
        assert_eq!(d.of(&files), None, "a directory is not an input file");
        d.save();
        // A later call finds them remembered; a file rewritten is digested again; one gone is
        // dropped from the memo.
        std::fs::write(&a, b"second, longer").unwrap();
        std::fs::remove_file(&b).unwrap();
        let mut d = Digests::new(&dir);
        assert_eq!(d.of(&a), Some(pb::Digest::of(b"second, longer")));
        assert_eq!(d.of(&b), None);
        d.save();
        let memo = std::fs::read_to_string(d.memo_file(&files)).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(memo.lines().count(), 1, "{memo}");
        assert!(memo.contains(&pb::Digest::of(b"second, longer").hash), "{memo}");
    }

    #[test]
    fn the_script_places_the_root_in_path_variables() {
        let dir = std::env::temp_dir().join(format!("cachepot-script-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // In rustc's place, a script printing the environment rustc would get.
        let show = dir.join("show-env");
        std::fs::write(&show, "#!/bin/sh\nexec env\n").unwrap();
        std::fs::set_permissions(&show, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let out = Command::new("/bin/sh")
            .args(["-c", SCRIPT, "cachepot-rustc", show.to_str().unwrap(), ""])
            .env_clear()
            .env("OUT_DIR", format!("{MARK}/t/out dir"))
            .env("PLAIN", "/not/rooted")
            .env(ROOTED_VARS, "OUT_DIR")
            .current_dir(&dir)
            .output()
            .unwrap();
        let root = std::fs::read_to_string(dir.join(ROOT_FILE)).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.contains(&format!("OUT_DIR={root}/t/out dir\n")), "{text}");
        assert!(text.contains("PLAIN=/not/rooted\n"), "{text}");
        assert!(!text.contains(ROOTED_VARS), "{text}");
    }
}
