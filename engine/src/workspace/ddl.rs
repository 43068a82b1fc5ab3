//! Statements that change what the workspace holds (CREATE TABLE, CREATE
//! INDEX, DROP TABLE, TRUNCATE, ALTER TABLE in `alter.rs`, CREATE/DROP VIEW
//! in `views.rs`). Each takes effect durably
//! (backend tables, Catalog cards, MetaSchema rows) before it answers, or is
//! refused: DataFusion would run `CREATE VIEW`, `CREATE SCHEMA`, `DROP VIEW`
//! and the like against one session's memory and answer them as done, and the
//! next connection or process would not see them.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{CreateIndex, Expr as SqlExpr, ObjectType, Statement};
use heavenbase_catalog::system::{SYS_CATALOG, SYS_METASCHEMA, is_system};
use heavenbase_catalog::{FieldSet, OBJECT_ID, catalog_row_id};

use super::{EntityRuntime, Workspace, keys, write};
use crate::error::ErrorKind;
use crate::{Error, Result};

/// MetaSchema row kinds that describe one entity (`subject_id` is the entity).
const ENTITY_ROW_KINDS: [&str; 6] = ["entity", "field", "storage", "index", "constraint", keys::SEQUENCE_KIND];

/// Card deletes are sent in chunks of this many ids.
const DELETE_CHUNK: usize = 10_000;

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
    pub async fn execute_ddl(&self, statement: &Statement) -> Option<Result<&'static str>> {
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

    async fn execute_ddl_now(&self, statement: &Statement) -> Option<Result<&'static str>> {
        if let Some(refusal) = refused_ddl(statement) {
            return Some(Err(refusal));
        }
        Some(match statement {
            Statement::CreateTable(create) => self.create_table(create).await.map(|_| "CREATE TABLE"),
            Statement::Drop { object_type: ObjectType::Table, if_exists, names, cascade, .. } => {
                self.drop_tables(names.iter().map(super::dml::last_ident), *if_exists, *cascade).await.map(|_| "DROP TABLE")
            }
            Statement::Drop { object_type: ObjectType::View, if_exists, names, cascade, .. } => {
                self.drop_views(names, *if_exists, *cascade).await.map(|_| "DROP VIEW")
            }
            Statement::CreateView(view) => self.create_view(view).await.map(|_| "CREATE VIEW"),
            Statement::AlterTable(alter) => self.alter_table(alter).await.map(|_| "ALTER TABLE"),
            Statement::CreateIndex(index) => self.create_index(index).await.map(|_| "CREATE INDEX"),
            Statement::Truncate(truncate) => self
                .truncate_tables(truncate.table_names.iter().map(|t| super::dml::last_ident(&t.name)), truncate.if_exists)
                .await
                .map(|_| "TRUNCATE TABLE"),
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
                | Statement::Drop { object_type: ObjectType::Table | ObjectType::View, .. }
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
        let cards: Vec<String> = ids.iter().map(|id| catalog_row_id(self.id(), &e, id)).collect();
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
            .filter(|r| r.get("subject_id").and_then(|s| s.as_str()) == Some(e.as_str()))
            .filter(|r| r.get("kind").and_then(|k| k.as_str()).is_some_and(|k| ENTITY_ROW_KINDS.contains(&k)))
            .filter_map(|r| r.get(OBJECT_ID).and_then(|id| id.as_str()).map(String::from))
            .collect();
        self.delete_many(SYS_METASCHEMA, &rows).await?;
        self.forget_sequences(&e).await;
        self.inner.ctx.deregister_table(rt.def.table_name())?;
        self.inner.entities.write().remove(&e);
        self.inner.schema_version.fetch_add(1, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// `CREATE [UNIQUE] INDEX [IF NOT EXISTS] [name] ON t (a [, b …])`: the
    /// entity's definition gains the index (one field: its `index`/`unique`
    /// flag; several: an index or unique constraint over them), kept in
    /// MetaSchema and built in the backend of the indexed fields before the
    /// statement answers. The workspace names indexes itself, so the name is
    /// not kept; an index the definition already has is a no-op. Partial
    /// (`WHERE`), `INCLUDE` and expression indexes are refused.
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
        if fields.is_empty() || fields == [OBJECT_ID] {
            // object_id is the primary key: indexed and unique already.
            return Ok(());
        }
        let mut def = rt.def.clone();
        let set = FieldSet { fields: fields.clone(), to: None };
        match fields.as_slice() {
            [one] => {
                let Some(f) = def.fields.iter_mut().find(|f| &f.name == one) else { return Ok(()) };
                if f.unique || (f.index && !index.unique) {
                    return Ok(());
                }
                if index.unique { f.unique = true } else { f.index = true }
            }
            _ if def.constraints.contains(&set) || (!index.unique && def.indexes.contains(&set)) => return Ok(()),
            _ if index.unique => def.constraints.push(set),
            _ => def.indexes.push(set),
        }
        self.register(def, true).await
    }

    /// `TRUNCATE a, b`: every row of each table, with its Catalog card, through
    /// the write path.
    async fn truncate_tables(&self, names: impl Iterator<Item = String>, if_exists: bool) -> Result<()> {
        for rt in self.tables_named(names, if_exists, "truncated")? {
            let ids: Vec<String> =
                write::group_ids(&rt).await?.into_iter().flatten().collect::<BTreeSet<_>>().into_iter().collect();
            for chunk in ids.chunks(DELETE_CHUNK) {
                self.delete_many(&rt.def.entity_id, chunk).await?;
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
        Statement::CreateTable(c) if c.query.is_some() => "CREATE TABLE … AS SELECT",
        Statement::AlterView { .. } => "ALTER VIEW",
        Statement::AlterIndex { .. } => "ALTER INDEX",
        Statement::CreateSchema { .. } => "CREATE SCHEMA",
        Statement::CreateDatabase { .. } => "CREATE DATABASE",
        Statement::CreateFunction { .. } => "CREATE FUNCTION",
        Statement::DropFunction { .. } => "DROP FUNCTION",
        Statement::Drop { object_type: ObjectType::Table | ObjectType::View, .. } => return None,
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
