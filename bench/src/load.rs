//! Item 3, load: bursts of concurrent `POST .../pods/P/checkpoint` straight
//! to checkpoint-apiserver, authenticated as kube-apiserver's aggregator is
//! (front-proxy client certificate + X-Remote-User/Group), spread over many
//! pods whose node answers checkpoints at once. Counts every answer that is
//! not a success or one of the designed refusals (409 conflict, 429 and the
//! per-node queue's 503), and reports latency percentiles.
//!
//! Bounded: loopback URLs only, at most 5000 requests a burst, 20 bursts,
//! each request cut after --request-timeout.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::stats::{Samples, ms};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// checkpoint-apiserver, e.g. https://127.0.0.1:28443 (loopback only).
    #[arg(long)]
    url: String,
    /// CA of the server's certificate.
    #[arg(long)]
    ca: PathBuf,
    /// Front-proxy client certificate (what kube-apiserver presents).
    #[arg(long)]
    cert: PathBuf,
    #[arg(long)]
    key: PathBuf,
    /// X-Remote-User.
    #[arg(long, default_value = "alice")]
    user: String,
    /// X-Remote-Group (repeat).
    #[arg(long = "group", default_values_t = ["system:authenticated".to_owned()])]
    groups: Vec<String>,
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Pods are PREFIX0 .. PREFIX{pods-1}.
    #[arg(long, default_value = "load-")]
    pod_prefix: String,
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pods: u32,
    #[arg(long, default_value = "app")]
    container: String,
    /// Concurrent requests per burst (request i goes to pod i mod --pods).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=5000))]
    requests: u32,
    /// Bursts, one after the other.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Cut each request after this many seconds (counted as an error).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=600))]
    request_timeout: u64,
    /// One multiplexed HTTP/2 connection instead of one HTTP/1.1 connection per
    /// request in flight.
    #[arg(long)]
    http2: bool,
}

/// What one request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Ok,
    /// 409: the container is being checkpointed already (designed).
    Conflict,
    /// 429 or the per-node queue's 503 (designed).
    Busy,
    Error,
}

#[derive(Debug)]
struct Answer {
    outcome: Outcome,
    code: Option<u16>,
    latency: Duration,
    message: String,
}

type HttpsClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
>;

pub fn run(args: &Args) -> anyhow::Result<()> {
    check_loopback(&args.url)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the tokio runtime")?;
    rt.block_on(run_async(args))
}

fn check_loopback(url: &str) -> anyhow::Result<()> {
    let uri: http::Uri = url.parse().with_context(|| format!("bad --url {url:?}"))?;
    anyhow::ensure!(uri.scheme_str() == Some("https"), "--url must be https");
    let host = uri.host().context("--url has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    anyhow::ensure!(
        loopback,
        "--url must point at a loopback address, got {host}"
    );
    Ok(())
}

