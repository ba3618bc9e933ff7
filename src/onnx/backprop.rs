//! Input gradients on Burn's CPU backend without autodiff, for pixel-level Integrated
//! Gradients: the forward pass runs on the host kernels (fused as usual) keeping every value,
//! then the steps are walked backwards, each op giving its inputs' gradients
//! ([`Operator::backward`](super::ops::Operator::backward)). Burn's autodiff records every op
//! of the forward pass and runs its own convolution kernels both ways, at several times the
//! cost. A graph with an op that has no host gradient returns `None`, and the caller uses
//! autodiff.

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::cpu_conv::Activation;
use super::cpu_par::par_chunks;
use super::fuse::Plan;
use super::graph::{Env, Graph, panic_message};
use super::host;
use super::ops::{Backward, OpResult};
use super::value::{FloatValue, Value};
use crate::error::Result;

/// One step of a forward pass: a node alone, or a fused group.
#[derive(Clone, Debug)]
pub enum Step {
    /// Node `i` on its own.
    Node(usize),
    /// A convolution with the nodes fused into it.
    Fused(Plan),
}

impl Step {
    /// Its first and last node: the last one's output is the step's.
    pub fn span(&self) -> (usize, usize) {
        match self {
            Step::Node(i) => (*i, *i),
            Step::Fused(plan) => (plan.first(), plan.last()),
        }
    }
}

/// The gradient of `g` through `activation`, read off its output `y` (`None` where
/// the output does not tell the derivative, see [`Activation::derivative_from_output`]).
pub fn activation_grad(
    activation: Activation,
    y: &FloatValue,
    g: &FloatValue,
) -> Option<OpResult<FloatValue>> {
    activation
        .derivative_from_output()
        .then(|| map_grad(y, g, |y, g| g * activation.derivative_at_output(y)))
}

