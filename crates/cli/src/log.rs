//! How the library crates' `tracing` events reach the operator: one line each on standard
//! error, `vigil: <message>`, as the binary has always printed them (log shippers and the
//! scale-out tests read those lines), at `info` and above, or from the level `VIGIL_LOG` names
//! (`error`, `warn`, `info`, `debug`, `trace`).

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `vigil: ` and the event's fields (its message first), nothing else: no time (the shipper
/// stamps lines), no level or module (the message says what happened).
struct Line;

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        write!(w, "vigil: ")?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// Installs the subscriber; a level `VIGIL_LOG` does not name is ignored (`info`).
pub fn init() {
    let level = std::env::var("VIGIL_LOG").ok().and_then(|l| l.parse::<tracing::Level>().ok());
    let _ = tracing_subscriber::fmt()
        .with_max_level(level.unwrap_or(tracing::Level::INFO))
        .with_writer(std::io::stderr)
        .event_format(Line)
        .try_init();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::Line;

    #[test]
    fn events_print_as_the_binary_always_printed_them() {
        let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = Arc::clone(&buf);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Writer(Arc::clone(&sink)))
            .event_format(Line)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!("assigned tasks {:?}", [0, 2]);
            tracing::debug!("not at info");
            tracing::info!(group = "g", "roll-up: resumed");
        });
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "vigil: assigned tasks [0, 2]\nvigil: roll-up: resumed group=\"g\"\n");
    }

    struct Writer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Writer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
