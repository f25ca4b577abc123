//! `kubectl checkpoint inspect FILE`: what a local checkpoint archive holds, printed as
//! checkpointctl prints it — `checkpointctl show`'s table by default, `checkpointctl
//! inspect`'s tree with `--stats`, `--ps-tree` or `--ps-tree-cmd`, or one JSON (YAML)
//! document with `-o`. The archive is read by the `checkpoint-archive` crate, as a stream.
//!
//! Dispatch, as cobra routes subcommands: the first argument that is neither a flag of
//! `kubectl checkpoint` nor a flag's value selects the subcommand when it is `inspect`
//! ([`subcommand_args`]). A pod named `inspect` is reached as `pod/inspect` (or after
//! `--`).

use std::borrow::Cow;
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;

use checkpoint_archive::display::{byte_to_string, format_time};
use checkpoint_archive::{Inspection, Options, Process, ProcessTree};
use clap::{ArgAction, CommandFactory, Parser};
use serde::Serialize;

use crate::printer::{OutputFormat, PrintError};

/// The subcommand's name.
pub const NAME: &str = "inspect";

/// The usage line.
pub const USAGE: &str =
    "kubectl checkpoint inspect FILE [--stats] [--ps-tree | --ps-tree-cmd] [-o json|yaml] [flags]";

/// One line description (also the line under "Available Commands").
pub const SHORT: &str = "Show what a local checkpoint archive holds.";

/// The hint under usage errors.
pub const USAGE_HINT: &str = "See 'kubectl checkpoint inspect -h' for help and examples";

/// The long description.
pub const LONG: &str = "Show what a local checkpoint archive holds, as checkpointctl show and checkpointctl inspect do.

 FILE is a container checkpoint archive (the tar the kubelet and the container runtime write), copied
from the node. It is read as a stream, never unpacked: the container, image, container ID, runtime,
creation time, engine, checkpoint size and root file system diff size, as a table. --stats adds CRIU's
dump statistics, --ps-tree the process tree with PIDs and command names, --ps-tree-cmd the same with
full command lines; with any of them the output is a tree. -o json or -o yaml prints one document
with everything asked for.

 \"kubectl checkpoint inspect ...\" always runs this command, as kubectl routes subcommands: the first
argument that is not a flag selects it. To checkpoint a pod named inspect, write \"kubectl checkpoint
pod/inspect\".";

/// The examples.
pub const EXAMPLES: &str =
    "  # Show the container, image, runtime and sizes of an archive copied from a node
  kubectl checkpoint inspect checkpoint-counter_default-app-2026-11-27T07:30:01Z.tar
  
  # Add CRIU's dump statistics and the process tree with full command lines
  kubectl checkpoint inspect checkpoint.tar --stats --ps-tree-cmd
  
  # Everything as JSON
  kubectl checkpoint inspect checkpoint.tar --stats --ps-tree -o json";

/// `kubectl checkpoint inspect`'s flags.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "kubectl-checkpoint-inspect",
    bin_name = "kubectl checkpoint inspect",
    about = SHORT,
    disable_help_flag = true,
    disable_version_flag = true,
    disable_help_subcommand = true
)]
pub struct InspectArgs {
    /// FILE
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Display CRIU's dump statistics (from the archive's stats-dump).
    #[arg(long, action = ArgAction::SetTrue)]
    pub stats: bool,
    /// Display the process tree of the checkpoint with PIDs and command names.
    #[arg(long = "ps-tree", action = ArgAction::SetTrue)]
    pub ps_tree: bool,
    /// Display the process tree of the checkpoint with full command lines (read from the memory pages).
    #[arg(long = "ps-tree-cmd", action = ArgAction::SetTrue)]
    pub ps_tree_cmd: bool,
    /// Output format. One of: (json, yaml). Without it, a table (or with --stats, --ps-tree or --ps-tree-cmd a tree).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
    /// help for inspect
    #[arg(short = 'h', long, action = ArgAction::SetTrue, hide = true)]
    pub help: bool,
}

/// Why `kubectl checkpoint inspect` failed.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Bad command line; printed with [`USAGE_HINT`].
    #[error("{0}\n{USAGE_HINT}")]
    Usage(String),
    #[error("failed to inspect {path}")]
    Archive {
        path: String,
        #[source]
        source: checkpoint_archive::Error,
    },
    #[error(transparent)]
    Print(#[from] PrintError),
}

