//! Attention run as one kernel on the CPU backend: `MatMul → Softmax (last axis) → MatMul`,
//! with up to three element-wise ops on the scores between (a scale, a position bias, a mask),
//! the scores and probabilities going nowhere else, computed head by head by
//! [`kernels::attention`](crate::kernels::attention) with the scores kept in the cache. Like
//! [`fusion`](super::fusion), the graph is not rewritten: the runner takes the nodes as one
//! only in runs that keep no value for a reverse pass, and runs them one by one otherwise
//! (and where the operands do not fit: broadcast heads, another backend).

use std::ops::Range;

use super::fusion::internal;
use super::graph::Graph;
use super::host;
use super::ops::is_plain_cpu;
use super::value::{FloatValue, normalize_axis};
use crate::kernels::attention::{Head, Term, attention};
use crate::kernels::matmul::MatRef;

/// How an element-wise node between the scores and the softmax combines the scores (its
/// first input, or either for a sum or a product) with its other input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combine {
    /// `scores + x`.
    Add,
    /// `scores · x`.
    Mul,
    /// `scores / x`.
    Div,
}

/// Attention's nodes: the scores' `MatMul`, the element-wise nodes on them (a scale, a
/// position bias, a mask: Hugging Face's and Swin's), the `Softmax` and the second `MatMul`.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The scores' product.
    pub scores: usize,
    /// Each element-wise node, how it combines, and its other input's name.
    pub terms: Vec<(usize, Combine, String)>,
    /// The softmax.
    pub softmax: usize,
    /// The product of the probabilities and the values: the group's output.
    pub product: usize,
}

/// Element-wise nodes a plan takes between the scores and the softmax, at most.
const MAX_TERMS: usize = 3;

/// Attention's nodes starting at node `i`, within `range`, where every tensor between the
/// first product and the second is read by the next node alone and kept for no one.
pub fn plan(graph: &Graph, i: usize, range: &Range<usize>, keep: &[&str]) -> Option<Plan> {
    let node = |j: usize| graph.nodes.get(j);
    let scores = node(i)?;
    if scores.op_type != "MatMul" || scores.inputs.len() != 2 {
        return None;
    }
    let mut terms = Vec::new();
    let mut j = i + 1;
    while let Some(n) = node(j).filter(|n| n.op_type != "Softmax") {
        let previous = &graph.nodes[j - 1].output;
        let [x, y] = n.inputs.as_slice() else {
            return None;
        };
        let (combine, other) = match (n.op_type.as_str(), x == previous, y == previous) {
            ("Add", true, false) => (Combine::Add, y),
            ("Add", false, true) => (Combine::Add, x),
            ("Mul", true, false) => (Combine::Mul, y),
            ("Mul", false, true) => (Combine::Mul, x),
            ("Div", true, false) => (Combine::Div, y),
            _ => return None,
        };
        if terms.len() == MAX_TERMS || !internal(graph, j - 1, range, keep) {
            return None;
        }
        terms.push((j, combine, other.clone()));
        j += 1;
    }
    let (softmax, product) = (node(j)?, node(j + 1)?);
    let chained = product.op_type == "MatMul"
        && product.inputs.len() == 2
        && softmax.inputs.first() == Some(&graph.nodes[j - 1].output)
        && product.inputs.first() == Some(&softmax.output);
    (chained && internal(graph, j - 1, range, keep) && internal(graph, j, range, keep)).then(|| {
        Plan {
            scores: i,
            terms,
            softmax: j,
            product: j + 1,
        }
    })
}

impl Plan {
    /// `MatMul+Mul+Softmax+MatMul`-style name for profiles.
    pub fn label(&self, graph: &Graph) -> String {
        (self.scores..=self.product)
            .map(|j| graph.nodes[j].op_type.as_str())
            .collect::<Vec<_>>()
            .join("+")
    }
}

/// One head's matrix of an operand stored with `strides` from `data`: rows and columns are
/// its last two axes, `at` its first two.
fn matrix<'a>(
    data: &'a [f32],
    strides: [usize; 4],
    at: [usize; 2],
    shape: [usize; 2],
) -> Option<MatRef<'a>> {
    let offset = at[0]
        .checked_mul(strides[0])?
        .checked_add(at[1].checked_mul(strides[1])?)?;
    let m = MatRef {
        data: data.get(offset..)?,
        shape,
        strides: [strides[2], strides[3]],
    };
    m.fits().then_some(m)
}

