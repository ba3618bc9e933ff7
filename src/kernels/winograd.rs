//! 3×3 stride-1 convolution by Winograd's minimal filtering F(4×4, 3×3) (Lavin & Gray, 2016):
//! each 4×4 output tile is `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` for the 6×6 input tile `d`, so the
//! channel sums become 36 matrix products with 36 multiplications per tile instead of 144: 4×
//! fewer than the direct method (F(2×2, 3×3), which this replaced, saves 2.25×). The transforms'
//! constants (¼, ⅙, 1/24 in G; 2, 4, 5, 8 in Bᵀ and Aᵀ) make the rounding error about ten
//! times F(2×2)'s: the largest input-gradient error in the unit tests is 3e-5 of the
//! gradient's RMS (2e-6 with F(2×2)); ResNet-50's IG-CAM and Grad-CAM maps moved by 2e-7 and
//! 7e-7 (relative L2). The filters are transformed once, at load; the tiles of all images of a
//! batch go through each of the 36 products together.

use std::cell::{Cell, RefCell};
use std::thread::LocalKey;

use super::conv_grad::Gate;
use super::epilogue::Epilogue;
use super::isa::{Kernel, isa_dispatch};
use super::par::{for_each_index, par_chunks};
use super::shape::{ConvShape, check_len, product};
use super::work;

/// Outputs per tile side.
const TILE: usize = 4;
/// Input values per tile side: `TILE + 2`.
const SIDE: usize = TILE + 2;
/// Transformed values per tile (`SIDE²`): one matrix product each.
pub const VALUES: usize = SIDE * SIDE;

/// The fewest input and output channels for which the saved multiplications outweigh the
/// transforms. Measured on ResNet-50's 3×3 layers with F(2×2, 3×3), batch 10, 2 cores:
/// Winograd took 0.85× the direct kernel's time at 64 channels, 0.75× at 128, 0.63× at 256 and
/// 512 (F(4×4, 3×3) takes 0.81–0.90× F(2×2)'s).
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

/// The fewest tiles (of all the images of a batch together) that give each of the 36 products
/// enough columns: ResNet-50's 7×7, 512-channel layer ran at a quarter of the direct kernel's
/// speed for one image (4 tiles), a little faster than it for two (8 tiles; 2 cores).
pub const MIN_TILES: usize = 8;

/// Whether this kernel pays for `batch` images of `s` (a shape it [`applies`] to): at least
/// [`MIN_TILES`] tiles.
pub fn pays(s: &ConvShape, batch: usize) -> bool {
    s.output()
        .is_some_and(|[oh, ow]| oh.div_ceil(TILE) * ow.div_ceil(TILE) * batch >= MIN_TILES)
}

/// `G v` for one column `v` of a 3×3 filter, G = [[¼,0,0],[-⅙,-⅙,-⅙],[-⅙,⅙,-⅙],
/// [1/24,1/12,⅙],[1/24,-1/12,⅙],[0,0,1]].
fn g_times([g0, g1, g2]: [f32; 3]) -> [f32; SIDE] {
    [
        g0 / 4.0,
        -(g0 + g1 + g2) / 6.0,
        -(g0 - g1 + g2) / 6.0,
        g0 / 24.0 + g1 / 12.0 + g2 / 6.0,
        g0 / 24.0 - g1 / 12.0 + g2 / 6.0,
        g2,
    ]
}

