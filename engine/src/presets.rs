//! Workspace constructions: presets and explicit backend maps (docs/reference.md §3.4,
//! §3.5), resolved to backend instances.

use std::path::Path;
use std::sync::Arc;

use heavenbase_providers::{Backend, BackendContext, BackendRegistry};
use serde_json::{Map, Value as Json, json};

use crate::{Error, ErrorKind, Result};

pub const PRESETS: &[&str] = &["debug", "embedded", "local-lts", "web-lts"];

/// How a workspace's backends are built. Stored in the registry and compared on
/// reopen: the same id with another construction is an error.
#[derive(Debug, Clone, PartialEq)]
pub enum Construction {
    /// No preset or map: SQLite in memory for `main`, in-memory `vec`.
    Ambient,
    Preset(String),
    /// A backend map: `{name: {type, ...config}}`.
    Backends(Json),
}

impl Construction {
    pub fn preset(name: &str) -> Self {
        Construction::Preset(name.to_string())
    }

    pub fn to_json(&self) -> Json {
        match self {
            Construction::Ambient => json!({"kind": "ambient"}),
            Construction::Preset(p) => json!({"kind": "preset", "preset": p}),
            Construction::Backends(c) => json!({"kind": "backends", "config": c}),
        }
    }

    pub fn from_json(v: &Json) -> Result<Self> {
        match v.get("kind").and_then(|k| k.as_str()) {
            Some("ambient") => Ok(Construction::Ambient),
            Some("preset") => Ok(Construction::Preset(v["preset"].as_str().unwrap_or_default().to_string())),
            Some("backends") => Ok(Construction::Backends(v["config"].clone())),
            _ => Err(Error::argument(format!("Unknown workspace construction {v}"))),
        }
    }

    /// A short human form for messages: `preset 'debug'`, `backends {...}`.
    pub fn describe(&self) -> String {
        match self {
            Construction::Ambient => "ambient (no preset)".into(),
            Construction::Preset(p) => format!("preset '{p}'"),
            Construction::Backends(c) => format!("backends {c}"),
        }
    }
}

/// `v` with every `password` value replaced, for anything shown or logged.
pub fn redact_secrets(v: &Json) -> Json {
    match v {
        Json::Object(m) => Json::Object(
            m.iter().map(|(k, x)| (k.clone(), if k == "password" { json!("***") } else { redact_secrets(x) })).collect(),
        ),
        Json::Array(items) => Json::Array(items.iter().map(redact_secrets).collect()),
        other => other.clone(),
    }
}

/// One resolved backend: its name, type and configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendConfig {
    pub name: String,
    pub kind: String,
    pub config: Map<String, Json>,
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

/// The backend map of a preset, as `hb ws presets show` prints it.
pub fn preset_backends(preset: &str) -> Result<Json> {
    Ok(match preset {
        "debug" => json!({
            "main": {"type": "sqlite", "database": ":memory:"},
            "vec": {"type": "inmem"},
            "search": {"type": "inmem"},
        }),
        // Durable with no services: everything under the workspace folder.
        "embedded" => json!({
            // main is also the search backend: LongText is stored and indexed
            // there, so a write stays one SQLite transaction.
            "main": {"type": "sqlite", "database": "file://{ws_folder}/main.sqlite", "search": true},
            "vec": {"type": "lance", "uri": "file://{ws_folder}/lance"},
        }),
        "local-lts" => json!({
            "main": {
                "type": "postgres",
                "host": env_or("HVNB_LOCAL_LTS_POSTGRES_HOST", "localhost"),
                "port": env_or("HVNB_LOCAL_LTS_POSTGRES_PORT", "5432").parse::<u16>().unwrap_or(5432),
                "database": env_or("HVNB_LOCAL_LTS_POSTGRES_DB", "rubik"),
                "username": env_or("HVNB_LOCAL_LTS_POSTGRES_USER", "rubik"),
                "password": env_or("HVNB_LOCAL_LTS_POSTGRES_PASSWORD", "password"),
                "schema": "{ws_id}",
                "params": {"sslmode": "prefer"},
            },
            "vec": {"type": "lance", "uri": "file://{ws_folder}/lance"},
            "search": {"type": "elasticsearch", "hosts": [env_or("HVNB_LOCAL_LTS_ES_URL", "http://localhost:9200")]},
        }),
        "web-lts" => json!({
            "main": {
                "type": "postgres",
                "host": env_or("HVNB_WEB_LTS_POSTGRES_HOST", "localhost"),
                "port": env_or("HVNB_WEB_LTS_POSTGRES_PORT", "5432").parse::<u16>().unwrap_or(5432),
                "database": env_or("HVNB_WEB_LTS_POSTGRES_DB", "postgres"),
                "username": env_or("HVNB_WEB_LTS_POSTGRES_USER", "postgres"),
                "password": env_or("HVNB_WEB_LTS_POSTGRES_PASSWORD", ""),
                "schema": "{ws_id}",
                "params": {"sslmode": "require"},
            },
            "vec": {"type": "pgvector", "shared_database": true},
            "search": {"type": "elasticsearch", "hosts": [env_or("HVNB_WEB_LTS_ES_URL", "http://localhost:9200")]},
        }),
        other => {
            return Err(Error::new(
                ErrorKind::UnknownObject,
                format!(
                    "Unknown preset '{other}'.{} Presets: {}",
                    crate::error::suggest(other, PRESETS.iter().copied()),
                    PRESETS.join(", ")
                ),
            ));
        }
    })
}

