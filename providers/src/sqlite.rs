//! The SQLite backend: a file (or `:memory:`) per backend instance, one table per
//! field group, `object_id TEXT PRIMARY KEY` (a WITHOUT ROWID table, so a key
//! lookup is one B-tree descent). Writes are batched in one transaction through a
//! prepared statement; scans render pushed filters as parameterised SQL.
//!
//! Storage of logical types: text, Json → TEXT; Integer, Duration → INTEGER;
//! Float → REAL; Boolean → INTEGER 0/1; Timestamp → INTEGER epoch ms (UTC);
//! Date → TEXT `YYYY-MM-DD`; Array → TEXT (JSON list); Vector → BLOB (f32 LE);
//! Artifact → BLOB.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int64Type, SchemaRef, TimestampMillisecondType,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::Expr;
use heavenbase_catalog::value::{array_value, format_date};
use heavenbase_catalog::{BackendInfo, ColumnBuilder, IndexPlan, LogicalType, OBJECT_ID, PhysicalType, Stored};
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, ErrorCode};
use serde_json::{Value as Json, json};

use crate::backend::{
    Backend, BatchStream, ColumnChange, Dialect, FederationScope, GroupSpec, GroupWrite, Pushdown, ScanRequest, SqlEngine,
    scan_schema,
};
use crate::sql_filter::{SqlDialect, SqlParam, build_select, can_render, quote_ident, shorten};
use crate::{ProviderError, Result};

#[derive(Debug)]
pub struct SqliteBackend {
    info: BackendInfo,
    /// `:memory:` or a file path.
    location: String,
    conn: Arc<Mutex<Connection>>,
    /// Read-only connections for streamed scans (file databases only): WAL lets
    /// them read while `conn` writes, so a client slow to take a large result
    /// holds up no one.
    readers: Arc<Mutex<Vec<Connection>>>,
    /// Top-N by default: SQLite's own sort with a limit beats reading the rows
    /// out, but its GROUP BY (a single-threaded sort) is slower than
    /// DataFusion's hash aggregate over a scan (benchmarks: sqlite-aggregate).
    /// `"federate": "all"` in the backend config hands it everything.
    federation: FederationScope,
    /// File databases: checkpoints the WAL after bulk writes on a thread of
    /// its own (see [`Checkpointer`]).
    checkpointer: Option<Checkpointer>,
}

/// A write of at least this many rows leaves its WAL checkpoint to the
/// [`Checkpointer`] instead of running it inside its commit.
const BULK_WRITE_ROWS: usize = 10_000;

/// Copies the WAL back into the database file on a thread of its own, as
/// Postgres' checkpointer does. SQLite's automatic checkpoint runs inside the
/// commit that fills the WAL past 1,000 pages: after a bulk write that is every
/// page the write touched, copied and synced before the write is answered (a
/// tenth of a 300k-row COPY's time). Bulk writes switch it off for their
/// transaction and hand the checkpoint here; small writes keep SQLite's. The
/// checkpoint is PASSIVE: it never waits for, or blocks, readers and writers.
#[derive(Debug)]
struct Checkpointer {
    wake: std::sync::mpsc::Sender<()>,
}

impl Checkpointer {
    /// The thread ends when the backend (the sender) is dropped.
    fn start(location: &str) -> Option<Checkpointer> {
        let conn = Connection::open(location).ok()?;
        conn.execute_batch("PRAGMA busy_timeout = 5000;").ok()?;
        let (wake, woken) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    // Requests that arrived meanwhile are covered by this one.
                    while woken.try_recv().is_ok() {}
                    // A failed checkpoint leaves the WAL to the next one (or to
                    // SQLite's own); nothing is lost.
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .ok()?;
        Some(Checkpointer { wake })
    }

    fn request(&self) {
        let _ = self.wake.send(());
    }
}

struct Sqlite;

/// Rows per batch of a streamed scan.
const STREAM_BATCH_ROWS: usize = 8192;
/// Session settings every connection gets (filters rely on case-sensitive LIKE).
const SESSION_PRAGMAS: &str =
    "PRAGMA case_sensitive_like = ON; PRAGMA busy_timeout = 5000; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -65536;";

/// A key lookup of more ids than this first checks whether the table is empty.
const LARGE_LOOKUP: usize = 10_000;

impl SqlDialect for Sqlite {
    fn placeholder(&self, n: usize) -> String {
        format!("?{n}")
    }
    fn like_is_case_sensitive(&self) -> bool {
        // Every connection sets PRAGMA case_sensitive_like = ON.
        true
    }
    fn date_param(&self, days: i32) -> SqlParam {
        SqlParam::Text(format_date(days).as_str().unwrap_or_default().to_string())
    }
}

