//! What the binary carries so that it works offline out of the box.

/// ImageNet-1k EfficientNet-Lite0 (see `models/README.md`).
pub const DEFAULT_MODEL: &[u8] = include_bytes!("../../../models/efficientnet-lite0.onnx");
/// Name shown for the embedded model.
pub const DEFAULT_MODEL_NAME: &str = "efficientnet-lite0.onnx";
/// The bundled demo photo (Chelsea the cat, CC0).
pub const DEFAULT_IMAGE: &[u8] = include_bytes!("../../../assets/images/chelsea.png");
/// Name shown for the demo photo.
pub const DEFAULT_IMAGE_NAME: &str = "chelsea.png";
