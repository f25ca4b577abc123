//! The command line: `NewCmdCheckpoint` of upstream's shape — a clap
//! definition, kubectl's help layout, and pflag-style parse errors.

use std::ffi::OsString;

use clap::error::{ContextKind, ErrorKind};
use clap::{ArgAction, CommandFactory, Parser};

use crate::config::ConfigFlags;
use crate::endpoint::ApiKind;
use crate::error::Error;
use crate::printer::OutputFormat;

/// The usage line.
pub const USAGE: &str =
    "kubectl checkpoint (POD | TYPE/NAME) [-c CONTAINER | --all-containers] [flags]";

/// One line description.
pub const SHORT: &str = "Checkpoint the containers of a pod.";

/// The long description (kubectl's `templates.LongDesc` layout).
pub const LONG: &str = "Checkpoint the containers of a pod.

 The containers keep running. Their checkpoint archives are written on the node that runs the pod, readable
by root only; kubectl checkpoint prints, for each container, the node, namespace, pod, container and
archive.

 When the cluster serves PodCheckpoints (API group checkpoint.kcr.dev), kubectl checkpoint creates one and
waits until the checkpoint agent on the pod's node has written it; the archive is printed relative to the
node's checkpoint directory (/var/lib/kubelet/checkpoints by default). Ctrl-C stops waiting, not the
checkpoint. Otherwise it asks the checkpoint extension (pods/checkpoint in subresources.checkpoint.kcr.dev),
which answers when the archive is written, with its path on the node; --api chooses one.";

/// The examples (kubectl's `templates.Examples` layout).
pub const EXAMPLES: &str = "  # Checkpoint the default container of pod mypod
  kubectl checkpoint mypod
  
  # Checkpoint container ruby-container of pod mypod
  kubectl checkpoint mypod -c ruby-container
  
  # Checkpoint every container of pod mypod
  kubectl checkpoint mypod --all-containers
  
  # Checkpoint the first running pod of deployment mydeployment, giving the runtime 2 minutes
  kubectl checkpoint deploy/mydeployment --timeout 2m
  
  # Start a checkpoint of pod mypod without waiting for it, then wait for it with kubectl
  kubectl checkpoint mypod --wait=false
  kubectl wait --for=condition=Ready podcheckpoint/mypod-x7k2p
  
  # Checkpoint container app of pod mypod and download its archive to app.tar
  kubectl checkpoint mypod -c app --download app.tar
  
  # Checkpoint through the synchronous pods/checkpoint subresource even where PodCheckpoints are served
  kubectl checkpoint mypod --api=subresource
  
  # Checkpoint a pod in namespace prod and print the PodCheckpoint (or ContainerCheckpoint) object as YAML
  kubectl checkpoint mypod -n prod -o yaml";

/// `kubectl checkpoint`'s flags.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "kubectl-checkpoint",
    bin_name = "kubectl checkpoint",
    about = SHORT,
    disable_help_flag = true,
    disable_version_flag = true,
    disable_help_subcommand = true
)]
pub struct CheckpointArgs {
    /// POD or TYPE/NAME
    #[arg(value_name = "POD | TYPE/NAME")]
    pub args: Vec<String>,
    /// Container name. If omitted, use the kubectl.kubernetes.io/default-container annotation for selecting the container to be checkpointed or the first container in the pod will be chosen.
    #[arg(short = 'c', long, verbatim_doc_comment)]
    pub container: Option<String>,
    /// Checkpoint every running container of the pod (needs the PodCheckpoint API).
    #[arg(long, action = ArgAction::SetTrue, verbatim_doc_comment)]
    pub all_containers: bool,
    /// Output format. One of: (json, yaml). Without it, print the node, namespace, pod, container and checkpoint archive of each container.
    #[arg(short = 'o', long, value_enum, verbatim_doc_comment)]
    pub output: Option<OutputFormat>,
    /// The length of time (like 30s, 2m, or a number of seconds) the container runtime may take to write each container's checkpoint; 0 uses the node's default. The command waits that long plus 15s for each container (5m each for 0), plus --claim-timeout for a PodCheckpoint.
    #[arg(
        long,
        default_value = "0s",
        allow_hyphen_values = true,
        verbatim_doc_comment
    )]
    pub timeout: String,
    /// The checkpoint API to use: object (create a PodCheckpoint and wait for it) or subresource (the synchronous pods/checkpoint). If unset, object when the cluster serves PodCheckpoints, else subresource.
    #[arg(long, value_enum, verbatim_doc_comment)]
    pub api: Option<ApiKind>,
    /// Wait for the checkpoint to be written. If false, create the PodCheckpoint, print its name and exit (PodCheckpoint API only).
    #[arg(
        long,
        default_value = "true",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = parse_bool,
        action = ArgAction::Set,
        verbatim_doc_comment
    )]
    pub wait: bool,
    /// How long a checkpoint agent may take to claim the PodCheckpoint (like 30s or 2m). If none does, the command says so, naming the pod's node, and deletes the PodCheckpoint so that no agent acts on it later.
    #[arg(
        long,
        default_value = "30s",
        allow_hyphen_values = true,
        verbatim_doc_comment
    )]
    pub claim_timeout: String,
    /// After the checkpoint, download its archive to this file (PodCheckpoint API, one container), as kubectl checkpoint download does: written 0600 under a temporary name, renamed once its sha256 matches.
    #[arg(long, value_name = "FILE", verbatim_doc_comment)]
    pub download: Option<String>,
    #[command(flatten)]
    pub config: ConfigFlags,
    /// help for checkpoint
    #[arg(short = 'h', long, action = ArgAction::SetTrue, hide = true)]
    pub help: bool,
    /// Print the version of kubectl-checkpoint and exit.
    #[arg(long, action = ArgAction::SetTrue, verbatim_doc_comment)]
    pub version: bool,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Help,
    Version,
    Run(Box<CheckpointArgs>),
}

