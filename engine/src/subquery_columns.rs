//! A scalar subquery or `IN (subquery)` gives one value per row, so its SELECT
//! lists one column. `(SELECT FROM t)` lists none, and DataFusion's planner
//! reads its first column unchecked (a panic, answered as XX000). Postgres
//! refuses it as a syntax error, and so do we, before anything plans it.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, Query, SetExpr, Statement, visit_expressions};

use crate::{Error, ErrorKind, Result};

/// Refuse a scalar or IN subquery whose SELECT lists no column.
pub fn check_subquery_columns(statement: &Statement) -> Result<()> {
    let empty = |q: &Query| matches!(q.body.as_ref(), SetExpr::Select(s) if s.projection.is_empty());
    let found = visit_expressions(statement, |e| match e {
        Expr::Subquery(q) if empty(q) => ControlFlow::Break("subquery must return only one column"),
        Expr::InSubquery { subquery, .. } if empty(subquery) => ControlFlow::Break("subquery has too few columns"),
        _ => ControlFlow::Continue(()),
    });
    match found {
        ControlFlow::Break(message) => Err(Error::new(ErrorKind::Syntax, message)),
        ControlFlow::Continue(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn check(sql: &str) -> Result<(), String> {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        super::check_subquery_columns(&statements[0]).map_err(|e| e.to_string())
    }

    #[test]
    fn subqueries_without_a_column_are_refused() {
        assert!(check("DELETE FROM r WHERE stars < (SELECT FROM r)").unwrap_err().contains("only one column"));
        assert!(check("SELECT a FROM t WHERE a IN (SELECT FROM t)").unwrap_err().contains("too few columns"));
        // EXISTS needs no column, as in Postgres.
        assert!(check("SELECT a FROM t WHERE EXISTS (SELECT FROM t)").is_ok());
        assert!(check("SELECT (SELECT max(a) FROM t)").is_ok());
    }
}
