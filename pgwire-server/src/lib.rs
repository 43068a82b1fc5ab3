//! The Postgres-wire endpoint: psql, BI tools and drivers talk to workspaces.
//!
//! One listener serves several workspaces: the connection's database name picks
//! one, as it picks a database in Postgres (an unknown name is refused with
//! 3D000). Each workspace is served by datafusion-postgres (pg_catalog,
//! SET/SHOW, transactions, cursors) over a session built from the workspace's
//! (its tables and functions, plus pg_catalog; see `server_session`), with our
//! own pieces around it:
//!
//! - `auth`: trust for loopback by default; password users checked with
//!   SCRAM-SHA-256 (MD5 or cleartext when configured); read-only users.
//! - `router`: per-connection dispatch to the workspace, a cache of parsed and
//!   planned statements, and a fast path for lookups by object_id or name.
//! - `writes`: UPDATE, DELETE (planned once) and CREATE TABLE through the
//!   workspace write path, and the read-only guard (42501).
//! - `copy`: `COPY entity FROM STDIN` (text, CSV; simple and extended
//!   protocol) and `COPY … TO STDOUT`.
//!
//! - `transactions`: BEGIN/COMMIT/ROLLBACK and savepoints run a
//!   `heavenbase::Transaction` held by the session; hooks run on the
//!   session's workspace handle and SQL session, so a block's statements are
//!   held by it and read its writes (docs/transactions.md).

mod auth;
mod cancel;
mod compat;
mod connection;
mod copy;
mod describe;
mod encode;
mod limits;
mod prepared;
mod rewrite;
mod router;
mod settings;
mod transactions;
mod uuid_params;
mod vector_params;
mod vector_type;
mod writes;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use datafusion::catalog::{CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList};
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::{context::EmptyContextProvider, setup_pg_catalog};
use datafusion_postgres::pgwire::api::ConnectionManager;
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError};
use datafusion_postgres::pgwire::tokio::tokio_rustls::TlsAcceptor;
use datafusion_postgres::pgwire::tokio::tokio_rustls::rustls;
use heavenbase::memory::MemoryLimits;
use heavenbase::{Error, Workspace};
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub use auth::{AuthConfig, AuthMethod, User};
pub use limits::parse_duration;
use router::{Handlers, WorkspaceService};

pub const DEFAULT_PORT: u16 = 5433;

/// Where and how to listen. Loopback by default.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub host: String,
    pub port: u16,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// Connections beyond this many are refused with 53300 (0: no limit).
    pub max_connections: usize,
    pub auth: AuthConfig,
    /// How long a shutdown waits for running statements before closing sockets.
    pub shutdown_grace: Duration,
    /// Memory all statements together, and each alone, may hold; a statement
    /// over a limit spills where it can and fails with 53200 where it cannot.
    /// Each workspace spills into its folder's `spill` (`spill_dir` is not used).
    pub memory: MemoryLimits,
    /// Sessions start with these (`SET` changes them per session; None: off).
    pub timeouts: Timeouts,
}

/// Postgres' per-session timeouts, as a server's defaults.
#[derive(Debug, Clone, Default)]
pub struct Timeouts {
    /// `statement_timeout`: a statement still running after it fails with 57014.
    pub statement: Option<Duration>,
    /// `idle_in_transaction_session_timeout`: a session idle that long inside
    /// a transaction block is closed with 25P03 and its block rolled back.
    pub idle_in_transaction: Option<Duration>,
    /// `idle_session_timeout`: a session idle that long outside a block is closed with 57P05.
    pub idle_session: Option<Duration>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            host: "127.0.0.1".into(),
            port: DEFAULT_PORT,
            tls_cert: None,
            tls_key: None,
            max_connections: 0,
            auth: AuthConfig::default(),
            shutdown_grace: Duration::from_secs(30),
            memory: MemoryLimits::default(),
            timeouts: Timeouts::default(),
        }
    }
}

/// What every connection shares: the workspaces, who may log in, and the
/// count of statements in flight (for a graceful shutdown).
pub(crate) struct Shared {
    pub workspaces: HashMap<String, Arc<WorkspaceService>>,
    pub auth: auth::Authenticator,
    pub connections: Arc<ConnectionManager>,
    /// Sessions by cancel key, for CancelRequests.
    pub sessions: cancel::Sessions,
    pub shutting_down: AtomicBool,
    pub in_flight: AtomicUsize,
    pub idle: Notify,
    /// Every session starts with these settings.
    pub timeouts: Timeouts,
}

