//! Redis as the remote level: one key per entry (`<prefix><key>`), the entry bytes as the value,
//! an optional expiry. Uses the redis crate's blocking connection with the configured connect and
//! read/write timeouts. In preprocessor mode (or with no local level) a thread started when the
//! store is opened makes it, so that connecting (a few round trips) overlaps the preprocessor run;
//! otherwise the first request makes it. TLS (`rediss://`) goes through rustls, verifying the
//! server against the system roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` add a private CA) unless the
//! URL ends in `#insecure`.
//!
//! Settings: `CACHEPOT_REDIS` (or `url` in `[cache.redis]`) =
//! `redis://[[user]:password@]host[:port][/db]` or `rediss://…[#insecure]`; `CACHEPOT_REDIS_TTL`
//! (or `ttl`) = seconds an entry lives after it is written, 0 (the default) for no expiry.

use super::remote::{Secret, Settings, Timeouts, mask_url};
use super::{Storage, StoreError};
use crate::setting::{ConfigError, Setting, Source};
use redis::IntoConnectionInfo;
use std::cell::RefCell;

/// The keys of this backend's `[cache.redis]` table.
pub const KEYS: &[&str] = &["url", "ttl"];

#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: Secret,
    pub url_source: Source,
    pub ttl: Setting<u64>,
}

impl RedisConfig {
    pub fn load(s: &Settings) -> Result<Option<RedisConfig>, ConfigError> {
        s.check_keys(KEYS)?;
        let Some(url) = s.string("url", "CACHEPOT_REDIS")? else {
            return Ok(None);
        };
        let accepted = "accepted: redis://[[user]:password@]host[:port][/db], or rediss://… for TLS (ending in #insecure to accept any certificate)";
        let ok_scheme = url.value.starts_with("redis://") || url.value.starts_with("rediss://");
        if !ok_scheme || url.value.as_str().into_connection_info().is_err() {
            return Err(ConfigError(format!(
                "Redis URL {} ({}) is not valid; {accepted}",
                mask_url(&url.value),
                url.source
            )));
        }
        let ttl = s
            .u64("ttl", "CACHEPOT_REDIS_TTL", "a number of seconds (0: no expiry)")?
            .unwrap_or(Setting {
                value: 0,
                source: Source::Default,
            });
        Ok(Some(RedisConfig {
            url: Secret(url.value),
            url_source: url.source,
            ttl,
        }))
    }

    pub fn show(&self) -> Vec<(&'static str, String, String)> {
        vec![
            ("redis_url", mask_url(&self.url.0), self.url_source.to_string()),
            ("redis_ttl", self.ttl.value.to_string(), self.ttl.source.to_string()),
        ]
    }
}

pub struct RedisStore {
    cfg: RedisConfig,
    prefix: String,
    timeouts: Timeouts,
    conn: RefCell<Conn>,
}

enum Conn {
    None,
    /// Being made by the thread started in `prepare`.
    Pending(std::thread::JoinHandle<Result<redis::Connection, StoreError>>),
    Ready(redis::Connection),
}

impl RedisStore {
    pub fn new(cfg: RedisConfig, prefix: String, timeouts: Timeouts) -> RedisStore {
        RedisStore {
            cfg,
            prefix,
            timeouts,
            conn: RefCell::new(Conn::None),
        }
    }

    fn connect(url: &str, timeouts: Timeouts) -> Result<redis::Connection, StoreError> {
        if url.starts_with("rediss://") && url.ends_with("#insecure") {
            log::warn!(target: "redis", "{}: accepting any server certificate (#insecure)", mask_url(url));
        }
        let client = redis::Client::open(url).map_err(map_err)?;
        let conn = client.get_connection_with_timeout(timeouts.connect).map_err(map_err)?;
        conn.set_read_timeout(Some(timeouts.io)).map_err(map_err)?;
        conn.set_write_timeout(Some(timeouts.io)).map_err(map_err)?;
        log::debug!(target: "redis", "connected to {}", mask_url(url));
        Ok(conn)
    }

    /// Run one command on the (lazily made) connection. After an error the connection is dropped:
    /// its state is unknown (a reply may still be on its way).
    fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut slot = self.conn.borrow_mut();
        let made = match std::mem::replace(&mut *slot, Conn::None) {
            Conn::Ready(c) => Ok(c),
            Conn::Pending(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(StoreError::Protocol("the connecting thread panicked".into()))),
            Conn::None => Self::connect(&self.cfg.url.0, self.timeouts),
        };
        let mut conn = made?;
        let result = cmd.query::<T>(&mut conn);
        if result.is_ok() {
            *slot = Conn::Ready(conn);
        }
        result.map_err(map_err)
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

impl Storage for RedisStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.query(redis::cmd("GET").arg(self.full_key(key)))
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.full_key(key)).arg(bytes);
        if self.cfg.ttl.value > 0 {
            cmd.arg("EX").arg(self.cfg.ttl.value);
        }
        self.query(&cmd)
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.query::<i64>(redis::cmd("DEL").arg(self.full_key(key))).map(|_| ())
    }

    fn describe(&self) -> String {
        format!("redis {}", mask_url(&self.cfg.url.0))
    }

    fn prepare(&self) {
        let (url, timeouts) = (self.cfg.url.0.clone(), self.timeouts);
        // If the thread cannot start, the first request connects instead.
        if let Ok(thread) = std::thread::Builder::new()
            .name("redis-connect".into())
            .spawn(move || Self::connect(&url, timeouts))
        {
            *self.conn.borrow_mut() = Conn::Pending(thread);
        }
    }
}

/// A redis error as one of our kinds. The crate's messages name no password, only the failure.
fn map_err(e: redis::RedisError) -> StoreError {
    let text = e.to_string();
    if e.is_timeout() {
        StoreError::Timeout(text)
    } else if e.kind() == redis::ErrorKind::AuthenticationFailed
        || text.contains("WRONGPASS")
        || text.contains("NOAUTH")
        || text.contains("NOPERM")
    {
        StoreError::Auth(text)
    } else if text.contains("DB index is out of range") {
        StoreError::MissingBucket(text)
    } else if e.is_connection_refusal() || e.is_io_error() || e.is_connection_dropped() {
        StoreError::Unreachable(text)
    } else {
        StoreError::Protocol(text)
    }
}
