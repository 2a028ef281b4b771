//! Datasets by content: a program names its dataset by a path, an http(s) URL
//! or another daemon's `grpc://` blob service; whatever is fetched must have
//! the program's Merkle root. A whole job runs on a dataset the chain does not
//! hold, fetched by the solver and the verifier from a third daemon.
use framework::Amount;
use tests::{net, status_name};
use train::dataset::Schema;
use train::{Dataset, Program};

/// The digits rows chunked differently: another root, a dataset the chain does not hold.
fn external() -> Dataset {
    let d = Dataset::builtin("digits").unwrap();
    Dataset::build(
        "ext-digits",
        Schema::Digits8x8,
        65,
        7,
        d.data().to_vec(),
        "",
        "",
    )
    .unwrap()
}

fn program_on(source: &str, ds: &Dataset, steps: u64) -> Program {
    let mut p = tests::program(steps);
    p.dataset.name = source.to_string();
    p.dataset.root = ds.root();
    p
}

async fn serve_http(body: Vec<u8>) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/ext.vtds",
        axum::routing::get(move || {
            let b = body.clone();
            async move { b }
        }),
    );
    tokio::spawn(async move { axum::serve(l, app).await });
    format!("http://{addr}/ext.vtds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasets_come_from_paths_urls_and_blob_services_and_are_checked() {
    let n = net().await.unwrap();
    let ds = external();
    let bytes = ds.to_bytes();
    let tmp = tempfile::tempdir().unwrap();
    // A solver that holds the dataset serves it by root.
    let holder_cfg = n.c.solver_config("solver");
    let holder_datasets = holder_cfg.home.join("datasets");
    std::fs::create_dir_all(&holder_datasets).unwrap();
    std::fs::write(
        holder_datasets.join(format!("{}.vtds", hex::encode(ds.root()))),
        &bytes,
    )
    .unwrap();
    let holder = solverd::start(holder_cfg).await.unwrap();
    let path = tmp.path().join("ext.vtds");
    std::fs::write(&path, &bytes).unwrap();
    let url = serve_http(bytes.clone()).await;
    let grpc = format!("grpc://{}", holder.grpc_addr);
    // Local files only below the directory the operator allows.
    let allowed = agent::datasets::Policy {
        allow_dir: Some(tmp.path().to_path_buf()),
        ..Default::default()
    };
    for (i, source) in [path.display().to_string(), url.clone(), grpc.clone()]
        .iter()
        .enumerate()
    {
        let cache = tmp.path().join(format!("cache{i}"));
        let got = agent::datasets::resolve_with(&program_on(source, &ds, 5), &cache, &allowed)
            .await
            .unwrap();
        assert_eq!(got.root(), ds.root(), "{source}");
        // Cached under its root: the second time needs no source.
        assert!(cache
            .join(format!("{}.vtds", hex::encode(ds.root())))
            .exists());
    }
    // The wrong bytes are refused, whatever the source.
    let other = Dataset::build(
        "x",
        Schema::Digits8x8,
        65,
        5,
        ds.data()[..65 * 100].to_vec(),
        "",
        "",
    )
    .unwrap();
    let bad_path = tmp.path().join("other.vtds");
    std::fs::write(&bad_path, other.to_bytes()).unwrap();
    let e = agent::datasets::resolve_with(
        &program_on(&bad_path.display().to_string(), &ds, 5),
        &tmp.path().join("cache-bad"),
        &allowed,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("root"), "{e}");
    let e = agent::datasets::resolve(
        &program_on(&format!("grpc://{}", holder.grpc_addr), &other, 5),
        &tmp.path().join("cache-bad2"),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("no dataset or state with root"),
        "{e}"
    );

    // A whole job on the external dataset: solver and verifier fetch it from the holder.
    holder.shutdown().await;
    let mut holder_cfg = n.c.solver_config("solver");
    holder_cfg.capacity = 1;
    holder_cfg.min_reward = "1000000000000uvtr".into(); // serves, never claims
    let holder = solverd::start(holder_cfg).await.unwrap();
    let grpc = format!("grpc://{}", holder.grpc_addr);
    let v = verifierd::start(n.c.verifier_config("verifier"))
        .await
        .unwrap();
    let s = solverd::start(n.c.solver_config("cheater")).await.unwrap();
    let p = program_on(&grpc, &ds, 20);
    let h = ds.header();
    let info = proto::tasks::v1::DatasetInfo {
        schema: "digits8x8".into(),
        rows: h.rows,
        row_bytes: h.row_bytes,
        chunk_rows: h.chunk_rows,
    };
    let id = app::follow::submit(
        &n.c.client,
        &n.c.keys["submitter"],
        &p,
        Some(info),
        Amount(1_000_000),
        Amount(100_000),
    )
    .await
    .unwrap();
    let t = n.finish(id, 120).await.unwrap();
    assert_eq!(status_name(&t), "TASK_STATUS_FINALIZED", "{}", t.note);
    assert_eq!(t.solver, n.addr("cheater").to_string());
    assert_eq!(t.attestations.len(), 1);
    s.shutdown().await;
    v.shutdown().await;
    holder.shutdown().await;
    n.c.shutdown().await;
}

/// A task's dataset name comes from a stranger: a daemon reads no local file
/// it was not allowed to, cuts off a source that sends too much, and gives up
/// on one that never answers, within its time limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_dataset_sources_are_refused_within_the_daemons_limits() {
    use agent::datasets::{resolve_with, Policy};
    let tmp = tempfile::tempdir().unwrap();
    let ds = Dataset::builtin("digits").unwrap();
    let bytes = Dataset::build("ext", Schema::Digits8x8, 65, 4, ds.data().to_vec(), "", "")
        .unwrap()
        .to_bytes();
    let ext = Dataset::from_bytes(&bytes, None).unwrap();
    // A local path with the default policy, and one outside the allowed dir.
    let secret = tmp.path().join("secret.vtds");
    std::fs::write(&secret, &bytes).unwrap();
    let e = resolve_with(
        &program_on(&secret.display().to_string(), &ext, 5),
        &tmp.path().join("c1"),
        &Policy::default(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("not allowed"), "{e}");
    let elsewhere = tempfile::tempdir().unwrap();
    let e = resolve_with(
        &program_on(&secret.display().to_string(), &ext, 5),
        &tmp.path().join("c2"),
        &Policy {
            allow_dir: Some(elsewhere.path().to_path_buf()),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("outside"), "{e}");
    // Too many bytes.
    let url = serve_http(bytes.clone()).await;
    let e = resolve_with(
        &program_on(&url, &ext, 5),
        &tmp.path().join("c3"),
        &Policy {
            max_bytes: 1000,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("limit"), "{e}");
    // A server that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            held.push(c);
        }
    });
    let t0 = std::time::Instant::now();
    let e = resolve_with(
        &program_on(&format!("http://{addr}/data"), &ext, 5),
        &tmp.path().join("c4"),
        &Policy {
            timeout: std::time::Duration::from_secs(2),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("no complete answer"), "{e}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(10));
}
