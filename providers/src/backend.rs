use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::Expr;
use heavenbase_catalog::{BackendInfo, IndexPlan, LogicalType, OBJECT_ID};
use serde_json::Value as Json;

use crate::Result;
use crate::text::{Scored, TextRequest, exact_search};
use crate::vector::{Hit, NearRequest, exact_nearest};

/// A column of a field group.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    pub name: String,
    pub ty: LogicalType,
    /// The value a new row takes when a write leaves this column out.
    pub default: Option<Json>,
    /// Indexed for full-text search (the field's `inverted` binding): a
    /// search backend keeps its inverted index up to date with every write.
    pub search: bool,
}

impl ColumnSpec {
    pub fn new(name: impl Into<String>, ty: LogicalType) -> Self {
        ColumnSpec { name: name.into(), ty, default: None, search: false }
    }

    /// A one-row array holding the default (NULL when there is none).
    pub fn default_array(&self) -> datafusion::arrow::array::ArrayRef {
        let mut b = heavenbase_catalog::ColumnBuilder::new(&self.ty, 1);
        match &self.default {
            Some(v) if b.push(v).is_ok() => {}
            _ => {
                b = heavenbase_catalog::ColumnBuilder::new(&self.ty, 1);
                b.push_null();
            }
        }
        b.finish()
    }

    /// `"name" TYPE [DEFAULT literal]`, the column's DDL in every SQL backend:
    /// the dialect spells the type of the column's layout and renders the
    /// default (a one-row array of the column's own type) as a literal.
    pub fn ddl(&self, column_type: &str, literal: impl FnOnce(&datafusion::arrow::array::ArrayRef) -> Option<String>) -> String {
        let mut ddl = format!("{} {column_type}", crate::sql_filter::quote_ident(&self.name));
        if self.default.as_ref().is_some_and(|d| !d.is_null()) {
            let array = self.default_array();
            if let Some(l) = literal(&array).filter(|_| !array.is_null(0)) {
                ddl.push_str(" DEFAULT ");
                ddl.push_str(&l);
            }
        }
        ddl
    }
}

/// A change of one existing column, made in place by [`Backend::alter_group`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnChange {
    Drop(String),
    Rename { from: String, to: String },
}

impl ColumnChange {
    /// The column the change is made to (its name before the change).
    pub fn column(&self) -> &str {
        match self {
            ColumnChange::Drop(c) => c,
            ColumnChange::Rename { from, .. } => from,
        }
    }
}

impl std::fmt::Display for ColumnChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ColumnChange::Drop(c) => write!(f, "drop column {c}"),
            ColumnChange::Rename { from, to } => write!(f, "rename column {from} to {to}"),
        }
    }
}

/// The name a SQL backend gives the index `ix` of table `table`.
pub fn index_name(table: &str, ix: &IndexPlan) -> String {
    format!("ix_{table}_{}", ix.fields.join("_"))
}

/// One physical table in one backend: `object_id` plus `columns`.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    /// Entity id, for messages.
    pub entity_id: String,
    pub table: String,
    pub columns: Vec<ColumnSpec>,
    pub indexes: Vec<IndexPlan>,
    schema: SchemaRef,
}

impl GroupSpec {
    pub fn new(entity_id: &str, table: &str, columns: Vec<ColumnSpec>, indexes: Vec<IndexPlan>) -> Self {
        let mut fields = vec![Field::new(OBJECT_ID, DataType::Utf8, false)];
        fields.extend(columns.iter().map(|c| Field::new(&c.name, c.ty.arrow_type(), true)));
        GroupSpec {
            entity_id: entity_id.to_string(),
            table: table.to_string(),
            columns,
            indexes,
            schema: Arc::new(Schema::new(fields)),
        }
    }

    /// `object_id` first, then the columns; every batch written or read has it.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Whether a backend runs a filter itself, with the exact SQL semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushdown {
    Exact,
    Unsupported,
}

