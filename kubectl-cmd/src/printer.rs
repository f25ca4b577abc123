//! Printers: plain data in, `impl Write` out, so output is tested without a
//! cluster.

use std::io::{self, Write};

use api_types::ContainerCheckpoint;
use api_types::podcheckpoint::PodCheckpoint;

/// `-o` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Json,
    Yaml,
}

impl OutputFormat {
    pub const ALLOWED: &str = "json, yaml";
}

/// Why output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    #[error("failed to write the output")]
    Write(#[from] io::Error),
    #[error("failed to encode the output as JSON")]
    Json(#[from] serde_json::Error),
    #[error("failed to encode the output as YAML")]
    Yaml(#[from] serde_saphyr::ser::Error),
}

/// The five lines of the proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// `name/address` (or the name alone when the address is unknown).
    pub node: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub archive: String,
}

impl Summary {
    /// The summary of a finished checkpoint; `namespace` is used when the
    /// object does not carry one.
    pub fn from_checkpoint(c: &ContainerCheckpoint, namespace: &str) -> Self {
        Self {
            node: c.node_display(),
            namespace: c
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| namespace.to_owned()),
            pod: c.spec.pod_name.clone(),
            container: c.spec.container.clone(),
            archive: c.status.archive_path.clone(),
        }
    }
}

impl Summary {
    /// One summary per checkpointed container of a finished `PodCheckpoint`,
    /// in the order of its status. The node is `status.nodeName` (the object
    /// carries no address), the archive `archive.path` exactly as the status
    /// gives it: relative to the node's checkpoint directory
    /// (`<kubelet root>/checkpoints`, `/var/lib/kubelet/checkpoints` by
    /// default), since KEP-5823 keeps host paths out of the API.
    pub fn from_pod_checkpoint(pc: &PodCheckpoint, namespace: &str) -> Vec<Self> {
        let Some(status) = pc.status.as_ref() else {
            return Vec::new();
        };
        let namespace = pc
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.to_owned());
        status
            .checkpointed_containers
            .iter()
            .map(|c| Self {
                node: status.node_name.clone().unwrap_or_default(),
                namespace: namespace.clone(),
                pod: pc.spec.source_pod_name.clone(),
                container: c.name.clone(),
                archive: c
                    .archive
                    .as_ref()
                    .map_or_else(|| "<none>".to_owned(), |a| a.path.clone()),
            })
            .collect()
    }
}

/// Width of the label column: `Checkpoint Archive:` and four spaces, as in
/// the proposal's example.
const LABEL_WIDTH: usize = 23;

/// ```text
/// Node:                  127.0.0.1/127.0.0.1
/// Namespace:             default
/// Pod:                   test-pod-1
/// Container:             container-2
/// Checkpoint Archive:    /var/lib/kubelet/checkpoints/checkpoint-archive.tar
/// ```
pub fn print_summary(summary: &Summary, out: &mut impl Write) -> io::Result<()> {
    for (label, value) in [
        ("Node:", &summary.node),
        ("Namespace:", &summary.namespace),
        ("Pod:", &summary.pod),
        ("Container:", &summary.container),
        ("Checkpoint Archive:", &summary.archive),
    ] {
        writeln!(out, "{label:<LABEL_WIDTH$}{value}")?;
    }
    Ok(())
}

/// The five lines of each summary, blocks separated by a blank line.
pub fn print_summaries(summaries: &[Summary], out: &mut impl Write) -> io::Result<()> {
    for (i, summary) in summaries.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        print_summary(summary, out)?;
    }
    Ok(())
}