impl SqliteBackend {
    /// Open `location`: `:memory:` or a file path (created with its folder).
    pub fn open(name: &str, location: &str) -> Result<Self> {
        let err = |e: String| ProviderError::Backend { backend: name.into(), kind: "sqlite".into(), message: e };
        let conn = if location == ":memory:" {
            Connection::open_in_memory()
        } else {
            let path = PathBuf::from(location);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| err(format!("cannot create {}: {e}", parent.display())))?;
            }
            Connection::open(&path)
        }
        .map_err(|e| err(format!("cannot open {location}: {e}")))?;
        conn.execute_batch(&format!("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; {SESSION_PRAGMAS}"))
            .map_err(|e| err(e.to_string()))?;
        strict_identifiers(&conn).map_err(|e| err(e.to_string()))?;
        rusqlite::vtab::array::load_module(&conn).map_err(|e| err(e.to_string()))?;
        Ok(SqliteBackend {
            info: BackendInfo { name: name.into(), kind: "sqlite".into(), tags: vec!["row".into(), "sql".into()] },
            location: location.into(),
            conn: Arc::new(Mutex::new(conn)),
            readers: Arc::new(Mutex::new(Vec::new())),
            federation: FederationScope::TopN,
            checkpointer: if location == ":memory:" { None } else { Checkpointer::start(location) },
        })
    }

    /// Which subplans federation hands to SQLite (see the field).
    pub fn with_federation(mut self, scope: FederationScope) -> Self {
        self.federation = scope;
        self
    }

    /// A pooled read-only connection, or a new one.
    fn reader(&self) -> Result<Connection> {
        if let Some(conn) = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.location,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| self.error(&format!("cannot open {}", self.location), e))?;
        conn.execute_batch(SESSION_PRAGMAS).map_err(|e| self.error("read connection", e))?;
        strict_identifiers(&conn).map_err(|e| self.error("read connection", e))?;
        Ok(conn)
    }

    /// The read of `request`: runs on a connection and hands batches of up to
    /// `rows_per_batch` rows to `emit` (at least one batch, possibly empty) until
    /// `emit` returns false.
    fn read(&self, group: &GroupSpec, request: &ScanRequest) -> ReadFn {
        let (sql, params, with_ids) = Self::build_select(group, request);
        let schema = scan_schema(group, &request.columns);
        let types: Vec<LogicalType> = schema
            .fields()
            .iter()
            .map(|f| group.column(f.name()).map(|c| c.ty.clone()).unwrap_or(LogicalType::identifier()))
            .collect();
        let ids = request.ids.clone();
        let backend = self.info.name.clone();
        Box::new(move |conn, rows_per_batch, emit| {
            let err = |e: String| ProviderError::Backend {
                backend: backend.clone(),
                kind: "sqlite".into(),
                message: format!("{}: {e}", shorten(&sql)),
            };
            let mut stmt = conn.prepare_cached(&sql).map_err(|e| err(e.to_string()))?;
            for (i, p) in params.iter().enumerate() {
                stmt.raw_bind_parameter(i + 1, bind_param(p)).map_err(|e| err(e.to_string()))?;
            }
            let id_count = ids.as_ref().map(|i| i.len());
            match ids.as_deref().map(Vec::as_slice) {
                Some([one]) if with_ids => stmt.raw_bind_parameter(params.len() + 1, one.as_str()),
                Some(list) if with_ids => {
                    // In key order, consecutive probes land on the pages the
                    // last ones read (the order of the rows read is unspecified).
                    let mut sorted: Vec<&String> = list.iter().collect();
                    sorted.sort_unstable();
                    let list: Vec<SqlValue> = sorted.into_iter().map(|s| SqlValue::Text(s.clone())).collect();
                    stmt.raw_bind_parameter(params.len() + 1, Rc::new(list))
                }
                _ => Ok(()),
            }
            .map_err(|e| err(e.to_string()))?;
            // A key lookup reads at most one row per id.
            let capacity = rows_per_batch.min(1024).min(id_count.unwrap_or(usize::MAX));
            let new_readers = || types.iter().map(|t| ColumnBuilder::new(t, capacity)).collect::<Vec<_>>();
            let finish = |readers: Vec<ColumnBuilder>| {
                let arrays: Vec<ArrayRef> = readers.into_iter().map(ColumnBuilder::finish).collect();
                RecordBatch::try_new(schema.clone(), arrays).map_err(|e| err(e.to_string()))
            };
            let mut readers = new_readers();
            let (mut in_batch, mut emitted) = (0, false);
            let mut rows = stmt.raw_query();
            while let Some(row) = rows.next().map_err(|e| err(e.to_string()))? {
                for (i, r) in readers.iter_mut().enumerate() {
                    r.push_stored(stored(row.get_ref(i).map_err(|e| err(e.to_string()))?).map_err(&err)?).map_err(&err)?;
                }
                in_batch += 1;
                if in_batch == rows_per_batch {
                    if !emit(finish(std::mem::replace(&mut readers, new_readers()))?) {
                        return Ok(());
                    }
                    (in_batch, emitted) = (0, true);
                }
            }
            if in_batch > 0 || !emitted {
                emit(finish(readers)?);
            }
            Ok(())
        })
    }

    /// A read by equality on the leading column of an index (`name = $1`, a
    /// UNIQUE column), run right here as keyed reads are (see
    /// [`Self::inline_conn`]): it touches a few index entries, which takes
    /// microseconds, less than handing it to a blocking thread and back. Past
    /// [`POINT_READ_ROWS`] rows it is given up (None) and the caller streams
    /// the read from a pooled connection instead: a value that many rows share
    /// does not hold up the calling thread.
    fn point_read(&self, group: &GroupSpec, request: &ScanRequest) -> Result<Option<Vec<RecordBatch>>> {
        let indexed = |column: &str| group.indexes.iter().any(|ix| ix.fields.first().is_some_and(|f| f == column));
        if !request.filters.iter().any(|f| equality_column(f).is_some_and(indexed)) {
            return Ok(None);
        }
        let read = self.read(group, request);
        let read = |conn: &mut Connection| {
            let (mut batches, mut overflow) = (Vec::with_capacity(1), false);
            read(conn, POINT_READ_ROWS + 1, &mut |batch| {
                overflow = batch.num_rows() > POINT_READ_ROWS;
                if !overflow {
                    batches.push(batch);
                }
                !overflow
            })?;
            Ok((!overflow).then_some(batches))
        };
        match self.inline_conn()? {
            Some(mut conn) => read(&mut conn),
            None => Ok(None),
        }
    }

    fn error(&self, context: &str, e: impl std::fmt::Display) -> ProviderError {
        ProviderError::Backend { backend: self.info.name.clone(), kind: "sqlite".into(), message: format!("{context}: {e}") }
    }

    /// Run `f` right here (see [`Self::inline_conn`]): for keyed reads of a
    /// few rows, which take microseconds, less than handing them to a blocking
    /// thread and back. Where no connection is free here, as [`Self::with_conn`].
    async fn with_free_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if let Some(mut conn) = self.inline_conn()? {
            return f(&mut conn);
        }
        self.with_conn(f).await
    }

    /// A connection a short read can use right here: the backend's own when
    /// it is free, else (a file database) a pooled read-only one, opened if
    /// none is idle. None for a busy `:memory:` database, which a second
    /// connection would not see.
    fn inline_conn(&self) -> Result<Option<InlineConn<'_>>> {
        if let Ok(guard) = self.conn.try_lock() {
            return Ok(Some(InlineConn::Own(guard)));
        }
        if self.location == ":memory:" {
            return Ok(None);
        }
        Ok(Some(InlineConn::Pooled(Some(self.reader()?), &self.readers)))
    }

    /// Run `f` on the connection on a blocking thread.
    async fn with_conn<T: Send + 'static>(&self, f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static) -> Result<T> {
        let conn = self.conn.clone();
        let name = self.info.name.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| ProviderError::Backend {
            backend: name,
            kind: "sqlite".into(),
            message: format!("task failed: {e}"),
        })?
    }

    fn build_select(group: &GroupSpec, request: &ScanRequest) -> (String, Vec<SqlParam>, bool) {
        // The id list is bound as one array parameter (rusqlite's rarray); one
        // id as a plain one, which spares SQLite a virtual table per lookup.
        let one = request.ids.as_ref().is_some_and(|ids| ids.len() == 1);
        build_select(&quote_ident(&group.table), group, request, &Sqlite, |n| {
            if one { format!("{} = ?{n}", quote_ident(OBJECT_ID)) } else { format!("{} IN rarray(?{n})", quote_ident(OBJECT_ID)) }
        })
    }
}

