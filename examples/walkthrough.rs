//! The seed's walkthrough in Rust: a typed entity, a write, a read by id, SQL
//! over the workspace and its system tables, and an audit.
//!
//! cargo run -p heavenbase-examples --example walkthrough

use heavenbase::{Construction, Entity, Workspace};
use serde::Deserialize;

/// A short note.
#[derive(Entity, Debug, Clone, PartialEq)]
struct Note {
    /// The object_id derives from the name.
    name: String,
    /// Headline
    title: String,
    #[hb(long_text)]
    body: String,
}

#[derive(Debug, Deserialize)]
struct Kind {
    subject_id: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A throwaway home, so the example leaves nothing behind; a program would
    // use Workspace::open("notes", …) under $HEAVENBASE_HOME.
    let dir = tempfile::tempdir()?;
    let home = heavenbase::Home::new(dir.path());
    // Durable, no services: a SQLite file and Lance datasets in the workspace's folder.
    let ws = Workspace::open_in(&home, "notes", Construction::preset("embedded")).await?;
    ws.register_typed::<Note>().await?;

    let note = Note {
        name: "Routing note".into(),
        title: "Where fields live".into(),
        body: "Vectors go to vec, the rest to main.".into(),
    };
    let id = ws.upsert_typed(&note).await?;
    assert_eq!(id, "000042943200010507604878606023630530843197");
    assert_eq!(ws.get_typed::<Note>(&id).await?, Some(note));

    let titles = ws.query_typed::<Note>()?.where_(Note::fields().title.contains("fields")).await?;
    println!("notes about fields: {titles:?}");

    let kinds: Vec<Kind> = ws.sql_typed("SELECT subject_id FROM sys_metaschema WHERE kind = 'entity' ORDER BY 1").await?;
    println!("entities: {:?}", kinds.iter().map(|k| k.subject_id.as_str()).collect::<Vec<_>>());

    let batches = ws.sql("SELECT name, title FROM note").await?;
    println!("{}", datafusion::arrow::util::pretty::pretty_format_batches(&batches)?);
    assert!(ws.audit().await?.ok());
    Ok(())
}
