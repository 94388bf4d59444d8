//! `dajia sql` statement splitting and history redaction on any text: no
//! panic; every statement is trimmed, non-empty and splits to itself; a
//! redacted line never grows a secret back.
#![no_main]

use dajia::sql::{for_history, split_statements};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|script: &str| {
    for stmt in split_statements(script) {
        assert!(!stmt.is_empty());
        assert_eq!(stmt, stmt.trim());
        assert_eq!(split_statements(&stmt), vec![stmt.clone()], "{stmt:?}");
    }
    let redacted = for_history(script);
    assert_eq!(for_history(&redacted), redacted, "redaction is stable");
});
