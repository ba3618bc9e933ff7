//! `eval --data`: the dataset layouts eval reads, each giving image ids, and for an id its
//! image and its classes with their boxes (none where the layout has none):
//! - `voc`: `JPEGImages/`, `Annotations/<id>.xml`, `ImageSets/Main/<split>.txt`;
//! - `imagenet`: Kaggle's ILSVRC layout, `LOC_val_solution.csv` and the images under
//!   `ILSVRC/Data/CLS-LOC/val/` (or `val/`, or the root);
//! - `folder`: images with a `labels.csv` of `image,label` lines (no boxes: the localisation
//!   metrics are left empty).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use igcam::data::{Lines, Object, parse_annotation, parse_labels_csv, parse_loc_solution};
use igcam::metrics::PixelBox;

use crate::output;

/// A dataset's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `Annotations/` means voc, `LOC_val_solution.csv` imagenet, `labels.csv` folder.
    Auto,
    /// PASCAL VOC.
    Voc,
    /// ImageNet's localisation validation set (Kaggle's ILSVRC layout).
    Imagenet,
    /// A folder of images with `labels.csv`.
    Folder,
}

/// One image to score.
pub struct Item {
    /// The image file.
    pub image: PathBuf,
    /// Each class present, with its boxes in the image's pixels (empty: no ground truth).
    pub classes: Vec<(String, Vec<PixelBox>)>,
}

/// What [`Dataset::item`] found.
pub enum Found {
    /// The image and its classes.
    Item(Item),
    /// The annotation could not be read (counted, not fatal), with the reason.
    BadAnnotation(String),
}

enum Layout {
    Voc,
    Imagenet(BTreeMap<String, Vec<Object>>),
    Folder(BTreeMap<String, String>),
}

/// An opened dataset.
pub struct Dataset {
    root: PathBuf,
    layout: Layout,
    /// Image ids in order.
    pub ids: Vec<String>,
    /// Lines of the layout's CSV that could not be read, with the reason (counted as bad
    /// annotations).
    pub bad_lines: Vec<String>,
    /// The class map the layout's names call for when `--classes` is not given (`None`, a
    /// folder: `imagenet` for a 1000-class model, else labels are output indices).
    pub default_classes: Option<&'static str>,
}

