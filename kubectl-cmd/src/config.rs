//! kubectl's global connection flags (`k8s.io/cli-runtime/pkg/genericclioptions`
//! `ConfigFlags`), turned into a [`kube::Config`] by kube-rs's own kubeconfig
//! loader: `--kubeconfig` or `KUBECONFIG` (several files, merged) or
//! `~/.kube/config`; `--context`, `--cluster`, `--user`; `--as`/`--as-group`.

use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

use api_types::duration::{DurationError, parse_seconds_or_duration};

/// kubectl's connection flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ConfigFlags {
    /// Path to the kubeconfig file to use for CLI requests.
    #[arg(long, value_name = "FILE", verbatim_doc_comment)]
    pub kubeconfig: Option<PathBuf>,
    /// The name of the kubeconfig context to use
    #[arg(long, verbatim_doc_comment)]
    pub context: Option<String>,
    /// The name of the kubeconfig cluster to use
    #[arg(long, verbatim_doc_comment)]
    pub cluster: Option<String>,
    /// The name of the kubeconfig user to use
    #[arg(long, verbatim_doc_comment)]
    pub user: Option<String>,
    /// If present, the namespace scope for this CLI request
    #[arg(short = 'n', long, verbatim_doc_comment)]
    pub namespace: Option<String>,
    /// Username to impersonate for the operation. User could be a regular user or a service account in a namespace.
    #[arg(long = "as", value_name = "USER", verbatim_doc_comment)]
    pub impersonate: Option<String>,
    /// Group to impersonate for the operation, this flag can be repeated to specify multiple groups.
    #[arg(long = "as-group", value_name = "GROUP", verbatim_doc_comment)]
    pub impersonate_groups: Vec<String>,
    /// The length of time to wait before giving up on a single server request. Non-zero values should contain a corresponding time unit (e.g. 1s, 2m, 3h). A value of zero means don't timeout requests.
    #[arg(
        long,
        default_value = "0",
        allow_hyphen_values = true,
        verbatim_doc_comment
    )]
    pub request_timeout: String,
}

/// Why no client configuration could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Kubeconfig(#[source] KubeconfigError),
    #[error("failed to read kubeconfig {}: {source}{}", .path.display(), if *.default_path { " (set KUBECONFIG or use --kubeconfig)" } else { "" })]
    Read {
        path: PathBuf,
        /// The path is `~/.kube/config`, chosen because nothing else was given.
        default_path: bool,
        #[source]
        source: std::io::Error,
    },
    /// client-go's `errContextNotFound`.
    #[error("context was not found for specified context: {0}")]
    ContextNotFound(String),
    #[error("cluster {0:?} does not exist in the kubeconfig")]
    ClusterNotFound(String),
    #[error("auth info {0:?} does not exist")]
    UserNotFound(String),
    #[error(
        "no context is selected: the kubeconfig has no current-context; use --context or 'kubectl config use-context'"
    )]
    NoCurrentContext,
    #[error("requesting groups with --as-group without impersonating a user: add --as")]
    GroupsWithoutUser,
    #[error("invalid argument {value:?} for \"--request-timeout\" flag: {source}")]
    RequestTimeout {
        value: String,
        #[source]
        source: DurationError,
    },
}

/// A client configuration and the namespace to work in.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: kube::Config,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
    /// Whether `-n` was given.
    pub explicit_namespace: bool,
}

impl ConfigFlags {
    /// `--request-timeout`, `None` for 0 (no timeout).
    pub fn request_timeout(&self) -> Result<Option<Duration>, ConfigError> {
        parse_seconds_or_duration(&self.request_timeout)
            .map(|d| (!d.is_zero()).then_some(d))
            .map_err(|source| ConfigError::RequestTimeout {
                value: self.request_timeout.clone(),
                source,
            })
    }

    /// The merged kubeconfig, as kubectl finds it.
    pub fn read_kubeconfig(&self) -> Result<Kubeconfig, ConfigError> {
        let default_path = self.kubeconfig.is_none()
            && std::env::var_os("KUBECONFIG").is_none_or(|v| v.is_empty());
        match &self.kubeconfig {
            Some(path) => Kubeconfig::read_from(path),
            None => Kubeconfig::read(),
        }
        .map_err(|e| match e {
            KubeconfigError::ReadConfig(source, path) => ConfigError::Read {
                path,
                default_path,
                source,
            },
            other => ConfigError::Kubeconfig(other),
        })
    }

