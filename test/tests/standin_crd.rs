#![allow(clippy::unwrap_used)]
//! kube-apiserver-standin's custom resources, generic store, watch, patch,
//! status subresource, schema/CEL validation, Table output and RBAC, each
//! asserted against what a real kube-apiserver 1.28 answered
//! (`shared/design/KUBE-API-OBSERVED.md`), with the Widget and Gadget CRDs
//! the observations used.

use std::path::Path;
use std::time::{Duration, Instant};

use apiserver_lib::pki::Pem;
use apiserver_lib::tls::{self, ServerTrust, ServingCert};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kcr_testkit::standin::{self, Config, Running};
use serde_json::{Value, json};

const W: &str = "/apis/probes.example.test/v1alpha1/namespaces/api-probe/widgets";
const G: &str = "/apis/probes.example.test/v1alpha1/namespaces/api-probe/gadgets";
const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

fn schema(with_rule: bool) -> Value {
    let mut spec = json!({"type":"object","required":["name"],
        "properties":{"name":{"type":"string"},
          "timeoutSeconds":{"type":"integer","minimum":0,"maximum":3600},
          "containers":{"type":"array","items":{"type":"string"}}}});
    if with_rule {
        spec["x-kubernetes-validations"] =
            json!([{"rule":"self == oldSelf","message":"spec is immutable"}]);
    }
    json!({"openAPIV3Schema":{"type":"object","properties":{
        "spec": spec,
        "status":{"type":"object","properties":{"phase":{"type":"string"},
          "conditions":{"type":"array","items":{"type":"object","properties":{
            "type":{"type":"string"},"status":{"type":"string"},"reason":{"type":"string"},
            "message":{"type":"string"},
            "lastTransitionTime":{"type":"string","format":"date-time"}}}}}}}}})
}

/// The Widget CRD of the observations.
pub fn widget_crd() -> Value {
    json!({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
     "metadata":{"name":"widgets.probes.example.test"},
     "spec":{"group":"probes.example.test","scope":"Namespaced",
      "names":{"plural":"widgets","singular":"widget","kind":"Widget","listKind":"WidgetList",
               "shortNames":["wdg"],"categories":["probes"]},
      "versions":[{"name":"v1alpha1","served":true,"storage":true,"subresources":{"status":{}},
       "additionalPrinterColumns":[
         {"name":"Target","type":"string","jsonPath":".spec.name"},
         {"name":"Timeout","type":"integer","jsonPath":".spec.timeoutSeconds","priority":1},
         {"name":"Phase","type":"string","jsonPath":".status.phase"},
         {"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}],
       "schema": schema(true)}]}})
}

/// Gadget: the same schema without the CEL rule and printer columns.
fn gadget_crd() -> Value {
    json!({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
     "metadata":{"name":"gadgets.probes.example.test"},
     "spec":{"group":"probes.example.test","scope":"Namespaced",
      "names":{"plural":"gadgets","singular":"gadget","kind":"Gadget","listKind":"GadgetList"},
      "versions":[{"name":"v1alpha1","served":true,"storage":true,"subresources":{"status":{}},
       "schema": schema(false)}]}})
}

const POLICY: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: widget-editor, namespace: api-probe}
rules:
- apiGroups: ["probes.example.test"]
  resources: ["widgets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: widget-editor, namespace: api-probe}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: widget-editor}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: limited}
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    running: Running,
    http: Http,
}

#[derive(Clone)]
struct Http {
    port: u16,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<bytes::Bytes>>,
}

fn identity(pem: &Pem) -> ServingCert {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    ServingCert {
        chain: tls::parse_certs(pem.cert.as_bytes(), Path::new("t")).unwrap(),
        key: PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).unwrap(),
    }
}

impl Fixture {
    fn as_user(&self, user: &str, groups: &[&str]) -> Http {
        let pki = &self.running.pki;
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let cfg = tls::client_config(
            ServerTrust::Ca(tls::parse_certs(pki.server_ca.as_bytes(), Path::new("ca")).unwrap()),
            Some(identity(&pki.issue_client(user, &groups).unwrap())),
        )
        .unwrap();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(cfg)
            .https_only()
            .enable_http1()
            .build();
        Http {
            port: self.running.addr.port(),
            client: Client::builder(TokioExecutor::new()).build(https),
        }
    }
}

async fn start_with(f: impl FnOnce(&mut Config, &Path)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.yaml"), POLICY).unwrap();
    std::fs::write(
        dir.path().join("objects.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: api-probe}\n",
    )
    .unwrap();
    let mut config = Config::new(dir.path().join("pki"));
    config.policy_files = vec![dir.path().join("policy.yaml")];
    config.object_files = vec![dir.path().join("objects.yaml")];
    config.write_kubeconfig = Some(dir.path().join("admin.kubeconfig"));
    f(&mut config, dir.path());
    let running = standin::start(config).await.unwrap();
    let mut fx = Fixture {
        _dir: dir,
        running,
        http: Http {
            port: 0,
            client: Client::builder(TokioExecutor::new()).build(
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(
                        tls::client_config(ServerTrust::InsecureSkipVerify, None).unwrap(),
                    )
                    .https_only()
                    .enable_http1()
                    .build(),
            ),
        },
    };
    fx.http = fx.as_user("admin", &["system:masters"]);
    fx
}

async fn start() -> Fixture {
    start_with(|_, _| {}).await
}

#[derive(Debug)]
struct Reply {
    code: u16,
    headers: http::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    fn rv(&self) -> u64 {
        self.json()["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }
}

impl Http {
    async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> http::Response<hyper::body::Incoming> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("https://127.0.0.1:{}{path}", self.port));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.client
            .request(req.body(Full::from(body)).unwrap())
            .await
            .unwrap()
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let resp = self
            .raw(
                method,
                path,
                headers,
                body.map(<[u8]>::to_vec).unwrap_or_default(),
            )
            .await;
        let code = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            code,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, &[], None).await
    }
    async fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, &[], None).await
    }
    async fn send(&self, method: &str, path: &str, body: &Value) -> Reply {
        let bytes = serde_json::to_vec(body).unwrap();
        self.call(
            method,
            path,
            &[("Content-Type", "application/json")],
            Some(&bytes),
        )
        .await
    }
    async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send("POST", path, body).await
    }
    async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send("PUT", path, body).await
    }
    async fn patch(&self, path: &str, content_type: &str, body: &str) -> Reply {
        self.call(
            "PATCH",
            path,
            &[("Content-Type", content_type)],
            Some(body.as_bytes()),
        )
        .await
    }
    async fn merge(&self, path: &str, body: &Value) -> Reply {
        self.patch(path, "application/merge-patch+json", &body.to_string())
            .await
    }

    /// Open a watch; events arrive on the returned stream.
    async fn watch(&self, path: &str, headers: &[(&str, &str)]) -> Watch {
        let resp = self.raw("GET", path, headers, Vec::new()).await;
        let code = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        Watch {
            code,
            content_type,
            body: resp.into_body(),
            buf: Vec::new(),
            started: Instant::now(),
        }
    }
}

struct Watch {
    code: u16,
    content_type: String,
    body: hyper::body::Incoming,
    buf: Vec<u8>,
    started: Instant,
}

impl Watch {
    /// The next event, `None` when the stream ended, panics after `within`.
    async fn next_within(&mut self, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => panic!("no watch event within {within:?}"),
                Ok(None) => return None,
                Ok(Some(Err(e))) => panic!("watch body: {e}"),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
    async fn next(&mut self) -> Value {
        self.next_within(Duration::from_secs(5))
            .await
            .expect("the watch ended")
    }
    /// Events until the stream ends.
    async fn rest(&mut self, within: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(e) = self.next_within(within).await {
            out.push(e);
        }
        out
    }
}

fn widget(name: &str, labels: Value, spec: Value) -> Value {
    json!({"apiVersion":"probes.example.test/v1alpha1","kind":"Widget",
        "metadata":{"name": name, "labels": labels},"spec": spec})
}

async fn with_crds(f: &Fixture) {
    for crd in [widget_crd(), gadget_crd()] {
        let r = f.http.post(CRDS, &crd).await;
        assert_eq!(r.code, 201, "{}", r.body);
    }
}

fn rv_of(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn crd_registers_its_resource_in_discovery() {
    let f = start().await;
    let h = &f.http;
    let r = h.get("/apis/probes.example.test").await;
    assert_eq!((r.code, r.body.as_str()), (404, "404 page not found\n"));
    assert_eq!(r.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(h.get(W).await.code, 404);

    let r = h.post(CRDS, &widget_crd()).await;
    assert_eq!(r.code, 201, "{}", r.body);
    assert_eq!(
        r.json()["status"],
        json!({"conditions": null, "acceptedNames": {"plural": "", "kind": ""}, "storedVersions": ["v1alpha1"]})
    );
    let crd = h
        .get(&format!("{CRDS}/widgets.probes.example.test"))
        .await
        .json();
    let conditions = crd["status"]["conditions"].as_array().unwrap();
    let types: Vec<(&str, &str, &str)> = conditions
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
                c["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        types,
        vec![
            ("NamesAccepted", "True", "NoConflicts"),
            ("Established", "True", "InitialNamesAccepted")
        ]
    );
    assert_eq!(crd["status"]["acceptedNames"]["shortNames"], json!(["wdg"]));
    assert_eq!(crd["metadata"]["generation"], 1);

    let apis = h.get("/apis").await.json();
    let names: Vec<&str> = apis["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.last(), Some(&"probes.example.test"), "{names:?}");
    let group = h.get("/apis/probes.example.test").await.json();
    assert_eq!(
        group,
        json!({"kind": "APIGroup", "apiVersion": "v1", "name": "probes.example.test",
            "versions": [{"groupVersion": "probes.example.test/v1alpha1", "version": "v1alpha1"}],
            "preferredVersion": {"groupVersion": "probes.example.test/v1alpha1", "version": "v1alpha1"}})
    );
    let list = h.get("/apis/probes.example.test/v1alpha1").await.json();
    assert_eq!(
        list,
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "probes.example.test/v1alpha1",
          "resources": [
            {"name": "widgets", "singularName": "widget", "namespaced": true, "kind": "Widget",
             "verbs": ["delete","deletecollection","get","list","patch","create","update","watch"],
             "shortNames": ["wdg"], "categories": ["probes"], "storageVersionHash": "pL0w+wU44aw="},
            {"name": "widgets/status", "singularName": "", "namespaced": true, "kind": "Widget",
             "verbs": ["get","patch","update"]}]})
    );
    // Aggregated discovery is not served: v2 alone is 406 as on 1.28; the
    // mixed Accept kubectl 1.33 sends gets the legacy document.
    let r = h
        .call(
            "GET",
            "/apis",
            &[(
                "Accept",
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            )],
            None,
        )
        .await;
    assert_eq!(r.code, 406);
    assert_eq!(r.json()["reason"], "NotAcceptable");
    let r = h.call("GET", "/apis", &[("Accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")], None).await;
    assert_eq!(
        (r.code, r.json()["kind"].as_str()),
        (200, Some("APIGroupList"))
    );
    // A resource the CRD does not define is the plain-text 404.
    let r = h
        .get("/apis/probes.example.test/v1alpha1/namespaces/api-probe/sprockets")
        .await;
    assert_eq!((r.code, r.body.as_str()), (404, "404 page not found\n"));
    assert_eq!(h.get(W).await.code, 200);

    // A CRD the schema rules refuse.
    let mut bad = widget_crd();
    bad["metadata"]["name"] = json!("wrong.probes.example.test");
    let r = h.post(CRDS, &bad).await;
    assert_eq!(r.code, 422, "{}", r.body);
    assert_eq!(
        r.json()["message"],
        "CustomResourceDefinition.apiextensions.k8s.io \"wrong.probes.example.test\" is invalid: metadata.name: Invalid value: \"wrong.probes.example.test\": must be spec.names.plural+\".\"+spec.group"
    );

    // The group version is the CRD's: an APIService cannot take its name.
    let api = json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1alpha1.probes.example.test"},
        "spec": {"group": "probes.example.test", "version": "v1alpha1", "groupPriorityMinimum": 1000, "versionPriority": 15,
                 "service": {"namespace": "default", "name": "x", "port": 443}, "insecureSkipTLSVerify": true}});
    let r = h
        .post("/apis/apiregistration.k8s.io/v1/apiservices", &api)
        .await;
    assert_eq!(r.code, 409, "{}", r.body);
    assert_eq!(r.json()["reason"], "AlreadyExists");
}

