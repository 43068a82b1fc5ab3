//! The Postgres-wire endpoint: psql, BI tools and drivers talk to a workspace.
//!
//! Built on datafusion-postgres (pg_catalog, SET/SHOW, transactions, cursors)
//! over the workspace's own `SessionContext`. Writes go through the workspace
//! write path: INSERT lands in the entity tables' `insert_into`; UPDATE, DELETE
//! and CREATE TABLE are intercepted here and run by `Workspace::sql`, which plans
//! their WHERE clauses as SELECTs (so a subquery never widens a DELETE).
//!
//! Transactions: BEGIN/COMMIT/ROLLBACK are accepted and answered with the right
//! status, but each statement commits on its own; there are no cross-backend
//! transactions (see docs/design.md).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::{DFSchema, ParamValues};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::{context::EmptyContextProvider, setup_pg_catalog};
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::DfSessionService;
use datafusion_postgres::pgwire::api::auth::StartupHandler;
use datafusion_postgres::pgwire::api::auth::noop::NoopStartupHandler;
use datafusion_postgres::pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::{ClientInfo, ConnectionManager, PgWireServerHandlers};
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use futures::Sink;
use datafusion_postgres::pgwire::api::results::{Response, Tag};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::{QueryHook, ServerOptions};
use heavenbase::{Error, Workspace};

pub const DEFAULT_PORT: u16 = 5433;

/// Where and how to listen. Loopback by default.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub host: String,
    pub port: u16,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// 0 means no limit.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions { host: "127.0.0.1".into(), port: DEFAULT_PORT, tls_cert: None, tls_key: None, max_connections: 0 }
    }
}

/// Serve `ws` until the task is dropped or the listener fails.
pub async fn serve(ws: Workspace, opts: &ServeOptions) -> std::io::Result<()> {
    let ctx = Arc::new(ws.session().clone());
    let catalog = ctx.state().config().options().catalog.default_catalog.clone();
    setup_pg_catalog(&ctx, &catalog, EmptyContextProvider)
        .map_err(|e| std::io::Error::other(format!("pg_catalog setup failed: {e}")))?;
    // TLS that cannot be set up stops the server; it never falls back to plaintext.
    if let (Some(cert), Some(key)) = (&opts.tls_cert, &opts.tls_key) {
        for path in [cert, key] {
            std::fs::metadata(path).map_err(|e| std::io::Error::other(format!("TLS file {path}: {e}")))?;
        }
    } else if opts.tls_cert.is_some() || opts.tls_key.is_some() {
        return Err(std::io::Error::other("TLS needs both a certificate and a key"));
    }
    let server = ServerOptions::new()
        .with_host(opts.host.clone())
        .with_port(opts.port)
        .with_tls_cert_path(opts.tls_cert.clone())
        .with_tls_key_path(opts.tls_key.clone())
        .with_max_connections(opts.max_connections);
    let database = ws.id().to_string();
    let hooks: Vec<Arc<dyn QueryHook>> = vec![
        Arc::new(WorkspaceWrites { ws }),
        Arc::new(CursorStatementHook),
        Arc::new(SetShowHook),
        Arc::new(TransactionStatementHook),
    ];
    let connections = Arc::new(ConnectionManager::new());
    let handlers = Arc::new(Handlers {
        session: Arc::new(DfSessionService::new_with_hooks(ctx, hooks)),
        startup: Arc::new(WorkspaceStartup { database, connections: connections.clone() }),
        cancel: Arc::new(DefaultCancelHandler::new(connections)),
    });
    datafusion_postgres::serve_with_handlers(handlers, &server).await
}

/// The connection's database name must be the workspace id, as a database name
/// selects a database in Postgres; anything else is refused with 3D000.
struct WorkspaceStartup {
    database: String,
    connections: Arc<ConnectionManager>,
}

#[async_trait]
impl NoopStartupHandler for WorkspaceStartup {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.connections.clone())
    }

    async fn post_startup<C>(&self, client: &mut C, _message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // Postgres defaults the database to the user name.
        let metadata = client.metadata();
        let requested = metadata.get("database").or_else(|| metadata.get("user")).cloned().unwrap_or_default();
        if requested != self.database {
            return Err(user_error(
                "3D000",
                format!("database \"{requested}\" does not exist; this server serves workspace \"{}\"", self.database),
            ));
        }
        Ok(())
    }
}

struct Handlers {
    session: Arc<DfSessionService>,
    startup: Arc<WorkspaceStartup>,
    cancel: Arc<DefaultCancelHandler>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.session.clone()
    }
    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.session.clone()
    }
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }
    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }
}

/// Routes UPDATE, DELETE and CREATE TABLE to the workspace.
struct WorkspaceWrites {
    ws: Workspace,
}