/// Row positions in object_id order. Sorted on each id's first 16 bytes as
/// one integer, the whole ids compared only on a tie: derived ids are 42
/// digits with long common prefixes, which a byte-wise comparison sort walks
/// again at every step (it was a tenth of a large COPY's time).
fn key_order(ids: &datafusion::arrow::array::StringArray) -> Vec<usize> {
    let prefix = |row: usize| {
        let bytes = ids.value(row).as_bytes();
        let mut key = [0u8; 16];
        let n = bytes.len().min(16);
        key[..n].copy_from_slice(&bytes[..n]);
        u128::from_be_bytes(key)
    };
    let mut keyed: Vec<(u128, usize)> = (0..ids.len()).map(|row| (prefix(row), row)).collect();
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| ids.value(a.1).cmp(ids.value(b.1))));
    keyed.into_iter().map(|(_, row)| row).collect()
}

/// A double-quoted name that is no column is an error, not a string literal
/// (SQLite's legacy fallback would turn a misnamed column of a federated
/// statement into a constant).
fn strict_identifiers(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::config::DbConfig;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DML, false)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DDL, false)?;
    Ok(())
}

/// A connection held for a read on the calling thread (see
/// `SqliteBackend::inline_conn`); a pooled one goes back to the pool when dropped.
enum InlineConn<'a> {
    Own(std::sync::MutexGuard<'a, Connection>),
    Pooled(Option<Connection>, &'a Mutex<Vec<Connection>>),
}

impl std::ops::Deref for InlineConn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            InlineConn::Own(guard) => guard,
            InlineConn::Pooled(conn, _) => conn.as_ref().expect("held until dropped"),
        }
    }
}

impl std::ops::DerefMut for InlineConn<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        match self {
            InlineConn::Own(guard) => guard,
            InlineConn::Pooled(conn, _) => conn.as_mut().expect("held until dropped"),
        }
    }
}

