//! The metrics that explain again (Quantus 0.6's robustness and randomisation families), for
//! `eval` and the Python binding: Max-Sensitivity explains noisy copies of the input, Random
//! Logit another class, MPRT the model with its layers randomised from the top
//! ([`crate::onnx::randomise`]). Each re-explanation is one request for every class and method
//! of the image at once (one backbone pass shared, as for the maps scored), and the maps are
//! compared as the metrics read them (at the input, min-max scaled).

use crate::cam::CamMap;
use crate::error::{Error, Message, Result};
use crate::explainer::{Explainer, Explanation, Request};
use crate::metrics::randomisation::{mprt, off_class};
pub use crate::metrics::redone::Redone;
use crate::metrics::similarity::ssim;
use crate::metrics::{max_sensitivity, sensitivity_noise};
use crate::onnx::OnnxModel;
use crate::onnx::randomise::Cascade;
use crate::render;

/// What explaining again needs: the request that made the maps, and (for MPRT) the model's
/// file, read once for the run.
pub struct Redo<'a> {
    /// The request the scored maps came from (its targets are replaced).
    pub request: &'a Request,
    /// The model's file as MPRT's cascade, no layer randomised yet (cloned for each image).
    pub cascade: Option<&'a Cascade>,
    /// Told what is being redone before each re-explanation (`mprt: layer 3 of 50`), for a
    /// progress display.
    pub status: Option<&'a dyn Fn(String)>,
}

/// What is redone, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct RedoOptions {
    /// Max-Sensitivity's noisy copies (0: not asked for).
    pub ms_samples: usize,
    /// Max-Sensitivity's noise radius, in the model input's normalised units.
    pub ms_radius: f32,
    /// Random Logit is asked for.
    pub random_logit: bool,
    /// MPRT's layers, from the top (`None`: not asked for; `Some(None)`: all of them).
    pub mprt_layers: Option<Option<usize>>,
    /// Seed of the noise and of Random Logit's classes and MPRT's weights.
    pub seed: u64,
}

impl RedoOptions {
    /// Whether anything is redone.
    pub fn any(&self) -> bool {
        self.ms_samples > 0 || self.random_logit || self.mprt_layers.is_some()
    }

    /// The layers MPRT randomises in a model with `layers` randomisable layers (0 when it is
    /// not asked for).
    pub fn mprt_levels(&self, layers: usize) -> usize {
        self.mprt_layers
            .map_or(0, |limit| limit.unwrap_or(layers).min(layers))
    }

    /// Re-explanations per image for a model with `layers` randomisable layers.
    pub fn requests(&self, layers: usize) -> usize {
        self.ms_samples + usize::from(self.random_logit) + self.mprt_levels(layers)
    }
}

/// One map to redo: its method's label, its class, the map as the metrics read it.
pub struct Scored<'a> {
    /// The method's label ([`Explanation::label`]).
    pub label: &'a str,
    /// The explained class.
    pub target: usize,
    /// The map at the input, min-max scaled.
    pub map: &'a [f32],
}

/// The map `e` as the metrics read it.
pub fn as_read(map: &CamMap, size: [usize; 2]) -> Vec<f32> {
    render::normalise_min_max(&render::upsample_bilinear(map, size[0], size[1]).values)
}

/// The request `redo.request` for `targets`.
fn for_targets(request: &Request, targets: Vec<usize>) -> Request {
    Request {
        targets,
        ..request.clone()
    }
}

/// Each scored map's counterpart among `maps` (same label, class `target_of(i)`), as read.
fn counterparts(
    maps: &[Explanation],
    scored: &[Scored],
    size: [usize; 2],
    target_of: impl Fn(usize) -> usize,
) -> Result<Vec<Vec<f32>>> {
    scored
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let target = target_of(i);
            maps.iter()
                .find(|e| e.label == s.label && e.target == target)
                .map(|e| as_read(&e.map, size))
                .ok_or_else(|| {
                    Error::InvalidOption(Message::from(format!(
                        "no map of method `{}` for class {target} came back when explaining again",
                        s.label
                    )))
                })
        })
        .collect()
}

/// Tells `redo`'s status, if any, what comes next.
fn tell(redo: &Redo, what: impl FnOnce() -> String) {
    if let Some(status) = redo.status {
        status(what());
    }
}

