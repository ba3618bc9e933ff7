//! Gradients on Burn's CPU backend without autodiff, with respect to the input (pixel-level
//! Integrated Gradients) or to the explained layer (the CAM methods' gradients, every target
//! from one pass through the head): the forward pass runs on the host kernels (fused as usual)
//! keeping every value,
//! then the steps are walked backwards, each op giving its inputs' gradients
//! ([`Operator::backward`](super::ops::Operator::backward)). Burn's autodiff records every op
//! of the forward pass and runs its own convolution kernels both ways, at several times the
//! cost. A graph with an op that has no host gradient returns `None`, and the caller uses
//! autodiff.

use std::collections::{HashMap, HashSet};

use super::boxed::{self, Grad};
use super::exec::Step;
use super::fusion::{FusedConv, Plan};
use super::graph::{Env, Graph};
use super::host;
use super::ops::grad::activation_grad;
use super::ops::{Backward, OpResult, OrNoGradient};
use super::value::{FloatValue, Value};
use crate::error::{OpError, Result};

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

/// The gradient of the graph's output, seeded with `seed`, with respect to the value `from`
/// (the graph's input, or the explained layer), from a forward pass
/// ([`run_retaining`](super::exec::run_retaining)) that left every value in `env` and took
/// `steps`; with the gradients of the values named in `taps` (each some step's output, computed
/// from `from`: the forward pass ran with the same taps), in their order, `None` for a tap no
/// gradient reaches. `Ok(None)` when an op on the way has no host gradient. A seed that is
/// zero outside a box (a detection's) is carried as that box as far as the ops allow
/// ([`boxed`]), and handed out as a box where it still is one.
pub fn gradient<'a>(
    graph: &'a Graph,
    env: &'a Env,
    steps: &'a [Step],
    seed: Grad,
    from: &'a str,
    taps: &[&str],
) -> Result<Option<(Grad, Vec<Option<Grad>>)>> {
    let mut tapped: Vec<Option<Grad>> = (0..taps.len()).map(|_| None).collect();
    let depends = depending_on(graph, steps, from);
    let wanted = |names: &[String]| wanted(graph, env, &depends, names);
    let mut grads: HashMap<&str, Grad> = HashMap::from([(graph.output.as_str(), seed)]);
    for step in steps.iter().rev() {
        let (first, last) = step.span();
        let output = graph.nodes[last].output.as_str();
        let Some(grad) = grads.remove(output) else {
            continue;
        };
        if let Some(t) = taps.iter().position(|&t| t == output) {
            tapped[t] = Some(grad.clone());
        }
        let start = graph.profiler.now();
        let wanted = match step {
            Step::Node(i) => wanted(&graph.nodes[*i].inputs),
            Step::Fused(_) => vec![true],
        };
        let flows = match &grad {
            Grad::Boxed(b) => match boxed::backward(graph, env, step, b, &wanted) {
                Err(OpError::NoGradient) => None,
                other => Some(other),
            },
            Grad::Dense(_) => None,
        };
        let flows = match flows {
            Some(flows) => flows,
            None => {
                let grad = grad.dense().map_err(|e| graph.bad(first, e))?;
                let flows = match step {
                    Step::Node(i) => node_backward(graph, env, *i, &wanted, grad),
                    Step::Fused(plan) => fused_backward(graph, env, plan, grad),
                };
                flows.map(|f| f.into_iter().map(|(n, g)| (n, Grad::Dense(g))).collect())
            }
        };
        let flows = match flows {
            Err(OpError::NoGradient) => return Ok(None),
            other => other.map_err(|e| graph.bad(first, e))?,
        };
        for (name, g) in flows {
            if depends.contains(name) {
                accumulate(&mut grads, name, g, Grad::add).map_err(|e| graph.bad(first, e))?;
            }
        }
        if start.is_some() {
            let label = step.label(graph);
            graph.profiler.add_op(
                &format!("{label} (backward)"),
                &graph.nodes[first].name,
                start,
            );
        }
    }
    // No gradient reached `from` (every path to it carried zeros): it is 0.
    let g = match grads.remove(from) {
        Some(g) => g,
        None => match env.get(from) {
            Some(Value::Float(f)) => Grad::Dense(f.with_tensor(f.tensor.zeros_like())),
            _ => return Ok(None),
        },
    };
    Ok(Some((g, tapped)))
}

