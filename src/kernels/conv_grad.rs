//! Input gradients of convolution and pooling on the host, for the reverse pass that
//! pixel-level Integrated Gradients runs through the whole network (see
//! `onnx::backprop`). The weights are constants, so only the input's gradient is
//! needed: for a convolution `dX = Wᵀ · dY` per group, as one `gemm` into columns (one row per
//! input channel and tap) that are sent back onto the input planes through phase planes (the
//! mirror of the forward's im2col and window kernel); a depthwise convolution sends each tap
//! straight from the output gradient. Max pooling sends each output's gradient to the first
//! maximum of its window, average pooling shares it over the window, as PyTorch does.

use std::cell::{Cell, RefCell};

use super::activation::Activation;
use super::isa::{Kernel, isa_dispatch};
use super::matmul::{GroupProduct, matmul, with_columns};
use super::par::{par_chunks, threads};
use super::shape::{ConvShape, check_len, product};
use super::window::PhaseLayout;

thread_local! {
    /// One image's output gradient taken through a [`Gate`], on this thread.
    static GATED: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// An activation that followed the convolution, and its output: the gradient it receives is
/// the activation's, taken through it first (image by image, inside the kernel).
#[derive(Clone, Copy)]
pub struct Gate<'a> {
    /// The activation's output, NCHW like the convolution's.
    pub output: &'a [f32],
    /// The activation (its derivative read off the output).
    pub activation: Activation,
}

/// The gradient with respect to the input of `batch` NCHW images, from the gradient `g` of the
/// convolution's output (or of the activation `gate` after it) and its weights `w` (`[cout,
/// cin / groups, kh, kw]`, row-major).
pub fn conv2d_input_grad(
    g: &[f32],
    batch: usize,
    s: &ConvShape,
    w: &[f32],
    gate: Option<Gate>,
) -> Vec<f32> {
    check_len("the output gradient", g.len(), s.output_len(batch));
    check_len("the weights", w.len(), s.weight_len());
    if let Some(gate) = gate {
        check_len("the gate's output", gate.output.len(), s.output_len(batch));
    }
    let out_image = s.output_len(1);
    let in_image = s.input_len(1);
    let mut dx = vec![0.0f32; batch * in_image];
    // Few images: let the matrix product use the threads instead.
    let inner_parallel = batch < threads();
    par_chunks(&mut dx, in_image, |b, dx_b| {
        let image = b * out_image..(b + 1) * out_image;
        let mut run = |g_b: &[f32]| {
            if s.is_depthwise() {
                depthwise(g_b, s, w, dx_b);
            } else {
                grouped(g_b, s, w, dx_b, inner_parallel);
            }
        };
        match gate {
            Some(gate) => {
                // Taken out for the call and put back after it, as `matmul::with_scratch` does:
                // a thread that waits inside `run` for the product's other threads may run
                // another image's reverse step meanwhile (a borrow held across it would panic).
                let mut gated = GATED.take();
                gated.clear();
                let a = gate.activation;
                gated.extend(
                    g[image.clone()]
                        .iter()
                        .zip(&gate.output[image])
                        .map(|(&g, &y)| g * a.derivative_at_output(y)),
                );
                run(&gated);
                GATED.set(gated);
            }
            None => run(&g[image]),
        }
    });
    dx
}

