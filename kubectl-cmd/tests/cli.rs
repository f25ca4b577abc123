//! The built `kubectl-checkpoint` (and `kubectl_complete-checkpoint`) against
//! the scripted API server: every outcome a user can meet, with its exact
//! output and exit code, and the exact URLs sent.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use api_types::StatusReason;
use kcr_testkit::mock_api::{MockApi, MockServer, Scenario, rule};
use pretty_assertions::assert_eq;
use support::{cluster, ready};

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

/// `base` and `extra` scenarios together.
fn with(base: Vec<Scenario>, extra: impl IntoIterator<Item = Scenario>) -> Vec<Scenario> {
    base.into_iter().chain(extra).collect()
}

impl Fixture {
    fn new(scenarios: Vec<Scenario>) -> Self {
        Self::on(MockApi::new(scenarios).serve().unwrap())
    }

    fn on(server: MockServer) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = support::kubeconfig(&server, dir.path())
            .to_string_lossy()
            .into_owned();
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

/// The requests as sent, except that the reads of the pod (and of its
/// workload), which go out together with discovery, are put just before
/// the first request that needs both (the first one that is not a GET).
fn in_order(lines: Vec<String>) -> Vec<String> {
    let is_read = |l: &String| l.starts_with("GET ") && l.contains("/namespaces/");
    let first_write = lines
        .iter()
        .position(|l| !l.starts_with("GET "))
        .unwrap_or(lines.len());
    let (before, after) = lines.split_at(first_write);
    let mut out: Vec<String> = before.iter().filter(|l| !is_read(l)).cloned().collect();
    out.extend(before.iter().filter(|l| is_read(l)).cloned());
    out.extend(after.iter().cloned());
    out
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
    let f = Fixture::new(ready());
    let r = f.run(&["counter"]);
    assert_ok(&r, &five_lines("default", "counter", "app"), "");
    assert_eq!(
        in_order(f.server.request_lines()),
        [
            "GET /apis",
            "GET /api/v1",
            "GET /apis/subresources.checkpoint.kcr.dev/v1alpha1",
            "GET /api/v1/namespaces/default/pods/counter",
            "POST /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/counter/checkpoint?container=app",
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
    let f = Fixture::new(ready());
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
            "POST /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/counter/checkpoint?container=app&timeoutSeconds=30",
            "POST /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/counter/checkpoint?container=app&timeoutSeconds=90",
            "POST /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/counter/checkpoint?container=app&timeoutSeconds=91",
        ]
    );
}

#[test]
fn json_and_yaml_print_the_object() {
    let f = Fixture::new(ready());
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
    let f = Fixture::new(ready());
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
    let f = Fixture::new(ready());
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
    let f = Fixture::new(ready());
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
    let f = Fixture::new(cluster());
    assert_fails(
        &f.run(&["counter"]),
        "error: this cluster does not serve checkpoints: install the checkpoint extension (kubectl apply -k deploy/ from the kubectl-checkpoint repository)\n",
    );
    // the pod is read together with discovery
    assert_eq!(
        in_order(f.server.request_lines()),
        [
            "GET /apis",
            "GET /api/v1",
            "GET /api/v1/namespaces/default/pods/counter"
        ]
    );

    let f = Fixture::new(with(cluster(), [Scenario::Extension { gate_on: false }]));
    assert_fails(
        &f.run(&["counter"]),
        "error: checkpointing is disabled on this cluster (feature gate ContainerCheckpointAPI on checkpoint-apiserver)\n",
    );
    let f = Fixture::new(with(cluster(), [Scenario::ExtensionUnavailable]));
    assert_fails(
        &f.run(&["counter"]),
        "error: the checkpoint extension is installed but not available: the server is currently unable to handle the request (check: kubectl get apiservice v1alpha1.subresources.checkpoint.kcr.dev)\n",
    );
}

/// Without the PodCheckpoint CRD the plugin takes the subresource, and what
/// only a PodCheckpoint can do says so.
#[test]
fn without_pod_checkpoints_the_subresource_serves() {
    let f = Fixture::new(ready());
    assert_ok(
        &f.run(&["counter", "--api=subresource"]),
        &five_lines("default", "counter", "app"),
        "",
    );
    assert_eq!(
        in_order(f.server.request_lines())[..2],
        ["GET /api/v1", "GET /apis"],
        "forced, the subresource's discovery is what it always was"
    );
    assert_fails(
        &f.run(&["counter", "--api=object"]),
        "error: this cluster does not serve PodCheckpoints (podcheckpoints.checkpoint.kcr.dev/v1alpha1): install them (kubectl apply -k deploy/crd from the kubectl-checkpoint repository, and checkpoint-shim's controller on the nodes), or leave out --api=object\n",
    );
    assert_fails(
        &f.run(&["counter", "--all-containers"]),
        "error: --all-containers needs the PodCheckpoint API (checkpoint.kcr.dev): the pods/checkpoint subresource checkpoints one container; name it with -c\nSee 'kubectl checkpoint -h' for help and examples\n",
    );
    assert_fails(
        &f.run(&["counter", "--wait=false"]),
        "error: --wait=false needs the PodCheckpoint API (checkpoint.kcr.dev): the pods/checkpoint subresource answers only once the archive is written\nSee 'kubectl checkpoint -h' for help and examples\n",
    );
    assert_fails(
        &f.run(&["counter", "--wait=maybe"]),
        "error: invalid argument \"maybe\" for \"--wait\" flag: strconv.ParseBool: parsing \"maybe\": invalid syntax\nSee 'kubectl checkpoint -h' for help and examples\n",
    );
    assert_fails(
        &f.run(&["counter", "--api=both"]),
        "error: invalid argument \"both\" for \"--api\" flag\nSee 'kubectl checkpoint -h' for help and examples\n",
    );
    assert_eq!(f.posts().len(), 1, "nothing posted for the refused ones");
}

#[test]
fn core_endpoint_is_preferred_when_discovered() {
    let f = Fixture::new(with(ready(), [Scenario::CoreCheckpoint]));
    assert_ok(
        &f.run(&["counter"]),
        &five_lines("default", "counter", "app"),
        "",
    );
    assert_eq!(
        in_order(f.server.request_lines()),
        [
            "GET /apis",
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
        "subresources.checkpoint.kcr.dev",
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
        let f = Fixture::new(with(
            ready(),
            [Scenario::CheckpointFails(reason, message.clone())],
        ));
        assert_fails(&f.run(&["counter"]), &format!("error: {message}\n"));
    }
    let f = Fixture::new(with(
        ready(),
        [Scenario::CheckpointNonStatus(
            502,
            "upstream connect error".into(),
        )],
    ));
    assert_fails(
        &f.run(&["counter"]),
        "error: an error on the server (\"upstream connect error\") has prevented the request from succeeding\n",
    );
    let f = Fixture::new(with(
        ready(),
        [Scenario::CheckpointNonStatus(
            503,
            "no endpoints available".into(),
        )],
    ));
    assert_fails(
        &f.run(&["counter"]),
        "error: the server is currently unable to handle the request\n",
    );
}

#[test]
fn client_deadline() {
    let f = Fixture::new(with(
        ready(),
        [Scenario::SlowCheckpoint(Duration::from_secs(4))],
    ));
    let r = f.run(&["counter", "--request-timeout", "1s"]);
    assert_fails(
        &r,
        "error: no answer within 1s while checkpointing container app of pod default/counter; the checkpoint may still complete on the node\n",
    );
}

#[test]
fn authentication_and_connection_errors() {
    let f = Fixture::new(with(ready(), [Scenario::Unauthorized]));
    assert_fails(
        &f.run(&["counter"]),
        "error: You must be logged in to the server (Unauthorized)\n",
    );
    let f = Fixture::new(ready());
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
    let f = Fixture::new(ready());
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
    let f = Fixture::new(ready());
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
    let f = Fixture::new(ready());
    let cases: &[(&[&str], String)] = &[
        (
            &[],
            format!(
                "error: expected 'checkpoint (POD | TYPE/NAME) [-c CONTAINER | --all-containers] [flags]'.\nPOD or TYPE/NAME is a required argument for the checkpoint command\n{HINT}\n"
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
    let f = Fixture::new(ready());
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
    let f = Fixture::new(ready());
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

#[test]
fn checkpoints_over_https() {
    let f = Fixture::on(MockApi::new(ready()).serve_tls().unwrap());
    assert!(f.server.url().starts_with("https://"));
    assert_ok(
        &f.run(&["counter"]),
        &five_lines("default", "counter", "app"),
        "",
    );
    assert!(
        f.server
            .requests()
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer alice-token"))
    );
    // One client, so one connection: HTTP/2 when the server offers it, as
    // kube-apiserver does, so the concurrent discovery and pod reads share it.
    let versions: Vec<String> = f
        .server
        .requests()
        .iter()
        .map(|r| r.version.clone())
        .collect();
    assert!(versions.iter().all(|v| v == "HTTP/2.0"), "{versions:?}");
}

/// kubectl's discovery cache of the fixture's server (its `HOME`).
fn cache_dir(f: &Fixture) -> std::path::PathBuf {
    let host = f
        .server
        .url()
        .trim_start_matches("http://")
        .replace(':', "_");
    f.dir.path().join(".kube/cache/discovery").join(host)
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Discovery is read once and kept where kubectl keeps it
/// (`~/.kube/cache/discovery/<host_port>/`), private; the next run sends
/// no discovery request.
#[test]
fn discovery_is_cached_like_kubectl() {
    let f = Fixture::new(ready());
    assert_ok(
        &f.run(&["counter"]),
        &five_lines("default", "counter", "app"),
        "",
    );
    let mut first = f.server.request_lines();
    first.sort();
    assert_eq!(
        first,
        [
            "GET /api/v1",
            "GET /api/v1/namespaces/default/pods/counter",
            "GET /apis",
            "GET /apis/subresources.checkpoint.kcr.dev/v1alpha1",
            "POST /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/counter/checkpoint?container=app",
        ]
    );
    let dir = cache_dir(&f);
    for file in [
        "servergroups.json",
        "v1/serverresources.json",
        "subresources.checkpoint.kcr.dev/v1alpha1/serverresources.json",
    ] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    for d in [
        dir.clone(),
        dir.join("v1"),
        dir.join("subresources.checkpoint.kcr.dev"),
        dir.join("subresources.checkpoint.kcr.dev/v1alpha1"),
        f.dir.path().join(".kube/cache/discovery"),
        f.dir.path().join(".kube/cache"),
    ] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }

    let before = f.server.request_lines().len();
    assert_ok(
        &f.run(&["counter"]),
        &five_lines("default", "counter", "app"),
        "",
    );
    assert_eq!(
        f.server.request_lines()[before..],
        [
            "GET /api/v1/namespaces/default/pods/counter",
            "POST /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/counter/checkpoint?container=app",
        ],
        "a cache hit sends no discovery request"
    );
}

/// A cache that names an API the server no longer serves is invalidated
/// when the request answers 404, and discovery read again, once.
#[test]
fn a_stale_cache_is_invalidated_and_read_again() {
    let f = Fixture::new(ready());
    let dir = cache_dir(&f);
    // What a cluster with the PodCheckpoint CRD answered earlier.
    std::fs::create_dir_all(dir.join("checkpoint.kcr.dev/v1alpha1")).unwrap();
    std::fs::write(
        dir.join("servergroups.json"),
        serde_json::json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": "checkpoint.kcr.dev", "versions": [{"groupVersion": "checkpoint.kcr.dev/v1alpha1", "version": "v1alpha1"}],
             "preferredVersion": {"groupVersion": "checkpoint.kcr.dev/v1alpha1", "version": "v1alpha1"}}]})
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("checkpoint.kcr.dev/v1alpha1/serverresources.json"),
        serde_json::json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "checkpoint.kcr.dev/v1alpha1",
            "resources": [{"name": "podcheckpoints", "singularName": "podcheckpoint", "namespaced": true, "kind": "PodCheckpoint",
                           "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}]})
        .to_string(),
    )
    .unwrap();

    assert_ok(
        &f.run(&["counter"]),
        &five_lines("default", "counter", "app"),
        "",
    );
    let lines = f.server.request_lines();
    assert_eq!(
        lines[..2],
        [
            "GET /api/v1/namespaces/default/pods/counter",
            "POST /apis/checkpoint.kcr.dev/v1alpha1/namespaces/default/podcheckpoints",
        ],
        "the cache chose the PodCheckpoint: {lines:?}"
    );
    assert_eq!(
        lines[2..],
        [
            "GET /apis",
            "GET /api/v1",
            "GET /apis/subresources.checkpoint.kcr.dev/v1alpha1",
            "POST /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/counter/checkpoint?container=app",
        ],
        "after the 404, discovery from the server"
    );
    let groups = std::fs::read_to_string(dir.join("servergroups.json")).unwrap();
    assert!(
        groups.contains(api_types::SUBRESOURCES_GROUP)
            && !groups.contains("\"checkpoint.kcr.dev\""),
        "the fresh document replaced the stale one: {groups}"
    );

    // A cache that lists no checkpoint API at all is read again too.
    std::fs::write(
        dir.join("servergroups.json"),
        serde_json::json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}]}]})
        .to_string(),
    )
    .unwrap();
    let before = f.server.request_lines().len();
    assert_ok(
        &f.run(&["counter"]),
        &five_lines("default", "counter", "app"),
        "",
    );
    let mut lines = f.server.request_lines()[before..].to_vec();
    lines.sort();
    assert_eq!(
        lines,
        [
            "GET /api/v1",
            "GET /api/v1/namespaces/default/pods/counter",
            "GET /apis",
            "GET /apis/subresources.checkpoint.kcr.dev/v1alpha1",
            "POST /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/counter/checkpoint?container=app",
        ],
        "invalidated, every document is read from the server again, as kubectl does"
    );
}

