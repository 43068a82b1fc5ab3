//! The Catalog audit diff (docs/reference.md §5.3): expected cards rebuilt from the stored
//! rows against the cards actually stored.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use crate::Row;

/// Fields whose disagreement makes a card "mismatched". Timestamps are not
/// compared: the expected card keeps the stored ones.
pub const AUDITED_FIELDS: &[&str] = &["target_id", "target_entity", "ws", "name"];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatalogAudit {
    pub missing: Vec<Row>,
    pub dangling: Vec<Row>,
    /// (stored card, expected card, names of fields that differ)
    pub mismatched: Vec<(Row, Row, Vec<String>)>,
    pub objects: usize,
    pub catalog_rows: usize,
    pub entities: usize,
}

impl CatalogAudit {
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.dangling.is_empty() && self.mismatched.is_empty()
    }

    pub fn to_json(&self) -> Json {
        json!({
            "ok": self.ok(),
            "missing": self.missing.iter().map(|r| json!({"expected": r})).collect::<Vec<_>>(),
            "dangling": self.dangling.iter().map(|r| json!({"catalog": r})).collect::<Vec<_>>(),
            "mismatched": self.mismatched.iter().map(|(c, e, f)| json!({"catalog": c, "expected": e, "fields": f})).collect::<Vec<_>>(),
            "checked": {"objects": self.objects, "catalog_rows": self.catalog_rows, "entities": self.entities},
        })
    }
}

/// Compare expected cards with stored ones, both keyed by card object_id.
pub fn diff_catalog(expected: &BTreeMap<String, Row>, actual: &BTreeMap<String, Row>, entities: usize) -> CatalogAudit {
    let mut audit = CatalogAudit { objects: expected.len(), catalog_rows: actual.len(), entities, ..Default::default() };
    for (id, want) in expected {
        match actual.get(id) {
            None => audit.missing.push(want.clone()),
            Some(have) => {
                let fields: Vec<String> = AUDITED_FIELDS
                    .iter()
                    .filter(|f| normalise(want.get(**f)) != normalise(have.get(**f)))
                    .map(|f| f.to_string())
                    .collect();
                if !fields.is_empty() {
                    audit.mismatched.push((have.clone(), want.clone(), fields));
                }
            }
        }
    }
    for (id, have) in actual {
        if !expected.contains_key(id) {
            audit.dangling.push(have.clone());
        }
    }
    audit
}

/// An absent value and an empty name mean the same on a card.
fn normalise(v: Option<&Json>) -> Json {
    match v {
        None | Some(Json::Null) => Json::String(String::new()),
        Some(v) => v.clone(),
    }
}