/// Parse argv (with the program name first).
pub fn parse<I, T>(argv: I) -> Result<Parsed, Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let last = argv
        .last()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let args = CheckpointArgs::try_parse_from(argv).map_err(|e| usage_error(e, &last))?;
    Ok(if args.help {
        Parsed::Help
    } else if args.version {
        Parsed::Version
    } else {
        Parsed::Run(Box::new(args))
    })
}

/// Go's `strconv.ParseBool`, as pflag reads `--wait=...`.
fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        other => Err(format!(
            "strconv.ParseBool: parsing {other:?}: invalid syntax"
        )),
    }
}

/// `kubectl-checkpoint v0.1.0`
pub fn version_text() -> String {
    format!("kubectl-checkpoint v{}\n", env!("CARGO_PKG_VERSION"))
}

/// The `--help` text, laid out as kubectl lays out a command's help.
pub fn help_text() -> String {
    kubectl_help(&CheckpointArgs::command(), LONG, EXAMPLES, USAGE)
}

/// A command's `--help` in kubectl's layout: the long description, examples,
/// each flag as `    -s, --name=default:` with its help on the next line
/// (sorted by name; booleans `false`, lists `[]`, strings without a default
/// `''`, `--request-timeout` quoted), then the usage line. Shared by every
/// subcommand of the plugin.
pub fn kubectl_help(cmd: &clap::Command, long_help: &str, examples: &str, usage: &str) -> String {
    let mut flags: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_positional() && !a.is_hide_set())
        .collect();
    flags.sort_by_key(|a| a.get_long().unwrap_or_default().to_owned());
    let mut out = format!("{long_help}\n\nExamples:\n{examples}\n\nOptions:\n");
    for arg in flags {
        let long = arg.get_long().unwrap_or_default();
        let name = match arg.get_short() {
            Some(s) => format!("-{s}, --{long}"),
            None => format!("--{long}"),
        };
        let default = if !arg.get_action().takes_values() {
            "false".to_owned()
        } else if matches!(arg.get_action(), ArgAction::Append) {
            "[]".to_owned()
        } else {
            match arg.get_default_values().first() {
                // string flags show their default quoted, duration flags bare
                Some(v) if long == "request-timeout" => format!("'{}'", v.to_string_lossy()),
                Some(v) => v.to_string_lossy().into_owned(),
                None => "''".to_owned(),
            }
        };
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        out.push_str(&format!("    {name}={default}:\n\t{help}\n\n"));
    }
    out.push_str(&format!("Usage:\n  {usage}\n"));
    out
}

/// Turn a clap error into pflag's wording; `last` is the last argument given
/// (the flag whose value is missing, if one is).
pub(crate) fn usage_error(e: clap::Error, last: &str) -> Error {
    Error::Usage(usage_message(e, last))
}

