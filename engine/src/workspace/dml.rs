//! SQL statements that change the workspace. They go through the workspace write
//! path, never around it.
//!
//! - `INSERT` is planned by DataFusion and lands in the entity table's
//!   `insert_into` (validation, id derivation, every group, the Catalog).
//! - `UPDATE` and `DELETE` are planned once by DataFusion (`LogicalPlan::Dml`,
//!   whose input selects the rows and computes the new values, so subqueries,
//!   EXISTS and folded constants mean exactly what they mean in a SELECT), its
//!   parameters bound in the plan, and the chosen rows patched or deleted by id
//!   through the write path. DataFusion's own `delete_from`/`update` hooks can
//!   receive an empty filter list for a WHERE they could not push (an IN subquery,
//!   a predicate folded to false); the entity tables do not implement those hooks,
//!   so such a statement sent to the raw session fails instead of touching every row.
//! - `CREATE TABLE` registers an entity (see `docs/sql.md` for the type mapping and
//!   the `WITH (placement = 'field:backend, …')` option); it, `CREATE INDEX`,
//!   `DROP TABLE` and `TRUNCATE` run through `Workspace::execute_ddl` (`ddl.rs`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::Column;
use datafusion::logical_expr::expr::{Cast, Placeholder};
use datafusion::logical_expr::{DmlStatement, Expr, LogicalPlan, LogicalPlanBuilder, Projection, WriteOp};
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    self, AssignmentTarget, ColumnOption, CreateTableOptions, DataType as SqlType, Expr as SqlExpr, FromTable, GeneratedAs,
    ObjectName, SqlOption, Statement, TableConstraint, TableFactor, TableWithJoins,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use heavenbase_catalog::value::array_value;
use heavenbase_catalog::{DefaultFn, EntityDef, FieldDef, IdSource, Identity, LogicalType, OBJECT_ID, Row};
use serde_json::{Value as Json, json};

use super::Workspace;
use crate::{Error, Result};

