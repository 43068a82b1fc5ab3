//! `ALTER TABLE`: changes to an entity's columns that take effect durably
//! before the statement answers, or are refused whole.
//!
//! Every operation of the statement is first applied to a copy of the
//! entity's definition and checked (names, keys, existing NULLs), so a
//! statement with one bad operation changes nothing. Then the columns that
//! are dropped or renamed are changed in place in their backend (the rows
//! keep every other value), and the new definition is registered: new
//! columns are added to the backend tables (existing rows take the column's
//! default, as in Postgres), indexes are rebuilt under their new names, and
//! MetaSchema holds the new definition, so a new connection or a reopened
//! workspace sees the table as altered.
//!
//! Supported: `ADD [COLUMN] [IF NOT EXISTS]`, `DROP [COLUMN] [IF EXISTS]`,
//! `RENAME [COLUMN] a TO b`, `ALTER [COLUMN] … SET/DROP DEFAULT`,
//! `SET/DROP NOT NULL`, `TYPE` where the stored layout stays the same and no
//! value can stop fitting (a longer varchar), `ADD UNIQUE (…)`, and `RENAME
//! TO` on its own. The rest (constraints other than UNIQUE, `USING`, identity
//! changes) is refused with 0A000, naming the operation.
//!
//! `RENAME TO` moves no row: the entity keeps storing under the name its rows
//! were written under ([`EntityDef::storage_name`]: backend tables, Catalog
//! card ids, identity counters and derived object_ids), so every object_id
//! stays what it was and a key or name written again finds its row. What
//! changes is the name: the table in SQL, the entity's MetaSchema rows
//! (replaced in one write of the MetaSchema backend), its rows' Catalog cards
//! (`target_entity`), and the foreign keys that reference it.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::sql::sqlparser::ast::{
    AlterColumnOperation, AlterTable, AlterTableOperation, ColumnDef, Ident, RenameTableNameKind, TableConstraint,
};
use heavenbase_catalog::system::{SYS_CATALOG, SYS_METASCHEMA};
use heavenbase_catalog::{EntityDef, FieldSet, IdSource, NAME, OBJECT_ID, PlacementPlan, catalog_row_id};
use heavenbase_providers::ColumnChange;

use super::dml::{column_field, last_ident, logical_type_of, set_default};
use super::{EntityRuntime, Workspace, write};
use crate::error::{ErrorKind, suggest};
use crate::{Error, Result};

/// What must hold of the stored rows before the new definition is kept.
enum RowCheck {
    /// The column holds no NULL (SET NOT NULL).
    NoNulls(String),
    /// The table has no rows (ADD COLUMN … NOT NULL without a default).
    Empty(String),
}

