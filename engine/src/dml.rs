//! SQL statements that change the workspace. They go through the workspace write
//! path, never around it.
//!
//! - `INSERT` is planned by DataFusion and lands in the entity table's
//!   `insert_into` (validation, id derivation, every group, the Catalog).
//! - `UPDATE` and `DELETE` are executed here: the WHERE clause is planned by
//!   DataFusion as a `SELECT object_id … WHERE …` (so subqueries, EXISTS and folded
//!   constants mean exactly what they mean in a SELECT), then the chosen rows are
//!   patched or deleted by id. DataFusion's own `delete_from`/`update` hooks can
//!   receive an empty filter list for a WHERE they could not push (an IN subquery,
//!   a predicate folded to false); the entity tables do not implement those hooks,
//!   so such a statement sent to the raw session fails instead of touching every row.
//! - `CREATE TABLE` registers an entity (see `docs/sql.md` for the type mapping and
//!   the `WITH (placement = 'field:backend, …')` option).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    self, AssignmentTarget, ColumnOption, CreateTableOptions, DataType as SqlType, Expr as SqlExpr, FromTable,
    ObjectName, SqlOption, Statement, TableFactor, TableWithJoins,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use heavenbase_catalog::value::array_value;
use heavenbase_catalog::{EntityDef, FieldDef, LogicalType, OBJECT_ID, Row};
use serde_json::{Value as Json, json};

use crate::workspace::Workspace;
use crate::{Error, Result};