/// Adds `g` to the gradient `grads` holds for `name` (or makes it that), by `add` (whole
/// gradients: [`boxed::sum`]; the reverse pass's own: [`Grad::add`]).
pub(super) fn accumulate<'a, G>(
    grads: &mut HashMap<&'a str, G>,
    name: &'a str,
    g: G,
    add: impl FnOnce(G, G, &str) -> OpResult<G>,
) -> OpResult<()> {
    let g = match grads.remove(name) {
        Some(sum) => add(sum, g, name)?,
        None => g,
    };
    grads.insert(name, g);
    Ok(())
}

/// Which of `names` want a gradient: the float tensors computed from the input (`depends`);
/// integer ones (shapes) carry none.
pub(super) fn wanted(
    graph: &Graph,
    env: &Env,
    depends: &HashSet<&str>,
    names: &[String],
) -> Vec<bool> {
    names
        .iter()
        .map(|n| {
            depends.contains(n.as_str()) && matches!(graph.value(env, n), Some(Value::Float(_)))
        })
        .collect()
}

/// The tensors a forward pass over `steps` computed from the value `from`.
pub(super) fn depending_on<'a>(
    graph: &'a Graph,
    steps: &[Step],
    from: &'a str,
) -> HashSet<&'a str> {
    let mut depends = HashSet::from([from]);
    for step in steps {
        let (first, last) = step.span();
        let reads = (first..=last)
            .flat_map(|j| &graph.nodes[j].inputs)
            .any(|n| depends.contains(n.as_str()));
        if reads {
            depends.insert(graph.nodes[last].output.as_str());
        }
    }
    depends
}

/// Node `i`'s input gradients, by input name.
pub(super) fn node_backward<'a>(
    graph: &'a Graph,
    env: &'a Env,
    i: usize,
    wanted: &[bool],
    grad: FloatValue,
) -> OpResult<Vec<(&'a str, FloatValue)>> {
    let node = &graph.nodes[i];
    let inputs: Vec<Option<&Value>> = node.inputs.iter().map(|n| graph.value(env, n)).collect();
    let output = env.get(&node.output).or_no_gradient()?;
    let step = Backward {
        inputs: &inputs,
        output,
        wanted,
        grad,
        pad: [(0, 0); 2],
        gate: None,
    };
    let gs = node.op.backward(step)?;
    Ok(node
        .inputs
        .iter()
        .zip(gs)
        .filter_map(|(n, g)| Some((n.as_str(), g?)))
        .collect())
}

/// A fused group's input gradients, by input name: through the activation (read off the
/// group's output), to the residual, and through the convolution with the fused padding.
fn fused_backward<'a>(
    graph: &'a Graph,
    env: &'a Env,
    plan: &'a Plan,
    mut grad: FloatValue,
) -> OpResult<Vec<(&'a str, FloatValue)>> {
    let output = env.get(&graph.nodes[plan.last()].output).or_no_gradient()?;
    let mut gate = None;
    if let Some((_, activation)) = plan.activation {
        let Value::Float(y) = output else {
            return Err(OpError::NoGradient);
        };
        if plan.add.is_none() {
            // The convolution applies it image by image, on its way in.
            gate = Some((activation, y));
        } else {
            grad = activation_grad(activation, y, &grad)?;
        }
    }
    let mut flows = Vec::new();
    if let Some((_, residual)) = &plan.add {
        flows.push((residual.as_str(), grad.clone()));
    }
    let conv = &graph.nodes[plan.conv];
    let FusedConv { input, inputs, pad } = FusedConv::of(graph, env, plan)?;
    let step = Backward {
        inputs: &inputs,
        output,
        wanted: &[true],
        grad,
        pad,
        gate,
    };
    let gs = conv.op.backward(step)?;
    if let Some(Some(g)) = gs.into_iter().next() {
        flows.push((input, g));
    }
    Ok(flows)
}
