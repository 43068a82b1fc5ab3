//! Who may connect, and how they prove it.
//!
//! Default: no password users, and connections from loopback addresses are
//! trusted (the server binds 127.0.0.1 by default). With users configured,
//! every connection authenticates with SCRAM-SHA-256 unless `method` says MD5
//! or cleartext, and loopback is trusted only when `trust_loopback` says so.
//! A read-only user can query but not write (42501).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion_postgres::pgwire::api::auth::cleartext::CleartextPasswordAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::md5pass::{Md5PasswordAuthStartupHandler, hash_md5_password};
use datafusion_postgres::pgwire::api::auth::noop::NoopStartupHandler;
use datafusion_postgres::pgwire::api::auth::sasl::SASLAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password, random_nonce};
use datafusion_postgres::pgwire::api::auth::{AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler};
use datafusion_postgres::pgwire::api::{ClientInfo, ConnectionManager, PgWireConnectionState};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use futures::Sink;
use serde::Deserialize;

use crate::router::Session;
use crate::{Shared, fatal_error};

/// The SCRAM iteration count (RFC 7677's minimum, and Postgres' default).
const SCRAM_ITERATIONS: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    #[default]
    #[serde(alias = "scram")]
    ScramSha256,
    Md5,
    #[serde(alias = "password")]
    Cleartext,
}

#[derive(Clone, Deserialize)]
pub struct User {
    pub name: String,
    pub password: String,
    #[serde(default)]
    pub read_only: bool,
}

impl Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User").field("name", &self.name).field("read_only", &self.read_only).finish_non_exhaustive()
    }
}

/// The server's authentication settings, e.g. from a JSON file:
/// `{"users": [{"name": "app", "password": "…"}, {"name": "bi", "password": "…", "read_only": true}],
///   "method": "scram-sha-256", "trust_loopback": false}`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub method: AuthMethod,
    /// Trust loopback connections without a password. Default: only when no
    /// users are configured.
    #[serde(default)]
    pub trust_loopback: Option<bool>,
}

impl AuthConfig {
    pub fn from_file(path: &std::path::Path) -> Result<AuthConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Authentication state shared by every connection: per-user secrets derived
/// once, never the passwords themselves in logs.
pub(crate) struct Authenticator {
    method: AuthMethod,
    trust_loopback: bool,
    users: Arc<Secrets>,
}

/// Never Debug: it holds the password (MD5 and cleartext need it).
struct Secret {
    read_only: bool,
    password: String,
    scram_salt: Vec<u8>,
    scram_salted: Vec<u8>,
}

struct Secrets {
    method: AuthMethod,
    by_name: HashMap<String, Secret>,
}

impl Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").field("users", &self.by_name.keys().collect::<Vec<_>>()).finish()
    }
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> std::io::Result<Authenticator> {
        let mut by_name = HashMap::new();
        for u in &config.users {
            if u.name.is_empty() {
                return Err(std::io::Error::other("a configured user has an empty name"));
            }
            let scram_salt = random_nonce().into_bytes();
            let scram_salted = gen_salted_password(&u.password, &scram_salt, SCRAM_ITERATIONS);
            let secret = Secret { read_only: u.read_only, password: u.password.clone(), scram_salt, scram_salted };
            if by_name.insert(u.name.clone(), secret).is_some() {
                return Err(std::io::Error::other(format!("user '{}' is configured twice", u.name)));
            }
        }
        Ok(Authenticator {
            method: config.method,
            trust_loopback: config.trust_loopback.unwrap_or(config.users.is_empty()),
            users: Arc::new(Secrets { method: config.method, by_name }),
        })
    }

    fn read_only(&self, user: &str) -> bool {
        self.users.by_name.get(user).is_some_and(|s| s.read_only)
    }
}

#[async_trait]
impl AuthSource for Secrets {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        let Some(secret) = self.by_name.get(user) else {
            return Err(PgWireError::InvalidPassword(user.to_string()));
        };
        Ok(match self.method {
            AuthMethod::ScramSha256 => Password::new(Some(secret.scram_salt.clone()), secret.scram_salted.clone()),
            AuthMethod::Md5 => {
                let salt = random_nonce().into_bytes()[..4].to_vec();
                let hashed = hash_md5_password(user, &secret.password, &salt);
                Password::new(Some(salt), hashed.into_bytes())
            }
            AuthMethod::Cleartext => Password::new(None, secret.password.clone().into_bytes()),
        })
    }
}

/// Server parameters for a session: a read-only user sees
/// `default_transaction_read_only = on`, nobody is a superuser.
fn parameters(read_only: bool) -> DefaultServerParameterProvider {
    let mut p = DefaultServerParameterProvider::default();
    p.is_superuser = false;
    p.server_version = crate::compat::SERVER_VERSION.to_string();
    p.default_transaction_read_only = read_only;
    p
}

/// One per connection (pgwire asks for a startup handler per socket): picks the
/// workspace from the database name, then trusts or runs the configured
/// password exchange.
pub(crate) struct ConnectionStartup {
    shared: Arc<Shared>,
    exchange: tokio::sync::Mutex<Option<Exchange>>,
}

