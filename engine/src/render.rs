//! Statements and expressions printed back as SQL text, for a parser to read
//! again (the wire's rewrites; the statements the workspace builds from parts
//! of another, such as `UPDATE … FROM`). sqlparser prints a unary sign right
//! before its operand, so `- -1` prints as `--1`, which SQL reads as the start
//! of a comment: nested signs are put in parentheses first (`-(-1)`), which
//! reads back as the same expression.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, UnaryOperator, VisitMut, VisitorMut};

/// Parenthesise every signed operand of a unary sign in `node`, so that its
/// printed text parses back to the same tree. Returns whether anything changed.
pub fn separate_signs<V: VisitMut>(node: &mut V) -> bool {
    let mut signs = Signs { changed: false };
    let _ = node.visit(&mut signs);
    signs.changed
}

/// `node` as SQL text that parses back to it (see the module doc).
pub fn sql_text<V: VisitMut + Clone + std::fmt::Display>(node: &V) -> String {
    let mut node = node.clone();
    separate_signs(&mut node);
    node.to_string()
}

struct Signs {
    changed: bool,
}

fn is_sign(op: &UnaryOperator) -> bool {
    matches!(op, UnaryOperator::Minus | UnaryOperator::Plus)
}

impl VisitorMut for Signs {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::UnaryOp { op, expr: operand } = expr {
            let signed = match operand.as_ref() {
                Expr::UnaryOp { op: inner, .. } => is_sign(inner),
                Expr::Value(v) => v.to_string().starts_with(['-', '+']),
                _ => false,
            };
            if is_sign(op) && signed {
                let inner = std::mem::replace(operand.as_mut(), Expr::value(datafusion::sql::sqlparser::ast::Value::Null));
                **operand = Expr::Nested(Box::new(inner));
                self.changed = true;
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    #[test]
    fn nested_signs_print_as_text_that_parses_back() {
        for (sql, want) in [
            ("SELECT - - 1", "SELECT -(-1)"),
            ("SELECT - + - 2.5, 5 - - 3", "SELECT -(+(-2.5)), 5 - -3"),
            ("SELECT -(-x) FROM t WHERE - -a > 0", "SELECT -(-x) FROM t WHERE -(-a) > 0"),
        ] {
            let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
            let text = sql_text(&statements[0]);
            assert_eq!(text, want);
            let again = Parser::parse_sql(&PostgreSqlDialect {}, &text).unwrap();
            separate_signs(&mut statements[0]);
            assert_eq!(again[0], statements[0], "{sql} reads back as itself");
        }
    }
}

/// A name as Postgres prints it (`quote_ident`, pg_indexes, `\d`): bare when it
/// is a simple lower-case identifier, else in double quotes with quotes doubled.
/// (Postgres quotes its reserved words too; names here are rarely those.)
pub fn quote_ident(name: &str) -> String {
    let simple = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if simple { name.to_string() } else { format!("\"{}\"", name.replace('"', "\"\"")) }
}

/// A string literal as Postgres' `quote_literal` gives it: single quotes
/// doubled, and the `E'…'` form when it holds a backslash.
pub fn quote_literal(text: &str) -> String {
    let body = text.replace('\'', "''");
    if text.contains('\\') { format!("E'{}'", body.replace('\\', "\\\\")) } else { format!("'{body}'") }
}

/// A field's literal default (JSON) as SQL, as `information_schema.columns`
/// shows it and as a statement may write it out: text in single quotes
/// (standard_conforming_strings: a backslash is itself), numbers and booleans
/// bare, NULL, and lists or objects as their JSON text in quotes.
pub fn json_literal(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::String(s) => format!("'{}'", s.replace('\'', "''")),
        Value::Null => "NULL".to_string(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        other => format!("'{}'", other.to_string().replace('\'', "''")),
    }
}
