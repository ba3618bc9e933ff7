//! Where the CPU kernels run in parallel: on Burn's rayon pool natively (the same threads as
//! Burn's own CPU ops), on the calling thread in a browser build.

/// Threads the kernels can use.
#[cfg(not(target_arch = "wasm32"))]
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// Threads the kernels can use.
#[cfg(target_arch = "wasm32")]
pub fn threads() -> usize {
    1
}

/// `f(i, chunk i)` over `data` in chunks of `size`, in parallel where threads exist.
#[cfg(not(target_arch = "wasm32"))]
pub fn par_chunks(data: &mut [f32], size: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    use rayon::prelude::*;
    data.par_chunks_mut(size)
        .enumerate()
        .for_each(|(i, c)| f(i, c));
}

/// `f(i, chunk i)` over `data` in chunks of `size`.
#[cfg(target_arch = "wasm32")]
pub fn par_chunks(data: &mut [f32], size: usize, f: impl Fn(usize, &mut [f32])) {
    for (i, c) in data.chunks_mut(size).enumerate() {
        f(i, c);
    }
}

/// `f(i)` for `i` in `0..n`, in parallel where threads exist.
#[cfg(not(target_arch = "wasm32"))]
pub fn for_each_index(n: usize, f: impl Fn(usize) + Sync + Send) {
    use rayon::prelude::*;
    (0..n).into_par_iter().for_each(f);
}

/// `f(i)` for `i` in `0..n`.
#[cfg(target_arch = "wasm32")]
pub fn for_each_index(n: usize, f: impl Fn(usize)) {
    (0..n).for_each(f);
}

/// How one matrix product may use the threads.
#[cfg(not(target_arch = "wasm32"))]
pub fn gemm_parallelism() -> gemm::Parallelism {
    gemm::Parallelism::Rayon(0)
}

/// How one matrix product may use the threads.
#[cfg(target_arch = "wasm32")]
pub fn gemm_parallelism() -> gemm::Parallelism {
    gemm::Parallelism::None
}
