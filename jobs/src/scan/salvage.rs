//! Salvage of a listings file that cannot be decoded whole, typically
//! because a string column holds bytes that are not UTF-8 (Arrow refuses the
//! whole page). Numbers are read with Arrow (they decode fine); each string
//! column is read as raw bytes with Parquet's column reader and checked value
//! by value. Rows with a bad value become rejects with their
//! `listing_id`; the rest are written to a staging file the scan reads
//! instead. When the reads disagree on the row count, the file is not
//! salvaged (the caller rejects it whole).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Result};
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::{concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use parquet::file::reader::{FileReader, SerializedFileReader};

/// Columns of `listings` the scan reads, with how to get them.
const STRINGS: &[&str] = &["title", "description", "category", "brand"];
const NUMBERS: &[&str] = &["listing_id", "seller_id", "price_cents"];

pub struct Salvaged {
    /// The readable rows, with the scan's columns.
    pub batch: RecordBatch,
    /// `(listing_id, reason)` of the rows that could not be read.
    pub rejects: Vec<(Option<i64>, String)>,
}

pub fn salvage(path: &Path) -> Result<Salvaged> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?;
    let arrow_schema = builder.schema().clone();
    let roots: Vec<usize> = NUMBERS
        .iter()
        .filter_map(|c| arrow_schema.index_of(c).ok())
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder.with_projection(mask).build()?;
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
    let Some(first) = batches.first() else {
        bail!("no rows")
    };
    let numbers = concat_batches(&first.schema(), &batches)?;
    let n = numbers.num_rows();

    let mut fields: Vec<Field> = numbers
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns: Vec<ArrayRef> = numbers.columns().to_vec();
    let mut bad: Vec<Option<String>> = vec![None; n];
    for name in STRINGS.iter().filter(|c| arrow_schema.index_of(c).is_ok()) {
        let values = read_strings(path, name, &mut bad)?;
        if values.len() != n {
            bail!("column {name}: {} values for {n} rows", values.len());
        }
        fields.push(Field::new(*name, DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(values)));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    let ids = numbers
        .column_by_name("listing_id")
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>().cloned());
    let mut rejects = Vec::new();
    for (i, why) in bad.iter().enumerate() {
        if let Some(why) = why {
            let id = ids
                .as_ref()
                .and_then(|a| (!a.is_null(i)).then(|| a.value(i)));
            rejects.push((id, why.clone()));
        }
    }
    let keep = BooleanArray::from(bad.iter().map(|b| b.is_none()).collect::<Vec<_>>());
    Ok(Salvaged {
        batch: filter_record_batch(&batch, &keep)?,
        rejects,
    })
}

/// One string column as raw bytes (the column reader does not check UTF-8),
/// checked row by row; a value that is not UTF-8 is recorded in `bad` and
/// read as null.
fn read_strings(
    path: &Path,
    name: &str,
    bad: &mut [Option<String>],
) -> Result<Vec<Option<String>>> {
    use parquet::column::reader::ColumnReader;
    let reader = SerializedFileReader::new(File::open(path)?)?;
    let descr = reader.metadata().file_metadata().schema_descr_ptr();
    let Some(col) = (0..descr.num_columns()).find(|&i| descr.column(i).path().string() == name)
    else {
        bail!("no flat column {name}")
    };
    let max_def = descr.column(col).max_def_level();
    let mut out: Vec<Option<String>> = Vec::new();
    for rg in 0..reader.num_row_groups() {
        let ColumnReader::ByteArrayColumnReader(mut r) =
            reader.get_row_group(rg)?.get_column_reader(col)?
        else {
            bail!("column {name} is not a byte array")
        };
        loop {
            let mut defs: Vec<i16> = Vec::new();
            let mut values = Vec::new();
            let (records, _, _) = r.read_records(8192, Some(&mut defs), None, &mut values)?;
            if records == 0 {
                break;
            }
            let mut next = values.into_iter();
            for k in 0..records {
                let present = max_def == 0 || defs.get(k).is_some_and(|d| *d == max_def);
                if !present {
                    out.push(None);
                    continue;
                }
                let v = next.next().map(|b| b.data().to_vec()).unwrap_or_default();
                match String::from_utf8(v) {
                    Ok(s) => out.push(Some(s)),
                    Err(e) => {
                        let i = out.len();
                        if let Some(slot) = bad.get_mut(i) {
                            slot.get_or_insert_with(|| {
                                format!(
                                    "{name} is not valid UTF-8 (byte {})",
                                    e.utf8_error().valid_up_to()
                                )
                            });
                        }
                        out.push(None);
                    }
                }
            }
        }
    }
    Ok(out)
}