impl Workspace {
    /// Run one SQL statement and collect its result. Writes (INSERT, UPDATE,
    /// DELETE, CREATE TABLE) return one row with the affected `count`. The
    /// statement is parsed once and planned once.
    ///
    /// A panic while planning or running the statement (a bug, never a
    /// crash) is this statement's error (XX000); the workspace goes on.
    ///
    /// Inside a transaction block a statement that fails changes nothing:
    /// what it held is let go again.
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        self.sql_capped(sql, None).await
    }

    /// [`Workspace::sql`] with a query's result cut to its first `max_rows`
    /// rows (a LIMIT over the whole statement, so ORDER BY … LIMIT stays a
    /// top-N): for doors that must never hold an unbounded result (MCP).
    /// Ask for one row more than you show to know whether rows were left out.
    pub async fn sql_first(&self, sql: &str, max_rows: usize) -> Result<Vec<RecordBatch>> {
        self.sql_capped(sql, Some(max_rows)).await
    }

    async fn sql_capped(&self, sql: &str, max_rows: Option<usize>) -> Result<Vec<RecordBatch>> {
        use futures::FutureExt;
        let mark = self.buffering().map(|t| t.mark());
        let result = std::panic::AssertUnwindSafe(self.sql_statement(sql, max_rows))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(crate::error::panicked(sql, panic)));
        if let (Err(_), Some(txn), Some(mark)) = (&result, self.buffering(), mark) {
            txn.cut_to(mark);
        }
        result
    }

    /// Parse one statement and put it in the shape the workspace plans:
    /// long AND/OR chains balanced, multi-row VALUES flattened, `*` over a
    /// SQL table's declared columns, result columns named as Postgres names them.
    fn parse_one(&self, sql: &str) -> Result<Option<DfStatement>> {
        crate::check_nesting(sql)?;
        let mut statements = DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {})
            .map_err(|e| Error::with_source(crate::kind_of(&e), format!("SQL syntax error: {e}"), e))?;
        if statements.len() > 1 {
            return Err(Error::not_supported(format!("Send one statement at a time; got {}", statements.len())));
        }
        let Some(mut statement) = statements.pop_front() else {
            return Ok(None);
        };
        if let DfStatement::Statement(stmt) = &mut statement {
            crate::check_subquery_columns(stmt)?;
            if crate::chains::may_hold_chain(sql) {
                crate::chains::balance_chains(stmt.as_mut());
            }
            crate::insert_values::flatten_insert_values(stmt.as_mut());
            self.shape_statement(stmt.as_mut());
            self.insert_defaults(stmt.as_mut())?;
            self.list_literals(stmt.as_mut())?;
            crate::colnames::name_columns_as_postgres(stmt.as_mut());
            // After naming: `x::uuid` keeps the name Postgres gives it.
            if crate::uuids::may_cast_to_uuid(sql) {
                crate::uuids::casts_to_functions(stmt.as_mut());
            }
            // After naming: an unaliased EXISTS keeps Postgres' name, `exists`.
            if crate::exists::may_hold_exists(sql) {
                crate::exists::exists_in_select_lists(stmt.as_mut());
            }
        }
        Ok(Some(statement))
    }

    /// Plan one statement that only reads (a query, EXPLAIN without ANALYZE
    /// of a write, SHOW) as [`Workspace::sql`] would, without running it, so
    /// a door can stream its result batch by batch and bind `$n` parameters
    /// with `LogicalPlan::with_param_values`. `None` for any other statement:
    /// run those with [`Workspace::sql`].
    pub async fn plan_read(&self, sql: &str) -> Result<Option<LogicalPlan>> {
        let Some(statement) = self.parse_one(sql)? else {
            return Ok(None);
        };
        // Statements that return rows and change nothing; session and
        // transaction control are neither.
        let reads = match &statement {
            DfStatement::Statement(s) => match s.as_ref() {
                Statement::Explain { .. } => !Self::is_write(s),
                Statement::Query(_)
                | Statement::ShowVariable { .. }
                | Statement::ShowVariables { .. }
                | Statement::ShowTables { .. }
                | Statement::ShowColumns { .. } => true,
                _ => false,
            },
            DfStatement::Explain(_) => true,
            _ => false,
        };
        if !reads {
            return Ok(None);
        }
        let plan = self.session().state().statement_to_plan(statement).await?;
        Ok(Some(crate::colnames::restore_repeated_names(plan)?))
    }

    async fn sql_statement(&self, sql: &str, max_rows: Option<usize>) -> Result<Vec<RecordBatch>> {
        let Some(statement) = self.parse_one(sql)? else {
            return Ok(Vec::new());
        };
        match &statement {
            DfStatement::Statement(stmt) => match stmt.as_ref() {
                Statement::StartTransaction { .. }
                | Statement::Commit { .. }
                | Statement::Rollback { .. }
                | Statement::Savepoint { .. }
                | Statement::ReleaseSavepoint { .. } => {
                    return Err(Error::not_supported(format!(
                        "{} is not run through Workspace::sql: start a block with Workspace::begin() and end it with \
                         Transaction::commit or rollback (savepoints: Transaction::savepoint, rollback_to, release)",
                        stmt.to_string().split_whitespace().next().unwrap_or_default().to_uppercase()
                    )));
                }
                Statement::Delete(_) | Statement::Update(_) => {
                    let plan = self.plan_dml(stmt).await?.ok_or_else(|| Error::internal("an UPDATE or DELETE has a plan"))?;
                    if !matches!(plan, LogicalPlan::Dml(_)) {
                        // … RETURNING: a query over the changed rows.
                        return self.collect(self.session().execute_logical_plan(plan).await?).await;
                    }
                    return self.execute_dml(plan).await.map(count_batch);
                }
                Statement::Insert(insert) if insert.returning.is_some() || insert.on.is_some() => {
                    let plan = self.plan_insert(stmt).await?.ok_or_else(|| Error::internal("INSERT … RETURNING has a plan"))?;
                    if matches!(plan, LogicalPlan::Dml(_)) {
                        return self.execute_dml(plan).await.map(count_batch);
                    }
                    return self.collect(self.session().execute_logical_plan(plan).await?).await;
                }
                other => {
                    if let Some(done) = self.execute_ddl(other).await {
                        return done.map(|d| d.rows.map(count_batch).unwrap_or_default());
                    }
                }
            },
            DfStatement::CreateExternalTable(_) => {
                return Err(Error::not_supported(
                    "CREATE EXTERNAL TABLE is not supported: the workspace cannot keep it durably; import the file with `hb import`",
                ));
            }
            _ => {}
        }
        // Only a query's rows are capped: an INSERT … SELECT must write them all.
        let query = matches!(&statement, DfStatement::Statement(s) if matches!(s.as_ref(), Statement::Query(_)));
        let plan = self.session().state().statement_to_plan(statement).await?;
        let plan = if query { crate::colnames::restore_repeated_names(plan)? } else { plan };
        let frame = self.session().execute_logical_plan(plan).await?;
        let frame = match max_rows {
            Some(n) if query => frame.limit(0, Some(n))?,
            _ => frame,
        };
        self.collect(frame).await
    }

    /// Plan an UPDATE or DELETE once, as DataFusion's `LogicalPlan::Dml` whose
    /// input yields the `object_id` of every row the statement touches and, for
    /// an UPDATE, the new value of each assigned column (named after it).
    /// Placeholders stay in the plan: bind them with
    /// `LogicalPlan::with_param_values` and run the plan with
    /// [`Workspace::execute_dml`]. None for any other statement.
    ///
    /// The WHERE clause is planned as DataFusion plans a SELECT's, so a
    /// subquery, EXISTS or a constant folded to false means exactly what it
    /// means there; the rows are then written through the workspace write path
    /// (`set_many`, `delete_many`), never through the table provider's
    /// `update`/`delete_from` hooks (their filter list can be empty for a WHERE
    /// they could not push, which would widen the statement to every row).
    pub async fn plan_dml(&self, statement: &Statement) -> Result<Option<LogicalPlan>> {
        let assigned: Vec<String> = match statement {
            Statement::Delete(delete) => {
                let tables = match &delete.from {
                    FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
                };
                if delete.limit.is_some() || tables.len() != 1 {
                    return Err(Error::not_supported(
                        "DELETE supports one table, USING, a WHERE clause and RETURNING, and nothing else",
                    ));
                }
                // An unknown table is reported with the workspace's suggestion.
                self.runtime(&single_table(&tables[0], "DELETE")?)?;
                Vec::new()
            }
            Statement::Update(update) => {
                let table = match (&update.table.relation, update.table.joins.is_empty()) {
                    (TableFactor::Table { name, alias: Some(a), .. }, true) if a.columns.is_empty() => last_ident(name),
                    _ => single_table(&update.table, "UPDATE")?,
                };
                let rt = self.runtime(&table)?;
                let mut names = Vec::with_capacity(update.assignments.len());
                for a in &update.assignments {
                    let AssignmentTarget::ColumnName(col) = &a.target else {
                        return Err(Error::not_supported("UPDATE … SET (a, b) = … is not supported; assign columns one by one"));
                    };
                    let name = last_ident(col);
                    if rt.def.get(&name).is_none() {
                        return Err(Error::unknown_field(format!(
                            "Unknown column '{name}' in UPDATE of '{}'.{}",
                            rt.def.entity_id,
                            crate::error::suggest(&name, rt.def.fields.iter().map(|f| f.name.as_str()))
                        )));
                    }
                    if name == OBJECT_ID {
                        return Err(Error::not_supported("UPDATE cannot move object_id; insert the new row and delete the old"));
                    }
                    if rt.def.id_source.key().is_some_and(|key| key.contains(&name)) {
                        return Err(Error::not_supported(format!(
                            "UPDATE cannot change {}.{name}: it is part of the primary key, which object_id derives from; \
                             insert the new row and delete the old",
                            rt.def.entity_id
                        )));
                    }
                    names.push(name);
                }
                names
            }
            _ => return Ok(None),
        };
        // RETURNING is planned here, over the rows the statement changes.
        let mut plain = statement.clone();
        if let Statement::Delete(delete) = &mut plain {
            using_as_exists(delete)?;
        }
        // The target's name in the plan: its alias when it has one.
        let target_alias = match &plain {
            Statement::Update(u) => match &u.table.relation {
                TableFactor::Table { alias: Some(a), .. } => Some(a.name.value.clone()),
                _ => None,
            },
            _ => None,
        };
        let returning = match &mut plain {
            Statement::Delete(d) => d.returning.take(),
            Statement::Update(u) => u.returning.take(),
            _ => None,
        };
        if let Statement::Update(update) = &plain {
            if update.from.is_some() {
                return self.plan_update_from(update, &assigned, target_alias, returning).await.map(Some);
            }
        }
        let state = self.session().state();
        let plan = state.statement_to_plan(DfStatement::Statement(Box::new(plain))).await?;
        let LogicalPlan::Dml(dml) = plan else {
            return Err(Error::internal(format!("DataFusion planned {statement} as something other than a DML statement")));
        };
        let qualifier = target_alias.map_or_else(|| dml.table_name.clone(), datafusion::common::TableReference::bare);
        let object_id = Expr::Column(Column::new(Some(qualifier.clone()), OBJECT_ID));
        let rows = match (&dml.op, dml.input.as_ref()) {
            (WriteOp::Delete, input) => LogicalPlanBuilder::from(input.clone()).project(vec![object_id])?.build()?,
            // DataFusion's UPDATE input projects every column, the assigned
            // ones replaced by their new values: keep object_id and those.
            (WriteOp::Update, LogicalPlan::Projection(all)) => {
                let mut exprs = vec![object_id];
                for name in &assigned {
                    let value = all
                        .expr
                        .iter()
                        .find(|e| e.schema_name().to_string() == *name)
                        .ok_or_else(|| Error::internal(format!("DataFusion's UPDATE plan has no value for column {name}")))?;
                    exprs.push(written_as_is(value.clone().unalias()).alias(name));
                }
                LogicalPlan::Projection(Projection::try_new(exprs, all.input.clone())?)
            }
            (op, input) => {
                return Err(Error::internal(format!("unexpected {op} plan for {statement}: {}", input.display())));
            }
        };
        if let Some(returning) = returning {
            let delete = dml.op == WriteOp::Delete;
            return Ok(Some(self.plan_changed_rows(&dml.table_name, &qualifier, delete, rows, &returning)?));
        }
        Ok(Some(LogicalPlan::Dml(DmlStatement::new(dml.table_name.clone(), dml.target.clone(), dml.op.clone(), Arc::new(rows)))))
    }

    /// `UPDATE t [AS x] SET a = e, … FROM s, … [WHERE cond] [RETURNING …]`,
    /// which DataFusion does not plan: its rows are the query
    /// `SELECT t.object_id, e AS a, … FROM t [AS x], s, … [WHERE cond]`, planned
    /// as any SELECT (the values may read the joined rows), under the same
    /// `LogicalPlan::Dml` an UPDATE without FROM gets. A row the join yields
    /// several times is updated once ([`update_patches`]).
    async fn plan_update_from(
        &self,
        update: &ast::Update,
        assigned: &[String],
        target_alias: Option<String>,
        returning: Option<Vec<ast::SelectItem>>,
    ) -> Result<LogicalPlan> {
        let TableFactor::Table { name, .. } = &update.table.relation else {
            return Err(Error::internal("UPDATE … FROM names a table"));
        };
        let table = last_ident(name);
        let shown = match &target_alias {
            Some(alias) => ast::Ident::with_quote('"', alias.as_str()).to_string(),
            None => name.to_string(),
        };
        let from = match update.from.as_ref() {
            Some(ast::UpdateTableFromKind::BeforeSet(tables) | ast::UpdateTableFromKind::AfterSet(tables)) => tables,
            None => return Err(Error::internal("UPDATE … FROM has a FROM")),
        };
        let mut select = vec![format!("{shown}.{OBJECT_ID}")];
        for (a, column) in update.assignments.iter().zip(assigned) {
            select.push(format!("{} AS {}", crate::render::sql_text(&a.value), ast::Ident::with_quote('"', column.as_str())));
        }
        let tables: Vec<String> = std::iter::once(&update.table).chain(from.iter()).map(crate::render::sql_text).collect();
        let mut sql = format!("SELECT {} FROM {}", select.join(", "), tables.join(", "));
        if let Some(selection) = &update.selection {
            sql.push_str(&format!(" WHERE {}", crate::render::sql_text(selection)));
        }
        let mut query = datafusion::sql::sqlparser::parser::Parser::new(&PostgreSqlDialect {})
            .try_with_sql(&sql)
            .and_then(|mut p| p.parse_statement())
            .map_err(|e| Error::with_source(crate::kind_of(&e), format!("UPDATE … FROM: {e}"), e))?;
        self.shape_statement(&mut query);
        let rows = self.session().state().statement_to_plan(DfStatement::Statement(Box::new(query))).await?;
        let table_ref = datafusion::common::TableReference::bare(table.as_str());
        if let Some(returning) = returning {
            let qualifier = target_alias.map_or_else(|| table_ref.clone(), datafusion::common::TableReference::bare);
            return self.plan_changed_rows(&table_ref, &qualifier, false, rows, &returning);
        }
        let target = datafusion::datasource::provider_as_source(self.session().table_provider(table_ref.clone()).await?);
        Ok(LogicalPlan::Dml(DmlStatement::new(table_ref, target, WriteOp::Update, Arc::new(rows))))
    }

    /// Run the change `UPDATE/DELETE … RETURNING` planned (`batch`: object_id,
    /// then an UPDATE's new values) and answer the rows, in the table's
    /// columns: as the UPDATE left them, or as they were before the DELETE.
    pub(crate) async fn change_rows(&self, entity: &str, delete: bool, batch: RecordBatch) -> Result<RecordBatch> {
        let rt = self.runtime(entity)?;
        let ids = crate::table::first_column_ids(std::slice::from_ref(&batch));
        if delete {
            let rows = self.rows_by_id(&rt, &ids).await?;
            self.delete_many(&rt.def.entity_id, &ids).await?;
            return Ok(rows);
        }
        let schema = batch.schema();
        self.apply_update(&rt, &schema, std::slice::from_ref(&batch)).await?;
        self.rows_by_id(&rt, &ids).await
    }

    /// The rows of `ids` that exist, in the entity table's columns.
    async fn rows_by_id(&self, rt: &super::EntityRuntime, ids: &[String]) -> Result<RecordBatch> {
        let schema = crate::table::table_schema(&rt.def);
        if ids.is_empty() {
            return Ok(RecordBatch::new_empty(schema));
        }
        let listed = ids.iter().map(|id| datafusion::logical_expr::lit(id.clone())).collect();
        let batches = self
            .session()
            .table(rt.def.table_name())
            .await?
            .filter(datafusion::logical_expr::ident(OBJECT_ID).in_list(listed, false))?
            .collect()
            .await?;
        datafusion::arrow::compute::concat_batches(&schema, &batches)
            .map_err(|e| Error::with_source(crate::ErrorKind::Internal, format!("rows of {}: {e}", rt.def.entity_id), e))
    }

    /// Run an UPDATE or DELETE planned by [`Workspace::plan_dml`], or an
    /// INSERT … ON CONFLICT planned by [`Workspace::plan_insert`] (its
    /// parameters bound): select the rows, then patch or delete them through
    /// the write path. Returns the number of rows touched.
    pub async fn execute_dml(&self, plan: LogicalPlan) -> Result<u64> {
        let LogicalPlan::Dml(dml) = plan else {
            return Err(Error::internal("execute_dml takes the plan of an UPDATE or DELETE"));
        };
        let rt = self.runtime(dml.table_name.table())?;
        let schema = dml.input.schema().clone();
        let input = Arc::unwrap_or_clone(dml.input);
        let versions = self.write_versions();
        let mut batches = self.session().execute_logical_plan(input.clone()).await?.collect().await?;
        let ids = || {
            batches.iter().flat_map(|b| {
                let col = datafusion::arrow::array::AsArray::as_string::<i32>(b.column(0));
                (0..b.num_rows()).filter_map(move |r| col.is_valid(r).then(|| col.value(r).to_string()))
            })
        };
        match dml.op {
            // INSERT … ON CONFLICT (Workspace::plan_insert): its input wrote the rows.
            WriteOp::Insert(_) => Ok(batches.iter().map(|b| b.num_rows() as u64).sum()),
            WriteOp::Delete => {
                let ids: Vec<String> = ids().collect();
                let existed = self.delete_many(&rt.def.entity_id, &ids).await?;
                Ok(existed.iter().filter(|e| **e).count() as u64)
            }
            WriteOp::Update => {
                // No lost updates: the new values are computed again under the
                // rows' locks when another write to them finished since they
                // were read (READ COMMITTED's re-check: a row that no longer
                // matches the WHERE is left alone).
                let mut ids = crate::table::first_column_ids(&batches);
                ids.sort_unstable();
                ids.dedup();
                let _locks = self.lock_ids(&ids).await?;
                if self.written_since(&versions, &ids) {
                    let listed = ids.iter().map(|id| datafusion::logical_expr::lit(id.clone())).collect();
                    let again = LogicalPlanBuilder::from(input)
                        .filter(datafusion::logical_expr::ident(OBJECT_ID).in_list(listed, false))?
                        .build()?;
                    batches = self.session().execute_logical_plan(again).await?.collect().await?;
                }
                let (patches, ids) = update_patches(&rt, schema.as_arrow(), &batches)?;
                if !patches.is_empty() {
                    self.set_many_locked(&rt, patches, &ids).await?;
                }
                Ok(ids.len() as u64)
            }
            other => Err(Error::internal(format!("execute_dml runs UPDATE and DELETE, not {other}"))),
        }
    }

    /// Patch the rows `batches` name (object_id, then the assigned columns'
    /// new values) through the write path; the number of rows.
    async fn apply_update(
        &self,
        rt: &super::EntityRuntime,
        schema: &datafusion::arrow::datatypes::Schema,
        batches: &[RecordBatch],
    ) -> Result<u64> {
        let (patches, _) = update_patches(rt, schema, batches)?;
        let n = patches.len() as u64;
        if n > 0 {
            self.set_many(&rt.def.entity_id, patches).await?;
        }
        Ok(n)
    }

    /// `CREATE TABLE`: registers an entity (see `docs/sql.md` for the type
    /// mapping and the `WITH (placement = …)` option).
    pub async fn create_table(&self, create: &ast::CreateTable) -> Result<()> {
        // The entity id is the table name as written (it must follow the id rules).
        let entity_id = last_ident(&create.name);
        let mut def = EntityDef::new(&entity_id);
        // A SQL table's rows need neither an id nor a name, as in Postgres.
        def.id_source = IdSource::NameOrGenerated;
        let mut primary_key: Vec<String> = Vec::new();
        let mut declare_key = |fields: Vec<String>| {
            if !primary_key.is_empty() {
                return Err(Error::definition(format!("CREATE TABLE {entity_id}: multiple primary keys are not allowed")));
            }
            primary_key = fields;
            Ok(())
        };
        let mut references = Vec::new();
        for col in &create.columns {
            let decl = column_field("CREATE TABLE", &entity_id, col)?;
            if decl.primary {
                declare_key(vec![decl.field.name.clone()])?;
            }
            if let Some(fk) = decl.references {
                references.push((vec![decl.field.name.clone()], fk));
            }
            def.fields.push(decl.field);
        }
        for constraint in &create.constraints {
            match constraint {
                TableConstraint::PrimaryKey(pk) => declare_key(index_fields(&entity_id, &pk.columns)?)?,
                TableConstraint::Unique(u) => {
                    let fields = index_fields(&entity_id, &u.columns)?;
                    match fields.as_slice() {
                        [one] => match def.fields.iter_mut().find(|f| &f.name == one) {
                            Some(f) => f.unique = true,
                            None => return Err(Error::unknown_field(format!("UNIQUE names unknown column '{one}'"))),
                        },
                        _ => def.constraints.push(heavenbase_catalog::FieldSet { fields, to: None }),
                    }
                }
                TableConstraint::ForeignKey(fk) => {
                    references.push((fk.columns.iter().map(|c| c.value.clone()).collect(), fk.clone()));
                }
                other => {
                    return Err(Error::not_supported(format!(
                        "CREATE TABLE {entity_id}: constraint {other} is not supported (PRIMARY KEY, UNIQUE and FOREIGN KEY are)"
                    )));
                }
            }
        }
        if !primary_key.is_empty() {
            def.id_source = IdSource::Key(primary_key);
        }
        for (columns, fk) in references {
            let key = self.declare_foreign_key(&def, columns, &fk)?;
            def.foreign_keys.push(key);
        }
        postgres_shape(&mut def);
        if let CreateTableOptions::With(options) = &create.table_options {
            for o in options {
                match o {
                    SqlOption::KeyValue { key, value } if key.value.eq_ignore_ascii_case("search") => {
                        let text = literal_json(value)
                            .and_then(|v| v.as_str().map(String::from))
                            .ok_or_else(|| Error::definition("search takes a string: 'column, column'"))?;
                        for name in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                            let f = def.fields.iter_mut().find(|f| f.name == name).ok_or_else(|| {
                                Error::unknown_field(format!("CREATE TABLE {entity_id}: search names unknown column '{name}'"))
                            })?;
                            f.search = Some(true);
                        }
                    }
                    SqlOption::KeyValue { key, value } if key.value.eq_ignore_ascii_case("placement") => {
                        let text = literal_json(value)
                            .and_then(|v| v.as_str().map(String::from))
                            .ok_or_else(|| Error::definition("placement takes a string: 'field:backend, field:backend'"))?;
                        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                            let (field, backend) = part
                                .split_once(':')
                                .ok_or_else(|| Error::definition(format!("placement entry '{part}' is not field:backend")))?;
                            let f = def.fields.iter_mut().find(|f| f.name == field.trim()).ok_or_else(|| {
                                Error::unknown_field(format!("placement names unknown column '{}'", field.trim()))
                            })?;
                            f.stores.push(heavenbase_catalog::StoreSpec {
                                to: backend.trim().into(),
                                strategy: None,
                                optional: false,
                            });
                        }
                    }
                    other => {
                        return Err(Error::not_supported(format!("CREATE TABLE {entity_id}: option {other} is not supported")));
                    }
                }
            }
        }
        if create.if_not_exists && self.runtime(&entity_id).is_ok() {
            return Ok(());
        }
        self.register(def, create.or_replace).await
    }

    /// `CREATE TABLE t [(a, b, …)] AS query`: a table with the query's
    /// columns (named as the query names them, or by the list where the
    /// parser gives one; typed from their Arrow types, all nullable), holding
    /// its rows. The rows are written
    /// as one batch through the write path after the table is registered; if
    /// the write fails the table is dropped again, so the statement leaves
    /// nothing behind. Answers the number of rows (`SELECT n`, as Postgres).
    /// An `object_id` or `name` column of the query becomes the table's
    /// built-in one (its rows keep their ids); without them the table has the
    /// Postgres shape of `CREATE TABLE`.
    pub(super) async fn create_table_as(&self, create: &ast::CreateTable) -> Result<u64> {
        let entity_id = last_ident(&create.name);
        let query = create.query.as_ref().ok_or_else(|| Error::internal("CREATE TABLE … AS has a query"))?;
        if self.runtime(&entity_id).is_ok() {
            if create.if_not_exists {
                return Ok(0);
            }
            return Err(Error::new(crate::ErrorKind::AlreadyExists, format!("relation \"{entity_id}\" already exists")));
        }
        let mut statement = Statement::Query(query.clone());
        self.shape_statement(&mut statement);
        crate::colnames::name_columns_as_postgres(&mut statement);
        crate::uuids::casts_to_functions(&mut statement);
        let plan = self.session().state().statement_to_plan(DfStatement::Statement(Box::new(statement))).await?;
        let plan = crate::colnames::restore_repeated_names(plan)?;
        let schema = Arc::new(plan.schema().as_arrow().clone());
        let names: Vec<String> = if create.columns.is_empty() {
            schema.fields().iter().map(|f| f.name().clone()).collect()
        } else if create.columns.len() > schema.fields().len() {
            return Err(Error::definition(format!(
                "CREATE TABLE {entity_id} AS: {} column names given for a query of {} columns",
                create.columns.len(),
                schema.fields().len()
            )));
        } else {
            // Postgres: a shorter list names the first columns only.
            let mut names: Vec<String> = create.columns.iter().map(|c| c.name.value.clone()).collect();
            names.extend(schema.fields().iter().skip(names.len()).map(|f| f.name().clone()));
            names
        };
        let mut def = EntityDef::new(&entity_id);
        def.id_source = IdSource::NameOrGenerated;
        for (name, field) in names.iter().zip(schema.fields()) {
            if def.get(name).is_some() {
                return Err(Error::new(
                    crate::ErrorKind::DuplicateColumn,
                    format!("CREATE TABLE {entity_id} AS: column \"{name}\" specified more than once"),
                ));
            }
            let f = match name.as_str() {
                OBJECT_ID => FieldDef::builtin_object_id(),
                heavenbase_catalog::NAME => FieldDef::builtin_name(),
                _ => FieldDef::new(name, LogicalType::from_arrow(field.data_type())),
            };
            def.fields.push(f);
        }
        postgres_shape(&mut def);
        self.register(def, false).await?;
        let written: Result<u64> = async {
            let batches = self.session().execute_logical_plan(plan).await?.collect().await?;
            let renamed = Arc::new(Schema::new(
                names.iter().zip(schema.fields()).map(|(n, f)| f.as_ref().clone().with_name(n)).collect::<Vec<_>>(),
            ));
            let batch = datafusion::arrow::compute::concat_batches(&schema, &batches)
                .and_then(|b| b.with_schema(renamed))
                .map_err(|e| Error::with_source(crate::ErrorKind::Internal, format!("rows of {entity_id}: {e}"), e))?;
            let n = batch.num_rows() as u64;
            if n > 0 {
                self.write_batch(&entity_id, batch, crate::WriteMode::Insert).await?;
            }
            Ok(n)
        }
        .await;
        if written.is_err() {
            let _ = self.drop_entity(&entity_id).await;
        }
        written
    }
}