/// One image, any groups: `Wᵀ · dY` per group, then col2im (unless pointwise).
fn grouped(g: &[f32], s: &ConvShape, w: &[f32], dx: &mut [f32], inner_parallel: bool) {
    let p = GroupProduct::of(s, inner_parallel);
    let (n, k, cout_g) = (p.n, p.k, p.cout_g);
    let taps = s.kernel[0] * s.kernel[1];
    let ones = vec![1.0f32; taps];
    let columns_len = if s.is_pointwise() { 0 } else { k * n };
    with_columns(columns_len, |columns| {
        for grp in 0..s.groups {
            let g_g = &g[grp * cout_g * n..(grp + 1) * cout_g * n];
            let w_g = &w[grp * cout_g * k..(grp + 1) * cout_g * k];
            let dx_g = &mut dx[grp * p.cin_g * p.plane..(grp + 1) * p.cin_g * p.plane];
            if s.is_pointwise() {
                matmul(dx_g, [k, n, cout_g], w_g, true, g_g, p.parallelism);
                continue;
            }
            // The columns (one row per input channel and tap), then back onto the planes.
            matmul(columns, [k, n, cout_g], w_g, true, g_g, p.parallelism);
            PHASES.with(|cell| {
                let mut phases = cell.borrow_mut();
                for (ci, dx_c) in dx_g.chunks_exact_mut(p.plane).enumerate() {
                    let rows = &columns[ci * taps * n..(ci + 1) * taps * n];
                    let row = |tap: usize| &rows[tap * n..(tap + 1) * n];
                    gather_taps(dx_c, s, row, &ones, &mut phases);
                }
            });
        }
    });
}

/// One image of a depthwise convolution: every tap of every channel sent back.
fn depthwise(g: &[f32], s: &ConvShape, w: &[f32], dx: &mut [f32]) {
    let [oh, ow] = s.checked_output();
    let taps = s.kernel[0] * s.kernel[1];
    let plane = s.input[0] * s.input[1];
    PHASES.with(|cell| {
        let mut phases = cell.borrow_mut();
        for c in 0..s.cin {
            let g_c = &g[c * oh * ow..(c + 1) * oh * ow];
            let w_c = &w[c * taps..(c + 1) * taps];
            let dx_c = &mut dx[c * plane..(c + 1) * plane];
            gather_taps(dx_c, s, |_| g_c, w_c, &mut phases);
        }
    });
}

thread_local! {
    /// The phase planes of this thread, grown to the largest input plane seen.
    static PHASES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// One input plane's gradient `dx` (`h × w`, overwritten) from the output-sized planes
/// `src(tap)` (`oh × ow`) times `coef[tap]`, summed over the kernel's taps: output `(oy, ox)`
/// read input `(oy·sy + ky·dy − pad, ox·sx + kx·dx − pad)` through tap `(ky, kx)`. The mirror
/// of the forward window kernel: in the padded input's `stride × stride` phase planes every tap
/// is a plain shift, so each tap is one contiguous multiply-add per output row; the planes are
/// interleaved back into `dx` once at the end.
fn gather_taps<'a>(
    dx: &mut [f32],
    s: &ConvShape,
    src: impl Fn(usize) -> &'a [f32],
    coef: &[f32],
    phases: &mut Vec<f32>,
) {
    gather_taps_on(Kernel::GradTaps.enter(), dx, s, &src, coef, phases);
}

isa_dispatch! {
    /// [`gather_taps_with`] compiled for `isa` (which the CPU must have: [`Isa::available`]).
    fn gather_taps_on<'a>(
        dx: &mut [f32],
        s: &ConvShape,
        src: &dyn Fn(usize) -> &'a [f32],
        coef: &[f32],
        phases: &mut Vec<f32>,
    ) => gather_taps_with
}

#[inline(always)]
fn gather_taps_with<'a>(
    dx: &mut [f32],
    s: &ConvShape,
    src: &dyn Fn(usize) -> &'a [f32],
    coef: &[f32],
    phases: &mut Vec<f32>,
) {
    let [h, w] = s.input;
    let [oh, ow] = s.checked_output();
    let [kh, kw] = s.kernel;
    let sx = s.stride[1];
    let layout = PhaseLayout::of(s, 0);
    let (cols, need) = (layout.cols(), layout.planes_len());
    if phases.len() < need {
        phases.resize(need, 0.0);
    }
    let phases = &mut phases[..need];
    phases.fill(0.0);
    for ky in 0..kh {
        for kx in 0..kw {
            let tap = ky * kw + kx;
            let (g, c) = (src(tap), coef[tap]);
            let base = layout.tap(ky, kx);
            for (oy, g_row) in g.chunks_exact(ow).take(oh).enumerate() {
                let at = base + oy * cols;
                for (d, &v) in phases[at..at + ow].iter_mut().zip(g_row) {
                    *d += c * v;
                }
            }
        }
    }
    for (row, start) in dx.chunks_exact_mut(w).take(h).zip(layout.row_starts()) {
        for &(first, at, count) in layout.columns() {
            let from = &phases[start + at..start + at + count];
            for (d, &v) in row[first..].iter_mut().step_by(sx).zip(from) {
                *d = v;
            }
        }
    }
}

