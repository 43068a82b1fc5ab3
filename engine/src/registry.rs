//! The workspace registry on disk: `$HEAVENBASE_HOME/registry.json` (default
//! `~/.heavenbase`), one record per registered workspace, written atomically.

use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};

use crate::presets::Construction;
use crate::{Error, Result};

/// A HeavenBase home folder: the registry, workspace folders, SQLite databases.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Home {
    root: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceRecord {
    pub id: String,
    pub construction: Construction,
    pub created_at: String,
    pub updated_at: String,
}

static REGISTRY_LOCK: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Home { root: root.into() }
    }

    /// `$HEAVENBASE_HOME`, else `~/.heavenbase`.
    pub fn from_env() -> Result<Self> {
        if let Some(h) = std::env::var_os("HEAVENBASE_HOME").filter(|h| !h.is_empty()) {
            return Ok(Home::new(PathBuf::from(h)));
        }
        let home = std::env::var_os("HOME").ok_or_else(|| Error::io("Neither HEAVENBASE_HOME nor HOME is set"))?;
        Ok(Home::new(PathBuf::from(home).join(".heavenbase")))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn workspace_folder(&self, id: &str) -> PathBuf {
        self.root.join("workspaces").join(id)
    }

    fn registry_path(&self) -> PathBuf {
        self.root.join("registry.json")
    }

    fn read(&self) -> Result<Json> {
        match std::fs::read_to_string(self.registry_path()) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| Error::io(format!("Registry {} is not valid JSON: {e}", self.registry_path().display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({"workspaces": {}})),
            Err(e) => Err(Error::io(format!("Cannot read {}: {e}", self.registry_path().display()))),
        }
    }

    fn write(&self, doc: &Json) -> Result<()> {
        std::fs::create_dir_all(&self.root)?;
        let tmp = self.root.join(format!("registry.json.{}.tmp", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec_pretty(doc).expect("registry serialises"))?;
        std::fs::rename(&tmp, self.registry_path())?;
        Ok(())
    }

    pub fn list(&self) -> Result<Vec<WorkspaceRecord>> {
        let doc = self.read()?;
        let mut out = Vec::new();
        if let Some(map) = doc["workspaces"].as_object() {
            for (id, rec) in map {
                out.push(WorkspaceRecord {
                    id: id.clone(),
                    construction: Construction::from_json(&rec["construction"])?,
                    created_at: rec["created_at"].as_str().unwrap_or_default().to_string(),
                    updated_at: rec["updated_at"].as_str().unwrap_or_default().to_string(),
                });
            }
        }
        Ok(out)
    }

    pub fn get(&self, id: &str) -> Result<Option<WorkspaceRecord>> {
        Ok(self.list()?.into_iter().find(|r| r.id == id))
    }

    pub(crate) fn register(&self, id: &str, construction: &Construction) -> Result<()> {
        let _guard = REGISTRY_LOCK.lock();
        let mut doc = self.read()?;
        let now = chrono::Utc::now().to_rfc3339();
        let created = doc["workspaces"][id]["created_at"].as_str().map(String::from).unwrap_or(now.clone());
        doc["workspaces"][id] =
            json!({"id": id, "construction": construction.to_json(), "created_at": created, "updated_at": now});
        self.write(&doc)
    }

    pub(crate) fn unregister(&self, id: &str) -> Result<bool> {
        let _guard = REGISTRY_LOCK.lock();
        let mut doc = self.read()?;
        let removed = doc["workspaces"].as_object_mut().and_then(|m| m.remove(id)).is_some();
        if removed {
            self.write(&doc)?;
        }
        Ok(removed)
    }
}
