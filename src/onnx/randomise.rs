//! MPRT's cascading randomisation (Adebayo et al., 2018) on an ONNX file: the layers with
//! learned weights (`Conv`, `Gemm`, `MatMul` by a constant, `BatchNormalization`), from the top
//! of the graph down, each re-initialised as PyTorch's `reset_parameters` does — weights and
//! biases uniform in `±1/sqrt(fan_in)`, batch normalisation to scale 1, shift 0, mean 0,
//! variance 1 — with igcam's generator: layer `k` (0 at the top) draws its weights, then its
//! bias, from [`substream`]`(seed, k)`. A layer whose weights are not initialisers stays as it
//! is and is not listed. A network exported with its batch normalisation folded into the
//! convolutions has one layer there where PyTorch has two.

use onnx_ir::{Message, ModelProto, TensorProto};

use super::external::{self, ExternalData};
use super::proto::Attrs;
use crate::cam::random::{substream, uniforms};
use crate::error::{Error, Result};

/// ONNX's float type code.
const FLOAT: i32 = 1;

/// How one input of a layer is re-initialised.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fill {
    /// Uniform in `±bound`, drawn after the layer's earlier uniform inputs.
    Uniform(f64),
    /// Every value set to this.
    Constant(f32),
}

/// A layer the cascade randomises: its node's name and its initialisers with their fills.
#[derive(Clone)]
struct Layer {
    name: String,
    inputs: Vec<(usize, Fill)>,
}

/// The models of the cascade, one layer more randomised at each [`Cascade::next_model`].
/// Read a file once and clone the cascade for each run of it (each image).
#[derive(Clone)]
pub struct Cascade {
    model: ModelProto,
    layers: Vec<Layer>,
    done: usize,
}

/// The index of the float initialiser called `name`, if any.
fn float_initialiser(model: &ModelProto, name: &str) -> Option<usize> {
    let graph = model.graph.as_ref()?;
    graph
        .initializer
        .iter()
        .position(|t| t.name == name && t.data_type == FLOAT)
}

/// The randomised inputs of `node`, or `None` when it is not a layer with weights.
fn layer_inputs(model: &ModelProto, node: &onnx_ir::NodeProto) -> Option<Vec<(usize, Fill)>> {
    let graph = model.graph.as_ref()?;
    let input = |i: usize| {
        node.input
            .get(i)
            .filter(|n| !n.is_empty())
            .and_then(|n| float_initialiser(model, n))
    };
    let dims = |i: usize| -> Vec<usize> {
        graph.initializer[i]
            .dims
            .iter()
            .map(|&d| d.max(0) as usize)
            .collect()
    };
    let uniform = |fan_in: usize| Fill::Uniform(1.0 / (fan_in.max(1) as f64).sqrt());
    // The weight (input 1) and the bias (input 2, when there is one), both in ±1/sqrt(fan_in).
    let weight_and_bias = |w: usize, fan_in: usize| {
        let fill = uniform(fan_in);
        std::iter::once((w, fill))
            .chain(input(2).map(|b| (b, fill)))
            .collect()
    };
    match node.op_type.as_str() {
        "Conv" => {
            let w = input(1)?;
            Some(weight_and_bias(w, dims(w).iter().skip(1).product()))
        }
        "Gemm" => {
            let w = input(1)?;
            let d = dims(w);
            let trans_b = Attrs::of(node).int("transB", 0) != 0;
            let fan_in = if trans_b { d.get(1) } else { d.first() };
            Some(weight_and_bias(w, *fan_in?))
        }
        "MatMul" => {
            let w = input(1)?;
            let d = dims(w);
            (d.len() == 2).then(|| vec![(w, uniform(d[0]))])
        }
        "BatchNormalization" => {
            let values = [1.0, 0.0, 0.0, 1.0];
            (1..=4)
                .map(|i| input(i).map(|t| (t, Fill::Constant(values[i - 1]))))
                .collect()
        }
        _ => None,
    }
}

