//! The element-wise activations a kernel can apply to its output (and take the gradient
//! through, reading the derivative off the output).

/// An element-wise activation the kernel can apply to its output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, lo), hi)` (ReLU6 is `Clip(0, 6)`).
    Clip(f32, f32),
    /// `x` for `x >= 0`, else `slope * x`.
    LeakyRelu(f32),
}

impl Activation {
    /// Whether its derivative can be read off its output (not for a `LeakyRelu` whose slope
    /// does not keep the sign).
    pub fn derivative_from_output(self) -> bool {
        !matches!(self, Activation::LeakyRelu(slope) if slope <= 0.0)
    }

    /// Its derivative at the input that gave output `y` (where
    /// [`Activation::derivative_from_output`]): for `Clip`, 1 strictly inside the bounds, as
    /// PyTorch's `hardtanh_backward`.
    #[inline]
    pub fn derivative_at_output(self, y: f32) -> f32 {
        match self {
            Activation::Relu => f32::from(u8::from(y > 0.0)),
            Activation::Clip(lo, hi) => f32::from(u8::from(y > lo && y < hi)),
            Activation::LeakyRelu(slope) => {
                if y > 0.0 {
                    1.0
                } else {
                    slope
                }
            }
        }
    }

    /// The activation of one value; NaN stays NaN, as in PyTorch. (The bounds are compared
    /// in the order of x86's `maxps`/`minps`, which then need no NaN fix-up as `f32::max` does.)
    #[inline(always)]
    pub fn apply(self, v: f32) -> f32 {
        let at_least = |lo: f32, v: f32| if lo > v { lo } else { v };
        match self {
            Activation::Relu => at_least(0.0, v),
            Activation::Clip(lo, hi) => {
                let v = at_least(lo, v);
                if hi < v { hi } else { v }
            }
            Activation::LeakyRelu(slope) => {
                if v >= 0.0 {
                    v
                } else {
                    v * slope
                }
            }
        }
    }
}