impl Shared {
    /// Marks a statement as running until the guard is dropped; refused once a
    /// shutdown has begun.
    pub fn begin_statement(self: &Arc<Self>) -> Result<InFlight, PgWireError> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(user_error("57P01", "terminating connection due to administrator command".into()));
        }
        Ok(self.hold_statement())
    }

    /// Counts a statement already admitted by `begin_statement` once more:
    /// for its result stream, which outlives the handler that admitted it.
    pub fn hold_statement(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }
}

pub(crate) struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Serve one workspace until the listener fails.
pub async fn serve(ws: Workspace, opts: &ServeOptions) -> std::io::Result<()> {
    serve_until(vec![ws], opts, std::future::pending()).await
}

/// Serve `workspaces` (each under its id as database name) until `shutdown`
/// completes; then stop accepting, let running statements finish (up to
/// `opts.shutdown_grace`), and close every connection.
pub async fn serve_until(
    workspaces: Vec<Workspace>,
    opts: &ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind((opts.host.as_str(), opts.port)).await?;
    serve_on(listener, workspaces, opts, shutdown).await
}

/// As [`serve_until`], on a listener the caller bound (port 0 for tests).
pub async fn serve_on(
    listener: TcpListener,
    workspaces: Vec<Workspace>,
    opts: &ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    if workspaces.is_empty() {
        return Err(std::io::Error::other("no workspace to serve"));
    }
    let tls = tls_acceptor(opts)?;
    let mut services = HashMap::new();
    // One pool for every statement the server runs, whichever workspace (and
    // whichever door, for workspaces given the same limits: MemoryLimits' clones share it).
    let pool = opts.memory.server_pool();
    for ws in workspaces {
        let memory = MemoryLimits { spill_dir: Some(ws.folder().join("spill")), ..opts.memory.clone() };
        let ctx = server_session(&ws, &memory, pool.clone())
            .map_err(|e| std::io::Error::other(format!("session setup for workspace '{}' failed: {e}", ws.id())))?;
        services.insert(ws.id().to_string(), Arc::new(WorkspaceService::new(ws, Arc::new(ctx), memory)));
    }
    let shared = Arc::new(Shared {
        workspaces: services,
        auth: auth::Authenticator::new(&opts.auth)?,
        connections: Arc::new(ConnectionManager::new()),
        sessions: Default::default(),
        shutting_down: AtomicBool::new(false),
        in_flight: AtomicUsize::new(0),
        idle: Notify::new(),
        timeouts: opts.timeouts.clone(),
    });
    let limiter = (opts.max_connections > 0).then(|| Arc::new(tokio::sync::Semaphore::new(opts.max_connections)));
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (socket, addr) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                let handlers = Arc::new(Handlers::new(shared.clone()));
                let tls = tls.clone();
                let permit = match &limiter {
                    Some(l) => match l.clone().try_acquire_owned() {
                        Ok(p) => Some(p),
                        Err(_) => {
                            // Told why, as Postgres tells it; a cancel request
                            // (which comes on a connection of its own) still works.
                            tracing::warn!("connection from {addr} refused: {} connections open", opts.max_connections);
                            connections.spawn(async move {
                                let _ = connection::refuse(socket, tls, handlers, "53300", "sorry, too many clients already").await;
                            });
                            continue;
                        }
                    },
                    None => None,
                };
                connections.spawn(async move {
                    let _permit = permit;
                    if let Err(e) = connection::serve_connection(socket, tls, handlers).await {
                        tracing::debug!("connection from {addr} ended: {e}");
                    }
                });
                // Reap finished connections so the set does not grow.
                while connections.try_join_next().is_some() {}
            }
        }
    }
    // Graceful shutdown: no new connections or statements; running ones finish.
    drop(listener);
    shared.shutting_down.store(true, Ordering::Release);
    let drained = async {
        loop {
            let idle = shared.idle.notified();
            if shared.in_flight.load(Ordering::Acquire) == 0 {
                break;
            }
            idle.await;
        }
    };
    let _ = tokio::time::timeout(opts.shutdown_grace, drained).await;
    connections.shutdown().await;
    Ok(())
}

