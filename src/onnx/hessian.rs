//! Hessian-vector products on Burn's CPU backend (ShapleyCAM's `H·A`), by forward mode over
//! the host reverse pass: the rest of the graph runs once node by node keeping every value
//! ([`run_retaining_unfused`](super::exec::run_retaining_unfused)); the tangents of the values
//! computed from `from` go forward along `direction` (`ẏ = J ẋ` per op); then one reverse pass
//! carries the gradient `g` and its tangent `ġ` together: through each op,
//! `ġ_x = backward(ġ_y) + curvature(g_y)`, the curvature being the reverse step's own
//! derivative along the tangents. What reaches `from` is `H · direction`.
//!
//! An op that is affine in each input carrying a tangent (convolutions, sums and products,
//! matrix products, reshapes and joins, average pooling) needs no rule of its own: its tangent
//! is `sum_i f(x_i + ẋ_i) - f(x)`, and input `i`'s curvature is
//! `sum_{j != i} backward_i(x_j + ẋ_j) - backward_i(x)`, both exact, since such an op's reverse
//! step for one input is affine in the others (and constant in its own). The other ops give
//! [`Operator::tangent`] and [`Operator::curvature`] (the activations, max pooling).

use std::collections::HashMap;

use super::backprop::{accumulate, depending_on, node_backward, wanted};
use super::boxed;
use super::exec::Step;
use super::graph::{Env, Graph};
use super::ops::{Backward, OpResult, Operator, Tangents};
use super::value::{FloatValue, Value};
use crate::error::{Error, OpError, Result};

/// The seed's tangent from the output's (see [`hessian_vector`]).
pub type SeedTangent<'a> = dyn Fn(&FloatValue) -> Result<Option<FloatValue>> + 'a;

/// `H · direction`: the derivative along `direction` of the gradient, with respect to the value
/// `from`, of the graph's output seeded with `seed`, whose own tangent `seed_tangent` gives from
/// the output's (`None` where the seed does not depend on the output: a logit, a region's
/// sum). `env` and `steps` come from
/// [`run_retaining_unfused`](super::exec::run_retaining_unfused) over the nodes after `from`'s
/// producer. An op on the way without a host gradient or a second-order rule refuses with
/// [`Error::MethodUnavailable`] naming it.
pub fn hessian_vector<'a>(
    graph: &'a Graph,
    env: &'a Env,
    steps: &'a [Step],
    (seed, seed_tangent): (FloatValue, &SeedTangent),
    from: &'a str,
    direction: FloatValue,
) -> Result<FloatValue> {
    let zero = direction.with_tensor(direction.tensor.zeros_like());
    let nodes = steps
        .iter()
        .map(|step| match step {
            Step::Node(i) => Ok(*i),
            Step::Fused(_) => Err(Error::Internal(
                "a Hessian-vector product over a fused step".into(),
            )),
        })
        .collect::<Result<Vec<usize>>>()?;
    let tangents = forward_tangents(graph, env, &nodes, from, direction)?;
    let depends = depending_on(graph, steps, from);
    let output = graph.output.as_str();
    let mut dots: HashMap<&str, FloatValue> = HashMap::new();
    if let Some(t) = tangents.get(output)
        && let Some(d) = seed_tangent(t)?
    {
        dots.insert(output, d);
    }
    let mut grads: HashMap<&str, FloatValue> = HashMap::from([(output, seed)]);
    for &i in nodes.iter().rev() {
        let node = &graph.nodes[i];
        let (grad, dot) = (
            grads.remove(node.output.as_str()),
            dots.remove(node.output.as_str()),
        );
        if grad.is_none() && dot.is_none() {
            continue;
        }
        let want = wanted(graph, env, &depends, &node.inputs);
        let start = graph.profiler.now();
        let fail = |e: OpError| unavailable(graph, i, e);
        let mut flows: Vec<(&str, FloatValue, bool)> = Vec::new();
        if let Some(g) = &grad {
            for (name, g) in node_backward(graph, env, i, &want, g.clone()).map_err(fail)? {
                flows.push((name, g, false));
            }
        }
        if let Some(d) = dot {
            for (name, d) in node_backward(graph, env, i, &want, d).map_err(fail)? {
                flows.push((name, d, true));
            }
        }
        let ts: Vec<Option<&FloatValue>> = node
            .inputs
            .iter()
            .map(|n| tangents.get(n.as_str()))
            .collect();
        if let Some(g) = &grad
            && ts.iter().any(Option::is_some)
        {
            let inputs: Vec<Option<&Value>> =
                node.inputs.iter().map(|n| graph.value(env, n)).collect();
            let output = env
                .get(&node.output)
                .ok_or_else(|| fail(OpError::NoSecondOrder))?;
            let step = Tangents {
                inputs: &inputs,
                output,
                tangents: &ts,
            };
            let terms = curvature(node.op.as_ref(), &step, &want, g).map_err(fail)?;
            for (name, term) in node.inputs.iter().zip(terms) {
                if let Some(term) = term {
                    flows.push((name.as_str(), term, true));
                }
            }
        }
        for (name, value, is_dot) in flows {
            if depends.contains(name) {
                let map = if is_dot { &mut dots } else { &mut grads };
                accumulate(map, name, value, boxed::sum).map_err(fail)?;
            }
        }
        if start.is_some() {
            graph
                .profiler
                .add_op(&format!("{} (Hessian)", node.op_type), &node.name, start);
        }
    }
    Ok(dots.remove(from).unwrap_or(zero))
}