impl Workspace {
    /// Run one SQL statement and collect its result. Writes (INSERT, UPDATE,
    /// DELETE, CREATE TABLE) return one row with the affected `count`.
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let mut statements = DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {})
            .map_err(|e| Error::Invalid(format!("SQL syntax error: {e}")))?;
        if statements.len() > 1 {
            return Err(Error::Invalid(format!("Send one statement at a time; got {}", statements.len())));
        }
        if let Some(DfStatement::Statement(stmt)) = statements.pop_front() {
            match *stmt {
                Statement::Delete(delete) => return self.sql_delete(&delete).await.map(count_batch),
                Statement::Update(update) => return self.sql_update(&update).await.map(count_batch),
                Statement::CreateTable(create) => return self.sql_create_table(&create).await.map(|_| Vec::new()),
                _ => {}
            }
        }
        Ok(self.dataframe(sql).await?.collect().await?)
    }

    async fn sql_delete(&self, delete: &ast::Delete) -> Result<u64> {
        let tables = match &delete.from {
            FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
        };
        if delete.using.is_some() || delete.returning.is_some() || delete.limit.is_some() || tables.len() != 1 {
            return Err(Error::Invalid("DELETE supports one table, a WHERE clause, and nothing else".into()));
        }
        let table = single_table(&tables[0], "DELETE")?;
        let rt = self.runtime(&table)?;
        let ids = self.select_ids(&select_sql(&table, &[], delete.selection.as_ref())).await?;
        let existed = self.delete_many(&rt.def.entity_id, &ids).await?;
        Ok(existed.iter().filter(|e| **e).count() as u64)
    }

    async fn sql_update(&self, update: &ast::Update) -> Result<u64> {
        if update.from.is_some() || update.returning.is_some() {
            return Err(Error::Invalid("UPDATE supports SET and WHERE; FROM and RETURNING are not supported".into()));
        }
        let table = single_table(&update.table, "UPDATE")?;
        let rt = self.runtime(&table)?;
        let mut targets = Vec::new();
        let mut values = Vec::new();
        for a in &update.assignments {
            let AssignmentTarget::ColumnName(col) = &a.target else {
                return Err(Error::Invalid("UPDATE … SET (a, b) = … is not supported; assign columns one by one".into()));
            };
            let name = last_ident(col);
            let field = rt.def.get(&name).ok_or_else(|| {
                Error::Invalid(format!(
                    "Unknown column '{name}' in UPDATE of '{}'.{}",
                    rt.def.entity_id,
                    crate::error::suggest(&name, rt.def.fields.iter().map(|f| f.name.as_str()))
                ))
            })?;
            if name == OBJECT_ID {
                return Err(Error::Invalid("UPDATE cannot move object_id; insert the new row and delete the old".into()));
            }
            values.push(&a.value);
            targets.push(field.clone());
        }
        let query = select_sql(&table, &values, update.selection.as_ref());
        let batches = self.dataframe(&query).await?.collect().await?;
        let mut patches: Vec<Row> = Vec::new();
        for b in &batches {
            for r in 0..b.num_rows() {
                let mut row = Row::new();
                row.insert(OBJECT_ID.into(), array_value(b.column(0).as_ref(), r, &LogicalType::identifier()));
                for (i, f) in targets.iter().enumerate() {
                    row.insert(f.name.clone(), array_value(b.column(i + 1).as_ref(), r, &f.ty));
                }
                patches.push(row);
            }
        }
        let n = patches.len() as u64;
        if n > 0 {
            self.set_many(&rt.def.entity_id, patches).await?;
        }
        Ok(n)
    }

    /// object_ids of the rows a DELETE's SELECT returns.
    async fn select_ids(&self, query: &str) -> Result<Vec<String>> {
        let batches = self.dataframe(query).await?.collect().await?;
        let mut ids = Vec::new();
        for b in &batches {
            let col = datafusion::arrow::array::AsArray::as_string::<i32>(b.column(0));
            ids.extend(col.iter().flatten().map(String::from));
        }
        Ok(ids)
    }

    async fn sql_create_table(&self, create: &ast::CreateTable) -> Result<()> {
        // The entity id is the table name as written (it must follow the id rules).
        let entity_id = last_ident(&create.name);
        let mut def = EntityDef::new(&entity_id);
        for col in &create.columns {
            let name = col.name.value.clone();
            let ty = logical_type_of(&col.data_type)
                .map_err(|e| Error::Invalid(format!("CREATE TABLE {entity_id}: column {name}: {e}")))?;
            let mut field = FieldDef::new(&name, ty);
            for opt in &col.options {
                match &opt.option {
                    ColumnOption::NotNull => field.required = true,
                    ColumnOption::Null => {}
                    ColumnOption::Default(e) => field.default = Some(literal_json(e).ok_or_else(|| {
                        Error::Invalid(format!("CREATE TABLE {entity_id}: column {name}: DEFAULT must be a literal, got {e}"))
                    })?),
                    ColumnOption::Unique(_) => field.unique = true,
                    ColumnOption::PrimaryKey(_) if name == OBJECT_ID => {}
                    ColumnOption::PrimaryKey(_) => {
                        return Err(Error::Invalid(format!(
                            "CREATE TABLE {entity_id}: only object_id can be the primary key (column {name})"
                        )));
                    }
                    ColumnOption::Comment(c) => field.desc = c.clone(),
                    other => {
                        return Err(Error::Invalid(format!(
                            "CREATE TABLE {entity_id}: column {name}: option {other} is not supported"
                        )));
                    }
                }
            }
            def.fields.push(field);
        }
        if let CreateTableOptions::With(options) = &create.table_options {
            for o in options {
                match o {
                    SqlOption::KeyValue { key, value } if key.value.eq_ignore_ascii_case("placement") => {
                        let text = literal_json(value).and_then(|v| v.as_str().map(String::from)).ok_or_else(|| {
                            Error::Invalid("placement takes a string: 'field:backend, field:backend'".into())
                        })?;
                        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                            let (field, backend) = part.split_once(':').ok_or_else(|| {
                                Error::Invalid(format!("placement entry '{part}' is not field:backend"))
                            })?;
                            let f = def.fields.iter_mut().find(|f| f.name == field.trim()).ok_or_else(|| {
                                Error::Invalid(format!("placement names unknown column '{}'", field.trim()))
                            })?;
                            f.stores.push(heavenbase_catalog::StoreSpec { to: backend.trim().into(), strategy: None, optional: false });
                        }
                    }
                    other => return Err(Error::Invalid(format!("CREATE TABLE {entity_id}: option {other} is not supported"))),
                }
            }
        }
        if create.if_not_exists && self.runtime(&entity_id).is_ok() {
            return Ok(());
        }
        self.register(def, create.or_replace).await
    }
}

/// `SELECT object_id, <value>… FROM <table> [WHERE …]`: the rows an UPDATE or
/// DELETE touches and, for an UPDATE, the new values.
fn select_sql(table: &str, values: &[&SqlExpr], selection: Option<&SqlExpr>) -> String {
    let mut exprs = vec![quote(OBJECT_ID)];
    exprs.extend(values.iter().enumerate().map(|(i, v)| format!("{v} AS \"__v{i}\"")));
    format!("SELECT {} FROM {}{}", exprs.join(", "), quote(table), selection.map(|w| format!(" WHERE {w}")).unwrap_or_default())
}

