//! The query builder and the JSON query language (docs/reference.md §7.1, §7.3), both
//! compiled to DataFusion logical plans over the stitched entity table, so
//! filters reach the backends exactly as SQL filters do.
//!
//! Semantics (documented in docs/query.md): `ne` matches NULL rows (IS DISTINCT
//! FROM), `in` with a null matches NULL rows, `$not` is the complement over all
//! rows, order operators and text operators never match NULL; ORDER BY puts NULLs
//! last in both directions; without an order, rows come by object_id.

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::functions::expr_fn::{ends_with, lower, regexp_like, starts_with, strpos};
use datafusion::functions_aggregate::expr_fn::{avg, count, count_distinct, max, median, min, sum};
use datafusion::functions_nested::expr_fn::{array_has, array_has_all, make_array};
use std::ops::Not;

use datafusion::logical_expr::{BinaryExpr, Expr, Operator, col, ident, lit};
use datafusion::scalar::ScalarValue;
use heavenbase_catalog::types::{coerce_date, coerce_timestamp, describe_value};
use heavenbase_catalog::value::batch_rows;
use heavenbase_catalog::{EntityDef, LogicalType, OBJECT_ID, Row};
use serde_json::{Map, Value as Json, json};

use crate::error::suggest;
use crate::workspace::Workspace;
use crate::{Error, ErrorKind, Result};

/// An operator of the JSON filter language (`{"price": {"$lt": 5}}`); the
/// serde name is the operator without its `$`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterOp {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    In,
    /// Case-insensitive substring.
    Match,
    /// Substring of text, or item of a list.
    Contains,
    Like,
    Ilike,
    Regex,
    StartsWith,
    EndsWith,
    ArrayContains,
    /// Every item of the list field is one of the given values.
    ContainedIn,
}

impl FilterOp {
    /// Every operator, in the JSON language's order.
    pub const ALL: [FilterOp; 16] = [
        FilterOp::Eq,
        FilterOp::Ne,
        FilterOp::Lt,
        FilterOp::Lte,
        FilterOp::Gt,
        FilterOp::Gte,
        FilterOp::In,
        FilterOp::Match,
        FilterOp::Contains,
        FilterOp::Like,
        FilterOp::Ilike,
        FilterOp::Regex,
        FilterOp::StartsWith,
        FilterOp::EndsWith,
        FilterOp::ArrayContains,
        FilterOp::ContainedIn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FilterOp::Eq => "eq",
            FilterOp::Ne => "ne",
            FilterOp::Lt => "lt",
            FilterOp::Lte => "lte",
            FilterOp::Gt => "gt",
            FilterOp::Gte => "gte",
            FilterOp::In => "in",
            FilterOp::Match => "match",
            FilterOp::Contains => "contains",
            FilterOp::Like => "like",
            FilterOp::Ilike => "ilike",
            FilterOp::Regex => "regex",
            FilterOp::StartsWith => "starts_with",
            FilterOp::EndsWith => "ends_with",
            FilterOp::ArrayContains => "array_contains",
            FilterOp::ContainedIn => "contained_in",
        }
    }

    /// `lt` or `$lt`.
    pub fn from_name(name: &str) -> Option<FilterOp> {
        let name = name.strip_prefix('$').unwrap_or(name);
        FilterOp::ALL.into_iter().find(|op| op.as_str() == name)
    }
}

impl std::fmt::Display for FilterOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub const JSON_KEYS: &[&str] =
    &["filter", "near", "search", "hybrid", "select", "group_by", "aggregate", "having", "order", "offset", "limit", "count"];

/// An aggregate of the JSON query language and the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AggregateOp {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    Median,
    /// Continuous percentile at `q` in [0, 1].
    Percentile,
}

impl AggregateOp {
    const ALL: [AggregateOp; 7] = [
        AggregateOp::Count,
        AggregateOp::Sum,
        AggregateOp::Avg,
        AggregateOp::Min,
        AggregateOp::Max,
        AggregateOp::Median,
        AggregateOp::Percentile,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AggregateOp::Count => "count",
            AggregateOp::Sum => "sum",
            AggregateOp::Avg => "avg",
            AggregateOp::Min => "min",
            AggregateOp::Max => "max",
            AggregateOp::Median => "median",
            AggregateOp::Percentile => "percentile",
        }
    }

    /// `count`, `$count`, …; an unknown name is an error with a suggestion.
    pub fn parse(name: &str) -> Result<AggregateOp> {
        let name = name.trim_start_matches('$');
        AggregateOp::ALL.into_iter().find(|op| op.as_str() == name).ok_or_else(|| {
            Error::new(
                ErrorKind::UnknownFunction,
                format!("Unknown aggregate '{name}'.{}", suggest(name, AggregateOp::ALL.iter().map(|op| op.as_str()))),
            )
        })
    }
}
/// Longest regex pattern accepted (docs/reference.md §7.2).
pub const MAX_REGEX_LEN: usize = 512;

