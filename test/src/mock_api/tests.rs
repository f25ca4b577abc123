#![allow(clippy::unwrap_used)]

use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, ListParams};

use super::objects::{namespace, node, pod, with_annotations, with_labels, workload};
use super::*;

fn cluster(extra: impl IntoIterator<Item = Scenario>) -> MockApi {
    let mut scenarios = vec![
        Scenario::object(&with_labels(
            pod("default", "web-1", "Running", &["app"]),
            &[("app", "web")],
        )),
        Scenario::object(&pod("default", "multi", "Running", &["a", "b"])),
        Scenario::object(&with_annotations(
            pod("default", "annotated", "Running", &["a", "b"]),
            &[("kubectl.kubernetes.io/default-container", "b")],
        )),
        Scenario::object(&pod("default", "waiting", "Pending", &["app"])),
        Scenario::object(&node(objects::NODE, objects::NODE_ADDRESS)),
        Scenario::object(&namespace("default")),
        Scenario::Object(workload("Deployment", "default", "web", &[("app", "web")])),
        Scenario::Token("alice-token".into(), UserInfo::new("alice", vec![])),
    ];
    scenarios.extend(extra);
    MockApi::new(scenarios)
}

async fn call(
    api: &MockApi,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (u16, Value) {
    let mut request = http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let body = if body.is_null() {
        Bytes::new()
    } else {
        Bytes::from(serde_json::to_vec(&body).unwrap())
    };
    let response = api
        .answer(request.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    let code = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

const CHECKPOINT: &str = "/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods";

#[tokio::test]
async fn a_kube_client_reads_objects() {
    let api = cluster([Scenario::object(&ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("cm".into()),
            namespace: Some("kube-system".into()),
            ..Default::default()
        },
        ..Default::default()
    })]);
    let client = api.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    assert_eq!(
        pods.get("web-1").await.unwrap().metadata.uid.as_deref(),
        Some("uid-web-1")
    );
    let err = pods.get("ghost").await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 404 && s.message == "pods \"ghost\" not found"),
        "{err:?}"
    );
    let web = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(web.items.len(), 1);
    assert_eq!(
        pods.list(&ListParams::default()).await.unwrap().items.len(),
        4
    );
    let nodes: Api<Node> = Api::all(client.clone());
    assert!(nodes.get(objects::NODE).await.is_ok());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    assert!(cms.get("cm").await.is_ok());
    assert!(
        Api::<ConfigMap>::default_namespaced(client.clone())
            .get("cm")
            .await
            .is_err()
    );
    client.apiserver_version().await.unwrap();
    assert_eq!(
        api.request_lines(),
        [
            "GET /api/v1/namespaces/default/pods/web-1",
            "GET /api/v1/namespaces/default/pods/ghost",
            "GET /api/v1/namespaces/default/pods?&labelSelector=app%3Dweb",
            "GET /api/v1/namespaces/default/pods",
            "GET /api/v1/nodes/node-1",
            "GET /api/v1/namespaces/kube-system/configmaps/cm",
            "GET /api/v1/namespaces/default/configmaps/cm",
            "GET /version",
        ]
    );
}

#[tokio::test]
async fn discovery_follows_the_extension() {
    let lists = |api: MockApi| async move {
        let (_, groups) = call(&api, "GET", "/apis", &[], Value::Null).await;
        let names: Vec<String> = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap().to_owned())
            .collect();
        let (code, version) = call(
            &api,
            "GET",
            "/apis/subresources.checkpoint.kcr.dev/v1alpha1",
            &[],
            Value::Null,
        )
        .await;
        (names, code, version["resources"].as_array().map(Vec::len))
    };
    assert_eq!(
        lists(cluster([])).await,
        (vec!["apps".into(), "batch".into()], 404, None)
    );
    let all = vec![
        "apps".to_owned(),
        "batch".into(),
        "subresources.checkpoint.kcr.dev".into(),
    ];
    assert_eq!(
        lists(cluster([Scenario::Extension { gate_on: true }])).await,
        (all.clone(), 200, Some(2)),
        "pods/checkpoint and podcheckpoints/archive"
    );
    assert_eq!(
        lists(cluster([Scenario::Extension { gate_on: false }])).await,
        (all.clone(), 200, Some(1)),
        "podcheckpoints/archive (the gate is the synchronous subresource's)"
    );
    assert_eq!(
        lists(cluster([Scenario::ExtensionUnavailable])).await,
        (all, 503, None)
    );
    let api = cluster([Scenario::CoreCheckpoint]);
    let (_, core) = call(&api, "GET", "/api/v1", &[], Value::Null).await;
    assert!(
        core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "pods/checkpoint")
    );
}