/// The tangent of every value computed from `from` along `direction`, node by node.
fn forward_tangents<'a>(
    graph: &'a Graph,
    env: &'a Env,
    nodes: &[usize],
    from: &'a str,
    direction: FloatValue,
) -> Result<HashMap<&'a str, FloatValue>> {
    let mut tangents: HashMap<&str, FloatValue> = HashMap::from([(from, direction)]);
    for &i in nodes {
        let node = &graph.nodes[i];
        let ts: Vec<Option<FloatValue>> = node
            .inputs
            .iter()
            .map(|n| tangents.get(n.as_str()).cloned())
            .collect();
        // Shapes read off a tangent-carrying value are integers: they carry none.
        let output = match env.get(&node.output) {
            Some(v @ Value::Float(_)) if ts.iter().any(Option::is_some) => v,
            _ => continue,
        };
        let start = graph.profiler.now();
        let inputs: Vec<Option<&Value>> = node.inputs.iter().map(|n| graph.value(env, n)).collect();
        let ts: Vec<Option<&FloatValue>> = ts.iter().map(Option::as_ref).collect();
        let step = Tangents {
            inputs: &inputs,
            output,
            tangents: &ts,
        };
        let t = tangent(node.op.as_ref(), &step).map_err(|e| unavailable(graph, i, e))?;
        tangents.insert(node.output.as_str(), t);
        if start.is_some() {
            graph
                .profiler
                .add_op(&format!("{} (tangent)", node.op_type), &node.name, start);
        }
    }
    Ok(tangents)
}

/// The inputs carrying a tangent.
fn carrying(step: &Tangents) -> Vec<usize> {
    (0..step.tangents.len())
        .filter(|&i| step.tangents[i].is_some())
        .collect()
}

/// The inputs with input `i` moved by its tangent: `x_i + ẋ_i`.
fn moved(step: &Tangents, i: usize) -> OpResult<Vec<Option<Value>>> {
    let mut inputs: Vec<Option<Value>> = step.inputs.iter().map(|v| v.cloned()).collect();
    let (Some(Some(Value::Float(x))), Some(Some(t))) = (inputs.get(i), step.tangents.get(i)) else {
        return Err(OpError::NoSecondOrder);
    };
    if x.tensor.dims() != t.tensor.dims() {
        return Err(OpError::Shape(format!(
            "a tangent of shape {:?} for a tensor of {:?}",
            t.shape(),
            x.shape()
        )));
    }
    inputs[i] = Some(Value::Float(
        x.with_tensor(x.tensor.clone().add(t.tensor.clone())),
    ));
    Ok(inputs)
}

