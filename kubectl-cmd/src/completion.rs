//! Shell completion for kubectl ≥ 1.26, which runs `kubectl_complete-checkpoint`
//! from PATH with the plugin's arguments, the last one being the word to
//! complete (`k8s.io/kubectl/pkg/cmd/plugin_completion.go`). The answer is
//! cobra's `__complete` format: one candidate a line, then `:<directive>`.

use std::io::{self, Write};

use crate::client::PodClient;
use crate::config::ConfigFlags;
use crate::podcmd::container_names;
use crate::polymorphichelpers::attachable_pod_for_object;
use crate::resource::{ResourceKind, ResourceTuple};

/// cobra's `ShellCompDirectiveNoFileComp`.
pub const DIRECTIVE_NO_FILE_COMP: u32 = 4;
/// cobra's `ShellCompDirectiveNoSpace`.
pub const DIRECTIVE_NO_SPACE: u32 = 2;

/// Flags that take a value, as written on the command line.
const VALUE_FLAGS: &[&str] = &[
    "-c",
    "--container",
    "-o",
    "--output",
    "--timeout",
    "--api",
    "--claim-timeout",
    "--download",
    "-n",
    "--namespace",
    "--kubeconfig",
    "--context",
    "--cluster",
    "--user",
    "--as",
    "--as-group",
    "--request-timeout",
];
/// All flags, for completing `-`/`--`.
const ALL_FLAGS: &[&str] = &[
    "--all-containers",
    "--api",
    "--as",
    "--as-group",
    "--claim-timeout",
    "--cluster",
    "--container",
    "--context",
    "--download",
    "--help",
    "--kubeconfig",
    "--namespace",
    "--output",
    "--request-timeout",
    "--timeout",
    "--user",
    "--version",
    "--wait",
];

/// What the word under the cursor is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// `POD` or `TYPE/NAME`.
    ResourceName {
        prefix: String,
    },
    /// The value of `-c` for the pod already given.
    Container {
        resource_name: Option<String>,
        prefix: String,
    },
    Namespace {
        prefix: String,
    },
    Output {
        prefix: String,
    },
    /// The value of `--api`.
    Api {
        prefix: String,
    },
    Context {
        prefix: String,
    },
    Cluster {
        prefix: String,
    },
    User {
        prefix: String,
    },
    Flag {
        prefix: String,
    },
    /// A value nothing can be suggested for (`--timeout`), or a second argument.
    Nothing,
}

/// The arguments before the cursor, read tolerantly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Line {
    pub flags: ConfigFlags,
    pub positionals: Vec<String>,
    pub want: Option<Want>,
}

fn set_flag(flags: &mut ConfigFlags, flag: &str, value: &str) {
    let v = Some(value.to_owned());
    match flag {
        "-n" | "--namespace" => flags.namespace = v,
        "--kubeconfig" => flags.kubeconfig = v.map(Into::into),
        "--context" => flags.context = v,
        "--cluster" => flags.cluster = v,
        "--user" => flags.user = v,
        "--as" => flags.impersonate = v,
        "--as-group" => flags.impersonate_groups.push(value.to_owned()),
        "--request-timeout" => flags.request_timeout = value.to_owned(),
        _ => {}
    }
}

fn want_value(flag: &str, prefix: &str, positionals: &[String]) -> Want {
    let prefix = prefix.to_owned();
    match flag {
        "-c" | "--container" => Want::Container {
            resource_name: positionals.first().cloned(),
            prefix,
        },
        "-n" | "--namespace" => Want::Namespace { prefix },
        "-o" | "--output" => Want::Output { prefix },
        "--api" => Want::Api { prefix },
        "--context" => Want::Context { prefix },
        "--cluster" => Want::Cluster { prefix },
        "--user" => Want::User { prefix },
        _ => Want::Nothing,
    }
}

/// Read the arguments kubectl passes (the last is the word to complete).
pub fn parse_line(args: &[String]) -> Line {
    let mut line = Line::default();
    let Some((current, before)) = args.split_last() else {
        line.want = Some(Want::ResourceName {
            prefix: String::new(),
        });
        return line;
    };
    let mut i = 0;
    while i < before.len() {
        let arg = &before[i];
        if let Some((flag, value)) = arg.split_once('=').filter(|(f, _)| f.starts_with('-')) {
            set_flag(&mut line.flags, flag, value);
        } else if VALUE_FLAGS.contains(&arg.as_str()) {
            match before.get(i + 1) {
                Some(value) => set_flag(&mut line.flags, arg, value),
                None => {
                    // the cursor is on this flag's value
                    line.want = Some(want_value(arg, current, &line.positionals));
                    return line;
                }
            }
            i += 1;
        } else if !arg.starts_with('-') {
            line.positionals.push(arg.clone());
        }
        i += 1;
    }
    line.want = Some(
        if let Some((flag, value)) = current.split_once('=').filter(|(f, _)| f.starts_with('-')) {
            match want_value(flag, value, &line.positionals) {
                Want::Nothing => Want::Nothing,
                // the shell completes the part after `=`; keep the flag in the candidates
                other => other,
            }
        } else if current.starts_with('-') {
            Want::Flag {
                prefix: current.clone(),
            }
        } else if line.positionals.is_empty() {
            Want::ResourceName {
                prefix: current.clone(),
            }
        } else {
            Want::Nothing
        },
    );
    line
}

