//! Configuration parameters as Postgres 15 has them.
//!
//! `SET name = value` of a name Postgres does not know is refused with 42704
//! (datafusion-postgres' SetShowHook, next in line, answers SET for any
//! name), one that no session may change with 55P02, one that needs a
//! superuser with 42501; names with a dot are custom parameters, as in
//! Postgres. `SELECT set_config(name, value, is_local)` is SET in the form of
//! a function (pg_dump opens every session with it): with constant arguments
//! it is carried out as that SET and answers the value; any other use of it is
//! refused rather than ignored. `RESET name | ALL` drops the session's value.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion::logical_expr::{LogicalPlan, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Reset, SelectItem, Set, SetExpr, Statement, Value,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::{HookClient, QueryHook};
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::results::{Response, Tag};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};

use crate::user_error;

/// `name context` lines (pg_settings of Postgres 15).
const PARAMETERS: &str = include_str!("pg15_parameters.txt");

/// Where Postgres lets `name` be set, or None for a name it does not know.
fn context(name: &str) -> Option<&'static str> {
    PARAMETERS.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, c) = l.split_once(' ')?;
        (n == name).then_some(c)
    })
}

/// Why a session may not set `name`, in Postgres' words; None when it may.
pub(crate) fn refusal(name: &str) -> Option<PgWireError> {
    let lower = name.trim().trim_matches('"').to_ascii_lowercase();
    if lower.contains('.') {
        // A custom parameter (`myapp.tenant`), which Postgres accepts unchecked.
        return None;
    }
    let message = |text: &str| format!("parameter \"{lower}\" {text}");
    match context(&lower) {
        None => Some(user_error("42704", format!("unrecognized configuration parameter \"{lower}\""))),
        Some("user") => None,
        Some("superuser") => Some(user_error("42501", format!("permission denied to set parameter \"{lower}\""))),
        Some("postmaster") => Some(user_error("55P02", message("cannot be changed without restarting the server"))),
        Some("internal") => Some(user_error("55P02", message("cannot be changed"))),
        // sighup, backend, superuser-backend: set in the server's configuration only.
        Some(_) => Some(user_error("55P02", message("cannot be changed now"))),
    }
}

/// The arguments of `SELECT [pg_catalog.]set_config('name', 'value', is_local)`
/// when the statement is exactly that.
fn set_config_call(statement: &Statement) -> Option<(String, String, bool)> {
    let Statement::Query(query) = statement else { return None };
    let SetExpr::Select(select) = query.body.as_ref() else { return None };
    if !select.from.is_empty() || select.selection.is_some() || select.projection.len() != 1 {
        return None;
    }
    let (SelectItem::UnnamedExpr(Expr::Function(f)) | SelectItem::ExprWithAlias { expr: Expr::Function(f), .. }) =
        &select.projection[0]
    else {
        return None;
    };
    let name = f.name.to_string().to_ascii_lowercase();
    if name != "set_config" && name != "pg_catalog.set_config" {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else { return None };
    let values: Vec<&Value> = list
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => Some(&v.value),
            _ => None,
        })
        .collect::<Option<_>>()?;
    match values.as_slice() {
        [Value::SingleQuotedString(n), Value::SingleQuotedString(v), Value::Boolean(local)] => {
            Some((n.clone(), v.clone(), *local))
        }
        _ => None,
    }
}

/// The planning side of `set_config`: the hook answers the one form it
/// carries out before any row is computed; reaching this function means
/// another form, which is refused.
pub(crate) fn set_config_udf() -> datafusion::logical_expr::ScalarUDF {
    create_udf(
        "set_config",
        vec![DataType::Utf8, DataType::Utf8, DataType::Boolean],
        DataType::Utf8,
        Volatility::Volatile,
        Arc::new(|_| {
            Err(datafusion::error::DataFusionError::External(Box::new(heavenbase::Error::not_supported(
                "set_config is carried out only as SELECT set_config('name', 'value', true|false), alone, with constant arguments; use SET",
            ))))
        }),
    )
}