/// Explains `request` (the scored maps' classes) on `chw` with `explainer` and appends each
/// scored map's counterpart, as read, to its list in `into`.
fn explain_each(
    explainer: &Explainer,
    chw: Vec<f32>,
    request: &Request,
    scored: &[Scored],
    into: &mut [Vec<Vec<f32>>],
) -> Result<()> {
    let size = explainer.model().input_size();
    let prepared = explainer.prepare_normalised(chw)?;
    let maps = explainer.explain(&prepared, request, &mut |_, _| {})?;
    let theirs = counterparts(&maps, scored, size, |i| scored[i].target)?;
    for (list, m) in into.iter_mut().zip(theirs) {
        list.push(m);
    }
    Ok(())
}

/// Redoes the explanations of `image` (normalised, CHW) that `options` ask for.
pub fn redo(
    explainer: &Explainer,
    image: &[f32],
    scored: &[Scored],
    options: &RedoOptions,
    redo: &Redo,
) -> Result<Vec<Redone>> {
    let mut out = vec![Redone::default(); scored.len()];
    if !options.any() || scored.is_empty() {
        return Ok(out);
    }
    let size = explainer.model().input_size();
    let targets = crate::dedup::unique(scored.iter().map(|s| s.target));
    let same = for_targets(redo.request, targets.clone());
    if options.ms_samples > 0 {
        let mut copies: Vec<Vec<Vec<f32>>> = vec![Vec::new(); scored.len()];
        for sample in 0..options.ms_samples {
            tell(redo, || {
                format!(
                    "max_sensitivity: copy {} of {}",
                    sample + 1,
                    options.ms_samples
                )
            });
            let noise = sensitivity_noise(options.seed, sample, image.len(), options.ms_radius);
            let noisy = image.iter().zip(&noise).map(|(x, d)| x + d).collect();
            explain_each(explainer, noisy, &same, scored, &mut copies)?;
        }
        for ((o, s), c) in out.iter_mut().zip(scored).zip(&copies) {
            o.max_sensitivity = Some(max_sensitivity(s.map, c));
        }
    }
    if options.random_logit {
        tell(redo, || "random_logit".to_string());
        let prepared = explainer.prepare_normalised(image.to_vec())?;
        let classes = explainer.model().num_classes();
        let off = |t: usize| off_class(options.seed, t, classes);
        let others = crate::dedup::unique(targets.iter().map(|&t| off(t)));
        let maps = explainer.explain(
            &prepared,
            &for_targets(redo.request, others),
            &mut |_, _| {},
        )?;
        let theirs = counterparts(&maps, scored, size, |i| off(scored[i].target))?;
        for ((o, s), m) in out.iter_mut().zip(scored).zip(&theirs) {
            o.random_logit = Some(ssim(s.map, m));
        }
    }
    if options.mprt_layers.is_some() {
        let mut cascade = redo
            .cascade
            .ok_or_else(|| {
                Error::InvalidOption(Message::from(
                    "MPRT randomises the model's weights and needs its ONNX file",
                ))
            })?
            .clone();
        let levels = options.mprt_levels(cascade.layers().len());
        let mut per_layer: Vec<Vec<Vec<f32>>> = vec![Vec::new(); scored.len()];
        let layer_options = crate::explainer::ExplainerOptions {
            layer: Some(explainer.layer().to_string()),
            ..explainer.options().clone()
        };
        for level in 0..levels {
            tell(redo, || format!("mprt: layer {} of {levels}", level + 1));
            let Some((_, model)) = cascade.next_model(options.seed)? else {
                break;
            };
            let model = OnnxModel::from_bytes(&model, explainer.model().device())?;
            let randomised =
                Explainer::new(model, explainer.labels().to_vec(), layer_options.clone())?;
            explain_each(&randomised, image.to_vec(), &same, scored, &mut per_layer)?;
        }
        for ((o, s), maps) in out.iter_mut().zip(scored).zip(&per_layer) {
            let (rho, sim) = mprt(s.map, maps);
            o.mprt_spearman = Some(rho);
            o.mprt_ssim = Some(sim);
        }
    }
    Ok(out)
}
