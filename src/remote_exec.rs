//! Misses compiled on a Remote Execution API engine (`CACHEPOT_REMOTE_EXECUTION=on`, with
//! `CACHEPOT_REAPI`): a way to compile, beside the local compiler, not a store.
//!
//! The action is exact by construction: its input root is one file, the preprocessed source this
//! call already made (`-E` output, which is everything the compile reads), and its command is the
//! same compiler, by absolute path, with the request's own arguments and `-x <lang>-cpp-output`
//! (see `CFamily::preprocessed_compile_args`). The platform names the toolchain by content
//! (`cachepot-toolchain=<compiler name>-<identity digest>`) plus the configured properties, so the
//! engine routes it to workers that have that compiler, and its own Action Cache never mixes two
//! compilers.
//!
//! Only requests whose outputs are the object (and a `-MD` dependency file, which the local
//! preprocessor run writes: `CFamily::preprocess_dependency_args`) and whose object does not record
//! where it was made go remote: no debug info or coverage (they name the working directory), no
//! `-include`, no other input files. Everything else, every engine fault (unreachable, refused,
//! timed out, a worker's error), a compile that fails remotely and one that prints warnings runs
//! the local compiler instead: the compiler's diagnostics are then its own, source lines quoted
//! (a worker holding only the preprocessed text cannot quote them). Remote faults are counted like the
//! store's and start a back-off (`<cache dir>/remote-exec-backoff`).
//!
//! Toolchain upload (`CACHEPOT_REMOTE_TOOLCHAIN=upload`, gcc only): the programs identity.rs
//! digests for the compiler (the driver, cc1/cc1plus, `as`) go into the input root under
//! `cachepot-toolchain/`, the action runs that driver with `-Bcachepot-toolchain/` (so it runs that
//! cc1 and that `as`), and the CAS gets each file once: their SHA-256 digests are remembered per
//! compiler identity (`<cache dir>/remote-toolchain/<id>`, lines `name size sha256`), and a file is
//! read only when FindMissingBlobs says the CAS lacks it. The worker still needs what those programs
//! load: a compatible C library and the shared libraries of cc1 and `as` (libisl, libmpc, libmpfr,
//! libgmp, libzstd, libbfd, libopcodes: `ldd` lists them); its own compiler is never run.

use crate::compiler::{CCompile, CFamily};
use crate::store::StoreError;
use crate::store::reapi::{ReapiConfig, ReapiStore};
use crate::store::reapi_exec::Blob;
use crate::store::reapi_proto as pb;
use crate::store::remote::{Backoff, Timeouts};
use prost::Message as _;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The input and output names inside the action's input root.
const INPUT: &str = "input.i";
const OUTPUT: &str = "output.o";
/// Where an uploaded toolchain's programs are in the input root.
const TOOLCHAIN_DIR: &str = "cachepot-toolchain";

/// One program of an uploaded toolchain: its name in `TOOLCHAIN_DIR`, digest and file here.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolchainFile {
    pub name: String,
    pub digest: pb::Digest,
    pub path: PathBuf,
}

