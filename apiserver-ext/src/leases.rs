//! One checkpoint of a container at a time across the server's replicas: a
//! `coordination.k8s.io/v1` Lease per container in the server's namespace,
//! taken before the node is called and released no earlier than
//! [`crate::turns::SPACING`] after the node answered (client-go's
//! `leaderelection/resourcelock.LeaseLock`, one lock per container instead of
//! one per component).
//!
//! * **Name**: `checkpoint-` + the first 20 hex digits of the sha256 of
//!   `namespace/pod/container` ([`lease_name`]); annotations name the three
//!   (names of up to 253 characters do not fit a label).
//! * **Taken** by creating it, or by replacing a released or expired one
//!   with its `resourceVersion` (optimistic concurrency: of two replicas
//!   that saw the same expired Lease, one gets 409 and looks again).
//!   `holderIdentity` is this replica (`HOSTNAME_random`), `renewTime` now,
//!   `leaseDurationSeconds` the longest the holder can need it.
//! * **Held by another replica** and not expired: polled every
//!   [`POLL_INTERVAL`] until the request's own wait ends, then refused.
//! * **Released** by deleting it with its `resourceVersion` as precondition
//!   (nothing stays behind in the namespace); a replica that crashed leaves a
//!   Lease that others take over once `renewTime + leaseDurationSeconds` has
//!   passed (by their own clock: [`ContainerLeases::acquire`]'s `hold`
//!   includes an allowance for skew).
//!
//! The trait is narrow so the request flow is tested against a fake
//! ([`crate::testing::FakeLeases`]); [`KubeLeases`] is tested against the
//! kube-apiserver stand-in.

use std::time::Duration;

use api_types::{ContainerRef, status};
use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Status};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, PostParams, Preconditions};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// The namespace of the Leases by default: the one deploy/ installs the server in.
pub const DEFAULT_NAMESPACE: &str = "kcr-system";
/// Prefix of every Lease name.
pub const NAME_PREFIX: &str = "checkpoint-";
/// Annotations naming the container a Lease is for.
pub const ANNOTATION_NAMESPACE: &str = "checkpoint.kcr.dev/namespace";
pub const ANNOTATION_POD: &str = "checkpoint.kcr.dev/pod";
pub const ANNOTATION_CONTAINER: &str = "checkpoint.kcr.dev/container";
/// Label on every Lease of ours.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "checkpoint-apiserver");
/// How often a Lease held by another replica is looked at again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Another replica holds the Lease and it did not free up in time.
    #[error(
        "a checkpoint of container {} of pod {}/{} is in progress (checkpoint-apiserver replica {holder} holds Lease {lease}); checkpoints of one container go to its node one at a time, at least 1s apart; waited {} for its turn; try again later",
        .target.container, .target.namespace, .target.pod, api_types::duration::format_go_duration(*.waited)
    )]
    Held {
        target: ContainerRef,
        lease: String,
        holder: String,
        waited: Duration,
    },
    /// The API server refused a Lease request (our RBAC, most likely).
    #[error(
        "failed to take Lease {lease} for the checkpoint of container {} of pod {}/{}: {message}",
        .target.container, .target.namespace, .target.pod
    )]
    Api {
        target: ContainerRef,
        lease: String,
        message: String,
        code: u16,
    },
    /// The API server cannot be reached.
    #[error(
        "failed to take Lease {lease} for the checkpoint of container {} of pod {}/{}: the API server cannot be reached: {message}",
        .target.container, .target.namespace, .target.pod
    )]
    Unreachable {
        target: ContainerRef,
        lease: String,
        message: String,
    },
}

