//! S3 and S3-compatible servers (MinIO, Ceph, s3s, …) as the remote level: one object per entry
//! at `<prefix><key>`. rusty-s3 signs (SigV4 presigned URLs, so the body needs no hashing) and
//! ureq sends, blocking, with the configured timeouts. Credentials: see `s3_credentials.rs`.
//!
//! Settings (environment, else `[cache.s3]`):
//! - `CACHEPOT_BUCKET` (`bucket`): the bucket; setting it selects this backend;
//! - `CACHEPOT_ENDPOINT` (`endpoint`): `host[:port]` or a URL, for S3-compatible servers; default
//!   `s3.<region>.amazonaws.com`;
//! - `CACHEPOT_S3_USE_SSL` (`use_ssl`, default true): https or http for a `host[:port]` endpoint;
//! - `CACHEPOT_REGION`, else `AWS_REGION`, else `AWS_DEFAULT_REGION` (`region`), default us-east-1;
//! - `CACHEPOT_S3_PATH_STYLE` (`path_style`): `endpoint/bucket/key` rather than
//!   `bucket.endpoint/key`; default on with an endpoint (what S3-compatible servers expect), off
//!   for AWS;
//! - `CACHEPOT_S3_KEY_PREFIX` (`key_prefix`): the seed's name for `CACHEPOT_REMOTE_PREFIX`;
//! - `CACHEPOT_S3_NO_CREDENTIALS` (`no_credentials`): anonymous requests, read-only.

use super::remote::{Settings, Timeouts};
use super::s3_credentials::{self, AwsEnv};
use super::{Storage, StoreError, http};
use crate::setting::{ConfigError, Setting, Source};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Duration;

/// The keys of this backend's `[cache.s3]` table.
pub const KEYS: &[&str] = &[
    "bucket",
    "endpoint",
    "use_ssl",
    "region",
    "path_style",
    "key_prefix",
    "no_credentials",
];

#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: Setting<String>,
    /// The endpoint as a URL (scheme, host, port).
    pub endpoint: Setting<String>,
    pub region: Setting<String>,
    pub path_style: Setting<bool>,
    pub key_prefix: Option<Setting<String>>,
    pub no_credentials: Setting<bool>,
    pub aws: AwsEnv,
}

/// How long a presigned request stays valid: long enough for a slow upload, short enough to be
/// useless if it leaked.
const PRESIGN_FOR: Duration = Duration::from_secs(900);
const MISSING_BUCKET: &[&str] = &["NoSuchBucket"];

impl S3Config {
    pub fn load(s: &Settings) -> Result<Option<S3Config>, ConfigError> {
        s.check_keys(KEYS)?;
        let Some(bucket) = s.string("bucket", "CACHEPOT_BUCKET")? else {
            return Ok(None);
        };
        let region = s
            .string_any("region", &["CACHEPOT_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"])?
            .unwrap_or_else(|| default("us-east-1".into()));
        let use_ssl = s
            .bool("use_ssl", "CACHEPOT_S3_USE_SSL")?
            .unwrap_or_else(|| default(true));
        let given = s.string("endpoint", "CACHEPOT_ENDPOINT")?;
        let endpoint = match &given {
            Some(e) if e.value.contains("://") => e.clone(),
            Some(e) => Setting {
                value: format!("{}://{}", if use_ssl.value { "https" } else { "http" }, e.value),
                source: e.source.clone(),
            },
            None => default(format!("https://s3.{}.amazonaws.com", region.value)),
        };
        let path_style = s
            .bool("path_style", "CACHEPOT_S3_PATH_STYLE")?
            .unwrap_or_else(|| default(given.is_some()));
        let cfg = S3Config {
            bucket,
            endpoint,
            region,
            path_style,
            key_prefix: s.string("key_prefix", "CACHEPOT_S3_KEY_PREFIX")?,
            no_credentials: s
                .bool("no_credentials", "CACHEPOT_S3_NO_CREDENTIALS")?
                .unwrap_or_else(|| default(false)),
            aws: AwsEnv::load(s.env),
        };
        if let Err(e) = cfg.bucket() {
            return Err(ConfigError(format!(
                "S3 bucket {:?} at endpoint {} ({}, {}): {e}; accepted: an endpoint host[:port] or http(s) URL, and a bucket name (with CACHEPOT_S3_PATH_STYLE=1 for an IP address endpoint)",
                cfg.bucket.value, cfg.endpoint.value, cfg.bucket.source, cfg.endpoint.source
            )));
        }
        Ok(Some(cfg))
    }

