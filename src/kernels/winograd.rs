//! 3×3 stride-1 convolution by Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray, 2016):
//! each 2×2 output tile is `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` for the 4×4 input tile `d`, so the
//! channel sums become 16 matrix products with 16 multiplications per tile instead of 36: 2.25×
//! fewer than the direct method. The transforms use only additions and halvings, so the result
//! agrees with the direct convolution to float rounding. The filters are transformed once, at
//! load; the tiles of all images of a batch go through each of the 16 products together.

use std::cell::RefCell;
use std::thread::LocalKey;

use super::conv_grad::Gate;
use super::epilogue::Epilogue;
use super::isa::{Kernel, isa_dispatch};
use super::par::{for_each_index, par_chunks};
use super::shape::{ConvShape, check_len, product};
use super::work;

/// The fewest input and output channels for which the saved multiplications outweigh the
/// transforms. Measured on ResNet-50's 3×3 layers, batch 10, 2 cores: Winograd takes 0.85×
/// the direct kernel's time at 64 channels, 0.75× at 128, 0.63× at 256 and 512.
pub const MIN_CHANNELS: usize = 64;

/// Whether `s` is a convolution this kernel computes: 3×3, stride 1, no dilation, one group,
/// and at least [`MIN_CHANNELS`] input and output channels.
pub fn applies(s: &ConvShape) -> bool {
    s.kernel == [3, 3]
        && s.stride == [1, 1]
        && s.dilation == [1, 1]
        && s.groups == 1
        && s.cin.min(s.cout) >= MIN_CHANNELS
}

/// The 16 transformed filters `G g Gᵀ`, as `[16][cout][cin]`.
pub fn transform_filters(w: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    check_len("the weights", w.len(), product(&[cout, cin, 9]));
    let mut u = vec![0.0f32; 16 * cout * cin];
    for k in 0..cout {
        for c in 0..cin {
            let g = &w[(k * cin + c) * 9..(k * cin + c) * 9 + 9];
            // G g (4x3), then (G g) Gᵀ (4x4); G = [[1,0,0],[½,½,½],[½,-½,½],[0,0,1]].
            let mut gg = [[0.0f32; 3]; 4];
            for j in 0..3 {
                let (g0, g1, g2) = (g[j], g[3 + j], g[6 + j]);
                gg[0][j] = g0;
                gg[1][j] = 0.5 * (g0 + g1 + g2);
                gg[2][j] = 0.5 * (g0 - g1 + g2);
                gg[3][j] = g2;
            }
            for (i, row) in gg.iter().enumerate() {
                let (a, b, c2) = (row[0], row[1], row[2]);
                let t = [a, 0.5 * (a + b + c2), 0.5 * (a - b + c2), c2];
                for (j, v) in t.into_iter().enumerate() {
                    u[((i * 4 + j) * cout + k) * cin + c] = v;
                }
            }
        }
    }
    u
}

/// Whether the input gradient of `s` runs here ([`input_grad`]): a shape [`applies`] to, with
/// pads of at most 2 (the gradient is the convolution of the output's gradient padded by `2 −
/// pad`).
pub fn grad_applies(s: &ConvShape) -> bool {
    applies(s) && s.pad.iter().all(|&(a, b)| a <= 2 && b <= 2)
}

/// The transformed filters of the input gradient ([`input_grad`]) of a convolution with
/// weights `w` (`[cout, cin, 3, 3]`): the filters flipped and their channels swapped, `[cin,
/// cout, 3, 3]`, through [`transform_filters`].
pub fn transform_grad_filters(w: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    check_len("the weights", w.len(), product(&[cout, cin, 9]));
    let mut flipped = vec![0.0f32; w.len()];
    for k in 0..cout {
        for c in 0..cin {
            let from = &w[(k * cin + c) * 9..(k * cin + c) * 9 + 9];
            let to = &mut flipped[(c * cout + k) * 9..(c * cout + k) * 9 + 9];
            for (t, v) in to.iter_mut().enumerate() {
                *v = from[8 - t];
            }
        }
    }
    transform_filters(&flipped, cin, cout)
}

