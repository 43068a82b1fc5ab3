//! audit() and repair() (docs/reference.md §5.3), plus a cross-backend check: an object
//! present in one field group and missing in another is the trace of a write cut
//! off between backends.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use heavenbase_catalog::audit::{CatalogAudit, diff_catalog};
use heavenbase_catalog::system::SYS_CATALOG;
use heavenbase_catalog::{NAME, OBJECT_ID, Row, catalog_row_id};
use serde_json::{Value as Json, json};

use super::Workspace;
use super::write::{expected_card, group_ids, projects_name};
use crate::Result;

/// An object whose field groups disagree.
#[derive(Debug, Clone, PartialEq)]
pub struct PartialObject {
    pub entity: String,
    pub object_id: String,
    pub present_in: Vec<String>,
    pub missing_in: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Audit {
    pub catalog: CatalogAudit,
    pub partial: Vec<PartialObject>,
    /// Write-journal entries replayed when the workspace was opened: writes a
    /// crash had cut off between backends, completed (docs/transactions.md).
    pub journal_replayed: usize,
}

impl Audit {
    pub fn ok(&self) -> bool {
        self.catalog.ok() && self.partial.is_empty()
    }

    pub fn to_json(&self) -> Json {
        json!({
            "ok": self.ok(),
            "journal": { "replayed": self.journal_replayed },
            "catalog": self.catalog.to_json(),
            "groups": {
                "ok": self.partial.is_empty(),
                "partial": self.partial.iter().map(|p| json!({
                    "entity": p.entity, "object_id": p.object_id, "present_in": p.present_in, "missing_in": p.missing_in,
                })).collect::<Vec<_>>(),
            },
        })
    }
}

impl Workspace {
    /// Compare every stored row with its Catalog card, and every field group of an
    /// entity with its others.
    pub async fn audit(&self) -> Result<Audit> {
        self.audit_with_progress(&mut |_, _| {}).await
    }

    /// [`Workspace::audit`], calling `read(table, rows)` after each table it
    /// has read whole (the Catalog first, then every entity): a command line
    /// shows progress from it.
    pub async fn audit_with_progress(&self, read: &mut (dyn FnMut(&str, usize) + Send)) -> Result<Audit> {
        let actual: BTreeMap<String, Row> = self
            .scan_rows(SYS_CATALOG)
            .await?
            .into_iter()
            .map(|r| (r[OBJECT_ID].as_str().unwrap_or_default().to_string(), r))
            .collect();
        read(SYS_CATALOG, actual.len());
        let mut expected = BTreeMap::new();
        let mut partial = Vec::new();
        let entities = self.entities();
        let now = chrono::Utc::now().timestamp_millis();
        for e in &entities {
            let rt = self.runtime(e)?;
            let rows = self.scan_rows(e).await?;
            let read_rows = rows.len();
            for row in rows {
                let id = row[OBJECT_ID].as_str().unwrap_or_default().to_string();
                let card_id = catalog_row_id(self.id(), rt.def.storage_name(), &id);
                let name = if projects_name(&rt.def) { row.get(NAME).cloned().unwrap_or(Json::Null) } else { Json::Null };
                let mut card = expected_card(self.id(), e, &id, &card_id, name, now);
                if let Some(have) = actual.get(&card_id) {
                    for keep in ["created_at", "updated_at"] {
                        if let Some(v) = have.get(keep) {
                            card.insert(keep.into(), v.clone());
                        }
                    }
                }
                expected.insert(card_id, card);
            }
            if rt.groups.len() > 1 {
                let per_group = group_ids(&rt).await?;
                let all: std::collections::BTreeSet<&String> = per_group.iter().flatten().collect();
                for id in all {
                    let (present, missing): (Vec<_>, Vec<_>) =
                        rt.groups.iter().zip(&per_group).partition(|(_, ids)| ids.contains(id));
                    if !missing.is_empty() {
                        partial.push(PartialObject {
                            entity: e.clone(),
                            object_id: id.clone(),
                            present_in: present.iter().map(|((b, _), _)| b.info().name.clone()).collect(),
                            missing_in: missing.iter().map(|((b, _), _)| b.info().name.clone()).collect(),
                        });
                    }
                }
            }
            read(e, read_rows);
        }
        Ok(Audit {
            catalog: diff_catalog(&expected, &actual, entities.len()),
            partial,
            journal_replayed: self.inner.journal_replayed.load(std::sync::atomic::Ordering::Acquire),
        })
    }