const GROUP: &str = api_types::SUBRESOURCES_GROUP;

/// RBAC: alice may do everything, `creator` only what checkpointing needs
/// (no reads), `half` only kube-apiserver's half of it, `reader` that and
/// the reads of deployments; `stranger` nothing. The plugin acts as them
/// with `--as`.
fn with_users() -> Vec<Scenario> {
    let create = || rule(&["create"], &[GROUP], &["pods/checkpoint"]);
    let checkpoint = || rule(&["checkpoint"], &[""], &["pods"]);
    with(
        ready(),
        [
            Scenario::allow_all("alice"),
            Scenario::Allow("creator".into(), create()),
            Scenario::Allow("creator".into(), checkpoint()),
            Scenario::Allow("half".into(), create()),
            Scenario::Allow("reader".into(), create()),
            Scenario::Allow("reader".into(), checkpoint()),
            Scenario::Allow("reader".into(), rule(&["get"], &["apps"], &["deployments"])),
        ],
    )
}

const CREATE_FORBIDDEN: &str = "error: pods.subresources.checkpoint.kcr.dev \"counter\" is forbidden: User \"stranger\" cannot create resource \"pods/checkpoint\" in API group \"subresources.checkpoint.kcr.dev\" in the namespace \"default\"\n";
const GRANT: &str = "ask a cluster admin to bind the ClusterRole checkpoint-creator to you.";

