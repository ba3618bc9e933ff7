//! `Gemm` (alpha, beta, transA, transB) and `MatMul`, which takes a bias as a third input
//! where a load-time rewrite folded the `Add` after it (`onnx::rewrite`). On Burn's CPU
//! backend a `Gemm` or `MatMul` with constant `B` and `C` (a fully connected layer) runs
//! forward and backward on the host
//! ([`kernels::matmul::product`](crate::kernels::matmul::product)), with its weights laid out
//! once at load time.

use std::sync::Arc;

use burn::tensor::Tensor;

use super::conv::is_plain_cpu;
use super::elementwise::broadcast_dims;
use super::inputs::float_input;
use super::operator::{Backward, BuildContext, OpResult, Operator, OrNoGradient, unbroadcast};
use crate::error::OpError;
use crate::kernels::matmul::{MatRef, product};
use crate::kernels::par::gemm_parallelism;
use crate::onnx::host;
use crate::onnx::value::{FloatValue, Value, WIDE_RANK};

enum Linear {
    Gemm {
        alpha: f32,
        beta: f32,
        trans_a: bool,
        trans_b: bool,
        /// Constant `B` and `C` on the host, on the CPU backend.
        host: Option<HostDense>,
    },
    MatMul {
        /// A constant 2-D `B` (a linear layer on tokens) on the host, on the CPU backend.
        host: Option<HostDense>,
    },
}

/// A `Gemm`'s constant operands for the host kernel: `op(B)ᵀ` row-major (`n × k`: the
/// layout of a fully connected layer's weights, `transB = 1`), and `beta · C` broadcast to one
/// value per output column.
struct HostDense {
    weights: Arc<[f32]>,
    n: usize,
    k: usize,
    bias: Option<Arc<[f32]>>,
}

impl HostDense {
    /// The operands of a `Gemm` node when `B` is a 2-D constant and `C` is absent or a
    /// constant of 1 or `n` values; `None` otherwise (Burn's product runs then).
    fn of(ctx: &BuildContext, beta: f32, trans_b: bool) -> Option<Self> {
        let b_name = ctx.node.input.get(1)?;
        let [rows, cols] = <[usize; 2]>::try_from(ctx.constants.get(b_name)?.shape()).ok()?;
        let b = ctx.constant_input(1)?;
        let (n, k) = if trans_b { (rows, cols) } else { (cols, rows) };
        let weights: Arc<[f32]> = if trans_b {
            b.into()
        } else {
            (0..n * k).map(|i| b[(i % k) * n + i / k]).collect()
        };
        let bias = match ctx.node.input.get(2).filter(|c| !c.is_empty()) {
            None => None,
            Some(c_name) => {
                let shape = ctx.constants.get(c_name)?.shape();
                let c = ctx.constant_input(2)?;
                let per_column = c.len() == n && shape.last() == Some(&n);
                let bias: Arc<[f32]> = match c.len() {
                    1 => vec![beta * c[0]; n].into(),
                    _ if per_column && shape.iter().rev().skip(1).all(|&d| d == 1) => {
                        c.iter().map(|v| beta * v).collect()
                    }
                    _ => return None,
                };
                Some(bias)
            }
        };
        Some(HostDense {
            weights,
            n,
            k,
            bias,
        })
    }

    /// The weights as `op(B)` (`k × n`).
    fn op_b(&self) -> MatRef<'_> {
        MatRef::row_major(&self.weights, [self.n, self.k]).t()
    }
}

/// Below this many rows a product by more columns runs transposed (see [`forward_on_host`]).
const FEW_ROWS: usize = 64;

/// Threads for a product of `m × k` by `k × n`: all of them for a large one.
fn parallelism(m: usize, k: usize, n: usize) -> gemm::Parallelism {
    if m * k * n >= 1 << 21 {
        gemm_parallelism()
    } else {
        gemm::Parallelism::None
    }
}

/// A float value of rank 2 to 4 as the matrix `[rows, cols]` of its last axis against all the
/// others (a `MatMul` by a constant multiplies every row alike).
fn matrix_dims(v: &FloatValue) -> Option<[usize; 2]> {
    let shape = v.shape();
    let (&cols, lead) = shape.split_last()?;
    (2..=4)
        .contains(&shape.len())
        .then(|| [lead.iter().product(), cols])
}

