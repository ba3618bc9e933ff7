//! 3×3 stride-1 convolution by Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray, 2016):
//! each 2×2 output tile is `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` for the 4×4 input tile `d`, so the
//! channel sums become 16 matrix products with 16 multiplications per tile instead of 36: 2.25×
//! fewer than the direct method. The transforms use only additions and halvings, so the result
//! agrees with the direct convolution to float rounding. The filters are transformed once, at
//! load; the tiles of all images of a batch go through each of the 16 products together.

use std::cell::{Cell, RefCell};
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
    let tiling = Tiling::of(s, [0, th], batch, n);
    par_chunks(v, 16 * n, |c, vc| {
        let planes: Vec<&[f32]> = (0..batch)
            .map(|b| &x[(b * cin + c) * h * w..(b * cin + c + 1) * h * w])
            .collect();
        input_tiles_on(isa, &tiling, &planes, vc);
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
        let base = |b: usize| (b * cout + k) * plane;
        // SAFETY: channel k of every image is written by this task only, inside `out`
        // (allocated just above as batch·cout·oh·ow values; base + plane ≤ its length).
        let mut planes: Vec<&mut [f32]> = (0..batch)
            .map(|b| unsafe { std::slice::from_raw_parts_mut(op.get().add(base(b)), plane) })
            .collect();
        output_tiles_on(isa, &tiling, mk, [oh, ow], &mut planes);
        for (b, o) in planes.into_iter().enumerate() {
            let residual = epilogue.residual.map(|r| &r[base(b)..base(b) + plane]);
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
        let tiling = Tiling::of(s, rows, 1, nb);
        with_tile_buffers(&BLOCK_SCRATCH, [cin * 16 * nb, cout * 16 * nb], |v, m| {
            for (c, vc) in v.chunks_exact_mut(16 * nb).enumerate() {
                let input = &x[(b * cin + c) * h * w..(b * cin + c + 1) * h * w];
                input_tiles_on(isa, &tiling, &[input], vc);
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
                output_tiles_on(isa, &tiling, mk, [oh, ow], &mut [&mut *o]);
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
    /// The tile rows transformed: `rows[0]..rows[1]` of each image (their tiles are numbered
    /// from 0, image after image).
    rows: [usize; 2],
    /// Images transformed together (one plane each).
    images: usize,
    /// Distance between transformed value `xi` and `xi + 1` of a tile.
    stride: usize,
}

impl Tiling {
    /// The tiles of convolution `s`'s output in tile rows `rows` of `images` images, `stride`
    /// apart.
    fn of(s: &ConvShape, rows: [usize; 2], images: usize, stride: usize) -> Self {
        let [oh, ow] = s.checked_output();
        Tiling {
            input: s.input,
            pad: [s.pad[0].0, s.pad[1].0],
            tiles: [oh.div_ceil(2), ow.div_ceil(2)],
            rows,
            images,
            stride,
        }
    }
}

isa_dispatch! {
    /// [`input_tiles`] compiled for `isa` (which the CPU must have: [`Isa::available`]).
    fn input_tiles_on(t: &Tiling, planes: &[&[f32]], out: &mut [f32]) => input_tiles
}

isa_dispatch! {
    /// [`output_tiles`] compiled for `isa` (which the CPU must have: [`Isa::available`]).
    fn output_tiles_on(t: &Tiling, products: &[f32], output: [usize; 2], o: &mut [&mut [f32]]) => output_tiles
}

isa_dispatch! {
    /// The epilogue of channel `k` compiled for `isa`, on one output plane `o`.
    fn epilogue_on(e: &Epilogue, k: usize, o: &mut [f32], residual: Option<&[f32]>) => epilogue_channel
}

#[inline(always)]
fn epilogue_channel(e: &Epilogue, k: usize, o: &mut [f32], residual: Option<&[f32]>) {
    e.apply_channel(k, o, residual);
}

/// `Bᵀ d B` of the 4×4 input tiles in tile rows `t.rows` of one channel's plane in each of
/// `t.images` images: transformed value `xi` of tile `i` (row-major from the first of those
/// rows, image after image) goes to `out[xi · stride + i]`, where Bᵀ = [[1,0,-1,0],[0,1,1,0],
/// [0,-1,1,0],[0,1,0,-1]].
///
/// Every step is one long unit-stride run over all the tiles (a tile row is a few dozen values
/// at most, too short for 16-lane vectors, and a small plane has few tile rows):
/// 1. each image's padded input rows (zero outside the plane), the even and the odd ones apart,
///    `rows + 1` of each per image, so that tile row `r` reads even rows `r`, `r + 1` and odd
///    rows `r`, `r + 1`;
/// 2. `Bᵀ d`: four combinations of those (the tile row after each image's last straddles two
///    images and goes unused);
/// 3. their even and odd columns apart, so that tile `x` of a row reads even and odd columns
///    `x` and `x + 1`;
/// 4. `(Bᵀ d) B`: four combinations of those for each of the four, the 16 values of every tile
///    (and of one unused slot per tile row, past its end);
/// 5. each tile row's values copied to `out`.
///
/// The sums are those of the direct formula, in the same order, so the values are the same.
#[inline(always)]
fn input_tiles(t: &Tiling, planes: &[&[f32]], out: &mut [f32]) {
    let ([h, w], [top, left], [_, tw]) = (t.input, t.pad, t.tiles);
    assert_eq!(planes.len(), t.images, "one plane per image");
    let rows = t.rows[1] - t.rows[0];
    // A padded input row: the 2·tw + 2 columns its tiles read, from column −left on.
    let width = 2 * tw + 2;
    let half = tw + 1;
    let stacked = t.images * (rows + 1);
    let (padded, span, slots) = (stacked * width, (stacked - 1) * width, (stacked - 1) * half);
    let first = left.min(width);
    let count = w.min(width - first);
    let len = 2 * padded + 8 * span + 16 * slots;
    let mut buffer = take_transform_scratch(len);
    {
        let (even_rows, rest) = buffer[..len].split_at_mut(padded);
        let (odd_rows, rest) = rest.split_at_mut(padded);
        let (row_combos, rest) = rest.split_at_mut(4 * span);
        let (split, tiles) = rest.split_at_mut(4 * span);
        // 1. Padded input rows 2·rows[0] + y, y even into `even_rows`, y odd into `odd_rows`.
        for (b, plane) in planes.iter().enumerate() {
            for y in 0..2 * (rows + 1) {
                let parity = if y % 2 == 0 {
                    &mut *even_rows
                } else {
                    &mut *odd_rows
                };
                let row = &mut parity[(b * (rows + 1) + y / 2) * width..][..width];
                match (2 * t.rows[0] + y).checked_sub(top).filter(|&iy| iy < h) {
                    Some(iy) => {
                        row[..first].fill(0.0);
                        copy_run(
                            &mut row[first..first + count],
                            &plane[iy * w..iy * w + count],
                        );
                        row[first + count..].fill(0.0);
                    }
                    None => row.fill(0.0),
                }
            }
        }
        // 2. Bᵀ d for every tile row: r0 − r2, r1 + r2, r2 − r1, r1 − r3.
        let (r0, r2) = (&even_rows[..span], &even_rows[width..]);
        let (r1, r3) = (&odd_rows[..span], &odd_rows[width..]);
        let (t0, rest) = row_combos.split_at_mut(span);
        let (t1, rest) = rest.split_at_mut(span);
        let (t2, t3) = rest.split_at_mut(span);
        combine(t0, [r0, r2, r1, r3], |r0, r2, _, _| r0 - r2);
        combine(t1, [r0, r2, r1, r3], |_, r2, r1, _| r1 + r2);
        combine(t2, [r0, r2, r1, r3], |_, r2, r1, _| r2 - r1);
        combine(t3, [r0, r2, r1, r3], |_, _, r1, r3| r1 - r3);
        // 3. Even and odd columns of each combination.
        for (combo, halves) in row_combos
            .chunks_exact(span)
            .zip(split.chunks_exact_mut(span))
        {
            let (even, odd) = halves.split_at_mut(slots);
            deinterleave(combo, even, odd);
        }
        // 4. (Bᵀ d) B: a tile's columns are e0, o0, e1, o1: c0 − c2, c1 + c2, c2 − c1, c1 − c3.
        let used = slots - 1;
        for (halves, values) in split
            .chunks_exact(span)
            .zip(tiles.chunks_exact_mut(4 * slots))
        {
            let (even, odd) = halves.split_at(slots);
            let columns = [&even[..used], &even[1..], &odd[..used], &odd[1..]];
            let (v0, rest) = values.split_at_mut(slots);
            let (v1, rest) = rest.split_at_mut(slots);
            let (v2, v3) = rest.split_at_mut(slots);
            combine(v0, columns, |e0, e1, _, _| e0 - e1);
            combine(v1, columns, |_, e1, o0, _| o0 + e1);
            combine(v2, columns, |_, e1, o0, _| e1 - o0);
            combine(v3, columns, |_, _, o0, o1| o0 - o1);
        }
        // 5. Each image's tile rows to `out`, without the unused slots and rows.
        for (xi, values) in tiles.chunks_exact(slots).enumerate() {
            let dst = &mut out[xi * t.stride..xi * t.stride + t.images * rows * tw];
            for (b, image) in dst.chunks_exact_mut(rows * tw).enumerate() {
                let from = &values[b * (rows + 1) * half..];
                for (d, v) in image.chunks_exact_mut(tw).zip(from.chunks(half)) {
                    copy_run(d, &v[..tw]);
                }
            }
        }
    }
    TRANSFORM_SCRATCH.set(buffer);
}

/// `Aᵀ m A` of the product tiles of one channel's tile rows `t.rows` in each of `t.images`
/// images (value `xi` of tile `i`, numbered as [`input_tiles`] does, at `products[xi · stride +
/// i]`), written to each image's `o`: the `output` plane's rows from `2 · t.rows[0]` on (rows
/// and columns past its edge left out), where Aᵀ = [[1,1,1,0],[0,1,-1,-1]]. As in
/// [`input_tiles`], each step is one run over all the tiles: `Aᵀ m` (eight values a tile),
/// `(Aᵀ m) A` (the 2×2 outputs), each tile's two output columns interleaved into the two output
/// rows it covers, and those rows copied to `o`. The same sums in the same order as the direct
/// formula.
#[inline(always)]
fn output_tiles(t: &Tiling, products: &[f32], output: [usize; 2], o: &mut [&mut [f32]]) {
    let ([_, tw], [oh, ow], first) = (t.tiles, output, t.rows[0]);
    assert_eq!(o.len(), t.images, "one output plane per image");
    let rows = t.rows[1] - first;
    let count = t.images * rows * tw;
    let len = 16 * count;
    let mut buffer = take_transform_scratch(len);
    {
        let (combos, rest) = buffer[..len].split_at_mut(8 * count);
        let (columns, interleaved) = rest.split_at_mut(4 * count);
        let s = |xi: usize| &products[xi * t.stride..xi * t.stride + count];
        // Aᵀ m: row 0 of column j is m0j + m1j + m2j, row 1 is m1j − m2j − m3j.
        for (j, row) in combos.chunks_exact_mut(2 * count).enumerate() {
            let (first, second) = row.split_at_mut(count);
            let runs = [s(j), s(4 + j), s(8 + j), s(12 + j)];
            combine(first, runs, |a, b, c, _| a + b + c);
            combine(second, runs, |_, b, c, d| b - c - d);
        }
        // (Aᵀ m) A: each row's columns t0 + t1 + t2 and t1 − t2 − t3.
        for (r, pair) in columns.chunks_exact_mut(2 * count).enumerate() {
            let column = |j: usize| &combos[j * 2 * count + r * count..][..count];
            let runs = [column(0), column(1), column(2), column(3)];
            let (left, right) = pair.split_at_mut(count);
            combine(left, runs, |t0, t1, t2, _| t0 + t1 + t2);
            combine(right, runs, |_, t1, t2, t3| t1 - t2 - t3);
        }
        // Output row r of every tile row: its tiles' left and right columns, interleaved.
        for (pair, out) in columns
            .chunks_exact(2 * count)
            .zip(interleaved.chunks_exact_mut(2 * count))
        {
            let (left, right) = pair.split_at(count);
            interleave(left, right, out);
        }
        for (b, plane) in o.iter_mut().enumerate() {
            for ty in first..t.rows[1] {
                let at = (b * rows + ty - first) * 2 * tw;
                for (r, values) in interleaved.chunks_exact(2 * count).enumerate() {
                    let oy = 2 * ty + r;
                    if oy < oh {
                        let oy = oy - 2 * first;
                        copy_run(&mut plane[oy * ow..(oy + 1) * ow], &values[at..at + ow]);
                    }
                }
            }
        }
    }
    TRANSFORM_SCRATCH.set(buffer);
}

/// `out[x] = f(e0[x], e1[x], o0[x], o1[x])` for the four runs `[e0, e1, o0, o1]`.
#[inline(always)]
fn combine(out: &mut [f32], [e0, e1, o0, o1]: [&[f32]; 4], f: impl Fn(f32, f32, f32, f32) -> f32) {
    for ((((v, &e0), &e1), &o0), &o1) in out.iter_mut().zip(e0).zip(e1).zip(o0).zip(o1) {
        *v = f(e0, e1, o0, o1);
    }
}

/// `even[k] = pairs[2k]` and `odd[k] = pairs[2k + 1]`, 16 values of each at a time (fixed
/// sizes, which the compiler turns into vector shuffles; a plain loop stays scalar).
#[inline(always)]
fn deinterleave(pairs: &[f32], even: &mut [f32], odd: &mut [f32]) {
    const LANES: usize = 16;
    let blocks = pairs.chunks_exact(2 * LANES);
    let tail = blocks.remainder();
    let done = pairs.len() / (2 * LANES) * LANES;
    let (even_blocks, even_tail) = even.split_at_mut(done);
    let (odd_blocks, odd_tail) = odd.split_at_mut(done);
    let outputs = even_blocks
        .chunks_exact_mut(LANES)
        .zip(odd_blocks.chunks_exact_mut(LANES));
    for (pair, (e, o)) in blocks.zip(outputs) {
        let pair: &[f32; 2 * LANES] = pair.try_into().expect("a whole block");
        let e: &mut [f32; LANES] = e.try_into().expect("a whole block");
        let o: &mut [f32; LANES] = o.try_into().expect("a whole block");
        for k in 0..LANES {
            e[k] = pair[2 * k];
            o[k] = pair[2 * k + 1];
        }
    }
    for ((e, o), pair) in even_tail.iter_mut().zip(odd_tail).zip(tail.chunks_exact(2)) {
        *e = pair[0];
        *o = pair[1];
    }
}

/// `pairs[2k] = even[k]` and `pairs[2k + 1] = odd[k]`: [`deinterleave`] backwards.
#[inline(always)]
fn interleave(even: &[f32], odd: &[f32], pairs: &mut [f32]) {
    const LANES: usize = 16;
    let done = even.len() / LANES * LANES;
    let (blocks, tail) = pairs.split_at_mut(2 * done);
    let inputs = even[..done]
        .chunks_exact(LANES)
        .zip(odd[..done].chunks_exact(LANES));
    for (pair, (e, o)) in blocks.chunks_exact_mut(2 * LANES).zip(inputs) {
        let pair: &mut [f32; 2 * LANES] = pair.try_into().expect("a whole block");
        let e: &[f32; LANES] = e.try_into().expect("a whole block");
        let o: &[f32; LANES] = o.try_into().expect("a whole block");
        for k in 0..LANES {
            pair[2 * k] = e[k];
            pair[2 * k + 1] = o[k];
        }
    }
    for ((pair, &e), &o) in tail
        .chunks_exact_mut(2)
        .zip(&even[done..])
        .zip(&odd[done..])
    {
        pair[0] = e;
        pair[1] = o;
    }
}

/// Copies `src` to `dst` (as long) in fixed-width moves, the last one overlapping the one
/// before, so that a run of a few dozen values needs neither a library call nor a scalar tail.
#[inline(always)]
fn copy_run(dst: &mut [f32], src: &[f32]) {
    #[inline(always)]
    fn by<const W: usize>(dst: &mut [f32], src: &[f32]) {
        let n = dst.len();
        let mut i = 0;
        while i + W < n {
            dst[i..i + W].copy_from_slice(&src[i..i + W]);
            i += W;
        }
        dst[n - W..].copy_from_slice(&src[n - W..n]);
    }
    assert_eq!(dst.len(), src.len(), "runs of different lengths");
    match dst.len() {
        16.. => by::<16>(dst, src),
        8.. => by::<8>(dst, src),
        4.. => by::<4>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}

thread_local! {
    /// The tile transforms' working runs ([`input_tiles`], [`output_tiles`]), on this thread.
    static TRANSFORM_SCRATCH: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// This thread's transform scratch, taken out of it and grown to at least `len` values (each
/// step overwrites what it reads later, so they are not cleared); put it back when done. Taken
/// rather than borrowed in a closure, so that the transform's body stays inside the function
/// compiled for the ISA.
fn take_transform_scratch(len: usize) -> Vec<f32> {
    let mut scratch = TRANSFORM_SCRATCH.take();
    if scratch.len() < len {
        scratch.resize(len, 0.0);
    }
    scratch
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

    /// The tile transforms give the portable path's values on every ISA this CPU has, on two
    /// images at once.
    #[test]
    fn every_isa_path_gives_the_portable_result() {
        use crate::kernels::testing::assert_every_isa_agrees;
        let ([h, w], [oh, ow]): ([usize; 2], [usize; 2]) = ([9, 7], [9, 7]);
        let tiling = Tiling {
            input: [h, w],
            pad: [1, 1],
            tiles: [oh.div_ceil(2), ow.div_ceil(2)],
            rows: [0, oh.div_ceil(2)],
            images: 2,
            stride: 41,
        };
        let planes = [values(h * w, 940), values(h * w, 942)];
        assert_every_isa_agrees("the input transform", |isa| {
            let mut out = vec![0.0; 16 * 41];
            input_tiles_on(isa, &tiling, &[&planes[0], &planes[1]], &mut out);
            out
        });
        let products = values(16 * 41, 941);
        assert_every_isa_agrees("the output transform", |isa| {
            let mut o = vec![0.0; 2 * oh * ow];
            let (first, second) = o.split_at_mut(oh * ow);
            output_tiles_on(isa, &tiling, &products, [oh, ow], &mut [first, second]);
            o
        });
    }

    /// The transforms give exactly the values of the tile-by-tile formula (`Bᵀ d B` with the
    /// rows combined first, `Aᵀ m A` likewise), on two images, odd sizes and both pads.
    #[test]
    fn transforms_equal_the_tile_by_tile_formula() {
        let ([h, w], [oh, ow]): ([usize; 2], [usize; 2]) = ([9, 7], [9, 7]);
        let ([th, tw], stride) = ([5, 4], 43);
        let tiling = Tiling {
            input: [h, w],
            pad: [1, 1],
            tiles: [th, tw],
            rows: [0, th],
            images: 2,
            stride,
        };
        let planes = [values(h * w, 950), values(h * w, 951)];
        let mut got = vec![0.0; 16 * stride];
        input_tiles(&tiling, &[&planes[0], &planes[1]], &mut got);
        let products = values(16 * stride, 952);
        let mut o = vec![0.0; 2 * oh * ow];
        let (first, second) = o.split_at_mut(oh * ow);
        output_tiles(&tiling, &products, [oh, ow], &mut [first, second]);
        for (b, plane) in planes.iter().enumerate() {
            for (ty, tx) in (0..th).flat_map(|ty| (0..tw).map(move |tx| (ty, tx))) {
                let tile = b * th * tw + ty * tw + tx;
                let d = |r: usize, c: usize| {
                    let (y, x) = ((2 * ty + r).checked_sub(1), (2 * tx + c).checked_sub(1));
                    match (y, x) {
                        (Some(y), Some(x)) if y < h && x < w => plane[y * w + x],
                        _ => 0.0,
                    }
                };
                let rows: [[f32; 4]; 4] = std::array::from_fn(|c| {
                    [
                        d(0, c) - d(2, c),
                        d(1, c) + d(2, c),
                        d(2, c) - d(1, c),
                        d(1, c) - d(3, c),
                    ]
                });
                for i in 0..4 {
                    let r = |c: usize| rows[c][i];
                    let want = [r(0) - r(2), r(1) + r(2), r(2) - r(1), r(1) - r(3)];
                    for (j, want) in want.into_iter().enumerate() {
                        assert_eq!(got[(4 * i + j) * stride + tile], want, "tile {tile} {i}{j}");
                    }
                }
                let m = |xi: usize| products[xi * stride + tile];
                let at: [[f32; 2]; 4] = std::array::from_fn(|j| {
                    [m(j) + m(4 + j) + m(8 + j), m(4 + j) - m(8 + j) - m(12 + j)]
                });
                let [a0, a1, a2, a3] = at;
                for (r, ((t0, t1), (t2, t3))) in
                    a0.iter().zip(a1).zip(a2.iter().zip(a3)).enumerate()
                {
                    let pair = [t0 + t1 + t2, t1 - t2 - t3];
                    for (c, want) in pair.into_iter().enumerate() {
                        let (y, x) = (2 * ty + r, 2 * tx + c);
                        if y < oh && x < ow {
                            assert_eq!(o[b * oh * ow + y * ow + x], want, "output {b} {y} {x}");
                        }
                    }
                }
            }
        }
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
