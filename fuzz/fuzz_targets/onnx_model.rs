//! ONNX bytes -> `OnnxModel::from_bytes` (parse, build every operator, one forward pass of a
//! blank image at the declared size) -> one explained forward to the default layer on a tiny
//! input. Any error is fine; a panic, an abort or an allocation past the budget is a finding.
#![no_main]

use burn::tensor::{Device, Tensor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    // The engine turns a panic inside an operator (Burn's shape checks) into an error naming
    // the node, like the CLI: keep libFuzzer's abort-on-panic hook from firing on those. A panic
    // that escapes the engine still aborts the run (libfuzzer-sys's catch_unwind).
    // `IGCAM_FUZZ_PANICS=1` prints every panic, to see which one escaped.
    init: std::panic::set_hook(Box::new(|info| {
        if std::env::var_os("IGCAM_FUZZ_PANICS").is_some() {
            eprintln!("{info}");
        }
    })),
    |bytes: &[u8]| {
        let device = Device::flex();
        let Ok(model) = igcam::onnx::OnnxModel::from_bytes(bytes, &device) else {
            return;
        };
        // What the explainer takes: an RGB input and a layer to explain.
        let Some(layer) = model.default_layer() else {
            return;
        };
        if model.input_spec().channels != 3 {
            return;
        }
        let [h, w] = model.input_size();
        let x = Tensor::<4>::zeros([2, 3, h, w], &device);
        let _ = model.forward_to(x, &layer);
    }
);
