//! Trusted caches: Ed25519 signatures that bind every stored object to what it is for, so that a
//! shared cache can be written by a few (CI, holding a private key) and read by everyone (holding only
//! public keys), and nothing else is ever used. This decides what a reader *accepts*; who may *write*
//! is still up to the store's credentials, and TLS still protects the wire.
//!
//! What is signed is the binding, never stored, rebuilt by the reader from what it asked for, so a
//! valid object cannot be replayed under another key, another kind or another namespace:
//! ```text
//! binding   := "cachepot signed object" 0x00 version:u8 ns_len:u32 namespace kind:u8
//!              key_len:u32 key digest:[u8;32]
//! namespace := "remote:" prefix   (the remote key prefix, CACHEPOT_REMOTE_PREFIX)
//!            | "local"            (the local disk level)
//! kind      := 1 (a result entry) | 2 (a manifest: its key ends in ".manifest")
//! digest    := SHA-256 of the payload
//! ```
//! Stored bytes (integers little-endian):
//! ```text
//! envelope  := magic:"CPOTSIG" version:u8 key_id:[u8;8] signature:[u8;64] payload
//! key_id    := the first 8 bytes of SHA-256(public key): which key to verify with
//! signature := Ed25519 over `binding`
//! payload   := the entry or manifest bytes (entry.rs, manifest.rs), unchanged
//! ```
//! Version history: 1: first version.
//!
//! Key texts: a public key is one line, `cachepot-ed25519:<key id, 16 hex>:<base64 of 32 bytes>`;
//! a private key file (`cachepot --new-signing-key FILE`, mode 0600) is
//! ```text
//! key-file  := "cachepot-ed25519-private-key v1\n" "public " public-key "\n" "secret " base64(pkcs8) "\n"
//! ```
//!
//! Trust is on when trusted keys or a signing key are configured. Then every object read from the
//! remote must carry a valid signature by a trusted key (a writer trusts its own) *before* it is used
//! or copied to the local disk, and the local disk holds objects signed by a key of its own
//! (`<cache dir>/local-signing-key`, 0600, made on first use, trusted for that directory only), so a
//! file dropped there by anything else is rejected too. A rejected object is a miss, counted as
//! `rejected_signature` and logged once per call. Trust off: envelopes are taken off unverified, so
//! caches that sign can still serve readers that do not check.

use crate::setting::{ConfigError, EnvReader, Setting, Source, absolute, expand_tilde};
use crate::store::{Storage, StoreError};
use base64::Engine as _;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use std::cell::{OnceCell, RefCell};
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub const MAGIC: &[u8; 7] = b"CPOTSIG";
pub const ENVELOPE_VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const SIGNATURE_LEN: usize = 64;
pub const HEADER_LEN: usize = MAGIC.len() + 1 + KEY_ID_LEN + SIGNATURE_LEN;
const BINDING_LABEL: &[u8] = b"cachepot signed object\0";
const PUBLIC_PREFIX: &str = "cachepot-ed25519:";
const KEY_FILE_HEADER: &str = "cachepot-ed25519-private-key v1";
/// The per-cache-dir key's file name, inside the cache dir.
pub const LOCAL_KEY_FILE: &str = "local-signing-key";
/// The statistics counter of rejected objects.
pub const REJECTED_COUNTER: &str = "rejected_signature";

// ---- The envelope ----

/// A decoded envelope: borrowed from the stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub key_id: [u8; KEY_ID_LEN],
    pub signature: &'a [u8],
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    /// The bytes do not start with the envelope magic: an unsigned object.
    NotSigned,
    UnsupportedVersion(u8),
    Truncated,
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::NotSigned => write!(f, "not signed"),
            EnvelopeError::UnsupportedVersion(v) => write!(f, "signature envelope version {v} is not supported"),
            EnvelopeError::Truncated => write!(f, "signature envelope is truncated"),
        }
    }
}

