//! The execution half of the REAPI client: upload what the CAS lacks, run an action on the engine
//! (Execution.Execute, following the operation to its end) and read its outputs. The flow that
//! decides what to run remotely is `remote_exec.rs`; this module only speaks the protocol.

use super::StoreError;
use super::reapi::{Codec, ReapiStore, status_error, unary};
use super::reapi_proto as pb;
use prost::Message as _;
use std::time::Duration;

/// One blob for the CAS: bytes in memory, or a file with its known digest.
pub enum Blob {
    Bytes(Vec<u8>),
    File(pb::Digest, std::path::PathBuf),
}

impl Blob {
    fn digest(&self) -> pb::Digest {
        match self {
            Blob::Bytes(b) => pb::Digest::of(b),
            Blob::File(d, _) => d.clone(),
        }
    }

    fn bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>, StoreError> {
        match self {
            Blob::Bytes(b) => Ok(std::borrow::Cow::Borrowed(b)),
            Blob::File(d, path) => {
                let bytes = crate::limits::read_regular(path, crate::limits::ENTRY_FILE)
                    .map_err(|e| StoreError::Read(format!("cannot read {}: {e}", path.display())))?;
                if pb::Digest::of(&bytes) != *d {
                    return Err(StoreError::Read(format!(
                        "{} changed since it was digested",
                        path.display()
                    )));
                }
                Ok(std::borrow::Cow::Owned(bytes))
            }
        }
    }
}

/// What an engine's run gave: the compiler's exit code and output, and the output files' digests.
pub struct Executed {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub outputs: Vec<(String, pb::Digest)>,
    /// Whether the engine answered from its Action Cache without running anything.
    pub cached: bool,
}

impl ReapiStore {
    /// Put every blob the CAS lacks there (FindMissingBlobs, then one batch for the small ones and
    /// ByteStream for each large one); returns the bytes sent.
    pub fn upload_missing(&self, blobs: Vec<Vec<u8>>) -> Result<u64, StoreError> {
        self.upload_missing_blobs(blobs.into_iter().map(Blob::Bytes).collect())
    }

    /// `upload_missing` for blobs of which some are files, read only when the CAS lacks them (and
    /// then checked against their digest: a file changed since is an error, not a wrong blob).
    pub fn upload_missing_blobs(&self, blobs: Vec<Blob>) -> Result<u64, StoreError> {
        self.with_client(async |grpc| {
            let digests: Vec<pb::Digest> = blobs.iter().map(Blob::digest).collect();
            let find = pb::FindMissingBlobsRequest {
                instance_name: self.instance(),
                blob_digests: digests.clone(),
            };
            let missing: pb::FindMissingBlobsResponse = unary(
                grpc,
                self.request(find, 0),
                "/build.bazel.remote.execution.v2.ContentAddressableStorage/FindMissingBlobs",
            )
            .await?;
            let mut sent = 0u64;
            let mut small = Vec::new();
            let mut streamed: Vec<pb::Digest> = Vec::new();
            for (digest, blob) in digests.into_iter().zip(&blobs) {
                if !missing.missing_blob_digests.contains(&digest)
                    || small.iter().any(|(d, _)| *d == digest)
                    || streamed.contains(&digest)
                {
                    continue;
                }
                let bytes = blob.bytes()?;
                sent += bytes.len() as u64;
                if bytes.len() <= super::reapi::BATCH_LIMIT {
                    small.push((digest, bytes.into_owned()));
                } else {
                    self.stream_upload(grpc, &digest, &bytes).await?;
                    streamed.push(digest);
                }
            }
            if !small.is_empty() {
                self.batch_upload(grpc, small).await?;
            }
            Ok(sent)
        })
    }