/// What a scan asks of a backend.
#[derive(Debug, Clone, Default)]
pub struct ScanRequest {
    /// Columns to return, by name; `object_id` is always returned first.
    pub columns: Vec<String>,
    /// Filters the backend declared [`Pushdown::Exact`] for; all must hold.
    pub filters: Vec<Expr>,
    /// Restrict to these object_ids (key lookups).
    pub ids: Option<Arc<Vec<String>>>,
    pub limit: Option<usize>,
}

/// One change of one group, for [`Backend::apply`].
#[derive(Debug, Clone)]
pub enum GroupWrite {
    /// [`Backend::upsert`] of the batch into the group.
    Upsert(GroupSpec, RecordBatch),
    /// [`Backend::delete`] of the ids from the group.
    Delete(GroupSpec, Vec<String>),
}

impl GroupWrite {
    pub fn group(&self) -> &GroupSpec {
        match self {
            GroupWrite::Upsert(group, _) | GroupWrite::Delete(group, _) => group,
        }
    }
}

/// Batches as a backend reads them.
pub type BatchStream = futures::stream::BoxStream<'static, Result<RecordBatch>>;

#[async_trait]
pub trait Backend: Send + Sync + Debug {
    /// Name, type and roles, for placement.
    fn info(&self) -> &BackendInfo;

    /// The backend's configuration as shown to users (never a password).
    fn describe(&self) -> Json;

    /// Create the group's table, its indexes, and any columns added since.
    async fn ensure_group(&self, group: &GroupSpec) -> Result<()>;

    /// Insert or replace rows by object_id. `batch` holds object_id first and any
    /// subset of the group's columns: columns left out keep their stored value, or
    /// take their default in new rows. (A full row is a full replace.)
    async fn upsert(&self, group: &GroupSpec, batch: RecordBatch) -> Result<()>;

    /// Delete rows; returns the ids that existed.
    async fn delete(&self, group: &GroupSpec, ids: &[String]) -> Result<Vec<String>>;

    /// Apply changes to several of this backend's groups, in order. Where
    /// [`Backend::transactional`] holds they are one transaction: after an
    /// error or a crash either every change is stored or none is. Returns,
    /// aligned with `writes`, the ids each delete found (empty for upserts).
    /// By default the changes are made one after another.
    async fn apply(&self, writes: Vec<GroupWrite>) -> Result<Vec<Vec<String>>> {
        let mut found = Vec::with_capacity(writes.len());
        for write in writes {
            found.push(match write {
                GroupWrite::Upsert(group, batch) => {
                    self.upsert(&group, batch).await?;
                    Vec::new()
                }
                GroupWrite::Delete(group, ids) => self.delete(&group, &ids).await?,
            });
        }
        Ok(found)
    }

    /// Whether [`Backend::apply`] is one transaction whose effects outlive the
    /// process (a file or a server, not memory): the write journal is kept
    /// only in backends where it is.
    fn transactional(&self) -> bool {
        false
    }

    /// Whether `filter` (over this group's columns) runs natively and exactly.
    fn filter_pushdown(&self, group: &GroupSpec, filter: &Expr) -> Pushdown;

    /// Rows matching the request, `object_id` first then the requested columns.
    async fn scan(&self, group: &GroupSpec, request: &ScanRequest) -> Result<Vec<RecordBatch>>;

    /// `scan` as a stream of batches. Backends that read incrementally answer
    /// batch by batch, so a large result is encoded and sent while the rest is
    /// still being read; by default, the whole `scan` as one item.
    async fn scan_stream(&self, group: &GroupSpec, request: &ScanRequest) -> Result<BatchStream> {
        let batches = self.scan(group, request).await?;
        Ok(Box::pin(futures::stream::iter(batches.into_iter().map(Ok))))
    }

    async fn count(&self, group: &GroupSpec) -> Result<usize>;

    /// Remove the group's table and its data.
    async fn drop_group(&self, group: &GroupSpec) -> Result<()>;

    /// Drop or rename one column of `group` in place (ALTER TABLE), keeping
    /// every other column's values; indexes over the column go with it (the
    /// caller then ensures the group as it is after the change, which builds
    /// the renamed indexes). A backend that cannot change a column in place
    /// refuses, and nothing is changed.
    async fn alter_group(&self, group: &GroupSpec, change: &ColumnChange) -> Result<()> {
        Err(crate::ProviderError::Unsupported(format!(
            "backend '{}' ({}) cannot {change} of {} in place",
            self.info().name,
            self.info().kind,
            group.table
        )))
    }

