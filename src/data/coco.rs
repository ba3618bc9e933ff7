//! COCO's `instances_*.json`: images, their objects' boxes and masks (polygons, or run-length
//! encoded for crowds), decoded as pycocotools does (`annToMask`): a polygon is rasterised by
//! pycocotools' rule (its edges traced at 5x resolution; a pixel is inside when its centre
//! lies between the edge crossings of its column), run lengths count column by column
//! (Fortran order), starting with a run of zeros; a compressed count string holds 5-bit groups
//! offset by 48, each count from the third on relative to the one two before.

use serde::Deserialize;

/// The parts of an `instances_*.json` eval reads.
#[derive(Deserialize)]
pub struct Instances {
    /// The images.
    pub images: Vec<CocoImage>,
    /// Every object of every image.
    pub annotations: Vec<CocoAnnotation>,
    /// Category ids and names.
    pub categories: Vec<Category>,
}

/// One image.
#[derive(Deserialize)]
pub struct CocoImage {
    /// Its id.
    pub id: u64,
    /// Its file, relative to the split's image folder.
    pub file_name: String,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

/// One object.
#[derive(Deserialize)]
pub struct CocoAnnotation {
    /// Its id (0 when the file leaves it out).
    #[serde(default)]
    pub id: u64,
    /// The image it is in.
    pub image_id: u64,
    /// Its category.
    pub category_id: u64,
    /// `[x, y, width, height]` in pixels.
    pub bbox: Loose<Vec<f64>>,
    /// Its outline(s) or run-length mask, when given.
    #[serde(default)]
    pub segmentation: Option<Loose<Segmentation>>,
}

/// A field read as `T` when it has `T`'s shape, else kept as bad: one malformed annotation is
/// counted, not a reason to refuse the whole file.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Loose<T> {
    /// The field as expected.
    Read(T),
    /// Anything else.
    Bad(serde::de::IgnoredAny),
}

/// A category.
#[derive(Deserialize)]
pub struct Category {
    /// Its id.
    pub id: u64,
    /// Its name (`cat`, `dining table`, ...).
    pub name: String,
}

/// An object's mask as COCO stores it.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Segmentation {
    /// Polygons `[x0, y0, x1, y1, ...]` (several for an object in parts).
    Polygons(Vec<Vec<f64>>),
    /// A run-length encoded mask.
    Rle(Rle),
}

/// A run-length encoded mask.
#[derive(Deserialize)]
pub struct Rle {
    /// The run lengths, as numbers or compressed into a string.
    pub counts: Counts,
    /// `[height, width]`.
    pub size: [usize; 2],
}

/// Run lengths.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Counts {
    /// Plain numbers (COCO's crowd annotations).
    Plain(Vec<u64>),
    /// pycocotools' compressed string.
    Compressed(String),
}

/// The object's box as pixels `(x0, y0, x1, y1)` (end-exclusive, rounded outwards, clamped to
/// the image), or the reason it is not one.
pub fn bbox_pixels(
    bbox: &Loose<Vec<f64>>,
    [height, width]: [usize; 2],
) -> Result<[usize; 4], String> {
    let Loose::Read(bbox) = bbox else {
        return Err("bbox is not a list of numbers".into());
    };
    let &[x, y, w, h] = bbox.as_slice() else {
        return Err(format!("bbox has {} values, not 4", bbox.len()));
    };
    if ![x, y, w, h].iter().all(|v| v.is_finite()) || w < 0.0 || h < 0.0 {
        return Err(format!("bbox {bbox:?} is not a box"));
    }
    let clamp = |v: f64, hi: usize| (v.max(0.0) as usize).min(hi);
    Ok([
        clamp(x.floor(), width),
        clamp(y.floor(), height),
        clamp((x + w).ceil(), width),
        clamp((y + h).ceil(), height),
    ])
}

