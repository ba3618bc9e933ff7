//! One criterion bench per CPU kernel, at the shapes ResNet-50 and EfficientNet-Lite0 spend
//! their time in (batch 10, as a chunk of path points):
//!
//!     cargo bench --features bench-kernels --bench kernels
//!
//! The kernels are crate-private; the `bench-kernels` feature makes them public for this file.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use igcam::kernels::activation::Activation;
use igcam::kernels::bottleneck::{self, Bottleneck, Stage};
use igcam::kernels::conv::conv2d;
use igcam::kernels::conv_grad::{avg_pool2d_grad, conv2d_input_grad, max_pool2d_grad};
use igcam::kernels::epilogue::Epilogue;
use igcam::kernels::pool::max_pool2d;
use igcam::kernels::shape::ConvShape;
use igcam::kernels::testing::values;
use igcam::kernels::winograd;

/// Images per call: a chunk of path points.
const BATCH: usize = 10;

/// A convolution shape: channels in, spatial size, channels out, groups, kernel, stride.
fn conv(cin: usize, size: usize, cout: usize, groups: usize, k: usize, stride: usize) -> ConvShape {
    ConvShape {
        cin,
        input: [size, size],
        cout,
        groups,
        kernel: [k, k],
        stride: [stride, stride],
        dilation: [1, 1],
        pad: [(k / 2, k / 2); 2],
    }
}

/// Multiply-adds of one batch, for criterion's throughput column.
fn macs(s: &ConvShape) -> u64 {
    let [oh, ow] = s.output().expect("a valid shape");
    (BATCH * s.cout * oh * ow * (s.cin / s.groups) * s.kernel[0] * s.kernel[1]) as u64
}

/// The forward convolution (im2col + gemm, depthwise windows) with a ReLU epilogue.
fn forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv2d");
    let shapes = [
        ("resnet_stem_7x7_s2", conv(3, 224, 64, 1, 7, 2)),
        ("resnet_1x1_256_56", conv(256, 56, 64, 1, 1, 1)),
        ("resnet_3x3_s2_128", conv(128, 56, 128, 1, 3, 2)),
        ("lite0_depthwise_3x3_144_56", conv(144, 56, 144, 144, 3, 1)),
        (
            "lite0_depthwise_5x5_s2_240_28",
            conv(240, 28, 240, 240, 5, 2),
        ),
    ];
    for (name, s) in shapes {
        let x = values(s.input_len(BATCH), 1);
        let w = values(s.weight_len(), 2);
        let epilogue = Epilogue {
            activation: Some(Activation::Relu),
            ..Epilogue::default()
        };
        group.throughput(Throughput::Elements(macs(&s)));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| conv2d(&x, BATCH, &s, &w, &epilogue))
        });
    }
    group.finish();
}

/// Winograd F(4×4, 3×3) on ResNet-50's 3×3 stride-1 layers.
fn winograd_3x3(c: &mut Criterion) {
    let mut group = c.benchmark_group("winograd");
    for (name, s) in [
        ("resnet_3x3_64_56", conv(64, 56, 64, 1, 3, 1)),
        ("resnet_3x3_256_14", conv(256, 14, 256, 1, 3, 1)),
    ] {
        let x = values(s.input_len(BATCH), 3);
        let u = winograd::transform_filters(&values(s.weight_len(), 4), s.cout, s.cin);
        group.throughput(Throughput::Elements(macs(&s)));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| winograd::conv2d(&x, BATCH, &s, &u, &Epilogue::default()))
        });
    }
    group.finish();
}

/// Max pooling over ResNet-50's stem output.
fn pooling(c: &mut Criterion) {
    let s = ConvShape::pooling(64, [112, 112], [3, 3], [2, 2], [1, 1], [(1, 1); 2]);
    let x = values(s.input_len(BATCH), 5);
    c.bench_function("max_pool2d/resnet_3x3_s2_64_112", |b| {
        b.iter(|| max_pool2d(&x, BATCH, &s))
    });
}

/// The reverse pass's kernels: the convolution's input gradient (with a ReLU6 gate), and
/// pooling's.
fn gradients(c: &mut Criterion) {
    let mut group = c.benchmark_group("input_grad");
    for (name, s) in [
        ("resnet_3x3_64_56", conv(64, 56, 64, 1, 3, 1)),
        ("lite0_depthwise_3x3_144_56", conv(144, 56, 144, 144, 3, 1)),
    ] {
        let g = values(s.output_len(BATCH), 6);
        let y = values(s.output_len(BATCH), 7);
        let w = values(s.weight_len(), 8);
        let gate = igcam::kernels::conv_grad::Gate {
            output: &y,
            activation: Activation::Clip(0.0, 6.0),
        };
        group.throughput(Throughput::Elements(macs(&s)));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| conv2d_input_grad(&g, BATCH, &s, &w, Some(gate)))
        });
    }
    let s = ConvShape::pooling(64, [112, 112], [3, 3], [2, 2], [1, 1], [(1, 1); 2]);
    let out = s.output().expect("a valid shape");
    let x = values(s.input_len(BATCH), 9);
    let g = values(s.output_len(BATCH), 10);
    group.bench_function("max_pool_3x3_s2_64_112", |b| {
        b.iter(|| max_pool2d_grad(&x, &g, BATCH, &s, out))
    });
    group.bench_function("avg_pool_3x3_s2_64_112", |b| {
        b.iter(|| avg_pool2d_grad(&g, BATCH, &s, out, false))
    });
    group.finish();
}