/// Split stored bytes into key id, signature and payload. Total over any input: never panics,
/// never allocates (the fuzz target calls this).
pub fn decode_envelope(bytes: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
        return Err(EnvelopeError::NotSigned);
    };
    let Some((&version, rest)) = rest.split_first() else {
        return Err(EnvelopeError::Truncated);
    };
    if version != ENVELOPE_VERSION {
        return Err(EnvelopeError::UnsupportedVersion(version));
    }
    if rest.len() < KEY_ID_LEN + SIGNATURE_LEN {
        return Err(EnvelopeError::Truncated);
    }
    let (id, rest) = rest.split_at(KEY_ID_LEN);
    let (signature, payload) = rest.split_at(SIGNATURE_LEN);
    let mut key_id = [0u8; KEY_ID_LEN];
    key_id.copy_from_slice(id);
    Ok(Envelope {
        key_id,
        signature,
        payload,
    })
}

/// What a stored object is; part of the binding, decided by the reader from the key it asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Result,
    Manifest,
}

impl Kind {
    /// Keys name their kind: manifests end in ".manifest" (store/mod.rs: the namespace is part of
    /// the key string), everything else is a result entry.
    pub fn of_key(key: &str) -> Kind {
        if key.ends_with(".manifest") {
            Kind::Manifest
        } else {
            Kind::Result
        }
    }

    fn byte(self) -> u8 {
        match self {
            Kind::Result => 1,
            Kind::Manifest => 2,
        }
    }
}

/// Which level an object is on, and so its namespace in the binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespace {
    Local,
    /// The remote, with its key prefix.
    Remote(String),
}

impl Namespace {
    fn text(&self) -> String {
        match self {
            Namespace::Local => "local".into(),
            Namespace::Remote(prefix) => format!("remote:{prefix}"),
        }
    }
}

/// The bytes a signature covers.
fn binding(namespace: &Namespace, key: &str, payload: &[u8]) -> Vec<u8> {
    let ns = namespace.text();
    let digest = ring::digest::digest(&ring::digest::SHA256, payload);
    let mut b = Vec::with_capacity(BINDING_LABEL.len() + 1 + 4 + ns.len() + 1 + 4 + key.len() + 32);
    b.extend_from_slice(BINDING_LABEL);
    b.push(ENVELOPE_VERSION);
    b.extend_from_slice(&(ns.len() as u32).to_le_bytes());
    b.extend_from_slice(ns.as_bytes());
    b.push(Kind::of_key(key).byte());
    b.extend_from_slice(&(key.len() as u32).to_le_bytes());
    b.extend_from_slice(key.as_bytes());
    b.extend_from_slice(digest.as_ref());
    b
}

// ---- Keys ----

/// A public key readers trust.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub id: [u8; KEY_ID_LEN],
    bytes: [u8; 32],
}

impl PublicKey {
    fn from_bytes(bytes: [u8; 32]) -> PublicKey {
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest.as_ref()[..KEY_ID_LEN]);
        PublicKey { id, bytes }
    }

    /// Parse `cachepot-ed25519:<id>:<base64>`; the id must match the key (it catches a key pasted
    /// with a character lost). The error says what is accepted.
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        let accepted = "accepted: a public key as `cachepot --new-signing-key` prints it, cachepot-ed25519:<16 hex digits>:<base64>";
        let t = text.trim();
        let shown: String = t.chars().take(80).collect();
        let Some(rest) = t.strip_prefix(PUBLIC_PREFIX) else {
            return Err(format!("{shown:?} is not a cachepot public key; {accepted}"));
        };
        let Some((id, b64)) = rest.split_once(':') else {
            return Err(format!("{shown:?} lacks its key id; {accepted}"));
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| format!("{shown:?}: the key is not valid base64; {accepted}"))?;
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|_| format!("{shown:?}: an Ed25519 public key is 32 bytes; {accepted}"))?;
        let key = PublicKey::from_bytes(bytes);
        if id != hex(&key.id) {
            return Err(format!(
                "{shown:?}: the key id does not match the key (damaged when copied?); {accepted}"
            ));
        }
        Ok(key)
    }

    pub fn id_hex(&self) -> String {
        hex(&self.id)
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.bytes)
            .verify(message, signature)
            .is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PUBLIC_PREFIX}{}:{}",
            self.id_hex(),
            base64::engine::general_purpose::STANDARD.encode(self.bytes)
        )
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// A private key file: its public key (read at once, so a hit never derives it) and the secret,
/// parsed into a key pair only when something is signed.
pub struct KeyFile {
    pub public: PublicKey,
    secret: Vec<u8>,
    pair: OnceCell<Option<Ed25519KeyPair>>,
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret.
        write!(f, "KeyFile({})", self.public)
    }
}

