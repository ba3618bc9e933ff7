//! `Resize` (and the older `Upsample`) of the two spatial axes: bilinear with half-pixel or
//! aligned-corner coordinates, and nearest-neighbour with floor rounding on asymmetric
//! coordinates — what PyTorch's `F.interpolate` exports. Other modes are refused by name.

use burn::backend::Flex;
use burn::backend::ops::ModuleOps;
use burn::tensor::Tensor;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use super::conv::is_plain_cpu;
use super::inputs::{int_input, missing, take_nchw};
use super::operator::{Backward, BuildContext, OpResult, Operator, OrNoGradient};
use crate::error::OpError;
use crate::onnx::value::{FloatValue, Value};

/// Where the output size comes from.
enum Target {
    /// Constant `[1, 1, sh, sw]` scales (an output dim must be a whole number).
    Scales([f32; 2]),
    /// `[N, C, H, W]` sizes, constant or computed from shapes at run time (input `i`).
    Sizes(usize),
}

struct Resize {
    target: Target,
    mode: InterpolateMode,
    align_corners: bool,
}

/// Builds a `Resize` or `Upsample` node.
pub fn build(ctx: &BuildContext) -> OpResult<Box<dyn Operator>> {
    let a = ctx.attrs();
    let upsample = ctx.node.op_type == "Upsample";
    let mode = a.string("mode").unwrap_or_else(|| "nearest".into());
    let coordinates = a
        .string("coordinate_transformation_mode")
        .unwrap_or_else(|| if upsample { "asymmetric" } else { "half_pixel" }.into());
    let nearest = a
        .string("nearest_mode")
        .unwrap_or_else(|| "round_prefer_floor".into());
    if a.int("antialias", 0) != 0 {
        return Err(OpError::Unsupported(
            "antialiased Resize is not supported".into(),
        ));
    }
    if let Some(axes) = a.ints("axes")
        && !matches!(axes.as_slice(), [2, 3] | [-2, -1])
    {
        return Err(OpError::Unsupported(format!(
            "Resize over axes {axes:?} is not supported (only H and W)"
        )));
    }
    let (mode, align_corners) = match (mode.as_str(), coordinates.as_str()) {
        ("linear" | "bilinear", "half_pixel" | "pytorch_half_pixel") => {
            (InterpolateMode::Bilinear, false)
        }
        ("linear" | "bilinear", "align_corners") => (InterpolateMode::Bilinear, true),
        ("nearest", "asymmetric") if upsample || nearest == "floor" => {
            (InterpolateMode::Nearest, false)
        }
        (m, c) => {
            return Err(OpError::Unsupported(format!(
                "Resize mode `{m}` with `{c}` coordinates{} is not supported (bilinear, and nearest with floor rounding on asymmetric coordinates, are)",
                if m == "nearest" {
                    format!(" and `{nearest}` rounding")
                } else {
                    String::new()
                }
            )));
        }
    };
    // Inputs: Upsample (X, scales); Resize-10 (X, scales); Resize-11+ (X, roi, scales, sizes).
    let (scales_at, sizes_at) = if upsample || ctx.opset < 11 {
        (1, None)
    } else {
        (2, Some(3))
    };
    let given = |i: usize| ctx.node.input.get(i).is_some_and(|n| !n.is_empty());
    let target = match sizes_at.filter(|&i| given(i)) {
        Some(i) => Target::Sizes(i),
        None => {
            let scales = match ctx.constant_input(scales_at) {
                Some(s) => s,
                None if upsample || ctx.opset < 11 => a
                    .ints("scales")
                    .map(|v| v.iter().map(|&x| x as f32).collect())
                    .or_else(|| a.floats("scales"))
                    .ok_or_else(|| {
                        OpError::Unsupported("Upsample scales must be constants".into())
                    })?,
                None => {
                    return Err(OpError::Unsupported(
                        "Resize needs constant scales or sizes".into(),
                    ));
                }
            };
            match scales.as_slice() {
                [n, c, h, w] if *n == 1.0 && *c == 1.0 => Target::Scales([*h, *w]),
                [h, w] => Target::Scales([*h, *w]),
                other => {
                    return Err(OpError::Unsupported(format!(
                        "Resize scales {other:?} must leave the batch and channels as they are"
                    )));
                }
            }
        }
    };
    Ok(Box::new(Resize {
        target,
        mode,
        align_corners,
    }))
}

impl Resize {
    /// Burn's options for this resize.
    fn options(&self) -> InterpolateOptions {
        let mut options = InterpolateOptions::new(self.mode.clone());
        options.align_corners = self.align_corners;
        options
    }

