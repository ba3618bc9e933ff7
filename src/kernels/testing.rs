//! Helpers for the kernels' unit tests and benches: deterministic values and the direct
//! definition of the convolution to check them against.

use super::activation::Activation;
use super::isa::Isa;
use super::shape::ConvShape;

/// A convolution's shape as a tuple: `(cin, input, cout, groups, kernel, stride, dilation,
/// pad)`.
pub type Case = (
    usize,
    [usize; 2],
    usize,
    usize,
    [usize; 2],
    [usize; 2],
    [usize; 2],
    [(usize, usize); 2],
);

/// The [`ConvShape`] of a [`Case`].
pub fn conv_shape((cin, input, cout, groups, kernel, stride, dilation, pad): Case) -> ConvShape {
    ConvShape {
        cin,
        input,
        cout,
        groups,
        kernel,
        stride,
        dilation,
        pad,
    }
}

/// Asserts that `got` is `want` (the convolution with its bias, from [`reference()`]) plus
/// `residual`, through `activation`, to 1e-5 relative; `what` names the case.
pub fn assert_epilogue_matches(
    what: &str,
    got: &[f32],
    want: &[f32],
    residual: Option<&[f32]>,
    activation: Option<Activation>,
) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (j, (g, r)) in got.iter().zip(want).enumerate() {
        let r = r + residual.map_or(0.0, |res| res[j]);
        let r = activation.map_or(r, |a| a.apply(r));
        assert!(
            (g - r).abs() <= 1e-5 * (1.0 + r.abs()),
            "{what} {activation:?} value {j}: {g} vs {r}"
        );
    }
}

/// Direct definition of the convolution, for checking the kernels.
pub fn reference(
    x: &[f32],
    batch: usize,
    s: &ConvShape,
    w: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let [h, wd] = s.input;
    let [oh, ow] = s.output().unwrap();
    let (cin_g, cout_g) = (s.cin / s.groups, s.cout / s.groups);
    let mut out = vec![0.0; batch * s.cout * oh * ow];
    for b in 0..batch {
        for co in 0..s.cout {
            let g = co / cout_g;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias.map_or(0.0, |bv| f64::from(bv[co]));
                    for ci in 0..cin_g {
                        for ky in 0..s.kernel[0] {
                            for kx in 0..s.kernel[1] {
                                let iy = (oy * s.stride[0] + ky * s.dilation[0]) as isize
                                    - s.pad[0].0 as isize;
                                let ix = (ox * s.stride[1] + kx * s.dilation[1]) as isize
                                    - s.pad[1].0 as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let xi = ((b * s.cin + g * cin_g + ci) * h + iy as usize) * wd
                                    + ix as usize;
                                let wi = ((co * cin_g + ci) * s.kernel[0] + ky) * s.kernel[1] + kx;
                                acc += f64::from(x[xi]) * f64::from(w[wi]);
                            }
                        }
                    }
                    out[((b * s.cout + co) * oh + oy) * ow + ox] = acc as f32;
                }
            }
        }
    }
    out
}

/// A small deterministic pseudo-random sequence in [-1, 1).
pub fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Runs `kernel` through every ISA this CPU supports and asserts each agrees with the portable
/// path to 1e-6 of the output's largest magnitude (only FMA's rounding may differ).
pub fn assert_every_isa_agrees(what: &str, kernel: impl Fn(Isa) -> Vec<f32>) {
    let want = kernel(Isa::Portable);
    let scale = want.iter().fold(1e-30f32, |m, v| m.max(v.abs()));
    for isa in Isa::supported() {
        let got = kernel(isa);
        assert_eq!(got.len(), want.len(), "{what} on {isa:?}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-6 * scale,
                "{what} on {isa:?}, value {i}: {g} vs portable {w}"
            );
        }
    }
}
