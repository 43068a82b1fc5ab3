//! Transaction blocks over the wire: BEGIN, COMMIT, ROLLBACK, SAVEPOINT,
//! RELEASE and ROLLBACK TO run a `heavenbase::Transaction` held by the
//! connection's session (docs/transactions.md). Every other hook and the query
//! path ask the session for the workspace handle and SQL session to use, so
//! the block's statements are held by it and read its writes.
//!
//! The status byte of ReadyForQuery is pgwire's: `TransactionStart` sets T,
//! `TransactionEnd` I, an error inside a block E. After an error every
//! statement but ROLLBACK, ROLLBACK TO and COMMIT (which then rolls back and
//! answers ROLLBACK) gets 25P02. A connection that goes away drops its block,
//! and with it every change the block held.

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    LockTableMode, Set, Statement, TransactionAccessMode, TransactionIsolationLevel, TransactionMode,
};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::results::{Response, Tag};
use datafusion_postgres::pgwire::error::PgWireResult;
use datafusion_postgres::pgwire::messages::response::TransactionStatus;

use crate::router::session;
use crate::writes::empty_plan;
use crate::{to_pg_error, user_error};

pub(crate) struct Transactions;

/// What BEGIN and SET TRANSACTION asked of the open block.
///
/// - READ ONLY: a statement that writes is refused with 25006.
/// - REPEATABLE READ and SERIALIZABLE: a block's reads are not isolated from
///   other sessions' writes (it reads committed rows as each statement runs,
///   docs/transactions.md), so these levels are given by validation: the
///   workspace's change version is taken at the block's first statement, and
///   any statement (or COMMIT) that finds it moved fails with 40001 (retry the
///   transaction), as Postgres fails a serializable transaction it cannot
///   order. Every statement of a block that commits thus saw one unchanging
///   state: a consistent snapshot, which pg_dump relies on. The block's writes
///   are held until COMMIT like any block's and applied by
///   `Transaction::commit_if_unchanged`, which checks the version once more
///   under a lock that validated commits share: of two such blocks that ran
///   at the same time, at most one commits.
#[derive(Default)]
pub(crate) struct BlockModes {
    read_only: bool,
    repeatable: bool,
    /// The change version the block's first query found.
    version: Option<u64>,
    /// A query (not SET/SHOW) has run in the block.
    queried: bool,
}

impl BlockModes {
    fn apply(&mut self, modes: &[TransactionMode]) {
        for mode in modes {
            match mode {
                TransactionMode::AccessMode(TransactionAccessMode::ReadOnly) => self.read_only = true,
                TransactionMode::AccessMode(TransactionAccessMode::ReadWrite) => self.read_only = false,
                TransactionMode::IsolationLevel(level) => {
                    self.repeatable = matches!(
                        level,
                        TransactionIsolationLevel::RepeatableRead
                            | TransactionIsolationLevel::Serializable
                            | TransactionIsolationLevel::Snapshot
                    );
                }
            }
        }
    }
}

fn serialization_failure() -> datafusion_postgres::pgwire::error::PgWireError {
    user_error(
        "40001",
        "could not serialize access due to concurrent update: the workspace changed since this REPEATABLE READ block began; retry the transaction".into(),
    )
}

/// A statement of an open block checked against its modes (None: it may run).
fn check_in_block(s: &crate::router::Session, statement: &Statement) -> Option<datafusion_postgres::pgwire::error::PgWireError> {
    if matches!(statement, Statement::Set(_) | Statement::ShowVariable { .. }) {
        return None;
    }
    let mut modes = s.modes.lock();
    modes.queried = true;
    if heavenbase::Workspace::is_write(statement) {
        let verb = statement.to_string().split_whitespace().next().unwrap_or_default().to_uppercase();
        if modes.read_only {
            return Some(user_error("25006", format!("cannot execute {verb} in a read-only transaction")));
        }
    }
    if modes.repeatable {
        let now = s.service.ws.change_version();
        match modes.version {
            None => modes.version = Some(now),
            Some(v) if v != now => return Some(serialization_failure()),
            Some(_) => {}
        }
    }
    None
}

/// `LOCK TABLE … IN ACCESS SHARE MODE` in a REPEATABLE READ block (pg_dump
/// locks each table it dumps): Postgres' ACCESS SHARE keeps other sessions
/// from dropping or altering the table until the block ends. Here another
/// session's DDL is not made to wait; the block's validation (see
/// [`BlockModes`]) fails its next statement with 40001 instead, so a block
/// that commits saw the table unchanged throughout. Other modes, and the lock
/// outside such a block, are refused rather than acknowledged.
fn lock_tables(s: &crate::router::Session, lock: &datafusion::sql::sqlparser::ast::Lock) -> PgWireResult<Response> {
    if !s.in_block() {
        return Err(outside_block("LOCK TABLE"));
    }
    if lock.lock_mode != Some(LockTableMode::AccessShare) || !s.modes.lock().repeatable {
        return Err(user_error(
            "0A000",
            "LOCK TABLE is supported only IN ACCESS SHARE MODE inside a REPEATABLE READ or SERIALIZABLE block".into(),
        ));
    }
    for target in &lock.tables {
        let name = target.name.0.last().map(|p| p.to_string().trim_matches('"').to_string()).unwrap_or_default();
        if !s.service.ctx.table_exist(name.as_str()).unwrap_or(false) {
            return Err(user_error("42P01", format!("relation \"{}\" does not exist", target.name)));
        }
    }
    Ok(Response::Execution(Tag::new("LOCK TABLE")))
}

