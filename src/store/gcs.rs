//! Google Cloud Storage as the remote level: one object per entry at `<prefix><key>`, through the
//! JSON API (media download and simple upload), sent by ureq with an OAuth bearer token.
//!
//! Settings (environment, else `[cache.gcs]`):
//! - `CACHEPOT_GCS_BUCKET` (`bucket`): the bucket; setting it selects this backend;
//! - `CACHEPOT_GCS_KEY_PATH`, else `GOOGLE_APPLICATION_CREDENTIALS` (`key_path`): a service-account
//!   JSON key; a JWT signed with its key (RS256, ring) is exchanged at its `token_uri` for a token;
//! - `CACHEPOT_GCS_CREDENTIALS_URL` (`credentials_url`): a URL that answers a token
//!   (`{"access_token"|"accessToken": …, "expires_in": seconds | "expireTime": RFC 3339}`);
//! - `CACHEPOT_GCS_RW_MODE` (`rw_mode`): `READ_ONLY` (the default, as in the seed: a read-only GCS
//!   cache stores nothing, which `--show-config`, the log and the stats say) or `READ_WRITE`;
//! - `CACHEPOT_GCS_ENDPOINT`, else `STORAGE_EMULATOR_HOST` (`endpoint`): another server (default
//!   `https://storage.googleapis.com`).
//!
//! Without a key or URL, requests are anonymous (a public bucket). A token is kept in a 0600 file
//! in the cache dir until a minute before it expires, so a compile does not pay a signature and a
//! round trip. Token file grammar (`<cache dir>/remote-gcs-token`): one line
//! `v1 <source id> <valid until, unix seconds> <token>`.

use super::remote::{Settings, Timeouts};
use super::{Storage, StoreError, http};
use crate::setting::{ConfigError, Setting, Source};
use base64::Engine as _;
use std::cell::RefCell;
use std::path::{Path, PathBuf};

/// The keys of this backend's `[cache.gcs]` table.
pub const KEYS: &[&str] = &["bucket", "key_path", "credentials_url", "rw_mode", "endpoint"];

#[derive(Debug, Clone)]
pub struct GcsConfig {
    pub bucket: Setting<String>,
    pub key_path: Option<Setting<String>>,
    pub credentials_url: Option<Setting<String>>,
    pub read_write: Setting<bool>,
    pub endpoint: Setting<String>,
}

const SCOPE_RW: &str = "https://www.googleapis.com/auth/devstorage.read_write";
const SCOPE_RO: &str = "https://www.googleapis.com/auth/devstorage.read_only";

impl GcsConfig {
    pub fn load(s: &Settings) -> Result<Option<GcsConfig>, ConfigError> {
        s.check_keys(KEYS)?;
        let Some(bucket) = s.string("bucket", "CACHEPOT_GCS_BUCKET")? else {
            return Ok(None);
        };
        let read_write = match s.string("rw_mode", "CACHEPOT_GCS_RW_MODE")? {
            None => Setting {
                value: false,
                source: Source::Default,
            },
            Some(m) => Setting {
                value: match m.value.to_ascii_uppercase().as_str() {
                    "READ_ONLY" => false,
                    "READ_WRITE" => true,
                    _ => {
                        return Err(ConfigError(format!(
                            "GCS mode {:?} ({}) is not valid; accepted: READ_ONLY, READ_WRITE",
                            m.value, m.source
                        )));
                    }
                },
                source: m.source,
            },
        };
        let endpoint = s
            .string_any("endpoint", &["CACHEPOT_GCS_ENDPOINT", "STORAGE_EMULATOR_HOST"])?
            .map(|mut e| {
                if !e.value.contains("://") {
                    e.value = format!("http://{}", e.value);
                }
                e.value = e.value.trim_end_matches('/').to_string();
                e
            })
            .unwrap_or(Setting {
                value: "https://storage.googleapis.com".into(),
                source: Source::Default,
            });
        Ok(Some(GcsConfig {
            bucket,
            key_path: s.string_any("key_path", &["CACHEPOT_GCS_KEY_PATH", "GOOGLE_APPLICATION_CREDENTIALS"])?,
            credentials_url: s.string("credentials_url", "CACHEPOT_GCS_CREDENTIALS_URL")?,
            read_write,
            endpoint,
        }))
    }

    pub fn show(&self) -> Vec<(&'static str, String, String)> {
        let mode = if self.read_write.value {
            "READ_WRITE".to_string()
        } else {
            "READ_ONLY: this cache stores nothing (CACHEPOT_GCS_RW_MODE=READ_WRITE to fill it)".to_string()
        };
        let (creds, source) = match (&self.key_path, &self.credentials_url) {
            (Some(k), _) => (format!("key file {}", k.value), k.source.to_string()),
            (None, Some(u)) => (format!("token from {}", u.value), u.source.to_string()),
            (None, None) => ("none: anonymous".to_string(), "default".to_string()),
        };
        vec![
            ("gcs_bucket", self.bucket.value.clone(), self.bucket.source.to_string()),
            ("gcs_rw_mode", mode, self.read_write.source.to_string()),
            ("gcs_credentials", creds, source),
            (
                "gcs_endpoint",
                self.endpoint.value.clone(),
                self.endpoint.source.to_string(),
            ),
        ]
    }
}

