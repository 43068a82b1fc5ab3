//! Transaction blocks (docs/transactions.md).
//!
//! A [`Transaction`] is a workspace handle whose writes are validated when
//! their statement runs and then held, in statement order, by the transaction
//! (`Op`s of full rows and deletions by object_id); COMMIT applies them,
//! ROLLBACK and drop discard them. Reads through the handle see them: every
//! read of an entity's rows (SQL scans, `get`, `exists`, `count`, the
//! existence checks of inserts and foreign keys) lays the transaction's
//! latest row for each object it touched over the committed rows (an
//! [`Overlay`]). The transaction's SQL session is the workspace's with a
//! config extension naming the transaction, so plans prepared outside the
//! block read the overlay when they run inside it.
//!
//! Isolation: a block reads committed rows as they are when each statement
//! runs (READ COMMITTED), plus its own writes. An object written by a block
//! is claimed by it until the block ends: another block that writes it gets
//! 40001 at once (first writer wins; no waiting, so no deadlock), and a write
//! outside any block waits for the claim to go (55P03 after 30 s).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use heavenbase_catalog::value::array_value;
use heavenbase_catalog::{EntityDef, Row};
use parking_lot::Mutex;

use super::journal::Change;
use super::write::PreparedBatch;
use super::{EntityRuntime, Inner, Workspace};
use crate::{Error, ErrorKind, Result};

static NEXT_TRANSACTION: AtomicU64 = AtomicU64::new(1);

/// How long a write outside any block waits for an object a block has claimed.
pub(super) const CLAIM_WAIT: Duration = Duration::from_secs(30);

/// One held change: full rows (every field) or deletions, of one entity.
pub(crate) enum Op {
    Write { entity: String, batch: PreparedBatch },
    Delete { entity: String, ids: Vec<String> },
}

impl Op {
    fn entity(&self) -> &str {
        match self {
            Op::Write { entity, .. } | Op::Delete { entity, .. } => entity,
        }
    }
}

#[derive(Default)]
struct Log {
    ops: Vec<Arc<Op>>,
    /// Bumped whenever ops are removed (ROLLBACK TO, a failed statement,
    /// COMMIT, ROLLBACK): cached overlays from before are rebuilt.
    cuts: u64,
    /// Per entity: the overlay of its ops, as of `cuts` and the first `usize`
    /// ops of the log. A read extends it by the ops pushed since, so a block
    /// of n writes costs O(n) overlay work in all, not O(n²).
    overlays: HashMap<String, (u64, usize, Arc<Overlay>)>,
    /// Savepoints, oldest first: a name and the number of ops before it.
    savepoints: Vec<(String, usize)>,
    /// object_ids this transaction has claimed.
    claimed: HashSet<String>,
}

/// The shared state of one transaction.
pub(crate) struct TxnState {
    pub(crate) id: u64,
    inner: Weak<Inner>,
    pub(crate) ctx: SessionContext,
    log: Mutex<Log>,
    /// COMMIT is writing the held ops: writes go to the backends.
    applying: AtomicBool,
    /// COMMIT stored the whole block in the write journal first, so its
    /// writes need no entries of their own.
    journaled: AtomicBool,
    /// Committed or rolled back: nothing more may be held.
    finished: AtomicBool,
}

/// The session-config extension that ties a SQL session to its transaction
/// (weak: the transaction owns the session).
pub(crate) struct TxnHandle(pub(crate) Weak<TxnState>);

/// The transaction a session's config names, if it is still open.
pub(crate) fn of_config(config: &SessionConfig) -> Option<Arc<TxnState>> {
    config.get_extension::<TxnHandle>()?.0.upgrade().filter(|t| !t.applying.load(Ordering::Acquire))
}

impl TxnState {
    fn new(inner: &Arc<Inner>, base: SessionState) -> Arc<TxnState> {
        Arc::new_cyclic(|me: &Weak<TxnState>| {
            // The catalogs are the workspace's own (shared, not created anew).
            let config = base
                .config()
                .clone()
                .with_create_default_catalog_and_schema(false)
                .with_extension(Arc::new(TxnHandle(me.clone())));
            // A federated subplan would run in the backend and miss the held rows.
            let rules = base.optimizers().iter().filter(|r| r.name() != crate::federation::RULE_NAME).cloned().collect();
            let state = SessionStateBuilder::new_from_existing(base).with_config(config).with_optimizer_rules(rules).build();
            TxnState {
                id: NEXT_TRANSACTION.fetch_add(1, Ordering::Relaxed),
                inner: Arc::downgrade(inner),
                ctx: SessionContext::new_with_state(state),
                log: Mutex::new(Log::default()),
                applying: AtomicBool::new(false),
                journaled: AtomicBool::new(false),
                finished: AtomicBool::new(false),
            }
        })
    }