#[test]
fn a_user_who_may_checkpoint_but_not_read_pods() {
    let f = Fixture::new(with_users());
    assert_ok(
        &f.run(&["counter", "--as", "creator"]),
        &five_lines("default", "counter", "app"),
        "Cannot read pod default/counter (you lack get pods), so the server chose container \"app\"\n",
    );
    // as many requests as when the pod can be read: no review on the way
    assert_eq!(
        in_order(f.server.request_lines()),
        [
            "GET /apis",
            "GET /api/v1",
            "GET /apis/subresources.checkpoint.kcr.dev/v1alpha1",
            "GET /api/v1/namespaces/default/pods/counter",
            "POST /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/counter/checkpoint",
        ]
    );
    assert_ok(
        &f.run(&["annotated", "--as", "creator", "--timeout", "30s"]),
        &five_lines("default", "annotated", "b"),
        "Cannot read pod default/annotated (you lack get pods), so the server chose container \"b\"\n",
    );
    // -c needs no reading and gets no notice
    assert_ok(
        &f.run(&["multi", "--as", "creator", "-c", "b"]),
        &five_lines("default", "multi", "b"),
        "",
    );
    // the server defaults only a single or annotated container
    assert_fails(
        &f.run(&["multi", "--as", "creator"]),
        "error: a container name must be specified for pod multi, choose one of: [a b]\n",
    );
    // the pod's phase is the server's to check too
    assert_fails(
        &f.run(&["waiting", "--as", "creator"]),
        "error: cannot checkpoint a container in a non-running pod; current phase is Pending\n",
    );
    assert_eq!(
        f.posts()[1..],
        [
            "POST /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/annotated/checkpoint?timeoutSeconds=30",
            "POST /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/multi/checkpoint?container=b",
            "POST /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/multi/checkpoint",
            "POST /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/waiting/checkpoint",
        ]
    );
}

