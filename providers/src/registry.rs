//! Backends by type name: each backend type registers a factory under its
//! canonical name and aliases (docs/reference.md §3.5), as DataFusion registers
//! `TableProviderFactory`s by file type. The engine builds every backend of a
//! workspace through [`BackendRegistry::create`] and imports no backend type.
//!
//! Types this build was compiled without (Lance without the `lance` feature)
//! are still known by name, so a workspace that asks for one is told why it
//! cannot open rather than that the type does not exist.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use crate::backend::Backend;
use crate::{ProviderError, Result};

/// Where a workspace lives, for the paths and names in backend configurations.
#[derive(Debug, Clone)]
pub struct BackendContext {
    pub ws_id: String,
    /// The workspace's folder (`{ws_folder}` in URIs).
    pub ws_folder: PathBuf,
    /// The HeavenBase home (`file://%` in URIs).
    pub home: PathBuf,
}

impl BackendContext {
    /// Expand `{ws_id}`, `{ws_folder}` and the `%` home marker of file URIs.
    pub fn expand(&self, text: &str) -> String {
        text.replace("{ws_id}", &self.ws_id.replace('-', "_"))
            .replace("{ws_folder}", &self.ws_folder.display().to_string())
            .replace("file://%", &format!("file://{}", self.home.display()))
    }
}

/// Builds one backend type from its JSON configuration (the map entry without
/// `type` and `name`).
pub type Factory = fn(name: &str, config: &Map<String, Json>, cx: &BackendContext) -> Result<Arc<dyn Backend>>;

struct Entry {
    kind: &'static str,
    aliases: &'static [&'static str],
    /// Err: known, but not compiled into this build (the feature that has it).
    factory: std::result::Result<Factory, &'static str>,
}

/// The backend types this build knows.
pub struct BackendRegistry {
    entries: Vec<Entry>,
}

impl BackendRegistry {
    /// Every backend type of this crate.
    pub fn standard() -> Self {
        let mut entries = vec![
            Entry { kind: "inmem", aliases: &["memory", "inmembackend"], factory: Ok(inmem) },
            Entry { kind: "sqlite", aliases: &["sqlitebackend"], factory: Ok(sqlite) },
            Entry { kind: "postgres", aliases: &["postgresql", "pg", "supabase"], factory: Ok(postgres) },
            Entry { kind: "elasticsearch", aliases: &["elastic", "search"], factory: Ok(elasticsearch) },
            Entry { kind: "opensearch", aliases: &["open-search"], factory: Ok(opensearch) },
        ];
        #[cfg(feature = "lance")]
        entries.push(Entry { kind: "lance", aliases: &["lancedb"], factory: Ok(lance) });
        #[cfg(not(feature = "lance"))]
        entries.push(Entry { kind: "lance", aliases: &["lancedb"], factory: Err("lance") });
        BackendRegistry { entries }
    }

    /// The canonical name of a type name or alias (any case); unknown names
    /// come back lower-cased, as given.
    pub fn canonical(&self, kind: &str) -> String {
        let key = kind.to_lowercase();
        self.entries.iter().find(|e| e.kind == key || e.aliases.contains(&key.as_str())).map_or(key, |e| e.kind.to_string())
    }

    /// The types this build can run.
    pub fn available(&self) -> Vec<&'static str> {
        self.entries.iter().filter(|e| e.factory.is_ok()).map(|e| e.kind).collect()
    }

    /// Build backend `name` of type `kind` (a name or alias) from `config`.
    pub fn create(&self, kind: &str, name: &str, config: &Map<String, Json>, cx: &BackendContext) -> Result<Arc<dyn Backend>> {
        let kind = self.canonical(kind);
        match self.entries.iter().find(|e| e.kind == kind).map(|e| e.factory) {
            // `"search": true` makes any backend a search backend: its rows
            // as it stores them, an inverted index over them (crate::indexed).
            // An inmem instance named `search` (the debug preset's) is one
            // unless it says `"search": false`.
            Some(Ok(factory)) => {
                let mut config = config.clone();
                let searching = match config.remove("search") {
                    None => kind == "inmem" && name == "search",
                    Some(Json::Bool(b)) => b,
                    Some(other) => {
                        return Err(ProviderError::Config(format!("Backend '{name}': search is true or false, got {other}")));
                    }
                };
                let backend = factory(name, &config, cx)?;
                Ok(if searching { Arc::new(crate::indexed::SearchIndexed::new(backend)) } else { backend })
            }
            Some(Err(feature)) => Err(ProviderError::Unsupported(format!(
                "Backend '{name}' has type '{kind}', which this build was compiled without (enable the '{feature}' feature \
                 of heavenbase-providers; available: {}).",
                self.available().join(", ")
            ))),
            None => Err(ProviderError::Unsupported(format!(
                "Backend '{name}' has type '{kind}', which this build cannot run (available: {}).",
                self.available().join(", ")
            ))),
        }
    }
}

