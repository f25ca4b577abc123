//! The `podcheckpoints/archive` subresource: `GET
//! /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/NS/podcheckpoints/NAME/archive?container=C&offset=O&length=L`
//! answers a range of the archive the node agent wrote for a PodCheckpoint
//! ([`api_types::download`]), streamed from the agent with flat memory.
//!
//! 1. in front of it, the filters: audit, authentication (401);
//! 2. method (405), names and query (400);
//! 3. SubjectAccessReview of `get` on `podcheckpoints/archive` in
//!    `subresources.checkpoint.kcr.dev` NS/NAME (403), before anything is read:
//!    a right apart from creating checkpoints;
//! 4. the PodCheckpoint (`checkpoint.kcr.dev/v1alpha1`, 404), Ready (409), the
//!    container (400: not in it; the only one when not given);
//! 5. its node (404 when the node is gone, with the archive), address and port
//!    as for checkpoints;
//! 6. `GET https://NODE:PORT/podcheckpoints/NS/NAME/archive?container=C&uid=UID&offset=O&length=L`
//!    with the length capped at `--max-archive-range-bytes`; the node's answer
//!    streamed back (200 with `Content-Range`), or a Status naming the node:
//!    404 archive gone, 416 offset past the end, 503 unreachable.

use std::sync::Arc;

use api_types::download::{self, ArchiveQuery, OCTET_STREAM};
use api_types::podcheckpoint::{self, PodCheckpoint};
use api_types::{StatusReason, status, validation};
use apiserver_lib::authorization::Attributes;
use apiserver_lib::{StatusError, UserInfo};
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;

use crate::checkpoint::{CheckpointREST, decode};
use crate::kubelet_client::{self, ArchiveCall, CONNECT_TIMEOUT, NodeArchive, node_address};

/// How long the node agent may take to start answering (headers).
pub const NODE_ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl CheckpointREST {
    /// Serve one request to `.../namespaces/{ns}/podcheckpoints/{name}/archive`
    /// (raw, still percent-encoded path segments) from an authenticated user.
    pub async fn handle_archive(
        self: Arc<Self>,
        req: Request,
        namespace: &str,
        name: &str,
    ) -> Response {
        let (namespace, name) = (decode(namespace), decode(name));
        let user = req.extensions().get::<UserInfo>().cloned();
        match self.serve_archive(req, &namespace, &name).await {
            Ok((archive, call)) => {
                tracing::info!(
                    user = %user.map(|u| u.name).unwrap_or_default(),
                    podcheckpoint = %format!("{namespace}/{name}"),
                    container = %call.query.container,
                    node = %call.node,
                    range = %archive.content_range,
                    "archive range served"
                );
                let mut resp = (StatusCode::OK, archive.body).into_response();
                let h = resp.headers_mut();
                h.insert(header::CONTENT_TYPE, HeaderValue::from_static(OCTET_STREAM));
                if let Some(len) = archive.content_length {
                    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                }
                if let Ok(v) = HeaderValue::from_str(&archive.content_range) {
                    h.insert(header::CONTENT_RANGE, v);
                }
                h.insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                resp
            }
            Err(s) => {
                tracing::info!(
                    podcheckpoint = %format!("{namespace}/{name}"),
                    code = s.code.unwrap_or_default(),
                    message = s.message.as_deref().unwrap_or(""),
                    "archive read refused"
                );
                StatusError(s).into_response()
            }
        }
    }

    async fn serve_archive(
        &self,
        req: Request,
        namespace: &str,
        name: &str,
    ) -> Result<(NodeArchive, ArchiveCall), Status> {
        let (parts, _) = req.into_parts();
        let user = crate::checkpoint::request_user(&parts).map_err(|s| *s)?;
        if parts.method != Method::GET {
            return Err(status::failure(
                StatusReason::MethodNotAllowed,
                format!(
                    "the server does not allow this method on the requested resource (method {}; only GET reads an archive)",
                    parts.method
                ),
                None,
            ));
        }
        validation::validate_namespace(namespace)
            .map_err(|e| status::bad_request(e.to_string()))?;
        let errs = validation::is_dns1123_subdomain(name);
        if !errs.is_empty() {
            return Err(status::bad_request(format!(
                "invalid podcheckpoint name {}: {}",
                validation::quote_for_message(name),
                errs.join("; ")
            )));
        }

        self.authorize_archive(user, namespace, name).await?;

        let mut query = ArchiveQuery::parse(parts.uri.query().unwrap_or_default())
            .map_err(|e| status::bad_request(e.to_string()))?;
        // Only the node agent's query carries a UID: the one the object has now.
        query.uid.clear();

        let pc = self
            .pod_checkpoints
            .get_pod_checkpoint(namespace, name)
            .await
            .map_err(|e| e.status())?
            .ok_or_else(|| {
                status::failure(
                    StatusReason::NotFound,
                    format!(
                        "{}.{} \"{name}\" not found",
                        podcheckpoint::PLURAL,
                        podcheckpoint::GROUP
                    ),
                    Some(status::details(
                        podcheckpoint::GROUP,
                        podcheckpoint::PLURAL,
                        name,
                    )),
                )
            })?;
        let container = archive_container(&pc, name, &query.container).map_err(|e| e.status())?;
        let node_name = pc
            .status
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let node = self
            .nodes
            .get_node(&node_name)
            .await
            .map_err(|e| e.status())?
            .ok_or_else(|| {
                status::not_found(format!(
                    "the archives of podcheckpoint {name} are gone: node {node_name} does not exist"
                ))
            })?;
        query.container = container;
        query.uid = pc.metadata.uid.clone().unwrap_or_default();
        let cap = self.max_archive_range_bytes;
        query.length = Some(query.length.unwrap_or(cap).min(cap));
        let call = ArchiveCall {
            node: node_name.clone(),
            address: node_address(&node, &self.kubelet.address_types).map_err(|e| e.status())?,
            port: self.kubelet.agent_port(&node),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            query,
        };
        let wait = CONNECT_TIMEOUT + NODE_ANSWER_TIMEOUT;
        match tokio::time::timeout(wait, self.kubelet_client.archive(&call)).await {
            Ok(Ok(archive)) => Ok((archive, call)),
            Ok(Err(e)) => Err(e.status()),
            Err(_) => Err(kubelet_client::Error::Unreachable {
                node: node_name,
                endpoint: call.endpoint(),
                reason: format!("no answer within {}s", wait.as_secs()),
            }
            .status()),
        }
    }

    async fn authorize_archive(
        &self,
        user: UserInfo,
        namespace: &str,
        name: &str,
    ) -> Result<(), Status> {
        let attrs = Attributes {
            user,
            verb: "get".to_owned(),
            group: api_types::SUBRESOURCES_GROUP.to_owned(),
            resource: podcheckpoint::PLURAL.to_owned(),
            subresource: download::ARCHIVE_SUBRESOURCE.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            path: String::new(),
        };
        self.decide(&attrs, "archive read").await
    }
}

