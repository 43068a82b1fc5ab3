//! The Lance backend: one Lance dataset per field group under the backend's
//! `uri` (a local path or `file://` URI; object-store URIs as Lance accepts
//! them), holding `object_id` and the group's columns (a Vector[dim] is a
//! FixedSizeList<Float32>[dim]).
//!
//! Writes: rows whose ids are all new are appended; otherwise a merge-insert on
//! `object_id` replaces them. Partial rows are completed from the stored row (or
//! the column defaults) first, so a write never loses a column it left out. Every
//! 32 writes the dataset's small fragments are compacted.
//!
//! Search: exact (flat) below [`INDEX_THRESHOLD`] rows; at or above it an
//! IVF_HNSW_SQ index per vector column for the cosine metric (HNSW over scalar-
//! quantised vectors inside each IVF partition: recall above 0.95 at a fraction
//! of a flat scan's cost; see benchmarks/). An unfiltered search asks the index
//! segments directly and re-ranks their candidates from a copy of the column
//! held in memory (see [`Resident`]): no scan is planned and nothing is read
//! from the dataset. Filtered searches go through Lance's scanner with a
//! prefilter; other metrics search exactly.
//! The index is rebuilt when the rows it does not describe (new, rewritten or
//! deleted since it was built) reach a quarter of the rows it was built over.
//!
//! How many partitions a search probes by default is measured on each index
//! ([`Calibration`]): how hard a partitioned index is to search depends on
//! the data (clustered embeddings need 1–2 probes for recall@10 ≥ 0.95,
//! near-uniform ones may need more than half, where an exact scan of the
//! resident copy is faster and exact), so no fixed share serves every shape.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float32Array, RecordBatch, RecordBatchIterator, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::logical_expr::{Expr, col, lit};
use heavenbase_catalog::{BackendInfo, LogicalType, OBJECT_ID};
use lance::Dataset;
use lance::dataset::optimize::{CompactionOptions, compact_files};
use lance::dataset::{MergeInsertBuilder, WhenMatched, WhenNotMatched, WriteMode, WriteParams};
use lance::index::vector::VectorIndexParams;
use lance::index::{DatasetIndexExt, DatasetIndexInternalExt};
use lance_index::IndexType;
use lance_index::metrics::NoOpMetricsCollector;
use lance_index::prefilter::NoFilter;
use lance_index::scalar::ScalarIndexParams;
use lance_index::vector::hnsw::builder::HnswBuildParams;
use lance_index::vector::ivf::IvfBuildParams;
use lance_index::vector::sq::builder::SQBuildParams;
use lance_index::vector::{Query, VectorIndex};
use lance_linalg::distance::MetricType;
use serde_json::{Value as Json, json};
use tokio::sync::Mutex;

use crate::backend::{Backend, ColumnChange, GroupSpec, Pushdown, ScanRequest, scan_schema};
use crate::sql_filter::{SqlDialect, SqlParam, can_render};
use crate::vector::{CosineFrom, Hit, Metric, NearRequest, nearest_k};
use crate::{ProviderError, Result};

/// Below this many rows a vector column is searched exactly.
pub const INDEX_THRESHOLD: usize = 10_000;
const COMPACT_EVERY: usize = 32;
/// The column Lance adds for `with_row_address`.
const ROW_ADDRESS: &str = "_rowaddr";
/// The row address column of an index search's result.
const INDEX_ROW_ID: &str = "_rowid";
/// Vector columns of up to this many floats (256 MiB) are searched from memory
/// (see [`Resident`]); larger ones through Lance's scanner.
const RESIDENT_MAX_FLOATS: usize = 64 << 20;

#[derive(Default)]
struct GroupState {
    dataset: Option<Arc<Dataset>>,
    writes_since_compaction: usize,
    /// Rows when each vector column's index was built.
    indexed_rows: HashMap<String, usize>,
    /// Per vector column: what an index search needs in memory, for the
    /// dataset version it was read from.
    resident: HashMap<String, Arc<Resident>>,
    /// Per vector column: the default search measured on its index, and the
    /// index segments it was measured on (writes make new dataset versions,
    /// not new segments: a calibration holds until the segments change, at a
    /// rebuild or an optimisation).
    calibrations: HashMap<String, (Vec<String>, DefaultSearch)>,
}

/// What a search that names no `nprobes` does on an indexed column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DefaultSearch {
    /// Probe this many partitions (and re-rank the candidates exactly).
    Probes(usize),
    /// Rank every resident row exactly: no number of partitions up to half
    /// of them reached the recall goal, and past half an index search costs
    /// about what an exact scan does.
    Exact,
}

/// One vector column at one dataset version, held in memory beside its index
/// segments, so that a search runs without planning a scan or reading the
/// dataset: the index names candidate row addresses, which map to object_id
/// and vector here; candidates are re-ranked by exact distance, and rows the
/// index does not cover yet (appended or rewritten since it was built) are
/// searched exactly. Rows with a NULL vector are left out.
struct Resident {
    version: u64,
    dim: usize,
    ids: Vec<String>,
    /// Row-major, `dim` floats per row, in the order of `ids`.
    vectors: Vec<f32>,
    /// Position in `ids` by row address.
    by_row: HashMap<u64, u32>,
    /// Positions of the rows no index segment covers.
    unindexed: Vec<u32>,
    segments: Vec<Arc<dyn VectorIndex>>,
    /// The default search for this index (see [`Calibration`]).
    default: DefaultSearch,
}

