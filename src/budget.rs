//! Resource limits, checked before anything is allocated: a crafted file a few hundred bytes
//! long must not be able to ask for gigabytes. The defaults are far above what real CNNs need;
//! each refusal names the tensor, its shape and the switch that raises the limit.

use std::cell::Cell;
use std::sync::OnceLock;

/// Values one tensor may hold per batch item, unless `IGCAM_MAX_TENSOR_ELEMENTS` says otherwise
/// (64 Mi values, 256 MiB of floats: ResNet-50's largest activation at 224² is 0.8 Mi).
pub const DEFAULT_MAX_TENSOR_ELEMENTS: usize = 64 << 20;

/// Pixels an image may have, decoded or resized (`--max-pixels`): 64 MP.
pub const DEFAULT_MAX_PIXELS: u64 = 64 << 20;

/// Largest class count accepted from a model's output.
pub const MAX_CLASSES: usize = 1_000_000;

/// Multiply-adds one convolution or pooling may take per image: 10¹¹, fifty times VGG-16's
/// largest layer (1.85·10⁹). A crafted kernel could otherwise ask for hours of CPU time.
pub const MAX_OP_WORK: u64 = 100_000_000_000;

/// The environment variable that overrides [`DEFAULT_MAX_TENSOR_ELEMENTS`].
pub const TENSOR_ELEMENTS_VAR: &str = "IGCAM_MAX_TENSOR_ELEMENTS";

/// The per-tensor limit: `IGCAM_MAX_TENSOR_ELEMENTS` when it holds a positive integer, else the
/// default. Read once.
pub fn max_tensor_elements() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var(TENSOR_ELEMENTS_VAR)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&v| v > 0)
            .unwrap_or(DEFAULT_MAX_TENSOR_ELEMENTS)
    })
}

/// The number of values in `shape`, or `None` when it overflows `usize`.
pub fn elements(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

thread_local! {
    /// The number of images the graph run on this thread is computing (see [`with_batch`]).
    static BATCH: Cell<usize> = const { Cell::new(1) };
}

/// Runs `f` with `batch` as the number of images behind every tensor it checks. The allowance
/// scales with the images of the run, never with a tensor's own first dim: a crafted
/// `[100000, 1, 1, 1]` initialiser broadcast against one image must not raise its own limit.
/// Nested calls restore the outer batch on return, even by unwinding.
pub fn with_batch<R>(batch: usize, f: impl FnOnce() -> R) -> R {
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            BATCH.with(|b| b.set(self.0));
        }
    }
    let _restore = Restore(BATCH.with(|b| b.replace(batch.max(1))));
    f()
}

/// The batch set by the innermost [`with_batch`] on this thread; 1 outside any.
pub fn batch() -> usize {
    BATCH.with(Cell::get)
}

/// A resource limit a tensor, a graph run or an op would pass; its text names the size, the
/// limit and the switch that raises it (callers add the tensor or node name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exceeded {
    /// One tensor of `shape` would hold `values` (`None`: more than `usize` counts).
    Tensor {
        /// The tensor's shape.
        shape: Vec<usize>,
        /// Its number of values.
        values: Option<usize>,
        /// The per-image limit.
        limit: usize,
    },
    /// The tensors alive at once would hold `values`.
    Live {
        /// Values alive at once.
        values: usize,
        /// The per-image limit.
        limit: usize,
    },
    /// One op's multiply-adds per image.
    Work {
        /// Outputs per image.
        outputs: u128,
        /// Values each output reads.
        window: usize,
        /// Their product.
        work: u128,
    },
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exceeded::Tensor {
                shape,
                values,
                limit,
            } => write!(
                f,
                "a tensor of shape {shape:?} would hold {} values, over the limit of {limit} per image; no real CNN needs that — if this model does, raise {TENSOR_ELEMENTS_VAR}",
                values.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string()),
            ),
            Exceeded::Live { values, limit } => write!(
                f,
                "the tensors alive at once would hold {values} values, over the limit of {limit} per image; no real CNN needs that — if this model does, raise {TENSOR_ELEMENTS_VAR}"
            ),
            Exceeded::Work {
                outputs,
                window,
                work,
            } => write!(
                f,
                "{outputs} outputs each reading a window of {window} values is {work} multiply-adds per image, over the limit of {MAX_OP_WORK}; no real CNN needs that"
            ),
        }
    }
}

impl std::error::Error for Exceeded {}

/// Checks that a tensor of `shape` fits the per-tensor limit times the run's [`batch`].
pub fn check_shape(shape: &[usize]) -> Result<(), Exceeded> {
    let limit = max_tensor_elements();
    let allowed = limit.saturating_mul(batch());
    match elements(shape) {
        Some(n) if n <= allowed => Ok(()),
        values => Err(Exceeded::Tensor {
            shape: shape.to_vec(),
            values,
            limit,
        }),
    }
}

/// How many tensors of the per-tensor limit may be alive at once, per image: the values a
/// graph run holds together (outputs not yet read by their last reader) stay within this many
/// times [`max_tensor_elements`] (1 GiB of floats by default; real CNNs hold a few percent).
pub const LIVE_TENSORS: usize = 4;

