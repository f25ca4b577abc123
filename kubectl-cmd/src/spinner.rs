//! A spinner with the elapsed time on stderr while the checkpoint runs (and
//! what the PodCheckpoint is at) — only when stderr is a terminal, never on
//! a pipe or file.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A running spinner (or nothing, when stderr is not a terminal).
#[derive(Debug)]
pub struct Spinner {
    bar: Option<ProgressBar>,
}

/// Whether stderr is a terminal, so a spinner may be drawn.
pub fn stderr_is_terminal() -> bool {
    console::Term::stderr().is_term()
}

impl Spinner {
    /// Start a spinner showing `message` if `enabled`.
    pub fn start(message: String, enabled: bool) -> Self {
        if !enabled {
            return Self { bar: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(100));
        Self { bar: Some(bar) }
    }

    /// Change the message (the elapsed time goes on).
    pub fn set_message(&self, message: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(message);
        }
    }

    /// Whether anything is drawn.
    pub fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    /// Remove the spinner from the terminal.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_spinner_draws_nothing() {
        let s = Spinner::start("Checkpointing".into(), false);
        assert!(!s.is_visible());
        s.set_message("still".into());
        s.finish();
    }
}
