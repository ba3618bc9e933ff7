//! Spatial attributes: `pads`, `strides`/`dilations`/`kernel_shape` pairs, and `auto_pad`.

use super::operator::OpResult;
use crate::error::OpError;
use crate::onnx::proto::Attrs;

/// Splits ONNX `pads` ([begin..., end...]) into per-axis (begin, end) pairs.
pub fn pad_pairs<const N: usize>(pads: &[i64]) -> OpResult<[(usize, usize); N]> {
    if pads.len() != 2 * N || pads.iter().any(|&p| p < 0) {
        return Err(OpError::Attribute(format!(
            "pads {pads:?} must hold {} non-negative values",
            2 * N
        )));
    }
    Ok(std::array::from_fn(|i| {
        (pads[i] as usize, pads[i + N] as usize)
    }))
}

/// Reads a 2-element spatial attribute (kernel, strides, dilations) with a default.
pub fn spatial2(values: Option<Vec<i64>>, default: usize, what: &str) -> OpResult<[usize; 2]> {
    match values {
        None => Ok([default; 2]),
        Some(v) if v.len() == 2 && v.iter().all(|&x| x > 0) => Ok([v[0] as usize, v[1] as usize]),
        Some(v) => Err(OpError::Attribute(format!(
            "{what} {v:?} must be two positive values (only 2-D ops are supported)"
        ))),
    }
}

/// Padding for `auto_pad` SAME_UPPER / SAME_LOWER, per spatial axis, from the input size.
pub fn same_padding(
    input: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    lower: bool,
) -> [(usize, usize); 2] {
    std::array::from_fn(|i| {
        let out = input[i].div_ceil(stride[i].max(1));
        let effective = kernel[i].saturating_sub(1).saturating_mul(dilation[i]) + 1;
        let total = out
            .saturating_sub(1)
            .saturating_mul(stride[i])
            .saturating_add(effective)
            .saturating_sub(input[i]);
        let small = total / 2;
        if lower {
            (total - small, small)
        } else {
            (small, total - small)
        }
    })
}

/// How a node pads its spatial axes.
#[derive(Clone, Debug)]
pub enum Padding {
    /// Explicit (begin, end) per axis.
    Explicit([(usize, usize); 2]),
    /// `SAME_UPPER` (`lower = false`) or `SAME_LOWER`, resolved at run time.
    Same {
        /// Extra padding goes at the beginning.
        lower: bool,
    },
}

impl Padding {
    /// Reads `auto_pad` and `pads`.
    pub fn from_attrs(attrs: &Attrs) -> OpResult<Self> {
        match attrs.string("auto_pad").as_deref() {
            Some("SAME_UPPER") => Ok(Padding::Same { lower: false }),
            Some("SAME_LOWER") => Ok(Padding::Same { lower: true }),
            Some("NOTSET") | Some("VALID") | Some("") | None => {
                let pads = attrs.ints("pads").unwrap_or_else(|| vec![0; 4]);
                Ok(Padding::Explicit(pad_pairs::<2>(&pads)?))
            }
            Some(other) => Err(OpError::Attribute(format!("unknown auto_pad `{other}`"))),
        }
    }

    /// Resolves to explicit pairs for an input of spatial size `input`.
    pub fn resolve(
        &self,
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
    ) -> [(usize, usize); 2] {
        match self {
            Padding::Explicit(p) => *p,
            Padding::Same { lower } => same_padding(input, kernel, stride, dilation, *lower),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_puts_the_odd_pixel_at_the_end_for_upper() {
        // 7 wide, kernel 4, stride 2: out 4, total pad (4-1)*2+4-7 = 3.
        assert_eq!(
            same_padding([7, 7], [4, 4], [2, 2], [1, 1], false),
            [(1, 2), (1, 2)]
        );
        assert_eq!(
            same_padding([7, 7], [4, 4], [2, 2], [1, 1], true),
            [(2, 1), (2, 1)]
        );
        assert_eq!(
            same_padding([8, 8], [1, 1], [2, 2], [1, 1], false),
            [(0, 0), (0, 0)]
        );
    }

    #[test]
    fn pads_are_split_begin_then_end() {
        assert_eq!(pad_pairs::<2>(&[1, 2, 3, 4]).unwrap(), [(1, 3), (2, 4)]);
        assert!(pad_pairs::<2>(&[1, 2, 3]).is_err());
        assert!(pad_pairs::<2>(&[1, -2, 3, 4]).is_err());
    }
}