/// A filter over an entity's fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    /// `field` may be a dotted JSON path (`meta.color`).
    Op {
        field: String,
        op: FilterOp,
        value: Json,
    },
}

impl Filter {
    pub fn op(field: &str, op: FilterOp, value: impl Into<Json>) -> Filter {
        Filter::Op { field: field.into(), op, value: value.into() }
    }
    pub fn eq(field: &str, v: impl Into<Json>) -> Filter {
        Filter::op(field, FilterOp::Eq, v)
    }
    /// `$match`: on a field indexed for search, a full-text match of the query
    /// language (heavenbase_providers::text), whose BM25 score ranks the
    /// result; on other fields, a case-insensitive substring test.
    pub fn matches(field: &str, query: &str) -> Filter {
        Filter::op(field, FilterOp::Match, query)
    }
    pub fn lt(field: &str, v: impl Into<Json>) -> Filter {
        Filter::op(field, FilterOp::Lt, v)
    }
    pub fn gt(field: &str, v: impl Into<Json>) -> Filter {
        Filter::op(field, FilterOp::Gt, v)
    }

    /// Parse the Mongo-style filter of the JSON query language.
    pub fn from_json(v: &Json) -> Result<Filter> {
        let obj = v.as_object().ok_or_else(|| Error::argument(format!("A filter is a JSON object, got {v}")))?;
        let mut parts = Vec::new();
        for (key, value) in obj {
            match key.as_str() {
                "$and" | "$or" => {
                    let items =
                        value.as_array().ok_or_else(|| Error::argument(format!("{key} takes a list of filters, got {value}")))?;
                    let subs = items.iter().map(Filter::from_json).collect::<Result<Vec<_>>>()?;
                    parts.push(if key == "$and" { Filter::And(subs) } else { Filter::Or(subs) });
                }
                "$not" => parts.push(Filter::Not(Box::new(Filter::from_json(value)?))),
                k if k.starts_with('$') => {
                    return Err(Error::argument(format!(
                        "Unknown logical filter operator '{k}'; use $and, $or or $not.{}",
                        suggest(k, ["$and", "$or", "$not"])
                    )));
                }
                field => match value {
                    Json::Object(ops) if ops.keys().any(|k| k.starts_with('$') || FilterOp::from_name(k).is_some()) => {
                        for (name, arg) in ops {
                            let op = FilterOp::from_name(name).ok_or_else(|| {
                                let name = name.trim_start_matches('$');
                                Error::argument(format!(
                                    "Unknown operation '${name}' on {field}.{}",
                                    suggest(name, FilterOp::ALL.iter().map(|op| op.as_str()))
                                ))
                            })?;
                            parts.push(Filter::op(field, op, arg.clone()));
                        }
                    }
                    other => parts.push(Filter::eq(field, other.clone())),
                },
            }
        }
        Ok(if parts.len() == 1 { parts.pop().expect("one part") } else { Filter::And(parts) })
    }

    pub fn to_json(&self) -> Json {
        match self {
            Filter::And(v) => json!({"and": v.iter().map(Filter::to_json).collect::<Vec<_>>()}),
            Filter::Or(v) => json!({"or": v.iter().map(Filter::to_json).collect::<Vec<_>>()}),
            Filter::Not(f) => json!({"not": f.to_json()}),
            Filter::Op { field, op, value } => json!({"filter": {"field": field, "op": op.as_str(), "value": value}}),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub out: String,
    pub op: AggregateOp,
    pub field: String,
    pub distinct: bool,
    /// For `percentile`: q in [0, 1].
    pub q: Option<f64>,
}

/// What a query asks, independent of where it came from (builder or JSON).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuerySpec {
    pub filters: Vec<Filter>,
    pub select: Vec<String>,
    pub order: Vec<(String, bool)>,
    pub offset: usize,
    pub limit: Option<usize>,
    pub group_by: Vec<String>,
    pub aggregates: Vec<Aggregate>,
    pub having: Vec<Filter>,
    pub count: bool,
    /// Nearest-neighbour search: the result is its top_k rows (after `filters`,
    /// applied before the search), with a `score` column.
    pub near: Option<crate::near::Near>,
    /// Full-text search: the result is its top_k rows (after `filters`), with
    /// a `score` column (BM25).
    pub search: Option<crate::search::Search>,
    /// Text and vector search fused by RRF: its top_k rows with `score`,
    /// `text_rank` and `vector_rank` columns.
    pub hybrid: Option<crate::search::Hybrid>,
}

impl QuerySpec {
    pub fn from_json(v: &Json) -> Result<QuerySpec> {
        let obj = v.as_object().ok_or_else(|| Error::argument(format!("A JSON query is an object, got {v}")))?;
        let mut spec = QuerySpec::default();
        for (key, value) in obj {
            match key.as_str() {
                "filter" => spec.filters.push(Filter::from_json(value)?),
                "select" => spec.select = strings(key, value)?,
                "group_by" => spec.group_by = strings(key, value)?,
                "order" => {
                    for o in strings(key, value)? {
                        match o.strip_prefix('-') {
                            Some(f) => spec.order.push((f.to_string(), true)),
                            None => spec.order.push((o.trim_start_matches('+').to_string(), false)),
                        }
                    }
                }
                "offset" => spec.offset = non_negative(key, value)?,
                "limit" => spec.limit = Some(non_negative(key, value)?),
                "having" => spec.having.push(Filter::from_json(value)?),
                "count" => spec.count = value.as_bool().unwrap_or(false),
                "aggregate" => {
                    let m = value.as_object().ok_or_else(|| Error::argument("aggregate is {out: {op: {field}}}"))?;
                    for (out, def) in m {
                        spec.aggregates.push(parse_aggregate(out, def)?);
                    }
                }
                "near" => spec.near = Some(crate::near::Near::from_json(value)?),
                "search" => spec.search = Some(crate::search::Search::from_json(value)?),
                "hybrid" => spec.hybrid = Some(crate::search::Hybrid::from_json(value)?),
                "traverse" | "available" | "unsafe" => {
                    return Err(Error::not_supported(format!("The JSON query key '{key}' is not supported by this build yet")));
                }
                other => {
                    return Err(Error::argument(format!(
                        "Unsupported JSON query key '{other}'.{}\nAvailable options: {}",
                        suggest(other, JSON_KEYS.iter().copied()),
                        JSON_KEYS.join(", ")
                    )));
                }
            }
        }
        Ok(spec)
    }