    /// Check the names kube-rs would otherwise resolve silently.
    pub fn check_names(&self, kubeconfig: &Kubeconfig) -> Result<(), ConfigError> {
        let context_name = match (&self.context, &kubeconfig.current_context) {
            (Some(c), _) => c.clone(),
            (None, Some(c)) if !c.is_empty() => c.clone(),
            _ => return Err(ConfigError::NoCurrentContext),
        };
        if !kubeconfig.contexts.iter().any(|c| c.name == context_name) {
            return Err(ConfigError::ContextNotFound(context_name));
        }
        if let Some(cluster) = &self.cluster
            && !kubeconfig.clusters.iter().any(|c| &c.name == cluster)
        {
            return Err(ConfigError::ClusterNotFound(cluster.clone()));
        }
        if let Some(user) = &self.user
            && !kubeconfig.auth_infos.iter().any(|u| &u.name == user)
        {
            return Err(ConfigError::UserNotFound(user.clone()));
        }
        if self.impersonate.as_deref().is_none_or(str::is_empty)
            && !self.impersonate_groups.is_empty()
        {
            return Err(ConfigError::GroupsWithoutUser);
        }
        Ok(())
    }

    /// Build the client configuration from a kubeconfig.
    pub async fn load_from(&self, kubeconfig: Kubeconfig) -> Result<Loaded, ConfigError> {
        self.check_names(&kubeconfig)?;
        let options = KubeConfigOptions {
            context: self.context.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
        };
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(ConfigError::Kubeconfig)?;
        if let Some(user) = self.impersonate.as_ref().filter(|u| !u.is_empty()) {
            config.auth_info.impersonate = Some(user.clone());
        }
        if !self.impersonate_groups.is_empty() {
            config.auth_info.impersonate_groups = Some(self.impersonate_groups.clone());
        }
        // A checkpoint is not idempotent: never resend it on 503/504.
        config.default_retry = false;
        // Deadlines are set per request (see `KubeClient`).
        config.read_timeout = None;
        let explicit_namespace = self.namespace.as_deref().is_some_and(|n| !n.is_empty());
        let namespace = match &self.namespace {
            Some(ns) if !ns.is_empty() => ns.clone(),
            _ => config.default_namespace.clone(),
        };
        Ok(Loaded {
            config,
            namespace,
            explicit_namespace,
        })
    }