fn is_transaction_statement(s: &Statement) -> bool {
    matches!(
        s,
        Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
            | Statement::Lock(_)
            | Statement::Set(Set::SetTransaction { session: false, .. })
    )
}

fn in_failed_block() -> datafusion_postgres::pgwire::error::PgWireError {
    user_error("25P02", "current transaction is aborted, commands ignored until end of transaction block".into())
}

fn outside_block(what: &str) -> datafusion_postgres::pgwire::error::PgWireError {
    user_error("25P01", format!("{what} can only be used in transaction blocks"))
}

/// Whether a statement after an error in a block may run: only what ends the
/// block or goes back to a savepoint.
fn allowed_when_failed(s: &Statement) -> bool {
    matches!(s, Statement::Commit { .. } | Statement::Rollback { .. })
}

impl Transactions {
    async fn answer(statement: &Statement, client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        let s = match session(client) {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        let failed = client.transaction_status() == TransactionStatus::Error && s.in_block();
        if failed && !allowed_when_failed(statement) {
            return Some(Err(in_failed_block()));
        }
        let response = match statement {
            Statement::StartTransaction { modes, .. } => {
                let mut txn = s.txn.lock();
                if txn.is_some() {
                    // Postgres warns and stays in the block.
                    return Some(Ok(Response::Execution(Tag::new("BEGIN"))));
                }
                match s.service.ws.begin_on(s.service.ctx.state()) {
                    Ok(tx) => {
                        let mut block = BlockModes::default();
                        block.apply(modes);
                        *s.modes.lock() = block;
                        *txn = Some(tx);
                        Ok(Response::TransactionStart(Tag::new("BEGIN")))
                    }
                    Err(e) => Err(to_pg_error(e)),
                }
            }
            Statement::Commit { .. } => {
                let tx = s.txn.lock().take();
                let modes = std::mem::take(&mut *s.modes.lock());
                let validated = modes.version.filter(|_| modes.repeatable);
                match tx {
                    None => Ok(Response::TransactionEnd(Tag::new("COMMIT"))),
                    Some(tx) if failed => {
                        tx.rollback();
                        Ok(Response::TransactionEnd(Tag::new("ROLLBACK")))
                    }
                    Some(tx) => {
                        let committed = match validated {
                            Some(version) => tx.commit_if_unchanged(version).await,
                            None => tx.commit().await,
                        };
                        match committed {
                            Ok(()) => Ok(Response::TransactionEnd(Tag::new("COMMIT"))),
                            Err(e) => {
                                // The block is over either way: the error leaves the session idle.
                                client.set_transaction_status(TransactionStatus::Idle);
                                Err(to_pg_error(e))
                            }
                        }
                    }
                }
            }
            Statement::Rollback { savepoint: None, .. } => {
                if let Some(tx) = s.txn.lock().take() {
                    tx.rollback();
                }
                *s.modes.lock() = BlockModes::default();
                Ok(Response::TransactionEnd(Tag::new("ROLLBACK")))
            }
            Statement::Rollback { savepoint: Some(name), .. } => match s.txn.lock().as_ref() {
                None => Err(outside_block("ROLLBACK TO SAVEPOINT")),
                Some(tx) => tx.rollback_to(&name.value).map(|_| Response::Execution(Tag::new("ROLLBACK"))).map_err(to_pg_error),
            },
            Statement::Savepoint { name } => match s.txn.lock().as_ref() {
                None => Err(outside_block("SAVEPOINT")),
                Some(tx) => tx.savepoint(&name.value).map(|_| Response::Execution(Tag::new("SAVEPOINT"))).map_err(to_pg_error),
            },
            Statement::ReleaseSavepoint { name } => match s.txn.lock().as_ref() {
                None => Err(outside_block("RELEASE SAVEPOINT")),
                Some(tx) => tx.release(&name.value).map(|_| Response::Execution(Tag::new("RELEASE"))).map_err(to_pg_error),
            },
            Statement::Set(Set::SetTransaction { modes, session: false, .. }) => {
                if !s.in_block() {
                    // Postgres warns that it has no effect outside a block.
                    return Some(Ok(Response::Execution(Tag::new("SET"))));
                }
                let mut block = s.modes.lock();
                if block.queried {
                    return Some(Err(user_error(
                        "25001",
                        "SET TRANSACTION ISOLATION LEVEL must be called before any query".into(),
                    )));
                }
                block.apply(modes);
                Ok(Response::Execution(Tag::new("SET")))
            }
            Statement::Lock(lock) => lock_tables(&s, lock),
            other if s.in_block() => return check_in_block(&s, other).map(Err),
            _ => return None,
        };
        Some(response)
    }
}

#[async_trait]
impl QueryHook for Transactions {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::answer(statement, client).await
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        if is_transaction_statement(statement) {
            return Some(Ok(empty_plan()));
        }
        let failed = client.transaction_status() == TransactionStatus::Error;
        if failed && session(client).is_ok_and(|s| s.in_block()) {
            return Some(Err(in_failed_block()));
        }
        None
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::answer(statement, client).await
    }
}

