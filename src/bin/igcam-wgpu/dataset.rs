//! `eval --data`: the dataset layouts eval reads, each giving image ids, and for an id its
//! image and its classes with their boxes (none where the layout has none):
//! - `voc`: `JPEGImages/`, `Annotations/<id>.xml`, `ImageSets/Main/<split>.txt`;
//! - `imagenet`: Kaggle's ILSVRC layout, `LOC_val_solution.csv` and the images under
//!   `ILSVRC/Data/CLS-LOC/val/` (or `val/`, or the root);
//! - `coco`: `annotations/instances_<split>.json` and the images under `<split>/` (or
//!   `images/<split>/`, or the root), each object's mask from its polygons or run lengths;
//! - `folder`: images with a `labels.csv` of `image,label` lines (no boxes: the localisation
//!   metrics are left empty).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use igcam::data::coco::{self, Instances, Loose, Segmentation};
use igcam::data::{Lines, Object, parse_annotation, parse_labels_csv, parse_loc_solution};
use igcam::metrics::PixelBox;

use crate::output;

/// A dataset's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `Annotations/` means voc, `LOC_val_solution.csv` imagenet, `annotations/instances_*.json`
    /// coco, `labels.csv` folder.
    Auto,
    /// PASCAL VOC.
    Voc,
    /// ImageNet's localisation validation set (Kaggle's ILSVRC layout).
    Imagenet,
    /// COCO's `annotations/instances_<split>.json`.
    Coco,
    /// A folder of images with `labels.csv`.
    Folder,
}

/// A class's ground truth at the image's resolution (`width * height`, row-major).
pub struct Mask {
    /// `[width, height]`.
    pub size: [usize; 2],
    /// Inside the objects.
    pub pixels: Vec<bool>,
}

/// One image to score.
pub struct Item {
    /// The image file.
    pub image: PathBuf,
    /// Each class present, with its boxes in the image's pixels (empty: no ground truth).
    pub classes: Vec<(String, Vec<PixelBox>)>,
    /// The classes whose objects have true masks (COCO): the union of their masks.
    pub masks: BTreeMap<String, Mask>,
    /// Objects whose annotation could not be read (counted; their box stands in where it can).
    pub bad: Vec<String>,
}

/// One COCO object as eval keeps it until its image is scored.
struct CocoObject {
    id: u64,
    class: String,
    bbox: [usize; 4],
    segmentation: Option<Loose<Segmentation>>,
}

