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
        let mut local: HashMap<&str, u64> = HashMap::new();
        for i in 0..actions.len() {
            *local.entry(actions.value(i)).or_default() += 1;
        }
        let mut local_reasons: HashMap<&str, u64> = HashMap::new();
        for i in 0..codes.len() {
            if !codes.is_null(i) {
                *local_reasons.entry(codes.value(i)).or_default() += 1;
            }
        }
        let mut t = self.1.lock().expect("tally lock");
        for (k, v) in local {
            *t.actions.entry(k.to_string()).or_default() += v;
        }
        for (k, v) in local_reasons {
            *t.reasons.entry(k.to_string()).or_default() += v;
        }
    }
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
