//! Verification levels: who re-executes what, what it costs and what it
//! catches (formulas in the README), and each verifier's evidence step.
use framework::Address;
use sha2::{Digest, Sha256};

use std::collections::BTreeMap;

use crate::error::TasksError;
use crate::task::{Hash, Level};

/// Steps each drawn verifier re-executes at `level` for a `steps`-step job.
pub fn steps_per_verifier(level: Level, steps: u64) -> u64 {
    match level {
        Level::Full => steps,
        Level::Sampled { bps } => (steps.saturating_mul(u64::from(bps)))
            .div_ceil(10_000)
            .clamp(1, steps.max(1)),
    }
}

/// Probability that `n` steps drawn without replacement out of `t` all miss
/// `f` bad ones: C(t-f, n) / C(t, n). Display only (never in consensus).
fn miss_probability(t: u64, f: u64, n: u64) -> f64 {
    if f == 0 {
        return 1.0;
    }
    if n + f > t {
        return 0.0;
    }
    let mut p = 1.0f64;
    for i in 0..n {
        p *= (t - f - i) as f64 / (t - i) as f64;
    }
    p
}

/// What `level` catches, in words, for a job of `steps` steps checked by `k`
/// drawn verifiers. Shown by `query tasks task`, the CLI and clients.
pub fn guarantee(level: Level, steps: u64, k: u32) -> String {
    match level {
        Level::Full => format!(
            "full re-execution: each of {k} drawn verifier(s) re-runs all {steps} steps from h_0 and must prove it \
             (evidence against trace_root); any wrong result is caught if at least one re-executor (a drawn verifier \
             or any whistleblower) is honest"
        ),
        Level::Sampled { bps } => {
            let n = steps_per_verifier(level, steps);
            let k = u64::from(k.max(1));
            let catch = |f: u64| 1.0 - miss_probability(steps, f, n).powi(k as i32);
            let five = steps.div_ceil(20).max(1);
            format!(
                "sampled re-execution ({:.2}% of steps): each of {k} drawn verifier(s) re-runs {n} of {steps} steps \
                 drawn after the commit and must prove each (the solver withholds their hashes); a solver skipping or \
                 corrupting >= 5% of the steps is caught with probability {:.4}%, a single corrupted step with \
                 probability {:.2}%; attesters of a result later proven wrong are slashed",
                f64::from(bps) / 100.0,
                100.0 * catch(five),
                100.0 * catch(1),
            )
        }
    }
}

/// The step whose state hash `verifier` must prove against `trace_root` to
/// attest: in `1..steps` (h_0 is public through the program and h_T is the
/// committed final hash, so neither proves anything), fixed by the selection
/// seed, which did not exist when the solver committed.
pub fn evidence_step(seed: &Hash, verifier: &Address, steps: u64) -> u64 {
    if steps < 2 {
        return 1;
    }
    let mut h = Sha256::new();
    h.update(b"veritrain/tasks/evidence");
    h.update(seed);
    h.update(verifier.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    1 + u64::from_be_bytes(b) % (steps - 1)
}

/// The most steps one verifier may be asked to sample: each is proven in
/// the attestation (a hash and a Merkle path), which must fit a transaction.
pub const MAX_SAMPLED_STEPS: u64 = 256;

/// Refuses a sampled level whose per-verifier sample would not fit an
/// attestation (ask for `FULL`, fewer basis points, or more verifiers).
pub fn check_level(level: Level, steps: u64) -> Result<(), TasksError> {
    let n = steps_per_verifier(level, steps);
    if matches!(level, Level::Sampled { .. }) && n > MAX_SAMPLED_STEPS {
        return Err(TasksError::InvalidLevel(format!(
            "{n} sampled steps per verifier (of {steps}) exceed the {MAX_SAMPLED_STEPS} an attestation can prove: \
             use the full level or a lower sample_bps"
        )));
    }
    Ok(())
}

/// The steps `verifier` re-executes at the sampled level: `steps_per_verifier`
/// distinct steps of `1..=steps`, ascending, drawn from the selection seed
/// (which did not exist when the solver committed). A partial Fisher–Yates
/// shuffle over a sparse map: O(n) whatever `steps` is.
pub fn sample_steps(level: Level, seed: &Hash, verifier: &Address, steps: u64) -> Vec<u64> {
    let n = steps_per_verifier(level, steps).min(MAX_SAMPLED_STEPS);
    let mut swapped: BTreeMap<u64, u64> = BTreeMap::new();
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n.min(steps) {
        let mut h = Sha256::new();
        h.update(b"veritrain/tasks/sample");
        h.update(seed);
        h.update(verifier.as_bytes());
        h.update(i.to_be_bytes());
        let d = h.finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[..8]);
        let j = i + u64::from_be_bytes(b) % (steps - i);
        let at_j = swapped.get(&j).copied().unwrap_or(j);
        let at_i = swapped.get(&i).copied().unwrap_or(i);
        swapped.insert(j, at_i);
        out.push(at_j + 1);
    }
    out.sort_unstable();
    out
}

