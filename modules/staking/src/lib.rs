//! staking (skeleton).
