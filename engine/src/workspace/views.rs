//! Views: `CREATE [OR REPLACE] VIEW` and `DROP VIEW [IF EXISTS] … [CASCADE]`.
//!
//! A view is kept as a MetaSchema `view` row (its statement, its creation
//! order, the relations it reads) before the statement answers, and planned
//! into the session as DataFusion's `ViewTable`, so every connection sees it
//! and a reopened workspace plans it again. A `ViewTable` holds the plan of
//! its query, bound to the tables as they were when it was planned, so every
//! view is planned again, in creation order, whenever an entity is
//! re-registered (ALTER TABLE, CREATE INDEX) or a view is replaced.
//!
//! As in Postgres, a table or view that a view reads cannot be dropped
//! without CASCADE (which drops the dependent views too, 2BP01 otherwise),
//! and a column of such a table cannot be dropped or renamed (this workspace
//! refuses any drop or rename there, where Postgres looks at which columns
//! the view reads). A table that views read can be renamed: the views
//! follow it, as Postgres' do (which keep the table's OID, where these
//! keep its name in their SQL, rewritten: see [`renamed_view`]).

use std::collections::BTreeSet;

use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::sql::sqlparser::ast::{CreateView, Ident, ObjectName, ObjectNamePart, Statement};
use heavenbase_catalog::system::SYS_METASCHEMA;
use heavenbase_catalog::{OBJECT_ID, system_row_id};
use serde_json::json;

use super::Workspace;
use crate::colnames::normalized;
use crate::error::ErrorKind;
use crate::{Error, Result};

/// MetaSchema's kind for a view row (`subject_id` is the view's name).
pub(super) const VIEW_KIND: &str = "view";

/// A view as the workspace keeps it.
#[derive(Debug, Clone)]
pub(crate) struct StoredView {
    pub name: String,
    /// `CREATE OR REPLACE VIEW "name" [(cols)] AS query`, as planned.
    pub statement: String,
    /// The query alone (pg_views' `definition`).
    pub query: String,
    /// Creation order: a view is planned after the views it reads.
    pub seq: i64,
    /// The tables and views its query reads.
    pub reads: BTreeSet<String>,
}

impl Workspace {
    /// The views the workspace holds, in creation order.
    pub fn views(&self) -> Vec<(String, String)> {
        let mut views: Vec<StoredView> = self.inner.views.read().values().cloned().collect();
        views.sort_by_key(|v| v.seq);
        views.into_iter().map(|v| (v.name, v.query)).collect()
    }

    /// The views that read any of `relations` (table or view names), directly
    /// or through another view, in creation order.
    pub(super) fn views_on(&self, relations: &[String]) -> Vec<String> {
        let views = self.inner.views.read();
        let mut hit: BTreeSet<String> = relations.iter().cloned().collect();
        let mut ordered: Vec<&StoredView> = views.values().collect();
        ordered.sort_by_key(|v| v.seq);
        let mut out = Vec::new();
        // Creation order: a view is created after every view it reads.
        for v in ordered {
            if !hit.contains(&v.name) && v.reads.iter().any(|r| hit.contains(r)) {
                hit.insert(v.name.clone());
                out.push(v.name.clone());
            }
        }
        out
    }

    /// The views that read table `old` by name, as they read once it is
    /// called `new` ([`renamed_view`]).
    pub(super) fn views_following_rename(&self, old: &str, new: &str) -> Result<Vec<StoredView>> {
        let mut views: Vec<StoredView> = self.inner.views.read().values().filter(|v| v.reads.contains(old)).cloned().collect();
        views.sort_by_key(|v| v.seq);
        views.into_iter().map(|v| renamed_view(v, old, new)).collect()
    }

    /// Plan `views` (rewritten to follow a rename) against the session as it
    /// is: an error names the first that does not plan.
    pub(super) async fn check_views_plan(&self, views: &[StoredView]) -> Result<()> {
        for v in views {
            self.view_plan(&v.statement).await.map_err(|e| {
                Error::new(
                    ErrorKind::DependentObjects,
                    format!("view {} reads the table and does not plan under its new name ({e}); drop the view first", v.name),
                )
            })?;
        }
        Ok(())
    }

