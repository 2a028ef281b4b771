//! Random mixes of parties over whole swarms, on the test world with real
//! training (supply and every escrow checked after every block): silent
//! contributors, contributors who stay away, evaluations left undone. Whatever
//! the mix, the swarm pays out exactly what it escrowed, never a quality share
//! for unverified work, and its leaderboard is sorted by verified quality.
use bank::BankRead;
use framework::{Address, Amount};
use proptest::prelude::*;
use swarm::{Phase, SwarmRead};
use tasks::{Status, TasksRead};
use world::{create_msg, W};

mod world;

#[derive(Clone, Debug)]
struct Mix {
    rounds: u64,
    /// Per round, per contributor: 0 away, 1 honest, 2 joins and stays silent.
    roles: Vec<[u8; 4]>,
    /// Per round: leave the base evaluation's first task undone.
    shun_base: Vec<bool>,
    /// Merge by averaging (a merge task) instead of by selection.
    average: bool,
    /// Per round: leave the merge's first task undone.
    shun_merge: Vec<bool>,
}

fn mix() -> impl Strategy<Value = Mix> {
    (1u64..=2).prop_flat_map(|rounds| {
        (
            prop::collection::vec(prop::array::uniform4(0u8..3), rounds as usize),
            prop::collection::vec(any::<bool>(), rounds as usize),
            any::<bool>(),
            prop::collection::vec(any::<bool>(), rounds as usize),
        )
            .prop_map(move |(roles, shun_base, average, shun_merge)| Mix {
                rounds,
                roles,
                shun_base,
                average,
                shun_merge,
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_swarm_pays_out_exactly_its_escrow_and_only_for_verified_improvement(m in mix()) {
        let mut w = W::new();
        let me = swarm::module_address();
        let creator0 = w.w.state.balance(&w.creator).unwrap();
        let mut cm = create_msg(w.creator, m.rounds, 4);
        cm.inner_steps = 6;
        if m.average {
            cm.outer_lr_bits = 1.0f32.to_bits();
        }
        let id = w.create_with(cm);
        let escrowed = Amount(3_000_000 * m.rounds as u128);
        for r in 0..m.rounds {
            let roles = m.roles[r as usize];
            w.silent.clear();
            for (i, role) in roles.iter().enumerate() {
                let c = w.contributors[i];
                if *role == 2 {
                    w.silent.push(c);
                }
                if *role != 0 {
                    w.join(c, id).unwrap();
                }
            }
            // Let the round reach its evaluations, maybe leaving the base's undone once.
            if m.shun_base[r as usize] {
                for _ in 0..400 {
                    let rd = w.w.state.round(id, r).unwrap();
                    if let Some(b) = rd.base.as_ref() {
                        w.shunned.push(b.task_id);
                        break;
                    }
                    if rd.phase == Phase::Settled {
                        break;
                    }
                    w.play(id);
                }
            }
            if m.shun_merge[r as usize] {
                for _ in 0..400 {
                    let rd = w.w.state.round(id, r).unwrap();
                    if let Some(k) = rd.merge.as_ref() {
                        w.shunned.push(k.task_id);
                        break;
                    }
                    if rd.phase == Phase::Settled {
                        break;
                    }
                    w.play(id);
                }
            }
            let rd = w.until_settled(id, r);
            // The next global state is a verified one: the merge task's final state,
            // or (by selection, or after the merge's attempts) the best contribution's.
            let next = w.w.state.swarm(id).unwrap().global;
            match (rd.merge.as_ref(), rd.merged_slot) {
                (Some(k), None) if k.task_status == "finalized" => {
                    let t = w.w.state.task(k.task_id).unwrap();
                    prop_assert_eq!(next.root, t.commitment.unwrap().final_state_hash);
                    prop_assert!(m.average);
                }
                (_, Some(slot)) => {
                    let c = rd.contributions.iter().find(|c| c.slot == slot).unwrap();
                    prop_assert_eq!(Some(next.root), c.final_state_hash);
                    prop_assert_eq!(&c.task_status, "finalized");
                }
                (_, None) => prop_assert_eq!(next.root, rd.start.root),
            }
            // Never a quality share for unverified work: every paid contribution's
            // task and measurement were verified, and it was not a duplicate.
            for c in &rd.contributions {
                if c.quality_paid > Amount::ZERO {
                    prop_assert_eq!(&c.task_status, "finalized");
                    prop_assert!(!c.duplicate);
                    let e = c.eval.as_ref().unwrap();
                    prop_assert!(e.reported);
                    prop_assert_eq!(w.w.state.task(e.task_id).unwrap().status, Status::Finalized);
                    prop_assert!(c.improvement > 0);
                }
                // A silent contributor never earns: its claim timed out (the slot's
                // task reopened; whoever did the work instead is paid).
                if c.quality_paid > Amount::ZERO {
                    let solver = c.solver.unwrap();
                    prop_assert!(!w.silent.contains(&solver));
                }
            }
            let paid: u128 = rd.contributions.iter().map(|c| c.quality_paid.0).sum();
            prop_assert_eq!(paid, rd.quality_paid.0);
            prop_assert!(paid <= rd.quality_pool.0);
        }
        let sw = w.w.state.swarm(id).unwrap();
        prop_assert!(sw.done);
        // Everything escrowed left the swarm account, exactly: into its tasks'
        // escrows (reward + fee each; a task pays its reward only when verified
        // and refunds the swarm otherwise), into quality shares, and the rest
        // back to the creator.
        prop_assert_eq!(w.w.state.balance(&me).unwrap(), Amount::ZERO);
        let (mut into_tasks, mut refunds) = (0u128, 0u128);
        let mut t = 1;
        while let Ok(task) = w.w.state.task(t) {
            if task.submitter == me {
                prop_assert!(!task.status.is_open());
                into_tasks += task.reward.0 + task.verification_fee.0;
                refunds += task
                    .payouts
                    .iter()
                    .filter(|p| p.recipient == me)
                    .map(|p| p.amount.0)
                    .sum::<u128>();
                if task.status != Status::Finalized {
                    let solver_paid = task.claim.as_ref().is_some_and(|c| {
                        task.payouts.iter().any(|p| p.recipient == c.solver && p.reason == "reward")
                    });
                    prop_assert!(!solver_paid, "a reward for unverified work: {:?}", task);
                }
            }
            t += 1;
        }
        let quality: u128 = (0..m.rounds)
            .map(|r| w.w.state.round(id, r).unwrap().quality_paid.0)
            .sum();
        let refund = w.w.state.balance(&w.creator).unwrap().0 + escrowed.0 - creator0.0;
        prop_assert_eq!(escrowed.0 + refunds, into_tasks + quality + refund);
        // The leaderboard is sorted by verified quality (then address), in this
        // swarm and over all swarms.
        for board in [id, 0] {
            let entries = w.w.state.leaderboard(board, 100).unwrap();
            let q: Vec<(u128, String)> = entries
                .iter()
                .map(|e| (e.quality.parse().unwrap(), e.address.clone()))
                .collect();
            let mut sorted = q.clone();
            sorted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            prop_assert_eq!(&q, &sorted);
            // Only those who did verified work are ranked: contributors who were
            // honest in some round, or the party that took over a silent one's slot.
            let worked: Vec<Address> = w
                .contributors
                .iter()
                .enumerate()
                .filter(|(i, _)| m.roles.iter().any(|r| r[*i] == 1))
                .map(|(_, c)| *c)
                .chain([w.evaluator])
                .collect();
            for e in &entries {
                let a: Address = e.address.parse().unwrap();
                prop_assert!(worked.contains(&a), "{:?} is ranked without verified work", e);
            }
        }
    }
}