fn client(args: &Args) -> anyhow::Result<HttpsClient> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&args.ca)
        .with_context(|| format!("failed to read {}", args.ca.display()))?
    {
        roots
            .add(cert.with_context(|| format!("bad certificate in {}", args.ca.display()))?)
            .context("unusable CA certificate")?;
    }
    let certs = CertificateDer::pem_file_iter(&args.cert)
        .with_context(|| format!("failed to read {}", args.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("bad certificate in {}", args.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&args.key)
        .with_context(|| format!("failed to read the key {}", args.key.display()))?;
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS versions")?
    .with_root_certificates(roots)
    .with_client_auth_cert(certs, key)
    .context("unusable client certificate")?;
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only();
    let connector = if args.http2 {
        builder.enable_http2().build()
    } else {
        builder.enable_http1().build()
    };
    Ok(Client::builder(TokioExecutor::new())
        .http2_only(args.http2)
        .build(connector))
}

async fn run_async(args: &Args) -> anyhow::Result<()> {
    let client = client(args)?;
    let protocol = if args.http2 { "h2" } else { "http1.1" };
    let mut all = Vec::new();
    for round in 1..=args.rounds {
        let started = Instant::now();
        let answers = burst(&client, args).await?;
        let wall = started.elapsed();
        print_summary(&format!("round={round}"), protocol, &answers, Some(wall));
        all.extend(answers);
    }
    print_summary("total", protocol, &all, None);
    let errors: Vec<&Answer> = all.iter().filter(|a| a.outcome == Outcome::Error).collect();
    let mut messages: BTreeMap<String, usize> = BTreeMap::new();
    for e in &errors {
        let key = format!("{:?} {}", e.code, e.message);
        *messages.entry(key).or_default() += 1;
    }
    for (m, n) in messages.iter().take(10) {
        println!("load error x{n}: {m}");
    }
    println!("load {protocol} errors={}", errors.len());
    Ok(())
}

async fn burst(client: &HttpsClient, args: &Args) -> anyhow::Result<Vec<Answer>> {
    let n = args.requests as usize;
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let pod = format!("{}{}", args.pod_prefix, i % args.pods as usize);
        let uri = format!(
            "{}/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/{}/pods/{pod}/checkpoint?container={}",
            args.url.trim_end_matches('/'),
            args.namespace,
            args.container
        );
        let mut req = http::Request::post(uri).header("x-remote-user", &args.user);
        for g in &args.groups {
            req = req.header("x-remote-group", g);
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .context("failed to build a request")?;
        let client = client.clone();
        let barrier = barrier.clone();
        let timeout = Duration::from_secs(args.request_timeout);
        tasks.spawn(async move {
            barrier.wait().await;
            let start = Instant::now();
            let answer = tokio::time::timeout(timeout, async {
                let resp = client.request(req).await?;
                let code = resp.status().as_u16();
                let body = resp.into_body().collect().await?.to_bytes();
                anyhow::Ok((code, body))
            })
            .await;
            let latency = start.elapsed();
            match answer {
                Ok(Ok((code, body))) => classify(code, &body, latency),
                Ok(Err(e)) => Answer {
                    outcome: Outcome::Error,
                    code: None,
                    latency,
                    message: format!("{e:#}"),
                },
                Err(_) => Answer {
                    outcome: Outcome::Error,
                    code: None,
                    latency,
                    message: format!("no answer within {timeout:?}"),
                },
            }
        });
    }
    let mut answers = Vec::with_capacity(n);
    while let Some(joined) = tasks.join_next().await {
        answers.push(joined.context("a request task failed")?);
    }
    if answers.len() != n {
        bail!("{} of {n} requests answered", answers.len());
    }
    Ok(answers)
}

fn classify(code: u16, body: &[u8], latency: Duration) -> Answer {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let message = json["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
    let outcome = match code {
        200 if json["kind"] == "ContainerCheckpoint"
            && json["status"]["archivePath"].is_string() =>
        {
            Outcome::Ok
        }
        409 => Outcome::Conflict,
        429 => Outcome::Busy,
        503 if message.contains("too many checkpoints") => Outcome::Busy,
        _ => Outcome::Error,
    };
    Answer {
        outcome,
        code: Some(code),
        latency,
        message,
    }
}

fn print_summary(label: &str, protocol: &str, answers: &[Answer], wall: Option<Duration>) {
    let count = |o: Outcome| answers.iter().filter(|a| a.outcome == o).count();
    let mut latency = Samples::default();
    for a in answers {
        latency.push(a.latency);
    }
    let mut line = format!(
        "load {protocol} {label} requests={} ok={} conflict_409={} busy={} errors={} p50_ms={:.1} p99_ms={:.1} max_ms={:.1}",
        answers.len(),
        count(Outcome::Ok),
        count(Outcome::Conflict),
        count(Outcome::Busy),
        count(Outcome::Error),
        ms(latency.percentile(50.0)),
        ms(latency.percentile(99.0)),
        ms(latency.max()),
    );
    if let Some(wall) = wall {
        line.push_str(&format!(
            " wall_ms={:.1} req_per_s={:.0}",
            ms(wall),
            answers.len() as f64 / wall.as_secs_f64()
        ));
    }
    println!("{line}");
}