#[tokio::test]
async fn create_sets_server_fields_and_refuses_what_kube_refuses() {
    let f = start().await;
    with_crds(&f).await;
    let h = &f.http;
    let mut w1 = widget(
        "w1",
        json!({"app": "demo", "tier": "a"}),
        json!({"name": "alpha", "timeoutSeconds": 30, "containers": ["c1", "c2"]}),
    );
    w1["metadata"]["uid"] = json!("x");
    w1["metadata"]["generation"] = json!(5);
    w1["metadata"]["creationTimestamp"] = json!("2020-01-01T00:00:00Z");
    w1["status"] = json!({"phase": "Preset"});
    let r = h.post(W, &w1).await;
    assert_eq!(r.code, 201, "{}", r.body);
    assert_eq!(r.header("content-type"), "application/json");
    let o = r.json();
    assert_eq!(o["metadata"]["generation"], 1);
    assert_eq!(o["metadata"]["namespace"], "api-probe");
    assert_ne!(o["metadata"]["uid"], "x");
    assert_ne!(o["metadata"]["creationTimestamp"], "2020-01-01T00:00:00Z");
    assert!(
        o.get("status").is_none(),
        "status is dropped on create: {o}"
    );
    assert!(o["metadata"].get("managedFields").is_none());
    let keys: Vec<&String> = o.as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["apiVersion", "kind", "metadata", "spec"]);
    assert_eq!(
        o["spec"],
        json!({"containers": ["c1", "c2"], "name": "alpha", "timeoutSeconds": 30})
    );

    let r = h
        .post(W, &widget("w1", json!({}), json!({"name": "x"})))
        .await;
    assert_eq!(r.code, 409);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "widgets.probes.example.test \"w1\" already exists", "reason": "AlreadyExists",
            "details": {"name": "w1", "group": "probes.example.test", "kind": "widgets"}, "code": 409})
    );
    let mut with_rv = widget("w9", json!({}), json!({"name": "x"}));
    with_rv["metadata"]["resourceVersion"] = json!("5");
    let r = h.post(W, &with_rv).await;
    assert_eq!(r.code, 500);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "resourceVersion should not be set on objects to be created", "code": 500})
    );
    // Only metadata: accepted.
    let r = h.post(W, &json!({"apiVersion": "probes.example.test/v1alpha1", "kind": "Widget", "metadata": {"name": "bad5"}})).await;
    assert_eq!(r.code, 201, "{}", r.body);
    let r = h.post(W, &json!({"apiVersion": "probes.example.test/v1alpha1", "kind": "Widget", "metadata": {"generateName": "gen-"}, "spec": {"name": "g"}})).await;
    let name = r.json()["metadata"]["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    assert_eq!(r.json()["metadata"]["generateName"], "gen-");
    let r = h
        .post(
            &format!("{W}?dryRun=All"),
            &widget("dry", json!({}), json!({"name": "d"})),
        )
        .await;
    assert_eq!(r.code, 201);
    assert!(r.json()["metadata"].get("resourceVersion").is_none());
    assert!(r.json()["metadata"]["uid"].is_string());
    assert_eq!(h.get(&format!("{W}/dry")).await.code, 404);

    let r = h.post(W, &json!({"apiVersion": "probes.example.test/v1alpha1", "kind": "Widget", "metadata": {}})).await;
    assert_eq!(r.code, 422);
    assert_eq!(
        r.json()["message"],
        "Widget.probes.example.test \"\" is invalid: [metadata.name: Required value: name or generateName is required, <nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]"
    );
    assert!(r.json()["details"].get("name").is_none());
    let r = h
        .post(W, &widget("Bad_Name", json!({}), json!({"name": "x"})))
        .await;
    assert_eq!(r.code, 422);
    assert!(r.json()["message"].as_str().unwrap().starts_with("Widget.probes.example.test \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"), "{}", r.body);
    let mut other_ns = widget("k0", json!({}), json!({"name": "x"}));
    other_ns["metadata"]["namespace"] = json!("other");
    let r = h.post(W, &other_ns).await;
    assert_eq!(
        (r.code, r.json()["message"].as_str().unwrap()),
        (
            400,
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    );
    let r = h
        .post(
            "/apis/probes.example.test/v1alpha1/namespaces/nonexistent-ns/widgets",
            &widget("k2", json!({}), json!({"name": "x"})),
        )
        .await;
    assert_eq!(r.code, 404);
    assert_eq!(
        r.json()["message"],
        "namespaces \"nonexistent-ns\" not found"
    );
    assert_eq!(
        r.json()["details"],
        json!({"name": "nonexistent-ns", "kind": "namespaces"})
    );
    let mut gadget = widget("k1", json!({}), json!({"name": "x"}));
    gadget["kind"] = json!("Gadget");
    let r = h.post(W, &gadget).await;
    assert_eq!(r.code, 422);
    assert_eq!(
        r.json()["message"],
        "Gadget.probes.example.test \"k1\" is invalid: kind: Invalid value: \"Gadget\": must be Widget"
    );
}

#[tokio::test]
async fn schema_validation_and_field_validation_modes() {
    let f = start().await;
    with_crds(&f).await;
    let h = &f.http;
    let r = h
        .post(
            W,
            &widget(
                "bad1",
                json!({}),
                json!({"name": "x", "timeoutSeconds": -1}),
            ),
        )
        .await;
    assert_eq!(r.code, 422);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": "Widget.probes.example.test \"bad1\" is invalid: spec.timeoutSeconds: Invalid value: -1: spec.timeoutSeconds in body should be greater than or equal to 0",
         "reason": "Invalid",
         "details": {"name": "bad1", "group": "probes.example.test", "kind": "Widget", "causes": [
           {"reason": "FieldValueInvalid", "message": "Invalid value: -1: spec.timeoutSeconds in body should be greater than or equal to 0", "field": "spec.timeoutSeconds"}]},
         "code": 422})
    );
    let r = h
        .post(
            W,
            &widget(
                "bad1",
                json!({}),
                json!({"name": "x", "timeoutSeconds": 99999}),
            ),
        )
        .await;
    assert!(r.json()["message"].as_str().unwrap().ends_with(
        "Invalid value: 99999: spec.timeoutSeconds in body should be less than or equal to 3600"
    ));
    let r = h
        .post(W, &widget("bad2", json!({}), json!({"timeoutSeconds": 1})))
        .await;
    assert_eq!(
        r.json()["details"]["causes"],
        json!([{"reason": "FieldValueRequired", "message": "Required value", "field": "spec.name"},
               {"reason": "FieldValueInvalid", "message": "Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation", "field": "<nil>"}])
    );
    let r = h
        .post(
            W,
            &widget(
                "bad3",
                json!({}),
                json!({"name": "x", "timeoutSeconds": "abc", "containers": [1]}),
            ),
        )
        .await;
    let causes = r.json()["details"]["causes"].clone();
    assert_eq!(
        causes[0]["message"],
        "Invalid value: \"integer\": spec.containers[0] in body must be of type string: \"integer\""
    );
    assert_eq!(causes[0]["reason"], "FieldValueTypeInvalid");
    assert_eq!(causes[1]["field"], "spec.timeoutSeconds");
    assert_eq!(causes[2]["field"], "<nil>");
    // Gadget has no CEL rule: no <nil> cause.
    let r = h.post(G, &json!({"apiVersion": "probes.example.test/v1alpha1", "kind": "Gadget", "metadata": {"name": "g0"}, "spec": {}})).await;
    assert_eq!(r.json()["details"]["causes"].as_array().unwrap().len(), 1);

    // Unknown fields: pruned with warnings (Warn is the default).
    let mut extra = widget("x1", json!({}), json!({"name": "x", "color": "red"}));
    extra["extra"] = json!(1);
    let r = h.post(W, &extra).await;
    assert_eq!(r.code, 201);
    let warnings: Vec<&str> = r
        .headers
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        warnings,
        vec![
            "299 - \"unknown field \\\"extra\\\"\"",
            "299 - \"unknown field \\\"spec.color\\\"\""
        ]
    );
    assert!(r.json().get("extra").is_none() && r.json()["spec"].get("color").is_none());
    extra["metadata"]["name"] = json!("x2");
    let r = h.post(&format!("{W}?fieldValidation=Ignore"), &extra).await;
    assert_eq!((r.code, r.headers.get("warning").is_none()), (201, true));
    extra["metadata"]["name"] = json!("x3");
    let r = h.post(&format!("{W}?fieldValidation=Strict"), &extra).await;
    assert_eq!(r.code, 400);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": "Widget in version \"v1alpha1\" cannot be handled as a Widget: strict decoding error: unknown field \"extra\", unknown field \"spec.color\"",
         "reason": "BadRequest", "code": 400})
    );
    let mut bogus_meta = widget("x4", json!({}), json!({"name": "x"}));
    bogus_meta["metadata"]["bogusMeta"] = json!(1);
    let r = h
        .post(&format!("{W}?fieldValidation=Strict"), &bogus_meta)
        .await;
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .ends_with("strict decoding error: unknown field \"metadata.bogusMeta\"")
    );
    for (name, mode) in [("x6", "Warn"), ("x7", "Strict")] {
        let dup = format!(
            r#"{{"apiVersion":"probes.example.test/v1alpha1","kind":"Widget","metadata":{{"name":"{name}"}},"spec":{{"name":"x","name":"y"}}}}"#
        );
        let r = h
            .call(
                "POST",
                &format!("{W}?fieldValidation={mode}"),
                &[("Content-Type", "application/json")],
                Some(dup.as_bytes()),
            )
            .await;
        if mode == "Warn" {
            assert_eq!(
                (r.code, r.json()["spec"]["name"].as_str()),
                (201, Some("y"))
            );
            assert_eq!(
                r.header("warning"),
                r#"299 - "duplicate field \"spec.name\"""#
            );
        } else {
            assert_eq!(
                (r.code, r.json()["message"].as_str().unwrap()),
                (
                    400,
                    "Widget in version \"v1alpha1\" cannot be handled as a Widget: strict decoding error: duplicate field \"spec.name\""
                )
            );
        }
    }
    let r = h
        .post(
            &format!("{W}?fieldValidation=Bogus"),
            &widget("x5", json!({}), json!({"name": "x"})),
        )
        .await;
    assert_eq!(r.code, 422);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": "CreateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"Bogus\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"",
         "reason": "Invalid",
         "details": {"group": "meta.k8s.io", "kind": "CreateOptions", "causes": [{"reason": "FieldValueNotSupported", "message": "Unsupported value: \"Bogus\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"", "field": "fieldValidation"}]},
         "code": 422})
    );

    // The status subresource validates status with paths relative to it.
    h.post(W, &widget("w3", json!({}), json!({"name": "w3"})))
        .await;
    let r = h.merge(&format!("{W}/w3/status"), &json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "not-a-date"}]}})).await;
    assert_eq!(r.code, 422, "{}", r.body);
    let causes = r.json()["details"]["causes"].clone();
    assert_eq!(
        causes[0],
        json!({"reason": "FieldValueTypeInvalid", "message": "Invalid value: \"not-a-date\": conditions[0].lastTransitionTime in body must be of type date-time: \"not-a-date\"", "field": "conditions[0].lastTransitionTime"})
    );
    assert_eq!(causes[1]["field"], "<nil>");
}

