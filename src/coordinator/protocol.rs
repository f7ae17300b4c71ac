//! The coordinator's wire protocol: small, versioned, length-prefixed messages on a Unix socket.
//! Both sides refuse anything malformed, oversized or of another version, and say why.
//!
//! Grammar (all integers big-endian):
//! ```text
//! frame    := length:u32 payload          ; 2 <= length <= MAX_FRAME
//! payload  := version:u8 kind:u8 body     ; version = VERSION
//! request  := 0x01 Acquire  body: empty   ; wait for a compile slot, held until Release or close
//!           | 0x02 Release  body: empty   ; give back the most recent slot of this connection
//!           | 0x03 Status   body: empty
//!           | 0x04 Stop     body: empty
//! reply    := 0x81 Granted  body: waited:u8 (1 when the slot was not free at once)
//!           | 0x82 Queued   body: empty   ; no slot free yet: sent at once, then every HEARTBEAT
//!           | 0x83 Status   body: lines of `<name> <decimal>\n` (unknown names are ignored)
//!           | 0x84 Stopping body: empty
//!           | 0xEE Refused  body: UTF-8 message (then the coordinator closes the connection)
//! ```
//! History: version 1 — the messages above but Queued. Version 2 — Queued, so that a client can
//! tell a coordinator that is busy (it keeps saying Queued) from one that is hung (silence), and
//! give up on the latter after a bounded wait.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

pub const VERSION: u8 = 2;
/// How often a coordinator repeats Queued to a waiting client; a client that hears nothing for a
/// few of these takes the coordinator for hung.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_millis(500);
/// The largest payload either side accepts; a status reply is a few hundred bytes.
pub const MAX_FRAME: u32 = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Acquire,
    Release,
    Status,
    Stop,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Granted { waited: bool },
    Queued,
    Status(BTreeMap<String, u64>),
    Stopping,
    Refused(String),
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    TooLarge(u32),
    TooShort,
    Version(u8),
    UnknownKind(u8),
    BadBody(&'static str),
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtocolError::TooLarge(n) => write!(f, "message of {n} bytes is larger than the limit of {MAX_FRAME}"),
            ProtocolError::TooShort => write!(f, "message shorter than its 2-byte header"),
            ProtocolError::Version(v) => write!(
                f,
                "protocol version {v} is not supported; this coordinator speaks version {VERSION} (restart it with --stop-coordinator)"
            ),
            ProtocolError::UnknownKind(k) => write!(f, "unknown message kind 0x{k:02x}"),
            ProtocolError::BadBody(what) => write!(f, "malformed {what} message"),
        }
    }
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let kind = match self {
            Request::Acquire => 0x01,
            Request::Release => 0x02,
            Request::Status => 0x03,
            Request::Stop => 0x04,
        };
        frame(kind, &[])
    }

    pub fn decode(payload: &[u8]) -> Result<Request, ProtocolError> {
        let (kind, body) = header(payload)?;
        let req = match kind {
            0x01 => Request::Acquire,
            0x02 => Request::Release,
            0x03 => Request::Status,
            0x04 => Request::Stop,
            k => return Err(ProtocolError::UnknownKind(k)),
        };
        if !body.is_empty() {
            return Err(ProtocolError::BadBody("request"));
        }
        Ok(req)
    }
}

