//! The strongest chain of links from each seller of a cluster to a member
//! closed for counterfeiting: what `linked_to_closed_seller` names and
//! weighs. Run per cluster that has such a member, in memory: those
//! clusters are small (hot values link nobody), and the rest of the graph
//! never comes here.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use dajia_kernels::risk::Weights;

/// A chain: one step per seller reached, `(attributes shared at the step
/// joined by '+', seller)`; the last seller is closed.
pub type Chain = Vec<(String, i64)>;

/// For every seller linked (through any number of steps) to a seller of
/// `closed`, its chain with the highest `Weights::link_path_weight`
/// (fewest steps among equals). `edges` are `(a, b, attributes)`: the pair
/// shares those attributes (`a+b` or one); pairs may repeat. Closed sellers
/// get no chain.
pub fn strongest_chains(
    edges: &[(i64, i64, String)],
    closed: &HashSet<i64>,
    w: &Weights,
) -> HashMap<i64, Chain> {
    // One step per pair, sharing the union of its attributes.
    let mut pairs: HashMap<(i64, i64), BTreeSet<&str>> = HashMap::new();
    for (a, b, attrs) in edges {
        if a == b {
            continue;
        }
        let key = ((*a).min(*b), (*a).max(*b));
        pairs
            .entry(key)
            .or_default()
            .extend(attrs.split('+').filter(|s| !s.is_empty()));
    }
    let mut adj: HashMap<i64, Vec<(i64, usize)>> = HashMap::new();
    let mut steps: Vec<(String, f32)> = Vec::new();
    for ((a, b), attrs) in pairs {
        let joined = attrs.into_iter().collect::<Vec<_>>().join("+");
        let weight = w.link_step_weight(&joined);
        steps.push((joined, weight));
        let k = steps.len() - 1;
        adj.entry(a).or_default().push((b, k));
        adj.entry(b).or_default().push((a, k));
    }
    for v in adj.values_mut() {
        v.sort_unstable();
    }
    // The best chain's weight is its weakest step times a decay per step.
    // For each candidate weakest weight t (the distinct step weights), a
    // breadth-first search over steps of weight ≥ t from the closed sellers
    // gives the fewest steps; the best over t is the best chain (exact: the
    // optimal chain's weakest step is one of the t).
    let mut thresholds: Vec<f32> = steps.iter().map(|s| s.1).filter(|&x| x > 0.0).collect();
    thresholds.sort_by(|x, y| y.total_cmp(x));
    thresholds.dedup();
    let mut sources: Vec<i64> = closed
        .iter()
        .copied()
        .filter(|c| adj.contains_key(c))
        .collect();
    sources.sort_unstable();
    let mut best: HashMap<i64, (f32, Chain)> = HashMap::new();
    for t in thresholds {
        // parent[x] = (next seller towards a closed one, step index)
        let mut parent: HashMap<i64, (i64, usize)> = HashMap::new();
        let mut seen: HashSet<i64> = sources.iter().copied().collect();
        let mut queue: VecDeque<i64> = sources.iter().copied().collect();
        while let Some(x) = queue.pop_front() {
            for &(y, k) in &adj[&x] {
                if steps[k].1 >= t && seen.insert(y) {
                    parent.insert(y, (x, k));
                    queue.push_back(y);
                }
            }
        }
        for &s in parent.keys() {
            if closed.contains(&s) {
                continue;
            }
            let mut chain = Chain::new();
            let mut at = s;
            while let Some(&(next, k)) = parent.get(&at) {
                chain.push((steps[k].0.clone(), next));
                at = next;
            }
            let weight = w.link_path_weight(chain.iter().map(|(a, _)| a.as_str()));
            let better = match best.get(&s) {
                None => true,
                Some((bw, bc)) => weight > *bw || (weight == *bw && chain.len() < bc.len()),
            };
            if better {
                best.insert(s, (weight, chain));
            }
        }
    }
    best.into_iter().map(|(s, (_, c))| (s, c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(a: i64, b: i64, attrs: &str) -> (i64, i64, String) {
        (a, b, attrs.to_string())
    }

    #[test]
    fn a_ring_reaches_the_closed_seller_through_every_hop() {
        // 1 closed; 2 shares a phone with 1, 3 a bank account with 2, 4 a
        // device and an address with 3.
        let edges = vec![
            e(2, 1, "phone_hash"),
            e(3, 2, "bank_account_hash"),
            e(4, 3, "address_hash+device_hash"),
        ];
        let closed = HashSet::from([1]);
        let got = strongest_chains(&edges, &closed, &Weights::default());
        assert_eq!(got.len(), 3);
        assert_eq!(got[&2], vec![("phone_hash".to_string(), 1)]);
        assert_eq!(
            got[&4],
            vec![
                ("address_hash+device_hash".to_string(), 3),
                ("bank_account_hash".to_string(), 2),
                ("phone_hash".to_string(), 1)
            ]
        );
    }

    #[test]
    fn a_longer_chain_of_strong_links_beats_a_short_weak_one() {
        let w = Weights::default();
        // 5 reaches closed 1 directly by a shared name only (0.2), or in
        // two steps by ID numbers (0.8 · 0.95).
        let edges = vec![
            e(5, 1, "id_name_hash"),
            e(5, 6, "id_number_hash"),
            e(6, 1, "id_number_hash"),
        ];
        let got = strongest_chains(&edges, &HashSet::from([1]), &w);
        assert_eq!(got[&5].len(), 2, "{:?}", got[&5]);
        // Repeated pairs merge their attributes into one step.
        let edges = vec![e(7, 1, "phone_hash"), e(1, 7, "device_hash")];
        let got = strongest_chains(&edges, &HashSet::from([1]), &w);
        assert_eq!(got[&7], vec![("device_hash+phone_hash".to_string(), 1)]);
    }

    #[test]
    fn without_a_closed_member_nobody_has_a_chain() {
        let edges = vec![e(2, 1, "phone_hash"), e(3, 2, "phone_hash")];
        assert!(strongest_chains(&edges, &HashSet::from([99]), &Weights::default()).is_empty());
        assert!(strongest_chains(&[], &HashSet::from([1]), &Weights::default()).is_empty());
    }
}
