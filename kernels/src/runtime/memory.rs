//! Where each computed value lives: one arena per program, laid out from the
//! values' lifetimes (first write to last read), so that values that are
//! never alive together share memory. Executors allocate the arena once per
//! program and never during a run.

use std::ops::Range;

use super::program::{Program, ValueId};

#[derive(Debug, Clone)]
pub struct MemoryPlan {
    /// Per value: its offset in the arena (in f32s); constants and values no
    /// step computes have none.
    offsets: Vec<Option<usize>>,
    lens: Vec<usize>,
    pub arena_len: usize,
}

/// Offsets are aligned to 64 f32s (256 bytes, what cuDNN and cuBLAS like).
const ALIGN: usize = 64;

impl MemoryPlan {
    /// First-fit over live intervals, largest values first.
    pub fn new(p: &Program) -> Self {
        let n = p.values.len();
        let mut first = vec![usize::MAX; n];
        let mut last = vec![0usize; n];
        first[p.input] = 0;
        for (t, s) in p.steps.iter().enumerate() {
            // A step's output lives from the step itself (t + 1) on.
            first[s.output] = first[s.output].min(t + 1);
            last[s.output] = last[s.output].max(t + 1);
            for &i in &s.inputs {
                last[i] = last[i].max(t + 1);
            }
        }
        for &o in &p.outputs {
            last[o] = usize::MAX;
        }
        let mut order: Vec<ValueId> = (0..n)
            .filter(|&v| !p.is_const(v) && first[v] != usize::MAX)
            .collect();
        order.sort_by_key(|&v| std::cmp::Reverse(p.values[v].len()));
        let mut placed: Vec<(usize, usize, usize, usize)> = Vec::new(); // (start, end, first, last)
        let mut offsets = vec![None; n];
        let mut arena_len = 0;
        for v in order {
            let len = p.values[v].len().div_ceil(ALIGN) * ALIGN;
            let (f, l) = (first[v], last[v]);
            // Occupied ranges of values alive at the same time, by start.
            let mut busy: Vec<(usize, usize)> = placed
                .iter()
                .filter(|&&(_, _, pf, pl)| pf <= l && f <= pl)
                .map(|&(s, e, _, _)| (s, e))
                .collect();
            busy.sort_unstable();
            let mut at = 0;
            for (s, e) in busy {
                if at + len <= s {
                    break;
                }
                at = at.max(e);
            }
            placed.push((at, at + len, f, l));
            offsets[v] = Some(at);
            arena_len = arena_len.max(at + len);
        }
        MemoryPlan {
            offsets,
            lens: p.values.iter().map(|v| v.len()).collect(),
            arena_len,
        }
    }

    /// The arena range of a computed value.
    pub fn range(&self, v: ValueId) -> Range<usize> {
        let o = self.offsets[v].expect("a computed value has a place in the arena");
        o..o + self.lens[v]
    }

    pub fn offset(&self, v: ValueId) -> Option<usize> {
        self.offsets[v]
    }
}
