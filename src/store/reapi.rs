//! A Bazel Remote Execution API v2 endpoint (Buildbarn, BuildBuddy, EngFlow, NativeLink, BuildGrid,
//! bazel-remote) as the remote level, stored the REAPI way so that other REAPI tools can see, share
//! and evict our entries: the entry bytes are a blob in the CAS, and an ActionResult in the Action
//! Cache names that blob as its one output file, under an action digest derived from the key.
//!
//! Layout of one key `K` (with the remote prefix `P`):
//! ```text
//! Command  { arguments: ["cachepot-entry", P K] }                          (in the CAS)
//! Action   { command_digest, input_root_digest: empty Directory,
//!            salt: "cachepot reapi v1" }                                   (in the CAS)
//! AC[digest(Action)] = ActionResult { output_files: [{ path: "cachepot-entry",
//!                                                      digest: digest(entry bytes) }] }
//! CAS[digest(entry bytes)] = the entry bytes, exactly what the caller put (signed envelopes too)
//! ```
//! Blobs up to [`BATCH_LIMIT`] travel in BatchUpdateBlobs / BatchReadBlobs (one round trip), larger
//! ones through ByteStream Write / Read in chunks, after FindMissingBlobs says the CAS lacks them.
//! Every blob read is checked against its digest. There is no delete in the REAPI: `remove` writes
//! an ActionResult without outputs, which reads as a miss. The salt is the format version: changing
//! the layout changes the salt, so old and new entries never meet.
//!
//! gRPC is tonic's client on a current-thread tokio runtime that this store makes on its first
//! request (or, where the remote store connects ahead, on a thread started when it is opened, so
//! that connecting overlaps the preprocessor run), so no other backend and no local hit ever
//! starts a runtime.
//!
//! Settings: `reapi_config.rs`.

use super::reapi_config::http_uri;
pub use super::reapi_config::{DEFAULT_EXECUTION_TIMEOUT, KEYS, ReapiConfig};
use super::reapi_proto as pb;
use super::remote::Timeouts;
use super::{Storage, StoreError};
use crate::setting::Setting;
use prost::Message as _;
use std::cell::RefCell;
use std::time::Duration;

/// The one output file of our ActionResults.
const OUTPUT: &str = "cachepot-entry";
/// The format version of the layout above, as the Action's salt.
const SALT: &[u8] = b"cachepot reapi v1";
/// Largest blob sent or read in a batch call; larger ones go through ByteStream. Servers accept
/// batch requests up to their gRPC message limit, 4 MiB by default; this leaves room for the rest.
pub const BATCH_LIMIT: usize = 2 << 20;
/// ByteStream Write chunk size.
pub(super) const CHUNK: usize = 1 << 20;
/// Largest gRPC message we accept (a batch answer of [`BATCH_LIMIT`] bytes plus framing).
const MAX_MESSAGE: usize = 8 << 20;