/// One op's output tangent.
fn tangent(op: &dyn Operator, step: &Tangents) -> OpResult<FloatValue> {
    let carrying = carrying(step);
    if !carrying.iter().all(|&i| op.affine_in(i)) {
        return op.tangent(step);
    }
    let y = step.float_output()?;
    let mut sum: Option<FloatValue> = None;
    for i in carrying {
        let Value::Float(f) = op.run(&mut moved(step, i)?)? else {
            return Err(OpError::NoSecondOrder);
        };
        if f.tensor.dims() != y.tensor.dims() {
            return Err(OpError::Shape(format!(
                "the moved output has shape {:?}, the output {:?}",
                f.shape(),
                y.shape()
            )));
        }
        let d = f.tensor.sub(y.tensor.clone());
        sum = Some(y.with_tensor(match sum {
            Some(s) => s.tensor.add(d),
            None => d,
        }));
    }
    sum.ok_or(OpError::NoSecondOrder)
}

/// One op's curvature terms per input (`None`: zero), with the output's gradient `grad`.
fn curvature(
    op: &dyn Operator,
    step: &Tangents,
    wanted: &[bool],
    grad: &FloatValue,
) -> OpResult<Vec<Option<FloatValue>>> {
    let carrying = carrying(step);
    if !carrying.iter().all(|&i| op.affine_in(i)) {
        return op.curvature(step, grad);
    }
    let mut terms: Vec<Option<FloatValue>> = vec![None; step.inputs.len()];
    if carrying.len() < 2 {
        // Affine in its one moving input: the reverse step does not depend on it.
        return Ok(terms);
    }
    let reverse = |inputs: &[Option<&Value>]| {
        op.backward(Backward {
            inputs,
            output: step.output,
            wanted,
            grad: grad.clone(),
            pad: [(0, 0); 2],
            gate: None,
        })
    };
    let at = reverse(step.inputs)?;
    for &j in &carrying {
        let moved = moved(step, j)?;
        let refs: Vec<Option<&Value>> = moved.iter().map(Option::as_ref).collect();
        let shifted = reverse(&refs)?;
        for (i, (term, (now, then))) in terms.iter_mut().zip(at.iter().zip(shifted)).enumerate() {
            if i == j {
                continue;
            }
            // Exactly zero where the reverse step does not read the other inputs (sums,
            // joins): dropped, so no tangent of the gradient starts there.
            let diff = match (then, now) {
                (Some(a), Some(b)) => {
                    Backward::unless_zero(&a, a.tensor.clone().sub(b.tensor.clone()))
                }
                (Some(a), None) => Some(a),
                (None, Some(b)) => Some(b.with_tensor(b.tensor.clone().neg())),
                (None, None) => None,
            };
            let Some(diff) = diff else {
                continue;
            };
            *term = Some(match term.take() {
                Some(t) => {
                    let sum = t.tensor.clone().add(diff.tensor);
                    t.with_tensor(sum)
                }
                None => diff,
            });
        }
    }
    Ok(terms)
}

/// The error of node `i`, which the Hessian-vector product cannot go through.
fn unavailable(graph: &Graph, i: usize, e: OpError) -> Error {
    let node = &graph.nodes[i];
    match e {
        OpError::NoGradient | OpError::NoSecondOrder => Error::MethodUnavailable(format!(
            "ShapleyCAM needs the Hessian-vector product through node `{}` ({}), for which igcam has no second-order rule (it has them for convolutions, batch normalisation, average pooling, max pooling without ceil_mode, products with a constant matrix, arithmetic, reshapes, joins and resizes, ReLU, ReLU6, LeakyReLU, Sigmoid, SiLU, HardSigmoid, HardSwish and Softmax); explain a layer after it or pick another method",
            node.name, node.op_type
        )),
        other => graph.bad(i, other),
    }
}
