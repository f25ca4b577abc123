//! kubectl-cmd (work in progress)
