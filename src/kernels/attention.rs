//! Attention's `softmax(a · b) · v`, one matrix of the batch (one image's head) per task: the
//! scores `a · b` stay in the thread's scratch buffer for the softmax and the second product,
//! where the three ops one by one wrote them out and read them back twice (PyTorch's CPU
//! attention keeps them in the cache the same way). A head's matrices are too small to split
//! over the threads: the heads run side by side, each product on one thread.

use super::matmul::{MatRef, matmul_columns_into, matmul_into, with_columns};
use super::transcendental::softmax_rows_here;
use super::uninit::{Written, written_in_parts};

/// An element-wise op on a head's scores before the softmax (a scale, a position bias, a
/// mask), with its operand's `m × n` matrix for that head (a broadcast axis at stride 0).
#[derive(Clone, Copy, Debug)]
pub enum Term<'a> {
    /// `scores + t`.
    Add(MatRef<'a>),
    /// `scores · t`.
    Mul(MatRef<'a>),
    /// `scores / t`.
    Div(MatRef<'a>),
}

impl Term<'_> {
    /// Applies the op to the scores, rows of `n` values.
    fn apply(&self, scores: &mut [f32], n: usize) {
        let (t, f): (MatRef, fn(f32, f32) -> f32) = match *self {
            Term::Add(t) => (t, |s, x| s + x),
            Term::Mul(t) => (t, |s, x| s * x),
            Term::Div(t) => (t, |s, x| s / x),
        };
        for (r, row) in scores.chunks_exact_mut(n).enumerate() {
            let from = &t.data[r * t.strides[0]..];
            if t.strides[1] == 1 {
                row.iter_mut().zip(from).for_each(|(s, &x)| *s = f(*s, x));
            } else {
                let step = t.strides[1];
                row.iter_mut()
                    .enumerate()
                    .for_each(|(c, s)| *s = f(*s, from[c * step]));
            }
        }
    }

    fn operand(&self) -> MatRef<'_> {
        match *self {
            Term::Add(t) | Term::Mul(t) | Term::Div(t) => t,
        }
    }
}

/// One matrix of the batch: `a` (`m × k`), `b` (`k × n`) and `v` (`n × d`), read in place, and
/// the ops on its scores.
#[derive(Clone, Debug)]
pub struct Head<'a> {
    /// The queries (scaled where the model scales them).
    pub a: MatRef<'a>,
    /// The keys, transposed.
    pub b: MatRef<'a>,
    /// The values.
    pub v: MatRef<'a>,
    /// What is done to the scores `a · b` before the softmax, in order.
    pub terms: Vec<Term<'a>>,
}

/// `softmax(terms(a · b)) · v` (the softmax along each row of the scores) for every head,
/// row-major `[heads, m, d]`. Panics unless every head has the same, fitting shapes.
pub fn attention(heads: &[Head]) -> Vec<f32> {
    let Some(first) = heads.first() else {
        return Vec::new();
    };
    let ([m, k], [_, n], [_, d]) = (first.a.shape, first.b.shape, first.v.shape);
    assert!(
        heads.iter().all(|h| h.a.shape == [m, k]
            && h.b.shape == [k, n]
            && h.v.shape == [n, d]
            && h.terms
                .iter()
                .all(|t| t.operand().shape == [m, n] && t.operand().fits())),
        "heads of different shapes"
    );
    written_in_parts(heads.len(), m * d, |i, out| {
        let h = &heads[i];
        let start = Written::nothing_of(out);
        with_columns(m * n, |scores| {
            matmul_into(scores, h.a, h.b, gemm::Parallelism::None);
            for term in &h.terms {
                term.apply(scores, n);
            }
            softmax_rows_here(scores, n);
            let p = MatRef::row_major(scores, [m, n]);
            let rows = matmul_columns_into(out, d, 0..d, p, h.v, gemm::Parallelism::None);
            rows.into_iter().map(Written::of).fold(start, Written::and)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::values;

    #[test]
    fn attention_matches_the_definition() {
        let (m, k, n, d) = (7, 5, 9, 3);
        let heads = 4;
        let a = values(heads * m * k, 1);
        // b stored transposed (n × k per head), as a view of keys is.
        let keys = values(heads * n * k, 2);
        let v = values(heads * n * d, 3);
        // A scale (one value for every head) and a bias per head broadcast over the rows.
        let (scale, bias) = ([0.5f32], values(heads * n, 4));
        let list: Vec<Head> = (0..heads)
            .map(|h| Head {
                a: MatRef::row_major(&a[h * m * k..][..m * k], [m, k]),
                b: MatRef::row_major(&keys[h * n * k..][..n * k], [n, k]).t(),
                v: MatRef::row_major(&v[h * n * d..][..n * d], [n, d]),
                terms: vec![
                    Term::Mul(MatRef {
                        data: &scale,
                        shape: [m, n],
                        strides: [0, 0],
                    }),
                    Term::Add(MatRef {
                        data: &bias[h * n..][..n],
                        shape: [m, n],
                        strides: [0, 1],
                    }),
                ],
            })
            .collect();
        let got = attention(&list);
        assert_eq!(got.len(), heads * m * d);
        for h in 0..heads {
            for r in 0..m {
                let scores: Vec<f64> = (0..n)
                    .map(|c| {
                        (0..k)
                            .map(|j| {
                                f64::from(a[h * m * k + r * k + j])
                                    * f64::from(keys[h * n * k + c * k + j])
                            })
                            .sum::<f64>()
                            * 0.5
                            + f64::from(bias[h * n + c])
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                for c in 0..d {
                    let want: f64 = (0..n)
                        .map(|j| e[j] / sum * f64::from(v[h * n * d + j * d + c]))
                        .sum();
                    let g = f64::from(got[h * m * d + r * d + c]);
                    assert!(
                        (g - want).abs() <= 1e-5,
                        "head {h} ({r}, {c}): {g} vs {want}"
                    );
                }
            }
        }
    }
}
