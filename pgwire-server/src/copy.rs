//! COPY over the wire: `COPY entity [(columns)] FROM STDIN` in text or CSV
//! format bulk-loads through `Workspace::write_batch` (the data read into Arrow
//! columns, written as one batch); `COPY entity|(query) TO STDOUT`
//! exports in the same formats. (psql's `\copy` is these two statements.)

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::copy::CopyHandler;
use datafusion_postgres::pgwire::api::results::{CopyResponse, Response, Tag};
use datafusion_postgres::pgwire::api::{ClientInfo, PgWireConnectionState};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use futures::{Sink, SinkExt};
use heavenbase::catalog::{ColumnBuilder, LogicalType};
use heavenbase::{Workspace, WriteMode};
use parking_lot::Mutex;
use serde_json::Value as Json;

use crate::router::session;
use crate::{to_pg_error, user_error};

#[derive(Clone, Debug)]
struct Format {
    csv: bool,
    delimiter: char,
    null: String,
    header: bool,
    quote: char,
}

impl Format {
    fn of(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> PgWireResult<Format> {
        let mut csv = false;
        let (mut delimiter, mut null, mut header, mut quote) = (None, None, false, '"');
        for o in options {
            match o {
                CopyOption::Format(f) => match f.value.to_lowercase().as_str() {
                    "csv" => csv = true,
                    "text" => csv = false,
                    other => return Err(user_error("0A000", format!("COPY format {other} is not supported (text, csv)"))),
                },
                CopyOption::Delimiter(c) => delimiter = Some(*c),
                CopyOption::Null(s) => null = Some(s.clone()),
                CopyOption::Header(h) => header = *h,
                CopyOption::Quote(c) => quote = *c,
                CopyOption::Encoding(e) if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
                other => return Err(user_error("0A000", format!("COPY option {other} is not supported"))),
            }
        }
        for o in legacy {
            match o {
                CopyLegacyOption::Csv(csv_options) => {
                    csv = true;
                    for c in csv_options {
                        match c {
                            CopyLegacyCsvOption::Header => header = true,
                            CopyLegacyCsvOption::Quote(q) => quote = *q,
                            other => return Err(user_error("0A000", format!("COPY option {other} is not supported"))),
                        }
                    }
                }
                CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
                CopyLegacyOption::Null(s) => null = Some(s.clone()),
                CopyLegacyOption::Header => header = true,
                other => return Err(user_error("0A000", format!("COPY option {other} is not supported"))),
            }
        }
        Ok(Format {
            csv,
            delimiter: delimiter.unwrap_or(if csv { ',' } else { '\t' }),
            null: null.unwrap_or(if csv { String::new() } else { "\\N".into() }),
            header,
            quote,
        })
    }
}

/// A COPY FROM STDIN in progress on a connection.
struct Load {
    ws: Workspace,
    entity: String,
    columns: Vec<(String, LogicalType)>,
    format: Format,
    data: Vec<u8>,
}

/// The connection's pending load, if any (session extensions hold one value per type).
#[derive(Default)]
struct PendingLoad(Mutex<Option<Load>>);

/// COPY runs on the session's workspace handle (a block's while one is open).
pub(crate) struct CopyHook;

impl CopyHook {
    async fn start(&self, statement: &Statement, client: &mut dyn HookClient) -> PgWireResult<Response> {
        let s = session(client)?;
        let (ws, ctx) = (s.workspace(), s.context());
        let Statement::Copy { source, to, target, options, legacy_options, values } = statement else {
            unreachable!("only COPY reaches here")
        };
        let format = Format::of(options, legacy_options)?;
        match (to, target) {
            (false, CopyTarget::Stdin) => {
                let CopySource::Table { table_name, columns } = source else {
                    return Err(user_error("42601", format!("{statement}: COPY FROM needs a table")));
                };
                if !values.is_empty() {
                    return Err(user_error("0A000", format!("{statement}: inline COPY data is not supported")));
                }
                let entity = table_name.0.last().map(|p| p.to_string().trim_matches('"').to_string()).unwrap_or_default();
                let def = ws.entity(&entity).map_err(to_pg_error)?;
                // Without a list: the table's `SELECT *` columns (no system columns).
                let names: Vec<String> = if columns.is_empty() {
                    def.star_fields().map(|f| f.name.clone()).collect()
                } else {
                    columns.iter().map(|c| c.value.clone()).collect()
                };
                let mut typed = Vec::with_capacity(names.len());
                for name in names {
                    let ty = match def.get(&name) {
                        Some(f) => f.ty.clone(),
                        None if name == "object_id" => LogicalType::identifier(),
                        None => {
                            return Err(user_error(
                                "42703",
                                format!("column \"{name}\" of entity \"{}\" does not exist", def.entity_id),
                            ));
                        }
                    };
                    typed.push((name, ty));
                }
                let n = typed.len();
                let load = Load { ws: ws.clone(), entity: def.entity_id.clone(), columns: typed, format, data: Vec::new() };
                *client.session_extensions().get_or_insert_with(PendingLoad::default).0.lock() = Some(load);
                Ok(Response::CopyIn(CopyResponse::new(0, n, futures::stream::empty())))
            }
            (true, CopyTarget::Stdout) => {
                let mut query = match source {
                    CopySource::Query(q) => q.to_string(),
                    CopySource::Table { table_name, columns } if columns.is_empty() => format!("SELECT * FROM {table_name}"),
                    CopySource::Table { table_name, columns } => {
                        let cols: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
                        format!("SELECT {} FROM {table_name}", cols.join(", "))
                    }
                };
                // `*` covers a table's declared columns (no system columns).
                if let Ok(mut parsed) = Parser::parse_sql(&PostgreSqlDialect {}, &query) {
                    if let [statement] = parsed.as_mut_slice() {
                        if ws.shape_statement(statement) {
                            query = heavenbase::render::sql_text(statement);
                        }
                    }
                }
                let batches = ctx
                    .sql(&query)
                    .await
                    .map_err(|e| PgWireError::ApiError(Box::new(e)))?
                    .collect()
                    .await
                    .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
                let columns = batches.first().map(|b| b.num_columns()).unwrap_or(0);
                let mut lines = Vec::new();
                if format.csv && format.header {
                    if let Some(b) = batches.first() {
                        let names: Vec<String> = b.schema().fields().iter().map(|f| csv_field(f.name(), &format)).collect();
                        lines.push(line(names.join(&format.delimiter.to_string())));
                    }
                }
                for batch in &batches {
                    export_batch(batch, &format, &mut lines)?;
                }
                let stream = futures::stream::iter(lines.into_iter().map(Ok));
                Ok(Response::CopyOut(CopyResponse::new(0, columns, stream)))
            }
            _ => Err(user_error(
                "0A000",
                format!(
                    "{statement}: only COPY … FROM STDIN and COPY … TO STDOUT are supported (files stay on the client: use \\copy)"
                ),
            )),
        }
    }
}

fn line(text: String) -> CopyData {
    let mut bytes = text.into_bytes();
    bytes.push(b'\n');
    CopyData::new(Bytes::from(bytes))
}

fn export_batch(batch: &RecordBatch, format: &Format, lines: &mut Vec<CopyData>) -> PgWireResult<()> {
    let options = FormatOptions::default();
    let formatters: Vec<ArrayFormatter> = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<_, _>>()
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let delimiter = format.delimiter.to_string();
    for row in 0..batch.num_rows() {
        let fields: Vec<String> = batch
            .columns()
            .iter()
            .zip(&formatters)
            .map(|(column, formatter)| -> PgWireResult<String> {
                if column.is_null(row) {
                    return Ok(format.null.clone());
                }
                // Postgres spells booleans t/f.
                let text = match column.data_type() {
                    DataType::Boolean => {
                        let b = column.as_any().downcast_ref::<BooleanArray>().expect("boolean").value(row);
                        (if b { "t" } else { "f" }).to_string()
                    }
                    // Arrays and vectors in Postgres' array text, `{1,0.5,-2}`.
                    DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
                        array_text(column.as_ref(), row, &options)?
                    }
                    _ => formatter.value(row).to_string(),
                };
                Ok(if format.csv { csv_field(&text, format) } else { text_escape(&text) })
            })
            .collect::<PgWireResult<_>>()?;
        lines.push(line(fields.join(&delimiter)));
    }
    Ok(())
}

