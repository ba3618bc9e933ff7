//! pytorch-grad-cam's `aug_smooth`: the request runs on six versions of the input (ttach's
//! horizontal flip, off and on, times the intensity factors 0.9, 1 and 1.1 on the normalised
//! input), and each map is scaled as pytorch-grad-cam scales its output (min-max to [0, 1] at
//! layer resolution, resized to the input bilinearly, min-max again), flipped back, and the six
//! are averaged: a map at the input's resolution.

use burn::tensor::Tensor;

use super::CamMap;
use super::scaled::{scale, scaled_to};

/// One augmentation: horizontal flip, and the factor on the normalised input.
pub type Augmentation = (bool, f32);

/// ttach's `Compose([HorizontalFlip(), Multiply([0.9, 1, 1.1])])`, in its order.
pub const AUGMENTATIONS: [Augmentation; 6] = [
    (false, 0.9),
    (false, 1.0),
    (false, 1.1),
    (true, 0.9),
    (true, 1.0),
    (true, 1.1),
];

/// The input `[1, C, H, W]` under `augmentation`.
pub fn augment(x: &Tensor<4>, (flip, factor): Augmentation) -> Tensor<4> {
    let x = if flip { x.clone().flip([3]) } else { x.clone() };
    x.mul_scalar(factor)
}

/// One map of an augmented input, as it enters the average: scaled the way pytorch-grad-cam
/// returns maps (min-max, resized to `height` x `width`, min-max again), flipped back.
pub fn deaugment(map: &CamMap, (flip, _): Augmentation, [height, width]: [usize; 2]) -> CamMap {
    let mut out = scaled_to(map, [height, width]);
    out.values = scale(&out.values);
    if flip {
        for row in out.values.chunks_exact_mut(width) {
            row.reverse();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flipped_map_is_scaled_resized_and_flipped_back() {
        let map = CamMap {
            height: 1,
            width: 2,
            values: vec![3.0, 1.0],
        };
        let out = deaugment(&map, (true, 1.1), [1, 2]);
        assert_eq!(out.values.len(), 2);
        assert!(
            (out.values[0] - 0.0).abs() < 1e-6 && (out.values[1] - 1.0).abs() < 1e-6,
            "{out:?}"
        );
        let both = crate::cam::scaled::mean(&[out.clone(), deaugment(&map, (false, 1.0), [1, 2])]);
        assert!((both.values[0] - 0.5).abs() < 1e-6, "{both:?}");
    }
}
