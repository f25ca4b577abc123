#![allow(clippy::unwrap_used)]
//! The security tests of a real `checkpoint-shim` over TLS ([`shim`]: the
//! server from its flags in front of a given CRI runtime, and clients that
//! speak HTTP/1.1, HTTP/2 or raw bytes to it): hostile input ([`hostile`]),
//! authentication attacks ([`authn_attacks`]) and faults ([`faults`]).

mod authn_attacks;
mod faults;
mod hostile;
mod shim;
