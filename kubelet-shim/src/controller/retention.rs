//! Retention: which PodCheckpoints the node agent deletes, and when, to
//! keep its node's disk. Pure (no I/O): the controller feeds it the objects
//! of its watch cache and the time, and carries out what it decides.
//!
//! * `spec.ttlSecondsAfterFinished`: the object is deleted that long after
//!   its `status.completionTime`, as the Job TTL controller does
//!   (`pkg/controller/ttlafterfinished`: requeue at the expiry, no polling).
//! * `--max-archives-per-container=N`: of one container's archives
//!   (namespace, pod name, container name) at most N stay on the node,
//!   the newest by completion; the objects holding older ones are deleted.
//! * `--max-archive-bytes=B`: the archives of this node's PodCheckpoints
//!   stay under B bytes; the oldest (by completion) go first.
//! * The annotation `checkpoint.kcr.dev/pin: "true"` exempts an object from
//!   both limits (its archives still count in the node's bytes) but not
//!   from its own TTL.
//! * Before writing, a checkpoint is refused ([`admit`]) when the node's
//!   pinned archives plus the checkpoint's estimated size (the memory the
//!   runtime reports for its containers, CRI `ContainerStats`) exceed B;
//!   without an estimate only when the pinned archives alone reach B.
//!
//! A policy never removes files: it deletes the object (with a
//! precondition on its UID and resourceVersion), and the object's finalizer
//! removes its archives, so an archive and its status go together.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use api_types::PodCheckpoint;
use api_types::k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

/// The annotation that exempts a PodCheckpoint from the node's limits.
pub const PIN_ANNOTATION: &str = "checkpoint.kcr.dev/pin";

/// The node's limits (`--max-archives-per-container`, `--max-archive-bytes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// At most this many archives per container; `None`: no limit.
    pub max_archives_per_container: Option<usize>,
    /// At most this many bytes of archives on the node; `None`: no limit.
    pub max_archive_bytes: Option<u64>,
}

/// Why the agent deleted something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// `spec.ttlSecondsAfterFinished`.
    Ttl,
    /// `--max-archives-per-container`.
    MaxArchivesPerContainer,
    /// `--max-archive-bytes`.
    MaxArchiveBytes,
    /// An archive directory without an object (`--orphan-archive-grace`).
    Orphan,
}

impl Rule {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Rule::Ttl => "ttl",
            Rule::MaxArchivesPerContainer => "max_archives_per_container",
            Rule::MaxArchiveBytes => "max_archive_bytes",
            Rule::Orphan => "orphan",
        }
    }

    /// The event's reason.
    pub fn event_reason(self) -> &'static str {
        match self {
            Rule::Ttl => "TTLExpired",
            Rule::MaxArchivesPerContainer => "MaxArchivesPerContainerExceeded",
            Rule::MaxArchiveBytes => "MaxArchiveBytesExceeded",
            Rule::Orphan => "OrphanArchivesDeleted",
        }
    }
}

/// Whether the object carries `checkpoint.kcr.dev/pin: "true"`.
pub fn is_pinned(pc: &PodCheckpoint) -> bool {
    pc.annotations()
        .get(PIN_ANNOTATION)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// When `spec.ttlSecondsAfterFinished` expires: `completionTime` + TTL, for
/// a finished object that has both.
pub fn ttl_expiry(pc: &PodCheckpoint) -> Option<Timestamp> {
    let ttl = pc.spec.ttl_seconds_after_finished?;
    if !pc.is_finished() {
        return None;
    }
    let done = pc.status.as_ref()?.completion_time.as_ref()?.0;
    done.checked_add(SignedDuration::from_secs(ttl.max(0))).ok()
}

/// What to do about an object's TTL at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// No TTL (or not finished).
    None,
    /// Delete it now.
    Expired,
    /// Look again after this long.
    After(Duration),
}

