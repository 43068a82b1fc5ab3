//! Full-text and hybrid search over an entity's text fields, the same from
//! the Rust API, the query builder, the JSON language and SQL:
//!
//! ```sql
//! SELECT d.title, s.score
//! FROM search('doc', 'title, body', 'rust +"query engine" -java', 10) AS s
//! JOIN doc d USING (object_id)
//! ORDER BY s.score DESC;
//!
//! SELECT d.title, h.score, h.text_rank, h.vector_rank
//! FROM hybrid('doc', 'body', 'query engine', 'emb', '[0.1, 0.2, 0.3]', 10) AS h
//! JOIN doc d USING (object_id);
//! ```
//!
//! `search(entity, fields, query [, top_k [, where]])` returns `(object_id,
//! score)`, BM25 scores, best first (the query language and the scoring are
//! heavenbase_providers::text's). `fields` is a comma-separated list, or ''
//! for every field indexed for search. The search runs where the fields are
//! indexed (the search backend's inverted index); a field no search backend
//! indexes is searched exactly over its rows, with the same scores.
//!
//! `hybrid(entity, text_fields, text_query, vector_field, vector [, top_k
//! [, where [, k]]])` runs both searches, max(top_k, 100) rows deep each, and
//! fuses the two rankings by Reciprocal Rank Fusion: a row's score is Σ 1 / (k + rank)
//! over the rankings it is in (k = 60 by default), returned with its rank in
//! each (NULL where it is absent).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use heavenbase_catalog::OBJECT_ID;
use heavenbase_providers::text::{TextQuery, TextRequest, exact_search};
use heavenbase_providers::vector::{DEFAULT_TOP_K, MAX_TOP_K};
use heavenbase_providers::{Backend, GroupSpec, LazyBatchesExec, ScanRequest};
use serde_json::{Value as Json, json};

use crate::near::{Near, candidate_ids, check_near, count_arg, hits_batch, text_arg, vector_arg};
use crate::workspace::{EntityRuntime, Inner, Workspace};
use crate::{Error, Result};

/// Reciprocal Rank Fusion's constant when none is given.
pub const DEFAULT_RRF_K: f64 = 60.0;
/// How deep each ranking is read before fusing (at least top_k): the first n
/// rows of a hybrid search do not depend on how many were asked for.
pub const RANK_WINDOW: usize = 100;

/// A full-text search: which fields, what query, how many.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    /// Empty: every field indexed for search.
    pub fields: Vec<String>,
    /// The query as written.
    pub text: String,
    pub query: TextQuery,
    pub top_k: usize,
}

impl Search {
    pub fn new<S: AsRef<str>>(fields: &[S], text: &str, top_k: Option<usize>) -> Result<Search> {
        let top_k = top_k.unwrap_or(DEFAULT_TOP_K);
        if top_k == 0 || top_k > MAX_TOP_K {
            return Err(Error::argument(format!("search top_k must be between 1 and {MAX_TOP_K}, got {top_k}")));
        }
        Ok(Search {
            fields: fields.iter().map(|f| f.as_ref().trim().to_string()).filter(|f| !f.is_empty()).collect(),
            text: text.to_string(),
            query: TextQuery::parse(text).map_err(|e| Error::argument(e.to_string()))?,
            top_k,
        })
    }

    /// Every row that matches, ranked (the JSON language's `$match` filter).
    pub(crate) fn unlimited(mut self) -> Search {
        self.top_k = usize::MAX;
        self
    }

    /// `{fields, query, top_k}`; `fields` a list or a comma-separated string.
    pub fn from_json(v: &Json) -> Result<Search> {
        let o = v.as_object().ok_or_else(|| Error::argument(format!("search is {{fields, query, top_k}}, got {v}")))?;
        check_keys("search", o, &["fields", "query", "top_k"])?;
        let query = o.get("query").and_then(Json::as_str).ok_or_else(|| Error::argument("search needs a 'query' text"))?;
        Search::new(&json_fields(o.get("fields"))?, query, json_top_k("search", o.get("top_k"))?)
    }