/// A list cell as Postgres' array text: `{1,0.5,-2}`, `{a,"b c",NULL}`.
/// Floats as Postgres prints them; elements quoted as Postgres quotes them
/// (`heavenbase::render::push_array_element`).
fn array_text(column: &dyn Array, row: usize, options: &FormatOptions) -> PgWireResult<String> {
    use datafusion::arrow::array::AsArray;
    let items: ArrayRef = match column.data_type() {
        DataType::List(_) => column.as_list::<i32>().value(row),
        DataType::LargeList(_) => column.as_list::<i64>().value(row),
        _ => column.as_fixed_size_list().value(row),
    };
    let formatter = ArrayFormatter::try_new(items.as_ref(), options).map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let mut out = String::from("{");
    for i in 0..items.len() {
        if i > 0 {
            out.push(',');
        }
        if items.is_null(i) {
            out.push_str("NULL");
            continue;
        }
        let mut element = String::new();
        match items.data_type() {
            DataType::Float32 => crate::encode::float4_text(
                items.as_primitive::<datafusion::arrow::datatypes::Float32Type>().value(i),
                &mut element,
            ),
            DataType::Float64 => crate::encode::float8_text(
                items.as_primitive::<datafusion::arrow::datatypes::Float64Type>().value(i),
                &mut element,
            ),
            DataType::Boolean => element.push(if items.as_boolean().value(i) { 't' } else { 'f' }),
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
                out.push_str(&array_text(items.as_ref(), i, options)?);
                continue;
            }
            _ => element = formatter.value(i).to_string(),
        }
        heavenbase::render::push_array_element(&mut out, &element);
    }
    out.push('}');
    Ok(out)
}