#[tokio::test]
async fn get_and_list_with_paging_selectors_and_resource_versions() {
    let f = start().await;
    with_crds(&f).await;
    let h = &f.http;
    for (n, app, tier) in [
        ("w1", "demo", "a"),
        ("w2", "demo", "b"),
        ("w3", "other", "c"),
    ] {
        let r = h
            .post(
                W,
                &widget(n, json!({"app": app, "tier": tier}), json!({"name": n})),
            )
            .await;
        assert_eq!(r.code, 201, "{}", r.body);
    }
    let r = h.get(&format!("{W}/nope")).await;
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": "widgets.probes.example.test \"nope\" not found", "reason": "NotFound",
         "details": {"name": "nope", "group": "probes.example.test", "kind": "widgets"}, "code": 404})
    );
    // watch=true on a single object is a plain GET.
    let r = h.get(&format!("{W}/w2?watch=true")).await;
    assert_eq!(
        (r.code, r.json()["metadata"]["name"].as_str()),
        (200, Some("w2"))
    );

    let p1 = h.get(&format!("{W}?limit=2")).await.json();
    assert_eq!(p1["kind"], "WidgetList");
    assert_eq!(p1["apiVersion"], "probes.example.test/v1alpha1");
    let names = |l: &Value| -> Vec<String> {
        l["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&p1), vec!["w1", "w2"]);
    assert_eq!(p1["items"][0]["kind"], "Widget");
    assert_eq!(p1["metadata"]["remainingItemCount"], 1);
    let token = p1["metadata"]["continue"].as_str().unwrap().to_owned();
    let snapshot_rv: u64 = p1["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    use base64::Engine;
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&token)
        .unwrap();
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        format!("{{\"v\":\"meta.k8s.io/v1\",\"rv\":{snapshot_rv},\"start\":\"w2\\u0000\"}}")
    );
    // Relabel w3 between the pages: page 2 is still the snapshot.
    let r = h
        .merge(
            &format!("{W}/w3"),
            &json!({"metadata": {"labels": {"later": "1"}}}),
        )
        .await;
    assert_eq!(r.code, 200, "{}", r.body);
    let p2 = h.get(&format!("{W}?limit=2&continue={token}")).await.json();
    assert_eq!(names(&p2), vec!["w3"]);
    assert!(p2["items"][0]["metadata"]["labels"].get("later").is_none());
    assert_eq!(p2["metadata"]["resourceVersion"], snapshot_rv.to_string());
    assert_eq!(p2["metadata"]["continue"], "");
    assert!(p2["metadata"].get("remainingItemCount").is_none());
    let all = h.get(W).await.json();
    assert_eq!(all["metadata"]["continue"], "");
    let r = h.get(&format!("{W}?limit=2&continue=garbage")).await;
    assert_eq!(r.code, 400);
    assert_eq!(
        r.json()["message"],
        "invalid continue token: continue key is not valid: invalid character '\\x81' looking for beginning of value"
    );

    for (sel, want) in [
        ("app%3Ddemo", vec!["w1", "w2"]),
        ("app+in+(demo,other),tier!%3Da", vec!["w2", "w3"]),
        ("!later", vec!["w1", "w2"]),
    ] {
        assert_eq!(
            names(&h.get(&format!("{W}?labelSelector={sel}")).await.json()),
            want,
            "{sel}"
        );
    }
    let r = h.get(&format!("{W}?labelSelector=app%3D%3D%3Dx")).await;
    assert_eq!(
        (r.code, r.json()["message"].as_str().unwrap()),
        (
            400,
            "unable to parse requirement: found '=', expected: identifier"
        )
    );
    for (sel, want) in [
        ("metadata.name%3Dw2", vec!["w2"]),
        ("metadata.name!%3Dw2", vec!["w1", "w3"]),
        ("metadata.namespace%3Dapi-probe", vec!["w1", "w2", "w3"]),
        ("metadata.namespace%3Dother", vec![]),
    ] {
        assert_eq!(
            names(&h.get(&format!("{W}?fieldSelector={sel}")).await.json()),
            want,
            "{sel}"
        );
    }
    let r = h.get(&format!("{W}?fieldSelector=spec.name%3Dalpha")).await;
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "field label not supported: spec.name", "reason": "BadRequest", "code": 400})
    );
    let r = h.get("/apis/probes.example.test/v1alpha1/widgets?fieldSelector=metadata.namespace%3Dapi-probe&limit=1").await;
    assert_eq!(r.code, 200);
    assert!(
        !r.json()["metadata"]["continue"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    // Pods: the node agent's selector.
    assert_eq!(
        h.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dn1,status.phase%3DRunning")
            .await
            .code,
        200
    );
    assert_eq!(
        h.get("/api/v1/pods?fieldSelector=spec.bogus%3D1")
            .await
            .code,
        400
    );

    // resourceVersion semantics.
    let exact = h
        .get(&format!(
            "{W}?resourceVersion={snapshot_rv}&resourceVersionMatch=Exact"
        ))
        .await
        .json();
    assert_eq!(
        exact["metadata"]["resourceVersion"],
        snapshot_rv.to_string()
    );
    assert!(
        exact["items"][2]["metadata"]["labels"]
            .get("later")
            .is_none()
    );
    let r = h
        .get(&format!("{W}?resourceVersion=1&resourceVersionMatch=Exact"))
        .await;
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "The resourceVersion for the provided list is too old.", "reason": "Expired", "code": 410})
    );
    let r = h.get(&format!("{W}?resourceVersionMatch=Exact")).await;
    assert_eq!(
        (r.code, r.json()["message"].as_str().unwrap()),
        (
            422,
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
        )
    );
    let r = h
        .get(&format!("{W}?resourceVersion=0&resourceVersionMatch=Exact"))
        .await;
    assert_eq!(
        r.json()["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""
    );
    let now = h
        .get(&format!(
            "{W}?resourceVersion=1&resourceVersionMatch=NotOlderThan"
        ))
        .await
        .json();
    assert_eq!(names(&now).len(), 3);
    assert_eq!(
        names(&h.get(&format!("{W}?resourceVersion=0")).await.json()).len(),
        3
    );
    let t = Instant::now();
    let r = h.get(&format!("{W}?resourceVersion=99999999")).await;
    assert_eq!(r.code, 504);
    assert!(
        t.elapsed() >= Duration::from_secs(2),
        "waits for the cache first"
    );
    let current = now["metadata"]["resourceVersion"].as_str().unwrap();
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
          "message": format!("Timeout: Too large resource version: 99999999, current: {current}"), "reason": "Timeout",
          "details": {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}, "code": 504})
    );
    // YAML and protobuf.
    let r = h
        .call(
            "GET",
            &format!("{W}/w1"),
            &[("Accept", "application/yaml")],
            None,
        )
        .await;
    assert_eq!(
        (r.code, r.header("content-type")),
        (200, "application/yaml")
    );
    assert!(r.body.contains("kind: Widget"), "{}", r.body);
    let r = h
        .call(
            "GET",
            &format!("{W}/w1"),
            &[("Accept", "application/vnd.kubernetes.protobuf")],
            None,
        )
        .await;
    assert_eq!(r.code, 406);
    let r = h
        .call(
            "GET",
            &format!("{W}/w1"),
            &[(
                "Accept",
                "application/vnd.kubernetes.protobuf, application/json",
            )],
            None,
        )
        .await;
    assert_eq!(
        (r.code, r.header("content-type")),
        (200, "application/json")
    );
}

