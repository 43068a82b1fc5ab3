//! HeavenBase over the Model Context Protocol: a [`Workspace`]'s entities as
//! tools and resources an agent host (an IDE, Claude Desktop, an agent
//! framework) can discover and call.
//!
//! One server type, [`WorkspaceServer`], answers every MCP request; two
//! transports carry it: stdio ([`serve_stdio`], the host starts `hb mcp stdio`)
//! and streamable HTTP ([`serve_http`], `POST /mcp`, loopback by default, an
//! optional bearer token). What a client may call is its [`Profile`]'s tool set.
//!
//! Errors are tool results with `isError: true` whose text is the message the
//! Rust API gives (entity, field, value, did-you-mean); a panic in a tool is that
//! call's error, never the server's end. Results are capped at a row limit and
//! say so (`truncated: true`).

mod http;
mod profile;
mod resources;
mod tools;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use heavenbase::Workspace;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig,
    SubscriptionFilter,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};

pub use http::{HttpOptions, bind_http, serve_http, serve_http_on, serve_http_until};
pub use profile::Profile;

/// Rows a `query` or `sql` result carries at most unless the server is told
/// otherwise: enough for an agent to read, small enough for its context.
pub const DEFAULT_MAX_ROWS: usize = 200;

/// The default port of `hb mcp serve` (the reference's).
pub const DEFAULT_PORT: u16 = 7001;

/// An MCP server over one workspace: every request of every session.
#[derive(Clone)]
pub struct WorkspaceServer {
    inner: Arc<ServerState>,
}

struct ServerState {
    ws: Workspace,
    profile: Profile,
    max_rows: usize,
    /// Schema versions taken when a subscription was accepted, before its
    /// acknowledgment went out, oldest first; each `listen` starts from one.
    /// Taken later, in `listen`, a change the client makes right after the
    /// acknowledgment could already be counted and never announced.
    listen_baselines: Mutex<VecDeque<u64>>,
}

impl WorkspaceServer {
    pub fn new(ws: Workspace, profile: Profile) -> Self {
        Self::with_max_rows(ws, profile, DEFAULT_MAX_ROWS)
    }

    /// `max_rows`: the most rows one `query` or `sql` result carries (at least 1).
    pub fn with_max_rows(ws: Workspace, profile: Profile, max_rows: usize) -> Self {
        WorkspaceServer {
            inner: Arc::new(ServerState {
                ws,
                profile,
                max_rows: max_rows.max(1),
                listen_baselines: Mutex::new(VecDeque::new()),
            }),
        }
    }

    fn baselines(&self) -> std::sync::MutexGuard<'_, VecDeque<u64>> {
        self.inner.listen_baselines.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn workspace(&self) -> &Workspace {
        &self.inner.ws
    }

    pub fn profile(&self) -> Profile {
        self.inner.profile
    }

    /// The tools this server's profile offers, with their input schemas.
    pub fn tools(&self) -> Vec<rmcp::model::Tool> {
        tools::definitions(self.inner.profile)
    }

    /// Run one tool as a client's `tools/call` would, without a transport.
    pub async fn call(&self, name: &str, arguments: serde_json::Value) -> rmcp::model::CallToolResult {
        tools::call(&self.inner, name, arguments).await
    }
}

impl ServerHandler for WorkspaceServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities =
            ServerCapabilities::builder().enable_tools().enable_resources().enable_resources_list_changed().build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(format!("heavenbase-{}", self.inner.ws.id()), env!("CARGO_PKG_VERSION")))
            .with_instructions(format!(
                "HeavenBase workspace '{}'. Every entity is a table of rows keyed by object_id. Start with list_entities \
                 and describe_entity; read with get/query (the JSON query language: filter, select, order, limit, near, search, hybrid) \
                 or sql; profile '{}'.",
                self.inner.ws.id(),
                self.inner.profile.name()
            ))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        self.tools().into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !self.inner.profile.offers(&request.name) {
            // A tool the client was never offered is a protocol error (the
            // specification's rule); `WorkspaceServer::call` answers it as a result.
            return Err(ErrorData::invalid_params(self.inner.profile.unknown_tool(&request.name), None));
        }
        let before = self.inner.ws.schema_version();
        let arguments = request.arguments.map(serde_json::Value::Object).unwrap_or_else(|| serde_json::json!({}));
        let result = tools::call(&self.inner, &request.name, arguments).await;
        if self.inner.ws.schema_version() != before {
            // Sessions of protocol versions before 2026-07-28 take the
            // notification unasked; newer ones through subscriptions/listen.
            let _ = context.peer.notify_resource_list_changed().await;
        }
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(resources::list(&self.inner.ws)))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(resources::templates(&self.inner.ws)))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        resources::read(&self.inner.ws, &request.uri).map(Into::into)
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        let mut accepted = SubscriptionFilter::new();
        accepted.resources_list_changed = requested.resources_list_changed;
        self.baselines().push_back(self.inner.ws.schema_version());
        Some(accepted)
    }

    /// A subscription hears `resources/list_changed` whenever the workspace's
    /// schema changes, through any door (a psql `CREATE TABLE` included).
    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        // Concurrent subscriptions may take each other's baselines; the oldest
        // one is never later than this subscription's own, so the worst case
        // is one notification too many, never one missed.
        let baseline = self.baselines().pop_front();
        let mut seen = baseline.unwrap_or_else(|| self.inner.ws.schema_version());
        loop {
            tokio::select! {
                _ = context.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    let now = self.inner.ws.schema_version();
                    if now != seen {
                        seen = now;
                        if context.sink().notify_resource_list_changed().await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
}

/// Serve `ws` over stdin/stdout until the client closes them.
pub async fn serve_stdio(ws: Workspace, profile: Profile) -> Result<(), String> {
    serve_stdio_with(WorkspaceServer::new(ws, profile)).await
}

/// [`serve_stdio`] for a server built with its own row limit.
pub async fn serve_stdio_with(server: WorkspaceServer) -> Result<(), String> {
    let running = server.serve(rmcp::transport::stdio()).await.map_err(|e| format!("MCP over stdio: {e}"))?;
    running.waiting().await.map_err(|e| format!("MCP over stdio: {e}"))?;
    Ok(())
}

/// The client configuration (`{"mcpServers": {...}}`) an agent host takes, for
/// both transports: `hb mcp stdio` started by the host (`command` is the `hb`
/// to start), and the HTTP endpoint.
pub fn client_config(command: &str, ws_id: &str, profile: Profile, host: &str, port: u16, token: bool) -> serde_json::Value {
    let name = format!("heavenbase-{ws_id}");
    let mut http = serde_json::json!({"type": "http", "url": format!("http://{host}:{port}/mcp")});
    if token {
        http["headers"] = serde_json::json!({"Authorization": "Bearer ${HEAVENBASE_MCP_TOKEN}"});
    }
    serde_json::json!({
        "mcpServers": {
            name.clone(): {
                "type": "stdio",
                "command": command,
                "args": ["mcp", "stdio", "-w", ws_id, "--profile", profile.name()],
            },
            format!("{name}-http"): http,
        }
    })
}
