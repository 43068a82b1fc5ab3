use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use heavenbase::{Construction, Home, Workspace};

/// A fresh HeavenBase home in a temporary folder, removed on drop.
pub struct TestHome {
    pub dir: tempfile::TempDir,
    pub home: Home,
}

impl TestHome {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::new(dir.path());
        TestHome { dir, home }
    }

    pub async fn open(&self, id: &str, c: Construction) -> Workspace {
        Workspace::open_in(&self.home, id, c).await.expect("open workspace")
    }

    /// A Postgres backend config on a schema of its own (emptied first), named
    /// after `tag` and this home, so tests running at once never share tables.
    /// Call only after [`pg_url`] said Postgres is there.
    pub async fn postgres(&self, tag: &str) -> serde_json::Value {
        let url = pg_url().expect("postgres tests check pg_url() first");
        let schema = self.pg_schema(tag);
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect to Postgres");
        tokio::spawn(connection);
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await.expect("drop test schema");
        serde_json::json!({"type": "postgres", "url": url, "schema": schema})
    }

    /// `hbt_<tag>_<suffix of this home's folder>`.
    pub fn pg_schema(&self, tag: &str) -> String {
        let dir = self.dir.path().file_name().unwrap().to_string_lossy().to_lowercase();
        let suffix: String = dir.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let tag: String = tag.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        format!("hbt_{tag}_{suffix}")
    }
}

/// The Postgres the tests use (`HEAVENBASE_TEST_PG`). Outside CI a missing
/// variable skips Postgres tests with a printed reason; under `CI=true` it is an
/// error, and an unreachable server fails the tests that need it.
pub fn pg_url() -> Option<String> {
    match std::env::var("HEAVENBASE_TEST_PG") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("HEAVENBASE_TEST_PG is not set; .ci/run sets it to the Postgres on 127.0.0.1:5432")
        }
        _ => {
            eprintln!("skipped: HEAVENBASE_TEST_PG is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres)");
            None
        }
    }
}

/// Drop the schemas a test made (best effort: a failed test leaves them for the
/// next run's `DROP SCHEMA IF EXISTS`).
pub async fn drop_pg_schemas(schemas: &[String]) {
    let Some(url) = pg_url() else { return };
    if let Ok((client, connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        tokio::spawn(connection);
        for s in schemas {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {s} CASCADE")).await;
        }
    }
}

/// Rows of a result as text cells, for exact comparison.
pub fn cells(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            out.push(
                (0..b.num_columns())
                    .map(
                        |c| {
                            if b.column(c).is_null(r) {
                                "NULL".to_string()
                            } else {
                                array_value_to_string(b.column(c), r).unwrap()
                            }
                        },
                    )
                    .collect(),
            );
        }
    }
    out
}

pub fn rows(v: &[&[&str]]) -> Vec<Vec<String>> {
    v.iter().map(|r| r.iter().map(|c| c.to_string()).collect()).collect()
}