/// The gradient with respect to the input of `batch` NCHW images of the convolution `s` (one
/// [`grad_applies`] to), from the gradient `g` of its output taken through `gate` first: the
/// convolution of the (gated) gradient, padded by `2 − pad`, with the flipped, transposed
/// filters `u` ([`transform_grad_filters`]), by the same Winograd kernel as the forward pass.
pub fn input_grad(
    g: &[f32],
    batch: usize,
    s: &ConvShape,
    u: &[f32],
    gate: Option<Gate>,
) -> Vec<f32> {
    assert!(grad_applies(s), "not a Winograd input gradient: {s:?}");
    let [oh, ow] = s.checked_output();
    check_len("the output gradient", g.len(), s.output_len(batch));
    let back = ConvShape {
        cin: s.cout,
        input: [oh, ow],
        cout: s.cin,
        pad: s.pad.map(|(a, b)| (2 - a, 2 - b)),
        ..*s
    };
    assert_eq!(
        back.output(),
        Some(s.input),
        "the gradient's shape: {back:?}"
    );
    let none = Epilogue::default();
    match gate {
        Some(gate) => {
            check_len("the gate's output", gate.output.len(), g.len());
            let a = gate.activation;
            let gated: Vec<f32> = g
                .iter()
                .zip(gate.output)
                .map(|(&g, &y)| g * a.derivative_at_output(y))
                .collect();
            conv2d(&gated, batch, &back, u, &none)
        }
        None => conv2d(g, batch, &back, u, &none),
    }
}

/// A raw pointer that may cross threads: each thread writes its own disjoint part.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only for writes to disjoint ranges, one range per task.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer; a method call makes closures capture the whole (Send) wrapper.
    fn get(&self) -> *mut f32 {
        self.0
    }
}

/// Convolves `batch` NCHW images with the transformed filters `u` (from
/// [`transform_filters`]), then applies `epilogue`. Panics unless `s` is a shape this kernel
/// computes ([`applies`], at any channel count) and every buffer fits it: the products below
/// address `u` through raw pointers.
pub fn conv2d(x: &[f32], batch: usize, s: &ConvShape, u: &[f32], epilogue: &Epilogue) -> Vec<f32> {
    let [oh, ow] = s.checked_output();
    assert!(
        s.kernel == [3, 3] && s.stride == [1, 1] && s.dilation == [1, 1] && s.groups == 1,
        "Winograd F(2x2, 3x3) computes 3x3 stride-1 undilated convolutions, not {s:?}"
    );
    let (cin, cout) = (s.cin, s.cout);
    check_len("the input", x.len(), s.input_len(batch));
    check_len(
        "the transformed filters",
        u.len(),
        product(&[16, cout, cin]),
    );
    epilogue.check(s, batch);
    Kernel::Gemm.enter();
    work::count_convolution(s, batch);
    let n = product(&[batch, oh.div_ceil(2), ow.div_ceil(2)]);
    // The scratch sizes below cannot overflow now.
    product(&[16, n, cin.max(cout)]);
    if cin.max(cout) <= BLOCKED_MAX_CHANNELS {
        return run_blocked(x, batch, s, u, epilogue);
    }
    // V: [cin][16][n], the transformed input tiles; M: [cout][16][n], the products. Both are
    // fully overwritten, so the scratch buffers are reused as they are.
    with_tile_buffers(&SCRATCH, [cin * 16 * n, cout * 16 * n], |v, m| {
        run(x, batch, s, u, epilogue, v, m)
    })
}

/// This thread's transformed tiles and products: `f` gets the first `lens` values of each of
/// `buffers`' two (grown to fit; they are fully overwritten, so not cleared).
fn with_tile_buffers<R>(
    buffers: &'static LocalKey<RefCell<(Vec<f32>, Vec<f32>)>>,
    [v_len, m_len]: [usize; 2],
    f: impl FnOnce(&mut [f32], &mut [f32]) -> R,
) -> R {
    buffers.with(|cell| {
        let mut scratch = cell.borrow_mut();
        let (v, m) = &mut *scratch;
        for (buffer, len) in [(&mut *v, v_len), (&mut *m, m_len)] {
            if buffer.len() < len {
                buffer.resize(len, 0.0);
            }
        }
        f(&mut v[..v_len], &mut m[..m_len])
    })
}

