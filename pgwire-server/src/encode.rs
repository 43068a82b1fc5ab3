//! Result rows encoded column by column.
//!
//! arrow-pg encodes value by value: for every cell it matches the Arrow type,
//! downcasts the array and goes through `ToSql`. For the types most results
//! consist of (text, json, uuid, integers, float8, boolean, timestamptz,
//! vectors as float4[]) this module resolves each column once per batch and writes every
//! row's cells straight into one buffer, in the text or binary format the
//! client asked for. Columns of any other type go through arrow-pg, a value at
//! a time, into the same buffer.
//!
//! Text output follows Postgres: floats are printed in their shortest exact form
//! with Postgres' switch to exponent notation (`10`, `0.5`, `1e+20`, `1.5e-05`,
//! `Infinity`, `NaN`), booleans as `t`/`f`, timestamptz as
//! `2024-01-02 03:04:05.678+00`.

use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;

use bytes::{BufMut, BytesMut};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array,
    LargeStringArray, RecordBatch, StringArray, StringViewArray, TimestampMillisecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::common::ParamValues;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion_postgres::arrow_pg::encoder::encode_value;
use datafusion_postgres::hooks::{HookClient, QueryHook};
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response};
use datafusion_postgres::pgwire::api::{ClientInfo, Type};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::data::DataRow;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use futures::StreamExt;
use heavenbase::LogicalType;