#[tokio::test]
async fn update_conflicts_cel_status_and_generation() {
    let f = start().await;
    with_crds(&f).await;
    let h = &f.http;
    let w1 = h
        .post(
            W,
            &widget(
                "w1",
                json!({"app": "demo"}),
                json!({"name": "alpha", "timeoutSeconds": 30}),
            ),
        )
        .await
        .json();
    let stale = w1.clone();
    let r = h
        .merge(
            &format!("{W}/w1"),
            &json!({"metadata": {"labels": {"x": "1"}}}),
        )
        .await;
    assert_eq!(r.code, 200);
    let r = h.put(&format!("{W}/w1"), &stale).await;
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": "Operation cannot be fulfilled on widgets.probes.example.test \"w1\": the object has been modified; please apply your changes to the latest version and try again",
         "reason": "Conflict", "details": {"name": "w1", "group": "probes.example.test", "kind": "widgets"}, "code": 409})
    );
    let mut cur = h.get(&format!("{W}/w1")).await.json();
    cur["spec"]["timeoutSeconds"] = json!(31);
    let r = h.put(&format!("{W}/w1"), &cur).await;
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": "Widget.probes.example.test \"w1\" is invalid: spec: Invalid value: \"object\": spec is immutable",
         "reason": "Invalid",
         "details": {"name": "w1", "group": "probes.example.test", "kind": "Widget", "causes": [
           {"reason": "FieldValueInvalid", "message": "Invalid value: \"object\": spec is immutable", "field": "spec"}]},
         "code": 422})
    );
    let mut no_rv = h.get(&format!("{W}/w1")).await.json();
    no_rv["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let r = h.put(&format!("{W}/w1"), &no_rv).await;
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": "widgets.probes.example.test \"w1\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
         "reason": "Invalid",
         "details": {"name": "w1", "group": "probes.example.test", "kind": "widgets", "causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: 0x0: must be specified for an update", "field": "metadata.resourceVersion"}]},
         "code": 422})
    );
    let mut ghost = h.get(&format!("{W}/w1")).await.json();
    ghost["metadata"]["name"] = json!("ghost");
    assert_eq!(h.put(&format!("{W}/ghost"), &ghost).await.code, 404);
    let r = h.put(&format!("{W}/w1"), &ghost).await;
    assert_eq!(
        (r.code, r.json()["message"].as_str().unwrap()),
        (
            400,
            "the name of the object (ghost) does not match the name on the URL (w1)"
        )
    );

    // PUT on the main resource ignores status; /status ignores the rest.
    let mut cur = h.get(&format!("{W}/w1")).await.json();
    let rv0 = rv_of(&cur);
    cur["status"] = json!({"phase": "Running"});
    cur["metadata"]["labels"]["new"] = json!("1");
    let r = h.put(&format!("{W}/w1"), &cur).await.json();
    assert!(r.get("status").is_none());
    assert_eq!(r["metadata"]["labels"]["new"], "1");
    assert_eq!(r["metadata"]["generation"], 1);
    assert!(rv_of(&r) > rv0);
    let mut cur = r.clone();
    cur["status"] = json!({"phase": "Running"});
    cur["spec"]["timeoutSeconds"] = json!(99);
    cur["metadata"]["labels"]["viastatus"] = json!("1");
    let r = h.put(&format!("{W}/w1/status"), &cur).await;
    assert_eq!(r.code, 200, "{}", r.body);
    let r = r.json();
    assert_eq!(r["spec"]["timeoutSeconds"], 30);
    assert!(r["metadata"]["labels"].get("viastatus").is_none());
    assert_eq!(r["status"], json!({"phase": "Running"}));
    assert_eq!(r["metadata"]["generation"], 1);

    // generation vs resourceVersion, on Gadget (no CEL rule).
    let gadget = |t: i64| json!({"apiVersion": "probes.example.test/v1alpha1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"name": "g", "timeoutSeconds": t}});
    let g = h.post(G, &gadget(1)).await.json();
    let (mut rv, gen_of) = (rv_of(&g), |v: &Value| {
        v["metadata"]["generation"].as_i64().unwrap()
    });
    let mut step = |v: Value, rv_moves: bool, generation: i64| {
        let now = rv_of(&v);
        assert_eq!(now > rv, rv_moves, "{v}");
        assert_eq!(gen_of(&v), generation, "{v}");
        rv = now;
        v
    };
    let mut g = h.get(&format!("{G}/g1")).await.json();
    g["spec"]["timeoutSeconds"] = json!(2);
    let g = step(h.put(&format!("{G}/g1"), &g).await.json(), true, 2);
    let g = step(h.put(&format!("{G}/g1"), &g).await.json(), false, 2);
    let mut g2 = g.clone();
    g2["metadata"]["labels"] = json!({"a": "b"});
    let g = step(h.put(&format!("{G}/g1"), &g2).await.json(), true, 2);
    let mut g2 = g.clone();
    g2["status"] = json!({"phase": "P"});
    let g = step(h.put(&format!("{G}/g1/status"), &g2).await.json(), true, 2);
    let mut g2 = g.clone();
    g2["status"] = json!({"phase": "Q"});
    g2["spec"]["timeoutSeconds"] = json!(3);
    let g = step(h.put(&format!("{G}/g1"), &g2).await.json(), true, 3);
    assert_eq!(g["status"]["phase"], "P");
    let mut g2 = g.clone();
    g2["metadata"]["generation"] = json!(10);
    let g = step(h.put(&format!("{G}/g1"), &g2).await.json(), false, 3);
    step(h.put(&format!("{G}/g1/status"), &g).await.json(), false, 3);
    let g = step(
        h.merge(&format!("{G}/g1"), &json!({"status": {"phase": "Z"}}))
            .await
            .json(),
        false,
        3,
    );
    assert_eq!(g["status"]["phase"], "P");
    let g = step(
        h.merge(
            &format!("{G}/g1/status"),
            &json!({"spec": {"timeoutSeconds": 7}, "status": {"phase": "Y"}}),
        )
        .await
        .json(),
        true,
        3,
    );
    assert_eq!(
        (
            g["spec"]["timeoutSeconds"].as_i64(),
            g["status"]["phase"].as_str()
        ),
        (Some(3), Some("Y"))
    );
}

#[tokio::test]
async fn merge_and_json_patch() {
    let f = start().await;
    with_crds(&f).await;
    let h = &f.http;
    let w1 = h
        .post(
            W,
            &widget(
                "w1",
                json!({"touched": "x"}),
                json!({"name": "alpha", "timeoutSeconds": 30}),
            ),
        )
        .await
        .json();
    let old_rv = w1["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h
        .merge(
            &format!("{W}/w1"),
            &json!({"metadata": {"labels": {"merged": "yes", "touched": null}}}),
        )
        .await;
    assert_eq!(r.json()["metadata"]["labels"], json!({"merged": "yes"}));
    let r = h
        .merge(&format!("{W}/w1"), &json!({"spec": {"timeoutSeconds": 45}}))
        .await;
    assert_eq!(
        (r.code, r.json()["message"].as_str().unwrap()),
        (
            422,
            "Widget.probes.example.test \"w1\" is invalid: spec: Invalid value: \"object\": spec is immutable"
        )
    );
    let r = h
        .merge(
            &format!("{W}/w1"),
            &json!({"metadata": {"resourceVersion": old_rv, "labels": {"stale": "1"}}}),
        )
        .await;
    assert_eq!(
        (r.code, r.json()["reason"].as_str()),
        (409, Some("Conflict"))
    );
    assert_eq!(h.merge(&format!("{W}/nope"), &json!({})).await.code, 404);
    let r = h
        .patch(
            &format!("{W}/w1"),
            "application/merge-patch+json",
            "not json",
        )
        .await;
    assert_eq!(
        (r.code, r.json()["message"].as_str().unwrap()),
        (
            400,
            "error decoding patch: invalid character 'o' in literal null (expecting 'u')"
        )
    );

    let jp = "application/json-patch+json";
    let r = h
        .patch(
            &format!("{W}/w1"),
            jp,
            r#"[{"op":"add","path":"/metadata/labels/jp","value":"1"}]"#,
        )
        .await;
    assert_eq!(
        (r.code, r.json()["metadata"]["labels"]["jp"].as_str()),
        (200, Some("1"))
    );
    let generic = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "the server rejected our request due to an error in our request", "reason": "Invalid", "details": {}, "code": 422});
    let r = h.patch(&format!("{W}/w1"), jp, r#"[{"op":"test","path":"/spec/name","value":"wrong"},{"op":"add","path":"/metadata/labels/no","value":"1"}]"#).await;
    assert_eq!(r.json(), generic);
    assert!(
        h.get(&format!("{W}/w1")).await.json()["metadata"]["labels"]
            .get("no")
            .is_none()
    );
    let r = h
        .patch(
            &format!("{W}/w1"),
            jp,
            r#"[{"op":"remove","path":"/metadata/annotations/none"}]"#,
        )
        .await;
    assert_eq!(r.json(), generic);
    let r = h.patch(&format!("{W}/w1"), jp, r#"{"op":"add"}"#).await;
    assert_eq!(
        (r.code, r.json()["message"].as_str().unwrap()),
        (
            400,
            "error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp"
        )
    );

    let unsupported = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        "reason": "UnsupportedMediaType", "code": 415});
    for ct in ["application/strategic-merge-patch+json", "text/plain"] {
        assert_eq!(
            h.patch(&format!("{W}/w1"), ct, "{}").await.json(),
            unsupported,
            "{ct}"
        );
    }
    // Server-side apply is not served, and says so.
    let r = h
        .patch(
            &format!("{W}/w1?fieldManager=me"),
            "application/apply-patch+yaml",
            "{}",
        )
        .await;
    assert_eq!(r.code, 415);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("not served by kube-apiserver-standin")
    );
    let r = h
        .patch(
            &format!("{W}/w1?force=true"),
            "application/merge-patch+json",
            "{}",
        )
        .await;
    assert_eq!(
        (r.code, r.json()["message"].as_str().unwrap()),
        (
            422,
            "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
        )
    );
    // Built-ins take merge patches too (a node agent patching a pod's labels).
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}});
    assert_eq!(
        h.post("/api/v1/namespaces/api-probe/pods", &pod).await.code,
        201
    );
    let r = h
        .merge(
            "/api/v1/namespaces/api-probe/pods/p",
            &json!({"metadata": {"labels": {"a": "b"}}}),
        )
        .await;
    assert_eq!(
        (r.code, r.json()["metadata"]["labels"]["a"].as_str()),
        (200, Some("b"))
    );
    let r = h
        .merge(
            "/api/v1/namespaces/api-probe/pods/p/status",
            &json!({"status": {"phase": "Running"}}),
        )
        .await;
    assert_eq!(
        (r.code, r.json()["status"]["phase"].as_str()),
        (200, Some("Running"))
    );
}

fn ev_type(e: &Value) -> &str {
    e["type"].as_str().unwrap()
}

