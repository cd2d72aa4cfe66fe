//! Shows a local build's events on a terminal: an indicatif progress bar with the current
//! stage when stderr is a TTY, plain `[stage] message` lines otherwise (CI logs, pipes).

use crate::events::{EventSink, JobEvent, LogStream, Stage};
use crate::sandbox::lines::strip_controls;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;

pub(crate) struct ConsoleSink {
    bar: Option<ProgressBar>,
    verbose: bool,
    last_stage: Mutex<Option<Stage>>,
}

impl ConsoleSink {
    /// `verbose`: also print tool output lines (always printed for stderr lines).
    pub(crate) fn new(verbose: bool) -> ConsoleSink {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(100);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:>17} [{bar:30}] {pos:>3}% {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        ConsoleSink {
            bar,
            verbose,
            last_stage: Mutex::new(None),
        }
    }

    /// Prints one line; control characters never reach the terminal.
    fn line(&self, text: &str) {
        let text = strip_controls(text);
        match &self.bar {
            Some(bar) => bar.println(text.as_ref()),
            None => eprintln!("{text}"),
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl EventSink for ConsoleSink {
    fn emit(&self, event: JobEvent) {
        match event {
            JobEvent::Stage { stage, message } => {
                *self.last_stage.lock().unwrap() = Some(stage);
                if let Some(bar) = &self.bar {
                    bar.set_prefix(stage.as_str());
                    bar.set_position(0);
                    bar.set_message(strip_controls(&message).into_owned());
                }
                self.line(&format!("[{stage}] {message}"));
            }
            JobEvent::Log {
                stage,
                stream,
                line,
            } => {
                if self.verbose || stream == LogStream::Stderr {
                    self.line(&format!("  {stage} | {line}"));
                }
            }
            JobEvent::Progress {
                stage,
                percent,
                message,
            } => match &self.bar {
                Some(bar) => {
                    bar.set_prefix(stage.as_str());
                    bar.set_position(u64::from(percent.min(100)));
                    if let Some(m) = message {
                        bar.set_message(strip_controls(&m).into_owned());
                    }
                }
                None => {
                    if percent == 100 {
                        if let Some(m) = message {
                            self.line(&format!("[{stage}] {m}"));
                        }
                    }
                }
            },
        }
    }
}