    fn output_size(&self, inputs: &[Option<Value>], dims: [usize; 4]) -> OpResult<[usize; 2]> {
        match self.target {
            Target::Scales(scales) => {
                let mut out = [0; 2];
                for (k, (&scale, &d)) in scales.iter().zip(&dims[2..]).enumerate() {
                    let size = d as f64 * f64::from(scale);
                    if !(size >= 1.0 && size.fract() == 0.0 && size <= 1e6) {
                        return Err(OpError::Unsupported(format!(
                            "scale {scale} of a size-{d} axis does not give a whole size (igcam maps coordinates by the size ratio)"
                        )));
                    }
                    out[k] = size as usize;
                }
                Ok(out)
            }
            Target::Sizes(i) => {
                let sizes: Vec<i64> = int_input(inputs, i)?.iter().copied().collect();
                match sizes.as_slice() {
                    &[n, c, h, w]
                        if n as usize == dims[0] && c as usize == dims[1] && h > 0 && w > 0 =>
                    {
                        Ok([h as usize, w as usize])
                    }
                    &[h, w] if h > 0 && w > 0 => Ok([h as usize, w as usize]),
                    other => Err(OpError::Shape(format!(
                        "Resize sizes {other:?} must keep the batch and channels of {dims:?}"
                    ))),
                }
            }
        }
    }
}

impl Operator for Resize {
    /// Resizing is linear in the image (the sizes and scales are constants or shapes).
    fn affine_in(&self, i: usize) -> bool {
        i == 0
    }

    /// The input's gradient by Burn's own reverse step of its interpolation (the one its
    /// autodiff takes), on the CPU backend.
    fn backward(&self, step: Backward) -> OpResult<Vec<Option<FloatValue>>> {
        let x = step
            .float(0)
            .filter(|x| x.rank == 4 && step.only_first() && is_plain_cpu(&x.tensor.device()))
            .or_no_gradient()?;
        let g = &step.grad.tensor;
        let [n, c, oh, ow] = g.dims();
        if [n, c] != x.tensor.dims()[..2] {
            return Err(OpError::NoGradient);
        }
        let flex = |t: &Tensor<4>| {
            t.clone()
                .try_into_primitive::<Flex>()
                .map_err(|_| OpError::NoGradient)
        };
        let dx = <Flex as ModuleOps<Flex>>::interpolate_backward(
            flex(&x.tensor)?,
            flex(g)?,
            [oh, ow],
            self.options(),
        );
        Ok(vec![Some(FloatValue::nchw(Tensor::<4>::from_primitive::<
            Flex,
        >(dx)))])
    }

    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value> {
        let size = {
            let x = inputs
                .first()
                .and_then(Option::as_ref)
                .ok_or_else(|| missing(0))?;
            let shape = x.shape();
            let dims: [usize; 4] = shape
                .try_into()
                .map_err(|s| OpError::Shape(format!("input must be 4-D NCHW, got shape {s:?}")))?;
            if dims.contains(&0) {
                return Err(OpError::Shape(format!("cannot resize the empty {dims:?}")));
            }
            let size = self.output_size(inputs, dims)?;
            crate::budget::check_shape(&[dims[0], dims[1], size[0], size[1]])?;
            size
        };
        let x = take_nchw(inputs, 0)?;
        if x.device().is_autodiff() {
            return Ok(Value::Float(FloatValue::nchw(self.by_products(x, size))));
        }
        let mut options = self.options();
        options.output_size = Some(size);
        Ok(Value::Float(FloatValue::nchw(interpolate(x, options))))
    }
}

impl Resize {
    /// The resize as two matrix products, `A_h · X · A_wᵀ` for every plane, with each axis's
    /// taps and weights as Burn's (and PyTorch's) interpolation has them ([`axis_matrix`]).
    /// Under autodiff, so that the reverse step is the products' on every device: Burn's GPU
    /// backends have no reverse step of a bilinear interpolation (cubecl's panics).
    fn by_products(&self, x: Tensor<4>, [oh, ow]: [usize; 2]) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let device = x.device();
        let matrix = |out: usize, inp: usize| {
            let values = axis_matrix(out, inp, &self.mode, self.align_corners);
            crate::onnx::host::tensor(values, [out, inp], &device)
        };
        let rows = x.reshape([n * c * h, w]).matmul(matrix(ow, w).transpose());
        let columns = rows
            .reshape([n * c, h, ow])
            .swap_dims(1, 2)
            .reshape([n * c * ow, h])
            .matmul(matrix(oh, h).transpose());
        columns.reshape([n, c, ow, oh]).swap_dims(2, 3)
    }
}

