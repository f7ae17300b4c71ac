//! Storage: where entries live. `disk` is the local level; remote backends plug in behind the same
//! trait. A store moves opaque, already-framed entry bytes (see `entry.rs`): it never interprets them,
//! and every reader verifies them before use, so a store can be wrong without causing a false hit.

pub mod azure;
pub mod disk;
pub mod gcs;
pub mod http;
pub mod memcached;
pub mod reapi;
pub mod reapi_config;
pub mod reapi_exec;
pub mod reapi_proto;
pub mod redis;
pub mod remote;
pub mod s3;
pub mod s3_credentials;
pub mod tiered;

use crate::stats::Fault;
use std::fmt;

/// Why a store operation failed. Each kind is also a statistics counter (`error.<kind>`).
#[derive(Debug)]
pub enum StoreError {
    /// Reading an existing entry failed (I/O error other than "not found").
    Read(String),
    /// Writing an entry failed (full disk, read-only directory, …).
    Write(String),
    /// The entry is larger than the whole cache may hold; it is not kept.
    TooLarge(String),
    /// A remote answered slower than the configured timeout.
    Timeout(String),
    /// A remote could not be reached.
    Unreachable(String),
    /// A remote refused our credentials.
    Auth(String),
    /// The bucket / container / database named in the configuration does not exist.
    MissingBucket(String),
    /// Anything else a remote said that we did not expect.
    Protocol(String),
}

impl StoreError {
    /// The statistics fault of this error kind.
    pub fn fault(&self) -> Fault {
        match self {
            StoreError::Read(_) => Fault::ReadFailed,
            StoreError::Write(_) => Fault::WriteFailed,
            StoreError::TooLarge(_) => Fault::EntryTooLarge,
            StoreError::Timeout(_) => Fault::RemoteTimeout,
            StoreError::Unreachable(_) => Fault::RemoteUnreachable,
            StoreError::Auth(_) => Fault::RemoteAuth,
            StoreError::MissingBucket(_) => Fault::RemoteMissingBucket,
            StoreError::Protocol(_) => Fault::RemoteProtocol,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let detail = match self {
            StoreError::Read(s)
            | StoreError::Write(s)
            | StoreError::TooLarge(s)
            | StoreError::Timeout(s)
            | StoreError::Unreachable(s)
            | StoreError::Auth(s)
            | StoreError::MissingBucket(s)
            | StoreError::Protocol(s) => s,
        };
        write!(f, "{}: {}", self.fault().id(), detail)
    }
}

impl std::error::Error for StoreError {}

/// What a lookup of an entry found: the bytes, or the local disk's file itself (with its length),
/// to be streamed (a hit of a large rlib does not read it whole into fresh memory first).
pub enum Found {
    Bytes(Vec<u8>),
    File(std::fs::File, u64),
}

/// One level of storage. Keys are lowercase hex strings (64 characters for result keys); the
/// namespace (entries vs manifests) is part of the key string the caller passes.
pub trait Storage {
    /// The stored bytes for `key`, or `None` when there is no such entry.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// As `get`, for an entry that will be streamed (`entry::stream`): a store that can give
    /// the open file does.
    fn get_entry(&self, key: &str) -> Result<Option<Found>, StoreError> {
        Ok(self.get(key)?.map(Found::Bytes))
    }
    /// Store `bytes` under `key`, replacing any previous value atomically.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// Forget `key` (used when a read entry failed verification).
    fn remove(&self, key: &str) -> Result<(), StoreError>;
    /// A one-line description for logs and `--show-config` (no secrets).
    fn describe(&self) -> String;
    /// Counters this store gathered beyond hits and errors (`remote.memcached-split`, …), each name
    /// once per event; taken once, when the call ends.
    fn take_counters(&self) -> Vec<&'static str> {
        Vec::new()
    }
    /// Start what the first request will need (a connection) without waiting for it; called when
    /// the store is opened, before the preprocessor runs, so the two overlap.
    fn prepare(&self) {}
    /// Whether a large entry body should come compressed (false: the local disk alone, which
    /// keeps it uncompressed: `disk::Uncompressed`).
    fn wants_large_compressed(&self) -> bool {
        true
    }
    /// Whether a put may be sent at all (false: e.g. anonymous S3 access, which only reads).
    fn accepts_writes(&self) -> bool {
        true
    }
}

/// The store a compile uses, from the configuration: the local disk, with the configured remote
/// behind it (nothing is connected until the first lookup).
pub fn open(
    cache_dir: &std::path::Path,
    max_size: u64,
    remote_cfg: Option<&remote::RemoteConfig>,
    direct: bool,
    trust: &crate::trust::TrustConfig,
) -> Box<dyn Storage> {
    // Connecting ahead pays where a preprocessor run follows the opening (preprocessor mode), or
    // where every lookup goes to the remote (no local level). In direct mode the first lookup comes
    // at once, and a local hit would leave the server a connection made for nothing.
    let connect_ahead = !direct || remote_cfg.is_some_and(|r| !r.local.value);
    // Trust on: every level verifies what it returns and signs what it keeps (trust.rs).
    let trust = crate::trust::Trust::open(trust, cache_dir);
    remote::open(cache_dir, max_size, remote_cfg, connect_ahead, trust)
}

/// Keep a secret (credentials, a token) for the next compiles: a 0600 file in the cache dir,
/// written to a temporary file and renamed, so no reader sees half of it and no other user can.
pub fn write_private_file(file: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    crate::atomic::write_private(file, contents)
}