/// `alpha · A · op(B) + beta · C` on the host (every row of a tensor `A` alike); `None` when
/// `a` does not end in the weights' inner size on the plain CPU device (Burn's product then
/// runs: under autodiff, or to report the shapes).
fn forward_on_host(h: &HostDense, a: &FloatValue, alpha: f32) -> OpResult<Option<FloatValue>> {
    let Some([m, k]) = matrix_dims(a).filter(|_| is_plain_cpu(&a.tensor.device())) else {
        return Ok(None);
    };
    if k != h.k {
        return Ok(None);
    }
    let mut shape = a.shape();
    if let Some(last) = shape.last_mut() {
        *last = h.n;
    }
    crate::budget::check_shape(&shape)?;
    let mut out = match &h.bias {
        Some(b) => b.repeat(m),
        None => vec![0.0; m * h.n],
    };
    host::with_floats(&a.tensor, |values| {
        let a = MatRef::row_major(values, [m, k]);
        let threads = parallelism(m, k, h.n);
        if m < h.n && m < FEW_ROWS {
            // Few rows (a chunk of images by many classes): the product of the transposes,
            // `op(B)ᵀ · Aᵀ`, whose rows are the weights' own (gemm then reads them in place;
            // the other way round it repacked all of them on every call: ResNet-50's 10 × 2048
            // by 2048 × 1000 took 2.4 ms against 0.8), added into `out` transposed. One image's
            // tokens are rows enough: ViT-S's 197 × 384 by 384 × 1152 took 0.8 ms as it is
            // against 1.0 transposed.
            let mut transposed = vec![0.0; h.n * m];
            product(&mut transposed, h.op_b().t(), a.t(), alpha, false, threads);
            for (r, row) in out.chunks_exact_mut(h.n).enumerate() {
                for (o, t) in row.iter_mut().zip(transposed[r..].iter().step_by(m)) {
                    *o += t;
                }
            }
        } else {
            product(&mut out, a, h.op_b(), alpha, h.bias.is_some(), threads);
        }
    })?;
    Ok(Some(host_tensor(out, &shape, a)))
}

/// `A`'s gradient on the host, `alpha · g · op(B)ᵀ`, for an `A` of `a_dims`; `None` when `g`
/// does not fit (the general path then runs, and reports it).
fn backward_on_host(
    h: &HostDense,
    g: &FloatValue,
    a_shape: &[usize],
    alpha: f32,
) -> OpResult<Option<FloatValue>> {
    let plain = is_plain_cpu(&g.tensor.device());
    let (Some([m, n]), k) = (matrix_dims(g).filter(|_| plain), h.k) else {
        return Ok(None);
    };
    let rows: usize = a_shape.iter().rev().skip(1).product();
    if n != h.n || a_shape.last() != Some(&k) || rows != m || a_shape.len() != g.rank {
        return Ok(None);
    }
    let mut da = vec![0.0; m * k];
    host::with_floats(&g.tensor, |values| {
        let (g, w) = (MatRef::row_major(values, [m, n]), h.op_b().t());
        product(&mut da, g, w, alpha, false, parallelism(m, n, k));
    })?;
    Ok(Some(host_tensor(da, a_shape, g)))
}

/// A host result of logical `shape` (rank 2 to 4) as a value on `like`'s device.
fn host_tensor(values: Vec<f32>, shape: &[usize], like: &FloatValue) -> FloatValue {
    let mut stored = [1usize; 4];
    stored[4 - shape.len()..].copy_from_slice(shape);
    let t = host::tensor(values, stored, &like.tensor.device());
    FloatValue::new(t, shape)
}

/// `B`'s gradient of a `MatMul`, `at · g` with `at` = `Aᵀ`, summed back over the batch axes
/// `B` was broadcast along.
fn product_gradient(at: Tensor<4>, g: &FloatValue, b: &FloatValue) -> OpResult<FloatValue> {
    if at.dims()[3] != g.tensor.dims()[2] {
        return Err(OpError::Shape(format!(
            "a gradient of shape {:?} does not fit B of shape {:?}",
            g.shape(),
            b.shape()
        )));
    }
    broadcast_dims(&at.dims()[..2], &g.tensor.dims()[..2])?;
    summed_back(at.matmul(g.tensor.clone()), g, &b.shape())
}

