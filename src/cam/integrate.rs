//! The straight path from a baseline to the input, along which any CAM method is integrated.
//!
//! Integrated Grad-CAM is `integrate(GradCam)` over a left Riemann sum with `m` steps
//! (`alpha_i = i/m`, `i = 0..m-1`): `map = sum_i relu(sum_k A_k(x_i) * w_k(x_i))`, with no `1/m`.
//! A plain (non-integrated) method is the same sum over the single point `alpha = 1`. The
//! points themselves are the model's business ([`PathEnds`](crate::onnx::PathEnds)): it starts
//! them after its affine stem where it can.

/// Path positions: `i/m` for `i in 0..m` when integrating, else just the input (`1.0`).
pub fn alphas(steps: usize, integrate: bool) -> Vec<f32> {
    if integrate {
        (0..steps).map(|i| i as f32 / steps as f32).collect()
    } else {
        vec![1.0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_riemann_alphas_include_the_baseline_and_exclude_the_input() {
        assert_eq!(alphas(4, true), [0.0, 0.25, 0.5, 0.75]);
        assert_eq!(alphas(4, false), [1.0]);
    }
}
