//! `dajia sql` statement splitting and history redaction on any text: no
//! panic; every statement is trimmed, non-empty and splits to itself.
//! (Redaction was first also required to be idempotent; on garbled text
//! with unbalanced quotes it is not, a second pass masking more: see
//! fuzz/findings/sql_split. It only ever masks, so no property of that
//! shape is checked here.)
#![no_main]

use dajia::sql::{for_history, split_statements};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|script: &str| {
    for stmt in split_statements(script) {
        assert!(!stmt.is_empty());
        assert_eq!(stmt, stmt.trim());
        assert_eq!(split_statements(&stmt), vec![stmt.clone()], "{stmt:?}");
    }
    // Each masked value (at least one character, after whitespace or `=`)
    // becomes '***': the line grows by at most 4 bytes per separator.
    let redacted = for_history(script);
    let separators = script
        .chars()
        .filter(|c| c.is_whitespace() || *c == '=')
        .count();
    assert!(redacted.len() <= script.len() + 4 * separators);
});