impl Cascade {
    /// Reads `bytes` (external weights through `external`) and lists its layers, top down.
    pub fn new(bytes: &[u8], external: &dyn ExternalData) -> Result<Self> {
        let mut model =
            ModelProto::parse_from_bytes(bytes).map_err(|e| Error::OnnxParse(e.to_string()))?;
        let graph = model
            .graph
            .as_mut()
            .ok_or_else(|| Error::OnnxParse("the file holds no graph".into()))?;
        // The bytes each model of the cascade is loaded from hold every weight.
        for t in graph.initializer.iter_mut() {
            let resolved = external::resolve(t, external)
                .map_err(|e| Error::OnnxParse(e.to_string()))?
                .into_owned();
            *t = resolved;
        }
        let nodes = model.graph.as_ref().map_or(&[][..], |g| &g.node[..]);
        let mut layers: Vec<Layer> = nodes
            .iter()
            .filter_map(|node| {
                let inputs = layer_inputs(&model, node)?;
                let name = if node.name.is_empty() {
                    node.output.first().cloned().unwrap_or_default()
                } else {
                    node.name.clone()
                };
                Some(Layer { name, inputs })
            })
            .collect();
        layers.reverse();
        Ok(Self {
            model,
            layers,
            done: 0,
        })
    }

    /// The layers' names, top down.
    pub fn layers(&self) -> Vec<&str> {
        self.layers.iter().map(|l| l.name.as_str()).collect()
    }

    /// Randomises the next layer down (its draws from `seed`) and returns its name and the
    /// model's bytes; `None` when every layer is randomised.
    pub fn next_model(&mut self, seed: u64) -> Result<Option<(String, Vec<u8>)>> {
        let k = self.done;
        let (Some(layer), Some(graph)) = (self.layers.get(k), self.model.graph.as_mut()) else {
            return Ok(None);
        };
        let counts: Vec<usize> = layer
            .inputs
            .iter()
            .map(|&(i, _)| {
                graph.initializer[i]
                    .dims
                    .iter()
                    .map(|&d| d.max(0) as usize)
                    .product()
            })
            .collect();
        let uniform_total: usize = layer
            .inputs
            .iter()
            .zip(&counts)
            .filter(|((_, f), _)| matches!(f, Fill::Uniform(_)))
            .map(|(_, n)| n)
            .sum();
        let bound = layer.inputs.iter().find_map(|(_, f)| match f {
            Fill::Uniform(b) => Some(*b),
            Fill::Constant(_) => None,
        });
        let mut drawn = bound
            .map(|b| uniforms(substream(seed, k), uniform_total, [-b, b]))
            .unwrap_or_default()
            .into_iter();
        for (&(i, fill), &n) in layer.inputs.iter().zip(&counts) {
            let values: Vec<f32> = match fill {
                Fill::Uniform(_) => drawn.by_ref().take(n).collect(),
                Fill::Constant(c) => vec![c; n],
            };
            set_floats(&mut graph.initializer[i], &values);
        }
        self.done += 1;
        let bytes = self
            .model
            .write_to_bytes()
            .map_err(|e| Error::OnnxParse(format!("writing the randomised model: {e}")))?;
        Ok(Some((layer.name.clone(), bytes)))
    }
}

/// Replaces a float initialiser's values.
fn set_floats(t: &mut TensorProto, values: &[f32]) {
    t.float_data.clear();
    t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::external::NoExternalData;

    #[test]
    fn the_cascade_randomises_one_layer_more_each_time_from_the_top() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/metrics/faith_net.onnx"
        ))
        .unwrap();
        let weights = |bytes: &[u8]| -> Vec<Vec<u8>> {
            let m = ModelProto::parse_from_bytes(bytes).unwrap();
            let g = m.graph.unwrap();
            g.initializer.iter().map(|t| t.raw_data.to_vec()).collect()
        };
        let original = weights(&bytes);
        let mut cascade = Cascade::new(&bytes, &NoExternalData).unwrap();
        assert_eq!(cascade.layers().len(), 4, "{:?}", cascade.layers());
        let mut changed_before = 0;
        while let Some((_, model)) = cascade.next_model(3).unwrap() {
            let now = weights(&model);
            let changed = now.iter().zip(&original).filter(|(a, b)| a != b).count();
            assert_eq!(
                changed,
                changed_before + 2,
                "weight and bias of one more layer"
            );
            changed_before = changed;
        }
        assert_eq!(changed_before, 8);
    }
}
