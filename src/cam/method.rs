//! The method table: the one list of explanation methods. The command line's choices and help,
//! the JSON labels, the web page's list and the explainer's dispatch all derive from it, so a
//! new CAM method is one file under `cam/method/` (its [`CamMethod`]) plus its `mod` line and
//! one row here (or only a row, where a file's method takes a parameter: Eigen-CAM and
//! KPCA-CAM are one projection of the activations with two kinds of projection).

mod ablationcam;
mod eigencam;
mod eigengradcam;
mod fem;
mod finercam;
mod gradcam;
mod gradcam_elementwise;
mod gradcampp;
mod hirescam;
mod layercam;
mod randomcam;
mod scorecam;
mod shapleycam;
mod xgradcam;

use ablationcam::AblationCam;
use eigencam::ActivationProjection;
use eigengradcam::EigenGradCam;
use fem::Fem;
use finercam::FinerCam;
use gradcam::GradCam;
use gradcam_elementwise::GradCamElementWise;
use gradcampp::GradCamPlusPlus;
use hirescam::HiResCam;
use layercam::LayerCam;
use randomcam::RandomCam;
use scorecam::ScoreCam;
use shapleycam::ShapleyCam;
use xgradcam::XGradCam;

use super::weights::{CamMethod, Projection};
use crate::error::{Error, Message, Result};

