//! Label and field selectors on lists (`k8s.io/apimachinery/pkg/labels`,
//! `pkg/fields`): equality, inequality, existence and set-based label terms;
//! equality and inequality field terms on any dotted path of the object.

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("unable to parse requirement: {0}")]
    Label(String),
    #[error("invalid selector: '{0}'; can't understand '{1}'")]
    Field(String, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelTerm {
    Eq(String, String),
    NotEq(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed `labelSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<LabelTerm>);

/// Split at commas outside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn set_values(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

/// A label key or value character (`[A-Za-z0-9-_./]`).
fn label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_./".contains(c)
}

/// The first character of `s` that cannot be in a key or value, as
/// kube's selector lexer reports it.
fn check_token(s: &str) -> Result<(), Error> {
    match s.chars().find(|c| !label_char(*c)) {
        Some(c) => Err(Error::Label(format!("found '{c}', expected: identifier"))),
        None => Ok(()),
    }
}

impl LabelSelector {
    /// No requirements: everything matches.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn parse(s: &str) -> Result<Self, Error> {
        let mut terms = Vec::new();
        for term in split_terms(s) {
            let bad = || Error::Label(term.to_owned());
            let parsed = if let Some((k, v)) = term.split_once("!=") {
                LabelTerm::NotEq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once("==") {
                LabelTerm::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once('=') {
                LabelTerm::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once(" notin ") {
                LabelTerm::NotIn(k.trim().into(), set_values(v).ok_or_else(bad)?)
            } else if let Some((k, v)) = term.split_once(" in ") {
                LabelTerm::In(k.trim().into(), set_values(v).ok_or_else(bad)?)
            } else if let Some(k) = term.strip_prefix('!') {
                LabelTerm::NotExists(k.trim().into())
            } else if term
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                LabelTerm::Exists(term.into())
            } else {
                return Err(bad());
            };
            match &parsed {
                LabelTerm::Eq(k, v) | LabelTerm::NotEq(k, v) => {
                    check_token(k)?;
                    check_token(v)?;
                }
                LabelTerm::In(k, vs) | LabelTerm::NotIn(k, vs) => {
                    check_token(k)?;
                    for v in vs {
                        check_token(v)?;
                    }
                }
                LabelTerm::Exists(k) | LabelTerm::NotExists(k) => check_token(k)?,
            }
            terms.push(parsed);
        }
        Ok(Self(terms))
    }

    /// Whether an object's `metadata.labels` match.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|t| match t {
            LabelTerm::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelTerm::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelTerm::Exists(k) => get(k).is_some(),
            LabelTerm::NotExists(k) => get(k).is_none(),
            LabelTerm::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelTerm::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        })
    }
}

/// A parsed `fieldSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// No requirements: everything matches.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Both selectors' requirements.
    pub fn and(mut self, other: FieldSelector) -> Self {
        self.0.extend(other.0);
        self
    }

    /// Rename (or refuse, with the field) every field path.
    pub fn map_fields(self, f: impl Fn(&str) -> Result<String, String>) -> Result<Self, String> {
        let mut out = Vec::with_capacity(self.0.len());
        for (path, equal, value) in self.0 {
            out.push((f(&path)?, equal, value));
        }
        Ok(Self(out))
    }

    pub fn parse(s: &str) -> Result<Self, Error> {
        let mut terms = Vec::new();
        for term in split_terms(s) {
            let (path, equal, value) = if let Some((k, v)) = term.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = term.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = term.split_once('=') {
                (k, true, v)
            } else {
                return Err(Error::Field(s.to_owned(), term.to_owned()));
            };
            terms.push((path.trim().to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self(terms))
    }

    /// Whether the object's fields match (a missing field reads as "").
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, equal, value)| {
            let pointer = format!("/{}", path.replace('.', "/"));
            let actual = match object.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == *value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels() {
        let o = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        for (sel, want) in [
            ("app=web", true),
            ("app==web,tier=front", true),
            ("app!=web", false),
            ("app", true),
            ("!app", false),
            ("app in (web, db)", true),
            ("app notin (web)", false),
            ("missing notin (x)", true),
            ("", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&o),
                want,
                "{sel}"
            );
        }
        assert!(LabelSelector::parse("app in web").is_err());
    }

    #[test]
    fn fields() {
        let o = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        for (sel, want) in [
            ("metadata.name=p", true),
            ("spec.nodeName=n1,status.phase!=Pending", true),
            ("spec.nodeName=n2", false),
            ("spec.missing=", true),
        ] {
            assert_eq!(
                FieldSelector::parse(sel).unwrap().matches(&o),
                want,
                "{sel}"
            );
        }
        assert!(FieldSelector::parse("bogus").is_err());
    }
}
