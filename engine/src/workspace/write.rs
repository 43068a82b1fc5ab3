//! Rows in and out: upsert (full replace), set (patch), get, delete, exists,
//! count, and the Catalog card written after every user-entity write.
//!
//! A batch is validated whole (types, lengths, required fields, unknown fields,
//! ids) before any backend is touched. The primary backend's share of a write
//! (the primary group, other groups it holds, the Catalog cards when it holds
//! them) is one backend transaction; other backends follow, and the write
//! journal (`journal.rs`) makes the whole redo-able after a crash. A backend
//! that fails part-way (not a crash) leaves a trace that `audit` reports and
//! `repair` mends.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use heavenbase_catalog::system::{SYS_CATALOG, SYS_METASCHEMA, is_system};
use heavenbase_catalog::types::LogicalType;
use heavenbase_catalog::types::{check_text, check_text_limits, describe_value};
use heavenbase_catalog::value::array_value;
use heavenbase_catalog::{
    ColumnBuilder, EntityDef, IdSource, NAME, OBJECT_ID, Row, catalog_row_id, coerce_column, derive_object_id, generate_object_id,
};
use heavenbase_providers::{Backend, GroupWrite, ScanRequest};
use serde_json::{Value as Json, json};

use super::journal::{self, Change};
use super::{EntityRuntime, Workspace, keys};
use crate::{Error, ErrorKind, Result};

/// How a write meets rows that already exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Insert, or fully replace an existing row (fields left out revert to
    /// their default or NULL).
    Upsert,
    /// Insert only: an existing object_id is refused (a unique violation).
    Insert,
}

/// Validated rows laid out as one Arrow column per entity field.
#[derive(Clone)]
pub(crate) struct PreparedBatch {
    pub ids: Vec<String>,
    pub columns: HashMap<String, ArrayRef>,
}

impl Workspace {
    /// Insert or fully replace one row; returns its object_id.
    pub async fn upsert(&self, entity: &str, row: Json) -> Result<String> {
        let row = into_row(entity, row)?;
        Ok(self.upsert_many(entity, vec![row]).await?.remove(0))
    }

    /// Insert or fully replace rows (omitted fields revert to default or NULL).
    /// The batch is validated whole first: on any error nothing is written.
    pub async fn upsert_many(&self, entity: &str, mut rows: Vec<Row>) -> Result<Vec<String>> {
        let rt = self.runtime(entity)?;
        self.fill_identity_rows(&rt, &mut rows).await?;
        let prepared = prepare_off_thread(&rt, rows).await?;
        self.write_mode(&rt, prepared, WriteMode::Upsert).await
    }

    /// Insert only: an existing object_id is an error.
    pub async fn insert_many(&self, entity: &str, mut rows: Vec<Row>) -> Result<Vec<String>> {
        let rt = self.runtime(entity)?;
        self.fill_identity_rows(&rt, &mut rows).await?;
        let prepared = prepare_off_thread(&rt, rows).await?;
        self.write_mode(&rt, prepared, WriteMode::Insert).await
    }

    /// The core of every write that starts from Arrow (SQL `INSERT`, `COPY`,
    /// `hb import`): the batch is validated and coerced column by column
    /// against the entity (see `heavenbase_catalog::column`), missing
    /// object_ids are derived from `name`, then the rows go to every field group
    /// and the Catalog. Columns the batch leaves out take their default (or
    /// NULL); a column the entity does not have is an error. On any error
    /// nothing is written. Returns the object_ids in row order.
    pub async fn write_batch(&self, entity: &str, batch: RecordBatch, mode: WriteMode) -> Result<Vec<String>> {
        let rt = self.runtime(entity)?;
        let prepared = self.prepare_arrow(&rt, batch, true).await?;
        self.write_mode(&rt, prepared, mode).await
    }

    /// [`Workspace::write_batch`], answering the rows as they were written:
    /// every field of the entity, as its SQL table lays them out, with the
    /// derived ids, drawn identity values and defaults (`INSERT … RETURNING`
    /// evaluates its list over them).
    pub async fn write_batch_returning(&self, entity: &str, batch: RecordBatch, mode: WriteMode) -> Result<RecordBatch> {
        let rt = self.runtime(entity)?;
        let prepared = self.prepare_arrow(&rt, batch, true).await?;
        let schema = crate::table::table_schema(&rt.def);
        let columns = rt.def.fields.iter().map(|f| prepared.columns[&f.name].clone()).collect();
        let written =
            RecordBatch::try_new(schema, columns).map_err(|e| Error::with_source(ErrorKind::Internal, e.to_string(), e))?;
        self.write_mode(&rt, prepared, mode).await?;
        Ok(written)
    }

    /// Identity values drawn, then the batch validated and coerced.
    pub(super) async fn prepare_arrow(
        &self,
        rt: &Arc<EntityRuntime>,
        batch: RecordBatch,
        refuse_duplicates: bool,
    ) -> Result<PreparedBatch> {
        let batch = self.fill_identity_batch(rt, batch).await?;
        if batch.num_rows() < 1024 {
            return prepare_batch(&rt.def, &batch, refuse_duplicates);
        }
        // Deriving ids hashes every row: keep it off the async workers.
        let def = rt.def.clone();
        tokio::task::spawn_blocking(move || prepare_batch(&def, &batch, refuse_duplicates))
            .await
            .map_err(|e| Error::internal(format!("batch validation failed: {e}")))?
    }

    /// Write validated rows under their ids' locks; an insert first checks
    /// that none of them exists.
    async fn write_mode(&self, rt: &EntityRuntime, prepared: PreparedBatch, mode: WriteMode) -> Result<Vec<String>> {
        let _locks = self.lock_ids(&prepared.ids).await?;
        if mode == WriteMode::Insert {
            let existing = self.existing_ids(rt, &prepared.ids).await?;
            if let Some(row) = prepared.ids.iter().position(|id| existing.contains(id)) {
                let e = &rt.def.entity_id;
                let message = match rt.def.id_source.key() {
                    Some(key) => format!(
                        "duplicate key value violates the primary key of {e}: ({}) = ({}) already exists",
                        key.join(", "),
                        keys::key_text(&key_values_at(&rt.def, key, &prepared.columns, row))
                    ),
                    None => format!("{e} object_id '{}' already exists", prepared.ids[row]),
                };
                return Err(Error::new(ErrorKind::UniqueViolation, message));
            }
            if self.buffering().is_some() {
                return self.write_prepared(rt, prepared).await;
            }
            // None of the ids existed (and their locks are held): a write that
            // fails part-way (a unique index in a later group) is undone exactly
            // by deleting them again from every group, and their cards.
            let ids = prepared.ids.clone();
            return match self.write_prepared(rt, prepared).await {
                Err(e) => {
                    let _ = self.delete_unlocked(rt, &ids).await;
                    Err(e)
                }
                ok => ok,
            };
        }
        self.write_prepared(rt, prepared).await
    }

