//! Per-connection dispatch to the workspace the connection chose, a cache of
//! parsed and planned statements, and a fast path for lookups by key.
//!
//! datafusion-postgres plans every statement anew: parsing, planning and
//! optimising cost far more than a lookup by object_id itself. Two things here
//! keep point queries cheap:
//! - Parsed statements (the SQL AST and its unoptimised logical plan) are cached
//!   by SQL text per workspace, so a driver that sends Parse for every execution
//!   (pgbench's extended mode, most ORMs) pays for planning once. The cache is
//!   dropped whenever the workspace's tables change (`schema_version`).
//! - A statement whose plan is `SELECT <columns> FROM <table> WHERE <text column>
//!   = <$n or literal>`, where the table takes that filter exactly (an entity's
//!   object_id, or a column its backend filters itself), skips the optimiser and
//!   the executor: the table is scanned once with that filter and the rows are
//!   encoded directly.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::collect;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::DfSessionService;
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion_postgres::hooks::QueryHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::pgwire::api::auth::StartupHandler;
use datafusion_postgres::pgwire::api::cancel::CancelHandler;
use datafusion_postgres::pgwire::api::copy::CopyHandler;
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use datafusion_postgres::pgwire::api::stmt::QueryParser;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{ClientInfo, ClientPortalStore, ErrorHandler, PgWireServerHandlers, Type};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use futures::{Sink, SinkExt, StreamExt};
use heavenbase::Workspace;
use heavenbase::catalog::types::canonical_uuid;
use parking_lot::Mutex;

use crate::auth::ConnectionStartup;
use crate::cancel::Cancel;
use crate::copy::{CopyHook, CopyIn};
use crate::encode::{EncodedQueries, declared_types, encode_batch, with_declared_types};
use crate::writes::{ReadOnlyGuard, WorkspaceWrites};
use crate::{Shared, SqlStateErrors, fatal_error};

/// What datafusion-postgres keeps for a parsed statement: the SQL it re-rendered,
/// and the statement with its unoptimised plan.
pub(crate) type DfStatement = (String, Option<(Statement, LogicalPlan)>);

/// Statements cached per workspace before the cache starts over.
const CACHE_CAPACITY: usize = 1024;

/// A connection's choice, stored in its session extensions at startup.
pub(crate) struct Session {
    pub service: Arc<WorkspaceService>,
    pub read_only: bool,
    /// The result formats of the portal being executed, for the query hook
    /// that encodes results itself (hooks are not told the portal).
    pub result_formats: Mutex<Option<Format>>,
    /// A counter bumped by each CancelRequest for this session (see `cancel.rs`).
    pub cancel: tokio::sync::watch::Sender<u64>,
    /// For the in-flight count of statements whose rows are still streaming.
    pub shared: Arc<Shared>,
    /// The open transaction block, if any (see `transactions.rs`).
    pub txn: Mutex<Option<heavenbase::Transaction>>,
    /// SQL-level prepared statements (see `prepared.rs`).
    pub prepared: Mutex<crate::prepared::Prepared>,
    /// The open block's access mode and isolation (see `transactions.rs`).
    pub modes: Mutex<crate::transactions::BlockModes>,
}

impl Session {
    /// The workspace handle statements run on: the open block's, or the workspace's.
    pub fn workspace(&self) -> Workspace {
        match self.txn.lock().as_ref() {
            Some(tx) => tx.workspace().clone(),
            None => self.service.ws.clone(),
        }
    }

    /// The SQL session statements run in: the open block's, or the server's.
    pub fn context(&self) -> SessionContext {
        match self.txn.lock().as_ref() {
            Some(tx) => tx.session().clone(),
            None => self.service.ctx.as_ref().clone(),
        }
    }

    pub fn in_block(&self) -> bool {
        self.txn.lock().is_some()
    }
}

pub(crate) fn session<C: ClientInfo + ?Sized>(client: &C) -> PgWireResult<Arc<Session>> {
    client
        .session_extensions()
        .get::<Session>()
        .ok_or_else(|| fatal_error("08P01", "the connection has not chosen a workspace".into()))
}

