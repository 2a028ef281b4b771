//! train (skeleton).
