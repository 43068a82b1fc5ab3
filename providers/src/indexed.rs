//! A search backend over any backend (`"search": true` in its configuration:
//! the `embedded` preset's SQLite `main`, the `debug` preset's in-memory
//! `search`): the rows are the inner
//! backend's, stored as durably as it stores them and written in its
//! transactions; the inverted index of each column indexed for search
//! ([`ColumnSpec::search`](crate::ColumnSpec)) is kept in memory, built from
//! the stored rows when the group is ensured (at open) and updated after every
//! write the inner backend has stored. Everything else is the inner backend's.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::logical_expr::Expr;
use heavenbase_catalog::BackendInfo;
use parking_lot::RwLock;
use serde_json::Value as Json;

use crate::backend::{Backend, BatchStream, ColumnChange, GroupSpec, GroupWrite, Pushdown, ScanRequest, SqlEngine};
use crate::text::{self, Scored, TextIndex, TextRequest};
use crate::vector::{Hit, NearRequest};
use crate::{ProviderError, Result};

#[derive(Debug)]
pub struct SearchIndexed {
    inner: Arc<dyn Backend>,
    info: BackendInfo,
    /// Table → column → index.
    indexes: RwLock<HashMap<String, HashMap<String, TextIndex>>>,
}

impl SearchIndexed {
    pub fn new(inner: Arc<dyn Backend>) -> SearchIndexed {
        let mut info = inner.info().clone();
        if !info.has("search") {
            info.tags.push("search".into());
        }
        SearchIndexed { inner, info, indexes: RwLock::new(HashMap::new()) }
    }

    /// Bring the indexes of `group` in step with rows the inner backend stored.
    fn index_upsert(&self, group: &GroupSpec, batch: &RecordBatch) -> Result<()> {
        let mut all = self.indexes.write();
        let Some(indexes) = all.get_mut(&group.table) else { return Ok(()) };
        for (column, index) in indexes.iter_mut() {
            index.put_column(batch, column).map_err(|e| ProviderError::Config(e.to_string()))?;
        }
        Ok(())
    }

    fn index_delete(&self, group: &GroupSpec, ids: &[String]) {
        if let Some(indexes) = self.indexes.write().get_mut(&group.table) {
            for index in indexes.values_mut() {
                for id in ids {
                    index.remove(id);
                }
            }
        }
    }
}

#[async_trait]
impl Backend for SearchIndexed {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn describe(&self) -> Json {
        let mut d = self.inner.describe();
        if let Json::Object(m) = &mut d {
            m.insert("search".into(), Json::Bool(true));
            m.insert("tags".into(), serde_json::json!(self.info.tags));
        }
        d
    }

    async fn ensure_group(&self, group: &GroupSpec) -> Result<()> {
        self.inner.ensure_group(group).await?;
        let wanted: Vec<String> = group.columns.iter().filter(|c| c.search).map(|c| c.name.clone()).collect();
        let missing: Vec<String> = {
            let all = self.indexes.read();
            let have = all.get(&group.table);
            wanted.iter().filter(|c| have.is_none_or(|h| !h.contains_key(*c))).cloned().collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        // Built from the stored rows (a reopened workspace, a newly indexed column).
        let scan = ScanRequest { columns: missing.clone(), filters: Vec::new(), ids: None, limit: None };
        let batches = self.inner.scan(group, &scan).await?;
        let built = text::index_batches(&batches, &missing);
        self.indexes.write().entry(group.table.clone()).or_default().extend(missing.into_iter().zip(built));
        Ok(())
    }

    async fn upsert(&self, group: &GroupSpec, batch: RecordBatch) -> Result<()> {
        self.inner.upsert(group, batch.clone()).await?;
        self.index_upsert(group, &batch)
    }

    async fn delete(&self, group: &GroupSpec, ids: &[String]) -> Result<Vec<String>> {
        let found = self.inner.delete(group, ids).await?;
        self.index_delete(group, &found);
        Ok(found)
    }

    async fn apply(&self, writes: Vec<GroupWrite>) -> Result<Vec<Vec<String>>> {
        let found = self.inner.apply(writes.clone()).await?;
        for (write, found) in writes.iter().zip(&found) {
            match write {
                GroupWrite::Upsert(group, batch) => self.index_upsert(group, batch)?,
                GroupWrite::Delete(group, _) => self.index_delete(group, found),
            }
        }
        Ok(found)
    }

    fn transactional(&self) -> bool {
        self.inner.transactional()
    }

    fn filter_pushdown(&self, group: &GroupSpec, filter: &Expr) -> Pushdown {
        self.inner.filter_pushdown(group, filter)
    }

    async fn scan(&self, group: &GroupSpec, request: &ScanRequest) -> Result<Vec<RecordBatch>> {
        self.inner.scan(group, request).await
    }

    async fn scan_stream(&self, group: &GroupSpec, request: &ScanRequest) -> Result<BatchStream> {
        self.inner.scan_stream(group, request).await
    }

    async fn count(&self, group: &GroupSpec) -> Result<usize> {
        self.inner.count(group).await
    }

    async fn drop_group(&self, group: &GroupSpec) -> Result<()> {
        self.inner.drop_group(group).await?;
        self.indexes.write().remove(&group.table);
        Ok(())
    }

    async fn drop_index(&self, group: &GroupSpec, index: &heavenbase_catalog::IndexPlan) -> Result<()> {
        self.inner.drop_index(group, index).await
    }

    async fn alter_group(&self, group: &GroupSpec, change: &ColumnChange) -> Result<()> {
        self.inner.alter_group(group, change).await?;
        if let Some(indexes) = self.indexes.write().get_mut(&group.table) {
            match change {
                ColumnChange::Drop(c) => {
                    indexes.remove(c);
                }
                ColumnChange::Rename { from, to } => {
                    if let Some(index) = indexes.remove(from) {
                        indexes.insert(to.clone(), index);
                    }
                }
            }
        }
        Ok(())
    }

    fn explain_scan(&self, group: &GroupSpec, request: &ScanRequest) -> String {
        self.inner.explain_scan(group, request)
    }

    async fn nearest(&self, group: &GroupSpec, request: &NearRequest) -> Result<Vec<Hit>> {
        self.inner.nearest(group, request).await
    }

    async fn text_search(&self, group: &GroupSpec, request: &TextRequest) -> Result<Vec<Scored>> {
        {
            let all = self.indexes.read();
            if let Some(indexes) = all.get(&group.table) {
                if let Some(found) = request.columns.iter().map(|c| indexes.get(c)).collect::<Option<Vec<&TextIndex>>>() {
                    let ids = request.ids.as_deref().map(Vec::as_slice);
                    return Ok(text::search(&found, &request.query, request.k, ids));
                }
            }
        }
        self.inner.text_search(group, request).await
    }

    fn explain_text_search(&self, group: &GroupSpec, request: &TextRequest) -> String {
        let indexed = request.columns.iter().all(|c| group.column(c).is_some_and(|c| c.search));
        if !indexed {
            return self.inner.explain_text_search(group, request);
        }
        format!(
            "BM25 over the inverted index of {} ({}) for [{}], rows in {}",
            group.table,
            request.columns.join(", "),
            request.query,
            self.inner.info().kind
        )
    }

    fn sql_engine(&self) -> Option<&dyn SqlEngine> {
        self.inner.sql_engine()
    }
}