impl KeyFile {
    fn generate() -> Result<KeyFile, String> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| "the system random generator failed".to_string())?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| format!("new key rejected: {e}"))?;
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(pair.public_key().as_ref());
        Ok(KeyFile {
            public: PublicKey::from_bytes(bytes),
            secret: pkcs8.as_ref().to_vec(),
            pair: OnceCell::from(Some(pair)),
        })
    }

    fn text(&self) -> String {
        format!(
            "{KEY_FILE_HEADER}\npublic {}\nsecret {}\n",
            self.public,
            base64::engine::general_purpose::STANDARD.encode(&self.secret)
        )
    }

    fn parse(text: &str) -> Result<KeyFile, String> {
        let mut lines = text.lines();
        if lines.next() != Some(KEY_FILE_HEADER) {
            return Err(format!(
                "not a cachepot private key file (its first line is not `{KEY_FILE_HEADER}`); make one with `cachepot --new-signing-key FILE`"
            ));
        }
        let mut public = None;
        let mut secret = None;
        for line in lines {
            if let Some(p) = line.strip_prefix("public ") {
                public = Some(PublicKey::parse(p)?);
            } else if let Some(s) = line.strip_prefix("secret ") {
                secret = Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(s.trim())
                        .map_err(|_| "the secret line is not valid base64".to_string())?,
                );
            }
        }
        match (public, secret) {
            (Some(public), Some(secret)) => Ok(KeyFile {
                public,
                secret,
                pair: OnceCell::new(),
            }),
            _ => Err("the key file lacks its `public` or `secret` line".into()),
        }
    }

    /// Read a key file; `private` also requires it to be ours and unreadable by others (the local
    /// key: whoever could replace it could sign for this cache dir).
    fn load(path: &Path, private: bool) -> Result<KeyFile, String> {
        use std::io::Read;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
        let meta = f.metadata().map_err(|e| format!("{}: {e}", path.display()))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if private && (!meta.is_file() || meta.uid() != me || meta.mode() & 0o077 != 0) {
            return Err(format!(
                "key file {} must be a file of this user (uid {me}) with mode 0600; remove it to have a new one made",
                path.display()
            ));
        }
        let mut text = String::new();
        f.take(64 * 1024)
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
        KeyFile::parse(&text).map_err(|e| format!("key file {}: {e}", path.display()))
    }

    /// The key pair, parsed on first use; `None` when the secret does not parse or does not match
    /// the public key written beside it.
    fn pair(&self) -> Option<&Ed25519KeyPair> {
        self.pair
            .get_or_init(|| {
                let pair = Ed25519KeyPair::from_pkcs8(&self.secret).ok()?;
                (pair.public_key().as_ref() == self.public.bytes).then_some(pair)
            })
            .as_ref()
    }

    /// Sign `payload` for `key` in `namespace`: the envelope to store.
    pub fn seal(&self, namespace: &Namespace, key: &str, payload: &[u8]) -> Option<Vec<u8>> {
        let pair = self.pair()?;
        let sig = pair.sign(&binding(namespace, key, payload));
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(MAGIC);
        out.push(ENVELOPE_VERSION);
        out.extend_from_slice(&self.public.id);
        out.extend_from_slice(sig.as_ref());
        out.extend_from_slice(payload);
        Some(out)
    }
}

/// `cachepot --new-signing-key FILE`: write a new private key (0600, never over an existing file)
/// and return its public key line.
pub fn new_signing_key(path: &Path) -> Result<String, String> {
    let key = KeyFile::generate()?;
    crate::atomic::create_private(path, key.text().as_bytes()).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "{} exists; cachepot never overwrites a key: choose another file name",
                path.display()
            )
        } else {
            format!("cannot write {}: {e}", path.display())
        }
    })?;
    Ok(key.public.to_string())
}

/// The per-cache-dir key: read it, or make it when there is none (created without replacing, so
/// two compiles starting together agree on one key).
fn local_key(cache_dir: &Path) -> Result<KeyFile, String> {
    let path = cache_dir.join(LOCAL_KEY_FILE);
    if path.symlink_metadata().is_ok() {
        return KeyFile::load(&path, true);
    }
    let key = KeyFile::generate()?;
    match crate::atomic::create_private(&path, key.text().as_bytes()) {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => KeyFile::load(&path, true),
        Err(e) => Err(format!("cannot create the local signing key {}: {e}", path.display())),
    }
}

