//! Resolving the options once, in one place, with one precedence:
//! defaults < TOML file < model file (`--model`) < environment < flags. (The environment variables are
//! those of the named flags, read by clap, which lets a flag win over its
//! variable.)

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{DajiaOptions, OptionFlags, SECTIONS};

/// The options of a job: `flags.config`'s file over the defaults, then the
/// flags; every value checked.
pub fn resolve(flags: &OptionFlags) -> Result<DajiaOptions> {
    resolve_with(flags, Vec::new())
}

/// As [`resolve`], with a command's own named flags as `(key, value)` pairs
/// (`dajia scan --max-text-bytes`), applied with the shared named flags,
/// before `--set`.
pub fn resolve_with(flags: &OptionFlags, own: Vec<(&str, String)>) -> Result<DajiaOptions> {
    let mut o = DajiaOptions::default();
    if let Some(path) = &flags.config {
        apply_file(&mut o, path)?;
    }
    if let Some(path) = &flags.model {
        crate::train::ModelFile::read(path)?.apply(&mut o);
    }
    let own = own.into_iter().map(|(k, v)| (k.to_string(), v));
    for (k, v) in own.chain(flags.pairs().map_err(anyhow::Error::msg)?) {
        o.set_key(&k, &v)
            .with_context(|| format!("option {k}={v}"))?;
    }
    o.validate()?;
    Ok(o)
}

/// Apply a TOML file's `[section] key = value` settings.
pub fn apply_file(o: &mut DajiaOptions, path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config {}", path.display()))?;
    apply_toml(o, &text).with_context(|| format!("config {}", path.display()))
}

/// Apply TOML text's settings: every key must be an option of its section.
pub fn apply_toml(o: &mut DajiaOptions, text: &str) -> Result<()> {
    let table: toml::Table = toml::from_str(text).context("not valid TOML")?;
    for (section, body) in &table {
        let Some(body) = body.as_table() else {
            bail!(
                "`{section}` is not in a section: settings go under [{}]",
                SECTIONS.join("], [")
            );
        };
        for (key, value) in body {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => bail!(
                    "[{section}] {key}: a {} is not a setting's value",
                    other.type_str()
                ),
            };
            o.set_key(&format!("{section}.{key}"), &text)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags_in_that_order() {
        let mut o = DajiaOptions::default();
        apply_toml(
            &mut o,
            "[weights]\nbrand_mention = 0.3\n[ocr]\nbox_thresh = 0.4\nuse_cls = true\n[images]\nembedder = \"mobilenet\"\n",
        )
        .unwrap();
        assert_eq!(o.weights.brand_mention, 0.3);
        assert!(o.ocr.use_cls);
        let e = apply_toml(&mut o, "[weights]\nbrand_mentoin = 0.3\n").unwrap_err();
        assert!(format!("{e:#}").contains("brand_mention"), "{e:#}");
        let e = apply_toml(&mut o, "[wieghts]\nbrand_mention = 0.3\n").unwrap_err();
        assert!(format!("{e:#}").contains("dajia.weights.*"), "{e:#}");
        let e = apply_toml(&mut o, "review = 0.3\n").unwrap_err();
        assert!(format!("{e:#}").contains("[thresholds]"), "{e:#}");
        let flags = OptionFlags {
            set: vec!["weights.brand_mention=0.25".into()],
            ocr_rec_batch: Some(8),
            ..Default::default()
        };
        for (k, v) in flags.pairs().unwrap() {
            o.set_key(&k, &v).unwrap();
        }
        assert_eq!(o.weights.brand_mention, 0.25);
        assert_eq!(o.ocr.rec_batch, 8);
        assert_eq!(
            o.ocr.box_thresh, 0.4,
            "the file's value stays unless a flag sets it"
        );
    }

    #[test]
    fn out_of_range_values_are_refused_before_any_work() {
        let flags = OptionFlags {
            set: vec![
                "thresholds.review=0.9".into(),
                "thresholds.takedown=0.8".into(),
            ],
            ..Default::default()
        };
        let e = resolve(&flags).unwrap_err().to_string();
        assert!(e.contains("must not exceed"), "{e}");
        let flags = OptionFlags {
            set: vec!["weights.contact_diversion=1.5".into()],
            ..Default::default()
        };
        assert!(resolve(&flags).is_err());
        let flags = OptionFlags {
            set: vec!["ocr.det_min_side=1000".into()],
            ..Default::default()
        };
        let e = resolve(&flags).unwrap_err().to_string();
        assert!(
            e.contains("det_min_side 1000 is not in 32..=det_max_side (960)"),
            "{e}"
        );
        let flags = OptionFlags {
            set: vec!["ocr.det_min_side=736".into()],
            ..Default::default()
        };
        assert_eq!(resolve(&flags).unwrap().ocr.det_min_side, 736);
        let flags = OptionFlags {
            set: vec!["ocr.box_thresh".into()],
            ..Default::default()
        };
        assert!(resolve(&flags)
            .unwrap_err()
            .to_string()
            .contains("KEY=VALUE"));
    }
}
