//! Elasticsearch and OpenSearch as a search backend: a thin client of their
//! REST API (bulk writes, `_search` with `match` / `match_phrase` / `prefix`
//! under `bool`, `_count`, delete by id), on the reqwest the tree already has.
//!
//! Each field group is one index, `{index_prefix}{table}`, created on
//! registration with one shard (so BM25's statistics are the whole index's and
//! ranks do not depend on how documents fall into shards) and a strict mapping:
//! `object_id` as a keyword (the document `_id` too, and the tie-break of
//! every ranking, as in the other engines), text columns indexed for search as
//! `text` with the configured analyzer, other text as `keyword`, numbers and
//! booleans as themselves. Other types are refused by name: the search backend
//! holds the text a workspace searches, not rows.
//!
//! Every write asks for a refresh, so a write the engine acknowledges is
//! searched by the next query (docs/design.md, "Search"). Writes are not one
//! transaction: a bulk request that fails part-way reports the first failure.
//!
//! Scores are the server's BM25. Elasticsearch and OpenSearch compute Lucene's
//! BM25, which is the formula of crate::text except that document lengths are
//! stored in one byte (exact up to 40 words or so, then rounded); tokenizing is
//! the configured analyzer's (`standard` by default: it keeps `don't` and
//! `x_y` as one word where crate::text splits them).

use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch};
use datafusion::logical_expr::Expr;
use heavenbase_catalog::value::array_value;
use heavenbase_catalog::{BackendInfo, ColumnBuilder, OBJECT_ID, PhysicalType};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value as Json, json};

use crate::backend::{Backend, ColumnChange, ColumnSpec, GroupSpec, Pushdown, ScanRequest, scan_schema};
use crate::text::{Clause, Matcher, Occur, Scored, TextRequest};
use crate::{BackendContext, ProviderError, Result};

/// Documents per `_search` page of a scan (under the default
/// `index.max_result_window` of 10,000).
const PAGE: usize = 5_000;
/// Ids per `ids` query (under the default `index.max_terms_count` of 65,536).
const IDS_PER_QUERY: usize = 10_000;
/// Bytes per bulk request before it is sent and another begun.
const BULK_BYTES: usize = 4 << 20;

#[derive(Debug)]
pub struct ElasticBackend {
    info: BackendInfo,
    /// Base URLs, tried in order: the next is used when one cannot be reached.
    hosts: Vec<String>,
    index_prefix: String,
    analyzer: String,
    auth: Option<(String, String)>,
    client: reqwest::Client,
}

