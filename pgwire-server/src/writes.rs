//! Writes over the wire: INSERT lands in the entity tables' `insert_into`;
//! UPDATE, DELETE and CREATE TABLE are intercepted here and run by
//! `Workspace::sql`, which plans their WHERE clauses as SELECTs (so a subquery
//! never widens a DELETE). Read-only users are refused any write.

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

/// Whether a statement changes data or schema (what a read-only user may not run).
pub(crate) fn is_write(s: &Statement) -> bool {
    match s {
        Statement::Explain { statement, analyze, .. } => *analyze && is_write(statement),
        Statement::Copy { to, .. } => !to,
        Statement::Query(_)
        | Statement::Set(_)
        | Statement::ShowVariable { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. }
        | Statement::Declare { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. }
        | Statement::Discard { .. }
        | Statement::Deallocate { .. } => false,
        _ => true,
    }
}

/// Refuses writes from read-only users with 42501, before they are planned.
pub(crate) struct ReadOnlyGuard;

impl ReadOnlyGuard {
    fn check(statement: &Statement, client: &(dyn ClientInfo + Send + Sync)) -> Option<PgWireResult<()>> {
        let read_only = match session(client) {
            Ok(s) => s.read_only,
            Err(e) => return Some(Err(e)),
        };
        (read_only && is_write(statement)).then(|| {
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

/// Routes UPDATE, DELETE and CREATE TABLE to the workspace.
pub(crate) struct WorkspaceWrites {
    pub ws: Workspace,
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
        Some(Ok(empty_plan()))
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