impl Resident {
    fn vector(&self, position: u32) -> &[f32] {
        let start = position as usize * self.dim;
        &self.vectors[start..start + self.dim]
    }

    /// The k nearest among `positions` by exact cosine distance.
    fn rank(&self, query: &[f32], positions: impl Iterator<Item = u32>, k: usize) -> Vec<Hit> {
        let cosine = CosineFrom::new(query);
        let hits = positions.map(|p| (cosine.distance(self.vector(p)), self.ids[p as usize].as_str())).collect();
        nearest_k(hits, k)
    }
}

pub struct LanceBackend {
    info: BackendInfo,
    /// Folder or object-store prefix; each group is `<root>/<table>.lance`.
    root: String,
    /// Rows from which a vector column gets its ANN index.
    index_threshold: usize,
    groups: Mutex<HashMap<String, Arc<Mutex<GroupState>>>>,
}

impl std::fmt::Debug for LanceBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LanceBackend({}, {})", self.info.name, self.root)
    }
}

/// The forms Lance filters exactly as DataFusion does: the same comparisons the
/// SQL backends take (Lance plans filters with DataFusion itself).
struct LanceFilters;

impl SqlDialect for LanceFilters {
    fn placeholder(&self, n: usize) -> String {
        format!("${n}")
    }
    fn like_is_case_sensitive(&self) -> bool {
        true
    }
    fn date_param(&self, days: i32) -> SqlParam {
        SqlParam::Date(days)
    }
}

fn lance_metric(m: Metric) -> MetricType {
    match m {
        Metric::Cosine => MetricType::Cosine,
        Metric::L2 => MetricType::L2,
        Metric::Dot => MetricType::Dot,
    }
}

impl LanceBackend {
    /// `uri`: a local path, `file://` URI or object-store URI.
    pub fn new(name: &str, uri: &str, index_threshold: Option<usize>) -> Result<Self> {
        let root = uri.trim_end_matches('/').to_string();
        if let Some(path) = root.strip_prefix("file://").or(if root.contains("://") { None } else { Some(root.as_str()) }) {
            std::fs::create_dir_all(path).map_err(|e| ProviderError::Backend {
                backend: name.into(),
                kind: "lance".into(),
                message: format!("cannot create {path}: {e}"),
            })?;
        }
        Ok(LanceBackend {
            info: BackendInfo { name: name.into(), kind: "lance".into(), tags: vec!["vector".into()] },
            root,
            index_threshold: index_threshold.unwrap_or(INDEX_THRESHOLD).max(1),
            groups: Mutex::new(HashMap::new()),
        })
    }

    fn uri(&self, table: &str) -> String {
        format!("{}/{table}.lance", self.root)
    }

    fn error(&self, context: &str, e: impl std::fmt::Display) -> ProviderError {
        ProviderError::Backend { backend: self.info.name.clone(), kind: "lance".into(), message: format!("{context}: {e}") }
    }

    async fn state(&self, table: &str) -> Arc<Mutex<GroupState>> {
        self.groups.lock().await.entry(table.to_string()).or_default().clone()
    }

    /// The group's dataset, opened on first use; None before the first write.
    async fn dataset(&self, group: &GroupSpec, state: &mut GroupState) -> Result<Option<Arc<Dataset>>> {
        if state.dataset.is_none() {
            match Dataset::open(&self.uri(&group.table)).await {
                Ok(ds) => {
                    // Indexes found on reopen count as covering today's rows.
                    let rows = ds.count_rows(None).await.map_err(|e| self.error("count", e))?;
                    if let Ok(indices) = ds.load_indices().await {
                        for ix in indices.iter() {
                            if let Some(c) = group.columns.iter().find(|c| ix.name == index_name(&c.name)) {
                                state.indexed_rows.insert(c.name.clone(), rows);
                            }
                        }
                    }
                    state.dataset = Some(Arc::new(ds));
                }
                Err(lance::Error::DatasetNotFound { .. }) => return Ok(None),
                Err(e) => return Err(self.error(&format!("open {}", self.uri(&group.table)), e)),
            }
        }
        Ok(state.dataset.clone())
    }

