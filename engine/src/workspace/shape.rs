//! The Postgres shape of tables with system columns.
//!
//! A table made by SQL `CREATE TABLE` that does not declare `object_id` or
//! `name` has them as system columns ([`FieldDef::system_column`]): like
//! Postgres' `ctid`, they can be selected, filtered and joined on by name, but
//! `SELECT *`, a positional `INSERT` and `COPY` without a column list cover
//! the declared columns only. DataFusion has no system columns, so statements
//! are reshaped before they are planned:
//!
//! - `*` and `t.*` in a select list become the columns they stand for, with a
//!   shaped table's system columns left out (other tables' columns as
//!   DataFusion would expand them);
//! - `INSERT INTO t VALUES …` / `INSERT INTO t SELECT …` without a column list
//!   gets the declared columns as its list.
//!
//! A `*` over a FROM this cannot expand exactly (a NATURAL join, a USING join
//! beside a relation whose columns are unknown here, a relation with column
//! aliases) is left as DataFusion expands it, system columns included.
//!
//! [`FieldDef::system_column`]: heavenbase_catalog::FieldDef::system_column

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, Ident, JoinConstraint, JoinOperator, ObjectName, ObjectNamePart, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement, TableFactor, TableObject, TableWithJoins, VisitMut, VisitorMut,
    WildcardAdditionalOptions,
};

use super::{EntityRuntime, Workspace};
use crate::colnames::normalized;

impl Workspace {
    /// Whether some table has system columns, so statements may need
    /// [`Workspace::shape_statement`] (a cheap check, for the wire's hot path).
    pub fn has_system_columns(&self) -> bool {
        self.inner.entities.read().values().any(|rt| rt.def.has_system_columns())
    }

    /// Reshape a statement for the tables with system columns (module doc).
    /// Returns whether anything changed.
    pub fn shape_statement(&self, statement: &mut Statement) -> bool {
        if !self.has_system_columns() {
            return false;
        }
        let mut shaper = Shaper { ws: self, ctes: Vec::new(), changed: false };
        let _ = statement.visit(&mut shaper);
        shaper.changed
    }

    /// The definition of the entity a FROM or INSERT names (`t`, `public.t`).
    pub(super) fn named_entity(&self, name: &ObjectName) -> Option<Arc<EntityRuntime>> {
        let parts: Vec<&Ident> = name.0.iter().map(ObjectNamePart::as_ident).collect::<Option<_>>()?;
        let table = match parts.as_slice() {
            [table] => table,
            [schema, table] if normalized(schema) == "public" => table,
            _ => return None,
        };
        self.runtime(&normalized(table)).ok()
    }
}

struct Shaper<'a> {
    ws: &'a Workspace,
    /// The names WITH clauses in scope define (they hide tables of that name).
    ctes: Vec<Vec<String>>,
    changed: bool,
}

impl Shaper<'_> {
    fn entity(&self, name: &ObjectName) -> Option<Arc<EntityRuntime>> {
        if let [ObjectNamePart::Identifier(only)] = name.0.as_slice() {
            if self.ctes.iter().flatten().any(|c| *c == normalized(only)) {
                return None;
            }
        }
        self.ws.named_entity(name)
    }

    fn shape_body(&mut self, body: &mut SetExpr) {
        match body {
            SetExpr::Select(select) => self.shape_select(select),
            SetExpr::SetOperation { left, right, .. } => {
                self.shape_body(left);
                self.shape_body(right);
            }
            // Nested queries are visited as queries of their own.
            _ => {}
        }
    }

    fn shape_select(&mut self, select: &mut Select) {
        let stars = select.projection.iter().any(|i| matches!(i, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)));
        if !stars {
            return;
        }
        let relations = self.relations(select);
        if !relations.iter().any(|r| r.rt.as_ref().is_some_and(|rt| rt.def.has_system_columns())) {
            return;
        }
        let mut projection = Vec::with_capacity(select.projection.len());
        let mut changed = false;
        for item in std::mem::take(&mut select.projection) {
            let expanded = match &item {
                SelectItem::Wildcard(options) if plain(options) => expand_all(&relations, &select_usings(select)),
                SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(q), options) if plain(options) => {
                    relations.iter().find(|r| r.named(q)).and_then(|r| r.expand(&[]))
                }
                _ => None,
            };
            match expanded {
                Some(items) => {
                    projection.extend(items);
                    changed = true;
                }
                None => projection.push(item),
            }
        }
        select.projection = projection;
        self.changed |= changed;
    }

    /// The FROM's relations, in order.
    fn relations(&self, select: &Select) -> Vec<Relation> {
        from_factors(&select.from)
            .into_iter()
            .map(|(factor, _)| match factor {
                TableFactor::Table { name, alias, args: None, .. } => {
                    let qualifier = match alias {
                        Some(a) if !a.columns.is_empty() => None,
                        Some(a) => Some(vec![a.name.clone()]),
                        None => Some(name.0.iter().filter_map(|p| p.as_ident().cloned()).collect()),
                    };
                    let rt = alias.as_ref().is_none_or(|a| a.columns.is_empty()).then(|| self.entity(name)).flatten();
                    Relation { qualifier, rt }
                }
                other => Relation { qualifier: table_factor_alias(other).map(|a| vec![a]), rt: None },
            })
            .collect()
    }
}