/// What a table made by SQL is beyond its declared columns. The built-in
/// columns it does not declare are system columns: its `SELECT *` is its
/// declared columns, as in Postgres. Its text is not indexed for search
/// unless `WITH (search = 'a, b')` names it: Postgres users expect `text` to
/// be a column, not an index to maintain.
fn postgres_shape(def: &mut EntityDef) {
    if def.get(heavenbase_catalog::NAME).is_none() {
        def.fields.insert(0, FieldDef::builtin_name().system_column());
    }
    if def.get(OBJECT_ID).is_none() {
        def.fields.insert(0, FieldDef::builtin_object_id().system_column());
    }
    for f in def.fields.iter_mut().filter(|f| f.ty.is_text() && !f.is_builtin()) {
        f.search = Some(false);
    }
}

/// A column definition (`CREATE TABLE`, `ALTER TABLE … ADD COLUMN`): its field,
/// whether it declares itself the primary key, and the table it references.
pub(super) struct ColumnDecl {
    pub field: FieldDef,
    pub primary: bool,
    pub references: Option<ast::ForeignKeyConstraint>,
}

pub(super) fn column_field(statement: &str, entity_id: &str, col: &ast::ColumnDef) -> Result<ColumnDecl> {
    let mut primary = false;
    let mut references = None;
    let name = col.name.value.clone();
    let (ty, serial) = match serial_type(&col.data_type) {
        Some(ty) => (ty, true),
        None => (
            logical_type_of(&col.data_type)
                .map_err(|e| Error::not_supported(format!("{statement} {entity_id}: column {name}: {e}")))?,
            false,
        ),
    };
    let mut field = FieldDef::new(&name, ty);
    if serial {
        // serial is an integer whose default is the next counter value.
        field.identity = Some(Identity::ByDefault);
        field.required = true;
    }
    for opt in &col.options {
        match &opt.option {
            ColumnOption::NotNull => field.required = true,
            ColumnOption::Null => {}
            ColumnOption::Default(e) => set_default(&mut field, e).ok_or_else(|| {
                Error::not_supported(format!(
                    "{statement} {entity_id}: column {name}: DEFAULT must be a literal, now() / CURRENT_TIMESTAMP or \
                     CURRENT_DATE, got {e}"
                ))
            })?,
            ColumnOption::Unique(_) => field.unique = true,
            ColumnOption::PrimaryKey(_) if name == OBJECT_ID => {}
            ColumnOption::PrimaryKey(_) => primary = true,
            ColumnOption::Generated { generated_as, generation_expr: None, .. } => {
                field.identity = Some(match generated_as {
                    GeneratedAs::Always => Identity::Always,
                    GeneratedAs::ByDefault => Identity::ByDefault,
                    GeneratedAs::ExpStored => {
                        return Err(Error::not_supported(format!(
                            "{statement} {entity_id}: column {name}: generated (computed) columns are not supported"
                        )));
                    }
                });
                field.required = true;
            }
            ColumnOption::Comment(c) => field.desc = c.clone(),
            ColumnOption::ForeignKey(fk) => references = Some(fk.clone()),
            other => {
                return Err(Error::not_supported(format!(
                    "{statement} {entity_id}: column {name}: option {other} is not supported"
                )));
            }
        }
    }
    Ok(ColumnDecl { field, primary, references })
}