#[tokio::test]
async fn checkpoints_like_the_extension() {
    let api = cluster([Scenario::Extension { gate_on: true }]);
    let post = |pod: &str, query: &str| {
        let api = api.clone();
        let path = format!("{CHECKPOINT}/{pod}/checkpoint{query}");
        async move { call(&api, "POST", &path, &[], Value::Null).await }
    };
    let (code, c) = post("web-1", "?timeoutSeconds=30").await;
    assert_eq!(code, 200, "{c}");
    assert_eq!(c["spec"]["container"], "app");
    assert_eq!(c["spec"]["timeoutSeconds"], 30);
    assert_eq!(c["status"]["nodeName"], "node-1");
    assert_eq!(c["status"]["nodeAddress"], "127.0.0.1");
    assert_eq!(
        c["status"]["archivePath"],
        "/var/lib/kubelet/checkpoints/checkpoint-web-1_default-app-2026-11-27T07:30:01Z.tar"
    );
    assert_eq!(post("annotated", "").await.1["spec"]["container"], "b");
    assert_eq!(
        post("multi", "?container=b").await.1["spec"]["container"],
        "b"
    );
    let message = |r: (u16, Value)| (r.0, r.1["message"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        message(post("multi", "").await),
        (
            400,
            "a container name must be specified for pod multi, choose one of: [a b]".into()
        )
    );
    assert_eq!(
        message(post("multi", "?container=zzz").await),
        (
            400,
            "container zzz is not valid for pod multi, choose one of: [a b]".into()
        )
    );
    assert_eq!(
        message(post("waiting", "").await),
        (
            409,
            "cannot checkpoint a container in a non-running pod; current phase is Pending".into()
        )
    );
    assert_eq!(
        message(post("ghost", "").await),
        (404, "pods \"ghost\" not found".into())
    );
    assert_eq!(post("web-1", "?timeoutSeconds=x").await.0, 400);
    let (code, _) = call(
        &api,
        "GET",
        &format!("{CHECKPOINT}/web-1/checkpoint"),
        &[],
        Value::Null,
    )
    .await;
    assert_eq!(code, 405);

    // gate off: no route; scripted answers
    let off = cluster([Scenario::Extension { gate_on: false }]);
    let path = format!("{CHECKPOINT}/web-1/checkpoint");
    assert_eq!(call(&off, "POST", &path, &[], Value::Null).await.0, 404);
    let failing = cluster([
        Scenario::Extension { gate_on: true },
        Scenario::CheckpointFails(StatusReason::InternalError, "CRIU failed".into()),
    ]);
    assert_eq!(
        message(call(&failing, "POST", &path, &[], Value::Null).await),
        (500, "CRIU failed".into())
    );
}

#[tokio::test]
async fn tokens_impersonation_and_rbac() {
    let creator = [
        Scenario::Extension { gate_on: true },
        Scenario::Allow(
            "creator".into(),
            rule(
                &["create"],
                &["subresources.checkpoint.kcr.dev"],
                &["pods/checkpoint"],
            ),
        ),
        Scenario::Allow("creator".into(), rule(&["checkpoint"], &[""], &["pods"])),
        Scenario::Allow("half".into(), rule(&["create"], &["*"], &["*/checkpoint"])),
        Scenario::allow_all("root"),
    ];
    let api = cluster(creator);
    let path = format!("{CHECKPOINT}/web-1/checkpoint");
    let alice = ("authorization", "Bearer alice-token");
    assert_eq!(
        call(
            &api,
            "GET",
            "/api/v1/namespaces/default/pods/web-1",
            &[("authorization", "Bearer nope")],
            Value::Null
        )
        .await
        .0,
        401
    );
    let as_user = |user: &'static str| [alice, ("impersonate-user", user)];
    let (code, s) = call(
        &api,
        "GET",
        "/api/v1/namespaces/default/pods/web-1",
        &as_user("creator"),
        Value::Null,
    )
    .await;
    assert_eq!(code, 403);
    assert_eq!(
        s["message"],
        "pods \"web-1\" is forbidden: User \"creator\" cannot get resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    // discovery is open to everyone
    assert_eq!(
        call(&api, "GET", "/apis", &as_user("nobody"), Value::Null)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&api, "POST", &path, &as_user("creator"), Value::Null)
            .await
            .0,
        200
    );
    let (code, s) = call(&api, "POST", &path, &as_user("stranger"), Value::Null).await;
    assert_eq!(code, 403);
    assert_eq!(
        s["message"],
        "pods.subresources.checkpoint.kcr.dev \"web-1\" is forbidden: User \"stranger\" cannot create resource \"pods/checkpoint\" in API group \"subresources.checkpoint.kcr.dev\" in the namespace \"default\""
    );
    // kube-apiserver lets `half` through, the extension's review does not
    let (code, s) = call(&api, "POST", &path, &as_user("half"), Value::Null).await;
    assert_eq!(code, 403);
    assert_eq!(
        s["message"],
        "pods \"web-1\" is forbidden: User \"half\" cannot checkpoint resource \"pods\" in API group \"\" in the namespace \"default\": no RBAC policy matched"
    );
    // alice has no rule: in RBAC mode she may do nothing; the test itself may
    assert_eq!(
        call(
            &api,
            "GET",
            "/api/v1/namespaces/default/pods/web-1",
            &[alice],
            Value::Null
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            &api,
            "GET",
            "/api/v1/namespaces/default/pods/web-1",
            &[],
            Value::Null
        )
        .await
        .0,
        200
    );

    let review = |verb: &str, group: &str, resource: &str, sub: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": "default", "verb": verb, "group": group,
                "resource": resource, "subresource": sub}}})
    };
    let ssar = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let allowed = |r: (u16, Value)| (r.0, r.1["status"]["allowed"].clone());
    assert_eq!(
        allowed(
            call(
                &api,
                "POST",
                ssar,
                &as_user("creator"),
                review(
                    "create",
                    "subresources.checkpoint.kcr.dev",
                    "pods",
                    "checkpoint"
                )
            )
            .await
        ),
        (201, json!(true))
    );
    assert_eq!(
        allowed(
            call(
                &api,
                "POST",
                ssar,
                &as_user("creator"),
                review("get", "apps", "deployments", "")
            )
            .await
        ),
        (201, json!(false))
    );
    assert_eq!(
        allowed(
            call(
                &api,
                "POST",
                ssar,
                &as_user("stranger"),
                review("checkpoint", "", "pods", "")
            )
            .await
        ),
        (201, json!(false))
    );

    let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "creator", "resourceAttributes": {"namespace": "default", "verb": "checkpoint", "resource": "pods"}}});
    let (code, r) = call(
        &api,
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        &[],
        sar,
    )
    .await;
    assert_eq!((code, r["status"]["allowed"].clone()), (201, json!(true)));

    // Non-resource URLs: discovery and health are open, /metrics needs a
    // nonResourceURLs rule (allow_all has `*`).
    let non_resource = |user: &str, path: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": user, "nonResourceAttributes": {"verb": "get", "path": path}}})
    };
    for (user, path, allowed) in [
        ("creator", "/metrics", false),
        ("creator", "/healthz", true),
        ("creator", "/apis/apps/v1", true),
        ("root", "/metrics", true),
    ] {
        let (code, r) = call(
            &api,
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            &[],
            non_resource(user, path),
        )
        .await;
        assert_eq!(
            (code, r["status"]["allowed"].clone()),
            (201, json!(allowed)),
            "{user} get {path}"
        );
    }

    let tr = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "alice-token"}});
    let (_, r) = call(
        &api,
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        &[],
        tr,
    )
    .await;
    assert_eq!(r["status"]["user"]["username"], "alice");
    let recorded = api.requests();
    let last = recorded.last().unwrap();
    assert_eq!(last.body["spec"]["token"], "alice-token");
    assert_eq!(recorded[1].impersonate_user.as_deref(), Some("creator"));
    assert_eq!(
        recorded[1].authorization.as_deref(),
        Some("Bearer alice-token")
    );
}

