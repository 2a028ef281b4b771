//! The PTX audit: proof by inspection that the compiled kernels keep R1.
//!
//! Every module is compiled twice with the production flags:
//! * the **production** build (what the backend runs), and
//! * the **audit** build, where the source's `FMA(a, b, c)` macro (the only way the
//!   kernels write an fma: it stands exactly where `repops/src/math.rs` calls
//!   `mul_add`, and in the GEMM) becomes a call of the opaque external function
//!   `repops_fma_marker`.
//!
//! The rules, checked per kernel entry (`.entry`):
//! 1. Neither build contains an approximate instruction (`*.approx`, `div.full`, `rcp`,
//!    `rsqrt`, `ex2`, `lg2`, `sin`, `cos`, `tanh`), a flush-to-zero modifier (`.ftz`), or
//!    a tensor-core instruction (`mma`, `wmma`, `wgmma`, `tcgen05`).
//! 2. Every floating point `add`/`sub`/`mul` carries an explicit rounding modifier
//!    (`.rn`). PTX lets ptxas fuse a `mul` and an `add` *without* one into an fma when
//!    it generates machine code, so a PTX without them would not prove anything about
//!    the SASS; with `.rn` ptxas may not contract.
//! 3. The audit build contains no `fma` and no floating point `mad`: all the source's
//!    fmas have become marker calls, so any fused instruction left was invented by the
//!    compiler (`--fmad=false` should make this impossible; the rule checks it).
//! 4. A kernel whose audit build has no marker call has no `fma` in its production
//!    build either; a kernel with marker calls must have `fma.rn` in production (the
//!    count may differ: unrolling and inlining copy call sites differently).
//! 5. The kernels in the PTX are exactly the kernels the backend loads
//!    ([`crate::kernels::MODULES`]), so none escapes the scan.
//!
//! The backend runs this audit on the PTX of its own device's architecture before it
//! loads any kernel ([`crate::kernels::production_ptx`]), so no unaudited PTX ever runs;
//! the test `all_kernels_compile_to_ieee_only_ptx` runs it for three architectures in CI.
//!
//! Rules 1-3 are sound for the PTX; what ptxas does after it is bounded by rule 2
//! (explicitly rounded `add/sub/mul` and `fma.rn` are each one IEEE operation in SASS).

use crate::kernels::{compile, Build, Module, MODULES};
use crate::Error;
use std::collections::BTreeMap;

/// Name of the opaque function the audit build calls in place of every source fma.
pub const FMA_MARKER: &str = "repops_fma_marker";

/// Architectures the audit compiles for: Ampere (A100), Hopper (H100/H200), Blackwell.
pub const AUDIT_ARCHES: [&str; 3] = ["compute_80", "compute_90", "compute_100"];

/// Counts for one kernel entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntryStats {
    /// Instructions in the production build.
    pub instructions: usize,
    /// `fma` instructions in the production build.
    pub fma: usize,
    /// `repops_fma_marker` calls in the audit build (fmas the source wrote).
    pub fma_markers: usize,
}

/// The audit's result for one architecture.
#[derive(Clone, Debug, Default)]
pub struct AuditReport {
    /// Per kernel entry.
    pub entries: BTreeMap<String, EntryStats>,
    /// Rule violations, one line each (`arch kernel: line: why`).
    pub violations: Vec<String>,
}

/// One instruction of a PTX function body: `(opcode, whole line)`.
fn instructions(body: &str) -> impl Iterator<Item = (&str, &str)> {
    body.lines().filter_map(|raw| {
        let line = raw.split("//").next().unwrap_or("").trim();
        if line.is_empty()
            || line.starts_with('.')
            || line.starts_with('{')
            || line.starts_with('}')
            || line.starts_with('(')
            || line.starts_with(')')
            || line.ends_with(':')
        {
            return None;
        }
        // Operand continuation lines of a multi-line `call` are single words
        // (`param0,`, `repops_fma_marker,`), unlike `ret;`.
        if !line.contains(char::is_whitespace) && !line.ends_with(';') {
            return None;
        }
        // Skip a predicate guard (`@%p1 bra ...`).
        let mut words = line.split_whitespace();
        let mut op = words.next()?;
        if op.starts_with('@') {
            op = words.next()?;
        }
        let op = op.trim_end_matches([';', ',']);
        if op.is_empty() || !op.chars().next()?.is_ascii_lowercase() {
            return None;
        }
        Some((op, line))
    })
}

