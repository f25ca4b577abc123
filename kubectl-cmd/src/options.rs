//! `CheckpointOptions`: upstream's `ExecOptions` shape
//! (`k8s.io/kubectl/pkg/cmd/exec/exec.go`) — `complete()` fills the options
//! from flags and kubeconfig, `validate()` checks them, `run()` talks to the
//! cluster through the [`PodClient`] / [`Checkpointer`] / [`AccessReviewer`]
//! traits.

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::time::Duration;

use api_types::duration::{format_go_duration, parse_seconds_or_duration, whole_seconds_ceil};
use api_types::podcheckpoint::PodCheckpoint;
use api_types::timeouts::{DEFAULT_CLIENT_WAIT, DEFAULT_RUNTIME_REQUEST_TIMEOUT, Deadlines};
use api_types::validation::{validate_container_name, validate_namespace, validate_pod_name};
use api_types::{ContainerCheckpoint, MAX_TIMEOUT_SECONDS, PodCheckpointOptions};
use k8s_openapi::api::core::v1::Pod;

use crate::access::{self, Access};
use crate::client::ArchiveSource;
use crate::client::{AccessReviewer, Checkpointer, ClientError, PodCheckpoints, PodClient};
use crate::cmd::CheckpointArgs;
use crate::download;
use crate::endpoint::{ApiKind, Endpoint, EndpointError, Selected, select_api};
use crate::error::{CheckpointFailure, Error, Forbidden, Result, what};
use crate::podcheckpoint::{self, ObjectError, Outcome, WaitLimits, object_ref};
use crate::podcmd::find_or_default_container_by_name;
use crate::polymorphichelpers::{PodForObjectError, attachable_pod_for_object};
use crate::printer::{OutputFormat, Summary, print_object, print_summaries, print_summary};
use crate::resource::{ResourceKind, ResourceTuple};
use crate::spinner::Spinner;

/// Everything `run()` needs, resolved from the command line and kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointOptions {
    pub namespace: String,
    /// `POD | TYPE/NAME` (upstream's `ResourceName`).
    pub resource: ResourceTuple,
    /// `-c`; `None` picks the default container (or all, with `--all-containers`).
    pub container: Option<String>,
    /// `--all-containers`.
    pub all_containers: bool,
    /// `--timeout` in whole seconds (rounded up); 0 = the runtime's default.
    pub timeout_seconds: u64,
    /// `--request-timeout` (None = no timeout).
    pub request_timeout: Option<Duration>,
    pub output: Option<OutputFormat>,
    /// `--api`; `None` chooses from discovery.
    pub api: Option<ApiKind>,
    /// `--wait`.
    pub wait: bool,
    /// `--claim-timeout`.
    pub claim_timeout: Duration,
    /// Draw a spinner on stderr (only when it is a terminal).
    pub spinner: bool,
    /// `--download FILE`: the archive, once written.
    pub download: Option<String>,
}

/// The one `POD | TYPE/NAME` argument, checked before anything is loaded so
/// usage errors come first, as in kubectl.
pub fn resource_name_arg(args: &CheckpointArgs) -> Result<&str> {
    match args.args.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::Usage(
            "expected 'checkpoint (POD | TYPE/NAME) [-c CONTAINER | --all-containers] [flags]'.\nPOD or TYPE/NAME is a required argument for the checkpoint command"
                .into(),
        )),
        more => Err(Error::Usage(format!(
            "exactly one POD or TYPE/NAME is allowed, got {}: {}",
            more.len(),
            more.join(" ")
        ))),
    }
}

/// The pod to checkpoint and its container, as far as the user may read them.
#[derive(Debug, Clone)]
struct Chosen {
    pod: String,
    /// `None`: every container (`--all-containers`), or, on the
    /// subresource path, the server chooses (the pod could not be read).
    container: Option<String>,
    /// The pod as read; `None` when it could not be.
    object: Option<Pod>,
}

impl Chosen {
    fn unread(&self) -> bool {
        self.object.is_none()
    }
}

/// How a checkpoint request ended, when not with an error.
enum Done {
    Finished,
    /// The request answered 404 Not Found: the error to report, unless a
    /// discovery from the cache chose the wrong API.
    Stale(Error),
}

fn is_not_found(e: &ClientError) -> bool {
    e.server().is_some_and(|s| s.code == 404)
}

/// The SIGINT future of [`CheckpointOptions::run`], made when first needed
/// (just before a PodCheckpoint is created) and kept for a retry.
struct Interrupt<'a> {
    make: Option<Box<dyn FnOnce() -> Sigint<'a> + 'a>>,
    armed: Option<Sigint<'a>>,
}

type Sigint<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

impl<'a> Interrupt<'a> {
    fn new<F: Future<Output = ()> + 'a>(make: impl FnOnce() -> F + 'a) -> Self {
        Self {
            make: Some(Box::new(move || Box::pin(make()))),
            armed: None,
        }
    }

    fn arm(&mut self) -> Pin<&mut (dyn Future<Output = ()> + 'a)> {
        let make = self.make.take();
        self.armed
            .get_or_insert_with(|| match make {
                Some(make) => make(),
                None => Box::pin(std::future::pending()),
            })
            .as_mut()
    }
}

impl CheckpointOptions {
    /// Fill the options from the flags; `namespace` is the one chosen by the
    /// kubeconfig loading (`-n`, else the context's, else `default`).
    pub fn complete(args: &CheckpointArgs, namespace: &str) -> Result<Self> {
        let resource = ResourceTuple::parse(resource_name_arg(args)?)
            .map_err(|e| Error::Usage(e.to_string()))?;
        let duration = |flag: &str, value: &str| {
            parse_seconds_or_duration(value).map_err(|e| {
                Error::Usage(format!(
                    "invalid argument {value:?} for \"--{flag}\" flag: {e}"
                ))
            })
        };
        let timeout = duration("timeout", &args.timeout)?;
        let claim_timeout = duration("claim-timeout", &args.claim_timeout)?;
        Ok(Self {
            namespace: namespace.to_owned(),
            resource,
            container: args.container.clone().filter(|c| !c.is_empty()),
            all_containers: args.all_containers,
            timeout_seconds: whole_seconds_ceil(timeout),
            request_timeout: args.config.request_timeout()?,
            output: args.output,
            api: args.api,
            wait: args.wait,
            download: args.download.clone(),
            claim_timeout,
            spinner: crate::spinner::stderr_is_terminal(),
        })
    }