    pub fn to_json(&self) -> Json {
        json!({
            "filter": {"and": self.filters.iter().map(Filter::to_json).collect::<Vec<_>>()},
            "select": self.select,
            "order": self.order.iter().map(|(f, d)| json!([f, d])).collect::<Vec<_>>(),
            "offset": self.offset,
            "limit": self.limit,
            "group_by": self.group_by,
            "aggregate": self.aggregates.iter().map(|a| json!({"out": a.out, "op": a.op.as_str(), "field": a.field, "distinct": a.distinct, "q": a.q})).collect::<Vec<_>>(),
            "having": self.having.iter().map(Filter::to_json).collect::<Vec<_>>(),
            "terminal": if self.count { "count" } else { "rows" },
            "near": self.near.as_ref().map(crate::near::Near::to_json),
            "search": self.search.as_ref().map(crate::search::Search::to_json),
            "hybrid": self.hybrid.as_ref().map(crate::search::Hybrid::to_json),
        })
    }
}

/// The filters a list of filters ANDs together, nested ANDs flattened.
fn top_level(filters: &[Filter]) -> Vec<&Filter> {
    let mut out = Vec::new();
    for f in filters {
        match f {
            Filter::And(inner) => out.extend(top_level(inner)),
            other => out.push(other),
        }
    }
    out
}

fn strings(key: &str, v: &Json) -> Result<Vec<String>> {
    match v {
        Json::String(s) => Ok(vec![s.clone()]),
        Json::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(String::from).ok_or_else(|| Error::argument(format!("{key} takes field names, got {i}"))))
            .collect(),
        other => Err(Error::argument(format!("{key} takes a list of field names, got {other}"))),
    }
}

fn non_negative(key: &str, v: &Json) -> Result<usize> {
    v.as_i64()
        .filter(|n| *n >= 0)
        .map(|n| n as usize)
        .ok_or_else(|| Error::argument(format!("{key} must be non-negative, got {v}")))
}

fn parse_aggregate(out: &str, def: &Json) -> Result<Aggregate> {
    let m = def
        .as_object()
        .filter(|m| m.len() == 1)
        .ok_or_else(|| Error::argument(format!("aggregate '{out}' is {{op: {{field: ...}}}}, got {def}")))?;
    let (op, opts) = m.iter().next().expect("one entry");
    let op = AggregateOp::parse(op)?;
    let field = match opts {
        Json::String(f) => f.clone(),
        Json::Object(o) => o.get("field").and_then(|f| f.as_str()).unwrap_or(OBJECT_ID).to_string(),
        _ => OBJECT_ID.to_string(),
    };
    Ok(Aggregate {
        out: out.to_string(),
        op,
        field,
        distinct: opts.get("distinct").and_then(|d| d.as_bool()).unwrap_or(false),
        q: opts.get("q").and_then(|q| q.as_f64()),
    })
}

/// An immutable query over one entity: each call returns a new query.
#[derive(Debug, Clone)]
pub struct Query {
    ws: Workspace,
    entity: String,
    spec: QuerySpec,
}

impl Workspace {
    /// Start a query over `entity`.
    pub fn query(&self, entity: &str) -> Result<Query> {
        let rt = self.runtime(entity)?;
        Ok(Query { ws: self.clone(), entity: rt.def.entity_id.clone(), spec: QuerySpec::default() })
    }