/// Split a PTX module into `(entry name, body)` per `.entry`.
pub fn entries(ptx: &str) -> Vec<(String, &str)> {
    let mut starts: Vec<(usize, String)> = Vec::new();
    let mut pos = 0;
    for line in ptx.split_inclusive('\n') {
        if let Some(i) = line.find(".entry ") {
            let name = line[i + 7..]
                .split(|c: char| c == '(' || c.is_whitespace())
                .next()
                .unwrap_or("")
                .to_string();
            starts.push((pos, name));
        }
        pos += line.len();
    }
    let mut out = Vec::new();
    for (k, (start, name)) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map(|s| s.0).unwrap_or(ptx.len());
        out.push((name.clone(), &ptx[*start..end]));
    }
    out
}

const FLOAT_TYPES: [&str; 5] = [".f32", ".f64", ".f16", ".bf16", ".f16x2"];
const ROUNDINGS: [&str; 4] = [".rn", ".rz", ".rm", ".rp"];

fn is_float(op: &str) -> bool {
    FLOAT_TYPES.iter().any(|t| op.ends_with(t))
}

/// Rule 1 (and 2): why `op` may not appear in any build, or `None`.
fn forbidden(op: &str) -> Option<&'static str> {
    let base = op.split('.').next().unwrap_or(op);
    if op.contains(".approx") {
        return Some("approximate instruction");
    }
    if op.contains(".ftz") {
        return Some("flush-to-zero modifier");
    }
    if op.starts_with("div.full") {
        return Some("approximate division (div.full)");
    }
    match base {
        "rcp" | "rsqrt" | "ex2" | "lg2" | "sin" | "cos" | "tanh" => {
            return Some("approximate transcendental instruction")
        }
        "mma" | "wmma" | "wgmma" | "tcgen05" => return Some("tensor-core instruction"),
        _ => {}
    }
    if matches!(base, "add" | "sub" | "mul")
        && is_float(op)
        && !ROUNDINGS.iter().any(|r| op.contains(r))
    {
        return Some("float add/sub/mul without a rounding modifier (ptxas may fuse it)");
    }
    None
}

fn is_fused(op: &str) -> bool {
    let base = op.split('.').next().unwrap_or(op);
    base == "fma" || (base == "mad" && is_float(op))
}

/// Check the production and audit PTX of one module against rules 1-4, and collect
/// per-entry counts. `tag` prefixes violation lines.
pub fn check_module(
    tag: &str,
    production: &str,
    audit: &str,
    report: &mut AuditReport,
) -> Result<(), Error> {
    let audit_entries: BTreeMap<String, &str> = entries(audit).into_iter().collect();
    for (name, body) in entries(production) {
        let mut st = EntryStats::default();
        for (op, line) in instructions(body) {
            st.instructions += 1;
            if let Some(why) = forbidden(op) {
                report
                    .violations
                    .push(format!("{tag} {name}: `{line}`: {why}"));
            }
            if is_fused(op) {
                st.fma += 1;
            }
        }
        let Some(abody) = audit_entries.get(&name) else {
            report
                .violations
                .push(format!("{tag} {name}: missing from the audit build"));
            continue;
        };
        st.fma_markers = abody.matches(FMA_MARKER).count();
        for (op, line) in instructions(abody) {
            if let Some(why) = forbidden(op) {
                report
                    .violations
                    .push(format!("{tag} {name} (audit): `{line}`: {why}"));
            }
            if is_fused(op) {
                report.violations.push(format!(
                    "{tag} {name} (audit): `{line}`: fused multiply-add the source did not write"
                ));
            }
        }
        if st.fma_markers == 0 && st.fma > 0 {
            report.violations.push(format!(
                "{tag} {name}: {} fma in a kernel whose source writes none",
                st.fma
            ));
        }
        if st.fma_markers > 0 && st.fma == 0 {
            report.violations.push(format!(
                "{tag} {name}: the source writes fma but the PTX has none"
            ));
        }
        report.entries.insert(name, st);
    }
    Ok(())
}

