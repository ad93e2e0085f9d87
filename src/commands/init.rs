//! `skiff init [DIR] [--runtime R] [--name NAME] [--force]`: scaffold an app (in the
//! current folder by default).
//!
//! Asks for the runtime on a terminal when `--runtime` is missing (typed: a name or a
//! prefix of one); without a terminal it never prompts and fails naming `--runtime`, so
//! scripts cannot hang.

use crate::app_config::Runtime;
use crate::cli::{InitArgs, RuntimeArg};
use crate::error::{Error, Result};
use crate::printer::Printer;
use crate::scaffold;

/// The runtimes offered at the prompt, in order, with what each means.
const CHOICES: [(Runtime, &str); 4] = [
    (Runtime::Python, "python  a WSGI app (mod_wsgi)"),
    (Runtime::Php, "php     PHP pages (mod_php)"),
    (Runtime::Ruby, "ruby    a Rack app (Passenger)"),
    (Runtime::Static, "static  files only (NGINX)"),
];

/// Plans and writes the scaffold, then reports the files written.
pub fn run(args: &InitArgs, printer: &Printer) -> Result<()> {
    // The name first: a bad folder name should fail before any question is asked.
    let name = scaffold::app_name(&args.dir, args.name.as_deref())?;
    let runtime = match args.runtime {
        Some(r) => from_arg(r),
        None => ask_runtime(printer)?,
    };
    let plan = scaffold::plan(&args.dir, &name, runtime);
    let written = scaffold::write(&plan, args.force)?;
    // warnings go to stderr, with --json too
    for file in &written.kept {
        printer.warn(format!(
            "kept `{}`: another runtime's scaffold file that you changed; remove it if the new app does not need it{}",
            plan.dir.join(file).display(),
            if file.starts_with(scaffold::STATIC_DIR) {
                " (static/ is served before the app)"
            } else {
                ""
            }
        ));
    }
    if printer.json() {
        let files: Vec<String> = written
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        let overwritten: Vec<String> = written
            .overwritten
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        printer.json_value(
            "init",
            &serde_json::json!({
                "dir": plan.dir.display().to_string(),
                "name": plan.name,
                "runtime": plan.runtime.to_string(),
                "hostnames": plan.hostnames,
                "files": files,
                "overwritten": overwritten,
                "removed": shown(&written.removed),
                "kept": shown(&written.kept),
            }),
        );
        return Ok(());
    }
    for file in &written.files {
        let verb = if written.overwritten.contains(file) {
            "Overwrote"
        } else {
            "Created"
        };
        printer.status(verb, plan.dir.join(file).display());
    }
    for file in &written.removed {
        printer.status(
            "Removed",
            format!(
                "{} (another runtime's scaffold, unchanged)",
                plan.dir.join(file).display()
            ),
        );
    }
    let serve = if plan.dir == std::path::Path::new(".") {
        "skiff serve".to_string()
    } else {
        format!("skiff serve {}", plan.dir.display())
    };
    printer.status("Ready", format!("`{name}` ({runtime}); try `{serve}`"));
    Ok(())
}

fn shown(files: &[std::path::PathBuf]) -> Vec<String> {
    files.iter().map(|f| f.display().to_string()).collect()
}

fn from_arg(arg: RuntimeArg) -> Runtime {
    match arg {
        RuntimeArg::Python => Runtime::Python,
        RuntimeArg::Php => Runtime::Php,
        RuntimeArg::Ruby => Runtime::Ruby,
        RuntimeArg::Static => Runtime::Static,
    }
}

/// The runtime a typed answer names: its name or a prefix of one (`p` is ambiguous).
fn typed_runtime(answer: &str) -> Option<Runtime> {
    let answer = answer.trim().to_ascii_lowercase();
    if answer.is_empty() {
        return None;
    }
    let mut matches = CHOICES
        .iter()
        .map(|(r, _)| *r)
        .filter(|r| r.as_str().starts_with(&answer));
    let first = matches.next()?;
    // an exact name wins over a longer one it starts (none today, but keep it so)
    if first.as_str() == answer || matches.next().is_none() {
        Some(first)
    } else {
        None
    }
}

/// Asks for the runtime on the terminal (a typed answer: a name or a prefix of one,
/// Enter for python); refuses without one. Ctrl-C leaves the terminal as it was, the
/// cursor shown.
fn ask_runtime(printer: &Printer) -> Result<Runtime> {
    if !printer.interactive() {
        return Err(Error::usage(
            "no `--runtime` given, and no terminal to ask on",
            "pass `--runtime python`, `--runtime php`, `--runtime ruby` or `--runtime static`",
        ));
    }
    let term = dialoguer::console::Term::stderr();
    for (_, label) in CHOICES {
        let _ = term.write_line(&format!("  {label}"));
    }
    let answer = dialoguer::Input::<String>::new()
        .with_prompt("Runtime of the new app")
        .default(Runtime::Python.as_str().to_string())
        .validate_with(|typed: &String| -> std::result::Result<(), String> {
            match typed_runtime(typed) {
                Some(_) => Ok(()),
                None => Err(format!(
                    "`{typed}` is not a runtime: type python, php, ruby or static"
                )),
            }
        })
        .interact_text_on(&term);
    // Whatever happened (Ctrl-C included), the cursor is visible again.
    let _ = term.show_cursor();
    match answer {
        Ok(typed) => typed_runtime(&typed).ok_or_else(|| {
            Error::usage(
                format!("`{typed}` is not a runtime"),
                "pass `--runtime python`, `--runtime php`, `--runtime ruby` or `--runtime static`",
            )
        }),
        Err(dialoguer::Error::IO(e)) if e.kind() == std::io::ErrorKind::Interrupted => {
            let _ = term.write_line("");
            Err(Error::Interrupted)
        }
        Err(e) => Err(Error::failed(format!("could not read the answer: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_answers_name_runtimes() {
        assert_eq!(typed_runtime("php"), Some(Runtime::Php));
        assert_eq!(typed_runtime(" Ruby "), Some(Runtime::Ruby));
        assert_eq!(typed_runtime("py"), Some(Runtime::Python));
        assert_eq!(typed_runtime("s"), Some(Runtime::Static));
        assert_eq!(typed_runtime("p"), None, "python or php");
        assert_eq!(typed_runtime("go"), None);
        assert_eq!(typed_runtime(""), None);
    }
}
