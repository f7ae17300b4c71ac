//! Memcached as the remote level, over the text protocol on plain TCP (a few lines of `get`, `set`
//! and `delete`; no client crate needed). Several servers may be given; each key goes to the server
//! its hash picks, so the servers together act as one larger cache.
//!
//! A memcached item cannot exceed the server's item size limit (`-I`, 1 MiB by default), so larger
//! entries are split into chunks, each stored under its own key (and so spread across servers).
//! The stored value grammar:
//! ```text
//! value  = 0x00 entry-bytes                           ; the whole entry in one item
//!        | 0x01 count:u32le total:u64le nonce:u64le   ; an index; chunk i is at <key>.<nonce>.<i>
//! ```
//! The nonce keeps two writers of the same key from mixing their chunks; a reader that still sees
//! a mix (or a chunk evicted by the server) gets bytes that fail the entry checksum, or a miss.
//! The statistics say how many entries were split (`remote.memcached-split`) and how many were
//! skipped because the server refused even a chunk (`remote.memcached-too-large`).
//!
//! Settings: `CACHEPOT_MEMCACHED` (or `servers` in `[cache.memcached]`) = `tcp://host:port`,
//! several separated by spaces; `CACHEPOT_MEMCACHED_ITEM_SIZE` (`item_size`) = the servers' item
//! size limit (default 1M); `CACHEPOT_MEMCACHED_TTL` (`ttl`) = seconds an entry lives, 0 for ever.

use super::remote::{Settings, Timeouts};
use super::{Storage, StoreError};
use crate::setting::{ConfigError, Setting, Source, parse_size};
use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};

/// The keys of this backend's `[cache.memcached]` table.
pub const KEYS: &[&str] = &["servers", "item_size", "ttl"];

#[derive(Debug, Clone)]
pub struct MemcachedConfig {
    /// `host:port` of each server, in the configured order (the order picks the server of a key).
    pub servers: Setting<Vec<String>>,
    pub item_size: Setting<u64>,
    pub ttl: Setting<u64>,
}

/// Room left in each item for memcached's own item header and the key.
const ITEM_OVERHEAD: u64 = 1024;
const THIRTY_DAYS: u64 = 30 * 24 * 3600;
/// A value larger than this in a reply is not ours (and not worth allocating for).
const MAX_VALUE: usize = 1 << 30;

impl MemcachedConfig {
    pub fn load(s: &Settings) -> Result<Option<MemcachedConfig>, ConfigError> {
        s.check_keys(KEYS)?;
        let Some(list) = s.string("servers", "CACHEPOT_MEMCACHED")? else {
            return Ok(None);
        };
        let accepted = "accepted: tcp://host:port, several separated by spaces";
        let mut servers = Vec::new();
        for item in list.value.split_whitespace() {
            let addr = item.strip_prefix("tcp://").unwrap_or(item).trim_end_matches('/');
            let port_ok = addr
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !port_ok {
                return Err(ConfigError(format!(
                    "memcached server {item:?} ({}) is not valid; {accepted}",
                    list.source
                )));
            }
            servers.push(addr.to_string());
        }
        if servers.is_empty() {
            return Err(ConfigError(format!(
                "no memcached server given ({}); {accepted}",
                list.source
            )));
        }
        let item_size = match s.string("item_size", "CACHEPOT_MEMCACHED_ITEM_SIZE")? {
            None => Setting {
                value: 1 << 20,
                source: Source::Default,
            },
            Some(v) => {
                let size = parse_size(&v.value)
                    .ok()
                    .filter(|n| *n > 2 * ITEM_OVERHEAD)
                    .ok_or_else(|| {
                        ConfigError(format!(
                            "memcached item size {:?} ({}) is not valid; accepted: a size over 2K such as \"1M\"",
                            v.value, v.source
                        ))
                    })?;
                Setting {
                    value: size,
                    source: v.source,
                }
            }
        };
        let ttl = s
            .u64("ttl", "CACHEPOT_MEMCACHED_TTL", "a number of seconds (0: no expiry)")?
            .unwrap_or(Setting {
                value: 0,
                source: Source::Default,
            });
        Ok(Some(MemcachedConfig {
            servers: Setting {
                value: servers,
                source: list.source,
            },
            item_size,
            ttl,
        }))
    }

