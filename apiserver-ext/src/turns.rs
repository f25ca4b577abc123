//! Checkpoints of one container take turns: they go to the node one at a
//! time, and the next one leaves no earlier than [`SPACING`] after the node
//! answered the previous one. The kubelet names archives
//! `checkpoint-<pod>_<ns>-<container>-<RFC3339>.tar` to the second, from its
//! clock when the request arrives, and overwrites; two concurrent CRI
//! checkpoints of one container also break inside containerd. Taking turns
//! at least a second apart gives every archive its own name on any node
//! endpoint.
//!
//! * **In this replica**: a FIFO queue per container (a tokio semaphore of
//!   one permit is fair), bounded: at most `max_waiting` requests wait
//!   behind the one in progress; further ones, and those whose wait would
//!   outlast their own bound, get a 409 that says what is in progress.
//! * **Across replicas**: the turn also holds the container's Lease
//!   ([`crate::leases`]), taken after the local turn (so one request per
//!   replica and container asks the API server) and released with it.
//!
//! A turn ends with [`Turn::end_after`]: in the background, so the answer to
//! the client is not delayed by the spacing. The background endings are
//! tracked: a server that stops waits for them ([`ContainerTurns::finish`]),
//! so a replaced replica leaves no Lease behind that its successor (another
//! holder identity) would have to wait out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_types::{ContainerRef, status};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::leases::{self, ContainerLeases, HeldLease};

/// The least time between the node's answer to one checkpoint of a
/// container and the next request for it: the kubelet's names are to the second.
pub const SPACING: Duration = Duration::from_secs(1);
/// Requests of one container that may wait behind the one in progress, per replica.
pub const DEFAULT_MAX_WAITING: usize = 4;
/// Added to how long a Lease is held: the replicas' clocks may disagree
/// about when it expires by this much.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(5);
/// Containers remembered before idle ones are dropped.
const PRUNE_ABOVE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "a checkpoint of container {} of pod {}/{} is in progress and {waiting} more requests are waiting for it (at most {max} may wait); checkpoints of one container go to its node one at a time, at least 1s apart; try again later",
        .target.container, .target.namespace, .target.pod
    )]
    QueueFull {
        target: ContainerRef,
        waiting: usize,
        max: usize,
    },
    #[error(
        "a checkpoint of container {} of pod {}/{} is in progress; checkpoints of one container go to its node one at a time, at least 1s apart; waited {} for its turn (the request's timeout, at most --node-queue-timeout); try again later",
        .target.container, .target.namespace, .target.pod, api_types::duration::format_go_duration(*.waited)
    )]
    Waited {
        target: ContainerRef,
        waited: Duration,
    },
    #[error(transparent)]
    Lease(#[from] leases::Error),
}

