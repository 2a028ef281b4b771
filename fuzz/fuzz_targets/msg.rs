//! Every module message's domain conversion: `Any` → `runtime::Msg`
//! (prost decode, then each module's `TryFrom`), for every type URL the
//! chain accepts plus unknown ones.
//!
//! Invariants:
//! - the conversion is a function: converting twice gives the same result;
//! - an accepted message's fee units and signer are defined, and the signer
//!   survives bech32 (`to_string` then `parse`);
//! - for every message with a builder (`to_proto`, or the node test kit's
//!   for bank and staking), domain → protobuf → bytes → domain gives the
//!   same domain value (a client that builds a message with the builders
//!   says exactly what the chain reads).
#![no_main]
use libfuzzer_sys::fuzz_target;
use prost::Message;
use proto::TypeUrl;
use runtime::Msg;
use staking::StakingMsg;
use tasks::TasksMsg;
use verde::VerdeMsg;

const URLS: [&str; 25] = [
    proto::bank::v1::MsgSend::TYPE_URL,
    proto::staking::v1::MsgRegisterOperator::TYPE_URL,
    proto::staking::v1::MsgAddStake::TYPE_URL,
    proto::staking::v1::MsgUnbond::TYPE_URL,
    proto::tasks::v1::MsgSubmitTask::TYPE_URL,
    proto::tasks::v1::MsgCancelTask::TYPE_URL,
    proto::tasks::v1::MsgClaimTask::TYPE_URL,
    proto::tasks::v1::MsgCommitResult::TYPE_URL,
    proto::tasks::v1::MsgAttest::TYPE_URL,
    proto::tasks::v1::MsgRevealSeed::TYPE_URL,
    proto::tasks::v1::MsgRequestCheckpoint::TYPE_URL,
    proto::tasks::v1::MsgPostCheckpoint::TYPE_URL,
    proto::verde::v1::MsgOpenDispute::TYPE_URL,
    proto::verde::v1::MsgRevealMid::TYPE_URL,
    proto::verde::v1::MsgRespond::TYPE_URL,
    proto::verde::v1::MsgPostOpRoot::TYPE_URL,
    proto::verde::v1::MsgRevealChildren::TYPE_URL,
    proto::verde::v1::MsgProveAssembly::TYPE_URL,
    proto::verde::v1::MsgUploadInput::TYPE_URL,
    proto::verde::v1::MsgUploadRows::TYPE_URL,
    "/cosmos.bank.v1beta1.MsgSend",
    proto::swarm::v1::MsgCreateSwarm::TYPE_URL,
    proto::swarm::v1::MsgJoinRound::TYPE_URL,
    proto::swarm::v1::MsgReportLoss::TYPE_URL,
    proto::swarm::v1::MsgRevealEvalSeed::TYPE_URL,
];

/// The message re-encoded through its builder, where it has one.
fn rebuilt(m: &Msg) -> Option<prost_types::Any> {
    let any = match m {
        Msg::Tasks(t) => match t {
            TasksMsg::Submit(x) => proto::to_any(&x.to_proto()),
            TasksMsg::Cancel(x) => proto::to_any(&x.to_proto()),
            TasksMsg::Claim(x) => proto::to_any(&x.to_proto()),
            TasksMsg::Commit(x) => proto::to_any(&x.to_proto()),
            TasksMsg::Attest(x) => proto::to_any(&x.to_proto()),
            TasksMsg::RevealSeed(x) => proto::to_any(&x.to_proto()),
            TasksMsg::RequestCheckpoint(x) => proto::to_any(&x.to_proto()),
            TasksMsg::PostCheckpoint(x) => proto::to_any(&x.to_proto()),
        },
        Msg::Verde(v) => match &**v {
            VerdeMsg::Open(x) => proto::to_any(&x.to_proto()),
            _ => return None,
        },
        Msg::Swarm(w) => match w {
            swarm::SwarmMsg::Create(x) => proto::to_any(&x.to_proto()),
            swarm::SwarmMsg::Join(x) => proto::to_any(&x.to_proto()),
            swarm::SwarmMsg::ReportLoss(x) => proto::to_any(&x.to_proto()),
            swarm::SwarmMsg::RevealEvalSeed(x) => proto::to_any(&x.to_proto()),
        },
        // Bank and staking messages have no domain builders: the node's
        // test kit's (what the CLI and tests send) stand in.
        Msg::BankSend(m) => node::testkit::send_msg(&m.from, &m.to, m.amount),
        Msg::Staking(m) => match *m {
            StakingMsg::Register {
                operator,
                role,
                stake,
            } => node::testkit::register_msg(&operator, role, stake),
            StakingMsg::AddStake { operator, amount } => {
                node::testkit::add_stake_msg(&operator, amount)
            }
            StakingMsg::Unbond { operator, amount } => node::testkit::unbond_msg(&operator, amount),
        },
    };
    Some(any)
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    use framework::{Address, Amount};
    let a = Address::from_pubkey(&[2; 33]);
    let b = Address::from_pubkey(&[3; 33]);
    let seed = |url: usize, bytes: Vec<u8>| {
        let mut v = vec![url as u8];
        v.extend(bytes);
        v
    };
    let send = proto::bank::v1::MsgSend {
        from_address: a.to_string(),
        to_address: b.to_string(),
        amount: Some(proto::base::v1::Coin {
            denom: framework::DENOM.into(),
            amount: "5".into(),
        }),
    };
    let submit = tasks::msg::MsgSubmitTask {
        submitter: a,
        program_json: serde_json::to_vec(&train::Program::builtin("tiny-lm").expect("builtin"))
            .expect("json"),
        reward: Amount(10),
        verification_fee: Amount(1),
        dataset: None,
        level: tasks::Level::Full,
        seed_commitment: Some([9; 32]),
    };
    let open = verde::msg::MsgOpenDispute::trace(b, 3, Amount(50), [4; 32]);
    vec![
        ("send", seed(0, send.encode_to_vec())),
        ("submit", seed(4, submit.to_proto().encode_to_vec())),
        ("open-dispute", seed(12, open.to_proto().encode_to_vec())),
    ]
}

fuzz_target!(
    init: veritrain_fuzz::write_seeds_if_asked(seeds),
    |data: &[u8]| {
        let Some((&sel, value)) = data.split_first() else { return };
        let any = prost_types::Any {
            type_url: URLS[sel as usize % URLS.len()].to_string(),
            value: value.to_vec(),
        };
        let first = Msg::from_any(&any);
        let again = Msg::from_any(&any);
        match (&first, &again) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "conversion is not a function"),
            (Err(a), Err(b)) => assert_eq!((a.codespace, a.code, &a.log), (b.codespace, b.code, &b.log)),
            _ => panic!("conversion is not a function"),
        }
        let Ok(m) = first else { return };
        let _ = m.work_units();
        let signer = m.signer();
        let parsed: framework::Address = signer.to_string().parse().expect("signer re-parses");
        assert_eq!(parsed, signer);
        if let Some(re) = rebuilt(&m) {
            assert_eq!(re.type_url, any.type_url, "builder changed the type");
            let back = Msg::from_any(&re).unwrap_or_else(|e| panic!("rebuilt message refused: {}", e.log));
            assert_eq!(back, m, "domain → protobuf → domain changed the message");
        }
    }
);
