//! How OCR output is scored against ground truth (shared by `dajia bench ocr`
//! and the GPU benchmark): NFKC, whitespace removed, character edit distance.

use unicode_normalization::UnicodeNormalization;

/// NFKC, whitespace removed: what accuracy compares.
pub fn normalise(s: &str) -> Vec<char> {
    s.nfkc().filter(|c| !c.is_whitespace()).collect()
}

/// Character edit distance (Levenshtein).
pub fn edit_distance(a: &[char], b: &[char]) -> usize {
    strsim::generic_levenshtein(&a.to_vec(), &b.to_vec())
}

/// Accuracy of `hyp` against `reference`: (errors, reference characters).
pub fn score(reference: &[String], hyp: &str) -> (usize, usize) {
    let r = normalise(&reference.concat());
    let h = normalise(hyp);
    (edit_distance(&h, &r), r.len())
}