impl Error {
    /// 409 Conflict while the container is being checkpointed (the Lease's
    /// own codes when the API server fails us).
    pub fn status(&self) -> Status {
        match self {
            Error::QueueFull { target, .. } | Error::Waited { target, .. } => {
                status::conflict(&target.pod, self.to_string())
            }
            Error::Lease(e) => e.status(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug)]
struct Slot {
    turn: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// Counts a waiting request while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The turns of every container, in this replica and (through Leases) across replicas.
#[derive(Debug)]
pub struct ContainerTurns {
    max_waiting: usize,
    spacing: Duration,
    leases: Arc<dyn ContainerLeases>,
    slots: Mutex<HashMap<ContainerRef, Arc<Slot>>>,
    endings: TaskTracker,
}

/// One container's turn: the local permit and the Lease.
#[derive(Debug)]
pub struct Turn {
    permit: Option<OwnedSemaphorePermit>,
    lease: Option<HeldLease>,
    leases: Arc<dyn ContainerLeases>,
    endings: TaskTracker,
}

impl ContainerTurns {
    pub fn new(leases: Arc<dyn ContainerLeases>) -> Self {
        Self {
            max_waiting: DEFAULT_MAX_WAITING,
            spacing: SPACING,
            leases,
            slots: Mutex::default(),
            endings: TaskTracker::new(),
        }
    }

    /// Waits, at most `within`, for the turns that are ending in the
    /// background to release their Leases (a server calls this once it has
    /// drained its requests). Returns how many had not ended by then; their
    /// Leases expire on their own.
    pub async fn finish(&self, within: Duration) -> usize {
        self.endings.close();
        if tokio::time::timeout(within, self.endings.wait())
            .await
            .is_err()
        {
            return self.endings.len();
        }
        0
    }

    /// At most `max` requests wait behind the one in progress.
    pub fn with_max_waiting(mut self, max: usize) -> Self {
        self.max_waiting = max;
        self
    }

    /// Another spacing than [`SPACING`]: for the fuzz targets, whose node
    /// is no kubelet and which must not wait a second per input.
    pub fn with_spacing(mut self, spacing: Duration) -> Self {
        self.spacing = spacing;
        self
    }

    /// The time between a node's answer and the next request for the container.
    pub fn spacing(&self) -> Duration {
        self.spacing
    }

    fn slot(&self, target: &ContainerRef) -> Arc<Slot> {
        let new = || {
            Arc::new(Slot {
                turn: Arc::new(Semaphore::new(1)),
                waiting: AtomicUsize::new(0),
            })
        };
        let Ok(mut slots) = self.slots.lock() else {
            // A poisoned map: this request alone, never unbounded.
            return new();
        };
        if slots.len() > PRUNE_ABOVE {
            slots.retain(|_, s| Arc::strong_count(s) > 1 || s.turn.available_permits() == 0);
        }
        slots.entry(target.clone()).or_insert_with(new).clone()
    }

    /// Waits (until `until` at the latest) for `target`'s turn in this
    /// replica, then for its Lease, held for at most `hold`.
    pub async fn acquire(
        &self,
        target: &ContainerRef,
        until: Instant,
        hold: Duration,
    ) -> Result<Turn> {
        let slot = self.slot(target);
        let started = Instant::now();
        let permit = match slot.turn.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let waiting = slot.waiting.fetch_add(1, Ordering::SeqCst);
                let _counted = Waiting(&slot.waiting);
                if waiting >= self.max_waiting {
                    return Err(Error::QueueFull {
                        target: target.clone(),
                        waiting,
                        max: self.max_waiting,
                    });
                }
                match tokio::time::timeout_at(until, slot.turn.clone().acquire_owned()).await {
                    Ok(Ok(p)) => p,
                    // Never closed; a closed one refuses all the same.
                    Ok(Err(_)) | Err(_) => {
                        return Err(Error::Waited {
                            target: target.clone(),
                            waited: started.elapsed(),
                        });
                    }
                }
            }
        };
        let lease = self.leases.acquire(target, hold, until).await?;
        Ok(Turn {
            permit: Some(permit),
            lease: Some(lease),
            leases: self.leases.clone(),
            endings: self.endings.clone(),
        })
    }
}

impl Turn {
    /// Ends the turn `after` from now, in the background: the Lease is
    /// released, then the next request of this replica goes.
    pub fn end_after(mut self, after: Duration) {
        let permit = self.permit.take();
        let lease = self.lease.take();
        let leases = self.leases.clone();
        self.endings.spawn(async move {
            tokio::time::sleep(after).await;
            if let Some(lease) = lease {
                leases.release(lease).await;
            }
            drop(permit);
        });
    }
}

impl Drop for Turn {
    /// A turn dropped without [`Turn::end_after`] never reached the node:
    /// it ends at once.
    fn drop(&mut self) {
        if self.permit.is_none() && self.lease.is_none() {
            return;
        }
        let permit = self.permit.take();
        let lease = self.lease.take();
        let leases = self.leases.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                self.endings.spawn_on(
                    async move {
                        if let Some(lease) = lease {
                            leases.release(lease).await;
                        }
                        drop(permit);
                    },
                    &handle,
                );
            }
            // No runtime: the Lease expires on its own.
            Err(_) => drop(permit),
        }
    }
}