    /// Run the action whose Action (and everything it names) is in the CAS; waits at most `limit`.
    pub fn execute(&self, action: &pb::Digest, limit: Duration) -> Result<Executed, StoreError> {
        self.with_client(async |grpc| {
            let msg = pb::ExecuteRequest {
                instance_name: self.instance(),
                skip_cache_lookup: false,
                action_digest: Some(action.clone()),
            };
            let mut req = self.request(msg, 0);
            req.set_timeout(limit);
            grpc.ready()
                .await
                .map_err(|e| StoreError::Unreachable(format!("Execute: {e}")))?;
            let path = http::uri::PathAndQuery::from_static("/build.bazel.remote.execution.v2.Execution/Execute");
            let mut stream = grpc
                .server_streaming::<pb::ExecuteRequest, pb::Operation, _>(req, path, Codec::default())
                .await
                .map_err(|s| status_error("Execute", s))?
                .into_inner();
            let mut last: Option<pb::Operation> = None;
            loop {
                match stream.message().await {
                    Ok(Some(op)) => {
                        let done = op.done;
                        last = Some(op);
                        if done {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(s) => return Err(status_error("Execute", s)),
                }
            }
            let mut op = last.ok_or_else(|| StoreError::Protocol("Execute: no operation".into()))?;
            if !op.done {
                // The stream ended early (a server may end it on a keep-alive timeout): follow it.
                let mut req = self.request(pb::WaitExecutionRequest { name: op.name.clone() }, 0);
                req.set_timeout(limit);
                let path =
                    http::uri::PathAndQuery::from_static("/build.bazel.remote.execution.v2.Execution/WaitExecution");
                let mut stream = grpc
                    .server_streaming::<pb::WaitExecutionRequest, pb::Operation, _>(req, path, Codec::default())
                    .await
                    .map_err(|s| status_error("WaitExecution", s))?
                    .into_inner();
                while let Some(next) = stream.message().await.map_err(|s| status_error("WaitExecution", s))? {
                    let done = next.done;
                    op = next;
                    if done {
                        break;
                    }
                }
                if !op.done {
                    return Err(StoreError::Protocol(
                        "WaitExecution: the operation did not finish".into(),
                    ));
                }
            }
            if let Some(e) = op.error.filter(|e| e.code != 0) {
                return Err(super::reapi::code_error(
                    "Execute",
                    tonic::Code::from(e.code),
                    &e.message,
                ));
            }
            let any = op
                .response
                .ok_or_else(|| StoreError::Protocol("Execute: a finished operation without a response".into()))?;
            let resp = pb::ExecuteResponse::decode(any.value.as_slice())
                .map_err(|e| StoreError::Protocol(format!("Execute: undecodable response: {e}")))?;
            if let Some(s) = resp.status.filter(|s| s.code != 0) {
                return Err(super::reapi::code_error(
                    "Execute",
                    tonic::Code::from(s.code),
                    &s.message,
                ));
            }
            let result = resp
                .result
                .ok_or_else(|| StoreError::Protocol("Execute: a response without a result".into()))?;
            let mut stdout = result.stdout_raw;
            if let Some(d) = result.stdout_digest.filter(|d| d.size_bytes > 0 && stdout.is_empty()) {
                stdout = self.download(grpc, &d).await?.unwrap_or_default();
            }
            let mut stderr = result.stderr_raw;
            if let Some(d) = result.stderr_digest.filter(|d| d.size_bytes > 0 && stderr.is_empty()) {
                stderr = self.download(grpc, &d).await?.unwrap_or_default();
            }
            Ok(Executed {
                exit_code: result.exit_code,
                stdout,
                stderr,
                outputs: result
                    .output_files
                    .into_iter()
                    .filter_map(|f| Some((f.path, f.digest?)))
                    .collect(),
                cached: resp.cached_result,
            })
        })
    }

    /// One blob from the CAS, checked against its digest; an error when it is gone.
    pub fn read_blob(&self, digest: &pb::Digest) -> Result<Vec<u8>, StoreError> {
        self.with_client(async |grpc| {
            self.download(grpc, digest)
                .await?
                .ok_or_else(|| StoreError::Protocol(format!("output blob {} is not in the CAS", digest.hash)))
        })
    }
}
