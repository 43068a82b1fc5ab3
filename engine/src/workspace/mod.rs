//! The `Workspace`: backends, registered entities, the DataFusion session, and the
//! lifecycle (open, load, detached, drop). Its other faces are child modules:
//! `write` (the Arrow write path and the Catalog cards), `dml` (SQL UPDATE and
//! DELETE planned once), `ddl` (CREATE/DROP TABLE, TRUNCATE, and refusing
//! schema statements that would not last), `alter` (ALTER TABLE), `views`
//! (CREATE/DROP VIEW) and `maintenance` (audit and repair); queries and
//! `near` build on it from `crate::query` and `crate::near`.

pub(crate) mod alter;
pub(crate) mod conflict;
pub(crate) mod ddl;
pub(crate) mod defaults;
pub(crate) mod dml;
pub(crate) mod journal;
pub(crate) mod keys;
pub(crate) mod list_text;
pub(crate) mod maintenance;
pub(crate) mod references;
pub(crate) mod shape;
pub(crate) mod transaction;
pub(crate) mod views;
pub(crate) mod write;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Weak};

use datafusion::arrow::array::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::prelude::{SessionConfig, SessionContext};
use heavenbase_catalog::system::{SYS_METASCHEMA, catalog_entity, is_system, metaschema_entity};
use heavenbase_catalog::{BackendInfo, EntityDef, PlacementPlan, Row, system_row_id};
use heavenbase_providers::{Backend, ColumnSpec, GroupSpec};
use parking_lot::RwLock;
use serde_json::{Value as Json, json};

use crate::presets::{self, Construction};
use crate::registry::Home;
use crate::table::EntityTable;
use crate::{Error, ErrorKind, Result};

/// A registered entity as the workspace runs it.
#[derive(Debug)]
pub(crate) struct EntityRuntime {
    pub def: EntityDef,
    pub plan: PlacementPlan,
    /// One per field group, primary first.
    pub groups: Vec<(Arc<dyn Backend>, GroupSpec)>,
}

impl EntityRuntime {
    pub fn primary(&self) -> &(Arc<dyn Backend>, GroupSpec) {
        &self.groups[0]
    }
}

pub(crate) struct Inner {
    pub id: String,
    pub home: Home,
    pub folder: PathBuf,
    pub construction: Construction,
    pub detached: bool,
    pub backends: Vec<Arc<dyn Backend>>,
    pub entities: RwLock<BTreeMap<String, Arc<EntityRuntime>>>,
    /// Views by name (kept in MetaSchema, planned into `ctx`).
    pub views: RwLock<BTreeMap<String, views::StoredView>>,
    pub ctx: SessionContext,
    /// Striped per-object_id locks: concurrent writes to one object never interleave.
    pub stripes: Vec<tokio::sync::Mutex<()>>,
    /// Per stripe: how many writes under it have finished (an UPDATE reads
    /// its rows again under their locks when one finished since it read them).
    pub stripe_versions: Vec<std::sync::atomic::AtomicU64>,
    /// Objects claimed by open transaction blocks: object_id → transaction.
    pub claims: parking_lot::Mutex<HashMap<String, u64>>,
    /// Signalled whenever a transaction gives its claims up.
    pub claim_released: tokio::sync::Notify,
    /// Identity columns' counters (`entity.field` → last value handed out),
    /// loaded from MetaSchema on first use; the lock serialises reservations.
    pub sequences: tokio::sync::Mutex<HashMap<String, i64>>,
    /// Serialises registration.
    pub register_lock: tokio::sync::Mutex<()>,
    /// Serialises the commits of validated blocks (Transaction::commit_if_unchanged).
    pub validated_commits: tokio::sync::Mutex<()>,
    /// Bumped whenever a table is (re)registered or removed, so cached plans
    /// (the wire server's) know they are stale.
    pub schema_version: std::sync::atomic::AtomicU64,
    /// Bumped when a write to the backends starts and again when it ends
    /// (see [`Workspace::change_version`]).
    pub data_version: std::sync::atomic::AtomicU64,
    /// Write-journal entries replayed when this workspace was opened.
    pub journal_replayed: std::sync::atomic::AtomicUsize,
    /// Backends whose write journal exists (see `journal.rs`).
    pub journals: parking_lot::Mutex<std::collections::HashSet<String>>,
    /// The statements' memory limits (`Workspace::limit_memory`).
    pub memory: RwLock<crate::memory::MemoryLimits>,
}

