//! ImageNet's localisation ground truth as Kaggle's ILSVRC layout ships it:
//! `LOC_val_solution.csv`, one line per image, `ImageId,PredictionString` with the string
//! `synset xmin ymin xmax ymax synset ...` (the XML's 1-based inclusive corners, converted here
//! to VOC's 0-based end-exclusive boxes as [`super::parse_annotation`] does).

use super::voc::Object;
use crate::error::{Error, Result};
use crate::metrics::PixelBox;

/// Each line of a file by its (1-based) number: what it holds, or why it was refused.
pub type Lines<T> = Vec<(usize, Result<T>)>;

/// The lines of `text` that hold data, numbered from 1: not blank, and not a first line that
/// is `header` (spaces and letter case aside).
fn data_lines<'a>(text: &'a str, header: &'a str) -> impl Iterator<Item = (usize, &'a str)> {
    text.lines()
        .enumerate()
        .filter(move |(i, l)| {
            let is_header = *i == 0 && l.replace(' ', "").eq_ignore_ascii_case(header);
            !(l.trim().is_empty() || is_header)
        })
        .map(|(i, l)| (i + 1, l))
}

/// Each line of the file: the image id and its objects, or why the line was refused (a bad line
/// is reported, not fatal). The header is skipped.
pub fn parse_loc_solution(text: &str) -> Lines<(String, Vec<Object>)> {
    data_lines(text, "ImageId,PredictionString")
        .map(|(n, l)| (n, parse_line(l)))
        .collect()
}

fn parse_line(line: &str) -> Result<(String, Vec<Object>)> {
    let (id, objects) = line
        .split_once(',')
        .ok_or_else(|| Error::Data(format!("`{line}` is not `ImageId,PredictionString`")))?;
    let id = id.trim();
    if id.is_empty() || id.contains(['/', '\\']) || id.starts_with('.') {
        return Err(Error::Data(format!("`{id}` is not an image id")));
    }
    let fields: Vec<&str> = objects.split_whitespace().collect();
    if fields.is_empty() || !fields.len().is_multiple_of(5) {
        return Err(Error::Data(format!(
            "image `{id}`: {} fields where groups of 5 (synset xmin ymin xmax ymax) were expected",
            fields.len()
        )));
    }
    let objects = fields
        .chunks(5)
        .map(|f| {
            let n: Vec<usize> = f[1..]
                .iter()
                .map(|v| v.parse::<usize>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| {
                    Error::Data(format!(
                        "image `{id}`: box `{}` is not 4 whole numbers",
                        f[1..].join(" ")
                    ))
                })?;
            // A 0 corner (seen in exports) is clamped as the VOC reader does.
            let (x0, y0) = (n[0].saturating_sub(1), n[1].saturating_sub(1));
            if n[2] <= x0 || n[3] <= y0 {
                return Err(Error::Data(format!(
                    "image `{id}`: box {} {} {} {} is empty",
                    n[0], n[1], n[2], n[3]
                )));
            }
            Ok(Object {
                name: f[0].to_string(),
                difficult: false,
                bbox: PixelBox {
                    x0,
                    y0,
                    x1: n[2],
                    y1: n[3],
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((id.to_string(), objects))
}

/// A folder of images with a CSV of labels: `image,label` lines (a header line starting with
/// `image` is skipped), the image path relative to the folder, the label a class-map name or a
/// model output index. Bad lines are reported, not fatal.
pub fn parse_labels_csv(text: &str) -> Lines<(String, String)> {
    data_lines(text, "image,label")
        .map(|(n, l)| {
            let parsed = match l.rsplit_once(',') {
                Some((image, label)) if !image.trim().is_empty() && !label.trim().is_empty() => {
                    let image = image.trim();
                    if image.starts_with('/') || image.split(['/', '\\']).any(|p| p == "..") {
                        Err(Error::Data(format!(
                            "`{image}` leaves the folder: give paths inside it"
                        )))
                    } else {
                        Ok((image.to_string(), label.trim().to_string()))
                    }
                }
                _ => Err(Error::Data(format!("`{l}` is not `image,label`"))),
            };
            (n, parsed)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solution_lines() {
        let text = "ImageId,PredictionString\n\
                    ILSVRC2012_val_00000001,n01751748 1 2 10 20 n01751748 5 5 5 5 \n\
                    ILSVRC2012_val_00000002,n09428293 0 2 10 20 n09428293 7 2 6 20\n\
                    bad line\n\
                    ILSVRC2012_val_00000003,n01751748 1 2 10\n";
        let parsed = parse_loc_solution(text);
        assert_eq!(parsed.len(), 4);
        // Without the header, the first line is data.
        assert_eq!(parse_loc_solution(&text[25..]).len(), 4);
        let (id, objects) = parsed[0].1.as_ref().unwrap();
        assert_eq!(id, "ILSVRC2012_val_00000001");
        assert_eq!(
            objects[0].bbox,
            PixelBox {
                x0: 0,
                y0: 1,
                x1: 10,
                y1: 20
            }
        );
        assert_eq!(
            objects[1].bbox,
            PixelBox {
                x0: 4,
                y0: 4,
                x1: 5,
                y1: 5
            }
        );
        let errors: Vec<(usize, String)> = parsed[1..]
            .iter()
            .map(|(n, r)| (*n, r.as_ref().unwrap_err().to_string()))
            .collect();
        assert_eq!(
            errors,
            [
                (3, "image `ILSVRC2012_val_00000002`: box 7 2 6 20 is empty".to_string()),
                (4, "`bad line` is not `ImageId,PredictionString`".to_string()),
                (5, "image `ILSVRC2012_val_00000003`: 4 fields where groups of 5 (synset xmin ymin xmax ymax) were expected".to_string()),
            ]
        );
    }

    #[test]
    fn label_lines() {
        let parsed = parse_labels_csv(
            "image,label\ncats/a.jpg,285\nb.png, n02123045 \n../x.jpg,1\nnolabel\n",
        );
        // A first line that is data, not the header, is kept.
        assert_eq!(
            parse_labels_csv("images/a.jpg,3\n")[0]
                .1
                .as_ref()
                .unwrap()
                .1,
            "3"
        );
        assert_eq!(
            parsed[0].1.as_ref().unwrap(),
            &("cats/a.jpg".to_string(), "285".to_string())
        );
        assert_eq!(parsed[1].1.as_ref().unwrap().1, "n02123045");
        assert_eq!(
            parsed[2].1.as_ref().unwrap_err().to_string(),
            "`../x.jpg` leaves the folder: give paths inside it"
        );
        assert_eq!(
            (parsed[3].0, parsed[3].1.as_ref().unwrap_err().to_string()),
            (5, "`nolabel` is not `image,label`".to_string())
        );
    }
}