/// One served workspace.
pub(crate) struct WorkspaceService {
    pub ws: Workspace,
    pub df: Arc<DfSessionService>,
    /// The server's session for this workspace (transaction blocks start from it).
    pub ctx: Arc<SessionContext>,
    cache: Mutex<StatementCache>,
    /// The server's memory limits (its per-statement budget; see `heavenbase::memory`).
    pub memory: heavenbase::memory::MemoryLimits,
    /// For lookup scans: copying the session state per lookup costs more than
    /// the lookup, and a keyed scan reads nothing from it but the task context.
    lookup_state: datafusion::execution::SessionState,
    /// Made once: each `SessionState::task_ctx()` copies every function
    /// registry of the session (a few hundred entries) per call.
    lookup_task: Arc<datafusion::execution::TaskContext>,
}

#[derive(Default)]
struct StatementCache {
    version: u64,
    parsed: HashMap<String, DfStatement>,
    /// Keyed by the re-rendered SQL a portal carries; None: not a lookup.
    lookups: HashMap<String, Option<Arc<Lookup>>>,
}

impl StatementCache {
    /// Forget everything planned against an older set of tables.
    fn at(&mut self, version: u64) -> &mut Self {
        if self.version != version || self.parsed.len() + self.lookups.len() > 2 * CACHE_CAPACITY {
            self.parsed.clear();
            self.lookups.clear();
            self.version = version;
        }
        self
    }
}

/// A lookup by one text column, answered by a single filtered table scan.
pub(crate) struct Lookup {
    table: Arc<dyn TableProvider>,
    projection: Vec<usize>,
    schema: SchemaRef,
    column: String,
    /// The key column is an int8 (a declared integer primary key), not a text.
    integer: bool,
    /// The key column is a Uuid field: its key is read as a uuid (canonical).
    uuid: bool,
    key: Key,
    /// The types projected Json and Uuid fields are announced with.
    declared: Vec<Option<Type>>,
}

enum Key {
    /// `$n`, zero-based.
    Parameter(usize),
    Literal(String),
}