    /// A query in the JSON query language.
    pub fn query_json(&self, entity: &str, spec: &Json) -> Result<Query> {
        Ok(Query { spec: QuerySpec::from_json(spec)?, ..self.query(entity)? })
    }
}

impl Query {
    pub fn spec(&self) -> &QuerySpec {
        &self.spec
    }
    fn with(mut self, f: impl FnOnce(&mut QuerySpec)) -> Self {
        f(&mut self.spec);
        self
    }
    /// Several calls are ANDed.
    pub fn where_(self, filter: Filter) -> Self {
        self.with(|s| s.filters.push(filter))
    }
    pub fn where_json(self, filter: &Json) -> Result<Self> {
        let f = Filter::from_json(filter)?;
        Ok(self.where_(f))
    }
    pub fn select<S: Into<String>>(self, fields: impl IntoIterator<Item = S>) -> Self {
        let fields: Vec<String> = fields.into_iter().map(Into::into).collect();
        self.with(|s| s.select = fields)
    }
    pub fn order_by(self, field: &str, desc: bool) -> Self {
        self.with(|s| s.order.push((field.to_string(), desc)))
    }
    pub fn limit(self, n: usize) -> Self {
        self.with(|s| s.limit = Some(n))
    }
    pub fn offset(self, n: usize) -> Self {
        self.with(|s| s.offset = n)
    }
    pub fn group_by<S: Into<String>>(self, fields: impl IntoIterator<Item = S>) -> Self {
        let fields: Vec<String> = fields.into_iter().map(Into::into).collect();
        self.with(|s| s.group_by = fields)
    }
    /// `aggregate("avg_price", "avg", "price")`.
    pub fn aggregate(self, out: &str, op: &str, field: &str) -> Result<Self> {
        let a = parse_aggregate(out, &json!({op: {"field": field}}))?;
        Ok(self.with(|s| s.aggregates.push(a)))
    }
    pub fn having(self, filter: Filter) -> Self {
        self.with(|s| s.having.push(filter))
    }
    /// Terminal count: one row, one column `count`.
    /// Nearest neighbours by a vector field: `top_k` (default 50, at most 1000)
    /// rows nearest to `vector` by `metric` (default cosine), filters applied
    /// first, ordered by `score` descending unless an order is given.
    pub fn near(mut self, field: &str, vector: Vec<f32>, top_k: Option<usize>, metric: Option<&str>) -> Result<Self> {
        self.spec.near = Some(crate::near::Near::new(field, vector, top_k, metric)?);
        Ok(self)
    }

    /// `near` as built by [`Near`](crate::Near) (with its `nprobes`, say).
    pub fn near_by(mut self, near: crate::near::Near) -> Self {
        self.spec.near = Some(near);
        self
    }

    /// Full-text search of `fields` (none: every field indexed for search):
    /// the `top_k` (default 50, at most 1000) best rows for `query` by BM25,
    /// filters applied first, ordered by `score` descending unless an order
    /// is given.
    pub fn search(mut self, fields: &[&str], query: &str, top_k: Option<usize>) -> Result<Self> {
        self.spec.search = Some(crate::search::Search::new(fields, query, top_k)?);
        Ok(self)
    }

    /// Text search of `fields` for `query` and nearest neighbours of `vector`
    /// by `vector_field`, fused by Reciprocal Rank Fusion (k = 60): the
    /// `top_k` best rows with `score`, `text_rank` and `vector_rank`.
    pub fn hybrid(
        mut self,
        fields: &[&str],
        query: &str,
        vector_field: &str,
        vector: Vec<f32>,
        top_k: Option<usize>,
    ) -> Result<Self> {
        let search = crate::search::Search::new(fields, query, None)?;
        let near = crate::near::Near::new(vector_field, vector, None, None)?;
        self.spec.hybrid = Some(crate::search::Hybrid::new(search, near, top_k, None)?);
        Ok(self)
    }

    pub fn count(self) -> Self {
        self.with(|s| s.count = true)
    }

