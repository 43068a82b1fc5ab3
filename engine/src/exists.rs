//! `EXISTS (…)` in a select list, which DataFusion plans only as a filter
//! (`WHERE EXISTS` becomes a semi join; in a select list its physical planner
//! has no operator: "Physical plan does not support logical expression
//! Exists"). psql's `\d index` asks `(NOT i.indimmediate) AND EXISTS (SELECT 1
//! FROM pg_constraint WHERE conrelid = i.indrelid …)`, and people write
//! `SELECT name, EXISTS (SELECT 1 FROM review r WHERE r.product = p.id) FROM p`.
//!
//! In a select list, `EXISTS (SELECT … FROM … WHERE c)` becomes
//! `coalesce((SELECT bool_or(true) FROM … WHERE c), false)`: true when a row
//! qualifies, false when none does, never NULL, as EXISTS is; DataFusion
//! plans the aggregate subquery, correlated or not, as a join. A subquery with
//! GROUP BY, HAVING, LIMIT, OFFSET, WITH or a set operation is left as it is
//! (there the rows that exist are not the rows its WHERE keeps).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, GroupByExpr, Ident, Query, SelectItem, SetExpr, Statement, VisitMut, VisitorMut, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Rewrite every select list's `EXISTS` in `statement` (module doc); whether
/// anything changed.
pub fn exists_in_select_lists(statement: &mut Statement) -> bool {
    let mut rewriter = SelectListExists { changed: false };
    let _ = statement.visit(&mut rewriter);
    rewriter.changed
}

/// Whether `sql` may hold an EXISTS (a cheap check before parsing).
pub fn may_hold_exists(sql: &str) -> bool {
    sql.as_bytes().windows(6).any(|w| w.eq_ignore_ascii_case(b"exists"))
}

struct SelectListExists {
    changed: bool,
}

impl VisitorMut for SelectListExists {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let SetExpr::Select(select) = query.body.as_mut() else { return ControlFlow::Continue(()) };
        for item in &mut select.projection {
            // A bare EXISTS is named `exists`, as Postgres names it.
            if let SelectItem::UnnamedExpr(expr @ Expr::Exists { .. }) = item {
                *item = SelectItem::ExprWithAlias { expr: expr.clone(), alias: Ident::new("exists") };
            }
            let (SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. }) = item else { continue };
            let _ = visit_expressions_mut(expr, |e| {
                if let Expr::Exists { subquery, negated } = e
                    && let Some(aggregated) = as_bool_or(subquery)
                {
                    let text = format!("{}coalesce(({aggregated}), false)", if *negated { "NOT " } else { "" });
                    if let Ok(new) = Parser::new(&PostgreSqlDialect {}).try_with_sql(&text).and_then(|mut p| p.parse_expr()) {
                        *e = Expr::Nested(Box::new(new));
                        self.changed = true;
                    }
                }
                ControlFlow::<()>::Continue(())
            });
        }
        ControlFlow::Continue(())
    }
}

/// `SELECT bool_or(true) FROM … WHERE …` for a plain subquery, else None.
fn as_bool_or(query: &Query) -> Option<Query> {
    if query.with.is_some() || query.limit_clause.is_some() || query.fetch.is_some() || query.order_by.is_some() {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else { return None };
    let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
    if grouped || select.having.is_some() || select.from.is_empty() {
        return None;
    }
    let mut aggregated = query.clone();
    let SetExpr::Select(select) = aggregated.body.as_mut() else { return None };
    let item = Parser::new(&PostgreSqlDialect {}).try_with_sql("bool_or(true)").ok()?.parse_expr().ok()?;
    select.projection = vec![SelectItem::UnnamedExpr(item)];
    select.distinct = None;
    Some(aggregated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> Option<String> {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        exists_in_select_lists(&mut statements[0]).then(|| statements[0].to_string())
    }

    #[test]
    fn exists_in_a_select_list_becomes_an_aggregate() {
        assert_eq!(
            rewritten("SELECT p.name, EXISTS (SELECT 1 FROM r WHERE r.p = p.id) AS reviewed FROM p").as_deref(),
            Some("SELECT p.name, (coalesce((SELECT bool_or(true) FROM r WHERE r.p = p.id), false)) AS reviewed FROM p")
        );
        assert_eq!(
            rewritten("SELECT NOT i.x AND NOT EXISTS (SELECT 1 FROM c WHERE c.a = i.a) FROM i").as_deref(),
            Some("SELECT NOT i.x AND (NOT coalesce((SELECT bool_or(true) FROM c WHERE c.a = i.a), false)) FROM i")
        );
        // WHERE EXISTS is DataFusion's semi join; grouped or limited subqueries stay.
        assert_eq!(rewritten("SELECT a FROM p WHERE EXISTS (SELECT 1 FROM r WHERE r.p = p.id)"), None);
        assert_eq!(rewritten("SELECT EXISTS (SELECT r.k FROM r GROUP BY r.k HAVING count(*) > 1) FROM p"), None);
        assert_eq!(rewritten("SELECT EXISTS (SELECT 1 FROM r LIMIT 0) FROM p"), None);
        assert!(may_hold_exists("select EXISTS(") && !may_hold_exists("select 1"));
        assert_eq!(
            rewritten("SELECT EXISTS (SELECT 1 FROM r) FROM p").as_deref(),
            Some("SELECT (coalesce((SELECT bool_or(true) FROM r), false)) AS exists FROM p")
        );
    }
}