/// The arguments for `inspect` (program name first) when `argv` asks for it: the first
/// argument that is not a flag of `kubectl checkpoint` or a flag's value is `inspect`.
/// Flags before it stay (cobra parses them against the subcommand too); `--` ends the
/// search, so `kubectl checkpoint -- inspect` is the pod `inspect`.
pub fn subcommand_args(argv: &[OsString]) -> Option<Vec<OsString>> {
    crate::cmd::subcommand_named(argv, NAME)
}

/// Run `kubectl checkpoint inspect` with `argv` ([`subcommand_args`]'s result).
pub fn run(argv: Vec<OsString>, out: &mut impl Write) -> Result<(), InspectError> {
    let last = argv
        .last()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let args = InspectArgs::try_parse_from(argv).map_err(|e| usage(e, &last))?;
    if args.help {
        return out
            .write_all(help_text().as_bytes())
            .map_err(|e| InspectError::Print(e.into()));
    }
    let file = match args.files.as_slice() {
        [one] => one,
        [] => {
            return Err(InspectError::Usage(
                "expected 'checkpoint inspect FILE'.\nFILE (a checkpoint archive) is a required argument for the inspect command; to checkpoint a pod named inspect, use pod/inspect".into(),
            ));
        }
        more => {
            return Err(InspectError::Usage(format!(
                "exactly one FILE is allowed, got {}",
                more.len()
            )));
        }
    };
    let options = Options {
        stats: args.stats,
        ps_tree: args.ps_tree || args.ps_tree_cmd,
        cmdline: args.ps_tree_cmd,
        ..Options::default()
    };
    let path = file.display().to_string();
    tracing::debug!(%path, ?options, "inspecting");
    let inspection = checkpoint_archive::inspect_path(file, &options).map_err(|source| {
        InspectError::Archive {
            path: path.clone(),
            source,
        }
    })?;
    match args.output {
        Some(format) => print_document(&Document::new(&inspection), format, out)?,
        None if options.stats || options.ps_tree => {
            print_tree(&inspection, &path, options.cmdline, out).map_err(PrintError::from)?
        }
        None => print_table(&inspection, &path, out).map_err(PrintError::from)?,
    }
    Ok(())
}

/// A clap error in pflag's words, with the inspect hint.
fn usage(e: clap::Error, last: &str) -> InspectError {
    InspectError::Usage(crate::cmd::usage_message(e, last))
}

/// The `--help` text, in kubectl's layout.
pub fn help_text() -> String {
    crate::cmd::kubectl_help(&InspectArgs::command(), LONG, EXAMPLES, USAGE)
}

/// `kubectl checkpoint --help` with the subcommand listed, as kubectl lists a command's
/// subcommands: an example for a pod named inspect, "Available Commands" before
/// "Options", and the pointer to the subcommand's help at the end.
pub fn with_subcommands(main_help: &str) -> String {
    let example = "\n  \n  # Checkpoint a pod named inspect (\"kubectl checkpoint inspect\" runs the inspect command)\n  kubectl checkpoint pod/inspect";
    let commands = format!(
        "Available Commands:\n  {:<13} {}\n  {NAME:<13} {SHORT}\n\n",
        crate::download::NAME,
        crate::download::SHORT
    );
    let mut help = match main_help.find("\n\nOptions:\n") {
        Some(at) => format!(
            "{}{example}\n\n{commands}{}",
            &main_help[..at],
            &main_help[at + 2..]
        ),
        None => format!("{main_help}\n{commands}"),
    };
    help.push_str(
        "\nUse \"kubectl checkpoint <command> --help\" for more information about a given command.\n",
    );
    help
}

