//! Entity and field definitions: the Rust builder, the JSON form of docs/reference.md §1.6,
//! naming rules (§1.5) and the two built-in fields every entity has.

use serde_json::{Map, Value as Json, json};

use crate::CatalogError;
use crate::placement::Strategy;
use crate::types::LogicalType;

pub const OBJECT_ID: &str = "object_id";
pub const NAME: &str = "name";

/// Explicit placement of a field on a named backend (`.store(to=...)`).
#[derive(Debug, Clone, PartialEq)]
pub struct StoreSpec {
    pub to: String,
    /// None means the backend's default for the field's type.
    pub strategy: Option<Strategy>,
    /// A missing backend is skipped instead of being an error.
    pub optional: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldDef {
    pub name: String,
    pub ty: LogicalType,
    pub required: bool,
    /// Applied when the key is absent from a written row (an explicit null stays null).
    pub default: Option<Json>,
    pub desc: String,
    pub tags: Vec<String>,
    pub examples: Vec<Json>,
    pub index: bool,
    pub unique: bool,
    pub stores: Vec<StoreSpec>,
}

impl FieldDef {
    pub fn new(name: impl Into<String>, ty: LogicalType) -> Self {
        FieldDef {
            name: name.into(),
            ty,
            required: false,
            default: None,
            desc: String::new(),
            tags: Vec::new(),
            examples: Vec::new(),
            index: false,
            unique: false,
            stores: Vec::new(),
        }
    }
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub fn default(mut self, value: impl Into<Json>) -> Self {
        self.default = Some(value.into());
        self
    }
    pub fn desc(mut self, desc: impl Into<String>) -> Self {
        self.desc = desc.into();
        self
    }
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }
    pub fn index(mut self) -> Self {
        self.index = true;
        self
    }
    pub fn unique(mut self) -> Self {
        self.unique = true;
        self
    }
    /// Place this field on backend `to` (repeatable: a field may live in several).
    pub fn store(mut self, to: impl Into<String>) -> Self {
        self.stores.push(StoreSpec { to: to.into(), strategy: None, optional: false });
        self
    }

    pub fn is_builtin(&self) -> bool {
        self.name == OBJECT_ID || self.name == NAME
    }

    pub fn to_json(&self) -> Json {
        let mut m = Map::new();
        m.insert("type".into(), self.ty.to_json());
        m.insert("required".into(), json!(self.required));
        if self.name == OBJECT_ID {
            m.insert("pk".into(), json!(true));
        }
        if let Some(d) = &self.default {
            m.insert("has_default".into(), json!(true));
            m.insert("default".into(), d.clone());
        }
        m.insert("desc".into(), json!(self.desc));
        m.insert("tags".into(), json!(self.tags));
        m.insert("examples".into(), json!(self.examples));
        if self.index {
            m.insert("index".into(), json!(true));
        }
        if self.unique {
            m.insert("unique".into(), json!(true));
        }
        if !self.stores.is_empty() {
            let stores: Vec<Json> =
                self.stores.iter().map(|s| json!({"to": s.to, "strategy": s.strategy, "optional": s.optional})).collect();
            m.insert("storage".into(), Json::Array(stores));
        }
        Json::Object(m)
    }
}

/// A composite index or unique constraint over several fields.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSet {
    pub fields: Vec<String>,
    pub to: Option<String>,
}

/// Where a row's object_id comes from when the row does not give one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdSource {
    /// Derived from the row's name; a row without a name is refused (the
    /// reference's rule, docs/reference.md §2). Entities defined in Rust or JSON.
    #[default]
    Name,
    /// Derived from the row's name when it has one, else generated
    /// ([`crate::generate_object_id`]): tables made by SQL `CREATE TABLE`,
    /// whose rows need neither. JSON `"object_id_source": "generated"`.
    NameOrGenerated,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EntityDef {
    pub entity_id: String,
    pub title: String,
    pub desc: String,
    pub tags: Vec<String>,
    /// Declaration order; `object_id` first and `name` second once validated.
    pub fields: Vec<FieldDef>,
    pub indexes: Vec<FieldSet>,
    pub constraints: Vec<FieldSet>,
    pub id_source: IdSource,
}