    pub(crate) fn is_applying(&self) -> bool {
        self.applying.load(Ordering::Acquire)
    }

    pub(crate) fn is_journaled(&self) -> bool {
        self.journaled.load(Ordering::Acquire)
    }

    fn check_open(&self) -> Result<()> {
        if self.finished.load(Ordering::Acquire) {
            return Err(Error::new(ErrorKind::NoActiveTransaction, "this transaction has already been committed or rolled back"));
        }
        Ok(())
    }

    /// Hold one more change.
    pub(crate) fn push(&self, op: Op) -> Result<()> {
        self.check_open()?;
        self.log.lock().ops.push(Arc::new(op));
        Ok(())
    }

    /// Mark `ids` as claimed by this transaction (the workspace's claim table
    /// is updated by the caller, under the ids' locks).
    pub(super) fn note_claims(&self, ids: &[String]) {
        self.log.lock().claimed.extend(ids.iter().cloned());
    }

    /// The held changes' latest state per object of `entity`, or None when
    /// the transaction has not touched it.
    pub(crate) fn overlay(&self, entity: &str) -> Option<Arc<Overlay>> {
        let mut log = self.log.lock();
        let Log { ops, cuts, overlays, .. } = &mut *log;
        let (at_cut, consumed, overlay) =
            overlays.entry(entity.to_string()).or_insert_with(|| (*cuts, 0, Arc::new(Overlay::default())));
        if *at_cut != *cuts {
            (*at_cut, *consumed, *overlay) = (*cuts, 0, Arc::new(Overlay::default()));
        }
        if *consumed < ops.len() {
            // Copied only when a reader still holds the previous state.
            let o = Arc::make_mut(overlay);
            for op in ops[*consumed..].iter().filter(|op| op.entity() == entity) {
                o.push(op.clone());
            }
            *consumed = ops.len();
        }
        (!overlay.ops.is_empty()).then(|| overlay.clone())
    }

    /// Whether any change to `entity` is held.
    pub(crate) fn touches(&self, entity: &str) -> bool {
        self.log.lock().ops.iter().any(|op| op.entity() == entity)
    }

    /// Number of held changes (a statement that fails inside a block is
    /// undone by cutting the log back to where it started).
    pub(crate) fn mark(&self) -> usize {
        self.log.lock().ops.len()
    }

    pub(crate) fn cut_to(&self, mark: usize) {
        let mut log = self.log.lock();
        if mark < log.ops.len() {
            log.ops.truncate(mark);
            log.cuts += 1;
        }
    }

    fn release_claims(&self) {
        let claimed = std::mem::take(&mut self.log.lock().claimed);
        if let Some(inner) = self.inner.upgrade() {
            {
                let mut claims = inner.claims.lock();
                for id in &claimed {
                    if claims.get(id) == Some(&self.id) {
                        claims.remove(id);
                    }
                }
            }
            inner.claim_released.notify_waiters();
        }
    }
}

impl Drop for TxnState {
    fn drop(&mut self) {
        self.release_claims();
    }
}

/// The latest held state of each object one entity's held changes touch.
#[derive(Clone, Default)]
pub(crate) struct Overlay {
    ops: Vec<Arc<Op>>,
    /// object_id → (op, row) of its latest full row; None: deleted.
    latest: HashMap<String, Option<(usize, usize)>>,
    /// Touched object_ids, in the order first touched.
    order: Vec<String>,
}

impl Overlay {
    fn of(ops: Vec<Arc<Op>>) -> Overlay {
        let mut overlay = Overlay::default();
        for op in ops {
            overlay.push(op);
        }
        overlay
    }

    /// Lay one more op over the others.
    fn push(&mut self, op: Arc<Op>) {
        let i = self.ops.len();
        let Overlay { latest, order, .. } = self;
        let mut touch = |id: &String, state: Option<(usize, usize)>| {
            if latest.insert(id.clone(), state).is_none() {
                order.push(id.clone());
            }
        };
        match op.as_ref() {
            Op::Write { batch, .. } => batch.ids.iter().enumerate().for_each(|(r, id)| touch(id, Some((i, r)))),
            Op::Delete { ids, .. } => ids.iter().for_each(|id| touch(id, None)),
        }
        self.ops.push(op);
    }

