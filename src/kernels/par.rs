//! Where the CPU kernels run in parallel: on Burn's rayon pool natively (the same threads as
//! Burn's own CPU ops) and in the browser's threaded build (`+atomics`: rayon on Web Workers,
//! see `web/`), on the calling thread in the single-threaded browser build.

#[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
mod pool {
    use rayon::prelude::*;

    /// Threads the kernels can use.
    pub fn threads() -> usize {
        rayon::current_num_threads()
    }

    /// `f(i, chunk i)` over `data` in chunks of `size`, in parallel.
    pub fn par_chunks<T: Send>(data: &mut [T], size: usize, f: impl Fn(usize, &mut [T]) + Sync) {
        data.par_chunks_mut(size)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }

    /// `f(i)` for `i` in `0..n`, in parallel.
    pub fn for_each_index(n: usize, f: impl Fn(usize) + Sync + Send) {
        (0..n).into_par_iter().for_each(f);
    }

    /// How one matrix product may use the threads.
    pub fn gemm_parallelism() -> gemm::Parallelism {
        gemm::Parallelism::Rayon(0)
    }
}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
mod pool {
    /// Threads the kernels can use.
    pub fn threads() -> usize {
        1
    }

    /// `f(i, chunk i)` over `data` in chunks of `size`.
    pub fn par_chunks<T>(data: &mut [T], size: usize, f: impl Fn(usize, &mut [T])) {
        for (i, c) in data.chunks_mut(size).enumerate() {
            f(i, c);
        }
    }

    /// `f(i)` for `i` in `0..n`.
    pub fn for_each_index(n: usize, f: impl Fn(usize)) {
        (0..n).for_each(f);
    }

    /// How one matrix product may use the threads.
    pub fn gemm_parallelism() -> gemm::Parallelism {
        gemm::Parallelism::None
    }
}

pub use pool::*;
