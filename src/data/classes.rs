//! Class maps: which model outputs an annotation's class name stands for.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// The labels of a segmenter's 21 outputs trained on PASCAL VOC (torchvision's): the
/// background, then [`VOC_CLASSES`].
pub fn voc_segmentation_labels() -> Vec<String> {
    std::iter::once("background")
        .chain(VOC_CLASSES)
        .map(String::from)
        .collect()
}

/// The labels of an 80-class detector trained on COCO (ultralytics', yolov5's).
pub fn coco_detection_labels() -> Vec<String> {
    COCO_CLASSES.map(String::from).to_vec()
}

/// The 1000 ImageNet-1k class labels, in torchvision's order.
pub fn imagenet_labels() -> Vec<String> {
    crate::labels::parse_labels(include_str!("../../models/imagenet_labels.txt"))
}

/// COCO's 80 detection classes in the order ultralytics and yolov5 models predict them.
pub const COCO_CLASSES: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

/// PASCAL VOC's 20 classes in the standard (TorchRay) order.
pub const VOC_CLASSES: [&str; 20] = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

/// ImageNet-1k synsets (WordNet ids) in class-index order.
const IMAGENET_SYNSETS: &str = include_str!("../../models/imagenet_synsets.txt");

/// VOC classes and the ImageNet-1k classes that depict them. `person` has no ImageNet class.
const VOC_TO_IMAGENET: [(&str, &[usize]); 19] = [
    ("aeroplane", &[404, 895]),
    ("bicycle", &[444, 671]),
    (
        "bird",
        &[
            7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 80, 81, 82, 83,
            84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 127, 128, 129,
            130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143, 144, 145, 146,
        ],
    ),
    (
        "boat",
        &[
            472, 484, 510, 554, 576, 625, 628, 724, 780, 814, 833, 871, 914,
        ],
    ),
    ("bottle", &[440, 720, 737, 898, 907]),
    ("bus", &[654, 779, 874]),
    (
        "car",
        &[407, 436, 468, 511, 609, 627, 656, 661, 717, 751, 817],
    ),
    ("cat", &[281, 282, 283, 284, 285]),
    ("chair", &[423, 559, 765]),
    ("cow", &[345, 346, 347]),
    ("diningtable", &[532]),
    (
        "dog",
        &[
            151, 152, 153, 154, 155, 156, 157, 158, 159, 160, 161, 162, 163, 164, 165, 166, 167,
            168, 169, 170, 171, 172, 173, 174, 175, 176, 177, 178, 179, 180, 181, 182, 183, 184,
            185, 186, 187, 188, 189, 190, 191, 192, 193, 194, 195, 196, 197, 198, 199, 200, 201,
            202, 203, 204, 205, 206, 207, 208, 209, 210, 211, 212, 213, 214, 215, 216, 217, 218,
            219, 220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 235,
            236, 237, 238, 239, 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252,
            253, 254, 255, 256, 257, 258, 259, 260, 261, 262, 263, 264, 265, 266, 267, 268,
        ],
    ),
    ("horse", &[339, 603]),
    ("motorbike", &[665, 670]),
    ("pottedplant", &[738]),
    ("sheep", &[348, 349]),
    ("sofa", &[831]),
    ("train", &[466, 547, 565, 820]),
    ("tvmonitor", &[664, 782, 851]),
];

/// COCO's category names that differ from VOC's for the same class.
const COCO_NAMES_OF_VOC: [(&str, &str); 6] = [
    ("aeroplane", "airplane"),
    ("diningtable", "dining table"),
    ("motorbike", "motorcycle"),
    ("pottedplant", "potted plant"),
    ("sofa", "couch"),
    ("tvmonitor", "tv"),
];

/// COCO categories beyond VOC's with ImageNet-1k classes that depict them.
const COCO_TO_IMAGENET: [(&str, &[usize]); 26] = [
    ("zebra", &[340]),
    ("elephant", &[101, 385, 386]),
    ("bear", &[294, 295, 296, 297]),
    ("banana", &[954]),
    ("orange", &[950]),
    ("broccoli", &[937]),
    ("pizza", &[963]),
    ("umbrella", &[879]),
    ("laptop", &[620]),
    ("keyboard", &[508]),
    ("mouse", &[673]),
    ("toaster", &[859]),
    ("refrigerator", &[760]),
    ("microwave", &[651]),
    ("clock", &[409, 530, 892]),
    ("vase", &[883]),
    ("teddy bear", &[850]),
    ("hair drier", &[589]),
    ("backpack", &[414]),
    ("traffic light", &[920]),
    ("cell phone", &[487]),
    ("sports ball", &[430, 522, 574, 722, 768, 805, 852, 890]),
    ("truck", &[569, 717, 864, 867]),
    ("skis", &[795]),
    ("cup", &[504, 968]),
    ("bowl", &[659, 809]),
];

