//! Lists in the text forms clients send them, in `INSERT … VALUES` and
//! `UPDATE … SET` of a list column: vectors in pgvector's text form
//! `'[1,0,0]'` (what psycopg, LangChain and LlamaIndex send), alone or cast
//! (`'[1,0,0]'::vector`), and arrays in Postgres' array text `'{a,"b c"}'`
//! (alone or cast, `'{1,2}'::int[]`: what Rails, Django and psql users
//! write). DataFusion cannot cast text to a list, so before planning each
//! such literal becomes the `ARRAY[…]` it stands for; a vector's dimensions
//! are checked against the field's.

use datafusion::sql::sqlparser::ast::{
    self, AssignmentTarget, Expr as SqlExpr, ObjectNamePart, SetExpr, Statement, TableFactor, TableObject, Value,
};
use heavenbase_catalog::LogicalType;

use super::{EntityRuntime, Workspace};
use crate::colnames::normalized;
use crate::{Error, ErrorKind, Result};

impl Workspace {
    /// Whether some entity has a vector or array field (a cheap check for
    /// the hot path).
    pub fn has_list_fields(&self) -> bool {
        self.inner
            .entities
            .read()
            .values()
            .any(|rt| rt.def.fields.iter().any(|f| matches!(f.ty, LogicalType::Vector { .. } | LogicalType::Array { .. })))
    }

    /// Rewrite the text-form vectors and arrays an INSERT or UPDATE writes
    /// into list fields as ARRAY literals (module doc). Returns whether
    /// anything changed; a malformed vector or one of the wrong dimension is
    /// an error naming the field.
    pub fn list_literals(&self, statement: &mut Statement) -> Result<bool> {
        if !self.has_list_fields() {
            return Ok(false);
        }
        match statement {
            Statement::Insert(insert) => {
                let TableObject::TableName(name) = &insert.table else { return Ok(false) };
                let Some(rt) = self.named_entity(name) else { return Ok(false) };
                let Some(SetExpr::Values(values)) = insert.source.as_mut().map(|q| q.body.as_mut()) else { return Ok(false) };
                // The columns written: as listed, else the table's in order.
                let columns: Vec<String> = if insert.columns.is_empty() {
                    rt.def.fields.iter().filter(|f| !f.system_column).map(|f| f.name.clone()).collect()
                } else {
                    insert.columns.iter().map(last_name).collect()
                };
                let mut changed = false;
                for row in values.rows.iter_mut() {
                    for (value, column) in row.content.iter_mut().zip(&columns) {
                        changed |= rewrite(&rt, column, value)?;
                    }
                }
                Ok(changed)
            }
            Statement::Update(update) => {
                let TableFactor::Table { name, .. } = &update.table.relation else { return Ok(false) };
                let Some(rt) = self.named_entity(name) else { return Ok(false) };
                let mut changed = false;
                for a in update.assignments.iter_mut() {
                    if let AssignmentTarget::ColumnName(column) = &a.target {
                        let column = last_name(column);
                        changed |= rewrite(&rt, &column, &mut a.value)?;
                    }
                }
                Ok(changed)
            }
            _ => Ok(false),
        }
    }
}

/// The last part of a name (`c` of `t.c`, `vector` of `public.vector`), as Postgres folds it.
fn last_name(name: &ast::ObjectName) -> String {
    name.0.last().and_then(ObjectNamePart::as_ident).map(normalized).unwrap_or_default()
}

/// `'[…]'` or `'[…]'::vector` written to a vector column, `'{…}'` or
/// `'{…}'::type[]` to an array column: the ARRAY[…] they stand for.
fn rewrite(rt: &EntityRuntime, column: &str, value: &mut SqlExpr) -> Result<bool> {
    let Some(ty) = rt.def.get(column).map(|f| &f.ty) else { return Ok(false) };
    let text = match (ty, &*value) {
        (LogicalType::Vector { .. } | LogicalType::Array { .. }, SqlExpr::Value(_)) => quoted_text(value),
        (LogicalType::Vector { .. }, SqlExpr::Cast { expr, data_type: ast::DataType::Custom(name, _), .. })
            if last_name(name) == "vector" =>
        {
            quoted_text(expr)
        }
        (LogicalType::Array { .. }, SqlExpr::Cast { expr, data_type: ast::DataType::Array(_), .. }) => quoted_text(expr),
        _ => None,
    };
    let Some(text) = text else { return Ok(false) };
    let entity = &rt.def.entity_id;
    if let LogicalType::Array { .. } = ty {
        // Text that is no array literal is left to the write path's error.
        let Some(list) = heavenbase_catalog::types::pg_array_json(&text, ty) else { return Ok(false) };
        // Every element must read as the item type (22P02 naming the column,
        // as Postgres refuses `'{1,x}'` for an int[]); DataFusion then casts
        // the elements as it casts any ARRAY literal.
        ty.coerce(&list).map_err(|e| {
            Error::new(ErrorKind::InvalidValue, format!("{entity}.{column}: '{text}' is not a valid {}: {e}", ty.pg_type()))
        })?;
        let serde_json::Value::Array(items) = list else { return Ok(false) };
        let elem = items.into_iter().map(array_item).collect();
        *value = SqlExpr::Array(ast::Array { elem, named: true });
        return Ok(true);
    }
    let LogicalType::Vector { dim } = ty else { return Ok(false) };
    let numbers = parse(&text).ok_or_else(|| {
        Error::argument(format!("{entity}.{column}: '{text}' is not a vector; pgvector's text form is '[1, 2, 3]'"))
    })?;
    if numbers.len() != *dim {
        return Err(Error::argument(format!(
            "{entity}.{column}: the vector '{text}' has {} dimensions, the field has {dim}",
            numbers.len()
        )));
    }
    let elem = numbers.into_iter().map(|n| SqlExpr::value(Value::Number(n, false))).collect();
    *value = SqlExpr::Array(ast::Array { elem, named: true });
    Ok(true)
}

/// The text of a quoted literal.
fn quoted_text(expr: &SqlExpr) -> Option<String> {
    match expr {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// An element of an array literal as SQL: text quoted, numbers and
/// booleans bare, NULL.
fn array_item(item: serde_json::Value) -> SqlExpr {
    use serde_json::Value as J;
    SqlExpr::value(match item {
        J::Null => Value::Null,
        J::Bool(b) => Value::Boolean(b),
        J::Number(n) => Value::Number(n.to_string(), false),
        J::String(s) => Value::SingleQuotedString(s),
        other => Value::SingleQuotedString(other.to_string()),
    })
}

/// The numbers of `[1, -2.5, 3e-2]` as SQL number literals: as Rust writes
/// them, plain digits, never an exponent SQL would misread.
fn parse(text: &str) -> Option<Vec<String>> {
    Some(heavenbase_catalog::types::vector_numbers(text)?.iter().map(f64::to_string).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn pgvector_text_parses_to_its_numbers() {
        assert_eq!(super::parse("[1, -2.5,3e-2]"), Some(vec!["1".into(), "-2.5".into(), "0.03".into()]));
        assert_eq!(super::parse(" [] "), Some(vec![]));
        assert_eq!(super::parse("[1, x]"), None);
        assert_eq!(super::parse("[1, NaN]"), None);
        assert_eq!(super::parse("1, 2"), None);
    }
}
