//! Test hook for kill tests: `DAJIA_FAILPOINT_ABORT_AT=STAGE` aborts the
//! process when the scan reaches `STAGE` (`abort()`: no unwinding and no
//! clean-up, as `kill -9`). Stages: `catalog` (catalog read), `images`
//! (image stage done, nothing published), `between_commits` (`risk_scores`
//! committed, `rejects` not), `after_commits` (both committed, the manifest
//! not yet `succeeded`). Mid-scoring: `DAJIA_FAILPOINT_ABORT_AFTER_ROWS`.

pub fn reached(stage: &str) {
    if std::env::var("DAJIA_FAILPOINT_ABORT_AT").is_ok_and(|s| s == stage) {
        eprintln!("dajia: DAJIA_FAILPOINT_ABORT_AT={stage} reached, aborting");
        std::process::abort();
    }
}
