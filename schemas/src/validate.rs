//! Validation of a file's Arrow schema against the contract.

use arrow::datatypes::Schema;

use crate::TableDef;

/// Why a file does not satisfy its table's contract. Each message is one line
/// naming table, file and column.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SchemaError {
    #[error("table `{table}`, file {file}: required column `{column}` ({expected}) is missing")]
    MissingColumn {
        table: String,
        file: String,
        column: String,
        expected: String,
    },
    #[error(
        "table `{table}`, file {file}: column `{column}` has type {found}, expected {expected}"
    )]
    WrongType {
        table: String,
        file: String,
        column: String,
        expected: String,
        found: String,
    },
}

/// Check `schema` (of `file`) against `table`. Extra columns are ignored;
/// optional columns may be absent but must have the right type when present.
/// Returns every problem found, so one run reports them all.
pub fn validate_schema(table: &TableDef, file: &str, schema: &Schema) -> Vec<SchemaError> {
    let mut errors = Vec::new();
    for c in &table.columns {
        match schema.field_with_name(c.name) {
            Ok(f) if !c.ty.accepts(f.data_type()) => errors.push(SchemaError::WrongType {
                table: table.name.into(),
                file: file.into(),
                column: c.name.into(),
                expected: c.ty.name().into(),
                found: f.data_type().to_string(),
            }),
            Ok(_) => {}
            Err(_) if c.required => errors.push(SchemaError::MissingColumn {
                table: table.name.into(),
                file: file.into(),
                column: c.name.into(),
                expected: c.ty.name().into(),
            }),
            Err(_) => {}
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table;
    use arrow::datatypes::{DataType, Field};

    fn listings_schema_without(col: &str) -> Schema {
        let t = table("listings").unwrap();
        let s = t.schema();
        Schema::new(
            s.fields()
                .iter()
                .filter(|f| f.name() != col)
                .map(|f| f.as_ref().clone())
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn canonical_schemas_validate() {
        for t in crate::tables() {
            assert!(
                validate_schema(&t, "f", &t.schema()).is_empty(),
                "{}",
                t.name
            );
        }
    }

    #[test]
    fn missing_required_column_names_table_file_and_column() {
        let t = table("listings").unwrap();
        let errs = validate_schema(&t, "part-0.parquet", &listings_schema_without("title"));
        assert_eq!(errs.len(), 1);
        let msg = errs[0].to_string();
        assert!(
            msg.contains("listings") && msg.contains("part-0.parquet") && msg.contains("`title`"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn missing_optional_column_is_fine() {
        let t = table("listings").unwrap();
        assert!(validate_schema(&t, "f", &listings_schema_without("description")).is_empty());
    }

    #[test]
    fn wrong_type_is_reported_and_extra_columns_ignored() {
        let t = table("listings").unwrap();
        let mut fields: Vec<Field> = t
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for f in fields.iter_mut() {
            if f.name() == "price_cents" {
                *f = Field::new("price_cents", DataType::Utf8, true);
            }
        }
        fields.push(Field::new("extra", DataType::Float64, true));
        let errs = validate_schema(&t, "f", &Schema::new(fields));
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0]
                .to_string()
                .contains("`price_cents` has type Utf8, expected Int64"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn string_and_timestamp_variants_are_accepted() {
        use arrow::datatypes::TimeUnit;
        assert!(crate::Ty::Utf8.accepts(&DataType::Utf8View));
        assert!(crate::Ty::Utf8.accepts(&DataType::LargeUtf8));
        assert!(crate::Ty::Timestamp.accepts(&DataType::Timestamp(TimeUnit::Nanosecond, None)));
        assert!(!crate::Ty::Int64.accepts(&DataType::Float64));
        assert!(!crate::Ty::Utf8.accepts(&DataType::Binary));
    }
}