impl Error {
    /// 409 while another replica checkpoints the container; 500 when the API
    /// refused us (a deployment problem); 503 when it is unreachable. Never
    /// a checkpoint without the Lease: the guarantee would not hold.
    pub fn status(&self) -> Status {
        match self {
            Error::Held { target, .. } => status::conflict(&target.pod, self.to_string()),
            Error::Api { .. } => status::internal_error(self.to_string()),
            Error::Unreachable { .. } => status::service_unavailable(self.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Lease this replica holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLease {
    pub name: String,
    pub resource_version: String,
}

/// Per-container Leases, shared by the replicas.
pub trait ContainerLeases: Send + Sync + std::fmt::Debug {
    /// Takes the Lease of `target` for at most `hold`, waiting until `until`
    /// while another replica holds it.
    fn acquire<'a>(
        &'a self,
        target: &'a ContainerRef,
        hold: Duration,
        until: Instant,
    ) -> BoxFuture<'a, Result<HeldLease>>;

    /// Gives the Lease back (best effort: an unreleased Lease expires).
    fn release(&self, held: HeldLease) -> BoxFuture<'_, ()>;
}

/// `checkpoint-<20 hex digits of sha256("ns/pod/container")>`: a valid,
/// short object name, the same in every replica.
pub fn lease_name(target: &ContainerRef) -> String {
    let digest = Sha256::digest(target.to_string().as_bytes());
    let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    format!("{NAME_PREFIX}{hex}")
}

/// This replica's identity, as client-go's leader election makes one:
/// `HOSTNAME_<random>` (the pod name, and a part that differs after a restart).
pub fn identity(hostname: &str) -> String {
    format!("{hostname}_{:016x}", rand::random::<u64>())
}

/// Whether a Lease is free for the taking at `now`: released, or expired.
pub fn is_free(spec: Option<&LeaseSpec>, now: Timestamp) -> bool {
    let Some(spec) = spec else { return true };
    if spec.holder_identity.as_deref().unwrap_or("").is_empty() {
        return true;
    }
    let (Some(renewed), Some(secs)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return true;
    };
    renewed
        .0
        .checked_add(SignedDuration::from_secs(i64::from(secs)))
        .map_or(true, |expiry| expiry <= now)
}

/// [`ContainerLeases`] through the API server.
#[derive(Clone)]
pub struct KubeLeases {
    api: kube::Api<Lease>,
    namespace: String,
    identity: String,
}

impl std::fmt::Debug for KubeLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeLeases")
            .field("namespace", &self.namespace)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl KubeLeases {
    pub fn new(client: kube::Client, namespace: &str, identity: String) -> Self {
        Self {
            api: kube::Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            identity,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn lease(
        &self,
        target: &ContainerRef,
        name: &str,
        hold: Duration,
        base: Option<Lease>,
    ) -> Lease {
        let now = Timestamp::now();
        let transitions = base
            .as_ref()
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.lease_transitions)
            .map(|t| t.saturating_add(1));
        let mut meta = base.map(|l| l.metadata).unwrap_or_else(|| ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(self.namespace.clone()),
            ..Default::default()
        });
        meta.labels
            .get_or_insert_with(Default::default)
            .insert(MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned());
        let annotations = meta.annotations.get_or_insert_with(Default::default);
        annotations.insert(ANNOTATION_NAMESPACE.to_owned(), target.namespace.clone());
        annotations.insert(ANNOTATION_POD.to_owned(), target.pod.clone());
        annotations.insert(ANNOTATION_CONTAINER.to_owned(), target.container.clone());
        let secs = i32::try_from(
            hold.as_secs()
                .saturating_add(u64::from(hold.subsec_nanos() > 0)),
        )
        .unwrap_or(i32::MAX)
        .max(1);
        Lease {
            metadata: meta,
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(secs),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: transitions.or(Some(0)),
                ..Default::default()
            }),
        }
    }

    async fn try_acquire(
        &self,
        target: &ContainerRef,
        name: &str,
        hold: Duration,
    ) -> Result<Attempt> {
        let err = |e: kube::Error| match e {
            kube::Error::Api(s) => Error::Api {
                target: target.clone(),
                lease: format!("{}/{name}", self.namespace),
                message: s.message.clone(),
                code: s.code,
            },
            other => Error::Unreachable {
                target: target.clone(),
                lease: format!("{}/{name}", self.namespace),
                message: other.to_string(),
            },
        };
        // Another replica was faster: it created the Lease (409 on create),
        // or changed or deleted the one we read (409 / 404 on replace).
        let lost = |e: &kube::Error, codes: &[u16]| matches!(e, kube::Error::Api(s) if codes.contains(&s.code));
        match self.api.get_opt(name).await.map_err(err)? {
            None => match self
                .api
                .create(
                    &PostParams::default(),
                    &self.lease(target, name, hold, None),
                )
                .await
            {
                Ok(l) => Ok(Attempt::Held(held(name, &l))),
                Err(e) if lost(&e, &[409]) => Ok(Attempt::Again),
                Err(e) => Err(err(e)),
            },
            Some(current) => {
                if !is_free(current.spec.as_ref(), Timestamp::now()) {
                    let holder = current
                        .spec
                        .and_then(|s| s.holder_identity)
                        .unwrap_or_default();
                    return Ok(Attempt::HeldBy(holder));
                }
                // Replace it, conditional on the resourceVersion we read.
                match self
                    .api
                    .replace(
                        name,
                        &PostParams::default(),
                        &self.lease(target, name, hold, Some(current)),
                    )
                    .await
                {
                    Ok(l) => Ok(Attempt::Held(held(name, &l))),
                    Err(e) if lost(&e, &[404, 409]) => Ok(Attempt::Again),
                    Err(e) => Err(err(e)),
                }
            }
        }
    }
}

fn held(name: &str, lease: &Lease) -> HeldLease {
    HeldLease {
        name: name.to_owned(),
        resource_version: lease.metadata.resource_version.clone().unwrap_or_default(),
    }
}

enum Attempt {
    Held(HeldLease),
    HeldBy(String),
    /// Lost a race (409/404): look again at once.
    Again,
}

impl ContainerLeases for KubeLeases {
    fn acquire<'a>(
        &'a self,
        target: &'a ContainerRef,
        hold: Duration,
        until: Instant,
    ) -> BoxFuture<'a, Result<HeldLease>> {
        Box::pin(async move {
            let name = lease_name(target);
            let started = Instant::now();
            let mut races = 0u32;
            loop {
                let holder = match self.try_acquire(target, &name, hold).await? {
                    Attempt::Held(h) => {
                        tracing::debug!(lease = %name, %target, identity = %self.identity, "lease taken");
                        return Ok(h);
                    }
                    // Lost a race to another replica: look again at once, a few times.
                    Attempt::Again if races < 8 => {
                        races += 1;
                        continue;
                    }
                    Attempt::Again => "another replica".to_owned(),
                    Attempt::HeldBy(holder) => holder,
                };
                let now = Instant::now();
                if now >= until {
                    return Err(Error::Held {
                        target: target.clone(),
                        lease: format!("{}/{name}", self.namespace),
                        holder,
                        waited: started.elapsed(),
                    });
                }
                // The last look is at `until`.
                tokio::time::sleep(POLL_INTERVAL.min(until - now)).await;
            }
        })
    }

    fn release(&self, held: HeldLease) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: Some(held.resource_version.clone()),
                    uid: None,
                }),
                ..Default::default()
            };
            match self.api.delete(&held.name, &params).await {
                Ok(_) => tracing::debug!(lease = %held.name, "lease released"),
                // Taken over after it expired, or gone: not ours any more.
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
                    tracing::warn!(lease = %held.name, message = %s.message, "lease was no longer ours at release");
                }
                Err(e) => {
                    tracing::warn!(lease = %held.name, error = %e, "failed to release a lease; it expires on its own");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_stable_and_distinct() {
        let a = lease_name(&ContainerRef::new("ns", "p", "app"));
        assert_eq!(a, lease_name(&ContainerRef::new("ns", "p", "app")));
        assert_ne!(a, lease_name(&ContainerRef::new("ns", "p", "sidecar")));
        assert_ne!(a, lease_name(&ContainerRef::new("ns", "p/app", "")));
        assert!(a.starts_with(NAME_PREFIX));
        assert_eq!(a.len(), NAME_PREFIX.len() + 20);
        assert!(api_types::validation::is_dns1123_subdomain(&a).is_empty());
        let long = lease_name(&ContainerRef::new(
            "n".repeat(63),
            "p".repeat(253),
            "c".repeat(63),
        ));
        assert_eq!(long.len(), a.len());
    }

    #[test]
    fn free_when_released_or_expired() {
        let now: Timestamp = "2026-11-30T10:00:00Z".parse().unwrap();
        let spec = |holder: &str, renewed: &str, secs: i32| LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(renewed.parse().unwrap())),
            lease_duration_seconds: Some(secs),
            ..Default::default()
        };
        assert!(is_free(None, now));
        assert!(is_free(Some(&spec("", "2026-11-30T10:00:00Z", 60)), now));
        assert!(!is_free(Some(&spec("r1", "2026-11-30T09:59:30Z", 60)), now));
        assert!(is_free(Some(&spec("r1", "2026-11-30T09:58:00Z", 60)), now));
        assert!(is_free(
            Some(&LeaseSpec {
                holder_identity: Some("r1".into()),
                ..Default::default()
            }),
            now
        ));
    }

    #[test]
    fn identities_differ_per_process_start() {
        let a = identity("checkpoint-apiserver-7d9-abc");
        assert!(a.starts_with("checkpoint-apiserver-7d9-abc_"));
        assert_ne!(a, identity("checkpoint-apiserver-7d9-abc"));
    }
}