/// Control characters (and bidirectional overrides) of archive-controlled text, escaped:
/// a hostile archive must not move the terminal's cursor or reorder what is shown.
pub fn clean(s: &str) -> Cow<'_, str> {
    let suspicious = |c: char| {
        c.is_control()
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    if !s.chars().any(suspicious) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if suspicious(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// `checkpointctl show`'s table: Go's tabwriter with kubectl's settings (minimum width 6,
/// padding 3), upper-case header, a line of dashes, one row.
pub fn print_table(i: &Inspection, file: &str, out: &mut impl Write) -> io::Result<()> {
    let id: String = i.config.id.chars().take(12).collect();
    let mut header = vec!["Container", "Image", "ID", "Runtime", "Created", "Engine"];
    let mut row: Vec<String> = vec![
        clean(&i.container.name).into_owned(),
        clean(&i.config.rootfs_image_name).into_owned(),
        clean(&id).into_owned(),
        clean(&i.config.oci_runtime).into_owned(),
        clean(&i.container.created).into_owned(),
        i.container.engine.as_str().to_owned(),
    ];
    if !i.container.ip.is_empty() {
        header.push("IP");
        row.push(clean(&i.container.ip).into_owned());
    }
    header.push("CHKPT Size");
    row.push(byte_to_string(i.sizes.checkpoint_size));
    if i.sizes.rootfs_diff_size != 0 {
        header.push("Root Fs Diff Size");
        row.push(byte_to_string(i.sizes.rootfs_diff_size));
    }
    let rows = [
        header.iter().map(|h| h.to_uppercase()).collect::<Vec<_>>(),
        header.iter().map(|h| "-".repeat(h.len())).collect(),
        row,
    ];
    writeln!(
        out,
        "\nDisplaying container checkpoint data from {}\n",
        clean(file)
    )?;
    write_tabbed(&rows, out)
}

/// Go's `text/tabwriter` with minwidth 6, padding 3, padchar ' ': every cell but the last
/// of a line padded to its column's widest cell plus 3 (at least 6).
fn write_tabbed(rows: &[Vec<String>], out: &mut impl Write) -> io::Result<()> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count() + 3)
                .max()
                .unwrap_or(0)
                .max(6)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[c].saturating_sub(cell.chars().count());
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// A node of a treeprint tree: `[meta]  text` when `meta` is set.
#[derive(Debug, Default)]
struct Node {
    meta: Option<String>,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn leaf(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }

    fn branch(text: impl Into<String>, children: Vec<Node>) -> Self {
        Self {
            text: text.into(),
            children,
            ..Self::default()
        }
    }

    /// treeprint's layout: `├── ` / `└── ` before each child, `│   ` / `    ` below.
    fn render(&self, prefix: &str, out: &mut String) {
        for (n, child) in self.children.iter().enumerate() {
            let last = n + 1 == self.children.len();
            out.push_str(prefix);
            out.push_str(if last { "└── " } else { "├── " });
            if let Some(meta) = &child.meta {
                out.push_str(&format!("[{meta}]  "));
            }
            out.push_str(&child.text);
            out.push('\n');
            let deeper = format!("{prefix}{}", if last { "    " } else { "│   " });
            child.render(&deeper, out);
        }
    }
}

/// The process tree as checkpointctl draws it: `[PID]  comm` (or the command line),
/// `[PID (State)]` for a task that is not alive, no children under a dead or zombie task.
fn process_node(tree: &ProcessTree, p: &Process, cmdline: bool) -> Node {
    let meta = if p.state.is_alive() {
        p.pid.to_string()
    } else {
        format!("{} ({})", p.pid, p.state.as_str())
    };
    let text = match (&p.cmdline, cmdline) {
        (Some(line), true) if !line.is_empty() => {
            format!(
                "{}{}",
                clean(line),
                if p.cmdline_truncated { "..." } else { "" }
            )
        }
        _ => clean(&p.comm).into_owned(),
    };
    let children = if p.state.is_alive_or_stopped() {
        p.children
            .iter()
            .filter_map(|&c| tree.processes.get(c))
            .map(|c| process_node(tree, c, cmdline))
            .collect()
    } else {
        Vec::new()
    };
    Node {
        meta: Some(meta),
        text,
        children,
    }
}

/// `checkpointctl inspect`'s tree: the container, its metadata and sizes, then the
/// statistics and the process tree when they were read.
pub fn print_tree(
    i: &Inspection,
    file: &str,
    cmdline: bool,
    out: &mut impl Write,
) -> io::Result<()> {
    let name = if i.container.name.is_empty() {
        "Container".to_owned()
    } else {
        clean(&i.container.name).into_owned()
    };
    let mut items = vec![
        Node::leaf(format!("Image: {}", clean(&i.config.rootfs_image_name))),
        Node::leaf(format!("ID: {}", clean(&i.config.id))),
        Node::leaf(format!("Runtime: {}", clean(&i.config.oci_runtime))),
        Node::leaf(format!("Created: {}", clean(&i.container.created))),
    ];
    if let Some(at) = &i.checkpointed {
        items.push(Node::leaf(format!("Checkpointed: {}", clean(at))));
    }
    items.push(Node::leaf(format!(
        "Engine: {}",
        i.container.engine.as_str()
    )));
    if !i.container.ip.is_empty() {
        items.push(Node::leaf(format!("IP: {}", clean(&i.container.ip))));
    }
    let mut size = Node::leaf(format!(
        "Checkpoint size: {}",
        byte_to_string(i.sizes.checkpoint_size)
    ));
    if i.sizes.pages_size != 0 {
        size.children.push(Node::leaf(format!(
            "Memory pages size: {}",
            byte_to_string(i.sizes.pages_size)
        )));
    }
    items.push(size);
    if i.sizes.rootfs_diff_size != 0 {
        items.push(Node::leaf(format!(
            "Root FS diff size: {}",
            byte_to_string(i.sizes.rootfs_diff_size)
        )));
    }
    if let Some(s) = &i.stats {
        items.push(Node::branch(
            "CRIU dump statistics",
            vec![
                Node::leaf(format!("Freezing time: {}", format_time(s.freezing_time))),
                Node::leaf(format!("Frozen time: {}", format_time(s.frozen_time))),
                Node::leaf(format!("Memdump time: {}", format_time(s.memdump_time))),
                Node::leaf(format!("Memwrite time: {}", format_time(s.memwrite_time))),
                Node::leaf(format!("Pages scanned: {}", s.pages_scanned)),
                Node::leaf(format!("Pages written: {}", s.pages_written)),
            ],
        ));
    }
    if let Some(tree) = &i.process_tree
        && let Some(root) = tree.root()
    {
        items.push(Node::branch(
            "Process tree",
            vec![process_node(tree, root, cmdline)],
        ));
    }
    let mut text = format!("{name}\n");
    Node::branch(String::new(), items).render("", &mut text);
    writeln!(
        out,
        "\nDisplaying container checkpoint tree view from {}\n",
        clean(file)
    )?;
    writeln!(out, "{text}")
}

/// `-o json` / `-o yaml`: the fields and names of checkpointctl's `inspect --format json`
/// (one archive: one object, not a list); numbers are always present; `statistics` and
/// `process_tree` only when asked for.
#[derive(Debug, Serialize)]
pub struct Document<'a> {
    pub container_name: &'a str,
    pub image: &'a str,
    pub id: &'a str,
    pub runtime: &'a str,
    pub created: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpointed: Option<&'a str>,
    pub engine: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub ip: &'a str,
    pub checkpoint_size: Sizes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistics: Option<Statistics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_tree: Option<PsNode<'a>>,
}

