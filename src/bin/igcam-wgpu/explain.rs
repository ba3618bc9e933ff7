//! `igcam-wgpu explain`: maps, overlays, NPY and JSON for images × targets × methods. Every
//! image is one request to the [`Explainer`](igcam::Explainer): one set of path passes serves
//! all of its targets and methods.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use igcam::labels::Prediction;
use igcam::render::{self, Colormap};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{self, CommonArgs, Loaded};
use crate::assets;
use crate::output::{self, JsonCam, JsonClass, JsonRecord, OutputNames};

/// Arguments of `explain`.
#[derive(Args)]
pub struct ExplainArgs {
    /// Images (PNG, JPEG) or folders of images. Default: the bundled cat photo.
    images: Vec<PathBuf>,
    /// Targets, comma-separated: top1, topK (the K best classes; a segmenter's: the K largest
    /// regions), a class index, a label, or present (a segmenter's every class with a region).
    /// A detector's targets are its detections: all, topK (the K most confident), detN
    /// (detection N as listed), or a class index or label (its every detection).
    /// Default: top1; for a segmenter, present; for a detector, all.
    #[arg(long, value_delimiter = ',')]
    target: Vec<String>,
    /// Resize the whole image to the input size instead of resize + centre crop (always, for a
    /// detector).
    #[arg(long)]
    no_crop: bool,
    /// Output folder for PNG, NPY and per-image JSON files.
    #[arg(long, default_value = "igcam-out")]
    out: PathBuf,
    /// Also write every record into one JSON array here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the raw and the upsampled map as .npy files.
    #[arg(long)]
    npy: bool,
    /// Heatmap colours.
    #[arg(long, value_enum, default_value_t = Colormap::Turbo)]
    colormap: Colormap,
    /// Heatmap opacity over the photo, 0..1.
    #[arg(long, default_value_t = 0.5)]
    alpha: f32,
    /// The overlay PNG: the whole photo at its own size with the map over the region the
    /// model saw (outlined), or only the model's input.
    #[arg(long, value_enum, default_value_t = Overlay::Full)]
    overlay: Overlay,
    /// A segmenter's region to explain every target over instead of the target's own (where
    /// it scores highest): a PNG of the model's output size (the input after resize and crop),
    /// non-zero inside.
    #[arg(long, value_name = "PNG")]
    region: Option<PathBuf>,
    /// No progress bar and no per-image report.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    common: CommonArgs,
}

/// What the overlay PNG shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Overlay {
    /// The whole photo at its own resolution; the map covers the crop, which is outlined.
    Full,
    /// The model's input (the resized, cropped photo) only.
    Input,
}

/// One input image: its display name, output stem and bytes (read when its turn comes).
struct Input {
    name: String,
    stem: String,
    path: Option<PathBuf>,
}

impl Input {
    fn bytes(&self) -> Result<Vec<u8>> {
        match &self.path {
            Some(p) => output::read(p),
            None => Ok(assets::DEFAULT_IMAGE.to_vec()),
        }
    }
}

fn inputs(args: &ExplainArgs) -> Result<Vec<Input>> {
    if args.images.is_empty() {
        let name = assets::DEFAULT_IMAGE_NAME.to_string();
        let stem = name.trim_end_matches(".png").to_string();
        return Ok(vec![Input {
            name,
            stem,
            path: None,
        }]);
    }
    let paths = output::expand_inputs(&args.images)?;
    let names = OutputNames::for_paths(&paths);
    for (a, b) in names.clashes() {
        eprintln!(
            "notice: `{}` and `{}` share a file name; their outputs are named `{}_*` and `{}_*`",
            paths[a].display(),
            paths[b].display(),
            names.stems[a],
            names.stems[b]
        );
    }
    Ok(paths
        .into_iter()
        .zip(names.stems)
        .zip(names.display)
        .map(|((p, stem), name)| Input {
            name,
            stem,
            path: Some(p),
        })
        .collect())
}