    /// Every touched object_id.
    pub(crate) fn touched(&self) -> &[String] {
        &self.order
    }

    /// None: not touched; Some(None): deleted; Some(Some(row)): written.
    pub(crate) fn state(&self, id: &str) -> Option<Option<(usize, usize)>> {
        self.latest.get(id).copied()
    }

    pub(crate) fn live_count(&self) -> usize {
        self.latest.values().filter(|s| s.is_some()).count()
    }

    /// The held row of a written object, its fields in declaration order.
    pub(crate) fn row(&self, def: &EntityDef, at: (usize, usize)) -> Row {
        let Op::Write { batch, .. } = self.ops[at.0].as_ref() else { unreachable!("a written row is in a write") };
        def.fields.iter().map(|f| (f.name.clone(), array_value(batch.columns[&f.name].as_ref(), at.1, &f.ty))).collect()
    }

    /// The written objects' rows as one batch of every field.
    pub(crate) fn prepared(&self, def: &EntityDef) -> Result<PreparedBatch> {
        let mut by_op: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
        for id in &self.order {
            if let Some(Some((op, row))) = self.latest.get(id) {
                by_op.entry(*op).or_default().push(*row as u32);
            }
        }
        let mut ids = Vec::new();
        let mut parts: Vec<HashMap<String, ArrayRef>> = Vec::new();
        for (op, rows) in by_op {
            let Op::Write { batch, .. } = self.ops[op].as_ref() else { continue };
            ids.extend(rows.iter().map(|r| batch.ids[*r as usize].clone()));
            let indices = UInt32Array::from(rows);
            let mut columns = HashMap::new();
            for f in &def.fields {
                let column = batch
                    .columns
                    .get(&f.name)
                    .ok_or_else(|| Error::internal(format!("a held write to {} has no column {}", def.entity_id, f.name)))?;
                columns.insert(f.name.clone(), take(column.as_ref(), &indices, None).map_err(arrow_error)?);
            }
            parts.push(columns);
        }
        let mut columns = HashMap::new();
        for f in &def.fields {
            let arrays: Vec<&dyn datafusion::arrow::array::Array> = parts.iter().map(|p| p[&f.name].as_ref()).collect();
            let merged = if arrays.is_empty() {
                datafusion::arrow::array::new_empty_array(&f.ty.arrow_type())
            } else {
                datafusion::arrow::compute::concat(&arrays).map_err(arrow_error)?
            };
            columns.insert(f.name.clone(), merged);
        }
        Ok(PreparedBatch { ids, columns })
    }

    /// The written objects' rows in the entity table's columns.
    pub(crate) fn batch(&self, def: &EntityDef) -> Result<RecordBatch> {
        let schema = crate::table::table_schema(def);
        let prepared = self.prepared(def)?;
        let columns: Vec<ArrayRef> = def.fields.iter().map(|f| prepared.columns[&f.name].clone()).collect();
        RecordBatch::try_new(schema, columns).map_err(arrow_error)
    }

    /// Touched objects the transaction deleted.
    fn deleted(&self) -> Vec<String> {
        self.order.iter().filter(|id| matches!(self.latest.get(*id), Some(None))).cloned().collect()
    }
}

fn arrow_error(e: datafusion::arrow::error::ArrowError) -> Error {
    Error::with_source(ErrorKind::Internal, format!("held rows: {e}"), e)
}

/// A transaction block over a workspace: dereferences to a [`Workspace`]
/// handle whose reads see the block's writes and whose writes are held until
/// [`Transaction::commit`]. Dropping it rolls back.
///
/// ```no_run
/// # async fn run(ws: heavenbase::Workspace) -> heavenbase::Result<()> {
/// let tx = ws.begin()?;
/// tx.upsert("product", serde_json::json!({"name": "lamp", "price": 12.5})).await?;
/// assert_eq!(tx.sql("SELECT count(*) FROM product").await?.len(), 1);
/// tx.commit().await?; // or tx.rollback(), or drop(tx)
/// # Ok(()) }
/// ```
pub struct Transaction {
    ws: Workspace,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Transaction({}, {})", self.ws.inner.id, self.state().id)
    }
}

impl std::ops::Deref for Transaction {
    type Target = Workspace;
    fn deref(&self) -> &Workspace {
        &self.ws
    }
}

impl Workspace {
    /// Start a transaction block (see [`Transaction`]).
    pub fn begin(&self) -> Result<Transaction> {
        self.begin_on(self.inner.ctx.state())
    }