/// A term's operand as its values (row-major, copied: a bias or a mask is small) and its
/// stored dims, where it broadcasts to the scores' `dims` (each axis equal or 1) without
/// raising their `rank`.
fn term_values(x: &FloatValue, dims: [usize; 4], rank: usize) -> Option<(Vec<f32>, [usize; 4])> {
    let own = x.tensor.dims();
    let broadcasts = x.rank <= rank && (0..4).all(|a| own[a] == dims[a] || own[a] == 1);
    if !broadcasts || !is_plain_cpu(&x.tensor.device()) {
        return None;
    }
    let values = host::with_floats(&x.tensor, <[f32]>::to_vec).ok()?;
    Some((values, own))
}

/// Head `at`'s `m × n` matrix of a term's row-major values of stored `dims`, a broadcast axis
/// (of size 1) at stride 0.
fn term_matrix(values: &[f32], dims: [usize; 4], at: [usize; 2], shape: [usize; 2]) -> MatRef<'_> {
    let mut strides = [1usize; 4];
    for a in (0..3).rev() {
        strides[a] = strides[a + 1] * dims[a + 1];
    }
    let stride = |a: usize| if dims[a] == 1 { 0 } else { strides[a] };
    let offset = at[0] * stride(0) + at[1] * stride(1);
    MatRef {
        data: &values[offset..],
        shape,
        strides: [stride(2), stride(3)],
    }
}

/// `softmax(terms(a · b)) · v` (the softmax over the last axis, `softmax_axis` of the scores)
/// on the host, for operands of equal rank and batch axes on the plain CPU backend, read in
/// place whatever their strides, and terms that broadcast to the scores; `None` where they do
/// not fit (the caller runs the nodes).
pub fn run(
    a: &FloatValue,
    b: &FloatValue,
    v: &FloatValue,
    terms: &[(Combine, &FloatValue)],
    softmax_axis: Option<i64>,
) -> Option<FloatValue> {
    let rank = a.rank;
    let last = softmax_axis.and_then(|axis| normalize_axis(axis, rank).ok()) == Some(rank - 1);
    let fits = last
        && (2..=4).contains(&rank)
        && [b, v].iter().all(|x| x.rank == rank)
        && [a, b, v].iter().all(|x| is_plain_cpu(&x.tensor.device()));
    let ([h0, h1, m, k], [b0, b1, k2, n], [v0, v1, n2, d]) =
        (a.tensor.dims(), b.tensor.dims(), v.tensor.dims());
    if !fits || [b0, b1, v0, v1] != [h0, h1, h0, h1] || k2 != k || n2 != n {
        return None;
    }
    let mut shape = a.shape();
    shape[rank - 1] = d;
    // The scores and the output within the budget (else the nodes run, and refuse).
    let mut scores = shape.clone();
    scores[rank - 1] = n;
    crate::budget::check_shape(&scores).ok()?;
    crate::budget::check_shape(&shape).ok()?;
    let operands = (terms.iter())
        .map(|(c, x)| Some((*c, term_values(x, [h0, h1, m, n], rank)?)))
        .collect::<Option<Vec<_>>>()?;
    let values = host::with_view(&a.tensor, |da, sa| {
        host::with_view(&b.tensor, |db, sb| {
            host::with_view(&v.tensor, |dv, sv| {
                let heads = (0..h0 * h1)
                    .map(|h| {
                        let at = [h / h1, h % h1];
                        let terms = (operands.iter())
                            .map(|(c, (values, dims))| {
                                let t = term_matrix(values, *dims, at, [m, n]);
                                match c {
                                    Combine::Add => Term::Add(t),
                                    Combine::Mul => Term::Mul(t),
                                    Combine::Div => Term::Div(t),
                                }
                            })
                            .collect();
                        Some(Head {
                            a: matrix(da, sa, at, [m, k])?,
                            b: matrix(db, sb, at, [k, n])?,
                            v: matrix(dv, sv, at, [n, d])?,
                            terms,
                        })
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(attention(&heads))
            })
        })
    })
    .flatten()
    .flatten()
    .flatten()?;
    let t = host::tensor(values, [h0, h1, m, d], &a.tensor.device());
    Some(FloatValue::new(t, &shape))
}
