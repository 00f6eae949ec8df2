//! `shoal-server`: one store process. Prints `STORE_READY store_id=.. addr=.. status=..` on
//! stdout once it serves; SIGTERM or SIGINT stop it cleanly (exit 0). See
//! [`server::cli::run_store_process`].

use std::process::ExitCode;

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    #[cfg(feature = "jemalloc")]
    server::allocator_metrics::register();
    server::cli::run_store_process(|builder| builder)
}
