//! The Postgres backend: one schema per workspace, one table per field group,
//! `object_id text PRIMARY KEY`. Small writes are one multi-row
//! `INSERT … ON CONFLICT`; large ones a binary COPY into a temporary table and one
//! `INSERT … SELECT … ON CONFLICT` (measured in benchmarks/). Scans render pushed
//! filters as parameterised SQL, and [`PostgresBackend::query_arrow`] runs whole
//! federated subplans (engine/src/federation.rs).
//!
//! Column types spell the catalog's one type map (`PhysicalType`) in
//! [`column_type`]; rows read back through the catalog's one `ColumnBuilder`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int64Type, SchemaRef, TimestampMillisecondType,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::Expr;
use futures::{StreamExt, pin_mut};
use heavenbase_catalog::value::array_value;
use heavenbase_catalog::{BackendInfo, ColumnBuilder, IndexPlan, LogicalType, OBJECT_ID, PhysicalType, Stored};
use serde_json::{Value as Json, json};
use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::config::SslMode;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row, Statement};

use crate::backend::{
    Backend, ColumnChange, ColumnSpec, Dialect, FederationScope, GroupSpec, GroupWrite, Pushdown, ScanRequest, SqlEngine,
    scan_schema,
};
use crate::sql_filter::{SqlDialect, SqlParam, build_select, can_render, quote_ident, shorten};
use crate::{ProviderError, Result};

/// Batches of more rows than this go through COPY; smaller ones through VALUES.
const COPY_THRESHOLD: usize = 256;
/// Connections per backend instance.
const DEFAULT_POOL_SIZE: usize = 4;
const EPOCH_DAYS_CE: i32 = 719_163;

/// Connection settings: docs/reference.md §3.5 keys (host, port, database, username,
/// password, schema, params) or a `url`, explicit keys winning over the URL.
#[derive(Clone)]
pub struct PostgresConfig {
    pub pg: tokio_postgres::Config,
    pub schema: String,
    pub pool_size: usize,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        write!(f, "PostgresConfig({})", self.display())
    }
}

impl PostgresConfig {
    /// Build from a backend config object. `default_schema` applies when the
    /// config names none.
    pub fn from_json(backend: &str, config: &serde_json::Map<String, Json>, default_schema: &str) -> Result<Self> {
        let bad = |m: String| ProviderError::Config(format!("Postgres backend '{backend}': {m}"));
        let mut pg = match config.get("url").and_then(Json::as_str) {
            Some(url) => url.parse::<tokio_postgres::Config>().map_err(|e| bad(format!("invalid url: {e}")))?,
            None => tokio_postgres::Config::new(),
        };
        let text = |k: &str| {
            config.get(k).and_then(|v| match v {
                Json::String(s) => Some(s.clone()),
                Json::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        if let Some(h) = text("host") {
            pg.host(&h);
        }
        if let Some(p) = text("port") {
            pg.port(p.parse().map_err(|_| bad(format!("port '{p}' is not a number")))?);
        }
        if let Some(d) = text("database") {
            pg.dbname(&d);
        }
        if let Some(u) = text("username").or_else(|| text("user")) {
            pg.user(&u);
        }
        if let Some(p) = text("password") {
            if !p.is_empty() {
                pg.password(p);
            }
        }
        let mut sslmode = None;
        if let Some(Json::Object(params)) = config.get("params") {
            for (k, v) in params {
                let v = v.as_str().map(String::from).unwrap_or_else(|| v.to_string());
                match k.as_str() {
                    "sslmode" => sslmode = Some(v),
                    "connect_timeout" => {
                        pg.connect_timeout(Duration::from_secs(v.parse().map_err(|_| bad(format!("connect_timeout '{v}'")))?));
                    }
                    "application_name" => {
                        pg.application_name(&v);
                    }
                    other => return Err(bad(format!("unknown connection parameter '{other}'"))),
                }
            }
        }
        if let Some(mode) = sslmode.or_else(|| text("sslmode")) {
            pg.ssl_mode(match mode.as_str() {
                "disable" => SslMode::Disable,
                "prefer" | "allow" => SslMode::Prefer,
                "require" => SslMode::Require,
                other => return Err(bad(format!("sslmode '{other}' (use disable, prefer or require)"))),
            });
        }
        if pg.get_hosts().is_empty() {
            pg.host("localhost");
        }
        if pg.get_user().is_none() {
            pg.user("postgres");
        }
        if pg.get_dbname().is_none() {
            let user = pg.get_user().unwrap_or("postgres").to_string();
            pg.dbname(&user);
        }
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(Duration::from_secs(5));
        }
        pg.application_name("heavenbase");
        let schema = text("schema").unwrap_or_else(|| default_schema.to_string());
        if simple_identifier(&schema) {
            // Federated statements name tables bare, as the session does.
            pg.options(&format!("-c search_path={schema}"));
        }
        let pool_size = text("pool_size").and_then(|p| p.parse().ok()).unwrap_or(DEFAULT_POOL_SIZE).max(1);
        Ok(PostgresConfig { pg, schema, pool_size })
    }

    /// Whether federated statements can name this schema's tables bare.
    pub fn federates(&self) -> bool {
        simple_identifier(&self.schema)
    }

    /// `user@host:port/db`, for messages (no password).
    pub fn display(&self) -> String {
        let host = match self.pg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        format!(
            "{}@{}:{}/{}",
            self.pg.get_user().unwrap_or("postgres"),
            host,
            self.pg.get_ports().first().copied().unwrap_or(5432),
            self.pg.get_dbname().unwrap_or("postgres")
        )
    }
}

fn simple_identifier(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A connection and the statements prepared on it.
struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
    /// COPY stages (temporary tables) this session has created.
    stages: HashSet<String>,
}

impl Conn {
    async fn prepare(&mut self, sql: &str) -> std::result::Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).await?;
        if self.statements.len() > 256 {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

/// A fixed set of connection slots, each opened on first use and reopened when
/// its connection has closed (a restarted server, a dropped socket).
struct Pool {
    config: PostgresConfig,
    slots: Vec<Arc<Mutex<Option<Conn>>>>,
    next: AtomicUsize,
}

impl Pool {
    async fn get(&self, backend: &str) -> Result<OwnedMutexGuard<Option<Conn>>> {
        // A free slot if there is one, else wait for the next in turn.
        let mut guard = None;
        for slot in &self.slots {
            if let Ok(g) = slot.clone().try_lock_owned() {
                guard = Some(g);
                break;
            }
        }
        let mut guard = match guard {
            Some(g) => g,
            None => {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
                self.slots[i].clone().lock_owned().await
            }
        };
        if (*guard).as_ref().is_none_or(|c| c.client.is_closed()) {
            *guard = None;
            let client = connect(&self.config).await.map_err(|e| ProviderError::Unavailable {
                backend: backend.into(),
                kind: "postgres".into(),
                message: format!("cannot connect to {}: {}", self.config.display(), pg_message(&e)),
            })?;
            *guard = Some(Conn { client, statements: HashMap::new(), stages: HashSet::new() });
        }
        Ok(guard)
    }
}

async fn connect(config: &PostgresConfig) -> std::result::Result<Client, tokio_postgres::Error> {
    let client = match config.pg.get_ssl_mode() {
        SslMode::Disable => {
            let (client, connection) = config.pg.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!("postgres connection closed: {e}");
                }
            });
            client
        }
        _ => {
            let tls = crate::pg_tls::connector();
            let (client, connection) = config.pg.connect(tls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!("postgres connection closed: {e}");
                }
            });
            client
        }
    };
    Ok(client)
}

