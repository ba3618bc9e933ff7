//! Where the CPU kernels run in parallel: on Burn's rayon pool natively (the same threads as
//! Burn's own CPU ops) and in the browser's threaded build (`+atomics`: rayon on Web Workers,
//! see `web/`), on the calling thread in the single-threaded browser build.

#[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
mod pool {
    use std::cell::Cell;

    use rayon::prelude::*;

    thread_local! {
        /// Whether the kernels called on this thread run on it alone ([`each_on_one_thread`]).
        static ALONE: Cell<bool> = const { Cell::new(false) };
    }

    /// Whether the kernels called on this thread run on it alone.
    fn alone() -> bool {
        ALONE.with(Cell::get)
    }

    /// Threads the kernels can use (1 inside [`each_on_one_thread`]).
    pub fn threads() -> usize {
        match alone() {
            true => 1,
            false => rayon::current_num_threads(),
        }
    }

    /// `f(i, chunk i)` over `data` in chunks of `size`, in parallel.
    pub fn par_chunks<T: Send>(data: &mut [T], size: usize, f: impl Fn(usize, &mut [T]) + Sync) {
        if alone() {
            data.chunks_mut(size).enumerate().for_each(|(i, c)| f(i, c));
            return;
        }
        data.par_chunks_mut(size)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }

    /// `f(i)` for `i` in `0..n`, in parallel.
    pub fn for_each_index(n: usize, f: impl Fn(usize) + Sync + Send) {
        if alone() {
            (0..n).for_each(f);
            return;
        }
        (0..n).into_par_iter().for_each(f);
    }

    /// How one matrix product may use the threads.
    pub fn gemm_parallelism() -> gemm::Parallelism {
        match alone() {
            true => gemm::Parallelism::None,
            false => gemm::Parallelism::Rayon(0),
        }
    }

    /// `f` of each of `items`, in parallel, each call's kernels on its own thread alone: for
    /// pieces of work too small to split well (one detection's reverse pass through boxes of
    /// a few hundred pixels runs 1.2-1.8x faster on one thread than split over two).
    pub fn each_on_one_thread<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
        items
            .par_iter()
            .map(|item| {
                let _alone = Alone::start();
                f(item)
            })
            .collect()
    }

    /// This thread's kernels alone while it lives; then as before (a task rayon runs while
    /// this one waits restores the flag it found).
    struct Alone(bool);

    impl Alone {
        fn start() -> Self {
            Alone(ALONE.with(|a| a.replace(true)))
        }
    }

    impl Drop for Alone {
        fn drop(&mut self) {
            ALONE.with(|a| a.set(self.0));
        }
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

    /// `f` of each of `items`, one after the other.
    pub fn each_on_one_thread<T, R>(items: &[T], f: impl Fn(&T) -> R) -> Vec<R> {
        items.iter().map(f).collect()
    }
}

pub use pool::*;