#[test]
fn a_user_without_the_checkpoint_right_hears_which_right() {
    let f = Fixture::new(with_users());
    assert_fails(
        &f.run(&["counter", "--as", "stranger"]),
        &format!(
            "{CREATE_FORBIDDEN}You lack create pods/checkpoint (API group subresources.checkpoint.kcr.dev), checkpoint pods in namespace default: {GRANT}\n"
        ),
    );
    let lines = f.server.request_lines();
    assert_eq!(
        lines[4..],
        [
            "POST /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/counter/checkpoint",
            "POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            "POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        ]
    );
    let reviews: Vec<serde_json::Value> = f
        .server
        .requests()
        .iter()
        .filter(|r| r.path_and_query.ends_with("/selfsubjectaccessreviews"))
        .map(|r| r.body["spec"]["resourceAttributes"].clone())
        .collect();
    assert_eq!(
        reviews,
        [
            serde_json::json!({"namespace": "default", "verb": "create", "group": GROUP, "resource": "pods", "subresource": "checkpoint"}),
            serde_json::json!({"namespace": "default", "verb": "checkpoint", "group": "", "resource": "pods"}),
        ]
    );
    // kube-apiserver lets `half` through; the extension's own check does not
    assert_fails(
        &f.run(&["counter", "--as", "half", "-c", "app"]),
        &format!(
            "error: pods \"counter\" is forbidden: User \"half\" cannot checkpoint resource \"pods\" in API group \"\" in the namespace \"default\": no RBAC policy matched\n\
             You lack checkpoint pods in namespace default: {GRANT}\n"
        ),
    );
}