impl Reply {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Reply::Granted { waited } => frame(0x81, &[*waited as u8]),
            Reply::Queued => frame(0x82, &[]),
            Reply::Status(figures) => {
                let mut body = String::new();
                for (k, v) in figures {
                    body.push_str(&format!("{k} {v}\n"));
                }
                frame(0x83, body.as_bytes())
            }
            Reply::Stopping => frame(0x84, &[]),
            Reply::Refused(msg) => {
                let max = MAX_FRAME as usize - 2;
                let mut end = msg.len().min(max);
                while !msg.is_char_boundary(end) {
                    end -= 1;
                }
                frame(0xEE, &msg.as_bytes()[..end])
            }
        }
    }

    pub fn decode(payload: &[u8]) -> Result<Reply, ProtocolError> {
        let (kind, body) = header(payload)?;
        match kind {
            0x81 => match body {
                [w] => Ok(Reply::Granted { waited: *w != 0 }),
                _ => Err(ProtocolError::BadBody("granted")),
            },
            0x82 if body.is_empty() => Ok(Reply::Queued),
            0x82 => Err(ProtocolError::BadBody("queued")),
            0x83 => {
                let text = std::str::from_utf8(body).map_err(|_| ProtocolError::BadBody("status"))?;
                let mut figures = BTreeMap::new();
                for line in text.lines() {
                    if let Some((k, v)) = line.split_once(' ')
                        && let Ok(v) = v.parse()
                    {
                        figures.insert(k.to_string(), v);
                    }
                }
                Ok(Reply::Status(figures))
            }
            0x84 => Ok(Reply::Stopping),
            0xEE => Ok(Reply::Refused(String::from_utf8_lossy(body).into_owned())),
            k => Err(ProtocolError::UnknownKind(k)),
        }
    }
}

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let len = (2 + body.len()) as u32;
    let mut out = Vec::with_capacity(4 + len as usize);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(body);
    out
}

fn header(payload: &[u8]) -> Result<(u8, &[u8]), ProtocolError> {
    match payload {
        [v, _, ..] if *v != VERSION => Err(ProtocolError::Version(*v)),
        [_, kind, body @ ..] => Ok((*kind, body)),
        _ => Err(ProtocolError::TooShort),
    }
}

/// Check a frame's length prefix before reading its payload.
pub fn check_length(prefix: [u8; 4]) -> Result<usize, ProtocolError> {
    let len = u32::from_be_bytes(prefix);
    if len > MAX_FRAME {
        return Err(ProtocolError::TooLarge(len));
    }
    if len < 2 {
        return Err(ProtocolError::TooShort);
    }
    Ok(len as usize)
}

/// Blocking read of one reply (the client side).
pub fn read_reply(r: &mut impl Read) -> io::Result<Reply> {
    let mut prefix = [0u8; 4];
    r.read_exact(&mut prefix)?;
    let len = check_length(prefix).map_err(invalid)?;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Reply::decode(&payload).map_err(invalid)
}

/// Blocking write of one request (the client side).
pub fn write_request(w: &mut impl Write, req: &Request) -> io::Result<()> {
    w.write_all(&req.encode())
}

fn invalid(e: ProtocolError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(frame: &[u8]) -> &[u8] {
        let len = check_length(frame[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, frame.len() - 4);
        &frame[4..]
    }

    #[test]
    fn round_trips() {
        for r in [Request::Acquire, Request::Release, Request::Status, Request::Stop] {
            assert_eq!(Request::decode(payload(&r.encode())), Ok(r));
        }
        let mut figures = BTreeMap::new();
        figures.insert("slots".to_string(), 4);
        figures.insert("granted".to_string(), 10_000);
        for r in [
            Reply::Granted { waited: true },
            Reply::Granted { waited: false },
            Reply::Queued,
            Reply::Status(figures),
            Reply::Stopping,
            Reply::Refused("no".into()),
        ] {
            assert_eq!(Reply::decode(payload(&r.encode())), Ok(r));
        }
    }

    #[test]
    fn refuses_bad_frames() {
        assert_eq!(
            check_length([0xff, 0xff, 0xff, 0xff]),
            Err(ProtocolError::TooLarge(u32::MAX))
        );
        assert_eq!(check_length([0, 0, 0, 1]), Err(ProtocolError::TooShort));
        assert_eq!(Request::decode(&[1, 1]), Err(ProtocolError::Version(1)));
        assert_eq!(Request::decode(&[VERSION, 0x77]), Err(ProtocolError::UnknownKind(0x77)));
        assert_eq!(
            Request::decode(&[VERSION, 0x01, 0]),
            Err(ProtocolError::BadBody("request"))
        );
        assert_eq!(Reply::decode(&[VERSION, 0x81]), Err(ProtocolError::BadBody("granted")));
        let long = "é".repeat(5000);
        assert!(Reply::Refused(long).encode().len() <= 4 + MAX_FRAME as usize);
    }
}