#[tokio::test]
async fn watch_events_replay_expiry_bookmarks_and_selectors() {
    let f = start_with(|c, _| {
        c.bookmark_interval = Duration::from_millis(700);
        c.request_timeout = Duration::from_secs(1);
    })
    .await;
    with_crds(&f).await;
    let h = &f.http;
    let list = h.get(W).await.json();
    let rv0: u64 = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // The observed sequence: create, label, status, delete; then a bookmark; a clean end.
    let mut w = h
        .watch(
            &format!(
                "{W}?watch=true&resourceVersion={rv0}&allowWatchBookmarks=true&timeoutSeconds=3"
            ),
            &[],
        )
        .await;
    assert_eq!((w.code, w.content_type.as_str()), (200, "application/json"));
    assert!(
        w.started.elapsed() < Duration::from_secs(1),
        "headers come at once"
    );
    let created = h
        .post(
            W,
            &widget("wx", json!({"app": "watch"}), json!({"name": "wx"})),
        )
        .await
        .json();
    h.merge(
        &format!("{W}/wx"),
        &json!({"metadata": {"labels": {"step": "2"}}}),
    )
    .await;
    h.merge(
        &format!("{W}/wx/status"),
        &json!({"status": {"phase": "Done"}}),
    )
    .await;
    let gone = h.delete(&format!("{W}/wx")).await;
    assert_eq!(gone.json()["status"], "Success");
    let e1 = w.next().await;
    assert_eq!(
        (ev_type(&e1), rv_of(&e1["object"])),
        ("ADDED", rv_of(&created))
    );
    let e2 = w.next().await;
    assert_eq!(
        (
            ev_type(&e2),
            e2["object"]["metadata"]["labels"]["step"].as_str()
        ),
        ("MODIFIED", Some("2"))
    );
    let e3 = w.next().await;
    assert_eq!(
        (ev_type(&e3), e3["object"]["status"]["phase"].as_str()),
        ("MODIFIED", Some("Done"))
    );
    let e4 = w.next().await;
    assert_eq!(ev_type(&e4), "DELETED");
    assert_eq!(
        rv_of(&e4["object"]),
        rv_of(&e3["object"]) + 1,
        "DELETED carries the deletion's resourceVersion"
    );
    assert_eq!(
        e4["object"]["status"]["phase"], "Done",
        "the last stored state"
    );
    let b = w.next().await;
    assert_eq!(ev_type(&b), "BOOKMARK");
    assert_eq!(
        b["object"],
        json!({"apiVersion": "probes.example.test/v1alpha1", "kind": "Widget", "metadata": {"resourceVersion": rv_of(&e4["object"]).to_string()}})
    );
    let rest = w.rest(Duration::from_secs(5)).await;
    assert!(rest.iter().all(|e| ev_type(e) == "BOOKMARK"), "{rest:?}");
    let took = w.started.elapsed();
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(5),
        "ends at timeoutSeconds, not --request-timeout (1 s): {took:?}"
    );

    // No bookmarks unless asked; no events: an empty body at the timeout.
    let mut w = h
        .watch(
            &format!(
                "{W}?watch=1&resourceVersion={}&timeoutSeconds=2",
                h.get(W).await.rv()
            ),
            &[],
        )
        .await;
    assert!(w.rest(Duration::from_secs(4)).await.is_empty());

    // "" and "0": synthetic ADDED in name order.
    for n in ["w2", "w1", "w3"] {
        h.post(W, &widget(n, json!({"app": "demo"}), json!({"name": n})))
            .await;
    }
    for rv in ["", "&resourceVersion=0"] {
        let mut w = h
            .watch(&format!("{W}?watch=true&timeoutSeconds=1{rv}"), &[])
            .await;
        let evs = w.rest(Duration::from_secs(3)).await;
        let names: Vec<&str> = evs
            .iter()
            .map(|e| e["object"]["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["w1", "w2", "w3"], "{rv}");
        assert!(evs.iter().all(|e| ev_type(e) == "ADDED"));
    }

    // Replay from a resourceVersion in the window, through a name selector.
    let from = h.get(W).await.rv();
    h.merge(
        &format!("{W}/w2"),
        &json!({"metadata": {"labels": {"app": "gone"}}}),
    )
    .await;
    h.merge(
        &format!("{W}/w2"),
        &json!({"metadata": {"labels": {"tier": "z"}}}),
    )
    .await;
    h.merge(
        &format!("{W}/w2"),
        &json!({"metadata": {"labels": {"app": "demo"}}}),
    )
    .await;
    let mut w = h.watch(&format!("{W}?watch=true&resourceVersion={from}&fieldSelector=metadata.name%3Dw2&timeoutSeconds=1"), &[]).await;
    let evs = w.rest(Duration::from_secs(3)).await;
    let rvs: Vec<u64> = evs.iter().map(|e| rv_of(&e["object"])).collect();
    assert_eq!(rvs, vec![from + 1, from + 2, from + 3]);
    // The same through a label selector: leaving is DELETED (old state, new rv), coming back ADDED.
    let mut w = h
        .watch(
            &format!(
                "{W}?watch=true&resourceVersion={from}&labelSelector=app%3Ddemo&timeoutSeconds=1"
            ),
            &[],
        )
        .await;
    let evs = w.rest(Duration::from_secs(3)).await;
    assert_eq!(evs.len(), 2, "{evs:?}");
    assert_eq!(
        (
            ev_type(&evs[0]),
            rv_of(&evs[0]["object"]),
            evs[0]["object"]["metadata"]["labels"]["app"].as_str()
        ),
        ("DELETED", from + 1, Some("demo"))
    );
    assert_eq!(
        (
            ev_type(&evs[1]),
            rv_of(&evs[1]["object"]),
            evs[1]["object"]["metadata"]["labels"]["tier"].as_str()
        ),
        ("ADDED", from + 3, Some("z"))
    );

    // Too old: 200 and one ERROR event.
    let mut w = h
        .watch(&format!("{W}?watch=true&resourceVersion=1"), &[])
        .await;
    assert_eq!(w.code, 200);
    let evs = w.rest(Duration::from_secs(3)).await;
    assert_eq!(evs.len(), 1);
    assert_eq!(ev_type(&evs[0]), "ERROR");
    let message = evs[0]["object"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("too old resource version: 1 ("),
        "{message}"
    );
    assert_eq!(evs[0]["object"]["code"], 410);
    assert_eq!(evs[0]["object"]["reason"], "Expired");

    // The legacy /watch/ prefix, and WatchList as 1.28 refuses it.
    let mut w = h.watch("/apis/probes.example.test/v1alpha1/watch/namespaces/api-probe/widgets?timeoutSeconds=1", &[]).await;
    assert_eq!(w.rest(Duration::from_secs(3)).await.len(), 3);
    let r = h.get(&format!("{W}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true")).await;
    assert_eq!(r.code, 422);
    assert_eq!(
        r.json()["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"
    );
    let r = h
        .get(&format!(
            "{W}?watch=true&resourceVersion=1&resourceVersionMatch=NotOlderThan"
        ))
        .await;
    assert_eq!(
        r.json()["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"
    );

    // Built-ins are watched the same way (a controller watches pods).
    let mut w = h
        .watch(
            "/api/v1/namespaces/api-probe/pods?watch=true&timeoutSeconds=2",
            &[],
        )
        .await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}});
    h.post("/api/v1/namespaces/api-probe/pods", &pod).await;
    let e = w.next().await;
    assert_eq!(
        (ev_type(&e), e["object"]["kind"].as_str()),
        ("ADDED", Some("Pod"))
    );
}

