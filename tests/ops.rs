//! Every supported ONNX operator case against onnxruntime's output (fixtures from
//! `tests/reference/make_fixtures.py`), on the CPU backend.

mod common;

use burn::tensor::Device;
use common::{array, assert_close, fixture, json, tensor};

fn check(case: &str) {
    let device = Device::flex();
    let reference = json(&format!("ops/{case}.json"));
    let (x, x_shape) = array(&reference["x"]);
    let (want, want_shape) = array(&reference["y"]);
    let bytes = std::fs::read(fixture(&format!("ops/{case}.onnx"))).unwrap();
    let (got, shape) =
        igcam::onnx::run_graph(&bytes, &device, tensor(x, &x_shape, &device)).unwrap();
    assert_eq!(shape, want_shape, "{case}: output shape");
    assert_close(case, &got, &want, 1e-5);
}

macro_rules! op_tests {
    ($($name:ident),* $(,)?) => { $( #[test] fn $name() { check(stringify!($name)); } )* };
}

op_tests!(
    conv_bias_pads,
    conv_groups_dilation_asym,
    conv_depthwise_same_upper,
    conv_same_lower,
    batchnorm,
    relu,
    clip_inputs,
    clip_attrs_opset9,
    sigmoid_mul,
    leaky_relu,
    hard_swish,
    hard_sigmoid,
    maxpool_ceil_pads,
    maxpool_2x2,
    avgpool_exclude_pad_ceil,
    avgpool_include_pad,
    global_pools,
    flatten_gemm_transb,
    gemm_row_c_batch,
    gemm_rows_over_outputs,
    matmul_add,
    concat_channels,
    softmax_flat,
    pad_constant,
    pad_reflect,
    pad_edge,
    shape_chain_reshape,
    broadcast_add_mul_sub_div,
    reduce_mean_no_keep,
    transpose_slice,
    dropout_identity_squeeze,
    pad_from_int_chain,
    erf_gelu_legacy,
    gelu_exact_and_tanh,
    pow_sqrt,
    convnext_block_layer_norm,
    layer_norm_decomposed_over_channels,
    layer_norm_last_three_axes,
    instance_norm,
    gather_float_constant_indices,
    split_sizes_input,
    split_equal_uneven,
    channel_shuffle_rank5,
    resize_bilinear_scales,
    resize_bilinear_align_corners_sizes,
    resize_bilinear_down_half_pixel,
    resize_nearest_floor,
    upsample_nearest_opset9,
    reduce_sum_max,
    rank5_attention_heads,
    rank5_split_attention,
    expand_where_class_token,
    isnan_equal_where_exp_neg,
    range_mod_shape,
);

#[test]
fn every_fixture_case_is_tested() {
    let mut cases: Vec<String> = std::fs::read_dir(fixture("ops"))
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".json")
                .map(String::from)
        })
        .collect();
    cases.sort();
    let source = include_str!("ops.rs");
    for case in cases {
        assert!(
            source.contains(&format!("    {case},")),
            "fixture case `{case}` has no test"
        );
    }
}

/// The op types the README's "Supported ONNX operators" paragraph names, parentheticals dropped
/// and `Add/Sub` split.
fn readme_ops() -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("## Supported ONNX operators")
        .expect("README section")
        + 28;
    let end = start
        + readme[start..]
            .find("Anything else")
            .expect("end of the list");
    let mut text = String::new();
    let mut depth = 0;
    for ch in readme[start..end].chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ if depth == 0 => text.push(ch),
            _ => {}
        }
    }
    let mut ops: Vec<String> = text
        .split(|c: char| c == ',' || c == '/' || c == '.' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    ops.sort();
    ops
}

#[test]
fn the_readme_lists_exactly_the_registered_ops() {
    let mut registered: Vec<String> = igcam::onnx::supported_ops()
        .chain(["Constant"])
        .map(str::to_string)
        .collect();
    registered.sort();
    assert!(registered.len() > 40, "{registered:?}");
    assert_eq!(readme_ops(), registered);
}
