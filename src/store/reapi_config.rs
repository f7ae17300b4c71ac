//! The REAPI backend's settings (see `reapi.rs` for the store): the endpoint URL, instance name,
//! TLS files, headers (secrets), and the remote-execution switches, from `[cache.reapi]` and the
//! environment, checked when the configuration is read.
//!
//! Settings (environment, else `[cache.reapi]`):
//! - `CACHEPOT_REAPI` (`url`): `grpc://host[:port]` or `grpcs://host[:port]` (TLS); selects the backend;
//! - `CACHEPOT_REAPI_INSTANCE` (`instance`): the instance name (default empty);
//! - `CACHEPOT_REAPI_CA` (`ca_file`): PEM file of the CA(s) that sign the server's certificate
//!   (instead of the system's roots);
//! - `CACHEPOT_REAPI_CLIENT_CERT` + `CACHEPOT_REAPI_CLIENT_KEY` (`client_cert`, `client_key`): PEM
//!   client certificate and key for mutual TLS;
//! - `CACHEPOT_REAPI_HEADERS` (`headers`): `name=value` pairs separated by newlines or commas, sent
//!   with every call (`authorization=Bearer …`, `x-buildbuddy-api-key=…`); the values are secrets;
//! - `CACHEPOT_REMOTE_EXECUTION` (`remote_execution`): compile misses on the engine (remote_exec.rs);
//! - `CACHEPOT_REMOTE_EXECUTION_TIMEOUT` (`execution_timeout`): the longest a remote compile may take;
//! - `CACHEPOT_REAPI_PLATFORM` (`platform`): more platform properties of remote compiles;
//! - `CACHEPOT_REMOTE_TOOLCHAIN` (`toolchain`): `worker` (the workers have the compiler, the default)
//!   or `upload` (gcc's programs go into the CAS and run from the input root: remote_exec.rs).

use super::remote::{Secret, Settings};
use crate::setting::{ConfigError, Setting, Source};
use std::path::Path;
use std::time::Duration;

/// The keys of this backend's `[cache.reapi]` table.
pub const KEYS: &[&str] = &[
    "url",
    "instance",
    "ca_file",
    "client_cert",
    "client_key",
    "headers",
    "remote_execution",
    "execution_timeout",
    "platform",
    "toolchain",
];

/// How long a remote compile may take, queueing included, before it is given up and run locally.
pub const DEFAULT_EXECUTION_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct ReapiConfig {
    /// As given (`grpc://…` / `grpcs://…`); holds no secret.
    pub url: Setting<String>,
    pub instance: Setting<String>,
    pub ca_file: Option<Setting<String>>,
    pub client_cert: Option<Setting<String>>,
    pub client_key: Option<Setting<String>>,
    /// (lowercase name, value); the values never printed.
    pub headers: Vec<(String, Secret)>,
    pub headers_source: Source,
    /// Compile misses on the engine (remote_exec.rs).
    pub remote_execution: Setting<bool>,
    pub execution_timeout: Setting<Duration>,
    /// Extra platform properties of every remote compile (worker pool, container image).
    pub platform: Setting<Vec<(String, String)>>,
    /// Upload the compiler's programs into the CAS and run them from the input root (gcc).
    pub toolchain_upload: Setting<bool>,
}