    /// The column's [`Resident`] for the dataset's current version, read once
    /// per version (every write makes a new one); None when the column has no
    /// index or is too large to hold.
    async fn resident(&self, ds: &Dataset, column: &str, dim: usize, state: &mut GroupState) -> Result<Option<Arc<Resident>>> {
        let version = ds.version().version;
        if let Some(r) = state.resident.get(column).filter(|r| r.version == version) {
            return Ok(Some(r.clone()));
        }
        state.resident.remove(column);
        let context = format!("near on {column}");
        let rows = ds.count_rows(None).await.map_err(|e| self.error(&context, e))?;
        if rows.saturating_mul(dim) > RESIDENT_MAX_FLOATS {
            return Ok(None);
        }
        let indices = ds.load_indices().await.map_err(|e| self.error(&context, e))?;
        let metadata: Vec<_> = indices.iter().filter(|ix| ix.name == index_name(column)).collect();
        if metadata.is_empty() {
            return Ok(None);
        }
        let mut segments = Vec::with_capacity(metadata.len());
        for m in &metadata {
            let index =
                ds.open_vector_index(column, &m.uuid, &NoOpMetricsCollector).await.map_err(|e| self.error(&context, e))?;
            // Every partition loaded now, not by the first queries that probe it.
            index.prewarm().await.map_err(|e| self.error(&context, e))?;
            segments.push(index);
        }
        // A row address is fragment id << 32 | offset; an index segment covers whole fragments.
        let covered = |row: u64| {
            let fragment = (row >> 32) as u32;
            metadata.iter().any(|m| m.fragment_bitmap.as_ref().is_some_and(|b| b.contains(fragment)))
        };
        let mut scanner = ds.scan();
        scanner.project(&[OBJECT_ID, column]).map_err(|e| self.error(&context, e))?;
        scanner.with_row_address();
        let batch = scanner.try_into_batch().await.map_err(|e| self.error(&context, e))?;
        let ids = batch.column_by_name(OBJECT_ID).ok_or_else(|| self.error(&context, "no object_id"))?.as_string::<i32>();
        let list = batch.column_by_name(column).ok_or_else(|| self.error(&context, "no vectors"))?.as_fixed_size_list();
        let values = list.values().as_primitive::<datafusion::arrow::datatypes::Float32Type>().values();
        let rows = batch.column_by_name(ROW_ADDRESS).ok_or_else(|| self.error(&context, "no row addresses"))?;
        let rows = rows.as_primitive::<datafusion::arrow::datatypes::UInt64Type>();
        let mut resident = Resident {
            version,
            dim,
            ids: Vec::with_capacity(batch.num_rows()),
            vectors: Vec::with_capacity(batch.num_rows() * dim),
            by_row: HashMap::with_capacity(batch.num_rows()),
            unindexed: Vec::new(),
            segments,
            default: DefaultSearch::Probes(MIN_PROBES),
        };
        for i in 0..batch.num_rows() {
            if list.is_null(i) {
                continue;
            }
            let position = resident.ids.len() as u32;
            let start = (list.offset() + i) * dim;
            resident.ids.push(ids.value(i).to_string());
            resident.vectors.extend_from_slice(&values[start..start + dim]);
            resident.by_row.insert(rows.value(i), position);
            if !covered(rows.value(i)) {
                resident.unindexed.push(position);
            }
        }
        let measured_on: Vec<String> = metadata.iter().map(|m| m.uuid.to_string()).collect();
        let partitions = state.indexed_rows.get(column).map_or(1, |rows| ivf_partitions(*rows));
        resident.default = match state.calibrations.get(column).filter(|(on, _)| *on == measured_on) {
            Some((_, default)) => *default,
            None => {
                let default = Calibration::new(&resident, partitions).measure(self, &resident, column).await?;
                tracing::debug!(column, ?default, partitions, "default search calibrated on the index");
                state.calibrations.insert(column.to_string(), (measured_on, default));
                default
            }
        };
        let resident = Arc::new(resident);
        state.resident.insert(column.to_string(), resident.clone());
        Ok(Some(resident))
    }

    /// Cosine search through the index segments (see [`Resident`]): the
    /// request's `nprobes`, else the index's calibrated default.
    async fn search_resident(&self, r: &Resident, request: &NearRequest, partitions: usize) -> Result<Vec<Hit>> {
        let nprobes = match request.nprobes {
            Some(asked) => asked.min(partitions),
            None => match r.default {
                DefaultSearch::Probes(p) => p.min(partitions),
                DefaultSearch::Exact => return Ok(r.rank(&request.vector, 0..r.ids.len() as u32, request.k)),
            },
        };
        self.probe_resident(r, &request.column, &request.vector, request.k, nprobes).await
    }

    /// The `k` nearest by exact cosine among the candidates `nprobes`
    /// partitions of each index segment give, and the rows no segment covers.
    async fn probe_resident(&self, r: &Resident, column: &str, vector: &[f32], k: usize, nprobes: usize) -> Result<Vec<Hit>> {
        let context = format!("near on {column}");
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm == 0.0 || r.ids.len() <= k {
            return Ok(r.rank(vector, 0..r.ids.len() as u32, k));
        }
        // The index is built over unit vectors (cosine is L2 between them).
        let unit: Vec<f32> = vector.iter().map(|x| x / norm).collect();
        let query = Query {
            column: column.to_string(),
            key: Arc::new(Float32Array::from(unit)),
            k,
            lower_bound: None,
            upper_bound: None,
            minimum_nprobes: nprobes,
            maximum_nprobes: Some(nprobes),
            search_effort: 0.5,
            ef: Some((k * REFINE as usize).max(20)),
            refine_factor: Some(REFINE),
            metric_type: Some(MetricType::Cosine),
            use_index: true,
            query_parallelism: 1,
            dist_q_c: 0.0,
            approx_mode: Default::default(),
        };
        let mut searches = Vec::new();
        for segment in &r.segments {
            let (ranked, _) = segment.find_partitions(&query).map_err(|e| self.error(&context, e))?;
            for &p in ranked.values().iter().take(nprobes) {
                searches.push(segment.search_in_partition(p as usize, &query, Arc::new(NoFilter), &NoOpMetricsCollector));
            }
        }
        let mut candidates = r.unindexed.clone();
        for batch in futures::future::try_join_all(searches).await.map_err(|e| self.error(&context, e))? {
            let rows = batch.column_by_name(INDEX_ROW_ID).ok_or_else(|| self.error(&context, "no row ids"))?;
            let rows = rows.as_primitive::<datafusion::arrow::datatypes::UInt64Type>();
            // Rows deleted or rewritten since the index was built are not in by_row.
            candidates.extend(rows.values().iter().filter_map(|row| r.by_row.get(row)));
        }
        candidates.sort_unstable();
        candidates.dedup();
        if candidates.len() < k {
            // The index mostly names deleted rows: search every row.
            return Ok(r.rank(vector, 0..r.ids.len() as u32, k));
        }
        Ok(r.rank(vector, candidates.into_iter(), k))
    }

