//! Serving a workspace from a Rust program over the Postgres wire protocol, so
//! psql, JDBC, SQLAlchemy and BI tools can reach it while the program runs.
//!
//! cargo run -p heavenbase-examples --example serve    then
//! psql -h 127.0.0.1 -p 5444 -d served -c "SELECT * FROM reading ORDER BY at"

use heavenbase::{Construction, Entity, Workspace};

#[derive(Entity, Debug)]
struct Reading {
    name: String,
    celsius: f64,
    at: heavenbase::typed::chrono::DateTime<heavenbase::typed::chrono::Utc>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ws = Workspace::detached("served", Construction::preset("debug")).await?;
    ws.register_typed::<Reading>().await?;
    let start = heavenbase::typed::chrono::Utc::now();
    let readings: Vec<Reading> = (0..24)
        .map(|h| Reading {
            name: format!("sensor-1 hour {h}"),
            celsius: 18.0 + (h as f64 / 4.0).sin() * 3.0,
            at: start + heavenbase::typed::chrono::Duration::hours(h),
        })
        .collect();
    ws.upsert_many_typed(&readings).await?;

    let opts = heavenbase_pgwire::ServeOptions { port: 5444, ..Default::default() };
    println!("serving 'served' on {}:{}: psql -h {} -p {} -d served", opts.host, opts.port, opts.host, opts.port);
    // Until Ctrl-C; then running statements finish and the server closes.
    heavenbase_pgwire::serve_until(vec![ws], &opts, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
