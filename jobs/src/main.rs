//! The `dajia` binary: logging, the command line parsed, one-line errors out.
//! The commands are in the library (`dajia::cli`), the work in its modules.

use clap::Parser;

/// mimalloc rather than glibc's malloc: the jobs run steps that each build
/// and drop large hash tables (DataFusion joins and aggregates); glibc's
/// per-thread arenas kept a finished step's ~20 GB resident until the next
/// step ran out of memory (`dajia link` on 10 million sellers, measured).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DAJIA_LOG")
                // Ballista's client logs a failed job's error before
                // returning it; dajia prints it once, as its one line.
                .unwrap_or_else(|_| {
                    "warn,buoyant_kernel=off,deltalake_core=error,ballista_core::execution_plans::distributed_query=off"
                        .into()
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = dajia::cli::run(dajia::cli::Cli::parse()) {
        // One line: engines can put whole query plans in their errors.
        let msg = format!("{e:#}").replace('\n', " ");
        let msg = if msg.chars().count() > 600 {
            format!("{}…", msg.chars().take(600).collect::<String>())
        } else {
            msg
        };
        eprintln!("dajia: {msg}");
        std::process::exit(1);
    }
}