    pub fn to_json(&self) -> Json {
        json!({"fields": self.fields, "query": self.text, "top_k": self.top_k})
    }
}

/// A hybrid search: a text search and a near search fused by RRF.
#[derive(Debug, Clone, PartialEq)]
pub struct Hybrid {
    pub search: Search,
    pub near: Near,
    pub top_k: usize,
    /// RRF's k.
    pub k: f64,
}

impl Hybrid {
    pub fn new(search: Search, near: Near, top_k: Option<usize>, k: Option<f64>) -> Result<Hybrid> {
        let top_k = top_k.unwrap_or(DEFAULT_TOP_K);
        if top_k == 0 || top_k > MAX_TOP_K {
            return Err(Error::argument(format!("hybrid top_k must be between 1 and {MAX_TOP_K}, got {top_k}")));
        }
        let k = k.unwrap_or(DEFAULT_RRF_K);
        if !(k.is_finite() && k >= 0.0) {
            return Err(Error::argument(format!("hybrid k must be a number of at least 0, got {k}")));
        }
        let window = top_k.max(RANK_WINDOW);
        Ok(Hybrid { search: Search { top_k: window, ..search }, near: Near { top_k: window, ..near }, top_k, k })
    }

    /// `{fields, query, vector_field, vector, top_k, k, metric}`.
    pub fn from_json(v: &Json) -> Result<Hybrid> {
        let o = v.as_object().ok_or_else(|| Error::argument(format!("hybrid is an object, got {v}")))?;
        check_keys("hybrid", o, &["fields", "query", "vector_field", "vector", "top_k", "k", "metric"])?;
        let query = o.get("query").and_then(Json::as_str).ok_or_else(|| Error::argument("hybrid needs a 'query' text"))?;
        let field =
            o.get("vector_field").and_then(Json::as_str).ok_or_else(|| Error::argument("hybrid needs a 'vector_field'"))?;
        let vector = crate::near::parse_vector(o.get("vector").ok_or_else(|| Error::argument("hybrid needs a 'vector'"))?)?;
        let top_k = json_top_k("hybrid", o.get("top_k"))?;
        let k = match o.get("k") {
            None | Some(Json::Null) => None,
            Some(k) => Some(k.as_f64().ok_or_else(|| Error::argument(format!("hybrid k must be a number, got {k}")))?),
        };
        let search = Search::new(&json_fields(o.get("fields"))?, query, None)?;
        let near = Near::new(field, vector, None, o.get("metric").and_then(Json::as_str))?;
        Hybrid::new(search, near, top_k, k)
    }

    pub fn to_json(&self) -> Json {
        json!({
            "fields": self.search.fields, "query": self.search.text, "vector_field": self.near.field,
            "vector": self.near.vector, "metric": self.near.metric.name(), "top_k": self.top_k, "k": self.k,
        })
    }
}

/// One row of a hybrid search.
#[derive(Debug, Clone, PartialEq)]
pub struct HybridHit {
    pub object_id: String,
    pub score: f64,
    /// 1-based rank in the text ranking; None when the row is not in it.
    pub text_rank: Option<u32>,
    pub vector_rank: Option<u32>,
}

fn check_keys(what: &str, o: &serde_json::Map<String, Json>, known: &[&str]) -> Result<()> {
    match o.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(Error::argument(format!(
            "Unknown {what} key '{k}'.{} {what} takes {}",
            crate::error::suggest(k, known.iter().copied()),
            known.join(", ")
        ))),
    }
}

fn json_fields(v: Option<&Json>) -> Result<Vec<String>> {
    match v {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::String(s)) => Ok(s.split(',').map(|f| f.trim().to_string()).collect()),
        Some(Json::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(String::from).ok_or_else(|| Error::argument(format!("search fields are names, got {i}"))))
            .collect(),
        Some(other) => Err(Error::argument(format!("search fields are a list of names, got {other}"))),
    }
}