/// Resolve a construction to its backend list, in map order (`aux` entries last).
pub fn resolve(construction: &Construction, ws_id: &str) -> Result<Vec<BackendConfig>> {
    let map = match construction {
        Construction::Ambient => json!({"main": {"type": "sqlite", "database": ":memory:"}, "vec": {"type": "inmem"}}),
        Construction::Preset(p) => preset_backends(p)?,
        Construction::Backends(m) => m.clone(),
    };
    let obj = map.as_object().ok_or_else(|| Error::definition(format!("A backend map is a JSON object, got {map}")))?;
    let mut out = Vec::new();
    let mut push = |name: &str, leaf: &Json| -> Result<()> {
        let is_falsy = matches!(leaf, Json::Null | Json::Bool(false)) || leaf.as_object().is_some_and(|m| m.is_empty());
        if is_falsy {
            return Ok(()); // a falsy leaf disables the backend
        }
        let mut config = leaf
            .as_object()
            .cloned()
            .ok_or_else(|| Error::definition(format!("Backend '{name}' must be an object with a 'type', got {leaf}")))?;
        let kind = config
            .remove("type")
            .and_then(|t| t.as_str().map(|t| BackendRegistry::standard().canonical(t)))
            .ok_or_else(|| Error::definition(format!("Backend '{name}' needs a 'type'")))?;
        let name = config.remove("name").and_then(|n| n.as_str().map(String::from)).unwrap_or(name.to_string());
        if !heavenbase_catalog::entity::is_valid_id(&name) {
            return Err(Error::new(ErrorKind::InvalidName, format!("Invalid backend name '{name}'")));
        }
        out.push(BackendConfig { name, kind, config });
        Ok(())
    };
    for (name, leaf) in obj {
        if name == "aux" {
            continue;
        }
        push(name, leaf)?;
    }
    if let Some(Json::Object(aux)) = obj.get("aux") {
        for (name, leaf) in aux {
            push(name, leaf)?;
        }
    }
    if out.is_empty() {
        return Err(Error::definition(format!("Workspace '{ws_id}' has no backends")));
    }
    Ok(out)
}

/// Build the backend instances of a resolved construction, each by its
/// type's factory in the backend registry.
pub fn instantiate(configs: &[BackendConfig], ws_id: &str, ws_folder: &Path, home: &Path) -> Result<Vec<Arc<dyn Backend>>> {
    let registry = BackendRegistry::standard();
    let cx = BackendContext { ws_id: ws_id.to_string(), ws_folder: ws_folder.to_path_buf(), home: home.to_path_buf() };
    configs.iter().map(|c| Ok(registry.create(&c.kind, &c.name, &c.config, &cx)?)).collect()
}
