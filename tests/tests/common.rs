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
}

/// Rows of a result as text cells, for exact comparison.
pub fn cells(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            out.push(
                (0..b.num_columns())
                    .map(|c| {
                        if b.column(c).is_null(r) {
                            "NULL".to_string()
                        } else {
                            array_value_to_string(b.column(c), r).unwrap()
                        }
                    })
                    .collect(),
            );
        }
    }
    out
}

pub fn rows(v: &[&[&str]]) -> Vec<Vec<String>> {
    v.iter().map(|r| r.iter().map(|c| c.to_string()).collect()).collect()
}
