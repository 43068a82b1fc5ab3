//! Nearest-neighbour search over an entity's vector field, the same from the
//! Rust API, the query builder, the JSON language and SQL:
//!
//! ```sql
//! SELECT p.name, n.score
//! FROM near('product', 'embedding', '[0.1, 0.2, 0.3]', 10) AS n
//! JOIN product p USING (object_id)
//! ORDER BY n.score DESC;
//! ```
//!
//! `near(entity, field, vector [, top_k [, metric [, where [, nprobes]]]])`
//! returns `(object_id, score)`; `where` is a SQL predicate over the entity that
//! picks the candidates before the search (a pre-filter: top_k matching rows,
//! never fewer because of the filter; '' for none); `nprobes` is how many index
//! partitions an ANN search probes (recall against speed; exact searches
//! ignore it). The search runs where the field is stored: Lance's ANN index,
//! or an exact scan.

use std::sync::{Arc, Weak};

use datafusion::arrow::array::{Float32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl};
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::scalar::ScalarValue;
use heavenbase_catalog::{LogicalType, OBJECT_ID};
use heavenbase_providers::vector::{DEFAULT_TOP_K, MAX_NPROBES, MAX_TOP_K, Metric, NearRequest};
use serde_json::Value as Json;

use crate::workspace::{Inner, Workspace};
use crate::{Error, Result};

/// A near search: which field, which vector, how many, by which metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Near {
    pub field: String,
    pub vector: Vec<f32>,
    pub top_k: usize,
    pub metric: Metric,
    /// Index partitions an approximate search probes (None: the backend's default).
    pub nprobes: Option<usize>,
}

impl Near {
    pub fn new(field: &str, vector: Vec<f32>, top_k: Option<usize>, metric: Option<&str>) -> Result<Near> {
        let top_k = top_k.unwrap_or(DEFAULT_TOP_K);
        if top_k == 0 || top_k > MAX_TOP_K {
            return Err(Error::argument(format!("near top_k must be between 1 and {MAX_TOP_K}, got {top_k}")));
        }
        let metric = Metric::parse(metric.unwrap_or("cosine"))?;
        Ok(Near { field: field.to_string(), vector, top_k, metric, nprobes: None })
    }

    /// Probe `nprobes` partitions of an ANN index (1 to 4096; an index has at
    /// most 256, and asking for all of them searches every candidate the index
    /// holds): the knob between recall and speed. Exact searches ignore it.
    pub fn nprobes(mut self, nprobes: usize) -> Result<Near> {
        if nprobes == 0 || nprobes > MAX_NPROBES {
            return Err(Error::argument(format!("near nprobes must be between 1 and {MAX_NPROBES}, got {nprobes}")));
        }
        self.nprobes = Some(nprobes);
        Ok(self)
    }

    /// The JSON form of docs/reference.md §7.3: `{field, query, top_k, metric}`,
    /// and `nprobes`.
    pub fn from_json(v: &Json) -> Result<Near> {
        let o = v.as_object().ok_or_else(|| Error::argument(format!("near is {{field, query, top_k, metric}}, got {v}")))?;
        for k in o.keys() {
            if !["field", "query", "vector", "value", "top_k", "metric", "nprobes"].contains(&k.as_str()) {
                return Err(Error::argument(format!(
                    "Unknown near key '{k}'.{} near takes field, query, top_k, metric, nprobes",
                    crate::error::suggest(k, ["field", "query", "top_k", "metric", "nprobes"].into_iter())
                )));
            }
        }
        let field = o.get("field").and_then(Json::as_str).ok_or_else(|| Error::argument("near needs a 'field'"))?;
        let query = o.get("query").or_else(|| o.get("vector")).or_else(|| o.get("value"));
        let vector = parse_vector(query.ok_or_else(|| Error::argument("near needs a 'query' vector"))?)?;
        let top_k = match o.get("top_k") {
            None | Some(Json::Null) => None,
            Some(k) => {
                Some(k.as_u64().ok_or_else(|| Error::argument(format!("near top_k must be a positive integer, got {k}")))?
                    as usize)
            }
        };
        let near = Near::new(field, vector, top_k, o.get("metric").and_then(Json::as_str))?;
        match o.get("nprobes") {
            None | Some(Json::Null) => Ok(near),
            Some(n) => near
                .nprobes(n.as_u64().ok_or_else(|| Error::argument(format!("near nprobes must be a positive integer, got {n}")))?
                    as usize),
        }
    }

