//! Minimal OpenAPI v3 documents: enough for kubectl's field-validation probe
//! (`k8s.io/cli-runtime/pkg/resource/query_param_verifier_v3.go`), which looks
//! for a PATCH operation tagged with the object's group/version/kind and a
//! `fieldValidation` query parameter, so `kubectl create -f` / `apply -f`
//! work without `--validate=false`. No schemas: `kubectl explain` is not served.
//! `/openapi/v2` is a document without definitions, as JSON or as the
//! protobuf (`gnostic` `openapi_v2.Document`) kubectl asks for: kubectl 1.27's
//! `apply` needs it to exist; with no definitions it patches with JSON merge
//! patches.

use serde_json::{Map, Value, json};

use super::resources::{BUILTIN, ResourceType, Rt};

/// The discovery path of a group version: `api/v1` or `apis/G/V`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn all(custom: &[Rt]) -> impl Iterator<Item = &ResourceType> {
    BUILTIN.iter().chain(custom.iter()).map(|r| &**r)
}

/// `/openapi/v3`: one entry per group version (built-in and custom).
pub fn root(version: &str, custom: &[Rt]) -> Value {
    let mut paths = Map::new();
    for r in all(custom) {
        let p = gv_path(&r.group, &r.version);
        paths.entry(p.clone()).or_insert_with(
            || json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(version))}),
        );
    }
    json!({"paths": paths})
}

fn hash(version: &str) -> String {
    version.bytes().map(|b| format!("{b:02X}")).collect()
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/G/V`.
pub fn group_version(
    group: &str,
    version: &str,
    server_version: &str,
    custom: &[Rt],
) -> Option<Value> {
    if !all(custom).any(|r| r.group == group && r.version == version) {
        return None;
    }
    let mut paths = Map::new();
    for r in all(custom).filter(|r| r.group == group && r.version == version && r.is_stored()) {
        let prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let path = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.resource)
        } else {
            format!("{prefix}/{}/{{name}}", r.resource)
        };
        paths.insert(
            path,
            json!({"patch": {
                "operationId": format!("patch{}", r.kind),
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
                "parameters": [
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                    {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}}
                ],
                "responses": {"200": {"description": "OK"}}
            }}),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": server_version},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

/// kubectl's media type for `/openapi/v2`.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The Content-Type kube-openapi answers it with (no `@`: Go's mime parser refuses it).
pub const V2_PROTOBUF_RETURNED: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `/openapi/v2` as JSON: no paths, no definitions.
pub fn v2_json(server_version: &str) -> Value {
    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": server_version}, "paths": {}, "definitions": {}})
}

fn proto_field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
    out.push((number << 3) | 2);
    let mut len = bytes.len();
    loop {
        let b = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend_from_slice(bytes);
}

/// `/openapi/v2` as gnostic's `openapi_v2.Document` protobuf: `swagger`
/// (1), `info` (2: `title` 1, `version` 2), empty `paths` (8).
pub fn v2_protobuf(server_version: &str) -> Vec<u8> {
    let mut info = Vec::new();
    proto_field(&mut info, 1, b"Kubernetes");
    proto_field(&mut info, 2, server_version.as_bytes());
    let mut doc = Vec::new();
    proto_field(&mut doc, 1, b"2.0");
    proto_field(&mut doc, 2, &info);
    proto_field(&mut doc, 8, &[]);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_group_versions() {
        let r = root("v1.33.0", &[]);
        assert!(
            r["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/api/v1?hash=")
        );
        assert!(r["paths"]["apis/apps/v1"].is_object());
        let core = group_version("", "v1", "v1.33.0", &[]).unwrap();
        let pod = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(pod["x-kubernetes-group-version-kind"]["kind"], "Pod");
        assert!(core["paths"]["/api/v1/nodes/{name}"].is_object());
        assert!(group_version("nope", "v1", "v", &[]).is_none());
    }
}