    /// The DataFusion plan of this query.
    pub async fn dataframe(&self) -> Result<DataFrame> {
        let rt = self.ws.runtime(&self.entity)?;
        let def = &rt.def;
        let spec = &self.spec;
        if !spec.aggregates.is_empty() && !spec.select.is_empty() {
            return Err(Error::argument("Aggregate defines the result projection; do not combine aggregate() with select()"));
        }
        let rankings = [spec.near.is_some(), spec.search.is_some(), spec.hybrid.is_some()].iter().filter(|r| **r).count();
        if rankings > 1 {
            return Err(Error::argument("near, search and hybrid each rank the rows their own way; use one of them"));
        }
        // `$match` on a field indexed for search (at the top of the filter) is
        // a full-text match, ranked; elsewhere it is a substring test.
        let (matches, filters): (Vec<&Filter>, Vec<&Filter>) = top_level(&spec.filters).into_iter().partition(
            |f| matches!(f, Filter::Op { field, op: FilterOp::Match, value: Json::String(_) } if rt.plan.search_fields().contains(&field.as_str())),
        );
        let mut df = self.ws.session().table(def.table_name()).await?;
        if !filters.is_empty() {
            let exprs = filters.iter().map(|f| compile_filter(def, f)).collect::<Result<Vec<_>>>()?;
            df = df.filter(and_all(exprs))?;
        }
        let mut scored: Vec<String> = Vec::new();
        if rankings > 0 || !matches.is_empty() {
            // Filters pick the candidates; the search runs where the vectors or
            // the text index live; the hits join back to the entity by
            // object_id (key lookups).
            let mut candidates = if filters.is_empty() {
                None
            } else {
                let batches = df.clone().select(vec![ident(OBJECT_ID)])?.collect().await?;
                Some(crate::table::first_column_ids(&batches))
            };
            let mut matched: Vec<(String, f32)> = Vec::new();
            for m in &matches {
                let Filter::Op { field, value: Json::String(text), .. } = m else { unreachable!("partitioned above") };
                let search = crate::search::Search::new(&[field.as_str()], text, None)?.unlimited();
                let hits = self.ws.search(&self.entity, &search, candidates.take()).await?;
                // Several matches: rows matching all, their scores summed.
                let before: std::collections::HashMap<String, f32> = matched.drain(..).collect();
                matched = hits
                    .into_iter()
                    .filter_map(|(id, s)| match before.get(&id) {
                        Some(b) => Some((id, s + b)),
                        None if before.is_empty() => Some((id, s)),
                        None => None,
                    })
                    .collect();
                candidates = Some(matched.iter().map(|(id, _)| id.clone()).collect());
            }
            let hits = if let Some(near) = &spec.near {
                crate::near::hits_batch(&self.ws.near(&self.entity, near, candidates).await?)
            } else if let Some(search) = &spec.search {
                crate::near::hits_batch(&self.ws.search(&self.entity, search, candidates).await?)
            } else if let Some(hybrid) = &spec.hybrid {
                crate::search::hybrid_batch(&self.ws.hybrid(&self.entity, hybrid, candidates).await?)
            } else {
                crate::near::hits_batch(&matched)
            };
            scored = hits.schema().fields().iter().skip(1).map(|f| f.name().clone()).collect();
            let ids: Vec<Expr> = crate::table::first_column_ids(std::slice::from_ref(&hits)).into_iter().map(lit).collect();
            let mut columns = vec![ident(OBJECT_ID).alias("__ranked_id")];
            columns.extend(scored.iter().map(|c| ident(c.as_str())));
            let hits_df = self.ws.session().read_batch(hits)?.select(columns)?;
            let base = self.ws.session().table(def.table_name()).await?;
            let base = if ids.is_empty() { base.filter(lit(false))? } else { base.filter(ident(OBJECT_ID).in_list(ids, false))? };
            let mut cols: Vec<Expr> = base.schema().fields().iter().map(|f| ident(f.name())).collect();
            cols.extend(scored.iter().map(|c| ident(c.as_str())));
            df = base.join(hits_df, datafusion::common::JoinType::Inner, &[OBJECT_ID], &["__ranked_id"], None)?.select(cols)?;
        }
        let near_scored = !scored.is_empty();
        if spec.count {
            return Ok(df.aggregate(vec![], vec![count(ident(OBJECT_ID)).alias("count")])?);
        }
        if !spec.aggregates.is_empty() || !spec.group_by.is_empty() {
            let groups = spec.group_by.iter().map(|g| Ok(field_expr(def, g)?.0.alias(g))).collect::<Result<Vec<_>>>()?;
            let aggs = spec.aggregates.iter().map(|a| compile_aggregate(def, a)).collect::<Result<Vec<_>>>()?;
            df = df.aggregate(groups, aggs)?;
            if !spec.having.is_empty() {
                let exprs = spec.having.iter().map(compile_having).collect::<Result<Vec<_>>>()?;
                df = df.filter(and_all(exprs))?;
            }
            let order: Vec<(String, bool)> = if spec.order.is_empty() {
                spec.group_by.iter().map(|g| (g.clone(), false)).collect()
            } else {
                spec.order.clone()
            };
            if !order.is_empty() {
                df = df.sort(order.iter().map(|(f, d)| ident(f).sort(!d, false)).collect())?;
            }
            return Ok(df.limit(spec.offset, spec.limit)?);
        }
        let mut order = Vec::new();
        for (f, desc) in &spec.order {
            if scored.contains(f) {
                order.push(ident(f.as_str()).sort(!desc, false));
                continue;
            }
            order.push(field_expr(def, f)?.0.sort(!desc, false));
        }
        if near_scored && spec.order.is_empty() {
            order.push(ident("score").sort(false, false));
        }
        // A stable base order: object_id ascending.
        order.push(ident(OBJECT_ID).sort(true, false));
        df = df.sort(order)?;
        if !spec.select.is_empty() {
            let mut cols = vec![ident(OBJECT_ID)];
            for f in spec.select.iter().filter(|f| *f != OBJECT_ID && !scored.contains(f)) {
                cols.push(field_expr(def, f)?.0.alias(f));
            }
            cols.extend(scored.iter().map(|c| ident(c.as_str())));
            df = df.select(cols)?;
        }
        Ok(df.limit(spec.offset, spec.limit)?)
    }

