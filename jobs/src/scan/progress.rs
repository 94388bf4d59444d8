//! Progress of the scan: the assessment UDF counts rows as it goes, and a
//! thread draws an indicatif bar from that count on a terminal.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};

use dajia_kernels::risk::KnowledgeBase;

use crate::udf::AssessListing;

static ABORT_AFTER_ROWS: std::sync::LazyLock<Option<u64>> = std::sync::LazyLock::new(|| {
    std::env::var("DAJIA_FAILPOINT_ABORT_AFTER_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
});

/// Rows assessed so far, and what was decided: counts by action and by
/// reason code, tallied per batch as the rows stream to the writer (so the
/// summary needs no second read of the output).
#[derive(Clone, Default, Debug)]
pub struct Counter(Arc<AtomicU64>, Arc<std::sync::Mutex<Tally>>);

pub use crate::delta::publish::Tally;

impl Counter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    pub fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
        *self.1.lock().expect("tally lock") = Tally::default();
    }
    pub fn tally(&self) -> Tally {
        self.1.lock().expect("tally lock").clone()
    }
    fn add(&self, out: &ColumnarValue) {
        use datafusion::arrow::array::{Array, AsArray};
        let ColumnarValue::Array(a) = out else { return };
        let s = a.as_struct();
        let actions = s.column(1).as_string::<i32>();
        let reasons = s.column(2).as_list::<i32>();
        let codes = reasons
            .values()
            .as_struct()
            .column(0)
            .as_string::<i32>()
            .clone();
        // Counted by borrowed value first (a handful of distinct codes per
        // batch), so the shared tally is locked and owned keys are made once
        // per code and batch, not once per row.
        let local = count_distinct((0..actions.len()).map(|i| Some(actions.value(i))));
        let local_reasons =
            count_distinct((0..codes.len()).map(|i| (!codes.is_null(i)).then(|| codes.value(i))));
        let mut t = self.1.lock().expect("tally lock");
        for (k, v) in local {
            *t.actions.entry(k.to_string()).or_default() += v;
        }
        for (k, v) in local_reasons {
            *t.reasons.entry(k.to_string()).or_default() += v;
        }
    }
}

/// How many times each value occurs, in order of first appearance. The
/// values counted here (actions, reason codes) are a handful: a short list
/// searched by comparison costs a fraction of hashing every row's string,
/// which was 1.4% of a scan's instructions. Past [`FEW`] distinct values
/// the rest are counted in a hash map.
fn count_distinct<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Vec<(&'a str, u64)> {
    const FEW: usize = 32;
    let mut few: Vec<(&str, u64)> = Vec::new();
    let mut many: HashMap<&str, u64> = HashMap::new();
    for v in values.flatten() {
        if let Some((_, n)) = few.iter_mut().find(|(k, _)| *k == v) {
            *n += 1;
        } else if few.len() < FEW {
            few.push((v, 1));
        } else {
            *many.entry(v).or_default() += 1;
        }
    }
    few.extend(many);
    few
}

/// `assess_listing` under the name `dajia_assess_counted`, counting rows.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Counted {
    inner: AssessListing,
    counter: CounterId,
}

#[derive(Debug, Clone)]
struct CounterId(Counter);
impl PartialEq for CounterId {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.0 .0, &o.0 .0)
    }
}
impl Eq for CounterId {}
impl std::hash::Hash for CounterId {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        (Arc::as_ptr(&self.0 .0) as usize).hash(h)
    }
}

impl ScalarUDFImpl for Counted {
    fn name(&self) -> &str {
        "dajia_assess_counted"
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(t)
    }
    fn return_type(&self, t: &[DataType]) -> Result<DataType> {
        self.inner.return_type(t)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows as u64;
        let out = self.inner.invoke_with_args(args)?;
        self.counter.0.add(&out);
        let done = self.counter.0 .0.fetch_add(n, Ordering::Relaxed) + n;
        // Fault injection for the "killed mid-scan" test: die like SIGKILL
        // (no unwinding, no cleanup) once this many rows are scored.
        if let Some(limit) = *ABORT_AFTER_ROWS {
            if done >= limit {
                eprintln!("dajia: DAJIA_FAILPOINT_ABORT_AFTER_ROWS={limit} reached, aborting");
                std::process::abort();
            }
        }
        Ok(out)
    }
}

pub fn counting_assess(kb: Arc<KnowledgeBase>, counter: Counter) -> ScalarUDF {
    ScalarUDF::from(Counted {
        inner: AssessListing::new(kb),
        counter: CounterId(counter),
    })
}

pub struct Bar {
    bar: Option<indicatif::ProgressBar>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Bar {
    /// Draw a bar when `enabled` and stderr is a terminal.
    pub fn start(enabled: bool, total: u64, counter: Counter) -> Bar {
        use std::io::IsTerminal;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if !enabled || !std::io::stderr().is_terminal() {
            return Bar { bar: None, stop };
        }
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} scoring [{bar:40}] {human_pos}/{human_len} listings {per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        let (b, s) = (bar.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                b.set_position(counter.get());
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Bar {
            bar: Some(bar),
            stop,
        }
    }
    pub fn finish(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
    pub fn abandon(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_values_are_counted_as_a_hash_map_counts_them() {
        // A few values, nulls, and more distinct values than the short list
        // holds (the rest go to the map), in an order that mixes them.
        let owned: Vec<String> = (0..2000).map(|i| format!("v{}", (i * 7) % 45)).collect();
        let values: Vec<Option<&str>> = owned
            .iter()
            .enumerate()
            .map(|(i, s)| (i % 11 != 0).then_some(s.as_str()))
            .collect();
        let mut want: HashMap<&str, u64> = HashMap::new();
        for v in values.iter().flatten() {
            *want.entry(v).or_default() += 1;
        }
        let got = count_distinct(values.iter().copied());
        assert_eq!(got.len(), want.len(), "each value once");
        assert_eq!(got.into_iter().collect::<HashMap<_, _>>(), want);
        assert!(count_distinct(std::iter::empty()).is_empty());
        assert_eq!(
            count_distinct(["allow", "review", "allow"].map(Some).into_iter()),
            vec![("allow", 2), ("review", 1)]
        );
    }
}
