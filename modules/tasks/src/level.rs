//! Verification levels: who re-executes what, what it costs and what it
//! catches (formulas in the README), and each verifier's evidence step.
use framework::Address;
use sha2::{Digest, Sha256};

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
                 chosen privately after the commit; a solver skipping or corrupting >= 5% of the steps is caught with \
                 probability {:.4}%, a single corrupted step with probability {:.2}%; attesters of a result later \
                 proven wrong are slashed",
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

/// Blocks the challenge window lasts for a job of `total_flops` (all steps):
/// the fixed part plus the time a verifier at `flops_per_block` needs to
/// re-execute everything (at every level: a verifier whose checkpoints were
/// withheld replays from h_0, and must still make the window).
pub fn window_blocks(fixed: u64, total_flops: u64, flops_per_block: u64) -> u64 {
    fixed.saturating_add(total_flops.div_ceil(flops_per_block.max(1)))
}