#[tokio::test]
async fn finalizers_deletion_and_delete_options() {
    let f = start().await;
    with_crds(&f).await;
    let h = &f.http;
    let mut wf = widget("wf", json!({}), json!({"name": "wf"}));
    wf["metadata"]["finalizers"] = json!(["probes.example.test/cleanup"]);
    let created = h.post(W, &wf).await.json();
    let mut w = h.watch(&format!("{W}?watch=true&fieldSelector=metadata.name%3Dwf&resourceVersion={}&timeoutSeconds=5", rv_of(&created)), &[]).await;
    let r = h.delete(&format!("{W}/wf")).await;
    assert_eq!(r.code, 200);
    let d = r.json();
    assert_eq!(d["kind"], "Widget");
    assert_eq!(d["metadata"]["deletionGracePeriodSeconds"], 0);
    assert!(d["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(d["metadata"]["generation"], 2);
    assert_eq!(
        d["metadata"]["finalizers"],
        json!(["probes.example.test/cleanup"])
    );
    assert_eq!(ev_type(&w.next().await), "MODIFIED");
    assert_eq!(h.get(&format!("{W}/wf")).await.code, 200);
    let r = h.patch(&format!("{W}/wf"), "application/json-patch+json", r#"[{"op":"add","path":"/metadata/finalizers/-","value":"probes.example.test/another"}]"#).await;
    assert_eq!(r.code, 422);
    let forbidden = "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"probes.example.test/another\"}";
    assert_eq!(
        r.json()["message"],
        format!("Widget.probes.example.test \"wf\" is invalid: metadata.finalizers: {forbidden}")
    );
    let cause = json!({"reason": "FieldValueForbidden", "message": forbidden, "field": "metadata.finalizers"});
    assert_eq!(r.json()["details"]["causes"], json!([cause.clone(), cause]));
    let labelled = h
        .merge(
            &format!("{W}/wf"),
            &json!({"metadata": {"labels": {"during": "deletion"}}}),
        )
        .await
        .json();
    assert_eq!(ev_type(&w.next().await), "MODIFIED");
    let again = h.delete(&format!("{W}/wf")).await.json();
    assert_eq!(rv_of(&again), rv_of(&labelled));
    let r = h
        .merge(
            &format!("{W}/wf"),
            &json!({"metadata": {"deletionTimestamp": null}}),
        )
        .await
        .json();
    assert_eq!(
        (rv_of(&r), r["metadata"]["deletionTimestamp"].is_string()),
        (rv_of(&labelled), true)
    );
    let r = h
        .patch(
            &format!("{W}/wf"),
            "application/json-patch+json",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        )
        .await;
    assert_eq!(r.code, 200);
    assert!(r.json()["metadata"].get("finalizers").is_none());
    assert_eq!(
        rv_of(&r.json()),
        rv_of(&labelled),
        "the answer keeps the old resourceVersion"
    );
    assert_eq!(h.get(&format!("{W}/wf")).await.code, 404);
    let last = w.next().await;
    assert_eq!(ev_type(&last), "DELETED");
    assert_eq!(
        last["object"]["metadata"]["finalizers"],
        json!(["probes.example.test/cleanup"])
    );
    assert_eq!(rv_of(&last["object"]), rv_of(&labelled) + 1);

    // No finalizers: a Success Status with the uid.
    let d1 = h
        .post(W, &widget("d1", json!({}), json!({"name": "d1"})))
        .await
        .json();
    let r = h.delete(&format!("{W}/d1")).await.json();
    assert_eq!(
        r,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": "d1", "group": "probes.example.test", "kind": "widgets", "uid": d1["metadata"]["uid"]}})
    );
    let d2 = h
        .post(
            W,
            &widget("d2", json!({"group": "trash"}), json!({"name": "d2"})),
        )
        .await
        .json();
    let r = h.delete(&format!("{W}/d2?dryRun=All")).await.json();
    assert_eq!(r["status"], "Success");
    assert_eq!(h.get(&format!("{W}/d2")).await.rv(), rv_of(&d2));
    let r = h.delete(&format!("{W}/d2?propagationPolicy=Bogus")).await;
    assert_eq!(
        r.json()["message"],
        "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"Bogus\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
    );
    let r = h.delete(&format!("{W}/d2?dryRun=Bogus")).await;
    assert_eq!(
        r.json()["message"],
        "DeleteOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"Bogus\"}: supported values: \"All\""
    );
    let uid = d2["metadata"]["uid"].as_str().unwrap();
    let r = h.send("DELETE", &format!("{W}/d2"), &json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}})).await;
    assert_eq!(r.code, 409);
    assert_eq!(
        r.json()["message"],
        format!(
            "Operation cannot be fulfilled on Widget.probes.example.test \"d2\": the UID in the precondition (00000000-0000-0000-0000-000000000000) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
        )
    );
    assert_eq!(
        r.json()["details"],
        json!({"name": "d2", "group": "probes.example.test", "kind": "Widget"})
    );
    let r = h
        .send(
            "DELETE",
            &format!("{W}/d2"),
            &json!({"preconditions": {"resourceVersion": "1"}}),
        )
        .await;
    assert_eq!(
        r.json()["message"],
        format!(
            "Operation cannot be fulfilled on Widget.probes.example.test \"d2\": the ResourceVersion in the precondition (1) does not match the ResourceVersion in record ({}). The object might have been modified",
            rv_of(&d2)
        )
    );
    // kubectl's body.
    let r = h
        .send(
            "DELETE",
            &format!("{W}/d2"),
            &json!({"propagationPolicy": "Background"}),
        )
        .await;
    assert_eq!(r.json()["status"], "Success");
    assert_eq!(h.delete(&format!("{W}/nope")).await.code, 404);
    // deletecollection.
    for n in ["t1", "t2"] {
        h.post(W, &widget(n, json!({"group": "trash"}), json!({"name": n})))
            .await;
    }
    let r = h
        .delete(&format!("{W}?labelSelector=group%3Dtrash"))
        .await
        .json();
    assert_eq!(r["kind"], "WidgetList");
    assert_eq!(r["items"].as_array().unwrap().len(), 2);
    assert_eq!(r["metadata"]["continue"], "");
    assert_eq!(h.get(W).await.json()["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn rbac_on_custom_resources() {
    let f = start().await;
    with_crds(&f).await;
    f.http
        .post(W, &widget("w1", json!({}), json!({"name": "w1"})))
        .await;
    let nobody = f.as_user("nobody", &[]);
    let scope = "in API group \"probes.example.test\" in the namespace \"api-probe\"";
    for (method, path, want) in [
        ("GET", format!("{W}/w1"), format!("widgets.probes.example.test \"w1\" is forbidden: User \"nobody\" cannot get resource \"widgets\" {scope}")),
        ("GET", W.to_owned(), format!("widgets.probes.example.test is forbidden: User \"nobody\" cannot list resource \"widgets\" {scope}")),
        ("GET", format!("{W}?watch=true"), format!("widgets.probes.example.test is forbidden: User \"nobody\" cannot watch resource \"widgets\" {scope}")),
        ("GET", "/apis/probes.example.test/v1alpha1/widgets".to_owned(), "widgets.probes.example.test is forbidden: User \"nobody\" cannot list resource \"widgets\" in API group \"probes.example.test\" at the cluster scope".to_owned()),
        ("POST", W.to_owned(), format!("widgets.probes.example.test is forbidden: User \"nobody\" cannot create resource \"widgets\" {scope}")),
        ("PATCH", format!("{W}/w1/status"), format!("widgets.probes.example.test \"w1\" is forbidden: User \"nobody\" cannot patch resource \"widgets/status\" {scope}")),
        ("DELETE", format!("{W}/w1"), format!("widgets.probes.example.test \"w1\" is forbidden: User \"nobody\" cannot delete resource \"widgets\" {scope}")),
        ("GET", format!("{W}/nonexistent"), format!("widgets.probes.example.test \"nonexistent\" is forbidden: User \"nobody\" cannot get resource \"widgets\" {scope}")),
    ] {
        let r = nobody.call(method, &path, &[("Content-Type", "application/merge-patch+json")], Some(b"{}")).await;
        assert_eq!(r.code, 403, "{method} {path}");
        assert_eq!(r.json()["message"], want);
        assert_eq!(r.json()["reason"], "Forbidden");
    }
    let limited = f.as_user("limited", &[]);
    assert_eq!(limited.get(&format!("{W}/w1")).await.code, 200);
    assert_eq!(
        limited
            .merge(
                &format!("{W}/w1"),
                &json!({"metadata": {"labels": {"by": "limited"}}})
            )
            .await
            .code,
        200
    );
    for (method, verb) in [("PATCH", "patch"), ("PUT", "update"), ("GET", "get")] {
        let r = limited
            .call(
                method,
                &format!("{W}/w1/status"),
                &[("Content-Type", "application/merge-patch+json")],
                Some(b"{}"),
            )
            .await;
        assert_eq!(r.code, 403);
        assert_eq!(
            r.json()["message"],
            format!(
                "widgets.probes.example.test \"w1\" is forbidden: User \"limited\" cannot {verb} resource \"widgets/status\" {scope}"
            )
        );
    }
}

#[tokio::test]
async fn table_output_for_kubectl_get() {
    let f = start().await;
    with_crds(&f).await;
    let h = &f.http;
    h.post(W, &widget("d4", json!({}), json!({"name": "d4"})))
        .await;
    h.post(
        W,
        &widget(
            "w1",
            json!({}),
            json!({"name": "alpha", "timeoutSeconds": 30}),
        ),
    )
    .await;
    h.merge(
        &format!("{W}/w1/status"),
        &json!({"status": {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]}}),
    )
    .await;
    let r = h
        .call(
            "GET",
            &format!("{W}?limit=500"),
            &[("Accept", TABLE_ACCEPT)],
            None,
        )
        .await;
    assert_eq!(
        (r.code, r.header("content-type")),
        (200, "application/json")
    );
    let t = r.json();
    assert_eq!(
        (t["kind"].as_str(), t["apiVersion"].as_str()),
        (Some("Table"), Some("meta.k8s.io/v1"))
    );
    let cols: Vec<(&str, &str, i64)> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["type"].as_str().unwrap(),
                c["priority"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        cols,
        vec![
            ("Name", "string", 0),
            ("Target", "string", 0),
            ("Timeout", "integer", 1),
            ("Phase", "string", 0),
            ("Age", "date", 0)
        ]
    );
    assert_eq!(t["columnDefinitions"][0]["format"], "name");
    assert_eq!(
        t["columnDefinitions"][1]["description"],
        "Custom resource definition column (in JSONPath format): .spec.name"
    );
    let cells = |i: usize| t["rows"][i]["cells"].clone();
    assert_eq!(
        cells(0).as_array().unwrap()[..4],
        [json!("d4"), json!("d4"), Value::Null, Value::Null]
    );
    assert_eq!(
        cells(1).as_array().unwrap()[..4],
        [json!("w1"), json!("alpha"), json!(30), json!("Ready")]
    );
    assert!(
        cells(1)[4].as_str().unwrap().ends_with('s'),
        "an age: {}",
        cells(1)[4]
    );
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "d4");
    assert!(t["metadata"]["resourceVersion"].is_string());
    let none = h
        .call(
            "GET",
            &format!("{W}?includeObject=None"),
            &[("Accept", TABLE_ACCEPT)],
            None,
        )
        .await
        .json();
    assert_eq!(none["rows"][0]["object"], Value::Null);
    let full = h
        .call(
            "GET",
            &format!("{W}?includeObject=Object"),
            &[("Accept", TABLE_ACCEPT)],
            None,
        )
        .await
        .json();
    assert_eq!(full["rows"][1]["object"]["kind"], "Widget");
    // A printer column with a filter expression.
    let mut crd = h
        .get(&format!("{CRDS}/gadgets.probes.example.test"))
        .await
        .json();
    crd["spec"]["versions"][0]["additionalPrinterColumns"] = json!([{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}]);
    assert_eq!(
        h.put(&format!("{CRDS}/gadgets.probes.example.test"), &crd)
            .await
            .code,
        200
    );
    h.post(G, &json!({"apiVersion": "probes.example.test/v1alpha1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"name": "g"}})).await;
    h.merge(&format!("{G}/g/status"), &json!({"status": {"conditions": [{"type": "Other", "status": "False"}, {"type": "Ready", "status": "True"}]}})).await;
    let t = h
        .call("GET", G, &[("Accept", TABLE_ACCEPT)], None)
        .await
        .json();
    assert_eq!(t["rows"][0]["cells"], json!(["g", "True"]));
    // Table watch: headers on the first event only.
    let mut w = h
        .watch(
            &format!("{W}?watch=true&timeoutSeconds=1"),
            &[("Accept", TABLE_ACCEPT)],
        )
        .await;
    let evs = w.rest(Duration::from_secs(3)).await;
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0]["object"]["kind"], "Table");
    assert_eq!(
        evs[0]["object"]["columnDefinitions"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(evs[1]["object"]["columnDefinitions"], Value::Null);
    assert_eq!(evs[1]["object"]["rows"][0]["cells"][0], "w1");
    // Built-ins: a pod printer.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}, "status": {"phase": "Running"}});
    h.post("/api/v1/namespaces/api-probe/pods", &pod).await;
    let t = h
        .call(
            "GET",
            "/api/v1/namespaces/api-probe/pods",
            &[("Accept", TABLE_ACCEPT)],
            None,
        )
        .await
        .json();
    let names: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[..5], ["Name", "Ready", "Status", "Restarts", "Age"]);
    assert_eq!(
        t["rows"][0]["cells"].as_array().unwrap()[..4],
        [json!("p"), json!("0/1"), json!("Running"), json!(0)]
    );
}

#[tokio::test]
async fn both_event_apis_are_one_set_of_objects() {
    let f = start().await;
    with_crds(&f).await;
    let h = &f.http;
    let w1 = h
        .post(W, &widget("w1", json!({}), json!({"name": "alpha"})))
        .await
        .json();
    let uid = w1["metadata"]["uid"].clone();
    let involved = json!({"apiVersion": "probes.example.test/v1alpha1", "kind": "Widget", "name": "w1", "namespace": "api-probe", "uid": uid});
    let core = h.post("/api/v1/namespaces/api-probe/events", &json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "w1.core1", "namespace": "api-probe"},
        "involvedObject": involved, "reason": "Probed", "message": "core/v1 event for w1", "type": "Normal", "source": {"component": "probe-client"},
        "firstTimestamp": "2026-11-30T05:46:00Z", "lastTimestamp": "2026-11-30T05:46:00Z", "count": 1})).await;
    assert_eq!(core.code, 201, "{}", core.body);
    assert_eq!(core.json()["eventTime"], Value::Null);
    assert_eq!(core.json()["reportingComponent"], "");
    let v1 = h.post("/apis/events.k8s.io/v1/namespaces/api-probe/events", &json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "w1.ev2", "namespace": "api-probe"},
        "regarding": involved, "reason": "Reconciled", "note": "events.k8s.io/v1 event for w1", "type": "Warning", "action": "Reconcile",
        "reportingController": "probes.example.test/controller", "reportingInstance": "controller-0", "eventTime": "2026-11-30T05:46:01.000000Z"})).await;
    assert_eq!(v1.code, 201, "{}", v1.body);
    assert_eq!(v1.json()["deprecatedSource"], json!({}));
    assert_eq!(v1.json()["deprecatedFirstTimestamp"], Value::Null);
    assert_eq!(v1.json()["eventTime"], "2026-11-30T05:46:01.000000Z");
    let list = h.get("/api/v1/namespaces/api-probe/events").await.json();
    assert_eq!(list["kind"], "EventList");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|i| i.get("kind").is_none()));
    let ev2 = items
        .iter()
        .find(|i| i["metadata"]["name"] == "w1.ev2")
        .unwrap();
    assert_eq!(ev2["message"], "events.k8s.io/v1 event for w1");
    assert_eq!(ev2["reportingComponent"], "probes.example.test/controller");
    assert_eq!(ev2["involvedObject"]["name"], "w1");
    // kubectl describe's selector, and the per-API field names.
    let sel = format!(
        "involvedObject.name%3Dw1%2CinvolvedObject.namespace%3Dapi-probe%2CinvolvedObject.kind%3DWidget%2CinvolvedObject.uid%3D{}",
        uid.as_str().unwrap()
    );
    assert_eq!(
        h.get(&format!(
            "/api/v1/namespaces/api-probe/events?fieldSelector={sel}&limit=500"
        ))
        .await
        .json()["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let r = h
        .get("/apis/events.k8s.io/v1/namespaces/api-probe/events?fieldSelector=regarding.name%3Dw1")
        .await;
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 2);
    assert_eq!(r.json()["items"][0]["regarding"]["name"], "w1");
    let r = h.get("/apis/events.k8s.io/v1/namespaces/api-probe/events?fieldSelector=involvedObject.name%3Dw1").await;
    assert_eq!(
        (r.code, r.json()["message"].as_str().unwrap()),
        (400, "field label not supported: involvedObject.name")
    );
    let r = h
        .get("/api/v1/namespaces/api-probe/events?fieldSelector=regarding.name%3Dw1")
        .await;
    assert_eq!(
        (r.code, r.json()["message"].as_str().unwrap()),
        (400, "field label not supported: regarding.name")
    );
    let r = h.post("/apis/events.k8s.io/v1/namespaces/api-probe/events", &json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "w1.ev3", "namespace": "api-probe"},
        "regarding": {"kind": "Widget", "name": "w1"}, "reason": "R", "note": "n", "type": "Normal", "action": "A", "reportingController": "c", "reportingInstance": "i"})).await;
    assert_eq!(r.code, 422);
    assert_eq!(
        r.json()["message"],
        "Event \"w1.ev3\" is invalid: [involvedObject.namespace: Invalid value: \"\": does not match event.namespace, eventTime: Required value]"
    );
    assert_eq!(r.json()["details"]["name"], "w1.ev3");
    assert!(r.json()["details"].get("group").is_none());
    // A kubectl-get-events Table.
    let t = h
        .call(
            "GET",
            "/api/v1/namespaces/api-probe/events?fieldSelector=involvedObject.name%3Dw1&limit=500",
            &[("Accept", TABLE_ACCEPT)],
            None,
        )
        .await
        .json();
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        vec![
            "Last Seen",
            "Type",
            "Reason",
            "Object",
            "Subobject",
            "Source",
            "Message",
            "First Seen",
            "Count",
            "Name"
        ]
    );
    let row = t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cells"][9] == "w1.ev2")
        .unwrap();
    assert_eq!(
        row["cells"].as_array().unwrap()[1..9],
        [
            json!("Warning"),
            json!("Reconciled"),
            json!("widget/w1"),
            json!(""),
            json!("probes.example.test/controller, controller-0"),
            json!("events.k8s.io/v1 event for w1"),
            row["cells"][7].clone(),
            json!(1)
        ]
    );
}

