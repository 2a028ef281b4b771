//! tests (skeleton).
