//! An inverted bottleneck (MobileNetV2's and EfficientNet's MBConv block: a pointwise
//! expansion, a depthwise convolution, a pointwise projection, each with its bias and
//! activation, the projection with the block's residual) run as one kernel, each image on one
//! thread, a strip of output rows at a time. Run as three convolutions, the expanded tensor (six
//! times the block's input) is written out to memory and read back, and so is the depthwise
//! one: on EfficientNet-Lite0 at 10 images the depthwise kernels spent as long reading their
//! input and writing their output as summing. Here a strip's expanded rows and depthwise rows
//! (about [`STRIP_VALUES`] values) stay in the core's cache between the three steps. The
//! expansion computes the rows a strip's depthwise windows read, so the rows where two strips
//! meet are expanded twice.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::ops::Range;

use super::channel_blocks::{self, MAX_PADDED_PLANE};
use super::epilogue::Epilogue;
use super::matmul::{MatRef, matmul_columns_into, matmul_into};
use super::pool::sliding_window;
use super::shape::{ConvShape, check_len};
use super::uninit::{Written, written_in_parts};
use super::window::Window;
use super::work;

/// One convolution of the block: its shape, weights (`[cout, cin / groups, kh, kw]`) and what
/// follows it.
#[derive(Clone, Copy, Debug)]
pub struct Stage<'a> {
    /// The shape (its input that of the previous stage's output).
    pub s: ConvShape,
    /// The weights, row-major.
    pub w: &'a [f32],
    /// Its bias, residual (the projection's only, over the whole batch) and activation.
    pub epilogue: Epilogue<'a>,
}

/// The three convolutions of an inverted bottleneck; blocks that do not expand (an expansion
/// ratio of 1) start at the depthwise convolution.
#[derive(Clone, Copy, Debug)]
pub struct Bottleneck<'a> {
    /// The pointwise expansion, if the block has one.
    pub expand: Option<Stage<'a>>,
    /// The depthwise convolution (any kernel, stride, dilation and padding).
    pub depthwise: Stage<'a>,
    /// The pointwise projection.
    pub project: Stage<'a>,
}

/// Values of a strip's expanded rows (512 KiB: a quarter of a core's L2 cache, the depthwise
/// rows and the weights beside them).
pub const STRIP_VALUES: usize = 1 << 17;

impl Bottleneck<'_> {
    /// Whether the stages chain (each one's output the next one's input), are of their kinds
    /// (pointwise stride-1 unpadded expansion and projection, a depthwise convolution whose
    /// padding is thinner than its window, so every strip reads an input row) and their
    /// weights and epilogues fit them for `batch` images.
    pub fn fits(&self, batch: usize) -> bool {
        let (d, p) = (&self.depthwise, &self.project);
        let pointwise = |s: &ConvShape| s.is_pointwise() && s.groups == 1;
        let expand_fits = self
            .expand
            .as_ref()
            .is_none_or(|e| pointwise(&e.s) && e.s.cout == d.s.cin && e.s.input == d.s.input);
        let stage_fits = |st: &Stage, residual: bool| {
            st.s.output().is_some()
                && st.w.len() == st.s.weight_len()
                && st.epilogue.bias.is_none_or(|b| b.len() == st.s.cout)
                && st
                    .epilogue
                    .residual
                    .is_none_or(|r| residual && r.len() == st.s.output_len(batch))
        };
        expand_fits
            && self.expand.as_ref().is_none_or(|e| stage_fits(e, false))
            && d.s.is_depthwise()
            && stage_fits(d, false)
            && d.s.dilation.iter().all(|&v| v > 0)
            && d.s.pad[0].0 < d.s.span(0)
            && d.s.pad[0].1 < d.s.span(0)
            && (self.expand.is_none() || one_row_fits(&d.s))
            && pointwise(&p.s)
            && p.s.cin == d.s.cout
            && d.s.output() == Some(p.s.input)
            && stage_fits(p, true)
    }

    /// The block's input shape.
    fn input(&self) -> &ConvShape {
        self.expand.as_ref().map_or(&self.depthwise.s, |e| &e.s)
    }
}

