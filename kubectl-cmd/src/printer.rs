//! Printers: plain data in, `impl Write` out, so output is tested without a
//! cluster.

use std::io::{self, Write};

use api_types::ContainerCheckpoint;

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

/// `-o json` (indented by four spaces, as kubectl prints) or `-o yaml`.
pub fn print_object(
    c: &ContainerCheckpoint,
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
}