    /// The MetaSchema rows of `views`.
    pub(super) fn view_rows(&self, views: &[StoredView]) -> Vec<heavenbase_catalog::Row> {
        views.iter().map(|v| self.view_row(v)).collect()
    }

    /// Hold `views` as the workspace's views, once their rows are stored.
    pub(super) fn hold_views(&self, views: Vec<StoredView>) {
        let mut held = self.inner.views.write();
        for v in views {
            held.insert(v.name.clone(), v);
        }
    }

    /// `CREATE [OR REPLACE] VIEW name [(columns)] AS query`.
    pub(super) async fn create_view(&self, create: &CreateView) -> Result<()> {
        if create.materialized || create.temporary || create.or_alter || create.to.is_some() || create.params.is_some() {
            return Err(Error::not_supported(
                "CREATE VIEW: materialized, temporary and parameterised views are not supported (a plain view is)",
            ));
        }
        let name = view_name(&create.name)?;
        if self.runtime(&name).is_ok() || self.inner.entities.read().values().any(|rt| rt.def.table_name() == name) {
            return Err(Error::new(ErrorKind::AlreadyExists, format!("relation \"{name}\" already exists (a table)")));
        }
        let previous = self.inner.views.read().get(&name).cloned();
        if previous.is_some() && !create.or_replace {
            if create.if_not_exists {
                return Ok(());
            }
            return Err(Error::new(ErrorKind::AlreadyExists, format!("relation \"{name}\" already exists (a view)")));
        }
        let mut canonical = create.clone();
        canonical.or_replace = true;
        canonical.if_not_exists = false;
        canonical.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::with_quote('"', &name))]);
        let statement = crate::render::sql_text(&Statement::CreateView(canonical));
        let plan = self.view_plan(&statement).await?;
        check_view_columns(&name, &plan)?;
        self.inner.ctx.execute_logical_plan(plan).await?;
        let reads = relations_read(&create.query);
        if reads.contains(&name) {
            return Err(Error::definition(format!("view \"{name}\" cannot read itself")));
        }
        let seq = match &previous {
            Some(p) => p.seq,
            None => self.inner.views.read().values().map(|v| v.seq + 1).max().unwrap_or(1),
        };
        let view = StoredView { name: name.clone(), statement, query: crate::render::sql_text(&create.query), seq, reads };
        if let Err(e) = self.keep_view(&view).await {
            // Not kept: the session goes back to what it had.
            let _ = self.inner.ctx.deregister_table(&name);
            if let Some(p) = &previous {
                let _ = self.plan_view(&p.statement).await;
            }
            return Err(e);
        }
        self.inner.views.write().insert(name, view);
        if previous.is_some() {
            self.replan_views().await;
        }
        self.bump_schema_version();
        Ok(())
    }

    /// `DROP VIEW [IF EXISTS] a, b [CASCADE]`: every name is checked first.
    pub(super) async fn drop_views(&self, names: &[ObjectName], if_exists: bool, cascade: bool) -> Result<()> {
        let mut dropped = Vec::new();
        for n in names {
            let name = view_name(n)?;
            if self.inner.views.read().contains_key(&name) {
                dropped.push(name);
            } else if self.inner.entities.read().values().any(|rt| rt.def.table_name() == name) {
                return Err(Error::new(
                    ErrorKind::WrongObjectType,
                    format!("\"{name}\" is not a view (DROP TABLE drops a table)"),
                ));
            } else if !if_exists {
                return Err(Error::new(ErrorKind::UnknownEntity, format!("view \"{name}\" does not exist")));
            }
        }
        let dependents: Vec<String> = self.views_on(&dropped).into_iter().filter(|v| !dropped.contains(v)).collect();
        self.drop_stored_views(&dropped, &dependents, cascade).await
    }

    /// Drop `views` and the views that read them (`dependents`, which need
    /// CASCADE); the dependents first.
    pub(super) async fn drop_stored_views(&self, views: &[String], dependents: &[String], cascade: bool) -> Result<()> {
        if !dependents.is_empty() && !cascade {
            return Err(Error::new(
                ErrorKind::DependentObjects,
                format!(
                    "cannot drop {} because other objects depend on it: view {} (use DROP … CASCADE to drop them too)",
                    views.join(", "),
                    dependents.join(", view ")
                ),
            ));
        }
        let all: Vec<String> = dependents.iter().rev().chain(views.iter()).cloned().collect();
        if all.is_empty() {
            return Ok(());
        }
        let rows: Vec<String> = all.iter().map(|v| system_row_id(VIEW_KIND, v)).collect();
        self.delete_many(SYS_METASCHEMA, &rows).await?;
        for v in &all {
            self.inner.ctx.deregister_table(v)?;
            self.inner.views.write().remove(v);
        }
        self.bump_schema_version();
        Ok(())
    }

    /// Plan `statement` (a CREATE OR REPLACE VIEW) into the session.
    async fn plan_view(&self, statement: &str) -> Result<()> {
        let plan = self.view_plan(statement).await?;
        self.inner.ctx.execute_logical_plan(plan).await?;
        Ok(())
    }

    /// The logical plan of `statement` (a CREATE OR REPLACE VIEW).
    async fn view_plan(&self, statement: &str) -> Result<LogicalPlan> {
        let plan = self.inner.ctx.state().create_logical_plan(statement).await?;
        if !matches!(plan, LogicalPlan::Ddl(DdlStatement::CreateView(_))) {
            return Err(Error::internal(format!("a view's statement planned as {}", plan.display())));
        }
        Ok(plan)
    }

    async fn keep_view(&self, view: &StoredView) -> Result<()> {
        self.write_system_rows(SYS_METASCHEMA, vec![self.view_row(view)]).await
    }

    fn view_row(&self, view: &StoredView) -> heavenbase_catalog::Row {
        let row = json!({
            OBJECT_ID: system_row_id(VIEW_KIND, &view.name), "kind": VIEW_KIND, "subject_id": view.name,
            "name": view.name, "ws": self.id(), "active": true,
            "meta": {"statement": view.statement, "query": view.query, "seq": view.seq, "reads": view.reads},
        });
        row.as_object().cloned().expect("object")
    }

    /// Plan every view again, in creation order, against the tables as they
    /// are now. A view that no longer plans keeps its previous plan (the
    /// statements that could break one are refused while it exists).
    pub(super) async fn replan_views(&self) {
        let mut views: Vec<StoredView> = self.inner.views.read().values().cloned().collect();
        views.sort_by_key(|v| v.seq);
        for v in views {
            if let Err(e) = self.plan_view(&v.statement).await {
                tracing::warn!(view = %v.name, error = %e, "a view no longer plans against the tables it reads");
            }
        }
    }

    /// Reopen: plan the stored views, in creation order.
    pub(super) async fn restore_views(&self) -> Result<()> {
        let mut views = Vec::new();
        for row in self.scan_rows(SYS_METASCHEMA).await? {
            if row.get("kind").and_then(|k| k.as_str()) != Some(VIEW_KIND) {
                continue;
            }
            let meta = row.get("meta").cloned().unwrap_or_default();
            let text = |k: &str| meta.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
            views.push(StoredView {
                name: row.get("subject_id").and_then(|s| s.as_str()).unwrap_or_default().to_string(),
                statement: text("statement"),
                query: text("query"),
                seq: meta.get("seq").and_then(|s| s.as_i64()).unwrap_or_default(),
                reads: meta
                    .get("reads")
                    .and_then(|r| r.as_array())
                    .map(|r| r.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                    .unwrap_or_default(),
            });
        }
        views.sort_by_key(|v| v.seq);
        for v in views {
            match self.plan_view(&v.statement).await {
                Ok(_) => {
                    self.inner.views.write().insert(v.name.clone(), v);
                }
                Err(e) => tracing::warn!(view = %v.name, error = %e, "a stored view does not plan; it is not served"),
            }
        }
        Ok(())
    }

    pub(super) fn bump_schema_version(&self) {
        self.inner.schema_version.fetch_add(1, std::sync::atomic::Ordering::Release);
    }
}