/// Compile every module for `arch` in both builds and run every rule.
pub fn audit(arch: &str) -> Result<AuditReport, Error> {
    audit_modules(&MODULES, arch)
}

/// [`audit`] over the given modules.
pub fn audit_modules(modules: &[Module], arch: &str) -> Result<AuditReport, Error> {
    let production = modules
        .iter()
        .map(|m| compile(m, arch, Build::Production))
        .collect::<Result<Vec<_>, _>>()?;
    audit_compiled(modules, arch, &production)
}

/// [`audit`] of already compiled production PTX (`production[i]` of `modules[i]`); the
/// audit builds are compiled here.
pub fn audit_compiled(
    modules: &[Module],
    arch: &str,
    production: &[String],
) -> Result<AuditReport, Error> {
    let mut report = AuditReport::default();
    for (m, production) in modules.iter().zip(production) {
        let audit = compile(m, arch, Build::Audit)?;
        let tag = format!("{arch} {}", m.file);
        check_module(&tag, production, &audit, &mut report)?;
        // Rule 5: the PTX's kernels are exactly the listed ones.
        let found: Vec<String> = entries(production).into_iter().map(|e| e.0).collect();
        for e in m.entries {
            if !found.iter().any(|f| f == e) {
                report
                    .violations
                    .push(format!("{tag}: listed kernel {e} is not in the PTX"));
            }
        }
        for f in &found {
            if !m.entries.contains(&f.as_str()) {
                report.violations.push(format!(
                    "{tag}: kernel {f} is not listed in kernels::MODULES"
                ));
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(prod_body: &str, audit_body: &str) -> AuditReport {
        let wrap = |b: &str| format!(".visible .entry k(\n.param .u64 p\n)\n{{\n{b}\nret;\n}}\n");
        let mut r = AuditReport::default();
        check_module("t", &wrap(prod_body), &wrap(audit_body), &mut r).unwrap();
        r
    }

    #[test]
    fn clean_ptx_passes_and_counts_fmas() {
        let r = one(
            "add.rn.f32 %f1, %f2, %f3;\nfma.rn.f32 %f4, %f1, %f2, %f3;\nmad.lo.s32 %r1, %r2, %r3, %r4;",
            "add.rn.f32 %f1, %f2, %f3;\ncall.uni (retval0),\nrepops_fma_marker,\n(\nparam0\n);",
        );
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.entries["k"].fma, 1);
        assert_eq!(r.entries["k"].fma_markers, 1);
    }

    #[test]
    fn approximate_ftz_and_tensor_core_instructions_are_violations() {
        for bad in [
            "ex2.approx.ftz.f32 %f1, %f2;",
            "rcp.rn.f32 %f1, %f2;",
            "div.full.f32 %f1, %f2, %f3;",
            "sqrt.approx.f32 %f1, %f2;",
            "add.rn.ftz.f32 %f1, %f2, %f3;",
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%f1}, {%r1}, {%r2}, {%f2};",
            "@%p1 tanh.approx.f32 %f1, %f2;",
        ] {
            let r = one(bad, "");
            assert!(!r.violations.is_empty(), "{bad} passed");
        }
    }

    #[test]
    fn unrounded_float_mul_and_add_are_violations() {
        let r = one("mul.f32 %f1, %f2, %f3;\nadd.f32 %f4, %f1, %f5;", "");
        assert_eq!(r.violations.len(), 2, "{:?}", r.violations);
    }

    #[test]
    fn an_fma_the_source_did_not_write_is_a_violation() {
        // production has an fma, audit has neither a marker nor ... the fma itself
        let r = one(
            "fma.rn.f32 %f1, %f2, %f3, %f4;",
            "mul.rn.f32 %f1, %f2, %f3;",
        );
        assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
        // the audit build itself contracted
        let r = one(
            "fma.rn.f32 %f1, %f2, %f3, %f4;",
            "fma.rn.f32 %f1, %f2, %f3, %f4;\ncall.uni (retval0),\nrepops_fma_marker,\n(param0);",
        );
        assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
        let r = one("mad.rn.f32 %f1, %f2, %f3, %f4;", "");
        assert!(!r.violations.is_empty());
    }
}