#[tokio::test]
async fn faults() {
    let api = cluster([Scenario::Unauthorized]);
    assert_eq!(call(&api, "GET", "/api", &[], Value::Null).await.0, 401);
    let api = cluster([Scenario::ForbidReads, Scenario::EventsFail]);
    let (code, s) = call(&api, "GET", "/api/v1/nodes/node-1", &[], Value::Null).await;
    assert_eq!(
        (code, s["message"].as_str().unwrap()),
        (
            403,
            "nodes \"node-1\" is forbidden: User \"system:anonymous\" cannot get resource \"nodes\" in API group \"\" at the cluster scope"
        )
    );
    let event = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}});
    assert_eq!(
        call(
            &api,
            "POST",
            "/api/v1/namespaces/default/events",
            &[],
            event.clone()
        )
        .await
        .0,
        500
    );
    let api = cluster([]);
    assert_eq!(
        call(
            &api,
            "POST",
            "/api/v1/namespaces/default/events",
            &[],
            event
        )
        .await
        .0,
        201
    );
    let api = cluster([Scenario::Unreachable]);
    let pods: Api<Pod> = Api::namespaced(api.client(), "default");
    assert!(pods.get("web-1").await.is_err());
    assert_eq!(api.requests().len(), 1);
}

async fn get_over_the_network(server: &MockServer, dir: &Path) -> Pod {
    let config = server
        .kube_config("alice", "alice-token", dir)
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    Api::<Pod>::default_namespaced(client)
        .get("web-1")
        .await
        .unwrap()
}

#[tokio::test]
async fn served_over_http_and_https() {
    let dir = tempfile::tempdir().unwrap();
    let api = cluster([]);
    let server = api.serve().unwrap();
    assert!(server.url().starts_with("http://127.0.0.1:"));
    assert!(server.ca_pem().is_none());
    get_over_the_network(&server, dir.path()).await;
    assert_eq!(
        server.requests()[0].authorization.as_deref(),
        Some("Bearer alice-token")
    );

    let server = api.serve_tls().unwrap();
    assert!(server.url().starts_with("https://127.0.0.1:"));
    get_over_the_network(&server, dir.path()).await;
    assert!(dir.path().join("mock-ca.crt").is_file());
    // one record for the API and both servers
    assert_eq!(api.request_lines().len(), 2);

    let closed = closed_port().unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", closed)).is_err());
}
