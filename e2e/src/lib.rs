//! e2e suite
