//! `DEFAULT` in an INSERT, as Postgres takes it: `VALUES (DEFAULT, 'y')`,
//! `INSERT INTO t (a) VALUES (DEFAULT)` and `INSERT INTO t DEFAULT VALUES`.
//! DataFusion plans none of them (it reads `DEFAULT` as a column name, and
//! refuses an INSERT without a source), so the statement is rewritten first:
//!
//! - a column that is `DEFAULT` in every row leaves the column list and the
//!   rows, so the write path fills it as for any column not given (the
//!   literal or computed default, the next serial or identity value, NULL);
//! - a column that is `DEFAULT` in some rows only gets its default written
//!   out there (the literal, `now()`, `CURRENT_DATE`, or NULL); a serial or
//!   identity column cannot (its next value is drawn by the write), so that is
//!   refused with 0A000 rather than filled with something else;
//! - `DEFAULT VALUES`, or rows left with no column, write one row of defaults:
//!   the first column that is not serial or identity is given its default.

use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, Ident, ObjectName, ObjectNamePart, Parens, Query, SetExpr, Statement, TableObject, Values,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use heavenbase_catalog::FieldDef;

use super::Workspace;
use crate::{Error, Result};

impl Workspace {
    /// Rewrite the `DEFAULT`s of an INSERT into `statement` (module doc).
    /// Returns whether anything changed.
    pub fn insert_defaults(&self, statement: &mut Statement) -> Result<bool> {
        let Statement::Insert(insert) = statement else { return Ok(false) };
        let TableObject::TableName(name) = &insert.table else { return Ok(false) };
        let some_default = match insert.source.as_deref().map(|q| q.body.as_ref()) {
            None => true,
            Some(SetExpr::Values(values)) => values.rows.iter().flat_map(|r| r.content.iter()).any(is_default),
            Some(_) => false,
        };
        // Most INSERTs have none: they are left before the entity is looked up.
        if !insert.assignments.is_empty() || !some_default {
            return Ok(false);
        }
        let Some(rt) = self.named_entity(name) else { return Ok(false) };
        let table = rt.def.table_name();
        let def = &rt.def;
        let Some(source) = insert.source.as_mut() else {
            // DEFAULT VALUES.
            let (column, value) = one_default_cell(def, &table)?;
            insert.columns = vec![column];
            insert.source = Some(Box::new(values_query(vec![Parens::with_empty_span(vec![value])])));
            return Ok(true);
        };
        let SetExpr::Values(values) = source.body.as_mut() else { return Ok(false) };
        // The columns the rows fill, in order: the list given, or the
        // table's (its `SELECT *` columns for a Postgres-shaped table).
        let names: Vec<String> = if insert.columns.is_empty() {
            let width = values.rows.first().map_or(0, |r| r.content.len());
            def.star_fields().take(width).map(|f| f.name.clone()).collect()
        } else {
            insert.columns.iter().map(|c| last_name(c)).collect()
        };
        let mut keep = Vec::with_capacity(names.len());
        for (k, column) in names.iter().enumerate() {
            let cells: Vec<bool> = values.rows.iter().map(|row| row.get(k).is_some_and(is_default)).collect();
            if cells.iter().all(|d| *d) {
                keep.push(false);
                continue;
            }
            keep.push(true);
            if !cells.iter().any(|d| *d) {
                continue;
            }
            let field = def.get(column).ok_or_else(|| Error::unknown_field(format!("{table} has no column \"{column}\"")))?;
            if field.identity.is_some() {
                return Err(Error::not_supported(format!(
                    "INSERT INTO {table}: {column} is DEFAULT in some rows and given in others; its default is the next \
                     serial value, drawn by the write: send those rows in an INSERT of their own"
                )));
            }
            let value = default_expr(field)?;
            for row in &mut values.rows {
                if row.get(k).is_some_and(is_default) {
                    row.content[k] = value.clone();
                }
            }
        }
        if keep.iter().any(|k| *k) {
            insert.columns = names.iter().zip(&keep).filter(|(_, k)| **k).map(|(n, _)| column_name(n)).collect();
            for row in &mut values.rows {
                let mut at = 0;
                row.content.retain(|_| {
                    let kept = keep.get(at).copied().unwrap_or(true);
                    at += 1;
                    kept
                });
            }
            return Ok(true);
        }
        // Every cell DEFAULT: rows of defaults only.
        let (column, value) = one_default_cell(def, &table)?;
        let rows = values.rows.len();
        insert.columns = vec![column];
        values.rows = (0..rows).map(|_| Parens::with_empty_span(vec![value.clone()])).collect();
        Ok(true)
    }
}

fn is_default(expr: &SqlExpr) -> bool {
    matches!(expr, SqlExpr::Identifier(id) if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default"))
}

fn last_name(name: &ObjectName) -> String {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(id)) if id.quote_style.is_some() => id.value.clone(),
        Some(ObjectNamePart::Identifier(id)) => id.value.to_ascii_lowercase(),
        _ => name.to_string(),
    }
}

fn column_name(name: &str) -> ObjectName {
    ObjectName(vec![ObjectNamePart::Identifier(Ident::with_quote('"', name))])
}

fn values_query(rows: Vec<Parens<Vec<SqlExpr>>>) -> Query {
    let mut query = Parser::new(&PostgreSqlDialect {})
        .try_with_sql("VALUES (NULL)")
        .and_then(|mut p| p.parse_query())
        .map(|q| *q)
        .expect("a literal VALUES parses");
    query.body = Box::new(SetExpr::Values(Values { explicit_row: false, value_keyword: false, rows }));
    query
}

/// The first column that is not serial or identity, and its default: what a
/// row of defaults is written as.
fn one_default_cell(def: &heavenbase_catalog::EntityDef, table: &str) -> Result<(ObjectName, SqlExpr)> {
    let field = def
        .star_fields()
        .find(|f| f.identity.is_none())
        .ok_or_else(|| Error::not_supported(format!("INSERT INTO {table} DEFAULT VALUES: every column is serial or identity")))?;
    Ok((column_name(&field.name), default_expr(field)?))
}

/// A field's default as SQL: its literal, `now()` / `CURRENT_DATE`, or NULL.
fn default_expr(field: &FieldDef) -> Result<SqlExpr> {
    let text = match (&field.default_fn, &field.default) {
        (Some(computed), _) => computed.sql().to_string(),
        (None, Some(value)) => crate::render::json_literal(value),
        (None, None) => "NULL".to_string(),
    };
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| Error::internal(format!("the default of {} ({text}) does not parse: {e}", field.name)))
}
