//! The write journal: crash atomicity for writes that span backends.
//!
//! A write stores the part that lives in its primary backend (the primary
//! field group, and the Catalog cards when that backend holds them) in one
//! backend transaction. When other backends get the rest (a Lance vector
//! group, cards in another backend), an entry saying what the whole write is
//! goes into that same transaction, and is removed once every backend has its
//! part. A COMMIT of several changes writes one entry per change into the
//! workspace's main backend before it applies any of them.
//!
//! Opening a workspace replays the entries a crash left behind, oldest first.
//! Every change is an upsert or a delete by object_id, so redoing one that had
//! partly or wholly happened is safe: redo is enough, no undo is needed. Entries
//! never outlive the ids' locks of the write that made them, so no later write
//! to the same objects can be overwritten by a replay.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use heavenbase_catalog::types::LogicalType;
use heavenbase_catalog::{NAME, OBJECT_ID};
use heavenbase_providers::{Backend, ColumnSpec, GroupSpec, GroupWrite, ScanRequest};

use super::Workspace;
use super::write::PreparedBatch;
use crate::{Error, ErrorKind, Result};

/// The journal's table in each transactional backend. Entity tables never
/// start with `_` (entity ids start with a letter), so it cannot clash.
pub(crate) const JOURNAL_TABLE: &str = "_hb_journal";

/// One change to redo.
pub(crate) enum Change {
    /// Upsert these rows into every group of the entity, and their cards.
    Write(PreparedBatch),
    /// Delete these objects from every group of the entity, and their cards.
    Delete(Vec<String>),
}

/// The journal's group: `object_id` is the entry's id (time-ordered, so the
/// key order is the replay order), then what to redo.
pub(crate) fn journal_group() -> GroupSpec {
    GroupSpec::new(
        JOURNAL_TABLE,
        JOURNAL_TABLE,
        vec![
            ColumnSpec::new("entity", LogicalType::short_text()),
            ColumnSpec::new("change", LogicalType::short_text()),
            // The change's rows, as a base64 Arrow IPC stream.
            ColumnSpec::new("payload", LogicalType::long_text()),
        ],
        Vec::new(),
    )
}

/// Ids for `n` entries written together, after every id handed out before.
pub(crate) fn entry_ids(n: usize) -> Vec<String> {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(0);
    // The clock in microseconds, or one past the last id when that is later.
    let mut last = LAST.load(Ordering::Acquire);
    let seq = loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange(last, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => break next,
            Err(seen) => last = seen,
        }
    };
    (0..n).map(|i| format!("{seq:020}.{i:06}")).collect()
}

/// The journal rows of `entries` (one per entry, ids from [`entry_ids`]).
pub(crate) fn encode(ids: &[String], entries: &[(&str, &Change)]) -> Result<GroupWrite> {
    let mut entity = Vec::with_capacity(entries.len());
    let mut change = Vec::with_capacity(entries.len());
    let mut payload = Vec::with_capacity(entries.len());
    for (name, change_of) in entries {
        entity.push(name.to_string());
        let (kind, batch) = match change_of {
            Change::Write(p) => ("write", rows_batch(p)?),
            Change::Delete(ids) => ("delete", rows_batch(&PreparedBatch { ids: ids.clone(), columns: HashMap::new() })?),
        };
        change.push(kind);
        payload.push(base64::engine::general_purpose::STANDARD.encode(ipc_bytes(&batch)?));
    }
    let group = journal_group();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(ids.to_vec())),
        Arc::new(StringArray::from(entity)),
        Arc::new(StringArray::from(change)),
        Arc::new(StringArray::from(payload)),
    ];
    let batch = RecordBatch::try_new(group.schema(), columns).map_err(arrow_error)?;
    Ok(GroupWrite::Upsert(group, batch))
}

/// `object_id` then the prepared columns, as one batch.
fn rows_batch(p: &PreparedBatch) -> Result<RecordBatch> {
    let mut fields = vec![Field::new(OBJECT_ID, DataType::Utf8, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(StringArray::from(p.ids.clone()))];
    let mut names: Vec<&String> = p.columns.keys().collect();
    names.sort();
    for name in names {
        let a = &p.columns[name];
        fields.push(Field::new(name, a.data_type().clone(), true));
        arrays.push(a.clone());
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(arrow_error)
}

fn ipc_bytes(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut w = datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut out, &batch.schema()).map_err(arrow_error)?;
    w.write(batch).map_err(arrow_error)?;
    w.finish().map_err(arrow_error)?;
    drop(w);
    Ok(out)
}

fn decode(entity: &str, kind: &str, payload: &str) -> Result<Change> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .map_err(|e| Error::new(ErrorKind::Internal, format!("journal entry for {entity}: {e}")))?;
    let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).map_err(arrow_error)?;
    let mut ids = Vec::new();
    let mut columns: HashMap<String, Vec<ArrayRef>> = HashMap::new();
    for batch in reader {
        let batch = batch.map_err(arrow_error)?;
        ids.extend(batch.column(0).as_string::<i32>().iter().map(|v| v.unwrap_or_default().to_string()));
        for (f, a) in batch.schema().fields().iter().zip(batch.columns()).skip(1) {
            columns.entry(f.name().clone()).or_default().push(a.clone());
        }
    }
    let change = match kind {
        "delete" => Change::Delete(ids),
        "write" => {
            let mut joined = HashMap::new();
            for (name, parts) in columns {
                let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
                joined.insert(name, datafusion::arrow::compute::concat(&refs).map_err(arrow_error)?);
            }
            Change::Write(PreparedBatch { ids, columns: joined })
        }
        other => return Err(Error::new(ErrorKind::Internal, format!("journal entry for {entity}: unknown change '{other}'"))),
    };
    Ok(change)
}