pub fn ttl_at(pc: &PodCheckpoint, now: Timestamp) -> Ttl {
    match ttl_expiry(pc) {
        None => Ttl::None,
        Some(at) if at <= now => Ttl::Expired,
        Some(at) => Ttl::After(
            Duration::try_from(at.duration_since(now)).unwrap_or_default()
                + Duration::from_millis(100),
        ),
    }
}

/// A completed PodCheckpoint of this node whose archives are on its disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub pod: String,
    /// The containers it holds an archive of.
    pub containers: Vec<String>,
    pub bytes: u64,
    pub completed: Timestamp,
    pub pinned: bool,
}

impl Held {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Oldest first: completion time, then name, then UID.
    fn age_key(&self) -> (Timestamp, String, String) {
        (self.completed, self.key(), self.uid.clone())
    }
}

/// The object as [`Held`] if it is a completed PodCheckpoint of `node`, not
/// being deleted, with archives.
pub fn held(pc: &PodCheckpoint, node: &str) -> Option<Held> {
    if pc.metadata.deletion_timestamp.is_some() || !pc.is_ready() {
        return None;
    }
    let st = pc.status.as_ref()?;
    if st.node_name.as_deref() != Some(node) {
        return None;
    }
    let containers: Vec<String> = st
        .checkpointed_containers
        .iter()
        .filter(|c| c.archive.is_some())
        .map(|c| c.name.clone())
        .collect();
    if containers.is_empty() {
        return None;
    }
    let bytes = st
        .checkpointed_containers
        .iter()
        .filter_map(|c| c.archive.as_ref())
        .map(|a| a.size_bytes.max(0).unsigned_abs())
        .sum();
    Some(Held {
        uid: pc.metadata.uid.clone()?,
        namespace: pc.namespace().unwrap_or_default(),
        name: pc.name_any(),
        pod: pc.spec.source_pod_name.clone(),
        containers,
        bytes,
        completed: st.completion_time.as_ref()?.0,
        pinned: is_pinned(pc),
    })
}

/// An object a limit deletes, and the event's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eviction {
    pub uid: String,
    pub rule: Rule,
    pub message: String,
}

/// `--max-archive-bytes=<raw> (<bytes> bytes)`.
fn bytes_flag(limit: u64, raw: &str) -> String {
    if raw == limit.to_string() {
        format!("--max-archive-bytes={raw}")
    } else {
        format!("--max-archive-bytes={raw} ({limit} bytes)")
    }
}

/// The objects the node's limits delete, given what the node holds and
/// `incoming` bytes about to be written: first each container's archives
/// beyond the newest N, then, oldest first, until the bytes fit. Pinned
/// objects are never chosen; they count in the bytes, not in N.
/// `limit_raw` is `--max-archive-bytes` as given, for messages.
pub fn evictions(
    held: &[Held],
    policy: &Policy,
    incoming: u64,
    node: &str,
    limit_raw: &str,
) -> Vec<Eviction> {
    let mut out: Vec<Eviction> = Vec::new();
    let mut chosen: BTreeSet<&str> = BTreeSet::new();
    if let Some(n) = policy.max_archives_per_container {
        let mut by_container: BTreeMap<(&str, &str, &str), Vec<&Held>> = BTreeMap::new();
        for h in held.iter().filter(|h| !h.pinned) {
            for c in &h.containers {
                by_container
                    .entry((h.namespace.as_str(), h.pod.as_str(), c.as_str()))
                    .or_default()
                    .push(h);
            }
        }
        let mut victims: Vec<(&Held, String)> = Vec::new();
        for ((ns, pod, c), mut list) in by_container {
            list.sort_by_key(|h| std::cmp::Reverse(h.age_key()));
            for h in list.into_iter().skip(n) {
                if chosen.insert(h.uid.as_str()) {
                    victims.push((
                        h,
                        format!(
                            "deleted by checkpoint-shim on node {node}: container {ns}/{pod}/{c} has {n} newer archive{} on the node (--max-archives-per-container={n})",
                            if n == 1 { "" } else { "s" }
                        ),
                    ));
                }
            }
        }
        victims.sort_by_key(|(h, _)| h.age_key());
        out.extend(victims.into_iter().map(|(h, message)| Eviction {
            uid: h.uid.clone(),
            rule: Rule::MaxArchivesPerContainer,
            message,
        }));
    }
    if let Some(limit) = policy.max_archive_bytes {
        let mut used: u64 = held
            .iter()
            .filter(|h| !chosen.contains(h.uid.as_str()))
            .map(|h| h.bytes)
            .sum();
        let mut oldest: Vec<&Held> = held
            .iter()
            .filter(|h| !h.pinned && !chosen.contains(h.uid.as_str()))
            .collect();
        oldest.sort_by_key(|h| h.age_key());
        for h in oldest {
            if used.saturating_add(incoming) <= limit {
                break;
            }
            let message = format!(
                "deleted by checkpoint-shim on node {node}: its archives ({} bytes) are the oldest of {used} bytes of archives on the node{}, more than {} allows",
                h.bytes,
                if incoming > 0 {
                    format!(" plus about {incoming} bytes of a new checkpoint")
                } else {
                    String::new()
                },
                bytes_flag(limit, limit_raw)
            );
            used -= h.bytes;
            out.push(Eviction {
                uid: h.uid.clone(),
                rule: Rule::MaxArchiveBytes,
                message,
            });
        }
    }
    out
}

