//! The figures: per binary, the median and 90th percentile of each measure, and the ratio of
//! its medians to the baseline's (`coldstart-hello`).

use serde_json::{Value, json};

/// One measured cold start.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Spawn → the first `/response` received (ms).
    pub cold_ms: f64,
    /// Spawn → the first `GET /next` received (ms).
    pub init_ms: f64,
    /// `VmHWM` just before the kill (KiB).
    pub peak_rss_kib: u64,
    /// `ru_maxrss` from `wait4` (KiB); see the `process` module for why it is only a cross-check.
    pub ru_maxrss_kib: u64,
}

/// The results of one binary.
#[derive(Debug, Clone)]
pub struct Results {
    /// Its file name.
    pub name: String,
    /// Its measured runs.
    pub samples: Vec<Sample>,
    /// Why it failed, if it did (later runs are then skipped).
    pub failure: Option<String>,
}

/// Median and 90th percentile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The median (the mean of the two middle values for an even count).
    pub median: f64,
    /// The 90th percentile, nearest rank: the smallest value with at least 90 % of the values
    /// at or below it.
    pub p90: f64,
}

impl Summary {
    /// `None` for no values.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        let rank = (n * 9).div_ceil(10).max(1);
        Some(Self {
            median,
            p90: v[rank - 1],
        })
    }

    fn json(self) -> Value {
        json!({ "median": round(self.median), "p90": round(self.p90) })
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The summaries of one binary.
#[derive(Debug, Clone, Copy)]
struct Figures {
    cold: Summary,
    init: Summary,
    invoke: Summary,
    rss: Summary,
    ru_maxrss: Summary,
}

impl Figures {
    fn of(samples: &[Sample]) -> Option<Self> {
        Some(Self {
            cold: Summary::of(samples.iter().map(|s| s.cold_ms))?,
            init: Summary::of(samples.iter().map(|s| s.init_ms))?,
            invoke: Summary::of(samples.iter().map(|s| s.cold_ms - s.init_ms))?,
            rss: Summary::of(samples.iter().map(|s| mib(s.peak_rss_kib)))?,
            ru_maxrss: Summary::of(samples.iter().map(|s| mib(s.ru_maxrss_kib)))?,
        })
    }
}

/// The ratio target of the issue: a function's median cold start within this many times the
/// baseline's.
pub const TARGET_RATIO: f64 = 3.0;

/// The report as a table.
pub fn table(results: &[Results], baseline: Option<&str>) -> String {
    let base = baseline_figures(results, baseline);
    let mut out = format!(
        "{:<18} {:>4} | {:>13} | {:>13} | {:>6} | {:>11} | {:>6} | {:>20}\n",
        "",
        "",
        "cold start ms",
        "init ms",
        "invoke",
        "peak RSS MiB",
        "maxrss",
        "median / baseline's"
    );
    out.push_str(&format!(
        "{:<18} {:>4} | {:>6} {:>6} | {:>6} {:>6} | {:>6} | {:>5} {:>5} | {:>6} | {:>6} {:>6} {:>6}\n",
        "binary", "runs", "median", "p90", "median", "p90", "median", "med", "p90", "median",
        "cold", "init", "RSS",
    ));
    for r in results {
        let Some(f) = Figures::of(&r.samples) else {
            out.push_str(&format!("{:<18} {:>4} | failed\n", r.name, 0));
            continue;
        };
        let ratio = |x: f64, b: Option<f64>| match b {
            Some(b) if b > 0.0 => format!("{:.2}x", x / b),
            _ => "-".to_owned(),
        };
        out.push_str(&format!(
            "{:<18} {:>4} | {:>6.1} {:>6.1} | {:>6.1} {:>6.1} | {:>6.1} | {:>5.1} {:>5.1} | {:>6.1} | {:>6} {:>6} {:>6}{}\n",
            r.name,
            r.samples.len(),
            f.cold.median,
            f.cold.p90,
            f.init.median,
            f.init.p90,
            f.invoke.median,
            f.rss.median,
            f.rss.p90,
            f.ru_maxrss.median,
            ratio(f.cold.median, base.map(|b| b.cold.median)),
            ratio(f.init.median, base.map(|b| b.init.median)),
            ratio(f.rss.median, base.map(|b| b.rss.median)),
            if r.failure.is_some() { "  (failed)" } else { "" },
        ));
    }
    out
}

/// The report as JSON.
pub fn to_json(results: &[Results], baseline: Option<&str>, runs: u32, warmup: u32) -> Value {
    let base = baseline_figures(results, baseline);
    let ratio = |x: f64, b: f64| if b > 0.0 { Some(round(x / b)) } else { None };
    let binaries: Vec<Value> = results
        .iter()
        .map(|r| {
            let figures = Figures::of(&r.samples);
            json!({
                "binary": r.name,
                "runs": r.samples.len(),
                "failure": r.failure,
                "cold_start_ms": figures.map(|f| f.cold.json()),
                "init_ms": figures.map(|f| f.init.json()),
                "first_invocation_ms": figures.map(|f| f.invoke.json()),
                "peak_rss_mib": figures.map(|f| f.rss.json()),
                "ru_maxrss_mib": figures.map(|f| f.ru_maxrss.json()),
                "median_vs_baseline": match (figures, base) {
                    (Some(f), Some(b)) => json!({
                        "cold_start": ratio(f.cold.median, b.cold.median),
                        "init": ratio(f.init.median, b.init.median),
                        "peak_rss": ratio(f.rss.median, b.rss.median),
                    }),
                    _ => Value::Null,
                },
                "samples": r.samples.iter().map(|s| json!({
                    "cold_start_ms": round(s.cold_ms),
                    "init_ms": round(s.init_ms),
                    "peak_rss_kib": s.peak_rss_kib,
                    "ru_maxrss_kib": s.ru_maxrss_kib,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "runs": runs,
        "warmup": warmup,
        "baseline": baseline,
        "target_ratio": TARGET_RATIO,
        "binaries": binaries,
    })
}

fn baseline_figures(results: &[Results], baseline: Option<&str>) -> Option<Figures> {
    let baseline = baseline?;
    results
        .iter()
        .find(|r| r.name == baseline)
        .and_then(|r| Figures::of(&r.samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p90() {
        let s = Summary::of((1..=20).map(f64::from)).unwrap();
        assert_eq!(s.median, 10.5);
        assert_eq!(s.p90, 18.0);
        let s = Summary::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.p90), (2.0, 3.0));
        let s = Summary::of([7.0]).unwrap();
        assert_eq!((s.median, s.p90), (7.0, 7.0));
        assert!(Summary::of([]).is_none());
    }
}