/// The 36 transformed filters `G g Gᵀ`, as `[36][cout][cin]`.
pub fn transform_filters(w: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    check_len("the weights", w.len(), product(&[cout, cin, 9]));
    let mut u = vec![0.0f32; VALUES * cout * cin];
    for k in 0..cout {
        for c in 0..cin {
            let g = &w[(k * cin + c) * 9..(k * cin + c) * 9 + 9];
            // G g (6×3, a column at a time), then (G g) Gᵀ (6×6, a row at a time).
            let columns: [[f32; SIDE]; 3] =
                std::array::from_fn(|j| g_times([g[j], g[3 + j], g[6 + j]]));
            for i in 0..SIDE {
                let row = g_times([columns[0][i], columns[1][i], columns[2][i]]);
                for (j, v) in row.into_iter().enumerate() {
                    u[((i * SIDE + j) * cout + k) * cin + c] = v;
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
        "Winograd F(4x4, 3x3) computes 3x3 stride-1 undilated convolutions, not {s:?}"
    );
    let (cin, cout) = (s.cin, s.cout);
    check_len("the input", x.len(), s.input_len(batch));
    check_len(
        "the transformed filters",
        u.len(),
        product(&[VALUES, cout, cin]),
    );
    epilogue.check(s, batch);
    Kernel::Gemm.enter();
    work::count_convolution(s, batch);
    let (th, tw) = (oh.div_ceil(TILE), ow.div_ceil(TILE));
    let n = product(&[batch, th, tw]);
    if n == 0 {
        return Vec::new();
    }
    // The scratch sizes below cannot overflow now.
    product(&[VALUES, n, cin + cout]);
    let all_at_once = (cin + cout) * VALUES * n;
    if cin.max(cout) <= BLOCKED_MAX_CHANNELS && all_at_once > ALL_AT_ONCE_MAX_VALUES {
        let rows_per_block = BLOCK_VALUES / (VALUES * (cin + cout) * tw);
        return run_blocked(x, batch, s, u, epilogue, rows_per_block);
    }
    // V: [cin][36][n], the transformed input tiles; M: [cout][36][n], the products. Both are
    // fully overwritten, so the scratch buffers are reused as they are.
    with_tile_buffers(&SCRATCH, [cin * VALUES * n, cout * VALUES * n], |v, m| {
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
    let (th, tw) = (oh.div_ceil(TILE), ow.div_ceil(TILE));
    let tiles = th * tw;
    let n = batch * tiles;
    let isa = Kernel::Transforms.enter();
    let tiling = Tiling::of(s, [0, th], batch, n);
    par_chunks(v, VALUES * n, |c, vc| {
        let planes: Vec<&[f32]> = (0..batch)
            .map(|b| &x[(b * cin + c) * h * w..(b * cin + c + 1) * h * w])
            .collect();
        input_tiles_on(isa, &tiling, &planes, vc);
    });
    let mp = SendPtr(m.as_mut_ptr());
    let products = |xi: usize| {
        // SAFETY: product xi writes M[k][xi][0..n] for every k: disjoint from the other xi.
        // U, V and M are in bounds: `conv2d` asserted u.len() == 36·cout·cin and sized v to
        // cin·36·n and m to cout·36·n (sizes it checked for overflow).
        unsafe { tile_product(xi, [cout, cin, n], u.as_ptr(), v.as_ptr(), mp.get()) }
    };
    for_each_index(VALUES, products);
    let mut out = vec![0.0f32; batch * cout * oh * ow];
    let op = SendPtr(out.as_mut_ptr());
    let plane = oh * ow;
    let write = |k: usize| {
        let mk = &m[k * VALUES * n..(k + 1) * VALUES * n];
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
/// V[c][xi][t]` for `[cout, cin, n]`, with U `[36][cout][cin]`, V `[cin][36][n]` and M
/// `[cout][36][n]`.
///
/// # Safety
/// `u`, `v` and `m` must point to buffers of at least 36·cout·cin, cin·36·n and cout·36·n
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
            (VALUES * n) as isize,
            false,
            u.add(xi * cout * cin),
            1,
            cin as isize,
            v.add(xi * n),
            1,
            (VALUES * n) as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Convolves as [`conv2d`] does, `rows_per_block` tile rows (at least one, at most all) of one
/// image at a time: the block's transformed tiles and products (`(cin + cout)·36` values per tile, about
/// [`BLOCK_VALUES`] in all) stay in the caches (L2 and L3) between the transforms and the
/// products, instead of going through memory for all tiles at once. For at most
/// [`BLOCKED_MAX_CHANNELS`] channels, whose transformed filters (read once per block) are small.
fn run_blocked(
    x: &[f32],
    batch: usize,
    s: &ConvShape,
    u: &[f32],
    epilogue: &Epilogue,
    rows_per_block: usize,
) -> Vec<f32> {
    let [h, w] = s.input;
    let [oh, ow] = s.checked_output();
    let (cin, cout) = (s.cin, s.cout);
    let (th, tw) = (oh.div_ceil(TILE), ow.div_ceil(TILE));
    let rows_per_block = rows_per_block.clamp(1, th);
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
        with_tile_buffers(
            &BLOCK_SCRATCH,
            [cin * VALUES * nb, cout * VALUES * nb],
            |v, m| {
                for (c, vc) in v.chunks_exact_mut(VALUES * nb).enumerate() {
                    let input = &x[(b * cin + c) * h * w..(b * cin + c + 1) * h * w];
                    input_tiles_on(isa, &tiling, &[input], vc);
                }
                for xi in 0..VALUES {
                    // SAFETY: `conv2d` asserted u.len() == 36·cout·cin; v and m were cut to
                    // cin·36·nb and cout·36·nb values just above; this thread owns them.
                    unsafe {
                        tile_product(xi, [cout, cin, nb], u.as_ptr(), v.as_ptr(), m.as_mut_ptr())
                    };
                }
                let [first, end] = [TILE * rows[0], (TILE * rows[1]).min(oh)];
                for (k, mk) in m.chunks_exact(VALUES * nb).enumerate() {
                    let base = (b * cout + k) * plane + first * ow;
                    let len = (end - first) * ow;
                    // SAFETY: output rows first..end of channel k of image b are this block's
                    // alone, inside `out` (batch·cout·oh·ow values; base + len ≤ its length).
                    let o = unsafe { std::slice::from_raw_parts_mut(op.get().add(base), len) };
                    let residual = epilogue.residual.map(|r| &r[base..base + len]);
                    output_tiles_on(isa, &tiling, mk, [oh, ow], &mut [&mut *o]);
                    epilogue_on(isa, epilogue, k, o, residual);
                }
            },
        )
    });
    out
}

/// The most channels (in or out) for which [`conv2d`] works in blocks ([`run_blocked`]), when
/// all tiles at once would take more than [`ALL_AT_ONCE_MAX_VALUES`]. Measured on VGG-16 with
/// F(2×2, 3×3), batch 10, 2 cores: blocks took 0.80–0.87× the time of all tiles at once at 64
/// channels, but 1.1–1.3× at 128, where the filters re-read per block and the narrower products
/// cost more than the memory traffic saved.
const BLOCKED_MAX_CHANNELS: usize = 64;

/// The most transformed tiles and products (values) a convolution of up to
/// [`BLOCKED_MAX_CHANNELS`] channels takes all at once: 64 MiB. ResNet-50's 56² 64-channel
/// layers (36 MiB at batch 10) took 0.86–0.92× the time of blocks that way (fastest of 3
/// alternating runs); VGG-16's 224² ones would take 580 MiB.
const ALL_AT_ONCE_MAX_VALUES: usize = 1 << 24;

/// About how many values a block's transformed tiles and products take ([`run_blocked`]):
/// 4 MiB, the size that ran ResNet-50's 56² 64-channel layers fastest in blocks (0.65× the
/// time of 1 MiB blocks, whose 36 products per block are too narrow).
const BLOCK_VALUES: usize = 1 << 20;

thread_local! {
    /// A block's transformed tiles and products, on this thread.
    static BLOCK_SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Where the tiles of one channel's planes lie, in one or more images: the input plane's size,
/// its top and left padding, the tiles per column and row, the tile rows and images taken, and
/// the stride between the 36 transformed values of a tile (the products' column count, every
/// image's tiles together).
struct Tiling {
    /// Input rows and columns.
    input: [usize; 2],
    /// Zero rows above and columns left of the input.
    pad: [usize; 2],
    /// Tile rows and tile columns (each tile covers 4×4 outputs).
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
            tiles: [oh.div_ceil(TILE), ow.div_ceil(TILE)],
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

/// `Bᵀ d B` of the 6×6 input tiles in tile rows `t.rows` of one channel's plane in each of
/// `t.images` images: transformed value `xi` of tile `i` (row-major from the first of those
/// rows, image after image) goes to `out[xi · stride + i]` ([`times_bt`] gives Bᵀ).
///
/// Every step is one long unit-stride run over all the tiles (a tile row is a few to a few
/// dozen tiles, too short for 16-lane vectors, and a small plane has few tile rows):
/// 1. each image's padded input rows (zero outside the plane), split by row modulo 4 into four
///    phases, `rows + 1` rows each per image: tile row `r` reads phases 0–3 at row `r` and
///    phases 0, 1 at row `r + 1`;
/// 2. `Bᵀ d`: six combinations of those (the tile row after each image's last straddles two
///    images and goes unused);
/// 3. their columns split by column modulo 4 the same way;
/// 4. `(Bᵀ d) B`: six combinations of those for each of the six, the 36 values of every tile
///    (and of one unused slot per tile row, past its end);
/// 5. each tile row's values copied to `out`.
#[inline(always)]
fn input_tiles(t: &Tiling, planes: &[&[f32]], out: &mut [f32]) {
    let ([h, w], [top, left], [_, tw]) = (t.input, t.pad, t.tiles);
    assert_eq!(planes.len(), t.images, "one plane per image");
    let rows = t.rows[1] - t.rows[0];
    // A padded input row: the 4·tw + 2 columns its tiles read from column −left on, and two
    // more (zeros), so that it splits into four phases of tw + 1 columns.
    let width = TILE * (tw + 1);
    let quarter = tw + 1;
    let stacked = t.images * (rows + 1);
    let (padded, span, slots) = (
        stacked * width,
        (stacked - 1) * width,
        (stacked - 1) * quarter,
    );
    let first = left.min(width);
    let count = w.min(width - first);
    let len = TILE * padded + 2 * SIDE * span + VALUES * slots;
    let mut buffer = take_transform_scratch(len);
    {
        let (phases, rest) = buffer[..len].split_at_mut(TILE * padded);
        let (row_combos, rest) = rest.split_at_mut(SIDE * span);
        let (split, tiles) = rest.split_at_mut(SIDE * span);
        // 1. Padded input row TILE·rows[0] + y of image b: phase y % 4, row b·(rows + 1) + y / 4.
        for (b, plane) in planes.iter().enumerate() {
            for y in 0..TILE * (rows + 1) {
                let phase = &mut phases[(y % TILE) * padded..(y % TILE + 1) * padded];
                let row = &mut phase[(b * (rows + 1) + y / TILE) * width..][..width];
                match (TILE * t.rows[0] + y).checked_sub(top).filter(|&iy| iy < h) {
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
        // 2. Bᵀ d for every tile row.
        let phase = |p: usize, next: usize| &phases[p * padded + next * width..][..span];
        let d = [
            phase(0, 0),
            phase(1, 0),
            phase(2, 0),
            phase(3, 0),
            phase(0, 1),
            phase(1, 1),
        ];
        times_bt(row_combos, d);
        // 3. The four column phases of each combination.
        for (combo, quarters) in row_combos
            .chunks_exact(span)
            .zip(split.chunks_exact_mut(span))
        {
            deinterleave(combo, quarters);
        }
        // 4. (Bᵀ d) B: tile x of a row reads phases 0–3 at x and phases 0, 1 at x + 1.
        let used = slots - 1;
        for (quarters, values) in split
            .chunks_exact(span)
            .zip(tiles.chunks_exact_mut(SIDE * slots))
        {
            let q = |p: usize, next: usize| &quarters[p * slots + next..][..used];
            times_bt(
                values,
                [q(0, 0), q(1, 0), q(2, 0), q(3, 0), q(0, 1), q(1, 1)],
            );
        }
        // 5. Each image's tile rows to `out`, without the unused slots and rows.
        for (xi, values) in tiles.chunks_exact(slots).enumerate() {
            let dst = &mut out[xi * t.stride..xi * t.stride + t.images * rows * tw];
            for (b, image) in dst.chunks_exact_mut(rows * tw).enumerate() {
                let from = &values[b * (rows + 1) * quarter..];
                for (d, v) in image.chunks_exact_mut(tw).zip(from.chunks(quarter)) {
                    copy_run(d, &v[..tw]);
                }
            }
        }
    }
    TRANSFORM_SCRATCH.set(buffer);
}

/// `Bᵀ d` for six runs `d` (the rows, or columns, of tiles), into six runs of `out`, each as
/// long as `out.len() / 6` (the first `d[0].len()` of each written), where Bᵀ =
/// [[4,0,-5,0,1,0],[0,-4,-4,1,1,0],[0,4,-4,-1,1,0],[0,-2,-1,2,1,0],[0,2,-1,-2,1,0],
/// [0,4,0,-5,0,1]].
#[inline(always)]
fn times_bt(out: &mut [f32], d: [&[f32]; SIDE]) {
    let run = out.len() / SIDE;
    let mut runs = out.chunks_exact_mut(run);
    let mut next = || &mut runs.next().expect("six runs")[..d[0].len()];
    combine(next(), d, |[d0, _, d2, _, d4, _]| {
        4.0 * (d0 - d2) + (d4 - d2)
    });
    combine(next(), d, |[_, d1, d2, d3, d4, _]| {
        (d3 + d4) - 4.0 * (d1 + d2)
    });
    combine(next(), d, |[_, d1, d2, d3, d4, _]| {
        (d4 - d3) + 4.0 * (d1 - d2)
    });
    combine(next(), d, |[_, d1, d2, d3, d4, _]| {
        (d4 - d2) + 2.0 * (d3 - d1)
    });
    combine(next(), d, |[_, d1, d2, d3, d4, _]| {
        (d4 - d2) + 2.0 * (d1 - d3)
    });
    combine(next(), d, |[_, d1, _, d3, _, d5]| {
        4.0 * (d1 - d3) + (d5 - d3)
    });
}

/// `Aᵀ m` for six runs `m`, into four runs of `out` (each `out.len() / 4` long), where Aᵀ =
/// [[1,1,1,1,1,0],[0,1,-1,2,-2,0],[0,1,1,4,4,0],[0,1,-1,8,-8,1]].
#[inline(always)]
fn times_at(out: &mut [f32], m: [&[f32]; SIDE]) {
    let mut runs = out.chunks_exact_mut(out.len() / TILE);
    let mut next = || runs.next().expect("four runs");
    combine(next(), m, |[m0, m1, m2, m3, m4, _]| {
        (m0 + (m1 + m2)) + (m3 + m4)
    });
    combine(next(), m, |[_, m1, m2, m3, m4, _]| {
        (m1 - m2) + 2.0 * (m3 - m4)
    });
    combine(next(), m, |[_, m1, m2, m3, m4, _]| {
        (m1 + m2) + 4.0 * (m3 + m4)
    });
    combine(next(), m, |[_, m1, m2, m3, m4, m5]| {
        ((m1 - m2) + 8.0 * (m3 - m4)) + m5
    });
}

/// `out[x] = f([d0[x], …, d5[x]])` for the six runs `d` (each at least as long as `out`).
#[inline(always)]
fn combine(out: &mut [f32], d: [&[f32]; SIDE], f: impl Fn([f32; SIDE]) -> f32) {
    let n = out.len();
    let d = d.map(|run| &run[..n]);
    for (x, v) in out.iter_mut().enumerate() {
        *v = f([d[0][x], d[1][x], d[2][x], d[3][x], d[4][x], d[5][x]]);
    }
}

/// `Aᵀ m A` of the product tiles of one channel's tile rows `t.rows` in each of `t.images`
/// images (value `xi` of tile `i`, numbered as [`input_tiles`] does, at `products[xi · stride +
/// i]`), written to each image's `o`: the `output` plane's rows from `4 · t.rows[0]` on (rows
/// and columns past its edge left out); [`times_at`] gives Aᵀ. As in [`input_tiles`], each step
/// is one run over all the tiles: `Aᵀ m` (24 values a tile), `(Aᵀ m) A` (the 4×4 outputs), each
/// tile's four output columns interleaved into the four output rows it covers, and those rows
/// copied to `o`.
#[inline(always)]
fn output_tiles(t: &Tiling, products: &[f32], output: [usize; 2], o: &mut [&mut [f32]]) {
    let ([_, tw], [oh, ow], first) = (t.tiles, output, t.rows[0]);
    assert_eq!(o.len(), t.images, "one output plane per image");
    let rows = t.rows[1] - first;
    let count = t.images * rows * tw;
    let len = (TILE * SIDE + 2 * TILE * TILE) * count;
    let mut buffer = take_transform_scratch(len);
    {
        let (combos, rest) = buffer[..len].split_at_mut(TILE * SIDE * count);
        let (columns, interleaved) = rest.split_at_mut(TILE * TILE * count);
        let s = |xi: usize| &products[xi * t.stride..xi * t.stride + count];
        // Aᵀ m, column j of the tile at a time: combos[j][r] is row r of it.
        for (j, column) in combos.chunks_exact_mut(TILE * count).enumerate() {
            times_at(column, std::array::from_fn(|i| s(i * SIDE + j)));
        }
        // (Aᵀ m) A, output row r at a time: columns[r][c].
        for (r, row) in columns.chunks_exact_mut(TILE * count).enumerate() {
            let m = std::array::from_fn(|j| &combos[(j * TILE + r) * count..][..count]);
            times_at(row, m);
        }
        // Output row r of every tile row: its tiles' four columns, interleaved.
        let rows_out = columns.chunks_exact(TILE * count);
        for (row, out) in rows_out.zip(interleaved.chunks_exact_mut(TILE * count)) {
            interleave(row, out);
        }
        for (b, plane) in o.iter_mut().enumerate() {
            for ty in first..t.rows[1] {
                let at = (b * rows + ty - first) * TILE * tw;
                for (r, values) in interleaved.chunks_exact(TILE * count).enumerate() {
                    let oy = TILE * ty + r;
                    if oy < oh {
                        let oy = oy - TILE * first;
                        copy_run(&mut plane[oy * ow..(oy + 1) * ow], &values[at..at + ow]);
                    }
                }
            }
        }
    }
    TRANSFORM_SCRATCH.set(buffer);
}

/// Splits `values` by index modulo 4 into the four quarters of `phases`: `phases[p · q + k] =
/// values[4k + p]` (`q = values.len() / 4`), 16 values of each at a time (fixed sizes, which
/// the compiler turns into vector shuffles; a plain loop stays scalar).
#[inline(always)]
fn deinterleave(values: &[f32], phases: &mut [f32]) {
    let q = values.len() / TILE;
    let mut quarters = phases.chunks_exact_mut(q);
    let mut p: [&mut [f32]; TILE] = std::array::from_fn(|_| quarters.next().expect("4 quarters"));
    let blocks = values.chunks_exact(TILE * LANES);
    let tail = blocks.remainder();
    for (i, block) in blocks.enumerate() {
        let block: &[f32; TILE * LANES] = block.try_into().expect("a whole block");
        for (phase, quarter) in p.iter_mut().enumerate() {
            let run: &mut [f32; LANES] = (&mut quarter[i * LANES..][..LANES])
                .try_into()
                .expect("a run");
            for (k, v) in run.iter_mut().enumerate() {
                *v = block[TILE * k + phase];
            }
        }
    }
    let done = q - tail.len() / TILE;
    for (k, group) in tail.chunks_exact(TILE).enumerate() {
        for (quarter, &v) in p.iter_mut().zip(group) {
            quarter[done + k] = v;
        }
    }
}

/// [`deinterleave`] backwards: `values[4k + p] = phases[p · q + k]`.
#[inline(always)]
fn interleave(phases: &[f32], values: &mut [f32]) {
    let q = values.len() / TILE;
    let mut quarters = phases.chunks_exact(q);
    let p: [&[f32]; TILE] = std::array::from_fn(|_| quarters.next().expect("4 quarters"));
    let mut blocks = values.chunks_exact_mut(TILE * LANES);
    for (i, block) in (&mut blocks).enumerate() {
        let block: &mut [f32; TILE * LANES] = block.try_into().expect("a whole block");
        for (phase, quarter) in p.iter().enumerate() {
            let run: &[f32; LANES] = quarter[i * LANES..][..LANES].try_into().expect("a run");
            for (k, &v) in run.iter().enumerate() {
                block[TILE * k + phase] = v;
            }
        }
    }
    let tail = blocks.into_remainder();
    let done = q - tail.len() / TILE;
    for (k, group) in tail.chunks_exact_mut(TILE).enumerate() {
        for (v, quarter) in group.iter_mut().zip(&p) {
            *v = quarter[done + k];
        }
    }
}

/// Values per vector block of the transforms' shuffles (16 lanes of AVX-512).
const LANES: usize = 16;

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
    /// odd sizes, with and without padding, with an epilogue, all tiles at once and in blocks
    /// of 3 tile rows. (Small channel counts, which `applies` leaves to the direct kernel,
    /// compute the same.)
    #[test]
    fn matches_the_direct_convolution() {
        for (i, (cin, input, cout, pad)) in [
            (16, [8, 8], 8, [(1, 1), (1, 1)]),
            (17, [7, 9], 5, [(1, 1), (1, 1)]),
            (16, [6, 5], 3, [(0, 0), (0, 0)]),
            (20, [5, 6], 4, [(2, 0), (1, 2)]),
            (256, [5, 6], 260, [(1, 1), (1, 1)]),
            // Ten tile rows (blocks of 3, the last one shorter) and an odd width.
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
            let u = transform_filters(&w, cout, cin);
            for (path, got) in [
                ("all tiles at once", conv2d(&x, batch, &s, &u, &e)),
                ("blocks", run_blocked(&x, batch, &s, &u, &e, 3)),
            ] {
                assert_eq!(got.len(), want.len());
                // Relative L2 error: single values can cancel to near zero in 2304-term sums.
                // F(4×4)'s constants make it larger than F(2×2)'s (1.1e-6 in case 0 here).
                let (num, den) = got
                    .iter()
                    .zip(&want)
                    .fold((0.0f64, 0.0f64), |(n, d), (g, r)| {
                        (n + f64::from(g - r).powi(2), d + f64::from(*r).powi(2))
                    });
                let err = (num / den).sqrt();
                assert!(err <= 3e-6, "case {i}, {path}: relative L2 error {err:.2e}");
            }
        }
    }

    /// The tile transforms give the portable path's values on every ISA this CPU has, on two
    /// images at once, with runs long enough for the 16-lane blocks.
    #[test]
    fn every_isa_path_gives_the_portable_result() {
        use crate::kernels::testing::assert_every_isa_agrees;
        let ([h, w], [oh, ow]): ([usize; 2], [usize; 2]) = ([9, 37], [9, 37]);
        let tiling = Tiling {
            input: [h, w],
            pad: [1, 1],
            tiles: [oh.div_ceil(TILE), ow.div_ceil(TILE)],
            rows: [0, oh.div_ceil(TILE)],
            images: 2,
            stride: 61,
        };
        let planes = [values(h * w, 940), values(h * w, 942)];
        assert_every_isa_agrees("the input transform", |isa| {
            let mut out = vec![0.0; VALUES * 61];
            input_tiles_on(isa, &tiling, &[&planes[0], &planes[1]], &mut out);
            out
        });
        let products = values(VALUES * 61, 941);
        assert_every_isa_agrees("the output transform", |isa| {
            let mut o = vec![0.0; 2 * oh * ow];
            let (first, second) = o.split_at_mut(oh * ow);
            output_tiles_on(isa, &tiling, &products, [oh, ow], &mut [first, second]);
            o
        });
    }

    /// The transforms give the tile-by-tile matrix products `Bᵀ d B` and `Aᵀ m A` (taken in
    /// f64 here), on two images, odd sizes and both pads.
    #[test]
    fn transforms_equal_the_tile_by_tile_products() {
        const BT: [[f64; SIDE]; SIDE] = [
            [4., 0., -5., 0., 1., 0.],
            [0., -4., -4., 1., 1., 0.],
            [0., 4., -4., -1., 1., 0.],
            [0., -2., -1., 2., 1., 0.],
            [0., 2., -1., -2., 1., 0.],
            [0., 4., 0., -5., 0., 1.],
        ];
        const AT: [[f64; SIDE]; TILE] = [
            [1., 1., 1., 1., 1., 0.],
            [0., 1., -1., 2., -2., 0.],
            [0., 1., 1., 4., 4., 0.],
            [0., 1., -1., 8., -8., 1.],
        ];
        let ([h, w], [oh, ow]): ([usize; 2], [usize; 2]) = ([11, 9], [11, 9]);
        let ([th, tw], stride) = ([3, 3], 23);
        let tiling = Tiling {
            input: [h, w],
            pad: [1, 1],
            tiles: [th, tw],
            rows: [0, th],
            images: 2,
            stride,
        };
        let planes = [values(h * w, 950), values(h * w, 951)];
        let mut got = vec![0.0; VALUES * stride];
        input_tiles(&tiling, &[&planes[0], &planes[1]], &mut got);
        let products = values(VALUES * stride, 952);
        let mut o = vec![0.0; 2 * oh * ow];
        let (first, second) = o.split_at_mut(oh * ow);
        output_tiles(&tiling, &products, [oh, ow], &mut [first, second]);
        let close = |got: f32, want: f64, what: &str| {
            assert!(
                (f64::from(got) - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "{what}: {got} vs {want}"
            );
        };
        for (b, plane) in planes.iter().enumerate() {
            for (ty, tx) in (0..th).flat_map(|ty| (0..tw).map(move |tx| (ty, tx))) {
                let tile = b * th * tw + ty * tw + tx;
                let d = |r: usize, c: usize| {
                    let (y, x) = (
                        (TILE * ty + r).checked_sub(1),
                        (TILE * tx + c).checked_sub(1),
                    );
                    match (y, x) {
                        (Some(y), Some(x)) if y < h && x < w => f64::from(plane[y * w + x]),
                        _ => 0.0,
                    }
                };
                for (i, j) in (0..SIDE).flat_map(|i| (0..SIDE).map(move |j| (i, j))) {
                    let want: f64 = (0..SIDE)
                        .flat_map(|r| (0..SIDE).map(move |c| (r, c)))
                        .map(|(r, c)| BT[i][r] * d(r, c) * BT[j][c])
                        .sum();
                    close(
                        got[(SIDE * i + j) * stride + tile],
                        want,
                        &format!("tile {tile} {i}{j}"),
                    );
                }
                let m = |r: usize, c: usize| f64::from(products[(SIDE * r + c) * stride + tile]);
                for (r, c) in (0..TILE).flat_map(|r| (0..TILE).map(move |c| (r, c))) {
                    let (y, x) = (TILE * ty + r, TILE * tx + c);
                    if y < oh && x < ow {
                        let want: f64 = (0..SIDE)
                            .flat_map(|i| (0..SIDE).map(move |j| (i, j)))
                            .map(|(i, j)| AT[r][i] * m(i, j) * AT[c][j])
                            .sum();
                        close(
                            o[b * oh * ow + y * ow + x],
                            want,
                            &format!("output {b} {y} {x}"),
                        );
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
                // Within 1e-4 of the gradient's scale (its RMS, 4–7 here): F(4×4) is off by up
                // to 3e-5 of it, F(2×2) by 2e-6.
                let rms = (want.iter().map(|b| b * b).sum::<f32>() / want.len() as f32).sqrt();
                for (j, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-4 * rms,
                        "case {i} gate {} value {j}: {a} vs {b}",
                        gate.is_some()
                    );
                }
            }
        }
    }
}
