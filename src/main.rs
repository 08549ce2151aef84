//! The `userbridge` binary: parses the command line and runs the command.

use clap::Parser;

fn main() {
    let cli = userbridge::cli::Cli::parse();
    std::process::exit(userbridge::cli::run(cli));
}
