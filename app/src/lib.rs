//! app (skeleton).