enum Exchange {
    Scram(SASLAuthStartupHandler<DefaultServerParameterProvider>),
    Md5(Md5PasswordAuthStartupHandler<Secrets, DefaultServerParameterProvider>),
    Cleartext(CleartextPasswordAuthStartupHandler<SharedSecrets, DefaultServerParameterProvider>),
}

/// The cleartext handler takes its source by value.
#[derive(Debug)]
struct SharedSecrets(Arc<Secrets>);

#[async_trait]
impl AuthSource for SharedSecrets {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        self.0.get_password(login).await
    }
}

/// Loopback trust: no password exchange.
struct Trusted {
    connections: Arc<ConnectionManager>,
    read_only: bool,
}

#[async_trait]
impl NoopStartupHandler for Trusted {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.connections.clone())
    }

    /// pgwire's trust handler announces its default parameters (another
    /// server_version, a superuser); ours follow them before ReadyForQuery,
    /// and a client keeps the last value it is told, as with the password
    /// exchanges, which announce ours only.
    async fn post_startup<C>(&self, client: &mut C, _message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use datafusion_postgres::pgwire::api::auth::ServerParameterProvider;
        use datafusion_postgres::pgwire::messages::startup::ParameterStatus;
        let parameters = parameters(self.read_only).server_parameters(client).unwrap_or_default();
        for (name, value) in parameters {
            futures::SinkExt::feed(client, PgWireBackendMessage::ParameterStatus(ParameterStatus::new(name, value))).await?;
        }
        Ok(())
    }
}

impl ConnectionStartup {
    pub fn new(shared: Arc<Shared>) -> Self {
        ConnectionStartup { shared, exchange: tokio::sync::Mutex::new(None) }
    }

    /// Once the client is logged in (pgwire has given it its cancel key), its
    /// session can be cancelled.
    fn register_when_ready<C: ClientInfo>(&self, client: &C) {
        if matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            if let Ok(session) = crate::router::session(client) {
                self.shared.sessions.register(client, &session);
            }
        }
    }

    fn exchange_for(&self, read_only: bool) -> Exchange {
        let auth = &self.shared.auth;
        let manager = self.shared.connections.clone();
        let params = Arc::new(parameters(read_only));
        match auth.method {
            AuthMethod::ScramSha256 => {
                let mut scram = ScramAuth::new(auth.users.clone());
                scram.set_iterations(SCRAM_ITERATIONS);
                Exchange::Scram(SASLAuthStartupHandler::new(params).with_scram(scram).with_connection_manager(manager))
            }
            AuthMethod::Md5 => {
                Exchange::Md5(Md5PasswordAuthStartupHandler::new(auth.users.clone(), params).with_connection_manager(manager))
            }
            AuthMethod::Cleartext => Exchange::Cleartext(
                CleartextPasswordAuthStartupHandler::new(SharedSecrets(auth.users.clone()), parameters(read_only))
                    .with_connection_manager(manager),
            ),
        }
    }
}

#[async_trait]
impl StartupHandler for ConnectionStartup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let PgWireFrontendMessage::Startup(startup) = &message {
            let user = startup.parameters.get("user").cloned().unwrap_or_default();
            // Postgres defaults the database to the user name.
            let database = startup.parameters.get("database").cloned().unwrap_or_else(|| user.clone());
            let Some(service) = self.shared.workspaces.get(&database) else {
                let mut served: Vec<&str> = self.shared.workspaces.keys().map(String::as_str).collect();
                served.sort_unstable();
                return Err(fatal_error(
                    "3D000",
                    format!("database \"{database}\" does not exist; this server serves workspaces: {}", served.join(", ")),
                ));
            };
            let auth = &self.shared.auth;
            let read_only = auth.read_only(&user);
            client.session_extensions().insert(Session {
                service: service.clone(),
                read_only,
                result_formats: Default::default(),
                cancel: tokio::sync::watch::Sender::new(0),
                shared: self.shared.clone(),
                txn: Default::default(),
                prepared: Default::default(),
                modes: Default::default(),
            });
            crate::limits::start_session(client, &self.shared.timeouts);
            if auth.trust_loopback && client.socket_addr().ip().is_loopback() {
                Trusted { connections: self.shared.connections.clone(), read_only }.on_startup(client, message).await?;
                self.register_when_ready(client);
                return Ok(());
            }
            if auth.users.by_name.is_empty() {
                return Err(fatal_error(
                    "28000",
                    format!(
                        "no password users are configured: only loopback connections are accepted (not {})",
                        client.socket_addr().ip()
                    ),
                ));
            }
            *self.exchange.lock().await = Some(self.exchange_for(read_only));
        }
        let exchange = self.exchange.lock().await;
        match exchange.as_ref() {
            Some(Exchange::Scram(h)) => h.on_startup(client, message).await?,
            Some(Exchange::Md5(h)) => h.on_startup(client, message).await?,
            Some(Exchange::Cleartext(h)) => h.on_startup(client, message).await?,
            None => {}
        }
        self.register_when_ready(client);
        Ok(())
    }
}