// ---- Verification ----

/// Why an object was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    Envelope(EnvelopeError),
    UnknownKey(String),
    BadSignature(String),
    /// Trust is on, but the key to check this level with could not be read or made.
    NoKey(String),
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Envelope(e) => write!(f, "{e}"),
            Rejection::UnknownKey(id) => write!(f, "signed by key {id}, which is not trusted"),
            Rejection::BadSignature(id) => {
                write!(f, "the signature (key {id}) does not match this object under this key")
            }
            Rejection::NoKey(why) => write!(f, "{why}"),
        }
    }
}

/// Check `bytes` against `keys`; the payload when a trusted key signed this very binding.
pub fn verify<'a>(
    keys: &[&PublicKey],
    namespace: &Namespace,
    key: &str,
    bytes: &'a [u8],
) -> Result<&'a [u8], Rejection> {
    let env = decode_envelope(bytes).map_err(Rejection::Envelope)?;
    let Some(signer) = keys.iter().find(|k| k.id == env.key_id) else {
        return Err(Rejection::UnknownKey(hex(&env.key_id)));
    };
    if !signer.verify(&binding(namespace, key, env.payload), env.signature) {
        return Err(Rejection::BadSignature(hex(&env.key_id)));
    }
    Ok(env.payload)
}

/// The trust settings of one compile call, shared by its local and remote levels.
pub struct Trust {
    cache_dir: PathBuf,
    /// The per-cache-dir key, or why it cannot be used (then the local level rejects everything).
    local: Result<KeyFile, String>,
    /// The configured signing key; `None`: this machine does not write to the remote.
    writer: Option<Result<KeyFile, String>>,
    trusted: Vec<PublicKey>,
    state: RefCell<TrustState>,
}

#[derive(Default)]
struct TrustState {
    rejected: u64,
    logged: bool,
    /// Key faults (`error.signing_key`, `error.local_signing_key`).
    errors: Vec<crate::stats::Fault>,
}

impl Trust {
    /// `None` when trust is off (no trusted keys, no signing key).
    pub fn open(cfg: &TrustConfig, cache_dir: &Path) -> Option<Rc<Trust>> {
        if cfg.trusted_keys.value.is_empty() && cfg.signing_key.value.is_none() {
            return None;
        }
        // A key that cannot be used is a cache fault of this call (`error.<kind>`), never a failed build.
        let mut errors = Vec::new();
        let writer = cfg.signing_key.value.as_ref().map(|p| KeyFile::load(p, false));
        if let Some(Err(e)) = &writer {
            log::warn!(target: "trust", "{e}; nothing is written to the remote");
            errors.push(crate::stats::Fault::SigningKey);
        }
        let local = local_key(cache_dir);
        if let Err(e) = &local {
            log::warn!(target: "trust", "{e}; the local cache level is not used");
            errors.push(crate::stats::Fault::LocalSigningKey);
        }
        Some(Rc::new(Trust {
            cache_dir: cache_dir.to_path_buf(),
            local,
            writer,
            trusted: cfg.trusted_keys.value.clone(),
            state: RefCell::new(TrustState {
                errors,
                ..TrustState::default()
            }),
        }))
    }

    fn writer(&self) -> Option<&KeyFile> {
        self.writer.as_ref().and_then(|w| w.as_ref().ok())
    }

    /// The payload of an object read from `namespace`, if it verifies.
    pub fn check<'a>(&self, namespace: &Namespace, key: &str, bytes: &'a [u8]) -> Result<&'a [u8], Rejection> {
        match namespace {
            Namespace::Local => match &self.local {
                Ok(k) => verify(&[&k.public], namespace, key, bytes),
                Err(e) => Err(Rejection::NoKey(e.clone())),
            },
            Namespace::Remote(_) => {
                let mut keys: Vec<&PublicKey> = self.trusted.iter().collect();
                keys.extend(self.writer().map(|w| &w.public));
                verify(&keys, namespace, key, bytes)
            }
        }
    }

    /// The envelope to store for `payload` on `namespace`'s level; `None`: no key to sign with.
    pub fn seal(&self, namespace: &Namespace, key: &str, payload: &[u8]) -> Option<Vec<u8>> {
        let signer = match namespace {
            Namespace::Local => self.local.as_ref().ok()?,
            Namespace::Remote(_) => self.writer()?,
        };
        signer.seal(namespace, key, payload)
    }

    /// Count a rejected object; the first one of a call is logged as a warning.
    fn reject(&self, level: &str, key: &str, why: &Rejection) {
        let mut st = self.state.borrow_mut();
        st.rejected += 1;
        if st.logged {
            log::debug!(target: "trust", "rejected {level} object {key}: {why}");
        } else {
            st.logged = true;
            log::warn!(
                target: "trust",
                "rejected {level} object {key}: {why}; compiling instead (further rejections in this call are only counted)"
            );
        }
    }
}

