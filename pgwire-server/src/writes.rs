//! Writes over the wire: INSERT lands in the entity tables' `insert_into`;
//! UPDATE, DELETE and DDL are intercepted here and run by the workspace
//! (`plan_dml`/`execute_dml`, which plans WHERE clauses as SELECTs so a subquery
//! never widens a DELETE; `execute_ddl`, which makes CREATE/DROP TABLE and
//! TRUNCATE durable and refuses schema statements it cannot keep). Read-only
//! users are refused any write.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::{DFSchema, ParamValues};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::results::{Response, Tag};
use datafusion_postgres::pgwire::error::PgWireResult;
use heavenbase::Workspace;

use crate::router::session;
use crate::{to_pg_error, user_error};

/// Refuses writes from read-only users with 42501, before they are planned.
pub(crate) struct ReadOnlyGuard;

impl ReadOnlyGuard {
    fn check(statement: &Statement, client: &(dyn ClientInfo + Send + Sync)) -> Option<PgWireResult<()>> {
        let read_only = match session(client) {
            Ok(s) => s.read_only,
            Err(e) => return Some(Err(e)),
        };
        (read_only && Workspace::is_write(statement)).then(|| {
            let verb = statement.to_string().split_whitespace().next().unwrap_or_default().to_uppercase();
            Err(user_error("42501", format!("permission denied: this user is read-only and cannot run {verb}")))
        })
    }
}

#[async_trait]
impl QueryHook for ReadOnlyGuard {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::check(statement, client).map(|r| r.map(|_| Response::EmptyQuery))
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        Self::check(statement, client).map(|r| r.map(|_| empty_plan()))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::check(statement, client).map(|r| r.map(|_| Response::EmptyQuery))
    }
}

/// The plan of a statement a hook answers itself: no rows, no columns.
pub(crate) fn empty_plan() -> LogicalPlan {
    LogicalPlan::EmptyRelation(EmptyRelation { produce_one_row: false, schema: Arc::new(DFSchema::empty()) })
}

/// Routes UPDATE, DELETE and DDL to the workspace.
///
/// UPDATE and DELETE are planned once, when they are parsed (Parse, or the
/// simple query itself): the plan is DataFusion's `LogicalPlan::Dml` as
/// `Workspace::plan_dml` shapes it, so clients that prepare the statement see
/// its placeholders' types, and Execute binds the parameters in that plan. No
/// statement is rendered back to SQL text.
/// The workspace handle is the session's (a transaction block's while one is open).
pub(crate) struct WorkspaceWrites;

/// UPDATE, DELETE and INSERT … ON CONFLICT (without RETURNING): planned by
/// the workspace, answered with a command tag.
fn is_dml(s: &Statement) -> bool {
    match s {
        Statement::Update(update) => update.returning.is_none(),
        Statement::Delete(delete) => delete.returning.is_none(),
        Statement::Insert(insert) => insert.on.is_some() && insert.returning.is_none(),
        _ => false,
    }
}

fn is_ddl(s: &Statement) -> bool {
    Workspace::is_ddl(s)
}

fn is_workspace_write(s: &Statement) -> bool {
    is_dml(s) || is_ddl(s)
}

impl WorkspaceWrites {
    /// Run a planned UPDATE or DELETE, or a DDL statement.
    async fn run(&self, ws: &Workspace, statement: &Statement, plan: Option<LogicalPlan>) -> Option<PgWireResult<Response>> {
        if !is_dml(statement) {
            let done = ws.execute_ddl(statement).await?;
            let tag = |d: heavenbase::DdlDone| match d.rows {
                Some(n) => Tag::new(d.tag).with_rows(n as usize),
                None => Tag::new(d.tag),
            };
            return Some(done.map(|d| Response::Execution(tag(d))).map_err(to_pg_error));
        }
        Some(self.run_dml(ws, statement, plan).await)
    }

    async fn run_dml(&self, ws: &Workspace, statement: &Statement, plan: Option<LogicalPlan>) -> PgWireResult<Response> {
        let tag = match statement {
            Statement::Update(_) => Tag::new("UPDATE"),
            Statement::Insert(_) => Tag::new("INSERT").with_oid(0),
            _ => Tag::new("DELETE"),
        };
        let plan = match plan {
            Some(p) => p,
            None => self.plan(ws, statement).await?,
        };
        let count = ws.execute_dml(plan).await.map_err(to_pg_error)?;
        Ok(Response::Execution(tag.with_rows(count as usize)))
    }

    /// `… RETURNING`, planned by the workspace as a query over the rows written.
    async fn plan_returning(&self, ws: &Workspace, statement: &Statement) -> heavenbase::Result<Option<LogicalPlan>> {
        match statement {
            Statement::Insert(_) => ws.plan_insert(statement).await,
            _ => ws.plan_dml(statement).await,
        }
    }

    async fn plan(&self, ws: &Workspace, statement: &Statement) -> PgWireResult<LogicalPlan> {
        let planned = match statement {
            Statement::Insert(_) => ws.plan_insert(statement).await,
            _ => ws.plan_dml(statement).await,
        };
        match planned {
            Ok(Some(plan)) => Ok(plan),
            Ok(None) => Ok(empty_plan()),
            Err(e) => Err(to_pg_error(e)),
        }
    }
}

#[async_trait]
impl QueryHook for WorkspaceWrites {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        // `DEALLOCATE ALL` (psycopg sends it after a schema change): the
        // protocol's named statements are replaced when the client parses
        // them again, which is what it relies on; DataFusion would look for a
        // SQL-level prepared statement named "all".
        if let Statement::Deallocate { name, .. } = statement {
            if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
                return Some(Ok(Response::Execution(Tag::new("DEALLOCATE ALL"))));
            }
        }
        let s = match session(client) {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        let ws = s.workspace();
        if crate::encode::is_insert_returning(statement) {
            let plan = match self.plan_returning(&ws, statement).await {
                Ok(plan) => plan?,
                Err(e) => return Some(Err(to_pg_error(e))),
            };
            let ctx = s.context();
            let rows = crate::encode::EncodedQueries::respond(
                client,
                ctx.execute_logical_plan(plan),
                &datafusion_postgres::pgwire::api::portal::Format::UnifiedText,
                None,
                crate::encode::returning_tag(statement),
            );
            return Some(rows.await);
        }
        if !is_workspace_write(statement) {
            return None;
        }
        self.run(&ws, statement, None).await
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        if !crate::encode::is_insert_returning(statement) && !is_workspace_write(statement) {
            return None;
        }
        let ws = match session(client) {
            Ok(s) => s.workspace(),
            Err(e) => return Some(Err(e)),
        };
        if crate::encode::is_insert_returning(statement) {
            // Planned once here; Execute binds its parameters and runs it as a query.
            return match self.plan_returning(&ws, statement).await {
                Ok(plan) => plan.map(Ok),
                Err(e) => Some(Err(to_pg_error(e))),
            };
        }
        if !is_workspace_write(statement) {
            return None;
        }
        if !is_dml(statement) {
            return Some(Ok(empty_plan()));
        }
        Some(self.plan(&ws, statement).await)
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        plan: &LogicalPlan,
        params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if !is_workspace_write(statement) {
            return None;
        }
        let ws = match session(client) {
            Ok(s) => s.workspace(),
            Err(e) => return Some(Err(e)),
        };
        if !is_dml(statement) {
            return self.run(&ws, statement, None).await;
        }
        let bound = match plan.clone().replace_params_with_values(params) {
            Ok(bound) => bound,
            Err(e) => return Some(Err(to_pg_error(e.into()))),
        };
        self.run(&ws, statement, Some(bound)).await
    }
}