/// An operand's gradient `product` (batched like the output's gradient `g`, its last two axes
/// the operand's matrix) as a value, summed back to the operand's `shape` over the batch axes
/// it was broadcast along.
fn summed_back(product: Tensor<4>, g: &FloatValue, shape: &[usize]) -> OpResult<FloatValue> {
    let mut batched = g.shape();
    let d = product.dims();
    batched.truncate(g.rank - 2);
    batched.extend([d[2], d[3]]);
    unbroadcast(&FloatValue::new(product, &batched), shape)
}

/// Builds a `Gemm` or `MatMul` node.
pub fn build(ctx: &BuildContext) -> OpResult<Box<dyn Operator>> {
    let a = ctx.attrs();
    Ok(Box::new(match ctx.node.op_type.as_str() {
        "Gemm" => {
            let (beta, trans_b) = (a.float("beta", 1.0), a.int("transB", 0) != 0);
            let trans_a = a.int("transA", 0) != 0;
            Linear::Gemm {
                alpha: a.float("alpha", 1.0),
                beta,
                trans_a,
                trans_b,
                // A fully connected layer: A as it is (a transposed A goes through Burn).
                host: (is_plain_cpu(ctx.device) && !trans_a)
                    .then(|| HostDense::of(ctx, beta, trans_b))
                    .flatten(),
            }
        }
        _ => Linear::MatMul {
            host: is_plain_cpu(ctx.device)
                .then(|| constant_matrix(ctx).then(|| HostDense::of(ctx, 1.0, false)))
                .flatten()
                .flatten(),
        },
    }))
}

/// Whether input 1 is a 2-D constant (a linear layer's weights).
fn constant_matrix(ctx: &BuildContext) -> bool {
    ctx.node
        .input
        .get(1)
        .and_then(|b| ctx.constants.get(b))
        .is_some_and(|b| b.shape().len() == 2)
}

fn matrix(v: FloatValue, transpose: bool, which: &str) -> OpResult<FloatValue> {
    if v.rank < 2 {
        return Err(OpError::Shape(format!(
            "{which} must have rank >= 2, got shape {:?}",
            v.shape()
        )));
    }
    Ok(if transpose {
        FloatValue {
            tensor: v.tensor.swap_dims(2, 3),
            ..v
        }
    } else {
        v
    })
}

impl Operator for Linear {
    /// `op(A) op(B)` is linear in `A` (and in `B`, and `C` is added).
    fn affine_in(&self, _i: usize) -> bool {
        true
    }

