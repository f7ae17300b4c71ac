//! Azure Blob Storage as the remote level: one block blob per entry at
//! `<container>/<prefix><key>`, through the REST API with Shared Key authorization (HMAC-SHA256
//! of the canonical request with the account key), sent by ureq. Azurite (the emulator) speaks the
//! same protocol with path-style URLs.
//!
//! Settings (environment, else `[cache.azure]`): `CACHEPOT_AZURE_CONNECTION_STRING`
//! (`connection_string`): `AccountName=…;AccountKey=…[;BlobEndpoint=…][;DefaultEndpointsProtocol=…]
//! [;EndpointSuffix=…]`; `CACHEPOT_AZURE_BLOB_CONTAINER` (`container`). The container is not created
//! for the user: a missing one is known from the first request's error (no probe on every call),
//! logged in one line, counted as `remote-missing-bucket`, and the compile goes on.

use super::remote::{Secret, Settings, Timeouts};
use super::{Storage, StoreError, http};
use crate::setting::{ConfigError, Setting, Source};
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use std::cell::RefCell;

/// The REST API version we speak (supported by Azure and by Azurite).
const API_VERSION: &str = "2021-12-02";
const MISSING_CONTAINER: &[&str] = &["ContainerNotFound"];

/// The keys of this backend's `[cache.azure]` table.
pub const KEYS: &[&str] = &["connection_string", "container"];

#[derive(Debug, Clone)]
pub struct AzureConfig {
    pub connection: Setting<Secret>,
    pub container: Setting<String>,
    pub account: String,
    pub key: Secret,
    /// `http(s)://host[:port][/path]` of the blob service, without a trailing slash.
    pub blob_endpoint: String,
}

impl AzureConfig {
    pub fn load(s: &Settings) -> Result<Option<AzureConfig>, ConfigError> {
        s.check_keys(KEYS)?;
        let Some(conn) = s.string("connection_string", "CACHEPOT_AZURE_CONNECTION_STRING")? else {
            return Ok(None);
        };
        let accepted = "accepted: AccountName=…;AccountKey=…[;BlobEndpoint=…][;DefaultEndpointsProtocol=https][;EndpointSuffix=core.windows.net]";
        let bad = |what: &str| ConfigError(format!("Azure connection string ({}) {what}; {accepted}", conn.source));
        let mut fields = std::collections::HashMap::new();
        for part in conn.value.split(';').filter(|p| !p.trim().is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| bad("has a part without `=`"))?;
            fields.insert(k.trim().to_string(), v.trim().to_string());
        }
        let account = fields
            .get("AccountName")
            .cloned()
            .ok_or_else(|| bad("lacks AccountName"))?;
        let key = fields
            .get("AccountKey")
            .cloned()
            .ok_or_else(|| bad("lacks AccountKey"))?;
        if base64::engine::general_purpose::STANDARD.decode(&key).is_err() {
            return Err(bad("has an AccountKey that is not base64"));
        }
        let blob_endpoint = match fields.get("BlobEndpoint") {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => format!(
                "{}://{account}.blob.{}",
                fields
                    .get("DefaultEndpointsProtocol")
                    .map(String::as_str)
                    .unwrap_or("https"),
                fields
                    .get("EndpointSuffix")
                    .map(String::as_str)
                    .unwrap_or("core.windows.net")
            ),
        };
        if !(blob_endpoint.starts_with("http://") || blob_endpoint.starts_with("https://")) {
            return Err(bad("has a BlobEndpoint that is not an http(s) URL"));
        }
        let container = s
            .string("container", "CACHEPOT_AZURE_BLOB_CONTAINER")?
            .ok_or_else(|| ConfigError("an Azure connection string is set but no container: set CACHEPOT_AZURE_BLOB_CONTAINER (or `container` in [cache.azure])".into()))?;
        let name_ok = (3..=63).contains(&container.value.len())
            && container
                .value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(ConfigError(format!(
                "Azure container {:?} ({}) is not a valid name; accepted: 3 to 63 lowercase letters, digits and hyphens",
                container.value, container.source
            )));
        }
        Ok(Some(AzureConfig {
            connection: Setting {
                value: Secret(conn.value),
                source: conn.source,
            },
            container,
            account,
            key: Secret(key),
            blob_endpoint,
        }))
    }

    pub fn show(&self) -> Vec<(&'static str, String, String)> {
        vec![
            (
                "azure_connection_string",
                format!(
                    "AccountName={};AccountKey=****;BlobEndpoint={}",
                    self.account, self.blob_endpoint
                ),
                self.connection.source.to_string(),
            ),
            (
                "azure_container",
                self.container.value.clone(),
                self.container.source.to_string(),
            ),
        ]
    }

    pub fn source(&self) -> &Source {
        &self.connection.source
    }
}

