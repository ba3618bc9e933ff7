//! Writes a ResNet-50 (torchvision's architecture, BatchNorm folded into the convolutions as
//! its legacy exporter does) with seeded random weights as an ONNX file: a full-size model for
//! the browser test where PyTorch cannot be installed. The weights are scaled so activations
//! stay in range through the 16 residual blocks; the classes mean nothing.
//!
//!     cargo run --release --example resnet50_onnx -- resnet50.onnx

use onnx_ir::AttributeType;
use onnx_ir::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, TensorProto, ValueInfoProto,
};

/// One convolution: channels in and out, kernel size, stride, weight scale, ReLU after.
struct Conv {
    cin: i64,
    cout: i64,
    k: i64,
    stride: i64,
    gain: f32,
    relu: bool,
}

/// A convolution of `cin` to `cout` channels (gain 1, ReLU after).
fn conv(cin: i64, cout: i64, k: i64, stride: i64) -> Conv {
    Conv {
        cin,
        cout,
        k,
        stride,
        gain: 1.0,
        relu: true,
    }
}

/// A node and initialiser writer with a deterministic random source.
struct Builder {
    graph: GraphProto,
    state: u64,
    count: usize,
}

impl Builder {
    /// A value in [-1, 1) (xorshift64*).
    fn random(&mut self) -> f32 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let v = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (v >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// A fresh tensor name.
    fn name(&mut self, what: &str) -> String {
        self.count += 1;
        format!("{what}_{}", self.count)
    }

    /// An initialiser of `dims` holding `values`.
    fn constant(&mut self, what: &str, dims: &[i64], values: Vec<f32>) -> String {
        let name = self.name(what);
        let mut t = TensorProto::new();
        t.name = name.clone();
        t.data_type = 1;
        t.dims = dims.to_vec();
        t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.graph.initializer.push(t);
        name
    }

    /// A node of `op` reading `inputs`, with integer-list attributes; returns its output.
    fn node(&mut self, op: &str, inputs: &[&str], ints: &[(&str, Vec<i64>)]) -> String {
        let output = self.name(&op.to_lowercase());
        let mut n = NodeProto::new();
        n.op_type = op.into();
        n.name = output.clone();
        n.input = inputs.iter().map(|s| s.to_string()).collect();
        n.output = vec![output.clone()];
        for (name, values) in ints {
            let mut a = AttributeProto::new();
            a.name = name.to_string();
            a.ints = values.clone();
            a.type_ = AttributeType::INTS.into();
            n.attribute.push(a);
        }
        self.graph.node.push(n);
        output
    }

    /// A convolution with bias (BatchNorm folded), He-scaled by `gain`, then ReLU if `relu`.
    fn conv(&mut self, x: &str, c: Conv) -> String {
        let Conv {
            cin,
            cout,
            k,
            stride,
            gain,
            relu,
        } = c;
        let fan_in = (cin * k * k) as f32;
        let scale = gain * (3.0 / fan_in).sqrt();
        let weights = (0..cout * cin * k * k)
            .map(|_| self.random() * scale)
            .collect();
        let w = self.constant("w", &[cout, cin, k, k], weights);
        let bias = (0..cout).map(|_| self.random() * 0.05).collect();
        let b = self.constant("b", &[cout], bias);
        let p = k / 2;
        let y = self.node(
            "Conv",
            &[x, &w, &b],
            &[
                ("kernel_shape", vec![k, k]),
                ("strides", vec![stride, stride]),
                ("pads", vec![p, p, p, p]),
            ],
        );
        if relu {
            self.node("Relu", &[&y], &[])
        } else {
            y
        }
    }

    /// A bottleneck block: 1×1, 3×3 (strided), 1×1 ×4, plus the shortcut.
    fn bottleneck(&mut self, x: &str, cin: i64, width: i64, stride: i64) -> String {
        let a = self.conv(x, conv(cin, width, 1, 1));
        let b = self.conv(&a, conv(width, width, 3, stride));
        // The residual branch starts small, as a trained network's last BatchNorm makes it.
        let last = Conv {
            gain: 0.2,
            relu: false,
            ..conv(width, width * 4, 1, 1)
        };
        let c = self.conv(&b, last);
        let shortcut = if stride != 1 || cin != width * 4 {
            self.conv(
                x,
                Conv {
                    relu: false,
                    ..conv(cin, width * 4, 1, stride)
                },
            )
        } else {
            x.to_string()
        };
        let sum = self.node("Add", &[&c, &shortcut], &[]);
        self.node("Relu", &[&sum], &[])
    }
}

/// A float tensor value `name` of shape `dims`.
fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let mut v = ValueInfoProto::new();
    v.name = name.into();
    let t = v.type_.mut_or_insert_default().mut_tensor_type();
    t.elem_type = 1;
    let shape = t.shape.mut_or_insert_default();
    for &d in dims {
        shape.dim.push(Default::default());
        if let Some(dim) = shape.dim.last_mut() {
            dim.set_dim_value(d);
        }
    }
    v
}

fn main() {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "resnet50.onnx".into());
    let mut b = Builder {
        graph: GraphProto::new(),
        state: 0x9E37_79B9_7F4A_7C15,
        count: 0,
    };
    b.graph.name = "resnet50".into();
    let stem = b.conv("input", conv(3, 64, 7, 2));
    let mut x = b.node(
        "MaxPool",
        &[&stem],
        &[
            ("kernel_shape", vec![3, 3]),
            ("strides", vec![2, 2]),
            ("pads", vec![1, 1, 1, 1]),
        ],
    );
    let mut cin = 64;
    for (stage, (blocks, width)) in [(3, 64), (4, 128), (6, 256), (3, 512)]
        .into_iter()
        .enumerate()
    {
        for block in 0..blocks {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            x = b.bottleneck(&x, cin, width, stride);
            cin = width * 4;
        }
    }
    let pooled = b.node("GlobalAveragePool", &[&x], &[]);
    let flat = b.node("Flatten", &[&pooled], &[]);
    let classes = 1000;
    let scale = (3.0 / cin as f32).sqrt();
    let fc = (0..classes * cin).map(|_| b.random() * scale).collect();
    let w = b.constant("fc_w", &[classes, cin], fc);
    let bias = (0..classes).map(|_| b.random() * 0.01).collect();
    let c = b.constant("fc_b", &[classes], bias);
    let logits = b.node("Gemm", &[&flat, &w, &c], &[]);
    b.graph.node.last_mut().expect("the Gemm").attribute.push({
        let mut a = AttributeProto::new();
        a.name = "transB".into();
        a.i = 1;
        a.type_ = AttributeType::INT.into();
        a
    });
    b.graph.input.push(value_info("input", &[1, 3, 224, 224]));
    b.graph.output.push(value_info(&logits, &[1, classes]));
    let mut model = ModelProto::new();
    model.ir_version = 8;
    model.producer_name = "igcam examples/resnet50_onnx.rs".into();
    model.opset_import.push(Default::default());
    model.opset_import[0].version = 17;
    *model.graph.mut_or_insert_default() = b.graph;
    let bytes = model.write_to_bytes().expect("a serialisable model");
    std::fs::write(&out, &bytes).unwrap_or_else(|e| panic!("cannot write `{out}`: {e}"));
    eprintln!("wrote {out}: ResNet-50, {} bytes", bytes.len());
}
