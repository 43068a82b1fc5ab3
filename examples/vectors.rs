//! A typed entity with a vector field, and its nearest neighbours three ways:
//! the typed query, SQL's near(), and the JSON query language.
//!
//! cargo run -p heavenbase-examples --example vectors

use heavenbase::{Construction, Entity, Workspace};
use serde_json::json;

#[derive(Entity, Debug, Clone)]
struct Doc {
    name: String,
    category: String,
    /// A 3-dimensional embedding (real ones have hundreds of dimensions).
    #[hb(vector(3))]
    emb: Option<Vec<f32>>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In memory: SQLite for the scalars, an in-memory vector store for `emb`.
    let ws = Workspace::detached("vectors", Construction::preset("debug")).await?;
    ws.register_typed::<Doc>().await?;
    let docs: Vec<Doc> = (0..100)
        .map(|i| Doc {
            name: format!("doc {i}"),
            category: if i % 2 == 0 { "a".into() } else { "b".into() },
            emb: Some(vec![1.0, i as f32 / 100.0, 0.5]),
        })
        .collect();
    ws.upsert_many_typed(&docs).await?;

    let f = Doc::fields();
    let query = vec![1.0, 0.42, 0.5];
    let nearest =
        ws.query_typed::<Doc>()?.where_(f.category.eq("a")).near(f.emb, query.clone(), Some(3), Some("cosine"))?.await?;
    println!("typed:  {:?}", nearest.iter().map(|d| d.name.as_str()).collect::<Vec<_>>());
    assert_eq!(nearest[0].name, "doc 42");

    let sql = "SELECT d.name, round(n.score, 6) AS score \
               FROM near('doc', 'emb', '[1, 0.42, 0.5]', 3, 'cosine', 'category = ''a''') AS n \
               JOIN doc d USING (object_id) ORDER BY n.score DESC";
    println!("{}", datafusion::arrow::util::pretty::pretty_format_batches(&ws.sql(sql).await?)?);

    let spec = json!({"filter": {"category": "a"}, "near": {"field": "emb", "query": query, "top_k": 3}, "select": ["name"]});
    println!("json:   {:?}", ws.query_json("doc", &spec)?.rows().await?);
    Ok(())
}