fn csv_field(text: &str, format: &Format) -> String {
    let q = format.quote;
    if text.is_empty() || text.contains([format.delimiter, q, '\n', '\r']) {
        format!("{q}{}{q}", text.replace(q, &format!("{q}{q}")))
    } else {
        text.to_string()
    }
}

fn text_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

#[async_trait]
impl QueryHook for CopyHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if !matches!(statement, Statement::Copy { .. }) {
            return None;
        }
        Some(self.start(statement, client).await)
    }

    /// `COPY … FROM STDIN` over the extended protocol, as tokio-postgres'
    /// `copy_in` and other drivers send it: planned as nothing at Parse, started
    /// at Execute. `COPY … TO STDOUT` stays a simple-protocol statement.
    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        match statement {
            Statement::Copy { to: false, .. } => Some(Ok(crate::writes::empty_plan())),
            Statement::Copy { .. } => Some(Err(user_error("0A000", "COPY TO runs over the simple query protocol only".into()))),
            _ => None,
        }
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if !matches!(statement, Statement::Copy { to: false, .. }) {
            return None;
        }
        Some(self.start(statement, client).await)
    }
}

/// Receives COPY data and loads it when the client is done.
pub(crate) struct CopyIn;

fn pending<C: ClientInfo>(client: &C) -> Arc<PendingLoad> {
    client.session_extensions().get_or_insert_with(PendingLoad::default)
}

#[async_trait]
impl CopyHandler for CopyIn {
    async fn on_copy_data<C>(&self, client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(load) = pending(client).0.lock().as_mut() {
            load.data.extend_from_slice(&copy_data.data);
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(load) = pending(client).0.lock().take() else {
            return Err(user_error("08P01", "COPY data arrived with no COPY in progress".into()));
        };
        let batch = parse_batch(&load)?;
        let n = batch.num_rows();
        // One batch: a COPY whose last line is bad writes nothing.
        if n > 0 {
            load.ws.write_batch(&load.entity, batch, WriteMode::Upsert).await.map_err(to_pg_error)?;
        }
        client.send(PgWireBackendMessage::CommandComplete(Tag::new("COPY").with_rows(n).into())).await?;
        // Begun by an Execute, the COPY is answered: the client's Sync that
        // follows CopyDone gets its ReadyForQuery from the extended handler.
        if matches!(client.state(), PgWireConnectionState::CopyInProgress(true)) {
            client.set_state(PgWireConnectionState::ReadyForQuery);
        }
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        pending(client).0.lock().take();
        user_error("57014", format!("COPY from stdin failed: {}", fail.message))
    }
}

/// The received data as one Arrow batch, one column per COPY column; errors
/// name the line and the column.
fn parse_batch(load: &Load) -> PgWireResult<RecordBatch> {
    let text = std::str::from_utf8(&load.data).map_err(|e| user_error("22021", format!("COPY data is not UTF-8: {e}")))?;
    let records = if load.format.csv { csv_records(text, &load.format) } else { text_records(text, &load.format) };
    let mut columns: Vec<ColumnText> = load.columns.iter().map(|(_, ty)| ColumnText::new(ty, records.len())).collect();
    for (i, record) in records.into_iter().enumerate() {
        let line = i + 1 + usize::from(load.format.header);
        if record.len() != load.columns.len() {
            return Err(user_error(
                "22P04",
                format!("COPY {}, line {line}: expected {} columns, got {}", load.entity, load.columns.len(), record.len()),
            ));
        }
        for ((column, (name, _)), value) in columns.iter_mut().zip(&load.columns).zip(record) {
            column
                .push(value)
                .map_err(|m| user_error("22P02", format!("COPY {}, line {line}, column {name}: {m}", load.entity)))?;
        }
    }
    let arrays: Vec<ArrayRef> = columns.into_iter().map(ColumnText::finish).collect();
    let fields: Vec<Field> =
        load.columns.iter().zip(&arrays).map(|((name, _), a)| Field::new(name, a.data_type().clone(), true)).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| user_error("XX000", format!("COPY {}: {e}", load.entity)))
}

