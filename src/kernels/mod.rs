//! The CPU kernel library: convolution (im2col + `gemm`, Winograd F(4×4, 3×3)), depthwise
//! convolution and max pooling over phase planes, and the input gradients of convolution and
//! pooling for the host reverse pass. Plain slices in, plain vectors out: nothing here knows
//! Burn or ONNX (the interpreter in [`onnx`](crate::onnx) calls it on the CPU backend's
//! buffers). Every entry point checks its buffers against its [`ConvShape`](shape::ConvShape)
//! with `assert!` before touching them, so no slice from safe code can make a kernel read out
//! of bounds. Each runs with the widest instruction set the CPU has ([`isa`]).
//!
//! The module is crate-private; the `bench-kernels` feature makes it public for
//! `benches/kernels.rs` (`cargo bench --features bench-kernels --bench kernels`).

pub mod activation;
pub mod attention;
pub mod bottleneck;
pub mod channel_blocks;
pub mod conv;
pub mod conv_grad;
pub mod epilogue;
pub mod grad_window;
pub mod isa;
pub mod lanes;
pub mod layer_norm;
pub mod map_scale;
pub mod matmul;
pub mod par;
pub mod place;
pub mod pool;
#[cfg(test)]
mod refusals;
pub mod shape;
#[cfg(any(test, feature = "bench-kernels"))]
pub mod testing;
pub mod transcendental;
pub mod uninit;
pub mod window;
pub mod winograd;
pub mod work;