/// Whether a new checkpoint may be written under `--max-archive-bytes`:
/// refused when what no limit can remove (pinned archives) plus the
/// estimate exceeds the limit, or, without an estimate, when the pinned
/// archives alone reach it. The message says how much is used, by which
/// objects (largest first), and the limit.
pub fn admit(
    held: &[Held],
    policy: &Policy,
    estimate: Option<u64>,
    node: &str,
    limit_raw: &str,
) -> Result<(), String> {
    let Some(limit) = policy.max_archive_bytes else {
        return Ok(());
    };
    let used: u64 = held.iter().map(|h| h.bytes).sum();
    let pinned: u64 = held.iter().filter(|h| h.pinned).map(|h| h.bytes).sum();
    let refused = match estimate {
        Some(e) => pinned.saturating_add(e) > limit,
        None => pinned >= limit,
    };
    if !refused {
        return Ok(());
    }
    const LISTED: usize = 10;
    let mut by_size: Vec<&Held> = held.iter().collect();
    by_size.sort_by_key(|h| (std::cmp::Reverse(h.bytes), h.key()));
    let mut users: Vec<String> = by_size
        .iter()
        .take(LISTED)
        .map(|h| {
            format!(
                "{} {} bytes{}",
                h.key(),
                h.bytes,
                if h.pinned { " (pinned)" } else { "" }
            )
        })
        .collect();
    if by_size.len() > LISTED {
        users.push(format!("and {} more", by_size.len() - LISTED));
    }
    let need = match estimate {
        Some(e) => format!("this checkpoint needs about {e} bytes (the containers' memory)"),
        None => "the size of this checkpoint is unknown (the runtime reports no memory usage)"
            .to_owned(),
    };
    Err(format!(
        "not enough room under {}: archives on node {node} use {used} bytes, {pinned} of them pinned ({PIN_ANNOTATION}), which no limit removes ({}); {need}",
        bytes_flag(limit, limit_raw),
        if users.is_empty() {
            "none".to_owned()
        } else {
            users.join(", ")
        }
    ))
}

/// Archive directories without an object, and since when: a directory is
/// removed once it has had no object for the grace period, as this agent
/// saw it (a restarted agent starts counting again).
#[derive(Debug, Default)]
pub struct Orphans {
    since: HashMap<String, Timestamp>,
}