fn rt_run<T>(
    client: &mut Client,
    f: &impl AsyncFn(&mut tonic::client::Grpc<tonic::transport::Channel>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let Client { rt, grpc } = client;
    rt.block_on(f(grpc))
}

/// The connection, made on the first request: its runtime and the gRPC client.
pub(super) struct Client {
    rt: tokio::runtime::Runtime,
    grpc: tonic::client::Grpc<tonic::transport::Channel>,
}

pub struct ReapiStore {
    cfg: ReapiConfig,
    prefix: String,
    timeouts: Timeouts,
    client: RefCell<Conn>,
    /// `remote.reapi-bytestream-read` / `-write`: entries too large for a batch call.
    counters: RefCell<Vec<&'static str>>,
}

pub(super) type Codec<Req, Resp> = tonic_prost::ProstCodec<Req, Resp>;

enum Conn {
    None,
    /// Being made by the thread started in `prepare` (runtime and channel are both Send).
    Pending(std::thread::JoinHandle<Result<Client, StoreError>>),
    Ready(Box<Client>),
}

impl ReapiStore {
    pub fn new(cfg: ReapiConfig, prefix: String, timeouts: Timeouts) -> ReapiStore {
        ReapiStore {
            cfg,
            prefix,
            timeouts,
            client: RefCell::new(Conn::None),
            counters: RefCell::new(Vec::new()),
        }
    }

    fn connect(&self) -> Result<Client, StoreError> {
        Self::connect_to(&self.cfg, self.timeouts)
    }

    fn connect_to(cfg: &ReapiConfig, timeouts: Timeouts) -> Result<Client, StoreError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Protocol(format!("cannot start the gRPC runtime: {e}")))?;
        let uri =
            http_uri(&cfg.url.value).ok_or_else(|| StoreError::Protocol(format!("bad REAPI URL {}", cfg.url.value)))?;
        let endpoint = tonic::transport::Endpoint::from_shared(uri)
            .map_err(|e| StoreError::Protocol(format!("REAPI URL {}: {e}", cfg.url.value)))?
            .connect_timeout(timeouts.connect)
            .tcp_nodelay(true);
        let endpoint = if cfg.url.value.starts_with("grpcs://") {
            endpoint
                .tls_config(Self::tls(cfg)?)
                .map_err(|e| StoreError::Auth(format!("TLS settings: {}", error_chain(&e))))?
        } else {
            endpoint
        };
        let channel = rt
            .block_on(endpoint.connect())
            .map_err(|e| transport_error("connect", &e, timeouts.connect))?;
        let grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(MAX_MESSAGE);
        log::debug!(target: "reapi", "connected to {}", cfg.url.value);
        Ok(Client { rt, grpc })
    }

    fn tls(cfg: &ReapiConfig) -> Result<tonic::transport::ClientTlsConfig, StoreError> {
        let read = |s: &Setting<String>| {
            std::fs::read(&s.value)
                .map_err(|e| StoreError::Auth(format!("cannot read {} ({}): {e}", s.value, s.source)))
        };
        let mut tls = tonic::transport::ClientTlsConfig::new().assume_http2(true);
        tls = match &cfg.ca_file {
            Some(ca) => tls.ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?)),
            None => tls.with_native_roots(),
        };
        if let (Some(cert), Some(key)) = (&cfg.client_cert, &cfg.client_key) {
            tls = tls.identity(tonic::transport::Identity::from_pem(read(cert)?, read(key)?));
        }
        Ok(tls)
    }

    /// Run `f` with the (lazily made) client inside its runtime. After a failure the connection is
    /// dropped. A connection kept from an earlier call that fails as unreachable (the server
    /// closed it while idle, e.g. during a long remote compile) is replaced once and `f` retried;
    /// a server that is busy (ResourceExhausted) is asked twice more.
    pub(super) fn with_client<T>(
        &self,
        f: impl AsyncFn(&mut tonic::client::Grpc<tonic::transport::Channel>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut slot = self.client.borrow_mut();
        let (mut client, reused) = match std::mem::replace(&mut *slot, Conn::None) {
            Conn::Ready(c) => (*c, true),
            Conn::Pending(thread) => (
                thread
                    .join()
                    .unwrap_or_else(|_| Err(StoreError::Protocol("the connecting thread panicked".into())))?,
                false,
            ),
            Conn::None => (self.connect()?, false),
        };
        let mut result = rt_run(&mut client, &f);
        if reused && matches!(result, Err(StoreError::Unreachable(_))) {
            log::debug!(target: "reapi", "the kept connection failed; connecting again");
            client = self.connect()?;
            result = rt_run(&mut client, &f);
        }
        // A busy server (its concurrent-call limit, a quota) says ResourceExhausted: every call
        // here is idempotent, so try twice more, shortly after, before it counts as a fault.
        for pause in [50, 200] {
            if !matches!(&result, Err(StoreError::Protocol(t)) if t.contains(": ResourceExhausted: ")) {
                break;
            }
            log::debug!(target: "reapi", "the server is busy; trying again in {pause} ms");
            std::thread::sleep(Duration::from_millis(pause));
            result = rt_run(&mut client, &f);
        }
        if result.is_ok() {
            *slot = Conn::Ready(Box::new(client));
        }
        result
    }

    /// A request with the configured headers and a deadline of the I/O timeout (scaled up for
    /// `bytes` to move, at a floor of 8 MiB/s, so a large entry is not cut off on a slow link).
    pub(super) fn request<T>(&self, msg: T, bytes: usize) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        let extra = Duration::from_secs_f64(bytes as f64 / (8u64 << 20) as f64);
        req.set_timeout(self.timeouts.io + extra);
        for (name, value) in &self.cfg.headers {
            // Both were checked when the configuration was read.
            if let (Ok(n), Ok(v)) = (
                name.parse::<tonic::metadata::MetadataKey<tonic::metadata::Ascii>>(),
                value
                    .0
                    .parse::<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>(),
            ) {
                req.metadata_mut().insert(n, v);
            }
        }
        req
    }

    pub(super) fn instance(&self) -> String {
        self.cfg.instance.value.clone()
    }

    /// The Command and Action of `key` (see the module comment), serialized, and the action digest.
    fn action(&self, key: &str) -> (Vec<u8>, Vec<u8>, pb::Digest) {
        let command = pb::Command {
            arguments: vec![OUTPUT.to_string(), format!("{}{key}", self.prefix)],
            ..Default::default()
        }
        .encode_to_vec();
        let action = pb::Action {
            command_digest: Some(pb::Digest::of(&command)),
            input_root_digest: Some(pb::Digest::of(&pb::Directory::default().encode_to_vec())),
            salt: SALT.to_vec(),
            ..Default::default()
        }
        .encode_to_vec();
        let digest = pb::Digest::of(&action);
        (command, action, digest)
    }

    fn resource(&self, d: &pb::Digest) -> String {
        let blobs = format!("blobs/{}/{}", d.hash, d.size_bytes);
        match self.cfg.instance.value.as_str() {
            "" => blobs,
            i => format!("{i}/{blobs}"),
        }
    }

    fn upload_resource(&self, d: &pb::Digest) -> String {
        let mut id = [0u8; 16];
        // Any unique name will do; should the generator fail, time and pid keep uploads apart.
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            id[..8].copy_from_slice(&(t as u64).to_le_bytes());
            id[8..12].copy_from_slice(&std::process::id().to_le_bytes());
        }
        let h = crate::key::hex(&id);
        let uuid = format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]);
        let rest = format!("uploads/{uuid}/blobs/{}/{}", d.hash, d.size_bytes);
        match self.cfg.instance.value.as_str() {
            "" => rest,
            i => format!("{i}/{rest}"),
        }
    }

    /// Upload small blobs in one BatchUpdateBlobs call; every blob must be accepted.
    pub(super) async fn batch_upload(
        &self,
        grpc: &mut tonic::client::Grpc<tonic::transport::Channel>,
        blobs: Vec<(pb::Digest, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let size: usize = blobs.iter().map(|b| b.1.len()).sum();
        let msg = pb::BatchUpdateBlobsRequest {
            instance_name: self.instance(),
            requests: blobs
                .into_iter()
                .map(|(digest, data)| pb::BlobUpload {
                    digest: Some(digest),
                    data,
                })
                .collect(),
        };
        let resp: pb::BatchUpdateBlobsResponse = unary(
            grpc,
            self.request(msg, size),
            "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchUpdateBlobs",
        )
        .await?;
        for r in resp.responses {
            if let Some(s) = r.status.filter(|s| s.code != 0) {
                return Err(code_error("BatchUpdateBlobs", tonic::Code::from(s.code), &s.message));
            }
        }
        Ok(())
    }

    /// Upload one large blob through ByteStream Write, unless the CAS has it already.
    pub(super) async fn stream_upload(
        &self,
        grpc: &mut tonic::client::Grpc<tonic::transport::Channel>,
        digest: &pb::Digest,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let find = pb::FindMissingBlobsRequest {
            instance_name: self.instance(),
            blob_digests: vec![digest.clone()],
        };
        let missing: pb::FindMissingBlobsResponse = unary(
            grpc,
            self.request(find, 0),
            "/build.bazel.remote.execution.v2.ContentAddressableStorage/FindMissingBlobs",
        )
        .await?;
        if missing.missing_blob_digests.is_empty() {
            return Ok(());
        }
        let name = self.upload_resource(digest);
        let total = bytes.len();
        let chunks: Vec<pb::WriteRequest> = bytes
            .chunks(CHUNK)
            .enumerate()
            .map(|(i, c)| pb::WriteRequest {
                resource_name: if i == 0 { name.clone() } else { String::new() },
                write_offset: (i * CHUNK) as i64,
                finish_write: (i * CHUNK + c.len()) == total,
                data: c.to_vec(),
            })
            .collect();
        let req = self.request(smol::stream::iter(chunks), total);
        grpc.ready()
            .await
            .map_err(|e| transport_error("ByteStream.Write", &e, self.timeouts.io))?;
        let path = http::uri::PathAndQuery::from_static("/google.bytestream.ByteStream/Write");
        let resp = grpc
            .client_streaming::<_, pb::WriteRequest, pb::WriteResponse, _>(req, path, Codec::default())
            .await
            .map_err(|s| status_error("ByteStream.Write", s))?
            .into_inner();
        // A server that has the blob already may end the write early and report its full size.
        self.counters.borrow_mut().push("remote.reapi-bytestream-write");
        if resp.committed_size != total as i64 {
            return Err(StoreError::Protocol(format!(
                "ByteStream.Write: the server committed {} of {total} bytes",
                resp.committed_size
            )));
        }
        Ok(())
    }

    /// Read one blob, through BatchReadBlobs or ByteStream Read by its size; `None` when the CAS
    /// no longer has it (evicted: the Action Cache entry is stale, which is a miss).
    pub(super) async fn download(
        &self,
        grpc: &mut tonic::client::Grpc<tonic::transport::Channel>,
        digest: &pb::Digest,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let size = digest.size_bytes as usize;
        let bytes = if size <= BATCH_LIMIT {
            let msg = pb::BatchReadBlobsRequest {
                instance_name: self.instance(),
                digests: vec![digest.clone()],
            };
            let resp: pb::BatchReadBlobsResponse = unary(
                grpc,
                self.request(msg, size),
                "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchReadBlobs",
            )
            .await?;
            let Some(blob) = resp.responses.into_iter().find(|r| r.digest.as_ref() == Some(digest)) else {
                return Err(StoreError::Protocol(
                    "BatchReadBlobs: the answer lacks the blob asked for".into(),
                ));
            };
            match blob.status.map(|s| (tonic::Code::from(s.code), s.message)) {
                None | Some((tonic::Code::Ok, _)) => blob.data,
                Some((tonic::Code::NotFound, _)) => return Ok(None),
                Some((code, message)) => return Err(code_error("BatchReadBlobs", code, &message)),
            }
        } else {
            let msg = pb::ReadRequest {
                resource_name: self.resource(digest),
                read_offset: 0,
                read_limit: 0,
            };
            grpc.ready()
                .await
                .map_err(|e| transport_error("ByteStream.Read", &e, self.timeouts.io))?;
            let path = http::uri::PathAndQuery::from_static("/google.bytestream.ByteStream/Read");
            let stream = grpc
                .server_streaming::<_, pb::ReadResponse, _>(self.request(msg, size), path, Codec::default())
                .await;
            let mut stream = match stream {
                Ok(s) => s.into_inner(),
                Err(s) if s.code() == tonic::Code::NotFound => return Ok(None),
                Err(s) => return Err(status_error("ByteStream.Read", s)),
            };
            let mut bytes = Vec::with_capacity(size);
            loop {
                match stream.message().await {
                    Ok(Some(chunk)) => {
                        if bytes.len() + chunk.data.len() > size {
                            return Err(StoreError::Protocol(format!(
                                "ByteStream.Read: more than the blob's {size} bytes"
                            )));
                        }
                        bytes.extend_from_slice(&chunk.data);
                    }
                    Ok(None) => break,
                    Err(s) if s.code() == tonic::Code::NotFound => return Ok(None),
                    Err(s) => return Err(status_error("ByteStream.Read", s)),
                }
            }
            self.counters.borrow_mut().push("remote.reapi-bytestream-read");
            bytes
        };
        // Never trust the server: the bytes must be the ones the Action Cache named.
        if pb::Digest::of(&bytes) != *digest {
            return Err(StoreError::Protocol(format!(
                "blob {}/{} does not match its digest",
                digest.hash, digest.size_bytes
            )));
        }
        Ok(Some(bytes))
    }
}

