//! Bounded checkpoints per node: at most `max` run at once on one node;
//! further requests wait in a FIFO queue (a tokio semaphore is fair) for at
//! most a deadline, then are refused rather than piling up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_types::status;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "too many checkpoints in progress on node {node}: waited {waited:?} for one of {max} slots; try again later"
    )]
    Busy {
        node: String,
        waited: Duration,
        max: usize,
    },
}

impl Error {
    /// 503: the node is busy.
    pub fn status(&self) -> Status {
        status::service_unavailable(self.to_string())
    }
}

/// Nodes kept in the map before idle ones are dropped.
const PRUNE_ABOVE: usize = 256;

/// Per-node semaphores.
#[derive(Debug)]
pub struct NodeLimiter {
    max: usize,
    nodes: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl NodeLimiter {
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            nodes: Mutex::default(),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    fn semaphore(&self, node: &str) -> Arc<Semaphore> {
        let Ok(mut nodes) = self.nodes.lock() else {
            // A poisoned map still must not unbound the node.
            return Arc::new(Semaphore::new(self.max));
        };
        if nodes.len() > PRUNE_ABOVE {
            let max = self.max;
            nodes.retain(|_, s| Arc::strong_count(s) > 1 || s.available_permits() < max);
        }
        nodes
            .entry(node.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.max)))
            .clone()
    }

    /// A slot on `node`, waiting at most `wait`.
    pub async fn acquire(&self, node: &str, wait: Duration) -> Result<OwnedSemaphorePermit, Error> {
        let sem = self.semaphore(node);
        let busy = || Error::Busy {
            node: node.to_owned(),
            waited: wait,
            max: self.max,
        };
        match tokio::time::timeout(wait, sem.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; treat it as busy all the same.
            Ok(Err(_)) | Err(_) => Err(busy()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_per_node_with_a_deadline() {
        let l = NodeLimiter::new(2);
        let a = l.acquire("n1", Duration::from_millis(10)).await.unwrap();
        let _b = l.acquire("n1", Duration::from_millis(10)).await.unwrap();
        let err = l
            .acquire("n1", Duration::from_millis(20))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "too many checkpoints in progress on node n1: waited 20ms for one of 2 slots; try again later"
        );
        assert_eq!(err.status().code, Some(503));
        // Other nodes are independent.
        let _c = l.acquire("n2", Duration::from_millis(10)).await.unwrap();
        // A waiter gets the slot when one is released.
        let waiter = l.acquire("n1", Duration::from_secs(5));
        drop(a);
        let _permit = waiter.await.unwrap();
    }

    #[tokio::test]
    async fn idle_nodes_are_pruned() {
        let l = NodeLimiter::new(1);
        for i in 0..(PRUNE_ABOVE + 10) {
            drop(
                l.acquire(&format!("n{i}"), Duration::from_millis(10))
                    .await
                    .unwrap(),
            );
        }
        assert!(l.nodes.lock().unwrap().len() <= PRUNE_ABOVE + 1);
    }
}
