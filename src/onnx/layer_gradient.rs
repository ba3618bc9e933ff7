//! A layer's gradient as the host reverse pass hands it out: whole, zero outside a box of its
//! plane (a detection's score reaches a detector's feature maps only through its receptive
//! field), or zero. A method that needs only its channel means (Grad-CAM) reads them off the
//! box; the others take it whole.

use std::ops::Range;

use burn::tensor::Tensor;

/// The gradient of an objective with respect to a layer's `[N, C, h, w]` activations.
#[derive(Clone)]
pub enum LayerGradient {
    /// Every value.
    Whole(Tensor<4>),
    /// Zero but for `part` (`[N, C, rows, cols]`) at `rows` x `cols` of a tensor of `dims`.
    Boxed {
        /// The values in the box.
        part: Tensor<4>,
        /// The box's rows of the plane.
        rows: Range<usize>,
        /// The box's columns of the plane.
        cols: Range<usize>,
        /// The whole tensor's shape.
        dims: [usize; 4],
    },
    /// Zero everywhere (no gradient reaches the layer: a detection on another scale).
    Zero {
        /// The whole tensor's shape, on the device of `like`.
        like: Tensor<4>,
    },
}

impl LayerGradient {
    /// Zero with the shape and device of `activations`.
    pub fn zero(activations: &Tensor<4>) -> Self {
        LayerGradient::Zero {
            like: activations.clone(),
        }
    }

    /// The whole gradient.
    pub fn whole(&self) -> Tensor<4> {
        match self {
            LayerGradient::Whole(g) => g.clone(),
            LayerGradient::Boxed {
                part,
                rows,
                cols,
                dims,
            } => Tensor::zeros(*dims, &part.device()).slice_assign(
                [0..dims[0], 0..dims[1], rows.clone(), cols.clone()],
                part.clone(),
            ),
            LayerGradient::Zero { like } => like.zeros_like(),
        }
    }

    /// The mean of each channel over the plane, `[N, C, 1, 1]`: from the box alone where the
    /// gradient is boxed.
    pub fn channel_means(&self) -> Tensor<4> {
        match self {
            LayerGradient::Whole(g) => g.clone().mean_dim(3).mean_dim(2),
            LayerGradient::Boxed { part, dims, .. } => part
                .clone()
                .sum_dim(3)
                .sum_dim(2)
                .div_scalar((dims[2] * dims[3]) as f32),
            LayerGradient::Zero { like } => {
                let [n, c, _, _] = like.dims();
                Tensor::zeros([n, c, 1, 1], &like.device())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};

    use super::*;
    use crate::onnx::host_values;

    #[test]
    fn a_box_is_whole_as_zeros_around_it_and_its_means_are_the_whole_ones() {
        let device = Device::flex();
        // Two channels of a 3 x 4 plane, the box rows 1..3 and columns 2..4.
        let part = Tensor::<4>::from_data(
            TensorData::new(
                vec![1.0f32, 2.0, 3.0, 4.0, -1.0, 0.5, 0.25, 8.0],
                [1, 2, 2, 2],
            ),
            &device,
        );
        let boxed = LayerGradient::Boxed {
            part,
            rows: 1..3,
            cols: 2..4,
            dims: [1, 2, 3, 4],
        };
        let whole = host_values(boxed.whole()).unwrap();
        #[rustfmt::skip]
        let want = vec![
            0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 1.0, 2.0,
            0.0, 0.0, 3.0, 4.0,
            0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, -1.0, 0.5,
            0.0, 0.0, 0.25, 8.0,
        ];
        assert_eq!(whole, want);
        let means = host_values(boxed.channel_means()).unwrap();
        assert_eq!(means, vec![10.0 / 12.0, 7.75 / 12.0]);
        let dense = LayerGradient::Whole(boxed.whole());
        assert_eq!(host_values(dense.channel_means()).unwrap(), means);
        let zero = LayerGradient::zero(&boxed.whole());
        assert_eq!(host_values(zero.channel_means()).unwrap(), vec![0.0, 0.0]);
        assert_eq!(host_values(zero.whole()).unwrap(), vec![0.0; 24]);
    }
}
