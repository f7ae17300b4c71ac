//! AWS credentials for the S3 backend, found in this order (as the AWS SDKs do):
//! 1. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
//! 2. the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`),
//!    section `AWS_PROFILE` (else `default`);
//! 3. a web-identity token (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, what CI systems' OIDC
//!    gives) exchanged at STS (`AWS_ENDPOINT_URL_STS` overrides the endpoint);
//! 4. `AWS_IAM_CREDENTIALS_URL`, answering credentials in the EC2 metadata JSON format;
//! 5. the EC2 instance metadata service (IMDSv2, then v1), unless `AWS_EC2_METADATA_DISABLED`;
//!    `AWS_EC2_METADATA_SERVICE_ENDPOINT` overrides its address;
//! 6. none: anonymous requests (reads of a public bucket; nothing is written).
//!
//! The environment is read with the rest of the configuration; files and the network are only
//! touched at the first S3 request of a call. Credentials from the network (3–5) are kept in a
//! 0600 file in the cache dir until five minutes before they expire, and "no metadata service here"
//! for ten minutes, so a compile does not pay a round trip (or a connect timeout off EC2) each time.
//!
//! Credentials file grammar (`<cache dir>/remote-aws-credentials`), one line:
//! `v1 <source id> <valid until, unix seconds> <key id> <secret> <token or ->`, or
//! `v1 <source id> <valid until> anonymous`.

use super::StoreError;
use super::http;
use super::remote::{Secret, Timeouts};
use crate::setting::EnvReader;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The AWS variables that pick the credentials, read at configuration time.
#[derive(Debug, Clone, Default)]
pub struct AwsEnv {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    pub profile: String,
    pub credentials_file: Option<PathBuf>,
    pub web_identity_token_file: Option<PathBuf>,
    pub role_arn: Option<String>,
    pub role_session_name: String,
    pub sts_endpoint: Option<String>,
    pub iam_credentials_url: Option<String>,
    pub imds_disabled: bool,
    pub imds_endpoint: String,
}

impl AwsEnv {
    pub fn load(env: EnvReader) -> AwsEnv {
        let get = |n: &str| {
            env(n)
                .filter(|v| !v.is_empty())
                .map(|v| v.to_string_lossy().into_owned())
        };
        let home = get("HOME").map(PathBuf::from);
        AwsEnv {
            access_key_id: get("AWS_ACCESS_KEY_ID"),
            secret_access_key: get("AWS_SECRET_ACCESS_KEY").map(Secret),
            session_token: get("AWS_SESSION_TOKEN").map(Secret),
            profile: get("AWS_PROFILE").unwrap_or_else(|| "default".into()),
            credentials_file: get("AWS_SHARED_CREDENTIALS_FILE")
                .map(PathBuf::from)
                .or_else(|| home.map(|h| h.join(".aws").join("credentials"))),
            web_identity_token_file: get("AWS_WEB_IDENTITY_TOKEN_FILE").map(PathBuf::from),
            role_arn: get("AWS_ROLE_ARN"),
            role_session_name: get("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "cachepot".into()),
            sts_endpoint: get("AWS_ENDPOINT_URL_STS"),
            iam_credentials_url: get("AWS_IAM_CREDENTIALS_URL"),
            imds_disabled: get("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")),
            imds_endpoint: get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
                .unwrap_or_else(|| "http://169.254.169.254".into())
                .trim_end_matches('/')
                .to_string(),
        }
    }

    /// Where the credentials will come from, for `--show-config` (no secrets).
    pub fn describe(&self) -> String {
        if self.access_key_id.is_some() && self.secret_access_key.is_some() {
            "environment (AWS_ACCESS_KEY_ID)".into()
        } else if self.web_identity_token_file.is_some() && self.role_arn.is_some() {
            format!(
                "credentials file profile {} if present, else web identity (AWS_ROLE_ARN)",
                self.profile
            )
        } else if self.iam_credentials_url.is_some() {
            format!(
                "credentials file profile {} if present, else AWS_IAM_CREDENTIALS_URL",
                self.profile
            )
        } else if self.imds_disabled {
            format!("credentials file profile {} if present, else anonymous", self.profile)
        } else {
            format!(
                "credentials file profile {} if present, else instance metadata at {}, else anonymous",
                self.profile, self.imds_endpoint
            )
        }
    }
}

/// Credentials to sign with.
#[derive(Clone)]
pub struct AwsCredentials {
    pub key_id: String,
    pub secret: String,
    pub token: Option<String>,
}

const IMDS_ABSENT_FOR: u64 = 600;
const REFRESH_BEFORE: u64 = 300;