/// Annotation class name to model output indices. When a name maps to several outputs, the
/// explained target is the highest-scoring of them on the image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassMap(pub BTreeMap<String, Vec<usize>>);

impl ClassMap {
    /// A built-in map by name (`voc20`, `imagenet`, `voc-to-imagenet`), or `None`.
    pub fn builtin(name: &str) -> Option<Self> {
        let map = match name {
            "voc20" => VOC_CLASSES
                .iter()
                .enumerate()
                .map(|(i, c)| (c.to_string(), vec![i]))
                .collect(),
            "imagenet" => IMAGENET_SYNSETS
                .split_whitespace()
                .enumerate()
                .map(|(i, s)| (s.to_string(), vec![i]))
                .collect(),
            "voc-to-imagenet" => VOC_TO_IMAGENET
                .iter()
                .map(|(c, ix)| (c.to_string(), ix.to_vec()))
                .collect(),
            // VOC's classes under COCO's names, and more of COCO's categories.
            "coco-to-imagenet" => VOC_TO_IMAGENET
                .iter()
                .map(|&(c, ix)| {
                    let coco = COCO_NAMES_OF_VOC
                        .iter()
                        .find(|(voc, _)| *voc == c)
                        .map_or(c, |(_, coco)| coco);
                    (coco.to_string(), ix.to_vec())
                })
                .chain(
                    COCO_TO_IMAGENET
                        .iter()
                        .map(|(c, ix)| (c.to_string(), ix.to_vec())),
                )
                .collect(),
            _ => return None,
        };
        Some(Self(map))
    }

    /// Parses a user map: one `name index[,index...]` per line; `#` starts a comment.
    pub fn parse(text: &str) -> Result<Self> {
        let mut map = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let bad = || {
                Error::Data(format!(
                    "class map line {}: `{line}` is not `name index[,index...]`",
                    n + 1
                ))
            };
            let (name, list) = line.rsplit_once(char::is_whitespace).ok_or_else(bad)?;
            let indices = list
                .split(',')
                .map(|v| v.trim().parse::<usize>())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|_| bad())?;
            map.insert(name.trim().to_string(), indices);
        }
        if map.is_empty() {
            return Err(Error::Data("the class map is empty".into()));
        }
        Ok(Self(map))
    }

    /// Model outputs for an annotation name.
    pub fn lookup(&self, name: &str) -> Option<&[usize]> {
        self.0.get(name).map(Vec::as_slice)
    }

    /// Checks every index against the model's class count.
    pub fn check(&self, classes: usize) -> Result<()> {
        match self
            .0
            .iter()
            .find(|(_, ix)| ix.iter().any(|&i| i >= classes))
        {
            Some((name, _)) => Err(Error::Data(format!(
                "class map entry `{name}` names an output beyond the model's {classes} classes"
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_and_files() {
        let voc = ClassMap::builtin("voc20").unwrap();
        assert_eq!(voc.lookup("cat"), Some(&[7][..]));
        assert_eq!(voc.lookup("tvmonitor"), Some(&[19][..]));
        let inet = ClassMap::builtin("imagenet").unwrap();
        assert_eq!(inet.0.len(), 1000);
        assert_eq!(inet.lookup("n02123045"), Some(&[281][..]), "tabby");
        let v2i = ClassMap::builtin("voc-to-imagenet").unwrap();
        assert_eq!(v2i.lookup("cat"), Some(&[281, 282, 283, 284, 285][..]));
        assert_eq!(v2i.lookup("person"), None);
        assert!(v2i.check(1000).is_ok());
        let user = ClassMap::parse("# mine\ncat 281,285\nespresso cup 967\n").unwrap();
        assert_eq!(user.lookup("espresso cup"), Some(&[967][..]));
        assert!(user.check(900).is_err());
        assert!(ClassMap::parse("cat x").is_err());
        assert!(ClassMap::builtin("coco").is_none());
    }
}