    /// Check names, bounds and flags that exclude each other before
    /// anything is sent.
    pub fn validate(&self) -> Result<()> {
        validate_namespace(&self.namespace)?;
        validate_pod_name(&self.resource.name)?;
        if let Some(c) = &self.container {
            validate_container_name(c)?;
            if self.all_containers {
                // kubectl logs' words
                return Err(Error::Usage(format!(
                    "--all-containers=true should not be specified with container name {c}"
                )));
            }
        }
        let max = MAX_TIMEOUT_SECONDS.unsigned_abs();
        if self.timeout_seconds > max {
            return Err(Error::Usage(format!(
                "--timeout must be at most {}, got {}",
                format_go_duration(Duration::from_secs(max)),
                format_go_duration(Duration::from_secs(self.timeout_seconds))
            )));
        }
        if self.claim_timeout.is_zero() {
            return Err(Error::Usage(
                "--claim-timeout must be greater than 0".into(),
            ));
        }
        if let Some(file) = &self.download {
            if file == "-" || file.is_empty() {
                return Err(Error::Usage(
                    "--download needs a FILE: to write an archive to stdout, use kubectl checkpoint download NAME -f -".into(),
                ));
            }
            if self.all_containers {
                return Err(Error::Usage(
                    "--download takes the archive of one container: name it with -c (then kubectl checkpoint download NAME -c C for the others)".into(),
                ));
            }
            if !self.wait {
                return Err(Error::Usage(
                    "--download needs --wait: the archive exists only once the checkpoint is written".into(),
                ));
            }
        }
        if self.api == Some(ApiKind::Subresource) {
            self.validate_subresource()?;
        }
        Ok(())
    }

    /// What the synchronous subresource cannot do: it checkpoints one
    /// container and answers when it is written.
    fn validate_subresource(&self) -> Result<()> {
        if self.all_containers {
            return Err(Error::Usage(
                "--all-containers needs the PodCheckpoint API (checkpoint.kcr.dev): the pods/checkpoint subresource checkpoints one container; name it with -c".into(),
            ));
        }
        if self.download.is_some() {
            return Err(Error::Usage(
                "--download needs the PodCheckpoint API (checkpoint.kcr.dev): the archive of the pods/checkpoint subresource stays on the node".into(),
            ));
        }
        if !self.wait {
            return Err(Error::Usage(
                "--wait=false needs the PodCheckpoint API (checkpoint.kcr.dev): the pods/checkpoint subresource answers only once the archive is written".into(),
            ));
        }
        Ok(())
    }

    /// How long the client waits for the subresource's answer:
    /// `--request-timeout` when set, else the client deadline of `--timeout`
    /// ([`Deadlines::client`]: outside the extension's and the node's), else
    /// [`DEFAULT_CLIENT_WAIT`].
    pub fn wait(&self) -> Duration {
        match self.request_timeout {
            Some(d) => d,
            None => self.per_container(),
        }
    }

    /// The client deadline of one container's checkpoint.
    pub fn per_container(&self) -> Duration {
        match self.timeout_seconds {
            0 => DEFAULT_CLIENT_WAIT,
            s => Deadlines::new(
                i64::try_from(s).unwrap_or(MAX_TIMEOUT_SECONDS),
                DEFAULT_RUNTIME_REQUEST_TIMEOUT,
            )
            .client(),
        }
    }

    /// The request options sent with the POST; without a container the
    /// server chooses it.
    pub fn request_options(&self, container: Option<&str>) -> PodCheckpointOptions {
        let timeout = i64::try_from(self.timeout_seconds).ok().filter(|t| *t > 0);
        PodCheckpointOptions::new(container, timeout)
    }

    /// Resolve the pod and container, checkpoint it, print the result.
    /// Notices go to `notices` (stderr), the result to `out` (stdout).
    ///
    /// Discovery chooses the API (`--api` forces one): a `PodCheckpoint`
    /// when the cluster serves them, else the `pods/checkpoint`
    /// subresource. The happy path is discovery, one read to find the pod,
    /// then the POST (subresource) or the create and a watch (object). A
    /// user who may checkpoint but not read pods still can: the subresource
    /// then defaults the container on the server; a `PodCheckpoint` needs
    /// `-c` or `--all-containers`. Whatever the server forbids,
    /// SelfSubjectAccessReviews (sent together, only then) find which
    /// rights the user lacks.
    ///
    /// `interrupt` is called once, just before a `PodCheckpoint` is
    /// created; the future it returns ends the wait (SIGINT), not the
    /// checkpoint.
    ///
    /// Discovery and the pod read do not depend on each other, so they are
    /// sent together. Discovery may come from kubectl's disk cache: when a
    /// cached document says the cluster does not serve what is needed, or
    /// the checkpoint request answers 404, the cache is invalidated and the
    /// choice made again, once (as kubectl's REST mapper does).
    pub async fn run<F>(
        &self,
        client: &(impl PodClient + Checkpointer + PodCheckpoints + AccessReviewer + ArchiveSource),
        out: &mut impl Write,
        notices: &mut impl Write,
        interrupt: impl FnOnce() -> F,
    ) -> Result<()>
    where
        F: Future<Output = ()>,
    {
        let (selected, lookup) = tokio::join!(
            select_api(client, self.api),
            attachable_pod_for_object(client, &self.namespace, &self.resource, notices),
        );
        let mut selected = match selected {
            Err(e) if !matches!(e, EndpointError::Discovery(_)) && !client.discovery_fresh() => {
                tracing::debug!(error = %e, "discovery from the cache: reading it again");
                client.invalidate_discovery();
                select_api(client, self.api).await?
            }
            other => other?,
        };
        let chosen = self.choose(client, selected, lookup, notices).await?;
        let mut interrupt = Interrupt::new(interrupt);
        let mut retried = false;
        loop {
            let done = match selected {
                Selected::Object => {
                    self.run_object(client, chosen.clone(), out, notices, &mut interrupt)
                        .await?
                }
                Selected::Subresource(endpoint) => {
                    self.validate_subresource()?;
                    self.run_subresource(client, endpoint, chosen.clone(), out, notices)
                        .await?
                }
            };
            match done {
                Done::Finished => return Ok(()),
                Done::Stale(source) => {
                    if retried || client.discovery_fresh() {
                        return Err(source);
                    }
                    tracing::debug!(
                        "the checkpoint request answered 404 after discovery from the cache: reading it again"
                    );
                    retried = true;
                    client.invalidate_discovery();
                    selected = select_api(client, self.api).await?;
                }
            }
        }
    }