/// A new value as the write path should receive it. DataFusion casts every
/// assigned value to its column's Arrow type and types a `$n` after the column;
/// a literal or a parameter is instead passed as written, so it is coerced by
/// the workspace's own rules (the same as `upsert`: text to vectors, JSON,
/// timestamps) and a parameter is described to clients as untyped, as before.
/// Computed values (`v = v + 1`) keep DataFusion's cast.
fn written_as_is(value: Expr) -> Expr {
    let inner = match value {
        Expr::Cast(Cast { expr, .. }) if matches!(*expr, Expr::Literal(..) | Expr::Placeholder(_)) => *expr,
        other => other,
    };
    match inner {
        Expr::Placeholder(p) => Expr::Placeholder(Placeholder::new_with_field(p.id, None)),
        other => other,
    }
}

/// An UPDATE's patches from the rows its plan selected (object_id, then the
/// assigned columns' new values), and their object_ids.
fn update_patches(
    rt: &super::EntityRuntime,
    schema: &datafusion::arrow::datatypes::Schema,
    batches: &[RecordBatch],
) -> Result<(Vec<Row>, Vec<String>)> {
    let mut targets = Vec::new();
    for field in schema.fields().iter().skip(1) {
        let f = rt.def.get(field.name()).ok_or_else(|| {
            Error::unknown_field(format!("Unknown column '{}' in UPDATE of '{}'", field.name(), rt.def.entity_id))
        })?;
        targets.push(f.clone());
    }
    let mut patches: Vec<Row> = Vec::new();
    let mut ids = Vec::new();
    // UPDATE … FROM can join a row to several source rows: as in Postgres,
    // the row is updated once, from one of them (here the first).
    let mut seen = std::collections::HashSet::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let id = array_value(b.column(0).as_ref(), r, &LogicalType::identifier());
            let Some(text) = id.as_str() else { continue };
            if !seen.insert(text.to_string()) {
                continue;
            }
            ids.push(text.to_string());
            let mut row = Row::new();
            row.insert(OBJECT_ID.into(), id);
            for (i, f) in targets.iter().enumerate() {
                row.insert(f.name.clone(), array_value(b.column(i + 1).as_ref(), r, &f.ty));
            }
            patches.push(row);
        }
    }
    Ok((patches, ids))
}

