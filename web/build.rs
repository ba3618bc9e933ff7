//! The threaded build (`--features threads`, RUSTFLAGS `+atomics`): link the module with a
//! shared, imported memory and export its thread-local storage symbols, which wasm-bindgen's
//! thread support and `wasm-bindgen-rayon` need (Debian's rustc 1.96 does not add them itself).
//! Up to 4 GiB of memory: rustc's default maximum for shared memory is 1 GiB.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let threads = std::env::var_os("CARGO_FEATURE_THREADS").is_some();
    let wasm = std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32");
    if threads && wasm {
        for arg in [
            "--shared-memory",
            "--import-memory",
            "--max-memory=4294967296",
            "--export=__wasm_init_tls",
            "--export=__tls_size",
            "--export=__tls_align",
            "--export=__tls_base",
        ] {
            println!("cargo:rustc-link-arg-cdylib={arg}");
        }
    }
}
