//! The built `kubectl-checkpoint` (and `kubectl_complete-checkpoint`) against
//! the scripted API server: every outcome a user can meet, with its exact
//! output and exit code, and the exact URLs sent.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use api_types::StatusReason;
use pretty_assertions::assert_eq;
use support::{MockServer, Scenario};

const HINT: &str = "See 'kubectl checkpoint -h' for help and examples";
const ARCHIVE_DIR: &str = "/var/lib/kubelet/checkpoints";

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_bin(bin: &str, dir: &Path, kubeconfig: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = Command::new(bin);
    cmd.env_clear().env("HOME", dir).args(args);
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// A server for `scenario`, a kubeconfig for it, and a way to run the plugin.
struct Fixture {
    server: MockServer,
    dir: tempfile::TempDir,
    kubeconfig: String,
}

impl Fixture {
    fn new(scenario: Scenario) -> Self {
        let server = MockServer::start(scenario);
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = server.kubeconfig(dir.path()).to_string_lossy().into_owned();
        Self {
            server,
            dir,
            kubeconfig,
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        run_bin(
            env!("CARGO_BIN_EXE_kubectl-checkpoint"),
            self.dir.path(),
            Some(&self.kubeconfig),
            args,
        )
    }

    fn complete(&self, args: &[&str]) -> Run {
        run_bin(
            env!("CARGO_BIN_EXE_kubectl_complete-checkpoint"),
            self.dir.path(),
            Some(&self.kubeconfig),
            args,
        )
    }

    /// Only the requests after discovery (what the command did with the pod).
    fn posts(&self) -> Vec<String> {
        self.server
            .request_lines()
            .into_iter()
            .filter(|l| l.starts_with("POST"))
            .collect()
    }
}

fn five_lines(ns: &str, pod: &str, container: &str) -> String {
    format!(
        "Node:                  node-1/127.0.0.1\n\
         Namespace:             {ns}\n\
         Pod:                   {pod}\n\
         Container:             {container}\n\
         Checkpoint Archive:    {ARCHIVE_DIR}/checkpoint-{pod}_{ns}-{container}-2026-11-27T07:30:01Z.tar\n"
    )
}

fn assert_ok(r: &Run, stdout: &str, stderr: &str) {
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, stdout, stderr),
        "{r:?}"
    );
}

fn assert_fails(r: &Run, stderr: &str) {
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (1, "", stderr),
        "{r:?}"
    );
}

#[test]
fn checkpoints_a_pod_and_prints_five_lines() {
    let f = Fixture::new(Scenario::Ready);
    let r = f.run(&["counter"]);
    assert_ok(&r, &five_lines("default", "counter", "app"), "");
    assert_eq!(
        f.server.request_lines(),
        [
            "GET /api/v1",
            "GET /apis",
            "GET /apis/checkpoint.kcr.dev/v1alpha1",
            "GET /api/v1/namespaces/default/pods/counter",
            "POST /apis/checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/counter/checkpoint?container=app",
        ]
    );
    let reqs = f.server.requests();
    assert!(
        reqs.iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer alice-token")),
        "{reqs:?}"
    );
    assert!(reqs.iter().all(|r| r.impersonate_user.is_none()));
}

#[test]
fn container_and_timeout_reach_the_query() {
    let f = Fixture::new(Scenario::Ready);
    assert_ok(
        &f.run(&["counter", "-c", "app", "--timeout", "30s"]),
        &five_lines("default", "counter", "app"),
        "",
    );
    assert_ok(
        &f.run(&["counter", "--container=app", "--timeout=90"]),
        &five_lines("default", "counter", "app"),
        "",
    );
    assert_ok(
        &f.run(&["counter", "--timeout", "1m30.2s"]),
        &five_lines("default", "counter", "app"),
        "",
    );
    assert_eq!(
        f.posts(),
        [
            "POST /apis/checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/counter/checkpoint?container=app&timeoutSeconds=30",
            "POST /apis/checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/counter/checkpoint?container=app&timeoutSeconds=90",
            "POST /apis/checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/counter/checkpoint?container=app&timeoutSeconds=91",
        ]
    );
}