/// Everything shared by all images of one run.
struct Session<'a> {
    args: &'a ExplainArgs,
    loaded: Loaded,
    bar: ProgressBar,
    /// `--region`, one weight per pixel of the output plane.
    region: Option<Arc<[f32]>>,
}

/// Reads `--region`: a PNG the size of the model's output plane, its non-zero pixels inside.
fn read_region(path: &Path, loaded: &Loaded) -> Result<Arc<[f32]>> {
    let name = path.display();
    let model = loaded.explainer.model();
    if !model.is_segmenter() {
        let kind = if model.detector().is_some() {
            "detector (--target picks detections)"
        } else {
            "classifier"
        };
        bail!(
            "--region `{name}`: a region applies to a segmenter's classes; this model is a {kind}"
        );
    }
    let image = igcam::preprocess::decode(&output::read(path)?)
        .with_context(|| format!("--region `{name}`"))?
        .to_luma8();
    let [h, w] = model.output_plane();
    if [image.height() as usize, image.width() as usize] != [h, w] {
        bail!(
            "--region `{name}` is {}x{} but the model's output is {w}x{h} (its input after resize and crop): give a mask of that size",
            image.width(),
            image.height()
        );
    }
    Ok(image
        .pixels()
        .map(|p| f32::from(u8::from(p.0[0] != 0)))
        .collect())
}