/// Candidates and the directive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Completion {
    pub candidates: Vec<String>,
    pub directive: u32,
}

impl Completion {
    fn of(candidates: Vec<String>, prefix: &str) -> Self {
        let mut candidates: Vec<String> = candidates
            .into_iter()
            .filter(|c| c.starts_with(prefix))
            .collect();
        candidates.sort();
        candidates.dedup();
        Self {
            candidates,
            directive: DIRECTIVE_NO_FILE_COMP,
        }
    }

    /// cobra's output format.
    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        for c in &self.candidates {
            writeln!(out, "{c}")?;
        }
        writeln!(out, ":{}", self.directive)
    }
}

/// Completions that need no cluster: flags, output formats, kubeconfig names.
/// `None` when the cluster must be asked.
pub fn complete_offline(line: &Line) -> Option<Completion> {
    let want = line.want.clone().unwrap_or(Want::Nothing);
    let names = |pick: fn(&kube::config::Kubeconfig) -> Vec<String>| {
        line.flags
            .read_kubeconfig()
            .map(|k| pick(&k))
            .unwrap_or_default()
    };
    Some(match want {
        Want::Flag { prefix } => {
            Completion::of(ALL_FLAGS.iter().map(|f| (*f).to_owned()).collect(), &prefix)
        }
        Want::Output { prefix } => Completion::of(vec!["json".into(), "yaml".into()], &prefix),
        Want::Api { prefix } => {
            Completion::of(vec!["object".into(), "subresource".into()], &prefix)
        }
        Want::Context { prefix } => Completion::of(
            names(|k| k.contexts.iter().map(|c| c.name.clone()).collect()),
            &prefix,
        ),
        Want::Cluster { prefix } => Completion::of(
            names(|k| k.clusters.iter().map(|c| c.name.clone()).collect()),
            &prefix,
        ),
        Want::User { prefix } => Completion::of(
            names(|k| k.auth_infos.iter().map(|c| c.name.clone()).collect()),
            &prefix,
        ),
        Want::Nothing => Completion {
            candidates: Vec::new(),
            directive: DIRECTIVE_NO_FILE_COMP,
        },
        Want::ResourceName { .. } | Want::Container { .. } | Want::Namespace { .. } => return None,
    })
}