    pub fn to_json(&self) -> Json {
        let mut json =
            serde_json::json!({"field": self.field, "value": self.vector, "top_k": self.top_k, "metric": self.metric.name()});
        if let Some(n) = self.nprobes {
            json["nprobes"] = n.into();
        }
        json
    }
}

/// A vector from JSON: a list of numbers, or a string holding one.
pub fn parse_vector(v: &Json) -> Result<Vec<f32>> {
    let parsed;
    let v = match v {
        Json::String(s) => {
            parsed = serde_json::from_str::<Json>(s)
                .map_err(|_| Error::argument(format!("near vector must be a list of numbers, got '{s}'")))?;
            &parsed
        }
        other => other,
    };
    let items = v.as_array().ok_or_else(|| Error::argument(format!("near vector must be a list of numbers, got {v}")))?;
    items
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32).ok_or_else(|| Error::argument(format!("near vector holds a non-number: {x}"))))
        .collect()
}

impl Workspace {
    /// The `near.top_k` nearest objects of `entity` by `near.field`, nearest first,
    /// as (object_id, score). `candidates` restricts the search to those ids.
    pub async fn near(&self, entity: &str, near: &Near, candidates: Option<Vec<String>>) -> Result<Vec<(String, f32)>> {
        let rt = self.runtime(entity)?;
        let field = rt.def.get(&near.field).ok_or_else(|| {
            Error::unknown_field(format!(
                "{entity} has no field '{}'.{}",
                near.field,
                crate::error::suggest(&near.field, rt.def.fields.iter().map(|f| f.name.as_str()))
            ))
        })?;
        let LogicalType::Vector { dim } = field.ty else {
            return Err(Error::argument(format!(
                "{entity}.{} is {}, not a vector; near needs a vector field",
                near.field,
                field.ty.type_id()
            )));
        };
        if near.vector.len() != dim {
            return Err(Error::argument(format!(
                "{entity}.{}: the near vector has {} dimensions, the field has {dim}",
                near.field,
                near.vector.len()
            )));
        }
        let (backend, group) = rt
            .groups
            .iter()
            .find(|(_, g)| g.column(&near.field).is_some())
            .ok_or_else(|| Error::internal(format!("{entity}.{} has no storage", near.field)))?;
        let request = NearRequest {
            column: near.field.clone(),
            vector: near.vector.clone(),
            k: near.top_k,
            metric: near.metric,
            ids: candidates.map(Arc::new),
            nprobes: near.nprobes,
        };
        let hits = match self.buffering().and_then(|t| t.overlay(entity)) {
            None => backend.nearest(group, &request).await?,
            Some(overlay) => {
                // Inside a block that changed the entity: the stored objects it
                // did not touch (asking for as many more as it touched, so k
                // remain), and its own rows, searched exactly.
                let touched: std::collections::HashSet<&str> = overlay.touched().iter().map(String::as_str).collect();
                let stored = NearRequest { k: request.k + touched.len(), ..request.clone() };
                let mut hits: Vec<(String, f32)> = backend.nearest(group, &stored).await?;
                hits.retain(|(id, _)| !touched.contains(id.as_str()));
                let held = overlay.prepared(&rt.def)?;
                if let Some(vectors) = held.columns.get(&near.field) {
                    let schema = Arc::new(Schema::new(vec![
                        Field::new(OBJECT_ID, DataType::Utf8, false),
                        Field::new(&near.field, vectors.data_type().clone(), true),
                    ]));
                    let ids = Arc::new(StringArray::from(held.ids.clone()));
                    let batch = RecordBatch::try_new(schema, vec![ids, vectors.clone()])
                        .map_err(|e| Error::internal(format!("{entity}.{}: held rows: {e}", near.field)))?;
                    hits.extend(heavenbase_providers::vector::exact_nearest(&[batch], &request));
                }
                hits.sort_by(|a, b| a.1.total_cmp(&b.1));
                hits.truncate(request.k);
                hits
            }
        };
        Ok(hits.into_iter().map(|(id, d)| (id, near.metric.score(d))).collect())
    }
}