    pub async fn execute(&self) -> Result<Vec<RecordBatch>> {
        Ok(self.dataframe().await?.collect().await?)
    }

    /// Result rows as JSON.
    pub async fn rows(&self) -> Result<Vec<Row>> {
        let def = self.ws.entity(&self.entity)?;
        let batches = self.execute().await?;
        let mut out = Vec::new();
        for b in &batches {
            let types: Vec<LogicalType> = b
                .schema()
                .fields()
                .iter()
                .map(|f| def.get(f.name()).map(|d| d.ty.clone()).unwrap_or(LogicalType::short_text()))
                .collect();
            out.extend(batch_rows(b, &types));
        }
        Ok(out)
    }

    /// How the query runs: per field group the backend, the filters pushed into
    /// it and whether they ran natively, then what DataFusion does after the stitch.
    pub async fn explain(&self) -> Result<Json> {
        let df = self.dataframe().await?;
        let batches = df.explain(false, false)?.collect().await?;
        let mut plans = Map::new();
        for b in &batches {
            for r in 0..b.num_rows() {
                let kind = heavenbase_catalog::value::display_value(b.column(0).as_ref(), r);
                let text = heavenbase_catalog::value::display_value(b.column(1).as_ref(), r);
                plans.insert(kind, Json::Array(text.lines().map(|l| json!(l)).collect()));
            }
        }
        Ok(json!({
            "workspace": self.ws.id(),
            "entity": self.entity,
            "query": self.spec.to_json(),
            "storage_plan": self.ws.placement(&self.entity)?.to_json(),
            "logical_plan": plans.get("logical_plan").cloned().unwrap_or(Json::Null),
            "physical_plan": plans.get("physical_plan").cloned().unwrap_or(Json::Null),
        }))
    }
}

fn is_distinct_from(a: Expr, b: Expr) -> Expr {
    Expr::BinaryExpr(BinaryExpr::new(Box::new(a), Operator::IsDistinctFrom, Box::new(b)))
}

fn and_all(exprs: Vec<Expr>) -> Expr {
    exprs.into_iter().reduce(|a, b| a.and(b)).unwrap_or_else(|| lit(true))
}

/// A field or dotted JSON path as an expression, with its logical type
/// (None for a JSON path, whose kind is decided per row).
fn field_expr(def: &EntityDef, name: &str) -> Result<(Expr, Option<LogicalType>)> {
    if let Some(f) = def.get(name) {
        return Ok((ident(name), Some(f.ty.clone())));
    }
    if let Some((head, path)) = name.split_once('.') {
        if let Some(f) = def.get(head) {
            if f.ty != LogicalType::Json {
                return Err(Error::argument(format!(
                    "{}.{head} is {}, not Json: '{name}' is not a JSON path",
                    def.entity_id,
                    f.ty.type_id()
                )));
            }
            return Ok((json_call("json_as_text", head, path), None));
        }
    }
    Err(unknown_field(def, name))
}

fn unknown_field(def: &EntityDef, name: &str) -> Error {
    Error::unknown_field(format!(
        "Unknown field '{name}' on entity '{}'.{}",
        def.entity_id,
        suggest(name, def.fields.iter().map(|f| f.name.as_str()))
    ))
}

fn json_call(function: &str, column: &str, path: &str) -> Expr {
    use datafusion_functions_json::udfs;
    let udf = match function {
        "json_get_str" => udfs::json_get_str_udf(),
        "json_get_int" => udfs::json_get_int_udf(),
        "json_get_float" => udfs::json_get_float_udf(),
        "json_get_bool" => udfs::json_get_bool_udf(),
        "json_get_json" => udfs::json_get_json_udf(),
        _ => udfs::json_as_text_udf(),
    };
    let mut args = vec![ident(column)];
    args.extend(path.split('.').map(|p| lit(p.to_string())));
    udf.call(args)
}