/// `checkpoint_size`: bytes.
#[derive(Debug, Serialize)]
pub struct Sizes {
    pub total_size: u64,
    pub memory_pages_size: u64,
    pub root_fs_diff_size: u64,
}

/// `statistics`: microseconds and pages, as CRIU records them.
#[derive(Debug, Serialize)]
pub struct Statistics {
    pub freezing_time: u32,
    pub frozen_time: u32,
    pub memdump_time: u32,
    pub memwrite_time: u32,
    pub pages_scanned: u64,
    pub pages_written: u64,
}

/// One process; `children` left out when none, and always for a dead or zombie task.
#[derive(Debug, Serialize)]
pub struct PsNode<'a> {
    pub pid: u32,
    pub command: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cmdline_truncated: bool,
    pub task_state: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<PsNode<'a>>,
}

impl<'a> PsNode<'a> {
    fn new(tree: &'a ProcessTree, p: &'a Process) -> Self {
        let children = if p.state.is_alive_or_stopped() {
            p.children
                .iter()
                .filter_map(|&c| tree.processes.get(c))
                .map(|c| PsNode::new(tree, c))
                .collect()
        } else {
            Vec::new()
        };
        Self {
            pid: p.pid,
            command: &p.comm,
            cmdline: p.cmdline.as_deref(),
            cmdline_truncated: p.cmdline_truncated,
            task_state: p.state.as_str(),
            children,
        }
    }
}