    /// Rows of `ids` as stored, in the group's full schema.
    async fn stored_rows(&self, ds: &Dataset, group: &GroupSpec, ids: &[String]) -> Result<Option<RecordBatch>> {
        let mut scanner = ds.scan();
        scanner.filter_expr(col(OBJECT_ID).in_list(ids.iter().map(|i| lit(i.clone())).collect(), false));
        let batch = scanner.try_into_batch().await.map_err(|e| self.error("lookup", e))?;
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        Ok(Some(reorder(&batch, &group.schema()).map_err(|e| self.error("lookup", e))?))
    }

    /// `batch` with every column of the group: columns it leaves out come from
    /// the stored row, or the column default for new rows.
    async fn complete(&self, ds: Option<&Dataset>, group: &GroupSpec, batch: RecordBatch) -> Result<(RecordBatch, bool)> {
        let schema = group.schema();
        let ids: Vec<String> = batch.column(0).as_string::<i32>().iter().map(|s| s.unwrap_or_default().to_string()).collect();
        let stored = match ds {
            Some(ds) => self.stored_rows(ds, group, &ids).await?,
            None => None,
        };
        let any_existing = stored.is_some();
        if batch.num_columns() == schema.fields().len() {
            return Ok((reorder(&batch, &schema).map_err(|e| self.error("write", e))?, any_existing));
        }
        let stored_index: HashMap<String, usize> = stored
            .as_ref()
            .map(|s| {
                s.column(0).as_string::<i32>().iter().enumerate().map(|(i, id)| (id.unwrap_or_default().to_string(), i)).collect()
            })
            .unwrap_or_default();
        let mut columns: Vec<ArrayRef> = vec![batch.column(0).clone()];
        for (ci, field) in schema.fields().iter().enumerate().skip(1) {
            if let Ok(i) = batch.schema().index_of(field.name()) {
                columns.push(batch.column(i).clone());
                continue;
            }
            let spec = &group.columns[ci - 1];
            // Source rows: stored value when the row exists, else the default (row 0 of a one-row array).
            let default = spec.default_array();
            let mut parts: Vec<ArrayRef> = vec![default];
            if let Some(s) = &stored {
                parts.push(s.column(ci).clone());
            }
            let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
            let merged = datafusion::arrow::compute::concat(&refs).map_err(|e| self.error("write", e))?;
            let indices: UInt32Array = ids.iter().map(|id| Some(stored_index.get(id).map_or(0, |i| *i as u32 + 1))).collect();
            columns.push(take(&merged, &indices, None).map_err(|e| self.error("write", e))?);
        }
        let full = RecordBatch::try_new(schema, columns).map_err(|e| self.error("write", e))?;
        Ok((full, any_existing))
    }

    async fn write(&self, group: &GroupSpec, state: &mut GroupState, batch: RecordBatch) -> Result<()> {
        let ds = self.dataset(group, state).await?;
        let (batch, any_existing) = self.complete(ds.as_deref(), group, batch).await?;
        self.check_unique(ds.as_deref(), group, &batch).await?;
        let schema = batch.schema();
        let uri = self.uri(&group.table);
        let new_ds = match ds {
            None => {
                let reader = RecordBatchIterator::new(vec![Ok(batch)], schema);
                let params = WriteParams { mode: WriteMode::Create, ..Default::default() };
                let mut ds = Dataset::write(reader, uri.as_str(), Some(params)).await.map_err(|e| self.error("create", e))?;
                // Key lookups use a scalar index on object_id.
                ds.create_index(&[OBJECT_ID], IndexType::BTree, None, &ScalarIndexParams::default(), true)
                    .await
                    .map_err(|e| self.error("object_id index", e))?;
                Arc::new(ds)
            }
            Some(ds) if !any_existing => {
                let reader = RecordBatchIterator::new(vec![Ok(batch)], schema);
                let params = WriteParams { mode: WriteMode::Append, ..Default::default() };
                let mut ds = (*ds).clone();
                ds.append(reader, Some(params)).await.map_err(|e| self.error("append", e))?;
                Arc::new(ds)
            }
            Some(ds) => {
                let job = MergeInsertBuilder::try_new(ds, vec![OBJECT_ID.to_string()])
                    .map_err(|e| self.error("merge", e))?
                    .when_matched(WhenMatched::UpdateAll)
                    .when_not_matched(WhenNotMatched::InsertAll)
                    .try_build()
                    .map_err(|e| self.error("merge", e))?;
                let reader = RecordBatchIterator::new(vec![Ok(batch)], schema);
                let (ds, _) = job.execute_reader(reader).await.map_err(|e| self.error("merge", e))?;
                ds
            }
        };
        state.dataset = Some(new_ds);
        state.writes_since_compaction += 1;
        if state.writes_since_compaction >= COMPACT_EVERY {
            self.compact(state).await?;
        }
        self.maintain_indexes(group, state).await
    }