impl Drop for Trust {
    fn drop(&mut self) {
        let st = self.state.get_mut();
        let mut c = crate::stats::Counters::new();
        if st.rejected > 0 {
            c.insert(REJECTED_COUNTER.to_string(), st.rejected);
        }
        for f in &st.errors {
            *c.entry(f.counter()).or_default() += 1;
        }
        if !c.is_empty()
            && let Err(e) = crate::stats::add_counters(&self.cache_dir, &c)
        {
            log::warn!(target: "trust", "could not update statistics in {}: {e}", self.cache_dir.display());
        }
    }
}

// ---- The store levels ----

/// One level of storage seen through trust: what it returns has been verified (trust on) or had
/// its envelope taken off (trust off); what is put into it is signed (trust on).
pub struct Level {
    inner: Box<dyn Storage>,
    namespace: Namespace,
    trust: Option<Rc<Trust>>,
}

impl Level {
    pub fn local(inner: Box<dyn Storage>, trust: Option<Rc<Trust>>) -> Level {
        Level {
            inner,
            namespace: Namespace::Local,
            trust,
        }
    }

    pub fn remote(inner: Box<dyn Storage>, prefix: &str, trust: Option<Rc<Trust>>) -> Level {
        Level {
            inner,
            namespace: Namespace::Remote(prefix.to_string()),
            trust,
        }
    }

    fn level_name(&self) -> &'static str {
        match self.namespace {
            Namespace::Local => "local",
            Namespace::Remote(_) => "remote",
        }
    }
}

impl Level {
    /// Trust is on but this is the local level and its key could not be read or made: the level is
    /// left out (the fault was counted once, as `error.local_signing_key`).
    fn left_out(&self) -> bool {
        matches!((&self.trust, &self.namespace), (Some(t), Namespace::Local) if t.local.is_err())
    }
}

/// Trust off: a signed object is used like any other (its payload still verifies itself).
fn without_envelope(mut bytes: Vec<u8>) -> Vec<u8> {
    if let Ok(env) = decode_envelope(&bytes) {
        let header = bytes.len() - env.payload.len();
        bytes.drain(..header);
    }
    bytes
}

