//! Just enough of kube's protobuf wire format to read the review objects
//! kubectl's typed clients POST as `application/vnd.kubernetes.protobuf`
//! (`kubectl auth can-i`, `kubectl auth whoami`): the `k8s\0` envelope
//! (`runtime.Unknown`) and the `authorization.k8s.io/v1` /
//! `authentication.k8s.io/v1` review specs, turned into the JSON the rest of
//! the stand-in reads. Field numbers from `k8s.io/api/*/v1/generated.proto`.

use serde_json::{Map, Value, json};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("not a kubernetes protobuf envelope")]
    NoEnvelope,
    #[error("malformed protobuf")]
    Malformed,
}

/// kube's protobuf media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

#[derive(Debug, Clone, Copy)]
enum Field<'a> {
    Varint,
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(buf: &mut &[u8]) -> Result<u64, Error> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first().ok_or(Error::Malformed)?;
        *buf = rest;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err(Error::Malformed)
}

fn fields(mut buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, Error> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let (number, wire) = (key >> 3, key & 7);
        let field = match wire {
            0 => {
                varint(&mut buf)?;
                Field::Varint
            }
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                buf = buf.get(n..).ok_or(Error::Malformed)?;
                Field::Fixed
            }
            2 => {
                let len = usize::try_from(varint(&mut buf)?).map_err(|_| Error::Malformed)?;
                let (bytes, rest) = (
                    buf.get(..len).ok_or(Error::Malformed)?,
                    buf.get(len..).ok_or(Error::Malformed)?,
                );
                buf = rest;
                Field::Bytes(bytes)
            }
            _ => return Err(Error::Malformed),
        };
        out.push((number, field));
    }
    Ok(out)
}

fn string(b: &[u8]) -> Result<Value, Error> {
    Ok(Value::String(
        std::str::from_utf8(b)
            .map_err(|_| Error::Malformed)?
            .to_owned(),
    ))
}

/// A message of string fields (`names[i]` is field `i + 1`; repeated when the name ends in `[]`).
fn strings(buf: &[u8], names: &[&str]) -> Result<Value, Error> {
    let mut out = Map::new();
    for (n, f) in fields(buf)? {
        let Some(name) = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| names.get(i))
        else {
            continue;
        };
        if let Field::Bytes(b) = f {
            if let Some(list) = name.strip_suffix("[]") {
                let entry = out.entry(list).or_insert_with(|| json!([]));
                if let Some(a) = entry.as_array_mut() {
                    a.push(string(b)?);
                }
            } else {
                out.insert((*name).to_owned(), string(b)?);
            }
        }
    }
    Ok(Value::Object(out))
}

/// `ObjectMeta`: name 1, generateName 2, namespace 3, labels 11, annotations 12.
fn object_meta(buf: &[u8]) -> Result<Value, Error> {
    let mut meta = strings(buf, &["name", "generateName", "namespace"])?;
    for (n, f) in fields(buf)? {
        let (11 | 12, Field::Bytes(entry)) = (n, f) else {
            continue;
        };
        let kv = strings(entry, &["key", "value"])?;
        let key = if n == 11 { "labels" } else { "annotations" };
        if let (Some(k), Some(m)) = (kv.get("key").and_then(Value::as_str), meta.as_object_mut()) {
            let map = m.entry(key).or_insert_with(|| json!({}));
            map[k] = kv.get("value").cloned().unwrap_or_else(|| json!(""));
        }
    }
    Ok(meta)
}

const RESOURCE_ATTRIBUTES: &[&str] = &[
    "namespace",
    "verb",
    "group",
    "version",
    "resource",
    "subresource",
    "name",
];
const NON_RESOURCE_ATTRIBUTES: &[&str] = &["path", "verb"];