pub struct AzureStore {
    cfg: AzureConfig,
    prefix: String,
    timeouts: Timeouts,
    agent: RefCell<Option<ureq::Agent>>,
}

impl AzureStore {
    pub fn new(cfg: AzureConfig, prefix: String, timeouts: Timeouts) -> AzureStore {
        AzureStore {
            cfg,
            prefix,
            timeouts,
            agent: RefCell::new(None),
        }
    }

    /// The blob's URL path (after the endpoint) and full URL. Keys are hex and the prefix is
    /// printable ASCII without spaces; anything else is percent-encoded.
    fn blob(&self, key: &str) -> (String, String) {
        let name: String = format!("{}{key}", self.prefix)
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let url = format!("{}/{}/{name}", self.cfg.blob_endpoint, self.cfg.container.value);
        let path = url::Url::parse(&url).map(|u| u.path().to_string()).unwrap_or_default();
        (path, url)
    }

    /// The Shared Key `Authorization` header for one request.
    fn authorization(
        &self,
        verb: &str,
        len: usize,
        content_type: &str,
        ms_headers: &[(&str, &str)],
        path: &str,
    ) -> String {
        let mut headers: Vec<(&str, &str)> = ms_headers.to_vec();
        headers.sort();
        let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let length = if len == 0 { String::new() } else { len.to_string() };
        let string_to_sign = format!(
            "{verb}\n\n\n{length}\n\n{content_type}\n\n\n\n\n\n\n{canonical_headers}/{}{path}",
            self.cfg.account
        );
        let key = base64::engine::general_purpose::STANDARD
            .decode(&self.cfg.key.0)
            .unwrap_or_default();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(string_to_sign.as_bytes());
        let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        format!("SharedKey {}:{signature}", self.cfg.account)
    }

    fn send(&self, verb: &str, key: &str, body: Option<&[u8]>) -> Result<(u16, Vec<u8>, Option<String>), StoreError> {
        let (path, url) = self.blob(key);
        let date = jiff::Timestamp::now().strftime("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let mut ms: Vec<(&str, &str)> = vec![("x-ms-date", &date), ("x-ms-version", API_VERSION)];
        if body.is_some() {
            ms.push(("x-ms-blob-type", "BlockBlob"));
        }
        let content_type = if body.is_some() { "application/octet-stream" } else { "" };
        let auth = self.authorization(verb, body.map_or(0, <[u8]>::len), content_type, &ms, &path);
        let agent = self
            .agent
            .borrow_mut()
            .get_or_insert_with(|| http::agent(self.timeouts))
            .clone();
        let what = format!("Azure {verb} {}/{}{key}", self.cfg.container.value, self.prefix);
        let result = match (verb, body) {
            ("PUT", Some(b)) => {
                let mut req = agent
                    .put(&url)
                    .header("Authorization", &auth)
                    .header("Content-Type", content_type);
                for (k, v) in &ms {
                    req = req.header(*k, *v);
                }
                req.send(b)
            }
            ("DELETE", _) => {
                let mut req = agent.delete(&url).header("Authorization", &auth);
                for (k, v) in &ms {
                    req = req.header(*k, *v);
                }
                req.call()
            }
            _ => {
                let mut req = agent.get(&url).header("Authorization", &auth);
                for (k, v) in &ms {
                    req = req.header(*k, *v);
                }
                req.call()
            }
        };
        let mut resp = result.map_err(|e| http::transport_error(&what, e))?;
        let status = resp.status().as_u16();
        let code = resp
            .headers()
            .get("x-ms-error-code")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = http::body(&what, &mut resp)?;
        if status == 404 && code.as_deref().is_some_and(|c| MISSING_CONTAINER.contains(&c)) {
            return Err(StoreError::MissingBucket(format!(
                "{what}: container {:?} does not exist (cachepot does not create it)",
                self.cfg.container.value
            )));
        }
        if !(200..300).contains(&status) && status != 404 {
            let mut err = http::status_error(&what, status, &body, MISSING_CONTAINER);
            if let (Some(c), StoreError::Auth(t) | StoreError::Protocol(t)) = (&code, &mut err)
                && !t.contains(c.as_str())
            {
                t.push_str(&format!(" {c}"));
            }
            return Err(err);
        }
        Ok((status, body, code))
    }
}

impl Storage for AzureStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (status, body, _) = self.send("GET", key, None)?;
        Ok((status != 404).then_some(body))
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let (status, _, code) = self.send("PUT", key, Some(bytes))?;
        if status == 404 {
            return Err(StoreError::Protocol(format!(
                "Azure PUT {key}: HTTP 404 {}",
                code.unwrap_or_default()
            )));
        }
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.send("DELETE", key, None).map(|_| ())
    }

    fn describe(&self) -> String {
        format!(
            "azure {} container {}",
            self.cfg.blob_endpoint, self.cfg.container.value
        )
    }
}