    /// Patch a row: merge `patch` over the stored row and write the result. A
    /// missing row is created from the patch. object_id cannot move.
    pub async fn set(&self, entity: &str, patch: Json) -> Result<String> {
        let patch = into_row(entity, patch)?;
        Ok(self.set_many(entity, vec![patch]).await?.remove(0))
    }

    pub async fn set_many(&self, entity: &str, patches: Vec<Row>) -> Result<Vec<String>> {
        let rt = self.runtime(entity)?;
        let mut ids = Vec::with_capacity(patches.len());
        for p in &patches {
            let id = match p.get(OBJECT_ID) {
                Some(Json::String(s)) if !s.is_empty() => s.clone(),
                Some(Json::Number(n)) => n.to_string(),
                _ if rt.def.id_source.key().is_some() => row_key_id(&rt.def, p, None)?,
                _ => match p.get(NAME).and_then(|n| name_source(n)) {
                    Some(name) => derive_object_id(rt.def.storage_name(), &name),
                    None => return Err(Error::argument(format!("set needs object_id in the patch (entity '{entity}')"))),
                },
            };
            ids.push(id);
        }
        let _locks = self.lock_ids(&ids).await?;
        self.set_many_locked(&rt, patches, &ids).await
    }

    /// [`Workspace::set_many`] with the ids (one per patch) locked.
    pub(super) async fn set_many_locked(&self, rt: &EntityRuntime, patches: Vec<Row>, ids: &[String]) -> Result<Vec<String>> {
        let current = self.get_many_unlocked(rt, ids).await?;
        let mut merged = Vec::with_capacity(patches.len());
        for ((patch, id), cur) in patches.into_iter().zip(ids).zip(current) {
            let mut row = cur.unwrap_or_default();
            for (k, v) in patch {
                if k == OBJECT_ID {
                    let new_id = v.as_str().map(String::from).unwrap_or_else(|| v.to_string());
                    if new_id != *id {
                        return Err(Error::argument(format!(
                            "set cannot move object_id '{id}' to '{new_id}'; use upsert and delete explicitly"
                        )));
                    }
                }
                row.insert(k, v);
            }
            row.insert(OBJECT_ID.into(), Json::String(id.clone()));
            merged.push(row);
        }
        let prepared = prepare(&rt.def, &merged)?;
        self.write_prepared(rt, prepared).await
    }

    /// One row by object_id, or None.
    pub async fn get(&self, entity: &str, object_id: &str) -> Result<Option<Row>> {
        Ok(self.get_many(entity, &[object_id.to_string()]).await?.remove(0))
    }

    /// Rows by object_id, aligned with `ids` (None where absent).
    pub async fn get_many(&self, entity: &str, ids: &[String]) -> Result<Vec<Option<Row>>> {
        let rt = self.runtime(entity)?;
        self.get_many_unlocked(&rt, ids).await
    }

    /// Find an object_id in any user entity. An id in several entities is an error.
    pub async fn get_any(&self, object_id: &str) -> Result<Option<(String, Row)>> {
        let mut found = Vec::new();
        for e in self.entities() {
            if let Some(row) = self.get(&e, object_id).await? {
                found.push((e, row));
            }
        }
        if found.len() > 1 {
            let names: Vec<&str> = found.iter().map(|(e, _)| e.as_str()).collect();
            return Err(Error::argument(format!(
                "object_id '{object_id}' exists in multiple entities: {}; pass the entity to disambiguate",
                names.join(", ")
            )));
        }
        Ok(found.pop())
    }

    pub async fn exists(&self, entity: &str, object_id: &str) -> Result<bool> {
        let rt = self.runtime(entity)?;
        Ok(!self.existing_ids(&rt, &[object_id.to_string()]).await?.is_empty())
    }

    /// Number of rows (rows of the primary group).
    pub async fn count(&self, entity: &str) -> Result<usize> {
        let rt = self.runtime(entity)?;
        let (backend, group) = rt.primary();
        let stored = backend.count(group).await?;
        let Some(overlay) = self.buffering().and_then(|t| t.overlay(&rt.def.entity_id)) else { return Ok(stored) };
        let touched_stored = self.stored_ids(&rt, overlay.touched()).await?.len();
        Ok(stored - touched_stored + overlay.live_count())
    }

    /// Delete one row; returns whether it existed.
    pub async fn delete(&self, entity: &str, object_id: &str) -> Result<bool> {
        Ok(self.delete_many(entity, &[object_id.to_string()]).await?[0])
    }

    /// Delete rows from every group and their Catalog cards; aligned flags say
    /// which existed.
    pub async fn delete_many(&self, entity: &str, ids: &[String]) -> Result<Vec<bool>> {
        let rt = self.runtime(entity)?;
        let _locks = self.lock_ids(ids).await?;
        if !is_system(&rt.def.entity_id) {
            self.check_referenced(&rt, ids).await?;
            if let Some(txn) = self.buffering() {
                let existed = self.existing_ids(&rt, ids).await?;
                let gone: Vec<String> = ids.iter().filter(|id| existed.contains(*id)).cloned().collect();
                if !gone.is_empty() {
                    txn.push(super::transaction::Op::Delete { entity: rt.def.entity_id.clone(), ids: gone })?;
                }
                return Ok(ids.iter().map(|id| existed.contains(id)).collect());
            }
        }
        self.delete_unlocked(&rt, ids).await
    }

