//! `--token-auth-file`: kube-apiserver's static token CSV
//! (`k8s.io/apiserver/plugin/pkg/authenticator/token/tokenfile`):
//! `token,user,uid[,"group1,group2"]`, one per line; `#` lines are comments.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use apiserver_lib::UserInfo;
use apiserver_lib::authn::StaticTokensForTesting;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// Split one CSV record (double quotes group, `""` is a quote).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    fields.push(cur);
    Ok(fields)
}

/// Parse the file's text; `origin` names it in errors.
pub fn parse(text: &str, origin: &Path) -> Result<StaticTokensForTesting, Error> {
    let mut tokens = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |reason: String| Error::Line {
            path: origin.into(),
            line: i + 1,
            reason,
        };
        let fields = csv_fields(line).map_err(err)?;
        if fields.len() < 3 {
            return Err(err(format!(
                "token file must have at least 3 columns (token, user name, user uid), found {}",
                fields.len()
            )));
        }
        let token = fields[0].trim().to_owned();
        if token.is_empty() {
            return Err(err("empty token".into()));
        }
        let groups = fields
            .get(3)
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let user = UserInfo {
            name: fields[1].trim().to_owned(),
            uid: fields[2].trim().to_owned(),
            groups,
            extra: BTreeMap::new(),
        };
        tokens.insert(token, user);
    }
    Ok(StaticTokensForTesting { tokens })
}

/// Read and parse a token file.
pub fn load(path: &Path) -> Result<StaticTokensForTesting, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.into(),
        source,
    })?;
    parse(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_format() {
        let t = parse(
            "# comment\nabc,alice,1001,\"devs,ops\"\nxyz,bob,1002\n",
            Path::new("tokens.csv"),
        )
        .unwrap();
        let a = &t.tokens["abc"];
        assert_eq!((a.name.as_str(), a.uid.as_str()), ("alice", "1001"));
        assert_eq!(a.groups, vec!["devs".to_string(), "ops".to_string()]);
        assert!(t.tokens["xyz"].groups.is_empty());
        let e = parse("onlytoken,user\n", Path::new("t.csv")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("t.csv:1: token file must have at least 3 columns"),
            "{e}"
        );
    }
}
