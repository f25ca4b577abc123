//! kubelet-shim (work in progress)