/// Whether `e` says the connection is gone rather than the statement wrong:
/// a closed socket or I/O failure, a connection-class SQLSTATE (08…), or the
/// server shutting down or starting up (57P01 admin shutdown, 57P02 crash
/// shutdown, 57P03 cannot connect now).
fn connection_lost(e: &tokio_postgres::Error) -> bool {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    e.is_closed()
}

/// Postgres' own words: message, detail and SQLSTATE for a server error, the
/// error chain for anything else (refused connection, closed socket).
pub fn pg_message(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut m = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(d) = db.detail() {
            m.push_str(&format!("; {d}"));
        }
        return m;
    }
    let mut m = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        m.push_str(&format!(": {s}"));
        source = s.source();
    }
    m
}

pub struct PostgresBackend {
    info: BackendInfo,
    config: PostgresConfig,
    pool: Pool,
    /// Whether the schema has been created in this process.
    schema_ready: Mutex<bool>,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresBackend({}, {})", self.info.name, self.config.display())
    }
}

struct Postgres;

impl SqlDialect for Postgres {
    fn placeholder(&self, n: usize) -> String {
        format!("${n}")
    }
    fn like_is_case_sensitive(&self) -> bool {
        true
    }
    fn date_param(&self, days: i32) -> SqlParam {
        SqlParam::Date(days)
    }
    fn bool_param(&self, b: bool) -> SqlParam {
        SqlParam::Bool(b)
    }
    fn timestamp_param(&self, ms: i64) -> SqlParam {
        SqlParam::Timestamp(ms)
    }
}

/// The Postgres backend's spelling of a layout: the column type it creates
/// and the type a binary COPY sends. Two choices differ from what clients see
/// ([`PhysicalType::pg_type`]): text is `text COLLATE "C"` (byte order, as
/// DataFusion compares strings; no length in the table, so a field's limit can
/// change without an ALTER: the engine checks it on the way in), and lists of
/// items with no array type here (timestamps, dates, bytes, JSON) are one jsonb
/// document.
fn column_type(physical: &PhysicalType) -> (&'static str, Type) {
    let jsonb = ("jsonb", Type::JSONB);
    let pg = match physical {
        PhysicalType::Text => return ("text COLLATE \"C\"", Type::TEXT),
        PhysicalType::Int => Type::INT8,
        PhysicalType::Float => Type::FLOAT8,
        PhysicalType::Bool => Type::BOOL,
        PhysicalType::Timestamp => Type::TIMESTAMPTZ,
        PhysicalType::Date => Type::DATE,
        PhysicalType::Bytes => Type::BYTEA,
        PhysicalType::Vector { .. } => Type::FLOAT4_ARRAY,
        PhysicalType::Json => return jsonb,
        PhysicalType::List(item) => match item.as_ref() {
            PhysicalType::Text => Type::TEXT_ARRAY,
            PhysicalType::Int => Type::INT8_ARRAY,
            PhysicalType::Float => Type::FLOAT8_ARRAY,
            PhysicalType::Bool => Type::BOOL_ARRAY,
            _ => return jsonb,
        },
    };
    // Every other column is spelled as clients see the layout.
    (physical.pg_type(), pg)
}

