//! `meta.k8s.io/v1` Table output (what `kubectl get` asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`): custom resources
//! from their printer columns as `apiextensions-apiserver`'s
//! `tableconvertor` builds them (a JSONPath per column, `date` cells rendered
//! as ages, missing values `null`, `PartialObjectMetadata` row objects);
//! built-ins from a few of kube-apiserver's printers (pods, events, nodes,
//! namespaces) and Name/Age for the rest.

use serde_json::{Value, json};

use super::crd::{self, Column};
use super::resources::ResourceType;

/// `duration.HumanDuration` (apimachinery) of the time since `then`.
pub fn human_duration_since(then: &str) -> Option<String> {
    let t: jiff::Timestamp = then.parse().ok()?;
    let secs = jiff::Timestamp::now().as_second() - t.as_second();
    Some(human_duration(secs))
}

/// `duration.HumanDuration` of `seconds`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
    /// `[?(@.path OP literal)]`
    Filter(Vec<String>, bool, Value),
}

/// A JSONPath of the simple kind printer columns use (client-go `jsonpath`
/// subset): `.a.b`, `['a']`, `[0]`, `[-1]`, `[*]`, `[?(@.type=="Ready")]`.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath(Vec<Step>);

impl JsonPath {
    pub fn parse(path: &str) -> Result<Self, String> {
        let p = path.trim();
        let p = p
            .strip_prefix('{')
            .and_then(|x| x.strip_suffix('}'))
            .unwrap_or(p);
        let p = p.strip_prefix('$').unwrap_or(p);
        let chars: Vec<char> = p.chars().collect();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    i += 1;
                    let start = i;
                    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                        i += 1;
                    }
                    let name: String = chars[start..i].iter().collect();
                    if name.is_empty() {
                        if i == chars.len() && steps.is_empty() {
                            break; // "." alone
                        }
                        return Err(format!("unrecognized identifier in {path:?}"));
                    }
                    steps.push(Step::Field(name));
                }
                '[' => {
                    let end = chars[i..]
                        .iter()
                        .position(|c| *c == ']')
                        .map(|e| e + i)
                        .ok_or_else(|| format!("unclosed array expect ] in {path:?}"))?;
                    let inner: String = chars[i + 1..end].iter().collect();
                    let inner = inner.trim();
                    steps.push(parse_bracket(inner, path)?);
                    i = end + 1;
                }
                c => return Err(format!("unrecognized character {c:?} in {path:?}")),
            }
        }
        Ok(Self(steps))
    }

    /// Every value the path reaches, in order.
    pub fn find<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut cur = vec![root];
        for step in &self.0 {
            let mut next = Vec::new();
            for v in cur {
                match step {
                    Step::Field(f) => {
                        if let Some(x) = v.get(f) {
                            next.push(x);
                        }
                    }
                    Step::Index(i) => {
                        if let Some(a) = v.as_array() {
                            let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                            if let Some(x) = usize::try_from(idx).ok().and_then(|i| a.get(i)) {
                                next.push(x);
                            }
                        }
                    }
                    Step::All => match v {
                        Value::Array(a) => next.extend(a.iter()),
                        Value::Object(m) => next.extend(m.values()),
                        _ => {}
                    },
                    Step::Filter(path, equal, lit) => {
                        if let Some(a) = v.as_array() {
                            for item in a {
                                let mut x = Some(item);
                                for f in path {
                                    x = x.and_then(|x| x.get(f));
                                }
                                if x.is_some_and(|x| (x == lit) == *equal) {
                                    next.push(item);
                                }
                            }
                        }
                    }
                }
            }
            cur = next;
        }
        cur
    }
}

