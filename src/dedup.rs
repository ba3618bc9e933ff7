//! The one de-duplication rule every list of targets and methods follows: keep the first
//! occurrence of each item, in order.

/// `items` without repeats, each kept where it first appears.
pub fn unique<T: PartialEq>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn first_occurrences_in_order() {
        assert_eq!(super::unique([3, 1, 3, 2, 1]), [3, 1, 2]);
        assert_eq!(super::unique(Vec::<u8>::new()), Vec::<u8>::new());
    }
}
