//! `skiff init DIR [--runtime R] [--name NAME] [--force]`: scaffold an app.
//!
//! Asks for the runtime on a terminal when `--runtime` is missing; without a terminal it
//! never prompts and fails naming `--runtime`, so scripts cannot hang.

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
        printer.json_value(&serde_json::json!({
            "dir": plan.dir.display().to_string(),
            "name": plan.name,
            "runtime": plan.runtime.to_string(),
            "hostnames": plan.hostnames,
            "files": files,
            "overwritten": overwritten,
        }));
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
    printer.status(
        "Ready",
        format!(
            "`{name}` ({runtime}); try `skiff serve {}`",
            plan.dir.display()
        ),
    );
    Ok(())
}

fn from_arg(arg: RuntimeArg) -> Runtime {
    match arg {
        RuntimeArg::Python => Runtime::Python,
        RuntimeArg::Php => Runtime::Php,
        RuntimeArg::Ruby => Runtime::Ruby,
        RuntimeArg::Static => Runtime::Static,
    }
}

/// Asks for the runtime on the terminal; refuses without one.
fn ask_runtime(printer: &Printer) -> Result<Runtime> {
    if !printer.interactive() {
        return Err(Error::usage(
            "no `--runtime` given, and no terminal to ask on",
            "pass `--runtime python`, `--runtime php`, `--runtime ruby` or `--runtime static`",
        ));
    }
    let labels: Vec<&str> = CHOICES.iter().map(|(_, label)| *label).collect();
    let picked = dialoguer::Select::new()
        .with_prompt("Runtime of the new app")
        .items(&labels)
        .default(0)
        .interact_opt()
        .map_err(|e| Error::failed(format!("could not read the answer: {e}")))?;
    match picked {
        Some(i) => Ok(CHOICES[i].0),
        // Esc or q: the user backed out.
        None => Err(Error::Interrupted),
    }
}