fn parse_bracket(inner: &str, path: &str) -> Result<Step, String> {
    if inner == "*" {
        return Ok(Step::All);
    }
    if let Some(f) = inner
        .strip_prefix('\'')
        .and_then(|x| x.strip_suffix('\''))
        .or_else(|| inner.strip_prefix('"').and_then(|x| x.strip_suffix('"')))
    {
        return Ok(Step::Field(f.to_owned()));
    }
    if let Ok(i) = inner.parse::<i64>() {
        return Ok(Step::Index(i));
    }
    if let Some(expr) = inner.strip_prefix("?(").and_then(|x| x.strip_suffix(')')) {
        let (lhs, equal, rhs) = if let Some((l, r)) = expr.split_once("==") {
            (l, true, r)
        } else if let Some((l, r)) = expr.split_once("!=") {
            (l, false, r)
        } else {
            return Err(format!("unsupported filter in {path:?}"));
        };
        let lhs = lhs.trim();
        let field_path = lhs
            .strip_prefix("@.")
            .ok_or_else(|| format!("unsupported filter in {path:?}"))?;
        let rhs = rhs.trim();
        let lit = if let Some(s) = rhs
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .or_else(|| rhs.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
        {
            Value::String(s.to_owned())
        } else {
            serde_json::from_str(rhs).map_err(|_| format!("unsupported filter in {path:?}"))?
        };
        return Ok(Step::Filter(
            field_path.split('.').map(str::to_owned).collect(),
            equal,
            lit,
        ));
    }
    Err(format!("unsupported array index in {path:?}"))
}

/// How rows carry their object (`?includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "Metadata" => Some(Self::Metadata),
            "None" => Some(Self::None),
            "Object" => Some(Self::Object),
            _ => None,
        }
    }
}

/// `PartialObjectMetadata` of an object.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn column(name: &str, type_: &str, format: &str, description: &str, priority: i64) -> Value {
    json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority})
}

/// Go's `fmt.Sprint` of a JSON value, as jsonpath prints non-strings.
fn go_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_text).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_text(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Value::Null => "<nil>".into(),
        other => other.to_string(),
    }
}

