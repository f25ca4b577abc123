//! Timing external commands (kubectl, the plugin, cri-pod).

use std::ffi::OsString;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A command line to run many times.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
}

/// One run: its wall time (spawn to exit) and its stdout.
#[derive(Debug)]
pub struct Run {
    pub wall: Duration,
    pub stdout: String,
}

impl Cmd {
    pub fn new(program: impl Into<OsString>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
        }
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// `program arg...` for messages.
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs to completion; a non-zero exit is an error carrying stderr.
    pub fn run(&self) -> anyhow::Result<Run> {
        let mut c = Command::new(&self.program);
        c.args(&self.args).stdin(Stdio::null());
        let start = Instant::now();
        let out = c
            .output()
            .with_context(|| format!("failed to run {}", self.display()))?;
        let wall = start.elapsed();
        if !out.status.success() {
            bail!(
                "{} exited with {}: {}",
                self.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Run {
            wall,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        })
    }
}

/// checkpoint-apiserver sends checkpoints of one container to its node one
/// at a time and no earlier than 1 s after the previous answer (issue 10:
/// the kubelet names archives to the second). A bench that checkpoints the
/// same container back to back would time that wait; this waits it out
/// before each such command, outside the timing.
#[derive(Debug, Default)]
pub struct Spacing {
    last_answer: Option<Instant>,
}

impl Spacing {
    /// The extension's spacing, plus a margin for the answer's way back.
    pub const GAP: Duration = Duration::from_millis(1100);

    /// Runs `cmd` once the container's previous checkpoint through the
    /// extension is at least [`Spacing::GAP`] old.
    pub fn run(&mut self, cmd: &Cmd) -> anyhow::Result<Run> {
        if let Some(last) = self.last_answer {
            std::thread::sleep(Self::GAP.saturating_sub(last.elapsed()));
        }
        let run = cmd.run();
        self.last_answer = Some(Instant::now());
        run
    }
}
