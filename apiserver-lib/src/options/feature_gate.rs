//! `--feature-gates` (`k8s.io/component-base/featuregate`'s flag).

use std::convert::Infallible;
use std::marker::PhantomData;

use api_types::features::FeatureGates;

use super::{Parsed, ServerFlags};

fn parse<F: ServerFlags>(raw: &str) -> Result<Parsed<FeatureGates>, Infallible> {
    Ok(Parsed::new(raw, |s| {
        FeatureGates::parse(F::FEATURE_GATES, s)
    }))
}

/// The server's feature gates.
#[derive(Debug, Clone, clap::Args)]
pub struct FeatureGateOptions<F: ServerFlags> {
    #[arg(
        long,
        value_name = "GATES",
        default_value = "",
        help = F::FEATURE_GATES_HELP,
        value_parser = parse::<F>
    )]
    pub feature_gates: Parsed<FeatureGates>,

    #[arg(skip)]
    flags: PhantomData<F>,
}

impl<F: ServerFlags> FeatureGateOptions<F> {
    /// Every problem with the flag.
    pub fn validate(&self) -> Vec<String> {
        match self.feature_gates.get() {
            Ok(_) => Vec::new(),
            Err(e) => vec![format!("--feature-gates: {e}")],
        }
    }

    /// The gates (the defaults when the flag is invalid: see [`Self::validate`]).
    pub fn gates(&self) -> FeatureGates {
        self.feature_gates
            .get()
            .cloned()
            .unwrap_or_else(|_| FeatureGates::defaults(F::FEATURE_GATES))
    }
}