#[test]
fn type_name_without_the_workload_read_says_which_reads() {
    let f = Fixture::new(with_users());
    assert_fails(
        &f.run(&["deploy/web", "--as", "creator"]),
        &format!(
            "Error from server (Forbidden): deployments.apps \"web\" is forbidden: User \"creator\" cannot get resource \"deployments\" in API group \"apps\" in the namespace \"default\"\n\
             You lack get deployments.apps, list pods in namespace default, which kubectl checkpoint needs to find the pod of deployment/web: name the pod instead, or {GRANT}\n"
        ),
    );
    assert_fails(
        &f.run(&["deploy/web", "--as", "reader"]),
        &format!(
            "Error from server (Forbidden): pods is forbidden: User \"reader\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"\n\
             You lack list pods in namespace default, which kubectl checkpoint needs to find the pod of deployment/web: name the pod instead, or {GRANT}\n"
        ),
    );
    assert_fails(
        &f.run(&["-n", "prod", "sts/db", "--as", "stranger"]),
        &format!(
            "Error from server (Forbidden): statefulsets.apps \"db\" is forbidden: User \"stranger\" cannot get resource \"statefulsets\" in API group \"apps\" in the namespace \"prod\"\n\
             You lack get statefulsets.apps, list pods, create pods/checkpoint (API group subresources.checkpoint.kcr.dev), checkpoint pods in namespace prod: {GRANT}\n"
        ),
    );
    assert!(
        f.posts()
            .iter()
            .all(|p| p.ends_with("/selfsubjectaccessreviews")),
        "{:?}",
        f.posts()
    );
}

/// What `checkpoint-creator` must grant for every path of the plugin: the
/// list the report to deploy/ gives.
fn checkpoint_creator() -> Vec<Scenario> {
    let rules = [
        rule(&["create"], &[GROUP], &["pods/checkpoint"]),
        rule(&["checkpoint"], &[""], &["pods"]),
        rule(&["get", "list"], &[""], &["pods"]),
        rule(&["get"], &[""], &["services", "replicationcontrollers"]),
        rule(
            &["get"],
            &["apps"],
            &["deployments", "statefulsets", "daemonsets", "replicasets"],
        ),
        rule(&["get"], &["batch"], &["jobs"]),
    ];
    with(
        ready(),
        rules
            .into_iter()
            .map(|r| Scenario::Allow("alice".into(), r)),
    )
}

#[test]
fn checkpoint_creator_covers_every_path() {
    let f = Fixture::new(checkpoint_creator());
    assert_ok(
        &f.run(&["multi"]),
        &five_lines("default", "multi", "a"),
        "Defaulted container \"a\" out of: a, b\n",
    );
    for (arg, pod, container) in [
        ("deploy/web", "web-2", "nginx"),
        ("rs/web-5d9f", "web-2", "nginx"),
        ("job/report", "report-x1", "job"),
    ] {
        let r = f.run(&[arg]);
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, five_lines("default", pod, container).as_str()),
            "{arg}: {r:?}"
        );
    }
    assert_ok(
        &f.run(&["-n", "prod", "sts/db"]),
        &five_lines("prod", "db-0", "pg"),
        "Using pod/db-0\n",
    );
    assert_fails(
        &f.run(&["ds/agent"]),
        "error: no pods found for daemonset/agent (selector app=agent)\n",
    );
    assert!(
        !f.server
            .request_lines()
            .iter()
            .any(|l| l.ends_with("/selfsubjectaccessreviews")),
        "nothing was forbidden"
    );
}
