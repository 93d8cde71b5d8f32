//! Log output: JSON lines (one object per event, for a log collector; the default of
//! `keta serve`) or text (the default of every other command). `KETA_LOG` filters as
//! `RUST_LOG` does (default `info`). Log lines never carry patient data: requests are logged by
//! route template (`keta_web::observe`), never by raw path, query or body.

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

impl LogFormat {
    pub fn default_for(serving: bool) -> Self {
        if serving { LogFormat::Json } else { LogFormat::Text }
    }
}

pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KETA_LOG").unwrap_or_else(|_| "info".into());
    let fmt = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => fmt.json().flatten_event(true).with_current_span(false).with_span_list(false).init(),
        LogFormat::Text => fmt.with_target(false).init(),
    }
}
