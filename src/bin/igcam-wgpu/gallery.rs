//! The report's gallery: for each method, the explanations with the highest and the lowest
//! insertion AUC (a few each), as small overlays with the ground-truth boxes drawn. Kept while
//! `eval` runs (bounded: only the current best and worst are held), saved as
//! `OUT/gallery.json` after each image that changed it (so `--resume` and `merge` pick from
//! every shard's), and embedded in the
//! report.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::Engine;
use igcam::cam::CamMap;
use igcam::render::{self, Colormap};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::output;

/// Explanations kept per method and end.
pub const PER_END: usize = 3;
/// The overlays' side, in pixels.
const SIDE: u32 = 160;

/// One overlay in the gallery.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Shot {
    /// Method label.
    pub method: String,
    /// Image id.
    pub image: String,
    /// Class name.
    pub class: String,
    /// Its insertion AUC (the ranking).
    pub insertion: f64,
    /// The overlay, PNG in base64.
    pub png: String,
}

/// The best and worst explanations of each method.
#[derive(Default, Serialize, Deserialize)]
pub struct Gallery {
    /// Per method: the best (highest insertion) first, then the worst.
    pub methods: BTreeMap<String, (Vec<Shot>, Vec<Shot>)>,
    /// A shot was added since the last save.
    #[serde(skip)]
    pub changed: bool,
}

impl Gallery {
    /// Whether an explanation of `method` with this insertion AUC would enter the gallery.
    pub fn wants(&self, method: &str, insertion: f64) -> bool {
        if insertion.is_nan() {
            return false;
        }
        match self.methods.get(method) {
            None => true,
            Some((best, worst)) => {
                best.len() < PER_END
                    || worst.len() < PER_END
                    || best.iter().any(|s| insertion > s.insertion)
                    || worst.iter().any(|s| insertion < s.insertion)
            }
        }
    }

    /// Adds a shot, keeping [`PER_END`] at each end (ties: the earlier stays).
    pub fn add(&mut self, shot: Shot) {
        self.changed = true;
        let (best, worst) = self.methods.entry(shot.method.clone()).or_default();
        best.push(shot.clone());
        best.sort_by(|a, b| b.insertion.total_cmp(&a.insertion));
        best.truncate(PER_END);
        worst.push(shot);
        worst.sort_by(|a, b| a.insertion.total_cmp(&b.insertion));
        worst.truncate(PER_END);
    }

    /// Adds every shot of `other` (another shard's gallery).
    pub fn absorb(&mut self, other: Gallery) {
        for (_, (best, worst)) in other.methods {
            for shot in best.into_iter().chain(worst) {
                let known = self.methods.get(&shot.method).is_some_and(|(b, w)| {
                    b.iter()
                        .chain(w)
                        .any(|s| s.image == shot.image && s.class == shot.class)
                });
                if !known {
                    self.add(shot);
                }
            }
        }
    }

    /// Reads `dir/gallery.json`; an empty gallery when there is none.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("gallery.json");
        if !path.is_file() {
            return Ok(Self::default());
        }
        let gallery: Self = serde_json::from_slice(&output::read(&path)?)
            .with_context(|| format!("`{}` is not an eval gallery", path.display()))?;
        // The overlays go into the report's HTML as they are: each must be base64.
        let engine = base64::engine::general_purpose::STANDARD;
        for (best, worst) in gallery.methods.values() {
            if let Some(bad) = best
                .iter()
                .chain(worst)
                .find(|s| engine.decode(&s.png).is_err())
            {
                bail!(
                    "`{}` is not an eval gallery: the overlay of `{}` is not base64",
                    path.display(),
                    bad.image
                );
            }
        }
        Ok(gallery)
    }

    /// Writes `dir/gallery.json` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        output::write(&dir.join("gallery.json"), &serde_json::to_vec(self)?)
    }
}

/// The overlay of `map` (min-max scaled, at the photo's size) on `photo`, the mask's outline
/// drawn in white, as a small PNG in base64.
pub fn overlay_png(photo: &RgbImage, map: &[f32], mask: Option<&[bool]>) -> Result<String> {
    let (w, h) = photo.dimensions();
    let cam = CamMap {
        height: h as usize,
        width: w as usize,
        values: map.to_vec(),
    };
    let mut img = render::overlay(photo, &render::heatmap(&cam, Colormap::default()), 0.5);
    if let Some(mask) = mask {
        let (w, h) = (w as usize, h as usize);
        let inside = |x: usize, y: usize| mask[y * w + x];
        for y in 0..h {
            for x in 0..w {
                let edge = inside(x, y)
                    && (x == 0
                        || y == 0
                        || x + 1 == w
                        || y + 1 == h
                        || !inside(x - 1, y)
                        || !inside(x + 1, y)
                        || !inside(x, y - 1)
                        || !inside(x, y + 1));
                if edge {
                    img.put_pixel(x as u32, y as u32, image::Rgb([255, 255, 255]));
                }
            }
        }
    }
    let small = image::imageops::thumbnail(&img, SIDE, SIDE);
    Ok(base64::engine::general_purpose::STANDARD.encode(render::encode_png(&small)?))
}