/// `DELETE FROM t USING a, b WHERE cond` as the statement DataFusion plans:
/// `DELETE FROM t WHERE EXISTS (SELECT 1 FROM a, b WHERE cond)`. Both delete
/// the rows of `t` for which some row of the USING tables meets `cond` (`t`'s
/// columns are the subquery's outer references), each once.
fn using_as_exists(delete: &mut ast::Delete) -> Result<()> {
    let Some(using) = delete.using.take() else { return Ok(()) };
    let from: Vec<String> = using.iter().map(crate::render::sql_text).collect();
    let mut sql = format!("SELECT 1 FROM {}", from.join(", "));
    if let Some(selection) = delete.selection.take() {
        sql.push_str(&format!(" WHERE {}", crate::render::sql_text(&selection)));
    }
    let subquery = datafusion::sql::sqlparser::parser::Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&sql)
        .and_then(|mut p| p.parse_query())
        .map_err(|e| Error::with_source(crate::kind_of(&e), format!("DELETE … USING: {e}"), e))?;
    delete.selection = Some(SqlExpr::Exists { subquery, negated: false });
    Ok(())
}

fn count_batch(n: u64) -> Vec<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![Field::new("count", DataType::UInt64, false)]));
    let col: ArrayRef = Arc::new(UInt64Array::from(vec![n]));
    vec![RecordBatch::try_new(schema, vec![col]).expect("count batch")]
}

