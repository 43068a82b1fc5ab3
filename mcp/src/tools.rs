//! The tools: one argument struct each (its JSON Schema is what a model sees),
//! one function each over the workspace's Rust API, results as JSON objects
//! in the reference's shapes (docs/reference.md §9).

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use futures::FutureExt;
use heavenbase::catalog::value::batch_rows;
use heavenbase::catalog::{EntityDef, FieldDef, IdSource, LogicalType, Row};
use heavenbase::{Error, FilterOp, Workspace};
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use rmcp::schemars::{self, JsonSchema};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value as Json, json};

use crate::ServerState;
use crate::profile::Profile;

type Result<T> = std::result::Result<T, Error>;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListEntities {
    /// Also list the system entities (sys_catalog, sys_metaschema).
    #[serde(default)]
    include_system: bool,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EntityArg {
    /// The entity (table) name, as list_entities gives it.
    entity: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DefineEntity {
    /// The entity in the JSON entity form: {"entity_id": "note", "desc": "...",
    /// "fields": {"title": {"type": "short-text", "required": true, "desc": "..."},
    /// "body": "long-text", "price": "float", "tags": "array[short-text]",
    /// "emb": "vector[384]"}}. Every entity also has object_id and name.
    entity: Json,
    /// Replace an existing entity of the same name with a different structure
    /// (rows of the surviving columns are kept).
    #[serde(default)]
    replace: bool,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct IdArg {
    /// The row's object_id.
    object_id: String,
    /// The entity; when omitted every entity is searched.
    #[serde(default)]
    entity: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct IdsArg {
    /// The entity the rows belong to.
    entity: String,
    /// object_ids, answered in this order.
    object_ids: Vec<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Upsert {
    /// The entity to write.
    entity: String,
    /// The whole row: fields by name. object_id derives from `name` (or the
    /// primary key) when not given; omitted fields take their default or NULL.
    row: Row,
    /// false: refuse a row whose object_id already exists instead of replacing it.
    #[serde(default = "yes")]
    overwrite: bool,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpsertMany {
    /// The entity to write.
    entity: String,
    /// Whole rows, written as one batch: all of them or none.
    rows: Vec<Row>,
    /// false: refuse rows whose object_id already exists instead of replacing them.
    #[serde(default = "yes")]
    overwrite: bool,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Set {
    /// A partial row with its object_id: the given fields change, the rest stay.
    row: Row,
    /// The entity; when omitted it is found by object_id (an existing row).
    #[serde(default)]
    entity: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SetMany {
    /// The entity the rows belong to.
    entity: String,
    /// Partial rows, each with its object_id, written as one batch.
    rows: Vec<Row>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct QueryArg {
    /// The entity to query.
    entity: String,
    /// The JSON query: {"filter": {"price": {"$lt": 150}}, "select": ["name", "price"],
    /// "order": ["-price"], "limit": 10, "offset": 0, "group_by": [...],
    /// "aggregate": {"n": {"count": {}}}, "count": true,
    /// "near": {"field": "emb", "query": [...], "top_k": 5},
    /// "search": {"fields": ["body"], "query": "words \"a phrase\" +must -not pre*", "top_k": 10},
    /// "hybrid": {"fields": ["body"], "query": "...", "vector_field": "emb", "vector": [...], "top_k": 10}}.
    /// A JSON string is decoded.
    #[serde(default)]
    spec: Option<Json>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SqlArg {
    /// One SQL statement (Postgres dialect); every entity is a table.
    sql: String,
    /// The most rows to return (capped by the server's limit).
    #[serde(default)]
    max_rows: Option<usize>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RepairArg {
    /// Report what would be mended without changing anything.
    #[serde(default)]
    dry_run: bool,
}

fn yes() -> bool {
    true
}

fn describe(tool: &str) -> &'static str {
    match tool {
        "list_entities" => "List the workspace's entities (tables).",
        "describe_entity" => {
            "An entity's fields (types, descriptions, required), where each field is stored, how object_id derives, \
             which filter operators apply to each field, which fields near() and search() read."
        }
        "define_entity" => "Register an entity from its JSON definition; the same definition again is a no-op.",
        "get" => "One row by object_id: {row} (null when absent).",
        "get_many" => "Rows by object_id, in the order asked: {object_ids, rows, n}.",
        "exists" => "Whether a row exists: {object_id, exists}.",
        "count" => "How many rows an entity holds: {entity, n}.",
        "upsert" => "Write a whole row (insert or replace): {object_id, row}.",
        "upsert_many" => "Write whole rows as one batch: {object_ids, n}.",
        "set" => "Change some fields of a row (created when absent and the entity is given): {object_id, row}.",
        "set_many" => "Change some fields of several rows as one batch: {object_ids, rows, n}.",
        "delete" => "Delete a row by object_id: {target, deleted}.",
        "delete_many" => "Delete rows by object_id: {targets, deleted, n, deleted_n}.",
        "query" => {
            "Query an entity in the JSON query language: {columns, rows, n, ids, truncated}. Results hold at most the \
             server's row limit."
        }
        "explain" => "How a JSON query runs: the storage plan, the filters pushed into each backend, the plans.",
        "sql" => {
            "Run one SQL statement (Postgres dialect) over the workspace: {columns, rows, n, truncated}. Read-only \
             unless the server's profile is `full`."
        }
        "audit" => "Compare stored rows with their Catalog cards and field groups with each other.",
        "repair" => "Mend what audit finds (dry_run reports only).",
        _ => "",
    }
}

fn schema_of(tool: &str) -> Arc<JsonObject> {
    use rmcp::handler::server::common::schema_for_type;
    match tool {
        "list_entities" => schema_for_type::<ListEntities>(),
        "describe_entity" | "count" => schema_for_type::<EntityArg>(),
        "define_entity" => schema_for_type::<DefineEntity>(),
        "get" | "exists" | "delete" => schema_for_type::<IdArg>(),
        "get_many" | "delete_many" => schema_for_type::<IdsArg>(),
        "upsert" => schema_for_type::<Upsert>(),
        "upsert_many" => schema_for_type::<UpsertMany>(),
        "set" => schema_for_type::<Set>(),
        "set_many" => schema_for_type::<SetMany>(),
        "query" | "explain" => schema_for_type::<QueryArg>(),
        "sql" => schema_for_type::<SqlArg>(),
        "repair" => schema_for_type::<RepairArg>(),
        _ => schema_for_type::<NoArgs>(),
    }
}

/// Whether a tool only reads (a hint hosts use to ask before a call).
fn reads_only(tool: &str, profile: Profile) -> bool {
    match tool {
        "sql" => !profile.sql_writes(),
        "define_entity" | "upsert" | "upsert_many" | "set" | "set_many" | "delete" | "delete_many" | "repair" => false,
        _ => true,
    }
}

/// The tools `profile` offers, as `tools/list` gives them.
pub(crate) fn definitions(profile: Profile) -> Vec<Tool> {
    profile
        .tool_names()
        .into_iter()
        .map(|name| {
            let mut annotations = ToolAnnotations::new();
            annotations.read_only_hint = Some(reads_only(name, profile));
            annotations.destructive_hint =
                Some(matches!(name, "delete" | "delete_many" | "repair" | "sql" if !reads_only(name, profile)));
            Tool::new(name, describe(name), schema_of(name)).with_annotations(annotations)
        })
        .collect()
}

/// Run one tool. Every failure, a panic included, is a tool result with
/// `isError: true` whose text is the workspace's message.
pub(crate) async fn call(state: &ServerState, name: &str, arguments: Json) -> CallToolResult {
    let outcome = if state.profile.offers(name) {
        std::panic::AssertUnwindSafe(run(state, name, arguments))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(heavenbase::panicked(&format!("MCP tool {name}"), panic)))
    } else {
        Err(Error::argument(state.profile.unknown_tool(name)))
    };
    match outcome {
        Ok(value) => CallToolResult::structured(value),
        Err(e) => {
            let mut result = CallToolResult::error(vec![ContentBlock::text(e.to_string())]);
            result.structured_content = Some(json!({"error": e.to_string(), "sqlstate": e.sqlstate()}));
            result
        }
    }
}

fn args<T: DeserializeOwned>(tool: &str, arguments: Json) -> Result<T> {
    serde_json::from_value(arguments).map_err(|e| Error::argument(format!("{tool}: invalid arguments: {e}")))
}

async fn run(state: &ServerState, name: &str, arguments: Json) -> Result<Json> {
    let ws = &state.ws;
    match name {
        "list_entities" => {
            let a: ListEntities = args(name, arguments)?;
            let mut entities = ws.entities();
            if a.include_system {
                use heavenbase::catalog::system::{SYS_CATALOG, SYS_METASCHEMA};
                entities.extend([SYS_CATALOG.to_string(), SYS_METASCHEMA.to_string()]);
            }
            Ok(json!({"workspace": ws.id(), "entities": entities}))
        }
        "describe_entity" => {
            let a: EntityArg = args(name, arguments)?;
            describe_entity(ws, &a.entity)
        }
        "define_entity" => {
            let a: DefineEntity = args(name, arguments)?;
            let def = EntityDef::from_json(&a.entity).map_err(|e| Error::definition(e.to_string()))?;
            let entity = def.entity_id.clone();
            ws.register(def, a.replace).await?;
            describe_entity(ws, &entity)
        }
        "get" => {
            let a: IdArg = args(name, arguments)?;
            let row = match &a.entity {
                Some(entity) => ws.get(entity, &a.object_id).await?,
                None => ws.get_any(&a.object_id).await?.map(|(_, row)| row),
            };
            Ok(json!({"row": row}))
        }
        "get_many" => {
            let a: IdsArg = args(name, arguments)?;
            let rows = ws.get_many(&a.entity, &a.object_ids).await?;
            Ok(json!({"object_ids": a.object_ids, "n": rows.iter().filter(|r| r.is_some()).count(), "rows": rows}))
        }
        "exists" => {
            let a: IdArg = args(name, arguments)?;
            let exists = match &a.entity {
                Some(entity) => ws.exists(entity, &a.object_id).await?,
                None => ws.get_any(&a.object_id).await?.is_some(),
            };
            Ok(json!({"object_id": a.object_id, "exists": exists}))
        }
        "count" => {
            let a: EntityArg = args(name, arguments)?;
            let n = ws.count(&a.entity).await?;
            Ok(json!({"entity": a.entity, "n": n}))
        }
        "upsert" => {
            let a: Upsert = args(name, arguments)?;
            let id = if a.overwrite {
                ws.upsert(&a.entity, Json::Object(a.row)).await?
            } else {
                ws.insert_many(&a.entity, vec![a.row]).await?.pop().ok_or_else(|| Error::internal("an insert returns its id"))?
            };
            let row = ws.get(&a.entity, &id).await?;
            Ok(json!({"object_id": id, "row": row}))
        }
        "upsert_many" => {
            let a: UpsertMany = args(name, arguments)?;
            let ids =
                if a.overwrite { ws.upsert_many(&a.entity, a.rows).await? } else { ws.insert_many(&a.entity, a.rows).await? };
            Ok(json!({"n": ids.len(), "object_ids": ids}))
        }
        "set" => {
            let a: Set = args(name, arguments)?;
            let entity = match a.entity {
                Some(entity) => entity,
                None => entity_of_patch(ws, &a.row).await?,
            };
            let id = ws.set(&entity, Json::Object(a.row)).await?;
            let row = ws.get(&entity, &id).await?;
            Ok(json!({"object_id": id, "row": row}))
        }
        "set_many" => {
            let a: SetMany = args(name, arguments)?;
            let ids = ws.set_many(&a.entity, a.rows).await?;
            let rows = ws.get_many(&a.entity, &ids).await?;
            Ok(json!({"n": ids.len(), "object_ids": ids, "rows": rows}))
        }
        "delete" => {
            let a: IdArg = args(name, arguments)?;
            let deleted = match &a.entity {
                Some(entity) => ws.delete(entity, &a.object_id).await?,
                None => match ws.get_any(&a.object_id).await? {
                    Some((entity, _)) => ws.delete(&entity, &a.object_id).await?,
                    None => false,
                },
            };
            Ok(json!({"target": a.object_id, "deleted": deleted}))
        }
        "delete_many" => {
            let a: IdsArg = args(name, arguments)?;
            let deleted = ws.delete_many(&a.entity, &a.object_ids).await?;
            let deleted_n = deleted.iter().filter(|d| **d).count();
            Ok(json!({"targets": a.object_ids, "n": deleted.len(), "deleted": deleted, "deleted_n": deleted_n}))
        }
        "query" => {
            let a: QueryArg = args(name, arguments)?;
            query(state, &a.entity, &spec_of(a.spec)?).await
        }
        "explain" => {
            let a: QueryArg = args(name, arguments)?;
            ws.query_json(&a.entity, &spec_of(a.spec)?)?.explain().await
        }
        "sql" => {
            let a: SqlArg = args(name, arguments)?;
            sql(state, &a.sql, a.max_rows).await
        }
        "audit" => {
            let _: NoArgs = args(name, arguments)?;
            Ok(ws.audit().await?.to_json())
        }
        "repair" => {
            let a: RepairArg = args(name, arguments)?;
            ws.repair(a.dry_run).await
        }
        other => Err(Error::argument(format!("unknown tool '{other}'"))),
    }
}

/// The entity of an existing row a `set` patch names.
async fn entity_of_patch(ws: &Workspace, patch: &Row) -> Result<String> {
    let id = patch
        .get("object_id")
        .and_then(Json::as_str)
        .ok_or_else(|| Error::argument("set needs object_id in the row (or the entity, to create it)"))?;
    match ws.get_any(id).await? {
        Some((entity, _)) => Ok(entity),
        None => Err(Error::argument(format!("set with a row for a new object_id '{id}' needs the entity"))),
    }
}

/// A query spec given as an object, as a JSON string, or not at all.
fn spec_of(spec: Option<Json>) -> Result<Json> {
    match spec {
        None | Some(Json::Null) => Ok(json!({})),
        Some(Json::String(text)) => {
            serde_json::from_str(&text).map_err(|e| Error::argument(format!("spec is not JSON ({e}): {text}")))
        }
        Some(other) => Ok(other),
    }
}

/// `{schema, derives, storage_plan, query_capabilities, filter_ops}` of an entity.
fn describe_entity(ws: &Workspace, entity: &str) -> Result<Json> {
    let def = ws.entity(entity)?;
    let plan = ws.placement(entity)?;
    let derives = match &def.id_source {
        IdSource::Key(fields) => json!({"object_id": {"from": "primary key", "fields": fields}}),
        IdSource::NameOrGenerated => json!({"object_id": {"from": "name", "otherwise": "generated"}}),
        _ => json!({"object_id": {"from": "name"}}),
    };
    let near: Vec<&str> =
        def.fields.iter().filter(|f| matches!(f.ty, LogicalType::Vector { .. })).map(|f| f.name.as_str()).collect();
    // The fields search() reads when it names none.
    let search = ws.search_fields(entity)?;
    let filter_ops: serde_json::Map<String, Json> = def.fields.iter().map(|f| (f.name.clone(), json!(filter_ops(f)))).collect();
    let fields: Vec<Json> = def
        .fields
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "type": f.ty.type_id(),
                "sql_type": f.ty.pg_type(),
                "required": f.required,
                "desc": f.desc,
                "backend": plan.home_of(&f.name),
            })
        })
        .collect();
    Ok(json!({
        "entity": def.entity_id,
        "schema": def.to_json(),
        "fields": fields,
        "derives": derives,
        "storage_plan": plan.to_json(),
        "query_capabilities": {"filter": true, "order": true, "aggregate": true, "sql": true, "near": near, "search": search},
        "filter_ops": filter_ops,
    }))
}

/// The filter operators that apply to a field of this type.
fn filter_ops(field: &FieldDef) -> Vec<&'static str> {
    use FilterOp::*;
    use heavenbase::catalog::PhysicalType;
    let layout = field.ty.physical();
    let applies = |op: &FilterOp| match &layout {
        PhysicalType::Text => !matches!(op, ArrayContains | ContainedIn),
        PhysicalType::Int | PhysicalType::Float | PhysicalType::Timestamp | PhysicalType::Date => {
            matches!(op, Eq | Ne | Lt | Lte | Gt | Gte | In)
        }
        PhysicalType::Bool => matches!(op, Eq | Ne | In),
        PhysicalType::List(_) => matches!(op, ArrayContains | ContainedIn),
        PhysicalType::Vector { .. } | PhysicalType::Bytes => false,
        _ => matches!(op, Eq | Ne),
    };
    FilterOp::ALL.iter().filter(|op| applies(op)).map(|op| op.as_str()).collect()
}

async fn query(state: &ServerState, entity: &str, spec: &Json) -> Result<Json> {
    let ws = &state.ws;
    let q = ws.query_json(entity, spec)?;
    // The spec's own limit is the answer's size when it is under the cap;
    // otherwise one row past the cap tells whether rows were left out.
    let cap = state.max_rows;
    let q = match q.spec().limit {
        Some(limit) if limit <= cap => q,
        _ => q.limit(cap + 1),
    };
    let def = ws.entity(entity)?;
    let frame = q.dataframe().await?;
    let columns: Vec<String> = frame.schema().fields().iter().map(|f| f.name().clone()).collect();
    let batches = frame.collect().await?;
    let mut rows = entity_rows(&batches, &def);
    let truncated = rows.len() > cap;
    rows.truncate(cap);
    let ids: Vec<Json> = rows.iter().filter_map(|r| r.get("object_id").cloned()).collect();
    let mut out = json!({"columns": columns, "rows": rows, "n": rows.len(), "ids": ids, "truncated": truncated});
    if truncated {
        out["note"] =
            json!(format!("only the first {cap} rows are shown; add a filter, a smaller limit or an offset to see the others"));
    }
    Ok(out)
}

async fn sql(state: &ServerState, text: &str, max_rows: Option<usize>) -> Result<Json> {
    if !state.profile.sql_writes() {
        refuse_writes(text, state.profile)?;
    }
    let cap = max_rows.map_or(state.max_rows, |m| m.clamp(1, state.max_rows));
    let batches = state.ws.sql_first(text, cap + 1).await?;
    let columns: Vec<String> =
        batches.first().map(|b| b.schema().fields().iter().map(|f| f.name().clone()).collect()).unwrap_or_default();
    let mut rows = json_rows(&batches)?;
    let truncated = rows.len() > cap;
    rows.truncate(cap);
    let mut out = json!({"columns": columns, "rows": rows, "n": rows.len(), "truncated": truncated});
    if truncated {
        out["note"] = json!(format!("only the first {cap} rows are shown; add a LIMIT, a filter or an OFFSET"));
    }
    Ok(out)
}

/// Refuse a statement that changes data or schema, before it is planned.
fn refuse_writes(text: &str, profile: Profile) -> Result<()> {
    heavenbase::check_nesting(text)?;
    let statements = DFParser::parse_sql_with_dialect(text, &PostgreSqlDialect {})
        .map_err(|e| Error::syntax(format!("SQL syntax error: {e}")))?;
    for statement in &statements {
        let writes = match statement {
            DfStatement::Statement(s) => Workspace::is_write(s),
            DfStatement::Explain(_) => false,
            _ => true,
        };
        if writes {
            let verb = statement.to_string().split_whitespace().next().unwrap_or_default().to_uppercase();
            return Err(Error::new(
                heavenbase::ErrorKind::ReadOnly,
                format!(
                    "the sql tool is read-only under the '{}' profile and cannot run {verb}; use the write tools \
                     (upsert, set, delete) or a server started with --profile full",
                    profile.name()
                ),
            ));
        }
    }
    Ok(())
}

/// Rows of an entity query as JSON objects, each value as `get` renders it.
fn entity_rows(batches: &[RecordBatch], def: &EntityDef) -> Vec<Json> {
    let mut rows = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        let types: Vec<LogicalType> = schema
            .fields()
            .iter()
            .map(|f| def.get(f.name()).map(|d| d.ty.clone()).unwrap_or_else(LogicalType::short_text))
            .collect();
        rows.extend(batch_rows(batch, &types).into_iter().map(Json::Object));
    }
    rows
}

/// Rows of any SQL result as JSON objects, by Arrow's JSON writer (every
/// Arrow type a query can produce: decimals, small ints, intervals, lists).
fn json_rows(batches: &[RecordBatch]) -> Result<Vec<Json>> {
    use datafusion::arrow::json::writer::{JsonArray, WriterBuilder};
    let mut writer = WriterBuilder::new().with_explicit_nulls(true).build::<_, JsonArray>(Vec::new());
    let refs: Vec<&RecordBatch> = batches.iter().filter(|b| b.num_columns() > 0).collect();
    writer.write_batches(&refs).map_err(|e| Error::internal(format!("rendering the result as JSON: {e}")))?;
    writer.finish().map_err(|e| Error::internal(format!("rendering the result as JSON: {e}")))?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&bytes).map_err(|e| Error::internal(format!("rendering the result as JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use heavenbase::{Construction, Home};
    use serde_json::json;

    use crate::{Profile, WorkspaceServer};

    async fn server(profile: Profile, max_rows: usize) -> (tempfile::TempDir, WorkspaceServer) {
        let dir = tempfile::tempdir().unwrap();
        let ws = heavenbase::Workspace::detached_in(&Home::new(dir.path()), "t", Construction::preset("debug")).await.unwrap();
        ws.sql("CREATE TABLE a (n integer)").await.unwrap();
        (dir, WorkspaceServer::with_max_rows(ws, profile, max_rows))
    }

    fn ok(result: &rmcp::model::CallToolResult) -> serde_json::Value {
        assert_eq!(result.is_error, Some(false), "{result:?}");
        result.structured_content.clone().unwrap()
    }

    /// Under `full` the sql tool writes, and the row cap applies to what a
    /// query returns, never to what an INSERT … SELECT writes.
    #[tokio::test]
    async fn full_profile_sql_writes_all_rows_and_caps_results() {
        let (_dir, s) = server(Profile::Full, 3).await;
        let r = s.call("sql", json!({"sql": "INSERT INTO a (n) SELECT * FROM generate_series(1, 10)"})).await;
        ok(&r);
        let r = ok(&s.call("sql", json!({"sql": "CREATE TABLE b (n integer)"})).await);
        assert_eq!(r["n"], 0);
        ok(&s.call("sql", json!({"sql": "INSERT INTO b (n) SELECT n FROM a"})).await);
        let r = ok(&s.call("sql", json!({"sql": "SELECT count(*) AS c FROM b"})).await);
        assert_eq!(r["rows"], json!([{"c": 10}]), "all ten rows written");
        let r = ok(&s.call("sql", json!({"sql": "SELECT n FROM b ORDER BY n DESC"})).await);
        assert_eq!(r["rows"], json!([{"n": 10}, {"n": 9}, {"n": 8}]));
        assert_eq!(r["truncated"], true);
        let r = ok(&s.call("query", json!({"entity": "b", "spec": {"order": ["n"], "select": ["n"]}})).await);
        assert_eq!(r["n"], 3);
        assert_eq!(r["truncated"], true);
        let r = ok(&s.call("query", json!({"entity": "b", "spec": {"order": ["n"], "limit": 2}})).await);
        assert_eq!((r["n"].clone(), r["truncated"].clone()), (json!(2), json!(false)), "a limit under the cap is no truncation");
        let r = ok(&s.call("delete_many", json!({"entity": "b", "object_ids": ["nope"]})).await);
        assert_eq!(r["deleted_n"], 0);
        let r = ok(&s.call("audit", json!({})).await);
        assert_eq!(r["ok"], true);
    }

    /// A tool outside the profile, bad arguments and engine errors are all
    /// results with isError and a message; nothing is written.
    #[tokio::test]
    async fn errors_are_results_that_name_what_is_wrong() {
        let (_dir, s) = server(Profile::ReadOnly, 10).await;
        let r = s.call("upsert", json!({"entity": "a", "row": {"n": 1}})).await;
        assert_eq!(r.is_error, Some(true));
        let text = r.content[0].as_text().unwrap().text.clone();
        assert!(text.contains("unknown tool 'upsert'") && text.contains("readonly"), "{text}");
        let r = s.call("sql", json!({"sql": "DROP TABLE a"})).await;
        assert_eq!(r.is_error, Some(true));
        assert_eq!(r.structured_content.as_ref().unwrap()["sqlstate"], "42501");
        let r = s.call("sql", json!({"sql": "SELEC 1"})).await;
        assert_eq!(r.structured_content.as_ref().unwrap()["sqlstate"], "42601", "{r:?}");
        let r = s.call("count", json!({"entity": "a", "extra": 1})).await;
        assert!(r.content[0].as_text().unwrap().text.contains("unknown field `extra`"), "{r:?}");
        let r = s.call("query", json!({"entity": "a", "spec": "{not json"})).await;
        assert!(r.content[0].as_text().unwrap().text.contains("spec is not JSON"), "{r:?}");
        let r = ok(&s.call("count", json!({"entity": "a"})).await);
        assert_eq!(r["n"], 0);
    }
}
