//! Who may call: with users configured, a handshake with Basic credentials
//! earns a bearer token that every later call carries (the Flight SQL
//! convention ADBC and JDBC drivers follow); with none, every caller is let
//! in, as the wire trusts loopback when it has no users.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use parking_lot::Mutex;
use tonic::Status;
use tonic::metadata::MetadataMap;

/// A password user (the wire's `--auth` file names the same ones).
#[derive(Clone)]
pub struct FlightUser {
    pub name: String,
    pub password: String,
    pub read_only: bool,
}

/// Never prints the password.
impl std::fmt::Debug for FlightUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightUser").field("name", &self.name).field("read_only", &self.read_only).finish_non_exhaustive()
    }
}

/// The caller of one request.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub read_only: bool,
}

/// How long a handshake's token stays good.
const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

pub(crate) struct Auth {
    users: HashMap<String, FlightUser>,
    tokens: Mutex<HashMap<String, (Caller, Instant)>>,
}

impl Auth {
    pub(crate) fn new(users: &[FlightUser]) -> Auth {
        Auth { users: users.iter().map(|u| (u.name.clone(), u.clone())).collect(), tokens: Mutex::new(HashMap::new()) }
    }

    /// Check Basic credentials; a fresh bearer token for them.
    pub(crate) fn handshake(&self, metadata: &MetadataMap) -> Result<String, Status> {
        let token = crate::random_hex(24);
        if self.users.is_empty() {
            return Ok(token);
        }
        let header = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Status::unauthenticated("this server needs a user name and password (Basic credentials)"))?;
        let encoded =
            header.strip_prefix("Basic ").ok_or_else(|| Status::unauthenticated("the handshake takes Basic credentials"))?;
        // Padding optional: Arrow's Go client (under ADBC) sends none.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new().with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let decoded = lenient
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| Status::unauthenticated("Basic credentials that are not base64 of user:password"))?;
        let (name, password) = decoded.split_once(':').unwrap_or((decoded.as_str(), ""));
        let user = self
            .users
            .get(name)
            .filter(|u| same_secret(u.password.as_bytes(), password.as_bytes()))
            // One message for an unknown user and a wrong password: it tells
            // nothing about which names exist.
            .ok_or_else(|| Status::unauthenticated(format!("password authentication failed for user \"{name}\"")))?;
        let mut tokens = self.tokens.lock();
        tokens.retain(|_, (_, at)| at.elapsed() < TOKEN_LIFETIME);
        tokens.insert(token.clone(), (Caller { read_only: user.read_only }, Instant::now()));
        Ok(token)
    }

    /// The caller of a request: a valid bearer token, or anyone without users.
    pub(crate) fn user(&self, metadata: &MetadataMap) -> Result<Caller, Status> {
        if self.users.is_empty() {
            return Ok(Caller { read_only: false });
        }
        let token = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("no bearer token: authenticate with a handshake first"))?;
        match self.tokens.lock().get(token) {
            Some((caller, at)) if at.elapsed() < TOKEN_LIFETIME => Ok(caller.clone()),
            _ => Err(Status::unauthenticated("unknown or expired bearer token: authenticate again")),
        }
    }
}

/// Compare secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
