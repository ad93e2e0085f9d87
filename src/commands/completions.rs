//! `skiff completions SHELL` and `skiff man`: generated from the clap model, so they never
//! drift from the real flags.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{Error, Result};
use crate::printer::Printer;

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell, printer: &Printer) -> Result<()> {
    let mut cmd = Cli::command();
    // Rendered in memory first: the generator panics on a failed write, and the printer
    // is what reports a full disk or a closed pipe.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "skiff", &mut script);
    printer.raw(&script);
    Ok(())
}

/// Prints the man page (roff) on stdout.
pub fn man(printer: &Printer) -> Result<()> {
    let page = clap_mangen::Man::new(Cli::command());
    let mut roff = Vec::new();
    page.render(&mut roff)
        .map_err(|e| Error::failed(format!("could not render the man page: {e}")))?;
    printer.raw(&roff);
    Ok(())
}