/// The mask (`height * width`, row-major) of a segmentation on an image of `size`, or the
/// reason it cannot be read.
pub fn mask(segmentation: &Loose<Segmentation>, size: [usize; 2]) -> Result<Vec<bool>, String> {
    let [height, width] = size;
    let Loose::Read(segmentation) = segmentation else {
        return Err("its segmentation is neither polygons nor run lengths".into());
    };
    match segmentation {
        Segmentation::Polygons(polygons) => {
            if polygons.is_empty() {
                return Err("its segmentation holds no polygon".into());
            }
            let mut points = 0.0;
            for p in polygons {
                if p.len() < 6 || p.len() % 2 != 0 || !p.iter().all(|v| v.is_finite()) {
                    return Err(format!(
                        "a polygon holds {} coordinates: it needs x, y pairs for at least 3 points",
                        p.len()
                    ));
                }
                points += trace_points(p);
            }
            if points > MAX_TRACE_POINTS {
                return Err(format!(
                    "its outlines are {points:.0} points long at pycocotools' 5x scale, over {MAX_TRACE_POINTS}: their coordinates lie far outside the image"
                ));
            }
            let mut out = vec![false; height * width];
            for p in polygons {
                paint(&polygon_counts(p, size), size, &mut out)?;
            }
            Ok(out)
        }
        Segmentation::Rle(rle) => {
            if rle.size != size {
                return Err(format!(
                    "its mask is {}x{} but the image is {height}x{width}",
                    rle.size[0], rle.size[1]
                ));
            }
            let counts = match &rle.counts {
                Counts::Plain(c) => c.clone(),
                Counts::Compressed(s) => uncompress(s)?,
            };
            let mut out = vec![false; height * width];
            paint(&counts, size, &mut out)?;
            Ok(out)
        }
    }
}

/// The most points a polygon's traced outline may hold (pycocotools traces it at 5x; a COCO
/// outline holds thousands).
const MAX_TRACE_POINTS: f64 = 16_777_216.0;

/// How many points pycocotools' trace of polygon `xy` holds (its length along the longer axis
/// of each edge at 5x, plus one per edge).
fn trace_points(xy: &[f64]) -> f64 {
    let k = xy.len() / 2;
    (0..k)
        .map(|j| {
            let n = (j + 1) % k;
            let dx = (5.0 * (xy[2 * n] - xy[2 * j])).abs();
            let dy = (5.0 * (xy[2 * n + 1] - xy[2 * j + 1])).abs();
            dx.max(dy) + 2.0
        })
        .sum()
}

/// Sets in `out` (row-major) the pixels of column-major run lengths (zeros first).
fn paint(counts: &[u64], [height, width]: [usize; 2], out: &mut [bool]) -> Result<(), String> {
    let total = counts.iter().try_fold(0u64, |a, &c| a.checked_add(c));
    if total != Some((height * width) as u64) {
        return Err(format!(
            "its run lengths cover {} pixels but the image has {}",
            total.map_or("too many".to_string(), |t| t.to_string()),
            height * width
        ));
    }
    let mut at = 0usize;
    for (i, &run) in counts.iter().enumerate() {
        if i % 2 == 1 {
            for k in at..at + run as usize {
                // Position k counts down the columns.
                out[(k % height) * width + k / height] = true;
            }
        }
        at += run as usize;
    }
    Ok(())
}

/// pycocotools' compressed count string to the counts.
fn uncompress(s: &str) -> Result<Vec<u64>, String> {
    let bad = || format!("its compressed counts `{s:.20}` are not pycocotools'");
    let bytes = s.as_bytes();
    let mut counts: Vec<u64> = Vec::new();
    let mut p = 0;
    while p < bytes.len() {
        let (mut x, mut k, mut more) = (0i64, 0u32, true);
        while more {
            let c = i64::from(*bytes.get(p).ok_or_else(bad)?) - 48;
            if !(0..64).contains(&c) || k > 11 {
                return Err(bad());
            }
            x |= (c & 0x1f) << (5 * k);
            more = c & 0x20 != 0;
            p += 1;
            k += 1;
            if !more && c & 0x10 != 0 {
                x |= (-1i64).checked_shl(5 * k).unwrap_or(0);
            }
        }
        if counts.len() > 2 {
            let before = i64::try_from(counts[counts.len() - 2]).map_err(|_| bad())?;
            x = x.checked_add(before).ok_or_else(bad)?;
        }
        counts.push(u64::try_from(x).map_err(|_| bad())?);
    }
    Ok(counts)
}