    /// `A`'s gradient `g · op(B)ᵀ` (times alpha, transposed back for `transA`), and for a
    /// `MatMul` of two computed tensors (attention's `q kᵀ` and `softmax · v`) `B`'s, `Aᵀ · g`;
    /// none for a `Gemm`'s computed `B` or `C`, which Burn's autodiff handles.
    fn backward(&self, step: Backward) -> OpResult<Vec<Option<FloatValue>>> {
        let (alpha, ta, tb, host) = match self {
            Linear::Gemm {
                alpha,
                trans_a,
                trans_b,
                host,
                ..
            } => (*alpha, *trans_a, *trans_b, host.as_ref()),
            Linear::MatMul { host } => (1.0, false, false, host.as_ref()),
        };
        let a = step.float(0).or_no_gradient()?;
        let b = step.float(1).or_no_gradient()?;
        let g = &step.grad;
        let matmul = matches!(self, Linear::MatMul { .. });
        let wants_b = step.wants(1);
        if (wants_b && !matmul)
            || step.wanted.iter().skip(2).any(|&w| w)
            || [a.rank, b.rank, g.rank].iter().any(|&r| r >= WIDE_RANK)
            || a.rank < 2
            || b.rank < 2
            || g.rank < 2
        {
            return Err(OpError::NoGradient);
        }
        let db = if wants_b {
            Some(product_gradient(a.tensor.clone().swap_dims(2, 3), g, b)?)
        } else {
            None
        };
        if !step.wants(0) {
            return Ok(vec![None, db]);
        }
        if let Some(h) = host.filter(|_| !ta)
            && let Some(da) = backward_on_host(h, g, &a.shape(), alpha)?
        {
            return Ok(vec![Some(da)]);
        }
        // op(B)ᵀ: B itself when B is used transposed.
        let bt = if tb {
            b.tensor.clone()
        } else {
            b.tensor.clone().swap_dims(2, 3)
        };
        let [gk, bk] = [g.tensor.dims()[3], bt.dims()[2]];
        if gk != bk {
            return Err(OpError::Shape(format!(
                "a gradient of shape {:?} does not multiply B of shape {:?}",
                g.shape(),
                b.shape()
            )));
        }
        broadcast_dims(&g.tensor.dims()[..2], &bt.dims()[..2])?;
        let mut da = g.tensor.clone().matmul(bt);
        if alpha != 1.0 {
            da = da.mul_scalar(alpha);
        }
        if ta {
            da = da.swap_dims(2, 3);
        }
        Ok(vec![Some(summed_back(da, g, &a.shape())?), db])
    }

    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value> {
        let (alpha, host) = match self {
            Linear::Gemm { alpha, host, .. } => (*alpha, host.as_ref()),
            Linear::MatMul { host } => (1.0, host.as_ref()),
        };
        if let Some(h) = host
            && let Some(y) = forward_on_host(h, &float_input(inputs, 0)?, alpha)?
        {
            return Ok(Value::Float(y));
        }
        let (ta, tb) = match self {
            Linear::Gemm {
                trans_a, trans_b, ..
            } => (*trans_a, *trans_b),
            Linear::MatMul { .. } => (false, false),
        };
        let a = matrix(float_input(inputs, 0)?, ta, "A")?;
        let b = matrix(float_input(inputs, 1)?, tb, "B")?;
        let (sa, sb) = (a.shape(), b.shape());
        if sa[sa.len() - 1] != sb[sb.len() - 2] {
            return Err(OpError::Shape(format!("cannot multiply {sa:?} by {sb:?}")));
        }
        // The batch axes (all but the last two) broadcast against each other.
        let mut out = broadcast_dims(&sa[..sa.len() - 2], &sb[..sb.len() - 2])?;
        out.extend([sa[sa.len() - 2], sb[sb.len() - 1]]);
        crate::budget::check_shape(&out)?;
        if out.len() > WIDE_RANK {
            return Err(OpError::Unsupported(format!(
                "products of rank-{} tensors are not supported",
                out.len()
            )));
        }
        if out.len() == WIDE_RANK {
            if let Linear::Gemm { .. } = self {
                return Err(OpError::Shape("Gemm takes 2-D matrices".into()));
            }
            // Rank 5 multiplies in its own 5-D view (its first two axes are stored merged).
            let mut y = a.wide().matmul(b.wide());
            if let Some(Some(_)) = inputs.get(2) {
                let c = float_input(inputs, 2)?;
                broadcast_dims(&out, &c.shape())?;
                y = y.add(c.wide());
            }
            return Ok(Value::Float(FloatValue::from_wide(y)));
        }
        let mut y = a.tensor.matmul(b.tensor);
        let (alpha, beta) = match self {
            Linear::Gemm { alpha, beta, .. } => (*alpha, *beta),
            Linear::MatMul { .. } => (1.0, 1.0),
        };
        if alpha != 1.0 {
            y = y.mul_scalar(alpha);
        }
        if let Some(Some(_)) = inputs.get(2) {
            let c = float_input(inputs, 2)?;
            let with_c = broadcast_dims(&out, &c.shape())?;
            if with_c != out {
                return Err(OpError::Shape(format!(
                    "C of shape {:?} does not broadcast to the product's {out:?}",
                    c.shape()
                )));
            }
            let c = c.tensor;
            y = y.add(if beta != 1.0 { c.mul_scalar(beta) } else { c });
        }
        Ok(Value::Float(FloatValue::new(y, &out)))
    }
}
