//! `kcr-pki`: the certificates of a local stack, as PEM files (keys 0600).
//!
//! ```text
//! kcr-pki ca    --out DIR/NAME --cn CN                 # DIR/NAME.crt + DIR/NAME.key, kept if present
//! kcr-pki issue --ca DIR/CA --out DIR/NAME --cn CN [--group G]... [--host H]... [--server] [--client]
//! ```
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use apiserver_lib::pki::{Ca, Pem};
use apiserver_lib::tls::write_private;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "kcr-pki",
    about = "Make CAs and certificates for a local kubectl-checkpoint stack"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a CA (PREFIX.crt, PREFIX.key) unless it exists.
    Ca {
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
        #[arg(long)]
        cn: String,
    },
    /// Issue a certificate signed by the CA at PREFIX.crt/.key.
    Issue {
        #[arg(long, value_name = "PREFIX")]
        ca: PathBuf,
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
        #[arg(long)]
        cn: String,
        /// Organisation (a Kubernetes group); repeatable.
        #[arg(long)]
        group: Vec<String>,
        /// DNS name or IP for serving; repeatable.
        #[arg(long)]
        host: Vec<String>,
        #[arg(long)]
        server: bool,
        #[arg(long)]
        client: bool,
    },
}

fn with_ext(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

fn write(prefix: &Path, pem: &Pem) -> Result<()> {
    if let Some(dir) = prefix.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    write_private(&with_ext(prefix, ".key"), pem.key.as_bytes())?;
    write_private(&with_ext(prefix, ".crt"), pem.cert.as_bytes())?;
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Ca { out, cn } => {
            if with_ext(&out, ".crt").exists() && with_ext(&out, ".key").exists() {
                return Ok(());
            }
            write(&out, &Ca::new(&cn)?.pem)
        }
        Cmd::Issue {
            ca,
            out,
            cn,
            group,
            host,
            server,
            client,
        } => {
            let read = |ext| {
                let p = with_ext(&ca, ext);
                std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
            };
            let ca = Ca::from_pem(&read(".crt")?, &read(".key")?).context("loading the CA")?;
            let groups: Vec<&str> = group.iter().map(String::as_str).collect();
            let hosts: Vec<&str> = host.iter().map(String::as_str).collect();
            let pem = match (server, client) {
                (true, true) => ca.server_and_client(&cn, &groups, &hosts)?,
                (true, false) => ca.server(&cn, &hosts)?,
                (false, true) => ca.client(&cn, &groups)?,
                (false, false) => bail!("say --server, --client or both"),
            };
            write(&out, &pem)
        }
    }
}
