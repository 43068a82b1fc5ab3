//! HeavenBase over Arrow Flight SQL: programs that want Arrow get the plan's
//! record batches as they come, with no row encoding in between.
//!
//! One [`FlightSqlService`] over one [`Workspace`]: statements and prepared
//! statements (with `$n` parameters bound in the plan, never spliced into
//! text), the catalog calls ADBC and JDBC drivers make (GetCatalogs,
//! GetDbSchemas, GetTables with column schemas, GetTableTypes, GetSqlInfo),
//! writes through the workspace write path (`ws.sql` for statements,
//! `write_batch` for bulk ingest). Users and TLS follow the wire's rules:
//! with users configured, a handshake with Basic credentials earns a bearer
//! token every later call must carry; read-only users cannot write; with TLS
//! configured the port speaks only TLS.

mod auth;
mod catalog;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc,
    Ticket,
};
use datafusion::arrow::array::{Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::LogicalPlan;
use futures::{Stream, StreamExt, TryStreamExt};
use heavenbase::{Error, ErrorKind, Workspace, WriteMode};
use parking_lot::Mutex;
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

pub use auth::FlightUser;

/// The conventional Flight SQL port.
pub const DEFAULT_PORT: u16 = 50051;

#[derive(Clone, Debug, Default)]
pub struct FlightOptions {
    pub host: String,
    pub port: u16,
    /// Password users (the wire's `--auth` file); none: no authentication,
    /// as the wire trusts loopback when it has no users.
    pub users: Vec<FlightUser>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
}

/// Bind the Flight SQL port, so a caller can report a taken port before it
/// starts anything else.
pub async fn bind_flight(opts: &FlightOptions) -> Result<tokio::net::TcpListener, String> {
    let host = if opts.host.is_empty() { "127.0.0.1" } else { opts.host.as_str() };
    tokio::net::TcpListener::bind((host, opts.port))
        .await
        .map_err(|e| format!("Flight SQL: cannot bind {host}:{}: {e}", opts.port))
}

/// Serve Flight SQL for `ws` on a bound socket until `shutdown` completes.
///
/// The TLS files are read and checked before this returns: an error here
/// means nothing was served (never plaintext instead); the future serves.
pub fn serve_flight_on(
    listener: tokio::net::TcpListener,
    ws: Workspace,
    opts: &FlightOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<impl Future<Output = Result<(), String>> + Send + 'static, String> {
    let service = FlightServiceServer::new(HeavenBaseFlight::new(ws, opts)).max_decoding_message_size(64 << 20);
    // HTTP/2 windows sized by measured bandwidth and delay (BDP), not h2's
    // 64 KiB default: bulk ingest sends megabytes per stream.
    let mut server = tonic::transport::Server::builder().http2_adaptive_window(Some(true));
    if let (Some(cert), Some(key)) = (&opts.tls_cert, &opts.tls_key) {
        let cert = std::fs::read(cert).map_err(|e| format!("Flight SQL: TLS certificate {cert}: {e}"))?;
        let key = std::fs::read(key).map_err(|e| format!("Flight SQL: TLS key {key}: {e}"))?;
        let tls = tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(cert, key));
        server = server.tls_config(tls).map_err(|e| format!("Flight SQL: TLS: {e}"))?;
    } else if opts.tls_cert.is_some() || opts.tls_key.is_some() {
        return Err("Flight SQL: TLS needs both a certificate and a key".into());
    }
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let router = server.add_service(service);
    Ok(async move { router.serve_with_incoming_shutdown(incoming, shutdown).await.map_err(|e| format!("Flight SQL: {e}")) })
}

/// A statement prepared by a client: its plan (reads) or its text (writes),
/// and the parameters the client bound last.
struct Prepared {
    sql: String,
    plan: Option<LogicalPlan>,
    params: Option<ParamValues>,
    read_only_user: bool,
}

pub struct HeavenBaseFlight {
    ws: Workspace,
    auth: auth::Auth,
    prepared: Mutex<HashMap<Vec<u8>, Prepared>>,
}

type DataStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

impl HeavenBaseFlight {
    pub fn new(ws: Workspace, opts: &FlightOptions) -> Self {
        HeavenBaseFlight { ws, auth: auth::Auth::new(&opts.users), prepared: Mutex::new(HashMap::new()) }
    }

    /// Plan `sql` if it only reads; None when it writes (run with `ws.sql`).
    async fn plan(&self, sql: &str) -> Result<Option<LogicalPlan>, Status> {
        self.ws.plan_read(sql).await.map_err(status)
    }