use crate::cancel::until_cancelled;
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
    /// Timestamp fields (milliseconds, UTC) as timestamptz.
    TimestampMs(&'a TimestampMillisecondArray, FieldFormat),
    /// Vector fields as float4[].
    Vector(&'a FixedSizeListArray, &'a Float32Array, FieldFormat),
    /// Uuid fields (canonical text) in binary format: their 16 bytes. (In
    /// text format they are the text cells they are stored as.)
    UuidBinary(Box<Cells<'a>>),
    /// Any other type, through arrow-pg, one value at a time.
    Other {
        array: &'a ArrayRef,
        arrow_field: &'a Field,
        pg_field: FieldInfo,
        encoder: DataRowEncoder,
    },
}

impl<'a> Cells<'a> {
    /// The column's encoder, when its Arrow type is one handled here and the
    /// field announces the Postgres type arrow-pg would give it.
    fn of(array: &'a ArrayRef, arrow_field: &'a Field, field: &FieldInfo) -> Cells<'a> {
        Self::native(array.as_ref(), field).unwrap_or_else(|| Cells::Other {
            array,
            arrow_field,
            pg_field: field.clone(),
            encoder: DataRowEncoder::new(Arc::new(vec![field.clone()])),
        })
    }

    fn native(array: &'a dyn Array, field: &FieldInfo) -> Option<Cells<'a>> {
        let (ty, format) = (field.datatype(), field.format());
        // json's binary form is its text, as is text's; uuid's text form is
        // the canonical text its field stores.
        if *ty == Type::UUID && format == FieldFormat::Binary {
            let text = FieldInfo::new(String::new(), None, None, Type::TEXT, FieldFormat::Text);
            return Some(Cells::UuidBinary(Box::new(Self::native(array, &text)?)));
        }
        let text = *ty == Type::TEXT || *ty == Type::VARCHAR || *ty == Type::JSON || *ty == Type::UUID;
        Some(match array.data_type() {
            DataType::Utf8 if text => Cells::Text(array.as_string::<i32>()),
            DataType::LargeUtf8 if text => Cells::LargeText(array.as_string::<i64>()),
            DataType::Utf8View if text => Cells::TextView(array.as_string_view()),
            DataType::Int16 if *ty == Type::INT2 => Cells::Int2(array.as_primitive(), format),
            DataType::Int32 if *ty == Type::INT4 => Cells::Int4(array.as_primitive(), format),
            DataType::Int64 if *ty == Type::INT8 => Cells::Int8(array.as_primitive(), format),
            DataType::Float64 if *ty == Type::FLOAT8 => Cells::Float8(array.as_primitive(), format),
            DataType::Boolean if *ty == Type::BOOL => Cells::Bool(array.as_boolean(), format),
            DataType::Timestamp(TimeUnit::Millisecond, Some(_)) if *ty == Type::TIMESTAMPTZ => {
                Cells::TimestampMs(array.as_primitive(), format)
            }
            DataType::FixedSizeList(item, _) if *item.data_type() == DataType::Float32 && *ty == Type::FLOAT4_ARRAY => {
                let list = array.as_fixed_size_list();
                Cells::Vector(list, list.values().as_primitive(), format)
            }
            _ => return None,
        })
    }

    /// Bytes the column's cells take, roughly (a batch may be a slice of larger
    /// buffers, so the arrays' memory size would overstate it).
    fn size_hint(&self, rows: usize) -> usize {
        match self {
            Cells::Text(a) => (a.value_offsets()[rows] - a.value_offsets()[0]) as usize,
            Cells::LargeText(a) => (a.value_offsets()[rows] - a.value_offsets()[0]) as usize,
            Cells::TextView(_) => rows * 16,
            Cells::Int2(..) | Cells::Int4(..) | Cells::Int8(..) | Cells::Float8(..) => rows * 8,
            Cells::Bool(..) => rows,
            Cells::TimestampMs(..) => rows * 32,
            Cells::Vector(a, ..) => rows * (24 + a.value_length() as usize * 12),
            Cells::UuidBinary(_) => rows * 16,
            Cells::Other { .. } => rows * 16,
        }
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
            Cells::TimestampMs(a, _) => a.is_null(row),
            Cells::Vector(a, ..) => a.is_null(row),
            Cells::UuidBinary(text) => text.is_null(row),
            Cells::Other { .. } => false,
        }
    }

    /// The text of `row` in a text column.
    fn text(&self, row: usize) -> Option<&str> {
        match self {
            Cells::Text(a) => Some(a.value(row)),
            Cells::LargeText(a) => Some(a.value(row)),
            Cells::TextView(a) => Some(a.value(row)),
            _ => None,
        }
    }

    /// Append the cell of `row`: its length, then its bytes (-1 for NULL).
    fn put(&mut self, row: usize, buf: &mut BytesMut, scratch: &mut String) -> PgWireResult<()> {
        if let Cells::Other { array, arrow_field, pg_field, encoder } = self {
            encode_value(encoder, array, row, arrow_field, pg_field)?;
            buf.put_slice(&encoder.take_row().data);
            return Ok(());
        }
        if self.is_null(row) {
            buf.put_i32(-1);
            return Ok(());
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
            Cells::TimestampMs(a, f) if binary(f) => {
                put_bytes(buf, &(a.value(row).saturating_mul(1000).saturating_sub(POSTGRES_EPOCH_US)).to_be_bytes())
            }
            Cells::TimestampMs(a, _) => {
                scratch.clear();
                timestamptz_text(a.value(row), scratch);
                put_bytes(buf, scratch.as_bytes());
            }
            Cells::Vector(a, values, f) => {
                let dim = a.value_length() as usize;
                let items = a.value_offset(row) as usize..a.value_offset(row) as usize + dim;
                if binary(f) {
                    put_float4_array(buf, values, items);
                } else {
                    scratch.clear();
                    scratch.push('{');
                    for (k, i) in items.enumerate() {
                        if k > 0 {
                            scratch.push(',');
                        }
                        if values.is_null(i) {
                            scratch.push_str("NULL");
                        } else {
                            float4_text(values.value(i), scratch);
                        }
                    }
                    scratch.push('}');
                    put_bytes(buf, scratch.as_bytes());
                }
            }
            Cells::Int2(a, _) => put_display(buf, scratch, a.value(row)),
            Cells::Int4(a, _) => put_display(buf, scratch, a.value(row)),
            Cells::Int8(a, _) => put_display(buf, scratch, a.value(row)),
            Cells::Float8(a, _) => {
                scratch.clear();
                float8_text(a.value(row), scratch);
                put_bytes(buf, scratch.as_bytes());
            }
            Cells::Bool(a, _) => put_bytes(buf, if a.value(row) { b"t" } else { b"f" }),
            Cells::UuidBinary(text) => {
                let text = text.text(row).unwrap_or_default();
                // Every value of a Uuid field is stored canonical; one that is
                // not fails the statement rather than sending wrong bytes.
                let bytes = heavenbase::catalog::types::uuid_bytes(text).ok_or_else(|| {
                    PgWireError::ApiError(format!("invalid input syntax for type uuid: \"{text}\" (as stored)").into())
                })?;
                put_bytes(buf, &bytes);
            }
            Cells::Other { .. } => unreachable!("encoded above"),
        }
        Ok(())
    }
}

fn put_bytes(buf: &mut BytesMut, bytes: &[u8]) {
    buf.put_i32(bytes.len() as i32);
    buf.put_slice(bytes);
}

/// Microseconds from 1970-01-01 to 2000-01-01, Postgres' timestamp epoch.
const POSTGRES_EPOCH_US: i64 = 946_684_800_000_000;
/// The float4 element type's OID, in an array's binary header.
const FLOAT4_OID: i32 = 700;

