//! Side-by-side timing shared by the benches: rounds of both operations interleave, so drift
//! (frequency scaling, other load) hits both alike, and the medians are compared.

use std::time::Instant;

/// Times `a` and `b` on `setup` in `rounds` interleaved rounds of `per_round` calls each;
/// returns the median nanoseconds per call of each.
pub fn side_by_side<S>(setup: &S, a: fn(&S), b: fn(&S), per_round: u32) -> (f64, f64) {
    const ROUNDS: usize = 61;
    let time = |f: fn(&S)| {
        let start = Instant::now();
        for _ in 0..per_round {
            f(setup);
        }
        start.elapsed().as_nanos() as f64 / f64::from(per_round)
    };
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        ta.push(time(a));
        tb.push(time(b));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(&mut ta), median(&mut tb))
}