thread_local! {
    /// This thread's expanded strip, grown to the largest seen.
    static EXPANDED: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Runs `block` on `batch` NCHW images `x`; returns the NCHW outputs, the projection's
/// epilogue (with its residual) applied. Each image on one thread: for batches that fill the
/// threads.
pub fn run(x: &[f32], batch: usize, block: &Bottleneck) -> Vec<f32> {
    assert!(
        block.fits(batch),
        "an inverted bottleneck whose stages do not chain: {block:?}"
    );
    let input = block.input();
    check_len("the input", x.len(), input.input_len(batch));
    for stage in block
        .expand
        .iter()
        .chain([&block.depthwise, &block.project])
    {
        work::count_convolution(&stage.s, batch);
    }
    let in_image = input.input_len(1);
    let out_image = block.project.s.output_len(1);
    let rows = strip_rows(&block.depthwise.s, STRIP_VALUES);
    written_in_parts(batch, out_image, |b, out_b| {
        let x_b = &x[b * in_image..(b + 1) * in_image];
        let project = block.project.epilogue.of_image(b, out_image);
        EXPANDED.with(|cell| {
            let mut expanded = cell.take();
            let written = image(x_b, block, &project, rows, &mut expanded, out_b);
            cell.set(expanded);
            written
        })
    })
}

/// Output rows per strip of the depthwise convolution `d`: as many as keep the expanded rows
/// they read within `budget` values, and their padded plane within the channel-block kernel's
/// ([`MAX_PADDED_PLANE`]); at least one.
fn strip_rows(d: &ConvShape, budget: usize) -> usize {
    let [oh, _] = d.checked_output();
    let reach = d.span(0);
    let row = (d.cin * d.input[1]).max(1);
    // A strip's padded rows are the rows its windows span (the padding among them).
    let padded_row = d.input[1] + d.pad[1].0 + d.pad[1].1;
    let plane_rows = MAX_PADDED_PLANE / padded_row.max(1);
    let rows_in = (budget / row).min(plane_rows).max(reach);
    ((rows_in - reach) / d.stride[0] + 1).clamp(1, oh.max(1))
}

/// Whether a one-row strip of `d` (its padded rows the window's span) fits the channel-block
/// kernel's padded plane ([`MAX_PADDED_PLANE`]).
fn one_row_fits(d: &ConvShape) -> bool {
    let cols = d.input[1] + d.pad[1].0 + d.pad[1].1;
    d.span(0)
        .checked_mul(cols)
        .is_some_and(|v| v <= MAX_PADDED_PLANE)
}

/// One image (`x`), `rows` depthwise output rows at a time; `project` is the projection's
/// epilogue for this image. `scratch` holds a strip's expanded and depthwise rows.
fn image(
    x: &[f32],
    block: &Bottleneck,
    project: &Epilogue,
    rows: usize,
    scratch: &mut Vec<f32>,
    out: &mut [MaybeUninit<f32>],
) -> Written {
    let d = &block.depthwise.s;
    let [oh, ow] = d.checked_output();
    let (channels, plane_out) = (d.cin, oh * ow);
    let p = &block.project;
    let weights = MatRef::row_major(p.w, [p.s.cout, channels]);
    for first in (0..oh).step_by(rows) {
        let last = (first + rows).min(oh);
        let (strip, lo) = strip(d, first..last);
        let cols = first * ow..last * ow;
        let plain: Vec<f32>;
        let depthwise = match &block.expand {
            Some(e) => {
                let sums = expanded(x, e, &block.depthwise, (&strip, lo), scratch);
                MatRef::row_major(sums, [cols.len(), channels]).t()
            }
            None => {
                plain = unexpanded(x, &block.depthwise, (&strip, lo), scratch);
                MatRef::row_major(&plain, [channels, cols.len()])
            }
        };
        let none = gemm::Parallelism::None;
        let mut written =
            matmul_columns_into(out, plane_out, cols.clone(), weights, depthwise, none);
        project.apply_columns(&mut written, cols, plane_out);
    }
    // SAFETY: the strips' columns tile `0..plane_out` (output rows `0..oh`), and each product
    // wrote all `cout` rows of its strip's columns.
    unsafe { Written::assume_all(out) }
}

/// The depthwise convolution `d` of output rows `rows` alone: its shape on the image rows the
/// windows read (from the returned first one on), the image's padding above and below where
/// the strip reaches it.
fn strip(d: &ConvShape, rows: Range<usize>) -> (ConvShape, usize) {
    let h = d.input[0];
    let reach = d.span(0);
    let top = d.pad[0].0 as isize;
    // The padded input rows the windows read, `from..to` (signed: the padding above is
    // negative), and the image rows among them, `lo..hi`.
    let from = (rows.start * d.stride[0]) as isize - top;
    let to = ((rows.end - 1) * d.stride[0] + reach) as isize - top;
    let (lo, hi) = (from.max(0) as usize, to.min(h as isize) as usize);
    let shape = ConvShape {
        input: [hi - lo, d.input[1]],
        pad: [
            ((lo as isize - from) as usize, (to - hi as isize) as usize),
            d.pad[1],
        ],
        ..*d
    };
    (shape, lo)
}

/// A strip of an expanding block, pixel by pixel (NHWC): the expansion of the image rows from
/// `lo` on as the transposed product, then the depthwise convolution `d` (shape `strip`) on
/// whole vectors of channels. Returns its sums, `[rows · ow][channels]`, in `scratch`.
fn expanded<'s>(
    x: &[f32],
    e: &Stage,
    d: &Stage,
    (strip, lo): (&ConvShape, usize),
    scratch: &'s mut Vec<f32>,
) -> &'s [f32] {
    let [h, w] = e.s.input;
    let channels = e.s.cout;
    let [oh, ow] = strip.checked_output();
    let (values, sums) = (channels * strip.input[0] * w, channels * oh * ow);
    if scratch.len() < values + sums {
        scratch.resize(values + sums, 0.0);
    }
    let (pixels, depthwise) = scratch[..values + sums].split_at_mut(values);
    let image = MatRef {
        data: &x[lo * w..],
        shape: [values / channels, e.s.cin],
        strides: [1, h * w],
    };
    let weights = MatRef::row_major(e.w, [channels, e.s.cin]).t();
    matmul_into(pixels, image, weights, gemm::Parallelism::None);
    e.epilogue.apply_pixels(pixels, channels);
    channel_blocks::run_nhwc(pixels, strip, d.w, &d.epilogue, depthwise);
    depthwise
}

