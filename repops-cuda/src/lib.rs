//! repops-cuda (skeleton).