/// The relations a view's query names (DataFusion inlines the views a query
/// reads while planning it, so the plan no longer says which views it read).
/// A CTE's name counts too: at worst a view is kept from a drop it did not need.
fn relations_read(query: &datafusion::sql::sqlparser::ast::Query) -> BTreeSet<String> {
    let mut reads = BTreeSet::new();
    let _ = datafusion::sql::sqlparser::ast::visit_relations(query, |name| {
        if let Ok(n) = view_name(name) {
            reads.insert(n);
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    reads
}

/// `view`, reading table `new` where it read `old`: each `FROM old [AS a]`
/// becomes `FROM new AS old` (or `AS a`), so the query's columns qualified
/// `old.x` still resolve and its output is the same. A view whose query
/// also has a CTE called `old` is refused (2BP01, as before renames
/// followed): its `FROM old` could be either.
fn renamed_view(view: StoredView, old: &str, new: &str) -> Result<StoredView> {
    use datafusion::sql::sqlparser::ast::{TableAlias, TableFactor, VisitMut, VisitorMut};
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use std::ops::ControlFlow;

    struct Follow<'a> {
        old: &'a str,
        new: &'a str,
        shadowed: bool,
    }
    impl VisitorMut for Follow<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, query: &mut datafusion::sql::sqlparser::ast::Query) -> ControlFlow<()> {
            let ctes = query.with.iter().flat_map(|w| w.cte_tables.iter());
            if ctes.into_iter().any(|cte| normalized(&cte.alias.name) == self.old) {
                self.shadowed = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table { name, alias, args: None, .. } = factor
                && view_name(name).is_ok_and(|n| n == self.old)
            {
                *name = ObjectName(vec![ObjectNamePart::Identifier(Ident::with_quote('"', self.new))]);
                if alias.is_none() {
                    *alias =
                        Some(TableAlias { explicit: true, name: Ident::with_quote('"', self.old), columns: vec![], at: None });
                }
            }
            ControlFlow::Continue(())
        }
    }

    let refused = || {
        Error::new(
            ErrorKind::DependentObjects,
            format!(
                "cannot rename table {old} because view {} reads it and also names a WITH query \"{old}\" (drop the view first)",
                view.name
            ),
        )
    };
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, &view.statement)
        .map_err(|e| Error::internal(format!("view {}'s statement does not parse: {e}", view.name)))?;
    let Some(Statement::CreateView(mut create)) = statements.pop() else {
        return Err(Error::internal(format!("view {}'s statement is no CREATE VIEW", view.name)));
    };
    let mut follow = Follow { old, new, shadowed: false };
    let _ = create.query.visit(&mut follow);
    if follow.shadowed {
        return Err(refused());
    }
    let query = crate::render::sql_text(&create.query);
    let reads = relations_read(&create.query);
    let statement = crate::render::sql_text(&Statement::CreateView(create));
    Ok(StoredView { statement, query, reads, ..view })
}