pub(crate) fn hits_batch(hits: &[(String, f32)]) -> RecordBatch {
    let ids = StringArray::from_iter_values(hits.iter().map(|(id, _)| id.as_str()));
    let scores = Float32Array::from_iter_values(hits.iter().map(|(_, s)| *s));
    RecordBatch::try_new(near_schema(), vec![Arc::new(ids), Arc::new(scores)]).expect("near schema")
}

pub fn near_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(OBJECT_ID, DataType::Utf8, false), Field::new("score", DataType::Float32, false)]))
}

/// The SQL table function `near(...)`.
#[derive(Debug)]
pub(crate) struct NearFunction {
    pub ws: Weak<Inner>,
}

/// Argument `i` of table function `func`, a text literal (None when absent).
pub(crate) fn text_arg(func: &str, args: &[Expr], i: usize, what: &str) -> DfResult<Option<String>> {
    match args.get(i) {
        None => Ok(None),
        Some(Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)), _)) => {
            Ok(Some(s.clone()))
        }
        Some(other) => Err(DataFusionError::Plan(format!("{func}(): {what} must be a text literal, got {other}"))),
    }
}

/// Argument `i` of table function `func`, a positive integer (None when absent).
pub(crate) fn count_arg(func: &str, args: &[Expr], i: usize, what: &str) -> DfResult<Option<usize>> {
    match args.get(i) {
        None => Ok(None),
        Some(Expr::Literal(ScalarValue::Int64(Some(k)), _)) if *k > 0 => Ok(Some(*k as usize)),
        // A bound parameter the client sent untyped arrives as text.
        Some(Expr::Literal(ScalarValue::Utf8(Some(k)), _)) if k.trim().parse::<usize>().is_ok_and(|k| k > 0) => {
            Ok(k.trim().parse().ok())
        }
        Some(other) => Err(DataFusionError::Plan(format!("{func}(): {what} must be a positive integer, got {other}"))),
    }
}

/// A vector argument of table function `func`.
pub(crate) fn vector_arg(func: &str, e: &Expr) -> DfResult<Vec<f32>> {
    let bad =
        || DataFusionError::Plan(format!("{func}(): the vector must be a literal like '[0.1, 0.2]' or ARRAY[0.1, 0.2], got {e}"));
    match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)), _) => {
            parse_vector(&Json::String(s.clone())).map_err(|e| DataFusionError::Plan(format!("{func}(): {e}")))
        }
        Expr::ScalarFunction(f) if f.name() == "make_array" => f
            .args
            .iter()
            .map(|a| match a {
                Expr::Literal(v, _) => match v {
                    ScalarValue::Float64(Some(x)) => Ok(*x as f32),
                    ScalarValue::Float32(Some(x)) => Ok(*x),
                    ScalarValue::Int64(Some(x)) => Ok(*x as f32),
                    _ => Err(bad()),
                },
                Expr::Negative(inner) => match inner.as_ref() {
                    Expr::Literal(ScalarValue::Float64(Some(x)), _) => Ok(-*x as f32),
                    Expr::Literal(ScalarValue::Int64(Some(x)), _) => Ok(-*x as f32),
                    _ => Err(bad()),
                },
                _ => Err(bad()),
            })
            .collect(),
        Expr::Literal(ScalarValue::List(list), _) => {
            let values = datafusion::arrow::compute::cast(list.values(), &DataType::Float32)?;
            Ok(values.as_any().downcast_ref::<Float32Array>().ok_or_else(bad)?.values().to_vec())
        }
        _ => Err(bad()),
    }
}