/// A COCO split: the image folder and each image's size and objects, by file name.
struct CocoSet {
    images: PathBuf,
    objects: BTreeMap<String, ([usize; 2], Vec<CocoObject>)>,
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
    Coco(CocoSet),
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

/// The most bytes an `instances_*.json` may hold (COCO's train2017 has 448 MB).
const MAX_COCO_BYTES: u64 = 1 << 30;

/// `annotations/instances_<split>.json` under `root`, or without `--split` the only
/// `instances_*.json` there.
fn coco_file(root: &Path, split: Option<&str>) -> Result<PathBuf> {
    let dir = root.join("annotations");
    if let Some(split) = split {
        let named = dir.join(format!("instances_{split}.json"));
        if named.is_file() {
            return Ok(named);
        }
    }
    let mut found: Vec<PathBuf> = fs::read_dir(&dir)
        .with_context(|| format!("cannot read `{}`", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("instances_") && n.ends_with(".json"))
        })
        .collect();
    found.sort();
    match found.as_slice() {
        [one] if split.is_none() => Ok(one.clone()),
        [] => bail!("`{}` holds no instances_*.json", dir.display()),
        some => bail!(
            "`{}` has no instances_{}.json; pick one of {} with --split",
            dir.display(),
            split.unwrap_or("<split>"),
            some.iter()
                .filter_map(|p| p.file_stem()?.to_str()?.strip_prefix("instances_"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Reads a COCO split: its images in file order, their objects, and the annotations that
/// cannot be read (bad boxes, unknown images or categories), each with its reason.
fn open_coco(root: &Path, split: Option<&str>) -> Result<(CocoSet, Vec<String>, Vec<String>)> {
    let file = coco_file(root, split)?;
    let shown = file.display().to_string();
    let bytes = output::read_capped(&file, MAX_COCO_BYTES)?;
    let instances: Instances = serde_json::from_slice(&bytes).map_err(|e| {
        anyhow::anyhow!("`{shown}` is not a COCO instances file ({e}): it needs images, annotations and categories")
    })?;
    let split_name = file
        .file_stem()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("instances_"))
        .unwrap_or_default()
        .to_string();
    let images = [
        root.join(&split_name),
        root.join("images").join(&split_name),
        root.to_path_buf(),
    ]
    .into_iter()
    .find(|d| d.is_dir())
    .unwrap_or_else(|| root.to_path_buf());
    let names: BTreeMap<u64, String> = instances
        .categories
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    let mut ids = Vec::new();
    let mut by_id: BTreeMap<u64, String> = BTreeMap::new();
    let mut objects: BTreeMap<String, ([usize; 2], Vec<CocoObject>)> = BTreeMap::new();
    let mut bad = Vec::new();
    for image in instances.images {
        if objects.contains_key(&image.file_name) {
            bad.push(format!(
                "{shown}: image `{}` appears again: give each image once (its first entry counts)",
                image.file_name
            ));
            continue;
        }
        let pixels = (image.width as u64).saturating_mul(image.height as u64);
        if pixels > igcam::budget::DEFAULT_MAX_PIXELS || pixels == 0 {
            bad.push(format!(
                "{shown}: image `{}` is {}x{}: its masks need between 1 and {} pixels",
                image.file_name,
                image.width,
                image.height,
                igcam::budget::DEFAULT_MAX_PIXELS
            ));
            continue;
        }
        if by_id.contains_key(&image.id) {
            bad.push(format!(
                "{shown}: image id {} appears again (`{}`): give each image its own id (the first counts)",
                image.id, image.file_name
            ));
            continue;
        }
        by_id.insert(image.id, image.file_name.clone());
        ids.push(image.file_name.clone());
        objects.insert(image.file_name, ([image.height, image.width], Vec::new()));
    }
    for a in instances.annotations {
        let what = format!("{shown}: annotation {}", a.id);
        let Some(entry) = by_id.get(&a.image_id).and_then(|f| objects.get_mut(f)) else {
            bad.push(format!("{what}: image {} is not in images", a.image_id));
            continue;
        };
        let Some(class) = names.get(&a.category_id) else {
            bad.push(format!(
                "{what}: category {} is not in categories",
                a.category_id
            ));
            continue;
        };
        match coco::bbox_pixels(&a.bbox, entry.0) {
            Ok(bbox) => entry.1.push(CocoObject {
                id: a.id,
                class: class.clone(),
                bbox,
                segmentation: a.segmentation,
            }),
            Err(e) => bad.push(format!("{what}: {e}")),
        }
    }
    Ok((CocoSet { images, objects }, ids, bad))
}

impl Dataset {
    /// Opens `root` as `format` (`split`: VOC's image list, `test` by default; COCO's
    /// instances file, the only one there by default).
    pub fn open(root: &Path, format: Format, split: Option<&str>) -> Result<Self> {
        if !root.is_dir() {
            bail!("--data `{}` is not a folder", root.display());
        }
        let solution = root.join("LOC_val_solution.csv");
        let labels = root.join("labels.csv");
        let format = match format {
            Format::Auto if root.join("Annotations").is_dir() => Format::Voc,
            Format::Auto if solution.is_file() => Format::Imagenet,
            Format::Auto if root.join("annotations").is_dir() => Format::Coco,
            Format::Auto if labels.is_file() => Format::Folder,
            Format::Auto => bail!(
                "`{}` is no dataset eval knows: it has no Annotations/ (VOC), LOC_val_solution.csv (ImageNet), annotations/instances_*.json (COCO) or labels.csv (a folder of images); see --format",
                root.display()
            ),
            f => f,
        };
        let (layout, ids, bad, default_classes) = match format {
            Format::Voc => (
                Layout::Voc,
                voc_ids(root, split.unwrap_or("test"))?,
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
            Format::Coco => {
                let (set, ids, bad) = open_coco(root, split)?;
                (Layout::Coco(set), ids, bad, Some("coco-to-imagenet"))
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
                Found::Item(Item::boxes(image, classes))
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
                Found::Item(Item::boxes(image, classes))
            }
            Layout::Coco(set) => coco_item(set, id)?,
            Layout::Folder(labels) => Found::Item(Item::boxes(
                self.root.join(id),
                vec![(labels[id].clone(), Vec::new())],
            )),
        })
    }
}

impl Item {
    /// An item whose ground truth is boxes alone.
    fn boxes(image: PathBuf, classes: Vec<(String, Vec<PixelBox>)>) -> Self {
        Self {
            image,
            classes,
            masks: BTreeMap::new(),
            bad: Vec::new(),
        }
    }
}

/// A COCO image with its classes, boxes and masks: each class's mask is the union of its
/// objects' masks (an object without a readable one adds its box).
fn coco_item(set: &CocoSet, id: &str) -> Result<Found> {
    let (size, objects) = &set.objects[id];
    let image = set.images.join(id);
    if !image.is_file() {
        bail!("no {}", image.display());
    }
    let [height, width] = *size;
    let mut item = Item::boxes(image, Vec::new());
    for o in objects {
        let [x0, y0, x1, y1] = o.bbox;
        let b = PixelBox { x0, y0, x1, y1 };
        match item.classes.iter_mut().find(|(c, _)| *c == o.class) {
            Some((_, boxes)) => boxes.push(b),
            None => item.classes.push((o.class.clone(), vec![b])),
        }
        let object = match &o.segmentation {
            Some(s) => coco::mask(s, [height, width]).unwrap_or_else(|e| {
                item.bad
                    .push(format!("{id}: annotation {}: {e}; its box is used", o.id));
                igcam::metrics::boxes_mask(&[b], height, width)
            }),
            None => igcam::metrics::boxes_mask(&[b], height, width),
        };
        let mask = item.masks.entry(o.class.clone()).or_insert_with(|| Mask {
            size: [width, height],
            pixels: vec![false; width * height],
        });
        for (m, v) in mask.pixels.iter_mut().zip(object) {
            *m |= v;
        }
    }
    Ok(Found::Item(item))
}
