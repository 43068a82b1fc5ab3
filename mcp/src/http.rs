//! Streamable HTTP: `POST /mcp` (and its GET/DELETE session requests), on
//! loopback unless told otherwise, behind an optional bearer token.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use heavenbase::Workspace;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::{DEFAULT_MAX_ROWS, DEFAULT_PORT, Profile, WorkspaceServer};

#[derive(Clone, Debug)]
pub struct HttpOptions {
    pub host: String,
    /// 0 picks a free port (the bound address is printed and returned).
    pub port: u16,
    pub profile: Profile,
    /// When set, every request needs `Authorization: Bearer <token>`; others get 401.
    pub token: Option<String>,
    pub max_rows: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            host: "127.0.0.1".into(),
            port: DEFAULT_PORT,
            profile: Profile::default(),
            token: None,
            max_rows: DEFAULT_MAX_ROWS,
        }
    }
}

/// Serve `ws` over streamable HTTP at `http://host:port/mcp` until the process ends.
pub async fn serve_http(ws: Workspace, opts: &HttpOptions) -> Result<(), String> {
    serve_http_until(ws, opts, std::future::pending(), |_| {}).await
}

/// [`serve_http`] until `shutdown` completes; `bound` hears the address
/// actually bound (useful with port 0).
pub async fn serve_http_until(
    ws: Workspace,
    opts: &HttpOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
    bound: impl FnOnce(std::net::SocketAddr),
) -> Result<(), String> {
    let listener = bind_http(opts).await?;
    bound(listener.local_addr().map_err(|e| e.to_string())?);
    serve_http_on(listener, ws, opts, shutdown).await
}

/// Bind the MCP endpoint's socket, so a caller can report a taken port before
/// it starts anything else.
pub async fn bind_http(opts: &HttpOptions) -> Result<tokio::net::TcpListener, String> {
    let loopback = matches!(opts.host.as_str(), "localhost" | "127.0.0.1" | "::1");
    if !loopback && opts.token.is_none() {
        // Safe by default: beyond this machine, every request must carry a token.
        return Err(format!(
            "MCP over HTTP on {} needs a bearer token (--token or HEAVENBASE_MCP_TOKEN); loopback serves without one",
            opts.host
        ));
    }
    tokio::net::TcpListener::bind((opts.host.as_str(), opts.port))
        .await
        .map_err(|e| format!("MCP over HTTP: cannot bind {}:{}: {e}", opts.host, opts.port))
}

/// Serve MCP on a socket [`bind_http`] bound, until `shutdown` completes.
pub async fn serve_http_on(
    listener: tokio::net::TcpListener,
    ws: Workspace,
    opts: &HttpOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let cancel = CancellationToken::new();
    let server = WorkspaceServer::with_max_rows(ws, opts.profile, opts.max_rows);
    // Host validation guards a loopback server against DNS rebinding; a server
    // bound elsewhere on purpose accepts the name it was bound to as well.
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if !hosts.contains(&opts.host) {
        hosts.push(opts.host.clone());
    }
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_json_response(true)
        .with_cancellation_token(cancel.clone());
    let service: StreamableHttpService<WorkspaceServer, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(server.clone()), Arc::new(LocalSessionManager::default()), config);
    let mut router = axum::Router::new().nest_service("/mcp", service);
    if let Some(token) = &opts.token {
        router = router.layer(axum::middleware::from_fn_with_state(Arc::new(token.clone()), require_token));
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            cancel.cancel();
        })
        .await
        .map_err(|e| format!("MCP over HTTP: {e}"))
}

/// 401 unless the request carries the server's bearer token.
async fn require_token(State(token): State<Arc<String>>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    if given.is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes())) {
        return next.run(request).await;
    }
    let mut response = (StatusCode::UNAUTHORIZED, "missing or wrong bearer token (Authorization: Bearer …)").into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Compare secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
