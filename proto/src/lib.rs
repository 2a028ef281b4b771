//! Generated protobuf types and gRPC services of Veritrain (`proto/veritrain/**`).
//!
//! Packages follow Cosmos naming: `veritrain.<module>.v1` with `service Msg`,
//! `service Query` and genesis and events files. These types stay at the edge:
//! modules convert them into domain types with `TryFrom`. This crate depends on
//! nothing of the chain and can be used by any client.
#![allow(clippy::all, missing_docs, rust_2018_idioms)]

/// Encoded `FileDescriptorSet` of every Veritrain proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/veritrain_descriptor.bin"));

pub mod google {
    pub mod protobuf {
        pub use prost_types::Any;
    }
}

pub mod veritrain {
    pub mod base {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/veritrain.base.v1.rs"));
        }
    }
    pub mod tx {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/veritrain.tx.v1.rs"));
        }
    }
    pub mod auth {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/veritrain.auth.v1.rs"));
        }
    }
    pub mod bank {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/veritrain.bank.v1.rs"));
        }
    }
    pub mod staking {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/veritrain.staking.v1.rs"));
        }
    }
    pub mod tasks {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/veritrain.tasks.v1.rs"));
        }
    }
    pub mod verde {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/veritrain.verde.v1.rs"));
        }
    }
    pub mod node {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/veritrain.node.v1.rs"));
        }
    }
    pub mod solver {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/veritrain.solver.v1.rs"));
        }
    }
    pub mod swarm {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/veritrain.swarm.v1.rs"));
        }
    }
}

pub use veritrain::*;

/// The `type_url` under which a message is packed into `Any`.
pub trait TypeUrl {
    const TYPE_URL: &'static str;
}

macro_rules! type_urls {
    ($($t:path => $u:literal),* $(,)?) => {
        $(impl TypeUrl for $t { const TYPE_URL: &'static str = $u; })*
    };
}

type_urls! {
    bank::v1::MsgSend => "/veritrain.bank.v1.MsgSend",
    staking::v1::MsgRegisterOperator => "/veritrain.staking.v1.MsgRegisterOperator",
    staking::v1::MsgAddStake => "/veritrain.staking.v1.MsgAddStake",
    staking::v1::MsgUnbond => "/veritrain.staking.v1.MsgUnbond",
    tasks::v1::MsgSubmitTask => "/veritrain.tasks.v1.MsgSubmitTask",
    tasks::v1::MsgCancelTask => "/veritrain.tasks.v1.MsgCancelTask",
    tasks::v1::MsgClaimTask => "/veritrain.tasks.v1.MsgClaimTask",
    tasks::v1::MsgCommitResult => "/veritrain.tasks.v1.MsgCommitResult",
    tasks::v1::MsgAttest => "/veritrain.tasks.v1.MsgAttest",
    tasks::v1::MsgRevealSeed => "/veritrain.tasks.v1.MsgRevealSeed",
    tasks::v1::MsgRequestCheckpoint => "/veritrain.tasks.v1.MsgRequestCheckpoint",
    tasks::v1::MsgPostCheckpoint => "/veritrain.tasks.v1.MsgPostCheckpoint",
    verde::v1::MsgOpenDispute => "/veritrain.verde.v1.MsgOpenDispute",
    verde::v1::MsgRevealMid => "/veritrain.verde.v1.MsgRevealMid",
    verde::v1::MsgRespond => "/veritrain.verde.v1.MsgRespond",
    verde::v1::MsgPostOpRoot => "/veritrain.verde.v1.MsgPostOpRoot",
    verde::v1::MsgRevealChildren => "/veritrain.verde.v1.MsgRevealChildren",
    verde::v1::MsgProveAssembly => "/veritrain.verde.v1.MsgProveAssembly",
    verde::v1::MsgUploadInput => "/veritrain.verde.v1.MsgUploadInput",
    verde::v1::MsgUploadRows => "/veritrain.verde.v1.MsgUploadRows",
    verde::v1::MsgRevealOutput => "/veritrain.verde.v1.MsgRevealOutput",
    verde::v1::MsgRevealPartial => "/veritrain.verde.v1.MsgRevealPartial",
    verde::v1::MsgProveSlice => "/veritrain.verde.v1.MsgProveSlice",
    swarm::v1::MsgCreateSwarm => "/veritrain.swarm.v1.MsgCreateSwarm",
    swarm::v1::MsgJoinRound => "/veritrain.swarm.v1.MsgJoinRound",
    swarm::v1::MsgReportLoss => "/veritrain.swarm.v1.MsgReportLoss",
    swarm::v1::MsgRevealEvalSeed => "/veritrain.swarm.v1.MsgRevealEvalSeed",
}

/// Packs a message into `Any` under its type URL.
pub fn to_any<M: prost::Message + TypeUrl>(m: &M) -> prost_types::Any {
    prost_types::Any {
        type_url: M::TYPE_URL.to_string(),
        value: m.encode_to_vec(),
    }
}
