//! Statements that change what the workspace holds (CREATE TABLE, CREATE
//! INDEX, DROP TABLE, TRUNCATE, ALTER TABLE in `alter.rs`, CREATE/DROP VIEW
//! in `views.rs`). Each takes effect durably
//! (backend tables, Catalog cards, MetaSchema rows) before it answers, or is
//! refused: DataFusion would run `CREATE VIEW`, `CREATE SCHEMA`, `DROP VIEW`
//! and the like against one session's memory and answer them as done, and the
//! next connection or process would not see them.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{self, CreateIndex, Expr as SqlExpr, ObjectName, ObjectType, Statement};
use heavenbase_catalog::system::{SYS_CATALOG, SYS_METASCHEMA, is_system};
use heavenbase_catalog::{FieldSet, NamedIndex, OBJECT_ID, PlacementPlan, catalog_row_id};

use super::{EntityRuntime, Workspace, keys, write};
use crate::error::ErrorKind;
use crate::{Error, Result};

/// MetaSchema row kinds that describe one entity (`subject_id` is the entity).
const ENTITY_ROW_KINDS: [&str; 6] = ["entity", "field", "storage", "index", "constraint", keys::SEQUENCE_KIND];

/// Card deletes are sent in chunks of this many ids.
pub(super) const DELETE_CHUNK: usize = 10_000;

/// One index of a table, as [`Workspace::index_listing`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexListing {
    pub table: String,
    pub name: String,
    pub fields: Vec<String>,
    pub unique: bool,
    pub owner: IndexOwner,
}

impl IndexListing {
    /// As pg_indexes shows it: `CREATE [UNIQUE] INDEX name ON schema.table USING btree (cols)`.
    pub fn definition(&self, schema: &str) -> String {
        let plain = crate::render::quote_ident;
        format!(
            "CREATE {}INDEX {} ON {}.{} USING btree ({})",
            if self.unique { "UNIQUE " } else { "" },
            plain(&self.name),
            plain(schema),
            plain(&self.table),
            self.fields.iter().map(|f| plain(f)).collect::<Vec<_>>().join(", ")
        )
    }
}

/// What an index belongs to, which decides whether DROP INDEX may drop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexOwner {
    /// The primary key's (`t_pkey`).
    PrimaryKey,
    /// A UNIQUE column's or constraint's (`t_a_key`).
    UniqueConstraint,
    /// Made by CREATE INDEX, under the name it was given or got.
    Created,
    /// Declared without a name (a definition's index flag or set).
    Unnamed,
    /// The workspace's own index on `name`.
    Name,
}

/// What a schema statement answers: its command tag, and the rows it wrote
/// when it writes any (`CREATE TABLE … AS` answers `SELECT n`, as Postgres does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DdlDone {
    pub tag: &'static str,
    pub rows: Option<u64>,
}

impl DdlDone {
    fn of(tag: &'static str) -> Self {
        DdlDone { tag, rows: None }
    }
}