thread_local! {
    /// The transformed tiles and the products of the last call on this thread.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// [`conv2d`] with its scratch buffers.
fn run(
    x: &[f32],
    batch: usize,
    s: &ConvShape,
    u: &[f32],
    epilogue: &Epilogue,
    v: &mut [f32],
    m: &mut [f32],
) -> Vec<f32> {
    let [h, w] = s.input;
    let [oh, ow] = s.checked_output();
    let (cin, cout) = (s.cin, s.cout);
    let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
    let tiles = th * tw;
    let n = batch * tiles;
    let isa = Kernel::Transforms.enter();
    let tiling = Tiling::of(s, [0, th], n);
    par_chunks(v, 16 * n, |c, vc| {
        for b in 0..batch {
            let plane = &x[(b * cin + c) * h * w..(b * cin + c + 1) * h * w];
            input_tiles_on(isa, &tiling, plane, &mut vc[b * tiles..]);
        }
    });
    let mp = SendPtr(m.as_mut_ptr());
    let products = |xi: usize| {
        // SAFETY: product xi writes M[k][xi][0..n] for every k: disjoint from the other xi.
        // U, V and M are in bounds: `conv2d` asserted u.len() == 16·cout·cin and sized v to
        // cin·16·n and m to cout·16·n (sizes it checked for overflow).
        unsafe { tile_product(xi, [cout, cin, n], u.as_ptr(), v.as_ptr(), mp.get()) }
    };
    for_each_index(16, products);
    let mut out = vec![0.0f32; batch * cout * oh * ow];
    let op = SendPtr(out.as_mut_ptr());
    let plane = oh * ow;
    let write = |k: usize| {
        let mk = &m[k * 16 * n..(k + 1) * 16 * n];
        for b in 0..batch {
            let base = (b * cout + k) * plane;
            // SAFETY: channel k of every image is written by this task only, inside `out`
            // (allocated just above as batch·cout·oh·ow values; base + plane ≤ its length).
            let o = unsafe { std::slice::from_raw_parts_mut(op.get().add(base), plane) };
            let residual = epilogue.residual.map(|r| &r[base..base + plane]);
            output_tiles_on(isa, &tiling, &mk[b * tiles..], [oh, ow], o);
            epilogue_on(isa, epilogue, k, o, residual);
        }
    };
    for_each_index(cout, write);
    out
}

/// Product `xi` of the transformed filters and tiles: `M[k][xi][t] = Σ_c U[xi][k][c] ·
/// V[c][xi][t]` for `[cout, cin, n]`, with U `[16][cout][cin]`, V `[cin][16][n]` and M
/// `[cout][16][n]`.
///
/// # Safety
/// `u`, `v` and `m` must point to buffers of at least 16·cout·cin, cin·16·n and cout·16·n
/// values, and no other thread may touch `M[·][xi][·]` meanwhile.
unsafe fn tile_product(
    xi: usize,
    [cout, cin, n]: [usize; 3],
    u: *const f32,
    v: *const f32,
    m: *mut f32,
) {
    // SAFETY: each operand's furthest element is its offset plus (rows − 1)·row stride +
    // cols − 1, inside the buffers the caller vouches for.
    unsafe {
        gemm::gemm(
            cout,
            n,
            cin,
            m.add(xi * n),
            1,
            (16 * n) as isize,
            false,
            u.add(xi * cout * cin),
            1,
            cin as isize,
            v.add(xi * n),
            1,
            (16 * n) as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Convolves as [`conv2d`] does, a block of a few tile rows of one image at a time: the
/// block's transformed tiles and products (`(cin + cout)·16` values per tile, about
/// [`BLOCK_VALUES`] in all) stay in the core's cache between the transforms and the products,
/// instead of going through memory for all tiles at once. For at most
/// [`BLOCKED_MAX_CHANNELS`] channels, whose transformed filters (read once per block) are small.
fn run_blocked(x: &[f32], batch: usize, s: &ConvShape, u: &[f32], epilogue: &Epilogue) -> Vec<f32> {
    let [h, w] = s.input;
    let [oh, ow] = s.checked_output();
    let (cin, cout) = (s.cin, s.cout);
    let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
    let rows_per_block = (BLOCK_VALUES / (16 * (cin + cout) * tw)).clamp(1, th);
    let blocks = th.div_ceil(rows_per_block);
    let isa = Kernel::Transforms.enter();
    let mut out = vec![0.0f32; batch * cout * oh * ow];
    let op = SendPtr(out.as_mut_ptr());
    let plane = oh * ow;
    for_each_index(batch * blocks, |i| {
        let (b, block) = (i / blocks, i % blocks);
        let rows = [
            block * rows_per_block,
            ((block + 1) * rows_per_block).min(th),
        ];
        let nb = (rows[1] - rows[0]) * tw;
        let tiling = Tiling::of(s, rows, nb);
        with_tile_buffers(&BLOCK_SCRATCH, [cin * 16 * nb, cout * 16 * nb], |v, m| {
            for (c, vc) in v.chunks_exact_mut(16 * nb).enumerate() {
                let input = &x[(b * cin + c) * h * w..(b * cin + c + 1) * h * w];
                input_tiles_on(isa, &tiling, input, vc);
            }
            for xi in 0..16 {
                // SAFETY: `conv2d` asserted u.len() == 16·cout·cin; v and m were cut to
                // cin·16·nb and cout·16·nb values just above; this thread owns them.
                unsafe {
                    tile_product(xi, [cout, cin, nb], u.as_ptr(), v.as_ptr(), m.as_mut_ptr())
                };
            }
            let [first, end] = [2 * rows[0], (2 * rows[1]).min(oh)];
            for (k, mk) in m.chunks_exact(16 * nb).enumerate() {
                let base = (b * cout + k) * plane + first * ow;
                let len = (end - first) * ow;
                // SAFETY: output rows first..end of channel k of image b are this block's
                // alone, inside `out` (batch·cout·oh·ow values; base + len ≤ its length).
                let o = unsafe { std::slice::from_raw_parts_mut(op.get().add(base), len) };
                let residual = epilogue.residual.map(|r| &r[base..base + len]);
                output_tiles_on(isa, &tiling, mk, [oh, ow], o);
                epilogue_on(isa, epilogue, k, o, residual);
            }
        })
    });
    out
}

/// The most channels (in or out) for which [`conv2d`] works in blocks ([`run_blocked`]).
/// Measured on VGG-16, batch 10, 2 cores: blocks took 0.80–0.87× the time of all tiles at once
/// at 64 channels, but 1.1–1.3× at 128, where the filters re-read per block and the narrower
/// products cost more than the memory traffic saved.
const BLOCKED_MAX_CHANNELS: usize = 64;

/// About how many values a block's transformed tiles and products take ([`run_blocked`]):
/// 1 MiB, half of a Sapphire Rapids core's L2.
const BLOCK_VALUES: usize = 1 << 18;

thread_local! {
    /// A block's transformed tiles and products, on this thread.
    static BLOCK_SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Where one image's tiles lie: the input plane's size, its top and left padding, the tiles
/// per column and row, and the stride between the 16 transformed values of a tile (the
/// products' column count, every image's tiles together).
struct Tiling {
    /// Input rows and columns.
    input: [usize; 2],
    /// Zero rows above and columns left of the input.
    pad: [usize; 2],
    /// Tile rows and tile columns (each tile covers 2×2 outputs).
    tiles: [usize; 2],
    /// The tile rows transformed: `rows[0]..rows[1]` (their tiles are numbered from 0).
    rows: [usize; 2],
    /// Distance between transformed value `xi` and `xi + 1` of a tile.
    stride: usize,
}

impl Tiling {
    /// The tiles of convolution `s`'s output in tile rows `rows`, `stride` apart.
    fn of(s: &ConvShape, rows: [usize; 2], stride: usize) -> Self {
        let [oh, ow] = s.checked_output();
        Tiling {
            input: s.input,
            pad: [s.pad[0].0, s.pad[1].0],
            tiles: [oh.div_ceil(2), ow.div_ceil(2)],
            rows,
            stride,
        }
    }
}

isa_dispatch! {
    /// [`input_tiles`] compiled for `isa` (which the CPU must have: [`Isa::available`]).
    fn input_tiles_on(t: &Tiling, plane: &[f32], out: &mut [f32]) => input_tiles
}

isa_dispatch! {
    /// [`output_tiles`] compiled for `isa` (which the CPU must have: [`Isa::available`]).
    fn output_tiles_on(t: &Tiling, products: &[f32], output: [usize; 2], o: &mut [f32]) => output_tiles
}

isa_dispatch! {
    /// The epilogue of channel `k` compiled for `isa`, on one output plane `o`.
    fn epilogue_on(e: &Epilogue, k: usize, o: &mut [f32], residual: Option<&[f32]>) => epilogue_channel
}

#[inline(always)]
fn epilogue_channel(e: &Epilogue, k: usize, o: &mut [f32], residual: Option<&[f32]>) {
    e.apply_channel(k, o, residual);
}

/// `Bᵀ d B` of the 4×4 input tiles in tile rows `t.rows` of one channel plane: transformed
/// value `xi` of tile `i` (row-major, from the first of those rows) goes to `out[xi · stride + i]`, where Bᵀ = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],
/// [0,1,0,-1]]. A tile row at a time, on whole rows: the four input rows (zero outside the
/// plane) are combined (`Bᵀ d`), their even and odd columns split, and each of the 16 values
/// of the row's tiles is then a difference or sum of two unit-stride runs, so the loops
/// vectorise across tiles.
#[inline(always)]
fn input_tiles(t: &Tiling, plane: &[f32], out: &mut [f32]) {
    let ([h, w], [top, left], [_, tw]) = (t.input, t.pad, t.tiles);
    // A tile row reads 2·tw + 2 columns from column −left on.
    let width = 2 * tw + 2;
    let mut rows = vec![0.0f32; 4 * width];
    let mut combined = vec![0.0f32; 4 * width];
    let mut halves = vec![0.0f32; 8 * (tw + 1)];
    let first = left.min(width);
    let count = w.min(width - first);
    for ty in t.rows[0]..t.rows[1] {
        for (r, row) in rows.chunks_exact_mut(width).enumerate() {
            let iy = (2 * ty + r).checked_sub(top).filter(|&iy| iy < h);
            match iy {
                Some(iy) => {
                    row[..first].fill(0.0);
                    row[first..first + count].copy_from_slice(&plane[iy * w..iy * w + count]);
                    row[first + count..].fill(0.0);
                }
                None => row.fill(0.0),
            }
        }
        let (r0, rest) = rows.split_at(width);
        let (r1, rest) = rest.split_at(width);
        let (r2, r3) = rest.split_at(width);
        let (t0, rest) = combined.split_at_mut(width);
        let (t1, rest) = rest.split_at_mut(width);
        let (t2, t3) = rest.split_at_mut(width);
        for j in 0..width {
            t0[j] = r0[j] - r2[j];
            t1[j] = r1[j] + r2[j];
            t2[j] = r2[j] - r1[j];
            t3[j] = r1[j] - r3[j];
        }
        for (i, row) in combined.chunks_exact(width).enumerate() {
            let (even, odd) = halves[2 * i * (tw + 1)..2 * (i + 1) * (tw + 1)].split_at_mut(tw + 1);
            for (k, pair) in row.chunks_exact(2).enumerate() {
                even[k] = pair[0];
                odd[k] = pair[1];
            }
        }
        for i in 0..4 {
            let (even, odd) = halves[2 * i * (tw + 1)..2 * (i + 1) * (tw + 1)].split_at(tw + 1);
            let columns = [&even[..tw], &even[1..], &odd[..tw], &odd[1..]];
            let start = |k: usize| (i * 4 + k) * t.stride + (ty - t.rows[0]) * tw;
            // A tile's columns are e0, o0, e1, o1: d·B's four columns are c0 − c2, c1 + c2,
            // c2 − c1 and c1 − c3.
            combine(&mut out[start(0)..][..tw], columns, |e0, e1, _, _| e0 - e1);
            combine(&mut out[start(1)..][..tw], columns, |_, e1, o0, _| o0 + e1);
            combine(&mut out[start(2)..][..tw], columns, |_, e1, o0, _| e1 - o0);
            combine(&mut out[start(3)..][..tw], columns, |_, _, o0, o1| o0 - o1);
        }
    }
}

/// `out[x] = f(e0[x], e1[x], o0[x], o1[x])` for the four runs `[e0, e1, o0, o1]`.
#[inline(always)]
fn combine(out: &mut [f32], [e0, e1, o0, o1]: [&[f32]; 4], f: impl Fn(f32, f32, f32, f32) -> f32) {
    for ((((v, &e0), &e1), &o0), &o1) in out.iter_mut().zip(e0).zip(e1).zip(o0).zip(o1) {
        *v = f(e0, e1, o0, o1);
    }
}

/// `Aᵀ m A` of the product tiles of one channel plane's tile rows `t.rows` (value `xi` of tile
/// `i` at `products[xi · stride + i]`), written to `o`, the `output` plane's rows from `2 ·
/// t.rows[0]` on (rows and columns past its edge left out), where Aᵀ = [[1,1,1,0],[0,1,-1,-1]]. A tile row at a time: each 2×2 output
/// is sums of unit-stride runs across the row's tiles, interleaved into two output rows.
#[inline(always)]
fn output_tiles(t: &Tiling, products: &[f32], output: [usize; 2], o: &mut [f32]) {
    let ([_, tw], [oh, ow], first) = (t.tiles, output, t.rows[0]);
    let mut rows = vec![0.0f32; 8 * tw];
    let mut pairs = vec![0.0f32; 4 * tw];
    for ty in first..t.rows[1] {
        let at = (ty - first) * tw;
        let s = |xi: usize| &products[xi * t.stride + at..xi * t.stride + at + tw];
        // Aᵀ m: row 0 of column j is m0j + m1j + m2j, row 1 is m1j − m2j − m3j.
        for (j, row) in rows.chunks_exact_mut(2 * tw).enumerate() {
            let (first, second) = row.split_at_mut(tw);
            let (a, b, c, d) = (s(j), s(4 + j), s(8 + j), s(12 + j));
            for (((v, &a), &b), &c) in first.iter_mut().zip(a).zip(b).zip(c) {
                *v = a + b + c;
            }
            for (((v, &b), &c), &d) in second.iter_mut().zip(b).zip(c).zip(d) {
                *v = b - c - d;
            }
        }
        // (Aᵀ m) A: each row's columns t0 + t1 + t2 and t1 − t2 − t3, interleaved.
        for (r, out) in pairs.chunks_exact_mut(2 * tw).enumerate() {
            let column = |j: usize| &rows[j * 2 * tw + r * tw..j * 2 * tw + (r + 1) * tw];
            let (t0, t1, t2, t3) = (column(0), column(1), column(2), column(3));
            let values = out.chunks_exact_mut(2).zip(t0).zip(t1).zip(t2).zip(t3);
            for ((((pair, &t0), &t1), &t2), &t3) in values {
                pair[0] = t0 + t1 + t2;
                pair[1] = t1 - t2 - t3;
            }
        }
        for (dy, row) in pairs.chunks_exact(2 * tw).enumerate() {
            let oy = 2 * ty + dy;
            if oy < oh {
                let oy = oy - 2 * first;
                o[oy * ow..(oy + 1) * ow].copy_from_slice(&row[..ow]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::Activation;
    use crate::kernels::conv;
    use crate::kernels::testing::values;

    /// A 3×3 stride-1 undilated convolution.
    fn three_by_three(
        cin: usize,
        input: [usize; 2],
        cout: usize,
        pad: [(usize, usize); 2],
    ) -> ConvShape {
        ConvShape {
            cin,
            input,
            cout,
            groups: 1,
            kernel: [3, 3],
            stride: [1, 1],
            dilation: [1, 1],
            pad,
        }
    }

    /// Winograd against the direct kernel (itself checked against the definition), on even and
    /// odd sizes, with and without padding, with an epilogue, in blocks and all tiles at once. (Small channel counts, which
    /// `applies` leaves to the direct kernel, compute the same.)
    #[test]
    fn matches_the_direct_convolution() {
        for (i, (cin, input, cout, pad)) in [
            (16, [8, 8], 8, [(1, 1), (1, 1)]),
            (17, [7, 9], 5, [(1, 1), (1, 1)]),
            (16, [6, 5], 3, [(0, 0), (0, 0)]),
            (20, [5, 6], 4, [(2, 0), (1, 2)]),
            (256, [5, 6], 260, [(1, 1), (1, 1)]),
            // Blocks of 7 tile rows, the last one shorter, and an odd width (`run_blocked`).
            (64, [40, 37], 48, [(1, 1), (1, 1)]),
        ]
        .into_iter()
        .enumerate()
        {
            let s = three_by_three(cin, input, cout, pad);
            assert_eq!(applies(&s), cin.min(cout) >= MIN_CHANNELS, "case {i}");
            let batch = 3;
            let x = values(batch * cin * input[0] * input[1], i as u32);
            let w = values(cout * cin * 9, 50 + i as u32);
            let bias = values(cout, 90 + i as u32);
            let [oh, ow] = s.output().unwrap();
            let residual = values(batch * cout * oh * ow, 130 + i as u32);
            let e = Epilogue {
                bias: Some(&bias),
                residual: Some(&residual),
                activation: Some(Activation::LeakyRelu(0.2)),
            };
            let want = conv::conv2d(&x, batch, &s, &w, &e);
            let got = conv2d(&x, batch, &s, &transform_filters(&w, cout, cin), &e);
            assert_eq!(got.len(), want.len());
            // Relative L2 error: single values can cancel to near zero in 2304-term sums.
            let (num, den) = got
                .iter()
                .zip(&want)
                .fold((0.0f64, 0.0f64), |(n, d), (g, r)| {
                    (n + f64::from(g - r).powi(2), d + f64::from(*r).powi(2))
                });
            let err = (num / den).sqrt();
            assert!(err <= 1e-6, "case {i}: relative L2 error {err:.2e}");
        }
    }

    /// The tile transforms give the portable path's values on every ISA this CPU has.
    #[test]
    fn every_isa_path_gives_the_portable_result() {
        use crate::kernels::testing::assert_every_isa_agrees;
        let ([h, w], [oh, ow]): ([usize; 2], [usize; 2]) = ([9, 7], [9, 7]);
        let tiling = Tiling {
            input: [h, w],
            pad: [1, 1],
            tiles: [oh.div_ceil(2), ow.div_ceil(2)],
            rows: [0, oh.div_ceil(2)],
            stride: 21,
        };
        let plane = values(h * w, 940);
        assert_every_isa_agrees("the input transform", |isa| {
            let mut out = vec![0.0; 16 * 21];
            input_tiles_on(isa, &tiling, &plane, &mut out);
            out
        });
        let products = values(16 * 21, 941);
        assert_every_isa_agrees("the output transform", |isa| {
            let mut o = vec![0.0; oh * ow];
            output_tiles_on(isa, &tiling, &products, [oh, ow], &mut o);
            o
        });
    }

    /// The Winograd input gradient equals the direct one (`conv_grad`, itself checked against
    /// autodiff), with and without a ReLU gate, at symmetric and asymmetric pads.
    #[test]
    fn input_gradient_matches_the_direct_one() {
        use crate::kernels::conv_grad::{Gate, conv2d_input_grad};
        for (i, (input, pad)) in [
            ([9, 8], [(1, 1), (1, 1)]),
            ([7, 10], [(0, 2), (2, 0)]),
            ([6, 6], [(0, 0), (1, 0)]),
        ]
        .into_iter()
        .enumerate()
        {
            let (cin, cout, batch) = (64, 65, 2);
            let s = three_by_three(cin, input, cout, pad);
            assert!(grad_applies(&s), "case {i}");
            let w = values(s.weight_len(), 810 + i as u32);
            let g = values(s.output_len(batch), 820 + i as u32);
            let y = values(s.output_len(batch), 830 + i as u32);
            let u = transform_grad_filters(&w, cout, cin);
            for gate in [
                None,
                Some(Gate {
                    output: &y,
                    activation: Activation::Relu,
                }),
            ] {
                let got = input_grad(&g, batch, &s, &u, gate);
                let want = conv2d_input_grad(&g, batch, &s, &w, gate);
                assert_eq!(got.len(), want.len(), "case {i}");
                for (j, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                        "case {i} gate {} value {j}: {a} vs {b}",
                        gate.is_some()
                    );
                }
            }
        }
    }
}