impl Storage for ReapiStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (_, _, action_digest) = self.action(key);
        self.with_client(async |grpc| {
            let msg = pb::GetActionResultRequest {
                instance_name: self.instance(),
                action_digest: Some(action_digest.clone()),
                inline_output_files: vec![OUTPUT.to_string()],
                ..Default::default()
            };
            let result: Option<pb::ActionResult> = unary_or_not_found(
                grpc,
                self.request(msg, 0),
                "/build.bazel.remote.execution.v2.ActionCache/GetActionResult",
            )
            .await?;
            let Some(result) = result else {
                return Ok(None);
            };
            let Some(out) = result.output_files.into_iter().find(|f| f.path == OUTPUT) else {
                return Ok(None); // removed (see `remove`), or not ours
            };
            let Some(digest) = out.digest else {
                return Err(StoreError::Protocol("ActionResult: output without a digest".into()));
            };
            if digest.size_bytes < 0 || digest.size_bytes as u64 > crate::limits::ENTRY_FILE {
                return Err(StoreError::Protocol(format!(
                    "ActionResult: an output of {} bytes",
                    digest.size_bytes
                )));
            }
            if !out.contents.is_empty() || digest.size_bytes == 0 {
                if pb::Digest::of(&out.contents) == digest {
                    return Ok(Some(out.contents));
                }
                log::debug!(target: "reapi", "inlined output does not match its digest; reading the blob");
            }
            self.download(grpc, &digest).await
        })
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let (command, action, action_digest) = self.action(key);
        let blob = pb::Digest::of(bytes);
        self.with_client(async |grpc| {
            let mut small = vec![
                (pb::Digest::of(&command), command.clone()),
                (pb::Digest::of(&action), action.clone()),
            ];
            if bytes.len() <= BATCH_LIMIT {
                small.push((blob.clone(), bytes.to_vec()));
            } else {
                self.stream_upload(grpc, &blob, bytes).await?;
            }
            self.batch_upload(grpc, small).await?;
            self.update_action_result(grpc, action_digest.clone(), vec![blob.clone()])
                .await
        })
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        let (_, _, action_digest) = self.action(key);
        self.with_client(async |grpc| self.update_action_result(grpc, action_digest.clone(), Vec::new()).await)
    }

    fn prepare(&self) {
        let (cfg, timeouts) = (self.cfg.clone(), self.timeouts);
        // If the thread cannot start, the first request connects instead.
        if let Ok(thread) = std::thread::Builder::new()
            .name("reapi-connect".into())
            .spawn(move || Self::connect_to(&cfg, timeouts))
        {
            *self.client.borrow_mut() = Conn::Pending(thread);
        }
    }

    fn take_counters(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.counters.borrow_mut())
    }

    fn describe(&self) -> String {
        match self.cfg.instance.value.as_str() {
            "" => format!("reapi {}", self.cfg.url.value),
            i => format!("reapi {} instance {i}", self.cfg.url.value),
        }
    }
}