    pub fn show(&self) -> Vec<(&'static str, String, String)> {
        vec![
            (
                "memcached_servers",
                self.servers.value.join(" "),
                self.servers.source.to_string(),
            ),
            (
                "memcached_item_size",
                self.item_size.value.to_string(),
                self.item_size.source.to_string(),
            ),
            ("memcached_ttl", self.ttl.value.to_string(), self.ttl.source.to_string()),
        ]
    }
}

pub struct MemcachedStore {
    cfg: MemcachedConfig,
    prefix: String,
    timeouts: Timeouts,
    /// One connection per server, made on first use; dropped after any error.
    conns: RefCell<Vec<Option<BufReader<TcpStream>>>>,
    counters: RefCell<Vec<&'static str>>,
}

enum Stored {
    Yes,
    TooLarge,
}

impl MemcachedStore {
    pub fn new(cfg: MemcachedConfig, prefix: String, timeouts: Timeouts) -> MemcachedStore {
        let n = cfg.servers.value.len();
        MemcachedStore {
            cfg,
            prefix,
            timeouts,
            conns: RefCell::new((0..n).map(|_| None).collect()),
            counters: RefCell::new(Vec::new()),
        }
    }

    fn server_of(&self, key: &str) -> usize {
        (xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % self.cfg.servers.value.len() as u64) as usize
    }

    fn connect(&self, server: usize) -> Result<BufReader<TcpStream>, StoreError> {
        let addr = &self.cfg.servers.value[server];
        let addrs = addr
            .to_socket_addrs()
            .map_err(|e| StoreError::Unreachable(format!("memcached {addr}: {e}")))?;
        let mut last = StoreError::Unreachable(format!("memcached {addr}: no address"));
        for a in addrs {
            match TcpStream::connect_timeout(&a, self.timeouts.connect) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    s.set_read_timeout(Some(self.timeouts.io))
                        .map_err(|e| io_err(addr, e))?;
                    s.set_write_timeout(Some(self.timeouts.io))
                        .map_err(|e| io_err(addr, e))?;
                    return Ok(BufReader::new(s));
                }
                Err(e) => last = io_err(addr, e),
            }
        }
        Err(last)
    }

    /// Run one exchange with the server of `key`; the connection is dropped after an error, since
    /// a half-read reply would confuse the next exchange.
    fn exchange<T>(
        &self,
        key: &str,
        f: impl FnOnce(&mut BufReader<TcpStream>, &str) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let server = self.server_of(key);
        let mut conns = self.conns.borrow_mut();
        if conns[server].is_none() {
            conns[server] = Some(self.connect(server)?);
        }
        let addr = &self.cfg.servers.value[server];
        let result = f(conns[server].as_mut().expect("connected above"), addr);
        if result.is_err() {
            conns[server] = None;
        }
        result
    }

    fn get_item(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.exchange(key, |c, addr| {
            c.get_mut()
                .write_all(format!("get {key}\r\n").as_bytes())
                .map_err(|e| io_err(addr, e))?;
            let line = read_line(c, addr)?;
            if line == "END" {
                return Ok(None);
            }
            let len = match line.strip_prefix("VALUE ").map(|r| r.split(' ').collect::<Vec<_>>()) {
                Some(f) if f.len() >= 3 && f[0] == key => f[2].parse::<usize>().ok().filter(|n| *n <= MAX_VALUE),
                _ => None,
            }
            .ok_or_else(|| StoreError::Protocol(format!("memcached {addr}: unexpected reply {line:?}")))?;
            let mut data = vec![0; len + 2];
            c.read_exact(&mut data).map_err(|e| io_err(addr, e))?;
            if !data.ends_with(b"\r\n") {
                return Err(StoreError::Protocol(format!("memcached {addr}: value not terminated")));
            }
            data.truncate(len);
            let end = read_line(c, addr)?;
            if end != "END" {
                return Err(StoreError::Protocol(format!(
                    "memcached {addr}: unexpected reply {end:?}"
                )));
            }
            Ok(Some(data))
        })
    }

    fn set_item(&self, key: &str, parts: &[&[u8]]) -> Result<Stored, StoreError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let ttl = self.cfg.ttl.value;
        // memcached reads an expiry over 30 days as an absolute Unix time.
        let exptime = if ttl > THIRTY_DAYS { unix_now() + ttl } else { ttl };
        self.exchange(key, |c, addr| {
            let s = c.get_mut();
            let mut msg = format!("set {key} 0 {exptime} {len}\r\n").into_bytes();
            msg.reserve(len + 2);
            for p in parts {
                msg.extend_from_slice(p);
            }
            msg.extend_from_slice(b"\r\n");
            s.write_all(&msg).map_err(|e| io_err(addr, e))?;
            let line = read_line(c, addr)?;
            match line.as_str() {
                "STORED" => Ok(Stored::Yes),
                l if l.starts_with("SERVER_ERROR object too large") => Ok(Stored::TooLarge),
                l => Err(StoreError::Protocol(format!("memcached {addr}: set answered {l:?}"))),
            }
        })
    }

    fn delete_item(&self, key: &str) -> Result<(), StoreError> {
        self.exchange(key, |c, addr| {
            c.get_mut()
                .write_all(format!("delete {key}\r\n").as_bytes())
                .map_err(|e| io_err(addr, e))?;
            match read_line(c, addr)?.as_str() {
                "DELETED" | "NOT_FOUND" => Ok(()),
                l => Err(StoreError::Protocol(format!("memcached {addr}: delete answered {l:?}"))),
            }
        })
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn chunk_payload(&self) -> usize {
        (self.cfg.item_size.value - ITEM_OVERHEAD) as usize
    }
}