/// The steps whose state hashes `verifier` must prove to attest. Full level:
/// its one evidence step. Sampled level: every sampled step below `T` (h_T
/// is the public final hash and proves nothing), or the evidence step if
/// the sample is only `T`.
pub fn evidence_steps(level: Level, seed: &Hash, verifier: &Address, steps: u64) -> Vec<u64> {
    let mut v: Vec<u64> = match level {
        Level::Full => vec![],
        Level::Sampled { .. } => sample_steps(level, seed, verifier, steps)
            .into_iter()
            .filter(|&s| s < steps)
            .collect(),
    };
    if v.is_empty() {
        v.push(evidence_step(seed, verifier, steps));
    }
    v
}

/// Every step whose hash some drawn verifier must prove: what the solver
/// withholds (hashes, checkpoints, op traces) until the task has ended.
pub fn withheld_steps(
    level: Level,
    seed: &Hash,
    verifiers: &[Address],
    steps: u64,
) -> std::collections::BTreeSet<u64> {
    verifiers
        .iter()
        .flat_map(|v| evidence_steps(level, seed, v, steps))
        .collect()
}

/// Blocks the challenge window lasts for a job of `total_flops` (all steps):
/// the fixed part plus the time a verifier at `flops_per_block` needs to
/// re-execute everything (at every level: a verifier whose checkpoints were
/// withheld replays from h_0, and must still make the window).
pub fn window_blocks(fixed: u64, total_flops: u64, flops_per_block: u64) -> u64 {
    fixed.saturating_add(total_flops.div_ceil(flops_per_block.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_distinct_in_range_sized_and_fixed_by_seed_and_verifier() {
        let v = Address::module("v");
        let w = Address::module("w");
        for (steps, bps) in [
            (2u64, 10_000u32),
            (10, 5_000),
            (300, 200),
            (1_000_000, 1),
            (5, 1),
        ] {
            let level = Level::Sampled { bps };
            let a = sample_steps(level, &[1; 32], &v, steps);
            assert_eq!(
                a.len() as u64,
                steps_per_verifier(level, steps).min(MAX_SAMPLED_STEPS)
            );
            assert!(a.windows(2).all(|p| p[0] < p[1]), "ascending, distinct");
            assert!(a.iter().all(|k| (1..=steps).contains(k)));
            assert_eq!(a, sample_steps(level, &[1; 32], &v, steps));
            if steps >= 300 {
                assert_ne!(a, sample_steps(level, &[2; 32], &v, steps));
                assert_ne!(a, sample_steps(level, &[1; 32], &w, steps));
            }
        }
        // Every step of a short job: all of 1..=T.
        let all = sample_steps(Level::Sampled { bps: 10_000 }, &[9; 32], &v, 50);
        assert_eq!(all, (1..=50).collect::<Vec<_>>());
    }

    #[test]
    fn evidence_never_names_the_public_final_step_and_is_never_empty() {
        let v = Address::module("v");
        for seed in 0..50u8 {
            let level = Level::Sampled { bps: 5_000 };
            let e = evidence_steps(level, &[seed; 32], &v, 2);
            assert_eq!(e, vec![1]);
            let e = evidence_steps(Level::Full, &[seed; 32], &v, 100);
            assert_eq!(e.len(), 1);
            assert!((1..100).contains(&e[0]));
        }
    }
}