/// `SubjectAccessReviewSpec` (and the self/local variants, which use a prefix of it).
fn access_review_spec(buf: &[u8]) -> Result<Value, Error> {
    let mut spec = Map::new();
    let mut extra = Map::new();
    for (n, f) in fields(buf)? {
        let Field::Bytes(b) = f else { continue };
        match n {
            1 => {
                spec.insert(
                    "resourceAttributes".into(),
                    strings(b, RESOURCE_ATTRIBUTES)?,
                );
            }
            2 => {
                spec.insert(
                    "nonResourceAttributes".into(),
                    strings(b, NON_RESOURCE_ATTRIBUTES)?,
                );
            }
            3 => {
                spec.insert("user".into(), string(b)?);
            }
            4 => {
                let groups = spec.entry("groups").or_insert_with(|| json!([]));
                if let Some(a) = groups.as_array_mut() {
                    a.push(string(b)?);
                }
            }
            5 => {
                // map<string, ExtraValue>: key = 1, value = 2 { items = 1 (repeated) }
                let entry = strings(b, &["key"])?;
                let key = entry
                    .get("key")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let mut values = Vec::new();
                for (vn, vf) in fields(b)? {
                    if let (2, Field::Bytes(v)) = (vn, vf)
                        && let Some(items) = strings(v, &["items[]"])?
                            .get("items")
                            .and_then(Value::as_array)
                    {
                        values.extend(items.iter().cloned());
                    }
                }
                extra.insert(key, Value::Array(values));
            }
            6 => {
                spec.insert("uid".into(), string(b)?);
            }
            _ => {}
        }
    }
    if !extra.is_empty() {
        spec.insert("extra".into(), Value::Object(extra));
    }
    Ok(Value::Object(spec))
}

/// Decode a protobuf review or Namespace body to its JSON form; the
/// envelope's kind picks the spec schema.
pub fn decode(body: &[u8]) -> Result<Value, Error> {
    let raw = body.strip_prefix(MAGIC).ok_or(Error::NoEnvelope)?;
    let mut type_meta = json!({});
    let mut object: &[u8] = &[];
    for (n, f) in fields(raw)? {
        match (n, f) {
            (1, Field::Bytes(b)) => type_meta = strings(b, &["apiVersion", "kind"])?,
            (2, Field::Bytes(b)) => object = b,
            _ => {}
        }
    }
    let kind = type_meta
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let mut out = json!({
        "apiVersion": type_meta.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": kind,
        "metadata": {},
    });
    for (n, f) in fields(object)? {
        match (n, f) {
            (1, Field::Bytes(meta)) => {
                out["metadata"] = object_meta(meta)?;
            }
            (2, Field::Bytes(spec)) => {
                out["spec"] = match kind.as_str() {
                    "TokenReview" => strings(spec, &["token", "audiences[]"])?,
                    "SelfSubjectReview" | "Namespace" => json!({}),
                    _ => access_review_spec(spec)?,
                };
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(field: u8, bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![(field << 3) | 2, u8::try_from(bytes.len()).unwrap()];
        v.extend_from_slice(bytes);
        v
    }

    #[test]
    fn self_subject_access_review() {
        let attrs = [ld(1, b"default"), ld(2, b"checkpoint"), ld(5, b"pods")].concat();
        let spec = ld(1, &attrs);
        let object = [ld(1, &[]), ld(2, &spec)].concat();
        let type_meta = [
            ld(1, b"authorization.k8s.io/v1"),
            ld(2, b"SelfSubjectAccessReview"),
        ]
        .concat();
        let body = [
            MAGIC.to_vec(),
            ld(1, &type_meta),
            ld(2, &object),
            ld(4, b"application/vnd.kubernetes.protobuf"),
        ]
        .concat();
        let v = decode(&body).unwrap();
        assert_eq!(v["kind"], "SelfSubjectAccessReview");
        assert_eq!(
            v["spec"]["resourceAttributes"],
            json!({"namespace": "default", "verb": "checkpoint", "resource": "pods"})
        );
        assert_eq!(decode(b"{}"), Err(Error::NoEnvelope));
        let label = [ld(1, b"team"), ld(2, b"a")].concat();
        let meta = [ld(1, b"foo"), ld(11, &label)].concat();
        let type_meta = [ld(1, b"v1"), ld(2, b"Namespace")].concat();
        let body = [MAGIC.to_vec(), ld(1, &type_meta), ld(2, &ld(1, &meta))].concat();
        let v = decode(&body).unwrap();
        assert_eq!(
            v["metadata"],
            json!({"name": "foo", "labels": {"team": "a"}})
        );
        assert_eq!(decode(b"k8s\0\x0a\x05ab"), Err(Error::Malformed));
    }
}