/// One COPY column as it is read. Most columns stay text: the write path
/// parses and checks text column by column, as it does any Arrow input.
/// Lists, vectors and JSON have Postgres text forms of their own (`{a,b}`,
/// `[1,2]`, documents) and are parsed here, value by value.
enum ColumnText {
    Text(StringBuilder),
    Parsed(LogicalType, ColumnBuilder),
}

impl ColumnText {
    fn new(ty: &LogicalType, rows: usize) -> Self {
        match ty {
            LogicalType::Array { .. } | LogicalType::Vector { .. } | LogicalType::Json => {
                ColumnText::Parsed(ty.clone(), ColumnBuilder::new(ty, rows))
            }
            _ => ColumnText::Text(StringBuilder::with_capacity(rows, rows * 8)),
        }
    }

    fn push(&mut self, value: Option<String>) -> Result<(), String> {
        match (self, value) {
            (ColumnText::Text(b), value) => b.append_option(value),
            (ColumnText::Parsed(_, b), None) => b.push_null(),
            (ColumnText::Parsed(ty, b), Some(v)) => b.push(&typed_value(ty, v))?,
        }
        Ok(())
    }

    fn finish(self) -> ArrayRef {
        match self {
            ColumnText::Text(mut b) => Arc::new(b.finish()),
            ColumnText::Parsed(_, b) => b.finish(),
        }
    }
}

/// Text format: one row per line, `\N` for NULL, backslash escapes.
fn text_records(text: &str, format: &Format) -> Vec<Vec<Option<String>>> {
    let mut out = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line == "\\." {
            break;
        }
        if line.is_empty() {
            continue;
        }
        let fields = line.split(format.delimiter).map(|f| if f == format.null { None } else { Some(text_unescape(f)) }).collect();
        out.push(fields);
    }
    if format.header && !out.is_empty() {
        out.remove(0);
    }
    out
}

fn text_unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// CSV: quoted fields may hold delimiters, quotes (doubled) and newlines; an
/// unquoted field equal to the NULL string is NULL.
fn csv_records(text: &str, format: &Format) -> Vec<Vec<Option<String>>> {
    let (q, d) = (format.quote, format.delimiter);
    let mut records = Vec::new();
    let mut record: Vec<Option<String>> = Vec::new();
    let mut field = String::new();
    let (mut quoted, mut in_quotes, mut any) = (false, false, false);
    let mut chars = text.chars().peekable();
    let finish_field = |field: &mut String, quoted: &mut bool, record: &mut Vec<Option<String>>| {
        let value = std::mem::take(field);
        record.push(if !*quoted && value == format.null { None } else { Some(value) });
        *quoted = false;
    };
    while let Some(c) = chars.next() {
        any = true;
        if in_quotes {
            if c == q {
                if chars.peek() == Some(&q) {
                    chars.next();
                    field.push(q);
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
        } else if c == q {
            in_quotes = true;
            quoted = true;
        } else if c == d {
            finish_field(&mut field, &mut quoted, &mut record);
        } else if c == '\n' || c == '\r' {
            if c == '\r' && chars.peek() == Some(&'\n') {
                chars.next();
            }
            finish_field(&mut field, &mut quoted, &mut record);
            let done = std::mem::take(&mut record);
            if !(done.len() == 1 && done[0].as_deref() == Some("\\.")) {
                records.push(done);
            }
            any = false;
        } else {
            field.push(c);
        }
    }
    if any {
        finish_field(&mut field, &mut quoted, &mut record);
        if !(record.len() == 1 && record[0].as_deref() == Some("\\.")) {
            records.push(record);
        }
    }
    // Blank lines are not rows.
    records.retain(|r| !(r.len() == 1 && r[0].as_deref() == Some("")));
    if format.header && !records.is_empty() {
        records.remove(0);
    }
    records
}

/// COPY text as the JSON value the write path takes: scalars stay text (the
/// write path coerces and reports bad input by field), arrays and vectors
/// accept `{…}` or `[…]`, JSON fields are parsed.
fn typed_value(ty: &LogicalType, text: String) -> Json {
    match ty {
        LogicalType::Array { .. } | LogicalType::Vector { .. } => {
            let t = text.trim();
            if t.starts_with('[') {
                serde_json::from_str(t).unwrap_or(Json::String(text))
            } else if let Some(list) = heavenbase::catalog::types::pg_array_json(t, ty) {
                list
            } else {
                Json::String(text)
            }
        }
        LogicalType::Json => serde_json::from_str(&text).unwrap_or(Json::String(text)),
        _ => Json::String(text),
    }
}
