//! The gRPC API over a real socket: bad requests get INVALID_ARGUMENT or
//! NOT_FOUND with a message; good ones work; reflection and health answer.
use app::client::NodeClient;
use app::home::Home;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_grpc_requests_get_clear_status_codes() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path());
    let n = app::node::start_dev(
        &home,
        "127.0.0.1:0".parse().unwrap(),
        std::time::Duration::from_millis(50),
    )
    .await
    .unwrap();
    let c = NodeClient::connect(&n.grpc_url()).await.unwrap();

    let e = c
        .node()
        .get_tx(proto::node::v1::GetTxRequest {
            hash: vec![1, 2, 3],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("32"), "{}", e.message());
    let e = c
        .node()
        .get_tx(proto::node::v1::GetTxRequest { hash: vec![7; 32] })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c
        .node()
        .broadcast_tx(proto::node::v1::BroadcastTxRequest { tx: vec![] })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // Garbage is not a transport error: CheckTx answers with a code.
    let r = c
        .node()
        .broadcast_tx(proto::node::v1::BroadcastTxRequest {
            tx: b"junk".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.codespace.as_str(), r.code), ("auth", 2));

    let mut auth = proto::auth::v1::query_client::QueryClient::new(c.channel());
    let e = auth
        .account(proto::auth::v1::QueryAccountRequest {
            address: "vt1nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = auth
        .account(proto::auth::v1::QueryAccountRequest {
            address: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    let e = c
        .staking()
        .operators(proto::staking::v1::QueryOperatorsRequest {
            role: 9,
            pagination: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c
        .staking()
        .operators(proto::staking::v1::QueryOperatorsRequest {
            role: 0,
            pagination: Some(proto::base::v1::PageRequest {
                key: vec![],
                limit: 5000,
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    let mut tasks = proto::tasks::v1::query_client::QueryClient::new(c.channel());
    let e = tasks
        .task(proto::tasks::v1::QueryTaskRequest { task_id: 99 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = tasks
        .task(proto::tasks::v1::QueryTaskRequest { task_id: 0 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = tasks
        .leaderboard(proto::tasks::v1::QueryLeaderboardRequest {
            pagination: None,
            role: 42,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let mut verde = proto::verde::v1::query_client::QueryClient::new(c.channel());
    let e = verde
        .dispute(proto::verde::v1::QueryDisputeRequest { dispute_id: 5 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // The fee of a submission covers its program's work; garbage is refused.
    let mut p = train::Program::builtin("mlp-digits").unwrap();
    p.steps = 10;
    let submit = proto::to_any(&proto::tasks::v1::MsgSubmitTask {
        submitter: framework::Address::module("x").to_string(),
        program_json: serde_json::to_vec(&p).unwrap(),
        ..Default::default()
    });
    let est = c
        .node()
        .estimate_fee(proto::node::v1::EstimateFeeRequest {
            messages: vec![prost::Message::encode_to_vec(&submit)],
            tx_bytes: 3000,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(est.work_units > 100, "{est:?}");
    let fee: u128 = est.fee.parse().unwrap();
    assert_eq!(fee, 1 + 10 * 2 + u128::from(est.work_units));
    let e = c
        .node()
        .estimate_fee(proto::node::v1::EstimateFeeRequest {
            messages: vec![b"junk".to_vec()],
            tx_bytes: 10,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // Status and the block stream work.
    let s = c.status().await.unwrap();
    assert_eq!(s.chain_id, app::node::DEV_CHAIN_ID);
    let mut stream = c
        .node()
        .stream_blocks(proto::node::v1::StreamBlocksRequest { from_height: 1 })
        .await
        .unwrap()
        .into_inner();
    let b1 = stream.message().await.unwrap().unwrap();
    let b2 = stream.message().await.unwrap().unwrap();
    assert_eq!((b1.height, b2.height), (1, 2));
    n.shutdown().await;
}

/// Lists services over one reflection version (both have the same shape).
macro_rules! list_services {
    ($pb:path, $channel:expr) => {{
        use $pb as r;
        let mut c = r::server_reflection_client::ServerReflectionClient::new($channel);
        let req = r::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(r::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        };
        let mut resp = c
            .server_reflection_info(tokio_stream::iter(vec![req]))
            .await
            .unwrap()
            .into_inner();
        let m = resp.message().await.unwrap().unwrap();
        match m.message_response.unwrap() {
            r::server_reflection_response::MessageResponse::ListServicesResponse(l) => l
                .service
                .into_iter()
                .map(|s| s.name)
                .collect::<Vec<String>>(),
            other => panic!("unexpected reflection answer {other:?}"),
        }
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_answers_v1_and_v1alpha_and_lists_health_and_only_the_services_served() {
    let dir = tempfile::tempdir().unwrap();
    let n = app::node::start_dev(
        &Home::new(dir.path()),
        "127.0.0.1:0".parse().unwrap(),
        std::time::Duration::from_millis(50),
    )
    .await
    .unwrap();
    let c = NodeClient::connect(&n.grpc_url()).await.unwrap();
    let v1 = list_services!(tonic_reflection::pb::v1, c.channel());
    let v1alpha = list_services!(tonic_reflection::pb::v1alpha, c.channel());
    for names in [&v1, &v1alpha] {
        for want in [
            "veritrain.node.v1.Node",
            "veritrain.tasks.v1.Query",
            "veritrain.verde.v1.Query",
            "grpc.health.v1.Health",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        assert!(
            !names.iter().any(|n| n.starts_with("veritrain.solver")),
            "the node does not serve the Solver: {names:?}"
        );
        assert!(
            !names.iter().any(|n| n.ends_with(".Msg")),
            "transactions go through Node/BroadcastTx, not Msg services: {names:?}"
        );
    }
    assert!(
        v1.iter()
            .any(|n| n == "grpc.reflection.v1.ServerReflection"),
        "{v1:?}"
    );
    n.shutdown().await;
}