fn json_top_k(what: &str, v: Option<&Json>) -> Result<Option<usize>> {
    match v {
        None | Some(Json::Null) => Ok(None),
        Some(k) => Ok(Some(
            k.as_u64().ok_or_else(|| Error::argument(format!("{what} top_k must be a positive integer, got {k}")))? as usize,
        )),
    }
}

/// The fields a search that names none reads: those indexed for search;
/// without a search backend, the LongText fields (the ones it would index).
fn default_fields(rt: &EntityRuntime) -> Vec<String> {
    let indexed = rt.plan.search_fields();
    if !indexed.is_empty() {
        return indexed.into_iter().map(String::from).collect();
    }
    rt.def
        .fields
        .iter()
        .filter(|f| matches!(f.ty, heavenbase_catalog::LogicalType::LongText { .. }) && f.search != Some(false))
        .map(|f| f.name.clone())
        .collect()
}

/// The fields a search reads, checked: named ones must be text fields of the
/// entity; none named means [`default_fields`].
fn checked_fields(rt: &EntityRuntime, search: &Search) -> Result<Vec<String>> {
    let entity = &rt.def.entity_id;
    if search.fields.is_empty() {
        let fields = default_fields(rt);
        if fields.is_empty() {
            let text: Vec<&str> = rt.def.fields.iter().filter(|f| f.ty.is_text()).map(|f| f.name.as_str()).collect();
            return Err(Error::argument(format!(
                "{entity} has no field indexed for search; name the fields to search (its text fields: {})",
                text.join(", ")
            )));
        }
        return Ok(fields);
    }
    for name in &search.fields {
        let field = rt.def.get(name).ok_or_else(|| {
            Error::unknown_field(format!(
                "{entity} has no field '{name}'.{}",
                crate::error::suggest(name, rt.def.fields.iter().map(|f| f.name.as_str()))
            ))
        })?;
        if !field.ty.is_text() {
            return Err(Error::argument(format!(
                "{entity}.{name} is {}, not text; search reads text fields",
                field.ty.type_id()
            )));
        }
    }
    Ok(search.fields.clone())
}

/// Where the fields are searched: the group that indexes them all for search,
/// else the one that holds them all (searched exactly).
fn search_group<'a>(rt: &'a EntityRuntime, fields: &[String]) -> Result<&'a (Arc<dyn Backend>, GroupSpec)> {
    let indexed = |g: &GroupSpec| fields.iter().all(|f| g.column(f).is_some_and(|c| c.search));
    let holds = |g: &GroupSpec| fields.iter().all(|f| g.column(f).is_some());
    rt.groups.iter().find(|(_, g)| indexed(g)).or_else(|| rt.groups.iter().find(|(_, g)| holds(g))).ok_or_else(|| {
        Error::argument(format!(
            "{}: the fields {} are stored in different backends; search them one at a time",
            rt.def.entity_id,
            fields.join(", ")
        ))
    })
}

impl Workspace {
    /// The fields a search of `entity` that names none reads (MCP's
    /// describe_entity lists them).
    pub fn search_fields(&self, entity: &str) -> Result<Vec<String>> {
        Ok(default_fields(&*self.runtime(entity)?))
    }