    /// Lance has no unique constraint: a unique index of the group is
    /// enforced here, before anything is written. A row clashes when another
    /// object already holds its indexed values (stored, or earlier in the
    /// batch); a stored row that this batch rewrites no longer counts with its
    /// old values. NULLs never clash, as in SQL.
    async fn check_unique(&self, ds: Option<&Dataset>, group: &GroupSpec, batch: &RecordBatch) -> Result<()> {
        let ids = batch.column(0).as_string::<i32>();
        let rewritten: HashSet<&str> = ids.iter().flatten().collect();
        for index in group.indexes.iter().filter(|i| i.unique && !i.fields.is_empty()) {
            let Some(columns) = index.fields.iter().map(|f| batch.column_by_name(f)).collect::<Option<Vec<_>>>() else {
                continue;
            };
            let clash = |key: &str, a: &str, b: &str| ProviderError::Unique {
                backend: self.info.name.clone(),
                table: group.table.clone(),
                message: format!("({}) = ({key}) is held by objects '{a}' and '{b}'", index.fields.join(", ")),
            };
            let mut seen: HashMap<String, &str> = HashMap::new();
            for row in 0..batch.num_rows() {
                let Some(key) = unique_key(&columns, row) else { continue };
                let id = ids.value(row);
                if let Some(other) = seen.insert(key.clone(), id) {
                    if other != id {
                        return Err(clash(&key, other, id));
                    }
                }
            }
            let Some(ds) = ds else { continue };
            // Stored rows sharing the first indexed value with a row of the batch.
            let first = columns[0];
            let values: Vec<Expr> = (0..first.len())
                .filter(|r| first.is_valid(*r))
                .map(|r| datafusion::scalar::ScalarValue::try_from_array(first, r).map(lit))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| self.error("unique check", e))?;
            if values.is_empty() {
                continue;
            }
            let mut scanner = ds.scan();
            let mut names = vec![OBJECT_ID];
            names.extend(index.fields.iter().map(String::as_str));
            scanner.project(&names).map_err(|e| self.error("unique check", e))?;
            scanner.filter_expr(col(index.fields[0].as_str()).in_list(values, false));
            let stored = scanner.try_into_batch().await.map_err(|e| self.error("unique check", e))?;
            let stored_ids = stored.column(0).as_string::<i32>();
            let stored_columns: Vec<&ArrayRef> = (1..stored.num_columns()).map(|c| stored.column(c)).collect();
            for row in 0..stored.num_rows() {
                let stored_id = stored_ids.value(row);
                if rewritten.contains(stored_id) {
                    continue;
                }
                if let Some(key) = unique_key(&stored_columns, row) {
                    if let Some(id) = seen.get(&key) {
                        return Err(clash(&key, stored_id, id));
                    }
                }
            }
        }
        Ok(())
    }

    async fn compact(&self, state: &mut GroupState) -> Result<()> {
        if let Some(ds) = &state.dataset {
            let mut ds = (**ds).clone();
            compact_files(&mut ds, CompactionOptions::default(), None).await.map_err(|e| self.error("compact", e))?;
            // Reindex the object_id column over the compacted fragments.
            ds.optimize_indices(&Default::default()).await.map_err(|e| self.error("optimize indices", e))?;
            state.dataset = Some(Arc::new(ds));
        }
        state.writes_since_compaction = 0;
        Ok(())
    }

    /// Rows the column's index no longer describes: rows in fragments it does
    /// not cover (appended, or rewritten by an upsert, since it was built) and
    /// rows deleted from fragments it covers. Read from the manifest alone.
    async fn rows_outside_index(&self, ds: &Dataset, column: &str) -> Result<usize> {
        let indices = ds.load_indices().await.map_err(|e| self.error("indexes", e))?;
        let covers = |fragment: u32| {
            indices
                .iter()
                .any(|m| m.name == index_name(column) && m.fragment_bitmap.as_ref().is_some_and(|b| b.contains(fragment)))
        };
        Ok(ds
            .get_fragments()
            .iter()
            .map(|f| {
                let meta = f.metadata();
                if covers(f.id() as u32) {
                    meta.deletion_file.as_ref().and_then(|d| d.num_deleted_rows).unwrap_or(0)
                } else {
                    meta.num_rows().unwrap_or(0)
                }
            })
            .sum())
    }

    /// Build (or rebuild) the ANN index of each vector column past the threshold.
    async fn maintain_indexes(&self, group: &GroupSpec, state: &mut GroupState) -> Result<()> {
        let Some(ds) = state.dataset.clone() else { return Ok(()) };
        let rows = ds.count_rows(None).await.map_err(|e| self.error("count", e))?;
        for c in &group.columns {
            let LogicalType::Vector { .. } = c.ty else { continue };
            if rows < self.index_threshold {
                continue;
            }
            let indexed = state.indexed_rows.get(&c.name).copied().unwrap_or(0);
            if indexed > 0 && self.rows_outside_index(&ds, &c.name).await? < indexed / 4 {
                continue;
            }
            let mut ds = (*ds).clone();
            let partitions = ivf_partitions(rows);
            let params = VectorIndexParams::with_ivf_hnsw_sq_params(
                MetricType::Cosine,
                IvfBuildParams::new(partitions),
                HnswBuildParams::default(),
                SQBuildParams::default(),
            );
            ds.create_index(&[c.name.as_str()], IndexType::Vector, Some(index_name(&c.name)), &params, true)
                .await
                .map_err(|e| self.error(&format!("vector index on {}", c.name), e))?;
            state.indexed_rows.insert(c.name.clone(), rows);
            state.dataset = Some(Arc::new(ds));
        }
        Ok(())
    }
}