/// The session a workspace is served with: the workspace's tables, functions
/// and settings, plus pg_catalog and the compatibility functions clients need,
/// in a state of its own. Serving never changes the workspace's own session
/// (what `ws.sql()` sees): the default catalog is a new one holding the
/// workspace's schemas (the same schema providers, so entities registered
/// later appear here too) and this session's pg_catalog. Its statements draw
/// memory from the server's `pool` and spill into `memory.spill_dir`.
fn server_session(
    ws: &Workspace,
    memory: &MemoryLimits,
    pool: Arc<dyn datafusion::execution::memory_pool::MemoryPool>,
) -> datafusion::error::Result<SessionContext> {
    let state = ws.session().state();
    let runtime = memory.runtime(state.runtime_env(), pool)?;
    let name = state.config().options().catalog.default_catalog.clone();
    let source = state
        .catalog_list()
        .catalog(&name)
        .ok_or_else(|| DataFusionError::Configuration(format!("the workspace has no catalog '{name}'")))?;
    let catalog = MemoryCatalogProvider::new();
    for schema in source.schema_names() {
        if let Some(provider) = source.schema(&schema) {
            catalog.register_schema(&schema, provider)?;
        }
    }
    let catalogs = MemoryCatalogProviderList::new();
    catalogs.register_catalog(name.clone(), Arc::new(catalog));
    let state =
        SessionStateBuilder::new_from_existing(state).with_catalog_list(Arc::new(catalogs)).with_runtime_env(runtime).build();
    let ctx = SessionContext::new_with_state(state);
    setup_pg_catalog(&ctx, &name, EmptyContextProvider).map_err(|e| *e)?;
    compat::register(&ctx);
    describe::register(&ctx, ws)?;
    Ok(ctx)
}

/// TLS that cannot be set up stops the server; it never falls back to plaintext.
fn tls_acceptor(opts: &ServeOptions) -> std::io::Result<Option<TlsAcceptor>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = match (&opts.tls_cert, &opts.tls_key) {
        (Some(c), Some(k)) => (c, k),
        (None, None) => return Ok(None),
        _ => return Err(std::io::Error::other("TLS needs both a certificate and a key")),
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| std::io::Error::other(format!("TLS certificate {cert}: {e}")))?;
    if certs.is_empty() {
        return Err(std::io::Error::other(format!("TLS certificate {cert}: no certificate found")));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| std::io::Error::other(format!("TLS key {key}: {e}")))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| std::io::Error::other(format!("TLS: {e}")))?;
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

pub(crate) fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), code.into(), message)))
}

pub(crate) fn fatal_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("FATAL".into(), code.into(), message)))
}

/// Gives errors raised inside datafusion-postgres (the SQL parser's, and
/// DataFusion's planning and execution errors) the SQLSTATE of their kind,
/// instead of the internal-error code they arrive with.
pub(crate) struct SqlStateErrors;

impl datafusion_postgres::pgwire::api::ErrorHandler for SqlStateErrors {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: datafusion_postgres::pgwire::api::ClientInfo,
    {
        // A DataFusion error becomes a workspace error, which also unwraps our
        // own errors carried through it (their message without DataFusion's
        // "External error" prefix); the parser's errors are classified as they are.
        *error = match std::mem::replace(error, PgWireError::QueryCanceled) {
            PgWireError::ApiError(inner) => {
                let e = match inner.downcast::<DataFusionError>() {
                    Ok(df) => Error::from(*df),
                    Err(other) => Error::new(heavenbase::kind_of(other.as_ref()), other.to_string()),
                };
                to_pg_error(e)
            }
            other => other,
        };
        // A message may quote what the client sent (a value, a parameter's
        // bytes); the protocol ends each field at a NUL byte, so one inside
        // would make the client misread the rest of the message.
        if let PgWireError::UserError(info) = error {
            for text in std::iter::once(&mut info.message).chain(info.detail.as_mut()).chain(info.hint.as_mut()) {
                if text.contains('\0') {
                    *text = text.replace('\0', "\\0");
                }
            }
        }
    }
}

/// Workspace errors as Postgres errors: the SQLSTATE is the error kind's.
pub fn to_pg_error(e: Error) -> PgWireError {
    user_error(e.sqlstate(), e.to_string())
}
