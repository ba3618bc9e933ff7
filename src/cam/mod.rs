//! Class activation maps. A method defines only its per-step channel (or element) weights from
//! activations and gradients ([`CamMethod`]); [`integrate`] owns the path and [`Explaining`] the
//! accumulation over it, so every CAM method also has an integrated variant.

mod gradcam;
mod gradcampp;
pub mod integrate;
mod integrated_gradients;
mod layercam;
mod xgradcam;

use burn::tensor::Tensor;

pub use gradcam::GradCam;
pub use gradcampp::GradCamPlusPlus;
pub use integrate::{PathRun, alphas, path_points};
pub use layercam::LayerCam;
pub use xgradcam::XGradCam;

use crate::error::{Error, Result};
use crate::onnx::host_values;

/// Progress callback: `(steps done, steps in total)`.
pub type Progress<'a> = dyn FnMut(usize, usize) + 'a;

/// A CAM method: how to weight the activation channels from activations and gradients.
pub trait CamMethod {
    /// Short name used on the command line and in JSON.
    fn name(&self) -> &'static str;
    /// Weights broadcastable against activations `[B, K, H, W]`: per channel `[B, K, 1, 1]`
    /// or per element `[B, K, H, W]`. The map is then `relu(sum_k weights * A)`.
    fn weights(&self, activations: Tensor<4>, gradients: Tensor<4>) -> Tensor<4>;
}

/// A 2-D map, row-major.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CamMap {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `height * width` values, row-major.
    pub values: Vec<f32>,
}

impl CamMap {
    /// Reads a `[1, 1, H, W]` tensor back to the host.
    pub fn from_tensor(t: Tensor<4>) -> Result<Self> {
        let [_, _, height, width] = t.dims();
        Ok(Self {
            height,
            width,
            values: host_values(t)?,
        })
    }
}

/// The explanation methods on offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Integrated Grad-CAM (the default): Grad-CAM integrated along the path.
    IgCam,
    /// Grad-CAM.
    GradCam,
    /// Grad-CAM++.
    GradCamPlusPlus,
    /// XGrad-CAM.
    XGradCam,
    /// LayerCAM.
    LayerCam,
    /// Pixel-level Integrated Gradients.
    IntegratedGradients,
}

impl Method {
    /// Every method, in the order the CLI lists them.
    pub const ALL: [Method; 6] = [
        Method::IgCam,
        Method::GradCam,
        Method::GradCamPlusPlus,
        Method::XGradCam,
        Method::LayerCam,
        Method::IntegratedGradients,
    ];

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|m| m.name()).collect();
                Error::InvalidOption(format!(
                    "unknown method `{s}` (one of: {})",
                    names.join(", ")
                ))
            })
    }

    /// Parses a list of command-line names.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Vec<Self>> {
        names.iter().map(|n| Self::parse(n.as_ref())).collect()
    }

    /// Command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Method::IgCam => "igcam",
            Method::GradCam => "gradcam",
            Method::GradCamPlusPlus => "gradcampp",
            Method::XGradCam => "xgradcam",
            Method::LayerCam => "layercam",
            Method::IntegratedGradients => "ig",
        }
    }

    /// The per-step CAM weights, `None` for pixel-level Integrated Gradients.
    pub fn cam(self) -> Option<&'static dyn CamMethod> {
        match self {
            Method::IgCam | Method::GradCam => Some(&GradCam),
            Method::GradCamPlusPlus => Some(&GradCamPlusPlus),
            Method::XGradCam => Some(&XGradCam),
            Method::LayerCam => Some(&LayerCam),
            Method::IntegratedGradients => None,
        }
    }

    /// Whether the method walks the path from the baseline (`integrate` asks for it on any
    /// CAM method; IG-CAM and IG always do).
    pub fn integrates(self, integrate: bool) -> bool {
        matches!(self, Method::IgCam | Method::IntegratedGradients) || integrate
    }

    /// Name recorded in outputs: `igcam`, `gradcam`, ..., `integrated-gradcampp` for an
    /// integrated variant asked for with `integrate`.
    pub fn label(self, integrate: bool) -> String {
        match self {
            Method::IgCam | Method::IntegratedGradients => self.name().into(),
            m if integrate => format!("integrated-{}", m.name()),
            m => m.name().into(),
        }
    }
}

/// An explanation in progress, one chunk of path points per [`Explaining::step`]. The running
/// sum stays on the device, so a caller that must not block (a browser) can yield between
/// chunks and read the map back asynchronously; [`explain`] is the blocking loop over it.
pub struct Explaining<'a> {
    run: &'a PathRun<'a>,
    method: Method,
    layer: &'a str,
    done: usize,
    sum: Option<Tensor<4>>,
}

impl<'a> Explaining<'a> {
    /// Checks the run, then starts `method` at `layer` (ignored by Integrated Gradients).
    pub fn new(run: &'a PathRun<'a>, method: Method, layer: &'a str) -> Result<Self> {
        run.check()?;
        Ok(Self {
            run,
            method,
            layer,
            done: 0,
            sum: None,
        })
    }

    /// Whether every path point has been processed.
    pub fn is_done(&self) -> bool {
        self.done >= self.run.alphas.len()
    }

    /// Runs the next chunk of path points; returns `(steps done, steps in total)`.
    pub fn step(&mut self) -> Result<(usize, usize)> {
        let total = self.run.alphas.len();
        let end = (self.done + self.run.batch).min(total);
        let points = path_points(
            self.run.input,
            self.run.baseline,
            &self.run.alphas[self.done..end],
        );
        let part = match self.method.cam() {
            Some(cam) => integrate::cam_chunk(self.run, cam, self.layer, points)?,
            None => integrated_gradients::ig_chunk(self.run, points)?,
        };
        self.sum = Some(match self.sum.take() {
            Some(s) => s.add(part),
            None => part,
        });
        self.done = end;
        Ok((end, total))
    }

    /// The map `[1, 1, h, w]`, still on the device. Call once [`Explaining::is_done`].
    pub fn finish(self) -> Tensor<4> {
        let sum = self.sum.expect("finish() after at least one step");
        match self.method.cam() {
            Some(_) => sum,
            None => integrated_gradients::ig_finish(self.run, sum),
        }
    }
}

/// Explains `run.target` with `method` at `layer` (ignored by Integrated Gradients), reporting
/// progress after each chunk.
pub fn explain(
    run: &PathRun,
    method: Method,
    layer: &str,
    progress: &mut Progress,
) -> Result<CamMap> {
    let mut explaining = Explaining::new(run, method, layer)?;
    while !explaining.is_done() {
        let (done, total) = explaining.step()?;
        progress(done, total);
    }
    CamMap::from_tensor(explaining.finish())
}

/// Checks `--steps`, then builds the path positions for `method`.
pub fn path_alphas(method: Method, integrate: bool, steps: usize) -> Result<Vec<f32>> {
    if steps == 0 {
        return Err(Error::InvalidOption("--steps must be at least 1".into()));
    }
    Ok(alphas(steps, method.integrates(integrate)))
}