/// One relation of a FROM: how its columns are qualified, and the entity it
/// is (None for anything else: a CTE, a subquery, a table function, a system table).
struct Relation {
    qualifier: Option<Vec<Ident>>,
    rt: Option<Arc<EntityRuntime>>,
}

impl Relation {
    /// Whether `t.*`'s `t` names this relation.
    fn named(&self, q: &ObjectName) -> bool {
        let Some(qualifier) = &self.qualifier else { return false };
        let written: Vec<String> = q.0.iter().filter_map(|p| p.as_ident()).map(normalized).collect();
        let mine: Vec<String> = qualifier.iter().map(normalized).collect();
        written == mine || (written.len() == 1 && mine.last() == written.last())
    }

    /// This relation's part of a `*`, without the columns in `skip` (USING
    /// columns an earlier relation shows); None when it cannot be spelled out.
    fn expand(&self, skip: &[String]) -> Option<Vec<SelectItem>> {
        let qualifier = self.qualifier.clone()?;
        let Some(rt) = &self.rt else {
            if !skip.is_empty() {
                return None;
            }
            let name = ObjectName(qualifier.into_iter().map(ObjectNamePart::Identifier).collect());
            return Some(vec![SelectItem::QualifiedWildcard(
                SelectItemQualifiedWildcardKind::ObjectName(name),
                WildcardAdditionalOptions::default(),
            )]);
        };
        let columns = rt.def.fields.iter().filter(|f| !f.system_column && !skip.contains(&f.name));
        Some(
            columns
                .map(|f| {
                    let mut parts = qualifier.clone();
                    parts.push(Ident::with_quote('"', &f.name));
                    SelectItem::UnnamedExpr(SqlExpr::CompoundIdentifier(parts))
                })
                .collect(),
        )
    }
}

/// A `*` without EXCLUDE, REPLACE and the like (those are left to DataFusion).
fn plain(options: &WildcardAdditionalOptions) -> bool {
    options.opt_ilike.is_none()
        && options.opt_exclude.is_none()
        && options.opt_except.is_none()
        && options.opt_replace.is_none()
        && options.opt_rename.is_none()
        && options.opt_alias.is_none()
}

/// The USING columns of each join, by the index of the relation it joins
/// (None for a NATURAL join, whose columns are not written down).
fn select_usings(select: &Select) -> Vec<Option<Vec<String>>> {
    from_factors(&select.from)
        .into_iter()
        .map(|(_, join)| match join.and_then(join_constraint) {
            Some(JoinConstraint::Using(columns)) => {
                Some(columns.iter().filter_map(|c| c.0.last()?.as_ident().map(normalized)).collect())
            }
            Some(JoinConstraint::Natural) => None,
            _ => Some(Vec::new()),
        })
        .collect()
}

