//! What follows a convolution in the graph, applied in the same pass over its output: the
//! bias, a residual addition and the activation.

use std::ops::Range;

use super::activation::Activation;
use super::isa::{Kernel, isa_dispatch};
use super::shape::{ConvShape, check_len};

/// What happens to the convolution's output in the same pass, in this order: `+ bias[c]`,
/// `+ residual` (a tensor of the output's shape), then the activation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// Per-output-channel bias.
    pub bias: Option<&'a [f32]>,
    /// A tensor added element-wise (a residual connection), NCHW like the output.
    pub residual: Option<&'a [f32]>,
    /// The activation applied last.
    pub activation: Option<Activation>,
}

impl Epilogue<'_> {
    /// Asserts that the bias and the residual fit `batch` outputs of `s`.
    pub fn check(&self, s: &ConvShape, batch: usize) {
        if let Some(bias) = self.bias {
            check_len("the bias", bias.len(), s.cout);
        }
        if let Some(residual) = self.residual {
            check_len("the residual", residual.len(), s.output_len(batch));
        }
    }

    /// The epilogue of image `b` of a batch whose images have `len` output values: its
    /// residual is that image's.
    pub fn of_image(&self, b: usize, len: usize) -> Self {
        Epilogue {
            residual: self.residual.map(|r| &r[b * len..(b + 1) * len]),
            ..*self
        }
    }

    /// The epilogue of output channels `first..first + count` of one image (whose residual is
    /// that image's), planes of `plane` values: its bias and residual are theirs.
    pub fn channels(&self, first: usize, count: usize, plane: usize) -> Self {
        Epilogue {
            bias: self.bias.map(|b| &b[first..first + count]),
            residual: self
                .residual
                .map(|r| &r[first * plane..(first + count) * plane]),
            activation: self.activation,
        }
    }

    /// Applies to the block of columns `cols` of one image's output, given as each channel's
    /// block (`rows[c]`), in planes of `plane` values (the residual is that image's).
    pub fn apply_columns(&self, rows: &mut [&mut [f32]], cols: Range<usize>, plane: usize) {
        if self.bias.is_none() && self.residual.is_none() && self.activation.is_none() {
            return;
        }
        apply_columns_on(Kernel::Epilogue.enter(), self, rows, cols, plane);
    }

    /// Applies the bias and the activation to `values` stored pixel by pixel (`channels` per
    /// pixel, NHWC), in place. Panics with a residual (whose layout is the output's, NCHW).
    pub fn apply_pixels(&self, values: &mut [f32], channels: usize) {
        assert!(
            self.residual.is_none(),
            "a residual added to values stored pixel by pixel"
        );
        if self.bias.is_some() || self.activation.is_some() {
            pixels_on(Kernel::Epilogue.enter(), self, values, channels);
        }
    }

    /// Applies to values `o` of channel `c`, in place; `residual` holds the same positions'.
    #[inline(always)]
    pub fn apply_channel(&self, c: usize, o: &mut [f32], residual: Option<&[f32]>) {
        let b = self.bias.map_or(0.0, |b| b[c]);
        match (residual, self.activation) {
            (None, None) => o.iter_mut().for_each(|v| *v += b),
            (None, Some(a)) => o.iter_mut().for_each(|v| *v = a.apply(*v + b)),
            (Some(r), None) => o.iter_mut().zip(r).for_each(|(v, &r)| *v += b + r),
            (Some(r), Some(a)) => o
                .iter_mut()
                .zip(r)
                .for_each(|(v, &r)| *v = a.apply(*v + b + r)),
        }
    }
}

isa_dispatch! {
    /// [`apply_columns_with`] compiled for `isa` (which the CPU must have).
    fn apply_columns_on<'r>(
        e: &Epilogue,
        rows: &mut [&'r mut [f32]],
        cols: Range<usize>,
        plane: usize,
    ) => apply_columns_with
}

/// [`Epilogue::apply_columns`].
#[inline(always)]
fn apply_columns_with(e: &Epilogue, rows: &mut [&mut [f32]], cols: Range<usize>, plane: usize) {
    for (c, o) in rows.iter_mut().enumerate() {
        let residual = e
            .residual
            .map(|r| &r[c * plane + cols.start..c * plane + cols.end]);
        e.apply_channel(c, o, residual);
    }
}

isa_dispatch! {
    /// [`pixels_with`] compiled for `isa`.
    fn pixels_on(epilogue: &Epilogue, values: &mut [f32], channels: usize) => pixels_with
}

/// [`Epilogue::apply_pixels`]'s loop.
#[inline(always)]
fn pixels_with(epilogue: &Epilogue, values: &mut [f32], channels: usize) {
    let pixels = values.chunks_exact_mut(channels);
    match (epilogue.bias, epilogue.activation) {
        (Some(bias), Some(a)) => pixels.for_each(|pixel| {
            for (v, &b) in pixel.iter_mut().zip(bias) {
                *v = a.apply(*v + b);
            }
        }),
        (Some(bias), None) => pixels.for_each(|pixel| {
            pixel.iter_mut().zip(bias).for_each(|(v, &b)| *v += b);
        }),
        (None, Some(a)) => values.iter_mut().for_each(|v| *v = a.apply(*v)),
        (None, None) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::values;

    #[test]
    fn every_isa_path_gives_the_portable_result() {
        use crate::kernels::testing::assert_every_isa_agrees;
        let (cout, plane) = (5, 37);
        let out = values(cout * plane, 900);
        let bias = values(cout, 901);
        let residual = values(cout * plane, 902);
        for activation in [
            None,
            Some(Activation::Relu),
            Some(Activation::Clip(-0.3, 0.4)),
        ] {
            for residual in [None, Some(&residual[..])] {
                let epilogue = Epilogue {
                    bias: Some(&bias),
                    residual,
                    activation,
                };
                assert_every_isa_agrees(&format!("epilogue {activation:?}"), |isa| {
                    let mut o = out.clone();
                    let mut rows: Vec<&mut [f32]> = o.chunks_mut(plane).collect();
                    apply_columns_on(isa, &epilogue, &mut rows, 0..plane, plane);
                    o
                });
            }
        }
    }
}
