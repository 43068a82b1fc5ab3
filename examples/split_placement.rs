//! One entity whose fields live in two backends: the scalars in a SQLite file,
//! the long text in Postgres. To its users it is one table; EXPLAIN shows the
//! two field groups and what each was asked.
//!
//! HEAVENBASE_EXAMPLE_PG=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo run -p heavenbase-examples --example split_placement

use heavenbase::{Construction, Entity, Workspace};
use serde_json::json;

#[derive(Entity, Debug, Clone, PartialEq)]
struct Article {
    name: String,
    #[hb(index)]
    year: i64,
    /// Kept in Postgres, by its own backend name.
    #[hb(long_text, store = "pg")]
    body: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(url) = std::env::var("HEAVENBASE_EXAMPLE_PG") else {
        eprintln!("set HEAVENBASE_EXAMPLE_PG to a Postgres URL (postgres://user@host:5432/db) to run this example");
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let home = heavenbase::Home::new(dir.path());
    let backends = json!({
        "main": {"type": "sqlite", "database": dir.path().join("main.sqlite").to_string_lossy()},
        "pg": {"type": "postgres", "url": url, "schema": "hb_example_split"},
    });
    let ws = Workspace::open_in(&home, "split", Construction::Backends(backends)).await?;
    ws.register(Article::entity_def(), true).await?;
    let articles: Vec<Article> = (2019..2025)
        .map(|year| Article { name: format!("Review {year}"), year, body: format!("What happened in {year}.") })
        .collect();
    ws.upsert_many_typed(&articles).await?;
    println!("placement: {}", ws.placement("article")?.to_json());

    let sql = "SELECT name, body FROM article WHERE year >= 2023 ORDER BY year";
    println!("{}", datafusion::arrow::util::pretty::pretty_format_batches(&ws.sql(sql).await?)?);
    let plan = ws.sql(&format!("EXPLAIN {sql}")).await?;
    println!("{}", datafusion::arrow::util::pretty::pretty_format_batches(&plan)?);
    let recent = ws.query_typed::<Article>()?.where_(Article::fields().year.ge(2023)).order_by("year", false).await?;
    assert_eq!(recent, articles[4..].to_vec());
    assert!(ws.audit().await?.ok());
    ws.drop().await?;
    Ok(())
}
