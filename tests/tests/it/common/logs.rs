//! Every log line a test causes, kept for it to read. A process has one log subscriber, and the
//! tests of this binary share a process; so one subscriber, installed by the first capture,
//! hands each line to the capture of the Tokio runtime the line was written in. Every test runs
//! on a runtime of its own (`#[sqlx::test]` builds one per test), and the server, the fakes and
//! the clients a test starts run on it, blocking threads included: a capture sees all of its
//! own test's lines and none of the lines of the tests beside it.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};

use tokio::runtime::{Handle, Id};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

type Lines = Arc<Mutex<Vec<u8>>>;

/// The captures now running, by runtime.
static CAPTURES: Mutex<Vec<(Id, Lines)>> = Mutex::new(Vec::new());
/// How many there are: while none runs, a log line costs one load.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Records every log line (at TRACE, dependencies included) written in the current runtime,
/// from now until it is dropped.
pub struct LogCapture {
    runtime: Id,
    lines: Lines,
}

impl LogCapture {
    pub fn start() -> LogCapture {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(ToItsCapture)
                .with_filter(WhileCapturing);
            // Also turns `log` records (from dependencies that use `log`) into events.
            tracing_subscriber::registry().with(layer).init();
        });
        let runtime = Handle::current().id();
        let lines = Lines::default();
        CAPTURES.lock().expect("not poisoned").push((runtime, lines.clone()));
        RUNNING.fetch_add(1, Ordering::SeqCst);
        LogCapture { runtime, lines }
    }

    /// The lines recorded so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.lines.lock().expect("not poisoned")).into_owned()
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        CAPTURES.lock().expect("not poisoned").retain(|(runtime, _)| *runtime != self.runtime);
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The capture of the runtime this thread is running, if it has one.
/// Lets a line through while its runtime's test captures. Asked at every line, never cached per
/// call site: a call site first reached while no test captured (or before the subscriber was
/// installed) must not stay silent for the tests that capture later.
struct WhileCapturing;

impl<S> tracing_subscriber::layer::Filter<S> for WhileCapturing {
    fn enabled(&self, _: &tracing::Metadata<'_>, _: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        current_capture().is_some()
    }

    fn callsite_enabled(&self, _: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
}

fn current_capture() -> Option<Lines> {
    if RUNNING.load(Ordering::SeqCst) == 0 {
        return None;
    }
    let runtime = Handle::try_current().ok()?.id();
    let captures = CAPTURES.lock().expect("not poisoned");
    captures.iter().find(|(id, _)| *id == runtime).map(|(_, lines)| lines.clone())
}

struct ToItsCapture;

impl<'a> MakeWriter<'a> for ToItsCapture {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> CaptureWriter {
        CaptureWriter(current_capture())
    }
}

/// Writes to a capture, or nowhere when the line's runtime has none.
struct CaptureWriter(Option<Lines>);

impl Write for CaptureWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Some(lines) = &self.0 {
            lines.lock().expect("not poisoned").extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
