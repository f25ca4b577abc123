//! PATCH bodies as kube-apiserver applies them
//! (`k8s.io/apiserver/pkg/endpoints/handlers/patch.go`): JSON merge patch
//! (RFC 7386) and JSON patch (RFC 6902, with evanphx/json-patch's reading of
//! `test` against a missing path as `null`), and the error words of Go's
//! `encoding/json` for bodies that do not parse.

use serde_json::Value;

/// RFC 7386: `null` removes, objects merge, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Why a JSON patch could not be applied (kube answers every one with the
/// same generic 422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatchError(pub String);

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split(path: &str) -> Result<Vec<String>, PatchError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| PatchError(format!("invalid path {path:?}")))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn parent<'a>(doc: &'a mut Value, tokens: &[String]) -> Result<&'a mut Value, PatchError> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m
                .get_mut(t)
                .ok_or_else(|| PatchError(format!("missing path element {t:?}")))?,
            Value::Array(a) => {
                let i: usize = t
                    .parse()
                    .map_err(|_| PatchError(format!("invalid index {t:?}")))?;
                a.get_mut(i)
                    .ok_or_else(|| PatchError(format!("index {i} out of range")))?
            }
            _ => return Err(PatchError(format!("cannot descend into {t:?}"))),
        };
    }
    Ok(cur)
}

fn get<'a>(doc: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get(t)?,
            Value::Array(a) => a.get(t.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    let tokens = split(path)?;
    let Some((last, parents)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent(doc, parents)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
                return Ok(());
            }
            let i: usize = last
                .parse()
                .map_err(|_| PatchError(format!("invalid index {last:?}")))?;
            if i > a.len() {
                return Err(PatchError(format!("index {i} out of range")));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err(PatchError(format!("cannot add at {path:?}"))),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, PatchError> {
    let tokens = split(path)?;
    let Some((last, parents)) = tokens.split_last() else {
        return Err(PatchError("cannot remove the whole document".into()));
    };
    match parent(doc, parents)? {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| PatchError(format!("missing path {path:?}"))),
        Value::Array(a) => {
            let i: usize = last
                .parse()
                .map_err(|_| PatchError(format!("invalid index {last:?}")))?;
            if i >= a.len() {
                return Err(PatchError(format!("index {i} out of range")));
            }
            Ok(a.remove(i))
        }
        _ => Err(PatchError(format!("cannot remove {path:?}"))),
    }
}

/// Apply a decoded JSON patch. All or nothing: `doc` is only changed on success.
pub fn apply_json_patch(doc: &mut Value, ops: &[Value]) -> Result<(), PatchError> {
    let mut work = doc.clone();
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError("operation missing path".into()))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| PatchError(format!("{kind} operation missing value")))
        };
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| PatchError(format!("{kind} operation missing from")))
        };
        match kind {
            "add" => add(&mut work, path, value()?)?,
            "remove" => {
                remove(&mut work, path)?;
            }
            "replace" => {
                remove(&mut work, path)?;
                add(&mut work, path, value()?)?;
            }
            "move" => {
                let v = remove(&mut work, from()?)?;
                add(&mut work, path, v)?;
            }
            "copy" => {
                let tokens = split(from()?)?;
                let v = get(&work, &tokens)
                    .cloned()
                    .ok_or_else(|| PatchError("copy from a missing path".into()))?;
                add(&mut work, path, v)?;
            }
            "test" => {
                let want = op.get("value").cloned().unwrap_or(Value::Null);
                let tokens = split(path)?;
                let actual = get(&work, &tokens);
                let ok = match actual {
                    Some(v) => *v == want,
                    // evanphx/json-patch: a missing value tests equal to null
                    // (when its parent exists).
                    None => {
                        want.is_null()
                            && tokens
                                .split_last()
                                .is_some_and(|(_, p)| get(&work, p).is_some())
                    }
                };
                if !ok {
                    return Err(PatchError(format!("testing value {path} failed")));
                }
            }
            other => return Err(PatchError(format!("unexpected op {other:?}"))),
        }
    }
    *doc = work;
    Ok(())
}

fn describe(b: u8) -> String {
    match b {
        b'\'' => "'\\''".into(),
        b'"' => "'\"'".into(),
        0x20..=0x7e => format!("'{}'", b as char),
        _ => format!("'\\x{b:02x}'"),
    }
}

/// The message Go's `json.Unmarshal` gives for a body that does not parse
/// (the common cases: a bad first character, a misspelt literal, a cut-off body).
pub fn go_json_error(bytes: &[u8]) -> String {
    let mut i = 0;
    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
        i += 1;
    }
    let Some(&first) = bytes.get(i) else {
        return "unexpected end of JSON input".into();
    };
    for lit in ["null", "true", "false"] {
        if first == lit.as_bytes()[0] {
            for (j, want) in lit.bytes().enumerate().skip(1) {
                match bytes.get(i + j) {
                    None => return "unexpected end of JSON input".into(),
                    Some(&b) if b != want => {
                        return format!(
                            "invalid character {} in literal {lit} (expecting {})",
                            describe(b),
                            describe(want)
                        );
                    }
                    _ => {}
                }
            }
            let after = i + lit.len();
            return match bytes[after..].iter().find(|b| !b.is_ascii_whitespace()) {
                Some(&b) => format!("invalid character {} after top-level value", describe(b)),
                None => "unexpected end of JSON input".into(),
            };
        }
    }
    if !(first == b'{' || first == b'[' || first == b'"' || first == b'-' || first.is_ascii_digit())
    {
        return format!(
            "invalid character {} looking for beginning of value",
            describe(first)
        );
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(_) => "unexpected end of JSON input".into(),
        Err(e) if e.is_eof() => "unexpected end of JSON input".into(),
        Err(e) => {
            let line_start = if e.line() <= 1 {
                0
            } else {
                bytes
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .map(|(k, _)| k + 1)
                    .nth(e.line() - 2)
                    .unwrap_or(0)
            };
            let offset = line_start + e.column().saturating_sub(1);
            match bytes.get(offset) {
                Some(&b) => format!(
                    "invalid character {} {}",
                    describe(b),
                    go_context(bytes, offset)
                ),
                None => "unexpected end of JSON input".into(),
            }
        }
    }
}