impl Workspace {
    /// `ALTER TABLE [IF EXISTS] t op [, op …]` (module doc).
    pub(super) async fn alter_table(&self, alter: &AlterTable) -> Result<()> {
        let table = last_ident(&alter.name);
        let rt = match self.runtime(&table) {
            Ok(rt) => rt,
            Err(e) if e.kind() == ErrorKind::UnknownEntity && alter.if_exists => return Ok(()),
            Err(e) => return Err(e),
        };
        let e = rt.def.entity_id.clone();
        super::ddl::not_system(&e, "altered")?;
        let mut def = rt.def.clone();
        let mut changes: Vec<ColumnChange> = Vec::new();
        let mut checks: Vec<RowCheck> = Vec::new();
        let mut added: Vec<String> = Vec::new();
        for op in &alter.operations {
            match op {
                AlterTableOperation::AddColumn { if_not_exists, column_def, .. } => {
                    if let Some(name) = add_column(&mut def, column_def, *if_not_exists, &mut checks)? {
                        added.push(name);
                    }
                }
                AlterTableOperation::DropColumn { column_names, if_exists, .. } => {
                    for c in column_names {
                        if let Some(change) = drop_column(&mut def, c, *if_exists)? {
                            changes.push(change);
                        }
                    }
                }
                AlterTableOperation::RenameColumn { old_column_name, new_column_name } => {
                    changes.push(rename_column(&mut def, old_column_name, new_column_name)?);
                }
                AlterTableOperation::AlterColumn { column_name, op } => {
                    alter_column(&mut def, column_name, op, &mut checks)?;
                }
                AlterTableOperation::AddConstraint { constraint: TableConstraint::Unique(u), .. } => {
                    let fields = u
                        .columns
                        .iter()
                        .map(|c| match &c.column.expr {
                            datafusion::sql::sqlparser::ast::Expr::Identifier(id) => existing(&def, id).map(|_| id.value.clone()),
                            other => Err(Error::not_supported(format!("ALTER TABLE {e}: UNIQUE over an expression ({other})"))),
                        })
                        .collect::<Result<Vec<_>>>()?;
                    match fields.as_slice() {
                        [one] => def.fields.iter_mut().filter(|f| &f.name == one).for_each(|f| f.unique = true),
                        _ => {
                            let set = FieldSet { fields, to: None };
                            if !def.constraints.contains(&set) {
                                def.constraints.push(set);
                            }
                        }
                    }
                }
                AlterTableOperation::RenameTable { table_name: RenameTableNameKind::As(to) | RenameTableNameKind::To(to) } => {
                    if alter.operations.len() > 1 {
                        return Err(Error::new(
                            ErrorKind::Syntax,
                            format!("ALTER TABLE {e}: RENAME TO cannot be combined with other actions (run it on its own)"),
                        ));
                    }
                    return self.rename_table(&rt, &last_ident(to)).await;
                }
                other => {
                    return Err(Error::not_supported(format!("ALTER TABLE {e} {other} is not supported")));
                }
            }
        }
        if def.same_structure(&rt.def) && changes.is_empty() {
            return Ok(());
        }
        let def = def.validated()?;
        // A new column's default fills the stored rows where the backend adds
        // the column with it; Lance adds new columns as NULLs only.
        let plan = PlacementPlan::plan(&def, &self.backend_infos())?;
        for name in &added {
            let has_default =
                def.get(name).is_some_and(|f| f.default_fn.is_some() || f.default.as_ref().is_some_and(|d| !d.is_null()));
            let kinds = plan.bindings.iter().filter(|b| &b.field == name).filter_map(|b| self.backend_kind(&b.backend));
            if has_default && kinds.into_iter().any(|k| k == "lance") {
                return Err(Error::not_supported(format!(
                    "ALTER TABLE {e} ADD COLUMN {name}: a column stored in Lance cannot be added with a DEFAULT"
                )));
            }
        }
        if !changes.is_empty() {
            let dependents = self.views_on(&[def.table_name()]);
            if !dependents.is_empty() {
                return Err(Error::new(
                    ErrorKind::DependentObjects,
                    format!(
                        "cannot drop or rename a column of table {e} because other objects depend on it: view {} \
                         (drop the view first)",
                        dependents.join(", view ")
                    ),
                ));
            }
        }
        for check in &checks {
            self.check_rows(&e, check).await?;
        }
        // Every group holding the column: a field may live in several (a
        // search index beside its row, explicit placements).
        for change in &changes {
            for (backend, group) in rt.groups.iter().filter(|(_, g)| g.column(change.column()).is_some()) {
                backend.alter_group(group, change).await?;
            }
        }
        self.register(def, true).await
    }

