//! Printing results: aligned tables, CSV, JSON, NDJSON.

use clap::ValueEnum;
use datafusion::arrow::record_batch::RecordBatch;

use crate::{Failure, user_error};

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Ndjson,
}

pub fn print(batches: &[RecordBatch], format: Format) -> Result<(), Failure> {
    let err = |e: datafusion::arrow::error::ArrowError| user_error(e.to_string());
    let stdout = std::io::stdout();
    match format {
        Format::Table => {
            if batches.iter().all(|b| b.num_columns() == 0) {
                return Ok(());
            }
            println!("{}", datafusion::arrow::util::pretty::pretty_format_batches(batches).map_err(err)?);
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            println!("({rows} row{})", if rows == 1 { "" } else { "s" });
        }
        Format::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new().with_header(true).build(stdout.lock());
            for b in batches {
                w.write(b).map_err(err)?;
            }
        }
        Format::Json => {
            let mut w = datafusion::arrow::json::ArrayWriter::new(stdout.lock());
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            w.write_batches(&refs).map_err(err)?;
            w.finish().map_err(err)?;
            println!();
        }
        Format::Ndjson => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(stdout.lock());
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            w.write_batches(&refs).map_err(err)?;
            w.finish().map_err(err)?;
        }
    }
    Ok(())
}