fn is_workspace_write(s: &Statement) -> bool {
    matches!(s, Statement::Update(_) | Statement::Delete(_) | Statement::CreateTable(_))
}

impl WorkspaceWrites {
    async fn run(&self, statement: &Statement) -> PgWireResult<Response> {
        let sql = statement.to_string();
        let batches = self.ws.sql(&sql).await.map_err(to_pg_error)?;
        let count = batches
            .first()
            .filter(|b| b.num_rows() == 1 && b.num_columns() == 1)
            .and_then(|b| b.column(0).as_any().downcast_ref::<datafusion::arrow::array::UInt64Array>().map(|a| a.value(0)))
            .unwrap_or(0) as usize;
        Ok(Response::Execution(match statement {
            Statement::Update(_) => Tag::new("UPDATE").with_rows(count),
            Statement::Delete(_) => Tag::new("DELETE").with_rows(count),
            _ => Tag::new("CREATE TABLE"),
        }))
    }
}

#[async_trait]
impl QueryHook for WorkspaceWrites {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if !is_workspace_write(statement) {
            return None;
        }
        Some(self.run(statement).await)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        if !is_workspace_write(statement) {
            return None;
        }
        // UPDATE and DELETE are described by the SELECT that picks their rows, so
        // their placeholders get types; the statement itself runs at execute time.
        if let Some(select) = heavenbase::dml_select_sql(statement) {
            return Some(
                ctx.state()
                    .create_logical_plan(&select)
                    .await
                    .map_err(|e| user_error("42601", format!("{statement}: {e}"))),
            );
        }
        Some(Ok(LogicalPlan::EmptyRelation(EmptyRelation { produce_one_row: false, schema: Arc::new(DFSchema::empty()) })))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if !is_workspace_write(statement) {
            return None;
        }
        let bound = match bind_parameters(statement, params) {
            Ok(b) => b,
            Err(e) => return Some(Err(e)),
        };
        Some(self.run(&bound).await)
    }
}

/// The statement with `$n` replaced by its bound value, as a SQL literal.
fn bind_parameters(statement: &Statement, params: &ParamValues) -> PgWireResult<Statement> {
    use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, Value, visit_expressions_mut};
    let ParamValues::List(values) = params else {
        return Err(user_error("0A000", "named parameters are not supported".into()));
    };
    let mut bound = statement.clone();
    let mut failure = None;
    let _ = visit_expressions_mut(&mut bound, |e| {
        if let SqlExpr::Value(v) = e {
            if let Value::Placeholder(p) = &v.value {
                match p.trim_start_matches('$').parse::<usize>().ok().and_then(|i| values.get(i.wrapping_sub(1))) {
                    Some(value) => *e = sql_literal(&value.value),
                    None => failure = Some(user_error("08P01", format!("no value bound for parameter {p}"))),
                }
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    match failure {
        Some(f) => Err(f),
        None => Ok(bound),
    }
}

/// A bound value as a SQL literal: numbers and booleans as they are, NULL, and
/// everything else as a quoted string that the write path coerces to the column type.
fn sql_literal(v: &datafusion::scalar::ScalarValue) -> datafusion::sql::sqlparser::ast::Expr {
    use datafusion::scalar::ScalarValue as S;
    use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, Value};
    let value = match v {
        v if v.is_null() => Value::Null,
        S::Boolean(Some(b)) => Value::Boolean(*b),
        S::Int8(_) | S::Int16(_) | S::Int32(_) | S::Int64(_) | S::UInt8(_) | S::UInt16(_) | S::UInt32(_) | S::UInt64(_)
        | S::Float32(_) | S::Float64(_) => Value::Number(v.to_string(), false),
        other => Value::SingleQuotedString(other.to_string()),
    };
    SqlExpr::value(value)
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), code.into(), message)))
}

/// Workspace errors as Postgres errors with the matching SQLSTATE.
pub fn to_pg_error(e: Error) -> PgWireError {
    let message = e.to_string();
    let code = match &e {
        Error::Conflict(m) if m.contains("unique") || m.contains("already exists") => "23505",
        Error::Conflict(_) => "42P07",
        Error::NotFound(m) if m.contains("entity") => "42P01",
        Error::NotFound(_) => "3D000",
        Error::Invalid(m) if m.contains("syntax") => "42601",
        Error::Invalid(m) if m.contains("Unknown column") || m.contains("Unknown field") => "42703",
        Error::Invalid(_) => "22P02",
        Error::Catalog(_) => "22P02",
        Error::Query(_) | Error::Backend(_) | Error::Io(_) => "XX000",
    };
    user_error(code, message)
}