impl ReapiStore {
    /// Point the action's Action Cache entry at `outputs` (none: the entry reads as a miss).
    async fn update_action_result(
        &self,
        grpc: &mut tonic::client::Grpc<tonic::transport::Channel>,
        action_digest: pb::Digest,
        outputs: Vec<pb::Digest>,
    ) -> Result<(), StoreError> {
        let msg = pb::UpdateActionResultRequest {
            instance_name: self.instance(),
            action_digest: Some(action_digest),
            action_result: Some(pb::ActionResult {
                output_files: outputs
                    .into_iter()
                    .map(|d| pb::OutputFile {
                        path: OUTPUT.to_string(),
                        digest: Some(d),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
        };
        let _: pb::ActionResult = unary(
            grpc,
            self.request(msg, 0),
            "/build.bazel.remote.execution.v2.ActionCache/UpdateActionResult",
        )
        .await?;
        Ok(())
    }
}

/// One unary call that must find what it asks for.
pub(super) async fn unary<Req, Resp>(
    grpc: &mut tonic::client::Grpc<tonic::transport::Channel>,
    req: tonic::Request<Req>,
    path: &'static str,
) -> Result<Resp, StoreError>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    unary_or_not_found(grpc, req, path)
        .await?
        .ok_or_else(|| StoreError::Protocol(format!("{path}: NotFound")))
}

/// One unary call; `None` when the server answers NotFound (an Action Cache miss).
async fn unary_or_not_found<Req, Resp>(
    grpc: &mut tonic::client::Grpc<tonic::transport::Channel>,
    req: tonic::Request<Req>,
    path: &'static str,
) -> Result<Option<Resp>, StoreError>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let method = path.rsplit('/').next().unwrap_or(path);
    grpc.ready()
        .await
        .map_err(|e| transport_error(method, &e, Duration::ZERO))?;
    let path = http::uri::PathAndQuery::from_static(path);
    match grpc.unary(req, path, Codec::<Req, Resp>::default()).await {
        Ok(r) => Ok(Some(r.into_inner())),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
        Err(s) => Err(status_error(method, s)),
    }
}

/// A gRPC status as one of our kinds (the message names no header value).
pub(super) fn status_error(what: &str, s: tonic::Status) -> StoreError {
    // The transport's own failures (refused, reset, a TLS alert) come with a source error.
    if let Some(src) = std::error::Error::source(&s) {
        let text = format!("{what}: {:?}: {}: {}", s.code(), s.message(), error_chain(src));
        return classify_transport(text);
    }
    code_error(what, s.code(), s.message())
}

pub(super) fn code_error(what: &str, code: tonic::Code, message: &str) -> StoreError {
    let text = format!("{what}: {code:?}: {message}");
    match code {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => StoreError::Auth(text),
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => StoreError::Timeout(text),
        tonic::Code::Unavailable => StoreError::Unreachable(text),
        // Servers answer an unknown instance name with InvalidArgument (BuildGrid) or NotFound.
        tonic::Code::InvalidArgument if message.to_ascii_lowercase().contains("instance") => {
            StoreError::MissingBucket(text)
        }
        _ => StoreError::Protocol(text),
    }
}

/// A failure to connect or to get the channel ready.
fn transport_error(what: &str, e: &(dyn std::error::Error + 'static), limit: Duration) -> StoreError {
    let text = format!("{what}: {}", error_chain(e));
    match classify_transport(text) {
        StoreError::Timeout(t) => StoreError::Timeout(format!("{t} (limit {})", super::remote::format_duration(limit))),
        other => other,
    }
}

/// A transport failure by its text: TLS refusals (a certificate not trusted, one asked for and not
/// given) are the credentials' fault; time-outs are time-outs; the rest is an unreachable server.
fn classify_transport(text: String) -> StoreError {
    let lower = text.to_ascii_lowercase();
    if lower.contains("timed out") || lower.contains("elapsed") || lower.contains("deadline") {
        StoreError::Timeout(text)
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("alert") {
        StoreError::Auth(text)
    } else {
        StoreError::Unreachable(text)
    }
}

/// An error and its sources, `: `-joined (tonic's top-level messages say only "transport error").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        src = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setting::Source;

    #[test]
    fn action_digest_depends_on_key_and_prefix_only() {
        let cfg = |instance: &str| ReapiConfig {
            url: Setting {
                value: "grpc://127.0.0.1:1".into(),
                source: Source::Default,
            },
            instance: Setting {
                value: instance.into(),
                source: Source::Default,
            },
            ca_file: None,
            client_cert: None,
            client_key: None,
            headers: Vec::new(),
            headers_source: Source::Default,
            remote_execution: Setting {
                value: false,
                source: Source::Default,
            },
            execution_timeout: Setting {
                value: DEFAULT_EXECUTION_TIMEOUT,
                source: Source::Default,
            },
            platform: Setting {
                value: Vec::new(),
                source: Source::Default,
            },
            toolchain_upload: Setting {
                value: false,
                source: Source::Default,
            },
        };
        let t = Timeouts {
            connect: Duration::from_secs(1),
            io: Duration::from_secs(1),
        };
        let a = ReapiStore::new(cfg(""), String::new(), t);
        let b = ReapiStore::new(cfg("other"), String::new(), t);
        let c = ReapiStore::new(cfg(""), "team/".into(), t);
        assert_eq!(a.action("k1").2, b.action("k1").2);
        assert_ne!(a.action("k1").2, a.action("k2").2);
        assert_ne!(a.action("k1").2, c.action("k1").2);
        assert_eq!(
            a.resource(&pb::Digest::of(b"x")),
            format!("blobs/{}/1", crate::key::sha256_hex(b"x"))
        );
        assert!(b.upload_resource(&pb::Digest::of(b"x")).starts_with("other/uploads/"));
    }
}
