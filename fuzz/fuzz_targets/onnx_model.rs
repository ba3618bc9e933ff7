//! ONNX bytes -> `OnnxModel::from_bytes` (parse, build every operator, one forward pass of a
//! blank image at the declared size) -> an explained forward to the default layer on a batch of
//! two, the head's gradient there, and the host reverse pass to the input. Any error is fine; a
//! panic (the engine checks every shape before Burn sees it: a panic is never its error
//! channel), an abort or an allocation past the budget is a finding.
#![no_main]

use burn::tensor::{Device, Tensor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
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
    if let Ok((activations, env)) = model.forward_to(x.clone(), &layer) {
        let logit = igcam::onnx::objective::Objective::Logit(0);
        let _ = model.layer_gradient(&layer, &activations, &env, &logit);
    }
    let _ = model.host_input_gradient(x, 0);
});
