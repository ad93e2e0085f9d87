//! `skiff completions SHELL` and `skiff man [VERB]`: generated from the clap model, so they never
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
    if printer.json() {
        let script = String::from_utf8_lossy(&script);
        printer.json_value(
            "completions",
            &serde_json::json!({ "shell": shell.to_string(), "script": script }),
        );
        return Ok(());
    }
    printer.raw(&script);
    Ok(())
}

/// Prints a man page (roff) on stdout: skiff's own, or `skiff-VERB(1)` for a verb (the
/// pages skiff's own page refers to).
pub fn man(verb: Option<&str>, printer: &Printer) -> Result<()> {
    let mut cli = Cli::command();
    cli.build();
    let cmd = match verb {
        None => cli,
        Some(word) => {
            let Some(sub) = cli.find_subcommand(word) else {
                let verbs: Vec<&str> = cli
                    .get_subcommands()
                    .filter(|s| !s.is_hide_set())
                    .map(|s| s.get_name())
                    .collect();
                return Err(Error::usage(
                    format!("`skiff man {word}`: skiff has no verb `{word}`"),
                    format!("verbs with a page: {}", verbs.join(", ")),
                ));
            };
            sub.clone()
        }
    };
    let page = clap_mangen::Man::new(cmd);
    let mut roff = Vec::new();
    page.render(&mut roff)
        .map_err(|e| Error::failed(format!("could not render the man page: {e}")))?;
    if printer.json() {
        let roff = String::from_utf8_lossy(&roff);
        printer.json_value("man", &serde_json::json!({ "verb": verb, "roff": roff }));
        return Ok(());
    }
    printer.raw(&roff);
    Ok(())
}