/// [`usage_error`]'s message (the subcommands wrap it in their own errors).
pub(crate) fn usage_message(e: clap::Error, last: &str) -> String {
    let context = |kind| e.get(kind).map(|v| v.to_string()).unwrap_or_default();
    let arg = context(ContextKind::InvalidArg);
    // clap writes `--wait[=<WAIT>]` for a flag whose value is optional
    let mut flag = arg
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .split('[')
        .next()
        .unwrap_or_default()
        .to_owned();
    if e.kind() == ErrorKind::InvalidValue
        && last.len() == 2
        && last.starts_with('-')
        && !last.starts_with("--")
    {
        // clap names the long form; pflag names what was typed
        flag = last.to_owned();
    }
    let value = context(ContextKind::InvalidValue);
    match e.kind() {
        ErrorKind::UnknownArgument => {
            if let Some(long) = flag.strip_prefix("--") {
                format!(
                    "unknown flag: --{}",
                    long.split('=').next().unwrap_or_default()
                )
            } else {
                let short = flag.trim_start_matches('-').chars().next().unwrap_or('?');
                format!("unknown shorthand flag: '{short}' in {flag}")
            }
        }
        ErrorKind::InvalidValue if value.is_empty() => {
            format!("flag needs an argument: {}", pflag_name(&flag))
        }
        ErrorKind::InvalidValue if flag.contains("output") => format!(
            "unable to match a printer suitable for the output format {value:?}, allowed formats are: {}",
            OutputFormat::ALLOWED.replace(' ', "")
        ),
        ErrorKind::ValueValidation => {
            let cause = std::error::Error::source(&e)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            format!(
                "invalid argument {value:?} for {:?} flag{cause}",
                pflag_name(&flag)
            )
        }
        ErrorKind::InvalidValue => {
            format!(
                "invalid argument {value:?} for {:?} flag",
                pflag_name(&flag)
            )
        }
        ErrorKind::ArgumentConflict | ErrorKind::TooManyValues => {
            format!("flag given more than once: {}", pflag_name(&flag))
        }
        _ => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            first.strip_prefix("error: ").unwrap_or(first).to_owned()
        }
    }
}

/// `--long` or pflag's `'c' in -c` for a short flag.
fn pflag_name(flag: &str) -> String {
    if flag.starts_with("--") {
        return flag.to_owned();
    }
    let short = flag.trim_start_matches('-');
    format!("'{short}' in -{short}")
}

