//! Log output for tests: `RUST_LOG` (default `warn`) to the test harness's
//! captured output, so a failing test shows what its peers logged.

/// Install the test subscriber once per test binary; later calls do nothing.
pub fn init_test_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}