/// A strip of a block without expansion: the image rows from `lo` on (copied side by side
/// into `scratch`) through the depthwise convolution `d` (shape `strip`), channel by channel.
fn unexpanded(
    x: &[f32],
    d: &Stage,
    (strip, lo): (&ConvShape, usize),
    scratch: &mut Vec<f32>,
) -> Vec<f32> {
    let [h, w] = d.s.input;
    let plane = strip.input[0] * w;
    let values = d.s.cin * plane;
    if scratch.len() < values {
        scratch.resize(values, 0.0);
    }
    for (c, dst) in scratch[..values].chunks_exact_mut(plane).enumerate() {
        let at = c * h * w + lo * w;
        dst.copy_from_slice(&x[at..at + plane]);
    }
    written_in_parts(1, strip.output_len(1), |_, dst| {
        sliding_window(
            &scratch[..values],
            strip,
            Window::Sum(d.w),
            &d.epilogue,
            dst,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::Activation;
    use crate::kernels::conv::conv2d;
    use crate::kernels::testing::values;

    /// The largest difference, relative to the wanted value where it exceeds 1.
    fn worst(got: &[f32], want: &[f32]) -> f32 {
        got.iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
            .fold(0.0, f32::max)
    }

    fn shape(cin: usize, input: [usize; 2], cout: usize, groups: usize) -> ConvShape {
        ConvShape {
            cin,
            input,
            cout,
            groups,
            kernel: [1, 1],
            stride: [1, 1],
            dilation: [1, 1],
            pad: [(0, 0); 2],
        }
    }

    /// The block against its three convolutions one after the other (the kernels the graph
    /// runs otherwise), over strips of every height from one row to the whole plane.
    #[test]
    fn a_block_equals_its_three_convolutions() {
        let relu6 = Some(Activation::Clip(0.0, 6.0));
        // (channels in, input, expanded, kernel, stride, pads, channels out, expand, residual)
        // (.., dilation): expanded channels past and short of a 16-channel block, asymmetric
        // padding, stride 2, dilation 2, without the expansion at stride 1 and 2.
        let cases = [
            (4, [9, 11], 24, 3, 1, [(1, 1), (1, 1)], 4, true, true, 1),
            (3, [12, 10], 18, 3, 2, [(0, 1), (0, 1)], 5, true, false, 1),
            (5, [13, 13], 20, 5, 2, [(1, 2), (1, 2)], 6, true, false, 1),
            (6, [7, 7], 36, 5, 1, [(2, 2), (2, 2)], 6, true, true, 1),
            (16, [10, 8], 16, 3, 1, [(1, 1), (1, 1)], 8, false, false, 1),
            (3, [11, 9], 12, 3, 1, [(2, 1), (2, 2)], 3, true, true, 2),
            (8, [11, 9], 8, 3, 2, [(1, 1), (0, 1)], 8, false, false, 1),
        ];
        for (i, (cin, input, ce, k, stride, pad, cout, expands, residual, dilation)) in
            cases.into_iter().enumerate()
        {
            let batch = 3;
            let seed = 10 * i as u32;
            let e = shape(cin, input, ce, 1);
            let mut d = shape(ce, input, ce, ce);
            (d.kernel, d.stride, d.pad) = ([k, k], [stride, stride], pad);
            d.dilation = [dilation, dilation];
            let out = d.checked_output();
            let p = shape(ce, out, cout, 1);
            let first = if expands { &e } else { &d };
            let x = values(first.input_len(batch), seed);
            let (we, be) = (values(e.weight_len(), seed + 1), values(ce, seed + 2));
            let (wd, bd) = (values(d.weight_len(), seed + 3), values(ce, seed + 4));
            let (wp, bp) = (values(p.weight_len(), seed + 5), values(cout, seed + 6));
            let r = values(p.output_len(batch), seed + 7);
            let residual = residual.then_some(&r[..]);
            let epilogue = |bias: &'static [f32], activation| Epilogue {
                bias: Some(bias),
                residual: None,
                activation,
            };
            let leak = |v: Vec<f32>| -> &'static [f32] { v.leak() };
            let (be, bd, bp) = (leak(be), leak(bd), leak(bp));
            let project = Epilogue {
                residual,
                ..epilogue(bp, None)
            };
            // Every other case expands with neither bias nor activation.
            let expansion = match i % 2 {
                0 => epilogue(be, relu6),
                _ => Epilogue::default(),
            };
            // The reference: three convolutions.
            let expanded = if expands {
                conv2d(&x, batch, &e, &we, &expansion)
            } else {
                x.clone()
            };
            let dw = conv2d(&expanded, batch, &d, &wd, &epilogue(bd, relu6));
            let want = conv2d(&dw, batch, &p, &wp, &project);
            let block = Bottleneck {
                expand: expands.then_some(Stage {
                    s: e,
                    w: &we,
                    epilogue: expansion,
                }),
                depthwise: Stage {
                    s: d,
                    w: &wd,
                    epilogue: epilogue(bd, relu6),
                },
                project: Stage {
                    s: p,
                    w: &wp,
                    epilogue: project,
                },
            };
            assert!(block.fits(batch), "case {i}");
            let per_row = ce * input[1];
            for rows in 1..=out[0] {
                let budget = per_row * ((rows - 1) * stride + d.span(0));
                assert_eq!(strip_rows(&d, budget), rows, "case {i}");
                let in_image = first.input_len(1);
                let out_image = p.output_len(1);
                let got = written_in_parts(batch, out_image, |b, o| {
                    let x_b = &x[b * in_image..(b + 1) * in_image];
                    let mut scratch = Vec::new();
                    image(
                        x_b,
                        &block,
                        &project.of_image(b, out_image),
                        rows,
                        &mut scratch,
                        o,
                    )
                });
                let err = worst(&got, &want);
                assert!(err <= 1e-5, "case {i}, {rows} rows per strip: {err}");
            }
            // The whole call: every image with its own input and residual.
            let got = run(&x, batch, &block);
            assert_eq!(got.len(), want.len());
            let err = worst(&got, &want);
            assert!(err <= 1e-5, "case {i}, run: {err}");
        }
    }

    #[test]
    fn stages_that_do_not_chain_are_refused() {
        let e = shape(4, [6, 6], 8, 1);
        let mut d = shape(8, [6, 6], 8, 8);
        (d.kernel, d.pad) = ([3, 3], [(1, 1), (1, 1)]);
        let p = shape(8, [6, 6], 4, 1);
        let (we, wd, wp) = (vec![0.0; 32], vec![0.0; 72], vec![0.0; 32]);
        let stage = |s, w| Stage {
            s,
            w,
            epilogue: Epilogue::default(),
        };
        let block = Bottleneck {
            expand: Some(stage(e, &we)),
            depthwise: stage(d, &wd),
            project: stage(p, &wp),
        };
        assert!(block.fits(2));
        // The expansion's channels are not the depthwise convolution's.
        let wider = Bottleneck {
            expand: Some(stage(shape(4, [6, 6], 9, 1), &we)),
            ..block
        };
        assert!(!wider.fits(2));
        // Padding as thick as the window: a strip could read no input row.
        let mut padded = d;
        padded.pad = [(3, 3), (1, 1)];
        let thick = Bottleneck {
            depthwise: stage(padded, &wd),
            project: stage(shape(8, padded.checked_output(), 4, 1), &wp),
            ..block
        };
        assert!(!thick.fits(2));
        // A plane so wide that one strip's padded rows pass the channel-block kernel's buffer.
        let wide = |s: ConvShape| ConvShape {
            input: [6, MAX_PADDED_PLANE / 3],
            ..s
        };
        let wide_block = Bottleneck {
            expand: Some(stage(wide(e), &we)),
            depthwise: stage(wide(d), &wd),
            project: stage(wide(p), &wp),
        };
        assert!(!wide_block.fits(2));
        assert!(
            Bottleneck {
                expand: None,
                ..wide_block
            }
            .fits(2)
        );
    }
}