fn voc_ids(data: &Path, split: &str) -> Result<Vec<String>> {
    let list = data.join("ImageSets/Main").join(format!("{split}.txt"));
    if list.is_file() {
        let text = output::read_text(&list)?;
        return Ok(text
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from)
            .collect());
    }
    let dir = data.join("Annotations");
    let mut ids: Vec<String> = fs::read_dir(&dir)
        .with_context(|| {
            format!(
                "`{}` is not a VOC dataset: no `{}` and no readable Annotations/",
                data.display(),
                list.display()
            )
        })?
        .filter_map(|e| {
            let p = e.ok()?.path();
            if p.extension()? != "xml" {
                return None;
            }
            Some(p.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    ids.sort();
    Ok(ids)
}

/// The first of `dirs` (under `root`) holding `id` with one of the usual image extensions.
fn find_image(root: &Path, dirs: &[&str], id: &str) -> Option<PathBuf> {
    dirs.iter()
        .flat_map(|d| {
            ["jpg", "jpeg", "png", "JPEG", "JPG", "PNG"]
                .iter()
                .map(move |e| root.join(d).join(format!("{id}.{e}")))
        })
        .find(|p| p.is_file())
}

/// Keeps the first line of each image; a repeat is reported with the `bad` lines.
fn first_each<T>(
    file: &Path,
    parsed: Vec<(String, T)>,
    mut bad: Vec<String>,
) -> (Vec<(String, T)>, Vec<String>) {
    let mut seen = std::collections::BTreeSet::new();
    let mut kept = Vec::with_capacity(parsed.len());
    for (id, v) in parsed {
        if seen.insert(id.clone()) {
            kept.push((id, v));
        } else {
            bad.push(format!(
                "{}: `{id}` appears again: give each image once (its first line counts)",
                file.display()
            ));
        }
    }
    (kept, bad)
}

/// A CSV's lines split into what they hold and, for the bad ones, `file line N: reason`.
fn split_lines<T>(file: &Path, lines: Lines<T>) -> (Vec<T>, Vec<String>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (n, line) in lines {
        match line {
            Ok(v) => good.push(v),
            Err(e) => bad.push(format!("{} line {n}: {e}", file.display())),
        }
    }
    (good, bad)
}

impl Dataset {
    /// Opens `root` as `format` (`split`: VOC's image list).
    pub fn open(root: &Path, format: Format, split: &str) -> Result<Self> {
        if !root.is_dir() {
            bail!("--data `{}` is not a folder", root.display());
        }
        let solution = root.join("LOC_val_solution.csv");
        let labels = root.join("labels.csv");
        let format = match format {
            Format::Auto if root.join("Annotations").is_dir() => Format::Voc,
            Format::Auto if solution.is_file() => Format::Imagenet,
            Format::Auto if labels.is_file() => Format::Folder,
            Format::Auto => bail!(
                "`{}` is no dataset eval knows: it has no Annotations/ (VOC), LOC_val_solution.csv (ImageNet) or labels.csv (a folder of images); see --format",
                root.display()
            ),
            f => f,
        };
        let (layout, ids, bad, default_classes) = match format {
            Format::Voc => (
                Layout::Voc,
                voc_ids(root, split)?,
                Vec::new(),
                Some("voc-to-imagenet"),
            ),
            Format::Imagenet => {
                let (parsed, bad) = split_lines(
                    &solution,
                    parse_loc_solution(&output::read_text(&solution)?),
                );
                let (parsed, bad) = first_each(&solution, parsed, bad);
                let mut ids: Vec<String> = parsed.iter().map(|(id, _)| id.clone()).collect();
                ids.sort();
                let objects = parsed.into_iter().collect();
                (Layout::Imagenet(objects), ids, bad, Some("imagenet"))
            }
            Format::Folder | Format::Auto => {
                let (parsed, bad) =
                    split_lines(&labels, parse_labels_csv(&output::read_text(&labels)?));
                let (parsed, bad) = first_each(&labels, parsed, bad);
                let ids = parsed.iter().map(|(image, _)| image.clone()).collect();
                (Layout::Folder(parsed.into_iter().collect()), ids, bad, None)
            }
        };
        Ok(Self {
            root: root.to_path_buf(),
            layout,
            ids,
            bad_lines: bad,
            default_classes,
        })
    }

    /// The image and classes of `id`; an error when the image is missing.
    pub fn item(&self, id: &str) -> Result<Found> {
        Ok(match &self.layout {
            Layout::Voc => {
                let xml = self.root.join("Annotations").join(format!("{id}.xml"));
                let annotation =
                    match output::read_text(&xml).and_then(|t| Ok(parse_annotation(&t)?)) {
                        Ok(a) => a,
                        Err(e) => {
                            return Ok(Found::BadAnnotation(format!("{}: {e:#}", xml.display())));
                        }
                    };
                let image = find_image(&self.root, &["JPEGImages"], id)
                    .with_context(|| format!("no JPEGImages/{id}.jpg or .png"))?;
                let classes = annotation
                    .classes()
                    .into_iter()
                    .map(|c| (c.to_string(), annotation.boxes(c)))
                    .collect();
                Found::Item(Item { image, classes })
            }
            Layout::Imagenet(objects) => {
                let image = find_image(&self.root, &["ILSVRC/Data/CLS-LOC/val", "val", "."], id)
                    .with_context(|| {
                        format!("no ILSVRC/Data/CLS-LOC/val/{id}.JPEG (nor under val/ or the root)")
                    })?;
                let mut classes: Vec<(String, Vec<PixelBox>)> = Vec::new();
                for o in &objects[id] {
                    match classes.iter_mut().find(|(c, _)| *c == o.name) {
                        Some((_, boxes)) => boxes.push(o.bbox),
                        None => classes.push((o.name.clone(), vec![o.bbox])),
                    }
                }
                Found::Item(Item { image, classes })
            }
            Layout::Folder(labels) => Found::Item(Item {
                image: self.root.join(id),
                classes: vec![(labels[id].clone(), Vec::new())],
            }),
        })
    }
}