    /// The synchronous `pods/checkpoint`.
    async fn run_subresource(
        &self,
        client: &(impl PodClient + Checkpointer + AccessReviewer),
        endpoint: Endpoint,
        chosen: Chosen,
        out: &mut impl Write,
        notices: &mut impl Write,
    ) -> Result<Done> {
        let query = self.request_options(chosen.container.as_deref()).to_query();
        let path = endpoint.path(&self.namespace, &chosen.pod);
        let path = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        let wait = self.wait();
        tracing::debug!(%path, ?wait, "checkpointing");

        let spinner = Spinner::start(
            format!(
                "Checkpointing {}",
                what(chosen.container.as_deref(), &self.namespace, &chosen.pod)
            ),
            self.spinner,
        );
        let result = client.checkpoint(&path, wait).await;
        spinner.finish();
        let checkpoint = match result {
            Ok(c) => c,
            Err(source) if source.is_forbidden() => {
                let needed = access::to_checkpoint(endpoint);
                return Err(self
                    .forbidden(client, source, true, needed, None, None)
                    .await);
            }
            Err(source) => {
                let not_found = is_not_found(&source);
                let e = Error::Checkpoint(Box::new(CheckpointFailure {
                    namespace: self.namespace.clone(),
                    pod: chosen.pod,
                    container: chosen.container,
                    wait,
                    source,
                }));
                return if not_found {
                    Ok(Done::Stale(e))
                } else {
                    Err(e)
                };
            }
        };
        if chosen.unread() && chosen.container.is_none() {
            // A failed notice must not fail the command.
            let _ = writeln!(
                notices,
                "Cannot read pod {}/{} (you lack get pods), so the server chose container {:?}",
                self.namespace, chosen.pod, checkpoint.spec.container
            );
        }
        self.print(&checkpoint, out).map(|()| Done::Finished)
    }

    /// The declarative path: create a `PodCheckpoint`, wait until it is
    /// written, print each container's five lines (or the object).
    async fn run_object(
        &self,
        client: &(impl PodClient + PodCheckpoints + AccessReviewer + ArchiveSource),
        chosen: Chosen,
        out: &mut impl Write,
        notices: &mut impl Write,
        interrupt: &mut Interrupt<'_>,
    ) -> Result<Done> {
        let object = podcheckpoint::new_object(
            &self.namespace,
            &chosen.pod,
            chosen.object.as_ref().and_then(|p| p.metadata.uid.clone()),
            chosen.container.iter().cloned().collect(),
            self.timeout_seconds,
        );
        let mut interrupt = interrupt.arm();
        let created = tokio::select! {
            biased;
            () = &mut interrupt => {
                return Err(self.object_error(ObjectError::Interrupted {
                    name: None,
                    namespace: self.namespace.clone(),
                    pod: chosen.pod,
                }));
            }
            r = client.create_pod_checkpoint(&self.namespace, &object) => r,
        };
        let created = match created {
            Ok(c) => c,
            Err(source) if source.is_forbidden() => {
                let needed = access::to_create_object(self.wait);
                return Err(self
                    .forbidden(client, source, false, needed, None, None)
                    .await);
            }
            Err(source) => {
                let not_found = is_not_found(&source);
                let e = self.object_error(ObjectError::Create {
                    namespace: self.namespace.clone(),
                    pod: chosen.pod,
                    source,
                });
                return if not_found {
                    Ok(Done::Stale(e))
                } else {
                    Err(e)
                };
            }
        };
        let name = created.metadata.name.clone().unwrap_or_default();
        tracing::info!(
            namespace = %self.namespace,
            pod = %chosen.pod,
            containers = ?object.spec.containers,
            podcheckpoint = %name,
            "created a PodCheckpoint"
        );
        if !self.wait {
            return match self.output {
                Some(format) => Ok(print_object(&created, format, out)?),
                None => writeln!(
                    out,
                    "{}.{}/{name} created",
                    api_types::podcheckpoint::SINGULAR,
                    api_types::podcheckpoint::GROUP
                )
                .map_err(|e| Error::Print(e.into())),
            }
            .map(|()| Done::Finished);
        }

        let containers = if chosen.container.is_some() {
            Some(1)
        } else {
            chosen
                .object
                .as_ref()
                .and_then(|p| p.spec.as_ref())
                .map(|s| s.containers.len())
        };
        let limits = WaitLimits {
            claim: self.claim_timeout,
            per_container: self.per_container(),
            containers,
        };
        let what = what(chosen.container.as_deref(), &self.namespace, &chosen.pod);
        let spinner = Spinner::start(
            format!(
                "Checkpointing {what} ({}: {})",
                object_ref(&name),
                podcheckpoint::describe_state(&created)
            ),
            self.spinner,
        );
        let outcome = podcheckpoint::wait(client, created, limits, interrupt.as_mut(), |pc| {
            spinner.set_message(format!(
                "Checkpointing {what} ({}: {})",
                object_ref(&name),
                podcheckpoint::describe_state(pc)
            ));
        })
        .await;
        spinner.finish();
        let namespace = self.namespace.clone();
        let outcome = match outcome {
            Ok(o) => o,
            Err(source) if source.is_forbidden() => {
                let note = format!(
                    "{} was created and goes on: kubectl get {} -n {namespace}",
                    object_ref(&name),
                    object_ref(&name)
                );
                return Err(self
                    .forbidden(
                        client,
                        source,
                        false,
                        access::to_watch_object(),
                        None,
                        Some(note),
                    )
                    .await);
            }
            Err(source) => {
                return Err(self.object_error(ObjectError::Watch {
                    name,
                    namespace,
                    source,
                }));
            }
        };
        let finished = match outcome {
            Outcome::Finished(pc) => pc,
            Outcome::Unclaimed { deletion, .. } => {
                return Err(self.object_error(ObjectError::Unclaimed {
                    name,
                    namespace,
                    waited: self.claim_timeout,
                    node: podcheckpoint::node_of(chosen.object.as_ref()),
                    deletion,
                }));
            }
            Outcome::TimedOut { last, waited } => {
                return Err(self.object_error(ObjectError::TimedOut {
                    name,
                    namespace,
                    waited,
                    state: podcheckpoint::describe_state(&last),
                }));
            }
            Outcome::Deleted => {
                return Err(self.object_error(ObjectError::Deleted { name, namespace }));
            }
            Outcome::Interrupted(_) => {
                return Err(self.object_error(ObjectError::Interrupted {
                    name: Some(name),
                    namespace,
                    pod: chosen.pod,
                }));
            }
        };
        let (reason, message) = finished
            .ready_condition()
            .map(|c| (c.reason.clone(), c.message.clone()))
            .unwrap_or_default();
        tracing::info!(
            namespace = %self.namespace,
            podcheckpoint = %name,
            reason = %reason,
            "the PodCheckpoint finished"
        );
        if !finished.is_ready() {
            return Err(self.object_error(ObjectError::Failed {
                name,
                reason,
                message,
            }));
        }
        self.print_pod_checkpoint(&finished, out)?;
        if let Some(file) = &self.download {
            let settings = download::Settings {
                progress: self.spinner,
                ..download::Settings::default()
            };
            download::download_object(
                client,
                &finished,
                &self.namespace,
                &name,
                self.container.as_deref(),
                download::Target::File(file.into()),
                &settings,
                out,
                notices,
            )
            .await?;
        }
        Ok(Done::Finished)
    }

