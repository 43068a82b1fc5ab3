//! Entity and field definitions: the Rust builder, the JSON form of docs/reference.md §1.6,
//! naming rules (§1.5) and the two built-in fields every entity has.

use serde_json::{Map, Value as Json, json};

use crate::CatalogError;
use crate::placement::Strategy;
use crate::types::{LogicalType, PhysicalType};

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
    /// A default computed at write time instead of a literal one.
    pub default_fn: Option<DefaultFn>,
    pub desc: String,
    pub tags: Vec<String>,
    pub examples: Vec<Json>,
    pub index: bool,
    pub unique: bool,
    pub stores: Vec<StoreSpec>,
    /// An identity column (SQL `serial`, `GENERATED … AS IDENTITY`): a row that
    /// leaves it out or NULL draws the next value of the entity's counter.
    pub identity: Option<Identity>,
    /// A system column, as Postgres' `ctid` is one: selectable, filterable and
    /// joinable by name, but left out of `SELECT *`, of a positional `INSERT`'s
    /// columns and of `COPY` without a column list. The built-in `object_id`
    /// and `name` of a table made by SQL `CREATE TABLE` that does not declare
    /// them. JSON `"system_column": true`.
    pub system_column: bool,
    /// Indexed for full-text search in the workspace's search backend: `None`
    /// follows the default (LongText fields are, when the workspace has a
    /// search backend); JSON `"search": true|false`.
    pub search: Option<bool>,
}

/// A default computed when a row is written (SQL `DEFAULT now()`,
/// `CURRENT_TIMESTAMP`, `CURRENT_DATE`, `gen_random_uuid()`). Every row one
/// statement writes gets the same time, the statement's, as every row of a
/// Postgres transaction gets the same `now()`; each row gets a UUID of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultFn {
    /// The write's time (Timestamp fields).
    Now,
    /// The write's date in UTC (Date fields).
    CurrentDate,
    /// A new random (version 4) UUID for each row (Uuid fields).
    RandomUuid,
}

impl DefaultFn {
    /// The JSON definition's spelling (`"default_fn": "now"`).
    pub fn as_str(self) -> &'static str {
        match self {
            DefaultFn::Now => "now",
            DefaultFn::CurrentDate => "current_date",
            DefaultFn::RandomUuid => "gen_random_uuid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "now" => Some(DefaultFn::Now),
            "current_date" => Some(DefaultFn::CurrentDate),
            "gen_random_uuid" => Some(DefaultFn::RandomUuid),
            _ => None,
        }
    }

    /// As Postgres prints the default (`information_schema.columns.column_default`).
    pub fn sql(self) -> &'static str {
        match self {
            DefaultFn::Now => "now()",
            DefaultFn::CurrentDate => "CURRENT_DATE",
            DefaultFn::RandomUuid => "gen_random_uuid()",
        }
    }

    /// Whether each row gets a value of its own (not one per statement).
    pub fn per_row(self) -> bool {
        matches!(self, DefaultFn::RandomUuid)
    }

    /// The types the default fits (as Postgres would cast its value).
    pub fn fits(self, ty: &LogicalType) -> bool {
        match self {
            DefaultFn::Now | DefaultFn::CurrentDate => matches!(ty, LogicalType::Timestamp | LogicalType::Date),
            DefaultFn::RandomUuid => matches!(ty, LogicalType::Uuid),
        }
    }

    /// The value for a field of type `ty` written at `now_ms` (milliseconds
    /// since the Unix epoch), in the form that type coerces: a Date field
    /// takes the day, a Timestamp the instant (`CURRENT_DATE`: its midnight,
    /// UTC). A [`DefaultFn::per_row`] default gives a new value at each call.
    pub fn value_at(self, ty: &LogicalType, now_ms: i64) -> Json {
        if self == DefaultFn::RandomUuid {
            return json!(crate::types::random_uuid());
        }
        let day = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default().date_naive();
        match (ty, self) {
            (LogicalType::Date, _) => json!(day.format("%Y-%m-%d").to_string()),
            (_, DefaultFn::Now) => json!(now_ms),
            (_, DefaultFn::CurrentDate) => json!(now_ms - now_ms.rem_euclid(86_400_000)),
            (_, DefaultFn::RandomUuid) => unreachable!("answered above"),
        }
    }
}

/// Milliseconds since the Unix epoch: the time a write's computed defaults take.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// How an identity column takes values a row gives itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// `GENERATED ALWAYS AS IDENTITY`: a given value is refused.
    Always,
    /// `serial`, `GENERATED BY DEFAULT AS IDENTITY`: a given value is kept.
    ByDefault,
}

impl Identity {
    pub fn as_str(self) -> &'static str {
        match self {
            Identity::Always => "always",
            Identity::ByDefault => "by_default",
        }
    }
}

