//! The `paxlog` process's log subscriber (the library never installs one).

use std::io::IsTerminal;

/// Installs the subscriber: `RUST_LOG` filters (default `warn`: commands print their own
/// output, logs are for trouble), stderr, text or (`json`) one JSON object per line.
pub fn init(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        // Event fields at the top level; `span`/`spans` carry the open spans' fields (a
        // runner's trigger, for instance), as paxlog-broker's json logs do.
        logs.json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .init();
    } else {
        // Colours only on a terminal: logs often go to files.
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
}
