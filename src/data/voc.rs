//! PASCAL VOC XML annotations (`Annotations/*.xml`).

use crate::error::{Error, Result};
use crate::metrics::PixelBox;

/// One annotated object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    /// Class name as written in the annotation (`cat`, `n02123045`, ...).
    pub name: String,
    /// VOC's `difficult` flag.
    pub difficult: bool,
    /// Box in source pixels, 0-based, end exclusive (VOC's 1-based inclusive corners converted).
    pub bbox: PixelBox,
}

/// One image's annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Annotation {
    /// `<filename>`.
    pub filename: String,
    /// `<size><width>`.
    pub width: usize,
    /// `<size><height>`.
    pub height: usize,
    /// The objects.
    pub objects: Vec<Object>,
}

impl Annotation {
    /// Class names present, in first-seen order, each once.
    pub fn classes(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for o in &self.objects {
            if !out.contains(&o.name.as_str()) {
                out.push(&o.name);
            }
        }
        out
    }

    /// Boxes of one class.
    pub fn boxes(&self, class: &str) -> Vec<PixelBox> {
        self.objects
            .iter()
            .filter(|o| o.name == class)
            .map(|o| o.bbox)
            .collect()
    }
}

/// Deepest element nesting accepted before the XML parser sees the text.
const MAX_DEPTH: usize = 64;

/// How deep elements nest, from the tags alone (`<a>` opens, `</a>` and `<a/>` close; `<?`,
/// `<!` open nothing): a bound cheap enough to check before parsing.
fn nesting_depth(xml: &str) -> usize {
    let bytes = xml.as_bytes();
    let (mut depth, mut deepest) = (0usize, 0usize);
    for (i, &b) in bytes.iter().enumerate() {
        match (b, bytes.get(i + 1)) {
            (b'<', Some(b'/')) | (b'/', Some(b'>')) => depth = depth.saturating_sub(1),
            (b'<', Some(c)) if c.is_ascii_alphabetic() || *c == b'_' || *c == b':' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            _ => {}
        }
    }
    deepest
}

fn child<'a>(node: roxmltree::Node<'a, 'a>, name: &str) -> Option<roxmltree::Node<'a, 'a>> {
    node.children().find(|c| c.has_tag_name(name))
}

fn text(node: roxmltree::Node, name: &str) -> Result<String> {
    child(node, name)
        .and_then(|c| c.text())
        .map(|t| t.trim().to_string())
        .ok_or_else(|| Error::Data(format!("annotation has no <{name}>")))
}

fn number(node: roxmltree::Node, name: &str) -> Result<usize> {
    let t = text(node, name)?;
    t.parse::<f64>()
        .ok()
        .filter(|v| *v >= 0.0)
        .map(|v| v.round() as usize)
        .ok_or_else(|| Error::Data(format!("annotation <{name}> is `{t}`, not a number")))
}

/// Parses one VOC XML annotation.
pub fn parse_annotation(xml: &str) -> Result<Annotation> {
    let depth = nesting_depth(xml);
    if depth > MAX_DEPTH {
        return Err(Error::Data(format!(
            "annotation nests elements {depth} deep, more than {MAX_DEPTH} (a VOC annotation is 4 deep); not a VOC annotation"
        )));
    }
    let doc = roxmltree::Document::parse(xml).map_err(|e| Error::Data(format!("bad XML: {e}")))?;
    let root = doc.root_element();
    let size = child(root, "size").ok_or_else(|| Error::Data("annotation has no <size>".into()))?;
    let mut objects = Vec::new();
    for o in root.children().filter(|c| c.has_tag_name("object")) {
        let b = child(o, "bndbox").ok_or_else(|| Error::Data("object has no <bndbox>".into()))?;
        let (xmin, ymin, xmax, ymax) = (
            number(b, "xmin")?,
            number(b, "ymin")?,
            number(b, "xmax")?,
            number(b, "ymax")?,
        );
        if xmax < xmin || ymax < ymin {
            return Err(Error::Data(format!(
                "box ({xmin},{ymin})-({xmax},{ymax}) is inverted"
            )));
        }
        objects.push(Object {
            name: text(o, "name")?,
            difficult: text(o, "difficult").is_ok_and(|d| d == "1"),
            bbox: PixelBox {
                x0: xmin.saturating_sub(1),
                y0: ymin.saturating_sub(1),
                x1: xmax,
                y1: ymax,
            },
        });
    }
    Ok(Annotation {
        filename: text(root, "filename").unwrap_or_default(),
        width: number(size, "width")?,
        height: number(size, "height")?,
        objects,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        assert_eq!(
            nesting_depth("<?xml version=\"1.0\"?><a><b/><c>t</c></a>"),
            2
        );
        let deep = "<a>".repeat(15_000) + &"</a>".repeat(15_000);
        assert_eq!(
            parse_annotation(&deep).unwrap_err().to_string(),
            "annotation nests elements 15000 deep, more than 64 (a VOC annotation is 4 deep); not a VOC annotation"
        );
    }

    #[test]
    fn reads_voc_xml() {
        let xml = "<annotation><filename>a.jpg</filename><size><width>10</width><height>8</height><depth>3</depth></size>\
            <object><name>cat</name><difficult>0</difficult><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>5</xmax><ymax>8</ymax></bndbox></object>\
            <object><name>dog</name><difficult>1</difficult><bndbox><xmin>3</xmin><ymin>3</ymin><xmax>4</xmax><ymax>4</ymax></bndbox></object>\
            <object><name>cat</name><bndbox><xmin>6</xmin><ymin>1</ymin><xmax>10</xmax><ymax>2</ymax></bndbox></object></annotation>";
        let a = parse_annotation(xml).unwrap();
        assert_eq!((a.filename.as_str(), a.width, a.height), ("a.jpg", 10, 8));
        assert_eq!(a.classes(), ["cat", "dog"]);
        assert_eq!(
            a.boxes("cat"),
            [
                PixelBox {
                    x0: 0,
                    y0: 1,
                    x1: 5,
                    y1: 8
                },
                PixelBox {
                    x0: 5,
                    y0: 0,
                    x1: 10,
                    y1: 2
                }
            ]
        );
        assert!(a.objects[1].difficult);
        assert!(parse_annotation("<annotation><size>").is_err());
        assert!(
            parse_annotation(
                "<annotation><size><width>x</width><height>1</height></size></annotation>"
            )
            .is_err()
        );
    }
}
