//! A training job through signed transactions on the dev chain: submit,
//! claim, commit a real trace, verifier selection, attestation, payout; and
//! dispute messages rejected with their codes when their proofs are wrong.
use app::devchain::DevChain;
use app::store::Store;
use app::testkit::*;
use app::App;
use auth::{AuthRead, Signer};
use bank::BankRead;
use framework::Amount;
use tasks::TasksRead;

const CHAIN: &str = "vt-jobs";

struct Chain {
    _dir: tempfile::TempDir,
    dev: DevChain,
}

impl Chain {
    fn send(&self, s: &Signer, msg: prost_types::Any) -> (u32, String, String) {
        let store = self.dev.app().store();
        let a = store.account(&s.address()).unwrap().unwrap();
        let r = self.dev.submit(app::testkit::sign_paying_fee(
            store,
            s,
            vec![msg],
            CHAIN,
            a.account_number,
            a.sequence,
        ));
        if r.code != 0 {
            return (r.code, r.codespace, r.log);
        }
        self.dev.produce_block().unwrap();
        (0, String::new(), String::new())
    }
}

#[test]
fn a_job_is_submitted_trained_committed_attested_and_paid_through_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let (sub, sol, ver) = (
        Signer::from_seed("submitter"),
        Signer::from_seed("solver"),
        Signer::from_seed("verifier"),
    );
    let mut g = funded_genesis(&[&sub, &sol, &ver], Amount(50_000_000));
    g.tasks.params = Some(
        tasks::Params {
            challenge_window_blocks: 4,
            ..Default::default()
        }
        .to_proto(),
    );
    let app = App::new(Store::open(dir.path()).unwrap()).unwrap();
    let dev = DevChain::start(app, CHAIN, &serde_json::to_vec(&g).unwrap(), 0).unwrap();
    let c = Chain { _dir: dir, dev };
    assert_eq!(
        c.send(
            &sol,
            register_msg(&sol.address(), staking::Role::Solver, Amount(2_000_000))
        )
        .0,
        0
    );
    assert_eq!(
        c.send(
            &ver,
            register_msg(&ver.address(), staking::Role::Verifier, Amount(500_000))
        )
        .0,
        0
    );

    let mut p = train::Program::builtin("mlp-digits").unwrap();
    p.steps = 3;
    let submit = proto::to_any(&proto::tasks::v1::MsgSubmitTask {
        submitter: sub.address().to_string(),
        program_json: serde_json::to_vec(&p).unwrap(),
        reward: Some(coin(Amount(1_000_000))),
        verification_fee: Some(coin(Amount(50_000))),
        dataset: None,
        ..Default::default()
    });
    assert_eq!(c.send(&sub, submit).0, 0);
    let store = c.dev.app().store().clone();
    let id = 1;
    assert_eq!(store.task(id).unwrap().status, tasks::Status::Open);
    // Someone else's claim on behalf of the solver is refused by the ante.
    let forged = proto::to_any(&proto::tasks::v1::MsgClaimTask {
        solver: sol.address().to_string(),
        task_id: id,
        endpoint: String::new(),
    });
    let (code, space, _) = c.send(&ver, forged.clone());
    assert_eq!((space.as_str(), code), ("auth", 13));
    assert_eq!(c.send(&sol, forged).0, 0);

    // Train for real and commit.
    let mut tr =
        train::Trainer::new(p.clone(), train::Dataset::builtin("digits").unwrap()).unwrap();
    let mut h = vec![tr.state_hash()];
    for t in 1..=p.steps {
        h.push(tr.step(t).unwrap().state_hash);
    }
    let commit = proto::to_any(&proto::tasks::v1::MsgCommitResult {
        solver: sol.address().to_string(),
        task_id: id,
        trace_root: train::merkle::root(&h).to_vec(),
        final_state_hash: h[3].to_vec(),
    });
    assert_eq!(c.send(&sol, commit).0, 0);
    c.dev.produce_block().unwrap();
    let t = store.task(id).unwrap();
    assert_eq!(t.verifiers, vec![ver.address()]);

    // A dispute whose proof does not verify is refused with verde's code 6.
    let bad = proto::to_any(&proto::verde::v1::MsgOpenDispute {
        challenger: ver.address().to_string(),
        task_id: id,
        bond: Some(coin(Amount(200_000))),
        lo: 0,
        h_lo: h[0].to_vec(),
        proof_lo: Some(proto::verde::v1::MerkleProof {
            index: 0,
            leaf_count: 4,
            siblings: vec![vec![0; 32]; 2],
        }),
        hi: 3,
        h_hi: h[3].to_vec(),
        proof_hi: None,
        trace_root: vec![],
    });
    let (code, space, log) = c.send(&ver, bad);
    assert_eq!((space.as_str(), code), ("verde", 6), "{log}");

    // Attesting needs evidence: h_s of the verifier's evidence step, proven
    // against trace_root (which takes the whole run's hashes).
    let lazy = proto::to_any(&proto::tasks::v1::MsgAttest {
        verifier: ver.address().to_string(),
        task_id: id,
        steps_checked: 1,
        ..Default::default()
    });
    let (code, space, _) = c.send(&ver, lazy);
    assert_eq!((space.as_str(), code), ("tasks", 18));
    let seed = t.selection_seed.unwrap();
    let attest = proto::to_any(
        &tasks::msg::MsgAttest::from_trace(ver.address(), id, t.level, &seed, &h, 3).to_proto(),
    );
    assert_eq!(c.send(&ver, attest).0, 0);
    let sol_before = store.balance(&sol.address()).unwrap();
    let ver_before = store.balance(&ver.address()).unwrap();
    for _ in 0..6 {
        c.dev.produce_block().unwrap();
    }
    let t = store.task(id).unwrap();
    assert_eq!(t.status, tasks::Status::Finalized, "{}", t.note);
    assert_eq!(
        store.balance(&sol.address()).unwrap(),
        sol_before.checked_add(Amount(1_200_000)).unwrap()
    );
    assert_eq!(
        store.balance(&ver.address()).unwrap(),
        ver_before.checked_add(Amount(50_000)).unwrap()
    );
    tasks::check_escrow(&store).unwrap();
    verde::check_escrow(&store).unwrap();
    bank::check_supply(&store).unwrap();
}