fn custom_cell(col: &Column, obj: &Value) -> Value {
    let Ok(path) = JsonPath::parse(&col.json_path) else {
        return Value::Null;
    };
    let Some(value) = path.find(obj).into_iter().next() else {
        return Value::Null;
    };
    if value.is_null() {
        return Value::Null;
    }
    match col.type_.as_str() {
        "string" => json!(go_text(value)),
        "integer" => value
            .as_i64()
            .or_else(|| value.as_f64().map(|f| f as i64))
            .map_or(Value::Null, |i| json!(i)),
        "number" => value.as_f64().map_or(Value::Null, |f| json!(f)),
        "boolean" => value.as_bool().map_or(Value::Null, |b| json!(b)),
        "date" => value
            .as_str()
            .and_then(human_duration_since)
            .map_or(Value::Null, |s| json!(s)),
        _ => Value::Null,
    }
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn age(v: &Value, p: &str) -> Value {
    human_duration_since(s(v, p)).map_or_else(|| json!("<unknown>"), |a| json!(a))
}

fn name_column() -> Value {
    column("Name", "string", "name", crd::NAME_DESCRIPTION, 0)
}

/// Column definitions and a row-cell function for a type.
/// The cells of one row.
type Cells = Box<dyn Fn(&Value) -> Vec<Value>>;

fn printer(rt: &ResourceType) -> (Vec<Value>, Cells) {
    if let Some(custom) = &rt.custom {
        let cols = custom.columns.clone();
        let mut defs = vec![name_column()];
        defs.extend(
            cols.iter()
                .map(|c| column(&c.name, &c.type_, &c.format, &c.description, c.priority)),
        );
        return (
            defs,
            Box::new(move |o| {
                let mut cells = vec![json!(s(o, "/metadata/name"))];
                cells.extend(cols.iter().map(|c| custom_cell(c, o)));
                cells
            }),
        );
    }
    let age_col = || {
        column(
            "Age",
            "string",
            "",
            "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists.",
            0,
        )
    };
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "pods") => (
            vec![
                name_column(),
                column(
                    "Ready",
                    "string",
                    "",
                    "The aggregate readiness state of this pod for accepting traffic.",
                    0,
                ),
                column(
                    "Status",
                    "string",
                    "",
                    "The aggregate status of the containers in this pod.",
                    0,
                ),
                column(
                    "Restarts",
                    "string",
                    "",
                    "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                    0,
                ),
                age_col(),
                column(
                    "IP",
                    "string",
                    "",
                    "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
                    1,
                ),
                column(
                    "Node",
                    "string",
                    "",
                    "Name of the Node this Pod has been scheduled onto.",
                    1,
                ),
                column(
                    "Nominated Node",
                    "string",
                    "",
                    "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.",
                    1,
                ),
                column(
                    "Readiness Gates",
                    "string",
                    "",
                    "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates",
                    1,
                ),
            ],
            Box::new(|o| {
                let total = o
                    .pointer("/spec/containers")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                let statuses = o
                    .pointer("/status/containerStatuses")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let ready = statuses
                    .iter()
                    .filter(|c| c.get("ready") == Some(&json!(true)))
                    .count();
                let restarts: i64 = statuses
                    .iter()
                    .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                    .sum();
                let mut reason = match s(o, "/status/reason") {
                    "" => s(o, "/status/phase").to_owned(),
                    r => r.to_owned(),
                };
                for c in &statuses {
                    if let Some(r) = c.pointer("/state/waiting/reason").and_then(Value::as_str) {
                        reason = r.to_owned();
                    } else if let Some(r) = c
                        .pointer("/state/terminated/reason")
                        .and_then(Value::as_str)
                    {
                        reason = r.to_owned();
                    }
                }
                if o.pointer("/metadata/deletionTimestamp").is_some() {
                    reason = "Terminating".into();
                }
                let none = |p: &str| match s(o, p) {
                    "" => json!("<none>"),
                    v => json!(v),
                };
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(format!("{ready}/{total}")),
                    json!(reason),
                    json!(restarts),
                    age(o, "/metadata/creationTimestamp"),
                    none("/status/podIP"),
                    none("/spec/nodeName"),
                    none("/status/nominatedNodeName"),
                    json!("<none>"),
                ]
            }),
        ),
        ("", "events") => (
            vec![
                column("Last Seen", "string", "", "", 0),
                column(
                    "Type",
                    "string",
                    "",
                    "Type of this event (Normal, Warning), new types could be added in the future.",
                    0,
                ),
                column(
                    "Reason",
                    "string",
                    "",
                    "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
                    0,
                ),
                column(
                    "Object",
                    "string",
                    "",
                    "The object that this event is about.",
                    0,
                ),
                column("Subobject", "string", "", "", 1),
                column("Source", "string", "", "", 1),
                column(
                    "Message",
                    "string",
                    "",
                    "A human-readable description of the status of this operation.",
                    0,
                ),
                column("First Seen", "string", "", "", 1),
                column(
                    "Count",
                    "string",
                    "",
                    "The number of times this event has occurred.",
                    1,
                ),
                column("Name", "string", "name", crd::NAME_DESCRIPTION, 1),
            ],
            Box::new(|o| {
                let when = |primary: &str| {
                    if !s(o, primary).is_empty() {
                        age(o, primary)
                    } else {
                        age(o, "/eventTime")
                    }
                };
                let source = if !s(o, "/source/component").is_empty() {
                    match s(o, "/source/host") {
                        "" => s(o, "/source/component").to_owned(),
                        h => format!("{}, {h}", s(o, "/source/component")),
                    }
                } else {
                    match s(o, "/reportingInstance") {
                        "" => s(o, "/reportingComponent").to_owned(),
                        i => format!("{}, {i}", s(o, "/reportingComponent")),
                    }
                };
                let count = o
                    .get("count")
                    .and_then(Value::as_i64)
                    .filter(|c| *c > 0)
                    .or_else(|| o.pointer("/series/count").and_then(Value::as_i64))
                    .unwrap_or(1);
                vec![
                    when("/lastTimestamp"),
                    json!(s(o, "/type")),
                    json!(s(o, "/reason")),
                    json!(format!(
                        "{}/{}",
                        s(o, "/involvedObject/kind").to_lowercase(),
                        s(o, "/involvedObject/name")
                    )),
                    json!(s(o, "/involvedObject/fieldPath")),
                    json!(source),
                    json!(s(o, "/message")),
                    when("/firstTimestamp"),
                    json!(count),
                    json!(s(o, "/metadata/name")),
                ]
            }),
        ),
        ("", "nodes") => (
            vec![
                name_column(),
                column("Status", "string", "", "The status of the node", 0),
                column("Roles", "string", "", "The roles of the node", 0),
                age_col(),
                column(
                    "Version",
                    "string",
                    "",
                    "Kubelet Version reported by the node.",
                    0,
                ),
            ],
            Box::new(|o| {
                let ready = o
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .and_then(|cs| cs.iter().find(|c| s(c, "/type") == "Ready"))
                    .map(|c| {
                        if s(c, "/status") == "True" {
                            "Ready"
                        } else {
                            "NotReady"
                        }
                    })
                    .unwrap_or("Unknown");
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(ready),
                    json!("<none>"),
                    age(o, "/metadata/creationTimestamp"),
                    json!(s(o, "/status/nodeInfo/kubeletVersion")),
                ]
            }),
        ),
        ("apiextensions.k8s.io", "customresourcedefinitions") => (
            // kube's default table convertor: Name, Created At.
            vec![
                name_column(),
                column(
                    "Created At",
                    "date",
                    "",
                    crd::CREATION_TIMESTAMP_DESCRIPTION,
                    0,
                ),
            ],
            Box::new(|o| {
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(s(o, "/metadata/creationTimestamp")),
                ]
            }),
        ),
        ("", "namespaces") => (
            vec![
                name_column(),
                column("Status", "string", "", "The status of the namespace", 0),
                age_col(),
            ],
            Box::new(|o| {
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(s(o, "/status/phase")),
                    age(o, "/metadata/creationTimestamp"),
                ]
            }),
        ),
        _ => (
            vec![name_column(), age_col()],
            Box::new(|o| {
                vec![
                    json!(s(o, "/metadata/name")),
                    age(o, "/metadata/creationTimestamp"),
                ]
            }),
        ),
    }
}