/// Values one chunk of path points may hold when the batch is chosen by default (256 Mi, 1 GiB
/// of floats): four copies (activations, gradients, temporaries) of the model's largest
/// tensor, or half of every node's output (what the pixel-IG backward keeps). ResNet-50 at
/// 224² (largest tensor 0.8 Mi, 26 Mi in all per image) keeps its 10 points per chunk.
pub const MAX_CHUNK_ACTIVATIONS: usize = 256 << 20;

/// Bytes of layer gradients held at once while CAM maps are made: the objectives (targets) of
/// a request go through the reverse pass in groups whose gradients at every explained layer
/// fit (at least one), so that a detector's hundreds of detections stay bounded.
pub const GRADIENT_GROUP_BYTES: usize = 256 << 20;

/// Objectives per group of [`GRADIENT_GROUP_BYTES`] when each holds `per_objective` bytes.
pub fn gradient_group(per_objective: usize) -> usize {
    (GRADIENT_GROUP_BYTES / per_objective.max(1)).max(1)
}

/// Checks that `values` held at once by a graph run fit [`LIVE_TENSORS`] times the per-tensor
/// limit, times the run's [`batch`]. A model that keeps many large tensors alive (each within
/// the per-tensor limit) would otherwise grow without bound.
pub fn check_live(values: usize) -> Result<(), Exceeded> {
    let limit = max_tensor_elements().saturating_mul(LIVE_TENSORS);
    if values <= limit.saturating_mul(batch()) {
        return Ok(());
    }
    Err(Exceeded::Live { values, limit })
}

/// Checks that `outputs` values in all (over the run's [`batch`] of images), each reading a
/// window of `window` values, stay within [`MAX_OP_WORK`] per image.
pub fn check_work(outputs: usize, window: usize) -> Result<(), Exceeded> {
    let per_image = (outputs / batch()) as u128;
    let work = per_image * (window as u128);
    if work <= u128::from(MAX_OP_WORK) {
        return Ok(());
    }
    Err(Exceeded::Work {
        outputs: per_image,
        window,
        work,
    })
}

/// What the chunk size of a model's path depends on.
#[derive(Clone, Copy, Debug)]
pub struct ModelSizes {
    /// The input's height and width.
    pub input: [usize; 2],
    /// Values in the largest node output, for one image.
    pub largest: usize,
    /// Values in every node output together, for one image.
    pub all: usize,
}

/// The default chunk size: 10 path points at 224×224, scaled by the input area, in `1..=64`.
pub fn default_chunk(input: [usize; 2]) -> usize {
    let area = (input[0] * input[1]).max(1);
    (10 * 224 * 224 / area).clamp(1, 64)
}

/// The default chunk size for a model: [`default_chunk`], lowered so that a chunk stays within
/// [`MAX_CHUNK_ACTIVATIONS`]. Real CNNs at 224² keep the 10; a model built to sit at the
/// per-tensor limit gets chunks of one.
pub fn model_chunk(sizes: ModelSizes) -> usize {
    let largest = MAX_CHUNK_ACTIVATIONS / sizes.largest.saturating_mul(4).max(1);
    let all = MAX_CHUNK_ACTIVATIONS.saturating_mul(2) / sizes.all.max(1);
    default_chunk(sizes.input).min(largest).min(all).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_over_the_limit_are_refused_with_their_size() {
        assert_eq!(elements(&[1, 3, 224, 224]), Some(150_528));
        assert_eq!(elements(&[1 << 40, 1 << 40]), None);
        assert!(check_shape(&[1, 3, 224, 224]).is_ok());
        // A run of 10 images may hold ten times one image's limit; the batch is restored after.
        let big = [10, 64, 1024, 1024];
        assert!(with_batch(10, || check_shape(&big)).is_ok());
        assert_eq!(batch(), 1);
        let e = check_shape(&big).unwrap_err().to_string();
        assert!(
            e.starts_with("a tensor of shape [10, 64, 1024, 1024] would hold 671088640 values, over the limit of 67108864 per image"),
            "{e}"
        );
        assert!(e.ends_with("raise IGCAM_MAX_TENSOR_ELEMENTS"), "{e}");
        let e = check_shape(&[1, 3, 1 << 40, 1 << 40])
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than 2^64 values"), "{e}");
        // A tensor's own first dim does not raise its allowance.
        let e = check_shape(&[100_000, 3, 224, 224])
            .unwrap_err()
            .to_string();
        assert!(e.contains("would hold 15052800000 values"), "{e}");
        // VGG-16's largest layer passes; a 1000x1000 window over 64x224x224 does not.
        assert!(check_work(64 * 224 * 224, 3 * 3 * 64).is_ok());
        let e = check_work(64 * 224 * 224, 1000 * 1000)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("3211264 outputs each reading a window of 1000000 values is 3211264000000 multiply-adds per image, over the limit of 100000000000"), "{e}");
        // The work is counted per image of the run.
        assert!(with_batch(16, || check_work(16 * 64 * 224 * 224, 3 * 3 * 64)).is_ok());
        assert!(check_work(16 * 64 * 224 * 224, 2000).is_err());
    }
}