impl Drop for InlineConn<'_> {
    fn drop(&mut self) {
        if let InlineConn::Pooled(conn, pool) = self {
            if let Some(conn) = conn.take() {
                pool.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            }
        }
    }
}

/// A read on a connection; see [`SqliteBackend::read`].
type ReadFn = Box<dyn FnOnce(&mut Connection, usize, &mut dyn FnMut(RecordBatch) -> bool) -> Result<()> + Send>;

/// A read by equality on an indexed column runs on the calling thread while it
/// yields at most this many rows (see `SqliteBackend::point_read`).
const POINT_READ_ROWS: usize = 64;

/// The column of `column = literal` (either side), if `filter` is one.
fn equality_column(filter: &Expr) -> Option<&str> {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = filter else { return None };
    match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(..)) | (Expr::Literal(..), Expr::Column(c)) => Some(c.name.as_str()),
        _ => None,
    }
}

/// A read of at most this many ids by primary key runs on the calling thread
/// (see `with_free_conn`).
const KEYED_READ_MAX_IDS: usize = 16;

/// SQLite's spelling of a layout: integers, booleans and timestamps (epoch ms)
/// as INTEGER, vectors as little-endian f32 BLOBs, dates as ISO text, lists and
/// JSON as JSON text.
fn sql_type(physical: &PhysicalType) -> &'static str {
    match physical {
        PhysicalType::Int | PhysicalType::Bool | PhysicalType::Timestamp => "INTEGER",
        PhysicalType::Float => "REAL",
        PhysicalType::Bytes | PhysicalType::Vector { .. } => "BLOB",
        PhysicalType::Text | PhysicalType::Date | PhysicalType::List(_) | PhysicalType::Json => "TEXT",
    }
}

/// The column's DDL; the default is rendered from the stored value of the
/// column's own type, so it reads back exactly as a written default would.
fn column_ddl(c: &crate::backend::ColumnSpec) -> String {
    c.ddl(sql_type(&c.ty.physical()), |array| {
        let value = Cells::of(array, &c.ty).get(0);
        let value = match &value {
            ToSqlOutput::Borrowed(v) => *v,
            ToSqlOutput::Owned(v) => ValueRef::from(v),
            _ => return None,
        };
        match value {
            ValueRef::Text(t) => Some(sql_text_literal(&String::from_utf8_lossy(t))),
            ValueRef::Integer(i) => Some(i.to_string()),
            ValueRef::Real(f) if f.is_finite() => Some(format!("{f:?}")),
            _ => None,
        }
    })
}

fn sql_text_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn map_write_error(backend: &str, table: &str, e: rusqlite::Error) -> ProviderError {
    let (backend, kind, message) = (backend.to_string(), "sqlite".to_string(), format!("write to {table}: {e}"));
    let rusqlite::Error::SqliteFailure(code, msg) = &e else { return ProviderError::Backend { backend, kind, message } };
    match code.code {
        ErrorCode::ConstraintViolation => {
            ProviderError::Unique { backend, table: table.into(), message: msg.clone().unwrap_or_else(|| e.to_string()) }
        }
        // SQLite rolls the statement's transaction back on these: nothing of the
        // write is kept, and the same write succeeds once the cause is gone.
        ErrorCode::DiskFull => ProviderError::DiskFull { backend, kind, message },
        ErrorCode::ReadOnly | ErrorCode::SystemIoFailure | ErrorCode::CannotOpen | ErrorCode::PermissionDenied => {
            ProviderError::Storage { backend, kind, message }
        }
        _ => ProviderError::Backend { backend, kind, message },
    }
}

/// One column of a batch being written, read as SQLite values (borrowed where
/// the storage allows), its Arrow downcast done once: a write
/// binds every cell of every row, and resolving the array's type per cell was a
/// tenth of a bulk load's time.
struct Cells<'a> {
    array: &'a dyn Array,
    typed: Typed<'a>,
}

