//! Shared by the train benches: command-line flags and medians.

/// `--flag value` pairs from the command line.
pub struct Args(Vec<String>);

impl Args {
    pub fn from_env() -> Self {
        Args(std::env::args().collect())
    }

    /// The value after `flag`, if any.
    pub fn value(&self, flag: &str) -> Option<String> {
        self.0
            .iter()
            .position(|a| a == flag)
            .and_then(|i| self.0.get(i + 1))
            .cloned()
    }

    /// The number after `flag`, or `default`.
    pub fn number(&self, flag: &str, default: usize) -> usize {
        self.value(flag)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    }

    /// `--program NAME`, or both builtin programs.
    pub fn programs(&self) -> Vec<String> {
        match self.value("--program") {
            Some(p) => vec![p],
            None => vec!["mlp-digits".into(), "tiny-lm".into()],
        }
    }
}

/// Median (sorts `v`).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}