#[tokio::test]
async fn deleting_the_crd_takes_its_instances_and_closes_watches() {
    let f = start().await;
    with_crds(&f).await;
    let h = &f.http;
    for n in ["w1", "w2"] {
        h.post(W, &widget(n, json!({}), json!({"name": n}))).await;
    }
    let mut w3 = widget("w3", json!({}), json!({"name": "w3"}));
    w3["metadata"]["finalizers"] = json!(["probes.example.test/cleanup"]);
    h.post(W, &w3).await;
    let mut watch = h
        .watch(
            &format!(
                "{W}?watch=true&resourceVersion={}&timeoutSeconds=30",
                h.get(W).await.rv()
            ),
            &[],
        )
        .await;
    let r = h
        .delete(&format!("{CRDS}/widgets.probes.example.test"))
        .await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(
        r.json()["metadata"]["finalizers"],
        json!(["customresourcecleanup.apiextensions.k8s.io"])
    );
    assert!(r.json()["metadata"]["deletionTimestamp"].is_string());
    let evs: Vec<(String, String)> = [watch.next().await, watch.next().await, watch.next().await]
        .iter()
        .map(|e| {
            (
                ev_type(e).to_owned(),
                e["object"]["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        evs,
        vec![
            ("DELETED".into(), "w1".into()),
            ("DELETED".into(), "w2".into()),
            ("MODIFIED".into(), "w3".into())
        ]
    );
    let crd = h
        .get(&format!("{CRDS}/widgets.probes.example.test"))
        .await
        .json();
    let terminating = crd["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Terminating")
        .unwrap()
        .clone();
    assert_eq!(
        (
            terminating["reason"].as_str(),
            terminating["message"].as_str()
        ),
        (
            Some("InstanceDeletionInProgress"),
            Some("CustomResource deletion is in progress")
        )
    );
    let r = h
        .post(W, &widget("w4", json!({}), json!({"name": "w4"})))
        .await;
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "create not allowed while custom resource definition is terminating", "reason": "MethodNotAllowed", "details": {"group": "probes.example.test", "kind": "widgets"}, "code": 405})
    );
    let list = h.get("/apis/probes.example.test/v1alpha1").await.json();
    let widgets = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "widgets")
        .unwrap()
        .clone();
    assert_eq!(
        widgets["verbs"],
        json!(["delete", "deletecollection", "get", "list", "watch"])
    );
    assert_eq!(
        h.merge(
            &format!("{W}/w3"),
            &json!({"metadata": {"labels": {"still": "patchable"}}})
        )
        .await
        .code,
        200
    );
    assert_eq!(ev_type(&watch.next().await), "MODIFIED");
    let r = h
        .merge(
            &format!("{W}/w3"),
            &json!({"metadata": {"finalizers": null}}),
        )
        .await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(ev_type(&watch.next().await), "DELETED");
    assert!(
        watch.next_within(Duration::from_secs(3)).await.is_none(),
        "the watch is closed"
    );
    assert!(watch.started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        h.get(&format!("{CRDS}/widgets.probes.example.test"))
            .await
            .code,
        404
    );
    assert_eq!(
        h.get("/apis/probes.example.test/v1alpha1").await.json()["resources"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "gadgets stay"
    );
    assert_eq!(h.get(W).await.code, 404);
    assert_eq!(
        h.delete(&format!("{CRDS}/gadgets.probes.example.test"))
            .await
            .code,
        200
    );
    let r = h.get("/apis/probes.example.test").await;
    assert_eq!((r.code, r.body.as_str()), (404, "404 page not found\n"));
}

#[tokio::test]
async fn crds_and_custom_resources_load_from_objects_files() {
    let f = start_with(|c, dir| {
        let crd = serde_saphyr::to_string(&widget_crd()).unwrap();
        let text = format!("{crd}---\napiVersion: probes.example.test/v1alpha1\nkind: Widget\nmetadata: {{name: seeded, namespace: api-probe}}\nspec: {{name: s}}\nstatus: {{phase: Seeded}}\n");
        std::fs::write(dir.join("crd.yaml"), text).unwrap();
        c.object_files.push(dir.join("crd.yaml"));
    })
    .await;
    let r = f.http.get(&format!("{W}/seeded")).await.json();
    assert_eq!(r["spec"]["name"], "s");
    assert_eq!(r["status"]["phase"], "Seeded");
}

/// The kubectl binaries of this machine: `kubectl.1.27` … `kubectl.1.33`
/// beside the `kubectl` on PATH (as `hack/setup.sh` installs them).
fn kubectl_binaries(versions: &[&str]) -> Vec<(String, std::path::PathBuf)> {
    let on_path = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("kubectl")).find(|k| k.is_file()))
        .unwrap_or_else(|| panic!("kubectl is not on PATH: the stand-in's kubectl tests need kubectl.1.27 … kubectl.1.33 beside it"));
    let dir = std::fs::canonicalize(&on_path)
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    versions
        .iter()
        .map(|v| {
            let bin = dir.join(format!("kubectl.{v}"));
            assert!(
                bin.is_file(),
                "{} is missing: the stand-in's kubectl tests run kubectl {v}",
                bin.display()
            );
            ((*v).to_owned(), bin)
        })
        .collect()
}

struct Kubectl {
    bin: std::path::PathBuf,
    kubeconfig: std::path::PathBuf,
    cache: std::path::PathBuf,
}