    /// Write missing cards, rewrite mismatched ones, delete dangling ones; make
    /// every field group agree with the primary group. `dry_run` writes nothing.
    pub async fn repair(&self, dry_run: bool) -> Result<Json> {
        self.repair_with_progress(dry_run, &mut |_, _| {}).await
    }

    /// [`Workspace::repair`], reporting its audit's reading as
    /// [`Workspace::audit_with_progress`] does (the reading is most of a
    /// repair's time; the writes that follow touch only what it found).
    pub async fn repair_with_progress(&self, dry_run: bool, read: &mut (dyn FnMut(&str, usize) + Send)) -> Result<Json> {
        let before = self.audit_with_progress(read).await?;
        let catalog = self.runtime(SYS_CATALOG)?;
        if !dry_run {
            // Missing and mismatched cards are rewritten the way a write writes them.
            let mut by_entity: BTreeMap<String, (Vec<String>, Vec<Option<String>>)> = BTreeMap::new();
            let expected = before.catalog.missing.iter().chain(before.catalog.mismatched.iter().map(|(_, e, _)| e));
            for card in expected {
                let entity = card["target_entity"].as_str().unwrap_or_default().to_string();
                let (ids, names) = by_entity.entry(entity).or_default();
                ids.push(card["target_id"].as_str().unwrap_or_default().to_string());
                names.push(card.get(NAME).and_then(|n| n.as_str()).map(String::from));
            }
            for (entity, (ids, names)) in by_entity {
                let rt = self.runtime(&entity)?;
                let names: ArrayRef = Arc::new(StringArray::from(names));
                self.write_catalog_cards(&rt, &ids, Some(&names)).await?;
            }
            let dangling: Vec<String> =
                before.catalog.dangling.iter().map(|r| r[OBJECT_ID].as_str().unwrap_or_default().to_string()).collect();
            for (backend, group) in &catalog.groups {
                backend.delete(group, &dangling).await?;
            }
            for p in &before.partial {
                let rt = self.runtime(&p.entity)?;
                let in_primary = p.present_in.contains(&rt.primary().0.info().name);
                for (backend, group) in &rt.groups {
                    let name = &backend.info().name;
                    if !in_primary && p.present_in.contains(name) {
                        // An orphan: no primary row, so the object does not exist.
                        backend.delete(group, std::slice::from_ref(&p.object_id)).await?;
                    } else if in_primary && p.missing_in.contains(name) {
                        let mut arrays: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec![p.object_id.clone()]))];
                        // A group of copies (a search index: every field is read
                        // from elsewhere) is rebuilt from the row; a group whose
                        // part was lost is stored as NULLs, as it reads.
                        let copies = group.columns.iter().all(|c| rt.plan.home_of(&c.name) != Some(name.as_str()));
                        let row = if copies { self.get(&p.entity, &p.object_id).await? } else { None };
                        for c in &group.columns {
                            let mut b = heavenbase_catalog::ColumnBuilder::new(&c.ty, 1);
                            match row.as_ref().and_then(|r| r.get(&c.name)) {
                                Some(v) if b.push(v).is_ok() => {}
                                _ => {
                                    b = heavenbase_catalog::ColumnBuilder::new(&c.ty, 1);
                                    b.push_null();
                                }
                            }
                            arrays.push(b.finish());
                        }
                        let batch = RecordBatch::try_new(group.schema(), arrays)
                            .map_err(|e| crate::Error::with_source(crate::ErrorKind::Internal, e.to_string(), e))?;
                        backend.upsert(group, batch).await?;
                    }
                }
            }
        }
        let after = if dry_run { before.clone() } else { self.audit().await? };
        Ok(json!({
            "ok": after.ok(),
            "catalog": {
                "dry_run": dry_run,
                "missing_written": if dry_run { 0 } else { before.catalog.missing.len() },
                "mismatched_rewritten": if dry_run { 0 } else { before.catalog.mismatched.len() },
                "dangling_deleted": if dry_run { 0 } else { before.catalog.dangling.len() },
                "before": before.catalog.to_json(),
                "after": after.catalog.to_json(),
                "ok": after.catalog.ok(),
            },
            "groups": {
                "dry_run": dry_run,
                "mended": if dry_run { 0 } else { before.partial.len() },
                "before": before.to_json()["groups"].clone(),
                "after": after.to_json()["groups"].clone(),
            },
        }))
    }
}