/// `f(v, g)` for every value `v` of a forward tensor and `g` of the gradient of the same shape,
/// on the host.
pub fn map_grad(
    v: &FloatValue,
    g: &FloatValue,
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> OpResult<FloatValue> {
    if v.tensor.dims() != g.tensor.dims() {
        return Err(format!(
            "gradient of shape {:?} for a tensor of {:?}",
            g.shape(),
            v.shape()
        ));
    }
    let out = host::with_floats(&v.tensor, |v| {
        host::with_floats(&g.tensor, |g| {
            let mut out = vec![0.0f32; g.len()];
            // Blocks of 64 Ki values spread over the threads.
            const BLOCK: usize = 1 << 16;
            par_chunks(&mut out, BLOCK, |i, o| {
                let (v, g) = (&v[i * BLOCK..], &g[i * BLOCK..]);
                for ((o, &v), &g) in o.iter_mut().zip(v).zip(g) {
                    *o = f(v, g);
                }
            });
            out
        })
    })??;
    Ok(g.with_tensor(host::tensor(out, g.tensor.dims(), &g.tensor.device())))
}

/// A gradient of ones at column `target` of every row of the logits `output` (`[N, classes]`
/// values in any shape): the gradient of the summed target logits.
pub fn target_seed(output: &FloatValue, classes: usize, target: usize) -> FloatValue {
    let n = output.tensor.dims().iter().product::<usize>();
    let mut values = vec![0.0f32; n];
    values
        .iter_mut()
        .skip(target)
        .step_by(classes)
        .for_each(|v| *v = 1.0);
    output.with_tensor(host::tensor(
        values,
        output.tensor.dims(),
        &output.tensor.device(),
    ))
}

impl Graph {
    /// The gradient of the graph's output, seeded with `seed`, with respect to its input,
    /// from a forward pass ([`Graph::run_retaining`]) that left every value in `env` and took
    /// `steps`. `Ok(None)` when an op on the way has no host gradient.
    pub(crate) fn input_gradient<'a>(
        &'a self,
        env: &'a Env,
        steps: &'a [Step],
        seed: FloatValue,
    ) -> Result<Option<FloatValue>> {
        let depends = self.depending_on_input(steps);
        // Float tensors computed from the input; integer ones (shapes) carry no gradient.
        let wanted = |names: &[String]| -> Vec<bool> {
            names
                .iter()
                .map(|n| {
                    depends.contains(n.as_str())
                        && matches!(self.value(env, n), Some(Value::Float(_)))
                })
                .collect()
        };
        let mut grads: HashMap<&str, FloatValue> = HashMap::from([(self.output.as_str(), seed)]);
        for step in steps.iter().rev() {
            let (first, last) = step.span();
            let Some(grad) = grads.remove(self.nodes[last].output.as_str()) else {
                continue;
            };
            let start = self.profiler.now();
            // A tensor op that panics (shapes a crafted model gets past the checks) is this
            // node's error, as in the forward pass.
            let flows = catch_unwind(AssertUnwindSafe(|| match step {
                Step::Node(i) => self.node_backward(env, *i, &wanted(&self.nodes[*i].inputs), grad),
                Step::Fused(plan) => self.fused_backward(env, plan, grad),
            }))
            .map_err(|p| self.bad(first, panic_message(p.as_ref())))?;
            let Some(flows) = flows else {
                return Ok(None);
            };
            for (name, g) in flows.map_err(|m| self.bad(first, m))? {
                if !depends.contains(name) {
                    continue;
                }
                let g = match grads.remove(name) {
                    Some(sum) => sum.with_tensor(sum.tensor.clone().add(g.tensor)),
                    None => g,
                };
                grads.insert(name, g);
            }
            if start.is_some() {
                let label = match step {
                    Step::Node(i) => self.nodes[*i].op_type.clone(),
                    Step::Fused(plan) => plan.label(self),
                };
                self.profiler.add_op(
                    &format!("{label} (backward)"),
                    &self.nodes[first].name,
                    start,
                );
            }
        }
        Ok(grads.remove(self.input.name.as_str()))
    }

    /// The tensors a forward pass over `steps` computed from the graph's input.
    fn depending_on_input(&self, steps: &[Step]) -> HashSet<&str> {
        let mut depends = HashSet::from([self.input.name.as_str()]);
        for step in steps {
            let (first, last) = step.span();
            let reads = (first..=last)
                .flat_map(|j| &self.nodes[j].inputs)
                .any(|n| depends.contains(n.as_str()));
            if reads {
                depends.insert(self.nodes[last].output.as_str());
            }
        }
        depends
    }

    /// The value of `name` in `env` or among the constants.
    fn value<'a>(&'a self, env: &'a Env, name: &str) -> Option<&'a Value> {
        (!name.is_empty()).then(|| self.peek(env, name)).flatten()
    }

    /// Node `i`'s input gradients, by input name.
    fn node_backward<'a>(
        &'a self,
        env: &'a Env,
        i: usize,
        wanted: &[bool],
        grad: FloatValue,
    ) -> Option<OpResult<Vec<(&'a str, FloatValue)>>> {
        let node = &self.nodes[i];
        let inputs: Vec<Option<&Value>> = node.inputs.iter().map(|n| self.value(env, n)).collect();
        let output = env.get(&node.output)?;
        let step = Backward {
            inputs: &inputs,
            output,
            wanted,
            grad,
            pad: [(0, 0); 2],
            gate: None,
        };
        Some(node.op.backward(step)?.map(|gs| {
            node.inputs
                .iter()
                .zip(gs)
                .filter_map(|(n, g)| Some((n.as_str(), g?)))
                .collect()
        }))
    }

    /// A fused group's input gradients, by input name: through the activation (read off the
    /// group's output), to the residual, and through the convolution with the fused padding.
    fn fused_backward<'a>(
        &'a self,
        env: &'a Env,
        plan: &'a Plan,
        mut grad: FloatValue,
    ) -> Option<OpResult<Vec<(&'a str, FloatValue)>>> {
        let output = env.get(&self.nodes[plan.last()].output)?;
        let mut gate = None;
        if let Some((_, activation)) = plan.activation {
            let Value::Float(y) = output else {
                return None;
            };
            if plan.add.is_none() {
                // The convolution applies it image by image, on its way in.
                gate = Some((activation, y));
            } else {
                grad = match activation_grad(activation, y, &grad)? {
                    Ok(g) => g,
                    Err(m) => return Some(Err(m)),
                };
            }
        }
        let mut flows = Vec::new();
        if let Some((_, residual)) = &plan.add {
            flows.push((residual.as_str(), grad.clone()));
        }
        let conv = &self.nodes[plan.conv];
        let mut inputs: Vec<Option<&Value>> =
            conv.inputs.iter().map(|n| self.value(env, n)).collect();
        let mut input_name = conv.inputs.first()?.as_str();
        let mut pad = [(0, 0); 2];
        if let Some(p) = plan.pad {
            let pad_node = &self.nodes[p];
            input_name = pad_node.inputs.first()?.as_str();
            let pad_inputs: Vec<Option<&Value>> =
                pad_node.inputs.iter().map(|n| self.value(env, n)).collect();
            pad = pad_node.op.zero_spatial_pad(&pad_inputs)?;
            inputs[0] = self.value(env, input_name);
        }
        let step = Backward {
            inputs: &inputs,
            output,
            wanted: &[true],
            grad,
            pad,
            gate,
        };
        let gs = match conv.op.backward(step)? {
            Ok(gs) => gs,
            Err(m) => return Some(Err(m)),
        };
        if let Some(Some(g)) = gs.into_iter().next() {
            flows.push((input_name, g));
        }
        Some(Ok(flows))
    }
}