/// Find the credentials; `Ok(None)` means anonymous. `region` picks the STS endpoint.
pub fn resolve(
    env: &AwsEnv,
    region: &str,
    timeouts: Timeouts,
    cache_dir: &Path,
) -> Result<Option<AwsCredentials>, StoreError> {
    if let (Some(key_id), Some(secret)) = (&env.access_key_id, &env.secret_access_key) {
        return Ok(Some(AwsCredentials {
            key_id: key_id.clone(),
            secret: secret.0.clone(),
            token: env.session_token.as_ref().map(|t| t.0.clone()),
        }));
    }
    if let Some(c) = from_profile(env)? {
        return Ok(Some(c));
    }
    let (source_id, fetch): (String, Box<dyn Fn() -> Result<Fetched, StoreError>>) =
        if let (Some(token_file), Some(role)) = (&env.web_identity_token_file, &env.role_arn) {
            let sts = env
                .sts_endpoint
                .clone()
                .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"));
            (
                format!("sts {sts} {role} {}", token_file.display()),
                Box::new(move || web_identity(env, &sts, token_file, role, timeouts)),
            )
        } else if let Some(url) = &env.iam_credentials_url {
            (format!("iam-url {url}"), Box::new(move || iam_url(url, timeouts)))
        } else if !env.imds_disabled {
            (
                format!("imds {}", env.imds_endpoint),
                Box::new(move || imds(&env.imds_endpoint, timeouts)),
            )
        } else {
            return Ok(None);
        };
    let id = crate::key::sha256_hex(source_id.as_bytes())[..16].to_string();
    let file = cache_dir.join("remote-aws-credentials");
    if let Some(cached) = read_cached(&file, &id) {
        return Ok(cached);
    }
    let fetched = fetch()?;
    write_cached(&file, &id, &fetched);
    Ok(fetched.creds)
}

struct Fetched {
    creds: Option<AwsCredentials>,
    valid_until: u64,
}

fn from_profile(env: &AwsEnv) -> Result<Option<AwsCredentials>, StoreError> {
    let Some(path) = &env.credentials_file else {
        return Ok(None);
    };
    let text = match crate::limits::read_text(path, crate::limits::CONFIG_FILE) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::Auth(format!("cannot read {}: {e}", path.display()))),
    };
    let mut in_section = false;
    let (mut key_id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = name.trim() == env.profile;
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => key_id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Ok(match (key_id, secret) {
        (Some(key_id), Some(secret)) => Some(AwsCredentials { key_id, secret, token }),
        _ => None,
    })
}

fn web_identity(env: &AwsEnv, sts: &str, token_file: &Path, role: &str, t: Timeouts) -> Result<Fetched, StoreError> {
    let token = crate::limits::read_text(token_file, crate::limits::CONFIG_FILE)
        .map_err(|e| StoreError::Auth(format!("cannot read web identity token {}: {e}", token_file.display())))?;
    let resp = http::agent(t)
        .get(sts)
        .query("Action", "AssumeRoleWithWebIdentity")
        .query("Version", "2011-06-15")
        .query("RoleArn", role)
        .query("RoleSessionName", &env.role_session_name)
        .query("WebIdentityToken", token.trim())
        .call();
    let body = answer("STS AssumeRoleWithWebIdentity", resp)?;
    let text = String::from_utf8_lossy(&body);
    let field = |tag| http::xml_tag(&text, tag).map(str::to_string);
    let creds = match (field("AccessKeyId"), field("SecretAccessKey")) {
        (Some(key_id), Some(secret)) => AwsCredentials {
            key_id,
            secret,
            token: field("SessionToken"),
        },
        _ => {
            return Err(StoreError::Protocol(
                "STS AssumeRoleWithWebIdentity: no credentials in the answer".into(),
            ));
        }
    };
    Ok(Fetched {
        valid_until: expiry(field("Expiration").as_deref()),
        creds: Some(creds),
    })
}

fn iam_url(url: &str, t: Timeouts) -> Result<Fetched, StoreError> {
    let body = answer("AWS_IAM_CREDENTIALS_URL", http::agent(t).get(url).call())?;
    metadata_json("AWS_IAM_CREDENTIALS_URL", &body)
}

/// The instance metadata service. Not being on EC2 is not a fault: it means anonymous.
fn imds(endpoint: &str, t: Timeouts) -> Result<Fetched, StoreError> {
    let agent = http::agent(t);
    let absent = || {
        log::debug!(target: "s3", "no instance metadata service at {endpoint}; anonymous requests");
        Ok(Fetched {
            creds: None,
            valid_until: now() + IMDS_ABSENT_FOR,
        })
    };
    // IMDSv2 session token; a service that refuses it may still answer v1 requests.
    let token = match agent
        .put(format!("{endpoint}/latest/api/token"))
        .header("X-aws-ec2-metadata-token-ttl-seconds", "21600")
        .send_empty()
    {
        Ok(mut r) if r.status().is_success() => Some(
            String::from_utf8_lossy(&http::body("IMDS token", &mut r)?)
                .trim()
                .to_string(),
        ),
        Ok(_) => None,
        Err(_) => return absent(),
    };
    let get = |path: &str| {
        let mut req = agent.get(format!("{endpoint}/latest/meta-data/iam/security-credentials/{path}"));
        if let Some(t) = &token {
            req = req.header("X-aws-ec2-metadata-token", t);
        }
        req.call()
    };
    let role = match get("") {
        Ok(mut r) if r.status().is_success() => String::from_utf8_lossy(&http::body("IMDS role", &mut r)?)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
        // Reachable, but no role attached to this instance.
        Ok(_) => return absent(),
        Err(_) => return absent(),
    };
    if role.is_empty() || role.contains('/') {
        return absent();
    }
    let body = answer("instance metadata credentials", get(&role))?;
    metadata_json("instance metadata credentials", &body)
}

