#![allow(clippy::unwrap_used)]
//! The security tests of checkpoint-apiserver on the whole path ([`stack`]:
//! kube-apiserver-standin, the extension built from its flags, a real
//! checkpoint-shim on the fake CRI): hostile input ([`hostile`]),
//! authentication attacks ([`authn_attacks`]) and faults ([`faults`]).
//! One test binary: the stack is built once, and every helper is used.

mod authn_attacks;
mod faults;
mod hostile;
mod stack;