impl<'a> Document<'a> {
    pub fn new(i: &'a Inspection) -> Self {
        Self {
            container_name: &i.container.name,
            image: &i.config.rootfs_image_name,
            id: &i.config.id,
            runtime: &i.config.oci_runtime,
            created: &i.container.created,
            checkpointed: i.checkpointed.as_deref(),
            engine: i.container.engine.as_str(),
            ip: &i.container.ip,
            checkpoint_size: Sizes {
                total_size: i.sizes.checkpoint_size,
                memory_pages_size: i.sizes.pages_size,
                root_fs_diff_size: i.sizes.rootfs_diff_size,
            },
            statistics: i.stats.as_ref().map(|s| Statistics {
                freezing_time: s.freezing_time,
                frozen_time: s.frozen_time,
                memdump_time: s.memdump_time,
                memwrite_time: s.memwrite_time,
                pages_scanned: s.pages_scanned,
                pages_written: s.pages_written,
            }),
            process_tree: i
                .process_tree
                .as_ref()
                .and_then(|t| t.root().map(|root| PsNode::new(t, root))),
        }
    }
}

/// The document as JSON (four-space indent, as the plugin's other JSON) or YAML.
pub fn print_document(
    doc: &Document<'_>,
    format: OutputFormat,
    out: &mut impl Write,
) -> Result<(), PrintError> {
    crate::printer::print_object(doc, format, out)
}

#[cfg(test)]
mod tests {
    use kcr_testkit::criu_fixture::{Entry, Fixture, write_tar};

    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        std::iter::once("kubectl-checkpoint")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn routed(args: &[&str]) -> Option<Vec<String>> {
        subcommand_args(&os(args)).map(|v| {
            v.iter()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        })
    }

    #[test]
    fn the_first_positional_argument_selects_inspect() {
        assert_eq!(routed(&["inspect", "a.tar"]), Some(vec!["a.tar".into()]));
        assert_eq!(
            routed(&["inspect", "a.tar", "--stats", "-o", "json"]),
            Some(vec![
                "a.tar".into(),
                "--stats".into(),
                "-o".into(),
                "json".into()
            ])
        );
        // flags of kubectl checkpoint and their values before it are skipped (and kept)
        assert_eq!(
            routed(&["-o", "json", "inspect", "a.tar"]),
            Some(vec!["-o".into(), "json".into(), "a.tar".into()])
        );
        assert_eq!(
            routed(&["-n", "inspect", "mypod"]),
            None,
            "inspect is the value of -n"
        );
        assert_eq!(routed(&["--namespace", "inspect", "mypod"]), None);
        assert_eq!(
            routed(&["--namespace=x", "inspect", "f"]).map(|v| v.len()),
            Some(2)
        );
        assert_eq!(routed(&["--api", "inspect", "mypod"]), None);
        assert_eq!(
            routed(&["--wait", "inspect", "f"]),
            Some(vec!["--wait".into(), "f".into()]),
            "--wait takes no separate value"
        );
        assert_eq!(routed(&["-cinspect", "mypod"]), None);
        assert_eq!(routed(&["-c", "inspect", "mypod"]), None);
        assert_eq!(routed(&["-h", "inspect"]), Some(vec!["-h".into()]));
        // a pod named inspect
        assert_eq!(routed(&["pod/inspect"]), None);
        assert_eq!(routed(&["--", "inspect"]), None);
        assert_eq!(routed(&["mypod", "inspect"]), None);
        assert_eq!(routed(&["inspecting"]), None);
        assert_eq!(routed(&[]), None);
    }

    fn usage_err(args: &[&str]) -> String {
        let argv = subcommand_args(&os(args)).expect("inspect");
        let mut out = Vec::new();
        let e = run(argv, &mut out).unwrap_err();
        crate::error::Error::from(e).render()
    }