/// The gradient with respect to the input of max pooling over `batch` NCHW images `x`, from
/// the gradient `g` of its `[oh, ow]` output (larger than [`ConvShape::output`] under
/// `ceil_mode`): each output's gradient goes to the first maximum of its window (rows first),
/// padding excluded.
pub fn max_pool2d_grad(
    x: &[f32],
    g: &[f32],
    batch: usize,
    s: &ConvShape,
    [oh, ow]: [usize; 2],
) -> Vec<f32> {
    check_pool_grad(g, batch, s, [oh, ow]);
    check_len("the input", x.len(), s.input_len(batch));
    let [h, w] = s.input;
    let (plane, out_plane) = (h * w, oh * ow);
    let mut dx = vec![0.0f32; batch * s.cin * plane];
    let (rows, cols) = window_taps(s, [oh, ow]);
    par_chunks(&mut dx, plane, |p, dx_p| {
        let x_p = &x[p * plane..(p + 1) * plane];
        let g_p = &g[p * out_plane..(p + 1) * out_plane];
        for (oy, iys) in rows.iter().enumerate() {
            for (ox, ixs) in cols.iter().enumerate() {
                if let Some(at) = first_max(x_p, w, iys, ixs) {
                    dx_p[at] += g_p[oy * ow + ox];
                }
            }
        }
    });
    dx
}

/// Max pooling's forward-mode derivative: the tangent `t` of the `batch` NCHW images `x` read
/// where [`max_pool2d_grad`] sends each output's gradient (its window's first maximum), as
/// the `[oh, ow]` planes of the output.
pub fn max_pool2d_tangent(
    x: &[f32],
    t: &[f32],
    batch: usize,
    s: &ConvShape,
    [oh, ow]: [usize; 2],
) -> Vec<f32> {
    check_len("the input", x.len(), s.input_len(batch));
    check_len("the tangent", t.len(), s.input_len(batch));
    let [h, w] = s.input;
    let (plane, out_plane) = (h * w, oh * ow);
    let mut dy = vec![0.0f32; batch * s.cin * out_plane];
    check_pool_grad(&dy, batch, s, [oh, ow]);
    let (rows, cols) = window_taps(s, [oh, ow]);
    par_chunks(&mut dy, out_plane, |p, dy_p| {
        let x_p = &x[p * plane..(p + 1) * plane];
        let t_p = &t[p * plane..(p + 1) * plane];
        for (oy, iys) in rows.iter().enumerate() {
            for (ox, ixs) in cols.iter().enumerate() {
                if let Some(at) = first_max(x_p, w, iys, ixs) {
                    dy_p[oy * ow + ox] = t_p[at];
                }
            }
        }
    });
    dy
}

/// Per output row and per output column of an `[oh, ow]` pooling: its in-bounds taps, as the
/// input row or column of each.
fn window_taps(s: &ConvShape, [oh, ow]: [usize; 2]) -> (Vec<Vec<usize>>, Vec<Vec<usize>>) {
    let [h, w] = s.input;
    let [kh, kw] = s.kernel;
    let rows = (0..oh)
        .map(|o| in_bounds_taps(o, s.stride[0], s.dilation[0], s.pad[0].0, kh, h))
        .collect();
    let cols = (0..ow)
        .map(|o| in_bounds_taps(o, s.stride[1], s.dilation[1], s.pad[1].0, kw, w))
        .collect();
    (rows, cols)
}