/// A workspace handle. Cheap to clone, `Send + Sync`, shared by any number of tasks.
/// A write in progress (see [`Workspace::writing`]).
pub(crate) struct WriteMark(Arc<Inner>);

impl Drop for WriteMark {
    fn drop(&mut self) {
        self.0.data_version.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

#[derive(Clone)]
pub struct Workspace {
    pub(crate) inner: Arc<Inner>,
    /// Set on a transaction's handle (see `transaction.rs`).
    pub(crate) txn: Option<Arc<transaction::TxnState>>,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Workspace({})", self.inner.id)
    }
}

/// Live workspaces of this process, so every handle to one id shares one state
/// (an in-memory `debug` workspace opened twice is one workspace, not two).
static LIVE: parking_lot::Mutex<Option<HashMap<(PathBuf, String), Weak<Inner>>>> = parking_lot::Mutex::new(None);

const STRIPES: usize = 256;

impl Workspace {
    /// Open workspace `id` under `$HEAVENBASE_HOME`, creating and registering it
    /// when absent. An existing id must have been built with the same construction.
    pub async fn open(id: &str, construction: Construction) -> Result<Workspace> {
        Self::open_in(&Home::from_env()?, id, construction).await
    }

    /// [`Workspace::open`] under an explicit home folder.
    pub async fn open_in(home: &Home, id: &str, construction: Construction) -> Result<Workspace> {
        check_ws_id(id)?;
        if let Some(rec) = home.get(id)? {
            if rec.construction != construction {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "Workspace '{id}' already exists with a different construction: it was built with {}, \
                     and this call asks for {}",
                        rec.construction.describe(),
                        construction.describe()
                    ),
                ));
            }
        }
        if let Some(live) = live_get(home, id) {
            return Ok(live);
        }
        let ws = Self::build(home, id, construction.clone(), false).await?;
        home.register(id, &construction)?;
        Ok(ws)
    }

    /// Load a registered workspace, replaying its stored construction.
    pub async fn load(id: &str) -> Result<Workspace> {
        Self::load_in(&Home::from_env()?, id).await
    }

    pub async fn load_in(home: &Home, id: &str) -> Result<Workspace> {
        let rec = home.get(id)?.ok_or_else(|| {
            let known: Vec<String> = home.list().map(|l| l.into_iter().map(|r| r.id).collect()).unwrap_or_default();
            Error::new(
                ErrorKind::UnknownWorkspace,
                format!("No registered workspace '{id}'.{}", crate::error::suggest(id, known.iter().map(String::as_str))),
            )
        })?;
        if let Some(live) = live_get(home, id) {
            return Ok(live);
        }
        Self::build(home, id, rec.construction, false).await
    }

    /// A workspace that is not registered and cannot be loaded by id. Its files,
    /// if any, live under the home's workspace folder like any other.
    pub async fn detached(id: &str, construction: Construction) -> Result<Workspace> {
        check_ws_id(id)?;
        Self::build(&Home::from_env()?, id, construction, true).await
    }

    pub async fn detached_in(home: &Home, id: &str, construction: Construction) -> Result<Workspace> {
        check_ws_id(id)?;
        Self::build(home, id, construction, true).await
    }

    async fn build(home: &Home, id: &str, construction: Construction, detached: bool) -> Result<Workspace> {
        let folder = home.workspace_folder(id);
        let configs = presets::resolve(&construction, id)?;
        let backends = presets::instantiate(&configs, id, &folder, home.root())?;
        let mut config =
            // information_schema is the workspace's own (crate::infoschema), registered below.
            SessionConfig::new().with_information_schema(false).with_default_catalog_and_schema("heavenbase", "public");
        config.options_mut().sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
        // A repartition that spills (only under a memory limit) writes each
        // batch to a file of its own, finished before the batch's marker is
        // sent. With files shared by several batches, two input tasks spilling
        // at once leave two unfinished files, and the reader, which waits on
        // the older one, can wait forever for a batch that is in the newer
        // (apache/datafusion#24883, fixed upstream after 54.1; Lance 14 holds
        // us to 54). One file per batch costs a file creation per
        // spilled batch, and frees each batch's disk as soon as it is read.
        config.options_mut().execution.max_spill_file_size_bytes = 1;
        // Subplans over one Postgres backend's tables run there as one statement.
        let state = datafusion::execution::SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            // Correlated subqueries that compare rather than equate (crate::correlated).
            .with_optimizer_rules(crate::correlated::optimizer_rules())
            .with_optimizer_rule(Arc::new(crate::federation::Federation))
            // Text compared with a uuid column is read as a uuid (crate::uuids).
            .with_analyzer_rule(Arc::new(crate::uuids::UuidLiterals))
            // INSERT … RETURNING's write node (crate::returning).
            .with_query_planner(Arc::new(crate::returning::WorkspacePlanner))
            .build();
        let mut ctx = SessionContext::new_with_state(state);
        // JSON paths in SQL: json_get_str(meta, 'k'), meta->>'k', ...
        datafusion_functions_json::register_all(&mut ctx)?;
        // gen_random_uuid(), and what casts to uuid become (crate::uuids).
        ctx.register_udf(crate::uuids::gen_random_uuid());
        ctx.register_udf(crate::uuids::uuid_cast());
        let ws = Workspace {
            txn: None,
            inner: Arc::new(Inner {
                id: id.to_string(),
                home: home.clone(),
                folder,
                construction,
                detached,
                backends,
                entities: RwLock::new(BTreeMap::new()),
                views: RwLock::new(BTreeMap::new()),
                ctx,
                stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
                stripe_versions: (0..STRIPES).map(|_| std::sync::atomic::AtomicU64::new(0)).collect(),
                claims: parking_lot::Mutex::new(HashMap::new()),
                claim_released: tokio::sync::Notify::new(),
                sequences: tokio::sync::Mutex::new(HashMap::new()),
                register_lock: tokio::sync::Mutex::new(()),
                validated_commits: tokio::sync::Mutex::new(()),
                schema_version: std::sync::atomic::AtomicU64::new(0),
                data_version: std::sync::atomic::AtomicU64::new(0),
                journal_replayed: std::sync::atomic::AtomicUsize::new(0),
                journals: parking_lot::Mutex::new(std::collections::HashSet::new()),
                memory: RwLock::new(crate::memory::MemoryLimits::default()),
            }),
        };
        // near(entity, field, vector, ...) in SQL.
        ws.inner.ctx.register_udtf("near", Arc::new(crate::near::NearFunction { ws: Arc::downgrade(&ws.inner) }));
        for (name, hybrid) in [("search", false), ("hybrid", true)] {
            let function = crate::search::SearchFunction { ws: Arc::downgrade(&ws.inner), hybrid };
            ws.inner.ctx.register_udtf(name, Arc::new(function));
        }
        let catalogs = ws.inner.ctx.state().catalog_list().clone();
        if let Some(catalog) = catalogs.catalog("heavenbase") {
            let schema = crate::infoschema::InformationSchema::new(&catalogs, Arc::downgrade(&ws.inner));
            catalog.register_schema("information_schema", Arc::new(schema))?;
        }
        // System entities first, then publish their rows, then restore user entities.
        let meta = metaschema_entity();
        let catalog = catalog_entity();
        ws.install(meta.clone()).await?;
        ws.install(catalog.clone()).await?;
        ws.restore_entities().await?;
        ws.restore_views().await?;
        // Complete what a crash cut off, before anything reads or writes.
        let replayed = ws.replay_journals().await?;
        ws.inner.journal_replayed.store(replayed, std::sync::atomic::Ordering::Release);
        ws.publish_entity_rows(&meta).await?;
        ws.publish_entity_rows(&catalog).await?;
        ws.publish_workspace_rows().await?;
        if !detached {
            live_put(home, id, &ws);
        }
        Ok(ws)
    }

    pub fn id(&self) -> &str {
        &self.inner.id
    }

    pub fn construction(&self) -> &Construction {
        &self.inner.construction
    }

    pub fn is_detached(&self) -> bool {
        self.inner.detached
    }

    /// Hold the workspace's statements (`ws.sql`, the query builder, and the
    /// MCP and Flight SQL doors, which run through them) to `limits`: their
    /// memory comes from `limits`' pool, spills go to this workspace's folder
    /// (`spill/`), and each `ws.sql` statement gets `per_query` of its own.
    /// A statement over a limit that cannot spill fails with 53200.
    pub fn limit_memory(&self, limits: &crate::memory::MemoryLimits) -> Result<()> {
        let limits = crate::memory::MemoryLimits { spill_dir: Some(self.folder().join("spill")), ..limits.clone() };
        let shared = self.inner.ctx.state_ref();
        let mut state = shared.write();
        let runtime = limits.runtime(state.runtime_env(), limits.server_pool())?;
        *state = datafusion::execution::SessionStateBuilder::new_from_existing(state.clone()).with_runtime_env(runtime).build();
        *self.inner.memory.write() = limits;
        Ok(())
    }

    /// Collect `frame` with the statement's own memory budget (see [`Workspace::limit_memory`]).
    pub(crate) async fn collect(&self, frame: datafusion::dataframe::DataFrame) -> Result<Vec<RecordBatch>> {
        let limits = self.inner.memory.read().clone();
        if limits.per_query.is_none() {
            return Ok(frame.collect().await?);
        }
        let (state, plan) = frame.into_parts();
        let physical = state.create_physical_plan(&plan).await?;
        let runtime = limits.for_statement(state.runtime_env());
        let task = Arc::new(datafusion::execution::TaskContext::from(&state).with_runtime(runtime));
        Ok(datafusion::physical_plan::collect(physical, task).await?)
    }

    /// The workspace's own folder under the home (its files, if its backends
    /// keep any there, and the temp files statements spill).
    pub fn folder(&self) -> &std::path::Path {
        &self.inner.folder
    }

    pub fn backend_infos(&self) -> Vec<BackendInfo> {
        self.inner.backends.iter().map(|b| b.info().clone()).collect()
    }

    pub fn backends(&self) -> &[Arc<dyn Backend>] {
        &self.inner.backends
    }

    /// User entity ids (system entities excluded), sorted.
    pub fn entities(&self) -> Vec<String> {
        self.inner.entities.read().keys().filter(|e| !is_system(e)).cloned().collect()
    }

    pub fn entity(&self, entity_id: &str) -> Result<EntityDef> {
        Ok(self.runtime(entity_id)?.def.clone())
    }

    pub fn placement(&self, entity_id: &str) -> Result<PlacementPlan> {
        Ok(self.runtime(entity_id)?.plan.clone())
    }

    pub(crate) fn runtime(&self, entity_id: &str) -> Result<Arc<EntityRuntime>> {
        let entities = self.inner.entities.read();
        // Table names (`-` → `_`) are accepted as well as entity ids.
        if let Some(rt) = entities.get(entity_id) {
            return Ok(rt.clone());
        }
        if let Some(rt) = entities.values().find(|rt| rt.def.table_name() == entity_id) {
            return Ok(rt.clone());
        }
        Err(Error::unknown_entity(format!(
            "Workspace '{}' has no entity '{entity_id}'.{}",
            self.inner.id,
            crate::error::suggest(entity_id, entities.keys().map(String::as_str))
        )))
    }

    /// Changes whenever an entity's table is registered, replaced or removed.
    pub fn schema_version(&self) -> u64 {
        self.inner.schema_version.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Changes whenever a write to this workspace's backends starts or ends,
    /// or its schema changes. A reader that finds the same number before and
    /// after a span of reads saw no change happen during it: REPEATABLE READ
    /// and SERIALIZABLE blocks over the wire are validated this way
    /// (Transaction::commit_if_unchanged).
    pub fn change_version(&self) -> u64 {
        use std::sync::atomic::Ordering::Acquire;
        self.inner.data_version.load(Acquire).wrapping_add(self.inner.schema_version.load(Acquire))
    }

    /// Marks a write to the backends as begun; dropping the mark ends it.
    pub(crate) fn writing(&self) -> WriteMark {
        self.inner.data_version.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        WriteMark(self.inner.clone())
    }

    /// The workspace's DataFusion session: every entity is a table in it.
    /// A transaction's handle answers the transaction's session, whose scans
    /// see the block's held writes.
    pub fn session(&self) -> &SessionContext {
        match &self.txn {
            Some(txn) => &txn.ctx,
            None => &self.inner.ctx,
        }
    }

    /// A handle for code that runs inside a DataFusion session (a sink, an
    /// execution plan): the transaction the session belongs to, if any.
    pub(crate) fn for_session(inner: Arc<Inner>, config: &datafusion::prelude::SessionConfig) -> Workspace {
        Workspace { inner, txn: transaction::of_config(config) }
    }

    /// Plan one SQL statement as a DataFrame.
    pub async fn dataframe(&self, sql: &str) -> Result<DataFrame> {
        Ok(self.inner.ctx.sql(sql).await?)
    }

    /// Register an entity. The same structure again is a no-op; a different one is
    /// an error unless `replace` (which keeps stored rows of surviving columns).
    pub async fn register(&self, def: EntityDef, replace: bool) -> Result<()> {
        let mut def = def.validated()?;
        if is_system(&def.entity_id) {
            return Err(Error::new(
                ErrorKind::ReadOnly,
                format!("'{}' is a fixed system entity and cannot be altered", def.entity_id),
            ));
        }
        let _guard = self.inner.register_lock.lock().await;
        let existing = self.runtime(&def.entity_id).ok();
        let replacing = existing.is_some();
        // Where the rows are stored never changes by registering: a new
        // definition of a renamed entity keeps its storage name, and a new
        // entity whose name another's rows are stored under gets a free one.
        def.stored_as = match &existing {
            Some(existing) => existing.def.stored_as.clone(),
            None => self.free_storage_name(&def.entity_id),
        };
        if let Some(existing) = existing {
            if existing.def.same_structure(&def) {
                return Ok(());
            }
            if !replace {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "Entity '{}' is already registered with a different structure; pass replace=true explicitly",
                        def.entity_id
                    ),
                ));
            }
        }
        self.install(def.clone()).await?;
        let written = self.publish_entity_rows(&def).await?;
        if replacing {
            self.remove_stale_entity_rows(&def.entity_id, &written).await?;
        }
        // Views hold plans bound to the table as it was.
        if !self.inner.views.read().is_empty() {
            self.replan_views().await;
        }
        Ok(())
    }

    /// `None` when no entity's rows are stored under `entity_id`'s table name;
    /// else the first of `entity_id_2`, `entity_id_3`, … that neither names an
    /// entity's table nor its storage ([`EntityDef::stored_as`]).
    fn free_storage_name(&self, entity_id: &str) -> Option<String> {
        use heavenbase_catalog::entity::table_name;
        let entities = self.inner.entities.read();
        let stored = |name: &str| entities.values().any(|rt| table_name(rt.def.storage_name()) == table_name(name));
        if !stored(entity_id) {
            return None;
        }
        (2..)
            .map(|n| format!("{entity_id}_{n}"))
            .find(|candidate| !stored(candidate) && !entities.values().any(|rt| rt.def.table_name() == table_name(candidate)))
    }

    /// Plan, create tables, and expose an entity as a table; writes no rows.
    pub(crate) async fn install(&self, def: EntityDef) -> Result<()> {
        let infos = self.backend_infos();
        let plan = PlacementPlan::plan(&def, &infos)?;
        let now_ms = heavenbase_catalog::entity::now_ms();
        let mut groups = Vec::new();
        for g in &plan.groups {
            let backend = self
                .inner
                .backends
                .iter()
                .find(|b| b.info().name == g.backend)
                .cloned()
                .ok_or_else(|| Error::new(ErrorKind::UnknownObject, format!("Unknown backend '{}'", g.backend)))?;
            let columns = g
                .fields
                .iter()
                .map(|f| {
                    let field = def.get(f).expect("planned field exists");
                    ColumnSpec {
                        name: f.clone(),
                        ty: field.ty.clone(),
                        // A computed default fills the rows a new column is
                        // added to with the time it was added (Postgres' ADD
                        // COLUMN … DEFAULT now()); rows written later take their own.
                        default: field.default_at(now_ms),
                        search: plan.bindings.iter().any(|b| {
                            b.field == *f && b.backend == g.backend && b.strategy == heavenbase_catalog::Strategy::Inverted
                        }),
                    }
                })
                .collect();
            let indexes = plan.indexes.iter().filter(|i| i.backend == g.backend).cloned().collect();
            let spec = GroupSpec::new(&def.entity_id, &g.table, columns, indexes);
            backend.ensure_group(&spec).await?;
            if groups.is_empty() {
                self.ensure_journal(&backend).await?;
            }
            groups.push((backend, spec));
        }
        let rt = Arc::new(EntityRuntime { def, plan, groups });
        let table = Arc::new(EntityTable::new(rt.clone(), Arc::downgrade(&self.inner)));
        let name = rt.def.table_name();
        self.inner.ctx.deregister_table(&name)?;
        self.inner.ctx.register_table(&name, table)?;
        self.inner.entities.write().insert(rt.def.entity_id.clone(), rt);
        self.inner.schema_version.fetch_add(1, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Reopen: every active `entity:` row of sys-metaschema that holds a full
    /// definition is installed again.
    async fn restore_entities(&self) -> Result<()> {
        let rows = self.scan_rows(SYS_METASCHEMA).await?;
        for row in rows {
            let is_entity = row.get("kind").and_then(|k| k.as_str()) == Some("entity");
            let active = row.get("active").and_then(|a| a.as_bool()).unwrap_or(true);
            let Some(definition) = row.get("meta").and_then(|m| m.get("definition")) else { continue };
            let entity_id = definition.get("entity_id").and_then(|e| e.as_str()).unwrap_or_default();
            if !is_entity || !active || is_system(entity_id) {
                continue;
            }
            let mut def = EntityDef::from_json(definition).map_err(|e| {
                Error::internal(format!("Stored definition of entity '{entity_id}' in sys-metaschema is invalid: {e}"))
            })?;
            if let Some(order) = row.get("meta").and_then(|m| m.get("field_order")).and_then(|o| o.as_array()) {
                let at = |name: &str| order.iter().position(|n| n.as_str() == Some(name)).unwrap_or(usize::MAX);
                def.fields.sort_by_key(|f| at(&f.name));
            }
            self.install(def).await?;
        }
        Ok(())
    }

    /// MetaSchema rows of one entity: entity, field, storage, index,
    /// constraint; the ids of the rows written.
    async fn publish_entity_rows(&self, def: &EntityDef) -> Result<HashSet<String>> {
        let rows = self.entity_rows(def)?;
        let written = rows.iter().filter_map(|r| r.get("object_id").and_then(|i| i.as_str()).map(String::from)).collect();
        self.write_system_rows(SYS_METASCHEMA, rows).await?;
        Ok(written)
    }

    /// The MetaSchema rows [`Self::publish_entity_rows`] writes for `def`
    /// (installed).
    fn entity_rows(&self, def: &EntityDef) -> Result<Vec<Row>> {
        let rt = self.runtime(&def.entity_id)?;
        let ws = &self.inner.id;
        let e = &def.entity_id;
        let mut rows = vec![json!({
            "object_id": system_row_id("entity", e), "kind": "entity", "subject_id": e, "name": e,
            "desc": def.desc, "tags": def.tags, "ws": ws, "active": true,
            // The definition's fields are a JSON object, whose keys a jsonb
            // column (a Postgres MetaSchema) reorders: the order is kept beside it.
            "meta": {"definition": def.to_json(), "storage_plan": rt.plan.to_json(),
                     "field_order": def.fields.iter().map(|f| f.name.clone()).collect::<Vec<_>>()},
        })];
        for f in &def.fields {
            rows.push(json!({
                "object_id": system_row_id("field", &format!("{e}.{}", f.name)), "kind": "field", "subject_id": e,
                "name": f.name, "field": f.name, "dtype": f.ty.type_id(), "desc": f.desc, "tags": f.tags, "ws": ws,
                "meta": f.to_json(),
            }));
        }
        for b in &rt.plan.bindings {
            let kind = self.inner.backends.iter().find(|x| x.info().name == b.backend).map(|x| x.info().kind.clone());
            rows.push(json!({
                "object_id": system_row_id("storage", &format!("{e}.{}.{}.{}", b.field, b.backend, b.strategy)),
                "kind": "storage", "subject_id": e, "name": b.field, "field": b.field, "backend": b.backend,
                "type": kind, "strategy": b.strategy, "source": b.source, "ws": ws,
            }));
        }
        for ix in &rt.plan.indexes {
            let (kind, suffix) = if ix.unique { ("constraint", "unique") } else { ("index", "index") };
            rows.push(json!({
                "object_id": system_row_id(kind, &format!("{e}.{}.{}.{suffix}", ix.fields.join("-"), ix.backend)),
                "kind": kind, "subject_id": e, "name": ix.fields.join("-"), "backend": ix.backend,
                "type": if ix.unique { "unique" } else { "value" }, "ws": ws, "meta": {"fields": ix.fields},
            }));
        }
        Ok(rows.into_iter().map(|r| r.as_object().cloned().expect("object")).collect())
    }

    /// After a definition replaced another (ALTER TABLE … DROP, RENAME): the
    /// MetaSchema rows of fields, storage and indexes it no longer has
    /// (`kept`: the rows [`Self::publish_entity_rows`] wrote for it).
    async fn remove_stale_entity_rows(&self, e: &str, kept: &HashSet<String>) -> Result<()> {
        let stale: Vec<String> = self
            .scan_rows(SYS_METASCHEMA)
            .await?
            .into_iter()
            .filter(|r| r.get("subject_id").and_then(|s| s.as_str()) == Some(e))
            .filter(|r| {
                r.get("kind").and_then(|k| k.as_str()).is_some_and(|k| matches!(k, "field" | "storage" | "index" | "constraint"))
            })
            .filter_map(|r| r.get("object_id").and_then(|i| i.as_str()).map(String::from))
            .filter(|id| !kept.contains(id))
            .collect();
        if !stale.is_empty() {
            self.delete_many(SYS_METASCHEMA, &stale).await?;
        }
        Ok(())
    }

    async fn publish_workspace_rows(&self) -> Result<()> {
        let ws = &self.inner.id;
        let mut rows = vec![json!({
            "object_id": system_row_id("workspace", ws), "kind": "workspace", "subject_id": ws, "name": ws, "ws": ws,
            "meta": {"construction": crate::presets::redact_secrets(&self.inner.construction.to_json()), "backends": self.inner.backends.iter().map(|b| b.info().name.clone()).collect::<Vec<_>>()},
        })];
        for b in &self.inner.backends {
            rows.push(json!({
                "object_id": system_row_id("backend", &b.info().name), "kind": "backend", "subject_id": ws,
                "name": b.info().name, "backend": b.info().name, "type": b.info().kind, "ws": ws,
                "tags": b.info().tags, "meta": b.describe(),
            }));
        }
        let rows: Vec<_> = rows.into_iter().map(|r| r.as_object().cloned().expect("object")).collect();
        self.write_system_rows(SYS_METASCHEMA, rows).await
    }

    /// Every stored row of an entity, as JSON rows (system reads and audits).
    pub(crate) async fn scan_rows(&self, entity_id: &str) -> Result<Vec<heavenbase_catalog::Row>> {
        let rt = self.runtime(entity_id)?;
        let (backend, group) = rt.primary();
        let request = heavenbase_providers::ScanRequest {
            columns: group.columns.iter().map(|c| c.name.clone()).collect(),
            ..Default::default()
        };
        let batches = backend.scan(group, &request).await?;
        let ids: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                let col = datafusion::arrow::array::AsArray::as_string::<i32>(b.column(0)).clone();
                (0..b.num_rows()).map(move |i| col.value(i).to_string()).collect::<Vec<_>>()
            })
            .collect();
        if rt.groups.len() == 1 {
            return Ok(write::batches_to_rows(&rt, &batches));
        }
        Ok(self.get_many(entity_id, &ids).await?.into_iter().flatten().collect())
    }

    /// Remove every table of every entity from every backend, the workspace
    /// folder, and the registry record.
    pub async fn drop(self) -> Result<()> {
        let entities: Vec<Arc<EntityRuntime>> = self.inner.entities.read().values().cloned().collect();
        for rt in entities {
            for (backend, group) in &rt.groups {
                backend.drop_group(group).await?;
            }
            self.inner.ctx.deregister_table(rt.def.table_name())?;
        }
        self.inner.entities.write().clear();
        self.inner.schema_version.fetch_add(1, std::sync::atomic::Ordering::Release);
        if !self.inner.detached {
            self.inner.home.unregister(&self.inner.id)?;
            let mut live = LIVE.lock();
            if let Some(map) = live.as_mut() {
                map.remove(&(self.inner.home.root().to_path_buf(), self.inner.id.clone()));
            }
        }
        if self.inner.folder.exists() {
            std::fs::remove_dir_all(&self.inner.folder)?;
        }
        Ok(())
    }

    /// A summary: id, construction, backends, entities.
    pub fn health(&self) -> Json {
        json!({
            "workspace": self.inner.id,
            "construction": crate::presets::redact_secrets(&self.inner.construction.to_json()),
            "entities": self.entities(),
            "backends": self.inner.backends.iter().map(|b| b.describe()).collect::<Vec<_>>(),
        })
    }
}

fn check_ws_id(id: &str) -> Result<()> {
    if heavenbase_catalog::entity::is_valid_id(id) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidName,
            format!("Invalid workspace id '{id}'; use lower-case letters, digits, '-' or '_', starting with a letter"),
        ))
    }
}

fn live_get(home: &Home, id: &str) -> Option<Workspace> {
    let live = LIVE.lock();
    live.as_ref()?.get(&(home.root().to_path_buf(), id.to_string()))?.upgrade().map(|inner| Workspace { inner, txn: None })
}

fn live_put(home: &Home, id: &str, ws: &Workspace) {
    let mut live = LIVE.lock();
    live.get_or_insert_with(HashMap::new).insert((home.root().to_path_buf(), id.to_string()), Arc::downgrade(&ws.inner));
}