    #[test]
    fn usage_errors_name_the_inspect_help() {
        let hint = "See 'kubectl checkpoint inspect -h' for help and examples";
        assert_eq!(
            usage_err(&["inspect"]),
            format!(
                "error: expected 'checkpoint inspect FILE'.\nFILE (a checkpoint archive) is a required argument for the inspect command; to checkpoint a pod named inspect, use pod/inspect\n{hint}\n"
            )
        );
        assert_eq!(
            usage_err(&["inspect", "a", "b"]),
            format!("error: exactly one FILE is allowed, got 2\n{hint}\n")
        );
        assert_eq!(
            usage_err(&["inspect", "a", "--bogus"]),
            format!("error: unknown flag: --bogus\n{hint}\n")
        );
        assert_eq!(
            usage_err(&["-n", "x", "inspect", "a"]),
            format!("error: unknown shorthand flag: 'n' in -n\n{hint}\n")
        );
        assert_eq!(
            usage_err(&["inspect", "a", "-o", "wide"]),
            format!(
                "error: unable to match a printer suitable for the output format \"wide\", allowed formats are: json,yaml\n{hint}\n"
            )
        );
        assert_eq!(
            usage_err(&["inspect", "a", "-o"]),
            format!("error: flag needs an argument: 'o' in -o\n{hint}\n")
        );
    }