    /// The `search.top_k` best rows of `entity` for the query, best first, as
    /// (object_id, BM25 score). `candidates` restricts the search to those ids.
    pub async fn search(&self, entity: &str, search: &Search, candidates: Option<Vec<String>>) -> Result<Vec<(String, f32)>> {
        let rt = self.runtime(entity)?;
        let fields = checked_fields(&rt, search)?;
        let (backend, group) = search_group(&rt, &fields)?;
        let request =
            TextRequest { columns: fields.clone(), query: search.query.clone(), k: search.top_k, ids: candidates.map(Arc::new) };
        match self.buffering().and_then(|t| t.overlay(entity)) {
            None => Ok(backend.text_search(group, &request).await?),
            Some(overlay) => {
                // Inside a block that changed the entity: exactly, over the
                // stored rows it did not touch and its own rows, so scores
                // count the block's rows as the committed index will.
                let arrow = |e: datafusion::arrow::error::ArrowError| Error::internal(format!("{entity}: held rows: {e}"));
                let touched: HashSet<&str> = overlay.touched().iter().map(String::as_str).collect();
                let scan = ScanRequest { columns: fields.clone(), filters: Vec::new(), ids: None, limit: None };
                let mut batches = Vec::new();
                for b in backend.scan(group, &scan).await? {
                    let keep: BooleanArray =
                        b.column(0).as_string::<i32>().iter().map(|id| Some(!touched.contains(id.unwrap_or_default()))).collect();
                    batches.push(datafusion::arrow::compute::filter_record_batch(&b, &keep).map_err(arrow)?);
                }
                let held = overlay.prepared(&rt.def)?;
                let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(held.ids.clone()))];
                let mut schema = vec![Field::new(OBJECT_ID, DataType::Utf8, false)];
                for f in &fields {
                    let values = match held.columns.get(f) {
                        Some(v) => datafusion::arrow::compute::cast(v, &DataType::Utf8).map_err(arrow)?,
                        None => datafusion::arrow::array::new_null_array(&DataType::Utf8, held.ids.len()),
                    };
                    columns.push(values);
                    schema.push(Field::new(f, DataType::Utf8, true));
                }
                batches.push(RecordBatch::try_new(Arc::new(Schema::new(schema)), columns).map_err(arrow)?);
                Ok(exact_search(&batches, &request))
            }
        }
    }

    /// Which backend a search runs in and how, for EXPLAIN.
    pub fn explain_search(&self, entity: &str, search: &Search) -> Result<String> {
        let rt = self.runtime(entity)?;
        let fields = checked_fields(&rt, search)?;
        let (backend, group) = search_group(&rt, &fields)?;
        let request = TextRequest { columns: fields, query: search.query.clone(), k: search.top_k, ids: None };
        Ok(format!("backend={} ({}): {}", backend.info().name, backend.info().kind, backend.explain_text_search(group, &request)))
    }

    /// Text and vector search of `entity` fused by Reciprocal Rank Fusion,
    /// best first, at most `hybrid.top_k` rows.
    pub async fn hybrid(&self, entity: &str, hybrid: &Hybrid, candidates: Option<Vec<String>>) -> Result<Vec<HybridHit>> {
        let text = self.search(entity, &hybrid.search, candidates.clone()).await?;
        let vector = self.near(entity, &hybrid.near, candidates).await?;
        Ok(fuse(&text, &vector, hybrid.k, hybrid.top_k))
    }
}

/// Reciprocal Rank Fusion of two rankings (best first): Σ 1 / (k + rank).
pub fn fuse(text: &[(String, f32)], vector: &[(String, f32)], k: f64, top_k: usize) -> Vec<HybridHit> {
    let mut by_id: HashMap<&str, HybridHit> = HashMap::new();
    for (ranking, is_text) in [(text, true), (vector, false)] {
        for (i, (id, _)) in ranking.iter().enumerate() {
            let rank = i as u32 + 1;
            let hit = by_id.entry(id.as_str()).or_insert_with(|| HybridHit {
                object_id: id.clone(),
                score: 0.0,
                text_rank: None,
                vector_rank: None,
            });
            hit.score += 1.0 / (k + rank as f64);
            if is_text {
                hit.text_rank = Some(rank);
            } else {
                hit.vector_rank = Some(rank);
            }
        }
    }
    let mut hits: Vec<HybridHit> = by_id.into_values().collect();
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.object_id.cmp(&b.object_id)));
    hits.truncate(top_k);
    hits
}

pub fn search_schema() -> SchemaRef {
    crate::near::near_schema()
}

pub fn hybrid_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(OBJECT_ID, DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
        Field::new("text_rank", DataType::Int32, true),
        Field::new("vector_rank", DataType::Int32, true),
    ]))
}

