//! `kubectl checkpoint inspect` as users run it: the built binary, directly and through
//! the real kubectl's plugin dispatch, on the synthetic archive of
//! `kcr_testkit::criu_fixture`; errors on stderr with exit code 1; hostile archives in a
//! child limited to 256 MiB of address space (a reader that held a 4 GiB entry or a 2 GiB
//! long name in memory would abort there); and a pod named `inspect` still reached as
//! `pod/inspect`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use checkpoint_archive::{Options, inspect_path};
use kcr_testkit::criu_fixture::{self, Entry, Fixture, write_tar};
use kubectl_cmd::inspect::{Document, print_document, print_table, print_tree};
use kubectl_cmd::printer::OutputFormat;
use pretty_assertions::assert_eq;

const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-checkpoint");

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn plugin(args: &[&str]) -> Output {
    Command::new(PLUGIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn fixture_file(dir: &Path) -> PathBuf {
    let path = dir.join("checkpoint-sleepers_kcr-test-app-2026-11-30T06:31:46Z.tar");
    std::fs::write(&path, Fixture::sleepers().to_tar()).unwrap();
    path
}

fn render(f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut out = Vec::new();
    f(&mut out);
    text(&out)
}

#[test]
fn the_binary_prints_what_the_printers_print() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixture_file(dir.path());
    let f = file.to_str().unwrap();
    let all = Options {
        stats: true,
        ps_tree: true,
        cmdline: true,
        ..Options::default()
    };
    let plain = inspect_path(&file, &Options::default()).unwrap();
    let full = inspect_path(&file, &all).unwrap();

    let out = plugin(&["inspect", f]);
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (Some(0), String::new())
    );
    assert_eq!(
        text(&out.stdout),
        render(|o| print_table(&plain, f, o).unwrap())
    );

    let out = plugin(&["inspect", "--stats", f, "--ps-tree-cmd"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        render(|o| print_tree(&full, f, true, o).unwrap())
    );

    let out = plugin(&["-o", "json", "inspect", f, "--stats", "--ps-tree-cmd"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        render(|o| print_document(&Document::new(&full), OutputFormat::Json, o).unwrap())
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["process_tree"]["cmdline"],
        "/bin/sh -c sleep 1001 & sleep 1002 & wait"
    );

    let help = plugin(&["inspect", "--help"]);
    assert_eq!(text(&help.stdout), kubectl_cmd::inspect::help_text());
}

#[test]
fn errors_go_to_stderr_with_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = dir.path().join("hostile.tar");
    let mut entries = Fixture::sleepers().entries();
    entries.insert(
        1,
        Entry::with_kind(
            "checkpoint/core-1.img",
            criu_fixture::Kind::Symlink("/etc/shadow".into()),
        ),
    );
    std::fs::write(&hostile, write_tar(&entries)).unwrap();
    let h = hostile.to_str().unwrap();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["inspect", h],
            format!(
                "error: failed to inspect {h}: archive entry \"checkpoint/core-1.img\" is a symbolic link (to \"/etc/shadow\"): checkpoint archives hold no links\n"
            ),
        ),
        (
            vec!["inspect"],
            "error: expected 'checkpoint inspect FILE'.\nFILE (a checkpoint archive) is a required argument for the inspect command; to checkpoint a pod named inspect, use pod/inspect\nSee 'kubectl checkpoint inspect -h' for help and examples\n".into(),
        ),
        (
            vec!["inspect", h, "--container", "x"],
            "error: unknown flag: --container\nSee 'kubectl checkpoint inspect -h' for help and examples\n".into(),
        ),
    ];
    for (args, stderr) in cases {
        let out = plugin(&args);
        assert_eq!(
            (out.status.code(), text(&out.stdout), text(&out.stderr)),
            (Some(1), String::new(), stderr),
            "{args:?}"
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "nothing written"
    );
}

/// A kubeconfig whose server refuses connections: proof that a command took the
/// checkpoint path (it talks to the cluster), not the inspect path.
fn refusing_kubeconfig(dir: &Path) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {}\n",
    )
    .unwrap();
    path
}

