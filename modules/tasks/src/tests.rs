use super::*;
use framework::{Delta, Layered, MemState};
use staking::StakingWrite;

struct W {
    s: MemState,
    h: u64,
    sub: Address,
    sol: Address,
    vers: Vec<Address>,
}

fn ctx(h: u64) -> BlockCtx {
    BlockCtx {
        height: h,
        time_ms: 0,
        chain_id: "t".into(),
        block_hash: [(h % 251) as u8; 32],
    }
}

impl W {
    fn new(params: Params) -> W {
        let sub = Address::module("sub");
        let sol = Address::module("sol");
        let vers: Vec<Address> = (0..3)
            .map(|i| Address::module(&format!("ver{i}")))
            .collect();
        let mut w = W {
            s: MemState::default(),
            h: 1,
            sub,
            sol,
            vers: vers.clone(),
        };
        w.tx(|s, c| {
            let mut all = vec![sub, sol];
            all.extend(&vers);
            let g = proto::bank::v1::GenesisState {
                balances: all
                    .iter()
                    .map(|a| proto::bank::v1::Balance {
                        address: a.to_string(),
                        amount: "100000000".into(),
                    })
                    .collect(),
            };
            bank::init_genesis(s, &g).map_err(|e| e.to_string())?;
            init_genesis(
                s,
                &pb::GenesisState {
                    params: Some(params.to_proto()),
                },
            )
            .map_err(|e| e.to_string())?;
            s.register(c, sol, Role::Solver, Amount(2_000_000))
                .map_err(|e| e.to_string())?;
            for (i, v) in vers.iter().enumerate() {
                s.register(c, *v, Role::Verifier, Amount(100_000 * (i as u128 + 1)))
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        })
        .unwrap();
        w
    }

    fn tx(
        &mut self,
        f: impl FnOnce(&mut Layered<'_, MemState>, &BlockCtx) -> std::result::Result<(), String>,
    ) -> std::result::Result<(), String> {
        let c = ctx(self.h);
        let mut d = Delta::default();
        let r = f(&mut Layered::new(&self.s, &mut d), &c);
        if r.is_ok() {
            self.s.apply(d);
        }
        self.end_block();
        r
    }

    fn end_block(&mut self) {
        let c = ctx(self.h);
        let mut d = Delta::default();
        {
            let mut l = Layered::new(&self.s, &mut d);
            StakingWrite::end_block(&mut l, &c).unwrap();
            TasksWrite::end_block(&mut l, &c).unwrap();
        }
        self.s.apply(d);
        self.h += 1;
        bank::check_supply(&self.s).unwrap();
        check_escrow(&self.s).unwrap();
    }

    fn submit(&mut self) -> u64 {
        let mut p = train::Program::builtin("mlp-digits").unwrap();
        p.steps = 10;
        let json = serde_json::to_vec(&p).unwrap();
        let sub = self.sub;
        let mut id = 0;
        self.tx(|s, c| {
            id = s
                .submit(c, sub, json, Amount(1_000_000), Amount(90_000), None)
                .map_err(|e| e.to_string())?;
            Ok(())
        })
        .unwrap();
        id
    }
}

#[test]
fn an_honest_job_pays_the_solver_and_the_attesting_verifiers() {
    let mut w = W::new(Params {
        verifiers_per_task: 2,
        challenge_window_blocks: 5,
        ..Default::default()
    });
    let id = w.submit();
    let sol = w.sol;
    w.tx(|s, c| {
        s.claim(c, sol, id, "http://solver".into())
            .map_err(|e| e.to_string())
    })
    .unwrap();
    w.tx(|s, c| {
        s.commit_result(c, sol, id, &[1; 32], &[2; 32])
            .map_err(|e| e.to_string())
    })
    .unwrap();
    assert!(
        w.s.task(id).unwrap().verifiers.is_empty(),
        "no selection in the commit's own block"
    );
    w.end_block();
    let t = w.s.task(id).unwrap();
    assert_eq!(
        t.verifiers.len(),
        2,
        "selected in the block after the commit"
    );
    let (v0, v1): (Address, Address) = (
        t.verifiers[0].parse().unwrap(),
        t.verifiers[1].parse().unwrap(),
    );
    assert_ne!(v0, v1);
    w.tx(|s, c| s.attest(c, v0, id, 3).map_err(|e| e.to_string()))
        .unwrap();
    // Attesting twice, or when not selected, is refused.
    assert!(w
        .tx(|s, c| s.attest(c, v0, id, 3).map_err(|e| e.to_string()))
        .is_err());
    let outsider = *w.vers.iter().find(|v| **v != v0 && **v != v1).unwrap();
    assert!(w
        .tx(|s, c| s.attest(c, outsider, id, 3).map_err(|e| e.to_string()))
        .is_err());
    let sol_before = w.s.balance(&sol).unwrap();
    let v1_stake = w.s.operator(&v1).unwrap().unwrap().stake;
    for _ in 0..6 {
        w.end_block();
    }
    let t = w.s.task(id).unwrap();
    assert_eq!(t.status, TaskStatus::Finalized as i32, "{}", t.note);
    assert_eq!(
        w.s.balance(&sol).unwrap(),
        sol_before.checked_add(Amount(1_000_000 + 200_000)).unwrap()
    );
    // v0 got half the fee; v1 stayed silent: its half went back and it was slashed.
    assert!(t
        .payouts
        .iter()
        .any(|p| p.recipient == v0.to_string() && p.amount == "45000"));
    assert!(t.note.contains("did not attest"), "{}", t.note);
    assert_eq!(
        w.s.operator(&v1).unwrap().unwrap().stake,
        v1_stake.checked_sub(Amount(10_000)).unwrap()
    );
    let st = w.s.stats(&sol).unwrap();
    assert_eq!(st.tasks_solved, 1);
}

#[test]
fn a_solver_that_misses_its_commit_deadline_is_slashed_and_the_task_reopens() {
    let mut w = W::new(Params {
        commit_blocks: 3,
        ..Default::default()
    });
    let id = w.submit();
    let sol = w.sol;
    w.tx(|s, c| {
        s.claim(c, sol, id, String::new())
            .map_err(|e| e.to_string())
    })
    .unwrap();
    for _ in 0..5 {
        w.end_block();
    }
    let t = w.s.task(id).unwrap();
    assert_eq!(t.status, TaskStatus::Open as i32);
    assert!(t.note.contains("missed its commit deadline"), "{}", t.note);
    assert_eq!(
        w.s.operator(&sol).unwrap().unwrap().stake,
        Amount(2_000_000 - 200_000)
    );
    // Committing now is too late.
    assert!(w
        .tx(|s, c| s
            .commit_result(c, sol, id, &[1; 32], &[2; 32])
            .map_err(|e| e.to_string()))
        .is_err());
}

#[test]
fn unclaimed_tasks_can_be_cancelled_or_expire_with_a_full_refund() {
    let mut w = W::new(Params {
        claim_timeout_blocks: 3,
        ..Default::default()
    });
    let before = w.s.balance(&w.sub).unwrap();
    let a = w.submit();
    let b = w.submit();
    let sub = w.sub;
    w.tx(|s, _| s.cancel(sub, a).map_err(|e| e.to_string()))
        .unwrap();
    // Only the submitter, and only while open.
    let sol = w.sol;
    assert!(w
        .tx(|s, _| s.cancel(sol, b).map_err(|e| e.to_string()))
        .is_err());
    for _ in 0..5 {
        w.end_block();
    }
    assert_eq!(w.s.task(a).unwrap().status, TaskStatus::Cancelled as i32);
    assert_eq!(w.s.task(b).unwrap().status, TaskStatus::Expired as i32);
    assert_eq!(w.s.balance(&w.sub).unwrap(), before);
}

#[test]
fn bad_submissions_are_rejected_with_clear_errors() {
    let mut w = W::new(Params {
        max_referee_flops: 1000,
        ..Default::default()
    });
    let sub = w.sub;
    let p = serde_json::to_vec(&train::Program::builtin("mlp-digits").unwrap()).unwrap();
    let e = w.tx(|s, c| {
        s.submit(c, sub, p.clone(), Amount(1_000_000), Amount(0), None)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    assert!(e.unwrap_err().contains("referee limit"));
    let e = w.tx(|s, c| {
        s.submit(
            c,
            sub,
            b"{not json".to_vec(),
            Amount(1_000_000),
            Amount(0),
            None,
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    });
    assert!(e.unwrap_err().contains("invalid program"));
    let e = w.tx(|s, c| {
        s.submit(c, sub, p.clone(), Amount(1), Amount(0), None)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    assert!(e.unwrap_err().contains("below the minimum"));
    let mut w2 = W::new(Params::default());
    let e = w2.tx(|s, c| {
        s.submit(c, sub, p, Amount(1_000_000_000_000), Amount(0), None)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    assert!(e.unwrap_err().contains("insufficient funds"));
    // A non-solver cannot claim; a missing task is NotFound.
    let v = w.vers[0];
    assert!(w
        .tx(|s, c| s.claim(c, v, 99, String::new()).map_err(|e| e.to_string()))
        .unwrap_err()
        .contains("does not exist"));
}
