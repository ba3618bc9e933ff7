//! The shape of a convolution or pooling window, and the checks every kernel entry point makes
//! on its buffers before it touches them.

/// Shape and options of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Input channels.
    pub cin: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Output channels.
    pub cout: usize,
    /// Groups.
    pub groups: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Strides (height, width).
    pub stride: [usize; 2],
    /// Dilations (height, width).
    pub dilation: [usize; 2],
    /// (begin, end) padding per spatial axis.
    pub pad: [(usize, usize); 2],
}

impl ConvShape {
    /// The shape of a pooling window over `channels` planes of `input` (no weights).
    pub fn pooling(
        channels: usize,
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
        pad: [(usize, usize); 2],
    ) -> Self {
        Self {
            cin: channels,
            input,
            cout: channels,
            groups: channels,
            kernel,
            stride,
            dilation,
            pad,
        }
    }

    /// Output height and width, `None` when the kernel does not fit the padded input (or a
    /// kernel size, stride or dilation is zero, or a size overflows).
    pub fn output(&self) -> Option<[usize; 2]> {
        let dim = |i: usize| {
            let padded = self.input[i]
                .checked_add(self.pad[i].0)?
                .checked_add(self.pad[i].1)?;
            let span = self.dilation[i]
                .checked_mul(self.kernel[i].checked_sub(1)?)?
                .checked_add(1)?;
            let stride = Some(self.stride[i]).filter(|&s| s > 0)?;
            padded.checked_sub(span).map(|d| d / stride + 1)
        };
        Some([dim(0)?, dim(1)?])
    }

    /// The input rows (`axis` 0) or columns (1) one window spans: `(k - 1) · dilation + 1`
    /// (0 for an empty kernel).
    pub fn span(&self, axis: usize) -> usize {
        self.kernel[axis]
            .saturating_sub(1)
            .saturating_mul(self.dilation[axis])
            + usize::from(self.kernel[axis] > 0)
    }

    /// A 1×1 kernel at stride 1 without padding: the input is already the im2col matrix.
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.pad == [(0, 0); 2]
    }

    /// One input and one output channel per group (depthwise convolution).
    pub fn is_depthwise(&self) -> bool {
        self.groups == self.cin && self.groups == self.cout && self.groups > 1
    }

    /// Output height and width of a shape the kernels can run: groups that divide both
    /// channel counts, positive kernel, strides and dilations, and a kernel that fits the
    /// padded input. Panics otherwise: every kernel entry point calls it before touching a
    /// buffer.
    pub fn checked_output(&self) -> [usize; 2] {
        assert!(
            self.groups > 0
                && self.cin.is_multiple_of(self.groups)
                && self.cout.is_multiple_of(self.groups),
            "{} groups do not divide {} input and {} output channels",
            self.groups,
            self.cin,
            self.cout
        );
        let positive = |v: [usize; 2]| v.iter().all(|&d| d > 0);
        assert!(
            positive(self.kernel) && positive(self.stride) && positive(self.dilation),
            "kernel {:?}, strides {:?} and dilations {:?} must be positive",
            self.kernel,
            self.stride,
            self.dilation
        );
        self.output()
            .unwrap_or_else(|| panic!("the kernel does not fit the padded input: {self:?}"))
    }

    /// Values of `batch` input images.
    pub fn input_len(&self, batch: usize) -> usize {
        product(&[batch, self.cin, self.input[0], self.input[1]])
    }

    /// Values of `batch` output images.
    pub fn output_len(&self, batch: usize) -> usize {
        let [oh, ow] = self.checked_output();
        product(&[batch, self.cout, oh, ow])
    }

    /// Values of the weights, `[cout, cin / groups, kh, kw]`.
    pub fn weight_len(&self) -> usize {
        let cin_g = self.cin / self.groups.max(1);
        product(&[self.cout, cin_g, self.kernel[0], self.kernel[1]])
    }
}

/// Asserts that the buffer `what` holds exactly `want` values: the kernels take plain slices
/// from safe code, so a short one must be refused before anything reads past its end.
#[track_caller]
pub fn check_len(what: &str, have: usize, want: usize) {
    assert!(
        have == want,
        "{what} holds {have} values where the shape needs {want}"
    );
}

/// The product of `dims`; panics on overflow (no buffer can hold that many values).
pub fn product(dims: &[usize]) -> usize {
    dims.iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .unwrap_or_else(|| panic!("a buffer of {dims:?} values would overflow"))
}