/// Fetches a token and the unix time until which it may be used.
type TokenFetch<'a> = dyn Fn() -> Result<(String, u64), StoreError> + 'a;

pub struct GcsStore {
    cfg: GcsConfig,
    prefix: String,
    timeouts: Timeouts,
    cache_dir: PathBuf,
    agent: RefCell<Option<ureq::Agent>>,
    /// Found on first use; `Some(None)` is anonymous.
    token: RefCell<Option<Option<String>>>,
}

impl GcsStore {
    pub fn new(cfg: GcsConfig, prefix: String, timeouts: Timeouts, cache_dir: PathBuf) -> GcsStore {
        if !cfg.read_write.value {
            log::info!(target: "gcs", "GCS bucket {} is read-only (CACHEPOT_GCS_RW_MODE): nothing will be stored in it", cfg.bucket.value);
        }
        GcsStore {
            cfg,
            prefix,
            timeouts,
            cache_dir,
            agent: RefCell::new(None),
            token: RefCell::new(None),
        }
    }

    fn agent(&self) -> ureq::Agent {
        self.agent
            .borrow_mut()
            .get_or_insert_with(|| http::agent(self.timeouts))
            .clone()
    }

    fn token(&self) -> Result<Option<String>, StoreError> {
        if let Some(t) = &*self.token.borrow() {
            return Ok(t.clone());
        }
        let scope = if self.cfg.read_write.value { SCOPE_RW } else { SCOPE_RO };
        let (source_id, fetch): (String, Box<TokenFetch>) = match (&self.cfg.key_path, &self.cfg.credentials_url) {
            (Some(k), _) => (
                format!("key {} {scope}", k.value),
                Box::new(move || self.token_from_key(Path::new(&k.value), scope)),
            ),
            (None, Some(u)) => (
                format!("url {}", u.value),
                Box::new(move || self.token_from_url(&u.value)),
            ),
            (None, None) => {
                *self.token.borrow_mut() = Some(None);
                return Ok(None);
            }
        };
        let id = crate::key::sha256_hex(source_id.as_bytes())[..16].to_string();
        let file = self.cache_dir.join("remote-gcs-token");
        let token = match read_token(&file, &id) {
            Some(t) => t,
            None => {
                let (token, valid_until) = fetch()?;
                write_token(&file, &id, valid_until, &token);
                token
            }
        };
        *self.token.borrow_mut() = Some(Some(token.clone()));
        Ok(Some(token))
    }

    /// Service-account key → signed JWT → token (RFC 7523, as Google's libraries do).
    fn token_from_key(&self, path: &Path, scope: &str) -> Result<(String, u64), StoreError> {
        let text = crate::limits::read_text(path, crate::limits::CONFIG_FILE)
            .map_err(|e| StoreError::Auth(format!("cannot read GCS key file {}: {e}", path.display())))?;
        let field = |f| http::json_string_field(&text, f);
        let (Some(email), Some(pem)) = (field("client_email"), field("private_key")) else {
            return Err(StoreError::Auth(format!(
                "GCS key file {}: no client_email or private_key",
                path.display()
            )));
        };
        let token_uri = field("token_uri").unwrap_or_else(|| "https://oauth2.googleapis.com/token".into());
        let now = unix_now();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = b64.encode(format!(
            r#"{{"iss":"{email}","scope":"{scope}","aud":"{token_uri}","iat":{now},"exp":{}}}"#,
            now + 3600
        ));
        let signing_input = format!("{header}.{claims}");
        let signature = sign_rs256(&pem, signing_input.as_bytes())
            .map_err(|e| StoreError::Auth(format!("GCS key file {}: {e}", path.display())))?;
        let jwt = format!("{signing_input}.{}", b64.encode(signature));
        let what = "GCS token request";
        let resp = self.agent().post(&token_uri).send_form([
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", jwt.as_str()),
        ]);
        token_answer(what, resp)
    }

    fn token_from_url(&self, url: &str) -> Result<(String, u64), StoreError> {
        token_answer("CACHEPOT_GCS_CREDENTIALS_URL", self.agent().get(url).call())
    }

