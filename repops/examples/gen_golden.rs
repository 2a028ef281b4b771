//! Generate the golden-vector file (run once; the output is committed).
//!
//! ```text
//! cargo run --release -p repops --example gen_golden -- repops/golden/ops.json
//! ```
//! also writes `math_sampled.json` next to it (sampled elementary-function outputs).
//! Refuses to overwrite an existing file unless `--force` is given: expectations change
//! only with a new op version (R7).

use repops::golden::{
    case_specs, math_sample, run_case, Case, GoldenFile, MathSample, MATH_SAMPLE_STEP,
};
use repops::math::Func;
use repops::{CpuBackend, OP_VERSION};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .ok_or("usage: gen_golden PATH [--force]")?;
    if std::path::Path::new(path).exists() && !args.iter().any(|a| a == "--force") {
        return Err(format!(
            "{path} exists; golden vectors are only regenerated for a new op version (--force)"
        )
        .into());
    }
    let mut cases = Vec::new();
    for (i, (name, op, inputs)) in case_specs().into_iter().enumerate() {
        let mut c = Case {
            name,
            op,
            version: OP_VERSION,
            seed: 1000 + i as u64,
            inputs,
            input_hashes: vec![],
            output_shape: vec![],
            output_hash: String::new(),
        };
        let (ih, shape, oh) = run_case(&CpuBackend, &c)?;
        c.input_hashes = ih;
        c.output_shape = shape;
        c.output_hash = oh;
        cases.push(c);
    }
    let f = GoldenFile {
        format: "repops-golden/v1".into(),
        generator: "cargo run -p repops --example gen_golden -- repops/golden/ops.json".into(),
        cases,
    };
    std::fs::write(path, serde_json::to_string_pretty(&f)? + "\n")?;
    println!("wrote {} cases to {path}", f.cases.len());
    let math: Vec<MathSample> = Func::ALL
        .iter()
        .map(|&func| {
            let (hash, max_ulp, _, inputs) = math_sample(func, MATH_SAMPLE_STEP);
            MathSample {
                func: func.name().into(),
                inputs,
                hash,
                max_ulp,
            }
        })
        .collect();
    let mpath = std::path::Path::new(path).with_file_name("math_sampled.json");
    std::fs::write(&mpath, serde_json::to_string_pretty(&math)? + "\n")?;
    println!("wrote {}", mpath.display());
    Ok(())
}
