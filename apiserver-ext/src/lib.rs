//! apiserver-ext (work in progress)