    fn object(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn request(&self, verb: &str, key: &str, body: Option<&[u8]>) -> Result<(u16, Vec<u8>), StoreError> {
        let token = self.token()?;
        let object = self.object(key);
        let enc = encode_component(&object);
        let bucket = encode_component(&self.cfg.bucket.value);
        let base = &self.cfg.endpoint.value;
        let what = format!("GCS {verb} {object}");
        let agent = self.agent();
        let auth = token.map(|t| format!("Bearer {t}"));
        let result = match (verb, body) {
            ("PUT", Some(b)) => {
                let url = format!("{base}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={enc}");
                let mut req = agent.post(&url).header("Content-Type", "application/octet-stream");
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.send(b)
            }
            ("DELETE", _) => {
                let mut req = agent.delete(format!("{base}/storage/v1/b/{bucket}/o/{enc}"));
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.call()
            }
            _ => {
                let mut req = agent.get(format!("{base}/storage/v1/b/{bucket}/o/{enc}?alt=media"));
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.call()
            }
        };
        let mut resp = result.map_err(|e| http::transport_error(&what, e))?;
        let status = resp.status().as_u16();
        let body = http::body(&what, &mut resp)?;
        let message = http::json_string_field(&String::from_utf8_lossy(&body), "message").unwrap_or_default();
        if status == 404 && message.to_ascii_lowercase().contains("bucket") {
            return Err(StoreError::MissingBucket(format!("{what}: {message}")));
        }
        if !(200..300).contains(&status) && status != 404 {
            let mut err = http::status_error(&what, status, &body, &[]);
            if let StoreError::Auth(t) | StoreError::Protocol(t) = &mut err
                && !message.is_empty()
            {
                t.push_str(&format!(": {message}"));
            }
            return Err(err);
        }
        Ok((status, body))
    }
}

impl Storage for GcsStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (status, body) = self.request("GET", key, None)?;
        Ok((status != 404).then_some(body))
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        match self.request("PUT", key, Some(bytes))? {
            // An upload has no object to miss: a 404 means the bucket is not there.
            (404, _) => Err(StoreError::MissingBucket(format!(
                "GCS upload of {key}: HTTP 404: bucket {:?} does not exist",
                self.cfg.bucket.value
            ))),
            _ => Ok(()),
        }
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.request("DELETE", key, None).map(|_| ())
    }

    fn describe(&self) -> String {
        format!("gcs {} bucket {}", self.cfg.endpoint.value, self.cfg.bucket.value)
    }

    fn accepts_writes(&self) -> bool {
        // READ_ONLY is applied by the tiered store (it is the remote's read-only switch); an
        // anonymous client cannot write either.
        matches!(self.token(), Ok(Some(_)))
    }
}

/// `{"access_token": …, "expires_in": n}` (OAuth) or `{"accessToken": …, "expireTime": …}`.
fn token_answer(what: &str, resp: Result<http::Response, ureq::Error>) -> Result<(String, u64), StoreError> {
    let mut resp = resp.map_err(|e| http::transport_error(what, e))?;
    let status = resp.status().as_u16();
    let body = http::body(what, &mut resp)?;
    if !(200..300).contains(&status) {
        return Err(http::status_error(what, status, &body, &[]));
    }
    let text = String::from_utf8_lossy(&body);
    let token = http::json_string_field(&text, "access_token")
        .or_else(|| http::json_string_field(&text, "accessToken"))
        .ok_or_else(|| StoreError::Protocol(format!("{what}: no token in the answer")))?;
    let expires = json_number(&text, "expires_in")
        .map(|n| unix_now() + n)
        .or_else(|| {
            http::json_string_field(&text, "expireTime")
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map(|t| t.as_second().max(0) as u64)
        })
        .unwrap_or(unix_now() + 600);
    Ok((token, expires.saturating_sub(60)))
}

fn json_number(json: &str, field: &str) -> Option<u64> {
    let key = format!("\"{field}\"");
    let rest = json[json.find(&key)? + key.len()..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// RS256 over `data` with a PEM PKCS#8 RSA key (the format of service-account keys).
fn sign_rs256(pem: &str, data: &[u8]) -> Result<Vec<u8>, String> {
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| "private_key is not PEM".to_string())?;
    let key = ring::signature::RsaKeyPair::from_pkcs8(&der)
        .map_err(|e| format!("private_key is not a PKCS#8 RSA key: {e}"))?;
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        data,
        &mut sig,
    )
    .map_err(|_| "signing failed".to_string())?;
    Ok(sig)
}

/// Percent-encode everything but unreserved characters (object names go in one path segment).
fn encode_component(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn read_token(file: &Path, id: &str) -> Option<String> {
    let text = crate::limits::read_text(file, crate::limits::CONFIG_FILE).ok()?;
    let f: Vec<&str> = text.split_whitespace().collect();
    (f.len() == 4 && f[0] == "v1" && f[1] == id && f[2].parse::<u64>().ok()? > unix_now()).then(|| f[3].to_string())
}

/// Keep the token for the next compiles: a 0600 file, written by temp file + rename.
fn write_token(file: &Path, id: &str, valid_until: u64, token: &str) {
    let line = format!("v1 {id} {valid_until} {token}\n");
    if let Err(e) = super::write_private_file(file, line.as_bytes()) {
        log::debug!(target: "gcs", "cannot keep the token in {}: {e}", file.display());
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}