/// Completions read from the cluster: pods (or `TYPE/` names), containers of
/// the pod given, namespaces. Failures complete nothing.
pub async fn complete_online(line: &Line, namespace: &str, client: &impl PodClient) -> Completion {
    let empty = Completion {
        candidates: Vec::new(),
        directive: DIRECTIVE_NO_FILE_COMP,
    };
    match line.want.clone().unwrap_or(Want::Nothing) {
        Want::ResourceName { prefix } => match prefix.split_once('/') {
            Some((kind, _)) => {
                let Some(k) = ResourceKind::parse(kind) else {
                    return empty;
                };
                let names = client.list_names(namespace, k).await.unwrap_or_default();
                Completion::of(
                    names.into_iter().map(|n| format!("{kind}/{n}")).collect(),
                    &prefix,
                )
            }
            None => Completion::of(
                client
                    .list_names(namespace, ResourceKind::Pod)
                    .await
                    .unwrap_or_default(),
                &prefix,
            ),
        },
        Want::Container {
            resource_name: Some(resource_name),
            prefix,
        } => {
            let Ok(resource) = ResourceTuple::parse(&resource_name) else {
                return empty;
            };
            let mut sink = io::sink();
            let Ok(pod) = attachable_pod_for_object(client, namespace, &resource, &mut sink).await
            else {
                return empty;
            };
            Completion::of(container_names(&pod), &prefix)
        }
        Want::Namespace { prefix } => {
            Completion::of(client.list_namespaces().await.unwrap_or_default(), &prefix)
        }
        _ => empty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::fake::FakeClient;
    use kcr_testkit::mock_api::objects::pod;

    fn line(args: &[&str]) -> Line {
        parse_line(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn reads_what_is_being_completed() {
        assert_eq!(
            line(&[""]).want,
            Some(Want::ResourceName {
                prefix: String::new()
            })
        );
        assert_eq!(
            line(&[]).want,
            Some(Want::ResourceName {
                prefix: String::new()
            })
        );
        assert_eq!(
            line(&["co"]).want,
            Some(Want::ResourceName {
                prefix: "co".into()
            })
        );
        let l = line(&["-n", "prod", "--context=dev", "deploy/w"]);
        assert_eq!(
            l.want,
            Some(Want::ResourceName {
                prefix: "deploy/w".into()
            })
        );
        assert_eq!(l.flags.namespace.as_deref(), Some("prod"));
        assert_eq!(l.flags.context.as_deref(), Some("dev"));
        assert_eq!(
            line(&["counter", "-c", ""]).want,
            Some(Want::Container {
                resource_name: Some("counter".into()),
                prefix: String::new()
            })
        );
        assert_eq!(
            line(&["-c", "a"]).want,
            Some(Want::Container {
                resource_name: None,
                prefix: "a".into()
            })
        );
        assert_eq!(
            line(&["counter", "--container=a"]).want,
            Some(Want::Container {
                resource_name: Some("counter".into()),
                prefix: "a".into()
            })
        );
        assert_eq!(
            line(&["-n", ""]).want,
            Some(Want::Namespace {
                prefix: String::new()
            })
        );
        assert_eq!(
            line(&["p", "-o", "j"]).want,
            Some(Want::Output { prefix: "j".into() })
        );
        assert_eq!(
            line(&["p", "--ti"]).want,
            Some(Want::Flag {
                prefix: "--ti".into()
            })
        );
        assert_eq!(line(&["p", "--timeout", ""]).want, Some(Want::Nothing));
        assert_eq!(line(&["p", ""]).want, Some(Want::Nothing));
    }

    #[test]
    fn offline_candidates_and_cobra_format() {
        let c = complete_offline(&line(&["p", "--c"])).unwrap();
        assert_eq!(
            c.candidates,
            ["--claim-timeout", "--cluster", "--container", "--context"]
        );
        let c = complete_offline(&line(&["p", "-o", ""])).unwrap();
        let mut out = Vec::new();
        c.write(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "json\nyaml\n:4\n");
        assert!(complete_offline(&line(&[""])).is_none());
        let c = complete_offline(&line(&["p", "--api", ""])).unwrap();
        assert_eq!(c.candidates, ["object", "subresource"]);
        let c = complete_offline(&line(&["p", "--api=s"])).unwrap();
        assert_eq!(c.candidates, ["subresource"]);
        let c = complete_offline(&line(&["p", "--a"])).unwrap();
        assert_eq!(
            c.candidates,
            ["--all-containers", "--api", "--as", "--as-group"]
        );
        // --claim-timeout takes a value: what follows is not the pod
        assert_eq!(
            line(&["--claim-timeout", "1m", "co"]).want,
            Some(Want::ResourceName {
                prefix: "co".into()
            })
        );
    }

    #[test]
    fn every_flag_is_offered_and_value_flags_known() {
        use clap::CommandFactory;
        let cmd = crate::cmd::CheckpointArgs::command();
        let mut longs: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect();
        longs.sort();
        assert_eq!(longs, ALL_FLAGS);
        for arg in cmd.get_arguments().filter(|a| !a.is_positional()) {
            let long = format!("--{}", arg.get_long().unwrap_or_default());
            // a flag whose value may follow it after a space (pflag's bools need `=`)
            let separate_value = arg.get_action().takes_values() && !arg.is_require_equals_set();
            assert_eq!(
                VALUE_FLAGS.contains(&long.as_str()),
                separate_value,
                "{long}"
            );
        }
    }

    #[tokio::test]
    async fn online_candidates() {
        let c = FakeClient {
            pods: vec![
                pod("default", "counter", "Running", &["app", "sidecar"]),
                pod("default", "cache", "Running", &["redis"]),
                pod("prod", "db", "Running", &["pg"]),
            ],
            ..Default::default()
        };
        let got = |args: &[&str]| {
            let l = line(args);
            let ns = l
                .flags
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            let c = &c;
            async move { complete_online(&l, &ns, c).await.candidates }
        };
        assert_eq!(got(&[""]).await, ["cache", "counter"]);
        assert_eq!(got(&["co"]).await, ["counter"]);
        assert_eq!(got(&["-n", "prod", ""]).await, ["db"]);
        assert_eq!(got(&["counter", "-c", ""]).await, ["app", "sidecar"]);
        assert_eq!(got(&["counter", "-c", "s"]).await, ["sidecar"]);
        assert_eq!(got(&["ghost", "-c", ""]).await, Vec::<String>::new());
        assert_eq!(got(&["-n", ""]).await, ["default", "prod"]);
        assert_eq!(got(&["bogus/x"]).await, Vec::<String>::new());
    }
}
