//! `vt-train`: run a training program offline and print its result hashes.

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;
use train::{merkle, Dataset, Program, Trainer};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    Json,
    Text,
}

/// Run a Veritrain training program offline.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Builtin program name (mlp-digits, tiny-lm, gated-digits) or a program JSON file.
    #[arg(long, env = "VT_PROGRAM")]
    program: String,
    /// Override the program's number of steps.
    #[arg(long, env = "VT_STEPS")]
    steps: Option<u64>,
    /// Worker threads (the result does not depend on it).
    #[arg(long, env = "VT_THREADS", default_value_t = 1)]
    threads: usize,
    /// Output format.
    #[arg(long, env = "VT_OUTPUT", value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Dataset file (VTDS); default: the builtin dataset the program names.
    #[arg(long, env = "VT_DATASET")]
    dataset: Option<PathBuf>,
    /// Write a checkpoint here every `--checkpoint-every` steps and at the end.
    #[arg(long, env = "VT_CHECKPOINT_DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Checkpoint interval in steps (at least 1).
    #[arg(long, env = "VT_CHECKPOINT_EVERY", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..))]
    checkpoint_every: u64,
    /// Also compute per-step op roots (trace mode).
    #[arg(long, env = "VT_TRACE")]
    trace: bool,
    /// The committed initial state file of a fine-tuning program (`init_state`);
    /// default: the file its `init_state.name` names.
    #[arg(long, env = "VT_INIT_STATE")]
    init_state: Option<PathBuf>,
    /// Make a fine-tune instead of training: take PROGRAM's parameters from this
    /// trained checkpoint (any program's, same names and shapes), start its optimizer
    /// afresh, write the state to `--init-state-out`, and print PROGRAM's JSON with
    /// `init_state` set to it.
    #[arg(long, requires = "init_state_out")]
    fine_tune_from: Option<PathBuf>,
    /// Where `--fine-tune-from` or `--import-onnx` writes the initial state file.
    #[arg(long)]
    init_state_out: Option<PathBuf>,
    /// The source name daemons fetch the initial state from (an http(s):// URL,
    /// grpc://host:port or a path); default: `--init-state-out` as given.
    #[arg(long, requires = "init_state_out")]
    init_state_source: Option<String>,
    /// Import an ONNX model (its forward pass to the logits, weights inline): print
    /// PROGRAM with its model replaced by the ONNX graph, starting from the ONNX
    /// weights, which are written to `--init-state-out`. PROGRAM gives the dataset,
    /// optimizer, batch size, steps and seed. The supported subset is in
    /// train/README.md.
    #[arg(long, requires = "init_state_out", conflicts_with = "fine_tune_from")]
    import_onnx: Option<PathBuf>,
    /// Print the batch tensors of steps 1..=N as JSON lines instead of training (one
    /// object per step: each tensor's shape and values), so another framework can
    /// train on exactly the same batches.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    batches: Option<u64>,
    /// Print PROGRAM with its model written as a graph (`model.family: graph`: its
    /// params and forward nodes in RepOps' op vocabulary) instead of training: the
    /// same state hashes, and a starting point for one's own model.
    #[arg(long, conflicts_with_all = ["fine_tune_from", "import_onnx"])]
    to_graph: bool,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let mut program = match Program::builtin(&args.program) {
        Ok(p) => p,
        Err(_) => {
            let s = std::fs::read_to_string(&args.program).with_context(|| {
                format!(
                    "{} is neither a builtin program nor a readable file",
                    args.program
                )
            })?;
            Program::from_json(&s).with_context(|| format!("program file {}", args.program))?
        }
    };
    if let Some(s) = args.steps {
        program.steps = s;
    }
    program.validate()?;
    if let Some(out) = &args.init_state_out {
        return make_start_state(&args, program, out);
    }
    if args.to_graph {
        println!("{}", serde_json::to_string_pretty(&program.to_graph()?)?);
        return Ok(());
    }
    let dataset = match &args.dataset {
        Some(p) => Dataset::load(p, Some(&program.dataset.root))
            .with_context(|| format!("dataset {}", p.display()))?,
        None => Dataset::builtin(&program.dataset.name)?,
    };
    if let Some(n) = args.batches {
        return print_batches(&program, &dataset, n);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()?;
    pool.install(|| run(&args, program, dataset))
}

/// `--fine-tune-from`: the initial state file and the program that commits to it.
/// `--fine-tune-from` or `--import-onnx`: writes the start state to `out` and
/// prints the program that commits to it.
fn make_start_state(args: &Args, program: Program, out: &std::path::Path) -> Result<()> {
    let source = args
        .init_state_source
        .clone()
        .unwrap_or_else(|| out.display().to_string());
    let (program, state) = match (&args.fine_tune_from, &args.import_onnx) {
        (Some(from), _) => {
            let bytes = std::fs::read(from).with_context(|| from.display().to_string())?;
            let trained = train::checkpoint::read_tensors(&bytes)
                .with_context(|| from.display().to_string())?;
            let mut program = program;
            let state = train::checkpoint::fine_tune_state(&program, &trained)?;
            program.init_state = Some(train::StateRef {
                name: source,
                root: train::state_hash(&state),
                step: 0,
            });
            (program, state)
        }
        (None, Some(onnx)) => {
            let bytes = std::fs::read(onnx).with_context(|| onnx.display().to_string())?;
            train::onnx::import(&bytes)
                .and_then(|m| m.into_program(program, source))
                .with_context(|| onnx.display().to_string())?
        }
        (None, None) => bail!("--init-state-out needs --fine-tune-from or --import-onnx"),
    };
    let file = train::checkpoint::encode(&program, 0, &state)?;
    std::fs::write(out, file).with_context(|| out.display().to_string())?;
    println!("{}", serde_json::to_string_pretty(&program)?);
    Ok(())
}