    #[test]
    fn archive_errors_name_the_file_and_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.tar");
        let m = missing.display().to_string();
        assert_eq!(
            usage_err(&["inspect", &m]),
            format!(
                "error: failed to inspect {m}: failed to open the archive: No such file or directory (os error 2)\n"
            )
        );
        let bad = dir.path().join("bad.tar");
        let mut entries = Fixture::sleepers().entries();
        entries.insert(1, Entry::file("../escape", b"x".to_vec()));
        std::fs::write(&bad, write_tar(&entries)).unwrap();
        let b = bad.display().to_string();
        assert_eq!(
            usage_err(&["inspect", &b]),
            format!(
                "error: failed to inspect {b}: archive entry \"../escape\" is not a safe relative path: it climbs out with ..\n"
            )
        );
    }

    #[test]
    fn help_snapshots() {
        let help = help_text();
        assert!(help.ends_with(&format!("Usage:\n  {USAGE}\n")));
        assert!(help.contains("    --ps-tree-cmd=false:\n"));
        assert!(help.contains("    -o, --output='':\n"));
        insta::assert_snapshot!("inspect_help", help);

        let main = with_subcommands(&crate::cmd::help_text());
        assert!(main.contains("\n\nAvailable Commands:\n  download      Download the archive of a PodCheckpoint from its node.\n  inspect       Show what a local checkpoint archive holds.\n\nOptions:\n"));
        assert!(main.contains("  kubectl checkpoint pod/inspect\n\nAvailable Commands:"));
        assert!(main.ends_with("Use \"kubectl checkpoint <command> --help\" for more information about a given command.\n"));
        insta::assert_snapshot!("main_help_with_subcommands", main);
    }

    fn fixture_inspection(options: Options) -> Inspection {
        let bytes = Fixture::sleepers().to_tar();
        checkpoint_archive::inspect(|| Ok(std::io::Cursor::new(bytes.as_slice())), &options)
            .unwrap()
    }

    fn render(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    const ALL: Options = Options {
        stats: true,
        ps_tree: true,
        cmdline: true,
        limits: checkpoint_archive::Limits::DEFAULT,
    };

    #[test]
    fn table_like_checkpointctl_show() {
        let i = fixture_inspection(Options::default());
        let text = render(|o| print_table(&i, "/tmp/c.tar", o).unwrap());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..3],
            [
                "",
                "Displaying container checkpoint data from /tmp/c.tar",
                ""
            ]
        );
        assert!(
            lines[3].starts_with("CONTAINER   IMAGE                       ID             RUNTIME"),
            "{text}"
        );
        assert!(
            lines[4].starts_with("---------   -----                       --             -------"),
            "{text}"
        );
        assert!(
            lines[5].starts_with(
                "app         localhost/kcr-test/app:v1   f311a40eb5b9   io.containerd.runc.v2"
            ),
            "{text}"
        );
        assert!(lines[3].ends_with("CHKPT SIZE   ROOT FS DIFF SIZE"));
        insta::assert_snapshot!("inspect_table", text);
    }

    #[test]
    fn tree_like_checkpointctl_inspect() {
        let i = fixture_inspection(ALL);
        let text = render(|o| print_tree(&i, "c.tar", false, o).unwrap());
        assert!(text.contains("\n└── Process tree\n    └── [1]  sh\n        ├── [8]  sleep\n        └── [9]  sleep\n"), "{text}");
        assert!(text.contains("├── CRIU dump statistics\n│   ├── Freezing time: 720 µs\n│   ├── Frozen time: 74.774 ms\n"), "{text}");
        insta::assert_snapshot!("inspect_tree", text);
        let cmd = render(|o| print_tree(&i, "c.tar", true, o).unwrap());
        assert!(cmd.contains("    └── [1]  /bin/sh -c sleep 1001 & sleep 1002 & wait\n        ├── [8]  sleep 1001\n        └── [9]  sleep 1002\n"), "{cmd}");
        insta::assert_snapshot!("inspect_tree_cmd", cmd);
    }

    #[test]
    fn json_and_yaml_documents() {
        let i = fixture_inspection(ALL);
        let json = render(|o| print_document(&Document::new(&i), OutputFormat::Json, o).unwrap());
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["container_name"], "app");
        assert_eq!(v["process_tree"]["children"][1]["cmdline"], "sleep 1002");
        assert_eq!(v["statistics"]["pages_written"], 48);
        insta::assert_snapshot!("inspect_json", json);
        let yaml = render(|o| print_document(&Document::new(&i), OutputFormat::Yaml, o).unwrap());
        insta::assert_snapshot!("inspect_yaml", yaml);
        // Without the options, no statistics and no tree; the numbers are still there.
        let plain = fixture_inspection(Options::default());
        let json =
            render(|o| print_document(&Document::new(&plain), OutputFormat::Json, o).unwrap());
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(v.get("statistics").is_none() && v.get("process_tree").is_none());
        assert_eq!(v["checkpoint_size"]["root_fs_diff_size"], 10);
    }

    #[test]
    fn hostile_text_cannot_drive_the_terminal() {
        let mut f = Fixture::sleepers();
        f.container_name = "app\u{1b}[2J\u{1b}]0;pwned\u{7}\n\u{202e}evil".into();
        f.processes[1].comm = "sl\reep".into();
        let bytes = f.to_tar();
        let i = checkpoint_archive::inspect(|| Ok(std::io::Cursor::new(bytes.as_slice())), &ALL)
            .unwrap();
        let table = render(|o| print_table(&i, "c\u{1b}.tar", o).unwrap());
        let tree = render(|o| print_tree(&i, "c.tar", false, o).unwrap());
        for text in [&table, &tree] {
            assert!(
                !text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{202e}'),
                "{text:?}"
            );
        }
        assert!(
            table.contains("app\\u{1b}[2J\\u{1b}]0;pwned\\u{7}\\u{a}\\u{202e}evil"),
            "{table}"
        );
        assert!(tree.contains("[8]  sl\\u{d}eep"), "{tree}");
        assert_eq!(clean("plain"), "plain");
    }

    #[test]
    fn dead_tasks_and_other_engines_print_like_checkpointctl() {
        let mut f = Fixture::sleepers();
        f.processes[2].state = 6;
        f.rootfs_diff.clear();
        let bytes = f.to_tar();
        let i = checkpoint_archive::inspect(|| Ok(std::io::Cursor::new(bytes.as_slice())), &ALL)
            .unwrap();
        let tree = render(|o| print_tree(&i, "c.tar", true, o).unwrap());
        assert!(tree.contains("└── [9 (Zombie)]  sleep\n"), "{tree}");
        assert!(!tree.contains("Root FS diff size"));
        let table = render(|o| print_table(&i, "c.tar", o).unwrap());
        assert!(
            table.lines().nth(3).unwrap().ends_with("CHKPT SIZE"),
            "{table}"
        );
        let json = render(|o| print_document(&Document::new(&i), OutputFormat::Json, o).unwrap());
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["process_tree"]["children"][1]["task_state"], "Zombie");
        assert!(v["process_tree"]["children"][1].get("cmdline").is_none());
    }
}
