//! Placement plans: which backend holds each field (docs/reference.md §4). Each (entity,
//! backend) pair is a *field group*: one physical table holding `object_id` plus the
//! group's columns. The group holding `name` is the entity's primary group: a row
//! exists where the primary group has it.

use serde_json::{Value as Json, json};

use crate::CatalogError;
use crate::entity::{EntityDef, NAME, OBJECT_ID};
use crate::types::LogicalType;

/// What the planner needs to know of a backend instance.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendInfo {
    pub name: String,
    /// Backend type identifier: `sqlite`, `inmem`, `postgres`, `lance`, ...
    pub kind: String,
    /// Roles and tags: `row`, `sql`, `vector`, `text`, `search`.
    pub tags: Vec<String>,
}

impl BackendInfo {
    pub fn has(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// How a field is kept in its backend (docs/reference.md §4). The serde
/// name is the reference's identifier; [`Strategy::parse`] also takes its
/// class names (`InlineColumn`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// A column in the backend's main row.
    Inline,
    /// A JSON payload column (the Json default).
    Json,
    /// One row per list item in a side table.
    Side,
    /// A keyword reverse-containment index for lists of text.
    SparseGram,
    /// A vector-search index: a `near` target.
    Vector,
    /// A full-text index on a search backend.
    Inverted,
    /// A HyperG field stored as edges.
    Graph,
}

impl Strategy {
    pub const ALL: [Strategy; 7] = [
        Strategy::Inline,
        Strategy::Json,
        Strategy::Side,
        Strategy::SparseGram,
        Strategy::Vector,
        Strategy::Inverted,
        Strategy::Graph,
    ];

    /// The reference's identifier.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Inline => "inline",
            Strategy::Json => "json",
            Strategy::Side => "side",
            Strategy::SparseGram => "sparse-gram",
            Strategy::Vector => "vector",
            Strategy::Inverted => "inverted",
            Strategy::Graph => "graph",
        }
    }

    /// The reference's class name.
    pub fn class_name(self) -> &'static str {
        match self {
            Strategy::Inline => "InlineColumn",
            Strategy::Json => "JsonField",
            Strategy::Side => "SideTable",
            Strategy::SparseGram => "SparseGramIndex",
            Strategy::Vector => "VectorIndex",
            Strategy::Inverted => "InvertedIndex",
            Strategy::Graph => "GraphEdge",
        }
    }

    /// An identifier or class name; None for anything else.
    pub fn parse(text: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.as_str() == text || s.class_name() == text)
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub field: String,
    pub backend: String,
    pub strategy: Strategy,
    /// Why it is here: `builtin-id`, `builtin-inline`, `builtin-vector`, ..., `field`.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IndexPlan {
    pub fields: Vec<String>,
    pub backend: String,
    pub unique: bool,
}

/// One physical table: `object_id` plus `fields`, in `backend`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldGroup {
    pub backend: String,
    pub table: String,
    /// Group columns in entity declaration order, without object_id.
    pub fields: Vec<String>,
    pub primary: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlacementPlan {
    pub entity_id: String,
    pub bindings: Vec<Binding>,
    pub indexes: Vec<IndexPlan>,
    /// Primary group first.
    pub groups: Vec<FieldGroup>,
}

