//! solverd (skeleton).