impl Storage for MemcachedStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.full_key(key);
        let Some(value) = self.get_item(&key)? else {
            return Ok(None);
        };
        match value.first() {
            Some(0) => Ok(Some(value[1..].to_vec())),
            Some(1) if value.len() == 21 => {
                let count = u32::from_le_bytes(value[1..5].try_into().expect("4 bytes"));
                let total = u64::from_le_bytes(value[5..13].try_into().expect("8 bytes")) as usize;
                let nonce = u64::from_le_bytes(value[13..21].try_into().expect("8 bytes"));
                if total > MAX_VALUE {
                    return Err(StoreError::Protocol(format!("{key}: chunk index too large")));
                }
                let mut entry = Vec::with_capacity(total);
                for i in 0..count {
                    match self.get_item(&format!("{key}.{nonce:016x}.{i}"))? {
                        Some(chunk) => entry.extend_from_slice(&chunk),
                        // The server evicted a chunk: the entry is gone, as on a miss.
                        None => return Ok(None),
                    }
                }
                Ok(Some(entry))
            }
            // Not written by us (or damaged): hand it on; the entry check rejects it and the
            // caller removes it.
            _ => Ok(Some(value)),
        }
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let key = self.full_key(key);
        let payload = self.chunk_payload();
        if bytes.len() < payload {
            if let Stored::TooLarge = self.set_item(&key, &[&[0], bytes])? {
                self.counters.borrow_mut().push("remote.memcached-too-large");
            }
            return Ok(());
        }
        let nonce = xxhash_rust::xxh3::xxh3_64(
            format!("{key} {} {:?}", std::process::id(), std::time::SystemTime::now()).as_bytes(),
        );
        let chunks: Vec<&[u8]> = bytes.chunks(payload).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            if let Stored::TooLarge = self.set_item(&format!("{key}.{nonce:016x}.{i}"), &[chunk])? {
                log::debug!(target: "memcached", "{key}: the server refused a {} byte chunk; not stored", chunk.len());
                self.counters.borrow_mut().push("remote.memcached-too-large");
                return Ok(());
            }
        }
        let mut index = vec![1u8];
        index.extend_from_slice(&(chunks.len() as u32).to_le_bytes());
        index.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        index.extend_from_slice(&nonce.to_le_bytes());
        self.set_item(&key, &[&index])?;
        self.counters.borrow_mut().push("remote.memcached-split");
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        // Chunks of a removed index are left to expire or be evicted: nothing points at them.
        self.delete_item(&self.full_key(key))
    }

    fn describe(&self) -> String {
        format!("memcached {}", self.cfg.servers.value.join(" "))
    }

    fn take_counters(&self) -> Vec<&'static str> {
        std::mem::take(&mut self.counters.borrow_mut())
    }
}

fn read_line(c: &mut BufReader<TcpStream>, addr: &str) -> Result<String, StoreError> {
    let mut line = String::new();
    let n = c.read_line(&mut line).map_err(|e| io_err(addr, e))?;
    if n == 0 {
        return Err(StoreError::Unreachable(format!("memcached {addr}: connection closed")));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn io_err(addr: &str, e: std::io::Error) -> StoreError {
    use std::io::ErrorKind::*;
    let text = format!("memcached {addr}: {e}");
    match e.kind() {
        TimedOut | WouldBlock => StoreError::Timeout(text),
        _ => StoreError::Unreachable(text),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}