/// A Table of `objects`. `headers: false` leaves `columnDefinitions` null
/// (watch events after the first).
pub fn table(
    rt: &ResourceType,
    api_version: &str,
    objects: &[Value],
    list_meta: Value,
    include: IncludeObject,
    headers: bool,
) -> Value {
    let (defs, cells) = printer(rt);
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let object = match include {
                IncludeObject::None => Value::Null,
                IncludeObject::Metadata => partial_metadata(o),
                IncludeObject::Object => o.clone(),
            };
            json!({"cells": cells(o), "object": object})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": list_meta,
        "columnDefinitions": if headers { json!(defs) } else { Value::Null },
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(72), "72s");
        assert_eq!(human_duration(230), "3m50s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 120), "3h2m");
        assert_eq!(human_duration(50 * 3600), "2d2h");
    }

    #[test]
    fn json_paths() {
        let o = json!({"spec": {"name": "a"}, "status": {"conditions": [
            {"type": "Progressing", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        let p = JsonPath::parse(".status.conditions[?(@.type==\"Ready\")].status").unwrap();
        assert_eq!(p.find(&o), vec![&json!("True")]);
        assert_eq!(
            JsonPath::parse(".spec.name").unwrap().find(&o),
            vec![&json!("a")]
        );
        assert_eq!(
            JsonPath::parse(".status.conditions[-1].type")
                .unwrap()
                .find(&o),
            vec![&json!("Ready")]
        );
        assert!(
            JsonPath::parse(".spec.missing")
                .unwrap()
                .find(&o)
                .is_empty()
        );
        assert!(JsonPath::parse(".a[").is_err());
    }
}