impl WorkspaceService {
    pub fn new(ws: Workspace, ctx: Arc<SessionContext>, memory: heavenbase::memory::MemoryLimits) -> Self {
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            // First: a failed block refuses everything but its end.
            Arc::new(crate::transactions::Transactions),
            Arc::new(ReadOnlyGuard),
            Arc::new(CopyHook),
            Arc::new(WorkspaceWrites),
            Arc::new(crate::transactions::BlockInserts),
            Arc::new(crate::transactions::SessionCursors),
            Arc::new(crate::limits::TimeoutSettings),
            Arc::new(crate::compat::ShowSettings),
            Arc::new(crate::settings::Settings),
            Arc::new(SetShowHook),
            // Last: every query no other hook answered.
            Arc::new(EncodedQueries),
        ];
        let df = Arc::new(DfSessionService::new_with_hooks(ctx.clone(), hooks));
        let lookup_state = ctx.state();
        let lookup_task = lookup_state.task_ctx();
        WorkspaceService { ws, df, ctx, memory, cache: Mutex::new(StatementCache::default()), lookup_state, lookup_task }
    }

    async fn parse<C>(&self, client: &C, sql: &str, types: &[Option<Type>]) -> PgWireResult<DfStatement>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let version = self.ws.schema_version();
        if let Some(hit) = self.cache.lock().at(version).parsed.get(sql) {
            return Ok(hit.clone());
        }
        // Before anything parses it (the parser's time can grow exponentially with nesting).
        heavenbase::check_nesting(sql).map_err(crate::to_pg_error)?;
        let rewritten = crate::rewrite::rewrite_for(&self.ws, sql).map_err(crate::to_pg_error)?;
        let mut parsed = self.df.query_parser().parse_sql(client, rewritten.as_deref().unwrap_or(sql), types).await?;
        // `$n` arguments of table functions get their types where
        // datafusion-postgres numbers and decodes parameters.
        // Columns that share a name (`SELECT 1, 2`) show it, each (heavenbase::colnames).
        if let Some((Statement::Query(_), plan)) = &mut parsed.1 {
            let typed = heavenbase::type_table_function_parameters(plan.clone());
            *plan =
                typed.and_then(heavenbase::colnames::restore_repeated_names).map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        }
        // Only queries: SET, SHOW, cursors and writes are cheap to parse or
        // depend on the session, and the read-only guard runs at parse time.
        if matches!(&parsed.1, Some((Statement::Query(_), _))) {
            self.cache.lock().at(version).parsed.insert(sql.to_string(), parsed.clone());
        }
        Ok(parsed)
    }

    fn lookup(&self, statement: &DfStatement) -> Option<Arc<Lookup>> {
        let version = self.ws.schema_version();
        let mut cache = self.cache.lock();
        let cache = cache.at(version);
        if let Some(known) = cache.lookups.get(&statement.0) {
            return known.clone();
        }
        let found = match &statement.1 {
            Some((Statement::Query(_), plan)) => lookup_of(plan).map(Arc::new),
            _ => None,
        };
        cache.lookups.insert(statement.0.clone(), found.clone());
        found
    }

    /// Answer a portal by the lookup fast path, or None to take the general one.
    async fn try_lookup<C>(&self, client: &C, portal: &Portal<DfStatement>) -> PgWireResult<Option<Response>>
    where
        C: ClientInfo,
    {
        // A block's reads must see its own writes: the general path lays them over.
        if session(client)?.in_block() {
            return Ok(None);
        }
        let Some(lookup) = self.lookup(&portal.statement.statement) else { return Ok(None) };
        let value: Option<ScalarValue> = match &lookup.key {
            Key::Literal(s) if lookup.integer => match s.parse::<i64>() {
                Ok(n) => Some(ScalarValue::Int64(Some(n))),
                Err(_) => return Ok(None),
            },
            Key::Literal(s) if lookup.uuid => match canonical_uuid(s) {
                Some(key) => Some(ScalarValue::Utf8(Some(key))),
                // Refused (22P02) by the general path.
                None => return Ok(None),
            },
            Key::Literal(s) => Some(ScalarValue::Utf8(Some(s.clone()))),
            Key::Parameter(i) => {
                let declared = portal.statement.parameter_types.get(*i).cloned().flatten();
                match portal.parameters.get(*i) {
                    Some(Some(bytes)) => {
                        match key_parameter(lookup.integer, declared, portal.parameter_format.is_binary(*i), bytes) {
                            // Text given for a uuid key is read as a uuid.
                            Some(ScalarValue::Utf8(Some(text))) if lookup.uuid => match canonical_uuid(&text) {
                                Some(key) => Some(ScalarValue::Utf8(Some(key))),
                                None => return Ok(None),
                            },
                            Some(v) => Some(v),
                            // Anything else is converted (or refused) by the general path.
                            None => return Ok(None),
                        }
                    }
                    // `= NULL` matches nothing.
                    Some(None) => None,
                    None => return Ok(None),
                }
            }
        };
        let format = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let fields = arrow_schema_to_pg_fields(&lookup.schema, &portal.result_column_format, Some(format))?;
        let fields: Arc<Vec<FieldInfo>> = Arc::new(with_declared_types(fields, &lookup.declared));
        let mut rows = Vec::new();
        if let Some(value) = value {
            let filter = Expr::Column(Column::from_name(&lookup.column)).eq(Expr::Literal(value, None));
            let state = &self.lookup_state;
            let plan = lookup
                .table
                .scan(state, Some(&lookup.projection), &[filter], None)
                .await
                .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
            let batches = collect(plan, self.lookup_task.clone()).await.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
            for batch in batches {
                rows.extend(encode_batch(&fields, batch));
            }
        }
        Ok(Some(Response::Query(QueryResponse::new(fields, futures::stream::iter(rows)))))
    }
}

