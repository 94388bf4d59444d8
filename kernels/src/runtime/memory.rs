//! Where each computed value lives: one arena per program, laid out from the
//! values' lifetimes (first write to last read), so that values that are
//! never alive together share memory. Executors allocate the arena once per
//! program and never during a run.
//!
//! Offsets count elements, so one plan serves both storage precisions
//! ([`Precision`]): a value at offset `o` starts at byte `o * bytes`. The
//! scratch of split reductions (partials and per-group statistics) is f32 in
//! either precision and sits after the values, at [`MemoryPlan::scratch_at`].

use std::ops::Range;

use super::launch::reduction_scratch;
use super::program::{Op, Program, ValueId};
use super::{Precision, RuntimeError};

#[derive(Debug, Clone)]
pub struct MemoryPlan {
    /// Per value: its offset in the arena (in elements); constants and values
    /// no step computes have none.
    offsets: Vec<Option<usize>>,
    lens: Vec<usize>,
    /// Elements the values take (a multiple of [`ALIGN`]).
    pub values_len: usize,
    /// f32s of step-local scratch after the values (split reductions'
    /// partials), sized for the step that needs the most.
    pub scratch_len: usize,
}

/// Offsets are aligned to 64 elements (256 bytes in f32, 128 in half: cuDNN
/// and cuBLAS want 16).
const ALIGN: usize = 64;
/// Where the scratch starts, in bytes.
const SCRATCH_ALIGN: usize = 256;

impl MemoryPlan {
    /// First-fit over live intervals, largest values first.
    pub fn new(p: &Program) -> Self {
        let n = p.values.len();
        // A reshape of a value read nowhere else takes that value's place
        // (same data, another shape): no copy, no second buffer.
        let uses = p.uses();
        let mut root: Vec<ValueId> = (0..n).collect();
        for s in &p.steps {
            if let (Op::Reshape, [x]) = (&s.op, s.inputs.as_slice()) {
                if !p.is_const(*x) && uses[*x] == 1 && *x != p.input {
                    root[s.output] = root[*x];
                }
            }
        }
        let mut first = vec![usize::MAX; n];
        let mut last = vec![0usize; n];
        first[p.input] = 0;
        for (t, s) in p.steps.iter().enumerate() {
            // A step's output lives from the step itself (t + 1) on.
            let o = root[s.output];
            first[o] = first[o].min(t + 1);
            last[o] = last[o].max(t + 1);
            for &i in &s.inputs {
                last[root[i]] = last[root[i]].max(t + 1);
            }
        }
        for &o in &p.outputs {
            last[root[o]] = usize::MAX;
        }
        let mut order: Vec<ValueId> = (0..n)
            .filter(|&v| root[v] == v && !p.is_const(v) && first[v] != usize::MAX)
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
        for v in 0..n {
            if root[v] != v {
                offsets[v] = offsets[root[v]];
            }
        }
        let scratch_len = p
            .steps
            .iter()
            .map(|s| {
                let dims = &p.values[s.inputs[0]].shape;
                match &s.op {
                    Op::Reduce { axes, .. } | Op::Softmax { axes } => reduction_scratch(dims, axes),
                    Op::RmsNorm { axis, .. } => reduction_scratch(dims, &[*axis]),
                    _ => 0,
                }
            })
            .max()
            .unwrap_or(0);
        MemoryPlan {
            offsets,
            lens: p.values.iter().map(|v| v.len()).collect(),
            values_len: arena_len.div_ceil(ALIGN) * ALIGN,
            scratch_len,
        }
    }

    /// Byte offset of the scratch when values are stored in `precision`.
    pub fn scratch_at(&self, precision: Precision) -> usize {
        (self.values_len * precision.bytes()).div_ceil(SCRATCH_ALIGN) * SCRATCH_ALIGN
    }

    /// Bytes of the whole arena (values and scratch) in `precision`.
    pub fn arena_bytes(&self, precision: Precision) -> usize {
        self.scratch_at(precision) + self.scratch_len * 4
    }

    /// An f32 arena for `p` holding `input` in its place (checked against
    /// the program's input shape).
    pub fn arena(&self, p: &Program, input: &[f32]) -> Result<Vec<f32>, RuntimeError> {
        p.check_input(input)?;
        let mut arena = vec![0f32; self.arena_bytes(Precision::F32) / 4];
        arena[self.range(p.input)].copy_from_slice(input);
        Ok(arena)
    }

    /// The program's outputs, read from a run's arena (or constants).
    pub fn outputs(&self, p: &Program, arena: &[f32]) -> Vec<Vec<f32>> {
        p.outputs
            .iter()
            .map(|&o| match &p.values[o].data {
                Some(d) => d.to_vec(),
                None => arena[self.range(o)].to_vec(),
            })
            .collect()
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