    /// Drop the index `index` of `group` (DROP INDEX). Backends without
    /// secondary indexes of their own, or that check uniqueness from the
    /// group's index list on every write, have nothing to drop.
    async fn drop_index(&self, _group: &GroupSpec, _index: &IndexPlan) -> Result<()> {
        Ok(())
    }

    /// How the scan of `request` runs, for EXPLAIN (the SQL a SQL backend sends).
    fn explain_scan(&self, group: &GroupSpec, request: &ScanRequest) -> String;

    /// The `k` nearest rows to `request.vector` in a vector column, nearest first.
    /// By default an exact search over a scan of the column; backends with a
    /// vector index answer from it.
    async fn nearest(&self, group: &GroupSpec, request: &NearRequest) -> Result<Vec<Hit>> {
        let scan =
            ScanRequest { columns: vec![request.column.clone()], filters: Vec::new(), ids: request.ids.clone(), limit: None };
        let batches = self.scan(group, &scan).await?;
        Ok(exact_nearest(&batches, request))
    }

    /// The `request.k` best rows for a full-text query over text columns,
    /// best first, with BM25 scores (crate::text). By default an exact search
    /// over a scan of the columns; search backends answer from their index.
    async fn text_search(&self, group: &GroupSpec, request: &TextRequest) -> Result<Vec<Scored>> {
        let scan = ScanRequest { columns: request.columns.clone(), filters: Vec::new(), ids: None, limit: None };
        let batches = self.scan(group, &scan).await?;
        Ok(exact_search(&batches, request))
    }

    /// How [`Backend::text_search`] answers `request`, for EXPLAIN.
    fn explain_text_search(&self, group: &GroupSpec, request: &TextRequest) -> String {
        format!("exact BM25 over a scan of {} ({}) for [{}]", group.table, request.columns.join(", "), request.query)
    }

    /// The backend's own SQL engine, when it has one: federation runs whole
    /// subplans over its tables there as one statement.
    fn sql_engine(&self) -> Option<&dyn SqlEngine> {
        None
    }
}

/// The SQL dialect a backend's engine speaks (federated statements are
/// written in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// The lower-case name shown in plans (`sqlite_main`, `SqliteQueryExec`).
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite",
        }
    }
}

/// Which subplans federation hands to a backend's engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FederationScope {
    /// None: its tables cannot be named bare (a Postgres schema that needs quoting).
    Off,
    /// ORDER BY … LIMIT only (with the filters, joins and aggregates beneath it
    /// when they qualify): where the engine is measured faster than DataFusion.
    TopN,
    /// Every subplan the allow-list admits.
    All,
}

/// A backend that runs SQL over its own tables (shaped like
/// datafusion-federation's `SQLExecutor`: a dialect, and a statement run into
/// Arrow of a schema the caller planned).
#[async_trait]
pub trait SqlEngine: Send + Sync {
    fn dialect(&self) -> Dialect;

    /// Which subplans over this backend's tables run in the engine.
    fn federation(&self) -> FederationScope;

    /// Whether the engine would compile `sql` with `columns` output columns,
    /// checked while planning where that is cheap (an in-process engine); a
    /// statement it refuses is left to DataFusion instead of failing the query.
    fn accepts(&self, _sql: &str, _columns: usize) -> bool {
        true
    }

    /// Run `sql`; its rows as one batch of `schema`, the types the caller planned.
    async fn execute(&self, sql: &str, schema: SchemaRef) -> Result<RecordBatch>;
}

/// The output schema of a scan: object_id then the requested columns.
pub fn scan_schema(group: &GroupSpec, columns: &[String]) -> SchemaRef {
    let full = group.schema();
    let mut fields = vec![full.field(0).clone()];
    for c in columns {
        if let Ok(f) = full.field_with_name(c) {
            fields.push(f.clone());
        }
    }
    Arc::new(Schema::new(fields))
}
