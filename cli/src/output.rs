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
    /// psql's `\x` layout: one block per row, a line per column.
    Expanded,
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
        Format::Expanded => print_expanded(batches).map_err(err)?,
        Format::Ndjson => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(stdout.lock());
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            w.write_batches(&refs).map_err(err)?;
            w.finish().map_err(err)?;
        }
    }
    Ok(())
}

fn print_expanded(batches: &[RecordBatch]) -> Result<(), datafusion::arrow::error::ArrowError> {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let options = FormatOptions::default().with_null("");
    let mut record = 0;
    for batch in batches {
        let schema = batch.schema();
        let width = schema.fields().iter().map(|f| f.name().chars().count()).max().unwrap_or(0);
        let formatters =
            batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options)).collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            record += 1;
            println!("-[ RECORD {record} ]{}", "-".repeat(width.saturating_sub(8) + 4));
            for (field, formatter) in schema.fields().iter().zip(&formatters) {
                println!("{:<width$} | {}", field.name(), formatter.value(row));
            }
        }
    }
    if record == 0 {
        println!("(0 rows)");
    }
    Ok(())
}