#[test]
fn a_pod_named_inspect_is_reached_as_pod_slash_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = refusing_kubeconfig(dir.path());
    let refused = "The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?\n";
    for args in [
        vec!["pod/inspect"],
        vec!["--", "inspect"],
        vec!["-n", "inspect", "mypod"],
    ] {
        let out = Command::new(PLUGIN)
            .args(&args)
            .env("KUBECONFIG", &kubeconfig)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert_eq!(
            (out.status.code(), text(&out.stderr)),
            (Some(1), refused.to_owned()),
            "{args:?}"
        );
    }
}

/// The machine's kubectl, resolved through symlinks.
fn kubectl() -> PathBuf {
    let path = std::env::var_os("PATH").expect("PATH is set");
    let kubectl = std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .expect("kubectl is on PATH (the version-skew tests need it too)");
    std::fs::canonicalize(kubectl).unwrap()
}

#[test]
fn kubectl_dispatches_inspect_to_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixture_file(dir.path());
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(PLUGIN, bin.join("kubectl-checkpoint")).unwrap();
    let kubeconfig = refusing_kubeconfig(dir.path());
    let run = |program: &Path, args: &[&str]| {
        Command::new(program)
            .env_clear()
            .env("HOME", dir.path())
            .env("PATH", &bin)
            .env("KUBECONFIG", &kubeconfig)
            .args(args)
            .output()
            .unwrap()
    };
    let f = file.to_str().unwrap();
    for args in [
        vec!["inspect", f],
        vec!["inspect", f, "--stats", "--ps-tree", "-o", "yaml"],
        vec!["inspect", "--help"],
    ] {
        let through = run(&kubectl(), &[&["checkpoint"], args.as_slice()].concat());
        let direct = run(Path::new(PLUGIN), &args);
        assert_eq!(through.status.code(), Some(0), "{}", text(&through.stderr));
        assert_eq!(text(&through.stdout), text(&direct.stdout), "{args:?}");
    }
}

/// Runs the plugin under `ulimit -v` (RLIMIT_AS) of 256 MiB.
fn plugin_in_256_mib(args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 262144 && exec \"$0\" \"$@\"")
        .arg(PLUGIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn memory_stays_bounded_on_huge_entries() {
    let dir = tempfile::tempdir().unwrap();
    // 8 GiB of pages (a hole), the command line at its end.
    let sparse = dir.path().join("sparse.tar");
    let mut file = std::fs::File::create(&sparse).unwrap();
    let pages =
        criu_fixture::write_with_sparse_pages(&Fixture::sleepers(), &mut file, 2 << 20).unwrap();
    drop(file);
    assert!(pages > 8 << 30);
    let out = plugin_in_256_mib(&[
        "inspect",
        sparse.to_str().unwrap(),
        "--ps-tree-cmd",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["process_tree"]["cmdline"],
        "/bin/sh -c sleep 1001 & sleep 1002 & wait"
    );
    assert!(v["checkpoint_size"]["memory_pages_size"].as_u64().unwrap() > 8 << 30);

    // A 4 GiB GNU long name (a hole): refused, not read into memory.
    let bomb = dir.path().join("bomb.tar");
    let mut file = std::fs::File::create(&bomb).unwrap();
    criu_fixture::write_long_name_bomb(&mut file, 4 << 30).unwrap();
    drop(file);
    let out = plugin_in_256_mib(&["inspect", bomb.to_str().unwrap()]);
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (
            Some(1),
            format!(
                "error: failed to inspect {}: a tar header of the archive (with its PAX or GNU long-name records) is larger than 1048576 bytes\n",
                bomb.display()
            )
        )
    );

    // The limit is real: a child that needs more than 256 MiB dies in it.
    let hungry = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 262144 && exec dd if=/dev/zero of=/dev/null bs=400M count=1")
        .output()
        .unwrap();
    assert!(!hungry.status.success(), "ulimit -v does not limit here");
}