impl Storage for Level {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if self.left_out() {
            return Ok(None);
        }
        let Some(mut bytes) = self.inner.get(key)? else {
            return Ok(None);
        };
        let Some(trust) = &self.trust else {
            return Ok(Some(without_envelope(bytes)));
        };
        // The object is used, or copied to the local disk, only once this says yes.
        match trust.check(&self.namespace, key, &bytes) {
            Ok(_) => {
                bytes.drain(..HEADER_LEN);
                Ok(Some(bytes))
            }
            Err(why) => {
                trust.reject(self.level_name(), key, &why);
                Ok(None)
            }
        }
    }

    fn get_entry(&self, key: &str) -> Result<Option<crate::store::Found>, StoreError> {
        use std::os::unix::fs::FileExt;
        // With trust on, the whole object is checked before any of it is used: `get`.
        if self.trust.is_some() {
            return Ok(self.get(key)?.map(crate::store::Found::Bytes));
        }
        match self.inner.get_entry(key)? {
            // Trust off: an unsigned entry is streamed as it is; a signed one goes through `get`,
            // which takes its envelope off.
            Some(crate::store::Found::File(f, len)) => {
                let mut magic = [0u8; 7];
                if f.read_exact_at(&mut magic, 0).is_ok() && &magic != MAGIC {
                    return Ok(Some(crate::store::Found::File(f, len)));
                }
                Ok(self.get(key)?.map(crate::store::Found::Bytes))
            }
            Some(crate::store::Found::Bytes(b)) => Ok(Some(crate::store::Found::Bytes(without_envelope(b)))),
            None => Ok(None),
        }
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let Some(trust) = &self.trust else {
            return self.inner.put(key, bytes);
        };
        if self.left_out() {
            return Ok(());
        }
        match trust.seal(&self.namespace, key, bytes) {
            Some(sealed) => self.inner.put(key, &sealed),
            // Remote: `accepts_writes` said no already. Local: a key whose secret does not parse.
            None => Err(StoreError::Write(format!(
                "no key to sign {key} for the {} level",
                self.level_name()
            ))),
        }
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.inner.remove(key)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn take_counters(&self) -> Vec<&'static str> {
        self.inner.take_counters()
    }

    fn prepare(&self) {
        self.inner.prepare()
    }

    fn accepts_writes(&self) -> bool {
        // With trust on, only a holder of a signing key writes to the remote: readers would reject
        // anything else.
        let signs = match (&self.trust, &self.namespace) {
            (Some(t), Namespace::Remote(_)) => t.writer().is_some(),
            (Some(t), Namespace::Local) => t.local.is_ok(),
            (None, _) => true,
        };
        signs && self.inner.accepts_writes()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---- The [trust] settings (read by config.rs) ----

/// The keys of the `[trust]` table.
pub const TRUST_KEYS: &[&str] = &["signing_key", "trusted_keys"];

/// Signed entries: the key this machine signs with, and the keys it accepts from the remote.
/// Trust is on when either is set.
#[derive(Debug, Clone)]
pub struct TrustConfig {
    /// A private key file (`cachepot --new-signing-key`): sign what goes to the remote.
    pub signing_key: Setting<Option<PathBuf>>,
    /// Public keys whose signatures the remote's objects must carry (the signing key's own is added).
    pub trusted_keys: Setting<Vec<PublicKey>>,
}

impl Default for TrustConfig {
    fn default() -> Self {
        TrustConfig {
            signing_key: Setting::default(None),
            trusted_keys: Setting::default(Vec::new()),
        }
    }
}

impl TrustConfig {
    pub(crate) fn apply_table(&mut self, value: &toml::Value, path: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, what: &str| ConfigError(format!("config file {}: `trust.{key}` {what}", path.display()));
        let table = value.as_table().ok_or_else(|| bad("", "must be a table ([trust])"))?;
        let src = || Source::File(path.to_path_buf());
        for (key, v) in table {
            if !TRUST_KEYS.contains(&key.as_str()) {
                return Err(bad(
                    key,
                    &format!("is not a known setting; accepted: {}", TRUST_KEYS.join(", ")),
                ));
            }
            match key.as_str() {
                "signing_key" => {
                    let s = v.as_str().ok_or_else(|| bad(key, "must be a key file path string"))?;
                    let p = expand_tilde(s, None);
                    // Relative to the config file, as a path written in a file should be.
                    let p = if p.is_relative() {
                        path.parent().unwrap_or(Path::new("/")).join(p)
                    } else {
                        p
                    };
                    self.signing_key = Setting {
                        value: Some(p),
                        source: src(),
                    };
                }
                "trusted_keys" => {
                    let texts: Vec<&str> = match v {
                        toml::Value::String(s) => vec![s.as_str()],
                        toml::Value::Array(a) => a
                            .iter()
                            .map(|k| {
                                k.as_str()
                                    .ok_or_else(|| bad(key, "must be a list of public key strings"))
                            })
                            .collect::<Result<_, _>>()?,
                        _ => return Err(bad(key, "must be a list of public key strings")),
                    };
                    let keys = texts
                        .iter()
                        .map(|t| PublicKey::parse(t).map_err(|e| bad(key, &e)))
                        .collect::<Result<_, _>>()?;
                    self.trusted_keys = Setting {
                        value: keys,
                        source: src(),
                    };
                }
                other => {
                    return Err(bad(
                        other,
                        "is not a known setting; accepted: signing_key, trusted_keys",
                    ));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn apply_env(&mut self, env: EnvReader) -> Result<(), ConfigError> {
        if let Some(v) = env("CACHEPOT_SIGNING_KEY").filter(|v| !v.is_empty()) {
            self.signing_key = Setting {
                value: Some(absolute(PathBuf::from(v))),
                source: Source::Env("CACHEPOT_SIGNING_KEY"),
            };
        }
        if let Some(v) = env("CACHEPOT_TRUSTED_KEYS").filter(|v| !v.is_empty()) {
            let text = v.to_string_lossy();
            let keys = text
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|t| !t.is_empty())
                .map(|t| PublicKey::parse(t).map_err(|e| ConfigError(format!("CACHEPOT_TRUSTED_KEYS: {e}"))))
                .collect::<Result<_, _>>()?;
            self.trusted_keys = Setting {
                value: keys,
                source: Source::Env("CACHEPOT_TRUSTED_KEYS"),
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod trust_tests {
    use super::*;
    use crate::config::Config;
    use std::collections::HashMap;
    use std::ffi::OsString;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, OsString> = vars.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        Config::load_with(&|name| map.get(name).cloned())
    }

    const A: &str = "cachepot-ed25519:95154bff89135111:1oJFE0Xoodf0dIranGthwyduDQlXPwiSj6g2R7whqzg=";

    #[test]
    fn trust_settings() {
        let t = load(&[("HOME", "/h")]).unwrap().trust;
        assert!(t.signing_key.value.is_none() && t.trusted_keys.value.is_empty());
        let a = PublicKey::parse(A).unwrap_or_else(|e| panic!("{e}"));
        let t = load(&[
            ("HOME", "/h"),
            ("CACHEPOT_SIGNING_KEY", "/k/ci.key"),
            ("CACHEPOT_TRUSTED_KEYS", &format!("{A}, {A}\n")),
        ])
        .unwrap()
        .trust;
        assert_eq!(t.signing_key.value, Some(PathBuf::from("/k/ci.key")));
        assert_eq!(t.trusted_keys.value, vec![a.clone(), a]);
        let e = load(&[("HOME", "/h"), ("CACHEPOT_TRUSTED_KEYS", "ssh-ed25519 AAAA")]).unwrap_err();
        assert!(
            e.0.starts_with("CACHEPOT_TRUSTED_KEYS: \"ssh-ed25519\" is not a cachepot public key"),
            "{e}"
        );
    }

    #[test]
    fn trust_table() {
        let dir = std::env::temp_dir().join(format!("cachepot-cfg-trust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            format!("[trust]\nsigning_key = \"ci.key\"\ntrusted_keys = [\"{A}\"]\n"),
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let t = load(&[("HOME", "/h"), ("CACHEPOT_CONF", f)]).unwrap().trust;
        assert_eq!(t.signing_key.value, Some(dir.join("ci.key")));
        assert_eq!(t.trusted_keys.value.len(), 1);
        std::fs::write(&file, "[trust]\ntrusted_key = []\n").unwrap();
        let e = load(&[("HOME", "/h"), ("CACHEPOT_CONF", f)]).unwrap_err();
        assert!(e.0.contains("`trust.trusted_key` is not a known setting"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

// ---- end of the [trust] settings ----

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cachepot-trust-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn remote(prefix: &str) -> Namespace {
        Namespace::Remote(prefix.into())
    }

    #[test]
    fn round_trip_and_every_binding_part_counts() {
        let k = KeyFile::generate().unwrap();
        let ns = remote("team/");
        let sealed = k.seal(&ns, KEY, b"payload").unwrap();
        assert_eq!(verify(&[&k.public], &ns, KEY, &sealed), Ok(&b"payload"[..]));
        let bad = |r: Result<&[u8], Rejection>| matches!(r, Err(Rejection::BadSignature(_)));
        // Another key string, another kind, another namespace, another level: each rejected.
        let other_key = KEY.replace('0', "1");
        assert!(bad(verify(&[&k.public], &ns, &other_key, &sealed)));
        assert!(bad(verify(&[&k.public], &ns, &format!("{KEY}.manifest"), &sealed)));
        assert!(bad(verify(&[&k.public], &remote("other/"), KEY, &sealed)));
        assert!(bad(verify(&[&k.public], &Namespace::Local, KEY, &sealed)));
        // Any flipped byte, in the signature or the payload.
        for i in [MAGIC.len() + 1 + KEY_ID_LEN + 3, sealed.len() - 1] {
            let mut b = sealed.clone();
            b[i] ^= 1;
            assert!(bad(verify(&[&k.public], &ns, KEY, &b)), "byte {i}");
        }
        // An unknown key, and no envelope at all.
        let other = KeyFile::generate().unwrap();
        assert!(matches!(
            verify(&[&other.public], &ns, KEY, &sealed),
            Err(Rejection::UnknownKey(_))
        ));
        assert_eq!(
            verify(&[&k.public], &ns, KEY, b"payload"),
            Err(Rejection::Envelope(EnvelopeError::NotSigned))
        );
        // Rotation: any of several trusted keys.
        assert!(verify(&[&other.public, &k.public], &ns, KEY, &sealed).is_ok());
    }

    #[test]
    fn decoder_is_total() {
        assert_eq!(decode_envelope(b""), Err(EnvelopeError::NotSigned));
        assert_eq!(decode_envelope(b"CPOTSIG"), Err(EnvelopeError::Truncated));
        assert_eq!(
            decode_envelope(b"CPOTSIG\x02"),
            Err(EnvelopeError::UnsupportedVersion(2))
        );
        let mut b = b"CPOTSIG\x01".to_vec();
        b.extend_from_slice(&[7u8; KEY_ID_LEN + SIGNATURE_LEN - 1]);
        assert_eq!(decode_envelope(&b), Err(EnvelopeError::Truncated));
        b.push(7);
        let env = decode_envelope(&b).unwrap();
        assert_eq!((env.key_id, env.payload), ([7u8; KEY_ID_LEN], &b""[..]));
        // Every prefix of a real envelope decodes or fails cleanly.
        let k = KeyFile::generate().unwrap();
        let sealed = k.seal(&Namespace::Local, KEY, b"abc").unwrap();
        for n in 0..sealed.len() {
            let _ = decode_envelope(&sealed[..n]);
        }
    }

    #[test]
    fn public_keys_parse_and_print() {
        let k = KeyFile::generate().unwrap();
        let line = k.public.to_string();
        assert!(line.starts_with("cachepot-ed25519:"), "{line}");
        assert_eq!(PublicKey::parse(&line).unwrap(), k.public);
        assert_eq!(PublicKey::parse(&format!("  {line}\n")).unwrap(), k.public);
        for bad in [
            "ssh-ed25519 AAAA",
            "cachepot-ed25519:abcd",
            "cachepot-ed25519:0011223344556677:AAAA",
            "cachepot-ed25519:0011223344556677:!!!",
        ] {
            let e = PublicKey::parse(bad).unwrap_err();
            assert!(e.contains("accepted: a public key"), "{e}");
        }
        // A changed id (or a changed key) is caught.
        let (_, rest) = line.rsplit_once(':').unwrap();
        let e = PublicKey::parse(&format!("cachepot-ed25519:0000000000000000:{rest}")).unwrap_err();
        assert!(e.contains("does not match"), "{e}");
    }

    #[test]
    fn key_files_are_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let d = tmpdir("keys");
        let file = d.join("ci.key");
        let line = new_signing_key(&file).unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        let loaded = KeyFile::load(&file, true).unwrap();
        assert_eq!(loaded.public.to_string(), line);
        assert!(loaded.seal(&Namespace::Local, KEY, b"x").is_some());
        let e = new_signing_key(&file).unwrap_err();
        assert!(e.contains("never overwrites"), "{e}");
        assert_eq!(KeyFile::load(&file, true).unwrap().public.to_string(), line);
        // The local key: made once, then the same; refused when others may read it.
        let a = local_key(&d).unwrap().public;
        assert_eq!(local_key(&d).unwrap().public, a);
        std::fs::set_permissions(d.join(LOCAL_KEY_FILE), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(local_key(&d).unwrap_err().contains("mode 0600"));
        // A secret that does not match its public line signs nothing.
        let other = KeyFile::generate().unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let swapped = text.replace(&line, &other.public.to_string());
        let k = KeyFile::parse(&swapped).unwrap();
        assert!(k.seal(&Namespace::Local, KEY, b"x").is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn kinds_from_keys() {
        assert_eq!(Kind::of_key(KEY), Kind::Result);
        assert_eq!(Kind::of_key(&format!("{KEY}.manifest")), Kind::Manifest);
    }
}