    /// [`Workspace::delete_many`] with the ids' locks held and references checked.
    pub(super) async fn delete_unlocked(&self, rt: &EntityRuntime, ids: &[String]) -> Result<Vec<bool>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut writes: Vec<(Arc<dyn Backend>, GroupWrite)> =
            rt.groups.iter().map(|(b, g)| (b.clone(), GroupWrite::Delete(g.clone(), ids.to_vec()))).collect();
        if !is_system(&rt.def.entity_id) {
            let cards: Vec<String> = ids.iter().map(|id| catalog_row_id(self.id(), rt.def.storage_name(), id)).collect();
            let crt = self.runtime(SYS_CATALOG)?;
            writes.extend(crt.groups.iter().map(|(b, g)| (b.clone(), GroupWrite::Delete(g.clone(), cards.clone()))));
        }
        let redo = || Change::Delete(ids.to_vec());
        let found = self.apply_writes(rt, writes, redo).await?;
        // The primary group's rows say which objects existed.
        let existed: HashSet<&String> = found.first().into_iter().flatten().collect();
        Ok(ids.iter().map(|id| existed.contains(id)).collect())
    }

    /// Write `rows` of a system entity and delete the rows `gone`, in one
    /// [`Backend::apply`] per backend: where the backend is transactional
    /// (SQLite, Postgres) a crash leaves either both or neither.
    pub(super) async fn replace_system_rows(&self, entity: &str, rows: Vec<Row>, gone: Vec<String>) -> Result<()> {
        let rt = self.runtime(entity)?;
        let prepared = prepare(&rt.def, &rows)?;
        // Each group's upsert and delete side by side (group_writes: one per group, in order).
        let mut writes = Vec::new();
        for (upsert, (backend, group)) in self.group_writes(&rt, &prepared)?.into_iter().zip(&rt.groups) {
            writes.push(upsert);
            if !gone.is_empty() {
                writes.push((backend.clone(), GroupWrite::Delete(group.clone(), gone.clone())));
            }
        }
        let _mark = self.writing();
        let mut writes = writes.into_iter().peekable();
        while let Some((backend, first)) = writes.next() {
            let mut batch = vec![first];
            batch.extend(std::iter::from_fn(|| writes.next_if(|(b, _)| Arc::ptr_eq(b, &backend)).map(|(_, w)| w)));
            backend.apply(batch).await.map_err(|e| unique_error(entity, e))?;
        }
        Ok(())
    }

    /// Write rows of a system entity (no Catalog cards for them).
    pub(crate) async fn write_system_rows(&self, entity: &str, rows: Vec<Row>) -> Result<()> {
        let rt = self.runtime(entity)?;
        let prepared = prepare(&rt.def, &rows)?;
        self.write_groups(&rt, &prepared).await
    }

    /// The ids' stripe locks, once no other transaction block claims any of
    /// them. A block's own writes claim the ids (another block's claim is a
    /// serialization failure at once); writes outside any block wait for the
    /// claiming block to end.
    pub(super) async fn lock_ids(&self, ids: &[String]) -> Result<IdLocks<'_>> {
        let me = self.txn.as_ref().map(|t| t.id);
        let deadline = tokio::time::Instant::now() + super::transaction::CLAIM_WAIT;
        loop {
            let guards = self.stripe_locks(ids).await;
            let released = self.inner.claim_released.notified();
            {
                let mut claims = self.inner.claims.lock();
                let blocked = !claims.is_empty() && ids.iter().any(|id| claims.get(id).is_some_and(|owner| Some(*owner) != me));
                if !blocked {
                    if let Some(txn) = self.buffering() {
                        for id in ids {
                            claims.insert(id.clone(), txn.id);
                        }
                        txn.note_claims(ids);
                    }
                    return Ok(guards);
                }
                if self.buffering().is_some() {
                    return Err(Error::new(
                        ErrorKind::SerializationFailure,
                        "could not serialize access due to concurrent update: another open transaction block is \
                         changing the same row; retry the transaction",
                    ));
                }
            }
            drop(guards);
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return Err(Error::new(
                    ErrorKind::LockNotAvailable,
                    "canceling statement due to lock timeout: an open transaction block is changing the same row",
                ));
            }
        }
    }

    async fn stripe_locks(&self, ids: &[String]) -> IdLocks<'_> {
        let stripes = self.stripes_of(ids);
        let mut guards = Vec::with_capacity(stripes.len());
        for s in &stripes {
            guards.push(self.inner.stripes[*s].lock().await);
        }
        IdLocks { _guards: guards, stripes, versions: &self.inner.stripe_versions }
    }

    /// The lock stripes of `ids`, ascending (the order every writer takes
    /// them in, so two writers never deadlock).
    fn stripes_of(&self, ids: &[String]) -> Vec<usize> {
        use std::hash::{Hash, Hasher};
        let n = self.inner.stripes.len();
        let mut stripes: Vec<usize> = ids
            .iter()
            .map(|id| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                id.hash(&mut h);
                (h.finish() as usize) % n
            })
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        stripes
    }

    /// How many writes have finished under each stripe so far.
    pub(super) fn write_versions(&self) -> Vec<u64> {
        self.inner.stripe_versions.iter().map(|v| v.load(std::sync::atomic::Ordering::Acquire)).collect()
    }

    /// Whether a write under the stripes of `ids` finished after `since` was taken.
    pub(super) fn written_since(&self, since: &[u64], ids: &[String]) -> bool {
        self.stripes_of(ids)
            .into_iter()
            .any(|s| self.inner.stripe_versions[s].load(std::sync::atomic::Ordering::Acquire) != since[s])
    }

    /// The ids that exist, as this handle sees them (a transaction's own
    /// writes and deletions included).
    pub(super) async fn existing_ids(&self, rt: &EntityRuntime, ids: &[String]) -> Result<HashSet<String>> {
        let mut found = self.stored_ids(rt, ids).await?;
        if let Some(overlay) = self.buffering().and_then(|t| t.overlay(&rt.def.entity_id)) {
            for id in ids {
                match overlay.state(id) {
                    Some(Some(_)) => found.insert(id.clone()),
                    Some(None) => found.remove(id),
                    None => false,
                };
            }
        }
        Ok(found)
    }

    /// The ids stored in the backends (committed rows only).
    async fn stored_ids(&self, rt: &EntityRuntime, ids: &[String]) -> Result<HashSet<String>> {
        let (backend, group) = rt.primary();
        let request = ScanRequest { ids: Some(Arc::new(ids.to_vec())), ..Default::default() };
        let batches = backend.scan(group, &request).await?;
        Ok(batches
            .iter()
            .flat_map(|b| b.column(0).as_string::<i32>().iter().flatten().map(String::from).collect::<Vec<_>>())
            .collect())
    }

    pub(super) async fn get_many_unlocked(&self, rt: &EntityRuntime, ids: &[String]) -> Result<Vec<Option<Row>>> {
        let mut rows = self.stored_rows_by_id(rt, ids).await?;
        if let Some(overlay) = self.buffering().and_then(|t| t.overlay(&rt.def.entity_id)) {
            for (id, row) in ids.iter().zip(rows.iter_mut()) {
                if let Some(state) = overlay.state(id) {
                    *row = state.map(|at| overlay.row(&rt.def, at));
                }
            }
        }
        Ok(rows)
    }

    async fn stored_rows_by_id(&self, rt: &EntityRuntime, ids: &[String]) -> Result<Vec<Option<Row>>> {
        let request_ids = Arc::new(ids.to_vec());
        let mut found: HashMap<String, Row> = HashMap::new();
        for (i, (backend, group)) in rt.groups.iter().enumerate() {
            let request = ScanRequest {
                columns: group.columns.iter().map(|c| c.name.clone()).collect(),
                ids: Some(request_ids.clone()),
                ..Default::default()
            };
            for batch in backend.scan(group, &request).await? {
                for r in scanned_rows(rt, &batch) {
                    let id = r.get(OBJECT_ID).and_then(|v| v.as_str()).unwrap_or_default().to_string();
                    if i == 0 {
                        found.insert(id, r);
                    } else if let Some(row) = found.get_mut(&id) {
                        row.extend(r.into_iter().filter(|(k, _)| k != OBJECT_ID));
                    }
                }
            }
        }
        // Fields in declaration order; a group missing its part reads as NULL.
        Ok(ids
            .iter()
            .map(|id| {
                found.get(id).map(|row| {
                    rt.def.fields.iter().map(|f| (f.name.clone(), row.get(&f.name).cloned().unwrap_or(Json::Null))).collect()
                })
            })
            .collect())
    }

    pub(super) async fn write_prepared(&self, rt: &EntityRuntime, prepared: PreparedBatch) -> Result<Vec<String>> {
        // COMMIT writes what the block's statements checked when they ran.
        let committing = self.txn.as_ref().is_some_and(|t| t.is_applying());
        if !rt.def.foreign_keys.is_empty() && !committing {
            self.check_references(rt, &prepared).await?;
        }
        if let Some(txn) = self.buffering().filter(|_| !is_system(&rt.def.entity_id)) {
            let ids = prepared.ids.clone();
            txn.push(super::transaction::Op::Write { entity: rt.def.entity_id.clone(), batch: prepared })?;
            return Ok(ids);
        }
        if !is_system(&rt.def.entity_id) {
            self.store(rt, &prepared).await?;
        } else {
            self.write_groups(rt, &prepared).await?;
            if rt.def.entity_id == SYS_METASCHEMA {
                self.establish_entities(&prepared).await?;
            }
        }
        Ok(prepared.ids)
    }

    /// Write a user entity's rows to every group, and their Catalog cards.
    async fn store(&self, rt: &EntityRuntime, prepared: &PreparedBatch) -> Result<()> {
        let mut writes = self.group_writes(rt, prepared)?;
        let crt = self.runtime(SYS_CATALOG)?;
        let cards = self.catalog_cards(rt, &prepared.ids, prepared.columns.get(NAME)).await?;
        writes.extend(self.group_writes(&crt, &cards)?);
        let primary = rt.primary().0.info().name.clone();
        let redo = || Change::Write(journal::redo_columns(prepared, &primary, &rt.groups));
        self.apply_writes(rt, writes, redo).await.map(|_| ())
    }

    /// Make `writes` (primary group first): the primary backend's share in one
    /// transaction, then each other backend's. When other backends take part,
    /// the primary transaction also stores `redo()` (the entity's change to
    /// complete) in the write journal, and
    /// the entry is removed once they all have their part (see
    /// [`super::journal`]). Returns, per write, the ids a delete found.
    async fn apply_writes(
        &self,
        rt: &EntityRuntime,
        writes: Vec<(Arc<dyn Backend>, GroupWrite)>,
        redo: impl FnOnce() -> Change,
    ) -> Result<Vec<Vec<String>>> {
        let primary = rt.primary().0.clone();
        let (mine, rest): (Vec<_>, Vec<_>) = writes.into_iter().partition(|(b, _)| b.info().name == primary.info().name);
        let mut mine: Vec<GroupWrite> = mine.into_iter().map(|(_, w)| w).collect();
        let own = mine.len();
        // A COMMIT that journaled the whole block covers its changes.
        let covered = self.txn.as_ref().is_some_and(|t| t.is_applying() && t.is_journaled());
        let entry = if !rest.is_empty() && primary.transactional() && !covered {
            let ids = journal::entry_ids(1);
            mine.push(journal::encode(&ids, &[(rt.def.entity_id.as_str(), &redo())])?);
            Some(ids)
        } else {
            None
        };
        let mark = self.writing();
        // Once applying starts it runs to its end in a task of its own, even
        // if the statement is cancelled or times out meanwhile: stopping part-way
        // would leave some backends written and others not until the journal
        // is replayed at the next open.
        let entity = rt.def.entity_id.clone();
        let applying = tokio::spawn(async move {
            let entity = entity.as_str();
            let mut found = primary.apply(mine).await.map_err(|e| unique_error(entity, e))?;
            if entry.is_some() {
                journal::crash_point("journaled");
            }
            found.truncate(own);
            // The other backends', in order, consecutive writes to one backend together.
            let mut rest = rest.into_iter().peekable();
            while let Some((backend, first)) = rest.next() {
                let mut batch = vec![first];
                while let Some((_, w)) = rest.next_if(|(b, _)| b.info().name == backend.info().name) {
                    batch.push(w);
                }
                let result = backend.apply(batch).await.map_err(|e| unique_error(entity, e));
                match result {
                    Ok(f) => found.extend(f),
                    Err(e) => {
                        // Not a crash: the caller hears of it, so the entry is not
                        // replayed later; audit reports the object as partial.
                        if let Some(ids) = &entry {
                            let _ = primary.delete(&journal::journal_group(), ids).await;
                        }
                        return Err(e);
                    }
                }
            }
            if let Some(ids) = &entry {
                primary.delete(&journal::journal_group(), ids).await?;
            }
            drop(mark);
            Ok(found)
        });
        match applying.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => Err(crate::panicked(&format!("write to {}", rt.def.entity_id), e.into_panic())),
            Err(e) => Err(Error::new(ErrorKind::Internal, format!("{}: the write stopped: {e}", rt.def.entity_id))),
        }
    }

    /// One upsert per field group (primary first) of the columns `prepared`
    /// holds for it.
    fn group_writes(&self, rt: &EntityRuntime, prepared: &PreparedBatch) -> Result<Vec<(Arc<dyn Backend>, GroupWrite)>> {
        let ids: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(prepared.ids.clone()));
        let mut writes = Vec::with_capacity(rt.groups.len());
        for (backend, group) in &rt.groups {
            // Columns left out of `prepared` keep their stored values (see Backend::upsert).
            let mut fields = vec![group.schema().field(0).clone()];
            let mut arrays = vec![ids.clone()];
            for (i, c) in group.columns.iter().enumerate() {
                if let Some(a) = prepared.columns.get(&c.name) {
                    fields.push(group.schema().field(i + 1).clone());
                    arrays.push(a.clone());
                }
            }
            let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
            let batch = RecordBatch::try_new(schema, arrays)
                .map_err(|e| Error::with_source(ErrorKind::Internal, format!("{}: {e}", rt.def.entity_id), e))?;
            writes.push((backend.clone(), GroupWrite::Upsert(group.clone(), batch)));
        }
        Ok(writes)
    }

    /// Write each field group, primary first, one after another (system rows,
    /// repair and journal replay).
    pub(super) async fn write_groups(&self, rt: &EntityRuntime, prepared: &PreparedBatch) -> Result<()> {
        let _mark = self.writing();
        self.write_groups_unmarked(rt, prepared).await
    }

    /// Identity counters' high-water marks (MetaSchema rows): stored like
    /// system rows but not marked as a change of the workspace's data (see
    /// [`Workspace::change_version`]). Like a Postgres sequence, a counter is
    /// outside every transaction: a value drawn by one session is nothing
    /// another session's validated block read, nor one the drawing block's
    /// own next statement must be failed for.
    pub(super) async fn store_counters(&self, rows: Vec<Row>) -> Result<()> {
        let rt = self.runtime(SYS_METASCHEMA)?;
        let prepared = prepare(&rt.def, &rows)?;
        self.write_groups_unmarked(&rt, &prepared).await
    }

    async fn write_groups_unmarked(&self, rt: &EntityRuntime, prepared: &PreparedBatch) -> Result<()> {
        for (backend, write) in self.group_writes(rt, prepared)? {
            let GroupWrite::Upsert(group, batch) = write else { continue };
            backend.upsert(&group, batch).await.map_err(|e| unique_error(&rt.def.entity_id, e))?;
        }
        Ok(())
    }

    /// One Catalog card per written row (docs/reference.md §5.1): created_at kept,
    /// updated_at now, `name` projected from the row. Only the computed fields
    /// are written; the card's other fields (summary, tags, owner, ...) keep what
    /// they hold, or their defaults on a new card.
    /// `names` is the rows' `name` column (aligned with `ids`), if they have one.
    /// Writes and `repair` both come through here.
    pub(crate) async fn write_catalog_cards(&self, rt: &EntityRuntime, ids: &[String], names: Option<&ArrayRef>) -> Result<()> {
        let cards = self.catalog_cards(rt, ids, names).await?;
        self.write_groups(&*self.runtime(SYS_CATALOG)?, &cards).await
    }

    /// The cards [`Workspace::write_catalog_cards`] writes.
    async fn catalog_cards(&self, rt: &EntityRuntime, ids: &[String], names: Option<&ArrayRef>) -> Result<PreparedBatch> {
        use datafusion::arrow::array::{StringArray, TimestampMillisecondArray};
        use heavenbase_catalog::types::TIMESTAMP_MAX_MS;
        let crt = self.runtime(SYS_CATALOG)?;
        let entity_id = &rt.def.entity_id;
        let card_ids: Vec<String> = ids.iter().map(|id| catalog_row_id(self.id(), rt.def.storage_name(), id)).collect();
        let existing = self.card_policies(&crt, &card_ids).await?;
        let now = chrono::Utc::now().timestamp_millis();
        let n = card_ids.len();
        let mut created = Vec::with_capacity(n);
        let mut expires = Vec::with_capacity(n);
        let mut stale = Vec::with_capacity(n);
        for id in &card_ids {
            let p = existing.get(id).copied().unwrap_or(CardPolicy { created_at: now, ..CardPolicy::default() });
            created.push(p.created_at);
            let mut exp = p.expires_at.unwrap_or(TIMESTAMP_MAX_MS);
            if p.expires_after > 0 {
                exp = exp.min(p.created_at.saturating_add(p.expires_after));
            }
            expires.push(exp.min(TIMESTAMP_MAX_MS));
            stale.push(if p.stale_after > 0 {
                now.saturating_add(p.stale_after).min(TIMESTAMP_MAX_MS)
            } else {
                TIMESTAMP_MAX_MS
            });
        }
        let ts = |v: Vec<i64>| -> ArrayRef { Arc::new(TimestampMillisecondArray::from(v).with_timezone("UTC")) };
        let text = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v; n])) };
        let names: ArrayRef = match names.filter(|_| projects_name(&rt.def)) {
            // An absent name reads as the card default "".
            Some(a) => Arc::new(a.as_string::<i32>().iter().map(|v| Some(v.unwrap_or(""))).collect::<StringArray>()),
            None => text(""),
        };
        let columns: HashMap<String, ArrayRef> = [
            ("target_id", Arc::new(StringArray::from(ids.to_vec())) as ArrayRef),
            ("target_entity", text(entity_id)),
            ("ws", text(self.id())),
            ("name", names),
            ("created_at", ts(created)),
            ("updated_at", ts(vec![now; n])),
            ("expires_compute", ts(expires)),
            ("stale_compute", ts(stale)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Ok(PreparedBatch { ids: card_ids, columns })
    }

    /// created_at and expiry policy of stored cards, by card id.
    async fn card_policies(&self, crt: &EntityRuntime, card_ids: &[String]) -> Result<HashMap<String, CardPolicy>> {
        use datafusion::arrow::datatypes::{Int64Type, TimestampMillisecondType};
        let (backend, group) = crt.primary();
        let request = ScanRequest {
            columns: ["created_at", "expires_at", "expires_after", "stale_after"].map(String::from).to_vec(),
            ids: Some(Arc::new(card_ids.to_vec())),
            ..Default::default()
        };
        let mut out = HashMap::new();
        for b in backend.scan(group, &request).await? {
            let ids = b.column(0).as_string::<i32>();
            let ts = |c: usize| b.column(c).as_primitive::<TimestampMillisecondType>().clone();
            let (created, expires_at) = (ts(1), ts(2));
            let (after, stale) = (b.column(3).as_primitive::<Int64Type>(), b.column(4).as_primitive::<Int64Type>());
            for r in 0..b.num_rows() {
                let get = |a: &dyn datafusion::arrow::array::Array| !a.is_null(r);
                out.insert(
                    ids.value(r).to_string(),
                    CardPolicy {
                        created_at: if get(&created) { created.value(r) } else { chrono::Utc::now().timestamp_millis() },
                        expires_at: get(&expires_at).then(|| expires_at.value(r)),
                        expires_after: if get(after) { after.value(r) } else { 0 },
                        stale_after: if get(stale) { stale.value(r) } else { 0 },
                    },
                );
            }
        }
        Ok(out)
    }

    /// A user row of kind `entity` in sys-metaschema whose meta holds a full
    /// definition registers that entity when it is absent (docs/reference.md §5.2).
    async fn establish_entities(&self, prepared: &PreparedBatch) -> Result<()> {
        let (Some(kind), Some(meta)) = (prepared.columns.get("kind"), prepared.columns.get("meta")) else { return Ok(()) };
        for i in 0..prepared.ids.len() {
            if array_value(kind.as_ref(), i, &LogicalType::short_text()) != json!("entity") {
                continue;
            }
            let meta = array_value(meta.as_ref(), i, &LogicalType::Json);
            let Some(def) = meta.get("definition").or_else(|| meta.get("fields").map(|_| &meta)) else { continue };
            let Ok(def) = EntityDef::from_json(def) else { continue };
            if !is_system(&def.entity_id) && self.runtime(&def.entity_id).is_err() {
                self.install(def).await?;
            }
        }
        Ok(())
    }
}

