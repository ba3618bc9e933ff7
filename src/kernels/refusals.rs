//! Every kernel entry point refuses a buffer that does not fit its shape, with a panic that
//! names the buffer, before anything reads it: a short slice from safe code never reaches the
//! raw `gemm` calls or the unchecked writes behind them.

use std::mem::MaybeUninit;

use super::activation::Activation;
use super::conv::conv2d;
use super::conv_grad::{Gate, avg_pool2d_grad, conv2d_input_grad, max_pool2d_grad};
use super::epilogue::Epilogue;
use super::matmul::matmul;
use super::pool::max_pool2d;
use super::shape::ConvShape;
use super::window::{Window, window};
use super::winograd;

/// A 3×3 convolution, 4 → 6 channels on 5×5, padded: output 6×5×5.
fn shape() -> ConvShape {
    ConvShape {
        cin: 4,
        input: [5, 5],
        cout: 6,
        groups: 1,
        kernel: [3, 3],
        stride: [1, 1],
        dilation: [1, 1],
        pad: [(1, 1); 2],
    }
}

/// The same, as a depthwise convolution (6 channels).
fn depthwise() -> ConvShape {
    ConvShape {
        cin: 6,
        groups: 6,
        ..shape()
    }
}

fn pooling() -> ConvShape {
    ConvShape::pooling(3, [6, 6], [2, 2], [2, 2], [1, 1], [(0, 0); 2])
}

#[test]
#[should_panic(expected = "the input holds 99 values where the shape needs 200")]
fn conv2d_refuses_a_short_input() {
    conv2d(&[0.0; 99], 2, &shape(), &[0.0; 216], &Epilogue::default());
}

#[test]
#[should_panic(expected = "the weights holds 215 values where the shape needs 216")]
fn conv2d_refuses_short_weights() {
    conv2d(&[0.0; 200], 2, &shape(), &[0.0; 215], &Epilogue::default());
}

#[test]
#[should_panic(expected = "the residual holds 10 values where the shape needs 300")]
fn conv2d_refuses_a_short_residual() {
    let residual = [0.0; 10];
    let epilogue = Epilogue {
        residual: Some(&residual),
        ..Epilogue::default()
    };
    conv2d(&[0.0; 200], 2, &shape(), &[0.0; 216], &epilogue);
}

#[test]
#[should_panic(expected = "the bias holds 5 values where the shape needs 6")]
fn conv2d_refuses_a_short_bias() {
    let bias = [0.0; 5];
    let epilogue = Epilogue {
        bias: Some(&bias),
        ..Epilogue::default()
    };
    conv2d(&[0.0; 200], 2, &shape(), &[0.0; 216], &epilogue);
}

#[test]
#[should_panic(expected = "groups do not divide")]
fn conv2d_refuses_groups_that_do_not_divide() {
    let s = ConvShape {
        groups: 3,
        ..shape()
    };
    conv2d(&[0.0; 200], 2, &s, &[0.0; 216], &Epilogue::default());
}

#[test]
#[should_panic(expected = "the kernel does not fit the padded input")]
fn conv2d_refuses_a_kernel_larger_than_the_input() {
    let s = ConvShape {
        kernel: [9, 9],
        ..shape()
    };
    conv2d(&[0.0; 200], 2, &s, &[0.0; 1944], &Epilogue::default());
}

#[test]
#[should_panic(expected = "the transformed filters holds 863 values where the shape needs 864")]
fn winograd_refuses_short_transformed_filters() {
    // The raw gemm calls read `u` as [36][cout][cin]: one value short must not get there.
    winograd::conv2d(&[0.0; 200], 2, &shape(), &[0.0; 863], &Epilogue::default());
}

#[test]
#[should_panic(expected = "the input holds 199 values where the shape needs 200")]
fn winograd_refuses_a_short_input() {
    winograd::conv2d(&[0.0; 199], 2, &shape(), &[0.0; 864], &Epilogue::default());
}

#[test]
#[should_panic(expected = "Winograd F(4x4, 3x3) computes 3x3 stride-1 undilated convolutions")]
fn winograd_refuses_other_kernels() {
    let s = ConvShape {
        stride: [2, 2],
        ..shape()
    };
    winograd::conv2d(&[0.0; 200], 2, &s, &[0.0; 864], &Epilogue::default());
}

#[test]
#[should_panic(expected = "the weights holds 35 values where the shape needs 36")]
fn winograd_filters_refuse_short_weights() {
    winograd::transform_filters(&[0.0; 35], 2, 2);
}

#[test]
#[should_panic(expected = "the output holds 149 values where the shape needs 150")]
fn window_refuses_a_short_output() {
    let none = Epilogue::default();
    window(
        &[0.0; 150],
        &depthwise(),
        Window::Max,
        &none,
        &mut [MaybeUninit::uninit(); 149],
    );
}

#[test]
#[should_panic(expected = "the weights holds 53 values where the shape needs 54")]
fn window_refuses_short_weights() {
    window(
        &[0.0; 150],
        &depthwise(),
        Window::Sum(&[0.0; 53]),
        &Epilogue::default(),
        &mut [MaybeUninit::uninit(); 150],
    );
}