/// `Projection(columns) <- Filter(text column = $n | 'literal') <- TableScan`,
/// where the table takes the filter exactly.
fn lookup_of(plan: &LogicalPlan) -> Option<Lookup> {
    let LogicalPlan::Projection(projection) = plan else { return None };
    let LogicalPlan::Filter(filter) = projection.input.as_ref() else { return None };
    let LogicalPlan::TableScan(scan) = filter.input.as_ref() else { return None };
    if scan.projection.is_some() || !scan.filters.is_empty() || scan.fetch.is_some() {
        return None;
    }
    let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = &filter.predicate else { return None };
    let (column, key) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), k) | (k, Expr::Column(c)) => (c, key_of(k)?),
        _ => return None,
    };
    let table = source_as_provider(&scan.source).ok()?;
    let schema = table.schema();
    let key_index = schema.index_of(&column.name).ok()?;
    let (integer, probe_value) = match schema.field(key_index).data_type() {
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => (false, ScalarValue::Utf8(Some(String::new()))),
        DataType::Int64 => (true, ScalarValue::Int64(Some(0))),
        _ => return None,
    };
    let probe = Expr::Column(Column::from_name(&column.name)).eq(Expr::Literal(probe_value, None));
    if table.supports_filters_pushdown(&[&probe]).ok()?.first() != Some(&TableProviderFilterPushDown::Exact) {
        return None;
    }
    let projection: Vec<usize> = projection
        .expr
        .iter()
        .map(|e| match e {
            Expr::Column(c) => schema.index_of(&c.name).ok(),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let schema = Arc::new(schema.project(&projection).ok()?);
    let declared = declared_types(plan);
    let uuid = (table.as_ref() as &dyn std::any::Any)
        .downcast_ref::<heavenbase::EntityTable>()
        .and_then(|t| t.def().get(&column.name))
        .is_some_and(|f| f.ty == heavenbase::LogicalType::Uuid);
    Some(Lookup { table, projection, schema, column: column.name.clone(), integer, uuid, key, declared })
}

/// A bound key parameter as the lookup's literal, or None where the general
/// path must convert it: text keys take text-typed parameters (UTF-8 in both
/// formats); integer keys take int2/int4/int8 (binary, big-endian) or an
/// untyped or integer parameter in text format.
fn key_parameter(integer: bool, declared: Option<Type>, binary: bool, bytes: &[u8]) -> Option<ScalarValue> {
    let declared = declared.unwrap_or(Type::UNKNOWN);
    if !integer {
        if declared == Type::UUID {
            // A Uuid key is stored canonical (uuid_params reads the others).
            return Some(ScalarValue::Utf8(Some(crate::uuid_params::canonical_text(bytes, binary)?)));
        }
        if !matches!(declared, Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN) {
            return None;
        }
        return Some(ScalarValue::Utf8(Some(std::str::from_utf8(bytes).ok()?.to_string())));
    }
    let n = match (binary, declared) {
        (true, Type::INT8) => i64::from_be_bytes(bytes.try_into().ok()?),
        (true, Type::INT4) => i64::from(i32::from_be_bytes(bytes.try_into().ok()?)),
        (true, Type::INT2) => i64::from(i16::from_be_bytes(bytes.try_into().ok()?)),
        (false, Type::INT8 | Type::INT4 | Type::INT2 | Type::UNKNOWN | Type::TEXT) => {
            std::str::from_utf8(bytes).ok()?.trim().parse().ok()?
        }
        _ => return None,
    };
    Some(ScalarValue::Int64(Some(n)))
}

fn key_of(e: &Expr) -> Option<Key> {
    match e {
        Expr::Placeholder(p) => {
            let n: usize = p.id.trim_start_matches('$').parse().ok()?;
            Some(Key::Parameter(n.checked_sub(1)?))
        }
        Expr::Literal(ScalarValue::Utf8(Some(s)), _) => Some(Key::Literal(s.clone())),
        Expr::Literal(ScalarValue::Int64(Some(n)), _) => Some(Key::Literal(n.to_string())),
        _ => None,
    }
}

/// The per-connection handler set pgwire asks for.
pub(crate) struct Handlers {
    startup: Arc<ConnectionStartup>,
    router: Arc<Router>,
    copy: Arc<CopyIn>,
    cancel: Arc<Cancel>,
}

impl Handlers {
    pub fn new(shared: Arc<Shared>) -> Self {
        let fallback = shared.workspaces.values().next().expect("at least one workspace").df.query_parser();
        Handlers {
            startup: Arc::new(ConnectionStartup::new(shared.clone())),
            cancel: Arc::new(Cancel { shared: shared.clone() }),
            copy: Arc::new(CopyIn),
            router: Arc::new(Router { shared, parser: Arc::new(RouterParser { fallback }) }),
        }
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.router.clone()
    }
    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.router.clone()
    }
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }
    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.copy.clone()
    }
    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }
    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(SqlStateErrors)
    }
}

pub(crate) struct Router {
    shared: Arc<Shared>,
    parser: Arc<RouterParser>,
}

