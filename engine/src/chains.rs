//! Long AND/OR chains planned without deep recursion.
//!
//! The parser reads `v = 0 OR v = 1 OR … OR v = 1999` (the filters ORMs and BI
//! tools generate) as a left-deep tree, one level per term. Planning walks and
//! clones that tree recursively, so a few thousand terms overflow a thread's
//! stack and abort the whole process: every other session of a server with it.
//! AND and OR are associative (in SQL's three-valued logic too), so such a
//! chain is rebuilt as a balanced tree of the same terms in the same order,
//! whose depth is the logarithm of its length: 50,000 terms plan as 16 levels.
//!
//! The chain is taken apart and rebuilt with loops and an explicit stack, before
//! anything walks it recursively (the visitor meets the chain's top first).
//! Balanced parts are parenthesised, so the statement keeps its shape when it
//! is printed and parsed again (the wire rewrites statements as text).
//!
//! Set operations are chains too: `SELECT 0 UNION ALL SELECT 1 UNION ALL …`
//! parses left-deep, and 3,000 of them overflowed a 32 MiB stack in planning.
//! UNION [ALL] and INTERSECT [ALL] are associative (EXCEPT is not, and is
//! left as written), so a chain of one operator is balanced the same way; its
//! leftmost query stays leftmost, and names the result's columns.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Query, SetExpr, SetOperator, SetQuantifier, Values, VisitMut, VisitorMut,
};

/// Chains of at least this many terms are balanced; shorter ones plan as written.
pub const MIN_CHAIN: usize = 64;

/// Balance every AND/OR chain of at least [`MIN_CHAIN`] terms in `statement`;
/// returns whether any was.
pub fn balance_chains<T: VisitMut>(statement: &mut T) -> bool {
    let mut balancer = Balancer { changed: false };
    let _ = statement.visit(&mut balancer);
    balancer.changed
}

/// Whether `sql` may hold a chain worth balancing: at least [`MIN_CHAIN`] - 1
/// AND/OR or UNION/INTERSECT words (a cheap test before parsing a statement for it).
pub fn may_hold_chain(sql: &str) -> bool {
    let words = |list: [&str; 2]| {
        sql.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .filter(|w| list.iter().any(|l| w.eq_ignore_ascii_case(l)))
            .nth(MIN_CHAIN - 2)
            .is_some()
    };
    words(["or", "and"]) || words(["union", "intersect"])
}

struct Balancer {
    changed: bool,
}

impl VisitorMut for Balancer {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let SetExpr::SetOperation { op, set_quantifier, .. } = query.body.as_ref() else { return ControlFlow::Continue(()) };
        let (op, quantifier) = (op.clone(), *set_quantifier);
        if !matches!(op, SetOperator::Union | SetOperator::Intersect) || set_spine(&query.body, &op, quantifier) < MIN_CHAIN {
            return ControlFlow::Continue(());
        }
        let placeholder = SetExpr::Values(Values { explicit_row: false, value_keyword: false, rows: Vec::new() });
        let terms = take_set_terms(std::mem::replace(query.body.as_mut(), placeholder), &op, quantifier);
        *query.body = balanced_set(terms, &op, quantifier);
        self.changed = true;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let op = match expr {
            Expr::BinaryOp { op: op @ (BinaryOperator::And | BinaryOperator::Or), .. } => op.clone(),
            _ => return ControlFlow::Continue(()),
        };
        if left_spine(expr, &op) < MIN_CHAIN {
            return ControlFlow::Continue(());
        }
        let terms = take_terms(std::mem::replace(expr, Expr::value(datafusion::sql::sqlparser::ast::Value::Null)), &op);
        *expr = balanced(terms, &op);
        self.changed = true;
        ControlFlow::Continue(())
    }
}

/// Terms on the chain's left spine, without walking anything else.
fn left_spine(expr: &Expr, op: &BinaryOperator) -> usize {
    let mut terms = 1;
    let mut at = expr;
    while let Expr::BinaryOp { left, op: o, .. } = at {
        if o != op {
            break;
        }
        terms += 1;
        at = left;
    }
    terms
}

/// The chain's terms, left to right: every operand of `op`, through
/// parentheses around `op` too, taken apart with an explicit stack (moving
/// each node out of its box, so nothing is dropped recursively either).
fn take_terms(chain: Expr, op: &BinaryOperator) -> Vec<Expr> {
    let mut terms = Vec::new();
    let mut pending = vec![chain];
    while let Some(e) = pending.pop() {
        match e {
            Expr::BinaryOp { left, op: o, right } if &o == op => {
                pending.push(*right);
                pending.push(*left);
            }
            Expr::Nested(inner) if matches!(inner.as_ref(), Expr::BinaryOp { op: o, .. } if o == op) => pending.push(*inner),
            term => terms.push(term),
        }
    }
    terms
}

/// `terms` joined by `op` as a balanced tree: adjacent pairs joined level by
/// level, order kept; each joined pair parenthesised.
fn balanced(mut terms: Vec<Expr>, op: &BinaryOperator) -> Expr {
    while terms.len() > 1 {
        let mut next = Vec::with_capacity(terms.len().div_ceil(2));
        let mut it = terms.into_iter();
        while let Some(left) = it.next() {
            next.push(match it.next() {
                Some(right) => {
                    Expr::Nested(Box::new(Expr::BinaryOp { left: Box::new(left), op: op.clone(), right: Box::new(right) }))
                }
                None => left,
            });
        }
        terms = next;
    }
    terms.pop().unwrap_or_else(|| Expr::value(datafusion::sql::sqlparser::ast::Value::Null))
}