/// A JSON value as a literal of the column's type (validated like a write).
fn literal(def: &EntityDef, field: &str, ty: &LogicalType, v: &Json) -> Result<Expr> {
    let bad = |m: String| Error::invalid(format!("filter on {}.{field}: {m} (value {})", def.entity_id, describe_value(v)));
    let canonical = ty.coerce(v).map_err(bad)?;
    let value = match ty {
        LogicalType::Integer | LogicalType::Duration => ScalarValue::Int64(canonical.as_i64()),
        LogicalType::Categorical { base: heavenbase_catalog::types::CategoricalBase::Integer, .. } => {
            ScalarValue::Int64(canonical.as_i64())
        }
        LogicalType::Float => ScalarValue::Float64(canonical.as_f64()),
        LogicalType::Boolean => ScalarValue::Boolean(canonical.as_bool()),
        LogicalType::Timestamp => ScalarValue::TimestampMillisecond(Some(coerce_timestamp(v).map_err(bad)?), Some("UTC".into())),
        LogicalType::Date => ScalarValue::Date32(Some(coerce_date(v).map_err(bad)?)),
        LogicalType::Json => ScalarValue::Utf8(Some(canonical.to_string())),
        _ => ScalarValue::Utf8(canonical.as_str().map(String::from)),
    };
    Ok(lit(value))
}

/// A literal by JSON kind (JSON paths, HAVING over aggregates).
fn natural_literal(v: &Json) -> Expr {
    match v {
        Json::Bool(b) => lit(*b),
        Json::Number(n) if n.is_i64() => lit(n.as_i64().expect("i64")),
        Json::Number(n) => lit(n.as_f64().unwrap_or(0.0)),
        Json::String(s) => lit(s.clone()),
        other => lit(other.to_string()),
    }
}

fn compile_filter(def: &EntityDef, f: &Filter) -> Result<Expr> {
    Ok(match f {
        Filter::And(v) => and_all(v.iter().map(|f| compile_filter(def, f)).collect::<Result<_>>()?),
        Filter::Or(v) => v
            .iter()
            .map(|f| compile_filter(def, f))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .reduce(|a, b| a.or(b))
            .unwrap_or_else(|| lit(false)),
        // The complement over all rows: a NULL inner result counts as false.
        Filter::Not(inner) => datafusion::functions::expr_fn::coalesce(vec![compile_filter(def, inner)?, lit(false)]).not(),
        Filter::Op { field, op, value } => compile_op(def, field, *op, value)?,
    })
}

fn compile_op(def: &EntityDef, field: &str, op: FilterOp, value: &Json) -> Result<Expr> {
    let (expr, ty) = match def.get(field) {
        Some(f) => (ident(field), Some(f.ty.clone())),
        None => {
            let (head, path) = field.split_once('.').ok_or_else(|| unknown_field(def, field))?;
            field_expr(def, field)?;
            return compile_json_path(head, path, op, value);
        }
    };
    let ty = ty.expect("declared field");
    let is_array = matches!(ty, LogicalType::Array { .. });
    let item_ty = match &ty {
        LogicalType::Array { item } => item.as_deref().cloned().unwrap_or(LogicalType::Json),
        other => other.clone(),
    };
    let lit_of = |v: &Json| literal(def, field, &item_ty, v);
    let text = |v: &Json| -> Result<Expr> {
        v.as_str()
            .map(|s| lit(s.to_string()))
            .ok_or_else(|| Error::argument(format!("${op} on {}.{field} takes text, got {}", def.entity_id, describe_value(v))))
    };
    let not_a_list =
        || Error::argument(format!("${op} on {}.{field} takes a list, got {}", def.entity_id, describe_value(value)));
    Ok(match op {
        FilterOp::Eq if value.is_null() => expr.is_null(),
        FilterOp::Ne if value.is_null() => expr.is_not_null(),
        FilterOp::Eq if !is_array => expr.eq(lit_of(value)?),
        FilterOp::Ne if !is_array => is_distinct_from(expr, lit_of(value)?),
        FilterOp::Lt => expr.lt(lit_of(value)?),
        FilterOp::Lte => expr.lt_eq(lit_of(value)?),
        FilterOp::Gt => expr.gt(lit_of(value)?),
        FilterOp::Gte => expr.gt_eq(lit_of(value)?),
        FilterOp::In => {
            let items = value.as_array().ok_or_else(not_a_list)?;
            let has_null = items.iter().any(Json::is_null);
            let values = items.iter().filter(|v| !v.is_null()).map(lit_of).collect::<Result<Vec<_>>>()?;
            let base = if values.is_empty() { lit(false) } else { expr.clone().in_list(values, false) };
            if has_null { base.or(expr.is_null()) } else { base }
        }
        FilterOp::Match => strpos(lower(expr), lower(text(value)?)).gt(lit(0i32)),
        FilterOp::Contains | FilterOp::ArrayContains if is_array => array_has(expr, lit_of(value)?),
        FilterOp::Contains => strpos(expr, text(value)?).gt(lit(0i32)),
        FilterOp::Like => expr.like(text(value)?),
        FilterOp::Ilike => expr.ilike(text(value)?),
        FilterOp::Regex => {
            let pattern = value.as_str().unwrap_or_default();
            if pattern.chars().count() > MAX_REGEX_LEN {
                return Err(Error::new(
                    ErrorKind::TooComplex,
                    format!("regex patterns are limited to {MAX_REGEX_LEN} characters"),
                ));
            }
            regexp_like(expr, text(value)?, None)
        }
        FilterOp::StartsWith => starts_with(expr, text(value)?),
        FilterOp::EndsWith => ends_with(expr, text(value)?),
        FilterOp::ContainedIn if is_array => {
            let items = value.as_array().ok_or_else(not_a_list)?.iter().map(lit_of).collect::<Result<Vec<_>>>()?;
            array_has_all(make_array(items), expr)
        }
        other => {
            return Err(Error::argument(format!("${other} does not apply to {}.{field} ({})", def.entity_id, ty.type_id())));
        }
    })
}