impl TableFunctionImpl for NearFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let args = args.exprs();
        if crate::bound::has_placeholder(args) {
            let this = NearFunction { ws: self.ws.clone() };
            let resolve: crate::bound::Resolve = Arc::new(move |args| this.plan(args));
            return Ok(Arc::new(crate::bound::Unbound { name: "near", schema: near_schema(), args: args.to_vec(), resolve }));
        }
        self.plan(args)
    }
}

impl NearFunction {
    fn plan(&self, args: &[Expr]) -> DfResult<Arc<dyn TableProvider>> {
        let usage = "near(entity, field, vector [, top_k [, metric [, where [, nprobes]]]])";
        if args.len() < 3 || args.len() > 7 {
            return Err(DataFusionError::Plan(format!("{usage} takes 3 to 7 arguments, got {}", args.len())));
        }
        let entity = text_arg("near", args, 0, "entity")?.unwrap_or_default();
        let field = text_arg("near", args, 1, "field")?.unwrap_or_default();
        let vector = vector_arg("near", &args[2])?;
        let top_k = count_arg("near", args, 3, "top_k")?;
        let metric = text_arg("near", args, 4, "metric")?;
        let filter = text_arg("near", args, 5, "where")?.filter(|w| !w.trim().is_empty());
        let nprobes = count_arg("near", args, 6, "nprobes")?;
        let ext = |e: Error| DataFusionError::External(Box::new(e));
        let mut near = Near::new(&field, vector, top_k, metric.as_deref()).map_err(ext)?;
        if let Some(n) = nprobes {
            near = near.nprobes(n).map_err(ext)?;
        }
        let ws =
            Workspace { txn: None, inner: self.ws.upgrade().ok_or_else(|| DataFusionError::Plan("workspace closed".into()))? };
        check_near(&ws, &entity, &near)?;
        Ok(Arc::new(crate::search::RankedTable {
            ws: self.ws.clone(),
            entity,
            ranked: crate::search::Ranked::Near(near),
            filter,
        }))
    }
}

/// Entity, field and dimensions checked at planning time.
pub(crate) fn check_near(ws: &Workspace, entity: &str, near: &Near) -> DfResult<()> {
    let rt = ws.runtime(entity).map_err(|e| DataFusionError::External(Box::new(e)))?;
    match rt.def.get(&near.field).map(|f| f.ty.clone()) {
        Some(LogicalType::Vector { dim }) if dim == near.vector.len() => {}
        Some(LogicalType::Vector { dim }) => {
            return Err(DataFusionError::Plan(format!(
                "{entity}.{}: the near vector has {} dimensions, the field has {dim}",
                near.field,
                near.vector.len()
            )));
        }
        Some(t) => return Err(DataFusionError::Plan(format!("{entity}.{} is {}, not a vector", near.field, t.type_id()))),
        None => {
            let e = Error::unknown_field(format!("{entity} has no field '{}'", near.field));
            return Err(DataFusionError::External(Box::new(e)));
        }
    }
    Ok(())
}

/// Object ids of `entity` rows matching the SQL predicate `filter`.
pub(crate) async fn candidate_ids(ws: &Workspace, func: &str, entity: &str, filter: &str) -> Result<Vec<String>> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use datafusion::sql::sqlparser::tokenizer::Token;
    // One expression and nothing after it: the text cannot become another statement.
    let bad = |e: String| Error::argument(format!("{func}(): the where argument must be one SQL predicate over {entity}: {e}"));
    let predicate = {
        let mut parser = Parser::new(&PostgreSqlDialect {}).try_with_sql(filter).map_err(|e| bad(e.to_string()))?;
        let predicate = parser.parse_expr().map_err(|e| bad(e.to_string()))?;
        if parser.peek_token().token != Token::EOF {
            return Err(bad(format!("unexpected text after the predicate in '{filter}'")));
        }
        predicate.to_string()
    };
    let table = heavenbase_catalog::entity::table_name(entity);
    let batches = ws.sql(&format!("SELECT {OBJECT_ID} FROM {table} WHERE {predicate}")).await?;
    let mut ids = Vec::new();
    for b in &batches {
        let col = datafusion::arrow::array::AsArray::as_string::<i32>(b.column(0));
        ids.extend(col.iter().flatten().map(String::from));
    }
    Ok(ids)
}