/// IVF partitions for an index over `rows` vectors: sqrt(rows)/4, 1..=256.
fn ivf_partitions(rows: usize) -> usize {
    ((rows as f64).sqrt() as usize / 4).clamp(1, 256)
}

/// A query probes one partition in PROBE_SHARE, and at least MIN_PROBES (2 of
/// 79 at 100k rows, 6 of 256 from 1M). Measured on clustered 100k × 128
/// (benchmarks/, `ann`, release build, resident search): 2 probes with k
/// candidates each give recall@10 0.960 (the ceiling of the 8-bit quantisation);
/// 2k candidates re-ranked by exact distance give 1.000 at about 20–26× brute
/// force; 3 or 4 probes keep 1.000 at 15–16×.
const PROBE_SHARE: usize = 40;
const MIN_PROBES: usize = 2;

/// Partitions a search of an index of `partitions` probes: the request's
/// `nprobes`, else the default above; never more than there are.
fn probes(partitions: usize, request: &NearRequest) -> usize {
    request.nprobes.unwrap_or((partitions / PROBE_SHARE).max(MIN_PROBES)).min(partitions)
}
/// Candidates re-ranked by exact distance, as a multiple of k.
const REFINE: u32 = 2;

/// The recall@10 a default search must reach on an index's own rows.
const TARGET_RECALL: f64 = 0.95;
/// Rows of the index used as queries when calibrating, spread evenly.
const CALIBRATION_QUERIES: usize = 64;
const CALIBRATION_K: usize = 10;

/// Measuring an index's default search: rows of the index, spread evenly
/// over it, are searched for their 10 nearest other rows, exactly and
/// through the index at 2, 4, 8, … probes; the default is the fewest probes
/// whose mean recall@10 reaches [`TARGET_RECALL`], or an exact scan when
/// none up to half the partitions does (probing every partition costs about
/// 1.7 times an exact scan of the resident copy, measured by `ann`: past
/// half, the index buys nothing). A hit counts when it is no farther than
/// the exact 10th, so rows at equal distances count alike. Cost: 64 exact
/// scans of the column (spread over the cores) and at most log2(partitions)
/// rounds of 64 index searches, once per set of index segments (a build or
/// an optimisation), not per write: the first search after it waits for it.
struct Calibration {
    queries: Vec<u32>,
    partitions: usize,
}

impl Calibration {
    fn new(r: &Resident, partitions: usize) -> Self {
        let n = r.ids.len();
        let step = (n / CALIBRATION_QUERIES).max(1);
        Calibration { queries: (0..n).step_by(step).take(CALIBRATION_QUERIES).map(|p| p as u32).collect(), partitions }
    }

    async fn measure(&self, backend: &LanceBackend, r: &Resident, column: &str) -> Result<DefaultSearch> {
        let n = r.ids.len() as u32;
        if self.partitions <= MIN_PROBES || r.ids.len() <= 2 * CALIBRATION_K {
            return Ok(DefaultSearch::Probes(MIN_PROBES));
        }
        // Each query's exact 10th distance to another row: most of the
        // calibration's cost (64 scans of the column), spread over the cores.
        let bound = |q: u32| {
            let exact = r.rank(r.vector(q), 0..n, CALIBRATION_K + 1);
            let others: Vec<f32> = exact.iter().filter(|(id, _)| *id != r.ids[q as usize]).map(|h| h.1).collect();
            others.get(CALIBRATION_K - 1).copied().unwrap_or(f32::INFINITY)
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(self.queries.len());
        let chunk = self.queries.len().div_ceil(threads.max(1));
        let bounds: Vec<f32> = std::thread::scope(|scope| {
            let parts: Vec<_> = self
                .queries
                .chunks(chunk)
                .map(|qs| scope.spawn(move || qs.iter().map(|&q| bound(q)).collect::<Vec<_>>()))
                .collect();
            parts.into_iter().map(|part| part.join()).collect::<std::result::Result<Vec<_>, _>>()
        })
        .map_err(|_| backend.error(&format!("near on {column}"), "calibrating the index failed (a scan panicked)"))?
        .concat();
        let mut nprobes = MIN_PROBES;
        while nprobes <= self.partitions / 2 {
            let mut found = 0usize;
            for (&q, bound) in self.queries.iter().zip(&bounds) {
                let hits = backend.probe_resident(r, column, r.vector(q), CALIBRATION_K + 1, nprobes).await?;
                let others = hits.iter().filter(|(id, _)| *id != r.ids[q as usize]).take(CALIBRATION_K);
                found += others.filter(|h| h.1 <= bound + 1e-6).count();
            }
            let recall = found as f64 / (self.queries.len() * CALIBRATION_K) as f64;
            if recall >= TARGET_RECALL {
                return Ok(DefaultSearch::Probes(nprobes));
            }
            nprobes *= 2;
        }
        Ok(DefaultSearch::Exact)
    }
}

fn index_name(column: &str) -> String {
    format!("{column}_ann")
}

/// The indexed values of a row as one comparable text, None when any is NULL.
fn unique_key(columns: &[&ArrayRef], row: usize) -> Option<String> {
    let mut parts = Vec::with_capacity(columns.len());
    for c in columns {
        if c.is_null(row) {
            return None;
        }
        parts.push(datafusion::arrow::util::display::array_value_to_string(c, row).ok()?);
    }
    Some(parts.join(", "))
}

/// `batch` with its columns in `schema`'s order (Lance returns them as stored).
fn reorder(batch: &RecordBatch, schema: &SchemaRef) -> std::result::Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let mut idx = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        idx.push(batch.schema().index_of(f.name())?);
    }
    let projected = batch.project(&idx)?;
    RecordBatch::try_new(schema.clone(), projected.columns().to_vec())
}