enum Typed<'a> {
    Text(&'a datafusion::arrow::array::StringArray),
    Int(&'a datafusion::arrow::array::Int64Array),
    Float(&'a datafusion::arrow::array::Float64Array),
    Bool(&'a datafusion::arrow::array::BooleanArray),
    Timestamp(&'a datafusion::arrow::array::TimestampMillisecondArray),
    Date(&'a datafusion::arrow::array::Date32Array),
    Bytes(&'a datafusion::arrow::array::BinaryArray),
    Vector(&'a datafusion::arrow::array::FixedSizeListArray),
    /// Lists and JSON: stored as their JSON text.
    Json(&'a LogicalType),
}

impl<'a> Cells<'a> {
    fn of(array: &'a ArrayRef, ty: &'a LogicalType) -> Self {
        let typed = match array.data_type() {
            DataType::Utf8 => Typed::Text(array.as_string::<i32>()),
            DataType::Int64 => Typed::Int(array.as_primitive::<Int64Type>()),
            DataType::Float64 => Typed::Float(array.as_primitive::<Float64Type>()),
            DataType::Boolean => Typed::Bool(array.as_boolean()),
            DataType::Timestamp(..) => Typed::Timestamp(array.as_primitive::<TimestampMillisecondType>()),
            DataType::Date32 => Typed::Date(array.as_primitive::<Date32Type>()),
            DataType::Binary => Typed::Bytes(array.as_binary::<i32>()),
            DataType::FixedSizeList(..) => Typed::Vector(array.as_fixed_size_list()),
            _ => Typed::Json(ty),
        };
        Cells { array: array.as_ref(), typed }
    }

    fn get(&self, row: usize) -> ToSqlOutput<'a> {
        if self.array.is_null(row) {
            return ToSqlOutput::Borrowed(ValueRef::Null);
        }
        match &self.typed {
            Typed::Text(a) => ToSqlOutput::Borrowed(ValueRef::Text(a.value(row).as_bytes())),
            Typed::Int(a) => ToSqlOutput::Borrowed(ValueRef::Integer(a.value(row))),
            Typed::Float(a) => ToSqlOutput::Borrowed(ValueRef::Real(a.value(row))),
            Typed::Bool(a) => ToSqlOutput::Borrowed(ValueRef::Integer(a.value(row) as i64)),
            Typed::Timestamp(a) => ToSqlOutput::Borrowed(ValueRef::Integer(a.value(row))),
            Typed::Date(a) => {
                ToSqlOutput::Owned(SqlValue::Text(format_date(a.value(row)).as_str().unwrap_or_default().to_string()))
            }
            Typed::Bytes(a) => ToSqlOutput::Borrowed(ValueRef::Blob(a.value(row))),
            Typed::Vector(a) => {
                let v = a.value(row);
                let floats = v.as_primitive::<Float32Type>();
                let mut bytes = Vec::with_capacity(floats.len() * 4);
                for f in floats.values().iter() {
                    bytes.extend_from_slice(&f.to_le_bytes());
                }
                ToSqlOutput::Owned(SqlValue::Blob(bytes))
            }
            Typed::Json(ty) => ToSqlOutput::Owned(SqlValue::Text(array_value(self.array, row, ty).to_string())),
        }
    }
}

/// A SQLite value as the builder reads it back.
fn stored(v: ValueRef<'_>) -> std::result::Result<Stored<'_>, String> {
    Ok(match v {
        ValueRef::Null => Stored::Null,
        ValueRef::Integer(i) => Stored::Int(i),
        ValueRef::Real(f) => Stored::Float(f),
        ValueRef::Text(t) => Stored::Text(std::str::from_utf8(t).map_err(|e| e.to_string())?),
        ValueRef::Blob(b) => Stored::Bytes(b),
    })
}

fn bind_param(p: &SqlParam) -> SqlValue {
    match p {
        SqlParam::Int(i) => SqlValue::Integer(*i),
        SqlParam::Float(f) => SqlValue::Real(*f),
        SqlParam::Text(s) => SqlValue::Text(s.clone()),
        SqlParam::Bool(b) => SqlValue::Integer(*b as i64),
        SqlParam::Date(d) => SqlValue::Text(format_date(*d).as_str().unwrap_or_default().to_string()),
        SqlParam::Timestamp(ms) => SqlValue::Integer(*ms),
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn describe(&self) -> Json {
        json!({"name": self.info.name, "type": "sqlite", "database": self.location, "tags": self.info.tags})
    }

    async fn ensure_group(&self, group: &GroupSpec) -> Result<()> {
        let group = group.clone();
        let name = self.info.name.clone();
        self.with_conn(move |conn| {
            let err = |e: rusqlite::Error| ProviderError::Backend {
                backend: name.clone(),
                kind: "sqlite".into(),
                message: format!("create {}: {e}", group.table),
            };
            let table = quote_ident(&group.table);
            let mut cols = vec![format!("{} TEXT PRIMARY KEY NOT NULL", quote_ident(OBJECT_ID))];
            cols.extend(group.columns.iter().map(column_ddl));
            conn.execute_batch(&format!("CREATE TABLE IF NOT EXISTS {table} ({}) WITHOUT ROWID", cols.join(", ")))
                .map_err(err)?;
            // Additive evolution: add columns the table does not have yet.
            let existing: Vec<String> = {
                let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})")).map_err(err)?;
                let names = stmt.query_map([], |r| r.get::<_, String>(1)).map_err(err)?;
                names.collect::<std::result::Result<_, _>>().map_err(err)?
            };
            for c in &group.columns {
                if !existing.contains(&c.name) {
                    conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {}", column_ddl(c))).map_err(err)?;
                }
            }
            for ix in &group.indexes {
                let ix_name = crate::backend::index_name(&group.table, ix);
                let cols: Vec<String> = ix.fields.iter().map(|f| quote_ident(f)).collect();
                conn.execute_batch(&format!(
                    "CREATE {}INDEX IF NOT EXISTS {} ON {table} ({})",
                    if ix.unique { "UNIQUE " } else { "" },
                    quote_ident(&ix_name),
                    cols.join(", ")
                ))
                .map_err(|e| map_write_error(&name, &group.table, e))?;
            }
            Ok(())
        })
        .await
    }

    async fn upsert(&self, group: &GroupSpec, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.apply(vec![GroupWrite::Upsert(group.clone(), batch)]).await.map(|_| ())
    }

    async fn delete(&self, group: &GroupSpec, ids: &[String]) -> Result<Vec<String>> {
        let mut found = self.apply(vec![GroupWrite::Delete(group.clone(), ids.to_vec())]).await?;
        Ok(found.pop().unwrap_or_default())
    }

    /// One SQLite transaction for all the changes.
    async fn apply(&self, writes: Vec<GroupWrite>) -> Result<Vec<Vec<String>>> {
        let name = self.info.name.clone();
        let rows: usize = writes
            .iter()
            .map(|w| match w {
                GroupWrite::Upsert(_, batch) => batch.num_rows(),
                GroupWrite::Delete(_, ids) => ids.len(),
            })
            .sum();
        let bulk = rows >= BULK_WRITE_ROWS && self.checkpointer.is_some();
        let found = self
            .with_conn(move |conn| {
                let tables: Vec<&str> = writes.iter().map(|w| w.group().table.as_str()).collect();
                let tables = tables.join(", ");
                if bulk {
                    conn.execute_batch("PRAGMA wal_autocheckpoint = 0").map_err(|e| map_write_error(&name, &tables, e))?;
                }
                let written = (|| {
                    let tx = conn.transaction().map_err(|e| map_write_error(&name, &tables, e))?;
                    let mut found = Vec::with_capacity(writes.len());
                    for write in &writes {
                        found.push(match write {
                            GroupWrite::Upsert(group, batch) => {
                                upsert_in(&tx, &name, group, batch)?;
                                Vec::new()
                            }
                            GroupWrite::Delete(group, ids) => delete_in(&tx, &name, &group.table, ids)?,
                        });
                    }
                    tx.commit().map_err(|e| map_write_error(&name, &tables, e))?;
                    Ok(found)
                })();
                if bulk {
                    // SQLite's default, restored whatever the write's outcome;
                    // setting a pragma cannot fail on an open connection, and
                    // a committed write must not be reported as failed.
                    let _ = conn.execute_batch("PRAGMA wal_autocheckpoint = 1000");
                }
                written
            })
            .await?;
        if bulk && let Some(checkpointer) = &self.checkpointer {
            checkpointer.request();
        }
        Ok(found)
    }

    /// A `:memory:` database dies with the process: nothing to recover.
    fn transactional(&self) -> bool {
        self.location != ":memory:"
    }

    fn filter_pushdown(&self, group: &GroupSpec, filter: &Expr) -> Pushdown {
        if can_render(filter, group, &Sqlite) { Pushdown::Exact } else { Pushdown::Unsupported }
    }

    async fn scan(&self, group: &GroupSpec, request: &ScanRequest) -> Result<Vec<RecordBatch>> {
        // Probing many keys in a table that holds fewer rows than that costs more
        // than reading the table: check its size first and skip the probes when empty.
        if request.ids.as_ref().is_some_and(|ids| ids.len() > LARGE_LOOKUP) && self.count(group).await? == 0 {
            return Ok(vec![RecordBatch::new_empty(scan_schema(group, &request.columns))]);
        }
        let keyed = request.ids.as_ref().is_some_and(|ids| ids.len() <= KEYED_READ_MAX_IDS);
        let read = self.read(group, request);
        let read = move |conn: &mut Connection| {
            let mut batches = Vec::with_capacity(1);
            read(conn, usize::MAX, &mut |b| {
                batches.push(b);
                true
            })?;
            Ok(batches)
        };
        if keyed { self.with_free_conn(read).await } else { self.with_conn(read).await }
    }

    /// Whole-table and filtered reads of a file database stream from a pooled
    /// read-only connection on a blocking thread, a few batches ahead of the
    /// consumer; key lookups (and `:memory:` databases, which a second
    /// connection cannot see) are read whole.
    async fn scan_stream(&self, group: &GroupSpec, request: &ScanRequest) -> Result<BatchStream> {
        if request.ids.is_some() || self.location == ":memory:" {
            let batches = self.scan(group, request).await?;
            return Ok(Box::pin(futures::stream::iter(batches.into_iter().map(Ok))));
        }
        if let Some(batches) = self.point_read(group, request)? {
            return Ok(Box::pin(futures::stream::iter(batches.into_iter().map(Ok))));
        }
        let read = self.read(group, request);
        let mut conn = self.reader()?;
        let readers = self.readers.clone();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
        tokio::task::spawn_blocking(move || {
            let result = read(&mut conn, STREAM_BATCH_ROWS, &mut |b| tx.blocking_send(Ok(b)).is_ok());
            if let Err(e) = result {
                let _ = tx.blocking_send(Err(e));
            }
            readers.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
        });
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })))
    }

    async fn count(&self, group: &GroupSpec) -> Result<usize> {
        let sql = format!("SELECT count(*) FROM {}", quote_ident(&group.table));
        let res = self.with_conn(move |conn| Ok(conn.query_row(&sql, [], |r| r.get::<_, i64>(0)))).await?;
        res.map(|n| n as usize).map_err(|e| self.error("count", e))
    }

    async fn alter_group(&self, group: &GroupSpec, change: &ColumnChange) -> Result<()> {
        let table = quote_ident(&group.table);
        // SQLite refuses to drop an indexed column, and a renamed column's
        // indexes keep their old names: the indexes over the column are
        // dropped first, in the same transaction, and rebuilt under their new
        // names by the ensure_group that follows.
        let mut statements: Vec<String> = group
            .indexes
            .iter()
            .filter(|ix| ix.fields.iter().any(|f| f == change.column()))
            .map(|ix| format!("DROP INDEX IF EXISTS {}", quote_ident(&crate::backend::index_name(&group.table, ix))))
            .collect();
        statements.push(match change {
            ColumnChange::Drop(c) => format!("ALTER TABLE {table} DROP COLUMN {}", quote_ident(c)),
            ColumnChange::Rename { from, to } => {
                format!("ALTER TABLE {table} RENAME COLUMN {} TO {}", quote_ident(from), quote_ident(to))
            }
        });
        let sql = format!("BEGIN; {}; COMMIT;", statements.join("; "));
        let res = self
            .with_conn(move |conn| {
                let res = conn.execute_batch(&sql);
                if res.is_err() && !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                Ok(res)
            })
            .await?;
        res.map_err(|e| self.error("alter", e))
    }

    async fn drop_index(&self, group: &GroupSpec, index: &IndexPlan) -> Result<()> {
        let sql = format!("DROP INDEX IF EXISTS {}", quote_ident(&crate::backend::index_name(&group.table, index)));
        let res = self.with_conn(move |conn| Ok(conn.execute_batch(&sql))).await?;
        res.map_err(|e| self.error("drop index", e))
    }

    async fn drop_group(&self, group: &GroupSpec) -> Result<()> {
        let sql = format!("DROP TABLE IF EXISTS {}", quote_ident(&group.table));
        let res = self.with_conn(move |conn| Ok(conn.execute_batch(&sql))).await?;
        res.map_err(|e| self.error("drop", e))
    }

    fn explain_scan(&self, group: &GroupSpec, request: &ScanRequest) -> String {
        let (sql, params, with_ids) = Self::build_select(group, request);
        let mut shown: Vec<String> = params.iter().map(|p| format!("{p:?}")).collect();
        if with_ids {
            shown.push(format!("[{} ids]", request.ids.as_ref().map_or(0, |i| i.len())));
        }
        format!("sql=[{sql}] params=[{}]", shown.join(", "))
    }

    fn sql_engine(&self) -> Option<&dyn SqlEngine> {
        Some(self)
    }
}

/// Federated statements (engine/src/federation.rs) over this file's tables.
/// They run on a pooled read-only connection, so a long aggregate holds up no
/// writer (a `:memory:` database, which a second connection cannot see, uses
/// the one connection).
#[async_trait]
impl SqlEngine for SqliteBackend {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn federation(&self) -> FederationScope {
        self.federation
    }

    /// Prepared (not run) on a read connection: a statement SQLite cannot
    /// compile, or whose column count differs from the plan, is not federated.
    fn accepts(&self, sql: &str, columns: usize) -> bool {
        let check = |conn: &Connection| conn.prepare(sql).is_ok_and(|stmt| stmt.column_count() == columns);
        if self.location == ":memory:" {
            return self.conn.try_lock().is_ok_and(|conn| check(&conn));
        }
        let Ok(conn) = self.reader() else { return false };
        let ok = check(&conn);
        self.readers.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
        ok
    }

    async fn execute(&self, sql: &str, schema: SchemaRef) -> Result<RecordBatch> {
        let (sql, backend) = (sql.to_string(), self.info.name.clone());
        let run = move |conn: &mut Connection| query_arrow(conn, &sql, &schema, &backend);
        if self.location == ":memory:" {
            return self.with_conn(run).await;
        }
        let mut conn = self.reader()?;
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let result = run(&mut conn);
            readers.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            result
        })
        .await
        .map_err(|e| self.error("federated statement", e))?
    }
}

/// Run `sql` and read its rows as one batch of `schema`, column by column.
fn query_arrow(conn: &mut Connection, sql: &str, schema: &SchemaRef, backend: &str) -> Result<RecordBatch> {
    let err = |e: String| ProviderError::Backend {
        backend: backend.into(),
        kind: "sqlite".into(),
        message: format!("{}: {e}", shorten(sql)),
    };
    let mut readers = schema
        .fields()
        .iter()
        .map(|f| ColumnBuilder::for_arrow(f.data_type(), 0).ok_or_else(|| err(format!("cannot read a {} column", f.data_type()))))
        .collect::<Result<Vec<_>>>()?;
    let mut stmt = conn.prepare(sql).map_err(|e| err(e.to_string()))?;
    if stmt.column_count() != readers.len() {
        return Err(err(format!("{} columns where {} were planned", stmt.column_count(), readers.len())));
    }
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next().map_err(|e| err(e.to_string()))? {
        for (i, r) in readers.iter_mut().enumerate() {
            r.push_stored(stored(row.get_ref(i).map_err(|e| err(e.to_string()))?).map_err(&err)?).map_err(&err)?;
        }
    }
    let arrays = readers.into_iter().map(ColumnBuilder::finish).collect();
    RecordBatch::try_new(schema.clone(), arrays).map_err(|e| err(e.to_string()))
}

/// Upsert `batch` into `group` inside `tx`: several rows per statement, in key order.
fn upsert_in(tx: &rusqlite::Transaction<'_>, name: &str, group: &GroupSpec, batch: &RecordBatch) -> Result<()> {
    if batch.num_rows() == 0 {
        return Ok(());
    }
    let names: Vec<String> = batch.schema().fields().iter().map(|f| quote_ident(f.name())).collect();
    let types: Vec<LogicalType> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| group.column(f.name()).map(|c| c.ty.clone()).unwrap_or(LogicalType::identifier()))
        .collect();
    let ncols = names.len();
    let updates: Vec<String> = names.iter().skip(1).map(|n| format!("{n} = excluded.{n}")).collect();
    // Several rows per statement: fewer VM runs per row, within SQLite's
    // limit of bound parameters.
    let per_stmt = (30_000 / ncols).clamp(1, 64);
    let sql_for = |rows: usize| -> String {
        let tuples: Vec<String> = (0..rows)
            .map(|r| format!("({})", (1..=ncols).map(|c| format!("?{}", r * ncols + c)).collect::<Vec<_>>().join(", ")))
            .collect();
        // ON CONFLICT on the key only: a clash on another unique index is an
        // error, never a silent delete of the other row (as INSERT OR REPLACE does).
        // OR ROLLBACK: any error ends the whole write's transaction anyway, and
        // a statement that cannot stop half-way needs no statement journal;
        // with the default ABORT, SQLite copies every page a multi-row
        // statement touches into one first (a third of an insert's time into a
        // table with a secondary index).
        format!(
            "INSERT OR ROLLBACK INTO {} ({}) VALUES {} ON CONFLICT ({}) DO {}",
            quote_ident(&group.table),
            names.join(", "),
            tuples.join(", "),
            quote_ident(OBJECT_ID),
            if updates.is_empty() { "NOTHING".to_string() } else { format!("UPDATE SET {}", updates.join(", ")) }
        )
    };
    let wrap = |e: rusqlite::Error| map_write_error(name, &group.table, e);
    let full_sql = sql_for(per_stmt);
    let columns = batch.columns();
    // Insert in key order: B-tree pages fill in sequence instead of at
    // random, which is most of the cost of a large batch.
    let order = key_order(columns[0].as_string::<i32>());
    // The rows are first copied into key order a chunk at a time: binding
    // straight from their places in the batch read every cell from a random
    // address, one cache miss at a time between SQLite calls.
    // A chunk already in key order (a single row, rows sorted upstream) is
    // bound where it lies.
    for (n, chunk) in order.chunks(per_stmt * 64).enumerate() {
        let first = n * per_stmt * 64;
        let sorted: Vec<ArrayRef> = if chunk.iter().enumerate().all(|(k, &i)| i == first + k) {
            columns.iter().map(|c| c.slice(first, chunk.len())).collect()
        } else {
            let indices = datafusion::arrow::array::UInt32Array::from_iter_values(chunk.iter().map(|&i| i as u32));
            columns
                .iter()
                .map(|c| datafusion::arrow::compute::take(c.as_ref(), &indices, None))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| ProviderError::Backend { backend: name.into(), kind: "sqlite".into(), message: e.to_string() })?
        };
        let cells: Vec<Cells<'_>> = sorted.iter().zip(&types).map(|(c, ty)| Cells::of(c, ty)).collect();
        let mut start = 0;
        while start < chunk.len() {
            let rows = per_stmt.min(chunk.len() - start);
            let tail;
            let sql = if rows == per_stmt {
                &full_sql
            } else {
                tail = sql_for(rows);
                &tail
            };
            let mut stmt = tx.prepare_cached(sql).map_err(wrap)?;
            for r in 0..rows {
                for (i, col) in cells.iter().enumerate() {
                    stmt.raw_bind_parameter(r * ncols + i + 1, col.get(start + r)).map_err(wrap)?;
                }
            }
            stmt.raw_execute().map_err(wrap)?;
            start += rows;
        }
    }
    Ok(())
}

/// Delete `ids` from `table` inside `tx`; the ids that existed.
fn delete_in(tx: &rusqlite::Transaction<'_>, name: &str, table: &str, ids: &[String]) -> Result<Vec<String>> {
    let wrap = |e: rusqlite::Error| map_write_error(name, table, e);
    let mut stmt =
        tx.prepare_cached(&format!("DELETE FROM {} WHERE {} = ?1", quote_ident(table), quote_ident(OBJECT_ID))).map_err(wrap)?;
    let mut existed = Vec::new();
    for id in ids {
        if stmt.execute([id]).map_err(wrap)? > 0 {
            existed.push(id.clone());
        }
    }
    Ok(existed)
}
