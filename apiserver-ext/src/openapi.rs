//! OpenAPI v2 (`/openapi/v2`) and v3 (`/openapi/v3`,
//! `/openapi/v3/apis/subresources.checkpoint.kcr.dev/v1alpha1`) documents, so
//! kube-apiserver's OpenAPI aggregation finds a valid spec. The documents
//! are self-contained: our types only, no apimachinery definitions that
//! would clash with kube-apiserver's when merged.

use api_types::{SUBRESOURCES_API_VERSION, SUBRESOURCES_GROUP, VERSION};
use serde_json::{Value, json};

/// Definition names, reverse-domain like Kubernetes names its definitions.
pub const CONTAINER_CHECKPOINT_DEF: &str = "dev.kcr.checkpoint.v1alpha1.ContainerCheckpoint";
pub const OPTIONS_DEF: &str = "dev.kcr.checkpoint.v1alpha1.PodCheckpointOptions";
const SPEC_DEF: &str = "dev.kcr.checkpoint.v1alpha1.ContainerCheckpointSpec";
const STATUS_DEF: &str = "dev.kcr.checkpoint.v1alpha1.ContainerCheckpointStatus";

/// The subresource's path template.
pub fn checkpoint_path_template() -> String {
    format!(
        "/apis/{SUBRESOURCES_GROUP}/{VERSION}/namespaces/{{namespace}}/pods/{{name}}/checkpoint"
    )
}

/// The v3 index's key for our group/version (no leading slash).
pub fn v3_group_key() -> String {
    format!("apis/{SUBRESOURCES_GROUP}/{VERSION}")
}

fn gvk() -> Value {
    json!({"group": SUBRESOURCES_GROUP, "version": VERSION, "kind": "PodCheckpointOptions"})
}

/// Schemas of our types; `r` is the `$ref` prefix (`#/definitions/` or `#/components/schemas/`).
fn schemas(r: &str) -> Value {
    let time = json!({"type": "string", "format": "date-time"});
    json!({
        OPTIONS_DEF: {
            "description": "PodCheckpointOptions is the query options to checkpoint a container.",
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
                "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
                "container": {"type": "string", "description": "Container which to checkpoint; empty selects the pod's default container."},
                "timeoutSeconds": {"type": "integer", "format": "int64", "description": "Timeout in seconds as specified in the kubelet API endpoint; 0 means the runtime's default."}
            },
            "x-kubernetes-group-version-kind": [gvk()]
        },
        CONTAINER_CHECKPOINT_DEF: {
            "description": "ContainerCheckpoint is the result of checkpointing one container of one pod.",
            "type": "object",
            "required": ["apiVersion", "kind", "metadata", "spec", "status"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object", "description": "Standard object metadata: name POD-CONTAINER-TIMESTAMP, namespace, creationTimestamp.", "x-kubernetes-preserve-unknown-fields": true},
                "spec": {"$ref": format!("{r}{SPEC_DEF}")},
                "status": {"$ref": format!("{r}{STATUS_DEF}")}
            },
            "x-kubernetes-group-version-kind": [{"group": SUBRESOURCES_GROUP, "version": VERSION, "kind": "ContainerCheckpoint"}]
        },
        SPEC_DEF: {
            "description": "What was asked for.",
            "type": "object",
            "required": ["podName", "container"],
            "properties": {
                "podName": {"type": "string"},
                "podUID": {"type": "string"},
                "container": {"type": "string"},
                "timeoutSeconds": {"type": "integer", "format": "int64"}
            }
        },
        STATUS_DEF: {
            "description": "What happened.",
            "type": "object",
            "required": ["nodeName", "archivePath", "startTime", "completionTime"],
            "properties": {
                "nodeName": {"type": "string"},
                "nodeAddress": {"type": "string", "description": "The address the node was reached at."},
                "archivePath": {"type": "string", "description": "Path of the archive on the node (root-only, mode 0600)."},
                "startTime": time.clone(),
                "completionTime": time
            }
        }
    })
}

fn path_parameters() -> Value {
    json!([
        {"name": "name", "in": "path", "required": true, "type": "string", "uniqueItems": true, "description": "name of the Pod"},
        {"name": "namespace", "in": "path", "required": true, "type": "string", "uniqueItems": true, "description": "object name and auth scope, such as for teams and projects"},
        {"name": "container", "in": "query", "type": "string", "uniqueItems": true, "description": "Container which to checkpoint; defaults to the pod's default container."},
        {"name": "timeoutSeconds", "in": "query", "type": "integer", "uniqueItems": true, "description": "Timeout in seconds passed to the runtime; 0 means the runtime's default. (`timeout` is kube-apiserver's own request deadline.)"}
    ])
}