/// The arguments for the subcommand `name` (program name first) when `argv`
/// asks for it, by [`subcommand_args`]' rule.
pub fn subcommand_named(argv: &[OsString], name: &str) -> Option<Vec<OsString>> {
    let command = CheckpointArgs::command();
    // A bool like --wait takes its value only after `=`, as pflag's.
    let takes_value = |arg: Option<&clap::Arg>| {
        arg.is_some_and(|a| {
            a.get_action().takes_values() && !a.is_positional() && !a.is_require_equals_set()
        })
    };
    let mut i = 1;
    while let Some(arg) = argv.get(i) {
        let text = arg.to_string_lossy();
        if text == "--" {
            return None;
        }
        if let Some(long) = text.strip_prefix("--") {
            let has_value = long.contains('=');
            let flag = command.get_arguments().find(|a| a.get_long() == Some(long));
            i += if !has_value && takes_value(flag) {
                2
            } else {
                1
            };
            continue;
        }
        if let Some(shorts) = text.strip_prefix('-').filter(|s| !s.is_empty()) {
            // -c app, -capp, -hc app: a short flag that takes a value ends the group.
            let mut skip_next = false;
            for (at, c) in shorts.char_indices() {
                let flag = command.get_arguments().find(|a| a.get_short() == Some(c));
                if takes_value(flag) {
                    skip_next = at + c.len_utf8() == shorts.len();
                    break;
                }
            }
            i += if skip_next { 2 } else { 1 };
            continue;
        }
        if text != name {
            return None;
        }
        let mut rest = Vec::with_capacity(argv.len() - 1);
        rest.extend(argv[..i].iter().cloned());
        rest.extend(argv[i + 1..].iter().cloned());
        return Some(rest);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> CheckpointArgs {
        match parse(std::iter::once("kubectl-checkpoint").chain(line.iter().copied())) {
            Ok(Parsed::Run(a)) => *a,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    fn usage(line: &[&str]) -> String {
        match parse(std::iter::once("kubectl-checkpoint").chain(line.iter().copied())) {
            Err(e) => e.render(),
            other => panic!("{line:?}: {other:?}"),
        }
    }

    #[test]
    fn flags_parse_like_kubectl() {
        let a = args(&[
            "deploy/web",
            "-c",
            "app",
            "--timeout=2m",
            "-o",
            "yaml",
            "-n",
            "prod",
            "--context",
            "dev",
            "--cluster=c",
            "--user",
            "u",
            "--as",
            "bob",
            "--as-group",
            "g1",
            "--as-group=g2",
            "--kubeconfig",
            "/tmp/kc",
            "--request-timeout",
            "5s",
        ]);
        assert_eq!(a.args, ["deploy/web"]);
        assert_eq!(a.container.as_deref(), Some("app"));
        assert_eq!(a.timeout, "2m");
        assert_eq!(a.output, Some(OutputFormat::Yaml));
        assert_eq!(a.config.namespace.as_deref(), Some("prod"));
        assert_eq!(a.config.context.as_deref(), Some("dev"));
        assert_eq!(a.config.cluster.as_deref(), Some("c"));
        assert_eq!(a.config.user.as_deref(), Some("u"));
        assert_eq!(a.config.impersonate.as_deref(), Some("bob"));
        assert_eq!(a.config.impersonate_groups, ["g1", "g2"]);
        assert_eq!(
            a.config.kubeconfig.as_deref(),
            Some(std::path::Path::new("/tmp/kc"))
        );
        assert_eq!(a.config.request_timeout, "5s");

        let a = args(&[
            "mypod",
            "--all-containers",
            "--api",
            "object",
            "--wait=false",
            "--claim-timeout=1m",
        ]);
        assert!(a.all_containers);
        assert_eq!(a.api, Some(ApiKind::Object));
        assert!(!a.wait);
        assert_eq!(a.claim_timeout, "1m");
        assert!(args(&["mypod", "--wait"]).wait);
        assert!(args(&["mypod", "--wait=T"]).wait);
        assert!(!args(&["mypod", "--wait=0"]).wait);
        assert_eq!(
            args(&["mypod", "--api=subresource"]).api,
            Some(ApiKind::Subresource)
        );
        // pflag: a bool flag takes its value only after `=`
        assert_eq!(args(&["mypod", "--wait", "false"]).args, ["mypod", "false"]);

        let a = args(&["mypod"]);
        assert!(a.wait && !a.all_containers && a.api.is_none());
        assert_eq!(a.claim_timeout, "30s");
        assert_eq!(a.timeout, "0s");
        assert_eq!(a.config.request_timeout, "0");
        assert_eq!(a.output, None);
    }

    #[test]
    fn help_and_version() {
        let p = |l: &[&str]| {
            parse(std::iter::once("kubectl-checkpoint").chain(l.iter().copied())).unwrap()
        };
        assert_eq!(p(&["--help"]), Parsed::Help);
        assert_eq!(p(&["-h"]), Parsed::Help);
        assert_eq!(p(&["mypod", "-h"]), Parsed::Help);
        assert_eq!(p(&["--version"]), Parsed::Version);
        assert_eq!(
            version_text(),
            format!("kubectl-checkpoint v{}\n", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn help_snapshot() {
        let help = help_text();
        assert!(
            help.contains(
                "\nUsage:\n  kubectl checkpoint (POD | TYPE/NAME) [-c CONTAINER | --all-containers] [flags]\n"
            )
        );
        assert!(help.contains("    -c, --container='':\n"));
        assert!(help.contains("    --as-group=[]:\n"));
        assert!(help.contains("    --timeout=0s:\n"));
        assert!(help.contains("    --all-containers=false:\n"));
        assert!(help.contains("    --api='':\n"));
        assert!(help.contains("    --wait=true:\n"));
        assert!(help.contains("    --claim-timeout=30s:\n"));
        insta::assert_snapshot!("help", help);
    }

    #[test]
    fn usage_errors_in_pflag_words() {
        assert_eq!(
            usage(&["mypod", "--bogus"]),
            "error: unknown flag: --bogus\nSee 'kubectl checkpoint -h' for help and examples\n"
        );
        assert_eq!(
            usage(&["mypod", "--bogus=1"]),
            "error: unknown flag: --bogus\nSee 'kubectl checkpoint -h' for help and examples\n"
        );
        assert_eq!(
            usage(&["mypod", "-x"]),
            "error: unknown shorthand flag: 'x' in -x\nSee 'kubectl checkpoint -h' for help and examples\n"
        );
        assert_eq!(
            usage(&["mypod", "--timeout"]),
            "error: flag needs an argument: --timeout\nSee 'kubectl checkpoint -h' for help and examples\n"
        );
        assert_eq!(
            usage(&["mypod", "-c"]),
            "error: flag needs an argument: 'c' in -c\nSee 'kubectl checkpoint -h' for help and examples\n"
        );
        assert_eq!(
            usage(&["mypod", "--wait=maybe"]),
            "error: invalid argument \"maybe\" for \"--wait\" flag: strconv.ParseBool: parsing \"maybe\": invalid syntax\nSee 'kubectl checkpoint -h' for help and examples\n"
        );
        assert_eq!(
            usage(&["mypod", "--api", "both"]),
            "error: invalid argument \"both\" for \"--api\" flag\nSee 'kubectl checkpoint -h' for help and examples\n"
        );
        assert_eq!(
            usage(&["mypod", "-o", "wide"]),
            "error: unable to match a printer suitable for the output format \"wide\", allowed formats are: json,yaml\nSee 'kubectl checkpoint -h' for help and examples\n"
        );
    }
}