    fn bucket(&self) -> Result<Bucket, String> {
        let url = self.endpoint.value.parse::<url::Url>().map_err(|e| e.to_string())?;
        let style = if self.path_style.value {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        Bucket::new(url, style, self.bucket.value.clone(), self.region.value.clone()).map_err(|e| e.to_string())
    }

    pub fn show(&self) -> Vec<(&'static str, String, String)> {
        let credentials = if self.no_credentials.value {
            "none (CACHEPOT_S3_NO_CREDENTIALS): anonymous, read-only".to_string()
        } else {
            self.aws.describe()
        };
        vec![
            ("s3_bucket", self.bucket.value.clone(), self.bucket.source.to_string()),
            (
                "s3_endpoint",
                self.endpoint.value.clone(),
                self.endpoint.source.to_string(),
            ),
            ("s3_region", self.region.value.clone(), self.region.source.to_string()),
            (
                "s3_path_style",
                self.path_style.value.to_string(),
                self.path_style.source.to_string(),
            ),
            ("s3_credentials", credentials, "env AWS_*".to_string()),
        ]
    }
}

fn default<T>(value: T) -> Setting<T> {
    Setting {
        value,
        source: Source::Default,
    }
}

pub struct S3Store {
    cfg: S3Config,
    bucket: Bucket,
    prefix: String,
    timeouts: Timeouts,
    cache_dir: PathBuf,
    /// Made on first use: TLS set-up only when a request is sent.
    agent: RefCell<Option<ureq::Agent>>,
    /// Found on first use; `Some(None)` is anonymous.
    credentials: RefCell<Option<Option<Credentials>>>,
}

impl S3Store {
    pub fn new(cfg: S3Config, prefix: String, timeouts: Timeouts, cache_dir: PathBuf) -> S3Store {
        let bucket = cfg.bucket().expect("checked when the configuration was loaded");
        S3Store {
            cfg,
            bucket,
            prefix,
            timeouts,
            cache_dir,
            agent: RefCell::new(None),
            credentials: RefCell::new(None),
        }
    }

    fn credentials(&self) -> Result<Option<Credentials>, StoreError> {
        if let Some(c) = &*self.credentials.borrow() {
            return Ok(c.clone());
        }
        let found = if self.cfg.no_credentials.value {
            None
        } else {
            s3_credentials::resolve(&self.cfg.aws, &self.cfg.region.value, self.timeouts, &self.cache_dir)?.map(|c| {
                match c.token {
                    Some(t) => Credentials::new_with_token(c.key_id, c.secret, t),
                    None => Credentials::new(c.key_id, c.secret),
                }
            })
        };
        if found.is_none() {
            log::debug!(target: "s3", "no AWS credentials: anonymous requests, nothing is written");
        }
        *self.credentials.borrow_mut() = Some(found.clone());
        Ok(found)
    }

    fn agent(&self) -> ureq::Agent {
        self.agent
            .borrow_mut()
            .get_or_insert_with(|| http::agent(self.timeouts))
            .clone()
    }

    fn object(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

impl Storage for S3Store {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let creds = self.credentials()?;
        let object = self.object(key);
        let url = self.bucket.get_object(creds.as_ref(), &object).sign(PRESIGN_FOR);
        let what = format!("S3 GET {object}");
        let mut resp = self
            .agent()
            .get(url.as_str())
            .call()
            .map_err(|e| http::transport_error(&what, e))?;
        let status = resp.status().as_u16();
        let body = http::body(&what, &mut resp)?;
        match status {
            200 => Ok(Some(body)),
            404 => match http::status_error(&what, status, &body, MISSING_BUCKET) {
                e @ StoreError::MissingBucket(_) => Err(e),
                _ => Ok(None),
            },
            _ => Err(http::status_error(&what, status, &body, MISSING_BUCKET)),
        }
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let creds = self.credentials()?;
        let object = self.object(key);
        let url = self.bucket.put_object(creds.as_ref(), &object).sign(PRESIGN_FOR);
        let what = format!("S3 PUT {object}");
        let mut resp = self
            .agent()
            .put(url.as_str())
            .header("Content-Type", "application/octet-stream")
            .send(bytes)
            .map_err(|e| http::transport_error(&what, e))?;
        let status = resp.status().as_u16();
        let body = http::body(&what, &mut resp)?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(http::status_error(&what, status, &body, MISSING_BUCKET))
        }
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        let creds = self.credentials()?;
        let object = self.object(key);
        let url = self.bucket.delete_object(creds.as_ref(), &object).sign(PRESIGN_FOR);
        let what = format!("S3 DELETE {object}");
        let mut resp = self
            .agent()
            .delete(url.as_str())
            .call()
            .map_err(|e| http::transport_error(&what, e))?;
        let status = resp.status().as_u16();
        let body = http::body(&what, &mut resp)?;
        if (200..300).contains(&status) || status == 404 {
            Ok(())
        } else {
            Err(http::status_error(&what, status, &body, MISSING_BUCKET))
        }
    }

    fn describe(&self) -> String {
        format!("s3 {} bucket {}", self.cfg.endpoint.value, self.cfg.bucket.value)
    }

    fn accepts_writes(&self) -> bool {
        // Anonymous access is for reading a public cache.
        matches!(self.credentials(), Ok(Some(_)))
    }
}