pub(super) fn last_ident(name: &ObjectName) -> String {
    name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.clone()).unwrap_or_default()
}

fn single_table(t: &TableWithJoins, stmt: &str) -> Result<String> {
    match &t.relation {
        TableFactor::Table { name, alias: None, .. } if t.joins.is_empty() => Ok(last_ident(name)),
        _ => Err(Error::not_supported(format!("{stmt} works on one entity table, without joins or aliases"))),
    }
}

/// The columns of a table-level PRIMARY KEY or UNIQUE constraint.
fn index_fields(entity_id: &str, columns: &[ast::IndexColumn]) -> Result<Vec<String>> {
    columns
        .iter()
        .map(|c| match &c.column.expr {
            SqlExpr::Identifier(id) => Ok(id.value.clone()),
            other => Err(Error::not_supported(format!("CREATE TABLE {entity_id}: a key is columns, not expressions ({other})"))),
        })
        .collect()
}

/// `serial` and its spellings: an integer column with an identity counter.
fn serial_type(t: &SqlType) -> Option<LogicalType> {
    let SqlType::Custom(name, args) = t else { return None };
    let n = last_ident(name).to_lowercase();
    (args.is_empty() && matches!(n.as_str(), "serial" | "bigserial" | "smallserial" | "serial2" | "serial4" | "serial8"))
        .then_some(LogicalType::Integer)
}