/// `-o json` (indented by four spaces, as kubectl prints) or `-o yaml` of
/// an object (a `ContainerCheckpoint`, a `PodCheckpoint`).
pub fn print_object(
    c: &impl serde::Serialize,
    format: OutputFormat,
    out: &mut impl Write,
) -> Result<(), PrintError> {
    match format {
        OutputFormat::Json => {
            let mut ser = serde_json::Serializer::with_formatter(
                &mut *out,
                serde_json::ser::PrettyFormatter::with_indent(b"    "),
            );
            serde::Serialize::serialize(c, &mut ser)?;
            writeln!(out)?;
        }
        OutputFormat::Yaml => {
            let yaml = serde_saphyr::to_string(c)?;
            out.write_all(yaml.as_bytes())?;
            if !yaml.ends_with('\n') {
                writeln!(out)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use api_types::{ContainerCheckpointSpec, ContainerCheckpointStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    pub(crate) fn sample() -> ContainerCheckpoint {
        ContainerCheckpoint::new(
            "default",
            ContainerCheckpointSpec {
                pod_name: "test-pod-1".into(),
                pod_uid: "6f1c0b8e-2a1d-4a5e-9d53-0c1f0d9a4b11".into(),
                container: "container-2".into(),
                timeout_seconds: 30,
            },
            ContainerCheckpointStatus {
                node_name: "127.0.0.1".into(),
                node_address: "127.0.0.1".into(),
                archive_path: "/var/lib/kubelet/checkpoints/checkpoint-archive.tar".into(),
                start_time: Time("2026-11-27T07:30:00Z".parse().unwrap()),
                completion_time: Time("2026-11-27T07:30:01Z".parse().unwrap()),
            },
        )
    }

    fn render(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn five_lines_match_the_proposal() {
        let text = render(|o| print_summary(&Summary::from_checkpoint(&sample(), "x"), o).unwrap());
        // The proposal's example, verbatim (its leading space is the code block's indent).
        let kep = " Node:                  127.0.0.1/127.0.0.1
 Namespace:             default
 Pod:                   test-pod-1
 Container:             container-2
 Checkpoint Archive:    /var/lib/kubelet/checkpoints/checkpoint-archive.tar
";
        let expected: String = kep.lines().map(|l| format!("{}\n", &l[1..])).collect();
        assert_eq!(text, expected);
        insta::assert_snapshot!("summary", text);
    }

    #[test]
    fn node_without_address_and_namespace_fallback() {
        let mut c = sample();
        c.status.node_address.clear();
        c.metadata.namespace = None;
        let s = Summary::from_checkpoint(&c, "prod");
        assert_eq!(s.node, "127.0.0.1");
        assert_eq!(s.namespace, "prod");
    }

    #[test]
    fn json_and_yaml_objects() {
        let json = render(|o| print_object(&sample(), OutputFormat::Json, o).unwrap());
        assert!(
            json.starts_with(
                "{\n    \"apiVersion\": \"subresources.checkpoint.kcr.dev/v1alpha1\",\n"
            ),
            "{json}"
        );
        assert_eq!(
            serde_json::from_str::<ContainerCheckpoint>(&json).unwrap(),
            sample()
        );
        insta::assert_snapshot!("object_json", json);

        let yaml = render(|o| print_object(&sample(), OutputFormat::Yaml, o).unwrap());
        assert_eq!(
            serde_saphyr::from_str::<ContainerCheckpoint>(&yaml).unwrap(),
            sample()
        );
        insta::assert_snapshot!("object_yaml", yaml);
    }

    #[test]
    fn one_block_per_container_of_a_pod_checkpoint() {
        let pc = crate::podcheckpoint::tests::completed(3, &["a", "b", "c"]);
        let text = render(|o| {
            print_summaries(&Summary::from_pod_checkpoint(&pc, "x"), o).unwrap();
        });
        insta::assert_snapshot!("pod_checkpoint_summaries", text);
        assert_eq!(text.split("\n\n").count(), 3);
        assert!(text.starts_with(
            "Node:                  node-1\nNamespace:             default\nPod:                   counter\nContainer:             a\nCheckpoint Archive:    checkpoint-counter_default-a-2026-11-30T07:00:00Z.tar\n\n"
        ));
        // A single container: the five lines alone.
        let one = crate::podcheckpoint::tests::completed(3, &["app"]);
        let text = render(|o| {
            print_summaries(&Summary::from_pod_checkpoint(&one, "x"), o).unwrap();
        });
        assert_eq!(text.lines().count(), 5);
        assert!(!text.ends_with("\n\n"));
    }
}