/// Comparisons on a JSON path are strictly JSON-kinded: the value's kind picks
/// the extractor, so `true` never equals `1` and a kind mismatch is false.
fn compile_json_path(column: &str, path: &str, op: FilterOp, value: &Json) -> Result<Expr> {
    let extractor = |v: &Json| match v {
        Json::Bool(_) => "json_get_bool",
        Json::Number(n) if n.is_i64() => "json_get_int",
        Json::Number(_) => "json_get_float",
        Json::String(_) => "json_get_str",
        _ => "json_get_json",
    };
    let get = |v: &Json| json_call(extractor(v), column, path);
    let as_lit = |v: &Json| match v {
        Json::Object(_) | Json::Array(_) => lit(v.to_string()),
        other => natural_literal(other),
    };
    Ok(match op {
        FilterOp::Eq if value.is_null() => json_call("json_get_json", column, path).is_null(),
        FilterOp::Ne if value.is_null() => json_call("json_get_json", column, path).is_not_null(),
        FilterOp::Eq => get(value).eq(as_lit(value)),
        FilterOp::Ne => is_distinct_from(get(value), as_lit(value)),
        FilterOp::Lt => get(value).lt(as_lit(value)),
        FilterOp::Lte => get(value).lt_eq(as_lit(value)),
        FilterOp::Gt => get(value).gt(as_lit(value)),
        FilterOp::Gte => get(value).gt_eq(as_lit(value)),
        FilterOp::In => {
            let items = value.as_array().ok_or_else(|| Error::argument(format!("$in on {column}.{path} takes a list")))?;
            items.iter().map(|v| get(v).eq(as_lit(v))).reduce(|a, b| a.or(b)).unwrap_or_else(|| lit(false))
        }
        FilterOp::Contains => {
            strpos(json_call("json_as_text", column, path), lit(value.as_str().unwrap_or_default().to_string())).gt(lit(0i32))
        }
        other => return Err(Error::argument(format!("${other} does not apply to the JSON path {column}.{path}"))),
    })
}

fn compile_aggregate(def: &EntityDef, a: &Aggregate) -> Result<Expr> {
    let (e, _) = field_expr(def, &a.field)?;
    let agg = match (a.op, a.distinct) {
        (AggregateOp::Count, false) => count(e),
        (AggregateOp::Count, true) => count_distinct(e),
        (AggregateOp::Sum, _) => sum(e),
        (AggregateOp::Avg, _) => avg(datafusion::logical_expr::cast(e, datafusion::arrow::datatypes::DataType::Float64)),
        (AggregateOp::Min, _) => min(e),
        (AggregateOp::Max, _) => max(e),
        (AggregateOp::Median, _) => median(e),
        (AggregateOp::Percentile, _) => {
            let q =
                a.q.filter(|q| (0.0..=1.0).contains(q))
                    .ok_or_else(|| Error::argument(format!("percentile '{}' needs q in [0, 1]", a.out)))?;
            datafusion::functions_aggregate::expr_fn::percentile_cont(e.sort(true, false), lit(q))
        }
    };
    Ok(agg.alias(&a.out))
}

/// HAVING works on output columns (group fields and aggregate names).
fn compile_having(f: &Filter) -> Result<Expr> {
    Ok(match f {
        Filter::And(v) => and_all(v.iter().map(compile_having).collect::<Result<_>>()?),
        Filter::Or(v) => {
            v.iter().map(compile_having).collect::<Result<Vec<_>>>()?.into_iter().reduce(|a, b| a.or(b)).unwrap_or(lit(false))
        }
        Filter::Not(inner) => compile_having(inner)?.not(),
        Filter::Op { field, op, value } => {
            let e = col(format!("\"{}\"", field.replace('"', "\"\"")));
            let v = natural_literal(value);
            match op {
                FilterOp::Eq => e.eq(v),
                FilterOp::Ne => e.not_eq(v),
                FilterOp::Lt => e.lt(v),
                FilterOp::Lte => e.lt_eq(v),
                FilterOp::Gt => e.gt(v),
                FilterOp::Gte => e.gt_eq(v),
                other => return Err(Error::argument(format!("${other} is not supported in having"))),
            }
        }
    })
}