/// A column's `DEFAULT e` on `field`: a literal (a cast literal too, as
/// pg_dump writes `''::character varying`), or a computed default: `now()`,
/// `CURRENT_TIMESTAMP`, `LOCALTIMESTAMP`, `transaction_timestamp()`,
/// `statement_timestamp()`, `clock_timestamp()` (all the statement's time
/// here), `CURRENT_DATE` and `gen_random_uuid()`. None for any other expression.
pub(super) fn set_default(field: &mut FieldDef, e: &SqlExpr) -> Option<()> {
    match e {
        SqlExpr::Cast { expr, .. } | SqlExpr::Nested(expr) => set_default(field, expr),
        SqlExpr::Function(f) => {
            let computed = match last_ident(&f.name).to_lowercase().as_str() {
                "now"
                | "current_timestamp"
                | "localtimestamp"
                | "transaction_timestamp"
                | "statement_timestamp"
                | "clock_timestamp" => DefaultFn::Now,
                "current_date" => DefaultFn::CurrentDate,
                "gen_random_uuid" | "uuid_generate_v4" => DefaultFn::RandomUuid,
                _ => return None,
            };
            field.default = None;
            field.default_fn = Some(computed);
            Some(())
        }
        other => {
            let literal = literal_json(other)?;
            // An array's default in Postgres' array text (`DEFAULT '{a,b}'`,
            // as pg_dump writes one) is the list it stands for.
            let list = match (&literal, &field.ty) {
                (Json::String(text), LogicalType::Array { .. }) => heavenbase_catalog::types::pg_array_json(text, &field.ty),
                _ => None,
            };
            field.default = Some(list.unwrap_or(literal));
            field.default_fn = None;
            Some(())
        }
    }
}