impl ElasticBackend {
    /// `kind` is `elasticsearch` or `opensearch` (the same API).
    /// Configuration: `hosts` (a URL or a list; also `url`), `index_prefix`
    /// (default `hb_{ws_id}_`), `username` / `password`, `timeout` in seconds
    /// (default 30), `analyzer` (default `standard`).
    pub fn from_config(kind: &str, name: &str, config: &Map<String, Json>, cx: &BackendContext) -> Result<Self> {
        let bad = |m: String| ProviderError::Config(format!("backend '{name}' ({kind}): {m}"));
        let hosts: Vec<String> = match config.get("hosts").or_else(|| config.get("url")) {
            None => vec!["http://localhost:9200".into()],
            Some(Json::String(h)) => vec![h.clone()],
            Some(Json::Array(hs)) => hs
                .iter()
                .map(|h| h.as_str().map(str::to_string).ok_or_else(|| bad(format!("hosts are URLs, got {h}"))))
                .collect::<Result<_>>()?,
            Some(other) => return Err(bad(format!("hosts is a URL or a list of URLs, got {other}"))),
        };
        if hosts.is_empty() {
            return Err(bad("hosts is empty".into()));
        }
        for h in &hosts {
            if !(h.starts_with("http://") || h.starts_with("https://")) {
                return Err(bad(format!("host '{}' is not an http:// or https:// URL", redact(h))));
            }
        }
        let text = |key: &str| -> Result<Option<String>> {
            match config.get(key) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(bad(format!("{key} is text, got {other}"))),
            }
        };
        let prefix = text("index_prefix")?.unwrap_or_else(|| "hb_{ws_id}_".into());
        let index_prefix = index_part(&cx.expand(&prefix));
        let analyzer = text("analyzer")?.unwrap_or_else(|| "standard".into());
        let auth = match (text("username")?, text("password")?) {
            (Some(u), p) => Some((u, p.unwrap_or_default())),
            (None, None) => None,
            (None, Some(_)) => return Err(bad("a password needs a username".into())),
        };
        let timeout = match config.get("timeout") {
            None => 30.0,
            Some(t) => t.as_f64().filter(|t| *t > 0.0).ok_or_else(|| bad(format!("timeout is seconds, got {t}")))?,
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(timeout))
            .build()
            .map_err(|e| bad(format!("HTTP client: {e}")))?;
        Ok(ElasticBackend {
            info: BackendInfo { name: name.into(), kind: kind.into(), tags: vec!["text".into(), "search".into()] },
            hosts: hosts.into_iter().map(|h| h.trim_end_matches('/').to_string()).collect(),
            index_prefix,
            analyzer,
            auth,
            client,
        })
    }

    /// The index of a group: the prefix and the table name, made a valid index
    /// name (lower case; other characters `_`), with a hash of the table name
    /// when that changed it, so `Notes` and `notes` stay apart.
    pub fn index(&self, group: &GroupSpec) -> String {
        let part = index_part(&group.table);
        if part == group.table {
            format!("{}{part}", self.index_prefix)
        } else {
            format!("{}{part}-{:08x}", self.index_prefix, fnv(&group.table) as u32)
        }
    }

    fn error(&self, message: String) -> ProviderError {
        ProviderError::Backend { backend: self.info.name.clone(), kind: self.info.kind.clone(), message }
    }

    /// One request, to the first host that answers. Returns the status and the
    /// JSON body (Null when empty).
    async fn call(&self, method: Method, path: &str, body: Option<Body>) -> Result<(StatusCode, Json)> {
        let mut unreachable = Vec::new();
        for host in &self.hosts {
            let mut request = self.client.request(method.clone(), format!("{host}{path}"));
            if let Some((user, password)) = &self.auth {
                request = request.basic_auth(user, Some(password));
            }
            request = match &body {
                Some(Body::Json(j)) => request.json(j),
                Some(Body::Lines(text)) => request.header("Content-Type", "application/x-ndjson").body(text.clone()),
                None => request,
            };
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let bytes =
                        response.bytes().await.map_err(|e| self.error(format!("{method} {path}: {}", e.without_url())))?;
                    let json = if bytes.is_empty() {
                        Json::Null
                    } else {
                        serde_json::from_slice(&bytes).map_err(|e| {
                            self.error(format!("{method} {path}: the answer is not JSON ({e}): {}", preview(&bytes)))
                        })?
                    };
                    return Ok((status, json));
                }
                // Errors are shown without their URL: it may hold a password.
                Err(e) if e.is_connect() || e.is_timeout() => unreachable.push(format!("{}: {}", redact(host), e.without_url())),
                Err(e) => return Err(self.error(format!("{method} {path}: {}", e.without_url()))),
            }
        }
        Err(ProviderError::Unavailable {
            backend: self.info.name.clone(),
            kind: self.info.kind.clone(),
            message: format!("no host answered ({})", unreachable.join("; ")),
        })
    }

    /// [`Self::call`], requiring a 2xx answer.
    async fn ok(&self, method: Method, path: &str, body: Option<Body>) -> Result<Json> {
        let (status, json) = self.call(method.clone(), path, body).await?;
        if status.is_success() { Ok(json) } else { Err(self.error(format!("{method} {path}: {status}: {}", reason(&json)))) }
    }

    /// `_search` on `index`; a missing index is an error that says so.
    async fn search(&self, index: &str, body: Json) -> Result<Vec<Json>> {
        let answer = self.ok(Method::POST, &format!("/{index}/_search"), Some(Body::Json(body))).await?;
        match answer.pointer("/hits/hits") {
            Some(Json::Array(hits)) => Ok(hits.clone()),
            _ => {
                Err(self.error(format!("_search on {index}: no hits in the answer: {}", preview(answer.to_string().as_bytes()))))
            }
        }
    }

    /// Send bulk `lines` (already NDJSON) to `index`, making them searchable
    /// when `refresh`; the items of the answer.
    async fn bulk(&self, index: &str, lines: String, refresh: bool) -> Result<Vec<Json>> {
        let path = format!("/{index}/_bulk{}", if refresh { "?refresh=true" } else { "" });
        let answer = self.ok(Method::POST, &path, Some(Body::Lines(lines))).await?;
        let items = answer.get("items").and_then(Json::as_array).cloned().unwrap_or_default();
        Ok(items)
    }

    /// The first item error of a bulk answer, ignoring deletes of missing documents.
    fn bulk_error(&self, index: &str, items: &[Json]) -> Result<()> {
        for item in items {
            let Some((action, result)) = item.as_object().and_then(|o| o.iter().next()) else { continue };
            if let Some(error) = result.get("error") {
                if action == "delete" && error.get("type").and_then(Json::as_str) == Some("index_not_found_exception") {
                    continue;
                }
                let id = result.get("_id").and_then(Json::as_str).unwrap_or("?");
                return Err(self.error(format!("bulk {action} of {id} in {index}: {}", reason(&json!({"error": error})))));
            }
        }
        Ok(())
    }

    fn mapping(&self, group: &GroupSpec) -> Result<Json> {
        let mut properties = Map::new();
        properties.insert(OBJECT_ID.into(), json!({"type": "keyword"}));
        for c in &group.columns {
            properties.insert(c.name.clone(), self.column_mapping(group, c)?);
        }
        Ok(Json::Object(properties))
    }

    fn column_mapping(&self, group: &GroupSpec, c: &ColumnSpec) -> Result<Json> {
        Ok(match c.ty.physical() {
            PhysicalType::Text if c.search => json!({"type": "text", "analyzer": self.analyzer}),
            PhysicalType::Text => json!({"type": "keyword"}),
            PhysicalType::Int => json!({"type": "long"}),
            PhysicalType::Float => json!({"type": "double"}),
            PhysicalType::Bool => json!({"type": "boolean"}),
            _ => {
                return Err(ProviderError::Config(format!(
                    "{}.{}: {} backend '{}' holds text, numbers and booleans for search, not {}; place the field in a \
                     row backend",
                    group.entity_id,
                    c.name,
                    self.info.kind,
                    self.info.name,
                    c.ty.type_id()
                )));
            }
        })
    }

    /// The `bool` query of a text request: each clause matched in any of the
    /// fields (its score the sum over the fields that match, as crate::text).
    fn query(&self, request: &TextRequest) -> Json {
        let per_field = |clause: &Clause| -> Vec<Json> {
            request
                .columns
                .iter()
                .map(|field| match &clause.matcher {
                    Matcher::Word(w) => json!({"match": {field: {"query": w}}}),
                    Matcher::Phrase(ws) => json!({"match_phrase": {field: {"query": ws.join(" ")}}}),
                    Matcher::Prefix(p) => json!({"prefix": {field: {"value": p}}}),
                })
                .collect()
        };
        let (mut should, mut must, mut must_not) = (Vec::new(), Vec::new(), Vec::new());
        for clause in &request.query.clauses {
            let fields = per_field(clause);
            match clause.occur {
                Occur::Should => should.extend(fields),
                Occur::Must => must.push(json!({"bool": {"should": fields, "minimum_should_match": 1}})),
                Occur::MustNot => must_not.extend(fields),
            }
        }
        let mut bool = Map::new();
        bool.insert("should".into(), Json::Array(should));
        bool.insert("must".into(), Json::Array(must.clone()));
        bool.insert("must_not".into(), Json::Array(must_not));
        if must.is_empty() {
            bool.insert("minimum_should_match".into(), json!(1));
        }
        json!({"bool": bool})
    }

    /// The `k` best of `query` restricted by `filter`, best first, ties by object_id.
    async fn ranked(&self, index: &str, query: &Json, filter: Option<&[String]>, k: usize) -> Result<Vec<Scored>> {
        let query = match filter {
            Some(ids) => json!({"bool": {"must": [query], "filter": [{"ids": {"values": ids}}]}}),
            None => query.clone(),
        };
        let mut out: Vec<Scored> = Vec::new();
        let mut after: Option<Json> = None;
        while out.len() < k {
            let size = (k - out.len()).min(PAGE);
            let mut body = json!({
                "query": query, "size": size, "_source": false, "track_scores": true,
                "sort": [{"_score": "desc"}, {OBJECT_ID: "asc"}],
            });
            if let Some(a) = after.take() {
                body["search_after"] = a;
            }
            let hits = self.search(index, body).await?;
            let full = hits.len() == size;
            for hit in &hits {
                let id = hit.get("_id").and_then(Json::as_str).unwrap_or_default().to_string();
                let score = hit
                    .get("_score")
                    .and_then(Json::as_f64)
                    .or_else(|| hit.pointer("/sort/0").and_then(Json::as_f64))
                    .unwrap_or(0.0);
                out.push((id, score as f32));
                after = hit.get("sort").cloned();
            }
            if !full || after.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// One page of documents as a batch of `columns` (object_id first).
    fn page_batch(&self, group: &GroupSpec, columns: &[String], hits: &[Json]) -> Result<RecordBatch> {
        let schema = scan_schema(group, columns);
        let mut builders: Vec<(ColumnBuilder, &str)> = Vec::with_capacity(schema.fields().len());
        builders.push((ColumnBuilder::new(&heavenbase_catalog::LogicalType::short_text(), hits.len()), OBJECT_ID));
        for f in schema.fields().iter().skip(1) {
            let spec = group.column(f.name()).expect("scan_schema keeps the group's columns");
            builders.push((ColumnBuilder::new(&spec.ty, hits.len()), f.name()));
        }
        for hit in hits {
            let id = hit.get("_id").cloned().unwrap_or(Json::Null);
            let source = hit.get("_source");
            for (i, (builder, name)) in builders.iter_mut().enumerate() {
                let value = if i == 0 { &id } else { source.and_then(|s| s.get(*name)).unwrap_or(&Json::Null) };
                builder.push(value).map_err(|e| self.error(format!("{}.{name}: {e}", group.table)))?;
            }
        }
        let arrays: Vec<ArrayRef> = builders.into_iter().map(|(b, _)| b.finish()).collect();
        RecordBatch::try_new(schema, arrays).map_err(|e| self.error(e.to_string()))
    }

    /// Every document of the index, in object_id order, a page at a time.
    async fn scan_all(&self, group: &GroupSpec, request: &ScanRequest) -> Result<Vec<RecordBatch>> {
        let index = self.index(group);
        let source = source_filter(&request.columns);
        let limit = request.limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        let mut seen = 0usize;
        if let Some(ids) = &request.ids {
            for chunk in ids.chunks(IDS_PER_QUERY) {
                if seen >= limit {
                    break;
                }
                let size = chunk.len().min(limit - seen);
                let body =
                    json!({"query": {"ids": {"values": chunk}}, "size": size, "_source": source, "sort": [{OBJECT_ID: "asc"}]});
                let hits = self.search(&index, body).await?;
                seen += hits.len();
                out.push(self.page_batch(group, &request.columns, &hits)?);
            }
            return Ok(out);
        }
        let mut after: Option<Json> = None;
        while seen < limit {
            let size = (limit - seen).min(PAGE);
            let mut body = json!({"query": {"match_all": {}}, "size": size, "_source": source, "sort": [{OBJECT_ID: "asc"}]});
            if let Some(a) = after.take() {
                body["search_after"] = a;
            }
            let hits = self.search(&index, body).await?;
            seen += hits.len();
            after = hits.last().and_then(|h| h.get("sort").cloned());
            let full = hits.len() == size;
            out.push(self.page_batch(group, &request.columns, &hits)?);
            if !full || after.is_none() {
                break;
            }
        }
        Ok(out)
    }
}

enum Body {
    Json(Json),
    /// NDJSON, for `_bulk`.
    Lines(String),
}

/// `_source` for the columns asked for (false when only ids are).
fn source_filter(columns: &[String]) -> Json {
    if columns.is_empty() { Json::Bool(false) } else { json!({"includes": columns}) }
}

/// A valid index-name part: lower case, `[a-z0-9_-]`, everything else `_`.
fn index_part(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' { c } else { '_' }).collect()
}

/// FNV-1a, for stable index-name suffixes.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// A host URL without its user information (never show a password).
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}***@{}", &url[..scheme + 3], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// The reason of an Elasticsearch error answer.
fn reason(answer: &Json) -> String {
    let error = answer.get("error");
    let root = error.and_then(|e| e.pointer("/root_cause/0")).or(error);
    match root {
        Some(Json::Object(e)) => {
            let kind = e.get("type").and_then(Json::as_str).unwrap_or("error");
            let why = e.get("reason").and_then(Json::as_str).unwrap_or("");
            format!("{kind}: {why}")
        }
        Some(Json::String(s)) => s.clone(),
        _ => preview(answer.to_string().as_bytes()),
    }
}