#[async_trait]
impl SimpleQueryHandler for Router {
    async fn on_query<C>(
        &self,
        client: &mut C,
        query: datafusion_postgres::pgwire::messages::simplequery::Query,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // Before anything parses it (the parser's time can grow exponentially with nesting).
        heavenbase::check_nesting(&query.query).map_err(crate::to_pg_error)?;
        let first = crate::transactions::first_statement_if_failed(client, &query.query);
        crate::transactions::settle_status(client, first.as_ref());
        self._on_query(client, query).await
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session(client)?;
        // Several statements in one simple query run one after another, each
        // rewritten when its turn comes: `CREATE TABLE t …; INSERT INTO t
        // VALUES …` rewrote the INSERT for a table that did not exist yet.
        if let Some(statements) = several_statements(query) {
            let mut responses = Vec::new();
            for statement in statements {
                responses.extend(<Self as SimpleQueryHandler>::do_query(self, client, &statement).await?);
            }
            return Ok(responses);
        }
        if crate::prepared::may_be(query) {
            let step = crate::prepared::handle(&mut session.prepared.lock(), query);
            match step {
                Some(Err(e)) => return Err(e),
                Some(Ok(crate::prepared::Step::Done(response))) => return Ok(vec![response]),
                // The prepared statement, written out, runs as any query does.
                Some(Ok(crate::prepared::Step::Run(sql))) => {
                    return <Self as SimpleQueryHandler>::do_query(self, client, &sql).await;
                }
                None => {}
            }
        }
        let _running = self.shared.begin_statement()?;
        let deadline = crate::limits::deadline(client, query);
        let responses = crate::limits::within(
            deadline,
            guarded(query, async {
                let rewritten = crate::rewrite::rewrite_for(&session.service.ws, query).map_err(crate::to_pg_error)?;
                <DfSessionService as SimpleQueryHandler>::do_query(
                    &session.service.df,
                    client,
                    rewritten.as_deref().unwrap_or(query),
                )
                .await
            }),
        )
        .await?;
        Ok(responses.into_iter().map(|r| guarded_rows(query, r, deadline)).collect())
    }
}

/// The statements of a simple query holding more than one, each as its own
/// text; None for one statement, for text that does not parse here (the
/// normal path reports it), and for a query with COPY (its data follows the
/// whole query).
fn several_statements(query: &str) -> Option<Vec<String>> {
    let body = query.trim().trim_end_matches(';');
    if !body.contains(';') {
        return None;
    }
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    let statements = datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, query).ok()?;
    if statements.len() < 2 || statements.iter().any(|s| matches!(s, Statement::Copy { .. })) {
        return None;
    }
    Some(statements.iter().map(heavenbase::render::sql_text).collect())
}

#[async_trait]
impl ExtendedQueryHandler for Router {
    type Statement = DfStatement;
    type QueryParser = RouterParser;

    fn query_parser(&self) -> Arc<RouterParser> {
        self.parser.clone()
    }

    async fn on_execute<C>(
        &self,
        client: &mut C,
        message: datafusion_postgres::pgwire::messages::extendedquery::Execute,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or("");
        let statement =
            client.portal_store().get_portal(name).and_then(|p| p.statement.statement.1.as_ref().map(|s| s.0.clone()));
        crate::transactions::settle_status(client, statement.as_ref());
        self._on_execute(client, message).await
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<DfStatement>, max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = DfStatement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session(client)?;
        let _running = self.shared.begin_statement()?;
        let statement = &portal.statement.statement.0;
        let deadline = crate::limits::deadline(client, statement);
        let response = crate::limits::within(
            deadline,
            guarded(statement, async {
                let response = match session.service.try_lookup(client, portal).await? {
                    Some(response) => response,
                    None => {
                        *session.result_formats.lock() = Some(portal.result_column_format.clone());
                        let vectors = crate::vector_params::pgvector_parameters(portal)?;
                        let portal = vectors.as_ref().unwrap_or(portal);
                        let uuids = crate::uuid_params::uuid_parameters(portal)?;
                        let portal = uuids.as_ref().unwrap_or(portal);
                        <DfSessionService as ExtendedQueryHandler>::do_query(&session.service.df, client, portal, max_rows)
                            .await?
                    }
                };
                send_rows_now(client, response, max_rows).await
            }),
        )
        .await?;
        // Rows left in the portal (Execute with a row limit: cursors, JDBC
        // fetch sizes) are pulled by later Executes, each timed on its own as
        // in Postgres, not against this one's deadline; all other rows were
        // sent within it above.
        Ok(guarded_rows(statement, response, None))
    }
}

