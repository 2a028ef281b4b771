//! ONNX import: PyTorch exports (train/tests/onnx/, made by train/onnx/roundtrip.py)
//! import as graph programs that start from the exported weights and train with
//! RepOps along PyTorch's loss curve; hostile or unsupported files are refused with
//! a clear error, never a panic.

use prost::Message;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use train::onnx::{import, pb};
use train::{Dataset, Program, Trainer};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx")
}

#[derive(serde::Deserialize)]
struct TorchRun {
    base: String,
    steps: u64,
    losses: Vec<f64>,
}

/// Imports `dir/name.onnx` onto its base program, trains it with RepOps for the
/// steps PyTorch ran, and checks the loss curves agree: the first step (the exported
/// weights on the first batch) to 1e-4, every later one to 1% (the two frameworks
/// round differently and the difference compounds).
fn follows_pytorch(dir: &Path, name: &str) -> Vec<f32> {
    let run: TorchRun =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.torch.json"))).unwrap())
            .unwrap();
    let bytes = std::fs::read(dir.join(format!("{name}.onnx"))).unwrap();
    let mut base = Program::builtin(&run.base).unwrap();
    base.steps = run.steps;
    let (program, state) = import(&bytes)
        .unwrap()
        .into_program(base.clone(), format!("{name}.safetensors"))
        .unwrap();
    // Importing is a function of the file: the same program and start state.
    let (again, state2) = import(&bytes)
        .unwrap()
        .into_program(base, format!("{name}.safetensors"))
        .unwrap();
    assert_eq!(program, again);
    assert_eq!(train::state_hash(&state), train::state_hash(&state2));
    assert_eq!(
        program.init_state.as_ref().unwrap().root,
        train::state_hash(&state)
    );
    let data = Dataset::builtin(&program.dataset.name).unwrap();
    let cpu: Arc<dyn repops::Backend> = Arc::new(repops::CpuBackend);
    let mut tr = Trainer::from_initial(program, data, cpu, state).unwrap();
    let ours: Vec<f32> = (1..=run.steps).map(|t| tr.step(t).unwrap().loss).collect();
    assert_eq!(ours.len(), run.losses.len());
    for (t, (&a, &b)) in ours.iter().zip(&run.losses).enumerate() {
        let tol = if t == 0 {
            1e-4
        } else {
            0.01 * b.abs().max(0.1)
        };
        assert!(
            (a as f64 - b).abs() <= tol,
            "{name} step {}: RepOps {a}, PyTorch {b}\nRepOps:  {ours:?}\nPyTorch: {:?}",
            t + 1,
            run.losses
        );
    }
    let worst = ours
        .iter()
        .zip(&run.losses)
        .map(|(&a, &b)| ((a as f64 - b) / b).abs())
        .fold(0.0, f64::max);
    eprintln!(
        "{name}: loss {} -> {} (PyTorch {} -> {}), largest relative gap {worst:.2e}",
        ours[0],
        ours[ours.len() - 1],
        run.losses[0],
        run.losses[run.losses.len() - 1]
    );
    assert!(
        ours[ours.len() - 1] < ours[0] * 0.9,
        "{name} did not learn: {ours:?}"
    );
    ours
}

#[test]
fn an_exported_mlp_trains_along_pytorchs_curve() {
    follows_pytorch(&fixtures(), "mlp");
}

#[test]
fn an_exported_cnn_trains_along_pytorchs_curve() {
    follows_pytorch(&fixtures(), "cnn");
}

#[test]
fn an_exported_causal_transformer_trains_along_pytorchs_curve() {
    follows_pytorch(&fixtures(), "lm");
}

/// The whole round trip afresh (export with PyTorch, import, train both) when torch
/// and onnx are installed; `VT_REQUIRE_TORCH=1` (CI) makes their absence a failure.
#[test]
fn a_fresh_pytorch_export_round_trips() {
    let have = Command::new("python3")
        .args(["-c", "import torch, onnx"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        if std::env::var("VT_REQUIRE_TORCH").as_deref() == Ok("1") {
            panic!("VT_REQUIRE_TORCH=1 but python3 cannot import torch and onnx");
        }
        eprintln!("skipping: no torch/onnx for python3 (pip install torch onnx)");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("onnx/roundtrip.py");
    let r = Command::new("python3")
        .arg(script)
        .args([
            "--vt-train",
            env!("CARGO_BIN_EXE_vt-train"),
            "--steps",
            "20",
        ])
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        r.status.success(),
        "roundtrip.py failed:\n{}",
        String::from_utf8_lossy(&r.stderr)
    );
    for name in ["mlp", "cnn", "lm"] {
        follows_pytorch(out.path(), name);
    }
}

// ---- hostile and unsupported models ----

fn vi(name: &str, elem: i32, dims: &[i64]) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            tensor_type: Some(pb::TensorType {
                elem_type: elem,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| pb::Dimension {
                            dim_value: Some(d),
                            dim_param: None,
                        })
                        .collect(),
                }),
            }),
        }),
    }
}

fn weight(name: &str, dims: &[i64], v: f32) -> pb::TensorProto {
    let n: i64 = dims.iter().product();
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: pb::FLOAT,
        float_data: vec![v; n.max(0) as usize],
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
    pb::NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        name: output.into(),
        op_type: op.into(),
        ..Default::default()
    }
}

