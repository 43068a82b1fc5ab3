//! `INSERT INTO t (cols) SELECT exprs FROM (VALUES …) AS v(cols) [ORDER BY c]`
//! as the plain `INSERT INTO t (cols) VALUES …` it means.
//!
//! SQLAlchemy 2's "insertmanyvalues" sends every multi-row ORM insert this
//! way (a sentinel column numbers the rows, and RETURNING comes back in that
//! order). DataFusion plans an INSERT's source with the target table's schema
//! as the schema of any VALUES list inside it, so the nested VALUES, one
//! column wider than the table, fails to plan ("Inconsistent data length
//! across values list"). This rule substitutes each row's values into the
//! select list, orders the rows as ORDER BY asks (by a column of integer
//! literals, as the sentinel is) and drops the derived table. Inserts keep the
//! order of their VALUES rows, so RETURNING answers in that order. Any other
//! shape (a WHERE, a join, a GROUP BY, an ORDER BY on something else) is left
//! as written.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, OrderByKind, SelectItem, SetExpr, Statement, TableFactor, Value, visit_expressions_mut,
};

use crate::colnames::normalized;

/// Rewrite `statement` if it is an INSERT of that shape; whether it was.
pub fn flatten_insert_values(statement: &mut Statement) -> bool {
    let Statement::Insert(insert) = statement else { return false };
    let Some(source) = insert.source.as_mut() else { return false };
    if source.with.is_some() || source.limit_clause.is_some() || source.fetch.is_some() {
        return false;
    }
    let SetExpr::Select(select) = source.body.as_ref() else { return false };
    if select.selection.is_some()
        || select.having.is_some()
        || select.distinct.is_some()
        || !matches!(&select.group_by, datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
        || select.from.len() != 1
        || !select.from[0].joins.is_empty()
    {
        return false;
    }
    let TableFactor::Derived { subquery, alias: Some(alias), lateral: false, .. } = &select.from[0].relation else {
        return false;
    };
    let SetExpr::Values(values) = subquery.body.as_ref() else { return false };
    if subquery.order_by.is_some() || subquery.limit_clause.is_some() || alias.columns.is_empty() {
        return false;
    }
    let names: Vec<String> = alias.columns.iter().map(|c| normalized(&c.name)).collect();
    if values.rows.iter().any(|r| r.content.len() != names.len()) {
        return false;
    }
    let items: Vec<Expr> = match select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e.clone()),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
    {
        Some(items) => items,
        None => return false,
    };
    // The order of the rows: as listed, or by a column of integer literals.
    let mut order: Vec<usize> = (0..values.rows.len()).collect();
    if let Some(order_by) = &source.order_by {
        let OrderByKind::Expressions(exprs) = &order_by.kind else { return false };
        let [by] = exprs.as_slice() else { return false };
        let Expr::Identifier(column) = &by.expr else { return false };
        let Some(at) = names.iter().position(|n| *n == normalized(column)) else { return false };
        let keys: Option<Vec<i64>> = values
            .rows
            .iter()
            .map(|r| match &r.content[at] {
                Expr::Value(v) => match &v.value {
                    Value::Number(n, _) => n.parse().ok(),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        let Some(keys) = keys else { return false };
        order.sort_by_key(|&i| keys[i]);
        if by.options.asc == Some(false) {
            order.reverse();
        }
    }
    let mut rows = Vec::with_capacity(order.len());
    for i in order {
        let row: HashMap<&str, &Expr> = names.iter().map(String::as_str).zip(values.rows[i].content.iter()).collect();
        let mut out = Vec::with_capacity(items.len());
        for item in &items {
            let mut e = item.clone();
            let mut outside = false;
            let _ = visit_expressions_mut(&mut e, |x: &mut Expr| {
                match x {
                    Expr::Identifier(id) => match row.get(normalized(id).as_str()) {
                        Some(v) => *x = (*v).clone(),
                        None => outside = true,
                    },
                    Expr::CompoundIdentifier(_) | Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
                        outside = true
                    }
                    _ => {}
                }
                ControlFlow::<()>::Continue(())
            });
            if outside {
                return false;
            }
            out.push(e);
        }
        rows.push(out);
    }
    let mut flat = values.clone();
    for (parens, row) in flat.rows.iter_mut().zip(rows) {
        parens.content = row;
    }
    source.body = Box::new(SetExpr::Values(flat));
    source.order_by = None;
    true
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn flattened(sql: &str) -> Option<String> {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        super::flatten_insert_values(&mut statements[0]).then(|| statements[0].to_string())
    }

    #[test]
    fn sqlalchemy_insertmanyvalues_becomes_plain_values() {
        let sql = "INSERT INTO book (title, pages) SELECT p0::VARCHAR, p1::INTEGER FROM (VALUES ($1::VARCHAR, $2::INTEGER, 1), \
                   ($3::VARCHAR, $4::INTEGER, 0)) AS imp_sen(p0, p1, sen_counter) ORDER BY sen_counter RETURNING book.id";
        assert_eq!(
            flattened(sql).unwrap(),
            "INSERT INTO book (title, pages) VALUES ($3::VARCHAR::VARCHAR, $4::INTEGER::INTEGER), \
             ($1::VARCHAR::VARCHAR, $2::INTEGER::INTEGER) RETURNING book.id"
        );
        // Other shapes are left as written.
        assert_eq!(flattened("INSERT INTO t (a) SELECT x FROM (VALUES (1)) AS v(x) WHERE x > 0"), None);
        assert_eq!(flattened("INSERT INTO t (a) SELECT y FROM (VALUES (1)) AS v(x)"), None);
        assert_eq!(flattened("INSERT INTO t (a) VALUES (1)"), None);
        assert_eq!(flattened("INSERT INTO t (a) SELECT x FROM (VALUES (1, 'b')) AS v(x, y) ORDER BY y"), None);
    }
}