    /// [`Workspace::begin`] whose SQL session is built from `state` (a server's
    /// session, with its catalog tables and settings) rather than the workspace's.
    pub fn begin_on(&self, state: SessionState) -> Result<Transaction> {
        if self.txn.is_some() {
            return Err(Error::new(ErrorKind::ActiveTransaction, "there is already a transaction in progress"));
        }
        let txn = TxnState::new(&self.inner, state);
        Ok(Transaction { ws: Workspace { inner: self.inner.clone(), txn: Some(txn) } })
    }

    /// The open transaction whose writes this handle holds (None outside a
    /// block, and while COMMIT writes them).
    pub(crate) fn buffering(&self) -> Option<&Arc<TxnState>> {
        self.txn.as_ref().filter(|t| !t.is_applying())
    }

    /// The same workspace outside any transaction.
    pub(crate) fn without_transaction(&self) -> Workspace {
        Workspace { inner: self.inner.clone(), txn: None }
    }

    /// Whether this handle is a transaction's.
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }
}

impl Transaction {
    fn state(&self) -> &Arc<TxnState> {
        self.ws.txn.as_ref().expect("a transaction's handle has its state")
    }

    /// The workspace handle of this transaction (the one `Deref` gives).
    pub fn workspace(&self) -> &Workspace {
        &self.ws
    }

    /// Whether the block holds any change.
    pub fn has_writes(&self) -> bool {
        self.state().mark() > 0
    }

    /// `SAVEPOINT name`: a later [`Transaction::rollback_to`] undoes what
    /// follows. A name used again hides the older savepoint, as in Postgres.
    pub fn savepoint(&self, name: &str) -> Result<()> {
        let state = self.state();
        state.check_open()?;
        let mut log = state.log.lock();
        let at = log.ops.len();
        log.savepoints.push((name.to_string(), at));
        Ok(())
    }

    /// `ROLLBACK TO SAVEPOINT name`: discards the changes held since it; the
    /// savepoint stays.
    pub fn rollback_to(&self, name: &str) -> Result<()> {
        self.at_savepoint(name, |log, pos| {
            let at = log.savepoints[pos].1;
            log.savepoints.truncate(pos + 1);
            log.ops.truncate(at);
            log.cuts += 1;
        })
    }

    /// `RELEASE SAVEPOINT name`: forgets it and every later savepoint; the
    /// changes stay.
    pub fn release(&self, name: &str) -> Result<()> {
        self.at_savepoint(name, |log, pos| log.savepoints.truncate(pos))
    }

    /// Run `change` on the log with the position of the newest savepoint `name`.
    fn at_savepoint(&self, name: &str, change: impl FnOnce(&mut Log, usize)) -> Result<()> {
        let state = self.state();
        state.check_open()?;
        let mut log = state.log.lock();
        let pos = log.savepoints.iter().rposition(|(n, _)| n == name).ok_or_else(|| no_savepoint(name))?;
        change(&mut log, pos);
        Ok(())
    }

    /// Whether a savepoint of that name exists.
    pub fn has_savepoint(&self, name: &str) -> bool {
        self.state().log.lock().savepoints.iter().any(|(n, _)| n == name)
    }

    /// Discard every held change.
    pub fn rollback(self) {
        let state = self.state();
        state.finished.store(true, Ordering::Release);
        {
            let mut log = state.log.lock();
            log.ops.clear();
            log.overlays.clear();
            log.cuts += 1;
        }
        state.release_claims();
    }

    /// Apply every held change. Each entity's changes are written as one
    /// batch of rows and one deletion, under the objects' locks; if a backend
    /// refuses one (a unique index), what was applied is put back as it was
    /// and COMMIT fails: the block is rolled back either way.
    pub async fn commit(self) -> Result<()> {
        let state = self.state().clone();
        state.check_open()?;
        state.finished.store(true, Ordering::Release);
        let ops = {
            let mut log = state.log.lock();
            log.overlays.clear();
            log.cuts += 1;
            std::mem::take(&mut log.ops)
        };
        state.applying.store(true, Ordering::Release);
        let result = if ops.is_empty() { Ok(()) } else { apply(&self.ws, &state, ops).await };
        state.release_claims();
        result
    }