fn answer(what: &str, resp: Result<http::Response, ureq::Error>) -> Result<Vec<u8>, StoreError> {
    let mut resp = resp.map_err(|e| http::transport_error(what, e))?;
    let status = resp.status().as_u16();
    let body = http::body(what, &mut resp)?;
    if !(200..300).contains(&status) {
        return Err(http::status_error(what, status, &body, &[]));
    }
    Ok(body)
}

/// `{"AccessKeyId": …, "SecretAccessKey": …, "Token": …, "Expiration": …}`.
fn metadata_json(what: &str, body: &[u8]) -> Result<Fetched, StoreError> {
    let text = String::from_utf8_lossy(body);
    let field = |f| http::json_string_field(&text, f);
    match (field("AccessKeyId"), field("SecretAccessKey")) {
        (Some(key_id), Some(secret)) => Ok(Fetched {
            valid_until: expiry(field("Expiration").as_deref()),
            creds: Some(AwsCredentials {
                key_id,
                secret,
                token: field("Token"),
            }),
        }),
        _ => Err(StoreError::Protocol(format!("{what}: no credentials in the answer"))),
    }
}

/// When to fetch again: five minutes before the expiry, or in ten minutes if none was given.
fn expiry(expiration: Option<&str>) -> u64 {
    match expiration.and_then(|e| e.parse::<jiff::Timestamp>().ok()) {
        Some(ts) => (ts.as_second().max(0) as u64).saturating_sub(REFRESH_BEFORE),
        None => now() + 600,
    }
}

fn read_cached(file: &Path, id: &str) -> Option<Option<AwsCredentials>> {
    let text = crate::limits::read_text(file, crate::limits::CONFIG_FILE).ok()?;
    let f: Vec<&str> = text.split_whitespace().collect();
    if f.len() < 4 || f[0] != "v1" || f[1] != id || f[2].parse::<u64>().ok()? <= now() {
        return None;
    }
    match &f[3..] {
        ["anonymous"] => Some(None),
        [key_id, secret, token] => Some(Some(AwsCredentials {
            key_id: key_id.to_string(),
            secret: secret.to_string(),
            token: (*token != "-").then(|| token.to_string()),
        })),
        _ => None,
    }
}

/// Keep fetched credentials for the next compiles: a 0600 file, written by temp file + rename.
fn write_cached(file: &Path, id: &str, fetched: &Fetched) {
    let line = match &fetched.creds {
        None => format!("v1 {id} {} anonymous\n", fetched.valid_until),
        Some(c) => format!(
            "v1 {id} {} {} {} {}\n",
            fetched.valid_until,
            c.key_id,
            c.secret,
            c.token.as_deref().unwrap_or("-")
        ),
    };
    if let Err(e) = super::write_private_file(file, line.as_bytes()) {
        log::debug!(target: "s3", "cannot keep credentials in {}: {e}", file.display());
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_sections() {
        let dir = std::env::temp_dir().join(format!("cachepot-awsprof-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("credentials");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = A1\naws_secret_access_key = S1\n[ci]\naws_access_key_id=A2\naws_secret_access_key=S2\naws_session_token=T2\n",
        )
        .unwrap();
        let mut env = AwsEnv {
            credentials_file: Some(file),
            profile: "ci".into(),
            ..AwsEnv::default()
        };
        let c = from_profile(&env).unwrap().unwrap();
        assert_eq!((c.key_id.as_str(), c.token.as_deref()), ("A2", Some("T2")));
        env.profile = "default".into();
        assert_eq!(from_profile(&env).unwrap().unwrap().secret, "S1");
        env.profile = "other".into();
        assert!(from_profile(&env).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cached_credentials_round_trip() {
        let dir = std::env::temp_dir().join(format!("cachepot-awscache-{}", std::process::id()));
        let file = dir.join("remote-aws-credentials");
        let fetched = Fetched {
            creds: Some(AwsCredentials {
                key_id: "K".into(),
                secret: "S".into(),
                token: None,
            }),
            valid_until: now() + 100,
        };
        write_cached(&file, "id1", &fetched);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        let c = read_cached(&file, "id1").unwrap().unwrap();
        assert_eq!((c.key_id.as_str(), c.token), ("K", None));
        assert!(read_cached(&file, "id2").is_none());
        write_cached(
            &file,
            "id1",
            &Fetched {
                creds: None,
                valid_until: now() - 1,
            },
        );
        assert!(read_cached(&file, "id1").is_none(), "expired");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