impl FieldDef {
    pub fn new(name: impl Into<String>, ty: LogicalType) -> Self {
        FieldDef {
            name: name.into(),
            ty,
            required: false,
            default: None,
            default_fn: None,
            desc: String::new(),
            tags: Vec::new(),
            examples: Vec::new(),
            index: false,
            unique: false,
            stores: Vec::new(),
            identity: None,
            system_column: false,
            search: None,
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
    /// A default computed when a row is written (see [`DefaultFn`]).
    pub fn default_fn(mut self, f: DefaultFn) -> Self {
        self.default_fn = Some(f);
        self
    }
    /// Whether rows that leave this field out each take a value of their own
    /// (`gen_random_uuid()`): [`FieldDef::default_at`] is called per row.
    pub fn default_per_row(&self) -> bool {
        self.default.is_none() && self.default_fn.is_some_and(DefaultFn::per_row)
    }
    /// The value a row that leaves this field out takes, for a write at
    /// `now_ms`: the literal default, the computed one, or none (NULL).
    pub fn default_at(&self, now_ms: i64) -> Option<Json> {
        match (&self.default, self.default_fn) {
            (Some(d), _) => Some(d.clone()),
            (None, Some(f)) => Some(f.value_at(&self.ty, now_ms)),
            (None, None) => None,
        }
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
    /// An identity column: values come from the entity's durable counter.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }
    /// A system column: left out of `SELECT *` (see [`FieldDef::system_column`]).
    pub fn system_column(mut self) -> Self {
        self.system_column = true;
        self
    }
    /// Index this text field for full-text search (`false`: never, even a
    /// LongText one), in the workspace's search backend.
    pub fn search(mut self, indexed: bool) -> Self {
        self.search = Some(indexed);
        self
    }
    /// Place this field on backend `to` (repeatable: a field may live in several).
    pub fn store(mut self, to: impl Into<String>) -> Self {
        self.stores.push(StoreSpec { to: to.into(), strategy: None, optional: false });
        self
    }

    /// The built-in `object_id` an entity gets when it does not declare it.
    pub fn builtin_object_id() -> FieldDef {
        FieldDef::new(OBJECT_ID, LogicalType::identifier()).required().desc("Built-in stable object_id")
    }

    /// The built-in `name` an entity gets when it does not declare its own.
    pub fn builtin_name() -> FieldDef {
        FieldDef::new(NAME, LogicalType::short_text()).desc("Built-in display name; object_id derives from it")
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
        if let Some(f) = self.default_fn {
            m.insert("default_fn".into(), json!(f.as_str()));
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
        if let Some(identity) = self.identity {
            m.insert("identity".into(), json!(identity.as_str()));
        }
        if self.system_column {
            m.insert("system_column".into(), json!(true));
        }
        if let Some(search) = self.search {
            m.insert("search".into(), json!(search));
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

/// The name an index was created under (`CREATE INDEX name ON t (cols)`),
/// which `DROP INDEX name` finds. The index itself is the fields' `index` or
/// `unique` flag (one field) or the set in `indexes` / `constraints`.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedIndex {
    pub name: String,
    pub fields: Vec<String>,
    pub unique: bool,
}

/// A foreign key: `fields` of this entity name a row of `references` by that
/// entity's primary key (so the row's object_id derives from their values, as
/// the referenced row's does from its key). Enforced by the workspace: a
/// write whose values name no row, and a delete of a row still named, are
/// refused (23503).
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignKey {
    /// The constraint's name, as Postgres names it (`t_col_fkey`) unless given.
    pub name: String,
    pub fields: Vec<String>,
    /// The referenced entity.
    pub references: String,
}

/// Where a row's object_id comes from when the row does not give one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IdSource {
    /// Derived from the row's name; a row without a name is refused (the
    /// reference's rule, docs/reference.md §2). Entities defined in Rust or JSON.
    #[default]
    Name,
    /// Derived from the row's name when it has one, else generated
    /// ([`crate::generate_object_id`]): tables made by SQL `CREATE TABLE`,
    /// whose rows need neither. JSON `"object_id_source": "generated"`.
    NameOrGenerated,
    /// A declared primary key (SQL `PRIMARY KEY`; JSON `"primary_key": [..]`):
    /// the id always derives from the key's values
    /// ([`crate::derive_key_object_id`]), so the key is unique because the id
    /// is, and a lookup by key is a lookup by id.
    Key(Vec<String>),
}

impl IdSource {
    /// The primary key's fields, when one is declared.
    pub fn key(&self) -> Option<&[String]> {
        match self {
            IdSource::Key(fields) => Some(fields),
            _ => None,
        }
    }
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
    pub foreign_keys: Vec<ForeignKey>,
    /// The names indexes were created under (SQL `CREATE INDEX`).
    pub named_indexes: Vec<NamedIndex>,
    pub id_source: IdSource,
    /// The name the entity's rows are stored under when it is not the entity
    /// id: set by `ALTER TABLE … RENAME TO` (the rows keep the name they were
    /// written under), or when an entity is created under a name another
    /// entity's rows are still stored under. It names the backend tables, keys
    /// the Catalog cards and counters, and scopes derived object_ids, so a
    /// rename moves no row and changes no id. See [`EntityDef::storage_name`].
    pub stored_as: Option<String>,
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
            foreign_keys: Vec::new(),
            named_indexes: Vec::new(),
            id_source: IdSource::Name,
            stored_as: None,
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

    /// The fields `SELECT *` shows, in order: all but the system columns.
    pub fn star_fields(&self) -> impl Iterator<Item = &FieldDef> {
        self.fields.iter().filter(|f| !f.system_column)
    }

    /// Whether `SELECT *` leaves some of the table's columns out.
    pub fn has_system_columns(&self) -> bool {
        self.fields.iter().any(|f| f.system_column)
    }

    /// The SQL table name: entity_id with `-` → `_`.
    pub fn table_name(&self) -> String {
        table_name(&self.entity_id)
    }

    /// The name the rows are stored under: the entity id, unless the entity
    /// was renamed or created under a name that was taken ([`EntityDef::stored_as`]).
    /// Backend tables, Catalog card ids, identity counters and the object_ids
    /// derived from names and keys all use it, never the entity id itself.
    pub fn storage_name(&self) -> &str {
        self.stored_as.as_deref().unwrap_or(&self.entity_id)
    }

    /// Check names and options, and put the built-in fields in place: `object_id`
    /// (Identifier, primary key) first, `name` (optional ShortText) second, unless
    /// the entity declares its own `name`.
    pub fn validated(mut self) -> Result<EntityDef, CatalogError> {
        check_entity_id(&self.entity_id)?;
        if let Some(stored) = &self.stored_as {
            check_entity_id(stored)?;
            if *stored == self.entity_id {
                self.stored_as = None;
            }
        }
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
            None => self.fields.insert(0, FieldDef::builtin_object_id()),
        }
        if self.get(NAME).is_none() {
            self.fields.insert(1, FieldDef::builtin_name());
        }
        for fk in &self.foreign_keys {
            if fk.fields.is_empty() {
                return Err(CatalogError::Definition(format!("{}: foreign key {} needs fields", self.entity_id, fk.name)));
            }
            if let Some(unknown) = fk.fields.iter().find(|f| self.get(f).is_none()) {
                return Err(CatalogError::Definition(format!(
                    "{}: foreign key {} names unknown field '{unknown}'",
                    self.entity_id, fk.name
                )));
            }
        }
        if let IdSource::Key(key) = &self.id_source {
            if key.is_empty() {
                return Err(CatalogError::Definition(format!("{}: a primary key needs fields", self.entity_id)));
            }
            for (i, name) in key.iter().enumerate() {
                let Some(f) = self.fields.iter_mut().find(|f| f.name == *name) else {
                    return Err(CatalogError::Definition(format!(
                        "{}: the primary key names unknown field '{name}'",
                        self.entity_id
                    )));
                };
                if f.name == OBJECT_ID || key[..i].contains(name) {
                    return Err(CatalogError::Definition(format!(
                        "{}: primary key field '{name}' is object_id or named twice",
                        self.entity_id
                    )));
                }
                if !matches!(f.ty.physical(), PhysicalType::Int | PhysicalType::Text) {
                    return Err(CatalogError::Definition(format!(
                        "{}.{name}: a primary key field is an integer or a text, not {}",
                        self.entity_id,
                        f.ty.type_id()
                    )));
                }
                // A key value is never NULL: the id derives from it.
                f.required = true;
            }
            // Indexed as Postgres indexes a primary key, so a statement that a
            // SQL backend runs whole (federation) finds rows by key there too.
            match key.as_slice() {
                [one] => {
                    if let Some(f) = self.fields.iter_mut().find(|f| f.name == *one) {
                        f.index |= !f.unique;
                    }
                }
                several => {
                    let set = FieldSet { fields: several.to_vec(), to: None };
                    if !self.indexes.contains(&set) && !self.constraints.contains(&set) {
                        self.indexes.push(set);
                    }
                }
            }
        }
        for f in &self.fields {
            if let Some(computed) = f.default_fn {
                // now() and CURRENT_DATE cast to either time type, as in Postgres.
                if !computed.fits(&f.ty) || f.default.is_some() || f.identity.is_some() {
                    let needs = if computed == DefaultFn::RandomUuid { "a Uuid field" } else { "a Timestamp or Date field" };
                    return Err(CatalogError::Definition(format!(
                        "{}.{}: a {} default needs {needs} without another default",
                        self.entity_id,
                        f.name,
                        computed.sql()
                    )));
                }
            }
            if f.identity.is_some() && (!matches!(f.ty, LogicalType::Integer) || f.default.is_some()) {
                return Err(CatalogError::Definition(format!(
                    "{}.{}: an identity column is an integer without a default",
                    self.entity_id, f.name
                )));
            }
            if let Some(default) = &f.default {
                if !default.is_null() {
                    f.ty.coerce(default).map_err(|e| {
                        CatalogError::Definition(format!("{}.{}: default {default} is invalid: {e}", self.entity_id, f.name))
                    })?;
                }
            }
        }
        for ix in &self.named_indexes {
            if let Some(unknown) = ix.fields.iter().find(|f| self.get(f).is_none()) {
                return Err(CatalogError::Definition(format!(
                    "{}: index {} names unknown field '{unknown}'",
                    self.entity_id, ix.name
                )));
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
        let primary_key = strings(obj.get("primary_key"));
        def.id_source = match obj.get("object_id_source").and_then(|v| v.as_str()) {
            _ if !primary_key.is_empty() => IdSource::Key(primary_key),
            None | Some("name") => IdSource::Name,
            Some("generated") => IdSource::NameOrGenerated,
            Some(other) => {
                return Err(CatalogError::Definition(format!(
                    "{entity_id}: object_id_source is 'name' or 'generated' (or give primary_key), got '{other}'"
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
        if let Some(Json::Array(items)) = obj.get("named_indexes") {
            for item in items {
                def.named_indexes.push(NamedIndex {
                    name: item.get("name").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
                    fields: strings(item.get("fields")),
                    unique: flag(item.get("unique")),
                });
            }
        }
        def.stored_as = obj.get("stored_as").and_then(|v| v.as_str()).map(String::from);
        if let Some(Json::Array(items)) = obj.get("foreign_keys") {
            for item in items {
                def.foreign_keys.push(ForeignKey {
                    name: item.get("name").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
                    fields: strings(item.get("fields")),
                    references: item.get("references").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
                });
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
        if !self.foreign_keys.is_empty() {
            def["foreign_keys"] = Json::Array(
                self.foreign_keys
                    .iter()
                    .map(|fk| json!({"name": fk.name, "fields": fk.fields, "references": fk.references}))
                    .collect(),
            );
        }
        if !self.named_indexes.is_empty() {
            def["named_indexes"] = Json::Array(
                self.named_indexes.iter().map(|ix| json!({"name": ix.name, "fields": ix.fields, "unique": ix.unique})).collect(),
            );
        }
        if let Some(stored) = &self.stored_as {
            def["stored_as"] = json!(stored);
        }
        // Only the non-default source is written: the reference's form stays as it was.
        match &self.id_source {
            IdSource::Name => {}
            IdSource::NameOrGenerated => def["object_id_source"] = json!("generated"),
            IdSource::Key(fields) => def["primary_key"] = json!(fields),
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
                        f.default_fn.map(DefaultFn::as_str),
                        f.index,
                        f.unique,
                        f.identity.map(Identity::as_str),
                        f.system_column,
                        f.search,
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
            && self.foreign_keys == other.foreign_keys
            && self.named_indexes == other.named_indexes
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
    f.default_fn = match obj.get("default_fn") {
        None | Some(Json::Null) => None,
        Some(v) => Some(v.as_str().and_then(DefaultFn::parse).ok_or_else(|| {
            CatalogError::Definition(format!(
                "{entity_id}.{name}: default_fn is 'now', 'current_date' or 'gen_random_uuid', got {v}"
            ))
        })?),
    };
    f.desc = str_of(obj, &["desc", "description"]).unwrap_or_default();
    f.tags = strings(obj.get("tags"));
    f.examples = obj.get("examples").and_then(|v| v.as_array()).cloned().unwrap_or_default();
    f.index = flag(obj.get("index"));
    f.unique = flag(obj.get("unique"));
    f.system_column = flag(obj.get("system_column"));
    f.search = match obj.get("search") {
        None | Some(Json::Null) => None,
        Some(Json::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(CatalogError::Definition(format!("{entity_id}.{name}: search is true or false, got {other}")));
        }
    };
    f.identity = match obj.get("identity").and_then(|v| v.as_str()) {
        None => None,
        Some("always") => Some(Identity::Always),
        Some("by_default") => Some(Identity::ByDefault),
        Some(other) => {
            return Err(CatalogError::Definition(format!(
                "{entity_id}.{name}: identity is 'always' or 'by_default', got '{other}'"
            )));
        }
    };
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