    /// [`commit`](Self::commit), only if the workspace has not changed since
    /// `version` (the [`Workspace::change_version`] the block found at its
    /// first statement); otherwise the block is rolled back and this fails
    /// with 40001. The commit of a REPEATABLE READ or SERIALIZABLE block: its
    /// reads, each checked against `version` as it ran, then saw one
    /// unchanging state, and its writes apply to that state. Such commits run
    /// one at a time, each checking under the same lock, so of two validated
    /// blocks that overlapped at most one commits (as Postgres lets one of two
    /// conflicting serializable transactions commit); an object a block wrote
    /// was its own from that write on (other writers wait or get 40001).
    pub async fn commit_if_unchanged(self, version: u64) -> Result<()> {
        let inner = self.ws.inner.clone();
        let _one_at_a_time = inner.validated_commits.lock().await;
        if self.ws.change_version() != version {
            self.rollback();
            return Err(Error::new(
                ErrorKind::SerializationFailure,
                "could not serialize access due to concurrent update: the workspace changed since this block began; retry the transaction",
            ));
        }
        self.commit().await
    }
}

fn no_savepoint(name: &str) -> Error {
    Error::new(ErrorKind::UnknownSavepoint, format!("savepoint \"{name}\" does not exist"))
}

/// COMMIT's write: per entity (in the order the block first touched them),
/// the latest rows, then the deletions. A block of more than one change is
/// stored in the write journal first, so a crash part-way is completed when
/// the workspace next opens.
async fn apply(ws: &Workspace, state: &TxnState, ops: Vec<Arc<Op>>) -> Result<()> {
    let mut entities: Vec<String> = Vec::new();
    for op in &ops {
        if !entities.iter().any(|e| e == op.entity()) {
            entities.push(op.entity().to_string());
        }
    }
    let mut work: Vec<(Arc<EntityRuntime>, Overlay)> = Vec::new();
    for e in &entities {
        let rt = ws.runtime(e)?;
        let mine: Vec<Arc<Op>> = ops.iter().filter(|op| op.entity() == e).cloned().collect();
        work.push((rt, Overlay::of(mine)));
    }
    let mut changes: Vec<(usize, Change)> = Vec::new();
    for (i, (rt, o)) in work.iter().enumerate() {
        let rows = o.prepared(&rt.def)?;
        if !rows.ids.is_empty() {
            changes.push((i, Change::Write(rows)));
        }
        let deleted = o.deleted();
        if !deleted.is_empty() {
            changes.push((i, Change::Delete(deleted)));
        }
    }
    let all: Vec<String> = work.iter().flat_map(|(_, o)| o.order.iter().cloned()).collect();
    let _locks = ws.lock_ids(&all).await?;
    let mut before = Vec::with_capacity(work.len());
    for (rt, o) in &work {
        before.push(ws.get_many_unlocked(rt, &o.order).await?);
    }
    let journal = if changes.len() > 1 {
        let entries: Vec<(&str, &Change)> = changes.iter().map(|(i, c)| (work[*i].0.def.entity_id.as_str(), c)).collect();
        ws.journal_block(&entries).await?
    } else {
        None
    };
    state.journaled.store(journal.is_some(), Ordering::Release);
    let mut result = Ok(());
    for (i, change) in &changes {
        let rt = &work[*i].0;
        let applied = match change {
            Change::Write(rows) => ws.write_prepared(rt, rows.clone()).await.map(|_| ()),
            Change::Delete(ids) => ws.delete_unlocked(rt, ids).await.map(|_| ()),
        };
        if let Err(e) = applied {
            let mut message = format!("COMMIT failed, and the transaction was rolled back: {}", e.message());
            if let Err(undo) = restore(ws, &work[..=*i], &before).await {
                message.push_str(&format!(" (putting back the rows already written failed too: {undo}; run audit)"));
            }
            result = Err(Error::new(e.kind(), message));
            break;
        }
    }
    // Applied, or put back: either way the block is settled.
    if let Some((backend, ids)) = journal {
        let removed = backend.delete(&super::journal::journal_group(), &ids).await;
        if result.is_ok() {
            removed?;
        }
    }
    result
}

/// Put the touched objects of `work` back as `before` holds them.
async fn restore(ws: &Workspace, work: &[(Arc<EntityRuntime>, Overlay)], before: &[Vec<Option<Row>>]) -> Result<()> {
    for ((rt, o), rows) in work.iter().zip(before) {
        let absent: Vec<String> = o.order.iter().zip(rows).filter(|(_, r)| r.is_none()).map(|(id, _)| id.clone()).collect();
        let present: Vec<Row> = rows.iter().flatten().cloned().collect();
        if !absent.is_empty() {
            ws.delete_unlocked(rt, &absent).await?;
        }
        if !present.is_empty() {
            let prepared = super::write::prepare(&rt.def, &present)?;
            ws.write_prepared(rt, prepared).await?;
        }
    }
    Ok(())
}
