//! HTTP plumbing shared by the HTTP backends (S3 and, later, GCS and Azure): a blocking ureq agent
//! with the configured timeouts, and HTTP failures turned into our error kinds. URLs are never put
//! in messages: presigned ones carry credentials.

use super::StoreError;
use super::remote::Timeouts;

/// Largest body we read (an entry, or a credentials answer).
const MAX_BODY: u64 = 4 << 30;

/// An agent that never follows redirects (a redirect from a storage service is a wrong region or
/// endpoint, better reported than followed) and reports every status as a response, not an error.
pub fn agent(t: Timeouts) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_connect(Some(t.connect))
        .timeout_per_read(Some(t.io))
        .timeout_per_write(Some(t.io))
        .build()
        .into()
}

pub type Response = ureq::http::Response<ureq::Body>;

/// The whole body of a response.
pub fn body(what: &str, resp: &mut Response) -> Result<Vec<u8>, StoreError> {
    resp.body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| transport_error(what, e))
}

/// A request that got no HTTP answer: refused, timed out, broken.
pub fn transport_error(what: &str, e: ureq::Error) -> StoreError {
    let text = format!("{what}: {e}");
    match e {
        ureq::Error::Timeout(_) => StoreError::Timeout(text),
        ureq::Error::Io(ref io)
            if matches!(io.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) =>
        {
            StoreError::Timeout(text)
        }
        ureq::Error::Io(_) | ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => StoreError::Unreachable(text),
        _ => StoreError::Protocol(text),
    }
}

/// An HTTP error status as one of our kinds; `missing_bucket` are the error codes (from the body)
/// that mean the bucket or container does not exist.
pub fn status_error(what: &str, status: u16, body: &[u8], missing_bucket: &[&str]) -> StoreError {
    let code = error_code(body);
    let text = format!(
        "{what}: HTTP {status}{}",
        code.as_deref().map(|c| format!(" {c}")).unwrap_or_default()
    );
    match status {
        401 | 403 => StoreError::Auth(text),
        404 if code.as_deref().is_some_and(|c| missing_bucket.contains(&c)) => StoreError::MissingBucket(text),
        _ => StoreError::Protocol(text),
    }
}

/// The `<Code>` of an S3/Azure XML error body (GCS JSON errors have none; the status says enough).
fn error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    xml_tag(text, "Code").map(str::to_string)
}

/// The text of the first `<tag>…</tag>` in `xml` (enough for the few fields we read from the
/// services' answers; no entities other than the five XML ones appear in them).
pub fn xml_tag<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    Some(xml[start..start + len].trim())
}

/// The string value of `"field": "…"` in a flat JSON object (the credential answers we read are
/// flat objects of strings). Handles the escapes JSON allows.
pub fn json_string_field(json: &str, field: &str) -> Option<String> {
    let key = format!("\"{field}\"");
    let mut rest = &json[json.find(&key)? + key.len()..];
    rest = rest.trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields() {
        let j = r#"{ "AccessKeyId" : "AKIA\"x\u0041", "Expiration":"2030-01-01T00:00:00Z", "expires_in": 3599 }"#;
        assert_eq!(json_string_field(j, "AccessKeyId").as_deref(), Some("AKIA\"xA"));
        assert_eq!(
            json_string_field(j, "Expiration").as_deref(),
            Some("2030-01-01T00:00:00Z")
        );
        assert_eq!(json_string_field(j, "Token"), None);
        let x = "<Error><Code>NoSuchBucket</Code><Message>m</Message></Error>";
        assert_eq!(xml_tag(x, "Code"), Some("NoSuchBucket"));
        assert_eq!(
            status_error("get", 404, x.as_bytes(), &["NoSuchBucket"]).fault().id(),
            "remote_missing_bucket"
        );
        assert_eq!(status_error("get", 403, b"", &[]).fault().id(), "remote_auth");
    }
}