    fn object_error(&self, e: ObjectError) -> Error {
        Error::Object(Box::new(e))
    }

    /// The pod (`attachablePodForObject`) and its container
    /// (`FindOrDefaultContainerByName`, with its notices). A pod the user may
    /// not read is left to the server (subresource), or needs `-c` or
    /// `--all-containers` (object).
    async fn choose(
        &self,
        client: &(impl PodClient + AccessReviewer),
        selected: Selected,
        lookup: std::result::Result<Pod, PodForObjectError>,
        notices: &mut impl Write,
    ) -> Result<Chosen> {
        let pod = match lookup {
            Ok(pod) => pod,
            Err(PodForObjectError::Lookup {
                verb, kind, source, ..
            }) if source.is_forbidden() => {
                if self.resource.kind == ResourceKind::Pod {
                    if selected == Selected::Object
                        && self.container.is_none()
                        && !self.all_containers
                    {
                        return Err(self.object_error(ObjectError::NeedsContainer {
                            namespace: self.namespace.clone(),
                            pod: self.resource.name.clone(),
                        }));
                    }
                    tracing::info!(namespace = %self.namespace, pod = %self.resource.name, "cannot read the pod: going on without it");
                    return Ok(Chosen {
                        pod: self.resource.name.clone(),
                        container: self.container.clone(),
                        object: None,
                    });
                }
                // Without the pod's name nothing can be checkpointed.
                let mut needed = access::to_find_pod(self.resource.kind);
                needed.extend(self.to_checkpoint(selected));
                let denied = Access::read(verb, kind);
                return Err(self
                    .forbidden(client, source, false, needed, Some(denied), None)
                    .await);
            }
            Err(e) => return Err(e.into()),
        };
        let name = running_pod_name(&pod, &self.resource.name)?;
        let container = if self.all_containers {
            None
        } else {
            let choice = find_or_default_container_by_name(&pod, self.container.as_deref())?;
            for notice in &choice.notices {
                // A failed notice must not fail the command.
                let _ = writeln!(notices, "{notice}");
            }
            Some(choice.name)
        };
        Ok(Chosen {
            pod: name,
            container,
            object: Some(pod),
        })
    }

    /// The rights to checkpoint through `selected`.
    fn to_checkpoint(&self, selected: Selected) -> Vec<Access> {
        match selected {
            Selected::Object => access::to_create_object(self.wait),
            Selected::Subresource(endpoint) => access::to_checkpoint(endpoint),
        }
    }

    /// The error for a 403: which of the `needed` rights the user lacks
    /// (`denied` is known already), found by reviews sent together.
    async fn forbidden(
        &self,
        client: &impl AccessReviewer,
        source: ClientError,
        checkpointing: bool,
        needed: Vec<Access>,
        denied: Option<Access>,
        note: Option<String>,
    ) -> Error {
        let to_review: Vec<Access> = needed
            .iter()
            .filter(|a| Some(*a) != denied.as_ref())
            .cloned()
            .collect();
        let missing = match access::missing(client, &self.namespace, &to_review).await {
            Ok(lacking) => Some(
                needed
                    .iter()
                    .filter(|a| Some(*a) == denied.as_ref() || lacking.contains(a))
                    .cloned()
                    .collect(),
            ),
            Err(e) => {
                tracing::debug!(error = %e, "cannot review the user's rights");
                None
            }
        };
        Error::Forbidden(Box::new(Forbidden {
            source,
            checkpointing,
            namespace: self.namespace.clone(),
            resource: self.resource.clone(),
            missing,
            needed,
            note,
        }))
    }

    fn print(&self, checkpoint: &ContainerCheckpoint, out: &mut impl Write) -> Result<()> {
        match self.output {
            None => print_summary(&Summary::from_checkpoint(checkpoint, &self.namespace), out)
                .map_err(|e| Error::Print(e.into())),
            Some(format) => Ok(print_object(checkpoint, format, out)?),
        }
    }

    fn print_pod_checkpoint(&self, pc: &PodCheckpoint, out: &mut impl Write) -> Result<()> {
        match self.output {
            None => print_summaries(&Summary::from_pod_checkpoint(pc, &self.namespace), out)
                .map_err(|e| Error::Print(e.into())),
            Some(format) => Ok(print_object(pc, format, out)?),
        }
    }
}