/// The position in the plane `x_p` (rows `w` wide) of the first maximum of the window of rows
/// `iys` and columns `ixs`, rows first (a later NaN wins, as in PyTorch), found without
/// branches: the comparisons of random data mispredict half the time. `None` for a window
/// wholly in the padding.
fn first_max(x_p: &[f32], w: usize, iys: &[usize], ixs: &[usize]) -> Option<usize> {
    let (&iy0, &ix0) = (iys.first()?, ixs.first()?);
    let (mut best_at, mut best) = (iy0 * w + ix0, x_p[iy0 * w + ix0]);
    for &iy in iys {
        let row = &x_p[iy * w..(iy + 1) * w];
        for &ix in ixs {
            let v = row[ix];
            let take = (v > best) | v.is_nan();
            best = if take { v } else { best };
            best_at = if take { iy * w + ix } else { best_at };
        }
    }
    Some(best_at)
}

/// The input positions along one axis (`len` long, padded by `pad` before) that output `o`'s
/// window of `k` taps reads, in tap order.
fn in_bounds_taps(
    o: usize,
    stride: usize,
    dilation: usize,
    pad: usize,
    k: usize,
    len: usize,
) -> Vec<usize> {
    (0..k)
        .filter_map(|t| (o * stride + t * dilation).checked_sub(pad))
        .filter(|&i| i < len)
        .collect()
}

/// The gradient with respect to the input of average pooling over `batch` NCHW images, from
/// the gradient `g` of its `[oh, ow]` output: each output's gradient is shared by its window,
/// divided as the forward pass divided (PyTorch's rule: the window clipped to the padded input
/// under `count_include_pad`, else to the input).
pub fn avg_pool2d_grad(
    g: &[f32],
    batch: usize,
    s: &ConvShape,
    [oh, ow]: [usize; 2],
    count_include_pad: bool,
) -> Vec<f32> {
    check_pool_grad(g, batch, s, [oh, ow]);
    let [h, w] = s.input;
    let (plane, out_plane) = (h * w, oh * ow);
    let mut dx = vec![0.0f32; batch * s.cin * plane];
    // Window bounds along one axis: (first, end) clipped to the input, and the padded count.
    let bounds = |o: usize, axis: usize, size: usize| {
        let start = (o * s.stride[axis]) as isize - s.pad[axis].0 as isize;
        let end = (start + s.kernel[axis] as isize).min((size + s.pad[axis].1) as isize);
        let padded = end - start;
        let (start, end) = (start.max(0) as usize, end.clamp(0, size as isize) as usize);
        (start, end.max(start), padded.max(0) as usize)
    };
    par_chunks(&mut dx, plane, |p, dx_p| {
        let g_p = &g[p * out_plane..(p + 1) * out_plane];
        for oy in 0..oh {
            let (y0, y1, py) = bounds(oy, 0, h);
            for ox in 0..ow {
                let (x0, x1, px) = bounds(ox, 1, w);
                let count = if count_include_pad {
                    py * px
                } else {
                    (y1 - y0) * (x1 - x0)
                };
                if count == 0 {
                    continue;
                }
                let share = g_p[oy * ow + ox] / count as f32;
                for row in dx_p[y0 * w..y1 * w].chunks_exact_mut(w) {
                    row[x0..x1].iter_mut().for_each(|d| *d += share);
                }
            }
        }
    });
    dx
}