impl Session<'_> {
    fn explain_image(&self, input: &Input, records: &mut Vec<serde_json::Value>) -> Result<()> {
        let explainer = &self.loaded.explainer;
        let image = self
            .args
            .common
            .image
            .decode(&input.bytes()?, &input.name)?;
        let prepared = explainer.prepare(&image)?;
        let source = match self.args.overlay {
            Overlay::Full => Some(image.to_rgb8()),
            Overlay::Input => None,
        };
        drop(image);
        let crop = prepared.geometry.crop_box();
        let regions = prepared.regions();
        let detections = prepared.detections();
        let top5: Vec<&Prediction> = prepared.top(5).iter().collect();
        if let Some(detections) = detections {
            if !self.args.quiet {
                self.bar
                    .suspend(|| print_detections(&input.name, detections, &prepared));
            }
            if detections.is_empty() {
                self.bar.suspend(|| {
                    eprintln!(
                        "notice: {}: no detection scores above --conf {}: nothing to explain (a lower --conf keeps more)",
                        input.name, self.args.common.model.detect.conf
                    )
                });
                output::write(&self.args.out.join(format!("{}.json", input.stem)), b"[]")?;
                return Ok(());
            }
        } else if !self.args.quiet {
            self.bar.suspend(|| {
                match regions {
                    Some(_) => println!(
                        "{}: the 5 largest class regions (share of the pixels)",
                        input.name
                    ),
                    None => println!("{}: top-5", input.name),
                }
                for p in &top5 {
                    println!("  {:>5.1}%  {:>4}  {}", 100.0 * p.prob, p.index, p.label);
                }
            });
        }
        let default = match (regions, detections) {
            (Some(_), _) => "present",
            (_, Some(_)) => "all",
            _ => "top1",
        };
        let specs = if self.args.target.is_empty() {
            vec![default.to_string()]
        } else {
            self.args.target.clone()
        };
        let targets = explainer.resolve_targets(&prepared, &specs)?;
        let mut request = self.args.common.request(targets.clone());
        request.region = self.region.clone();
        // The bar grows by the request's total at its first report (smoothing repeats the
        // request, and the total counts every round).
        let (mut counted, mut shown) = (0, 0);
        let maps = explainer.explain(&prepared, &request, &mut |done, total| {
            if total > counted {
                self.bar.inc_length((total - counted) as u64);
                counted = total;
            }
            self.bar.inc(done.saturating_sub(shown) as u64);
            shown = shown.max(done);
        })?;
        let size = explainer.model().input_size();
        let mut image_records = Vec::new();
        for e in &maps {
            let detection = detections.map(|d| &d[e.target]);
            let suffix = if detection.is_some() {
                format!("_{}_det{}", e.label, e.target)
            } else if targets.len() > 1 {
                format!("_{}_c{}", e.label, e.target)
            } else {
                format!("_{}", e.label)
            };
            let stem = &input.stem;
            let up = render::upsample_bilinear(&e.map, size[0], size[1]);
            let heat = render::heatmap(&up, self.args.colormap);
            let overlay_path = self.args.out.join(format!("{stem}{suffix}.png"));
            let mut overlay = match &source {
                Some(photo) => {
                    render::overlay_region(photo, &e.map, crop, self.args.colormap, self.args.alpha)
                }
                None => render::overlay(&prepared.photo, &heat, self.args.alpha),
            };
            // A segmenter's explained region (the class's own, or `--region`), outlined where
            // the model saw it.
            let region = regions.map(|r| {
                let [h, w] = explainer.model().output_plane();
                let values = match &self.region {
                    Some(mask) => mask.to_vec(),
                    None => r.mask(e.target),
                };
                let pixels = values.iter().filter(|&&v| v != 0.0).count();
                let mask = igcam::cam::CamMap {
                    height: h,
                    width: w,
                    values,
                };
                let area = match source {
                    Some(_) => crop,
                    None => igcam::metrics::PixelBox {
                        x0: 0,
                        y0: 0,
                        x1: overlay.width() as usize,
                        y1: overlay.height() as usize,
                    },
                };
                render::outline_mask(&mut overlay, &mask, area);
                pixels
            });
            // A detector's boxes: every detection's in white, the explained one's in green.
            if let Some(all) = detections {
                let place = |b: [f32; 4]| match source {
                    Some(_) => prepared.geometry.unmap_box(b),
                    None => b,
                };
                for (_, d) in all.iter().enumerate().filter(|(i, _)| *i != e.target) {
                    render::draw_box(&mut overlay, place(d.bbox), [255, 255, 255], 1);
                }
                render::draw_box(&mut overlay, place(all[e.target].bbox), [0, 255, 0], 2);
            }
            output::write(&overlay_path, &render::encode_png(&overlay)?)?;
            output::write(
                &self.args.out.join(format!("{stem}{suffix}_heatmap.png")),
                &render::encode_png(&heat)?,
            )?;
            if self.args.npy {
                output::write_npy(
                    &self.args.out.join(format!("{stem}{suffix}_cam.npy")),
                    &e.map,
                )?;
                output::write_npy(
                    &self.args.out.join(format!("{stem}{suffix}_upsampled.npy")),
                    &up,
                )?;
            }
            let target = prepared.target_prediction(e.target);
            if let Some(delta) = e.convergence_delta {
                let gap = (e.map.values.iter().map(|&v| v as f64).sum::<f64>() - delta).abs();
                if delta.abs() > CONVERGENCE_WARNING * gap {
                    self.bar.suspend(|| {
                        eprintln!(
                            "warning: {} for class {}: the attributions sum to {:.4} more than the score's change from the baseline ({:.1} % of it); raise --steps or use --quadrature gausslegendre",
                            e.label,
                            e.target,
                            delta,
                            100.0 * delta.abs() / gap.max(f64::MIN_POSITIVE)
                        )
                    });
                }
            }
            if !self.args.quiet {
                self.bar.suspend(|| {
                    let what = match detection {
                        Some(_) => format!("det{} class", e.target),
                        None => "target".into(),
                    };
                    let score = if detection.is_some() {
                        "score"
                    } else {
                        "logit"
                    };
                    println!(
                        "  {}: {what} {} ({}) {score} {:.3}, {}x{} map, {:.1} ms -> {}",
                        e.label,
                        target.index,
                        target.label,
                        target.logit,
                        e.map.height,
                        e.map.width,
                        e.ms,
                        overlay_path.display()
                    )
                });
            }
            let detection = detection.map(|d| output::JsonDetection {
                index: e.target,
                anchor: d.anchor,
                class: d.class,
                label: target.label.clone(),
                score: d.score,
                bbox: d.bbox,
                bbox_in_photo: prepared.geometry.unmap_box(d.bbox),
            });
            let record = JsonRecord {
                image: input.name.clone(),
                model: &self.loaded.model_name,
                layer: &e.layer,
                method: e.label.clone(),
                steps: e.steps,
                backend: self.loaded.backend.label(),
                target,
                top5: top5.iter().map(|p| JsonClass::from(*p)).collect(),
                cam: JsonCam {
                    height: e.map.height,
                    width: e.map.width,
                    values: &e.map.values,
                },
                overlay: overlay_path.display().to_string(),
                overlay_size: [overlay.width(), overlay.height()],
                crop,
                ms: e.ms,
                quadrature: (e.steps > 1).then(|| self.args.common.path.quadrature.name()),
                convergence_delta: e.convergence_delta,
                region_pixels: region,
                detection,
            };
            image_records.push(serde_json::to_value(&record)?);
        }
        output::write(
            &self.args.out.join(format!("{}.json", input.stem)),
            serde_json::to_string_pretty(&image_records)?.as_bytes(),
        )?;
        records.extend(image_records);
        Ok(())
    }
}