#[test]
fn json_and_yaml_print_the_object() {
    let f = Fixture::new(Scenario::Ready);
    let r = f.run(&["counter", "-o", "json"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    let c: api_types::ContainerCheckpoint = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(c.kind, "ContainerCheckpoint");
    assert_eq!(
        c.status.archive_path,
        format!("{ARCHIVE_DIR}/checkpoint-counter_default-app-2026-11-27T07:30:01Z.tar")
    );
    insta::assert_snapshot!("cli_json", r.stdout);

    let r = f.run(&["counter", "--output=yaml"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    let y: api_types::ContainerCheckpoint = serde_saphyr::from_str(&r.stdout).unwrap();
    assert_eq!(y, c);
    insta::assert_snapshot!("cli_yaml", r.stdout);
}

#[test]
fn default_container_choice() {
    let f = Fixture::new(Scenario::Ready);
    assert_ok(
        &f.run(&["multi"]),
        &five_lines("default", "multi", "a"),
        "Defaulted container \"a\" out of: a, b\n",
    );
    assert_ok(
        &f.run(&["multi", "-c", "b"]),
        &five_lines("default", "multi", "b"),
        "",
    );
    assert_ok(
        &f.run(&["annotated"]),
        &five_lines("default", "annotated", "b"),
        "",
    );
    assert_fails(
        &f.run(&["multi", "-c", "zzz"]),
        "error: container zzz is not valid for pod multi, choose one of: [a b]\n",
    );
}

#[test]
fn type_name_resolves_to_the_first_running_pod() {
    let f = Fixture::new(Scenario::Ready);
    assert_ok(
        &f.run(&["deployment/web"]),
        &five_lines("default", "web-2", "nginx"),
        "Found 2 pods, using pod/web-2\n",
    );
    assert_ok(
        &f.run(&["rs/web-5d9f"]),
        &five_lines("default", "web-2", "nginx"),
        "Found 2 pods, using pod/web-2\n",
    );
    assert_ok(
        &f.run(&["job/report"]),
        &five_lines("default", "report-x1", "job"),
        "Using pod/report-x1\n",
    );
    assert_ok(
        &f.run(&["pod/counter"]),
        &five_lines("default", "counter", "app"),
        "",
    );
    assert_ok(
        &f.run(&["-n", "prod", "statefulset/db"]),
        &five_lines("prod", "db-0", "pg"),
        "Using pod/db-0\n",
    );
    assert_ok(
        &f.run(&["--context", "prod", "sts/db"]),
        &five_lines("prod", "db-0", "pg"),
        "Using pod/db-0\n",
    );
    assert_fails(
        &f.run(&["daemonset/agent"]),
        "error: no pods found for daemonset/agent (selector app=agent)\n",
    );
    assert_fails(
        &f.run(&["deploy/nope"]),
        "Error from server (NotFound): deployments.apps \"nope\" not found\n",
    );
    let lines = f.server.request_lines();
    assert!(
        lines.contains(&"GET /apis/apps/v1/namespaces/default/deployments/web".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"GET /api/v1/namespaces/default/pods?labelSelector=app%3Dweb".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"GET /apis/batch/v1/namespaces/default/jobs/report".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"GET /apis/apps/v1/namespaces/prod/statefulsets/db".to_owned()),
        "{lines:?}"
    );
}

#[test]
fn pod_errors() {
    let f = Fixture::new(Scenario::Ready);
    assert_fails(
        &f.run(&["waiting"]),
        "error: cannot checkpoint a container in a non-running pod; current phase is Pending\n",
    );
    assert_fails(
        &f.run(&["ghost"]),
        "Error from server (NotFound): pods \"ghost\" not found\n",
    );
    assert_fails(
        &f.run(&["-n", "prod", "counter"]),
        "Error from server (NotFound): pods \"counter\" not found\n",
    );
    assert!(f.posts().is_empty());
}

#[test]
fn discovery_errors() {
    let f = Fixture::new(Scenario::NotInstalled);
    assert_fails(
        &f.run(&["counter"]),
        "error: this cluster does not serve checkpoints: install the checkpoint extension (kubectl apply -k deploy/ from the kubectl-checkpoint repository)\n",
    );
    assert_eq!(f.server.request_lines(), ["GET /api/v1", "GET /apis"]);

    let f = Fixture::new(Scenario::GateOff);
    assert_fails(
        &f.run(&["counter"]),
        "error: checkpointing is disabled on this cluster (feature gate ContainerCheckpointAPI on checkpoint-apiserver)\n",
    );
    let f = Fixture::new(Scenario::BackendDown);
    assert_fails(
        &f.run(&["counter"]),
        "error: the checkpoint extension is installed but not available: the server is currently unable to handle the request (check: kubectl get apiservice v1alpha1.checkpoint.kcr.dev)\n",
    );
}

#[test]
fn core_endpoint_is_preferred_when_discovered() {
    let f = Fixture::new(Scenario::CoreServed);
    assert_ok(
        &f.run(&["counter"]),
        &five_lines("default", "counter", "app"),
        "",
    );
    assert_eq!(
        f.server.request_lines(),
        [
            "GET /api/v1",
            "GET /api/v1/namespaces/default/pods/counter",
            "POST /api/v1/namespaces/default/pods/counter/checkpoint?container=app",
        ]
    );
}

#[test]
fn server_failures_print_the_status_message() {
    let forbidden = api_types::status::forbidden(
        "alice",
        "create",
        "checkpoint.kcr.dev",
        "pods/checkpoint",
        "default",
        "counter",
        "",
    )
    .message
    .unwrap();
    let cases = [
        (
            StatusReason::BadRequest,
            "invalid timeout \"x\": must be a whole number of seconds between 0 and 3600"
                .to_owned(),
        ),
        (StatusReason::Unauthorized, "Unauthorized".to_owned()),
        (StatusReason::Forbidden, forbidden),
        (
            StatusReason::NotFound,
            "container \"app\" not found on node node-1: feature gate ContainerCheckpoint is off"
                .to_owned(),
        ),
        (
            StatusReason::MethodNotAllowed,
            "the server does not allow this method on the requested resource".to_owned(),
        ),
        (
            StatusReason::Conflict,
            "container app of pod default/counter is not running".to_owned(),
        ),
        (
            StatusReason::InternalError,
            "checkpointing container app failed: runtime: CRIU not found".to_owned(),
        ),
        (
            StatusReason::ServiceUnavailable,
            "node node-1 (127.0.0.1:10250) is unreachable".to_owned(),
        ),
        (
            StatusReason::Timeout,
            "the checkpoint did not finish within 30s".to_owned(),
        ),
    ];
    for (reason, message) in cases {
        let f = Fixture::new(Scenario::CheckpointFails(reason, message.clone()));
        assert_fails(&f.run(&["counter"]), &format!("error: {message}\n"));
    }
    let f = Fixture::new(Scenario::CheckpointNonStatus(
        502,
        "upstream connect error".into(),
    ));
    assert_fails(
        &f.run(&["counter"]),
        "error: an error on the server (\"upstream connect error\") has prevented the request from succeeding\n",
    );
    let f = Fixture::new(Scenario::CheckpointNonStatus(
        503,
        "no endpoints available".into(),
    ));
    assert_fails(
        &f.run(&["counter"]),
        "error: the server is currently unable to handle the request\n",
    );
}

#[test]
fn client_deadline() {
    let f = Fixture::new(Scenario::SlowCheckpoint(Duration::from_secs(4)));
    let r = f.run(&["counter", "--request-timeout", "1s"]);
    assert_fails(
        &r,
        "error: no answer within 1s while checkpointing container app of pod default/counter; the checkpoint may still complete on the node\n",
    );
}

#[test]
fn authentication_and_connection_errors() {
    let f = Fixture::new(Scenario::Unauthorized);
    assert_fails(
        &f.run(&["counter"]),
        "error: You must be logged in to the server (Unauthorized)\n",
    );
    let f = Fixture::new(Scenario::Ready);
    assert_fails(
        &f.run(&["--context", "nobody", "counter"]),
        "error: You must be logged in to the server (Unauthorized)\n",
    );
    let r = f.run(&["--context", "down", "counter"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .starts_with("The connection to the server 127.0.0.1:"),
        "{r:?}"
    );
    assert!(
        r.stderr
            .ends_with(" was refused - did you specify the right host or port?\n"),
        "{r:?}"
    );
}

#[test]
fn impersonation_headers() {
    let f = Fixture::new(Scenario::Ready);
    assert_ok(
        &f.run(&[
            "counter",
            "--as",
            "bob",
            "--as-group",
            "devs",
            "--as-group=ops",
        ]),
        &five_lines("default", "counter", "app"),
        "",
    );
    for r in f.server.requests() {
        assert_eq!(r.impersonate_user.as_deref(), Some("bob"), "{r:?}");
        assert_eq!(r.impersonate_groups, ["devs", "ops"], "{r:?}");
    }
    assert_fails(
        &f.run(&["counter", "--as-group", "devs"]),
        "error: requesting groups with --as-group without impersonating a user: add --as\n",
    );
}

#[test]
fn kubeconfig_selection() {
    let f = Fixture::new(Scenario::Ready);
    assert_fails(
        &f.run(&["--context", "nope", "counter"]),
        "error: context was not found for specified context: nope\n",
    );
    assert_fails(
        &f.run(&["--user", "nope", "counter"]),
        "error: auth info \"nope\" does not exist\n",
    );
    assert_fails(
        &f.run(&["--cluster", "nope", "counter"]),
        "error: cluster \"nope\" does not exist in the kubeconfig\n",
    );
    // --cluster/--user override the context's
    assert_fails(
        &f.run(&["--user", "nobody", "counter"]),
        "error: You must be logged in to the server (Unauthorized)\n",
    );
    let r = f.run(&["--cluster", "down", "counter"]);
    assert!(r.stderr.contains("was refused"), "{r:?}");

    // --kubeconfig wins over KUBECONFIG
    let missing = f.dir.path().join("missing.yaml");
    let r = run_bin(
        env!("CARGO_BIN_EXE_kubectl-checkpoint"),
        f.dir.path(),
        Some(&missing.to_string_lossy()),
        &["--kubeconfig", &f.kubeconfig, "counter"],
    );
    assert_ok(&r, &five_lines("default", "counter", "app"), "");
    let r = f.run(&["--kubeconfig", &missing.to_string_lossy(), "counter"]);
    assert_fails(
        &r,
        &format!(
            "error: failed to read kubeconfig {}: No such file or directory (os error 2)\n",
            missing.display()
        ),
    );
    // nothing given and no ~/.kube/config
    let r = run_bin(
        env!("CARGO_BIN_EXE_kubectl-checkpoint"),
        f.dir.path(),
        None,
        &["counter"],
    );
    assert_fails(
        &r,
        &format!(
            "error: failed to read kubeconfig {}: No such file or directory (os error 2) (set KUBECONFIG or use --kubeconfig)\n",
            f.dir.path().join(".kube/config").display()
        ),
    );

    // KUBECONFIG with several files: the first to set current-context wins
    let first = f.dir.path().join("first.yaml");
    std::fs::write(
        &first,
        "apiVersion: v1\nkind: Config\ncurrent-context: prod\n",
    )
    .unwrap();
    let list = std::env::join_paths([first.as_path(), Path::new(&f.kubeconfig)]).unwrap();
    let r = run_bin(
        env!("CARGO_BIN_EXE_kubectl-checkpoint"),
        f.dir.path(),
        Some(&list.to_string_lossy()),
        &["sts/db"],
    );
    assert_ok(&r, &five_lines("prod", "db-0", "pg"), "Using pod/db-0\n");
}

#[test]
fn usage_errors_send_nothing() {
    let f = Fixture::new(Scenario::Ready);
    let cases: &[(&[&str], String)] = &[
        (
            &[],
            format!(
                "error: expected 'checkpoint (POD | TYPE/NAME) [-c CONTAINER] [flags]'.\nPOD or TYPE/NAME is a required argument for the checkpoint command\n{HINT}\n"
            ),
        ),
        (
            &["a", "b"],
            format!("error: exactly one POD or TYPE/NAME is allowed, got 2: a b\n{HINT}\n"),
        ),
        (
            &["counter", "--bogus"],
            format!("error: unknown flag: --bogus\n{HINT}\n"),
        ),
        (
            &["counter", "-z"],
            format!("error: unknown shorthand flag: 'z' in -z\n{HINT}\n"),
        ),
        (
            &["counter", "-o", "wide"],
            format!(
                "error: unable to match a printer suitable for the output format \"wide\", allowed formats are: json,yaml\n{HINT}\n"
            ),
        ),
        (
            &["counter", "--timeout", "soon"],
            format!(
                "error: invalid argument \"soon\" for \"--timeout\" flag: time: invalid duration \"soon\"\n{HINT}\n"
            ),
        ),
        (
            &["counter", "--timeout", "2h"],
            format!("error: --timeout must be at most 1h0m0s, got 2h0m0s\n{HINT}\n"),
        ),
        (
            &["counter", "-c"],
            format!("error: flag needs an argument: 'c' in -c\n{HINT}\n"),
        ),
        (
            &["cronjob/x"],
            format!("error: the server doesn't have a resource type \"cronjob\"\n{HINT}\n"),
        ),
        (
            &["a/b/c"],
            format!(
                "error: arguments in resource/name form must have a single resource and name\n{HINT}\n"
            ),
        ),
    ];
    for (args, stderr) in cases {
        assert_fails(&f.run(args), stderr);
    }
    let r = f.run(&["Bad_Pod"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .starts_with("error: invalid pod name \"Bad_Pod\": a lowercase RFC 1123 subdomain"),
        "{r:?}"
    );
    assert!(
        f.server.requests().is_empty(),
        "{:?}",
        f.server.request_lines()
    );
}

#[test]
fn help_and_version() {
    let f = Fixture::new(Scenario::Ready);
    let help = f.run(&["--help"]);
    assert_eq!((help.code, help.stderr.as_str()), (0, ""));
    assert_eq!(
        help.stdout,
        kubectl_cmd::inspect::with_subcommands(&kubectl_cmd::cmd::help_text())
    );
    assert!(help.stdout.contains("\nExamples:\n  # Checkpoint the default container of pod mypod\n  kubectl checkpoint mypod\n"));
    insta::assert_snapshot!("cli_help", help.stdout);
    assert_eq!(f.run(&["-h"]).stdout, help.stdout);
    assert_ok(
        &f.run(&["--version"]),
        &format!("kubectl-checkpoint v{}\n", env!("CARGO_PKG_VERSION")),
        "",
    );
    assert!(f.server.requests().is_empty());
}

#[test]
fn completion_helper() {
    let f = Fixture::new(Scenario::Ready);
    let c = |args: &[&str]| {
        let r = f.complete(args);
        assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{r:?}");
        r.stdout
    };
    assert_eq!(
        c(&[""]),
        "annotated\ncounter\nmulti\nreport-x1\nwaiting\nweb-1\nweb-2\n:4\n"
    );
    assert_eq!(c(&["w"]), "waiting\nweb-1\nweb-2\n:4\n");
    assert_eq!(c(&["-n", "prod", ""]), "db-0\n:4\n");
    assert_eq!(c(&["--context=prod", ""]), "db-0\n:4\n");
    assert_eq!(c(&["deploy/"]), "deploy/web\n:4\n");
    assert_eq!(c(&["multi", "-c", ""]), "a\nb\n:4\n");
    assert_eq!(c(&["deployment/web", "--container", ""]), "nginx\n:4\n");
    assert_eq!(c(&["-n", ""]), "default\nprod\n:4\n");
    assert_eq!(c(&["counter", "-o", ""]), "json\nyaml\n:4\n");
    assert_eq!(c(&["--context", ""]), "down\nmock\nnobody\nprod\n:4\n");
    assert_eq!(c(&["counter", "--req"]), "--request-timeout\n:4\n");
    assert_eq!(c(&["counter", ""]), ":4\n");
    // an unreachable cluster completes nothing, quickly and quietly
    assert_eq!(c(&["--context", "down", ""]), ":4\n");
    assert!(
        f.server
            .request_lines()
            .contains(&"GET /api/v1/namespaces/default/pods".to_owned())
    );
}