pub(crate) fn hybrid_batch(hits: &[HybridHit]) -> RecordBatch {
    let ids = StringArray::from_iter_values(hits.iter().map(|h| h.object_id.as_str()));
    let scores = Float64Array::from_iter_values(hits.iter().map(|h| h.score));
    let text: Int32Array = hits.iter().map(|h| h.text_rank.map(|r| r as i32)).collect();
    let vector: Int32Array = hits.iter().map(|h| h.vector_rank.map(|r| r as i32)).collect();
    RecordBatch::try_new(hybrid_schema(), vec![Arc::new(ids), Arc::new(scores), Arc::new(text), Arc::new(vector)])
        .expect("hybrid schema")
}

/// What a ranked table function (`near`, `search`, `hybrid`) runs.
#[derive(Debug, Clone)]
pub(crate) enum Ranked {
    Near(Near),
    Search(Search),
    Hybrid(Hybrid),
}

impl Ranked {
    fn function(&self) -> &'static str {
        match self {
            Ranked::Near(_) => "near",
            Ranked::Search(_) => "search",
            Ranked::Hybrid(_) => "hybrid",
        }
    }
}

/// The SQL table functions `search(...)` and `hybrid(...)`.
#[derive(Debug)]
pub(crate) struct SearchFunction {
    pub ws: Weak<Inner>,
    pub hybrid: bool,
}

impl TableFunctionImpl for SearchFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let args = args.exprs();
        if crate::bound::has_placeholder(args) {
            let this = SearchFunction { ws: self.ws.clone(), hybrid: self.hybrid };
            let (name, schema) = if self.hybrid { ("hybrid", hybrid_schema()) } else { ("search", search_schema()) };
            let resolve: crate::bound::Resolve = Arc::new(move |args| this.plan(args));
            return Ok(Arc::new(crate::bound::Unbound { name, schema, args: args.to_vec(), resolve }));
        }
        self.plan(args)
    }
}

impl SearchFunction {
    fn plan(&self, args: &[Expr]) -> DfResult<Arc<dyn TableProvider>> {
        let ext = |e: Error| DataFusionError::External(Box::new(e));
        let ws =
            Workspace { txn: None, inner: self.ws.upgrade().ok_or_else(|| DataFusionError::Plan("workspace closed".into()))? };
        let split = |s: Option<String>| -> Vec<String> { s.unwrap_or_default().split(',').map(String::from).collect() };
        let (entity, ranked, filter) = if self.hybrid {
            let usage = "hybrid(entity, text_fields, text_query, vector_field, vector [, top_k [, where [, k]]])";
            if args.len() < 5 || args.len() > 8 {
                return Err(DataFusionError::Plan(format!("{usage} takes 5 to 8 arguments, got {}", args.len())));
            }
            let f = "hybrid";
            let entity = text_arg(f, args, 0, "entity")?.unwrap_or_default();
            let fields = split(text_arg(f, args, 1, "text_fields")?);
            let query = text_arg(f, args, 2, "text_query")?.unwrap_or_default();
            let vector_field = text_arg(f, args, 3, "vector_field")?.unwrap_or_default();
            let vector = vector_arg(f, &args[4])?;
            let top_k = count_arg(f, args, 5, "top_k")?;
            let filter = text_arg(f, args, 6, "where")?.filter(|w| !w.trim().is_empty());
            let k = count_arg(f, args, 7, "k")?.map(|k| k as f64);
            let search = Search::new(&fields, &query, None).map_err(ext)?;
            let near = Near::new(&vector_field, vector, None, None).map_err(ext)?;
            let hybrid = Hybrid::new(search, near, top_k, k).map_err(ext)?;
            check_near(&ws, &entity, &hybrid.near)?;
            ws.explain_search(&entity, &hybrid.search).map_err(ext)?;
            (entity, Ranked::Hybrid(hybrid), filter)
        } else {
            let usage = "search(entity, fields, query [, top_k [, where]])";
            if args.len() < 3 || args.len() > 5 {
                return Err(DataFusionError::Plan(format!("{usage} takes 3 to 5 arguments, got {}", args.len())));
            }
            let f = "search";
            let entity = text_arg(f, args, 0, "entity")?.unwrap_or_default();
            let fields = split(text_arg(f, args, 1, "fields")?);
            let query = text_arg(f, args, 2, "query")?.unwrap_or_default();
            let top_k = count_arg(f, args, 3, "top_k")?;
            let filter = text_arg(f, args, 4, "where")?.filter(|w| !w.trim().is_empty());
            let search = Search::new(&fields, &query, top_k).map_err(ext)?;
            // Entity and fields checked now, so errors come at planning time.
            ws.explain_search(&entity, &search).map_err(ext)?;
            (entity, Ranked::Search(search), filter)
        };
        Ok(Arc::new(RankedTable { ws: self.ws.clone(), entity, ranked, filter }))
    }
}

