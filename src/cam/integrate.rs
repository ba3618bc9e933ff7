//! The straight path from a baseline to the input, along which any CAM method is integrated,
//! and the quadrature that places and weighs its points.
//!
//! Integrated Grad-CAM is `integrate(GradCam)` over a left Riemann sum with `m` steps
//! (`alpha_i = i/m`, `i = 0..m-1`): `map = sum_i relu(sum_k A_k(x_i) * w_k(x_i))`, with no `1/m`
//! (the paper's form: the left Riemann sum up to the factor `m`). Another quadrature with
//! weights `s_i` (Captum's step sizes, summing to 1) gives `map = m * sum_i s_i * relu(...)`, on
//! the same scale. Pixel-level Integrated Gradients is `(x - b) * sum_i s_i * grad(x_i)`, as
//! Captum computes it. A plain (non-integrated) method is the single point `alpha = 1`. The
//! points themselves are the model's business ([`PathEnds`](crate::onnx::PathEnds)): it starts
//! them after its affine stem where it can.

use crate::error::{Error, Message, Result, Setting};

/// Where the path's points sit and what each weighs: Captum's `method` of
/// `IntegratedGradients.attribute`, with the same points and step sizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Quadrature {
    /// `alpha_i = i/m`, `i = 0..m-1`, each weighing `1/m` (the paper's; igcam's default).
    #[default]
    #[cfg_attr(feature = "cli", value(name = "riemann_left"))]
    RiemannLeft,
    /// `alpha_i = (i+1)/m`, each weighing `1/m`.
    #[cfg_attr(feature = "cli", value(name = "riemann_right"))]
    RiemannRight,
    /// `alpha_i = (i+1/2)/m`, each weighing `1/m`.
    #[cfg_attr(feature = "cli", value(name = "riemann_middle"))]
    RiemannMiddle,
    /// `alpha_i = i/(m-1)`, each weighing `1/m`, the two ends half that (Captum's weights,
    /// which sum to `(m-1)/m`).
    #[cfg_attr(feature = "cli", value(name = "riemann_trapezoid"))]
    RiemannTrapezoid,
    /// Gauss-Legendre nodes and weights mapped from `[-1, 1]` to `[0, 1]` (Captum's default).
    #[cfg_attr(feature = "cli", value(name = "gausslegendre"))]
    GaussLegendre,
}

impl Quadrature {
    /// Every quadrature with its name (Captum's spelling).
    pub const ALL: [(Quadrature, &'static str); 5] = [
        (Quadrature::RiemannLeft, "riemann_left"),
        (Quadrature::RiemannRight, "riemann_right"),
        (Quadrature::RiemannMiddle, "riemann_middle"),
        (Quadrature::RiemannTrapezoid, "riemann_trapezoid"),
        (Quadrature::GaussLegendre, "gausslegendre"),
    ];

    /// Parses Captum's name (`riemann_left`, ..., `gausslegendre`).
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(q, _)| *q)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(_, n)| *n).collect();
                Error::InvalidOption(Message::from(format!(
                    "unknown quadrature `{name}` (one of: {})",
                    names.join(", ")
                )))
            })
    }

    /// Captum's name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(q, _)| *q == self)
            .map_or("", |(_, n)| n)
    }

    /// Refuses a step count the quadrature cannot use (all but the left sum need 2 points,
    /// as in Captum).
    pub fn check(self, steps: usize) -> Result<()> {
        if steps < 2 && self != Quadrature::RiemannLeft {
            return Err(Error::InvalidOption(Message::setting(Setting::Steps).text(
                format!(" must be at least 2 for the {} quadrature", self.name()),
            )));
        }
        Ok(())
    }

    /// The `m` path positions and their step sizes.
    pub fn points(self, steps: usize) -> (Vec<f32>, Vec<f64>) {
        let m = steps as f64;
        let even = vec![1.0 / m; steps];
        let at = |f: &dyn Fn(f64) -> f64| (0..steps).map(|i| f(i as f64) as f32).collect();
        match self {
            Quadrature::RiemannLeft => (at(&|i| i / m), even),
            Quadrature::RiemannRight => (at(&|i| (i + 1.0) / m), even),
            Quadrature::RiemannMiddle => (at(&|i| (i + 0.5) / m), even),
            Quadrature::RiemannTrapezoid => {
                let mut sizes = even;
                sizes[0] /= 2.0;
                sizes[steps - 1] /= 2.0;
                (at(&|i| i / (m - 1.0).max(1.0)), sizes)
            }
            Quadrature::GaussLegendre => {
                let (nodes, weights) = gauss_legendre(steps);
                let alphas = nodes.iter().map(|x| (0.5 * (1.0 + x)) as f32).collect();
                (alphas, weights.iter().map(|w| 0.5 * w).collect())
            }
        }
    }
}