impl Workspace {
    /// Run a statement that changes what the workspace holds (`CREATE TABLE`,
    /// `CREATE INDEX`, `DROP TABLE`, `TRUNCATE`) and answer its command tag, or refuse a schema
    /// statement the workspace cannot keep durably (0A000, naming it). None
    /// for any other statement.
    ///
    /// Inside a transaction block, schema statements take effect at once and
    /// are not undone by ROLLBACK (docs/transactions.md); one that would change
    /// or drop a table the block has uncommitted changes to is refused (25001),
    /// as is TRUNCATE, which the block could not undo.
    pub async fn execute_ddl(&self, statement: &Statement) -> Option<Result<DdlDone>> {
        let Some(txn) = self.buffering() else { return self.execute_ddl_now(statement).await };
        if !Self::is_ddl(statement) {
            return None;
        }
        let verb = statement.to_string().split_whitespace().take(2).collect::<Vec<_>>().join(" ").to_uppercase();
        if matches!(statement, Statement::Truncate(_)) {
            return Some(Err(Error::new(
                ErrorKind::ActiveTransaction,
                "TRUNCATE cannot run inside a transaction block: ROLLBACK could not undo it; use DELETE FROM in the \
                 block, or TRUNCATE outside it",
            )));
        }
        let targets: Vec<String> = match statement {
            Statement::Drop { names, .. } => names.iter().map(super::dml::last_ident).collect(),
            Statement::AlterTable(alter) => vec![super::dml::last_ident(&alter.name)],
            Statement::CreateIndex(index) => vec![super::dml::last_ident(&index.table_name)],
            _ => Vec::new(),
        };
        for target in targets {
            let entity = self.runtime(&target).map(|rt| rt.def.entity_id.clone()).unwrap_or(target);
            if txn.touches(&entity) {
                return Some(Err(Error::new(
                    ErrorKind::ActiveTransaction,
                    format!(
                        "{verb} {entity} cannot run inside this transaction block: the block has uncommitted changes \
                         to {entity}; COMMIT or ROLLBACK first"
                    ),
                )));
            }
        }
        self.without_transaction().execute_ddl_now(statement).await
    }

    async fn execute_ddl_now(&self, statement: &Statement) -> Option<Result<DdlDone>> {
        if let Some(refusal) = refused_ddl(statement) {
            return Some(Err(refusal));
        }
        Some(match statement {
            Statement::CreateTable(create) if create.query.is_some() => {
                self.create_table_as(create).await.map(|n| DdlDone { tag: "SELECT", rows: Some(n) })
            }
            Statement::CreateTable(create) => self.create_table(create).await.map(|_| DdlDone::of("CREATE TABLE")),
            Statement::Drop { object_type: ObjectType::Table, if_exists, names, cascade, .. } => self
                .drop_tables(names.iter().map(super::dml::last_ident), *if_exists, *cascade)
                .await
                .map(|_| DdlDone::of("DROP TABLE")),
            Statement::Drop { object_type: ObjectType::View, if_exists, names, cascade, .. } => {
                self.drop_views(names, *if_exists, *cascade).await.map(|_| DdlDone::of("DROP VIEW"))
            }
            Statement::CreateView(view) => self.create_view(view).await.map(|_| DdlDone::of("CREATE VIEW")),
            Statement::AlterTable(alter) => self.alter_table(alter).await.map(|_| DdlDone::of("ALTER TABLE")),
            Statement::CreateIndex(index) => self.create_index(index).await.map(|_| DdlDone::of("CREATE INDEX")),
            Statement::Drop { object_type: ObjectType::Index, if_exists, names, cascade: false, .. } => {
                self.drop_indexes(names, *if_exists).await.map(|_| DdlDone::of("DROP INDEX"))
            }
            Statement::Truncate(truncate) => {
                let restart = matches!(truncate.identity, Some(ast::TruncateIdentityOption::Restart));
                let names = truncate.table_names.iter().map(|t| super::dml::last_ident(&t.name));
                self.truncate_tables(names, truncate.if_exists, restart).await.map(|_| DdlDone::of("TRUNCATE TABLE"))
            }
            _ => return None,
        })
    }