/// Postgres' binary array: dimensions, null flag, element type, the one
/// dimension's length and lower bound, then each element's length and bytes.
fn put_float4_array(buf: &mut BytesMut, values: &Float32Array, items: std::ops::Range<usize>) {
    let dim = items.len();
    let has_null = items.clone().any(|i| values.is_null(i));
    buf.put_i32((20 + dim * 8) as i32);
    buf.put_i32(1);
    buf.put_i32(has_null as i32);
    buf.put_i32(FLOAT4_OID);
    buf.put_i32(dim as i32);
    buf.put_i32(1);
    let start = buf.len();
    for i in items {
        if values.is_null(i) {
            buf.put_i32(-1);
        } else {
            buf.put_i32(4);
            buf.put_f32(values.value(i));
        }
    }
    if has_null {
        // NULL elements carry no bytes: the length written up front overstated them.
        let written = (buf.len() - start + 20) as i32;
        let at = start - 24;
        buf[at..at + 4].copy_from_slice(&written.to_be_bytes());
    }
}

/// Postgres' timestamptz text in UTC: `2024-01-02 03:04:05.678+00`, the
/// fraction without trailing zeros (none when whole).
fn timestamptz_text(ms: i64, out: &mut String) {
    let Some(t) = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms) else {
        let _ = write!(out, "{ms}");
        return;
    };
    let _ = write!(out, "{}", t.format("%Y-%m-%d %H:%M:%S"));
    let millis = ms.rem_euclid(1000);
    if millis != 0 {
        let fraction = format!("{millis:03}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push_str("+00");
}

fn put_display(buf: &mut BytesMut, scratch: &mut String, value: impl std::fmt::Display) {
    scratch.clear();
    let _ = write!(scratch, "{value}");
    put_bytes(buf, scratch.as_bytes());
}

/// Decimal exponents below this print in fixed notation (Postgres follows
/// printf's %g with DBL_DIG / FLT_DIG digits).
const FLOAT8_FIXED_DIGITS: i32 = 15;
const FLOAT4_FIXED_DIGITS: i32 = 6;

/// Postgres' float4 text (as float8's, with float4's switch to exponents).
pub(crate) fn float4_text(v: f32, out: &mut String) {
    float_text(v as f64, &format!("{v:e}"), FLOAT4_FIXED_DIGITS, out)
}

/// Postgres' float8 text: the shortest digits that read back exactly, in fixed
/// notation for decimal exponents -4 to 14 and exponent notation outside.
pub(crate) fn float8_text(v: f64, out: &mut String) {
    float_text(v, &format!("{v:e}"), FLOAT8_FIXED_DIGITS, out)
}

/// A float's text from `sci`, its shortest round-trip digits in exponent form
/// (`{:e}` of the f64 or f32 itself): fixed notation for exponents from -4 to
/// `fixed_digits - 1`.
fn float_text(v: f64, sci: &str, fixed_digits: i32, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    // `{:e}` gives the shortest round-trip digits: "1.5e-5", "-1e20".
    let (mantissa, exp) = sci.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    if (-4..fixed_digits).contains(&exp) {
        // The mantissa's digits, placed: the f64 form of an f32 would show
        // digits the f32 does not have.
        fixed_text(mantissa, exp, out);
    } else {
        let _ = write!(out, "{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
}

/// The Postgres type each output column of `plan` is announced with where the
/// entity field it reads says more than its Arrow type: Arrow carries JSON and
/// UUIDs as text, Postgres clients expect such a column as `json` / `uuid`
/// (psycopg and JDBC then give a dict or a `UUID`, as from Postgres). Which
/// columns read a field: `heavenbase::output_field_types`.
pub(crate) fn declared_types(plan: &LogicalPlan) -> Vec<Option<Type>> {
    heavenbase::output_field_types(plan, declared_type)
}

/// The Postgres type a field's values are sent as, where its Arrow type
/// alone would name another: Json and Uuid fields are text in Arrow, and a
/// vector's fixed-size list is `float4[]` on the wire (the fixed catalog
/// says text for all three). Results (above) and pg_attribute (describe.rs)
/// both take it from here.
pub(crate) fn declared_type(ty: &LogicalType) -> Option<Type> {
    match ty {
        LogicalType::Json => Some(Type::JSON),
        LogicalType::Uuid => Some(Type::UUID),
        LogicalType::Vector { .. } => Some(Type::FLOAT4_ARRAY),
        _ => None,
    }
}

/// `fields`, with the text columns `declared` gives a type announced as that type.
pub(crate) fn with_declared_types(fields: Vec<FieldInfo>, declared: &[Option<Type>]) -> Vec<FieldInfo> {
    if declared.iter().all(Option::is_none) {
        return fields;
    }
    fields
        .into_iter()
        .zip(declared.iter().chain(std::iter::repeat(&None)))
        .map(|(f, declared)| match declared {
            Some(ty) if *f.datatype() == Type::TEXT => {
                FieldInfo::new(f.name().to_string(), f.table_id(), f.column_id(), ty.clone(), f.format())
                    .with_format_options(f.format_options().clone())
            }
            _ => f,
        })
        .collect()
}

/// Fixed-size lists other than vectors (which are encoded here) as lists:
/// arrow-pg announces both as arrays but can encode only the latter (it panics
/// on the former).
fn with_lists(batch: RecordBatch) -> RecordBatch {
    let other_fixed =
        |f: &Field| matches!(f.data_type(), DataType::FixedSizeList(item, _) if *item.data_type() != DataType::Float32);
    if !batch.schema().fields().iter().any(|f| other_fixed(f)) {
        return batch;
    }
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        match field.data_type() {
            DataType::FixedSizeList(item, _) if other_fixed(field) => {
                let list = DataType::List(item.clone());
                // FixedSizeList → List is a cast Arrow always supports.
                columns.push(cast(column, &list).expect("fixed-size list to list"));
                fields.push(Arc::new(field.as_ref().clone().with_data_type(list)));
            }
            _ => {
                columns.push(column.clone());
                fields.push(field.clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("same rows, same columns")
}

/// `mantissa` (`-1.25`) times ten to `exp`, in fixed notation (`-0.0125`, `125`).
fn fixed_text(mantissa: &str, exp: i32, out: &mut String) {
    let (sign, digits) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = digits.chars().filter(|c| *c != '.').collect();
    out.push_str(sign);
    if exp < 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
        out.push_str(&digits);
    } else {
        let whole = exp as usize + 1;
        if digits.len() <= whole {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', whole - digits.len()));
        } else {
            out.push_str(&digits[..whole]);
            out.push('.');
            out.push_str(&digits[whole..]);
        }
    }
}

/// The rows of `batch`, encoded for `fields` (the batch's columns, in order).
pub(crate) fn encode_batch(
    fields: &Arc<Vec<FieldInfo>>,
    batch: RecordBatch,
) -> Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync> {
    let batch = with_lists(batch);
    let schema = batch.schema();
    let mut columns: Vec<Cells> =
        batch.columns().iter().zip(schema.fields()).zip(fields.iter()).map(|((a, af), f)| Cells::of(a, af, f)).collect();
    let field_count = columns.len() as i16;
    // One buffer for the batch, split into rows: one allocation, not one per row.
    let rows = batch.num_rows();
    let mut buf = BytesMut::with_capacity(columns.iter().map(|c| c.size_hint(rows) + rows * 4).sum());
    let mut scratch = String::new();
    let mut encoded = Vec::with_capacity(rows);
    for row in 0..rows {
        for c in &mut columns {
            if let Err(e) = c.put(row, &mut buf, &mut scratch) {
                encoded.push(Err(e));
                return Box::new(encoded.into_iter());
            }
        }
        encoded.push(Ok(DataRow::new(buf.split(), field_count)));
    }
    Box::new(encoded.into_iter())
}

/// Runs every query the other hooks left, as datafusion-postgres would, but
/// encodes its batches with [`encode_batch`]. Extended-protocol queries need
/// the portal's result formats, which the router leaves in the session; without
/// them the query goes on to datafusion-postgres.
pub(crate) struct EncodedQueries;

/// `INSERT … RETURNING`: a write whose rows are a query result.
/// The command tag of a `… RETURNING` statement's rows (before the row count).
pub(crate) fn returning_tag(statement: &Statement) -> Option<&'static str> {
    match statement {
        Statement::Insert(i) if i.returning.is_some() => Some("INSERT 0"),
        Statement::Update(u) if u.returning.is_some() => Some("UPDATE"),
        Statement::Delete(d) if d.returning.is_some() => Some("DELETE"),
        _ => None,
    }
}

/// `INSERT`, `UPDATE` or `DELETE … RETURNING`: planned by the workspace,
/// answered with rows like a query.
pub(crate) fn is_insert_returning(statement: &Statement) -> bool {
    match statement {
        Statement::Insert(insert) => insert.returning.is_some(),
        Statement::Update(update) => update.returning.is_some(),
        Statement::Delete(delete) => delete.returning.is_some(),
        _ => false,
    }
}

impl EncodedQueries {
    pub(crate) async fn respond(
        client: &dyn HookClient,
        dataframe: impl Future<Output = datafusion::error::Result<DataFrame>> + Send,
        format: &Format,
        declared: Option<Vec<Option<Type>>>,
        tag: Option<&'static str>,
    ) -> PgWireResult<Response> {
        // The router holds the statement to its statement_timeout.
        let dataframe = dataframe.await.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let declared = declared.unwrap_or_else(|| declared_types(dataframe.logical_plan()));
        let fields = Arc::new(with_declared_types(
            arrow_schema_to_pg_fields(dataframe.schema().as_arrow(), format, Some(options))?,
            &declared,
        ));
        let session = session(client)?;
        // Run with the statement's own memory budget inside the server's pool.
        let (state, plan) = dataframe.into_parts();
        let physical = state.create_physical_plan(&plan).await.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let runtime = session.service.memory.for_statement(state.runtime_env());
        let task = Arc::new(TaskContext::from(&state).with_runtime(runtime));
        let batches = execute_stream(physical, task).map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let batches = until_cancelled(batches, &session, session.shared.hold_statement());
        let row_fields = fields.clone();
        let rows = batches
            .map(move |batch| match batch {
                Ok(batch) => futures::stream::iter(encode_batch(&row_fields, batch)),
                Err(e) => futures::stream::iter(Box::new(std::iter::once(Err(e))) as Box<dyn Iterator<Item = _> + Send + Sync>),
            })
            .flatten();
        let mut response = QueryResponse::new(fields, rows);
        if let Some(tag) = tag {
            // The statement's own command tag ("INSERT 0 <rows>", "UPDATE <rows>"),
            // as Postgres answers RETURNING.
            response.set_command_tag(tag);
        }
        Ok(Response::Query(response))
    }
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
        let sql = heavenbase::render::sql_text(statement);
        // A transaction block's session, where one is open: its reads see the block's writes.
        let ctx = session(client).map(|s| s.context()).unwrap_or_else(|_| ctx.clone());
        Some(Self::respond(client, ctx.sql(&sql), &Format::UnifiedText, None, None).await)
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
        if !matches!(statement, Statement::Query(_)) && !is_insert_returning(statement) {
            return None;
        }
        let format = session(client).ok()?.result_formats.lock().take()?;
        // As Describe announced them, from the statement's unoptimised plan.
        let declared = declared_types(plan);
        let plan = match plan.clone().replace_params_with_values(params) {
            Ok(plan) => plan,
            Err(e) => return Some(Err(PgWireError::ApiError(Box::new(e)))),
        };
        let ctx = session(client).map(|s| s.context()).unwrap_or_else(|_| ctx.clone());
        let dataframe = async {
            let mut state = ctx.state();
            let optimised = state.optimize(&plan)?;
            // Table functions given `$n` arguments read them at their scan.
            heavenbase::BoundParams::attach(state.config_mut(), params);
            Ok(DataFrame::new(state, optimised))
        };
        Some(Self::respond(client, dataframe, &format, Some(declared), returning_tag(statement)).await)
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
        assert_eq!(text(0.001), "0.001");
        assert_eq!(text(-123.456), "-123.456");
    }

    fn text4(v: f32) -> String {
        let mut s = String::new();
        float_text(v as f64, &format!("{v:e}"), FLOAT4_FIXED_DIGITS, &mut s);
        s
    }

    #[test]
    fn float4_text_matches_postgres() {
        // Each right-hand side is what Postgres 16 prints for the float4 value.
        assert_eq!(text4(0.1), "0.1");
        assert_eq!(text4(1.0), "1");
        assert_eq!(text4(-2.25), "-2.25");
        assert_eq!(text4(123456.0), "123456");
        assert_eq!(text4(1234567.0), "1.234567e+06");
        assert_eq!(text4(0.0001), "0.0001");
        assert_eq!(text4(0.00001), "1e-05");
        assert_eq!(text4(1.0 / 3.0), "0.33333334");
    }

    #[test]
    fn timestamptz_text_matches_postgres() {
        let text = |ms: i64| {
            let mut s = String::new();
            timestamptz_text(ms, &mut s);
            s
        };
        assert_eq!(text(1_704_164_645_678), "2024-01-02 03:04:05.678+00");
        assert_eq!(text(1_704_164_645_000), "2024-01-02 03:04:05+00");
        assert_eq!(text(1_704_164_645_500), "2024-01-02 03:04:05.5+00");
        assert_eq!(text(-1), "1969-12-31 23:59:59.999+00");
    }
}
