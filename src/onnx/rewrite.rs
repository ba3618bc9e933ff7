//! Load-time rewrites: a decomposition an exporter spells out op by op, replaced by the one op
//! it computes, which then runs as one pass forward and one backward. Each rewrite is a row of
//! [`REWRITES`]: it finds its pattern around one node and names the nodes it replaces.

use std::collections::HashMap;

use onnx_ir::NodeProto;

/// What the rewrites may know of the graph's constants (initialisers and `Constant` nodes).
pub struct Constants<'a> {
    /// A scalar constant's value.
    pub scalar: &'a dyn Fn(&str) -> Option<f32>,
    /// A constant's shape.
    pub shape: &'a dyn Fn(&str) -> Option<Vec<usize>>,
}

/// What a rewrite may look at: the nodes, who produces each tensor, how many read it (graph
/// outputs count as readers) and the first node that does, and the constants.
struct Nodes<'a> {
    nodes: &'a [NodeProto],
    producer: HashMap<&'a str, usize>,
    readers: HashMap<&'a str, (usize, usize)>,
    constants: &'a Constants<'a>,
}

impl<'a> Nodes<'a> {
    /// The node producing `tensor`, if it is an op's.
    fn producer(&self, tensor: &str) -> Option<(usize, &'a NodeProto)> {
        let &i = self.producer.get(tensor)?;
        Some((i, &self.nodes[i]))
    }

    /// The only node reading `tensor`, if exactly one does (and it is no graph output).
    fn only_reader(&self, tensor: &str) -> Option<(usize, &'a NodeProto)> {
        match self.readers.get(tensor) {
            Some(&(1, i)) if i < self.nodes.len() => Some((i, &self.nodes[i])),
            _ => None,
        }
    }

    /// Whether `tensor` is a scalar constant within 1e-6 of `value`.
    fn is(&self, tensor: &str, value: f32) -> bool {
        (self.constants.scalar)(tensor).is_some_and(|v| (v - value).abs() <= 1e-6)
    }

    /// The shape of `tensor` if it is a constant.
    fn constant_shape(&self, tensor: &str) -> Option<Vec<usize>> {
        (self.constants.shape)(tensor)
    }
}

/// A node's output (its first).
fn output(n: &NodeProto) -> String {
    n.output.first().cloned().unwrap_or_default()
}

/// The input of the two-input node `n` that is not `t`.
fn other(n: &NodeProto, t: &str) -> Option<String> {
    match n.input.as_slice() {
        [a, b] if a == t => Some(b.clone()),
        [a, b] if b == t => Some(a.clone()),
        _ => None,
    }
}

/// One rewrite: around node `i`, the indices of the nodes it replaces (in order, the last one's
/// place and output taken by the replacement) and the replacement.
type Rewrite = fn(&Nodes, usize) -> Option<(Vec<usize>, NodeProto)>;

/// The rewrites, tried at every node.
const REWRITES: &[Rewrite] = &[gelu, silu, linear_bias];

/// The exact GELU as PyTorch's legacy exporter writes it before opset 20, `Mul(Mul(x,
/// Add(Erf(Div(x, √2)), 1)), 0.5)`, every intermediate read once: one `Gelu` node (whose
/// forward and backward run in one pass each, on the host's vectorised `erf`).
fn gelu(g: &Nodes, i: usize) -> Option<(Vec<usize>, NodeProto)> {
    let erf = &g.nodes[i];
    if erf.op_type != "Erf" {
        return None;
    }
    let (div_at, div) = g.producer(erf.input.first()?)?;
    let [x, root_two] = div.input.as_slice() else {
        return None;
    };
    let divided = div.op_type == "Div" && g.is(root_two, std::f32::consts::SQRT_2);
    let (_, read) = g.only_reader(&output(div)).filter(|_| divided)?;
    if !std::ptr::eq(read, erf) {
        return None;
    }
    let (add_at, add) = g.only_reader(&output(erf))?;
    let plus_one = add.op_type == "Add" && g.is(&other(add, &output(erf))?, 1.0);
    let (mul_at, mul) = g.only_reader(&output(add)).filter(|_| plus_one)?;
    let times_x = mul.op_type == "Mul" && other(mul, &output(add))? == *x;
    let (half_at, half) = g.only_reader(&output(mul)).filter(|_| times_x)?;
    if half.op_type != "Mul" || !g.is(&other(half, &output(mul))?, 0.5) {
        return None;
    }
    let node = NodeProto {
        op_type: "Gelu".into(),
        name: half.name.clone(),
        input: vec![x.clone()],
        output: vec![output(half)],
        ..NodeProto::default()
    };
    Some((vec![div_at, i, add_at, mul_at, half_at], node))
}

