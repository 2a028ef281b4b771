//! Fine-tuning jobs over real gRPC: a program that starts from a committed state
//! (`init_state`, fetched by content) is trained, verified and paid like any job,
//! and a cheat in its first step (whose inputs can only be proven against the
//! committed `h_0`) is localised to the operator.
use agent::exec::Fault;
use std::sync::Arc;
use tests::{net, status_name};
use train::{Dataset, Program, StateRef, Trainer};

const STEPS: u64 = 6;

/// tiny-lm pretrained offline for a few steps, and a fine-tune of it on the builtin
/// corpus whose state file is written to `dir` (the daemons' allowed directory).
fn fine_tune_in(dir: &std::path::Path) -> (Program, train::step::State) {
    let mut pre = Trainer::builtin("tiny-lm").unwrap();
    for t in 1..=4 {
        pre.step(t).unwrap();
    }
    let mut p = Program::builtin("tiny-lm").unwrap();
    p.steps = STEPS;
    let s0 = train::checkpoint::fine_tune_state(&p, pre.state()).unwrap();
    let path = dir.join("pretrained.safetensors");
    p.init_state = Some(StateRef {
        name: path.display().to_string(),
        root: train::state_hash(&s0),
        step: 0,
    });
    std::fs::write(&path, train::checkpoint::encode(&p, 0, &s0).unwrap()).unwrap();
    (p, s0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fine_tune_is_verified_and_a_cheat_in_its_first_step_is_localised() {
    let n = net().await.unwrap();
    let files = tempfile::tempdir().unwrap();
    let (p, s0) = fine_tune_in(files.path());
    let allow = |d: &mut agent::datasets::DatasetArgs| {
        d.allow_dataset_dir = Some(files.path().to_path_buf())
    };

    // Honest: verified, paid, and the result is the CPU reference's from the committed state.
    let mut vc = n.c.verifier_config("verifier");
    allow(&mut vc.datasets);
    vc.whistleblower = true;
    let v = verifierd::start(vc).await.unwrap();
    let mut sc = n.c.solver_config("solver");
    allow(&mut sc.datasets);
    let s = solverd::start(sc).await.unwrap();
    let id =
        n.c.submit(
            "submitter",
            &p,
            framework::Amount(1_000_000),
            framework::Amount(100_000),
        )
        .await
        .unwrap();
    let t = n.finish(id, 180).await.unwrap();
    assert_eq!(status_name(&t), "TASK_STATUS_FINALIZED", "{}", t.note);
    let cpu: Arc<dyn repops::Backend> = Arc::new(repops::CpuBackend);
    let mut tr = Trainer::from_initial(
        p.clone(),
        Dataset::builtin("corpus").unwrap(),
        cpu,
        s0.clone(),
    )
    .unwrap();
    for step in 1..=STEPS {
        tr.step(step).unwrap();
    }
    assert_eq!(t.final_state_hash, tr.state_hash().to_vec());
    s.shutdown().await;

    // A cheater corrupting an operator of step 1: the dispute's lower end is the
    // committed h_0, against which the step's state inputs are proven.
    let node = app::demo::effective_nodes_from(&p, Some(s0), 1).unwrap()[0];
    let mut cc = n.c.solver_config("cheater");
    allow(&mut cc.datasets);
    cc.inject_fault = vec![Fault::Corrupt { step: 1, node }];
    let c = solverd::start(cc).await.unwrap();
    n.expect_localised(&p, 1, node, 240).await.unwrap();
    c.shutdown().await;
    v.shutdown().await;
    n.c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fine_tune_whose_state_file_is_not_the_committed_one_is_never_claimed() {
    let n = net().await.unwrap();
    let files = tempfile::tempdir().unwrap();
    let (mut p, _) = fine_tune_in(files.path());
    // Commit to another state than the file holds.
    p.init_state.as_mut().unwrap().root[0] ^= 1;
    let mut sc = n.c.solver_config("solver");
    sc.datasets.allow_dataset_dir = Some(files.path().to_path_buf());
    let s = solverd::start(sc).await.unwrap();
    let id =
        n.c.submit(
            "submitter",
            &p,
            framework::Amount(1_000_000),
            framework::Amount(100_000),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let t = n.task(id).await.unwrap();
    assert_eq!(status_name(&t), "TASK_STATUS_OPEN", "{}", t.note);
    s.shutdown().await;
    n.c.shutdown().await;
}