/// SET validation and `set_config` (see the module's text).
pub(crate) struct Settings;

impl Settings {
    async fn answer(statement: &Statement, ctx: &SessionContext, client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        if let Statement::Set(Set::SingleAssignment { variable, .. }) = statement {
            return refusal(&variable.to_string()).map(Err);
        }
        if let Statement::Reset(reset) = statement {
            // The session's value goes; the server's applies again.
            let names: Vec<String> = match &reset.reset {
                Reset::ALL => PARAMETERS.lines().filter_map(|l| l.split_once(' ').map(|(n, _)| n.to_string())).collect(),
                Reset::ConfigurationParameter(name) => {
                    let name = name.to_string().to_ascii_lowercase();
                    if let Some(refused) = refusal(&name) {
                        return Some(Err(refused));
                    }
                    vec![name]
                }
            };
            let metadata = client.metadata_mut();
            for name in names {
                metadata.remove(&name);
                if name == "statement_timeout" {
                    metadata.remove(crate::limits::STATEMENT_TIMEOUT);
                }
            }
            return Some(Ok(Response::Execution(Tag::new("RESET"))));
        }
        let (name, value, local) = set_config_call(statement)?;
        if let Some(refused) = refusal(&name) {
            return Some(Err(refused));
        }
        // Carried out as the SET it stands for, by the hooks that answer SET.
        let quoted = value.replace('\'', "''");
        let set = format!("SET {}{name} = '{quoted}'", if local { "LOCAL " } else { "" });
        let parsed = match Parser::parse_sql(&PostgreSqlDialect {}, &set) {
            Ok(mut statements) if statements.len() == 1 => statements.remove(0),
            _ => return Some(Err(user_error("22023", format!("invalid parameter name \"{name}\"")))),
        };
        let done = match crate::limits::TimeoutSettings::answer(&parsed, client) {
            Some(done) => Some(done),
            None => SetShowHook.handle_simple_query(&parsed, ctx, client).await,
        };
        if let Some(Err(e)) = done {
            return Some(Err(e));
        }
        Some(crate::compat::setting_row("set_config", &value))
    }
}

#[async_trait]
impl QueryHook for Settings {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::answer(statement, ctx, client).await
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        match statement {
            Statement::Set(Set::SingleAssignment { variable, .. }) => refusal(&variable.to_string()).map(Err),
            Statement::Reset(_) => Some(Ok(crate::writes::empty_plan())),
            _ => None,
        }
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::answer(statement, ctx, client).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: Option<PgWireError>) -> Option<String> {
        e.map(|e| match e {
            PgWireError::UserError(info) => info.code.clone(),
            other => format!("{other}"),
        })
    }

    #[test]
    fn parameters_are_refused_as_postgres_refuses_them() {
        assert_eq!(code(refusal("DateStyle")), None);
        assert_eq!(code(refusal("extra_float_digits")), None);
        assert_eq!(code(refusal("myapp.tenant")), None);
        assert_eq!(code(refusal("no_such_setting")).as_deref(), Some("42704"));
        assert_eq!(code(refusal("max_connections")).as_deref(), Some("55P02"));
        assert_eq!(code(refusal("server_version")).as_deref(), Some("55P02"));
        assert_eq!(code(refusal("log_statement")).as_deref(), Some("42501"));
    }

    #[test]
    fn set_config_is_recognised_only_with_constant_arguments() {
        let parse = |sql: &str| Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        assert_eq!(
            set_config_call(&parse("SELECT pg_catalog.set_config('search_path', '', false)")),
            Some(("search_path".into(), "".into(), false))
        );
        assert_eq!(set_config_call(&parse("SELECT set_config('a.b', 'x', true) AS v")), Some(("a.b".into(), "x".into(), true)));
        assert_eq!(set_config_call(&parse("SELECT set_config(name, 'x', false) FROM pg_settings")), None);
        assert_eq!(set_config_call(&parse("SELECT set_config('a.b', 'x', false), 1")), None);
    }
}
