//! Every module's error codes, pinned: codes are part of the chain's API
//! (clients and explorers match on them) and are never renumbered, only
//! appended. A change here is a breaking change and must be deliberate.
use framework::{Amount, ModuleError};

fn s() -> String {
    String::new()
}

fn check<E: ModuleError>(space: &str, cases: Vec<(E, u32)>) {
    for (e, code) in cases {
        assert_eq!((e.codespace(), e.code()), (space, code), "{e}");
    }
}

#[test]
fn auth_codes_are_pinned() {
    use auth::AuthError::*;
    check(
        "auth",
        vec![
            (TxDecode(s()), 2),
            (InvalidSignature(s()), 3),
            (
                WrongChainId {
                    expected: s(),
                    got: s(),
                },
                4,
            ),
            (
                WrongSequence {
                    expected: 0,
                    got: 0,
                },
                5,
            ),
            (InsufficientFee { min: s(), got: s() }, 6),
            (UnknownAccount(s()), 7),
            (InvalidPublicKey(s()), 8),
            (MemoTooLong { max: 0, got: 0 }, 9),
            (TxTooLarge { max: 0, got: 0 }, 10),
            (TooManyMessages { max: 0, got: 0 }, 11),
            (NoMessages, 12),
            (
                SignerMismatch {
                    msg_signer: s(),
                    tx_signer: s(),
                },
                13,
            ),
            (
                TimedOut {
                    timeout: 0,
                    height: 0,
                },
                14,
            ),
            (InvalidAddress(s()), 15),
            (InvalidParams(s()), 16),
            (InvalidGenesis(s()), 17),
            (AccountNumbersExhausted, 18),
            (SequenceExhausted, 19),
            (UnknownMessage(s()), 20),
        ],
    );
}

#[test]
fn bank_codes_are_pinned() {
    use bank::BankError::*;
    check(
        "bank",
        vec![
            (
                InsufficientFunds {
                    address: s(),
                    balance: Amount::ZERO,
                    needed: Amount::ZERO,
                },
                2,
            ),
            (InvalidAmount(framework::AmountError::Parse(s())), 3),
            (InvalidAddress(s()), 4),
            (ZeroAmount, 5),
            (InvalidGenesis(s()), 6),
            (
                SupplyMismatch {
                    stored: Amount::ZERO,
                    sum: Amount::ZERO,
                },
                7,
            ),
        ],
    );
}

#[test]
fn staking_codes_are_pinned() {
    use staking::StakingError::*;
    check(
        "staking",
        vec![
            (AlreadyRegistered(s()), 2),
            (NotRegistered(s()), 3),
            (
                BelowMinimum {
                    role: "solver",
                    min: Amount::ZERO,
                    got: Amount::ZERO,
                },
                4,
            ),
            (
                UnbondTooLarge {
                    requested: Amount::ZERO,
                    bonded: Amount::ZERO,
                },
                5,
            ),
            (InvalidRole, 6),
            (InvalidAmount(framework::AmountError::Parse(s())), 7),
            (ZeroAmount, 8),
            (InvalidAddress(s()), 9),
            (InvalidGenesis(s()), 10),
            (
                Locked {
                    operator: s(),
                    obligations: 1,
                },
                11,
            ),
        ],
    );
}

