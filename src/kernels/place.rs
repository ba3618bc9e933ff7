//! A block of values placed into a zero tensor at an offset: the gradient of a slice or a
//! split (timm's attention splits q, k and v off a rank-5 tensor), written row by row of the
//! last axis where Burn's CPU backend assigned the block into zeros value by value.

/// A row-major tensor of `shape`, zero but for `block` (row-major, `block_shape`) at `start`.
/// Panics unless the block fits.
pub fn placed(block: &[f32], block_shape: &[usize], shape: &[usize], start: &[usize]) -> Vec<f32> {
    let rank = shape.len();
    assert!(
        rank > 0
            && block_shape.len() == rank
            && start.len() == rank
            && (0..rank).all(|a| start[a] + block_shape[a] <= shape[a])
            && block.len() == block_shape.iter().product::<usize>(),
        "a block of {block_shape:?} at {start:?} in {shape:?}"
    );
    let mut out = vec![0.0; shape.iter().product()];
    let run = block_shape[rank - 1];
    if run == 0 || block.is_empty() {
        return out;
    }
    let mut strides = vec![1usize; rank];
    for a in (0..rank - 1).rev() {
        strides[a] = strides[a + 1] * shape[a + 1];
    }
    let mut index = vec![0usize; rank - 1];
    for row in block.chunks_exact(run) {
        let to: usize = (0..rank)
            .map(|a| (start[a] + index.get(a).copied().unwrap_or(0)) * strides[a])
            .sum();
        out[to..to + run].copy_from_slice(row);
        for a in (0..rank - 1).rev() {
            index[a] += 1;
            if index[a] < block_shape[a] {
                break;
            }
            index[a] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_lands_at_its_offset_among_zeros() {
        let block: Vec<f32> = (1..=6).map(|v| v as f32).collect();
        let got = placed(&block, &[1, 2, 3], &[2, 3, 4], &[1, 1, 1]);
        let mut want = vec![0.0; 24];
        for (i, &v) in block.iter().enumerate() {
            let (r, c) = (i / 3, i % 3);
            want[12 + (1 + r) * 4 + 1 + c] = v;
        }
        assert_eq!(got, want);
    }
}