/// Queries on a set operation chain's left spine.
fn set_spine(body: &SetExpr, op: &SetOperator, quantifier: SetQuantifier) -> usize {
    let mut terms = 1;
    let mut at = body;
    while let SetExpr::SetOperation { left, op: o, set_quantifier, .. } = at {
        if o != op || *set_quantifier != quantifier {
            break;
        }
        terms += 1;
        at = left;
    }
    terms
}

/// The chain's queries, left to right (as [`take_terms`], for set operations).
fn take_set_terms(chain: SetExpr, op: &SetOperator, quantifier: SetQuantifier) -> Vec<SetExpr> {
    let mut terms = Vec::new();
    let mut pending = vec![chain];
    while let Some(e) = pending.pop() {
        match e {
            SetExpr::SetOperation { left, op: o, set_quantifier, right } if &o == op && set_quantifier == quantifier => {
                pending.push(*right);
                pending.push(*left);
            }
            term => terms.push(term),
        }
    }
    terms
}

/// `terms` joined by the set operation as a balanced tree, each joined pair
/// but the last a parenthesised query, so printing keeps the shape.
fn balanced_set(mut terms: Vec<SetExpr>, op: &SetOperator, quantifier: SetQuantifier) -> SetExpr {
    let join = |left: SetExpr, right: SetExpr| SetExpr::SetOperation {
        op: op.clone(),
        set_quantifier: quantifier,
        left: Box::new(left),
        right: Box::new(right),
    };
    while terms.len() > 2 {
        let mut next = Vec::with_capacity(terms.len().div_ceil(2));
        let mut it = terms.into_iter();
        while let Some(left) = it.next() {
            next.push(match it.next() {
                Some(right) => SetExpr::Query(Box::new(Query {
                    with: None,
                    body: Box::new(join(left, right)),
                    order_by: None,
                    limit_clause: None,
                    fetch: None,
                    locks: Vec::new(),
                    for_clause: None,
                    settings: None,
                    format_clause: None,
                    pipe_operators: Vec::new(),
                })),
                None => left,
            });
        }
        terms = next;
    }
    let right = terms.pop();
    let left = terms.pop();
    match (left, right) {
        (Some(left), Some(right)) => join(left, right),
        (None, Some(only)) => only,
        _ => SetExpr::Values(Values { explicit_row: false, value_keyword: false, rows: Vec::new() }),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn depth(e: &Expr) -> usize {
        match e {
            Expr::BinaryOp { left, right, .. } => 1 + depth(left).max(depth(right)),
            Expr::Nested(inner) => depth(inner),
            _ => 0,
        }
    }

    #[test]
    fn a_long_chain_becomes_shallow_and_keeps_its_terms_in_order() {
        let terms: Vec<String> = (0..1000).map(|i| format!("v = {i}")).collect();
        let sql = format!("SELECT 1 FROM t WHERE {} AND (w = 1 OR w = 2)", terms.join(" OR "));
        assert!(may_hold_chain(&sql));
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, &sql).unwrap();
        assert!(balance_chains(&mut statements));
        let text = statements[0].to_string();
        // Same terms, same order; only parentheses added.
        assert_eq!(text.replace(['(', ')'], ""), sql.replace(['(', ')'], ""));
        let again = Parser::parse_sql(&PostgreSqlDialect {}, &text).unwrap();
        let datafusion::sql::sqlparser::ast::Statement::Query(q) = &again[0] else { panic!("a query") };
        let datafusion::sql::sqlparser::ast::SetExpr::Select(s) = q.body.as_ref() else { panic!("a select") };
        let d = depth(s.selection.as_ref().unwrap());
        assert!(d <= 16, "depth {d} after printing and parsing again");
    }

    #[test]
    fn short_chains_are_left_as_written() {
        let sql = "SELECT 1 FROM t WHERE a = 1 OR b = 2 OR c = 3";
        assert!(!may_hold_chain(sql));
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        assert!(!balance_chains(&mut statements));
        assert_eq!(statements[0].to_string(), sql);
    }

    #[test]
    fn long_union_chains_are_balanced_in_order() {
        let n = 3_000;
        let sql = (0..n).map(|i| format!("SELECT {i} AS v")).collect::<Vec<_>>().join(" UNION ALL ");
        assert!(may_hold_chain(&sql));
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, &sql).unwrap();
        assert!(balance_chains(&mut statements));
        let text = statements[0].to_string();
        // Printed and parsed again (as the wire does), the same queries in the same order, shallow.
        let again = Parser::parse_sql(&PostgreSqlDialect {}, &text).unwrap();
        fn leaves(body: &SetExpr, out: &mut Vec<String>) -> usize {
            match body {
                SetExpr::SetOperation { left, right, .. } => 1 + leaves(left, out).max(leaves(right, out)),
                SetExpr::Query(q) => leaves(&q.body, out),
                other => {
                    out.push(other.to_string());
                    0
                }
            }
        }
        let datafusion::sql::sqlparser::ast::Statement::Query(q) = &again[0] else { panic!("a query") };
        let mut found = Vec::new();
        let depth = leaves(&q.body, &mut found);
        assert!(depth <= 13, "{depth}");
        assert_eq!(found, (0..n).map(|i| format!("SELECT {i} AS v")).collect::<Vec<_>>());
        // EXCEPT is not associative: left as written.
        let sql = (0..100).map(|i| format!("SELECT {i}")).collect::<Vec<_>>().join(" EXCEPT ");
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, &sql).unwrap();
        assert!(!balance_chains(&mut statements));
    }
}
