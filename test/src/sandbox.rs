//! Run a server binary the way its manifest runs it: as the pod's user with
//! every capability dropped and no new privileges, on a read-only root file
//! system, with its volumes where the manifest mounts them — emptyDirs as the
//! kubelet makes them (root-owned, mode 0777), host paths and secrets bound
//! from test directories. Needs root (a mount namespace), `unshare(1)`,
//! `mount(8)` and `setpriv(1)` (util-linux).
//!
//! ```no_run
//! use kcr_testkit::sandbox::Sandbox;
//!
//! let mut cmd = Sandbox::new(65534, 65534)
//!     .empty_dir("/tmp/certs")
//!     .env("RUST_LOG", "info")
//!     .command("/path/to/checkpoint-apiserver".as_ref(), &["--cert-dir=/tmp/certs".to_owned()]);
//! let _ = cmd.status();
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

/// How a binary is run; see the module documentation.
#[derive(Debug, Clone)]
pub struct Sandbox {
    uid: u32,
    gid: u32,
    binds: Vec<(PathBuf, PathBuf)>,
    tmpfs: Vec<PathBuf>,
    empty_dirs: Vec<PathBuf>,
    env: Vec<(String, String)>,
}

fn quoted(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

impl Sandbox {
    /// As `uid`:`gid` (`runAsUser`, `runAsGroup`), with no supplementary groups.
    pub fn new(uid: u32, gid: u32) -> Self {
        Self {
            uid,
            gid,
            binds: Vec::new(),
            tmpfs: Vec::new(),
            empty_dirs: Vec::new(),
            env: Vec::new(),
        }
    }

    /// `host` (a test directory) seen at `path`, which must exist (a
    /// `hostPath` volume, or a directory of files standing in for a secret).
    pub fn bind(mut self, host: impl Into<PathBuf>, path: impl Into<PathBuf>) -> Self {
        self.binds.push((host.into(), path.into()));
        self
    }

    /// An empty tmpfs over `path`, which must exist (hides what is there).
    pub fn tmpfs(mut self, path: impl Into<PathBuf>) -> Self {
        self.tmpfs.push(path.into());
        self
    }

    /// An `emptyDir` at `path` (created after the binds and tmpfs, so it must
    /// be under one of them): owned by root, mode 0777.
    pub fn empty_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.empty_dirs.push(path.into());
        self
    }

    /// An environment variable; the process gets no other.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The command that runs `program` with `args` so.
    pub fn command(&self, program: &Path, args: &[String]) -> Command {
        let mut script = vec!["set -e".to_owned()];
        for (host, path) in &self.binds {
            script.push(format!("mount --bind {} {}", quoted(host), quoted(path)));
        }
        for path in &self.tmpfs {
            script.push(format!(
                "mount -t tmpfs -o mode=0755 tmpfs {}",
                quoted(path)
            ));
        }
        for path in &self.empty_dirs {
            script.push(format!(
                "mkdir -p {p} && chown 0:0 {p} && chmod 0777 {p}",
                p = quoted(path)
            ));
        }
        script.push("mount -o remount,bind,ro /".to_owned());
        let env: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| format!("'{k}={}'", v.replace('\'', r"'\''")))
            .collect();
        script.push(format!(
            "exec setpriv --reuid={} --regid={} --clear-groups --inh-caps=-all --ambient-caps=-all --bounding-set=-all --no-new-privs -- env -i {} \"$0\" \"$@\"",
            self.uid,
            self.gid,
            env.join(" ")
        ));
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(script.join("\n"))
            .arg(program)
            .args(args);
        cmd
    }
}

/// A pod's container from a manifest (a Deployment or DaemonSet rendered
/// as JSON): its args with `$(VAR)` expanded from `env` as the kubelet does,
/// its user, group and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestContainer {
    pub args: Vec<String>,
    pub run_as_user: u32,
    pub run_as_group: u32,
    pub env: Vec<(String, String)>,
    /// `(volume name, mount path)`.
    pub volume_mounts: Vec<(String, String)>,
}

impl ManifestContainer {
    /// The first container of the workload `doc` (its `spec.template.spec`);
    /// `field_refs` gives the values of `env` entries set by `fieldRef`.
    pub fn from_workload(
        doc: &serde_json::Value,
        field_refs: &[(&str, &str)],
    ) -> Result<Self, String> {
        let c = &doc["spec"]["template"]["spec"]["containers"][0];
        let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
        let env: Vec<(String, String)> = c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let name = text(&e["name"])?;
                let value = text(&e["value"]).or_else(|| {
                    let path = e["valueFrom"]["fieldRef"]["fieldPath"].as_str()?;
                    field_refs
                        .iter()
                        .find(|(p, _)| *p == path)
                        .map(|(_, v)| (*v).to_owned())
                })?;
                Some((name, value))
            })
            .collect();
        let args = c["args"]
            .as_array()
            .ok_or("the container has no args")?
            .iter()
            .map(|a| {
                let mut a = text(a).ok_or("an arg is not a string")?;
                for (k, v) in &env {
                    a = a.replace(&format!("$({k})"), v);
                }
                Ok(a)
            })
            .collect::<Result<Vec<_>, String>>()?;
        let id = |field: &str| {
            c["securityContext"][field]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or(format!("securityContext.{field} is not set"))
        };
        let volume_mounts = c["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| Some((text(&m["name"])?, text(&m["mountPath"])?)))
            .collect();
        Ok(Self {
            args,
            run_as_user: id("runAsUser")?,
            run_as_group: id("runAsGroup")?,
            env,
            volume_mounts,
        })
    }

    /// The args, with `--NAME=...` replaced by `--NAME=value`.
    pub fn with_arg(mut self, name: &str, value: &str) -> Self {
        let prefix = format!("--{name}=");
        for a in &mut self.args {
            if a.starts_with(&prefix) {
                *a = format!("{prefix}{value}");
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_from_a_workload() {
        let doc = serde_json::json!({"spec": {"template": {"spec": {"containers": [{
            "args": ["--port=10350", "--node-name=$(NODE_NAME)"],
            "env": [
                {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "RUST_LOG", "value": "info"}
            ],
            "securityContext": {"runAsUser": 65534, "runAsGroup": 65534},
            "volumeMounts": [{"name": "certs", "mountPath": "/tmp/certs"}]
        }]}}}});
        let c = ManifestContainer::from_workload(&doc, &[("spec.nodeName", "node-1")])
            .unwrap()
            .with_arg("port", "1");
        assert_eq!(c.args, ["--port=1", "--node-name=node-1"]);
        assert_eq!((c.run_as_user, c.run_as_group), (65534, 65534));
        assert_eq!(c.env[1], ("RUST_LOG".to_owned(), "info".to_owned()));
        assert_eq!(
            c.volume_mounts,
            [("certs".to_owned(), "/tmp/certs".to_owned())]
        );
    }

    #[test]
    fn the_command_mounts_then_drops_everything() {
        let cmd = Sandbox::new(65534, 65534)
            .bind("/t/run", "/run")
            .tmpfs("/tmp")
            .empty_dir("/tmp/certs")
            .env("A", "b")
            .command(Path::new("/bin/server"), &["--x".to_owned()]);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let script = &args[6];
        assert!(script.contains("mount --bind '/t/run' '/run'"), "{script}");
        assert!(script.contains("chmod 0777 '/tmp/certs'"), "{script}");
        assert!(
            script.contains("--bounding-set=-all --no-new-privs -- env -i 'A=b'"),
            "{script}"
        );
        assert_eq!(&args[7..], ["/bin/server", "--x"]);
    }
}