#[test]
#[should_panic(expected = "a window runs every channel on its own")]
fn window_refuses_a_dense_convolution() {
    let none = Epilogue::default();
    let mut out = [MaybeUninit::uninit(); 150];
    window(&[0.0; 100], &shape(), Window::Max, &none, &mut out);
}

#[test]
#[should_panic(expected = "the residual holds 149 values where the shape needs 150")]
fn window_refuses_a_short_residual() {
    let residual = [0.0; 149];
    let epilogue = Epilogue {
        residual: Some(&residual),
        ..Epilogue::default()
    };
    let w = [0.0; 54];
    let (x, mut out) = ([0.0; 150], [MaybeUninit::uninit(); 150]);
    window(&x, &depthwise(), Window::Sum(&w), &epilogue, &mut out);
}

#[test]
#[should_panic(expected = "the input holds 107 values where the shape needs 108")]
fn max_pool_refuses_a_short_input() {
    max_pool2d(&[0.0; 107], 1, &pooling());
}

#[test]
#[should_panic(expected = "the output gradient holds 299 values where the shape needs 300")]
fn conv_gradient_refuses_a_short_gradient() {
    conv2d_input_grad(&[0.0; 299], 2, &shape(), &[0.0; 216], None);
}

#[test]
#[should_panic(expected = "the gate's output holds 1 values where the shape needs 300")]
fn conv_gradient_refuses_a_short_gate() {
    let gate = Gate {
        output: &[0.0],
        activation: Activation::Relu,
    };
    conv2d_input_grad(&[0.0; 300], 2, &shape(), &[0.0; 216], Some(gate));
}

#[test]
#[should_panic(expected = "the input holds 10 values where the shape needs 108")]
fn max_pool_gradient_refuses_a_short_input() {
    max_pool2d_grad(&[0.0; 10], &[0.0; 27], 1, &pooling(), [3, 3]);
}

#[test]
#[should_panic(expected = "the output gradient holds 26 values where the shape needs 27")]
fn avg_pool_gradient_refuses_a_short_gradient() {
    avg_pool2d_grad(&[0.0; 26], 1, &pooling(), [3, 3], false);
}

#[test]
#[should_panic(expected = "a 2x3 by 3x4 product into 8 values got 6 and 11 values")]
fn matmul_refuses_a_short_operand() {
    matmul(
        &mut [0.0; 8],
        [2, 4, 3],
        &[0.0; 6],
        false,
        &[0.0; 11],
        gemm::Parallelism::None,
    );
}

#[test]
#[should_panic(expected = "values would overflow")]
fn sizes_that_overflow_are_refused() {
    let s = ConvShape {
        cin: usize::MAX / 2,
        ..shape()
    };
    s.input_len(4);
}

#[test]
#[should_panic(expected = "a 2x3 by 3x2 product into 4 values got operands")]
fn product_refuses_an_operand_its_strides_pass() {
    use crate::kernels::matmul::{MatRef, product};
    let (a, b) = ([0.0; 6], [0.0; 6]);
    // Strides (2, 3) for a 3x2 matrix of 6 values: its last element would be at index 7.
    let rhs = MatRef {
        data: &b,
        shape: [3, 2],
        strides: [2, 3],
    };
    product(
        &mut [0.0; 4],
        MatRef::row_major(&a, [2, 3]),
        rhs,
        1.0,
        false,
        gemm::Parallelism::None,
    );
}

/// A shape the Winograd input gradient takes: 64 channels in and out, 2x2, padded by 1.
fn winograd_grad_shape() -> ConvShape {
    ConvShape {
        cin: 64,
        cout: 64,
        input: [2, 2],
        ..shape()
    }
}

#[test]
#[should_panic(expected = "the output gradient holds 255 values where the shape needs 256")]
fn winograd_input_grad_refuses_a_short_gradient() {
    let u = vec![0.0; winograd::VALUES * 64 * 64];
    winograd::input_grad(&[0.0; 255], 1, &winograd_grad_shape(), &u, None);
}

#[test]
#[should_panic(expected = "the gate's output holds 255 values where the shape needs 256")]
fn winograd_input_grad_refuses_a_short_gate() {
    let u = vec![0.0; winograd::VALUES * 64 * 64];
    let gate = Gate {
        output: &[0.0; 255],
        activation: Activation::Relu,
    };
    winograd::input_grad(&[0.0; 256], 1, &winograd_grad_shape(), &u, Some(gate));
}

#[test]
#[should_panic(expected = "not a Winograd input gradient")]
fn winograd_input_grad_refuses_other_shapes() {
    winograd::input_grad(&[0.0; 150], 1, &shape(), &[0.0; 864], None);
}

#[test]
#[should_panic(expected = "the weights holds 35 values where the shape needs 36")]
fn winograd_gradient_filters_refuse_short_weights() {
    winograd::transform_grad_filters(&[0.0; 35], 2, 2);
}