impl EntityDef {
    pub fn new(entity_id: impl Into<String>) -> Self {
        EntityDef {
            entity_id: entity_id.into(),
            title: String::new(),
            desc: String::new(),
            tags: Vec::new(),
            fields: Vec::new(),
            indexes: Vec::new(),
            constraints: Vec::new(),
            id_source: IdSource::Name,
        }
    }
    pub fn desc(mut self, desc: impl Into<String>) -> Self {
        self.desc = desc.into();
        self
    }
    pub fn field(mut self, field: FieldDef) -> Self {
        self.fields.push(field);
        self
    }
    pub fn index_on<S: Into<String>>(mut self, fields: impl IntoIterator<Item = S>) -> Self {
        self.indexes.push(FieldSet { fields: fields.into_iter().map(Into::into).collect(), to: None });
        self
    }
    pub fn unique_on<S: Into<String>>(mut self, fields: impl IntoIterator<Item = S>) -> Self {
        self.constraints.push(FieldSet { fields: fields.into_iter().map(Into::into).collect(), to: None });
        self
    }

    pub fn get(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The SQL table name: entity_id with `-` → `_`.
    pub fn table_name(&self) -> String {
        table_name(&self.entity_id)
    }

    /// Check names and options, and put the built-in fields in place: `object_id`
    /// (Identifier, primary key) first, `name` (optional ShortText) second, unless
    /// the entity declares its own `name`.
    pub fn validated(mut self) -> Result<EntityDef, CatalogError> {
        check_entity_id(&self.entity_id)?;
        let mut seen = std::collections::HashSet::new();
        for f in &self.fields {
            check_field_name(&self.entity_id, &f.name)?;
            if !seen.insert(f.name.clone()) {
                return Err(CatalogError::Definition(format!("Entity '{}' declares field '{}' twice", self.entity_id, f.name)));
            }
        }
        match self.fields.iter().position(|f| f.name == OBJECT_ID) {
            Some(pos) => {
                let f = self.fields.remove(pos);
                if !matches!(f.ty, LogicalType::Identifier { .. }) {
                    return Err(CatalogError::Definition(format!(
                        "{}.object_id must be an Identifier, got {}",
                        self.entity_id,
                        f.ty.type_id()
                    )));
                }
                if !f.stores.is_empty() || f.index || f.unique {
                    return Err(CatalogError::Definition(format!(
                        "{}.object_id is the primary key; its storage, index and uniqueness cannot be customised",
                        self.entity_id
                    )));
                }
                self.fields.insert(0, FieldDef { required: true, ..f });
            }
            None => self
                .fields
                .insert(0, FieldDef::new(OBJECT_ID, LogicalType::identifier()).required().desc("Built-in stable object_id")),
        }
        if self.get(NAME).is_none() {
            self.fields.insert(
                1,
                FieldDef::new(NAME, LogicalType::short_text()).desc("Built-in display name; object_id derives from it"),
            );
        }
        for f in &self.fields {
            if let Some(default) = &f.default {
                if !default.is_null() {
                    f.ty.coerce(default).map_err(|e| {
                        CatalogError::Definition(format!("{}.{}: default {default} is invalid: {e}", self.entity_id, f.name))
                    })?;
                }
            }
        }
        for set in self.indexes.iter().chain(&self.constraints) {
            if set.fields.is_empty() {
                return Err(CatalogError::Definition(format!("{}: an index or constraint needs fields", self.entity_id)));
            }
            for name in &set.fields {
                if self.get(name).is_none() {
                    return Err(CatalogError::Definition(format!(
                        "{}: index or constraint names unknown field '{name}'",
                        self.entity_id
                    )));
                }
            }
        }
        Ok(self)
    }

    /// Parse the JSON definition of docs/reference.md §1.6.
    pub fn from_json(value: &Json) -> Result<EntityDef, CatalogError> {
        let obj = value.as_object().ok_or_else(|| CatalogError::Definition("An entity definition is a JSON object".into()))?;
        if obj.contains_key("id") && !obj.contains_key("entity_id") {
            return Err(CatalogError::Definition("The entity definition uses entity_id, not id".into()));
        }
        let entity_id = obj
            .get("entity_id")
            .and_then(|v| v.as_str())
            .ok_or_else(|| CatalogError::Definition("An entity definition needs 'entity_id'".into()))?;
        let mut def = EntityDef::new(entity_id);
        def.title = str_of(obj, &["name", "title"]).unwrap_or_default();
        def.desc = str_of(obj, &["desc", "description"]).unwrap_or_default();
        def.tags = strings(obj.get("tags"));
        def.id_source = match obj.get("object_id_source").and_then(|v| v.as_str()) {
            None | Some("name") => IdSource::Name,
            Some("generated") => IdSource::NameOrGenerated,
            Some(other) => {
                return Err(CatalogError::Definition(format!(
                    "{entity_id}: object_id_source is 'name' or 'generated', got '{other}'"
                )));
            }
        };
        let required_list = strings(obj.get("required"));
        let fields = obj.get("fields").or_else(|| obj.get("properties"));
        let entries: Vec<(String, Json)> = match fields {
            Some(Json::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Some(Json::Array(items)) => items
                .iter()
                .map(|item| {
                    let name = item
                        .get("name")
                        .and_then(|n| n.as_str())
                        .ok_or_else(|| CatalogError::Definition(format!("{entity_id}: a field in a list needs 'name'")))?;
                    Ok((name.to_string(), item.clone()))
                })
                .collect::<Result<_, CatalogError>>()?,
            None => Vec::new(),
            Some(other) => {
                return Err(CatalogError::Definition(format!("{entity_id}: 'fields' must be an object or list, got {other}")));
            }
        };
        for (name, spec) in entries {
            let mut field = field_from_json(entity_id, &name, &spec)?;
            if required_list.contains(&name) {
                field.required = true;
            }
            def.fields.push(field);
        }
        for (key, target) in [("indexes", &mut def.indexes), ("constraints", &mut def.constraints)] {
            if let Some(Json::Array(items)) = obj.get(key) {
                for item in items {
                    target.push(FieldSet {
                        fields: strings(item.get("fields")),
                        to: item.get("to").and_then(|v| v.as_str()).map(String::from),
                    });
                }
            }
        }
        def.validated()
    }

    pub fn to_json(&self) -> Json {
        let mut fields = Map::new();
        for f in &self.fields {
            fields.insert(f.name.clone(), f.to_json());
        }
        let sets = |s: &[FieldSet]| -> Json { Json::Array(s.iter().map(|x| json!({"fields": x.fields, "to": x.to})).collect()) };
        let mut def = json!({
            "entity_id": self.entity_id,
            "name": self.title,
            "desc": self.desc,
            "tags": self.tags,
            "fields": fields,
            "indexes": sets(&self.indexes),
            "constraints": sets(&self.constraints),
        });
        // Only the non-default source is written: the reference's form stays as it was.
        if self.id_source == IdSource::NameOrGenerated {
            def["object_id_source"] = json!("generated");
        }
        def
    }

    /// Two definitions with the same structure register as a no-op; descriptions
    /// and tags are metadata, not structure.
    pub fn same_structure(&self, other: &EntityDef) -> bool {
        let shape = |d: &EntityDef| -> Vec<Json> {
            d.fields
                .iter()
                .map(|f| {
                    json!([
                        f.name,
                        f.ty.to_json(),
                        f.required,
                        f.default,
                        f.index,
                        f.unique,
                        f.stores.iter().map(|s| json!([s.to, s.strategy, s.optional])).collect::<Vec<_>>()
                    ])
                })
                .collect()
        };
        self.entity_id == other.entity_id
            && self.id_source == other.id_source
            && shape(self) == shape(other)
            && self.indexes == other.indexes
            && self.constraints == other.constraints
    }
}

fn field_from_json(entity_id: &str, name: &str, spec: &Json) -> Result<FieldDef, CatalogError> {
    let wrap = |e: CatalogError| CatalogError::Definition(format!("{entity_id}.{name}: {e}"));
    let obj = match spec {
        Json::String(_) => return Ok(FieldDef::new(name, parse_type_alias(spec).map_err(wrap)?)),
        Json::Object(m) => m,
        other => {
            return Err(CatalogError::Definition(format!(
                "{entity_id}.{name}: a field is a type name or an object, got {other}"
            )));
        }
    };
    let type_desc = obj
        .get("type")
        .or_else(|| obj.get("dtype"))
        .ok_or_else(|| CatalogError::Definition(format!("{entity_id}.{name}: the field needs a 'type'")))?;
    // Options such as max_chars, dim or values may sit beside "type".
    let ty = match type_desc {
        Json::String(s) if !s.contains('[') && obj.len() > 1 => {
            let mut m = obj.clone();
            m.insert("type".into(), Json::String(s.clone()));
            parse_type_alias(&Json::Object(m)).map_err(wrap)?
        }
        other => parse_type_alias(other).map_err(wrap)?,
    };
    let mut f = FieldDef::new(name, ty);
    f.required = obj.get("required").and_then(|v| v.as_bool()).unwrap_or(false);
    let has_default = obj.get("has_default").and_then(|v| v.as_bool()).unwrap_or(obj.contains_key("default"));
    if has_default {
        f.default = Some(obj.get("default").cloned().unwrap_or(Json::Null));
    }
    f.desc = str_of(obj, &["desc", "description"]).unwrap_or_default();
    f.tags = strings(obj.get("tags"));
    f.examples = obj.get("examples").and_then(|v| v.as_array()).cloned().unwrap_or_default();
    f.index = flag(obj.get("index"));
    f.unique = flag(obj.get("unique"));
    if let Some(Json::Array(stores)) = obj.get("storage").or_else(|| obj.get("stores")) {
        for s in stores {
            let to = s
                .get("to")
                .and_then(|v| v.as_str())
                .ok_or_else(|| CatalogError::Definition(format!("{entity_id}.{name}: a storage entry needs 'to'")))?;
            let strategy = match s.get("strategy") {
                None | Some(Json::Null) => None,
                Some(v) => Some(v.as_str().and_then(Strategy::parse).ok_or_else(|| {
                    let known: Vec<&str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
                    CatalogError::Definition(format!(
                        "{entity_id}.{name}: unknown storage strategy {v}; one of {}",
                        known.join(", ")
                    ))
                })?),
            };
            f.stores.push(StoreSpec {
                to: to.to_string(),
                strategy,
                optional: s.get("optional").and_then(|v| v.as_bool()).unwrap_or(false),
            });
        }
    }
    if obj.get("pk").and_then(|v| v.as_bool()) == Some(true) && name != OBJECT_ID {
        return Err(CatalogError::Definition(format!("{entity_id}.{name}: only object_id can be the primary key")));
    }
    Ok(f)
}

/// JSON-Schema aliases the MCP normaliser accepts (string, number, object).
fn parse_type_alias(desc: &Json) -> Result<LogicalType, CatalogError> {
    match desc.as_str() {
        Some("string") => Ok(LogicalType::short_text()),
        Some("number") => Ok(LogicalType::Float),
        Some("object") => Ok(LogicalType::Json),
        _ => LogicalType::parse(desc),
    }
}

fn flag(v: Option<&Json>) -> bool {
    match v {
        Some(Json::Bool(b)) => *b,
        Some(Json::Object(m)) => m.get("enabled").and_then(|e| e.as_bool()).unwrap_or(true),
        _ => false,
    }
}

fn str_of(obj: &Map<String, Json>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| obj.get(*k).and_then(|v| v.as_str())).map(String::from)
}

fn strings(v: Option<&Json>) -> Vec<String> {
    v.and_then(|v| v.as_array())
        .map(|items| items.iter().filter_map(|i| i.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

pub fn table_name(entity_id: &str) -> String {
    entity_id.replace('-', "_")
}

/// `^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$` (docs/reference.md §1.5), for entity and workspace ids.
pub fn is_valid_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    if bytes.is_empty() || !bytes[0].is_ascii_lowercase() {
        return false;
    }
    let mut prev_sep = false;
    for &b in bytes {
        let sep = b == b'-' || b == b'_';
        if sep && prev_sep {
            return false;
        }
        if !(sep || b.is_ascii_lowercase() || b.is_ascii_digit()) {
            return false;
        }
        prev_sep = sep;
    }
    !prev_sep
}

pub fn check_entity_id(id: &str) -> Result<(), CatalogError> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(CatalogError::Name(format!(
            "Invalid entity_id '{id}'; use lower-case letters, digits, '-' or '_', starting with a letter"
        )))
    }
}

const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif", "else",
    "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise",
    "return", "try", "while", "with", "yield",
];

/// A field name is a public identifier: a letter first, then letters, digits or
/// `_`; no leading underscore, no Python keyword (docs/reference.md §1.5).
pub fn check_field_name(entity_id: &str, name: &str) -> Result<(), CatalogError> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&name);
    if ok {
        Ok(())
    } else {
        Err(CatalogError::Name(format!(
            "Invalid field name '{name}' on entity '{entity_id}'; use a letter, then letters, digits or '_' (no keywords)"
        )))
    }
}