impl Kubectl {
    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(&self.bin);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .env("HOME", self.cache.parent().unwrap());
        c
    }
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let mut c = self.command(args);
        let out = tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args).await;
        assert!(ok, "kubectl {args:?} failed: {err}{out}");
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_flows_on_custom_resources() {
    let bins = kubectl_binaries(&["1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33"]);
    for (version, bin) in bins {
        let f = start().await;
        let dir = tempfile::tempdir().unwrap();
        let k = Kubectl {
            bin,
            kubeconfig: f._dir.path().join("admin.kubeconfig"),
            cache: dir.path().join("cache"),
        };
        let crd_file = dir.path().join("crd.yaml");
        std::fs::write(&crd_file, serde_saphyr::to_string(&widget_crd()).unwrap()).unwrap();
        let out = k.ok(&["apply", "-f", crd_file.to_str().unwrap()]).await;
        assert_eq!(
            out.trim(),
            "customresourcedefinition.apiextensions.k8s.io/widgets.probes.example.test created",
            "{version}"
        );
        let obj = dir.path().join("w1.yaml");
        std::fs::write(&obj, "apiVersion: probes.example.test/v1alpha1\nkind: Widget\nmetadata: {name: w1, namespace: api-probe, labels: {app: demo}}\nspec: {name: alpha, timeoutSeconds: 30, containers: [c1, c2]}\n").unwrap();
        let out = k.ok(&["create", "-f", obj.to_str().unwrap()]).await;
        assert_eq!(
            out.trim(),
            "widget.probes.example.test/w1 created",
            "{version}"
        );
        let wf = dir.path().join("wf.yaml");
        std::fs::write(&wf, "apiVersion: probes.example.test/v1alpha1\nkind: Widget\nmetadata: {name: wf, namespace: api-probe, finalizers: [probes.example.test/cleanup]}\nspec: {name: wf}\n").unwrap();
        k.ok(&["apply", "-f", wf.to_str().unwrap()]).await;

        let out = k.ok(&["get", "widgets", "-n", "api-probe"]).await;
        let lines: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[0],
            vec!["NAME", "TARGET", "PHASE", "AGE"],
            "{version}: {out}"
        );
        assert_eq!(lines[1][..2], ["w1", "alpha"], "{version}: {out}");
        let out = k.ok(&["get", "wdg", "-n", "api-probe", "-o", "wide"]).await;
        assert!(
            out.lines().next().unwrap().contains("TIMEOUT"),
            "{version}: {out}"
        );
        let out = k
            .ok(&["get", "probes", "-n", "api-probe", "-o", "name"])
            .await;
        assert_eq!(
            out.trim(),
            "widget.probes.example.test/w1\nwidget.probes.example.test/wf",
            "{version}"
        );
        let out = k
            .ok(&["get", "widget", "w1", "-n", "api-probe", "-o", "yaml"])
            .await;
        assert!(
            out.contains("timeoutSeconds: 30") && out.contains("kind: Widget"),
            "{version}: {out}"
        );
        let (ok, _, err) = k.run(&["get", "widget", "nope", "-n", "api-probe"]).await;
        assert!(!ok);
        assert_eq!(
            err.trim(),
            "Error from server (NotFound): widgets.probes.example.test \"nope\" not found",
            "{version}"
        );
        let out = k
            .ok(&["get", "--raw", "/apis/probes.example.test/v1alpha1"])
            .await;
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap()["resources"][0]["name"],
            "widgets"
        );

        // wait: Ready set a moment later by another client through /status.
        let mut waiting = k.command(&[
            "wait",
            "--for=condition=Ready",
            "widget/w1",
            "-n",
            "api-probe",
            "--timeout=30s",
        ]);
        let child = tokio::task::spawn_blocking(move || waiting.output().unwrap());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let r = f.http.merge(&format!("{W}/w1/status"), &json!({"status": {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True", "reason": "AllGood", "message": "widget is ready", "lastTransitionTime": "2026-11-30T05:45:00Z"}]}})).await;
        assert_eq!(r.code, 200);
        let out = child.await.unwrap();
        assert!(
            out.status.success(),
            "{version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "widget.probes.example.test/w1 condition met"
        );

        // describe, with an event about it.
        let uid = f.http.get(&format!("{W}/w1")).await.json()["metadata"]["uid"].clone();
        f.http.post("/api/v1/namespaces/api-probe/events", &json!({"metadata": {"name": "w1.core1"}, "involvedObject": {"apiVersion": "probes.example.test/v1alpha1", "kind": "Widget", "name": "w1", "namespace": "api-probe", "uid": uid},
            "reason": "Probed", "message": "core/v1 event for w1", "type": "Normal", "source": {"component": "probe-client"}, "firstTimestamp": "2026-11-30T05:46:00Z", "lastTimestamp": "2026-11-30T05:46:00Z", "count": 1})).await;
        let out = k.ok(&["describe", "widget", "w1", "-n", "api-probe"]).await;
        for want in [
            "Name:         w1",
            "Kind:         Widget",
            "Timeout Seconds:  30",
            "Type:                  Ready",
            "Probed",
            "core/v1 event for w1",
        ] {
            assert!(out.contains(want), "{version}: {want:?} not in\n{out}");
        }

        // delete waits until the finalizer is gone.
        let mut deleting =
            k.command(&["delete", "widget", "wf", "-n", "api-probe", "--timeout=30s"]);
        let started = Instant::now();
        let child = tokio::task::spawn_blocking(move || deleting.output().unwrap());
        // kubectl's DELETE marks it; kubectl then waits for it to go.
        let marked = Instant::now();
        while !f.http.get(&format!("{W}/wf")).await.json()["metadata"]["deletionTimestamp"]
            .is_string()
        {
            assert!(
                marked.elapsed() < Duration::from_secs(20),
                "{version}: kubectl never sent DELETE"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let r = f
            .http
            .patch(
                &format!("{W}/wf"),
                "application/json-patch+json",
                r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
            )
            .await;
        assert_eq!(r.code, 200);
        let out = child.await.unwrap();
        assert!(
            out.status.success(),
            "{version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "widget.probes.example.test \"wf\" deleted"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(1400),
            "kubectl waited for the finalizer"
        );
        let (ok, out, _) = k
            .run(&["get", "widgets", "-n", "api-probe", "-o", "name"])
            .await;
        assert!(ok);
        assert_eq!(out.trim(), "widget.probes.example.test/w1", "{version}");
        // Built-ins keep printing sensibly.
        let out = k.ok(&["get", "namespaces"]).await;
        assert!(out.starts_with("NAME"), "{version}: {out}");
    }
}

#[tokio::test]
async fn request_controlled_memory_is_bounded() {
    let f = start_with(|c, _| {
        c.limits.history_changes = 3;
        c.limits.max_watchers = 1;
    })
    .await;
    with_crds(&f).await;
    let h = &f.http;
    let first = h
        .post(W, &widget("w1", json!({}), json!({"name": "w1"})))
        .await
        .json();
    for i in 0..5 {
        h.merge(
            &format!("{W}/w1"),
            &json!({"metadata": {"labels": {"n": i.to_string()}}}),
        )
        .await;
    }
    // The history kept 3 changes: a watch from the create is too old, a list at it too.
    let mut w = h
        .watch(
            &format!("{W}?watch=true&resourceVersion={}", rv_of(&first)),
            &[],
        )
        .await;
    let evs = w.rest(Duration::from_secs(3)).await;
    assert_eq!((evs.len(), ev_type(&evs[0])), (1, "ERROR"));
    assert_eq!(evs[0]["object"]["code"], 410);
    let r = h
        .get(&format!(
            "{W}?resourceVersion={}&resourceVersionMatch=Exact",
            rv_of(&first)
        ))
        .await;
    assert_eq!(r.code, 410);
    // One watcher at a time.
    let mut open = h
        .watch(&format!("{W}?watch=true&timeoutSeconds=3"), &[])
        .await;
    assert_eq!(open.code, 200);
    let r = h.get(&format!("{W}?watch=true&timeoutSeconds=3")).await;
    assert_eq!(
        (r.code, r.json()["reason"].as_str()),
        (429, Some("TooManyRequests"))
    );
    assert_eq!(open.next().await["type"], "ADDED");
    drop(open);
    // Bodies: kube-apiserver's 3 MiB.
    let big = vec![b' '; 3 * 1024 * 1024 + 1];
    let r = h
        .call(
            "POST",
            W,
            &[("Content-Type", "application/json")],
            Some(&big),
        )
        .await;
    assert_eq!(r.code, 413);
}

#[tokio::test]
async fn name_conflicts_versions_and_leases() {
    let f = start().await;
    with_crds(&f).await;
    let h = &f.http;
    // A second CRD claiming the plural of an established one is not accepted.
    let mut clash = widget_crd();
    clash["metadata"]["name"] = json!("gizmos.probes.example.test");
    clash["spec"]["names"]["plural"] = json!("gizmos");
    clash["spec"]["names"]["singular"] = json!("gizmo");
    clash["spec"]["names"]["kind"] = json!("Widget");
    clash["spec"]["names"]["listKind"] = json!("GizmoList");
    assert_eq!(h.post(CRDS, &clash).await.code, 201);
    let crd = h
        .get(&format!("{CRDS}/gizmos.probes.example.test"))
        .await
        .json();
    let accepted = crd["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "NamesAccepted")
        .unwrap()
        .clone();
    assert_eq!(
        (
            accepted["status"].as_str(),
            accepted["reason"].as_str(),
            accepted["message"].as_str()
        ),
        (
            Some("False"),
            Some("KindConflict"),
            Some("\"Widget\" is already in use")
        )
    );
    let r = h
        .get("/apis/probes.example.test/v1alpha1/namespaces/api-probe/gizmos")
        .await;
    assert_eq!(
        (r.code, r.body.as_str()),
        (404, "404 page not found\n"),
        "not established, not served"
    );

    // Two served versions (conversion None): one set of objects, the preferred version first.
    let mut multi = gadget_crd();
    multi["metadata"]["name"] = json!("sprockets.probes.example.test");
    multi["spec"]["names"] = json!({"plural": "sprockets", "kind": "Sprocket"});
    let v1 = multi["spec"]["versions"][0].clone();
    let mut v1beta1 = v1.clone();
    v1beta1["name"] = json!("v1beta1");
    v1beta1["storage"] = json!(false);
    let mut v1 = v1;
    v1["name"] = json!("v1");
    multi["spec"]["versions"] = json!([v1beta1, v1]);
    let r = h.post(CRDS, &multi).await;
    assert_eq!(r.code, 201, "{}", r.body);
    let created = h.post("/apis/probes.example.test/v1beta1/namespaces/api-probe/sprockets", &json!({"apiVersion": "probes.example.test/v1beta1", "kind": "Sprocket", "metadata": {"name": "s"}, "spec": {"name": "s"}})).await;
    assert_eq!(created.code, 201, "{}", created.body);
    let as_v1 = h
        .get("/apis/probes.example.test/v1/namespaces/api-probe/sprockets/s")
        .await
        .json();
    assert_eq!(as_v1["apiVersion"], "probes.example.test/v1");
    let group = h.get("/apis/probes.example.test").await.json();
    assert_eq!(group["preferredVersion"]["version"], "v1");
    let versions: Vec<&str> = group["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, vec!["v1", "v1beta1", "v1alpha1"]);

    // Leases (coordination.k8s.io/v1), as an agent's leader election uses them.
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "agent"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}});
    let r = h
        .post(
            "/apis/coordination.k8s.io/v1/namespaces/api-probe/leases",
            &lease,
        )
        .await;
    assert_eq!(r.code, 201, "{}", r.body);
    let mut l = r.json();
    l["spec"]["holderIdentity"] = json!("b");
    assert_eq!(
        h.put(
            "/apis/coordination.k8s.io/v1/namespaces/api-probe/leases/agent",
            &l
        )
        .await
        .json()["spec"]["holderIdentity"],
        "b"
    );
    assert_eq!(
        h.put(
            "/apis/coordination.k8s.io/v1/namespaces/api-probe/leases/agent",
            &l
        )
        .await
        .code,
        409,
        "stale"
    );
}