/// A new view's columns are named once each, as in Postgres (42701): a join's
/// `a.x, b.x` must be aliased, or `SELECT *` over it would be ambiguous. Checked
/// when a view is created only: a view kept by an earlier version is served as
/// it was.
fn check_view_columns(name: &str, plan: &LogicalPlan) -> Result<()> {
    let LogicalPlan::Ddl(DdlStatement::CreateView(view)) = plan else { return Ok(()) };
    let mut seen = std::collections::HashSet::new();
    for field in view.input.schema().fields() {
        let shown = crate::colnames::shown_name(field.name());
        if !seen.insert(shown) {
            return Err(Error::new(
                ErrorKind::DuplicateColumn,
                format!("CREATE VIEW {name}: column \"{shown}\" specified more than once (alias one of them)"),
            ));
        }
    }
    Ok(())
}

/// A view's name as the session keys it (`v`, `public.v`).
fn view_name(name: &ObjectName) -> Result<String> {
    let parts: Vec<&Ident> = name.0.iter().filter_map(ObjectNamePart::as_ident).collect();
    match parts.as_slice() {
        [view] => Ok(normalized(view)),
        [schema, view] if normalized(schema) == "public" => Ok(normalized(view)),
        _ => Err(Error::not_supported(format!("views live in the public schema; got {name}"))),
    }
}