impl PlacementPlan {
    /// Route every field of `def` over `backends` (registry order). `default_backend`
    /// is `main` when present, else the first backend.
    pub fn plan(def: &EntityDef, backends: &[BackendInfo]) -> Result<PlacementPlan, CatalogError> {
        let default = backends
            .iter()
            .find(|b| b.name == "main")
            .or_else(|| backends.first())
            .ok_or_else(|| CatalogError::Placement("A workspace needs at least one backend".into()))?;
        let mut bindings = Vec::new();
        for f in def.fields.iter().filter(|f| f.name != OBJECT_ID) {
            if f.stores.is_empty() {
                let (backend, strategy, source) = default_route(&f.ty, default, backends);
                bindings.push(Binding { field: f.name.clone(), backend, strategy, source });
                continue;
            }
            let mut placed = false;
            for s in &f.stores {
                match backends.iter().find(|b| b.name == s.to) {
                    Some(b) => {
                        let strategy = s.strategy.unwrap_or_else(|| default_strategy(&f.ty, b));
                        bindings.push(Binding {
                            field: f.name.clone(),
                            backend: b.name.clone(),
                            strategy,
                            source: "field".into(),
                        });
                        placed = true;
                    }
                    None if s.optional => {}
                    None => {
                        return Err(CatalogError::Placement(format!(
                            "Storage for {}.{} targets unknown backend '{}'",
                            def.entity_id, f.name, s.to
                        )));
                    }
                }
            }
            if !placed {
                let (backend, strategy, source) = default_route(&f.ty, default, backends);
                bindings.push(Binding { field: f.name.clone(), backend, strategy, source });
            }
        }
        if let Some(f) = def.fields.iter().find(|f| f.search == Some(true) && !f.ty.is_text()) {
            return Err(CatalogError::Placement(format!(
                "{}.{} is {}; only text fields can be indexed for search",
                def.entity_id,
                f.name,
                f.ty.type_id()
            )));
        }
        // Full-text search: the field stays where it is read from, and is also
        // indexed in the workspace's search backend (in place when that is
        // where it is stored), LongText by default, other text when asked
        // (`FieldDef::search`). System entities are read by id and kind, never
        // searched: their text is not indexed unless asked.
        let system = crate::system::is_system(&def.entity_id);
        for b in bindings.iter_mut().filter(|b| b.strategy == Strategy::Inverted) {
            let f = def.get(&b.field).expect("bound fields exist");
            if f.search == Some(false) || (system && f.search.is_none() && b.source == "builtin-longtext") {
                b.strategy = Strategy::Inline;
            }
        }
        if let Some(search) = search_backend(default, backends) {
            for f in def.fields.iter().filter(|f| f.name != OBJECT_ID) {
                let by_default = !system && matches!(f.ty, LogicalType::LongText { .. }) && f.stores.is_empty();
                let wanted = f.search.unwrap_or(by_default);
                if wanted && f.ty.is_text() {
                    // Stored in the search backend already: indexed there in place.
                    if let Some(b) = bindings.iter_mut().find(|b| b.field == f.name && b.backend == search.name) {
                        b.strategy = Strategy::Inverted;
                    }
                }
                let indexed = bindings.iter().any(|b| b.field == f.name && b.strategy == Strategy::Inverted);
                if wanted && !indexed {
                    let source = if f.search.is_some() { "field-search" } else { "builtin-longtext-search" };
                    bindings.push(Binding {
                        field: f.name.clone(),
                        backend: search.name.clone(),
                        strategy: Strategy::Inverted,
                        source: source.into(),
                    });
                }
            }
        }
        // A field's first binding is where it is read from; every binding is written.
        let primary_backend =
            bindings.iter().find(|b| b.field == NAME).map(|b| b.backend.clone()).unwrap_or(default.name.clone());
        let mut groups: Vec<FieldGroup> = Vec::new();
        for b in &bindings {
            match groups.iter_mut().find(|g| g.backend == b.backend) {
                Some(g) => g.fields.push(b.field.clone()),
                None => groups.push(FieldGroup {
                    backend: b.backend.clone(),
                    table: crate::entity::table_name(def.storage_name()),
                    fields: vec![b.field.clone()],
                    primary: b.backend == primary_backend,
                }),
            }
        }
        groups.sort_by_key(|g| !g.primary);
        let mut all = Vec::with_capacity(bindings.len() + groups.len());
        for g in &groups {
            all.push(Binding {
                field: OBJECT_ID.into(),
                backend: g.backend.clone(),
                strategy: Strategy::Inline,
                source: "builtin-id".into(),
            });
        }
        all.extend(bindings);
        let home = |field: &str| all.iter().find(|b| b.field == field).map(|b| b.backend.clone());
        let mut indexes = Vec::new();
        // `name` is what rows are looked up by (ids derive from it): indexed in
        // user entities as a declared index would be (SQL backends build it;
        // the others have no secondary indexes). System entities are read by
        // id and kind, and their writes follow every user write.
        let indexed_name = !crate::system::is_system(&def.entity_id);
        for f in &def.fields {
            if (f.index || f.unique || (indexed_name && f.name == NAME)) && f.name != OBJECT_ID {
                let backend = home(&f.name).unwrap_or(default.name.clone());
                indexes.push(IndexPlan { fields: vec![f.name.clone()], backend, unique: f.unique });
            }
        }
        for (sets, unique) in [(&def.indexes, false), (&def.constraints, true)] {
            for set in sets.iter() {
                let backends_of: Vec<String> = set.fields.iter().filter_map(|f| home(f)).collect();
                let backend = set.to.clone().unwrap_or_else(|| backends_of.first().cloned().unwrap_or(default.name.clone()));
                if backends_of.iter().any(|b| *b != backend) {
                    return Err(CatalogError::Placement(format!(
                        "{}: the {} on ({}) spans several backends; its fields must live in one",
                        def.entity_id,
                        if unique { "unique constraint" } else { "index" },
                        set.fields.join(", ")
                    )));
                }
                indexes.push(IndexPlan { fields: set.fields.clone(), backend, unique });
            }
        }
        Ok(PlacementPlan { entity_id: def.entity_id.clone(), bindings: all, indexes, groups })
    }