fn preview(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut end = text.len().min(300);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[async_trait]
impl Backend for ElasticBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn describe(&self) -> Json {
        json!({
            "name": self.info.name, "type": self.info.kind, "tags": self.info.tags,
            "hosts": self.hosts.iter().map(|h| redact(h)).collect::<Vec<_>>(),
            "index_prefix": self.index_prefix, "analyzer": self.analyzer,
            "username": self.auth.as_ref().map(|a| a.0.clone()),
        })
    }

    async fn ensure_group(&self, group: &GroupSpec) -> Result<()> {
        let index = self.index(group);
        let properties = self.mapping(group)?;
        let create = json!({
            "settings": {"number_of_shards": 1},
            "mappings": {"dynamic": "strict", "properties": properties},
        });
        let (status, answer) = self.call(Method::PUT, &format!("/{index}"), Some(Body::Json(create))).await?;
        if status.is_success() {
            return Ok(());
        }
        let exists = answer.pointer("/error/type").and_then(Json::as_str) == Some("resource_already_exists_exception");
        if !exists {
            return Err(self.error(format!("create index {index}: {status}: {}", reason(&answer))));
        }
        // Additive evolution: new columns join the mapping; a changed one is refused by the server.
        self.ok(Method::PUT, &format!("/{index}/_mapping"), Some(Body::Json(json!({"properties": properties})))).await?;
        Ok(())
    }

    async fn upsert(&self, group: &GroupSpec, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let index = self.index(group);
        let schema = batch.schema();
        // Cells as `get` reads them (heavenbase_catalog::value), by the column's type.
        let present: Vec<(usize, &ColumnSpec)> =
            schema.fields().iter().enumerate().skip(1).filter_map(|(i, f)| group.column(f.name()).map(|c| (i, c))).collect();
        // New rows take each left-out column's default.
        let defaults: Vec<(&str, Json)> = group
            .columns
            .iter()
            .filter(|c| !present.iter().any(|(_, p)| p.name == c.name))
            .filter_map(|c| c.default.clone().filter(|d| !d.is_null()).map(|d| (c.name.as_str(), d)))
            .collect();
        let ids = batch.column(0).as_string::<i32>();
        let mut lines = String::new();
        for row in 0..batch.num_rows() {
            let id = ids.value(row);
            let mut doc = Map::new();
            doc.insert(OBJECT_ID.into(), Json::String(id.into()));
            for (i, column) in &present {
                doc.insert(column.name.clone(), array_value(batch.column(*i).as_ref(), row, &column.ty));
            }
            let mut upsert = doc.clone();
            for (name, value) in &defaults {
                upsert.insert((*name).into(), value.clone());
            }
            lines.push_str(&json!({"update": {"_id": id}}).to_string());
            lines.push('\n');
            lines.push_str(&json!({"doc": doc, "upsert": upsert}).to_string());
            lines.push('\n');
            if lines.len() >= BULK_BYTES && row + 1 < batch.num_rows() {
                let items = self.bulk(&index, std::mem::take(&mut lines), false).await?;
                self.bulk_error(&index, &items)?;
            }
        }
        let items = self.bulk(&index, lines, true).await?;
        self.bulk_error(&index, &items)
    }

    async fn delete(&self, group: &GroupSpec, ids: &[String]) -> Result<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let index = self.index(group);
        let mut found = Vec::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let mut lines = String::new();
            for id in chunk {
                lines.push_str(&json!({"delete": {"_id": id}}).to_string());
                lines.push('\n');
            }
            let items = self.bulk(&index, lines, true).await?;
            self.bulk_error(&index, &items)?;
            for item in &items {
                if item.pointer("/delete/result").and_then(Json::as_str) == Some("deleted")
                    && let Some(id) = item.pointer("/delete/_id").and_then(Json::as_str)
                {
                    found.push(id.to_string());
                }
            }
        }
        Ok(found)
    }

    fn filter_pushdown(&self, _group: &GroupSpec, _filter: &Expr) -> Pushdown {
        Pushdown::Unsupported
    }

    async fn scan(&self, group: &GroupSpec, request: &ScanRequest) -> Result<Vec<RecordBatch>> {
        self.scan_all(group, request).await
    }

    async fn count(&self, group: &GroupSpec) -> Result<usize> {
        let index = self.index(group);
        let answer = self.ok(Method::GET, &format!("/{index}/_count"), None).await?;
        answer
            .get("count")
            .and_then(Json::as_u64)
            .map(|c| c as usize)
            .ok_or_else(|| self.error(format!("_count on {index}: no count in the answer")))
    }

    async fn drop_group(&self, group: &GroupSpec) -> Result<()> {
        let index = self.index(group);
        let (status, answer) = self.call(Method::DELETE, &format!("/{index}"), None).await?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(self.error(format!("delete index {index}: {status}: {}", reason(&answer))))
        }
    }

    /// A mapping cannot drop or rename a field: the index is rebuilt with the
    /// new mapping and its documents written back (not atomic: a failure
    /// part-way leaves the documents read so far; `hb repair` reindexes).
    async fn alter_group(&self, group: &GroupSpec, change: &ColumnChange) -> Result<()> {
        let all: Vec<String> = group.columns.iter().map(|c| c.name.clone()).collect();
        let batches = self.scan_all(group, &ScanRequest { columns: all, ..Default::default() }).await?;
        let columns: Vec<ColumnSpec> = group
            .columns
            .iter()
            .filter(|c| !matches!(change, ColumnChange::Drop(d) if *d == c.name))
            .map(|c| match change {
                ColumnChange::Rename { from, to } if *from == c.name => ColumnSpec { name: to.clone(), ..c.clone() },
                _ => c.clone(),
            })
            .collect();
        let after = GroupSpec::new(&group.entity_id, &group.table, columns, group.indexes.clone());
        self.mapping(&after)?;
        self.drop_group(group).await?;
        self.ensure_group(&after).await?;
        for batch in batches {
            let keep: Vec<usize> = (0..batch.num_columns())
                .filter(|i| !matches!(change, ColumnChange::Drop(d) if batch.schema().field(*i).name() == d))
                .collect();
            let arrays: Vec<ArrayRef> = keep.iter().map(|i| batch.column(*i).clone()).collect();
            let rebuilt = RecordBatch::try_new(after.schema(), arrays).map_err(|e| self.error(e.to_string()))?;
            self.upsert(&after, rebuilt).await?;
        }
        Ok(())
    }

    fn explain_scan(&self, group: &GroupSpec, request: &ScanRequest) -> String {
        let what = if request.ids.is_some() { "ids query" } else { "match_all" };
        format!("{} _search on index {} ({what}, columns: {})", self.info.kind, self.index(group), request.columns.join(", "))
    }

    async fn text_search(&self, group: &GroupSpec, request: &TextRequest) -> Result<Vec<Scored>> {
        let index = self.index(group);
        let query = self.query(request);
        let Some(ids) = &request.ids else { return self.ranked(&index, &query, None, request.k).await };
        // Candidates restricted by id: scores are comparable across chunks
        // (statistics are the whole index's), so the best of each chunk merge.
        let mut hits = Vec::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            hits.extend(self.ranked(&index, &query, Some(chunk), request.k).await?);
        }
        crate::text::rank(&mut hits, request.k);
        Ok(hits)
    }

    fn explain_text_search(&self, group: &GroupSpec, request: &TextRequest) -> String {
        format!(
            "{} BM25 on index {} for [{}]: {}",
            self.info.kind,
            self.index(group),
            request.query,
            json!({"query": self.query(request), "size": request.k})
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_are_valid_and_distinct() {
        assert_eq!(index_part("Hb_w-1.x"), "_b_w-1_x");
        assert_ne!(fnv("Notes"), fnv("notes"));
        assert_eq!(redact("https://u:secret@es:9200"), "https://***@es:9200");
        assert_eq!(redact("http://es:9200"), "http://es:9200");
    }
}