impl ReapiConfig {
    pub fn load(s: &Settings) -> Result<Option<ReapiConfig>, ConfigError> {
        s.check_keys(KEYS)?;
        let remote_execution = s.bool("remote_execution", "CACHEPOT_REMOTE_EXECUTION")?;
        let Some(url) = s.string("url", "CACHEPOT_REAPI")? else {
            if let Some(r) = remote_execution.filter(|r| r.value) {
                return Err(ConfigError(format!(
                    "remote execution is on ({}) but no REAPI endpoint is set; accepted: CACHEPOT_REAPI=grpc://host:port (or [cache.reapi] url) with it",
                    r.source
                )));
            }
            return Ok(None);
        };
        if http_uri(&url.value).is_none() {
            return Err(ConfigError(format!(
                "REAPI URL {:?} ({}) is not valid; accepted: grpc://host[:port] or grpcs://host[:port] (TLS)",
                url.value, url.source
            )));
        }
        let instance = s.string("instance", "CACHEPOT_REAPI_INSTANCE")?.unwrap_or(Setting {
            value: String::new(),
            source: Source::Default,
        });
        let file = |key: &str, var: &'static str| -> Result<Option<Setting<String>>, ConfigError> {
            let Some(mut f) = s.string(key, var)? else {
                return Ok(None);
            };
            // A path in the config file is relative to the file, as the signing key's is.
            if let (Source::File(conf), false) = (&f.source, Path::new(&f.value).is_absolute())
                && let Some(dir) = conf.parent()
            {
                f.value = dir.join(&f.value).display().to_string();
            }
            if !Path::new(&f.value).is_file() {
                return Err(ConfigError(format!(
                    "{} ({}): no such file; accepted: a PEM file",
                    f.value, f.source
                )));
            }
            Ok(Some(f))
        };
        let ca_file = file("ca_file", "CACHEPOT_REAPI_CA")?;
        let client_cert = file("client_cert", "CACHEPOT_REAPI_CLIENT_CERT")?;
        let client_key = file("client_key", "CACHEPOT_REAPI_CLIENT_KEY")?;
        if client_cert.is_some() != client_key.is_some() {
            return Err(ConfigError(
                "a REAPI client certificate needs its key and a key its certificate: set both CACHEPOT_REAPI_CLIENT_CERT and CACHEPOT_REAPI_CLIENT_KEY (client_cert and client_key)".into(),
            ));
        }
        let tls = url.value.starts_with("grpcs://");
        if !tls && (ca_file.is_some() || client_cert.is_some()) {
            return Err(ConfigError(format!(
                "REAPI URL {} ({}) is plain grpc:// but a CA or client certificate is set; accepted: grpcs:// for TLS",
                url.value, url.source
            )));
        }
        let (headers, headers_source) = match s.string("headers", "CACHEPOT_REAPI_HEADERS")? {
            None => (Vec::new(), Source::Default),
            Some(h) => (parse_headers(&h.value, &h.source)?, h.source),
        };
        let platform = match s.string("platform", "CACHEPOT_REAPI_PLATFORM")? {
            None => Setting {
                value: Vec::new(),
                source: Source::Default,
            },
            Some(p) => Setting {
                value: parse_platform(&p.value).ok_or_else(|| {
                    ConfigError(format!(
                        "REAPI platform {:?} ({}) is not valid; accepted: name=value pairs separated by commas (e.g. OSFamily=linux,container-image=docker://gcc:12)",
                        p.value, p.source
                    ))
                })?,
                source: p.source,
            },
        };
        let toolchain_upload = match s.string("toolchain", "CACHEPOT_REMOTE_TOOLCHAIN")? {
            None => Setting {
                value: false,
                source: Source::Default,
            },
            Some(t) => Setting {
                value: match t.value.trim() {
                    "worker" => false,
                    "upload" => true,
                    _ => {
                        return Err(ConfigError(format!(
                            "remote toolchain {:?} ({}) is not valid; accepted: worker (the workers have the compiler) or upload (gcc's programs go to the CAS)",
                            t.value, t.source
                        )));
                    }
                },
                source: t.source,
            },
        };
        Ok(Some(ReapiConfig {
            url,
            instance,
            ca_file,
            client_cert,
            client_key,
            headers,
            headers_source,
            remote_execution: remote_execution.unwrap_or(Setting {
                value: false,
                source: Source::Default,
            }),
            execution_timeout: s
                .duration("execution_timeout", "CACHEPOT_REMOTE_EXECUTION_TIMEOUT")?
                .unwrap_or(Setting {
                    value: DEFAULT_EXECUTION_TIMEOUT,
                    source: Source::Default,
                }),
            platform,
            toolchain_upload,
        }))
    }

    pub fn show(&self) -> Vec<(&'static str, String, String)> {
        let opt = |s: &Option<Setting<String>>| match s {
            Some(s) => (s.value.clone(), s.source.to_string()),
            None => ("none".to_string(), "default".to_string()),
        };
        let (ca, ca_src) = opt(&self.ca_file);
        let (cert, cert_src) = opt(&self.client_cert);
        let headers: Vec<String> = self.headers.iter().map(|(n, v)| format!("{n}={v}")).collect();
        vec![
            ("reapi_url", self.url.value.clone(), self.url.source.to_string()),
            (
                "reapi_instance",
                format!("{:?}", self.instance.value),
                self.instance.source.to_string(),
            ),
            ("reapi_ca_file", ca, ca_src),
            ("reapi_client_cert", cert, cert_src),
            ("reapi_headers", headers.join(", "), self.headers_source.to_string()),
            (
                "remote_execution",
                self.remote_execution.value.to_string(),
                self.remote_execution.source.to_string(),
            ),
            (
                "remote_execution_timeout",
                super::remote::format_duration(self.execution_timeout.value),
                self.execution_timeout.source.to_string(),
            ),
            (
                "reapi_platform",
                self.platform
                    .value
                    .iter()
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                self.platform.source.to_string(),
            ),
            (
                "remote_toolchain",
                if self.toolchain_upload.value {
                    "upload"
                } else {
                    "worker"
                }
                .to_string(),
                self.toolchain_upload.source.to_string(),
            ),
        ]
    }
}