    /// Whether a statement changes data or schema: what a read-only user of the
    /// wire, or an MCP profile without writes, may not run.
    pub fn is_write(s: &Statement) -> bool {
        match s {
            Statement::Explain { statement, analyze, .. } => *analyze && Self::is_write(statement),
            Statement::Copy { to, .. } => !to,
            Statement::Query(_)
            | Statement::Set(_)
            | Statement::ShowVariable { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
            | Statement::Declare { .. }
            | Statement::Fetch { .. }
            | Statement::Close { .. }
            | Statement::Discard { .. }
            | Statement::Reset(_)
            | Statement::Lock(_)
            | Statement::Prepare { .. }
            | Statement::Deallocate { .. } => false,
            _ => true,
        }
    }

    /// Whether [`Workspace::execute_ddl`] runs or refuses `statement` (a server
    /// decides at Parse whether the statement is the workspace's to run).
    pub fn is_ddl(statement: &Statement) -> bool {
        matches!(
            statement,
            Statement::CreateTable(_)
                | Statement::CreateIndex(_)
                | Statement::Drop { object_type: ObjectType::Table | ObjectType::View | ObjectType::Index, .. }
                | Statement::CreateView(_)
                | Statement::AlterTable(_)
                | Statement::Truncate(_)
        ) || refused_ddl(statement).is_some()
    }

    /// `DROP TABLE a, b`: every name is checked before anything is dropped, so
    /// an unknown name (without IF EXISTS) drops nothing.
    /// The views that read a dropped table go with it under CASCADE, and
    /// stop the statement otherwise (2BP01).
    async fn drop_tables(&self, names: impl Iterator<Item = String>, if_exists: bool, cascade: bool) -> Result<()> {
        let tables = self.tables_named(names, if_exists, "dropped")?;
        let table_names: Vec<String> = tables.iter().map(|rt| rt.def.table_name()).collect();
        let dependents = self.views_on(&table_names);
        self.drop_stored_views(&[], &dependents, cascade).await.map_err(|e| {
            if e.kind() != ErrorKind::DependentObjects {
                return e;
            }
            Error::new(
                ErrorKind::DependentObjects,
                format!(
                    "cannot drop table {} because other objects depend on it: view {} (use DROP … CASCADE to drop them too)",
                    table_names.join(", "),
                    dependents.join(", view ")
                ),
            )
        })?;
        // Foreign keys of other tables that reference a dropped one: CASCADE
        // drops the constraint (as Postgres does), not the referencing rows.
        let dropping: BTreeSet<&str> = tables.iter().map(|rt| rt.def.entity_id.as_str()).collect();
        let referencing: Vec<(String, heavenbase_catalog::ForeignKey)> = tables
            .iter()
            .flat_map(|rt| self.referencing(&rt.def.entity_id))
            .filter(|(child, _)| !dropping.contains(child.as_str()))
            .collect();
        if !referencing.is_empty() && !cascade {
            let (child, fk) = &referencing[0];
            return Err(Error::new(
                ErrorKind::DependentObjects,
                format!(
                    "cannot drop table {} because other objects depend on it: constraint {} on table {child} \
                     (use DROP … CASCADE to drop the constraint too)",
                    fk.references, fk.name
                ),
            ));
        }
        for (child, fk) in referencing {
            let mut def = self.runtime(&child)?.def.clone();
            def.foreign_keys.retain(|k| *k != fk);
            self.register(def, true).await?;
        }
        for rt in tables {
            self.drop_entity(&rt.def.entity_id).await?;
        }
        Ok(())
    }

    /// The user entities `names` name, all checked before a statement touches
    /// any: an unknown one is an error unless IF EXISTS, a system one always.
    fn tables_named(&self, names: impl Iterator<Item = String>, if_exists: bool, verb: &str) -> Result<Vec<Arc<EntityRuntime>>> {
        let mut entities = Vec::new();
        for name in names {
            match self.runtime(&name) {
                Ok(rt) => {
                    not_system(&rt.def.entity_id, verb)?;
                    entities.push(rt);
                }
                Err(e) if e.kind() == ErrorKind::UnknownEntity && if_exists => {}
                Err(e) => return Err(e),
            }
        }
        Ok(entities)
    }

    /// Drop an entity: its rows' Catalog cards, its tables in every backend,
    /// then its MetaSchema rows. In that order a crash part-way leaves the
    /// entity defined (its cards rebuilt by `repair`, or its tables recreated
    /// empty when the workspace reopens), never a stale table that a new
    /// entity of the same name would pick up.
    pub async fn drop_entity(&self, entity: &str) -> Result<()> {
        let rt = self.runtime(entity)?;
        let e = rt.def.entity_id.clone();
        not_system(&e, "dropped")?;
        let dependents = self.views_on(&[rt.def.table_name()]);
        if !dependents.is_empty() {
            return Err(Error::new(
                ErrorKind::DependentObjects,
                format!("cannot drop table {e} because other objects depend on it: view {}", dependents.join(", view ")),
            ));
        }
        let _guard = self.inner.register_lock.lock().await;
        let ids: BTreeSet<String> = write::group_ids(&rt).await?.into_iter().flatten().collect();
        let cards: Vec<String> = ids.iter().map(|id| catalog_row_id(self.id(), rt.def.storage_name(), id)).collect();
        let catalog = self.runtime(SYS_CATALOG)?;
        for chunk in cards.chunks(DELETE_CHUNK) {
            for (backend, group) in &catalog.groups {
                backend.delete(group, chunk).await?;
            }
        }
        for (backend, group) in &rt.groups {
            backend.drop_group(group).await?;
        }
        let rows: Vec<String> = self
            .scan_rows(SYS_METASCHEMA)
            .await?
            .into_iter()
            .filter(|r| {
                // Counters are kept under the storage name, the rest under the entity id.
                let subject = r.get("subject_id").and_then(|s| s.as_str());
                match r.get("kind").and_then(|k| k.as_str()) {
                    Some(keys::SEQUENCE_KIND) => subject == Some(rt.def.storage_name()),
                    Some(k) => ENTITY_ROW_KINDS.contains(&k) && subject == Some(e.as_str()),
                    None => false,
                }
            })
            .filter_map(|r| r.get(OBJECT_ID).and_then(|id| id.as_str()).map(String::from))
            .collect();
        self.delete_many(SYS_METASCHEMA, &rows).await?;
        self.forget_sequences(rt.def.storage_name()).await;
        self.inner.ctx.deregister_table(rt.def.table_name())?;
        self.inner.entities.write().remove(&e);
        self.inner.schema_version.fetch_add(1, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// `CREATE [UNIQUE] INDEX [IF NOT EXISTS] [name] ON t (a [, b …])`: the
    /// entity's definition gains the index (one field: its `index`/`unique`
    /// flag; several: an index or unique constraint over them) and its name
    /// (as given, or as Postgres names it: `t_a_b_idx`, with a number added
    /// when that is taken), kept in MetaSchema and built in the backend of the
    /// indexed fields before the statement answers. An index the definition
    /// already has gains only the name (the backend keeps one index). A name
    /// already taken by a table or an index is 42P07 (IF NOT EXISTS: nothing
    /// done). Partial (`WHERE`), `INCLUDE` and expression indexes are refused.
    async fn create_index(&self, index: &CreateIndex) -> Result<()> {
        let table = super::dml::last_ident(&index.table_name);
        let rt = self.runtime(&table)?;
        let e = rt.def.entity_id.clone();
        not_system(&e, "altered")?;
        if index.predicate.is_some() || !index.include.is_empty() || !index.with.is_empty() {
            return Err(Error::not_supported(format!(
                "CREATE INDEX on {e}: partial (WHERE), INCLUDE and WITH (…) indexes are not supported"
            )));
        }
        let mut fields = Vec::with_capacity(index.columns.len());
        for c in &index.columns {
            let SqlExpr::Identifier(id) = &c.column.expr else {
                return Err(Error::not_supported(format!(
                    "CREATE INDEX on {e}: index columns, not expressions ({})",
                    c.column.expr
                )));
            };
            if rt.def.get(&id.value).is_none() {
                return Err(Error::unknown_field(format!(
                    "Unknown column '{}' in CREATE INDEX on '{e}'.{}",
                    id.value,
                    crate::error::suggest(&id.value, rt.def.fields.iter().map(|f| f.name.as_str()))
                )));
            }
            fields.push(id.value.clone());
        }
        let name = match index.name.as_ref().map(super::dml::last_ident) {
            Some(name) if self.relation_named(&name) => {
                if index.if_not_exists {
                    return Ok(());
                }
                return Err(Error::new(ErrorKind::AlreadyExists, format!("relation \"{name}\" already exists")));
            }
            Some(name) => name,
            None => self.free_relation_name(&format!("{}_{}_idx", rt.def.table_name(), fields.join("_"))),
        };
        let mut def = rt.def.clone();
        def.named_indexes.push(NamedIndex { name, fields: fields.clone(), unique: index.unique });
        // object_id is the primary key: indexed and unique already.
        if fields != [OBJECT_ID] {
            let set = FieldSet { fields: fields.clone(), to: None };
            match fields.as_slice() {
                [one] => {
                    if let Some(f) = def.fields.iter_mut().find(|f| &f.name == one) {
                        if index.unique { f.unique = true } else { f.index |= !f.unique }
                    }
                }
                _ if def.constraints.contains(&set) || (!index.unique && def.indexes.contains(&set)) => {}
                _ if index.unique => def.constraints.push(set),
                _ => def.indexes.push(set),
            }
        }
        self.register(def, true).await
    }

    /// `DROP INDEX [IF EXISTS] name [, …]`: an index created by name (or
    /// under the name Postgres would have given it) leaves the definition and
    /// its backend, unless another name still stands for the same index. The
    /// indexes that constraints own (a primary key's `t_pkey`, a UNIQUE
    /// column's `t_a_key`) and the workspace's own index on `name` are
    /// refused (2BP01, 0A000). Every name is checked before anything is dropped.
    async fn drop_indexes(&self, names: &[ObjectName], if_exists: bool) -> Result<()> {
        let mut drops: Vec<(Arc<EntityRuntime>, NamedIndex)> = Vec::new();
        for object in names {
            let name = super::dml::last_ident(object);
            match self.index_named(&name)? {
                Some(found) => drops.push(found),
                None if if_exists => {}
                None => return Err(Error::new(ErrorKind::UnknownObject, format!("index \"{name}\" does not exist"))),
            }
        }
        for (rt, ix) in drops {
            // The entity as the drops before this one left it.
            let mut def = self.runtime(&rt.def.entity_id)?.def.clone();
            def.named_indexes.retain(|n| n.name != ix.name);
            let still_named = def.named_indexes.iter().any(|n| n.fields == ix.fields && n.unique == ix.unique);
            // A one-field index is its field's flag, which a UNIQUE column
            // constraint on the same field shares: dropping a unique index
            // created by name over such a column drops the uniqueness too,
            // where Postgres would keep the constraint's own index.
            if !still_named {
                match ix.fields.as_slice() {
                    [one] => {
                        if let Some(f) = def.fields.iter_mut().find(|f| &f.name == one) {
                            if ix.unique { f.unique = false } else { f.index = false }
                        }
                    }
                    several => {
                        let sets = if ix.unique { &mut def.constraints } else { &mut def.indexes };
                        sets.retain(|s| s.fields != several);
                    }
                }
            }
            let before = self.runtime(&def.entity_id)?;
            let def = def.validated()?;
            let after = PlacementPlan::plan(&def, &self.backend_infos())?;
            // The backend's index goes first: a crash before the definition is
            // written leaves the index defined, and rebuilt at the next open.
            for gone in before.plan.indexes.iter().filter(|i| !after.indexes.contains(i)) {
                for (backend, group) in before.groups.iter().filter(|(b, _)| b.info().name == gone.backend) {
                    backend.drop_index(group, gone).await?;
                }
            }
            self.register(def, true).await?;
        }
        Ok(())
    }

    /// The index `name` names, and its entity: a name given to CREATE INDEX,
    /// or the name Postgres gives an index without one (`t_a_idx`). Refused
    /// for the indexes constraints own and for the workspace's `name` index.
    fn index_named(&self, name: &str) -> Result<Option<(Arc<EntityRuntime>, NamedIndex)>> {
        let Some(ix) = self.index_listing().into_iter().find(|ix| ix.name == name) else { return Ok(None) };
        let table = &ix.table;
        match ix.owner {
            IndexOwner::PrimaryKey | IndexOwner::UniqueConstraint => Err(Error::new(
                ErrorKind::DependentObjects,
                format!(
                    "cannot drop index {name} because constraint {name} on table {table} requires it (a primary key \
                     stays; a UNIQUE column's constraint goes with ALTER TABLE … DROP CONSTRAINT)"
                ),
            )),
            IndexOwner::Name => Err(Error::not_supported(format!(
                "index {name} is the workspace's index on {table}.name (object_ids derive from name) and cannot be dropped"
            ))),
            IndexOwner::Created | IndexOwner::Unnamed => {
                Ok(Some((self.runtime(table)?, NamedIndex { name: ix.name, fields: ix.fields, unique: ix.unique })))
            }
        }
    }

    /// Every index of the user tables, named as Postgres tools list them
    /// (pg_indexes): the primary key (`t_pkey`, over the declared key or
    /// object_id), each index created by name, and the other indexes under the
    /// names Postgres gives them: `t_a_key` for a UNIQUE column or constraint,
    /// `t_a_b_idx` for an index, `t_name_idx` for the workspace's index on name.
    pub fn index_listing(&self) -> Vec<IndexListing> {
        let mut entities: Vec<Arc<EntityRuntime>> = self.inner.entities.read().values().cloned().collect();
        entities.retain(|rt| !is_system(&rt.def.entity_id));
        entities.sort_by(|a, b| a.def.entity_id.cmp(&b.def.entity_id));
        let mut listing = Vec::new();
        for rt in entities {
            let table = rt.def.table_name();
            let key: Vec<String> = rt.def.id_source.key().map_or_else(|| vec![OBJECT_ID.to_string()], <[String]>::to_vec);
            let row = |name: String, fields: &[String], unique: bool, owner: IndexOwner| IndexListing {
                table: table.clone(),
                name,
                fields: fields.to_vec(),
                unique,
                owner,
            };
            listing.push(row(format!("{table}_pkey"), &key, true, IndexOwner::PrimaryKey));
            for ix in &rt.def.named_indexes {
                listing.push(row(ix.name.clone(), &ix.fields, ix.unique, IndexOwner::Created));
            }
            for ix in &rt.plan.indexes {
                if ix.fields == key || rt.def.named_indexes.iter().any(|n| n.fields == ix.fields) {
                    continue;
                }
                let cols = ix.fields.join("_");
                let named_field = rt.def.get(heavenbase_catalog::NAME).is_some_and(|f| f.index || f.unique);
                listing.push(match () {
                    _ if ix.unique => row(format!("{table}_{cols}_key"), &ix.fields, true, IndexOwner::UniqueConstraint),
                    _ if ix.fields == [heavenbase_catalog::NAME] && !named_field => {
                        row(format!("{table}_{cols}_idx"), &ix.fields, false, IndexOwner::Name)
                    }
                    _ => row(format!("{table}_{cols}_idx"), &ix.fields, false, IndexOwner::Unnamed),
                });
            }
        }
        listing
    }

    /// Whether a table, view or index is called `name` (one namespace, as
    /// Postgres' relations share one).
    pub(super) fn relation_named(&self, name: &str) -> bool {
        self.runtime(name).is_ok()
            || self.inner.views.read().contains_key(name)
            || self.inner.entities.read().values().any(|rt| rt.def.named_indexes.iter().any(|ix| ix.name == name))
    }

    /// `base`, or `base1`, `base2`, … : the first that no relation is called.
    fn free_relation_name(&self, base: &str) -> String {
        std::iter::once(base.to_string())
            .chain((1..).map(|n| format!("{base}{n}")))
            .find(|candidate| !self.relation_named(candidate))
            .expect("an unbounded sequence has a free name")
    }

    /// `TRUNCATE a, b [RESTART IDENTITY]`: every row of each table, with its
    /// Catalog card, through the write path; RESTART IDENTITY then starts the
    /// tables' serial and identity counters over.
    async fn truncate_tables(&self, names: impl Iterator<Item = String>, if_exists: bool, restart: bool) -> Result<()> {
        for rt in self.tables_named(names, if_exists, "truncated")? {
            let ids: Vec<String> =
                write::group_ids(&rt).await?.into_iter().flatten().collect::<BTreeSet<_>>().into_iter().collect();
            for chunk in ids.chunks(DELETE_CHUNK) {
                self.delete_many(&rt.def.entity_id, chunk).await?;
            }
            if restart {
                self.restart_identities(&rt).await?;
            }
        }
        Ok(())
    }
}

/// System entities are fixed: they cannot be dropped, truncated or altered.
pub(super) fn not_system(entity: &str, verb: &str) -> Result<()> {
    if is_system(entity) {
        return Err(Error::new(ErrorKind::ReadOnly, format!("'{entity}' is a fixed system entity and cannot be {verb}")));
    }
    Ok(())
}

/// A schema statement the workspace cannot keep durably yet, refused with
/// 0A000 rather than run against one session's memory.
fn refused_ddl(statement: &Statement) -> Option<Error> {
    let what = match statement {
        Statement::CreateTable(c) if c.temporary => "CREATE TEMPORARY TABLE",
        Statement::CreateTable(c) if c.like.is_some() => "CREATE TABLE … (LIKE …)",
        Statement::CreateTable(c) if c.partition_by.is_some() || c.partition_of.is_some() => {
            "CREATE TABLE … PARTITION BY / PARTITION OF"
        }
        Statement::CreateTable(c) if c.inherits.is_some() => "CREATE TABLE … INHERITS",
        Statement::Truncate(t) if matches!(t.cascade, Some(ast::CascadeOption::Cascade)) => "TRUNCATE … CASCADE",
        Statement::CreateIndex(i)
            if i.using.as_ref().is_some_and(|u| !matches!(u, ast::IndexType::BTree | ast::IndexType::Hash)) =>
        {
            return Some(Error::not_supported(format!(
                "CREATE INDEX … USING {} is not supported: the backends build B-tree indexes (USING btree or hash is \
                 accepted); full-text search is WITH (search = 'col') and vectors are indexed by Lance",
                i.using.as_ref().map(ToString::to_string).unwrap_or_default()
            )));
        }
        Statement::CreateTable(c) if c.clone.is_some() => "CREATE TABLE … CLONE",
        Statement::AlterView { .. } => "ALTER VIEW",
        Statement::AlterIndex { .. } => "ALTER INDEX",
        Statement::CreateSchema { .. } => "CREATE SCHEMA",
        Statement::CreateDatabase { .. } => "CREATE DATABASE",
        Statement::CreateFunction { .. } => "CREATE FUNCTION",
        Statement::DropFunction { .. } => "DROP FUNCTION",
        Statement::Drop { object_type: ObjectType::Index, cascade: true, .. } => "DROP INDEX … CASCADE",
        Statement::Drop { object_type: ObjectType::Table | ObjectType::View | ObjectType::Index, .. } => return None,
        Statement::Drop { object_type, .. } => {
            return Some(Error::not_supported(format!(
                "DROP {object_type} is not supported: the workspace keeps no such objects (DROP TABLE drops an entity, \
                 DROP VIEW a view)"
            )));
        }
        _ => return None,
    };
    Some(Error::not_supported(format!(
        "{what} is not supported yet: the workspace cannot keep it durably, and a statement is never answered as done \
         when it was not"
    )))
}