/// How a method computes its map.
#[derive(Clone, Copy)]
pub enum Compute {
    /// A CAM method: per-step weights on the layer's activations from its gradients.
    Cam(&'static dyn CamMethod),
    /// Pixel-level Integrated Gradients: input gradients along the path.
    PixelIg,
    /// FullGrad: the input's gradient and every bias's, at the photo ([`super::fullgrad`]).
    FullGrad,
}

/// One row of the method table.
pub struct MethodInfo {
    /// Command-line and JSON name.
    pub name: &'static str,
    /// Name for people (the web page, reports).
    pub display: &'static str,
    /// Whether the method always walks the path from the baseline (IG-CAM, IG); the other CAM
    /// methods walk it when asked to (`--integrate`).
    pub always_integrates: bool,
    /// How the map is computed.
    pub compute: Compute,
    /// What it costs beyond the shared pass, for people ("" when nothing worth saying).
    pub cost: &'static str,
    /// Whether that cost is far above the shared pass.
    pub slow: bool,
    /// Whether the page's "compare all" shows it: fast, specific to the class and reading
    /// nothing back mid-request (not the slow ones, not the class-free Eigen-CAM, KPCA-CAM and
    /// FEM, not EigenGrad-CAM's projection, not the RandomCAM baseline).
    pub compare: bool,
}

/// Every method, in the order the command line lists them.
pub static METHODS: &[MethodInfo] = &[
    MethodInfo {
        name: "igcam",
        display: "Integrated Grad-CAM",
        always_integrates: true,
        compute: Compute::Cam(&GradCam),
        cost: "",
        compare: true,
        slow: false,
    },
    MethodInfo {
        name: "gradcam",
        display: "Grad-CAM",
        always_integrates: false,
        compute: Compute::Cam(&GradCam),
        cost: "",
        compare: true,
        slow: false,
    },
    MethodInfo {
        name: "gradcampp",
        display: "Grad-CAM++",
        always_integrates: false,
        compute: Compute::Cam(&GradCamPlusPlus),
        cost: "",
        compare: true,
        slow: false,
    },
    MethodInfo {
        name: "xgradcam",
        display: "XGrad-CAM",
        always_integrates: false,
        compute: Compute::Cam(&XGradCam),
        cost: "",
        compare: true,
        slow: false,
    },
    MethodInfo {
        name: "layercam",
        display: "LayerCAM",
        always_integrates: false,
        compute: Compute::Cam(&LayerCam),
        cost: "",
        compare: true,
        slow: false,
    },
    MethodInfo {
        name: "ig",
        display: "Integrated Gradients",
        always_integrates: true,
        compute: Compute::PixelIg,
        cost: "its own pass per class",
        compare: false,
        slow: false,
    },
    MethodInfo {
        name: "hirescam",
        display: "HiResCAM",
        always_integrates: false,
        compute: Compute::Cam(&HiResCam),
        cost: "",
        compare: true,
        slow: false,
    },
    MethodInfo {
        name: "gradcam-elementwise",
        display: "Grad-CAM element-wise",
        always_integrates: false,
        compute: Compute::Cam(&GradCamElementWise),
        cost: "",
        compare: true,
        slow: false,
    },
    MethodInfo {
        name: "eigencam",
        display: "Eigen-CAM",
        always_integrates: false,
        compute: Compute::Cam(&ActivationProjection(Projection::Principal)),
        cost: "no gradient, one map for every class: the fastest",
        compare: false,
        slow: false,
    },
    MethodInfo {
        name: "eigengradcam",
        display: "EigenGrad-CAM",
        always_integrates: false,
        compute: Compute::Cam(&EigenGradCam),
        cost: "",
        compare: false,
        slow: false,
    },
    MethodInfo {
        name: "ablationcam",
        display: "Ablation-CAM",
        always_integrates: false,
        compute: Compute::Cam(&AblationCam),
        cost: "the rest of the network once per channel",
        compare: false,
        slow: true,
    },
    MethodInfo {
        name: "scorecam",
        display: "Score-CAM",
        always_integrates: false,
        compute: Compute::Cam(&ScoreCam),
        cost: "the whole network once per channel",
        compare: false,
        slow: true,
    },
    MethodInfo {
        name: "kpcacam",
        display: "KPCA-CAM",
        always_integrates: false,
        compute: Compute::Cam(&ActivationProjection(Projection::KernelSigmoid)),
        cost: "no gradient, one map for every class",
        compare: false,
        slow: false,
    },
    MethodInfo {
        name: "fem",
        display: "FEM",
        always_integrates: false,
        compute: Compute::Cam(&Fem),
        cost: "no gradient, one map for every class",
        compare: false,
        slow: false,
    },
    MethodInfo {
        name: "finercam",
        display: "Finer-CAM",
        always_integrates: false,
        compute: Compute::Cam(&FinerCam),
        cost: "",
        compare: true,
        slow: false,
    },
    MethodInfo {
        name: "shapleycam",
        display: "ShapleyCAM",
        always_integrates: false,
        compute: Compute::Cam(&ShapleyCam),
        cost: "a Hessian-vector product through the rest of the network, on the CPU",
        compare: false,
        slow: false,
    },
    MethodInfo {
        name: "fullgrad",
        display: "FullGrad",
        always_integrates: false,
        compute: Compute::FullGrad,
        cost: "its own pass per class, every layer's gradient",
        compare: false,
        slow: false,
    },
    MethodInfo {
        name: "randomcam",
        display: "RandomCAM (sanity baseline)",
        always_integrates: false,
        compute: Compute::Cam(&RandomCam),
        cost: "",
        compare: false,
        slow: false,
    },
];

/// An explanation method: a handle on one row of [`METHODS`].
#[derive(Clone, Copy)]
pub struct Method(&'static MethodInfo);

impl PartialEq for Method {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Method {}

impl std::fmt::Debug for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name)
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name)
    }
}

impl Method {
    /// Every method, in table order.
    pub fn all() -> impl Iterator<Item = Method> {
        METHODS.iter().map(Method)
    }

