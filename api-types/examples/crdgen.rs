//! Prints the PodCheckpoint CustomResourceDefinition as YAML:
//! `cargo run -q -p api-types --example crdgen > deploy/crd/podcheckpoints.yaml`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let yaml = serde_saphyr::to_string(&api_types::podcheckpoint::crd())?;
    print!("{}{yaml}", api_types::podcheckpoint::CRD_MANIFEST_HEADER);
    Ok(())
}
