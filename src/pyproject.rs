//! A Python app's dependencies from its `pyproject.toml` (PEP 621 `[project]
//! dependencies`), for apps whose app.toml names no `[python] requirements`: read and
//! checked on the laptop, they reach the node as requirements-file text and are installed
//! into the venv the same way as a requirements file (shipped wheels, or the index).
//!
//! Only the list is read: no build backend runs, and the project itself is not installed
//! (the release folder is on `sys.path`, as for any skiff Python app).

use std::path::Path;

use crate::error::{ConfigProblem, Error, Result};
use crate::toml_span;

/// The file read, in the app folder.
pub const FILE_NAME: &str = "pyproject.toml";

/// The dependencies `DIR/pyproject.toml` declares in `[project] dependencies`, one per
/// line (requirements-file text, ending in a newline); `None` when there is no
/// pyproject.toml, no `[project]` table, or no dependencies. Errors name the file and
/// the key: invalid TOML, a list that is not strings, `dependencies` listed in
/// `project.dynamic` (computed by a build backend), a Poetry-only project, or an entry
/// that a requirements file would read as something else (a pip option, several lines).
pub fn dependencies(dir: &Path) -> Result<Option<String>> {
    let file = dir.join(FILE_NAME);
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Read { path: file, source }),
    };
    let text = toml_span::text_of(&file, bytes)?;
    parse(&file, &text)
}

/// [`dependencies`] of pyproject.toml text; `file` is used in messages.
pub fn parse(file: &Path, text: &str) -> Result<Option<String>> {
    let doc: toml::Table = toml_span::parse(file, text)?;
    let bad = |key: &str, problem: String, fix: &str| {
        Error::config(ConfigProblem {
            file: file.to_path_buf(),
            key: key.to_string(),
            problem,
            fix: Some(fix.to_string()),
            location: toml_span::find_key(text, key),
        })
    };
    let own_list = "list them in `[project] dependencies = [\"django>=4.2\"]`, or write a requirements file and set `requirements = \"requirements.txt\"` under `[python]` in app.toml";
    let Some(project) = doc.get("project") else {
        let poetry = doc
            .get("tool")
            .and_then(|t| t.get("poetry"))
            .and_then(|p| p.get("dependencies"))
            .is_some();
        if poetry {
            return Err(bad(
                "tool.poetry.dependencies",
                "skiff reads a project's dependencies from `[project] dependencies` (PEP 621), and this pyproject.toml has only Poetry's".into(),
                "run `poetry export -f requirements.txt -o requirements.txt` and set `requirements = \"requirements.txt\"` under `[python]` in app.toml",
            ));
        }
        return Ok(None);
    };
    let Some(project) = project.as_table() else {
        return Err(bad(
            "project",
            "`project` is not a table".into(),
            "write it as a `[project]` section",
        ));
    };
    if let Some(dynamic) = project.get("dynamic").and_then(|d| d.as_array())
        && dynamic.iter().any(|d| d.as_str() == Some("dependencies"))
    {
        return Err(bad(
            "project.dynamic",
            "`dependencies` is dynamic (a build backend computes it), and skiff installs only a list it can read".into(),
            own_list,
        ));
    }
    let Some(list) = project.get("dependencies") else {
        return Ok(None);
    };
    let Some(list) = list.as_array() else {
        return Err(bad(
            "project.dependencies",
            format!("`dependencies` is not a list of strings: `{list}`"),
            "write `dependencies = [\"django>=4.2\", \"requests\"]`",
        ));
    };
    let mut out = String::new();
    for (i, item) in list.iter().enumerate() {
        let key = format!("project.dependencies[{i}]");
        let Some(dep) = item.as_str() else {
            return Err(bad(
                &key,
                format!("`{item}` is not a string"),
                "write each dependency as a string, e.g. `\"django>=4.2\"`",
            ));
        };
        let dep = dep.trim();
        if dep.is_empty() || dep.contains(['\n', '\r']) || dep.starts_with('-') {
            return Err(bad(
                &key,
                format!(
                    "`{dep}` is not a dependency (PEP 508: a name, then versions or markers, on one line)"
                ),
                "write e.g. `\"django>=4.2,<5\"`; pip options belong in a requirements file",
            ));
        }
        out.push_str(dep);
        out.push('\n');
    }
    Ok((!out.is_empty()).then_some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<Option<String>> {
        parse(Path::new("/app/pyproject.toml"), text)
    }

    fn fails(text: &str, key: &str, words: &str) {
        match run(text) {
            Err(Error::Config(p)) => {
                assert_eq!(p.key, key, "{p:?}");
                let shown = format!("{p} / {}", p.fix.as_deref().unwrap_or(""));
                assert!(shown.contains(words), "{shown}");
                assert!(shown.contains("/app/pyproject.toml"), "{shown}");
            }
            other => panic!("{text}: expected a config error on {key}, got {other:?}"),
        }
    }

    #[test]
    fn reads_project_dependencies_as_requirements_text() {
        let text = "[build-system]\nrequires = [\"setuptools\"]\n\n[project]\nname = \"site\"\nversion = \"1\"\ndependencies = [\n  \"Django>=4.2,<5\",\n  \" requests[socks] ; python_version >= '3.8' \",\n]\n[project.optional-dependencies]\ndev = [\"pytest\"]\n";
        assert_eq!(
            run(text).unwrap().as_deref(),
            Some("Django>=4.2,<5\nrequests[socks] ; python_version >= '3.8'\n")
        );
    }

    #[test]
    fn nothing_to_install_is_none() {
        assert_eq!(run("[tool.ruff]\nline-length = 100\n").unwrap(), None);
        assert_eq!(run("[project]\nname = \"x\"\n").unwrap(), None);
        assert_eq!(
            run("[project]\nname = \"x\"\ndependencies = []\n").unwrap(),
            None
        );
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(dependencies(dir.path()).unwrap(), None);
    }

    #[test]
    fn reads_the_file_in_the_app_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            "[project]\nname = \"x\"\ndependencies = [\"flask==3.1.3\"]\n",
        )
        .unwrap();
        assert_eq!(
            dependencies(dir.path()).unwrap().as_deref(),
            Some("flask==3.1.3\n")
        );
    }

    #[test]
    fn bad_input_names_the_file_and_key() {
        fails(
            "[project]\ndependencies = \"django\"\n",
            "project.dependencies",
            "not a list of strings",
        );
        fails(
            "[project]\ndependencies = [\"django\", 4]\n",
            "project.dependencies[1]",
            "not a string",
        );
        fails(
            "[project]\ndependencies = [\"--index-url=http://evil\"]\n",
            "project.dependencies[0]",
            "pip options belong in a requirements file",
        );
        fails(
            "[project]\ndependencies = [\"django\\n--pre\"]\n",
            "project.dependencies[0]",
            "on one line",
        );
        fails(
            "[project]\ndependencies = [\"\"]\n",
            "project.dependencies[0]",
            "not a dependency",
        );
        fails(
            "[project]\nname = \"x\"\ndynamic = [\"version\", \"dependencies\"]\n",
            "project.dynamic",
            "set `requirements = \"requirements.txt\"`",
        );
        fails(
            "[tool.poetry.dependencies]\npython = \"^3.11\"\n",
            "tool.poetry.dependencies",
            "poetry export",
        );
        fails("project = 3\n", "project", "not a table");
        match run("[project\n") {
            Err(Error::Config(p)) => assert!(format!("{p}").contains("pyproject.toml"), "{p}"),
            other => panic!("{other:?}"),
        }
    }
}