/// pycocotools' polygon rasterisation as run lengths (its `rleFrPoly`): the vertices scaled
/// by 5 and rounded; each edge traced one step at a time along its longer axis (from the end
/// with the smaller coordinate on that axis); wherever the traced x changes, the pixel column
/// it crosses and the first pixel row below the crossing (at the original scale) mark a
/// change from outside to inside or back; those marks, sorted in column-major order, are the
/// run boundaries.
fn polygon_counts(xy: &[f64], [height, width]: [usize; 2]) -> Vec<u64> {
    const SCALE: f64 = 5.0;
    let k = xy.len() / 2;
    let px: Vec<i64> = (0..=k)
        .map(|j| (SCALE * xy[2 * (j % k)] + 0.5) as i64)
        .collect();
    let py: Vec<i64> = (0..=k)
        .map(|j| (SCALE * xy[2 * (j % k) + 1] + 0.5) as i64)
        .collect();
    let (mut u, mut v) = (Vec::new(), Vec::new());
    for j in 0..k {
        let (mut xs, mut xe, mut ys, mut ye) = (px[j], px[j + 1], py[j], py[j + 1]);
        let (dx, dy) = ((xe - xs).abs(), (ys - ye).abs());
        let flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
        if flip {
            std::mem::swap(&mut xs, &mut xe);
            std::mem::swap(&mut ys, &mut ye);
        }
        if dx >= dy {
            let s = if dx == 0 {
                0.0
            } else {
                (ye - ys) as f64 / dx as f64
            };
            for d in 0..=dx {
                let t = if flip { dx - d } else { d };
                u.push(t + xs);
                v.push((ys as f64 + s * t as f64 + 0.5) as i64);
            }
        } else {
            let s = (xe - xs) as f64 / dy as f64;
            for d in 0..=dy {
                let t = if flip { dy - d } else { d };
                v.push(t + ys);
                u.push((xs as f64 + s * t as f64 + 0.5) as i64);
            }
        }
    }
    let mut marks: Vec<u64> = Vec::new();
    for j in 1..u.len() {
        if u[j] == u[j - 1] {
            continue;
        }
        let xd = (if u[j] < u[j - 1] { u[j] } else { u[j] - 1 }) as f64;
        let xd = (xd + 0.5) / SCALE - 0.5;
        if xd.floor() != xd || xd < 0.0 || xd > (width as f64 - 1.0) {
            continue;
        }
        let yd = (if v[j] < v[j - 1] { v[j] } else { v[j - 1] }) as f64;
        let yd = ((yd + 0.5) / SCALE - 0.5).clamp(0.0, height as f64).ceil();
        marks.push(xd as u64 * height as u64 + yd as u64);
    }
    marks.push((height * width) as u64);
    marks.sort_unstable();
    // Differences between marks; a zero-length run merges its neighbours.
    let mut diffs = Vec::with_capacity(marks.len());
    let mut prev = 0;
    for m in marks {
        diffs.push(m - prev);
        prev = m;
    }
    let mut counts = vec![diffs[0]];
    let mut j = 1;
    while j < diffs.len() {
        if diffs[j] > 0 {
            counts.push(diffs[j]);
            j += 1;
        } else {
            j += 1;
            if j < diffs.len() {
                *counts.last_mut().expect("one count") += diffs[j];
                j += 1;
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_masks_are_refused_before_any_large_allocation() {
        let read = Loose::Read;
        let far = read(Segmentation::Polygons(vec![vec![
            0.0, 0.0, 1e12, 0.0, 0.0, 5.0,
        ]]));
        let e = mask(&far, [10, 10]).unwrap_err();
        assert!(e.contains("lie far outside the image"), "{e}");
        let wrapping = read(Segmentation::Rle(Rle {
            counts: Counts::Plain(vec![u64::MAX, 101]),
            size: [10, 10],
        }));
        assert_eq!(
            mask(&wrapping, [10, 10]).unwrap_err(),
            "its run lengths cover too many pixels but the image has 100"
        );
        let garbage = read(Segmentation::Rle(Rle {
            counts: Counts::Compressed("\u{7f}".into()),
            size: [2, 2],
        }));
        // 13 groups of 5 bits shift past 64: refused, not a panic.
        let long = read(Segmentation::Rle(Rle {
            counts: Counts::Compressed("o".repeat(13)),
            size: [2, 2],
        }));
        assert!(
            mask(&long, [2, 2])
                .unwrap_err()
                .contains("not pycocotools'")
        );
        assert_eq!(
            mask(&read(Segmentation::Polygons(Vec::new())), [2, 2]).unwrap_err(),
            "its segmentation holds no polygon"
        );
        assert!(
            mask(&garbage, [2, 2])
                .unwrap_err()
                .contains("not pycocotools'")
        );
        // A 2x2 square over pixels (1..3, 1..3) of a 4x4 image: pycocotools gives these four.
        let square = read(Segmentation::Polygons(vec![vec![
            1.0, 1.0, 3.0, 1.0, 3.0, 3.0, 1.0, 3.0,
        ]]));
        let m = mask(&square, [4, 4]).unwrap();
        assert_eq!(m.iter().filter(|&&v| v).count(), 4, "{m:?}");
        assert!(m[5] && m[6] && m[9] && m[10]);
    }
}