pub(super) fn literal_json(e: &SqlExpr) -> Option<Json> {
    match e {
        SqlExpr::Cast { expr, .. } | SqlExpr::Nested(expr) => literal_json(expr),
        SqlExpr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => serde_json::from_str(n).ok(),
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => Some(json!(s)),
            ast::Value::Boolean(b) => Some(json!(b)),
            ast::Value::Null => Some(Json::Null),
            _ => None,
        },
        SqlExpr::UnaryOp { op: ast::UnaryOperator::Minus, expr } => match literal_json(expr)? {
            Json::Number(n) => serde_json::from_str(&format!("-{n}")).ok(),
            _ => None,
        },
        _ => None,
    }
}

/// SQL types to logical types (documented in docs/sql.md).
pub(super) fn logical_type_of(t: &SqlType) -> std::result::Result<LogicalType, String> {
    use ast::CharacterLength;
    let text_of = |len: Option<u64>| match len {
        None => LogicalType::short_text(),
        Some(n) if n <= 255 => LogicalType::ShortText { max_chars: n as usize },
        Some(n) if n <= 4095 => LogicalType::MediumText { max_chars: n as usize },
        Some(n) => LogicalType::LongText { max_chars: n as usize },
    };
    let len = |l: &Option<CharacterLength>| match l {
        Some(CharacterLength::IntegerLength { length, .. }) => Some(*length),
        _ => None,
    };
    Ok(match t {
        SqlType::Varchar(l) | SqlType::CharacterVarying(l) | SqlType::Char(l) | SqlType::Character(l) => text_of(len(l)),
        SqlType::Text | SqlType::String(_) => LogicalType::long_text(),
        SqlType::Int(_)
        | SqlType::Integer(_)
        | SqlType::BigInt(_)
        | SqlType::SmallInt(_)
        | SqlType::TinyInt(_)
        | SqlType::Int2(_)
        | SqlType::Int4(_)
        | SqlType::Int8(_)
        | SqlType::Int64 => LogicalType::Integer,
        SqlType::Real
        | SqlType::Float(_)
        | SqlType::Float4
        | SqlType::Float8
        | SqlType::Float64
        | SqlType::Double(_)
        | SqlType::DoublePrecision
        | SqlType::Numeric(_)
        | SqlType::Decimal(_) => LogicalType::Float,
        SqlType::Boolean | SqlType::Bool => LogicalType::Boolean,
        SqlType::Timestamp(_, _) | SqlType::TimestampNtz(_) | SqlType::Datetime(_) => LogicalType::Timestamp,
        SqlType::Date => LogicalType::Date,
        SqlType::Interval { .. } => LogicalType::Duration,
        SqlType::JSON | SqlType::JSONB => LogicalType::Json,
        SqlType::Uuid => LogicalType::Uuid,
        SqlType::Bytea | SqlType::Blob(_) | SqlType::Binary(_) | SqlType::Varbinary(_) => LogicalType::Artifact,
        SqlType::Array(ast::ArrayElemTypeDef::SquareBracket(inner, _) | ast::ArrayElemTypeDef::AngleBracket(inner)) => {
            LogicalType::array_of(logical_type_of(inner)?)
        }
        SqlType::Custom(name, args) => {
            let n = last_ident(name).to_lowercase();
            match n.as_str() {
                "vector" => {
                    let dim = args
                        .first()
                        .and_then(|a| a.parse::<usize>().ok())
                        .filter(|d| *d > 0)
                        .ok_or("VECTOR needs a dimension: VECTOR(3)")?;
                    LogicalType::vector(dim)
                }
                other => LogicalType::parse_str(other).map_err(|e| e.to_string())?,
            }
        }
        other => return Err(format!("SQL type {other} has no logical type")),
    })
}