/// Lists a detector's detections at `prepared` (`det0` the most confident).
fn print_detections(
    name: &str,
    detections: &[igcam::task::detect::Detection],
    prepared: &igcam::Prepared,
) {
    println!(
        "{name}: {} detection(s) (confidence, class, box x0 y0 x1 y1 in the model's input)",
        detections.len()
    );
    for (i, d) in detections.iter().enumerate() {
        let [x0, y0, x1, y1] = d.bbox;
        println!(
            "  det{i:<3} {:>5.3}  {:>4}  {:<16}  {x0:.1} {y0:.1} {x1:.1} {y1:.1}",
            d.score,
            d.class,
            prepared.prediction(d.class).label
        );
    }
}

/// Pixel IG's convergence delta above which `explain` warns, as a share of the score's change
/// from the baseline to the photo.
const CONVERGENCE_WARNING: f64 = 0.05;

/// Runs `explain`. Images that fail are reported and skipped; the exit status is an error if
/// any failed.
pub fn run(args: ExplainArgs) -> Result<()> {
    args.common.path.check()?;
    if !(0.0..=1.0).contains(&args.alpha) {
        bail!("--alpha must be between 0 and 1");
    }
    output::prepare_dir(&args.out)?;
    if let Some(json) = &args.json {
        output::check_writable(json)?;
    }
    let inputs = inputs(&args)?;
    let loaded = args::load(&args.common, args.no_crop)?;
    if !args.quiet {
        eprintln!(
            "backend: {}; model: {}; layer: {}",
            loaded.backend.label(),
            loaded.model_name,
            loaded.explainer.layers().join(", ")
        );
    }
    // Each image adds its request's steps once its targets are known.
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} steps  {elapsed_precise} eta {eta}")
            .expect("static template"),
    );
    let region = args
        .region
        .as_deref()
        .map(|p| read_region(p, &loaded))
        .transpose()?;
    let session = Session {
        args: &args,
        loaded,
        bar,
        region,
    };
    let mut records = Vec::new();
    let count = inputs.len();
    let mut failed = 0;
    for input in &inputs {
        let result = session
            .explain_image(input, &mut records)
            .with_context(|| input.name.clone());
        match result {
            Err(e) if count == 1 => return Err(e),
            Err(e) => {
                session.bar.suspend(|| eprintln!("error: {e:#}"));
                failed += 1;
            }
            Ok(()) => {}
        }
    }
    session.bar.finish_and_clear();
    if let Some(path) = &args.json {
        output::write(path, serde_json::to_string_pretty(&records)?.as_bytes())?;
    }
    if failed > 0 {
        bail!("{failed} of {count} images failed (see above); the others were written");
    }
    Ok(())
}
