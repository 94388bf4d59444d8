//! Arrow schemas of every dajia input and output table (the contract in
//! `../shared/DESIGN.md`), their field documentation, and validation of a
//! file's schema against them.
//!
//! Validation compares *type families*, not exact types: a catalog written by
//! DuckDB, Spark or pyarrow may store strings as `Utf8`, `LargeUtf8` or
//! `Utf8View` and timestamps in any unit; all of those read the same. A
//! missing required column or a column of the wrong family is an error naming
//! table, file and column; extra columns are ignored.

mod tables;
mod validate;

pub use tables::{
    evidence_fields, reason_fields, table, tables, ColumnDef, TableDef, TableKind, Ty,
    HARD_IDENTITY_ATTRIBUTES, IDENTITY_ATTRIBUTES,
};
pub use validate::{validate_schema, SchemaError};
