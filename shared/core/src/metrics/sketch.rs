//! A mergeable distribution of durations: a log-bucketed histogram (the DDSketch mapping) with
//! a relative error of at most [`RELATIVE_ERROR`].
//!
//! A value `v ≥ 1` goes to bucket `i = ⌈ln v / ln γ⌉` with `γ = (1 + α) / (1 − α)`; every value
//! of bucket `i` lies in `(γ^(i−1), γ^i]`, and the bucket answers `2γ^i / (γ + 1)`, within `α`
//! of each. Values below one second (an answer in the same second) are counted apart, as 0.
//! Buckets only ever add, so hours merge into days and months by adding counts, and a store
//! keeps them as plain counters updated with an atomic `ADD`: a response time of up to a year
//! needs at most 870 buckets, and a day's answers rarely touch more than a few dozen.

use std::collections::BTreeMap;

/// The relative error of every quantile: 1 %.
pub const RELATIVE_ERROR: f64 = 0.01;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR)
}

/// A distribution of durations in seconds. See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sketch {
    /// Observations below one second.
    zero: u64,
    /// Observations per bucket index.
    buckets: BTreeMap<u32, u64>,
    /// Sum of the observations, in seconds (exact: the mean is exact).
    sum: i64,
}

impl Sketch {
    /// The bucket of a value of at least one second.
    pub fn index(seconds: f64) -> u32 {
        // ln(1) = 0: one second is bucket 0. The float can land a hair above an integer for an
        // exact power of γ; that only moves the value to the next bucket's lower edge.
        (seconds.ln() / gamma().ln()).ceil().max(0.0) as u32
    }

    /// The value a bucket answers for its observations.
    pub fn value(index: u32) -> f64 {
        let g = gamma();
        2.0 * g.powi(index as i32) / (g + 1.0)
    }

    /// Adds one observation of `seconds` (negative ones count as 0).
    pub fn add(&mut self, seconds: i64) {
        self.add_n(seconds, 1);
    }

    fn add_n(&mut self, seconds: i64, n: u64) {
        let seconds = seconds.max(0);
        self.sum += seconds * n as i64;
        if seconds < 1 {
            self.zero += n;
        } else {
            *self.buckets.entry(Self::index(seconds as f64)).or_default() += n;
        }
    }

    /// Adds every observation of `other`.
    pub fn merge(&mut self, other: &Sketch) {
        self.zero += other.zero;
        self.sum += other.sum;
        for (i, n) in &other.buckets {
            *self.buckets.entry(*i).or_default() += n;
        }
    }

    /// How many observations.
    pub fn count(&self) -> u64 {
        self.zero + self.buckets.values().sum::<u64>()
    }

    /// The exact sum, in seconds.
    pub fn sum(&self) -> i64 {
        self.sum
    }