    /// Read the kubeconfig and build the client configuration.
    pub async fn load(&self) -> Result<Loaded, ConfigError> {
        let kubeconfig = self.read_kubeconfig()?;
        self.load_from(kubeconfig).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev-cluster
  cluster: {server: "https://dev.example:6443"}
- name: other
  cluster: {server: "http://127.0.0.1:8080"}
users:
- name: alice
  user: {token: alice-token}
- name: bob
  user: {token: bob-token}
contexts:
- name: dev
  context: {cluster: dev-cluster, user: alice, namespace: team-a}
- name: bare
  context: {cluster: other, user: bob}
"#;

    fn kubeconfig() -> Kubeconfig {
        Kubeconfig::from_yaml(KUBECONFIG).unwrap()
    }

    #[tokio::test]
    async fn namespace_from_flag_then_context_then_default() {
        let flags = ConfigFlags::default();
        let l = flags.load_from(kubeconfig()).await.unwrap();
        assert_eq!(l.namespace, "team-a");
        assert!(!l.explicit_namespace);
        assert_eq!(
            l.config.cluster_url.to_string(),
            "https://dev.example:6443/"
        );

        let flags = ConfigFlags {
            context: Some("bare".into()),
            ..Default::default()
        };
        let l = flags.load_from(kubeconfig()).await.unwrap();
        assert_eq!(l.namespace, "default");
        assert_eq!(l.config.cluster_url.to_string(), "http://127.0.0.1:8080/");

        let flags = ConfigFlags {
            namespace: Some("prod".into()),
            ..Default::default()
        };
        let l = flags.load_from(kubeconfig()).await.unwrap();
        assert_eq!(l.namespace, "prod");
        assert!(l.explicit_namespace);
    }

    #[tokio::test]
    async fn cluster_user_and_impersonation_overrides() {
        let flags = ConfigFlags {
            cluster: Some("other".into()),
            user: Some("bob".into()),
            impersonate: Some("system:serviceaccount:ns:sa".into()),
            impersonate_groups: vec!["devs".into(), "ops".into()],
            ..Default::default()
        };
        let l = flags.load_from(kubeconfig()).await.unwrap();
        assert_eq!(l.config.cluster_url.to_string(), "http://127.0.0.1:8080/");
        assert_eq!(
            l.config.auth_info.impersonate.as_deref(),
            Some("system:serviceaccount:ns:sa")
        );
        assert_eq!(
            l.config.auth_info.impersonate_groups,
            Some(vec!["devs".to_owned(), "ops".to_owned()])
        );
        assert!(!l.config.default_retry);
    }

    #[tokio::test]
    async fn unknown_names_are_errors_like_kubectl() {
        let cases = [
            (
                ConfigFlags {
                    context: Some("nope".into()),
                    ..Default::default()
                },
                "context was not found for specified context: nope",
            ),
            (
                ConfigFlags {
                    cluster: Some("nope".into()),
                    ..Default::default()
                },
                "cluster \"nope\" does not exist in the kubeconfig",
            ),
            (
                ConfigFlags {
                    user: Some("nope".into()),
                    ..Default::default()
                },
                "auth info \"nope\" does not exist",
            ),
            (
                ConfigFlags {
                    impersonate_groups: vec!["g".into()],
                    ..Default::default()
                },
                "requesting groups with --as-group without impersonating a user: add --as",
            ),
        ];
        for (flags, want) in cases {
            assert_eq!(
                flags.load_from(kubeconfig()).await.unwrap_err().to_string(),
                want
            );
        }
        let mut no_current = kubeconfig();
        no_current.current_context = None;
        assert!(matches!(
            ConfigFlags::default().load_from(no_current).await,
            Err(ConfigError::NoCurrentContext)
        ));
    }

    #[test]
    fn several_kubeconfig_files_merge_first_wins() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.yaml");
        let b = dir.path().join("b.yaml");
        std::fs::write(&a, "apiVersion: v1\nkind: Config\ncurrent-context: from-a\ncontexts:\n- name: from-a\n  context: {cluster: c}\n").unwrap();
        std::fs::write(&b, KUBECONFIG).unwrap();
        // `Kubeconfig::read` is what `ConfigFlags::read_kubeconfig` uses without --kubeconfig;
        // exercise the merge it applies to KUBECONFIG's list directly.
        let merged = Kubeconfig::read_from(&a)
            .unwrap()
            .merge(Kubeconfig::read_from(&b).unwrap())
            .unwrap();
        assert_eq!(merged.current_context.as_deref(), Some("from-a"));
        assert!(merged.contexts.iter().any(|c| c.name == "dev"));
        let flags = ConfigFlags {
            kubeconfig: Some(b.clone()),
            ..Default::default()
        };
        assert_eq!(
            flags.read_kubeconfig().unwrap().current_context.as_deref(),
            Some("dev")
        );
        let flags = ConfigFlags {
            kubeconfig: Some(dir.path().join("missing")),
            ..Default::default()
        };
        assert_eq!(
            flags.read_kubeconfig().unwrap_err().to_string(),
            format!(
                "failed to read kubeconfig {}: No such file or directory (os error 2)",
                dir.path().join("missing").display()
            )
        );
    }

    #[test]
    fn request_timeout_values() {
        let f = |v: &str| {
            ConfigFlags {
                request_timeout: v.into(),
                ..Default::default()
            }
            .request_timeout()
        };
        assert_eq!(f("0").unwrap(), None);
        assert_eq!(f("5").unwrap(), Some(Duration::from_secs(5)));
        assert_eq!(f("1m").unwrap(), Some(Duration::from_secs(60)));
        assert_eq!(
            f("soon").unwrap_err().to_string(),
            "invalid argument \"soon\" for \"--request-timeout\" flag: time: invalid duration \"soon\""
        );
    }
}