/// SiLU as PyTorch's exporters write it, `Mul(x, Sigmoid(x))` with the sigmoid read only by
/// the product: one `Swish` node (one pass forward and one backward where the pair took two
/// and five; YOLO's every convolution is followed by one).
fn silu(g: &Nodes, i: usize) -> Option<(Vec<usize>, NodeProto)> {
    let sigmoid = &g.nodes[i];
    let [x] = sigmoid.input.as_slice() else {
        return None;
    };
    let [s] = sigmoid.output.as_slice() else {
        return None;
    };
    if sigmoid.op_type != "Sigmoid" {
        return None;
    }
    let (mul_at, mul) = g.only_reader(s)?;
    if mul.op_type != "Mul" || other(mul, s).as_ref() != Some(x) || x == s {
        return None;
    }
    let node = NodeProto {
        op_type: "Swish".into(),
        name: mul.name.clone(),
        input: vec![x.clone()],
        output: mul.output.clone(),
        ..NodeProto::default()
    };
    Some((vec![i, mul_at], node))
}

/// A linear layer on tokens as PyTorch's exporters write it, `Add(MatMul(x, W), b)` (either
/// order) with a constant `W` (`k × n`) and `b` (`n` values) and the product read only by the
/// sum: one `MatMul` with `b` as a third input, which the host's product writes with the bias
/// in one pass (`ops::linear`) where the pair wrote the product and then read it again.
fn linear_bias(g: &Nodes, i: usize) -> Option<(Vec<usize>, NodeProto)> {
    let product = &g.nodes[i];
    let [x, w] = product.input.as_slice() else {
        return None;
    };
    let &[_, n] = g.constant_shape(w)?.as_slice() else {
        return None;
    };
    if product.op_type != "MatMul" {
        return None;
    }
    let (add_at, add) = g.only_reader(&output(product))?;
    let b = other(add, &output(product)).filter(|_| add.op_type == "Add")?;
    if g.constant_shape(&b)? != [n] {
        return None;
    }
    let node = NodeProto {
        op_type: "MatMul".into(),
        name: product.name.clone(),
        input: vec![x.clone(), w.clone(), b],
        output: add.output.clone(),
        ..NodeProto::default()
    };
    Some((vec![i, add_at], node))
}