    /// The exact mean; `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        let n = self.count();
        (n > 0).then(|| self.sum as f64 / n as f64)
    }

    /// The `q`-quantile (0 ≤ q ≤ 1): within [`RELATIVE_ERROR`] of the observation of rank
    /// `⌊q · (n − 1)⌋` in ascending order (0 for one below a second). `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (n - 1) as f64).floor() as u64;
        if rank < self.zero {
            return Some(0.0);
        }
        let mut seen = self.zero;
        for (i, c) in &self.buckets {
            seen += c;
            if seen > rank {
                return Some(Self::value(*i));
            }
        }
        None
    }

    /// The `qs`-quantiles (each as [`Sketch::quantile`]) in one pass; `qs` ascending.
    pub fn quantiles<const N: usize>(&self, qs: [f64; N]) -> [Option<f64>; N] {
        let n = self.count();
        let mut out = [None; N];
        if n == 0 {
            return out;
        }
        let ranks = qs.map(|q| (q.clamp(0.0, 1.0) * (n - 1) as f64).floor() as u64);
        let mut next = 0;
        while next < N && ranks[next] < self.zero {
            out[next] = Some(0.0);
            next += 1;
        }
        let mut seen = self.zero;
        for (i, c) in &self.buckets {
            seen += c;
            while next < N && seen > ranks[next] {
                out[next] = Some(Self::value(*i));
                next += 1;
            }
            if next == N {
                break;
            }
        }
        out
    }

    /// The largest observation, within [`RELATIVE_ERROR`]; `None` when empty.
    pub fn max(&self) -> Option<f64> {
        match self.buckets.keys().next_back() {
            Some(i) => Some(Self::value(*i)),
            None => (self.zero > 0).then_some(0.0),
        }
    }

    /// The sketch as named counters, each prefixed with `prefix`: `<p>n` (count), `<p>s` (sum),
    /// `<p>z` (below a second), `<p><i>` (bucket `i`). What a store adds up.
    pub fn fields(&self, prefix: &str) -> Vec<(String, i64)> {
        let mut out = Vec::with_capacity(self.buckets.len() + 3);
        let n = self.count();
        if n == 0 {
            return out;
        }
        out.push((format!("{prefix}n"), n as i64));
        out.push((format!("{prefix}s"), self.sum));
        if self.zero > 0 {
            out.push((format!("{prefix}z"), self.zero as i64));
        }
        for (i, c) in &self.buckets {
            out.push((format!("{prefix}{i}"), *c as i64));
        }
        out
    }

    /// Adds the counter `name` (without the prefix) of [`Sketch::fields`]; answers false for a
    /// name that is not one of them (`n`, the count, is derived and ignored).
    pub fn add_field(&mut self, name: &str, value: i64) -> bool {
        let value_u = value.max(0) as u64;
        match name {
            "n" => {}
            "s" => self.sum += value,
            "z" => self.zero += value_u,
            i => match i.parse::<u32>() {
                Ok(i) => *self.buckets.entry(i).or_default() += value_u,
                Err(_) => return false,
            },
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(values: &mut [i64], q: f64) -> f64 {
        values.sort_unstable();
        let rank = (q * (values.len() - 1) as f64).floor() as usize;
        values[rank] as f64
    }

    fn within(got: f64, want: f64) -> bool {
        (got - want).abs() <= RELATIVE_ERROR * want + 1e-9
    }

    #[test]
    fn every_bucket_answers_within_one_percent_of_its_values() {
        for v in [
            1_i64, 2, 3, 59, 60, 61, 899, 900, 3_600, 14_400, 86_400, 31_536_000,
        ] {
            let got = Sketch::value(Sketch::index(v as f64));
            assert!(within(got, v as f64), "{v}: {got}");
        }
        assert!(Sketch::index(31_536_000.0) < 870);
    }

    #[test]
    fn sub_second_answers_count_as_zero_and_the_mean_is_exact() {
        let mut s = Sketch::default();
        for v in [0, 0, 10, 20] {
            s.add(v);
        }
        assert_eq!(s.count(), 4);
        assert_eq!(s.mean(), Some(7.5));
        assert_eq!(s.quantile(0.0), Some(0.0));
        assert_eq!(s.quantile(0.5), Some(0.0));
        assert!(within(s.quantile(1.0).unwrap(), 20.0));
        assert!(within(s.max().unwrap(), 20.0));
        assert_eq!(Sketch::default().quantile(0.5), None);
        assert_eq!(Sketch::default().max(), None);
    }

    #[test]
    fn fields_read_back_into_the_same_sketch() {
        let mut s = Sketch::default();
        for v in [0, 5, 5, 300, 7_200] {
            s.add(v);
        }
        let mut back = Sketch::default();
        for (name, value) in s.fields("fr_") {
            assert!(back.add_field(name.strip_prefix("fr_").unwrap(), value));
        }
        assert_eq!(back, s);
        assert!(!back.add_field("x", 1));
    }

    proptest! {
        #[test]
        fn quantiles_of_merged_parts_are_within_the_stated_error(
            a in proptest::collection::vec(0_i64..2_000_000, 1..200),
            b in proptest::collection::vec(0_i64..2_000_000, 0..200),
            q in 0.0_f64..=1.0,
        ) {
            let (mut left, mut right) = (Sketch::default(), Sketch::default());
            a.iter().for_each(|v| left.add(*v));
            b.iter().for_each(|v| right.add(*v));
            left.merge(&right);
            let mut all: Vec<i64> = a.iter().chain(&b).copied().collect();
            prop_assert_eq!(left.count(), all.len() as u64);
            prop_assert_eq!(left.sum(), all.iter().sum::<i64>());
            let want = exact(&mut all, q);
            let got = left.quantile(q).unwrap();
            prop_assert!(within(got, want), "q {} got {} want {}", q, got, want);
            let [a, b, c] = left.quantiles([0.5, 0.9, 0.99]);
            prop_assert_eq!(a, left.quantile(0.5));
            prop_assert_eq!(b, left.quantile(0.9));
            prop_assert_eq!(c, left.quantile(0.99));
            let max = *all.iter().max().unwrap() as f64;
            prop_assert!(within(left.max().unwrap(), max));
        }
    }
}