/// The pod's name, when it is running (`kubectl exec`'s check).
fn running_pod_name(pod: &Pod, fallback: &str) -> Result<String> {
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Unknown".into());
    if phase != "Running" {
        return Err(Error::NotRunning(phase));
    }
    Ok(pod
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| fallback.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use api_types::discovery::{api_group, api_resource_list};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroupList, LabelSelector};

    use super::*;
    use crate::client::ServerError;
    use crate::client::fake::FakeClient;
    use crate::cmd::{Parsed, parse};
    use kcr_testkit::mock_api::objects::pod;

    fn args(line: &[&str]) -> CheckpointArgs {
        match parse(std::iter::once("kubectl-checkpoint").chain(line.iter().copied())) {
            Ok(Parsed::Run(a)) => *a,
            other => panic!("{other:?}"),
        }
    }

    fn complete(line: &[&str]) -> Result<CheckpointOptions> {
        let o = CheckpointOptions::complete(&args(line), "default")?;
        o.validate()?;
        Ok(o)
    }

    fn err(line: &[&str]) -> String {
        complete(line).unwrap_err().render()
    }

    #[test]
    fn complete_fills_the_options() {
        let o = complete(&["counter"]).unwrap();
        assert_eq!(
            o.resource,
            ResourceTuple {
                kind: ResourceKind::Pod,
                name: "counter".into()
            }
        );
        assert_eq!(o.namespace, "default");
        assert_eq!(
            (o.container.as_deref(), o.timeout_seconds, o.output),
            (None, 0, None)
        );
        assert_eq!(o.wait(), DEFAULT_CLIENT_WAIT);
        assert_eq!(o.request_options(Some("app")).to_query(), "container=app");

        let o = complete(&["deploy/web", "-c", "app", "--timeout", "30s", "-o", "json"]).unwrap();
        assert_eq!(o.resource.kind, ResourceKind::Deployment);
        assert_eq!(o.container.as_deref(), Some("app"));
        assert_eq!(o.timeout_seconds, 30);
        // 30 s for the runtime, then the node's grace, the extension's and the plugin's margins.
        assert_eq!(o.wait(), Duration::from_secs(45));
        assert_eq!(o.output, Some(OutputFormat::Json));
        assert_eq!(
            o.request_options(Some("app")).to_query(),
            "container=app&timeoutSeconds=30"
        );

        assert_eq!(
            complete(&["p", "--timeout", "90"]).unwrap().timeout_seconds,
            90
        );
        assert_eq!(
            complete(&["p", "--timeout", "1.5s"])
                .unwrap()
                .timeout_seconds,
            2
        );
        assert_eq!(
            complete(&["p", "--timeout", "1h"]).unwrap().timeout_seconds,
            3600
        );
        let o = complete(&["p", "--timeout", "1m", "--request-timeout", "5s"]).unwrap();
        assert_eq!(o.wait(), Duration::from_secs(5));
    }

    #[test]
    fn usage_and_validation_errors() {
        let hint = "See 'kubectl checkpoint -h' for help and examples";
        assert_eq!(
            err(&[]),
            format!(
                "error: expected 'checkpoint (POD | TYPE/NAME) [-c CONTAINER | --all-containers] [flags]'.\nPOD or TYPE/NAME is a required argument for the checkpoint command\n{hint}\n"
            )
        );
        assert_eq!(
            err(&["a", "b"]),
            format!("error: exactly one POD or TYPE/NAME is allowed, got 2: a b\n{hint}\n")
        );
        assert_eq!(
            err(&["cronjob/x"]),
            format!("error: the server doesn't have a resource type \"cronjob\"\n{hint}\n")
        );
        assert_eq!(
            err(&["p", "--timeout", "soon"]),
            format!(
                "error: invalid argument \"soon\" for \"--timeout\" flag: time: invalid duration \"soon\"\n{hint}\n"
            )
        );
        assert_eq!(
            err(&["p", "--timeout", "-5s"]),
            format!(
                "error: invalid argument \"-5s\" for \"--timeout\" flag: must not be negative\n{hint}\n"
            )
        );
        assert_eq!(
            err(&["p", "--timeout", "2h"]),
            format!("error: --timeout must be at most 1h0m0s, got 2h0m0s\n{hint}\n")
        );
        assert!(
            err(&["My_Pod"])
                .starts_with("error: invalid pod name \"My_Pod\": a lowercase RFC 1123 subdomain")
        );
        assert!(
            err(&["p", "-c", "Bad"])
                .starts_with("error: invalid container name \"Bad\": a lowercase RFC 1123 label")
        );
        assert_eq!(
            err(&["p", "--download", "-"]),
            format!(
                "error: --download needs a FILE: to write an archive to stdout, use kubectl checkpoint download NAME -f -\n{hint}\n"
            )
        );
        assert_eq!(
            err(&["p", "--all-containers", "--download", "a.tar"]),
            format!(
                "error: --download takes the archive of one container: name it with -c (then kubectl checkpoint download NAME -c C for the others)\n{hint}\n"
            )
        );
        assert_eq!(
            err(&["p", "--wait=false", "--download", "a.tar"]),
            format!(
                "error: --download needs --wait: the archive exists only once the checkpoint is written\n{hint}\n"
            )
        );
        assert_eq!(
            err(&["p", "--api=subresource", "--download", "a.tar"]),
            format!(
                "error: --download needs the PodCheckpoint API (checkpoint.kcr.dev): the archive of the pods/checkpoint subresource stays on the node\n{hint}\n"
            )
        );
        let o = CheckpointOptions::complete(&args(&["p"]), "Bad_NS").unwrap();
        assert!(
            o.validate()
                .unwrap_err()
                .render()
                .starts_with("error: invalid namespace name \"Bad_NS\"")
        );
        assert_eq!(
            err(&["p", "--request-timeout", "x"]),
            "error: invalid argument \"x\" for \"--request-timeout\" flag: time: invalid duration \"x\"\n"
        );
    }

    fn cluster() -> FakeClient {
        let mut c = FakeClient {
            pods: vec![
                pod("default", "counter", "Running", &["app"]),
                pod("default", "multi", "Running", &["a", "b"]),
                pod("default", "waiting", "Pending", &["app"]),
            ],
            groups: APIGroupList {
                groups: vec![api_group()],
            },
            checkpoint_answer: Some(Ok(crate::printer::tests::sample())),
            ..Default::default()
        };
        c.resources.insert(
            api_types::SUBRESOURCES_API_VERSION.into(),
            api_resource_list(true),
        );
        let mut labels = BTreeMap::new();
        labels.insert("app".to_owned(), "multi".to_owned());
        c.selectors.insert(
            (ResourceKind::Deployment, "multi".into()),
            LabelSelector {
                match_labels: Some(labels),
                match_expressions: None,
            },
        );
        if let Some(p) = c.pods.get_mut(1) {
            p.metadata.labels = Some(BTreeMap::from([("app".into(), "multi".into())]));
        }
        c
    }

    async fn run(c: &FakeClient, line: &[&str]) -> (Result<()>, String, String) {
        let mut o = complete(line).unwrap();
        o.spinner = false;
        let (mut out, mut notices) = (Vec::new(), Vec::new());
        let r = o
            .run(c, &mut out, &mut notices, std::future::pending::<()>)
            .await;
        (
            r,
            String::from_utf8(out).unwrap(),
            String::from_utf8(notices).unwrap(),
        )
    }

    #[tokio::test]
    async fn run_prints_five_lines_and_posts_the_exact_url() {
        let c = cluster();
        let (r, out, notices) = run(&c, &["counter", "--timeout", "30s"]).await;
        r.unwrap();
        assert!(
            out.starts_with("Node:                  127.0.0.1/127.0.0.1\n"),
            "{out}"
        );
        assert_eq!(out.lines().count(), 5);
        assert_eq!(notices, "");
        assert_eq!(
            c.calls().last().map(String::as_str),
            Some(
                "post /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/counter/checkpoint?container=app&timeoutSeconds=30 wait=45s"
            )
        );
    }

    #[tokio::test]
    async fn run_notices_and_errors() {
        let c = cluster();
        let (r, _, notices) = run(&c, &["deploy/multi"]).await;
        r.unwrap();
        assert_eq!(
            notices,
            "Using pod/multi\nDefaulted container \"a\" out of: a, b\n"
        );

        let (r, _, _) = run(&c, &["waiting"]).await;
        assert_eq!(
            r.unwrap_err().render(),
            "error: cannot checkpoint a container in a non-running pod; current phase is Pending\n"
        );

        // an unknown -c is the server's to refuse: the request goes out as is
        let (r, _, _) = run(&c, &["counter", "-c", "nope"]).await;
        assert!(r.is_ok());
        assert!(
            c.calls()
                .last()
                .is_some_and(|call| call.contains("/pods/counter/checkpoint?container=nope")),
            "{:?}",
            c.calls()
        );

        let (r, _, _) = run(&c, &["ghost"]).await;
        assert_eq!(
            r.unwrap_err().render(),
            "Error from server (NotFound): pods \"ghost\" not found\n"
        );

        let mut c = cluster();
        c.checkpoint_answer = Some(Err(ServerError {
            code: 500,
            reason: "InternalError".into(),
            message: "CRIU failed".into(),
        }));
        let (r, out, _) = run(&c, &["counter"]).await;
        assert_eq!(r.unwrap_err().render(), "error: CRIU failed\n");
        assert_eq!(out, "");
    }

    #[tokio::test]
    async fn run_json_output() {
        let c = cluster();
        let (r, out, _) = run(&c, &["counter", "-o", "json"]).await;
        r.unwrap();
        assert_eq!(
            serde_json::from_str::<api_types::ContainerCheckpoint>(&out).unwrap(),
            crate::printer::tests::sample()
        );
    }

    fn forbidden(status: &str) -> ServerError {
        ServerError {
            code: 403,
            reason: "Forbidden".into(),
            message: format!("{status} is forbidden"),
        }
    }

    #[tokio::test]
    async fn a_pod_that_cannot_be_read_is_left_to_the_server() {
        let mut c = cluster();
        c.forbidden = vec!["get pod".into()];
        let (r, out, notices) = run(&c, &["counter"]).await;
        r.unwrap();
        assert_eq!(out.lines().count(), 5);
        assert_eq!(
            notices,
            "Cannot read pod default/counter (you lack get pods), so the server chose container \"container-2\"\n"
        );
        assert_eq!(
            c.calls().last().map(String::as_str),
            Some(
                "post /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/counter/checkpoint wait=300s"
            )
        );
        // -c goes as it is, and needs no notice
        let (r, _, notices) = run(&c, &["counter", "-c", "app", "--timeout", "5"]).await;
        r.unwrap();
        assert_eq!(notices, "");
        assert!(
            c.calls()
                .last()
                .is_some_and(|l| l.ends_with("/checkpoint?container=app&timeoutSeconds=5 wait=20s")),
            "{:?}",
            c.calls()
        );
    }

    #[tokio::test]
    async fn a_forbidden_checkpoint_names_the_missing_rights() {
        let mut c = cluster();
        c.forbidden = vec!["get pod".into()];
        c.checkpoint_answer = Some(Err(forbidden(
            "pods.subresources.checkpoint.kcr.dev \"counter\"",
        )));
        c.cannot = vec!["create pods.subresources.checkpoint.kcr.dev/checkpoint".into()];
        let (r, out, notices) = run(&c, &["counter"]).await;
        assert_eq!(
            r.unwrap_err().render(),
            "error: pods.subresources.checkpoint.kcr.dev \"counter\" is forbidden\n\
             You lack create pods/checkpoint (API group subresources.checkpoint.kcr.dev) in namespace default: ask a cluster admin to bind the ClusterRole checkpoint-creator to you.\n"
        );
        assert_eq!((out.as_str(), notices.as_str()), ("", ""));
        let calls = c.calls();
        assert_eq!(
            calls[calls.len() - 2..],
            [
                "can-i create pods.subresources.checkpoint.kcr.dev/checkpoint -n default",
                "can-i checkpoint pods -n default",
            ]
        );

        // the reviews allow everything: only the server knows why
        c.cannot.clear();
        let (r, _, _) = run(&c, &["counter"]).await;
        assert_eq!(
            r.unwrap_err().render(),
            "error: pods.subresources.checkpoint.kcr.dev \"counter\" is forbidden\n"
        );
        // the reviews cannot be made: say what is needed
        c.reviews_fail = true;
        let (r, _, _) = run(&c, &["counter"]).await;
        assert_eq!(
            r.unwrap_err().render(),
            "error: pods.subresources.checkpoint.kcr.dev \"counter\" is forbidden\n\
             kubectl checkpoint pod/counter needs create pods/checkpoint (API group subresources.checkpoint.kcr.dev), checkpoint pods in namespace default: if you lack them, ask a cluster admin to bind the ClusterRole checkpoint-creator to you.\n"
        );
    }

    #[tokio::test]
    async fn type_name_needs_the_reads() {
        let mut c = cluster();
        c.forbidden = vec!["get deployments.apps".into()];
        c.cannot = vec!["get deployments.apps".into()];
        let (r, _, _) = run(&c, &["deploy/multi"]).await;
        assert_eq!(
            r.unwrap_err().render(),
            "Error from server (Forbidden): get deployments.apps default/multi is forbidden\n\
             You lack get deployments.apps in namespace default, which kubectl checkpoint needs to find the pod of deployment/multi: name the pod instead, or ask a cluster admin to bind the ClusterRole checkpoint-creator to you.\n"
        );
        // the denied read is not asked again
        assert!(
            !c.calls().iter().any(|l| l.starts_with("can-i get ")),
            "{:?}",
            c.calls()
        );
        assert!(!c.calls().iter().any(|l| l.starts_with("post ")));

        c.forbidden = vec!["list pods".into()];
        c.cannot = vec!["list pods".into(), "checkpoint pods".into()];
        let (r, _, _) = run(&c, &["deploy/multi"]).await;
        assert_eq!(
            r.unwrap_err().render(),
            "Error from server (Forbidden): list pods default app=multi is forbidden\n\
             You lack list pods, checkpoint pods in namespace default: ask a cluster admin to bind the ClusterRole checkpoint-creator to you.\n"
        );
    }

    // The declarative path.

    use crate::client::fake::GENERATED_SUFFIX;
    use crate::podcheckpoint::tests::{completed, failed, in_progress};

    /// [`cluster`] serving PodCheckpoints; the watch shows `script`.
    fn object_cluster(
        script: Vec<(
            Duration,
            std::result::Result<Option<PodCheckpoint>, ServerError>,
        )>,
    ) -> FakeClient {
        let mut c = cluster();
        c.groups.groups.push(crate::endpoint::tests::object_group());
        c.resources.insert(
            api_types::podcheckpoint::API_VERSION.into(),
            crate::endpoint::tests::object_resources(),
        );
        c.pods
            .push(pod("default", "trio", "Running", &["a", "b", "c"]));
        c.watch_script = script;
        c
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[tokio::test(start_paused = true)]
    async fn object_path_creates_waits_and_prints_five_lines() {
        let c = object_cluster(vec![
            (secs(1), Ok(Some(in_progress(2)))),
            (secs(2), Ok(Some(completed(3, &["app"])))),
        ]);
        let (r, out, notices) = run(&c, &["counter", "--timeout", "30s"]).await;
        r.unwrap();
        assert_eq!(notices, "");
        assert_eq!(
            out,
            "Node:                  node-1\n\
             Namespace:             default\n\
             Pod:                   counter\n\
             Container:             app\n\
             Checkpoint Archive:    checkpoint-counter_default-app-2026-11-30T07:00:00Z.tar\n"
        );
        assert_eq!(
            c.calls(),
            [
                "get /apis",
                "get /apis/checkpoint.kcr.dev/v1alpha1",
                "get pod default/counter",
                r#"create podcheckpoints default {"sourcePodName":"counter","sourcePodUID":"uid-counter","containers":["app"],"timeoutSeconds":30}"#,
                "watch podcheckpoints default/counter-x7k2p",
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn object_path_all_containers_and_the_default_container() {
        let c = object_cluster(vec![(secs(1), Ok(Some(completed(3, &["a", "b", "c"]))))]);
        let (r, out, _) = run(&c, &["trio", "--all-containers"]).await;
        r.unwrap();
        assert_eq!(out.split("\n\n").count(), 3, "{out}");
        assert!(
            c.calls().iter().any(|l| l
                == r#"create podcheckpoints default {"sourcePodName":"trio","sourcePodUID":"uid-trio"}"#),
            "{:?}",
            c.calls()
        );
        // the default container, with kubectl's notice
        let (r, _, notices) = run(&c, &["multi"]).await;
        r.unwrap();
        assert_eq!(notices, "Defaulted container \"a\" out of: a, b\n");
        assert!(c.calls().iter().any(|l| {
            l.contains(r#""sourcePodName":"multi","sourcePodUID":"uid-multi","containers":["a"]"#)
        }));
        // -c and --all-containers exclude each other
        assert_eq!(
            complete(&["trio", "-c", "a", "--all-containers"])
                .unwrap_err()
                .render(),
            "error: --all-containers=true should not be specified with container name a\nSee 'kubectl checkpoint -h' for help and examples\n"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn object_path_outputs() {
        let c = object_cluster(vec![(secs(1), Ok(Some(completed(3, &["app"]))))]);
        let (r, out, _) = run(&c, &["counter", "-o", "json"]).await;
        r.unwrap();
        let printed: PodCheckpoint = serde_json::from_str(&out).unwrap();
        assert_eq!(printed, completed(3, &["app"]));
        assert!(
            out.starts_with("{\n    \"apiVersion\": \"checkpoint.kcr.dev/v1alpha1\",\n"),
            "{out}"
        );

        let (r, out, _) = run(&c, &["counter", "--wait=false"]).await;
        r.unwrap();
        assert_eq!(
            out,
            format!("podcheckpoint.checkpoint.kcr.dev/counter-{GENERATED_SUFFIX} created\n")
        );
        assert!(!c.calls().last().unwrap().starts_with("watch"));
        let (r, out, _) = run(&c, &["counter", "--wait=false", "-o", "yaml"]).await;
        r.unwrap();
        let printed: PodCheckpoint = serde_saphyr::from_str(&out).unwrap();
        assert_eq!(printed.metadata.name.as_deref(), Some("counter-x7k2p"));
        assert!(printed.status.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn object_path_failures() {
        let c = object_cluster(vec![(
            secs(1),
            Ok(Some(failed(
                2,
                "CheckpointFailed",
                "container app: CRIU failed: dump: Operation not permitted",
            ))),
        )]);
        let (r, out, _) = run(&c, &["counter"]).await;
        let e = r.unwrap_err();
        assert_eq!(
            (e.render(), e.exit_code(), out.as_str()),
            (
                "error: container app: CRIU failed: dump: Operation not permitted\n".into(),
                1,
                ""
            )
        );
        let c = object_cluster(vec![(
            secs(1),
            Ok(Some(failed(
                2,
                "SourcePodReplaced",
                "pod default/counter is now uid-2, not uid-counter",
            ))),
        )]);
        assert_eq!(
            run(&c, &["counter"]).await.0.unwrap_err().render(),
            "error: pod default/counter is now uid-2, not uid-counter\n"
        );

        // no agent: the node is named, the object deleted
        let c = object_cluster(vec![]);
        let (r, _, _) = run(&c, &["counter", "--claim-timeout", "5s"]).await;
        assert_eq!(
            r.unwrap_err().render(),
            "error: no checkpoint agent claimed podcheckpoint/counter-x7k2p within 5s: is checkpoint-shim's controller running on node node-1?\n\
             Deleted podcheckpoint/counter-x7k2p, so that an agent that starts later does not checkpoint the pod unasked.\n"
        );
        assert_eq!(
            c.calls().last().map(String::as_str),
            Some("delete podcheckpoints default/counter-x7k2p uid=0c4f5b1e-uid rv=1")
        );

        // claimed, but too slow: 30 s claim + 30 s + 15 s
        let c = object_cluster(vec![(secs(1), Ok(Some(in_progress(2))))]);
        let (r, _, _) = run(&c, &["counter", "--timeout", "30"]).await;
        assert_eq!(
            r.unwrap_err().render(),
            "error: podcheckpoint/counter-x7k2p did not finish within 1m15s (CheckpointInProgress on node node-1)\n\
             It goes on without this command; follow it with: kubectl wait --for=condition=Ready podcheckpoint/counter-x7k2p -n default\n"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn object_path_interrupted() {
        let c = object_cluster(vec![(secs(1), Ok(Some(in_progress(2))))]);
        let mut o = complete(&["counter"]).unwrap();
        o.spinner = false;
        let (mut out, mut notices) = (Vec::new(), Vec::new());
        let e = o
            .run(&c, &mut out, &mut notices, || {
                tokio::time::sleep(Duration::from_secs(3))
            })
            .await
            .unwrap_err();
        assert_eq!(e.exit_code(), 130);
        assert_eq!(
            e.render(),
            "Stopped waiting; podcheckpoint/counter-x7k2p goes on. Follow it with:\n  kubectl wait --for=condition=Ready podcheckpoint/counter-x7k2p -n default\n"
        );
        assert!(out.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn object_path_without_reading_the_pod() {
        let mut c = object_cluster(vec![(secs(1), Ok(Some(completed(3, &["app"]))))]);
        c.forbidden = vec!["get pod".into()];
        let (r, _, _) = run(&c, &["counter"]).await;
        assert_eq!(
            r.unwrap_err().render(),
            "error: cannot read pod default/counter (you lack get pods) to choose its default container: name the container with -c CONTAINER, or checkpoint every container with --all-containers\n"
        );
        assert!(!c.calls().iter().any(|l| l.starts_with("create")));
        let (r, out, notices) = run(&c, &["counter", "-c", "app"]).await;
        r.unwrap();
        assert_eq!((out.lines().count(), notices.as_str()), (5, ""));
        assert!(c.calls().iter().any(|l| l
            == r#"create podcheckpoints default {"sourcePodName":"counter","containers":["app"]}"#));
        let (r, _, _) = run(&c, &["counter", "--all-containers"]).await;
        r.unwrap();
        assert!(
            c.calls()
                .iter()
                .any(|l| l == r#"create podcheckpoints default {"sourcePodName":"counter"}"#)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn object_path_forbidden_names_the_missing_rights() {
        let mut c = object_cluster(vec![]);
        c.forbidden = vec!["create podcheckpoints".into()];
        c.cannot = vec!["create podcheckpoints.checkpoint.kcr.dev".into()];
        let (r, _, _) = run(&c, &["counter"]).await;
        assert_eq!(
            r.unwrap_err().render(),
            "Error from server (Forbidden): create podcheckpoints default {\"sourcePodName\":\"counter\",\"sourcePodUID\":\"uid-counter\",\"containers\":[\"app\"]} is forbidden\n\
             You lack create podcheckpoints.checkpoint.kcr.dev in namespace default: ask a cluster admin to bind the ClusterRole checkpoint-creator to you.\n"
        );
        let calls = c.calls();
        assert_eq!(
            calls[calls.len() - 3..],
            [
                "can-i create podcheckpoints.checkpoint.kcr.dev -n default",
                "can-i list podcheckpoints.checkpoint.kcr.dev -n default",
                "can-i watch podcheckpoints.checkpoint.kcr.dev -n default",
            ]
        );

        // created, but not to be watched
        let mut c = object_cluster(vec![(
            secs(0),
            Err(ServerError {
                code: 403,
                reason: "Forbidden".into(),
                message: "podcheckpoints.checkpoint.kcr.dev is forbidden: User \"u\" cannot list resource \"podcheckpoints\"".into(),
            }),
        )]);
        c.cannot = vec![
            "list podcheckpoints.checkpoint.kcr.dev".into(),
            "watch podcheckpoints.checkpoint.kcr.dev".into(),
        ];
        let (r, _, _) = run(&c, &["counter"]).await;
        assert_eq!(
            r.unwrap_err().render(),
            "Error from server (Forbidden): podcheckpoints.checkpoint.kcr.dev is forbidden: User \"u\" cannot list resource \"podcheckpoints\"\n\
             You lack list podcheckpoints.checkpoint.kcr.dev, watch podcheckpoints.checkpoint.kcr.dev in namespace default: ask a cluster admin to bind the ClusterRole checkpoint-creator to you.\n\
             podcheckpoint/counter-x7k2p was created and goes on: kubectl get podcheckpoint/counter-x7k2p -n default\n"
        );
    }

    #[tokio::test]
    async fn forced_apis_and_what_the_subresource_cannot_do() {
        // --api=subresource where PodCheckpoints are served
        let c = object_cluster(vec![]);
        let (r, out, _) = run(&c, &["counter", "--api=subresource"]).await;
        r.unwrap();
        assert_eq!(out.lines().count(), 5);
        assert!(
            c.calls()
                .last()
                .unwrap()
                .starts_with("post /apis/subresources")
        );
        assert_eq!(
            complete(&["counter", "--api=subresource", "--all-containers"])
                .unwrap_err()
                .render(),
            "error: --all-containers needs the PodCheckpoint API (checkpoint.kcr.dev): the pods/checkpoint subresource checkpoints one container; name it with -c\nSee 'kubectl checkpoint -h' for help and examples\n"
        );
        assert_eq!(
            complete(&["counter", "--api=subresource", "--wait=false"])
                .unwrap_err()
                .render(),
            "error: --wait=false needs the PodCheckpoint API (checkpoint.kcr.dev): the pods/checkpoint subresource answers only once the archive is written\nSee 'kubectl checkpoint -h' for help and examples\n"
        );
        // falling back to the subresource, the same
        let c = cluster();
        let (r, _, _) = run(&c, &["counter", "--all-containers"]).await;
        assert!(
            r.unwrap_err()
                .render()
                .starts_with("error: --all-containers needs the PodCheckpoint API")
        );
        assert!(!c.calls().iter().any(|l| l.starts_with("post")));
        // --api=object where they are not
        let (r, _, _) = run(&c, &["counter", "--api=object"]).await;
        assert!(
            r.unwrap_err()
                .render()
                .starts_with("error: this cluster does not serve PodCheckpoints"),
        );
        assert_eq!(
            complete(&["counter", "--claim-timeout", "0"])
                .unwrap_err()
                .render(),
            "error: --claim-timeout must be greater than 0\nSee 'kubectl checkpoint -h' for help and examples\n"
        );
    }
}