/// Each relation of a FROM with the join that brings it in (None for the
/// first of each list). A parenthesized join without an alias, `(a CROSS
/// JOIN b)`, shows its tables' own columns, so it is opened up, unless a USING
/// or NATURAL join is in or around it (then the columns it shows are not
/// spelled out here, and the whole is one relation DataFusion expands).
fn from_factors(from: &[TableWithJoins]) -> Vec<(&TableFactor, Option<&JoinOperator>)> {
    fn merges(op: Option<&JoinOperator>) -> bool {
        matches!(op.and_then(join_constraint), Some(JoinConstraint::Using(_) | JoinConstraint::Natural))
    }
    fn push<'a>(
        factor: &'a TableFactor,
        op: Option<&'a JoinOperator>,
        out: &mut Vec<(&'a TableFactor, Option<&'a JoinOperator>)>,
    ) {
        match factor {
            TableFactor::NestedJoin { table_with_joins: nested, alias: None }
                if !merges(op) && !nested.joins.iter().any(|j| merges(Some(&j.join_operator))) =>
            {
                push(&nested.relation, op, out);
                for join in &nested.joins {
                    push(&join.relation, Some(&join.join_operator), out);
                }
            }
            other => out.push((other, op)),
        }
    }
    let mut out = Vec::new();
    for t in from {
        push(&t.relation, None, &mut out);
        for join in &t.joins {
            push(&join.relation, Some(&join.join_operator), &mut out);
        }
    }
    out
}

/// An unqualified `*` over every relation, as DataFusion orders it (relation
/// by relation; a USING column once, where it first appears).
fn expand_all(relations: &[Relation], usings: &[Option<Vec<String>>]) -> Option<Vec<SelectItem>> {
    let mut items = Vec::new();
    for (relation, using) in relations.iter().zip(usings) {
        let skip = using.as_ref()?;
        items.extend(relation.expand(skip)?);
    }
    Some(items)
}

fn join_constraint(op: &JoinOperator) -> Option<&JoinConstraint> {
    match op {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c)
        | JoinOperator::Semi(c)
        | JoinOperator::LeftSemi(c)
        | JoinOperator::RightSemi(c)
        | JoinOperator::Anti(c)
        | JoinOperator::LeftAnti(c)
        | JoinOperator::RightAnti(c) => Some(c),
        _ => None,
    }
}

/// The alias of a relation that is not a plain table (a subquery, a table
/// function), when it has one without column aliases.
fn table_factor_alias(factor: &TableFactor) -> Option<Ident> {
    let alias = match factor {
        TableFactor::Table { alias, .. }
        | TableFactor::Derived { alias, .. }
        | TableFactor::Function { alias, .. }
        | TableFactor::UNNEST { alias, .. } => alias.as_ref()?,
        _ => return None,
    };
    alias.columns.is_empty().then(|| alias.name.clone())
}

impl VisitorMut for Shaper<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let names = query.with.iter().flat_map(|w| w.cte_tables.iter().map(|c| normalized(&c.alias.name))).collect();
        self.ctes.push(names);
        self.shape_body(&mut query.body);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.ctes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, statement: &mut Statement) -> ControlFlow<()> {
        if let Statement::Insert(insert) = statement {
            if let (TableObject::TableName(name), true) = (&insert.table, insert.columns.is_empty()) {
                // DEFAULT VALUES (no source) and `INSERT … SET` name no positions.
                if insert.source.is_some() && insert.assignments.is_empty() {
                    if let Some(rt) = self.ws.named_entity(name).filter(|rt| rt.def.has_system_columns()) {
                        // As in Postgres, VALUES may fill only the first columns.
                        let given = match insert.source.as_ref().map(|q| q.body.as_ref()) {
                            Some(SetExpr::Values(values)) => values.rows.first().map(|row| row.len()),
                            _ => None,
                        };
                        let declared = rt.def.star_fields().count();
                        insert.columns = rt
                            .def
                            .star_fields()
                            .take(given.filter(|n| *n <= declared).unwrap_or(declared))
                            .map(|f| ObjectName(vec![ObjectNamePart::Identifier(Ident::with_quote('"', &f.name))]))
                            .collect();
                        self.changed = true;
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }
}