/// The table a ranked table function returns: its hits, found when scanned
/// (inside a transaction block, with the block's own rows).
#[derive(Debug)]
pub(crate) struct RankedTable {
    pub ws: Weak<Inner>,
    pub entity: String,
    pub ranked: Ranked,
    /// A SQL predicate over the entity picking the candidates first.
    pub filter: Option<String>,
}

#[async_trait]
impl TableProvider for RankedTable {
    fn schema(&self) -> SchemaRef {
        match self.ranked {
            Ranked::Near(_) => crate::near::near_schema(),
            Ranked::Search(_) => search_schema(),
            Ranked::Hybrid(_) => hybrid_schema(),
        }
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let ws =
            Workspace { txn: None, inner: self.ws.upgrade().ok_or_else(|| DataFusionError::Plan("workspace closed".into()))? };
        let ext = |e: Error| DataFusionError::External(Box::new(e));
        let prefilter = self.filter.as_ref().map(|f| format!(" prefilter=[{f}]")).unwrap_or_default();
        let (name, detail) = match &self.ranked {
            Ranked::Near(n) => (
                "NearExec",
                format!("entity={} field={} top_k={} metric={}{prefilter}", self.entity, n.field, n.top_k, n.metric.name()),
            ),
            Ranked::Search(s) => (
                "SearchExec",
                format!(
                    "entity={} top_k={} {}{prefilter}",
                    self.entity,
                    s.top_k,
                    ws.explain_search(&self.entity, s).map_err(ext)?
                ),
            ),
            Ranked::Hybrid(h) => (
                "HybridExec",
                format!(
                    "entity={} top_k={} rrf_k={} text: {} vector: field={} metric={}{prefilter}",
                    self.entity,
                    h.top_k,
                    h.k,
                    ws.explain_search(&self.entity, &h.search).map_err(ext)?,
                    h.near.field,
                    h.near.metric.name()
                ),
            ),
        };
        let (weak, entity, ranked, filter) = (self.ws.clone(), self.entity.clone(), self.ranked.clone(), self.filter.clone());
        // Inside a transaction block, the search sees the block's own rows.
        let txn = crate::workspace::transaction::of_config(state.config());
        let exec = LazyBatchesExec::projected(name, detail, &self.schema(), projection, move || {
            let (weak, entity, ranked, filter, txn) = (weak.clone(), entity.clone(), ranked.clone(), filter.clone(), txn.clone());
            Box::pin(async move {
                let ws = Workspace {
                    txn,
                    inner: weak.upgrade().ok_or_else(|| DataFusionError::Execution("workspace closed".into()))?,
                };
                let ext = |e: Error| DataFusionError::External(Box::new(e));
                let candidates = match &filter {
                    Some(f) => Some(candidate_ids(&ws, ranked.function(), &entity, f).await.map_err(ext)?),
                    None => None,
                };
                Ok(match &ranked {
                    Ranked::Near(n) => hits_batch(&ws.near(&entity, n, candidates).await.map_err(ext)?),
                    Ranked::Search(s) => hits_batch(&ws.search(&entity, s, candidates).await.map_err(ext)?),
                    Ranked::Hybrid(h) => hybrid_batch(&ws.hybrid(&entity, h, candidates).await.map_err(ext)?),
                })
            })
        })?;
        Ok(Arc::new(exec))
    }
}