/// `x[4, 64] -> MatMul(w[64, 10]) -> logits`, with `edit` applied.
fn model(edit: impl FnOnce(&mut pb::ModelProto)) -> Vec<u8> {
    let mut m = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 20,
        }],
        graph: Some(pb::GraphProto {
            node: vec![node("MatMul", &["x", "w"], "logits")],
            initializer: vec![weight("w", &[64, 10], 0.01)],
            input: vec![vi("x", pb::FLOAT, &[4, 64])],
            output: vec![vi("logits", pb::FLOAT, &[4, 10])],
        }),
    };
    edit(&mut m);
    m.encode_to_vec()
}

fn graph(m: &mut pb::ModelProto) -> &mut pb::GraphProto {
    m.graph.as_mut().unwrap()
}

#[track_caller]
fn refused(bytes: &[u8], want: &str) {
    match import(bytes) {
        Ok(_) => panic!("imported a model that should be refused ({want})"),
        Err(e) => assert!(
            e.to_string().contains(want),
            "error {e:?} does not say {want:?}"
        ),
    }
}

#[test]
fn the_minimal_model_imports_and_runs_at_any_batch_size() {
    let bytes = model(|_| {});
    let m = import(&bytes).unwrap();
    assert_eq!(m.weights["w"].shape(), &[64, 10]);
    let mut base = Program::builtin("mlp-digits").unwrap();
    base.steps = 3;
    for b in [1, 7, 64] {
        base.batch_size = b;
        let (p, s) = import(&bytes)
            .unwrap()
            .into_program(base.clone(), "w.safetensors".into())
            .unwrap();
        let data = Dataset::builtin("digits").unwrap();
        let cpu: Arc<dyn repops::Backend> = Arc::new(repops::CpuBackend);
        let mut tr = Trainer::from_initial(p, data, cpu, s).unwrap();
        assert!(tr.step(1).unwrap().loss.is_finite());
    }
}

#[test]
fn hostile_and_unsupported_models_are_refused_with_a_reason() {
    refused(b"\xff\xff\xff\xff garbage", "not an ONNX model");
    refused(&model(|m| m.graph = None), "no graph");
    refused(&model(|m| m.opset_import[0].version = 9), "opset 9");
    refused(&model(|m| m.opset_import.clear()), "no ai.onnx opset");
    refused(
        &model(|m| graph(m).node[0].op_type = "Einsum".into()),
        "Einsum is not in the supported subset",
    );
    refused(
        &model(|m| graph(m).node[0].domain = "com.microsoft".into()),
        "outside the ONNX standard domain",
    );
    refused(
        &model(|m| graph(m).input.push(vi("z", pb::FLOAT, &[4, 3]))),
        "exactly one input",
    );
    refused(
        &model(|m| graph(m).input[0] = vi("x", pb::FLOAT, &[4])),
        "must be [batch, ..]",
    );
    refused(
        &model(|m| graph(m).input[0] = vi("x", pb::DOUBLE, &[4, 64])),
        "data type 11",
    );
    refused(
        &model(|m| graph(m).initializer[0].data_location = 1),
        "external data",
    );
    refused(
        &model(|m| {
            graph(m).initializer[0]
                .float_data
                .pop()
                .map(drop)
                .unwrap_or(())
        }),
        "values for shape",
    );
    refused(
        &model(|m| graph(m).initializer[0].raw_data = vec![0; 7]),
        "bytes of raw data",
    );
    refused(
        &model(|m| graph(m).initializer[0].dims = vec![1 << 40, 1 << 40]),
        "too large",
    );
    refused(
        &model(|m| graph(m).initializer[0].dims = vec![-1, 10]),
        "dimension -1",
    );
    refused(
        &model(|m| graph(m).initializer[0].float_data[3] = f32::NAN),
        "NaN or infinity",
    );
    refused(
        &model(|m| graph(m).initializer[0] = weight("w", &[63, 10], 0.01)),
        "shapes",
    );
    refused(
        &model(|m| graph(m).node[0].input[1] = "nowhere".into()),
        "not defined before it",
    );
    refused(
        &model(|m| graph(m).output[0].name = "w".into()),
        "computed from the input",
    );
    // The batch axis moved off axis 0.
    refused(
        &model(|m| {
            let g = graph(m);
            g.node.insert(0, node("Transpose", &["x"], "xt"));
            g.node[1].input[0] = "xt".into();
        }),
        "batch axis must stay first",
    );
    // An erf GELU is not RepOps' gelu: refused rather than silently approximated.
    refused(
        &model(|m| {
            let g = graph(m);
            g.node[0].output[0] = "h".into();
            g.node.push(node("Gelu", &["h"], "logits"));
        }),
        "tanh approximation",
    );
    // Random bytes and every truncation of a real export: errors, never a panic.
    let real = std::fs::read(fixtures().join("lm.onnx")).unwrap();
    for cut in (0..real.len()).step_by(997) {
        let _ = import(&real[..cut]);
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
        let mut b = real.clone();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x as usize) % b.len();
            b[i] = (x >> 32) as u8;
        }
        if let Ok(m) = import(&b) {
            // Whatever imports is a valid graph (or refused by the program's rules).
            let mut base = Program::builtin("tiny-lm").unwrap();
            base.steps = 1;
            let _ = m.into_program(base, "s".into());
        }
    }
}