    /// `ALTER TABLE old RENAME TO new` (module doc). Refused, with nothing
    /// changed, when `new` names a table, view or index (42P07) or is not a
    /// valid entity id. The views that read the table follow it (their SQL
    /// rewritten, views.rs), stored in the same write as the new name; a view
    /// that cannot follow refuses the rename (2BP01).
    async fn rename_table(&self, rt: &EntityRuntime, new: &str) -> Result<()> {
        let old = rt.def.entity_id.clone();
        if self.relation_named(new) {
            return Err(Error::new(ErrorKind::AlreadyExists, format!("relation \"{new}\" already exists")));
        }
        let mut def = rt.def.clone();
        def.stored_as = Some(rt.def.storage_name().to_string());
        def.entity_id = new.to_string();
        for fk in def.foreign_keys.iter_mut().filter(|fk| fk.references == old) {
            fk.references = new.to_string();
        }
        let def = def.validated()?;
        let followers = self.views_following_rename(&rt.def.table_name(), &def.table_name())?;
        {
            let _guard = self.inner.register_lock.lock().await;
            // The new name in the session and the workspace, the old one out.
            self.install(def.clone()).await?;
            self.inner.ctx.deregister_table(rt.def.table_name())?;
            self.inner.entities.write().remove(&old);
            // Plans cached under the version install gave may name the old table.
            self.inner.schema_version.fetch_add(1, std::sync::atomic::Ordering::Release);
            // MetaSchema: the new name's rows and the views that follow it
            // in, the old name's rows out, in one write.
            let stored = async {
                self.check_views_plan(&followers).await?;
                let mut rows = self.entity_rows(&def)?;
                rows.extend(self.view_rows(&followers));
                let old_rows: Vec<String> = self
                    .scan_rows(SYS_METASCHEMA)
                    .await?
                    .into_iter()
                    .filter(|r| r.get("subject_id").and_then(|s| s.as_str()) == Some(old.as_str()))
                    .filter(|r| r.get("kind").and_then(|k| k.as_str()) != Some(super::keys::SEQUENCE_KIND))
                    .filter_map(|r| r.get(OBJECT_ID).and_then(|i| i.as_str()).map(String::from))
                    .collect();
                self.replace_system_rows(SYS_METASCHEMA, rows, old_rows).await
            };
            let stored = stored.await;
            if stored.is_ok() {
                self.hold_views(followers);
            }
            if let Err(e) = stored {
                // Nothing was stored: the session goes back to the old name.
                self.inner.ctx.deregister_table(def.table_name())?;
                self.inner.entities.write().remove(new);
                self.install(rt.def.clone()).await?;
                return Err(e);
            }
        }
        // The rows' Catalog cards name the table they describe. A crash before
        // this is done leaves cards naming the old name: audit reports them
        // and repair rewrites them.
        let ids: BTreeSet<String> = write::group_ids(rt).await?.into_iter().flatten().collect();
        let cards: Vec<String> = ids.iter().map(|id| catalog_row_id(self.id(), def.storage_name(), id)).collect();
        let catalog = self.runtime(SYS_CATALOG)?;
        for chunk in cards.chunks(super::ddl::DELETE_CHUNK) {
            // Only cards that exist: a missing one is repair's to write whole.
            let found = self.existing_ids(&catalog, chunk).await?;
            let ids: Vec<String> = chunk.iter().filter(|c| found.contains(*c)).cloned().collect();
            let named: ArrayRef = Arc::new(StringArray::from(vec![new; ids.len()]));
            let update = write::PreparedBatch { ids, columns: [("target_entity".to_string(), named)].into_iter().collect() };
            self.write_groups(&catalog, &update).await?;
        }
        // Other tables' foreign keys follow the table.
        for (child, _) in self.referencing(&old) {
            let mut child = self.runtime(&child)?.def.clone();
            for fk in child.foreign_keys.iter_mut().filter(|fk| fk.references == old) {
                fk.references = new.to_string();
            }
            self.register(child, true).await?;
        }
        if !self.inner.views.read().is_empty() {
            self.replan_views().await;
        }
        Ok(())
    }

    /// The kind of the backend named `name` (`sqlite`, `lance`, …).
    fn backend_kind(&self, name: &str) -> Option<String> {
        self.inner.backends.iter().find(|b| b.info().name == name).map(|b| b.info().kind.clone())
    }

    async fn check_rows(&self, entity: &str, check: &RowCheck) -> Result<()> {
        use datafusion::logical_expr::ident;
        let table = heavenbase_catalog::entity::table_name(entity);
        let frame = self.session().table(table).await?;
        let (frame, column) = match check {
            RowCheck::NoNulls(c) => (frame.filter(ident(c).is_null())?, c),
            RowCheck::Empty(c) => (frame.select(vec![ident(heavenbase_catalog::OBJECT_ID)])?, c),
        };
        let n = frame.count().await?;
        if n > 0 {
            return Err(Error::new(
                ErrorKind::MissingValue,
                format!("column \"{column}\" of relation \"{entity}\" contains null values ({n} rows)"),
            ));
        }
        Ok(())
    }
}

