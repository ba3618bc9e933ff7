//! The op registry: every supported ONNX op type and the builder of its family (one file per
//! family beside this one).

use super::operator::{BuildContext, OpResult, Operator};
use super::{
    activation, conv, elementwise, expand, linear, logic, norm, pad, pool, range, reduce, resize,
    shape, split,
};

/// Builds one node's operator from its attributes and constant inputs.
type Builder = fn(&BuildContext) -> OpResult<Box<dyn Operator>>;

/// Every supported ONNX op type and the builder of its family: adding an op is one builder
/// and one line here (`Constant` is folded by the graph loader and is not listed). The README's
/// operator list is checked against this table by a test.
const REGISTRY: &[(&str, Builder)] = &[
    ("Conv", conv::build),
    ("BatchNormalization", norm::build),
    ("LayerNormalization", norm::build),
    ("InstanceNormalization", norm::build),
    ("MaxPool", pool::build),
    ("AveragePool", pool::build),
    ("GlobalAveragePool", pool::build),
    ("GlobalMaxPool", pool::build),
    ("Gemm", linear::build),
    ("MatMul", linear::build),
    ("Add", elementwise::build),
    ("Sub", elementwise::build),
    ("Mul", elementwise::build),
    ("Div", elementwise::build),
    ("Mod", elementwise::build),
    ("Pad", pad::build),
    ("Relu", activation::build),
    ("Clip", activation::build),
    ("Sigmoid", activation::build),
    ("Swish", activation::build),
    ("Tanh", activation::build),
    ("LeakyRelu", activation::build),
    ("HardSigmoid", activation::build),
    ("HardSwish", activation::build),
    ("Erf", activation::build),
    ("Gelu", activation::build),
    ("Sqrt", activation::build),
    ("Exp", activation::build),
    ("Neg", activation::build),
    ("Pow", activation::build),
    ("Softmax", activation::build),
    ("Identity", activation::build),
    ("Dropout", activation::build),
    ("Shape", shape::build),
    ("Gather", shape::build),
    ("Unsqueeze", shape::build),
    ("Squeeze", shape::build),
    ("Concat", shape::build),
    ("Reshape", shape::build),
    ("Flatten", shape::build),
    ("ConstantOfShape", shape::build),
    ("Slice", shape::build),
    ("Transpose", shape::build),
    ("Cast", shape::build),
    ("Expand", expand::build),
    ("Range", range::build),
    ("Equal", logic::build),
    ("IsNaN", logic::build),
    ("Where", logic::build),
    ("ReduceMean", reduce::build),
    ("ReduceSum", reduce::build),
    ("ReduceMax", reduce::build),
    ("Split", split::build),
    ("Resize", resize::build),
    ("Upsample", resize::build),
];

/// Op types whose every output is computed (by one operator each); other ops compute their
/// first output only (MaxPool's indices, Dropout's mask and the like are not read by CNNs).
pub const MULTI_OUTPUT: &[&str] = &["Split"];

/// The op types [`build`] supports, in registry order.
pub fn supported() -> impl Iterator<Item = &'static str> {
    REGISTRY.iter().map(|&(op, _)| op)
}

/// Builds the operator for a node, `Ok(None)` when the op type is not supported.
pub fn build(ctx: &BuildContext) -> OpResult<Option<Box<dyn Operator>>> {
    REGISTRY
        .iter()
        .find(|&&(op, _)| op == ctx.node.op_type)
        .map(|(_, builder)| builder(ctx))
        .transpose()
}