    /// Run a write statement through the workspace; the rows it changed.
    async fn write(&self, sql: &str, read_only: bool) -> Result<i64, Status> {
        if read_only {
            return Err(Status::permission_denied(format!(
                "permission denied: this user is read-only and cannot run {}",
                sql.split_whitespace().next().unwrap_or_default().to_uppercase()
            )));
        }
        let batches = self.ws.sql(sql).await.map_err(status)?;
        Ok(changed_rows(&batches))
    }

    /// The FlightInfo of a catalog command: its result schema and one ticket
    /// that is the command itself (answered by the matching `do_get_*`).
    fn command_info(
        &self,
        schema: &Schema,
        command: Any,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.auth.user(request.metadata())?;
        Ok(Response::new(flight_info(schema, command.encode_to_vec(), request.into_inner())?))
    }

    /// Stream a read plan's batches as Flight data.
    async fn stream(&self, plan: LogicalPlan) -> Result<Response<DataStream>, Status> {
        let frame = self.ws.session().execute_logical_plan(plan).await.map_err(|e| status(e.into()))?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.execute_stream().await.map_err(|e| status(e.into()))?;
        let batches = batches.map_err(|e| FlightError::from_external_error(Box::new(e)));
        let data = FlightDataEncoderBuilder::new().with_schema(schema).build(batches).map_err(Status::from);
        Ok(Response::new(Box::pin(data)))
    }
}

/// The count a write answers: the `count` column of `ws.sql`'s result, 0 for
/// schema statements.
fn changed_rows(batches: &[RecordBatch]) -> i64 {
    batches
        .iter()
        .filter_map(|b| b.column_by_name("count"))
        .filter_map(|c| datafusion::arrow::compute::cast(c, &DataType::Int64).ok())
        .filter_map(|c| c.as_any().downcast_ref::<Int64Array>().map(|a| a.iter().flatten().sum::<i64>()))
        .sum()
}

/// A ticket for a write's result: its count, after a prefix no SQL text has.
fn count_ticket(n: i64) -> TicketStatementQuery {
    TicketStatementQuery { statement_handle: format!("\0count:{n}").into_bytes().into() }
}

fn counted(handle: &[u8]) -> Option<i64> {
    std::str::from_utf8(handle.strip_prefix(b"\0count:")?).ok()?.parse().ok()
}

fn count_result(n: i64) -> Result<Response<DataStream>, Status> {
    let batch = RecordBatch::try_new(Arc::new(count_schema()), vec![Arc::new(Int64Array::from(vec![n]))]);
    one_batch(Arc::new(count_schema()), batch)
}

/// The schema a write's FlightInfo announces: the changed-row count.
fn count_schema() -> Schema {
    Schema::new(vec![Field::new("count", DataType::Int64, false)])
}

/// A workspace error as a gRPC status, by kind (the wire maps the same kinds
/// to SQLSTATEs); the SQLSTATE rides along in the message.
fn status(e: Error) -> Status {
    let message = format!("{} (SQLSTATE {})", e, e.sqlstate());
    match e.kind() {
        ErrorKind::ReadOnly => Status::permission_denied(message),
        ErrorKind::UnknownEntity | ErrorKind::UnknownField => Status::not_found(message),
        ErrorKind::NotSupported => Status::unimplemented(message),
        ErrorKind::Internal => Status::internal(message),
        k if k.is_environment() => Status::unavailable(message),
        _ => Status::invalid_argument(message),
    }
}

fn flight_info(schema: &Schema, ticket: Vec<u8>, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("encoding the result schema: {e}")))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor))
}

fn schema_of(plan: &LogicalPlan) -> Schema {
    plan.schema().as_arrow().clone()
}

fn ipc_schema(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: datafusion::arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(bytes)
}

/// The `$1…$n` parameters of a plan as a schema (types DataFusion inferred;
/// text where it could not).
fn parameter_schema(plan: &LogicalPlan) -> Result<Schema, Status> {
    let types = plan.get_parameter_types().map_err(|e| status(e.into()))?;
    let mut named: Vec<(usize, String, DataType)> = types
        .into_iter()
        .map(|(name, ty)| {
            let n = name.trim_start_matches('$').parse::<usize>().unwrap_or(usize::MAX);
            (n, name, ty.unwrap_or(DataType::Utf8))
        })
        .collect();
    named.sort();
    Ok(Schema::new(named.into_iter().map(|(_, name, ty)| Field::new(name, ty, true)).collect::<Vec<_>>()))
}

