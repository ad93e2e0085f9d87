//! `skiff completions SHELL` and `skiff man`: generated from the clap model, so they never
//! drift from the real flags.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{Error, Result};

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "skiff", &mut std::io::stdout());
    Ok(())
}

/// Prints the man page (roff) on stdout.
pub fn man() -> Result<()> {
    let page = clap_mangen::Man::new(Cli::command());
    page.render(&mut std::io::stdout())
        .map_err(|e| Error::failed(format!("could not write the man page: {e}")))
}
