//! Result rows encoded column by column.
//!
//! arrow-pg encodes value by value: for every cell it matches the Arrow type,
//! downcasts the array and goes through `ToSql`. For the types most results
//! consist of (text, integers, float8, boolean) this module resolves each
//! column once per batch and writes every row's cells straight into one buffer,
//! in the text or binary format the client asked for. A batch holding any other
//! type is left to arrow-pg, whole.
//!
//! Text output follows Postgres: float8 is printed in its shortest exact form
//! with Postgres' switch to exponent notation (`10`, `0.5`, `1e+20`, `1.5e-05`,
//! `Infinity`, `NaN`), booleans as `t`/`f`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use bytes::{BufMut, BytesMut};
use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, Int16Array, Int32Array, Int64Array, LargeStringArray, RecordBatch,
    StringArray, StringViewArray,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion_postgres::hooks::{HookClient, QueryHook};
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::{FieldFormat, FieldInfo, QueryResponse, Response};
use datafusion_postgres::pgwire::api::{ClientInfo, Type};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::data::DataRow;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use futures::StreamExt;

use crate::router::session;

enum Cells<'a> {
    Text(&'a StringArray),
    LargeText(&'a LargeStringArray),
    TextView(&'a StringViewArray),
    Int2(&'a Int16Array, FieldFormat),
    Int4(&'a Int32Array, FieldFormat),
    Int8(&'a Int64Array, FieldFormat),
    Float8(&'a Float64Array, FieldFormat),
    Bool(&'a BooleanArray, FieldFormat),
}

impl<'a> Cells<'a> {
    /// The column's encoder, when its Arrow type is one handled here and the
    /// field announces the Postgres type arrow-pg would give it.
    fn of(array: &'a dyn Array, field: &FieldInfo) -> Option<Cells<'a>> {
        let (ty, format) = (field.datatype(), field.format());
        let text = *ty == Type::TEXT || *ty == Type::VARCHAR;
        Some(match array.data_type() {
            DataType::Utf8 if text => Cells::Text(array.as_string::<i32>()),
            DataType::LargeUtf8 if text => Cells::LargeText(array.as_string::<i64>()),
            DataType::Utf8View if text => Cells::TextView(array.as_string_view()),
            DataType::Int16 if *ty == Type::INT2 => Cells::Int2(array.as_primitive(), format),
            DataType::Int32 if *ty == Type::INT4 => Cells::Int4(array.as_primitive(), format),
            DataType::Int64 if *ty == Type::INT8 => Cells::Int8(array.as_primitive(), format),
            DataType::Float64 if *ty == Type::FLOAT8 => Cells::Float8(array.as_primitive(), format),
            DataType::Boolean if *ty == Type::BOOL => Cells::Bool(array.as_boolean(), format),
            _ => return None,
        })
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            Cells::Text(a) => a.is_null(row),
            Cells::LargeText(a) => a.is_null(row),
            Cells::TextView(a) => a.is_null(row),
            Cells::Int2(a, _) => a.is_null(row),
            Cells::Int4(a, _) => a.is_null(row),
            Cells::Int8(a, _) => a.is_null(row),
            Cells::Float8(a, _) => a.is_null(row),
            Cells::Bool(a, _) => a.is_null(row),
        }
    }

    /// Append the cell of `row`: its length, then its bytes (-1 for NULL).
    fn put(&self, row: usize, buf: &mut BytesMut, scratch: &mut String) {
        if self.is_null(row) {
            buf.put_i32(-1);
            return;
        }
        let binary = |f: &FieldFormat| *f == FieldFormat::Binary;
        match self {
            Cells::Text(a) => put_bytes(buf, a.value(row).as_bytes()),
            Cells::LargeText(a) => put_bytes(buf, a.value(row).as_bytes()),
            Cells::TextView(a) => put_bytes(buf, a.value(row).as_bytes()),
            Cells::Int2(a, f) if binary(f) => put_bytes(buf, &a.value(row).to_be_bytes()),
            Cells::Int4(a, f) if binary(f) => put_bytes(buf, &a.value(row).to_be_bytes()),
            Cells::Int8(a, f) if binary(f) => put_bytes(buf, &a.value(row).to_be_bytes()),
            Cells::Float8(a, f) if binary(f) => put_bytes(buf, &a.value(row).to_be_bytes()),
            Cells::Bool(a, f) if binary(f) => put_bytes(buf, &[a.value(row) as u8]),
            Cells::Int2(a, _) => put_display(buf, scratch, a.value(row)),
            Cells::Int4(a, _) => put_display(buf, scratch, a.value(row)),
            Cells::Int8(a, _) => put_display(buf, scratch, a.value(row)),
            Cells::Float8(a, _) => {
                scratch.clear();
                float8_text(a.value(row), scratch);
                put_bytes(buf, scratch.as_bytes());
            }
            Cells::Bool(a, _) => put_bytes(buf, if a.value(row) { b"t" } else { b"f" }),
        }
    }
}

fn put_bytes(buf: &mut BytesMut, bytes: &[u8]) {
    buf.put_i32(bytes.len() as i32);
    buf.put_slice(bytes);
}

fn put_display(buf: &mut BytesMut, scratch: &mut String, value: impl std::fmt::Display) {
    scratch.clear();
    let _ = write!(scratch, "{value}");
    put_bytes(buf, scratch.as_bytes());
}

/// Postgres' float8 text: the shortest digits that read back exactly, in fixed
/// notation for decimal exponents -4 to 14 and exponent notation outside.
pub(crate) fn float8_text(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    // `{:e}` gives the shortest round-trip digits: "1.5e-5", "-1e20".
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    if (-4..15).contains(&exp) {
        let _ = write!(out, "{v}");
    } else {
        let _ = write!(out, "{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
}

/// The rows of `batch`, encoded for `fields` (the batch's columns, in order).
pub(crate) fn encode_batch(fields: &Arc<Vec<FieldInfo>>, batch: RecordBatch) -> Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync> {
    let columns: Option<Vec<Cells>> = batch.columns().iter().zip(fields.iter()).map(|(a, f)| Cells::of(a.as_ref(), f)).collect();
    let Some(columns) = columns else {
        return encode_recordbatch(fields.clone(), batch);
    };
    let field_count = columns.len() as i16;
    // One buffer for the batch, split into rows: one allocation, not one per row.
    let mut buf = BytesMut::with_capacity(batch.get_array_memory_size() + batch.num_rows() * columns.len() * 4);
    let mut scratch = String::new();
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        for c in &columns {
            c.put(row, &mut buf, &mut scratch);
        }
        rows.push(Ok(DataRow::new(buf.split(), field_count)));
    }
    Box::new(rows.into_iter())
}

/// Runs every query the other hooks left, as datafusion-postgres would, but
/// encodes its batches with [`encode_batch`]. Extended-protocol queries need
/// the portal's result formats, which the router leaves in the session; without
/// them the query goes on to datafusion-postgres.
pub(crate) struct EncodedQueries;

impl EncodedQueries {
    async fn respond(
        client: &dyn HookClient,
        dataframe: impl Future<Output = datafusion::error::Result<DataFrame>> + Send,
        format: &Format,
    ) -> PgWireResult<Response> {
        let dataframe = match statement_timeout(client) {
            Some(limit) => tokio::time::timeout(limit, dataframe).await.map_err(|_| {
                PgWireError::UserError(Box::new(ErrorInfo::new(
                    "ERROR".into(),
                    "57014".into(),
                    "canceling statement due to statement timeout".into(),
                )))
            })?,
            None => dataframe.await,
        }
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let fields = Arc::new(arrow_schema_to_pg_fields(dataframe.schema().as_arrow(), format, Some(options))?);
        let batches = dataframe.execute_stream().await.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let row_fields = fields.clone();
        let rows = batches
            .map(move |batch| match batch {
                Ok(batch) => futures::stream::iter(encode_batch(&row_fields, batch)),
                Err(e) => futures::stream::iter(
                    Box::new(std::iter::once(Err(PgWireError::ApiError(Box::new(e))))) as Box<dyn Iterator<Item = _> + Send + Sync>
                ),
            })
            .flatten();
        Ok(Response::Query(QueryResponse::new(fields, rows)))
    }
}

/// The session's `statement_timeout`, where datafusion-postgres' SET keeps it.
fn statement_timeout(client: &dyn HookClient) -> Option<Duration> {
    client.metadata().get("statement_timeout_ms").and_then(|ms| ms.parse().ok()).map(Duration::from_millis)
}

#[async_trait]
impl QueryHook for EncodedQueries {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let Statement::Query(_) = statement else { return None };
        let sql = statement.to_string();
        Some(Self::respond(client, ctx.sql(&sql), &Format::UnifiedText).await)
    }

    async fn handle_extended_parse_query(
        &self,
        _statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        None
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        plan: &LogicalPlan,
        params: &ParamValues,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let Statement::Query(_) = statement else { return None };
        let format = session(client).ok()?.result_formats.lock().take()?;
        let plan = match plan.clone().replace_params_with_values(params) {
            Ok(plan) => plan,
            Err(e) => return Some(Err(PgWireError::ApiError(Box::new(e)))),
        };
        let dataframe = async {
            let optimised = ctx.state().optimize(&plan)?;
            ctx.execute_logical_plan(optimised).await
        };
        Some(Self::respond(client, dataframe, &format).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: f64) -> String {
        let mut s = String::new();
        float8_text(v, &mut s);
        s
    }

    #[test]
    fn float8_text_matches_postgres() {
        // Each right-hand side is what Postgres 16 prints for the value.
        assert_eq!(text(10.0), "10");
        assert_eq!(text(0.5), "0.5");
        assert_eq!(text(-2.25), "-2.25");
        assert_eq!(text(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(text(1e20), "1e+20");
        assert_eq!(text(1.5e-5), "1.5e-05");
        assert_eq!(text(0.0001), "0.0001");
        assert_eq!(text(123456789012345.0), "123456789012345");
        assert_eq!(text(1234567890123456.0), "1.234567890123456e+15");
        assert_eq!(text(1e100), "1e+100");
        assert_eq!(text(-0.0), "-0");
        assert_eq!(text(f64::INFINITY), "Infinity");
        assert_eq!(text(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(text(f64::NAN), "NaN");
    }
}