/// The Postgres types a batch's columns are stored as, in order.
fn column_pg_types(types: &[LogicalType]) -> Vec<Type> {
    types.iter().map(|t| column_type(&t.physical()).1).collect()
}

fn ms_to_datetime(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_millis(ms)
}

fn days_to_date(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(EPOCH_DAYS_CE)?)
}

fn date_to_days(d: NaiveDate) -> i32 {
    chrono::Datelike::num_days_from_ce(&d) - EPOCH_DAYS_CE
}

type Param = Box<dyn ToSql + Sync + Send>;

/// A filter parameter typed as the server inferred it for its placeholder.
fn bind_param(p: &SqlParam, ty: &Type) -> Param {
    match (p, ty) {
        (SqlParam::Int(i), t) if *t == Type::FLOAT8 => Box::new(*i as f64),
        (SqlParam::Int(i), t) if *t == Type::INT4 => Box::new(*i as i32),
        (SqlParam::Int(i), t) if *t == Type::TIMESTAMPTZ => Box::new(ms_to_datetime(*i)),
        (SqlParam::Int(i), _) => Box::new(*i),
        (SqlParam::Float(f), _) => Box::new(*f),
        (SqlParam::Text(s), _) => Box::new(s.clone()),
        (SqlParam::Bool(b), _) => Box::new(*b),
        (SqlParam::Date(d), _) => Box::new(days_to_date(*d)),
        (SqlParam::Timestamp(ms), _) => Box::new(ms_to_datetime(*ms)),
    }
}