/// Random bytes for handles and tokens.
fn random_hex(n: usize) -> String {
    use std::io::Read;
    let mut bytes = vec![0u8; n];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).is_err() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        bytes = heavenbase::catalog::generate_object_id().into_bytes();
        bytes.extend(now.as_nanos().to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tonic::async_trait]
impl FlightSqlService for HeavenBaseFlight {
    type FlightService = HeavenBaseFlight;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        let token = self.auth.handshake(request.metadata())?;
        let reply = HandshakeResponse { protocol_version: 0, payload: token.clone().into() };
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        let bearer = format!("Bearer {token}").parse().map_err(|_| Status::internal("a token that is not a header value"))?;
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let user = self.auth.user(request.metadata())?;
        let (schema, ticket) = match self.plan(&query.query).await? {
            Some(plan) => (schema_of(&plan), TicketStatementQuery { statement_handle: query.query.into_bytes().into() }),
            // A write runs when the client asks to execute it (here), exactly
            // once, whether or not the client then fetches its count.
            None => (count_schema(), count_ticket(self.write(&query.query, user.read_only).await?)),
        };
        let info = flight_info(&schema, ticket.as_any().encode_to_vec(), request.into_inner())?;
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.auth.user(request.metadata())?;
        if let Some(n) = counted(&ticket.statement_handle) {
            return count_result(n);
        }
        let sql = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("the statement ticket is not UTF-8 text"))?;
        match self.plan(&sql).await? {
            Some(plan) => self.stream(plan).await,
            None => Err(Status::invalid_argument("a ticket names a query; writes run at GetFlightInfo")),
        }
    }

    async fn do_put_statement_update(
        &self,
        query: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let user = self.auth.user(request.metadata())?;
        self.write(&query.query, user.read_only).await
    }

    /// Bulk ingest (ADBC's `adbc_ingest`, DBAPI `executemany` of an INSERT):
    /// every batch through the workspace write path, as `upsert_many` would.
    async fn do_put_statement_ingest(
        &self,
        command: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let user = self.auth.user(request.metadata())?;
        if user.read_only {
            return Err(Status::permission_denied(format!(
                "permission denied: this user is read-only and cannot write {}",
                command.table
            )));
        }
        let mut batches =
            arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(request.into_inner().map_err(FlightError::from));
        let mut n = 0i64;
        while let Some(batch) = batches.next().await {
            let batch = batch.map_err(|e| Status::invalid_argument(format!("reading the ingested batches: {e}")))?;
            n += self.ws.write_batch(&command.table, batch, WriteMode::Upsert).await.map_err(status)?.len() as i64;
        }
        Ok(n)
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let user = self.auth.user(request.metadata())?;
        let plan = self.plan(&query.query).await?;
        let (dataset, parameters) = match &plan {
            Some(plan) => (schema_of(plan), parameter_schema(plan)?),
            None => (count_schema(), Schema::empty()),
        };
        let handle = random_hex(16).into_bytes();
        self.prepared
            .lock()
            .insert(handle.clone(), Prepared { sql: query.query, plan, params: None, read_only_user: user.read_only });
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            dataset_schema: ipc_schema(&dataset)?,
            parameter_schema: ipc_schema(&parameters)?,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        self.auth.user(request.metadata())?;
        self.prepared.lock().remove(query.prepared_statement_handle.as_ref());
        Ok(())
    }

    /// Parameters for a prepared query: the first row of the batch the client
    /// sends, `$1` from its first column. Bound in the plan at execution.
    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.auth.user(request.metadata())?;
        let mut batches =
            arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(request.into_inner().map_err(FlightError::from));
        let mut values = Vec::new();
        if let Some(batch) = batches.next().await {
            let batch = batch.map_err(|e| Status::invalid_argument(format!("reading the parameters: {e}")))?;
            if batch.num_rows() > 1 {
                return Err(Status::invalid_argument(format!(
                    "a prepared query takes one row of parameters, got {}",
                    batch.num_rows()
                )));
            }
            for column in batch.columns() {
                let value = if batch.num_rows() == 0 {
                    ScalarValue::try_from(column.data_type())
                } else {
                    ScalarValue::try_from_array(column.as_ref(), 0)
                };
                values.push(value.map_err(|e| Status::invalid_argument(format!("a parameter: {e}")))?);
            }
        }
        let handle = query.prepared_statement_handle.to_vec();
        match self.prepared.lock().get_mut(&handle) {
            Some(p) => p.params = Some(ParamValues::List(values.into_iter().map(Into::into).collect())),
            None => return Err(Status::not_found("no prepared statement with this handle (closed?)")),
        }
        Ok(DoPutPreparedStatementResult { prepared_statement_handle: Some(handle.into()) })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        command: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.auth.user(request.metadata())?;
        let (schema, write) = match self.prepared.lock().get(command.prepared_statement_handle.as_ref()) {
            Some(Prepared { plan: Some(plan), .. }) => (schema_of(plan), None),
            Some(p) => (count_schema(), Some((p.sql.clone(), p.read_only_user))),
            None => return Err(Status::not_found("no prepared statement with this handle (closed?)")),
        };
        let ticket = match write {
            // As for statements: a prepared write runs when it is executed.
            Some((sql, read_only)) => count_ticket(self.write(&sql, read_only).await?).as_any().encode_to_vec(),
            None => command.as_any().encode_to_vec(),
        };
        let info = flight_info(&schema, ticket, request.into_inner())?;
        Ok(Response::new(info))
    }

    async fn do_get_prepared_statement(
        &self,
        command: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.auth.user(request.metadata())?;
        let (plan, params) = {
            let prepared = self.prepared.lock();
            let p = prepared
                .get(command.prepared_statement_handle.as_ref())
                .ok_or_else(|| Status::not_found("no prepared statement with this handle (closed?)"))?;
            (p.plan.clone(), p.params.clone())
        };
        let plan = plan.ok_or_else(|| Status::invalid_argument("a prepared write runs at GetFlightInfo"))?;
        let plan = match params {
            Some(params) => plan.with_param_values(params).map_err(|e| status(e.into()))?,
            None => plan,
        };
        self.stream(plan).await
    }

    async fn do_put_prepared_statement_update(
        &self,
        command: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let user = self.auth.user(request.metadata())?;
        let sql = self
            .prepared
            .lock()
            .get(command.prepared_statement_handle.as_ref())
            .map(|p| p.sql.clone())
            .ok_or_else(|| Status::not_found("no prepared statement with this handle (closed?)"))?;
        let mut stream = request.into_inner();
        if let Some(Ok(data)) = stream.peek().await {
            if !data.data_body.is_empty() {
                return Err(Status::unimplemented(
                    "parameters of prepared writes are not supported over Flight SQL yet: send the statement with \
                     its values, or ingest the rows (adbc_ingest)",
                ));
            }
        }
        self.write(&sql, user.read_only).await
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.command_info(&schema, query.as_any(), request)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.auth.user(request.metadata())?;
        let mut builder = query.into_builder();
        builder.append(catalog::catalog_name(&self.ws));
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.command_info(&schema, query.as_any(), request)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.auth.user(request.metadata())?;
        let mut builder = query.into_builder();
        builder.append(catalog::catalog_name(&self.ws), catalog::SCHEMA);
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.command_info(&schema, query.as_any(), request)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.auth.user(request.metadata())?;
        let mut builder = query.into_builder();
        for (table, kind, schema) in catalog::tables(&self.ws).await.map_err(status)? {
            builder
                .append(catalog::catalog_name(&self.ws), catalog::SCHEMA, table, kind, &schema)
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = catalog::table_types().schema();
        self.command_info(&schema, query.as_any(), request)
    }

    async fn do_get_table_types(
        &self,
        _query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.auth.user(request.metadata())?;
        let batch = catalog::table_types();
        one_batch(batch.schema(), Ok::<_, Status>(batch))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(catalog::sql_info()).schema();
        self.command_info(&schema, query.as_any(), request)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.auth.user(request.metadata())?;
        let builder = query.into_builder(catalog::sql_info());
        one_batch(builder.schema(), builder.build())
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.auth.user(request.metadata())?;
        Err(Status::unimplemented(format!("this server does not answer {}", message.type_url)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

fn one_batch<E: std::fmt::Display>(schema: SchemaRef, batch: Result<RecordBatch, E>) -> Result<Response<DataStream>, Status> {
    let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
    let data =
        FlightDataEncoderBuilder::new().with_schema(schema).build(futures::stream::iter([Ok(batch)])).map_err(Status::from);
    Ok(Response::new(Box::pin(data)))
}
