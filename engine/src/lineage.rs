//! Which entity field a plan's column reads: for the output columns clients
//! are told the types of (a Json field is sent as `json`, a Uuid field as
//! `uuid`, where Arrow carries both as text) and for the columns filters
//! compare (crate::uuids). A column counts when its qualifier names an
//! entity table the plan scans (directly or under the table's alias) or the
//! entity an `INSERT`/`UPDATE`/`DELETE … RETURNING` writes; computed columns
//! and columns of derived tables read no field.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::LogicalPlan;
use heavenbase_catalog::LogicalType;

use crate::EntityTable;
use crate::workspace::EntityRuntime;

/// The entities `plan` reads or writes, by the name its columns are
/// qualified with.
pub(crate) fn entities_by_qualifier(plan: &LogicalPlan) -> HashMap<String, Arc<EntityRuntime>> {
    let mut found = HashMap::new();
    let _ = plan.apply(|node| {
        let (name, scan) = match node {
            LogicalPlan::TableScan(scan) => (scan.table_name.table(), scan),
            LogicalPlan::SubqueryAlias(alias) => match alias.input.as_ref() {
                LogicalPlan::TableScan(scan) => (alias.alias.table(), scan),
                _ => return Ok(TreeNodeRecursion::Continue),
            },
            LogicalPlan::Extension(extension) => {
                if let Some((name, rt)) = crate::returning::written_entity(extension.node.as_ref()) {
                    found.insert(name, rt);
                }
                return Ok(TreeNodeRecursion::Continue);
            }
            _ => return Ok(TreeNodeRecursion::Continue),
        };
        if let Ok(table) = datafusion::datasource::source_as_provider(&scan.source)
            && let Some(table) = (table.as_ref() as &dyn std::any::Any).downcast_ref::<EntityTable>()
        {
            found.insert(name.to_string(), table.runtime().clone());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// For each output column of `plan`, `of` of the entity field's logical type
/// it reads, where it reads one, or of Uuid where a uuid function computed
/// it (`x::uuid`, `gen_random_uuid()`: crate::uuids marks their fields); `of`
/// picks what the caller needs, so no type is copied.
pub fn output_field_types<T>(plan: &LogicalPlan, of: impl Fn(&LogicalType) -> Option<T>) -> Vec<Option<T>> {
    let entities = entities_by_qualifier(plan);
    plan.schema()
        .iter()
        .map(|(qualifier, field)| {
            if crate::uuids::is_uuid_valued(field) {
                return of(&LogicalType::Uuid);
            }
            of(&entities.get(qualifier?.table())?.def.get(field.name())?.ty)
        })
        .collect()
}