/// `nodes` with every rewrite applied, or `None` where none applies. `outputs` are the graph's
/// outputs (never rewritten away).
pub fn rewritten(
    nodes: &[NodeProto],
    outputs: &[&str],
    constants: &Constants,
) -> Option<Vec<NodeProto>> {
    // A graph output's reader is past the nodes.
    let mut readers: HashMap<&str, (usize, usize)> =
        outputs.iter().map(|&o| (o, (1, nodes.len()))).collect();
    for (at, n) in nodes.iter().enumerate() {
        for i in &n.input {
            let (count, first) = readers.entry(i.as_str()).or_insert((0, at));
            *count += 1;
            *first = (*first).min(at);
        }
    }
    let producer = (nodes.iter().enumerate())
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let g = Nodes {
        nodes,
        producer,
        readers,
        constants,
    };
    // Each node's replacement (at the last node a rewrite replaces) or removal.
    let mut replaced: HashMap<usize, Option<NodeProto>> = HashMap::new();
    for i in 0..nodes.len() {
        for rewrite in REWRITES {
            let Some((indices, node)) = rewrite(&g, i) else {
                continue;
            };
            if indices.iter().any(|j| replaced.contains_key(j)) {
                continue;
            }
            let (&last, rest) = indices.split_last()?;
            replaced.extend(rest.iter().map(|&j| (j, None)));
            replaced.insert(last, Some(node));
        }
    }
    if replaced.is_empty() {
        return None;
    }
    let kept = nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| match replaced.remove(&i) {
            Some(replacement) => replacement,
            None => Some(n.clone()),
        });
    Some(kept.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            name: format!("{op}_{output}"),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..NodeProto::default()
        }
    }

    /// PyTorch's legacy GELU after a `MatMul`, its constants named by their values.
    fn legacy_gelu(root_two: &str) -> Vec<NodeProto> {
        vec![
            node("MatMul", &["in", "w"], "x"),
            node("Div", &["x", root_two], "d"),
            node("Erf", &["d"], "e"),
            node("Add", &["e", "one"], "a"),
            node("Mul", &["x", "a"], "m"),
            node("Mul", &["m", "half"], "y"),
            node("Relu", &["y"], "out"),
        ]
    }

    fn scalar(name: &str) -> Option<f32> {
        match name {
            "sqrt2" => Some(std::f32::consts::SQRT_2),
            "two" => Some(2.0),
            "one" => Some(1.0),
            "half" => Some(0.5),
            _ => None,
        }
    }

    /// The constants' shapes: `w` a 4 × 6 weight, `b` its bias, `b5` one of another length,
    /// `row` a bias laid out as a 1 × 6 row.
    fn shape(name: &str) -> Option<Vec<usize>> {
        match name {
            "w" => Some(vec![4, 6]),
            "b" => Some(vec![6]),
            "b5" => Some(vec![5]),
            "row" => Some(vec![1, 6]),
            _ => scalar(name).map(|_| vec![]),
        }
    }

    fn constants() -> Constants<'static> {
        Constants {
            scalar: &scalar,
            shape: &shape,
        }
    }

    fn ops(nodes: &[NodeProto]) -> Vec<(&str, Vec<&str>, &str)> {
        (nodes.iter())
            .map(|n| {
                let inputs = n.input.iter().map(String::as_str).collect();
                (n.op_type.as_str(), inputs, n.output[0].as_str())
            })
            .collect()
    }

    #[test]
    fn the_legacy_gelu_becomes_one_node() {
        let got = rewritten(&legacy_gelu("sqrt2"), &["out"], &constants()).unwrap();
        assert_eq!(
            ops(&got),
            [
                ("MatMul", vec!["in", "w"], "x"),
                ("Gelu", vec!["x"], "y"),
                ("Relu", vec!["y"], "out"),
            ]
        );
        assert_eq!(got[1].name, "Mul_y");
    }

    #[test]
    fn anything_else_stays_as_it_is() {
        // Not √2.
        assert!(rewritten(&legacy_gelu("two"), &["out"], &constants()).is_none());
        // An intermediate read elsewhere too (by another node, or as a graph output).
        let mut shared = legacy_gelu("sqrt2");
        shared.push(node("Relu", &["e"], "other"));
        assert!(rewritten(&shared, &["out", "other"], &constants()).is_none());
        assert!(rewritten(&legacy_gelu("sqrt2"), &["out", "a"], &constants()).is_none());
        // The product with something other than the Div's input.
        let mut other = legacy_gelu("sqrt2");
        other[4] = node("Mul", &["in", "a"], "m");
        assert!(rewritten(&other, &["out"], &constants()).is_none());
    }

    #[test]
    fn silu_becomes_one_node_in_either_order() {
        for mul in [["x", "s"], ["s", "x"]] {
            let nodes = vec![
                node("Conv", &["in", "w"], "x"),
                node("Sigmoid", &["x"], "s"),
                node("Mul", &mul, "y"),
                node("Relu", &["y"], "out"),
            ];
            let got = rewritten(&nodes, &["out"], &constants()).unwrap();
            assert_eq!(
                ops(&got),
                [
                    ("Conv", vec!["in", "w"], "x"),
                    ("Swish", vec!["x"], "y"),
                    ("Relu", vec!["y"], "out"),
                ]
            );
            assert_eq!(got[1].name, "Mul_y");
        }
    }

    #[test]
    fn a_sigmoid_read_elsewhere_or_times_another_tensor_stays() {
        let silu = || {
            vec![
                node("Conv", &["in", "w"], "x"),
                node("Sigmoid", &["x"], "s"),
                node("Mul", &["x", "s"], "y"),
            ]
        };
        let mut shared = silu();
        shared.push(node("Relu", &["s"], "other"));
        assert!(rewritten(&shared, &["y", "other"], &constants()).is_none());
        assert!(rewritten(&silu(), &["y", "s"], &constants()).is_none());
        // A gate: the sigmoid of one tensor times another (squeeze-excitation).
        let mut gate = silu();
        gate[2] = node("Mul", &["in", "s"], "y");
        assert!(rewritten(&gate, &["y"], &constants()).is_none());
    }

    #[test]
    fn a_product_and_its_bias_become_one_node_in_either_order() {
        for add in [["x", "b"], ["b", "x"]] {
            let nodes = vec![
                node("MatMul", &["in", "w"], "x"),
                node("Add", &add, "y"),
                node("Relu", &["y"], "out"),
            ];
            let got = rewritten(&nodes, &["out"], &constants()).unwrap();
            assert_eq!(
                ops(&got),
                [
                    ("MatMul", vec!["in", "w", "b"], "y"),
                    ("Relu", vec!["y"], "out"),
                ]
            );
            assert_eq!(got[0].name, "MatMul_x");
        }
    }

    #[test]
    fn a_product_of_computed_tensors_or_another_sum_stays() {
        let linear =
            |w: &str, b: &str| vec![node("MatMul", &["in", w], "x"), node("Add", &["x", b], "y")];
        // Attention's product of two computed tensors.
        assert!(rewritten(&linear("k", "b"), &["y"], &constants()).is_none());
        // A bias of another length, or not one value per column.
        assert!(rewritten(&linear("w", "b5"), &["y"], &constants()).is_none());
        assert!(rewritten(&linear("w", "row"), &["y"], &constants()).is_none());
        // A computed addend (a residual).
        assert!(rewritten(&linear("w", "in"), &["y"], &constants()).is_none());
        // The product read elsewhere too.
        assert!(rewritten(&linear("w", "b"), &["y", "x"], &constants()).is_none());
        // A product followed by something else.
        let mut mul = linear("w", "b");
        mul[1] = node("Mul", &["x", "b"], "y");
        assert!(rewritten(&mul, &["y"], &constants()).is_none());
    }
}
