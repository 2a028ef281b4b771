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

/// CPU time of this process so far (all its threads), in seconds:
/// `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`. Unlike wall time it does not count the time
/// other processes on a busy machine take the cores away, so its ratios are steadier
/// there; it does count rayon workers spinning while they wait for work.
#[allow(unsafe_code)]
pub fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
