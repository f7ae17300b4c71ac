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

use crate::compiler::{CCompile, CFamily};
use crate::store::StoreError;
use crate::store::reapi::{ReapiConfig, ReapiStore};
use crate::store::reapi_proto as pb;
use crate::store::remote::{Backoff, Timeouts};
use prost::Message as _;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The input and output names inside the action's input root.
const INPUT: &str = "input.i";
const OUTPUT: &str = "output.o";

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
) -> Result<Compiled, Declined> {
    let mut arguments = vec![compiler.to_string_lossy().into_owned()];
    for a in args {
        // A protobuf string is UTF-8: an argument that is not cannot be sent as it is.
        let Ok(a) = std::str::from_utf8(a.as_bytes()) else {
            return Err(Declined::NotEligible("an argument that is not UTF-8"));
        };
        arguments.push(a.to_string());
    }
    arguments.extend([INPUT.to_string(), "-o".to_string(), OUTPUT.to_string()]);
    let mut properties = vec![pb::PlatformProperty {
        name: "cachepot-toolchain".into(),
        value: format!("{compiler_name}-{}", &identity[..identity.len().min(16)]),
    }];
    properties.extend(cfg.platform.value.iter().map(|(n, v)| pb::PlatformProperty {
        name: n.clone(),
        value: v.clone(),
    }));
    // The API asks for properties sorted by name, then value.
    properties.sort_by(|a, b| (&a.name, &a.value).cmp(&(&b.name, &b.value)));
    let platform = pb::Platform { properties };
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
    let input_root = pb::Directory {
        files: vec![pb::FileNode {
            name: INPUT.into(),
            digest: Some(pb::Digest::of(preprocessed)),
            is_executable: false,
        }],
        directories: Vec::new(),
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
    let uploaded = store
        .upload_missing(vec![preprocessed.to_vec(), input_root, command, action])
        .map_err(Declined::Fault)?;
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