fn print_batches(program: &Program, dataset: &Dataset, n: u64) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for t in 1..=n {
        let b = train::trainer::batch_for_step(program, dataset, t)?;
        let line: serde_json::Map<String, serde_json::Value> = b
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    serde_json::json!({"shape": v.shape(), "data": v.data()}),
                )
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Object(line))?;
    }
    out.flush()?;
    Ok(())
}

fn run(args: &Args, program: Program, dataset: Dataset) -> Result<()> {
    let t0 = Instant::now();
    let steps = program.steps;
    let mut tr = match &program.init_state {
        None => Trainer::new(program, dataset)?,
        Some(_) if train::trainer::seeded_initial(&program)?.is_some() => {
            let state = train::trainer::seeded_initial(&program)?.unwrap_or_default();
            let cpu: std::sync::Arc<dyn repops::Backend> = std::sync::Arc::new(repops::CpuBackend);
            Trainer::from_initial(program, dataset, cpu, state)?
        }
        Some(init) => {
            let path = args
                .init_state
                .clone()
                .unwrap_or_else(|| PathBuf::from(&init.name));
            let bytes = std::fs::read(&path).with_context(|| path.display().to_string())?;
            let shapes = program.graph()?.state_shapes;
            let state = train::checkpoint::decode_initial(&program, &shapes, &bytes)
                .with_context(|| path.display().to_string())?;
            let cpu: std::sync::Arc<dyn repops::Backend> = std::sync::Arc::new(repops::CpuBackend);
            Trainer::from_initial(program, dataset, cpu, state)?
        }
    };
    if let Some(d) = &args.checkpoint_dir {
        std::fs::create_dir_all(d).with_context(|| d.display().to_string())?;
    }
    let mut hashes = vec![tr.state_hash()];
    let mut op_roots = Vec::new();
    let mut losses = Vec::with_capacity(steps as usize);
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new(steps);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} steps  loss {msg}  eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    let log_every = (steps / 10).max(1);
    for t in 1..=steps {
        let (h, loss) = if args.trace {
            let r = tr.step_traced(t)?;
            op_roots.push(r.op_root);
            (r.state_hash, r.loss)
        } else {
            let r = tr.step(t)?;
            (r.state_hash, r.loss)
        };
        hashes.push(h);
        losses.push(loss);
        match &bar {
            Some(b) => {
                b.set_position(t);
                b.set_message(format!("{loss:.4}"));
            }
            None if t % log_every == 0 || t == steps => {
                tracing::info!(step = t, loss, state_hash = %hex::encode(h), "step");
            }
            None => {}
        }
        if let Some(d) = &args.checkpoint_dir {
            if t % args.checkpoint_every == 0 || t == steps {
                tr.save_checkpoint(&d.join(format!("step-{t:06}.safetensors")))?;
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let train_secs = t0.elapsed().as_secs_f64();
    let eval = tr.evaluate()?;
    let trace_root = merkle::root(&hashes);
    let is_lm = eval.accuracy.is_none();
    let unigram = if is_lm {
        Some(tr.unigram_entropy())
    } else {
        None
    };
    match args.output {
        Output::Json => {
            let mut v = serde_json::json!({
                "program": tr.program().name,
                "program_hash": hex::encode(tr.program().hash()),
                "dataset_root": hex::encode(tr.dataset().root()),
                "nodes_per_step": tr.graph().nodes.len(),
                "steps": steps,
                "threads": args.threads,
                "initial_state_hash": hex::encode(hashes[0]),
                "final_state_hash": hex::encode(hashes[hashes.len() - 1]),
                "trace_root": hex::encode(trace_root),
                "loss_curve": losses,
                "heldout_loss": eval.loss,
                "seconds": train_secs,
            });
            if let Some(a) = eval.accuracy {
                v["test_accuracy"] = serde_json::json!(a);
            }
            if let Some(u) = unigram {
                v["unigram_entropy"] = serde_json::json!(u);
            }
            if args.trace {
                v["op_roots"] =
                    serde_json::json!(op_roots.iter().map(hex::encode).collect::<Vec<_>>());
            }
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Output::Text => {
            println!("program           {}", tr.program().name);
            println!("steps             {steps}");
            println!("nodes_per_step    {}", tr.graph().nodes.len());
            println!(
                "final_state_hash  {}",
                hex::encode(hashes[hashes.len() - 1])
            );
            println!("trace_root        {}", hex::encode(trace_root));
            let every = (losses.len() / 10).max(1);
            let curve: Vec<String> = losses
                .iter()
                .enumerate()
                .filter(|(i, _)| i % every == 0 || *i + 1 == losses.len())
                .map(|(i, l)| format!("{}:{l:.4}", i + 1))
                .collect();
            println!("loss_curve        {}", curve.join(" "));
            if let Some(a) = eval.accuracy {
                println!("test_accuracy     {a:.4}");
            }
            println!("heldout_loss      {:.4}", eval.loss);
            if let Some(u) = unigram {
                println!("unigram_entropy   {u:.4}");
            }
            println!("seconds           {train_secs:.2}");
        }
    }
    Ok(())
}