/// The programs of the compiler `real` to upload (`CACHEPOT_REMOTE_TOOLCHAIN=upload`), with their
/// SHA-256 digests (remembered per `identity`), or why it cannot be: only gcc's toolchain is known
/// to run from a directory of its programs (`-B`); clang loads shared libraries of its own.
pub fn toolchain(
    family: &dyn CFamily,
    real: &Path,
    identity: &str,
    cfg: &crate::config::Config,
) -> Result<Vec<ToolchainFile>, &'static str> {
    let driver = real.canonicalize().map_err(|_| "the compiler cannot be found")?;
    let programs = crate::identity::programs(&cfg.dir.value, &driver, || {
        let _slot = crate::coordinator::slot(cfg);
        family.programs(&driver)
    })
    .map_err(|_| "the compiler's programs cannot be listed")?;
    let mut named = Vec::new();
    for (role, path) in programs {
        let name = match role.as_str() {
            "driver" => path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or("a driver name that is not UTF-8")?
                .to_string(),
            "cc1" | "cc1plus" | "cc1obj" | "cc1objplus" | "as" => role,
            _ => return Err("only gcc's toolchain (driver, cc1, as) can be uploaded"),
        };
        named.push((name, path));
    }
    if !named.iter().any(|(n, _)| n.starts_with("cc1")) {
        return Err("no cc1 found for the compiler");
    }
    let memo = cfg
        .dir
        .value
        .join("remote-toolchain")
        .join(&crate::key::sha256_hex(identity.as_bytes())[..32]);
    // The identity is of the programs' content (by default): the same identity, the same bytes.
    let content = cfg.compiler_check.value == crate::identity::CompilerCheck::Content;
    let remembered: Vec<(String, pb::Digest)> = match std::fs::read_to_string(&memo) {
        Ok(text) if content => text
            .lines()
            .filter_map(|l| {
                let mut w = l.split(' ');
                let (name, size, hash) = (w.next()?, w.next()?.parse().ok()?, w.next()?);
                Some((
                    name.to_string(),
                    pb::Digest {
                        hash: hash.to_string(),
                        size_bytes: size,
                    },
                ))
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut files = Vec::new();
    let mut text = String::new();
    for (name, path) in named {
        let digest = match remembered.iter().find(|(n, _)| *n == name) {
            Some((_, d)) => d.clone(),
            None => {
                let bytes = crate::limits::read_regular(&path, crate::limits::ENTRY_FILE)
                    .map_err(|_| "a program of the compiler cannot be read")?;
                pb::Digest::of(&bytes)
            }
        };
        text.push_str(&format!("{name} {} {}\n", digest.size_bytes, digest.hash));
        files.push(ToolchainFile { name, digest, path });
    }
    if content && remembered.len() != files.len() {
        let _ = std::fs::create_dir_all(memo.parent().unwrap_or(Path::new(".")));
        if let Err(e) = crate::atomic::write(&memo, text.as_bytes()) {
            log::debug!(target: "remote_exec", "cannot save {}: {e}", memo.display());
        }
    }
    Ok(files)
}

/// A finished remote compile: the object is written to the request's path.
pub struct Compiled {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Bytes this action sent to the CAS (what it lacked).
    pub uploaded: u64,
    /// The engine answered from its own Action Cache.
    pub cached: bool,
}

/// Why a miss was compiled locally after all.
pub enum Declined {
    /// This request cannot be compiled remotely exactly (counted, not a fault).
    NotEligible(&'static str),
    /// The engine is backing off after a recent failure.
    BackingOff,
    /// The compile failed on the worker: run locally for the compiler's own diagnostics.
    CompileFailed,
    /// The compile printed diagnostics: run locally, where they quote the source lines (the
    /// worker has only the preprocessed text, so gcc and clang cannot show them there).
    Diagnostics,
    /// The engine failed (a fault).
    Fault(StoreError),
}

/// Whether a request may go remote, before anything is preprocessed or sent.
pub fn eligible(family: &dyn CFamily, req: &CCompile) -> Result<Vec<OsString>, &'static str> {
    let dep_by_preprocessor = family.preprocess_dependency_args(req).is_some();
    let other_outputs = req
        .outputs
        .iter()
        .skip(1)
        .any(|o| !(o.role == "dep" && dep_by_preprocessor));
    if req.outputs.first().map(|o| o.role) != Some("object") || other_outputs {
        return Err("other outputs than the object and a dependency file");
    }
    if req.hash_cwd.is_some() || req.output_path_in_key.is_some() {
        return Err("the object records where it is made");
    }
    if !req.include_files.is_empty() || !req.extra_inputs.is_empty() {
        return Err("inputs beside the preprocessed source");
    }
    if crate::outputs::is_special_output(&req.outputs[0].path) {
        return Err("the object goes to a special file");
    }
    family
        .preprocessed_compile_args(req)
        .ok_or("no exact compile of the preprocessed source")
}

/// The back-off of remote execution for this cache dir and endpoint.
pub fn backoff(cache_dir: &Path, cfg: &ReapiConfig, period: std::time::Duration) -> Backoff {
    Backoff {
        file: cache_dir.join("remote-exec-backoff"),
        id: crate::key::sha256_hex(format!("{} {}", cfg.url.value, cfg.instance.value).as_bytes())[..16].to_string(),
        period,
    }
}

/// The variables that decide the language of a compiler's messages, sorted by name as the API asks.
pub const MESSAGE_ENV: &[&str] = &["LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES"];

/// The Platform of an action: `cachepot-toolchain=<compiler>-<16 hex of its identity>` (workers
/// route on it) and the configured properties, sorted by name, then value, as the API asks.
pub fn platform(cfg: &ReapiConfig, compiler_name: &str, identity: &str) -> pb::Platform {
    let mut properties = vec![pb::PlatformProperty {
        name: "cachepot-toolchain".into(),
        value: format!("{compiler_name}-{}", &identity[..identity.len().min(16)]),
    }];
    properties.extend(cfg.platform.value.iter().map(|(n, v)| pb::PlatformProperty {
        name: n.clone(),
        value: v.clone(),
    }));
    properties.sort_by(|a, b| (&a.name, &a.value).cmp(&(&b.name, &b.value)));
    pb::Platform { properties }
}

/// Compile `preprocessed` on the engine with `args` (from [`eligible`]) and the message variables
/// `env` (of [`MESSAGE_ENV`]), and write the object to `object`.
#[allow(clippy::too_many_arguments)]
pub fn compile(
    cfg: &ReapiConfig,
    timeouts: Timeouts,
    compiler: &Path,
    compiler_name: &str,
    identity: &str,
    args: &[OsString],
    env: &[(&str, String)],
    preprocessed: &[u8],
    object: &Path,
    toolchain: Option<&[ToolchainFile]>,
) -> Result<Compiled, Declined> {
    let mut arguments = match toolchain {
        // The driver from the input root, finding its cc1 and `as` there first.
        Some(files) => {
            let driver = files.first().ok_or(Declined::NotEligible("an empty toolchain"))?;
            vec![
                format!("{TOOLCHAIN_DIR}/{}", driver.name),
                format!("-B{TOOLCHAIN_DIR}/"),
            ]
        }
        None => vec![compiler.to_string_lossy().into_owned()],
    };
    for a in args {
        // A protobuf string is UTF-8: an argument that is not cannot be sent as it is.
        let Ok(a) = std::str::from_utf8(a.as_bytes()) else {
            return Err(Declined::NotEligible("an argument that is not UTF-8"));
        };
        arguments.push(a.to_string());
    }
    arguments.extend([INPUT.to_string(), "-o".to_string(), OUTPUT.to_string()]);
    let platform = platform(cfg, compiler_name, identity);
    let command = pb::Command {
        arguments,
        // The environment the compiler sees: what makes its messages read as they would here.
        environment_variables: env
            .iter()
            .map(|(n, v)| pb::EnvironmentVariable {
                name: n.to_string(),
                value: v.clone(),
            })
            .collect(),
        output_files: vec![OUTPUT.into()],
        output_paths: vec![OUTPUT.into()],
        platform: Some(platform.clone()),
        working_directory: String::new(),
    }
    .encode_to_vec();
    let mut blobs = vec![Blob::Bytes(preprocessed.to_vec())];
    let mut directories = Vec::new();
    if let Some(files) = toolchain {
        let mut nodes: Vec<pb::FileNode> = files
            .iter()
            .map(|f| pb::FileNode {
                name: f.name.clone(),
                digest: Some(f.digest.clone()),
                is_executable: true,
            })
            .collect();
        // The API asks for names sorted.
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        nodes.dedup_by(|a, b| a.name == b.name);
        let dir = pb::Directory {
            files: nodes,
            directories: Vec::new(),
        }
        .encode_to_vec();
        directories.push(pb::DirectoryNode {
            name: TOOLCHAIN_DIR.into(),
            digest: Some(pb::Digest::of(&dir)),
        });
        blobs.push(Blob::Bytes(dir));
        blobs.extend(files.iter().map(|f| Blob::File(f.digest.clone(), f.path.clone())));
    }
    let input_root = pb::Directory {
        files: vec![pb::FileNode {
            name: INPUT.into(),
            digest: Some(pb::Digest::of(preprocessed)),
            is_executable: false,
        }],
        directories,
    }
    .encode_to_vec();
    let action = pb::Action {
        command_digest: Some(pb::Digest::of(&command)),
        input_root_digest: Some(pb::Digest::of(&input_root)),
        do_not_cache: false,
        salt: Vec::new(),
        platform: Some(platform),
    }
    .encode_to_vec();
    let action_digest = pb::Digest::of(&action);
    let store = ReapiStore::new(cfg.clone(), String::new(), timeouts);
    blobs.extend([Blob::Bytes(input_root), Blob::Bytes(command), Blob::Bytes(action)]);
    let uploaded = store.upload_missing_blobs(blobs).map_err(Declined::Fault)?;
    let run = store
        .execute(&action_digest, cfg.execution_timeout.value)
        .map_err(Declined::Fault)?;
    if run.exit_code != 0 {
        log::debug!(target: "remote_exec", "the remote compile exited with {}; compiling locally", run.exit_code);
        return Err(Declined::CompileFailed);
    }
    if !run.stderr.is_empty() || !run.stdout.is_empty() {
        log::debug!(target: "remote_exec", "the remote compile printed diagnostics; compiling locally to show them as the compiler does");
        return Err(Declined::Diagnostics);
    }
    let Some((_, digest)) = run.outputs.iter().find(|(p, _)| p == OUTPUT) else {
        return Err(Declined::Fault(StoreError::Protocol(
            "the remote compile succeeded without an object".into(),
        )));
    };
    if digest.size_bytes < 0 || digest.size_bytes as u64 > crate::limits::ENTRY_FILE {
        return Err(Declined::Fault(StoreError::Protocol(format!(
            "an object of {} bytes",
            digest.size_bytes
        ))));
    }
    let bytes = store.read_blob(digest).map_err(Declined::Fault)?;
    crate::outputs::write_output(object, &bytes)
        .map_err(|e| Declined::Fault(StoreError::Write(format!("cannot write {}: {e}", object.display()))))?;
    log::debug!(
        target: "remote_exec",
        "compiled remotely{}: {} bytes sent, object of {} bytes",
        if run.cached { " (engine cache hit)" } else { "" },
        uploaded,
        bytes.len()
    );
    Ok(Compiled {
        stdout: run.stdout,
        stderr: run.stderr,
        uploaded,
        cached: run.cached,
    })
}
