//! verifierd (skeleton).