const DESCRIPTION: &str = "checkpoint a container of a Pod";
const OPERATION_ID: &str = "createCheckpointKcrDevV1alpha1NamespacedPodCheckpoint";
const TAG: &str = "checkpointKcrDev_v1alpha1";

/// The Swagger 2.0 document; without the path while the gate is off.
pub fn v2(gate_on: bool) -> Value {
    let mut paths = serde_json::Map::new();
    if gate_on {
        paths.insert(
            checkpoint_path_template(),
            json!({
                "parameters": path_parameters(),
                "post": {
                    "description": DESCRIPTION,
                    "operationId": OPERATION_ID,
                    "tags": [TAG],
                    "consumes": ["*/*"],
                    "produces": ["application/json"],
                    "schemes": ["https"],
                    "parameters": [
                        {"name": "body", "in": "body", "required": false, "schema": {"$ref": format!("#/definitions/{OPTIONS_DEF}")}}
                    ],
                    "responses": {
                        "200": {"description": "OK", "schema": {"$ref": format!("#/definitions/{CONTAINER_CHECKPOINT_DEF}")}},
                        "401": {"description": "Unauthorized"},
                        "default": {"description": "A metav1.Status describing the failure."}
                    },
                    "x-kubernetes-action": "post",
                    "x-kubernetes-group-version-kind": gvk()
                }
            }),
        );
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "checkpoint-apiserver", "version": SUBRESOURCES_API_VERSION},
        "paths": paths,
        "definitions": schemas("#/definitions/")
    })
}

/// The OpenAPI 3.0 document of our group/version.
pub fn v3_group(gate_on: bool) -> Value {
    let mut paths = serde_json::Map::new();
    if gate_on {
        let params: Vec<Value> = path_parameters()
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|mut p| {
                let ty = p.get("type").cloned().unwrap_or(Value::Null);
                if let Some(obj) = p.as_object_mut() {
                    obj.remove("type");
                    obj.insert("schema".into(), json!({"type": ty, "uniqueItems": true}));
                    obj.remove("uniqueItems");
                }
                p
            })
            .collect();
        paths.insert(
            checkpoint_path_template(),
            json!({
                "parameters": params,
                "post": {
                    "description": DESCRIPTION,
                    "operationId": OPERATION_ID,
                    "tags": [TAG],
                    "requestBody": {
                        "required": false,
                        "content": {"*/*": {"schema": {"$ref": format!("#/components/schemas/{OPTIONS_DEF}")}}}
                    },
                    "responses": {
                        "200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{CONTAINER_CHECKPOINT_DEF}")}}}},
                        "401": {"description": "Unauthorized"},
                        "default": {"description": "A metav1.Status describing the failure."}
                    },
                    "x-kubernetes-action": "post",
                    "x-kubernetes-group-version-kind": gvk()
                }
            }),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "checkpoint-apiserver", "version": SUBRESOURCES_API_VERSION},
        "paths": paths,
        "components": {"schemas": schemas("#/components/schemas/")}
    })
}

/// A stable content hash (FNV-1a 64, upper-case hex) for ETags and the v3 index.
pub fn hash(doc: &Value) -> String {
    let bytes = serde_json::to_vec(doc).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// `/openapi/v3`: the index pointing at our group/version document.
pub fn v3_index(gate_on: bool) -> Value {
    let key = v3_group_key();
    json!({
        "paths": {
            key.clone(): {"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", hash(&v3_group(gate_on)))}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents() {
        let on = v2(true);
        assert_eq!(on["swagger"], "2.0");
        assert!(on["paths"][checkpoint_path_template()]["post"].is_object());
        assert_eq!(v2(false)["paths"], json!({}));
        // Every $ref resolves inside the document.
        for (doc, prefix, section) in [
            (v2(true), "#/definitions/", "/definitions/"),
            (
                v3_group(true),
                "#/components/schemas/",
                "/components/schemas/",
            ),
        ] {
            let text = doc.to_string();
            for r in text.split("\"$ref\":\"").skip(1) {
                let target = r.split('"').next().unwrap();
                let name = target.strip_prefix(prefix).unwrap();
                let pointer = format!("{section}{}", name.replace('/', "~1"));
                assert!(doc.pointer(&pointer).is_some(), "dangling {target}");
            }
        }
        assert_ne!(hash(&v3_group(true)), hash(&v3_group(false)));
        assert_eq!(hash(&v3_group(true)).len(), 16);
    }
}
