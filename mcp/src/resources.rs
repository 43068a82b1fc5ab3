//! Resources: the workspace summary and one schema per entity, as JSON.
//!
//! `heavenbase://WS/summary` and `heavenbase://WS/entity/NAME`.

use heavenbase::Workspace;
use rmcp::ErrorData;
use rmcp::model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate};
use serde_json::json;

const JSON: &str = "application/json";

fn summary_uri(ws: &Workspace) -> String {
    format!("heavenbase://{}/summary", ws.id())
}

fn entity_uri(ws: &Workspace, entity: &str) -> String {
    format!("heavenbase://{}/entity/{entity}", ws.id())
}

pub(crate) fn list(ws: &Workspace) -> Vec<Resource> {
    let mut out = vec![
        Resource::new(summary_uri(ws), format!("{} summary", ws.id()))
            .with_description("The workspace: its backends and entities")
            .with_mime_type(JSON),
    ];
    for entity in ws.entities() {
        let desc = ws.entity(&entity).map(|d| d.desc).unwrap_or_default();
        let mut r = Resource::new(entity_uri(ws, &entity), entity.clone()).with_mime_type(JSON);
        r = r.with_description(if desc.is_empty() { format!("Schema of the entity {entity}") } else { desc });
        out.push(r);
    }
    out
}

pub(crate) fn templates(ws: &Workspace) -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(format!("heavenbase://{}/entity/{{entity}}", ws.id()), "entity schema")
            .with_description("An entity's definition and where its fields are stored")
            .with_mime_type(JSON),
    ]
}

pub(crate) fn read(ws: &Workspace, uri: &str) -> Result<ReadResourceResult, ErrorData> {
    let value = if uri == summary_uri(ws) {
        ws.health()
    } else if let Some(entity) = uri.strip_prefix(&format!("heavenbase://{}/entity/", ws.id())) {
        let def = ws.entity(entity).map_err(|e| ErrorData::resource_not_found(e.to_string(), Some(json!({"uri": uri}))))?;
        let plan = ws.placement(entity).map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        json!({"entity": def.entity_id, "schema": def.to_json(), "storage_plan": plan.to_json()})
    } else {
        return Err(ErrorData::resource_not_found(
            format!("no resource '{uri}': this server has {} and heavenbase://{}/entity/NAME", summary_uri(ws), ws.id()),
            Some(json!({"uri": uri})),
        ));
    };
    let text = serde_json::to_string_pretty(&value).map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
    Ok(ReadResourceResult::new(vec![ResourceContents::text(text, uri).with_mime_type(JSON)]))
}
