//! The issuer graph: a topological order over CAs, and the cycle path when there is none.

/// Orders `n` nodes so that each comes after its parent. `parent[i]` is the index of the node that
/// must come first. Returns the order, or the nodes of one cycle in order (`a -> b -> a`).
pub(crate) fn order(parent: &[Option<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark = vec![Mark::New; parent.len()];
    let mut out = Vec::with_capacity(parent.len());
    for start in 0..parent.len() {
        // Walk up the parent chain; it is a chain, not a tree, so no recursion is needed.
        let mut chain = Vec::new();
        let mut cur = Some(start);
        while let Some(i) = cur {
            match mark[i] {
                Mark::Done => break,
                Mark::Active => {
                    let from = chain.iter().position(|&c| c == i).unwrap_or(0);
                    return Err(chain[from..].to_vec());
                }
                Mark::New => {
                    mark[i] = Mark::Active;
                    chain.push(i);
                    cur = parent[i];
                }
            }
        }
        for &i in chain.iter().rev() {
            mark[i] = Mark::Done;
            out.push(i);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::order;

    #[test]
    fn parents_come_first() {
        let o = order(&[Some(2), None, Some(1)]).unwrap();
        let pos = |x| o.iter().position(|&i| i == x).unwrap();
        assert!(pos(1) < pos(2) && pos(2) < pos(0));
    }

    #[test]
    fn cycles_are_named() {
        let err = order(&[None, Some(2), Some(3), Some(1)]).unwrap_err();
        assert_eq!(err.len(), 3);
        assert!(err.contains(&1) && err.contains(&2) && err.contains(&3));
        assert_eq!(order(&[Some(0)]).unwrap_err(), vec![0]);
    }
}