/// Before a statement runs: the status pgwire keeps follows the session's
/// block. A `ROLLBACK TO SAVEPOINT` of a savepoint the failed block has takes
/// it back to T (pgwire reads the status before the statement and cannot
/// go from E to T otherwise); a session with no block is idle.
pub(crate) fn settle_status<C: ClientInfo + ?Sized>(client: &mut C, statement: Option<&Statement>) {
    let Ok(s) = session(client) else { return };
    let status = client.transaction_status();
    let txn = s.txn.lock();
    match txn.as_ref() {
        None if status != TransactionStatus::Idle => client.set_transaction_status(TransactionStatus::Idle),
        Some(tx) if status == TransactionStatus::Error => {
            if let Some(Statement::Rollback { savepoint: Some(name), .. }) = statement {
                if tx.has_savepoint(&name.value) {
                    client.set_transaction_status(TransactionStatus::Transaction);
                }
            }
        }
        _ => {}
    }
}

/// The first statement of a simple query, parsed only when the block has
/// failed (what [`settle_status`] needs to know).
pub(crate) fn first_statement_if_failed<C: ClientInfo + ?Sized>(client: &C, sql: &str) -> Option<Statement> {
    if client.transaction_status() != TransactionStatus::Error {
        return None;
    }
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, sql).ok()?.into_iter().next()
}

/// Plain INSERTs inside a block run in the block's session, so the entity
/// table's sink hands their rows to the block (outside a block they take
/// datafusion-postgres' own path, unchanged).
pub(crate) struct BlockInserts;

impl BlockInserts {
    fn applies(statement: &Statement, client: &(dyn ClientInfo + Send + Sync)) -> Option<std::sync::Arc<crate::router::Session>> {
        let Statement::Insert(insert) = statement else { return None };
        if insert.returning.is_some() || insert.on.is_some() {
            return None;
        }
        session(client).ok().filter(|s| s.in_block())
    }

    async fn run(ctx: SessionContext, plan: datafusion::error::Result<LogicalPlan>) -> PgWireResult<Response> {
        let api = |e: datafusion::error::DataFusionError| crate::to_pg_error(e.into());
        let batches = ctx.execute_logical_plan(plan.map_err(api)?).await.map_err(api)?.collect().await.map_err(api)?;
        let rows: u64 = batches
            .iter()
            .filter_map(|b| {
                use datafusion::arrow::array::AsArray;
                b.column(0)
                    .as_primitive_opt::<datafusion::arrow::datatypes::UInt64Type>()
                    .map(|c| c.iter().flatten().sum::<u64>())
            })
            .sum();
        Ok(Response::Execution(Tag::new("INSERT").with_oid(0).with_rows(rows as usize)))
    }
}

#[async_trait]
impl QueryHook for BlockInserts {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let s = Self::applies(statement, client)?;
        let ctx = s.context();
        let plan = ctx.state().create_logical_plan(&heavenbase::render::sql_text(statement)).await;
        Some(Self::run(ctx, plan).await)
    }

    async fn handle_extended_parse_query(
        &self,
        _statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        None
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        plan: &LogicalPlan,
        params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let s = Self::applies(statement, client)?;
        let bound = plan.clone().replace_params_with_values(params);
        Some(Self::run(s.context(), bound).await)
    }
}

/// DECLARE / FETCH / CLOSE (datafusion-postgres' cursor hook), run in the
/// connection's SQL session: a cursor declared inside a block reads the
/// block's own rows, as its other statements do.
pub(crate) struct SessionCursors;

impl SessionCursors {
    fn context(client: &(dyn ClientInfo + Send + Sync)) -> Option<SessionContext> {
        session(client).ok().map(|s| s.context())
    }
}

#[async_trait]
impl QueryHook for SessionCursors {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let own = Self::context(client);
        CursorStatementHook.handle_simple_query(statement, own.as_ref().unwrap_or(ctx), client).await
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        let own = Self::context(client);
        CursorStatementHook.handle_extended_parse_query(statement, own.as_ref().unwrap_or(ctx), client).await
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        plan: &LogicalPlan,
        params: &ParamValues,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let own = Self::context(client);
        CursorStatementHook.handle_extended_query(statement, plan, params, own.as_ref().unwrap_or(ctx), client).await
    }
}
