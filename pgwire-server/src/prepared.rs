//! SQL-level `PREPARE name(types) AS statement`, `EXECUTE name(args)` and
//! `DEALLOCATE [PREPARE] name | ALL` (pg_dump prepares its per-table queries
//! this way), kept per session as Postgres keeps them.
//!
//! DataFusion has these statements too, but keeps prepared plans in the
//! SessionContext, which every connection to a workspace shares: one
//! session's `PREPARE q` made `q` exist in all of them (a second pg_dump got
//! "already exists"), and none was ever freed. Here the statement is kept in
//! the connection's session, and EXECUTE runs it as the text it stands for,
//! the arguments in place of `$1…` (cast to the declared types), through the
//! same path as any simple query (rewrites, hooks, limits).

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{CastKind, DataType, Expr, Statement, Value, VisitMut, VisitorMut};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_postgres::pgwire::api::results::{Response, Tag};
use datafusion_postgres::pgwire::error::PgWireResult;

use crate::user_error;

/// A session's prepared statements by name.
#[derive(Default)]
pub(crate) struct Prepared(HashMap<String, (Vec<DataType>, Statement)>);

/// What the simple-query path does with a statement.
pub(crate) enum Step {
    /// Answered here (PREPARE, DEALLOCATE).
    Done(Response),
    /// Run this SQL instead (an EXECUTE, written out).
    Run(String),
}

/// Whether `sql` may be one of these statements (cheap: no parsing).
pub(crate) fn may_be(sql: &str) -> bool {
    let head = sql.trim_start().get(..10).unwrap_or("").to_ascii_lowercase();
    head.starts_with("prepare ") || head.starts_with("execute ") || head.starts_with("deallocate")
}

/// Carry out `sql` when it is exactly one PREPARE, EXECUTE or DEALLOCATE;
/// None for anything else (several statements included).
pub(crate) fn handle(prepared: &mut Prepared, sql: &str) -> Option<PgWireResult<Step>> {
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    if statements.len() != 1 {
        return None;
    }
    Some(match statements.remove(0) {
        Statement::Prepare { name, data_types, statement } => {
            let key = name.value.to_ascii_lowercase();
            if prepared.0.contains_key(&key) {
                return Some(Err(user_error("42P05", format!("prepared statement \"{key}\" already exists"))));
            }
            prepared.0.insert(key, (data_types, *statement));
            Ok(Step::Done(Response::Execution(Tag::new("PREPARE"))))
        }
        Statement::Execute { name: Some(name), parameters, immediate: false, .. } => {
            let key = name.to_string().trim_matches('"').to_ascii_lowercase();
            let Some((types, statement)) = prepared.0.get(&key) else {
                return Some(Err(user_error("26000", format!("prepared statement \"{key}\" does not exist"))));
            };
            if parameters.len() != types.len() && !types.is_empty() {
                return Some(Err(user_error(
                    "42601",
                    format!(
                        "wrong number of parameters for prepared statement \"{key}\": expected {}, got {}",
                        types.len(),
                        parameters.len()
                    ),
                )));
            }
            let mut statement = statement.clone();
            let mut bind = Bind { args: &parameters, types, missing: None };
            let _ = statement.visit(&mut bind);
            if let Some(n) = bind.missing {
                return Some(Err(user_error("42P02", format!("there is no parameter ${n}"))));
            }
            Ok(Step::Run(heavenbase::render::sql_text(&statement)))
        }
        Statement::Deallocate { name, .. } => {
            if name.value.eq_ignore_ascii_case("all") && name.quote_style.is_none() {
                prepared.0.clear();
            } else if prepared.0.remove(&name.value.to_ascii_lowercase()).is_none() {
                return Some(Err(user_error("26000", format!("prepared statement \"{}\" does not exist", name.value))));
            }
            Ok(Step::Done(Response::Execution(Tag::new("DEALLOCATE"))))
        }
        _ => return None,
    })
}

/// Puts the EXECUTE's arguments in place of `$n`.
struct Bind<'a> {
    args: &'a [Expr],
    types: &'a [DataType],
    missing: Option<usize>,
}

impl VisitorMut for Bind<'_> {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Value(v) = &*expr else { return ControlFlow::Continue(()) };
        let Value::Placeholder(p) = &v.value else { return ControlFlow::Continue(()) };
        let Some(n) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) else { return ControlFlow::Continue(()) };
        let Some(arg) = n.checked_sub(1).and_then(|i| self.args.get(i)) else {
            self.missing = Some(n);
            return ControlFlow::Continue(());
        };
        *expr = match self.types.get(n - 1).and_then(planned_type) {
            Some(data_type) => Expr::Cast {
                kind: CastKind::Cast,
                expr: Box::new(Expr::Nested(Box::new(arg.clone()))),
                data_type,
                array: false,
                format: None,
            },
            None => Expr::Nested(Box::new(arg.clone())),
        };
        ControlFlow::Continue(())
    }
}

/// The type an argument is cast to: the declared one, with Postgres' OID
/// types (which DataFusion does not know) as the integers they are; None
/// leaves the argument as written.
fn planned_type(ty: &DataType) -> Option<DataType> {
    match ty {
        DataType::Custom(name, _) => {
            let last = name.0.last().map(|p| p.to_string().to_ascii_lowercase()).unwrap_or_default();
            matches!(last.as_str(), "oid" | "regclass" | "regproc" | "regtype").then_some(DataType::BigInt(None))
        }
        DataType::Unspecified => None,
        other => Some(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(prepared: &mut Prepared, sql: &str) -> Result<Option<String>, String> {
        match handle(prepared, sql) {
            None => Err("not handled".into()),
            Some(Err(e)) => Err(format!("{e:?}")),
            Some(Ok(Step::Done(_))) => Ok(None),
            Some(Ok(Step::Run(sql))) => Ok(Some(sql)),
        }
    }

    #[test]
    fn prepare_execute_and_deallocate() {
        let mut p = Prepared::default();
        assert_eq!(run(&mut p, "PREPARE q(pg_catalog.oid, text) AS SELECT a FROM t WHERE id = $1 AND b = $2"), Ok(None));
        assert_eq!(
            run(&mut p, "EXECUTE q('6100', 'x')").unwrap().as_deref(),
            Some("SELECT a FROM t WHERE id = CAST(('6100') AS BIGINT) AND b = CAST(('x') AS TEXT)")
        );
        assert!(run(&mut p, "PREPARE Q(int) AS SELECT 1").unwrap_err().contains("42P05"));
        assert!(run(&mut p, "EXECUTE q(1)").unwrap_err().contains("42601"));
        assert!(run(&mut p, "EXECUTE nope(1)").unwrap_err().contains("26000"));
        assert_eq!(run(&mut p, "DEALLOCATE PREPARE q"), Ok(None));
        assert!(run(&mut p, "EXECUTE q('1', 'x')").unwrap_err().contains("26000"));
        assert_eq!(run(&mut p, "DEALLOCATE ALL"), Ok(None));
        assert_eq!(run(&mut p, "SELECT 1"), Err("not handled".into()));
    }
}
