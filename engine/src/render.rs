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
    fn defaults_print_as_a_postgres_column_of_their_type_reads_them() {
        use heavenbase_catalog::{DefaultFn, FieldDef, LogicalType as T};
        use serde_json::json;
        let with = |ty: T, value: serde_json::Value| FieldDef::new("f", ty).default(value);
        assert_eq!(default_expression(&with(T::short_text(), json!("it's"))).as_deref(), Some("'it''s'"));
        assert_eq!(default_expression(&with(T::Integer, json!(0))).as_deref(), Some("0"));
        assert_eq!(default_expression(&with(T::Boolean, json!(true))).as_deref(), Some("true"));
        let tags = T::array_of(T::short_text());
        assert_eq!(default_expression(&with(tags, json!(["a", "b c", "", null]))).as_deref(), Some(r#"'{a,"b c","",NULL}'"#));
        assert_eq!(default_expression(&with(T::array_of(T::Integer), json!([1, 2]))).as_deref(), Some("'{1,2}'"));
        assert_eq!(default_expression(&with(T::Duration, json!(1500))).as_deref(), Some("1500"));
        assert_eq!(
            default_expression(&with(T::Timestamp, json!(1_704_067_200_000i64))).as_deref(),
            Some("'2024-01-01T00:00:00Z'")
        );
        assert_eq!(default_expression(&with(T::Json, json!({"k": 1}))).as_deref(), Some(r#"'{"k":1}'"#));
        assert_eq!(default_expression(&with(T::Integer, serde_json::Value::Null)), None);
        assert_eq!(default_expression(&FieldDef::new("f", T::Integer)), None);
        let mut at = FieldDef::new("at", T::Timestamp);
        at.default_fn = Some(DefaultFn::Now);
        assert_eq!(default_expression(&at).as_deref(), Some("now()"));
    }

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

/// A field's default as Postgres prints a column's default
/// (`information_schema.columns.column_default`, and `pg_get_expr` of its
/// pg_attrdef row, from which pg_dump writes `DEFAULT …`), in a form a
/// Postgres column of the type pg_attribute gives reads: the computed ones
/// as they are called (`now()`, `CURRENT_DATE`, `gen_random_uuid()`), a list
/// as array text (`'{1,2}'`), an instant given as milliseconds as its text,
/// any other literal as [`json_literal`] writes it (a duration is its
/// milliseconds, as its `bigint` column holds it). None when the field has
/// no default (or NULL).
pub fn default_expression(field: &heavenbase_catalog::FieldDef) -> Option<String> {
    use heavenbase_catalog::LogicalType;
    use serde_json::Value;
    if let Some(computed) = field.default_fn {
        return Some(computed.sql().to_string());
    }
    let value = field.default.as_ref().filter(|d| !d.is_null())?;
    Some(match (value, &field.ty) {
        (Value::Array(items), LogicalType::Array { .. } | LogicalType::Vector { .. }) => quote_literal(&json_array_text(items)),
        (Value::Number(ms), LogicalType::Timestamp) => {
            let at = ms.as_i64().and_then(chrono::DateTime::from_timestamp_millis)?;
            quote_literal(&at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        }
        _ => json_literal(value),
    })
}

/// A JSON list as Postgres' array text (`{1,"b c",NULL}`).
fn json_array_text(items: &[serde_json::Value]) -> String {
    use serde_json::Value;
    let mut out = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item {
            Value::Null => out.push_str("NULL"),
            Value::Array(inner) => out.push_str(&json_array_text(inner)),
            Value::String(s) => push_array_element(&mut out, s),
            other => push_array_element(&mut out, &other.to_string()),
        }
    }
    out.push('}');
    out
}

/// One element of Postgres' array text, as Postgres writes it: quoted (with
/// `"` and `\` escaped) when it is empty, `NULL`, or holds a brace, comma,
/// quote, backslash or blank; bare otherwise.
pub fn push_array_element(out: &mut String, element: &str) {
    let quote = element.is_empty()
        || element.eq_ignore_ascii_case("NULL")
        || element.chars().any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_whitespace());
    if !quote {
        out.push_str(element);
        return;
    }
    out.push('"');
    for c in element.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
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
