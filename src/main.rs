//! The `userbridge` binary: parses the command line and runs the command.

use clap::Parser;

/// mimalloc: a gateway allocates and frees many small buffers per request; glibc's malloc
/// spent a fifth of the request path's CPU on it (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = userbridge::cli::Cli::parse();
    std::process::exit(userbridge::cli::run(cli));
}
