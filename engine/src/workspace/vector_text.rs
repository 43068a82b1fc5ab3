//! Vectors in the form clients send them: pgvector's text form `'[1,0,0]'`
//! (what psycopg, LangChain and LlamaIndex send), alone or cast
//! (`'[1,0,0]'::vector`), in `INSERT … VALUES` and `UPDATE … SET` of a vector
//! column. DataFusion cannot cast text to a fixed-size list, so before
//! planning each such literal becomes the `ARRAY[1, 0, 0]` it stands for,
//! after its dimensions are checked against the field's.

use datafusion::sql::sqlparser::ast::{
    self, AssignmentTarget, Expr as SqlExpr, ObjectNamePart, SetExpr, Statement, TableFactor, TableObject, Value,
};
use heavenbase_catalog::LogicalType;

use super::{EntityRuntime, Workspace};
use crate::colnames::normalized;
use crate::{Error, Result};

impl Workspace {
    /// Whether some entity has a vector field (a cheap check for the hot path).
    pub fn has_vector_fields(&self) -> bool {
        self.inner.entities.read().values().any(|rt| rt.def.fields.iter().any(|f| matches!(f.ty, LogicalType::Vector { .. })))
    }

    /// Rewrite the text-form vectors an INSERT or UPDATE writes into vector
    /// fields as ARRAY literals (module doc). Returns whether anything
    /// changed; a malformed vector or one of the wrong dimension is an error
    /// naming the field.
    pub fn vector_literals(&self, statement: &mut Statement) -> Result<bool> {
        if !self.has_vector_fields() {
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

/// `'[…]'` or `'[…]'::vector` written to `column`: ARRAY[…] when the column
/// is a vector field.
fn rewrite(rt: &EntityRuntime, column: &str, value: &mut SqlExpr) -> Result<bool> {
    let Some(LogicalType::Vector { dim }) = rt.def.get(column).map(|f| &f.ty) else { return Ok(false) };
    let text = match value {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.clone(),
            _ => return Ok(false),
        },
        SqlExpr::Cast { expr, data_type: ast::DataType::Custom(name, _), .. } if last_name(name) == "vector" => {
            match expr.as_ref() {
                SqlExpr::Value(v) => match &v.value {
                    Value::SingleQuotedString(s) => s.clone(),
                    _ => return Ok(false),
                },
                _ => return Ok(false),
            }
        }
        _ => return Ok(false),
    };
    let entity = &rt.def.entity_id;
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
