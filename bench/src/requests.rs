//! The stand-in's request log (`kube-apiserver-standin serve --log-json`):
//! one JSON line per answered request with its user, method, path, query,
//! code and server-side milliseconds. The bench marks where the log ends
//! before a measurement and reads what was added after, to count and time
//! the requests each party made.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::stats::Samples;

/// One answered request.
#[derive(Debug, Clone)]
pub struct Request {
    /// Seconds since the epoch (the log line's timestamp).
    pub at: f64,
    pub user: String,
    pub method: String,
    pub path: String,
    pub query: String,
    pub code: u16,
    pub ms: u64,
}

impl Request {
    /// `METHOD what`: the verb as RBAC names it (a GET with `watch=true`
    /// is a watch, a GET of a collection a list) and the path, with the
    /// name of a generated object replaced by `NAME`.
    pub fn key(&self, generated_prefix: Option<&str>) -> String {
        let verb = match self.method.as_str() {
            "GET"
                if self
                    .query
                    .split('&')
                    .any(|p| p == "watch=true" || p == "watch=1") =>
            {
                "WATCH"
            }
            m => m,
        };
        let path = match generated_prefix {
            Some(prefix) => self
                .path
                .split('/')
                .map(|seg| {
                    if seg.starts_with(prefix) && seg.len() > prefix.len() {
                        "NAME"
                    } else {
                        seg
                    }
                })
                .collect::<Vec<_>>()
                .join("/"),
            None => self.path.clone(),
        };
        format!("{verb} {path}")
    }
}

/// The log file and a position in it.
#[derive(Debug, Clone)]
pub struct Log {
    path: PathBuf,
}

impl Log {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
    }

    /// The current end of the log.
    pub fn mark(&self) -> anyhow::Result<u64> {
        Ok(std::fs::metadata(&self.path)
            .with_context(|| format!("failed to stat the stand-in's log {}", self.path.display()))?
            .len())
    }

    /// The requests logged after `mark`.
    pub fn since(&self, mark: u64) -> anyhow::Result<Vec<Request>> {
        let mut file = std::fs::File::open(&self.path)
            .with_context(|| format!("failed to open {}", self.path.display()))?;
        file.seek(SeekFrom::Start(mark))?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        Ok(text.lines().filter_map(parse).collect())
    }
}

fn parse(line: &str) -> Option<Request> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = v.get("fields")?;
    if fields.get("message")?.as_str()? != "request" {
        return None;
    }
    let s = |k: &str| {
        fields
            .get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    Some(Request {
        at: timestamp(v.get("timestamp")?.as_str()?)?,
        user: s("user"),
        method: s("method"),
        path: s("path"),
        query: s("query"),
        code: u16::try_from(fields.get("code")?.as_u64()?).ok()?,
        ms: fields.get("ms").and_then(|x| x.as_u64()).unwrap_or(0),
    })
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp
/// (`2026-11-30T08:19:54.300111Z`).
fn timestamp(t: &str) -> Option<f64> {
    let (date, time) = t.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut hms = time.split(':');
    let (h, min) = (
        hms.next()?.parse::<i64>().ok()?,
        hms.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = hms.next()?.parse().ok()?;
    // days from civil (Howard Hinnant's algorithm)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + min * 60) as f64 + sec)
}

/// Requests grouped by [`Request::key`]: how many, and their server-side time.
pub fn breakdown<'a>(
    requests: impl IntoIterator<Item = &'a Request>,
    generated_prefix: Option<&str>,
) -> BTreeMap<String, Samples> {
    let mut by: BTreeMap<String, Samples> = BTreeMap::new();
    for r in requests {
        by.entry(r.key(generated_prefix))
            .or_default()
            .push(Duration::from_millis(r.ms));
    }
    by
}

/// Print a breakdown as `PART requests WHO count=.. per_run=.. median_ms=.. KEY`.
pub fn print_breakdown(part: &str, who: &str, by: &BTreeMap<String, Samples>, runs: usize) {
    for (key, samples) in by {
        println!(
            "{part} requests {who} count={} per_run={:.2} server_median_ms={:.1} {key}",
            samples.len(),
            samples.len() as f64 / runs.max(1) as f64,
            crate::stats::ms(samples.median()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_standins_json_lines() {
        let line = r#"{"timestamp":"2026-11-30T08:19:54.500000Z","level":"INFO","fields":{"message":"request","user":"alice","method":"GET","path":"/apis/checkpoint.kcr.dev/v1alpha1/namespaces/default/podcheckpoints","query":"fieldSelector=metadata.name%3Dslow-abcde&watch=true","content_type":"","code":200,"ms":3},"target":"kcr_testkit::standin::server"}"#;
        let r = parse(line).unwrap();
        assert_eq!((r.user.as_str(), r.code, r.ms), ("alice", 200, 3));
        assert_eq!(
            r.key(None),
            "WATCH /apis/checkpoint.kcr.dev/v1alpha1/namespaces/default/podcheckpoints"
        );
        // 2026-11-30T08:19:54.5Z
        assert!((r.at - 1_796_026_794.5).abs() < 1e-6, "{}", r.at);
        assert!(parse(r#"{"fields":{"message":"forbidden"}}"#).is_none());
        assert!(parse("not json").is_none());
    }

    #[test]
    fn generated_names_are_grouped() {
        let r = Request {
            at: 0.0,
            user: String::new(),
            method: "PATCH".into(),
            path: "/apis/checkpoint.kcr.dev/v1alpha1/namespaces/default/podcheckpoints/load-3-x7k2p/status".into(),
            query: String::new(),
            code: 200,
            ms: 1,
        };
        assert_eq!(
            r.key(Some("load-")),
            "PATCH /apis/checkpoint.kcr.dev/v1alpha1/namespaces/default/podcheckpoints/NAME/status"
        );
    }
}
