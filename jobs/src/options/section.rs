//! A serde struct as a namespace of DataFusion config options.
//!
//! DataFusion's `config_namespace!` wants each field's type to implement its
//! `ConfigField` (no `f32`, no `PathBuf`, no dajia enum) and repeats every
//! field in a macro. dajia's option structs already are serde structs with
//! doc comments, defaults and `deny_unknown_fields` (the TOML file reads them),
//! so one generic adapter serves them all: `set` rewrites one field through
//! the struct's own serde (its parsing and type checks), `visit` lists every
//! field with its doc comment (the `documented` crate). Adding an option is
//! adding a field.

use std::ops::{Deref, DerefMut};

use datafusion::common::config::{ConfigField, Visit};
use datafusion::common::{DataFusionError, Result};
use documented::DocumentedFields;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

/// Options struct `T` as a config namespace (`dajia.<name>.<field>`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Section<T>(pub T);

impl<T> Deref for Section<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Section<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

fn config_err(msg: String) -> DataFusionError {
    DataFusionError::Configuration(msg)
}

impl<T: Serialize + DeserializeOwned + DocumentedFields> Section<T> {
    fn fields(&self) -> Map<String, Value> {
        match serde_json::to_value(&self.0) {
            Ok(Value::Object(m)) => m,
            // Every options struct is a struct of plain values.
            other => panic!("options section does not serialise to a map: {other:?}"),
        }
    }

    /// The field names, in declaration order.
    pub fn names() -> &'static [&'static str] {
        T::FIELD_NAMES
    }

    /// `(field, value as text, doc)` of every field.
    pub fn entries(&self) -> Vec<(&'static str, Option<String>, &'static str)> {
        let fields = self.fields();
        T::FIELD_NAMES
            .iter()
            .map(|name| {
                let doc = one_line(T::get_field_docs(name).unwrap_or(""));
                (*name, fields.get(*name).and_then(show), doc)
            })
            .collect()
    }
}

/// A doc comment on one line (`SHOW` and `\\set` print it in a table cell).
/// Kept for the process's life: `ConfigEntry` wants `&'static str`, and
/// there is one per option.
fn one_line(doc: &'static str) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    if !doc.contains('\n') {
        return doc;
    }
    static LINES: OnceLock<Mutex<HashMap<&'static str, &'static str>>> = OnceLock::new();
    let mut m = LINES
        .get_or_init(Default::default)
        .lock()
        .expect("doc lines");
    m.entry(doc).or_insert_with(|| {
        Box::leak(
            doc.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .into_boxed_str(),
        )
    })
}

/// A field's value as `SHOW` prints it: strings bare, floats that are `f32`
/// in their shortest `f32` form (not 0.10000000149011612), null as absent.
fn show(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            let g = f as f32;
            Some(if g as f64 == f {
                g.to_string()
            } else {
                f.to_string()
            })
        }
        other => Some(other.to_string()),
    }
}

/// `text` as a JSON value of the kind `current` is (a number stays a
/// number); the struct's serde then checks the exact type and range.
fn parse_like(current: &Value, text: &str) -> std::result::Result<Value, String> {
    let t = text.trim();
    let number = || {
        serde_json::from_str::<serde_json::Number>(t)
            .map(Value::Number)
            .map_err(|_| format!("`{text}` is not a number"))
    };
    match current {
        Value::String(_) => Ok(Value::String(text.to_string())),
        Value::Bool(_) => match t.to_ascii_lowercase().as_str() {
            "true" | "on" | "1" => Ok(Value::Bool(true)),
            "false" | "off" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!("`{text}` is not true or false")),
        },
        Value::Number(_) => number(),
        // An optional value: unset with `null`/`none`/'', else a number
        // (every optional option is numeric today) or text.
        Value::Null => match t.to_ascii_lowercase().as_str() {
            "" | "null" | "none" => Ok(Value::Null),
            _ => number().or_else(|_| Ok(Value::String(text.to_string()))),
        },
        Value::Array(_) | Value::Object(_) => Err("not a single value".into()),
    }
}

impl<T: Serialize + DeserializeOwned + DocumentedFields + Default> ConfigField for Section<T> {
    fn visit<V: Visit>(&self, v: &mut V, key_prefix: &str, _description: &'static str) {
        for (name, value, doc) in self.entries() {
            let key = format!("{key_prefix}.{name}");
            match value {
                Some(value) => v.some(&key, value, doc),
                None => v.none(&key, doc),
            }
        }
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let mut fields = self.fields();
        let Some(current) = fields.get(key) else {
            return Err(config_err(format!(
                "unknown option `{key}` (known: {})",
                T::FIELD_NAMES.join(", ")
            )));
        };
        let new = parse_like(current, value).map_err(|e| config_err(format!("{key}: {e}")))?;
        fields.insert(key.to_string(), new);
        self.0 = serde_json::from_value(Value::Object(fields))
            .map_err(|e| config_err(format!("{key} = {value}: {e}")))?;
        Ok(())
    }

    fn reset(&mut self, key: &str) -> Result<()> {
        let default = serde_json::to_value(T::default()).map_err(|e| config_err(e.to_string()))?;
        let Some(v) = default.get(key) else {
            return Err(config_err(format!("unknown option `{key}`")));
        };
        let mut fields = self.fields();
        fields.insert(key.to_string(), v.clone());
        self.0 = serde_json::from_value(Value::Object(fields))
            .map_err(|e| config_err(format!("{key}: {e}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dajia_kernels::risk::Weights;

    #[test]
    fn a_field_is_set_by_name_and_typed_by_the_struct() {
        let mut w = Section(Weights::default());
        w.set("contact_diversion", "0.5").unwrap();
        assert_eq!(w.contact_diversion, 0.5);
        let e = w.set("contact_diversoin", "0.5").unwrap_err().to_string();
        assert!(
            e.contains("unknown option `contact_diversoin`") && e.contains("contact_diversion"),
            "{e}"
        );
        let e = w.set("brand_mention", "high").unwrap_err().to_string();
        assert!(e.contains("`high` is not a number"), "{e}");
        w.reset("contact_diversion").unwrap();
        assert_eq!(w.contact_diversion, Weights::default().contact_diversion);
        let shown = w.entries();
        let (_, value, doc) = shown
            .iter()
            .find(|(n, _, _)| *n == "brand_mention")
            .unwrap();
        assert_eq!(value.as_deref(), Some("0.1"));
        assert!(doc.contains("protected brand"), "{doc}");
    }
}