    /// Every method's name, in table order.
    pub fn names() -> Vec<&'static str> {
        METHODS.iter().map(|m| m.name).collect()
    }

    /// The method called `name`.
    pub fn parse(name: &str) -> Result<Self> {
        Self::all().find(|m| m.name() == name).ok_or_else(|| {
            Error::InvalidOption(Message::from(format!(
                "unknown method `{name}` (one of: {})",
                Self::names().join(", ")
            )))
        })
    }

    /// Parses a list of names.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Vec<Self>> {
        names.iter().map(|n| Self::parse(n.as_ref())).collect()
    }

    /// Integrated Grad-CAM, the default.
    pub fn igcam() -> Self {
        Method(&METHODS[0])
    }

    /// Whether it can explain a segmenter's class region (every method but those comparing a
    /// classifier's classes, Finer-CAM).
    pub fn explains_segmenters(self) -> bool {
        self.cam().is_none_or(|c| !c.compares_classes())
    }

    /// Command-line name.
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// Name for people.
    pub fn display(self) -> &'static str {
        self.0.display
    }

    /// How the map is computed.
    pub fn compute(self) -> Compute {
        self.0.compute
    }

    /// Its cost beyond the shared pass, for people ("" when nothing worth saying).
    pub fn cost(self) -> &'static str {
        self.0.cost
    }

    /// Whether its cost is far above the shared pass.
    pub fn is_slow(self) -> bool {
        self.0.slow
    }

    /// Whether the page's "compare all" shows it.
    pub fn in_compare(self) -> bool {
        self.0.compare
    }

    /// Whether `eigen_smooth` changes its map (as in pytorch-grad-cam: not for pixel IG, not
    /// for the methods that always project, not for FEM, which ignores it).
    pub fn eigen_smoothed(self, eigen_smooth: bool) -> bool {
        match self.0.compute {
            Compute::Cam(c) => eigen_smooth && c.projection().is_none() && c.takes_eigen_smooth(),
            Compute::FullGrad => eigen_smooth,
            Compute::PixelIg => false,
        }
    }

    /// Whether it runs on Burn's CPU backend only (ShapleyCAM: its Hessian-vector product comes
    /// from igcam's own reverse pass on the host kernels).
    pub fn cpu_only(self) -> bool {
        matches!(self.0.compute, Compute::Cam(c) if c.cpu_only())
    }

    /// Every method that runs on `device` (`all` in the command line and the Python package:
    /// off the CPU backend, the [CPU-only](Method::cpu_only) ones are left out).
    pub fn all_on(device: &burn::tensor::Device) -> impl Iterator<Item = Method> {
        Self::runnable(crate::onnx::on_plain_cpu(device))
    }

    /// [`Method::all_on`] a device that is (`on_cpu`) or is not Burn's CPU backend.
    pub fn runnable(on_cpu: bool) -> impl Iterator<Item = Method> {
        Self::all().filter(move |m| on_cpu || !m.cpu_only())
    }

    /// Whether its map reads tensors back to the host mid-request (as every CAM method does
    /// under `eigen_smooth`): a caller that must never block, such as WebGPU in a browser,
    /// cannot run it.
    pub fn reads_back(self) -> bool {
        match self.0.compute {
            Compute::Cam(c) => c.reads_back(),
            Compute::PixelIg => false,
            // Each biased layer's gradient is read back to the host as it comes.
            Compute::FullGrad => true,
        }
    }

    /// The per-step CAM weights, `None` for pixel-level Integrated Gradients.
    pub fn cam(self) -> Option<&'static dyn CamMethod> {
        match self.0.compute {
            Compute::Cam(c) => Some(c),
            Compute::PixelIg | Compute::FullGrad => None,
        }
    }

    /// Whether this is pixel-level Integrated Gradients (explains the input, not a layer).
    pub fn is_pixel(self) -> bool {
        matches!(self.0.compute, Compute::PixelIg)
    }

    /// Whether it explains the input itself, with no layer (pixel IG, FullGrad): its map is
    /// at the input's resolution, and `layer` does not change it.
    pub fn explains_input(self) -> bool {
        matches!(self.0.compute, Compute::PixelIg | Compute::FullGrad)
    }

    /// Whether it is FullGrad.
    pub fn is_fullgrad(self) -> bool {
        matches!(self.0.compute, Compute::FullGrad)
    }

    /// Whether the method walks the path from the baseline (`integrate` asks for it on any
    /// CAM method; IG-CAM and IG always do; FullGrad never: its map is scaled layer by layer,
    /// so a sum along the path has no meaning).
    pub fn integrates(self, integrate: bool) -> bool {
        self.0.always_integrates || (integrate && !self.is_fullgrad())
    }

    /// Name recorded in outputs: `igcam`, `gradcam`, ..., `integrated-gradcampp` for an
    /// integrated variant asked for with `integrate`.
    pub fn label(self, integrate: bool) -> String {
        if integrate && !self.0.always_integrates && !self.is_fullgrad() {
            format!("integrated-{}", self.0.name)
        } else {
            self.0.name.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_drives_parsing_labels_and_dispatch() {
        // The paper's methods first, in this order (a new method is a row after them).
        assert_eq!(
            Method::names()[..6],
            [
                "igcam",
                "gradcam",
                "gradcampp",
                "xgradcam",
                "layercam",
                "ig"
            ]
        );
        for m in Method::all() {
            assert_eq!(Method::parse(m.name()).unwrap(), m);
        }
        let pp = Method::parse("gradcampp").unwrap();
        assert_eq!(pp.label(false), "gradcampp");
        assert_eq!(pp.label(true), "integrated-gradcampp");
        assert_eq!(Method::igcam().label(true), "igcam");
        assert!(Method::parse("ig").unwrap().is_pixel());
        assert!(Method::parse("ig").unwrap().integrates(false));
        assert!(!pp.integrates(false) && pp.integrates(true));
        assert_eq!(
            Method::parse("gradcam++").unwrap_err().to_string(),
            format!(
                "invalid option: unknown method `gradcam++` (one of: {})",
                Method::names().join(", ")
            )
        );
        // pytorch-grad-cam's further methods follow, each once; the slow ones say their cost.
        assert_eq!(
            Method::names()[6..],
            [
                "hirescam",
                "gradcam-elementwise",
                "eigencam",
                "eigengradcam",
                "ablationcam",
                "scorecam",
                "kpcacam",
                "fem",
                "finercam",
                "shapleycam",
                "fullgrad",
                "randomcam"
            ]
        );
        // ShapleyCAM alone runs on the CPU backend only (its Hessian-vector product).
        let cpu_only: Vec<&str> = Method::all()
            .filter(|m| m.cpu_only())
            .map(|m| m.name())
            .collect();
        assert_eq!(cpu_only, ["shapleycam"]);
        assert!(Method::parse("shapleycam").unwrap().reads_back());
        let fullgrad = Method::parse("fullgrad").unwrap();
        assert!(fullgrad.explains_input() && !fullgrad.is_pixel() && fullgrad.cam().is_none());
        assert!(!fullgrad.integrates(true) && fullgrad.label(true) == "fullgrad");
        assert!(fullgrad.reads_back());
        let slow: Vec<&str> = Method::all()
            .filter(|m| m.is_slow())
            .map(|m| m.name())
            .collect();
        assert_eq!(slow, ["ablationcam", "scorecam"]);
        assert!(
            Method::all()
                .filter(|m| m.is_slow())
                .all(|m| !m.cost().is_empty())
        );
        // The page's "compare all": the fast, class-specific ones that read nothing back
        // mid-request (WebGPU in a browser cannot wait).
        assert!(
            Method::all()
                .filter(|m| m.in_compare())
                .all(|m| !m.reads_back())
        );
        let compared: Vec<&str> = Method::all()
            .filter(|m| m.in_compare())
            .map(|m| m.name())
            .collect();
        assert_eq!(
            compared,
            [
                "igcam",
                "gradcam",
                "gradcampp",
                "xgradcam",
                "layercam",
                "hirescam",
                "gradcam-elementwise",
                "finercam"
            ]
        );
        // Every name once.
        assert_eq!(crate::dedup::unique(Method::names()), Method::names());
    }
}