/// Why a PodCheckpoint has no archive to read for a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerError {
    #[error("podcheckpoint {name} is not Ready ({why}): it has no archive to read")]
    NotReady { name: String, why: String },
    #[error(
        "a container name must be specified for podcheckpoint {name}, choose one of: [{choices}]"
    )]
    Unspecified { name: String, choices: String },
    #[error(
        "container {container} is not valid for podcheckpoint {name}: it has archives of [{choices}]"
    )]
    NotInIt {
        name: String,
        container: String,
        choices: String,
    },
}

impl ContainerError {
    /// 409 for an object not Ready, 400 for the container.
    pub fn status(&self) -> Status {
        match self {
            ContainerError::NotReady { name, .. } => status::failure(
                StatusReason::Conflict,
                self.to_string(),
                Some(status::details(
                    podcheckpoint::GROUP,
                    podcheckpoint::PLURAL,
                    name,
                )),
            ),
            _ => status::bad_request(self.to_string()),
        }
    }
}

/// The container whose archive is asked for: `container` when the object has
/// an archive of it, the only one when not given; Ready first.
pub fn archive_container(
    pc: &PodCheckpoint,
    name: &str,
    container: &str,
) -> Result<String, ContainerError> {
    if !pc.is_ready() {
        let (reason, message) = pc
            .ready_condition()
            .map(|c| (c.reason.clone(), c.message.clone()))
            .unwrap_or_default();
        let why = if reason.is_empty() {
            "not claimed by a node agent yet".to_owned()
        } else if message.is_empty() {
            reason
        } else {
            format!("{reason}: {message}")
        };
        return Err(ContainerError::NotReady {
            name: name.to_owned(),
            why,
        });
    }
    let names: Vec<&str> = pc
        .status
        .as_ref()
        .map(|s| {
            s.checkpointed_containers
                .iter()
                .filter(|c| c.archive.is_some())
                .map(|c| c.name.as_str())
                .collect()
        })
        .unwrap_or_default();
    let choices = names.join(" ");
    if container.is_empty() {
        return match names.as_slice() {
            [one] => Ok((*one).to_owned()),
            _ => Err(ContainerError::Unspecified {
                name: name.to_owned(),
                choices,
            }),
        };
    }
    if names.contains(&container) {
        Ok(container.to_owned())
    } else {
        Err(ContainerError::NotInIt {
            name: name.to_owned(),
            container: container.to_owned(),
            choices,
        })
    }
}