/// The SELECT that plans an UPDATE's or DELETE's rows, for clients that prepare
/// the statement first (its placeholders get their types from it).
pub fn dml_select_sql(statement: &Statement) -> Option<String> {
    match statement {
        Statement::Delete(d) => {
            let tables = match &d.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
            let table = single_table(tables.first()?, "DELETE").ok()?;
            Some(select_sql(&table, &[], d.selection.as_ref()))
        }
        Statement::Update(u) => {
            let table = single_table(&u.table, "UPDATE").ok()?;
            let values: Vec<&SqlExpr> = u.assignments.iter().map(|a| &a.value).collect();
            Some(select_sql(&table, &values, u.selection.as_ref()))
        }
        _ => None,
    }
}

fn count_batch(n: u64) -> Vec<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![Field::new("count", DataType::UInt64, false)]));
    let col: ArrayRef = Arc::new(UInt64Array::from(vec![n]));
    vec![RecordBatch::try_new(schema, vec![col]).expect("count batch")]
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn last_ident(name: &ObjectName) -> String {
    name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.clone()).unwrap_or_default()
}

fn single_table(t: &TableWithJoins, stmt: &str) -> Result<String> {
    match &t.relation {
        TableFactor::Table { name, alias: None, .. } if t.joins.is_empty() => Ok(last_ident(name)),
        _ => Err(Error::Invalid(format!("{stmt} works on one entity table, without joins or aliases"))),
    }
}

fn literal_json(e: &SqlExpr) -> Option<Json> {
    match e {
        SqlExpr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => serde_json::from_str(n).ok(),
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => Some(json!(s)),
            ast::Value::Boolean(b) => Some(json!(b)),
            ast::Value::Null => Some(Json::Null),
            _ => None,
        },
        SqlExpr::UnaryOp { op: ast::UnaryOperator::Minus, expr } => match literal_json(expr)? {
            Json::Number(n) => serde_json::from_str(&format!("-{n}")).ok(),
            _ => None,
        },
        _ => None,
    }
}

/// SQL types to logical types (documented in docs/sql.md).
fn logical_type_of(t: &SqlType) -> std::result::Result<LogicalType, String> {
    use ast::CharacterLength;
    let text_of = |len: Option<u64>| match len {
        None => LogicalType::short_text(),
        Some(n) if n <= 255 => LogicalType::ShortText { max_chars: n as usize },
        Some(n) if n <= 4095 => LogicalType::MediumText { max_chars: n as usize },
        Some(n) => LogicalType::LongText { max_chars: n as usize },
    };
    let len = |l: &Option<CharacterLength>| match l {
        Some(CharacterLength::IntegerLength { length, .. }) => Some(*length),
        _ => None,
    };
    Ok(match t {
        SqlType::Varchar(l) | SqlType::CharacterVarying(l) | SqlType::Char(l) | SqlType::Character(l) => text_of(len(l)),
        SqlType::Text | SqlType::String(_) => LogicalType::long_text(),
        SqlType::Int(_) | SqlType::Integer(_) | SqlType::BigInt(_) | SqlType::SmallInt(_) | SqlType::TinyInt(_)
        | SqlType::Int2(_) | SqlType::Int4(_) | SqlType::Int8(_) | SqlType::Int64 => LogicalType::Integer,
        SqlType::Real | SqlType::Float(_) | SqlType::Float4 | SqlType::Float8 | SqlType::Float64 | SqlType::Double(_)
        | SqlType::DoublePrecision | SqlType::Numeric(_) | SqlType::Decimal(_) => LogicalType::Float,
        SqlType::Boolean | SqlType::Bool => LogicalType::Boolean,
        SqlType::Timestamp(_, _) | SqlType::TimestampNtz(_) | SqlType::Datetime(_) => LogicalType::Timestamp,
        SqlType::Date => LogicalType::Date,
        SqlType::Interval { .. } => LogicalType::Duration,
        SqlType::JSON | SqlType::JSONB => LogicalType::Json,
        SqlType::Bytea | SqlType::Blob(_) | SqlType::Binary(_) | SqlType::Varbinary(_) => LogicalType::Artifact,
        SqlType::Array(ast::ArrayElemTypeDef::SquareBracket(inner, _) | ast::ArrayElemTypeDef::AngleBracket(inner)) => {
            LogicalType::array_of(logical_type_of(inner)?)
        }
        SqlType::Custom(name, args) => {
            let n = last_ident(name).to_lowercase();
            match n.as_str() {
                "vector" => {
                    let dim = args.first().and_then(|a| a.parse::<usize>().ok()).filter(|d| *d > 0).ok_or("VECTOR needs a dimension: VECTOR(3)")?;
                    LogicalType::vector(dim)
                }
                other => LogicalType::parse_str(other).map_err(|e| e.to_string())?,
            }
        }
        other => return Err(format!("SQL type {other} has no logical type")),
    })
}