/// One detection's reverse step through YOLOv8n's neck: a single image's gradient over the
/// box of the plane its score reaches (`onnx::boxed`).
fn box_gradients(c: &mut Criterion) {
    let mut group = c.benchmark_group("box_input_grad");
    for (name, s) in [
        ("yolo_3x3_64_21", conv(64, 21, 64, 1, 3, 1)),
        ("yolo_3x3_128_11", conv(128, 11, 128, 1, 3, 1)),
        ("yolo_1x1_192_128_19", conv(192, 19, 128, 1, 1, 1)),
    ] {
        let g = values(s.output_len(1), 6);
        let w = values(s.weight_len(), 8);
        group.throughput(Throughput::Elements(macs(&s) / BATCH as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| conv2d_input_grad(&g, 1, &s, &w, None))
        });
    }
    group.finish();
}

/// EfficientNet-Lite0's inverted bottlenecks (expansion, depthwise, projection, ReLU6 after the
/// first two, the residual where the block keeps its size) as one kernel, and as the three
/// convolutions the graph runs otherwise.
fn bottlenecks(c: &mut Criterion) {
    let mut group = c.benchmark_group("bottleneck");
    let relu6 = Some(Activation::Clip(0.0, 6.0));
    // (name, channels in, size, expanded, kernel, stride, channels out)
    let blocks = [
        ("lite0_16_96_112_3x3_s2_24", 16, 112, 96, 3, 2, 24),
        ("lite0_24_144_56_3x3_24", 24, 56, 144, 3, 1, 24),
        ("lite0_40_240_28_5x5_40", 40, 28, 240, 5, 1, 40),
        ("lite0_80_480_14_3x3_80", 80, 14, 480, 3, 1, 80),
        ("lite0_192_1152_7_5x5_192", 192, 7, 1152, 5, 1, 192),
    ];
    for (name, cin, size, ce, k, stride, cout) in blocks {
        let e = conv(cin, size, ce, 1, 1, 1);
        let d = conv(ce, size, ce, ce, k, stride);
        let out = d.output().expect("a valid shape")[0];
        let p = conv(ce, out, cout, 1, 1, 1);
        let x = values(e.input_len(BATCH), 11);
        let (we, wd, wp) = (
            values(e.weight_len(), 12),
            values(d.weight_len(), 13),
            values(p.weight_len(), 14),
        );
        let (be, bd, bp) = (values(ce, 15), values(ce, 16), values(cout, 17));
        let residual = values(p.output_len(BATCH), 18);
        let residual = (stride == 1 && cin == cout).then_some(&residual[..]);
        let gated = |bias| Epilogue {
            bias: Some(bias),
            residual: None,
            activation: relu6,
        };
        let project = Epilogue {
            bias: Some(&bp[..]),
            residual,
            activation: None,
        };
        let block = Bottleneck {
            expand: Some(Stage {
                s: e,
                w: &we,
                epilogue: gated(&be[..]),
            }),
            depthwise: Stage {
                s: d,
                w: &wd,
                epilogue: gated(&bd[..]),
            },
            project: Stage {
                s: p,
                w: &wp,
                epilogue: project,
            },
        };
        let macs = [e, d, p].iter().map(macs).sum();
        group.throughput(Throughput::Elements(macs));
        group.bench_function(BenchmarkId::new("one_kernel", name), |b| {
            b.iter(|| bottleneck::run(&x, BATCH, &block))
        });
        group.bench_function(BenchmarkId::new("three_convolutions", name), |b| {
            b.iter(|| {
                let expanded = conv2d(&x, BATCH, &e, &we, &gated(&be[..]));
                let dw = conv2d(&expanded, BATCH, &d, &wd, &gated(&bd[..]));
                conv2d(&dw, BATCH, &p, &wp, &project)
            })
        });
    }
    group.finish();
}

criterion_group!(
    kernels,
    forward,
    winograd_3x3,
    pooling,
    gradients,
    box_gradients,
    bottlenecks
);
criterion_main!(kernels);