/// A unique index's refusal as the entity's unique violation.
fn unique_error(entity: &str, e: heavenbase_providers::ProviderError) -> Error {
    match e {
        heavenbase_providers::ProviderError::Unique { backend, table, message } => Error::new(
            ErrorKind::UniqueViolation,
            format!("{entity}: unique constraint violated in backend '{backend}' ({table}): {message}"),
        ),
        other => other.into(),
    }
}

/// The stripe locks of a set of object_ids; dropping them counts one more
/// finished write under each stripe (see `Workspace::written_since`).
pub(super) struct IdLocks<'a> {
    _guards: Vec<tokio::sync::MutexGuard<'a, ()>>,
    stripes: Vec<usize>,
    versions: &'a [std::sync::atomic::AtomicU64],
}

impl Drop for IdLocks<'_> {
    fn drop(&mut self) {
        for s in &self.stripes {
            self.versions[*s].fetch_add(1, std::sync::atomic::Ordering::Release);
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct CardPolicy {
    created_at: i64,
    expires_at: Option<i64>,
    expires_after: i64,
    stale_after: i64,
}

/// Whether the entity's `name` has the same type as Catalog.name (ShortText 255).
pub(crate) fn projects_name(def: &EntityDef) -> bool {
    def.get(NAME).is_some_and(|f| f.ty == LogicalType::short_text())
}

/// The card a row should have; timestamps `now`.
pub(crate) fn expected_card(ws: &str, entity_id: &str, object_id: &str, card_id: &str, name: Json, now: i64) -> Row {
    let mut card = Row::new();
    card.insert(OBJECT_ID.into(), json!(card_id));
    card.insert("target_id".into(), json!(object_id));
    card.insert("target_entity".into(), json!(entity_id));
    card.insert("ws".into(), json!(ws));
    card.insert("created_at".into(), json!(now));
    card.insert("updated_at".into(), json!(now));
    if !matches!(&name, Json::String(s) if s.is_empty()) && !name.is_null() {
        card.insert(NAME.into(), name);
    }
    card
}

fn into_row(entity: &str, row: Json) -> Result<Row> {
    match row {
        Json::Object(m) => Ok(m),
        other => Err(Error::argument(format!("A row of '{entity}' must be a JSON object, got {}", describe_value(&other)))),
    }
}

/// The display name a row's id derives from: ShortText rules, blank is missing.
fn name_source(v: &Json) -> Option<String> {
    let text = match v {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        _ => return None,
    };
    if text.trim().is_empty() { None } else { Some(text) }
}

/// Validate rows against the entity and lay them out as columns.
/// [`prepare`] on the blocking pool for large batches, so validating 100k rows
/// does not stall the other tasks of this runtime (a server's connections).
async fn prepare_off_thread(rt: &Arc<EntityRuntime>, rows: Vec<Row>) -> Result<PreparedBatch> {
    if rows.len() < 1024 {
        return prepare(&rt.def, &rows);
    }
    let rt = rt.clone();
    tokio::task::spawn_blocking(move || {
        let prepared = prepare(&rt.def, &rows);
        // Freeing 100k JSON rows takes a while; the caller need not wait for it.
        std::thread::spawn(move || drop(rows));
        prepared
    })
    .await
    .map_err(|e| Error::internal(format!("row validation failed: {e}")))?
}

/// Validate rows against the entity and lay them out as columns. Large batches
/// are validated on every core, in chunks; the first error in row order wins.
pub(super) fn prepare(def: &EntityDef, rows: &[Row]) -> Result<PreparedBatch> {
    const CHUNK: usize = 16_384;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let now = heavenbase_catalog::entity::now_ms();
    if rows.len() < 2 * CHUNK || threads < 2 {
        return prepare_chunk(def, rows, 0, true, now);
    }
    let per = rows.len().div_ceil(threads);
    let parts: Vec<Result<PreparedBatch>> = std::thread::scope(|scope| {
        let handles: Vec<_> = rows
            .chunks(per)
            .enumerate()
            .map(|(i, chunk)| scope.spawn(move || prepare_chunk(def, chunk, i * per, false, now)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(Error::internal("row validation panicked")))).collect()
    });
    let parts = parts.into_iter().collect::<Result<Vec<_>>>()?;
    let mut seen = HashSet::with_capacity(rows.len());
    for id in parts.iter().flat_map(|p| &p.ids) {
        if !seen.insert(id.as_str()) {
            return Err(Error::new(
                ErrorKind::UniqueViolation,
                format!("{} batch contains duplicate object_id '{id}'", def.entity_id),
            ));
        }
    }
    let mut columns = HashMap::with_capacity(def.fields.len());
    for f in &def.fields {
        let arrays: Vec<&dyn datafusion::arrow::array::Array> = parts.iter().map(|p| p.columns[&f.name].as_ref()).collect();
        let merged =
            datafusion::arrow::compute::concat(&arrays).map_err(|e| Error::with_source(ErrorKind::Internal, e.to_string(), e))?;
        columns.insert(f.name.clone(), merged);
    }
    drop(seen);
    let ids = parts.into_iter().flat_map(|p| p.ids).collect();
    Ok(PreparedBatch { ids, columns })
}

/// [`prepare`] for rows `offset..` of a batch (row numbers in messages are global);
/// `check_duplicates` is off when the caller checks ids across chunks itself.
/// `now_ms` is the write's time, for computed defaults.
fn prepare_chunk(def: &EntityDef, rows: &[Row], offset: usize, check_duplicates: bool, now_ms: i64) -> Result<PreparedBatch> {
    let e = &def.entity_id;
    let defaults: Vec<Option<Json>> = def.fields.iter().map(|f| f.default_at(now_ms)).collect();
    let mut builders: Vec<ColumnBuilder> = def.fields.iter().map(|f| ColumnBuilder::new(&f.ty, rows.len())).collect();
    let mut ids = Vec::with_capacity(rows.len());
    let mut seen = HashSet::with_capacity(rows.len());
    let (identifier, short_text) = (LogicalType::identifier(), LogicalType::short_text());
    // Fields whose default differs from row to row (gen_random_uuid()): a row
    // without one gets its value first, so a key it is part of derives the
    // object_id from the value stored.
    let per_row: Vec<&heavenbase_catalog::FieldDef> = def.fields.iter().filter(|f| f.default_per_row()).collect();
    for (n, row) in rows.iter().enumerate() {
        let n = n + offset;
        let filled;
        let row = if per_row.iter().any(|f| !row.contains_key(&f.name)) {
            let mut with_defaults = row.clone();
            for f in &per_row {
                if !with_defaults.contains_key(&f.name) {
                    with_defaults.insert(f.name.clone(), f.default_at(now_ms).expect("a computed default"));
                }
            }
            filled = with_defaults;
            &filled
        } else {
            row
        };
        if let Some(unknown) = row.keys().find(|k| def.get(k).is_none()) {
            return Err(Error::unknown_field(format!(
                "Unknown field '{unknown}' on entity '{e}' (row {n}).{}",
                crate::error::suggest(unknown, def.fields.iter().map(|f| f.name.as_str()))
            )));
        }
        let id = match row.get(OBJECT_ID) {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) if s.is_empty() => None,
            Some(v) => Some(
                check_text(&identifier, v)
                    .map_err(|m| Error::invalid(format!("{e}.object_id: {m} (value {})", describe_value(v))))?
                    .into_owned(),
            ),
        };
        let id = match id {
            _ if def.id_source.key().is_some() => row_key_id(def, row, id.as_deref())?,
            Some(id) => id,
            None => {
                let name =
                    row.get(NAME).or_else(|| def.fields.iter().position(|f| f.name == NAME).and_then(|i| defaults[i].as_ref()));
                let name = match name {
                    Some(v) => {
                        check_text(&short_text, v)
                            .map_err(|m| Error::invalid(format!("{e}.name: {m} (value {})", describe_value(v))))?;
                        name_source(v)
                    }
                    None => None,
                };
                match name {
                    Some(name) => derive_object_id(def.storage_name(), &name),
                    None if def.id_source == IdSource::NameOrGenerated => generate_object_id(),
                    None => return Err(missing_object_id(e, n)),
                }
            }
        };
        if check_duplicates && !seen.insert(id.clone()) {
            return Err(Error::new(ErrorKind::UniqueViolation, format!("{e} batch contains duplicate object_id '{id}'")));
        }
        for ((f, b), default) in def.fields.iter().zip(builders.iter_mut()).zip(&defaults) {
            if f.name == OBJECT_ID {
                b.push(&Json::String(id.clone())).map_err(Error::invalid)?;
                continue;
            }
            let value = match row.get(&f.name) {
                Some(v) => v,
                None => default.as_ref().unwrap_or(&Json::Null),
            };
            if value.is_null() && f.required {
                return Err(Error::new(
                    ErrorKind::MissingValue,
                    format!("Missing required field {e}.{} (object_id '{id}')", f.name),
                ));
            }
            b.push(value).map_err(|m| {
                Error::invalid(format!("{e}.{}: {m} (object_id '{id}', value {})", f.name, describe_value(value)))
            })?;
        }
        ids.push(id);
    }
    let columns = def.fields.iter().zip(builders).map(|(f, b)| (f.name.clone(), b.finish())).collect();
    Ok(PreparedBatch { ids, columns })
}

/// The Arrow counterpart of [`prepare`]: the same rules and messages, column
/// by column. Ids come first, so a bad value's message can name its object_id.
/// `refuse_duplicates` off lets one id appear in several rows (an
/// `ON CONFLICT` insert decides about them itself).
fn prepare_batch(def: &EntityDef, batch: &RecordBatch, refuse_duplicates: bool) -> Result<PreparedBatch> {
    let e = &def.entity_id;
    let now_ms = heavenbase_catalog::entity::now_ms();
    let n = batch.num_rows();
    let schema = batch.schema();
    if let Some(unknown) = schema.fields().iter().map(|f| f.name()).find(|c| def.get(c).is_none()) {
        return Err(Error::unknown_field(format!(
            "Unknown field '{unknown}' on entity '{e}'.{}",
            crate::error::suggest(unknown, def.fields.iter().map(|f| f.name.as_str()))
        )));
    }
    let column = |f: &heavenbase_catalog::FieldDef, ids: Option<&[String]>| -> Result<ArrayRef> {
        match batch.column_by_name(&f.name) {
            Some(a) => coerce_column(&f.ty, a).map_err(|bad| {
                let id = ids.and_then(|ids| bad.row.map(|r| ids[r].as_str()));
                let mut message = format!("{e}.{}: {}", f.name, bad.message);
                match (id, bad.row, &bad.value) {
                    (Some(id), _, Some(v)) => message.push_str(&format!(" (object_id '{id}', value {v})")),
                    (None, Some(row), Some(v)) => message.push_str(&format!(" (row {row}, value {v})")),
                    _ => {}
                }
                Error::invalid(message)
            }),
            None => default_column(def, f, n, now_ms),
        }
    };
    let name = match def.get(NAME) {
        Some(f) => Some(column(f, None)?),
        None => None,
    };
    // A declared key's columns, coerced first: the ids derive from them.
    let mut key_columns: HashMap<&str, ArrayRef> = HashMap::new();
    for k in def.id_source.key().unwrap_or_default() {
        let f = def.get(k).ok_or_else(|| Error::internal(format!("{e}: primary key field {k} is not defined")))?;
        key_columns.insert(k, column(f, None)?);
    }
    let ids = batch_ids(def, batch, name.as_ref(), &key_columns)?;
    if refuse_duplicates {
        let mut seen = HashSet::with_capacity(n);
        if let Some(row) = ids.iter().position(|id| !seen.insert(id.as_str())) {
            let message = match def.id_source.key() {
                Some(key) => format!(
                    "duplicate key value violates the primary key of {e}: ({}) = ({}) appears twice in one statement",
                    key.join(", "),
                    keys::key_text(&key_values_at(def, key, &key_columns, row))
                ),
                None => format!("{e} batch contains duplicate object_id '{}'", ids[row]),
            };
            return Err(Error::new(ErrorKind::UniqueViolation, message));
        }
    }
    let mut columns = HashMap::with_capacity(def.fields.len());
    for f in &def.fields {
        let array = match f.name.as_str() {
            OBJECT_ID => Arc::new(datafusion::arrow::array::StringArray::from_iter_values(&ids)) as ArrayRef,
            NAME if name.is_some() => name.clone().expect("checked"),
            k if key_columns.contains_key(k) => key_columns[k].clone(),
            _ => column(f, Some(ids.as_slice()))?,
        };
        if f.required && array.null_count() > 0 {
            let row = (0..n).find(|r| array.is_null(*r)).unwrap_or_default();
            return Err(Error::new(
                ErrorKind::MissingValue,
                format!("Missing required field {e}.{} (object_id '{}')", f.name, ids[row]),
            ));
        }
        columns.insert(f.name.clone(), array);
    }
    Ok(PreparedBatch { ids, columns })
}

/// Each row's object_id: the one its declared key gives (`key_columns`,
/// coerced), else the one given, else derived from the row's name (blank names
/// count as missing), as [`prepare_chunk`] does for JSON rows.
fn batch_ids(
    def: &EntityDef,
    batch: &RecordBatch,
    name: Option<&ArrayRef>,
    key_columns: &HashMap<&str, ArrayRef>,
) -> Result<Vec<String>> {
    let e = &def.entity_id;
    let text = |a: &ArrayRef| -> Result<ArrayRef> {
        datafusion::arrow::compute::cast(a, &datafusion::arrow::datatypes::DataType::Utf8)
            .map_err(|err| Error::invalid(format!("{e}: object_id and name must be text: {err}")))
    };
    let given = batch.column_by_name(OBJECT_ID).map(text).transpose()?;
    let names = name.map(text).transpose()?;
    let given = given.as_ref().map(|a| a.as_string::<i32>());
    let names = names.as_ref().map(|a| a.as_string::<i32>());
    let identifier = LogicalType::identifier();
    let mut ids = Vec::with_capacity(batch.num_rows());
    if let Some(key) = def.id_source.key() {
        for row in 0..batch.num_rows() {
            let given = given.filter(|g| g.is_valid(row)).map(|g| g.value(row)).filter(|id| !id.is_empty());
            ids.push(keys::key_object_id(def, key, &key_values_at(def, key, key_columns, row), given)?);
        }
        return Ok(ids);
    }
    for row in 0..batch.num_rows() {
        match given.filter(|g| g.is_valid(row)).map(|g| g.value(row)).filter(|id| !id.is_empty()) {
            Some(id) => {
                check_text_limits(&identifier, id).map_err(|m| {
                    Error::invalid(format!("{e}.object_id: {m} (value {})", describe_value(&Json::String(id.to_string()))))
                })?;
                ids.push(id.to_string())
            }
            None => {
                let name = names.filter(|a| a.is_valid(row)).map(|a| a.value(row)).filter(|s| !s.trim().is_empty());
                match name {
                    Some(name) => ids.push(derive_object_id(def.storage_name(), name)),
                    None if def.id_source == IdSource::NameOrGenerated => ids.push(generate_object_id()),
                    None => return Err(missing_object_id(e, row)),
                }
            }
        }
    }
    Ok(ids)
}

/// The values of a declared key in row `row` of columns laid out by field name.
fn key_values_at<S: std::borrow::Borrow<str> + std::hash::Hash + Eq>(
    def: &EntityDef,
    key: &[String],
    columns: &HashMap<S, ArrayRef>,
    row: usize,
) -> Vec<Json> {
    key.iter()
        .map(|k| match (columns.get(k.as_str()), def.get(k)) {
            (Some(a), Some(f)) => array_value(a.as_ref(), row, &f.ty),
            _ => Json::Null,
        })
        .collect()
}

/// The object_id a JSON row's declared key gives it (each key value coerced
/// to its field's type first, so `"5"` and `5` are one key).
fn row_key_id(def: &EntityDef, row: &Row, given: Option<&str>) -> Result<String> {
    let key = def.id_source.key().unwrap_or_default();
    let mut values = Vec::with_capacity(key.len());
    for k in key {
        let f = def.get(k).ok_or_else(|| Error::internal(format!("{}: primary key field {k} is not defined", def.entity_id)))?;
        let default = f.default_at(heavenbase_catalog::entity::now_ms());
        let value = row.get(k).or(default.as_ref()).unwrap_or(&Json::Null);
        let value = if value.is_null() {
            Json::Null
        } else {
            f.ty.coerce(value)
                .map_err(|m| Error::invalid(format!("{}.{k}: {m} (value {})", def.entity_id, describe_value(value))))?
        };
        values.push(value);
    }
    keys::key_object_id(def, key, &values, given)
}

/// A row with neither an object_id nor a name to derive one from.
fn missing_object_id(entity: &str, row: usize) -> Error {
    Error::new(
        ErrorKind::MissingValue,
        format!(
            "Missing object_id for {entity} (row {row}); object_id is required and cannot be null. \
             Provide object_id or a non-empty name to derive it from"
        ),
    )
}

/// A field's column for rows that leave it out: its default (a computed one
/// taken at `now_ms`, one for each row where it differs by row), or NULL.
fn default_column(def: &EntityDef, f: &heavenbase_catalog::FieldDef, rows: usize, now_ms: i64) -> Result<ArrayRef> {
    let Some(mut default) = f.default_at(now_ms) else {
        return Ok(datafusion::arrow::array::new_null_array(&f.ty.arrow_type(), rows));
    };
    let mut b = ColumnBuilder::new(&f.ty, rows);
    for row in 0..rows {
        if row > 0 && f.default_per_row() {
            default = f.default_at(now_ms).expect("a computed default");
        }
        b.push(&default)
            .map_err(|m| Error::definition(format!("{}.{}: default {default} is invalid: {m}", def.entity_id, f.name)))?;
    }
    Ok(b.finish())
}

/// A scanned batch (object_id + some of the entity's columns) as JSON rows:
/// the read side of the JSON API (`get`, `set`'s merge, query results as rows).
/// No write path goes through it; writes from Arrow stay Arrow.
pub(crate) fn scanned_rows(rt: &EntityRuntime, batch: &RecordBatch) -> Vec<Row> {
    let types: Vec<LogicalType> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| rt.def.get(f.name()).map(|d| d.ty.clone()).unwrap_or(LogicalType::identifier()))
        .collect();
    heavenbase_catalog::value::batch_rows(batch, &types)
}

pub(crate) fn batches_to_rows(rt: &EntityRuntime, batches: &[RecordBatch]) -> Vec<Row> {
    batches.iter().flat_map(|b| scanned_rows(rt, b)).collect()
}

/// Stored ids per group of an entity: for the cross-backend consistency audit.
pub(crate) async fn group_ids(rt: &EntityRuntime) -> Result<Vec<BTreeSet<String>>> {
    let mut out = Vec::new();
    for (backend, group) in &rt.groups {
        let batches = backend.scan(group, &ScanRequest::default()).await?;
        let mut ids = BTreeSet::new();
        for b in &batches {
            for id in b.column(0).as_string::<i32>().iter().flatten() {
                ids.insert(id.to_string());
            }
        }
        out.push(ids);
    }
    Ok(out)
}