/// The field `column` names, which must be one of the table's own columns:
/// the built-in object_id and name are the workspace's, not the table's.
fn existing<'a>(def: &'a EntityDef, column: &Ident) -> Result<&'a heavenbase_catalog::FieldDef> {
    let f = def.get(&column.value).ok_or_else(|| unknown_column(def, &column.value))?;
    if f.name == OBJECT_ID || f.name == NAME {
        return Err(Error::not_supported(format!(
            "ALTER TABLE {}: column {} is built in (object_id is the identity, name the derivation source) and cannot be changed",
            def.entity_id, f.name
        )));
    }
    Ok(f)
}

fn unknown_column(def: &EntityDef, column: &str) -> Error {
    Error::unknown_field(format!(
        "column \"{column}\" of relation \"{}\" does not exist.{}",
        def.entity_id,
        suggest(column, def.fields.iter().map(|f| f.name.as_str()))
    ))
}

fn duplicate_column(def: &EntityDef, column: &str) -> Error {
    Error::new(ErrorKind::DuplicateColumn, format!("column \"{column}\" of relation \"{}\" already exists", def.entity_id))
}

fn add_column(
    def: &mut EntityDef,
    column: &ColumnDef,
    if_not_exists: bool,
    checks: &mut Vec<RowCheck>,
) -> Result<Option<String>> {
    let e = def.entity_id.clone();
    let decl = column_field("ALTER TABLE", &e, column)?;
    let (field, primary) = (decl.field, decl.primary);
    if decl.references.is_some() {
        return Err(Error::not_supported(format!(
            "ALTER TABLE {e} ADD COLUMN {} REFERENCES: foreign keys are declared by CREATE TABLE",
            field.name
        )));
    }
    if def.get(&field.name).is_some() {
        return if if_not_exists { Ok(None) } else { Err(duplicate_column(def, &field.name)) };
    }
    if primary {
        return Err(Error::not_supported(format!(
            "ALTER TABLE {e} ADD COLUMN {} PRIMARY KEY: a table's key is chosen when it is created (its object_ids derive from it)",
            field.name
        )));
    }
    if field.identity.is_some() {
        return Err(Error::not_supported(format!(
            "ALTER TABLE {e} ADD COLUMN {}: serial and identity columns can only be declared in CREATE TABLE",
            field.name
        )));
    }
    if field.default_per_row() {
        // The backends fill a new column with one value; Postgres gives each
        // existing row a UUID of its own.
        return Err(Error::not_supported(format!(
            "ALTER TABLE {e} ADD COLUMN {} DEFAULT gen_random_uuid(): add the column, then \
             UPDATE {e} SET {} = gen_random_uuid() and ALTER COLUMN {} SET DEFAULT gen_random_uuid()",
            field.name, field.name, field.name
        )));
    }
    if field.required && field.default_fn.is_none() && field.default.as_ref().is_none_or(|d| d.is_null()) {
        checks.push(RowCheck::Empty(field.name.clone()));
    }
    let name = field.name.clone();
    def.fields.push(field);
    Ok(Some(name))
}

fn drop_column(def: &mut EntityDef, column: &Ident, if_exists: bool) -> Result<Option<ColumnChange>> {
    if def.get(&column.value).is_none() && if_exists {
        return Ok(None);
    }
    let name = existing(def, column)?.name.clone();
    if def.id_source.key().is_some_and(|k| k.contains(&name)) {
        return Err(Error::not_supported(format!(
            "ALTER TABLE {} DROP COLUMN {name}: the column is the table's primary key (its object_ids derive from it)",
            def.entity_id
        )));
    }
    def.fields.retain(|f| f.name != name);
    // Postgres drops the indexes and constraints over a dropped column with it.
    def.indexes.retain(|s| !s.fields.contains(&name));
    def.constraints.retain(|s| !s.fields.contains(&name));
    def.named_indexes.retain(|ix| !ix.fields.contains(&name));
    def.foreign_keys.retain(|fk| !fk.fields.contains(&name));
    Ok(Some(ColumnChange::Drop(name)))
}

