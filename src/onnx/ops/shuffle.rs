//! A `Reshape` to rank 5 or more, a `Transpose` and a `Reshape` back, run as one op (fused at
//! load time by [`rewrite`](crate::onnx::rewrite)): ShuffleNet's channel shuffle. Tensors here
//! are at most 4-D, so the axes the permutation keeps side by side (and axes of size 1) are
//! merged first; `[N, 2, C/2, H, W]` with perm `[0, 2, 1, 3, 4]` runs as a 4-D transpose.

use super::shape::reshape_target;
use super::{BuildContext, OpResult, Operator, int_input, take_float};
use crate::onnx::value::{FloatValue, MAX_RANK, Value};

struct ReshapeTransposeReshape {
    perm: Vec<usize>,
    allow_zero: [bool; 2],
}

/// Builds the fused node.
pub fn build(ctx: &BuildContext) -> OpResult<Box<dyn Operator>> {
    let a = ctx.attrs();
    let perm = a.ints("perm").ok_or("the Transpose has no perm")?;
    let mut seen = vec![false; perm.len()];
    let perm = perm
        .iter()
        .map(|&p| {
            let p = usize::try_from(p)
                .ok()
                .filter(|&p| p < seen.len() && !seen[p]);
            p.inspect(|&p| seen[p] = true)
                .ok_or_else(|| format!("perm {perm:?} is not a permutation"))
        })
        .collect::<OpResult<Vec<_>>>()?;
    Ok(Box::new(ReshapeTransposeReshape {
        perm,
        allow_zero: [a.int("allowzero", 0) != 0, a.int("allowzero_2", 0) != 0],
    }))
}

/// `shape` permuted by `perm` as an equivalent transpose of lower rank: the source shape with
/// size-1 axes dropped and runs of axes that stay adjacent and in order merged, and the
/// permutation of those merged axes.
pub fn merged(shape: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<usize>) {
    // The source axes of size > 1, renumbered, in the output's order.
    let live: Vec<usize> = (0..shape.len()).filter(|&a| shape[a] != 1).collect();
    let kept = perm
        .iter()
        .filter_map(|&p| live.iter().position(|&l| l == p));
    // Groups of renumbered source axes, in the output's order.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for p in kept {
        match groups.last_mut() {
            Some(g) if g.last().map(|&l| l + 1) == Some(p) => g.push(p),
            _ => groups.push(vec![p]),
        }
    }
    if groups.is_empty() {
        return (vec![1], vec![0]);
    }
    let mut by_source: Vec<usize> = (0..groups.len()).collect();
    by_source.sort_by_key(|&g| groups[g][0]);
    let source_shape = by_source
        .iter()
        .map(|&g| groups[g].iter().map(|&a| shape[live[a]]).product())
        .collect();
    let merged_perm = (0..groups.len())
        .map(|g| by_source.iter().position(|&s| s == g).unwrap_or(g))
        .collect();
    (source_shape, merged_perm)
}

impl Operator for ReshapeTransposeReshape {
    fn run(&self, inputs: &mut [Option<Value>]) -> OpResult<Value> {
        let x = take_float(inputs, 0)?;
        let spec: Vec<i64> = int_input(inputs, 1)?.iter().copied().collect();
        let wide = reshape_target(&x.shape(), &spec, self.allow_zero[0])?;
        if wide.len() != self.perm.len() {
            return Err(format!(
                "perm {:?} does not fit the rank-{} shape {wide:?}",
                self.perm,
                wide.len()
            ));
        }
        let transposed: Vec<usize> = self.perm.iter().map(|&p| wide[p]).collect();
        let spec: Vec<i64> = int_input(inputs, 2)?.iter().copied().collect();
        let out = reshape_target(&transposed, &spec, self.allow_zero[1])?;
        let (source, perm) = merged(&wide, &self.perm);
        if source.len() > MAX_RANK {
            return Err(format!(
                "transposing {wide:?} by {:?} needs {} axes, more than the {MAX_RANK} supported",
                self.perm,
                source.len()
            ));
        }
        let x = x.reshape(&source).map_err(|e| e.to_string())?;
        let offset = MAX_RANK - source.len();
        let mut full: [usize; MAX_RANK] = std::array::from_fn(|i| i);
        for (i, &p) in perm.iter().enumerate() {
            full[offset + i] = offset + p;
        }
        let y = FloatValue {
            tensor: x.tensor.permute(full),
            rank: source.len(),
        };
        y.reshape(&out).map(Value::Float).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::merged;

    #[test]
    fn a_channel_shuffle_merges_to_rank_three() {
        // [N=1, g=2, C/g=24, H, W] by [0, 2, 1, 3, 4]: the batch of 1 drops, H and W merge.
        assert_eq!(
            merged(&[1, 2, 24, 28, 28], &[0, 2, 1, 3, 4]),
            (vec![2, 24, 784], vec![1, 0, 2])
        );
        // A batch of 8 stays: rank 4.
        assert_eq!(
            merged(&[8, 2, 24, 28, 28], &[0, 2, 1, 3, 4]),
            (vec![8, 2, 24, 784], vec![0, 2, 1, 3])
        );
        // Axes either side of a dropped size-1 axis merge.
        assert_eq!(
            merged(&[4, 1, 5, 6], &[2, 3, 0, 1]),
            (vec![4, 30], vec![1, 0])
        );
        assert_eq!(merged(&[1, 1], &[1, 0]), (vec![1], vec![0]));
        // Nothing stays together in a full reversal.
        assert_eq!(
            merged(&[2, 3, 4, 5, 6], &[4, 3, 2, 1, 0]),
            (vec![2, 3, 4, 5, 6], vec![4, 3, 2, 1, 0])
        );
    }
}
