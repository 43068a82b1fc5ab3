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

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, VisitMut, VisitorMut};

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
/// AND/OR words (a cheap test before parsing a statement for it).
pub fn may_hold_chain(sql: &str) -> bool {
    sql.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| w.eq_ignore_ascii_case("or") || w.eq_ignore_ascii_case("and"))
        .nth(MIN_CHAIN - 2)
        .is_some()
}

struct Balancer {
    changed: bool,
}

impl VisitorMut for Balancer {
    type Break = ();

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
}