impl Orphans {
    /// Records that `orphaned` (directory names) have no object at `now`;
    /// any other directory has one (or is gone) and is forgotten. Returns
    /// those orphaned for at least `grace`, sorted.
    pub fn observe(&mut self, orphaned: &[String], now: Timestamp, grace: Duration) -> Vec<String> {
        let current: BTreeSet<&String> = orphaned.iter().collect();
        self.since.retain(|uid, _| current.contains(uid));
        let mut due = Vec::new();
        for uid in orphaned {
            let since = *self.since.entry(uid.clone()).or_insert(now);
            let age = Duration::try_from(now.duration_since(since)).unwrap_or_default();
            if age >= grace {
                due.push(uid.clone());
            }
        }
        due.sort();
        due
    }

    /// Forgets a directory (removed).
    pub fn forget(&mut self, uid: &str) {
        self.since.remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_types::PodCheckpointSpec;
    use api_types::k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use api_types::podcheckpoint::{
        CheckpointArchive, PodCheckpointContainerStatus, PodCheckpointStatus, reason,
    };

    fn at(s: &str) -> Timestamp {
        format!("2026-11-30T{s}Z").parse().unwrap()
    }

    fn finished(ready: bool, completed: &str, ttl: Option<i64>) -> PodCheckpoint {
        let mut pc = PodCheckpoint::new(
            "pc",
            PodCheckpointSpec {
                source_pod_name: "web".into(),
                ttl_seconds_after_finished: ttl,
                ..Default::default()
            },
        );
        pc.metadata.namespace = Some("apps".into());
        pc.metadata.uid = Some("u-1".into());
        pc.status = Some(PodCheckpointStatus {
            node_name: Some("node-a".into()),
            completion_time: Some(Time(at(completed))),
            checkpointed_containers: vec![PodCheckpointContainerStatus {
                name: "app".into(),
                archive: Some(CheckpointArchive {
                    path: "u-1/x.tar".into(),
                    size_bytes: 300,
                    sha256: String::new(),
                }),
                ..Default::default()
            }],
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                reason: if ready {
                    reason::COMPLETED
                } else {
                    reason::FAILED
                }
                .into(),
                message: String::new(),
                last_transition_time: Time(at(completed)),
                observed_generation: None,
            }],
            ..Default::default()
        });
        pc
    }

    #[test]
    fn ttl_requeues_at_the_expiry_then_expires() {
        let pc = finished(true, "07:00:00", Some(60));
        assert_eq!(ttl_expiry(&pc), Some(at("07:01:00")));
        assert_eq!(
            ttl_at(&pc, at("07:00:30")),
            Ttl::After(Duration::from_millis(30_100))
        );
        assert_eq!(ttl_at(&pc, at("07:01:00")), Ttl::Expired);
        assert_eq!(ttl_at(&pc, at("08:00:00")), Ttl::Expired);
        // Failed objects expire too, as failed Jobs do; 0 means at once.
        let failed = finished(false, "07:00:00", Some(0));
        assert_eq!(ttl_at(&failed, at("07:00:00")), Ttl::Expired);
        // No TTL, or not finished: nothing to do.
        assert_eq!(
            ttl_at(&finished(true, "07:00:00", None), at("09:00:00")),
            Ttl::None
        );
        let mut running = finished(true, "07:00:00", Some(1));
        running.status.as_mut().unwrap().conditions[0].status = "False".into();
        running.status.as_mut().unwrap().conditions[0].reason = reason::IN_PROGRESS.into();
        assert_eq!(ttl_at(&running, at("09:00:00")), Ttl::None);
    }

    #[test]
    fn held_is_this_nodes_completed_objects_with_archives() {
        let mut pc = finished(true, "07:00:00", None);
        let h = held(&pc, "node-a").unwrap();
        assert_eq!(
            (h.key(), h.bytes, h.containers.clone(), h.pinned),
            ("apps/pc".to_owned(), 300, vec!["app".to_owned()], false)
        );
        assert!(held(&pc, "node-b").is_none());
        pc.metadata.annotations = Some([(PIN_ANNOTATION.to_owned(), "true".to_owned())].into());
        assert!(held(&pc, "node-a").unwrap().pinned);
        pc.metadata.annotations = Some([(PIN_ANNOTATION.to_owned(), "no".to_owned())].into());
        assert!(!held(&pc, "node-a").unwrap().pinned);
        pc.metadata.deletion_timestamp = Some(Time(at("07:00:01")));
        assert!(held(&pc, "node-a").is_none(), "being deleted");
        assert!(held(&finished(false, "07:00:00", None), "node-a").is_none());
    }

    fn h(uid: &str, pod: &str, containers: &[&str], bytes: u64, done: &str) -> Held {
        Held {
            uid: uid.into(),
            namespace: "apps".into(),
            name: uid.into(),
            pod: pod.into(),
            containers: containers.iter().map(|c| (*c).to_owned()).collect(),
            bytes,
            completed: at(done),
            pinned: false,
        }
    }

    fn uids(e: &[Eviction]) -> Vec<(&str, Rule)> {
        e.iter().map(|e| (e.uid.as_str(), e.rule)).collect()
    }

    #[test]
    fn per_container_cap_keeps_the_newest_and_skips_pinned() {
        let mut pinned = h("p0", "web", &["app"], 10, "06:00:00");
        pinned.pinned = true;
        let held = vec![
            h("a3", "web", &["app"], 10, "07:03:00"),
            h("a1", "web", &["app"], 10, "07:01:00"),
            pinned,
            h("a2", "web", &["app", "side"], 10, "07:02:00"),
            h("b1", "db", &["app"], 10, "07:00:00"),
        ];
        let policy = Policy {
            max_archives_per_container: Some(2),
            max_archive_bytes: None,
        };
        let e = evictions(&held, &policy, 0, "node-a", "");
        assert_eq!(uids(&e), [("a1", Rule::MaxArchivesPerContainer)]);
        assert_eq!(
            e[0].message,
            "deleted by checkpoint-shim on node node-a: container apps/web/app has 2 newer archives on the node (--max-archives-per-container=2)"
        );
        let policy = Policy {
            max_archives_per_container: Some(1),
            max_archive_bytes: None,
        };
        // Oldest first; an object counts for each of its containers, once.
        assert_eq!(
            uids(&evictions(&held, &policy, 0, "node-a", "")),
            [
                ("a1", Rule::MaxArchivesPerContainer),
                ("a2", Rule::MaxArchivesPerContainer)
            ]
        );
        assert!(evictions(&held, &Policy::default(), 0, "node-a", "").is_empty());
    }

    #[test]
    fn byte_budget_removes_oldest_unpinned_first() {
        let mut big_pinned = h("p", "web", &["app"], 500, "06:00:00");
        big_pinned.pinned = true;
        let held = vec![
            h("new", "web", &["app"], 300, "07:02:00"),
            big_pinned,
            h("old", "web", &["app"], 300, "07:00:00"),
            h("mid", "db", &["app"], 300, "07:01:00"),
        ];
        let policy = Policy {
            max_archives_per_container: None,
            max_archive_bytes: Some(1200),
        };
        // 1400 used: the oldest unpinned one goes.
        let e = evictions(&held, &policy, 0, "node-a", "1200");
        assert_eq!(uids(&e), [("old", Rule::MaxArchiveBytes)]);
        assert_eq!(
            e[0].message,
            "deleted by checkpoint-shim on node node-a: its archives (300 bytes) are the oldest of 1400 bytes of archives on the node, more than --max-archive-bytes=1200 allows"
        );
        // Room for 400 more: two go, oldest first.
        assert_eq!(
            uids(&evictions(&held, &policy, 400, "node-a", "1200")),
            [
                ("old", Rule::MaxArchiveBytes),
                ("mid", Rule::MaxArchiveBytes)
            ]
        );
        // The pinned one never goes, even when nothing else is left.
        let e = evictions(&held, &policy, 5000, "node-a", "1200");
        assert_eq!(e.len(), 3);
        assert!(e.iter().all(|e| e.uid != "p"));
        // Both limits: what the cap removed no longer counts in the bytes.
        let both = Policy {
            max_archives_per_container: Some(1),
            max_archive_bytes: Some(1100),
        };
        assert_eq!(
            uids(&evictions(&held, &both, 0, "node-a", "1100")),
            [("old", Rule::MaxArchivesPerContainer)]
        );
    }

    #[test]
    fn admission_refuses_what_cannot_fit_and_says_why() {
        let mut pinned = h("keep", "web", &["app"], 800, "06:00:00");
        pinned.pinned = true;
        let held = vec![pinned, h("other", "web", &["app"], 300, "07:00:00")];
        let policy = Policy {
            max_archives_per_container: None,
            max_archive_bytes: Some(1024),
        };
        // Fits once the unpinned one is removed.
        assert_eq!(admit(&held, &policy, Some(200), "node-a", "1Ki"), Ok(()));
        // No estimate: refused only when the pinned ones reach the limit.
        assert_eq!(admit(&held, &policy, None, "node-a", "1Ki"), Ok(()));
        assert_eq!(
            admit(&held, &policy, Some(300), "node-a", "1Ki").unwrap_err(),
            "not enough room under --max-archive-bytes=1Ki (1024 bytes): archives on node node-a use 1100 bytes, 800 of them pinned (checkpoint.kcr.dev/pin), which no limit removes (apps/keep 800 bytes (pinned), apps/other 300 bytes); this checkpoint needs about 300 bytes (the containers' memory)"
        );
        let tight = Policy {
            max_archives_per_container: None,
            max_archive_bytes: Some(800),
        };
        assert_eq!(
            admit(&held, &tight, None, "node-a", "800").unwrap_err(),
            "not enough room under --max-archive-bytes=800: archives on node node-a use 1100 bytes, 800 of them pinned (checkpoint.kcr.dev/pin), which no limit removes (apps/keep 800 bytes (pinned), apps/other 300 bytes); the size of this checkpoint is unknown (the runtime reports no memory usage)"
        );
        assert_eq!(
            admit(&held, &Policy::default(), Some(1 << 40), "n", ""),
            Ok(())
        );
        // Many objects: the ten largest, then a count.
        let many: Vec<Held> = (0..12)
            .map(|i| {
                let mut x = h(&format!("o{i:02}"), "web", &["app"], 100 + i, "07:00:00");
                x.pinned = true;
                x
            })
            .collect();
        let msg = admit(&many, &tight, None, "node-a", "800").unwrap_err();
        assert!(
            msg.contains("apps/o11 111 bytes (pinned), apps/o10 110 bytes"),
            "{msg}"
        );
        assert!(msg.contains(", and 2 more)"), "{msg}");
    }

    #[test]
    fn orphans_go_after_the_grace_as_seen_by_this_agent() {
        let grace = Duration::from_secs(600);
        let mut o = Orphans::default();
        let dirs = vec!["u-2".to_owned(), "u-1".to_owned()];
        assert!(o.observe(&dirs, at("07:00:00"), grace).is_empty());
        assert!(o.observe(&dirs, at("07:09:59"), grace).is_empty());
        // u-2 got an object back (or went): its clock restarts.
        assert_eq!(
            o.observe(&["u-1".to_owned()], at("07:10:00"), grace),
            ["u-1"]
        );
        assert!(o.observe(&dirs, at("07:15:00"), grace) == ["u-1"]);
        o.forget("u-1");
        // u-2's clock restarted at 07:15, u-1's (forgotten) now.
        assert!(o.observe(&dirs, at("07:20:00"), grace).is_empty());
        assert_eq!(o.observe(&dirs, at("07:25:00"), grace), ["u-2"]);
        assert_eq!(
            Orphans::default().observe(&dirs, at("07:00:00"), Duration::ZERO),
            ["u-1", "u-2"]
        );
    }
}