fn inmem(name: &str, _config: &Map<String, Json>, _cx: &BackendContext) -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(crate::inmem::InmemBackend::new(name)))
}

/// `database`: `:memory:`, a `file://` URI, an absolute path, or a logical
/// name under `<home>/database/` (by default the workspace id, as the reference).
/// `federate`: `top-n` (default), `all` or `off` (see `SqliteBackend`).
fn sqlite(name: &str, config: &Map<String, Json>, cx: &BackendContext) -> Result<Arc<dyn Backend>> {
    let location = match config.get("database").and_then(|d| d.as_str()) {
        Some(":memory:") => ":memory:".to_string(),
        Some(d) if d.starts_with("file://") => cx.expand(d).trim_start_matches("file://").to_string(),
        Some(d) if d.starts_with('/') => d.to_string(),
        Some(d) => database_dir(&cx.home).join(d).display().to_string(),
        None => database_dir(&cx.home).join(cx.ws_id.replace('-', "_")).display().to_string(),
    };
    let federation = match config.get("federate").and_then(|f| f.as_str()) {
        None | Some("top-n") => crate::FederationScope::TopN,
        Some("all") => crate::FederationScope::All,
        Some("off") => crate::FederationScope::Off,
        Some(other) => {
            return Err(crate::ProviderError::Config(format!(
                "backend '{name}': federate is 'top-n' (the default), 'all' or 'off', got '{other}'"
            )));
        }
    };
    Ok(Arc::new(crate::sqlite::SqliteBackend::open(name, &location)?.with_federation(federation)))
}

fn database_dir(home: &Path) -> PathBuf {
    home.join("database")
}

/// `url` or connection fields; `schema` (default: the workspace id) may name
/// `{ws_id}`.
fn postgres(name: &str, config: &Map<String, Json>, cx: &BackendContext) -> Result<Arc<dyn Backend>> {
    let mut config = config.clone();
    if let Some(Json::String(schema)) = config.get("schema") {
        let expanded = cx.expand(schema);
        config.insert("schema".into(), Json::String(expanded));
    }
    let pg = crate::postgres::PostgresConfig::from_json(name, &config, &cx.ws_id.replace('-', "_"))?;
    Ok(Arc::new(crate::postgres::PostgresBackend::new(name, pg)))
}

/// `hosts`, `index_prefix`, `username`, `password`, `timeout`, `analyzer`
/// (crate::elasticsearch).
fn elasticsearch(name: &str, config: &Map<String, Json>, cx: &BackendContext) -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(crate::elasticsearch::ElasticBackend::from_config("elasticsearch", name, config, cx)?))
}

/// The same client: OpenSearch speaks Elasticsearch's REST API.
fn opensearch(name: &str, config: &Map<String, Json>, cx: &BackendContext) -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(crate::elasticsearch::ElasticBackend::from_config("opensearch", name, config, cx)?))
}

/// `uri` (default `file://{ws_folder}/lance`), `index_threshold`.
#[cfg(feature = "lance")]
fn lance(name: &str, config: &Map<String, Json>, cx: &BackendContext) -> Result<Arc<dyn Backend>> {
    let uri = config.get("uri").and_then(|u| u.as_str()).unwrap_or("file://{ws_folder}/lance");
    let uri = cx.expand(uri);
    let threshold = config.get("index_threshold").and_then(|t| t.as_u64()).map(|t| t as usize);
    Ok(Arc::new(crate::lance::LanceBackend::new(name, uri.trim_start_matches("file://"), threshold)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve_to_their_type() {
        let r = BackendRegistry::standard();
        for (given, canonical) in
            [("PG", "postgres"), ("postgresql", "postgres"), ("memory", "inmem"), ("LanceDB", "lance"), ("nope", "nope")]
        {
            assert_eq!(r.canonical(given), canonical, "{given}");
        }
        assert!(r.available().contains(&"sqlite"));
    }

    #[test]
    fn an_unknown_type_names_what_is_available() {
        let r = BackendRegistry::standard();
        let cx = BackendContext { ws_id: "w".into(), ws_folder: "/tmp".into(), home: "/tmp".into() };
        let e = r.create("solr", "search", &Map::new(), &cx).unwrap_err().to_string();
        assert!(e.contains("'solr'") && e.contains("sqlite") && e.contains("opensearch"), "{e}");
        let b = r.create("memory", "vec", &Map::new(), &cx).unwrap();
        assert_eq!((b.info().name.as_str(), b.info().kind.as_str()), ("vec", "inmem"));
    }
}