/// The `out × inp` matrix (row-major) of a resize along one axis: output `o` is
/// `Σ_i m[o, i] · x[i]`. Nearest: `x[⌊o · inp / out⌋]`; bilinear: the two neighbours of
/// `o · (inp - 1) / (out - 1)` (aligned corners) or `(o + ½) · inp / out - ½` (half-pixel,
/// clamped at 0), weighted by distance. These are Burn's CPU interpolation's coordinates,
/// which match PyTorch's.
fn axis_matrix(out: usize, inp: usize, mode: &InterpolateMode, align_corners: bool) -> Vec<f32> {
    let mut m = vec![0.0f32; out * inp];
    let last = inp - 1;
    for o in 0..out {
        let row = &mut m[o * inp..(o + 1) * inp];
        if matches!(mode, InterpolateMode::Nearest) {
            let i = (o as f64 * inp as f64 / out as f64).floor() as usize;
            row[i.min(last)] = 1.0;
            continue;
        }
        let at = if align_corners {
            o as f64 * last as f64 / (out.max(2) - 1) as f64
        } else {
            (o as f64 + 0.5) * inp as f64 / out as f64 - 0.5
        };
        let low = (at.floor().max(0.0) as usize).min(last);
        let weight = (at - low as f64).max(0.0) as f32;
        row[low] += 1.0 - weight;
        row[(low + 1).min(last)] += weight;
    }
    m
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;
    use crate::onnx::host;

    /// The reverse step is the resize's transpose: `<resize(x), g> = <x, backward(g)>`, for
    /// bilinear (half-pixel and aligned corners) and nearest, up and down.
    #[test]
    fn the_reverse_step_is_the_transpose_of_the_resize() {
        let device = Device::flex();
        let value = |n: usize, salt: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i * 7919 + salt * 104_729) % 997) as f32) / 97.0 - 5.0)
                .collect()
        };
        for (mode, align_corners, scales) in [
            (InterpolateMode::Bilinear, false, [2.0, 3.0]),
            (InterpolateMode::Bilinear, true, [2.0, 1.5]),
            (InterpolateMode::Bilinear, false, [0.5, 0.5]),
            (InterpolateMode::Nearest, false, [2.0, 3.0]),
        ] {
            let op = Resize {
                target: Target::Scales(scales),
                mode: mode.clone(),
                align_corners,
            };
            let dims = [2, 3, 4, 6];
            let x = FloatValue::nchw(host::tensor(value(144, 1), dims, &device));
            let Value::Float(y) = op.run(&mut [Some(Value::Float(x.clone()))]).unwrap() else {
                panic!("a float output");
            };
            let out: usize = y.tensor.dims().iter().product();
            let g = FloatValue::nchw(host::tensor(value(out, 2), y.tensor.dims(), &device));
            let inputs = [Some(&Value::Float(x.clone()))];
            let output = Value::Float(y.clone());
            let step = Backward {
                inputs: &inputs,
                output: &output,
                wanted: &[true],
                grad: g.clone(),
                pad: [(0, 0); 2],
                gate: None,
            };
            let dx = op.backward(step).unwrap().remove(0).unwrap();
            let dot = |a: &FloatValue, b: &FloatValue| -> f64 {
                let a = host::with_floats(&a.tensor, |v| v.to_vec()).unwrap();
                let b = host::with_floats(&b.tensor, |v| v.to_vec()).unwrap();
                a.iter().zip(&b).map(|(p, q)| f64::from(p * q)).sum()
            };
            let (left, right) = (dot(&y, &g), dot(&x, &dx));
            assert!(
                (left - right).abs() < 1e-4 * left.abs().max(1.0),
                "{mode:?} {align_corners} {scales:?}: {left} vs {right}"
            );
        }
    }

    /// The resize as matrix products (what runs under autodiff) equals Burn's interpolation,
    /// for every mode, up and down, odd sizes, and a single output row.
    #[test]
    fn the_products_equal_the_interpolation() {
        let device = Device::flex();
        for (mode, align_corners) in [
            (InterpolateMode::Bilinear, false),
            (InterpolateMode::Bilinear, true),
            (InterpolateMode::Nearest, false),
        ] {
            for (input, output) in [([5, 7], [13, 3]), ([8, 8], [128, 128]), ([6, 1], [1, 4])] {
                let op = Resize {
                    target: Target::Sizes(1),
                    mode: mode.clone(),
                    align_corners,
                };
                let dims = [2, 3, input[0], input[1]];
                let n: usize = dims.iter().product();
                let values: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32) / 10.0).collect();
                let x = host::tensor(values, dims, &device);
                let mut options = op.options();
                options.output_size = Some(output);
                let want = host::with_floats(&interpolate(x.clone(), options), |v| v.to_vec());
                let got = host::with_floats(&op.by_products(x, output), |v| v.to_vec());
                let (want, got) = (want.unwrap(), got.unwrap());
                assert_eq!(want.len(), got.len());
                let worst = want
                    .iter()
                    .zip(&got)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(
                    worst < 1e-5,
                    "{mode:?} {align_corners} {input:?} -> {output:?}: off by {worst}"
                );
            }
        }
    }
}