    pub fn primary(&self) -> &FieldGroup {
        &self.groups[0]
    }

    /// The fields indexed for full-text search (an `inverted` binding), in order.
    pub fn search_fields(&self) -> Vec<&str> {
        let mut fields: Vec<&str> = Vec::new();
        for b in self.bindings.iter().filter(|b| b.strategy == Strategy::Inverted) {
            if !fields.contains(&b.field.as_str()) {
                fields.push(&b.field);
            }
        }
        fields
    }

    /// The backend a field is read from (its first binding).
    pub fn home_of(&self, field: &str) -> Option<&str> {
        if field == OBJECT_ID {
            return Some(&self.primary().backend);
        }
        self.bindings.iter().find(|b| b.field == field).map(|b| b.backend.as_str())
    }

    pub fn to_json(&self) -> Json {
        json!({
            "entity_id": self.entity_id,
            "bindings": self.bindings.iter().map(|b| json!({
                "entity_id": self.entity_id, "field_name": b.field, "backend": b.backend,
                "strategy": b.strategy.as_str(), "source": b.source,
            })).collect::<Vec<_>>(),
            "indexes": self.indexes.iter().filter(|i| !i.unique).map(|i| json!({
                "entity_id": self.entity_id, "fields": i.fields, "backend": i.backend, "source": "field",
            })).collect::<Vec<_>>(),
            "constraints": self.indexes.iter().filter(|i| i.unique).map(|i| json!({
                "entity_id": self.entity_id, "fields": i.fields, "backend": i.backend, "kind": "unique",
            })).collect::<Vec<_>>(),
        })
    }
}

/// Default routing: vectors to the first vector-role backend, LongText to a
/// search backend when one exists, everything else to the default row backend.
fn default_route(ty: &LogicalType, default: &BackendInfo, backends: &[BackendInfo]) -> (String, Strategy, String) {
    let pick = |tags: &[&str]| -> Option<&BackendInfo> {
        let fits = |b: &&BackendInfo| tags.iter().all(|t| b.has(t));
        std::iter::once(default).filter(fits).next().or_else(|| backends.iter().find(fits))
    };
    let (backend, source) = match ty {
        LogicalType::Vector { .. } => match pick(&["vector"]) {
            Some(b) => (b, "builtin-vector"),
            None => (default, "builtin-vector"),
        },
        // Kept where rows are; also indexed in the search backend (see `plan`).
        LogicalType::LongText { .. } => (pick(&["row"]).unwrap_or(default), "builtin-longtext"),
        LogicalType::Json => (pick(&["row"]).unwrap_or(default), "builtin-json"),
        LogicalType::Array { .. } => (pick(&["row"]).unwrap_or(default), "builtin-array"),
        _ => (pick(&["row"]).unwrap_or(default), "builtin-inline"),
    };
    (backend.name.clone(), default_strategy(ty, backend), source.into())
}

/// The workspace's search backend: the default backend when it is tagged
/// `search`, else the first backend that is.
fn search_backend<'a>(default: &'a BackendInfo, backends: &'a [BackendInfo]) -> Option<&'a BackendInfo> {
    std::iter::once(default).chain(backends).find(|b| b.has("search"))
}

fn default_strategy(ty: &LogicalType, backend: &BackendInfo) -> Strategy {
    match ty {
        LogicalType::Vector { .. } if backend.has("vector") => Strategy::Vector,
        LogicalType::LongText { .. } if backend.has("search") => Strategy::Inverted,
        LogicalType::Json => Strategy::Json,
        _ => Strategy::Inline,
    }
}