#[test]
fn tasks_codes_are_pinned() {
    use tasks::TasksError::*;
    check(
        "tasks",
        vec![
            (NotFound(1), 2),
            (
                WrongStatus {
                    id: 1,
                    status: "open",
                    expected: "claimed",
                },
                3,
            ),
            (InvalidProgram(s()), 4),
            (ProgramTooLarge { got: 0, max: 0 }, 5),
            (
                NodeTooExpensive {
                    node: 0,
                    label: s(),
                    what: "flops",
                    got: 0,
                    max: 0,
                },
                6,
            ),
            (
                RewardTooLow {
                    got: Amount::ZERO,
                    min: Amount::ZERO,
                },
                7,
            ),
            (NotASolver(s()), 8),
            (
                NotAllowed {
                    role: "solver",
                    expected: s(),
                    got: s(),
                },
                9,
            ),
            (
                DeadlinePassed {
                    deadline: 0,
                    height: 0,
                },
                10,
            ),
            (NotSelected(s()), 11),
            (InvalidHash(s()), 12),
            (InvalidAmount(framework::AmountError::Parse(s())), 13),
            (InvalidAddress(s()), 14),
            (DisputeOpen(1), 15),
            (
                EscrowMismatch {
                    held: Amount::ZERO,
                    owed: Amount::ZERO,
                },
                16,
            ),
            (
                ProgramTooBig {
                    what: "nodes",
                    got: 0,
                    max: 0,
                },
                17,
            ),
            (BadEvidence(s()), 18),
            (
                StakeTooLow {
                    solver: s(),
                    stake: Amount::ZERO,
                    claims: 0,
                    needed: Amount::ZERO,
                },
                19,
            ),
            (InvalidLevel(s()), 20),
            (BadSeed(s()), 21),
            (BadCheckpoint(s()), 22),
        ],
    );
}

#[test]
fn verde_codes_are_pinned() {
    use verde::VerdeError::*;
    check(
        "verde",
        vec![
            (NotFound(1), 2),
            (
                WrongPhase {
                    id: 1,
                    phase: "descent",
                },
                3,
            ),
            (NotYourMove(s()), 4),
            (
                TooLate {
                    deadline: 0,
                    height: 0,
                },
                5,
            ),
            (BadProof(s()), 6),
            (BadInterval(s()), 7),
            (
                BondTooLow {
                    got: Amount::ZERO,
                    min: Amount::ZERO,
                },
                8,
            ),
            (InvalidHash(s()), 9),
            (BadUpload(s()), 10),
            (SelfChallenge, 11),
            (Referee(s()), 12),
            (InvalidAddress(s()), 13),
            (InvalidAmount(framework::AmountError::Parse(s())), 14),
            (
                EscrowMismatch {
                    held: Amount::ZERO,
                    owed: Amount::ZERO,
                },
                15,
            ),
        ],
    );
    // Wrapped errors keep their own module's codespace and code.
    let e = verde::VerdeError::Tasks(tasks::TasksError::NotFound(3));
    assert_eq!((e.codespace(), e.code()), ("tasks", 2));
}

/// Malformed checkpoint messages decode to a clear error with a stable code,
/// never a panic: no proof, a proof with too many siblings, a bad address,
/// bytes that are not the message.
#[test]
fn malformed_checkpoint_messages_get_stable_codes() {
    use proto::tasks::v1 as pb;
    let code = |any: prost_types::Any| {
        let e = runtime::Msg::from_any(&any).unwrap_err();
        (e.codespace.to_string(), e.code)
    };
    let post = pb::MsgPostCheckpoint {
        solver: framework::Address::module("s").to_string(),
        task_id: 1,
        step: 1,
        checkpoint: vec![1, 2, 3],
        proof: None,
    };
    assert_eq!(code(proto::to_any(&post)), ("tasks".to_string(), 22));
    let mut deep = post.clone();
    deep.proof = Some(proto::verde::v1::MerkleProof {
        index: 1,
        leaf_count: 2,
        siblings: vec![vec![0; 32]; 65],
    });
    assert_eq!(code(proto::to_any(&deep)), ("tasks".to_string(), 18));
    let req = pb::MsgRequestCheckpoint {
        verifier: "not an address".into(),
        task_id: 1,
        step: 1,
    };
    assert_eq!(code(proto::to_any(&req)), ("tasks".to_string(), 14));
    let garbage = prost_types::Any {
        type_url: "/veritrain.tasks.v1.MsgPostCheckpoint".into(),
        value: vec![0xff; 7],
    };
    assert_eq!(code(garbage), ("auth".to_string(), 2));
}