fn go_context(bytes: &[u8], offset: usize) -> &'static str {
    let prev = bytes[..offset]
        .iter()
        .rev()
        .find(|b| !b.is_ascii_whitespace())
        .copied();
    match prev {
        Some(b'{') | Some(b',') => "looking for beginning of object key string",
        Some(b':') | Some(b'[') => "looking for beginning of value",
        Some(b'"') => "after object key",
        _ => "after array element",
    }
}

/// Parse JSON like Go's strict decoder sees it: the value (the last of
/// duplicate keys wins, as in Go) and the paths of duplicated keys
/// (`spec.name`), for `fieldValidation`.
pub fn parse_with_duplicates(bytes: &[u8]) -> Result<(Value, Vec<String>), serde_json::Error> {
    use serde::de::DeserializeSeed;
    let dups = std::cell::RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Seed {
        path: String::new(),
        dups: &dups,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((v, dups.into_inner()))
}

struct Seed<'a> {
    path: String,
    dups: &'a std::cell::RefCell<Vec<String>>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Seed<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let seed = Seed {
                path: format!("{}[{}]", self.path, out.len()),
                dups: self.dups,
            };
            match seq.next_element_seed(seed)? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            let v = map.next_value_seed(Seed {
                path: path.clone(),
                dups: self.dups,
            })?;
            if out.insert(key, v).is_some() {
                self.dups.borrow_mut().push(path);
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch() {
        let mut o = json!({"metadata": {"labels": {"a": "1", "touched": "x"}}, "spec": {"n": 1}});
        merge(
            &mut o,
            &json!({"metadata": {"labels": {"merged": "yes", "touched": null}}}),
        );
        assert_eq!(o["metadata"]["labels"], json!({"a": "1", "merged": "yes"}));
    }

    #[test]
    fn json_patch_ops() {
        let mut o = json!({"metadata": {"name": "x"}, "spec": {"name": "a"}});
        apply_json_patch(
            &mut o,
            &[json!({"op": "add", "path": "/metadata/labels", "value": {"jp": "1"}})],
        )
        .unwrap();
        assert_eq!(o["metadata"]["labels"]["jp"], "1");
        // Failed test: nothing applied.
        let before = o.clone();
        assert!(
            apply_json_patch(
                &mut o,
                &[
                    json!({"op": "test", "path": "/spec/name", "value": "wrong"}),
                    json!({"op": "add", "path": "/spec/x", "value": 1})
                ]
            )
            .is_err()
        );
        assert_eq!(o, before);
        assert!(
            apply_json_patch(
                &mut o,
                &[json!({"op": "remove", "path": "/metadata/annotations/none"})]
            )
            .is_err()
        );
        // kube-rs' finalizer helper: test null on a missing list, then add it.
        apply_json_patch(
            &mut o,
            &[
                json!({"op": "test", "path": "/metadata/finalizers", "value": null}),
                json!({"op": "add", "path": "/metadata/finalizers", "value": ["f"]}),
            ],
        )
        .unwrap();
        apply_json_patch(
            &mut o,
            &[json!({"op": "add", "path": "/metadata/finalizers/-", "value": "g"})],
        )
        .unwrap();
        assert_eq!(o["metadata"]["finalizers"], json!(["f", "g"]));
    }

    #[test]
    fn duplicates() {
        let (v, d) =
            parse_with_duplicates(br#"{"spec":{"name":"x","name":"y","l":[{"a":1,"a":2}]}}"#)
                .unwrap();
        assert_eq!(v["spec"]["name"], "y");
        assert_eq!(d, vec!["spec.name", "spec.l[0].a"]);
    }

    #[test]
    fn go_messages() {
        assert_eq!(
            go_json_error(b"not json"),
            "invalid character 'o' in literal null (expecting 'u')"
        );
        assert_eq!(
            go_json_error(&[0x81, 0xaa]),
            "invalid character '\\x81' looking for beginning of value"
        );
        assert_eq!(go_json_error(b""), "unexpected end of JSON input");
        assert_eq!(go_json_error(b"{\"a\":1"), "unexpected end of JSON input");
        assert_eq!(
            go_json_error(b"{\"a\" 1}"),
            "invalid character '1' after object key"
        );
        assert_eq!(
            go_json_error(b"{\n\"a\":1,\n}"),
            "invalid character '}' looking for beginning of object key string"
        );
    }
}
