//! Guest stdout and stderr, line by line: prefixed with the component id on the terminal
//! and appended to `<log_dir>/<component>_stdout.txt` / `_stderr.txt`, as Spin does.

use anyhow::{Context as _, Result};
use std::fs::File;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tessera_app::{LoadedApp, LoadedComponent};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Largest partial line kept before it is written out anyway.
const MAX_LINE: usize = 16 << 10;

#[derive(Clone, Copy)]
enum Terminal {
    Stdout,
    Stderr,
}

/// Where `component`'s `stream` (`stdout` or `stderr`) is logged, as Spin names it.
pub fn log_file(log_dir: &std::path::Path, component: &str, stream: &str) -> std::path::PathBuf {
    log_dir.join(format!("{component}_{stream}.txt"))
}

/// The open log files of one component, and whether its lines reach the terminal.
pub struct ComponentState {
    prefix: Arc<str>,
    stdout_file: Option<LogFile>,
    stderr_file: Option<LogFile>,
    on_terminal: bool,
}

type LogFile = Arc<Mutex<File>>;

impl ComponentState {
    /// Opens (appends to) the component's log files, unless the app logs to none.
    pub fn configure(app: &LoadedApp, component: &LoadedComponent) -> Result<Self> {
        let to_files = app.guest_output.to_files;
        if to_files {
            std::fs::create_dir_all(&app.log_dir)
                .with_context(|| format!("cannot create the log directory {}", app.log_dir.display()))?;
        }
        let open = |suffix: &str| -> Result<Option<LogFile>> {
            if !to_files {
                return Ok(None);
            }
            let path = log_file(&app.log_dir, &component.id, suffix);
            let file = File::options()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            Ok(Some(Arc::new(Mutex::new(file))))
        };
        Ok(Self {
            prefix: format!("[{}] ", component.id).into(),
            stdout_file: open("stdout")?,
            stderr_file: open("stderr")?,
            on_terminal: app.guest_output.follow.includes(&component.id),
        })
    }

    /// Streams for one instance.
    pub fn instance(&self) -> (GuestOutput, GuestOutput) {
        let terminal = |t| self.on_terminal.then_some(t);
        (
            GuestOutput::new(self.prefix.clone(), self.stdout_file.clone(), terminal(Terminal::Stdout)),
            GuestOutput::new(self.prefix.clone(), self.stderr_file.clone(), terminal(Terminal::Stderr)),
        )
    }
}

/// One guest output stream of one instance: buffers a partial line until its newline.
#[derive(Clone)]
pub struct GuestOutput {
    inner: Arc<Mutex<LineBuffer>>,
}

struct LineBuffer {
    prefix: Arc<str>,
    file: Option<LogFile>,
    terminal: Option<Terminal>,
    partial: Vec<u8>,
}

impl GuestOutput {
    fn new(prefix: Arc<str>, file: Option<LogFile>, terminal: Option<Terminal>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(LineBuffer {
                prefix,
                file,
                terminal,
                partial: Vec::new(),
            })),
        }
    }
}

impl LineBuffer {
    fn write(&mut self, mut bytes: &[u8]) {
        while let Some(i) = bytes.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&bytes[..=i]);
            self.emit();
            bytes = &bytes[i + 1..];
        }
        self.partial.extend_from_slice(bytes);
        if self.partial.len() >= MAX_LINE {
            self.partial.push(b'\n');
            self.emit();
        }
    }

    fn emit(&mut self) {
        let line = std::mem::take(&mut self.partial);
        if let Some(Ok(mut f)) = self.file.as_ref().map(|f| f.lock()) {
            let _ = f.write_all(&line);
        }
        let Some(terminal) = self.terminal else { return };
        let mut out = Vec::with_capacity(self.prefix.len() + line.len());
        out.extend_from_slice(self.prefix.as_bytes());
        out.extend_from_slice(&line);
        let _ = match terminal {
            Terminal::Stdout => std::io::stdout().lock().write_all(&out),
            Terminal::Stderr => std::io::stderr().lock().write_all(&out),
        };
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            self.partial.push(b'\n');
            self.emit();
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if let Ok(mut inner) = self.inner.lock() {
            inner.write(buf);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