/// Fault injection for the crash tests: when `HEAVENBASE_TEST_CRASH_POINT`
/// names this point, the process aborts here, as a power cut or `kill -9`
/// would stop it (the variable is read once; unset, this is one load).
pub(crate) fn crash_point(point: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if AT.get_or_init(|| std::env::var("HEAVENBASE_TEST_CRASH_POINT").ok()).as_deref() == Some(point) {
        std::process::abort();
    }
}

fn arrow_error(e: datafusion::arrow::error::ArrowError) -> Error {
    Error::with_source(ErrorKind::Internal, format!("write journal: {e}"), e)
}

/// The columns of `prepared` that a redo needs once the primary backend has
/// stored its part: those of groups in other backends, and `name` (the cards
/// are written from it).
pub(crate) fn redo_columns(
    prepared: &PreparedBatch,
    primary_backend: &str,
    groups: &[(Arc<dyn Backend>, GroupSpec)],
) -> PreparedBatch {
    let columns = prepared
        .columns
        .iter()
        .filter(|(name, _)| {
            name.as_str() == NAME || groups.iter().any(|(b, g)| b.info().name != primary_backend && g.column(name).is_some())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    PreparedBatch { ids: prepared.ids.clone(), columns }
}

impl Workspace {
    /// Store a COMMIT's changes in the main backend's journal, in one
    /// transaction, before any is applied; the backend and the entry ids, or
    /// None when the main backend keeps no journal.
    pub(super) async fn journal_block(&self, changes: &[(&str, &Change)]) -> Result<Option<(Arc<dyn Backend>, Vec<String>)>> {
        let crt = self.runtime(heavenbase_catalog::system::SYS_CATALOG)?;
        let main = crt.primary().0.clone();
        if !main.transactional() {
            return Ok(None);
        }
        let ids = entry_ids(changes.len());
        main.apply(vec![encode(&ids, changes)?]).await?;
        Ok(Some((main, ids)))
    }

    /// Create the journal table in `backend` once, when it keeps one (it is
    /// the primary backend of an entity, or holds the Catalog).
    pub(super) async fn ensure_journal(&self, backend: &Arc<dyn Backend>) -> Result<()> {
        let name = &backend.info().name;
        if !backend.transactional() || self.inner.journals.lock().contains(name) {
            return Ok(());
        }
        backend.ensure_group(&journal_group()).await?;
        self.inner.journals.lock().insert(name.clone());
        Ok(())
    }

    /// Redo what a crash left in the journals, oldest entry first, and remove
    /// the entries. Returns how many were replayed.
    pub(super) async fn replay_journals(&self) -> Result<usize> {
        let group = journal_group();
        let mut pending: Vec<(String, Arc<dyn Backend>, String, String, String)> = Vec::new();
        let kept = self.inner.journals.lock().clone();
        for b in self.inner.backends.iter().filter(|b| kept.contains(&b.info().name)) {
            let request =
                ScanRequest { columns: ["entity", "change", "payload"].map(String::from).to_vec(), ..Default::default() };
            for batch in b.scan(&group, &request).await? {
                let text = |c: usize| batch.column(c).as_string::<i32>().clone();
                let (id, entity, change, payload) = (text(0), text(1), text(2), text(3));
                for r in 0..batch.num_rows() {
                    pending.push((
                        id.value(r).to_string(),
                        b.clone(),
                        entity.value(r).to_string(),
                        change.value(r).to_string(),
                        payload.value(r).to_string(),
                    ));
                }
            }
        }
        pending.sort_by(|a, b| a.0.cmp(&b.0));
        for (id, backend, entity, change, payload) in &pending {
            let change = decode(entity, change, payload)?;
            match self.runtime(entity) {
                Ok(rt) => match change {
                    Change::Write(p) => {
                        self.write_groups(&rt, &p).await?;
                        self.write_catalog_cards(&rt, &p.ids, p.columns.get(NAME)).await?;
                    }
                    Change::Delete(ids) => {
                        self.delete_unlocked(&rt, &ids).await?;
                    }
                },
                // Its entity is gone (dropped by DDL, which does not journal):
                // nothing is left to complete.
                Err(_) => tracing::warn!(entity = %entity, "journal entry for an entity that no longer exists; skipped"),
            }
            backend.delete(&group, std::slice::from_ref(id)).await?;
        }
        if !pending.is_empty() {
            tracing::info!(entries = pending.len(), "replayed the write journal");
        }
        Ok(pending.len())
    }
}