/// `grpc://h:p` → `http://h:p`, `grpcs://h` → `https://h:443`; `None` when not such a URL.
pub(super) fn http_uri(url: &str) -> Option<String> {
    let (scheme, default_port) = if url.starts_with("grpcs://") {
        ("https", 443)
    } else if url.starts_with("grpc://") {
        ("http", 80)
    } else {
        return None;
    };
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str().filter(|h| !h.is_empty())?;
    let path_ok = matches!(parsed.path(), "" | "/");
    if !path_ok || parsed.query().is_some() || !parsed.username().is_empty() || parsed.password().is_some() {
        return None;
    }
    let port = parsed.port().unwrap_or(default_port);
    Some(format!("{scheme}://{host}:{port}"))
}

/// `name=value` (or `name: value`) pairs, separated by newlines or commas. A bad pair is named by
/// its header name only: the value may be a token.
fn parse_headers(text: &str, source: &Source) -> Result<Vec<(String, Secret)>, ConfigError> {
    let accepted = "accepted: name=value pairs separated by commas or newlines, names of letters, digits and -_. (not ending in -bin), values of printable ASCII";
    let mut out = Vec::new();
    for pair in text.split([',', '\n']).map(str::trim).filter(|p| !p.is_empty()) {
        let split = pair.find(['=', ':']);
        let (name, value) = match split {
            Some(i) => (pair[..i].trim().to_ascii_lowercase(), pair[i + 1..].trim()),
            None => (pair.to_ascii_lowercase(), ""),
        };
        let name_ok = !name.is_empty()
            && !name.ends_with("-bin")
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        let value_ok = split.is_some() && value.bytes().all(|b| (0x20..0x7f).contains(&b));
        if !name_ok || !value_ok {
            // The name is shown, never the value (nor a pair without `=`: it may be a bare token).
            let shown = if split.is_some() { name.as_str() } else { "without `=`" };
            return Err(ConfigError(format!(
                "REAPI header {shown} ({source}) is not valid; {accepted}"
            )));
        }
        out.push((name, Secret(value.to_string())));
    }
    Ok(out)
}

/// `name=value,…` platform properties; `None` when a pair is malformed.
fn parse_platform(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (n, v) = pair.split_once('=')?;
        let (n, v) = (n.trim(), v.trim());
        if n.is_empty() || !n.bytes().chain(v.bytes()).all(|b| b.is_ascii_graphic()) {
            return None;
        }
        out.push((n.to_string(), v.to_string()));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            http_uri("grpc://127.0.0.1:8980").as_deref(),
            Some("http://127.0.0.1:8980")
        );
        assert_eq!(
            http_uri("grpcs://remote.buildbuddy.io").as_deref(),
            Some("https://remote.buildbuddy.io:443")
        );
        assert_eq!(http_uri("grpcs://h:1/").as_deref(), Some("https://h:1"));
        assert_eq!(http_uri("http://h:1"), None);
        assert_eq!(http_uri("grpc://h:1/path"), None);
        assert_eq!(http_uri("grpc://user:pw@h:1"), None);
        assert_eq!(http_uri("grpc://"), None);
    }

    #[test]
    fn headers() {
        let src = Source::Env("CACHEPOT_REAPI_HEADERS");
        let h = parse_headers("Authorization=Bearer abc.def, x-buildbuddy-api-key: k1\n", &src).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].0, "authorization");
        assert_eq!(h[0].1.0, "Bearer abc.def");
        assert_eq!(h[1].0, "x-buildbuddy-api-key");
        assert_eq!(h[1].1.0, "k1");
        let e = parse_headers("token-bin=secret", &src).unwrap_err();
        assert!(e.0.contains("token-bin") && !e.0.contains("secret"), "{e}");
        let e = parse_headers("justatoken", &src).unwrap_err();
        assert!(
            e.0.starts_with("REAPI header without `=`") && !e.0.contains("justatoken"),
            "{e}"
        );
        let e = parse_headers("bad name=secret", &src).unwrap_err();
        assert!(!e.0.contains("secret"), "{e}");
    }
}