#[async_trait]
impl Backend for LanceBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn describe(&self) -> Json {
        json!({"name": self.info.name, "type": "lance", "uri": self.root, "tags": self.info.tags,
               "index": {"kind": "IVF_HNSW_SQ", "metric": "cosine", "threshold_rows": self.index_threshold}})
    }

    async fn ensure_group(&self, group: &GroupSpec) -> Result<()> {
        // The dataset is created by the first write; here only check that an
        // existing one has the group's columns.
        let state = self.state(&group.table).await;
        let mut st = state.lock().await;
        if let Some(ds) = self.dataset(group, &mut st).await? {
            let stored: HashSet<String> = ds.schema().fields.iter().map(|f| f.name.clone()).collect();
            let missing: Vec<&str> = group.columns.iter().map(|c| c.name.as_str()).filter(|c| !stored.contains(*c)).collect();
            if !missing.is_empty() {
                let mut ds = (*ds).clone();
                // New columns: add them as all-NULL columns of their type.
                let fields: Vec<datafusion::arrow::datatypes::Field> = group
                    .schema()
                    .fields()
                    .iter()
                    .filter(|f| missing.contains(&f.name().as_str()))
                    .map(|f| f.as_ref().clone())
                    .collect();
                ds.add_columns(
                    lance::dataset::NewColumnTransform::AllNulls(Arc::new(datafusion::arrow::datatypes::Schema::new(fields))),
                    None,
                    None,
                )
                .await
                .map_err(|e| self.error(&format!("add columns {missing:?} to {}", group.table), e))?;
                st.dataset = Some(Arc::new(ds));
            }
        }
        Ok(())
    }

    async fn upsert(&self, group: &GroupSpec, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let state = self.state(&group.table).await;
        let mut st = state.lock().await;
        self.write(group, &mut st, batch).await
    }

    async fn delete(&self, group: &GroupSpec, ids: &[String]) -> Result<Vec<String>> {
        let state = self.state(&group.table).await;
        let mut st = state.lock().await;
        let Some(ds) = self.dataset(group, &mut st).await? else { return Ok(Vec::new()) };
        let existing: Vec<String> = match self.stored_rows(&ds, group, ids).await? {
            Some(b) => b.column(0).as_string::<i32>().iter().map(|s| s.unwrap_or_default().to_string()).collect(),
            None => return Ok(Vec::new()),
        };
        // Ids are quoted as SQL string literals; Lance parses the predicate.
        let list: Vec<String> = existing.iter().map(|id| format!("'{}'", id.replace('\'', "''"))).collect();
        let mut ds = (*ds).clone();
        ds.delete(&format!("{OBJECT_ID} IN ({})", list.join(", "))).await.map_err(|e| self.error("delete", e))?;
        st.dataset = Some(Arc::new(ds));
        Ok(existing)
    }

    fn filter_pushdown(&self, group: &GroupSpec, filter: &Expr) -> Pushdown {
        if can_render(filter, group, &LanceFilters) { Pushdown::Exact } else { Pushdown::Unsupported }
    }

    async fn scan(&self, group: &GroupSpec, request: &ScanRequest) -> Result<Vec<RecordBatch>> {
        let schema = scan_schema(group, &request.columns);
        let state = self.state(&group.table).await;
        let ds = {
            let mut st = state.lock().await;
            self.dataset(group, &mut st).await?
        };
        let Some(ds) = ds else { return Ok(vec![RecordBatch::new_empty(schema)]) };
        let mut scanner = ds.scan();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        scanner.project(&names).map_err(|e| self.error("scan", e))?;
        let mut predicate: Option<Expr> = None;
        for f in &request.filters {
            predicate = Some(match predicate {
                Some(p) => p.and(f.clone()),
                None => f.clone(),
            });
        }
        if let Some(ids) = &request.ids {
            let in_ids = col(OBJECT_ID).in_list(ids.iter().map(|i| lit(i.clone())).collect(), false);
            predicate = Some(match predicate {
                Some(p) => p.and(in_ids),
                None => in_ids,
            });
        }
        if let Some(p) = predicate {
            scanner.filter_expr(p);
        }
        if let Some(limit) = request.limit {
            scanner.limit(Some(limit as i64), None).map_err(|e| self.error("scan", e))?;
        }
        let batch = scanner.try_into_batch().await.map_err(|e| self.error("scan", e))?;
        Ok(vec![reorder(&batch, &schema).map_err(|e| self.error("scan", e))?])
    }

    async fn count(&self, group: &GroupSpec) -> Result<usize> {
        let state = self.state(&group.table).await;
        let mut st = state.lock().await;
        match self.dataset(group, &mut st).await? {
            Some(ds) => ds.count_rows(None).await.map_err(|e| self.error("count", e)),
            None => Ok(0),
        }
    }

    async fn alter_group(&self, group: &GroupSpec, change: &ColumnChange) -> Result<()> {
        let state = self.state(&group.table).await;
        let mut st = state.lock().await;
        // No dataset yet: nothing is stored, the next write creates it as the group is then.
        let Some(ds) = self.dataset(group, &mut st).await? else { return Ok(()) };
        let mut ds = (*ds).clone();
        // Both are metadata-only commits: one new version of the dataset.
        match change {
            ColumnChange::Drop(c) => ds.drop_columns(&[c.as_str()]).await,
            ColumnChange::Rename { from, to } => {
                ds.alter_columns(&[lance::dataset::ColumnAlteration::new(from.clone()).rename(to.clone())]).await
            }
        }
        .map_err(|e| self.error(&format!("{change} of {}", group.table), e))?;
        st.dataset = Some(Arc::new(ds));
        Ok(())
    }

    async fn drop_group(&self, group: &GroupSpec) -> Result<()> {
        let state = self.state(&group.table).await;
        let mut st = state.lock().await;
        *st = GroupState::default();
        let uri = self.uri(&group.table);
        if let Some(path) = uri.strip_prefix("file://").or(if uri.contains("://") { None } else { Some(uri.as_str()) }) {
            if std::path::Path::new(path).exists() {
                std::fs::remove_dir_all(path).map_err(|e| self.error("drop", e))?;
            }
        }
        Ok(())
    }

    fn explain_scan(&self, group: &GroupSpec, request: &ScanRequest) -> String {
        format!(
            "lance dataset={} filters={} ids={}",
            self.uri(&group.table),
            request.filters.len(),
            request.ids.as_ref().map_or(0, |i| i.len())
        )
    }

    async fn nearest(&self, group: &GroupSpec, request: &NearRequest) -> Result<Vec<Hit>> {
        let state = self.state(&group.table).await;
        let (ds, indexed_rows, resident, st_calibration) = {
            let mut st = state.lock().await;
            let Some(ds) = self.dataset(group, &mut st).await? else { return Ok(Vec::new()) };
            // The index serves its own metric and unfiltered searches; other
            // metrics search exactly, filtered ones through the scanner's prefilter.
            let indexed_rows = st.indexed_rows.get(&request.column).copied().filter(|_| request.metric == Metric::Cosine);
            let resident = match (indexed_rows, &request.ids, group.column(&request.column).map(|c| &c.ty)) {
                (Some(_), None, Some(LogicalType::Vector { dim })) => self.resident(&ds, &request.column, *dim, &mut st).await?,
                _ => None,
            };
            let calibration = st.calibrations.get(&request.column).map(|(_, default)| *default);
            (ds, indexed_rows, resident, calibration)
        };
        if let (Some(r), Some(rows)) = (&resident, indexed_rows) {
            return self.search_resident(r, request, ivf_partitions(rows)).await;
        }
        let mut scanner = ds.scan();
        scanner.project(&[OBJECT_ID]).map_err(|e| self.error("near", e))?;
        let q = Float32Array::from(request.vector.clone());
        scanner.nearest(&request.column, &q as &dyn Array, request.k).map_err(|e| self.error("near", e))?;
        scanner.distance_metric(lance_metric(request.metric));
        scanner.use_index(indexed_rows.is_some());
        if let Some(rows) = indexed_rows {
            // The same probes as a resident search, re-ranked by Lance.
            // (Left unset, Lance's adaptive probing starts at half of all
            // partitions: near-exact and slower than brute force.)
            let calibrated = st_calibration.filter(|_| request.nprobes.is_none());
            match calibrated {
                Some(DefaultSearch::Exact) => {
                    scanner.use_index(false);
                }
                _ => {
                    let partitions = ivf_partitions(rows);
                    let nprobes = match calibrated {
                        Some(DefaultSearch::Probes(p)) => p.min(partitions),
                        _ => probes(partitions, request),
                    };
                    scanner.nprobes(nprobes);
                    scanner.ef((request.k * REFINE as usize).max(20));
                    scanner.refine(REFINE);
                }
            }
        }
        if let Some(ids) = &request.ids {
            scanner.prefilter(true);
            scanner.filter_expr(col(OBJECT_ID).in_list(ids.iter().map(|i| lit(i.clone())).collect(), false));
        }
        let batch = scanner.try_into_batch().await.map_err(|e| self.error("near", e))?;
        let schema = batch.schema();
        let dist = batch.column(schema.index_of("_distance").map_err(|e| self.error("near", e))?).clone();
        let dist = datafusion::arrow::compute::cast(&dist, &datafusion::arrow::datatypes::DataType::Float32)
            .map_err(|e| self.error("near", e))?;
        let dist = dist.as_primitive::<datafusion::arrow::datatypes::Float32Type>();
        let ids = batch.column(schema.index_of(OBJECT_ID).map_err(|e| self.error("near", e))?).as_string::<i32>();
        let mut hits: Vec<Hit> = (0..batch.num_rows()).map(|i| (ids.value(i).to_string(), dist.value(i))).collect();
        hits.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        Ok(hits)
    }
}