/// Path positions: `i/m` for `i in 0..m` when integrating, else just the input (`1.0`).
pub fn alphas(steps: usize, integrate: bool) -> Vec<f32> {
    if integrate {
        Quadrature::RiemannLeft.points(steps).0
    } else {
        vec![1.0]
    }
}

/// The `n`-point Gauss-Legendre nodes on `[-1, 1]`, ascending (NumPy's `leggauss` order), and
/// their weights: Newton's method on the Legendre polynomial from Chebyshev starting points.
fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut nodes = vec![0.0; n];
    let mut weights = vec![0.0; n];
    for i in 0..n.div_ceil(2) {
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut derivative = 1.0;
        for _ in 0..100 {
            // P_n(x) and P_n'(x) by the three-term recurrence.
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=n {
                let k = k as f64;
                (p0, p1) = (p1, ((2.0 * k - 1.0) * x * p1 - (k - 1.0) * p0) / k);
            }
            let pn = if n == 0 {
                1.0
            } else if n == 1 {
                x
            } else {
                p1
            };
            let pm = if n == 1 { 1.0 } else { p0 };
            derivative = n as f64 * (x * pn - pm) / (x * x - 1.0);
            let dx = pn / derivative;
            x -= dx;
            if dx.abs() < 1e-16 {
                break;
            }
        }
        let w = 2.0 / ((1.0 - x * x) * derivative * derivative);
        nodes[i] = -x;
        nodes[n - 1 - i] = x;
        weights[i] = w;
        weights[n - 1 - i] = w;
    }
    (nodes, weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_riemann_alphas_include_the_baseline_and_exclude_the_input() {
        assert_eq!(alphas(4, true), [0.0, 0.25, 0.5, 0.75]);
        assert_eq!(alphas(4, false), [1.0]);
    }

    #[test]
    fn quadratures_place_captums_points_and_weights() {
        let (a, s) = Quadrature::RiemannTrapezoid.points(5);
        assert_eq!(a, [0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(s, [0.1, 0.2, 0.2, 0.2, 0.1]);
        assert_eq!(Quadrature::RiemannMiddle.points(2).0, [0.25, 0.75]);
        assert_eq!(Quadrature::RiemannRight.points(2).0, [0.5, 1.0]);
        // numpy.polynomial.legendre.leggauss(3): nodes -sqrt(3/5), 0, sqrt(3/5); weights 5/9,
        // 8/9, 5/9; halved and shifted to [0, 1].
        let (a, s) = Quadrature::GaussLegendre.points(3);
        let r = (0.6f64).sqrt();
        for (got, want) in a.iter().zip([0.5 * (1.0 - r), 0.5, 0.5 * (1.0 + r)]) {
            assert!((*got as f64 - want).abs() < 1e-7, "{a:?}");
        }
        for (got, want) in s.iter().zip([5.0 / 18.0, 8.0 / 18.0, 5.0 / 18.0]) {
            assert!((got - want).abs() < 1e-14, "{s:?}");
        }
        // numpy.polynomial.legendre.leggauss(8), halved and shifted (Captum's points at m = 8).
        let (a, s) = Quadrature::GaussLegendre.points(8);
        let want_a = [
            0.019855071751231912,
            0.10166676129318664,
            0.2372337950418355,
            0.4082826787521751,
        ];
        let want_s = [
            0.05061426814518853,
            0.11119051722668721,
            0.15685332293894344,
            0.18134189168918083,
        ];
        for i in 0..4 {
            assert!(
                (a[i] as f64 - want_a[i]).abs() < 1e-7
                    && (a[7 - i] as f64 - (1.0 - want_a[i])).abs() < 1e-7,
                "{a:?}"
            );
            assert!(
                (s[i] - want_s[i]).abs() < 1e-14 && (s[7 - i] - want_s[i]).abs() < 1e-14,
                "{s:?}"
            );
        }
        // Weights sum to 1 for every n (Gauss-Legendre integrates constants exactly).
        for n in [1, 2, 7, 50, 64] {
            let sum: f64 = Quadrature::GaussLegendre.points(n).1.iter().sum();
            assert!((sum - 1.0).abs() < 1e-12, "n = {n}: {sum}");
        }
    }

    #[test]
    fn names_round_trip_and_short_paths_are_refused() {
        for (q, name) in Quadrature::ALL {
            assert_eq!(Quadrature::parse(name).unwrap(), q);
            assert_eq!(q.name(), name);
        }
        assert_eq!(
            Quadrature::parse("simpson").unwrap_err().to_string(),
            "invalid option: unknown quadrature `simpson` (one of: riemann_left, riemann_right, riemann_middle, riemann_trapezoid, gausslegendre)"
        );
        assert!(Quadrature::RiemannLeft.check(1).is_ok());
        assert_eq!(
            Quadrature::GaussLegendre.check(1).unwrap_err().to_string(),
            "invalid option: `steps` must be at least 2 for the gausslegendre quadrature"
        );
    }
}