/// Asserts that `s` is a pooling window over non-empty planes and that `g` holds `batch`
/// outputs of `[oh, ow]` per channel.
fn check_pool_grad(g: &[f32], batch: usize, s: &ConvShape, [oh, ow]: [usize; 2]) {
    s.checked_output();
    assert!(
        s.cin == s.cout && s.groups == s.cin && s.input[0] * s.input[1] > 0,
        "pooling runs every channel of a non-empty plane on its own: {s:?}"
    );
    check_len(
        "the output gradient",
        g.len(),
        product(&[batch, s.cout, oh, ow]),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::conv2d;
    use crate::kernels::epilogue::Epilogue;
    use crate::kernels::testing::conv_shape;

    /// Max pooling's tangent is the transpose of its gradient at the same input:
    /// `<tangent(x, t), g> = <t, grad(x, g)>`, on overlapping, padded and dilated windows; and
    /// it reads the window's first maximum.
    #[test]
    fn max_pool_tangent_is_the_gradients_transpose() {
        let value =
            |i: usize, salt: usize| (((i * 7919 + salt * 104_729) % 997) as f32) / 97.0 - 5.0;
        for (kernel, stride, dilation, pad) in [
            ([3, 3], [2, 2], [1, 1], [(1, 1), (1, 1)]),
            ([2, 2], [2, 2], [1, 1], [(0, 0), (0, 0)]),
            ([3, 2], [1, 2], [2, 1], [(2, 0), (0, 1)]),
        ] {
            let (batch, c, h, w) = (2, 3, 7, 6);
            let s = ConvShape::pooling(c, [h, w], kernel, stride, dilation, pad);
            let [oh, ow] = s.output().unwrap();
            let n = batch * c * h * w;
            let x: Vec<f32> = (0..n).map(|i| value(i, 1)).collect();
            let t: Vec<f32> = (0..n).map(|i| value(i, 2)).collect();
            let g: Vec<f32> = (0..batch * c * oh * ow).map(|i| value(i, 3)).collect();
            let dy = max_pool2d_tangent(&x, &t, batch, &s, [oh, ow]);
            let dx = max_pool2d_grad(&x, &g, batch, &s, [oh, ow]);
            let left: f64 = dy.iter().zip(&g).map(|(a, b)| f64::from(a * b)).sum();
            let right: f64 = t.iter().zip(&dx).map(|(a, b)| f64::from(a * b)).sum();
            assert!(
                (left - right).abs() < 1e-3 * left.abs().max(1.0),
                "{kernel:?}: {left} vs {right}"
            );
        }
        // A window of equal values reads its first position.
        let s = ConvShape::pooling(1, [2, 2], [2, 2], [2, 2], [1, 1], [(0, 0), (0, 0)]);
        assert_eq!(
            max_pool2d_tangent(&[1.0; 4], &[5.0, 6.0, 7.0, 8.0], 1, &s, [1, 1]),
            vec![5.0]
        );
    }

    /// `<conv(x), g>` equals `<x, conv_input_grad(g)>` for any x and g: the adjoint identity,
    /// checked on strided, padded, dilated, grouped and depthwise shapes.
    #[test]
    fn input_gradient_is_the_adjoint_of_the_convolution() {
        let shapes = [
            ([3, 7, 6], 4, 1, [3, 3], [2, 2], [1, 1], [(1, 1), (0, 1)]),
            ([4, 6, 5], 6, 2, [3, 2], [1, 2], [2, 1], [(2, 0), (1, 1)]),
            ([5, 8, 7], 5, 5, [5, 5], [2, 1], [1, 1], [(2, 2), (2, 2)]),
            ([6, 4, 4], 3, 1, [1, 1], [1, 1], [1, 1], [(0, 0), (0, 0)]),
            ([3, 5, 5], 8, 1, [1, 1], [2, 2], [1, 1], [(0, 0), (0, 0)]),
        ];
        let value = |i: usize| ((i * 7919 % 1009) as f32 / 1009.0) - 0.5;
        for ([cin, h, w], cout, groups, kernel, stride, dilation, pad) in shapes {
            let s = conv_shape((cin, [h, w], cout, groups, kernel, stride, dilation, pad));
            let [oh, ow] = s.output().unwrap();
            let batch = 2;
            let x: Vec<f32> = (0..batch * cin * h * w).map(value).collect();
            let wts: Vec<f32> = (0..cout * cin / groups * kernel[0] * kernel[1])
                .map(|i| value(i + 17))
                .collect();
            let g: Vec<f32> = (0..batch * cout * oh * ow).map(|i| value(i + 5)).collect();
            let y = conv2d(&x, batch, &s, &wts, &Epilogue::default());
            let dx = conv2d_input_grad(&g, batch, &s, &wts, None);
            let dot = |a: &[f32], b: &[f32]| -> f64 {
                a.iter()
                    .zip(b)
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum()
            };
            let (left, right) = (dot(&y, &g), dot(&x, &dx));
            assert!(
                (left - right).abs() <= 1e-4 * left.abs().max(1.0),
                "{s:?}: <conv x, g> = {left}, <x, grad g> = {right}"
            );
        }
    }

    /// A gate gives what the gradient taken through the activation beforehand gives.
    #[test]
    fn a_gate_takes_the_gradient_through_the_activation_first() {
        let s = ConvShape {
            cin: 3,
            input: [5, 5],
            cout: 3,
            groups: 3,
            kernel: [3, 3],
            stride: [2, 2],
            dilation: [1, 1],
            pad: [(1, 1); 2],
        };
        let [oh, ow] = s.output().unwrap();
        let n = 2 * 3 * oh * ow;
        let y: Vec<f32> = (0..n).map(|i| (i % 9) as f32 - 1.0).collect();
        let g: Vec<f32> = (0..n).map(|i| 1.0 + i as f32 / 10.0).collect();
        let w: Vec<f32> = (0..27).map(|i| i as f32 / 27.0 - 0.4).collect();
        let activation = Activation::Clip(0.0, 6.0);
        let gate = Gate {
            output: &y,
            activation,
        };
        let gated: Vec<f32> = g
            .iter()
            .zip(&y)
            .map(|(&g, &y)| if y > 0.0 && y < 6.0 { g } else { 0.0 })
            .collect();
        assert_eq!(
            conv2d_input_grad(&g, 2, &s, &w, Some(gate)),
            conv2d_input_grad(&gated, 2, &s, &w, None)
        );
    }

    #[test]
    fn max_pool_gradient_goes_to_the_first_maximum() {
        // One 3x3 plane, 2x2 windows at stride 1: the centre is every window's maximum.
        let x = [1.0, 1.0, 0.0, 1.0, 5.0, 0.0, 0.0, 0.0, 0.0];
        let s = ConvShape::pooling(1, [3, 3], [2, 2], [1, 1], [1, 1], [(0, 0); 2]);
        let g = [1.0, 2.0, 4.0, 8.0];
        let dx = max_pool2d_grad(&x, &g, 1, &s, [2, 2]);
        assert_eq!(dx, vec![0.0, 0.0, 0.0, 0.0, 15.0, 0.0, 0.0, 0.0, 0.0]);
        // Four equal values: the first one takes it.
        let ties = [2.0, 2.0, 2.0, 2.0];
        let s = ConvShape::pooling(1, [2, 2], [2, 2], [1, 1], [1, 1], [(0, 0); 2]);
        assert_eq!(
            max_pool2d_grad(&ties, &[3.0], 1, &s, [1, 1]),
            vec![3.0, 0.0, 0.0, 0.0]
        );
    }

    #[test]
    fn every_isa_path_gives_the_portable_result() {
        use crate::kernels::testing::{assert_every_isa_agrees, values};
        for (i, (input, kernel, stride, dilation)) in [
            ([29, 35], [3, 3], [1, 1], [1, 1]),
            ([30, 27], [5, 3], [2, 2], [1, 2]),
        ]
        .into_iter()
        .enumerate()
        {
            let s = ConvShape::pooling(1, input, kernel, stride, dilation, [(1, 2), (2, 1)]);
            let [oh, ow] = s.output().unwrap();
            let taps = kernel[0] * kernel[1];
            let g = values(taps * oh * ow, 700 + i as u32);
            let coef = values(taps, 800 + i as u32);
            let src = |tap: usize| &g[tap * oh * ow..(tap + 1) * oh * ow];
            assert_every_isa_agrees(&format!("gradient taps case {i}"), |isa| {
                let mut dx = vec![0.0; input[0] * input[1]];
                gather_taps_on(isa, &mut dx, &s, &src, &coef, &mut Vec::new());
                dx
            });
        }
    }
}