fn rename_column(def: &mut EntityDef, from: &Ident, to: &Ident) -> Result<ColumnChange> {
    let old = existing(def, from)?;
    if old.identity.is_some() {
        return Err(Error::not_supported(format!(
            "ALTER TABLE {} RENAME COLUMN {}: serial and identity columns keep their name (their counter is kept under it)",
            def.entity_id, old.name
        )));
    }
    let (old, new) = (old.name.clone(), to.value.clone());
    if def.get(&new).is_some() {
        return Err(duplicate_column(def, &new));
    }
    let rename = |names: &mut Vec<String>| names.iter_mut().filter(|n| **n == old).for_each(|n| n.clone_from(&new));
    def.fields.iter_mut().filter(|f| f.name == old).for_each(|f| f.name.clone_from(&new));
    def.indexes.iter_mut().for_each(|s| rename(&mut s.fields));
    def.constraints.iter_mut().for_each(|s| rename(&mut s.fields));
    def.named_indexes.iter_mut().for_each(|ix| rename(&mut ix.fields));
    def.foreign_keys.iter_mut().for_each(|fk| rename(&mut fk.fields));
    if let IdSource::Key(key) = &mut def.id_source {
        rename(key);
    }
    Ok(ColumnChange::Rename { from: old, to: new })
}

fn alter_column(def: &mut EntityDef, column: &Ident, op: &AlterColumnOperation, checks: &mut Vec<RowCheck>) -> Result<()> {
    let e = def.entity_id.clone();
    let name = existing(def, column)?.name.clone();
    let in_key = def.id_source.key().is_some_and(|k| k.contains(&name));
    let f = def.fields.iter_mut().find(|f| f.name == name).expect("the field exists");
    match op {
        AlterColumnOperation::SetNotNull => {
            if !f.required {
                f.required = true;
                checks.push(RowCheck::NoNulls(name));
            }
        }
        AlterColumnOperation::DropNotNull if in_key => {
            return Err(Error::definition(format!("column \"{name}\" is in a primary key")));
        }
        AlterColumnOperation::DropNotNull if f.identity.is_some() => {
            return Err(Error::definition(format!("column \"{name}\" of relation \"{e}\" is an identity column")));
        }
        AlterColumnOperation::DropNotNull => f.required = false,
        AlterColumnOperation::SetDefault { .. } | AlterColumnOperation::DropDefault if f.identity.is_some() => {
            return Err(Error::definition(format!(
                "column \"{name}\" of relation \"{e}\" is an identity column: its values come from its counter"
            )));
        }
        AlterColumnOperation::SetDefault { value } => set_default(f, value).ok_or_else(|| {
            Error::not_supported(format!(
                "ALTER TABLE {e} ALTER COLUMN {name} SET DEFAULT: a default is a literal, now() / CURRENT_TIMESTAMP or \
                 CURRENT_DATE, got {value}"
            ))
        })?,
        AlterColumnOperation::DropDefault => {
            f.default = None;
            f.default_fn = None;
        }
        AlterColumnOperation::SetDataType { data_type, using: None, .. } => {
            let to = logical_type_of(data_type)
                .map_err(|m| Error::not_supported(format!("ALTER TABLE {e} ALTER COLUMN {name} TYPE: {m}")))?;
            let widens = to.physical() == f.ty.physical()
                && match (f.ty.text_limit(), to.text_limit()) {
                    (Some(from), Some(to)) => to >= from,
                    (None, None) => to.arrow_type() == f.ty.arrow_type(),
                    _ => false,
                };
            if !widens {
                return Err(Error::not_supported(format!(
                    "ALTER TABLE {e} ALTER COLUMN {name} TYPE {data_type}: changing {} to {} would rewrite or narrow the \
                     stored values; only changes that keep every value as stored are supported (a longer varchar)",
                    f.ty.class_name(),
                    to.class_name()
                )));
            }
            f.ty = to;
        }
        other => {
            return Err(Error::not_supported(format!("ALTER TABLE {e} ALTER COLUMN {name} {other} is not supported")));
        }
    }
    Ok(())
}