/// Rows pgwire pulls after the handler has returned (it polls the stream as it
/// sends them, and that runs the plan) are guarded as the statement is: a
/// panic ends the rows with the statement's XX000 error, and its deadline
/// (statement_timeout) with 57014.
fn guarded_rows(statement: &str, response: Response, deadline: Option<tokio::time::Instant>) -> Response {
    let Response::Query(mut results) = response else { return response };
    let statement = statement.to_string();
    let rows = std::mem::replace(results.data_rows(), Box::pin(futures::stream::empty()));
    let rows = std::panic::AssertUnwindSafe(rows).catch_unwind().map(move |row| match row {
        Ok(row) => row,
        Err(panic) => Err(crate::to_pg_error(heavenbase::panicked(&statement, panic))),
    });
    let rows = crate::limits::until(deadline, rows);
    let mut guarded = QueryResponse::new(shown_names(results.row_schema()), rows);
    guarded.set_command_tag(results.command_tag());
    Response::Query(guarded)
}

/// Columns that share a name were planned under marked names (the simple
/// protocol's statements are planned by datafusion-postgres, past the hook
/// the extended protocol's plans take): the client sees the shared name.
fn shown_names(fields: Arc<Vec<FieldInfo>>) -> Arc<Vec<FieldInfo>> {
    if !fields.iter().any(|f| f.name().contains(heavenbase::colnames::REPEAT)) {
        return fields;
    }
    let shown = fields.iter().map(|f| {
        let name = heavenbase::colnames::shown_name(f.name()).to_string();
        FieldInfo::new(name, f.table_id(), f.column_id(), f.datatype().clone(), f.format())
    });
    Arc::new(shown.collect())
}

/// A panic while planning or running a statement (a bug, never the client's
/// doing) is that statement's XX000 error; the session and the server go on.
async fn guarded<T>(statement: &str, run: impl std::future::Future<Output = PgWireResult<T>>) -> PgWireResult<T> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(run).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(crate::to_pg_error(heavenbase::panicked(statement, panic))),
    }
}

/// Sends a query's rows as they are produced, when the client asked for all of
/// them (Execute with no row limit), and answers with the command tag alone.
/// pgwire would park the rows in the portal and gather every one of them before
/// sending the first: a large result would sit whole in memory, and the client
/// would wait for the last row to be produced before it saw the first. Results
/// with a row limit (cursors, JDBC fetch sizes) go through the portal, one
/// bounded fetch at a time.
async fn send_rows_now<C>(client: &mut C, response: Response, max_rows: usize) -> PgWireResult<Response>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: std::fmt::Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let Response::Query(mut results) = response else { return Ok(response) };
    if max_rows != 0 {
        return Ok(Response::Query(results));
    }
    let mut rows = 0;
    while let Some(row) = results.data_rows().next().await {
        client.feed(PgWireBackendMessage::DataRow(row?)).await?;
        rows += 1;
    }
    Ok(Response::Execution(Tag::new(results.command_tag()).with_rows(rows)))
}

/// Parses through the connection's workspace (and its cache); describes with
/// datafusion-postgres' parser, which needs only the plan.
pub(crate) struct RouterParser {
    fallback: Arc<datafusion_postgres::Parser>,
}

#[async_trait]
impl QueryParser for RouterParser {
    type Statement = DfStatement;

    async fn parse_sql<C>(&self, client: &C, sql: &str, types: &[Option<Type>]) -> PgWireResult<DfStatement>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        session(client)?.service.parse(client, sql, types).await
    }

    fn get_parameter_types(&self, stmt: &DfStatement) -> PgWireResult<Vec<Type>> {
        self.fallback.get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &DfStatement,
        column_format: Option<&datafusion_postgres::pgwire::api::portal::Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let fields = self.fallback.get_result_schema(stmt, column_format)?;
        Ok(match &stmt.1 {
            Some((_, plan)) => with_declared_types(fields, &declared_types(plan)),
            None => fields,
        })
    }
}
