//! The bypasses named for testing (`--authorization-allow-*-for-testing`,
//! `--token-auth-file-for-testing`): never defaults, never in deploy/, each
//! logged as a warning when used.

use std::path::{Path, PathBuf};

use super::{NoFlags, ServerFlags};
use crate::authorization::StaticAuthorizerForTesting;

/// `--authorization-allow-groups-for-testing` (or [`NoFlags`]).
pub trait AllowGroupsForTesting:
    clap::Args + clap::FromArgMatches + Clone + std::fmt::Debug + Send + Sync + 'static
{
    fn groups(&self) -> &[String];
}

impl AllowGroupsForTesting for NoFlags {
    fn groups(&self) -> &[String] {
        &[]
    }
}

/// checkpoint-apiserver's `--authorization-allow-groups-for-testing`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AllowGroupsForTestingOptions {
    /// FOR TESTING ONLY: skip SubjectAccessReview and allow members of these groups
    /// (comma-separated).
    #[arg(long, value_name = "GROUPS", value_delimiter = ',')]
    pub authorization_allow_groups_for_testing: Vec<String>,
}

impl AllowGroupsForTesting for AllowGroupsForTestingOptions {
    fn groups(&self) -> &[String] {
        &self.authorization_allow_groups_for_testing
    }
}

/// The testing bypasses of a server.
#[derive(Debug, Clone, clap::Args)]
pub struct ForTestingOptions<F: ServerFlags> {
    /// FOR TESTING ONLY: skip SubjectAccessReview and allow exactly these users
    /// (comma-separated).
    #[arg(long, value_name = "USERS", value_delimiter = ',')]
    pub authorization_allow_users_for_testing: Vec<String>,

    #[command(flatten)]
    pub allow_groups: F::AllowGroupsForTesting,

    /// FOR TESTING ONLY: authenticate bearer tokens from this file (token,user,uid,"group1,group2"
    /// per line, as kube-apiserver's --token-auth-file) instead of TokenReview.
    #[arg(long, value_name = "FILE")]
    pub token_auth_file_for_testing: Option<PathBuf>,
}

fn names(list: &[String]) -> Vec<String> {
    list.iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

impl<F: ServerFlags> ForTestingOptions<F> {
    /// The static allow-list replacing SubjectAccessReview, when one is given.
    pub fn authorizer(&self) -> Option<StaticAuthorizerForTesting> {
        let allow = StaticAuthorizerForTesting {
            users: names(&self.authorization_allow_users_for_testing),
            groups: names(self.allow_groups.groups()),
        };
        (!allow.is_empty()).then_some(allow)
    }

    /// The token file replacing TokenReview, when one is given.
    pub fn token_file(&self) -> Option<&Path> {
        self.token_auth_file_for_testing.as_deref()
    }
}