/// The value of `array[row]` as a parameter of the column's storage type `pg`
/// (typed even when NULL: the server checks every parameter's type).
fn cell_param(array: &ArrayRef, row: usize, ty: &LogicalType, pg: &Type) -> Param {
    if array.is_null(row) {
        return match *pg {
            Type::INT8 => Box::new(None::<i64>),
            Type::FLOAT8 => Box::new(None::<f64>),
            Type::BOOL => Box::new(None::<bool>),
            Type::TIMESTAMPTZ => Box::new(None::<DateTime<Utc>>),
            Type::DATE => Box::new(None::<NaiveDate>),
            Type::JSONB => Box::new(None::<Json>),
            Type::FLOAT4_ARRAY => Box::new(None::<Vec<f32>>),
            Type::TEXT_ARRAY => Box::new(None::<Vec<Option<String>>>),
            Type::INT8_ARRAY => Box::new(None::<Vec<Option<i64>>>),
            Type::FLOAT8_ARRAY => Box::new(None::<Vec<Option<f64>>>),
            Type::BOOL_ARRAY => Box::new(None::<Vec<Option<bool>>>),
            Type::BYTEA => Box::new(None::<Vec<u8>>),
            _ => Box::new(None::<String>),
        };
    }
    match *pg {
        Type::JSONB => return Box::new(array_value(array.as_ref(), row, ty)),
        Type::TEXT_ARRAY | Type::INT8_ARRAY | Type::FLOAT8_ARRAY | Type::BOOL_ARRAY => {
            let list = array.as_list::<i32>().value(row);
            return match list.data_type() {
                DataType::Int64 => Box::new(list.as_primitive::<Int64Type>().iter().collect::<Vec<_>>()),
                DataType::Float64 => Box::new(list.as_primitive::<Float64Type>().iter().collect::<Vec<_>>()),
                DataType::Boolean => Box::new(list.as_boolean().iter().collect::<Vec<_>>()),
                _ => Box::new(list.as_string::<i32>().iter().map(|s| s.map(String::from)).collect::<Vec<_>>()),
            };
        }
        _ => {}
    }
    match array.data_type() {
        DataType::Int64 => Box::new(array.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => Box::new(array.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => Box::new(array.as_boolean().value(row)),
        DataType::Timestamp(..) => Box::new(ms_to_datetime(array.as_primitive::<TimestampMillisecondType>().value(row))),
        DataType::Date32 => Box::new(days_to_date(array.as_primitive::<Date32Type>().value(row))),
        DataType::Binary => Box::new(array.as_binary::<i32>().value(row).to_vec()),
        DataType::FixedSizeList(..) => {
            let v = array.as_fixed_size_list().value(row);
            Box::new(v.as_primitive::<Float32Type>().values().to_vec())
        }
        _ => Box::new(array.as_string::<i32>().value(row).to_string()),
    }
}

/// Read cell `i` of `row` into `b`, decoded by the Postgres type the server sent.
fn read_cell(b: &mut ColumnBuilder, row: &Row, i: usize, pg: &Type) -> std::result::Result<(), String> {
    let e = |e: tokio_postgres::Error| pg_message(&e);
    let get_json = || -> std::result::Result<Option<Json>, tokio_postgres::Error> {
        Ok(match *pg {
            Type::JSONB | Type::JSON => row.try_get(i)?,
            Type::TEXT_ARRAY => row.try_get::<_, Option<Vec<Option<String>>>>(i)?.map(|v| json!(v)),
            Type::INT8_ARRAY => row.try_get::<_, Option<Vec<Option<i64>>>>(i)?.map(|v| json!(v)),
            Type::FLOAT8_ARRAY => row.try_get::<_, Option<Vec<Option<f64>>>>(i)?.map(|v| json!(v)),
            _ => row.try_get::<_, Option<Vec<Option<bool>>>>(i)?.map(|v| json!(v)),
        })
    };
    fn stored(v: Option<Stored<'_>>) -> Stored<'_> {
        v.unwrap_or(Stored::Null)
    }
    match *pg {
        Type::INT8 => b.push_stored(stored(row.try_get::<_, Option<i64>>(i).map_err(e)?.map(Stored::Int))),
        Type::INT4 => b.push_stored(stored(row.try_get::<_, Option<i32>>(i).map_err(e)?.map(|v| Stored::Int(v.into())))),
        Type::INT2 => b.push_stored(stored(row.try_get::<_, Option<i16>>(i).map_err(e)?.map(|v| Stored::Int(v.into())))),
        Type::FLOAT8 => b.push_stored(stored(row.try_get::<_, Option<f64>>(i).map_err(e)?.map(Stored::Float))),
        Type::FLOAT4 => b.push_stored(stored(row.try_get::<_, Option<f32>>(i).map_err(e)?.map(|v| Stored::Float(v.into())))),
        Type::BOOL => b.push_stored(stored(row.try_get::<_, Option<bool>>(i).map_err(e)?.map(Stored::Bool))),
        Type::TIMESTAMPTZ => b.push_stored(stored(
            row.try_get::<_, Option<DateTime<Utc>>>(i).map_err(e)?.map(|t| Stored::Timestamp(t.timestamp_millis())),
        )),
        Type::TIMESTAMP => b.push_stored(stored(
            row.try_get::<_, Option<NaiveDateTime>>(i).map_err(e)?.map(|t| Stored::Timestamp(t.and_utc().timestamp_millis())),
        )),
        Type::DATE => {
            b.push_stored(stored(row.try_get::<_, Option<NaiveDate>>(i).map_err(e)?.map(|d| Stored::Date(date_to_days(d)))))
        }
        Type::BYTEA => b.push_stored(stored(row.try_get::<_, Option<&[u8]>>(i).map_err(e)?.map(Stored::Bytes))),
        Type::FLOAT4_ARRAY => {
            let v = row.try_get::<_, Option<Vec<f32>>>(i).map_err(e)?;
            b.push_stored(stored(v.as_deref().map(Stored::Floats)))
        }
        Type::JSONB | Type::JSON | Type::TEXT_ARRAY | Type::INT8_ARRAY | Type::FLOAT8_ARRAY | Type::BOOL_ARRAY => {
            match get_json().map_err(e)? {
                // Values were checked on the way in; a value that no longer fits
                // its type (edited outside HeavenBase) reads as NULL.
                Some(v) => {
                    if b.push_stored(Stored::Json(&v)).is_err() {
                        b.push_null();
                    }
                    Ok(())
                }
                None => b.push_stored(Stored::Null),
            }
        }
        _ => b.push_stored(stored(row.try_get::<_, Option<&str>>(i).map_err(e)?.map(Stored::Text))),
    }
}

/// Read rows into one batch of `schema`; `logical` gives the logical type of
/// the columns that have one (scans), the rest are laid out by Arrow type
/// (federated results).
fn rows_to_batch(rows: &[Row], schema: SchemaRef, logical: &[Option<LogicalType>]) -> std::result::Result<RecordBatch, String> {
    let mut builders = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| match logical.get(i).and_then(|l| l.as_ref()) {
            Some(ty) => Ok(ColumnBuilder::new(ty, rows.len())),
            None => ColumnBuilder::for_arrow(f.data_type(), rows.len())
                .ok_or_else(|| format!("column '{}' of type {} cannot be read from Postgres", f.name(), f.data_type())),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if let Some(first) = rows.first() {
        // Every row of a result has the same column types: look them up once.
        let pg_types: Vec<Type> = first.columns().iter().map(|c| c.type_().clone()).collect();
        for row in rows {
            for (i, b) in builders.iter_mut().enumerate() {
                read_cell(b, row, i, &pg_types[i]).map_err(|m| format!("column '{}': {m}", schema.field(i).name()))?;
            }
        }
    }
    let arrays = builders.into_iter().map(ColumnBuilder::finish).collect();
    RecordBatch::try_new(schema, arrays).map_err(|e| e.to_string())
}

impl PostgresBackend {
    /// A backend that connects on first use: a server that is down fails the
    /// statements that need it, not the workspace's other backends.
    pub fn new(name: &str, config: PostgresConfig) -> Self {
        let slots = (0..config.pool_size).map(|_| Arc::new(Mutex::new(None))).collect();
        PostgresBackend {
            info: BackendInfo { name: name.into(), kind: "postgres".into(), tags: vec!["row".into(), "sql".into()] },
            pool: Pool { config: config.clone(), slots, next: AtomicUsize::new(0) },
            config,
            schema_ready: Mutex::new(false),
        }
    }

    pub fn config(&self) -> &PostgresConfig {
        &self.config
    }

    /// `"schema"."table"` of a group.
    pub fn qualified(&self, table: &str) -> String {
        format!("{}.{}", quote_ident(&self.config.schema), quote_ident(table))
    }

    fn error(&self, statement: &str, e: &tokio_postgres::Error) -> ProviderError {
        let (backend, kind) = (self.info.name.clone(), "postgres".to_string());
        let message = format!("{}; statement: {}", pg_message(e), shorten(statement));
        let code = e.as_db_error().map(|d| d.code().code());
        if connection_lost(e) {
            // The server went away mid-statement (restart, crash, network):
            // the pool reconnects on next use, so a retry can succeed.
            ProviderError::Unavailable { backend, kind, message }
        } else if code == Some("53100") {
            ProviderError::DiskFull { backend, kind, message }
        } else {
            ProviderError::Backend { backend, kind, message }
        }
    }

    fn write_error(&self, table: &str, statement: &str, e: &tokio_postgres::Error) -> ProviderError {
        if let Some(db) = e.as_db_error() {
            if db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION {
                return ProviderError::Unique { backend: self.info.name.clone(), table: table.into(), message: pg_message(e) };
            }
        }
        self.error(statement, e)
    }

    async fn ensure_schema(&self, conn: &mut Conn) -> Result<()> {
        let mut ready = self.schema_ready.lock().await;
        if !*ready {
            let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(&self.config.schema));
            if let Err(e) = conn.client.batch_execute(&sql).await {
                // Another session creating it at the same moment is fine.
                if e.as_db_error().is_none_or(|d| d.code() != &tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                    return Err(self.error(&sql, &e));
                }
            }
            *ready = true;
        }
        Ok(())
    }

    fn build_select(&self, group: &GroupSpec, request: &ScanRequest) -> (String, Vec<SqlParam>, bool) {
        build_select(&self.qualified(&group.table), group, request, &Postgres, |n| {
            format!("{} = ANY(${n})", quote_ident(OBJECT_ID))
        })
    }

    /// Run a query and read its rows as one batch of `schema`: the federated
    /// path. Column i of the result fills field i of `schema`.
    pub async fn query_arrow(&self, sql: &str, schema: SchemaRef) -> Result<RecordBatch> {
        let mut guard = self.pool.get(&self.info.name).await?;
        let conn = guard.as_mut().expect("connected");
        let rows = conn.client.query(sql, &[]).await.map_err(|e| self.error(sql, &e))?;
        drop(guard);
        let logical = vec![None; schema.fields().len()];
        rows_to_batch(&rows, schema, &logical).map_err(|m| ProviderError::Backend {
            backend: self.info.name.clone(),
            kind: "postgres".into(),
            message: format!("{m}; statement: {}", shorten(sql)),
        })
    }

    /// Multi-row `INSERT … VALUES … ON CONFLICT` in one statement.
    async fn upsert_values(&self, conn: &mut Conn, group: &GroupSpec, batch: &RecordBatch, types: &[LogicalType]) -> Result<()> {
        let names: Vec<String> = batch.schema().fields().iter().map(|f| quote_ident(f.name())).collect();
        let ncols = names.len();
        let rows = batch.num_rows();
        let tuples: Vec<String> = (0..rows)
            .map(|r| format!("({})", (1..=ncols).map(|c| format!("${}", r * ncols + c)).collect::<Vec<_>>().join(", ")))
            .collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES {} {}",
            self.qualified(&group.table),
            names.join(", "),
            tuples.join(", "),
            on_conflict(&names)
        );
        let pg_types = column_pg_types(types);
        let mut params: Vec<Param> = Vec::with_capacity(rows * ncols);
        for r in 0..rows {
            for (i, col) in batch.columns().iter().enumerate() {
                params.push(cell_param(col, r, &types[i], &pg_types[i]));
            }
        }
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        let stmt = conn.prepare(&sql).await.map_err(|e| self.write_error(&group.table, &sql, &e))?;
        conn.client.execute(&stmt, &refs).await.map_err(|e| self.write_error(&group.table, &sql, &e))?;
        Ok(())
    }

    /// Binary COPY into a temporary table, then one `INSERT … SELECT … ON CONFLICT`.
    async fn upsert_copy(&self, conn: &mut Conn, group: &GroupSpec, batch: &RecordBatch, types: &[LogicalType]) -> Result<()> {
        let names: Vec<String> = batch.schema().fields().iter().map(|f| quote_ident(f.name())).collect();
        let columns: Vec<String> =
            names.iter().zip(types).map(|(n, t)| format!("{n} {}", column_type(&t.physical()).0)).collect();
        // One stage per table and batch shape, named by a hash of both (Postgres
        // cuts identifiers at 63 bytes): a connection creates it once and reuses
        // it, where dropping and recreating it per batch churned the catalog.
        let shape = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (&group.table, &columns).hash(&mut h);
            h.finish()
        };
        let stage = quote_ident(&format!("hb_stage_{shape:016x}"));
        let table = &group.table;
        if !conn.stages.contains(&stage) {
            let create = format!("CREATE TEMP TABLE IF NOT EXISTS {stage} ({}) ON COMMIT DELETE ROWS", columns.join(", "));
            conn.client.batch_execute(&create).await.map_err(|e| self.error(&create, &e))?;
            conn.stages.insert(stage.clone());
        }
        let copy = format!("COPY {stage} ({}) FROM STDIN (FORMAT binary)", names.join(", "));
        let sink = conn.client.copy_in(&copy).await.map_err(|e| self.error(&copy, &e))?;
        let pg_types = column_pg_types(types);
        let writer = BinaryCopyInWriter::new(sink, &pg_types);
        pin_mut!(writer);
        let mut row: Vec<Param> = Vec::with_capacity(names.len());
        for r in 0..batch.num_rows() {
            row.clear();
            for (i, col) in batch.columns().iter().enumerate() {
                row.push(cell_param(col, r, &types[i], &pg_types[i]));
            }
            let refs: Vec<&(dyn ToSql + Sync)> = row.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
            writer.as_mut().write(&refs).await.map_err(|e| self.error(&copy, &e))?;
        }
        writer.finish().await.map_err(|e| self.error(&copy, &e))?;
        let insert = format!(
            "INSERT INTO {} ({cols}) SELECT {cols} FROM {stage} ORDER BY {} {}",
            self.qualified(table),
            quote_ident(OBJECT_ID),
            on_conflict(&names),
            cols = names.join(", "),
        );
        conn.client.batch_execute(&insert).await.map_err(|e| self.write_error(table, &insert, &e))?;
        Ok(())
    }

    /// Column types of a batch written to `group`.
    fn batch_types(group: &GroupSpec, batch: &RecordBatch) -> Vec<LogicalType> {
        batch
            .schema()
            .fields()
            .iter()
            .map(|f| group.column(f.name()).map(|c| c.ty.clone()).unwrap_or(LogicalType::identifier()))
            .collect()
    }

    /// Whether a batch fits one multi-row `INSERT … VALUES` (Postgres binds at
    /// most 65535 parameters per statement); larger ones go through COPY.
    fn fits_values(batch: &RecordBatch) -> bool {
        batch.num_rows() <= COPY_THRESHOLD && batch.num_rows() * batch.num_columns() < 65_000
    }

    async fn delete_on(&self, conn: &mut Conn, group: &GroupSpec, ids: &[String]) -> Result<Vec<String>> {
        let sql = format!(
            "DELETE FROM {} WHERE {id} = ANY($1) RETURNING {id}",
            self.qualified(&group.table),
            id = quote_ident(OBJECT_ID)
        );
        let stmt = conn.prepare(&sql).await.map_err(|e| self.error(&sql, &e))?;
        let rows = conn.client.query(&stmt, &[&ids]).await.map_err(|e| self.error(&sql, &e))?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }

    /// The changes between BEGIN and COMMIT on `conn`.
    async fn apply_on(&self, conn: &mut Conn, writes: &[GroupWrite]) -> Result<Vec<Vec<String>>> {
        conn.client.batch_execute("BEGIN").await.map_err(|e| self.error("BEGIN", &e))?;
        let mut found = Vec::with_capacity(writes.len());
        for write in writes {
            found.push(match write {
                GroupWrite::Upsert(_, batch) if batch.num_rows() == 0 => Vec::new(),
                GroupWrite::Upsert(group, batch) => {
                    let types = Self::batch_types(group, batch);
                    if Self::fits_values(batch) {
                        self.upsert_values(conn, group, batch, &types).await?;
                    } else {
                        self.upsert_copy(conn, group, batch, &types).await?;
                    }
                    Vec::new()
                }
                GroupWrite::Delete(group, ids) => self.delete_on(conn, group, ids).await?,
            });
        }
        conn.client.batch_execute("COMMIT").await.map_err(|e| self.error("COMMIT", &e))?;
        Ok(found)
    }
}

fn on_conflict(names: &[String]) -> String {
    let updates: Vec<String> = names.iter().skip(1).map(|n| format!("{n} = EXCLUDED.{n}")).collect();
    if updates.is_empty() {
        format!("ON CONFLICT ({}) DO NOTHING", quote_ident(OBJECT_ID))
    } else {
        format!("ON CONFLICT ({}) DO UPDATE SET {}", quote_ident(OBJECT_ID), updates.join(", "))
    }
}

/// The column's DDL; the default is sent as a literal cast to the column's type.
fn column_ddl(c: &ColumnSpec) -> String {
    let (storage, pg) = column_type(&c.ty.physical());
    c.ddl(storage, |array| {
        let v = array_value(array.as_ref(), 0, &c.ty);
        let text = match &v {
            _ if pg == Type::JSONB => v.to_string(),
            Json::String(s) => s.clone(),
            Json::Array(items) if storage.ends_with("[]") => {
                // Postgres array literal: {"a","b"} with each item quoted.
                let inner: Vec<String> = items
                    .iter()
                    .map(|i| match i {
                        Json::String(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
                        other => other.to_string(),
                    })
                    .collect();
                format!("{{{}}}", inner.join(","))
            }
            other => other.to_string(),
        };
        let base = storage.split(" COLLATE").next().unwrap_or(storage);
        Some(format!("'{}'::{base}", text.replace('\'', "''")))
    })
}

#[async_trait]
impl Backend for PostgresBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn describe(&self) -> Json {
        json!({
            "name": self.info.name,
            "type": "postgres",
            "connection": self.config.display(),
            "schema": self.config.schema,
            "tags": self.info.tags,
        })
    }

    async fn ensure_group(&self, group: &GroupSpec) -> Result<()> {
        let mut guard = self.pool.get(&self.info.name).await?;
        let conn = guard.as_mut().expect("connected");
        self.ensure_schema(conn).await?;
        let table = self.qualified(&group.table);
        let mut cols = vec![format!("{} text COLLATE \"C\" PRIMARY KEY", quote_ident(OBJECT_ID))];
        cols.extend(group.columns.iter().map(column_ddl));
        let mut statements = vec![format!("CREATE TABLE IF NOT EXISTS {table} ({})", cols.join(", "))];
        // Additive evolution: columns added since the table was made.
        statements
            .extend(group.columns.iter().map(|c| format!("ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {}", column_ddl(c))));
        for ix in &group.indexes {
            let ix_name = crate::backend::index_name(&group.table, ix);
            let cols: Vec<String> = ix.fields.iter().map(|f| quote_ident(f)).collect();
            statements.push(format!(
                "CREATE {}INDEX IF NOT EXISTS {} ON {table} ({})",
                if ix.unique { "UNIQUE " } else { "" },
                quote_ident(&ix_name),
                cols.join(", ")
            ));
        }
        for sql in statements {
            conn.client.batch_execute(&sql).await.map_err(|e| self.write_error(&group.table, &sql, &e))?;
        }
        Ok(())
    }

    async fn upsert(&self, group: &GroupSpec, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if !Self::fits_values(&batch) {
            // COPY stages the rows in a temporary table: BEGIN … COMMIT.
            return self.apply(vec![GroupWrite::Upsert(group.clone(), batch)]).await.map(|_| ());
        }
        let types = Self::batch_types(group, &batch);
        let mut guard = self.pool.get(&self.info.name).await?;
        let conn = guard.as_mut().expect("connected");
        self.upsert_values(conn, group, &batch, &types).await
    }

    async fn delete(&self, group: &GroupSpec, ids: &[String]) -> Result<Vec<String>> {
        let mut guard = self.pool.get(&self.info.name).await?;
        let conn = guard.as_mut().expect("connected");
        self.delete_on(conn, group, ids).await
    }

    /// One Postgres transaction for all the changes.
    async fn apply(&self, writes: Vec<GroupWrite>) -> Result<Vec<Vec<String>>> {
        let mut guard = self.pool.get(&self.info.name).await?;
        // The connection leaves its slot while the transaction is open: if
        // this future is dropped half-way, the connection closes with it and
        // Postgres rolls the transaction back (the slot reconnects on next use).
        let mut conn = guard.take().expect("connected");
        match self.apply_on(&mut conn, &writes).await {
            Ok(found) => {
                *guard = Some(conn);
                Ok(found)
            }
            Err(e) => {
                if conn.client.batch_execute("ROLLBACK").await.is_ok() {
                    *guard = Some(conn);
                }
                Err(e)
            }
        }
    }

    fn transactional(&self) -> bool {
        true
    }

    fn filter_pushdown(&self, group: &GroupSpec, filter: &Expr) -> Pushdown {
        if can_render(filter, group, &Postgres) { Pushdown::Exact } else { Pushdown::Unsupported }
    }

    async fn scan(&self, group: &GroupSpec, request: &ScanRequest) -> Result<Vec<RecordBatch>> {
        let (sql, params, with_ids) = self.build_select(group, request);
        let schema = scan_schema(group, &request.columns);
        let logical: Vec<Option<LogicalType>> =
            schema.fields().iter().map(|f| group.column(f.name()).map(|c| c.ty.clone())).collect();
        let mut guard = self.pool.get(&self.info.name).await?;
        let conn = guard.as_mut().expect("connected");
        let stmt = conn.prepare(&sql).await.map_err(|e| self.error(&sql, &e))?;
        let mut bound: Vec<Param> = params.iter().zip(stmt.params()).map(|(p, t)| bind_param(p, t)).collect();
        if with_ids {
            bound.push(Box::new(request.ids.as_ref().map(|i| i.as_ref().clone()).unwrap_or_default()));
        }
        let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        let stream = conn.client.query_raw(&stmt, refs).await.map_err(|e| self.error(&sql, &e))?;
        pin_mut!(stream);
        // Batches of 8k rows: memory stays bounded by one batch of rows.
        let mut batches = Vec::new();
        let mut rows = Vec::with_capacity(8192);
        loop {
            let next = stream.next().await;
            let done = next.is_none();
            if let Some(row) = next {
                rows.push(row.map_err(|e| self.error(&sql, &e))?);
            }
            if rows.len() == 8192 || (done && (!rows.is_empty() || batches.is_empty())) {
                let batch = rows_to_batch(&rows, schema.clone(), &logical).map_err(|m| ProviderError::Backend {
                    backend: self.info.name.clone(),
                    kind: "postgres".into(),
                    message: format!("{m}; statement: {}", shorten(&sql)),
                })?;
                batches.push(batch);
                rows.clear();
            }
            if done {
                break;
            }
        }
        Ok(batches)
    }

    async fn count(&self, group: &GroupSpec) -> Result<usize> {
        let sql = format!("SELECT count(*) FROM {}", self.qualified(&group.table));
        let mut guard = self.pool.get(&self.info.name).await?;
        let conn = guard.as_mut().expect("connected");
        let row = conn.client.query_one(&sql, &[]).await.map_err(|e| self.error(&sql, &e))?;
        Ok(row.get::<_, i64>(0) as usize)
    }

    async fn alter_group(&self, group: &GroupSpec, change: &ColumnChange) -> Result<()> {
        let table = self.qualified(&group.table);
        // Postgres drops a dropped column's indexes with it; a renamed
        // column's indexes are renamed to the names ensure_group gives them.
        let mut statements = vec![match change {
            ColumnChange::Drop(c) => format!("ALTER TABLE {table} DROP COLUMN {}", quote_ident(c)),
            ColumnChange::Rename { from, to } => {
                format!("ALTER TABLE {table} RENAME COLUMN {} TO {}", quote_ident(from), quote_ident(to))
            }
        }];
        if let ColumnChange::Rename { from, to } = change {
            for ix in group.indexes.iter().filter(|ix| ix.fields.contains(from)) {
                let mut renamed = ix.clone();
                renamed.fields = ix.fields.iter().map(|f| if f == from { to.clone() } else { f.clone() }).collect();
                statements.push(format!(
                    "ALTER INDEX IF EXISTS {} RENAME TO {}",
                    self.qualified(&crate::backend::index_name(&group.table, ix)),
                    quote_ident(&crate::backend::index_name(&group.table, &renamed))
                ));
            }
        }
        let sql = format!("BEGIN; {}; COMMIT", statements.join("; "));
        let mut guard = self.pool.get(&self.info.name).await?;
        let conn = guard.as_mut().expect("connected");
        conn.statements.clear();
        if let Err(e) = conn.client.batch_execute(&sql).await {
            let _ = conn.client.batch_execute("ROLLBACK").await;
            return Err(self.error(&sql, &e));
        }
        Ok(())
    }

    async fn drop_index(&self, group: &GroupSpec, index: &IndexPlan) -> Result<()> {
        let sql = format!("DROP INDEX IF EXISTS {}", self.qualified(&crate::backend::index_name(&group.table, index)));
        let mut guard = self.pool.get(&self.info.name).await?;
        let conn = guard.as_mut().expect("connected");
        conn.statements.clear();
        conn.client.batch_execute(&sql).await.map_err(|e| self.error(&sql, &e))
    }

    async fn drop_group(&self, group: &GroupSpec) -> Result<()> {
        let sql = format!("DROP TABLE IF EXISTS {}", self.qualified(&group.table));
        let mut guard = self.pool.get(&self.info.name).await?;
        let conn = guard.as_mut().expect("connected");
        conn.statements.clear();
        conn.client.batch_execute(&sql).await.map_err(|e| self.error(&sql, &e))
    }

    fn explain_scan(&self, group: &GroupSpec, request: &ScanRequest) -> String {
        let (sql, params, with_ids) = self.build_select(group, request);
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

#[async_trait]
impl SqlEngine for PostgresBackend {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn federation(&self) -> FederationScope {
        if self.config.federates() { FederationScope::All } else { FederationScope::Off }
    }

    async fn execute(&self, sql: &str, schema: SchemaRef) -> Result<RecordBatch> {
        self.query_arrow(sql, schema).await
    }
}
