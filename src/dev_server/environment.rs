//! The app's environment under `skiff serve`: what production sets (`SKIFF_*`, `[env]`)
//! plus the laptop-only `.env` file for secrets.
//!
//! `.env` lives in the app folder, is read only by `serve` and must never be uploaded
//! (`update` leaves it out of the release). Its values override `[env]`; the `SKIFF_*`
//! variables are skiff's own and override both, as on a node.

use std::collections::BTreeMap;
use std::path::Path;

use crate::app_config::AppConfig;
use crate::error::{ConfigProblem, Error, Location, Result};
use crate::names;

/// The laptop-only secrets file in the app folder.
pub const DOTENV_FILE: &str = ".env";

/// `SKIFF_VERSION` under `serve`: there is no release number on a laptop.
pub const DEV_VERSION: &str = "dev";

/// Reads `DIR/.env` when it exists: `KEY=VALUE` lines, `#` comments, blank lines, an
/// optional leading `export `, and values optionally wrapped in matching quotes.
pub fn load_dotenv(dir: &Path) -> Result<Vec<(String, String)>> {
    let file = dir.join(DOTENV_FILE);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::Read { path: file, source }),
    };
    parse_dotenv(&file, &text)
}

/// Parses `.env` text; `file` is used in messages.
pub fn parse_dotenv(file: &Path, text: &str) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let bad = |key: &str, problem: String, fix: &str| {
            Error::config(ConfigProblem {
                file: file.to_path_buf(),
                key: key.to_string(),
                problem,
                fix: Some(fix.to_string()),
                location: Some(Location {
                    line: i + 1,
                    column: 1,
                }),
            })
        };
        let Some((name, value)) = line.split_once('=') else {
            return Err(bad(
                &format!("line {}", i + 1),
                format!("`{line}` has no `=`"),
                "write `NAME=value`, or start the line with `#` to make it a comment",
            ));
        };
        let name = name.trim();
        names::check_env_name(name)
            .map_err(|e| bad(name, e, "rename the variable, e.g. `DATABASE_URL`"))?;
        let value = unquote(value.trim());
        if value.contains('\0') {
            return Err(bad(
                name,
                "the value contains a NUL byte".into(),
                "remove it",
            ));
        }
        out.retain(|(n, _)| n != name);
        out.push((name.to_string(), value.to_string()));
    }
    Ok(out)
}

/// Strips one pair of matching surrounding quotes.
fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(q) && value.ends_with(q) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

/// The host the app believes it serves: the first hostname that is not a wildcard, or
/// `localhost` when app.toml names none.
pub fn canonical_host(config: &AppConfig) -> &str {
    config
        .hostnames
        .iter()
        .find(|h| !h.starts_with("*."))
        .map(String::as_str)
        .unwrap_or("localhost")
}

/// Every variable the app's process gets on top of the laptop's own environment, in
/// override order: `[env]`, then `.env`, then skiff's `SKIFF_*`.
pub fn app_env(config: &AppConfig, dotenv: &[(String, String)]) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = config.env.clone();
    for (name, value) in dotenv {
        env.insert(name.clone(), value.clone());
    }
    let host = canonical_host(config).to_string();
    env.insert("SKIFF_APP".into(), config.name.clone());
    env.insert("SKIFF_VERSION".into(), DEV_VERSION.into());
    env.insert("SKIFF_HOST".into(), host.clone());
    env.insert("SKIFF_CANONICAL_HOST".into(), host);
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn parse(text: &str) -> Result<Vec<(String, String)>> {
        parse_dotenv(&PathBuf::from(".env"), text)
    }

    #[test]
    fn dotenv_lines_comments_quotes_and_export() {
        let vars = parse(
            "# secrets\n\nA=1\nexport B = two words \nC=\"quoted # not a comment\"\nD='x'\nE=\nA=again\n",
        )
        .unwrap();
        assert_eq!(
            vars,
            vec![
                ("B".to_string(), "two words".to_string()),
                ("C".into(), "quoted # not a comment".into()),
                ("D".into(), "x".into()),
                ("E".into(), "".into()),
                ("A".into(), "again".into()),
            ]
        );
    }

    #[test]
    fn dotenv_errors_name_the_line_and_key() {
        let err = parse("A=1\nnot a pair\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert_eq!(err.location().unwrap().1.line, 2);
        let err = parse("1BAD=x\n").unwrap_err();
        assert!(err.to_string().contains("`1BAD`"), "{err}");
        assert!(err.hint().unwrap().contains("rename"));
        let err = parse("SKIFF_APP=spoof\n").unwrap_err();
        assert!(err.to_string().contains("SKIFF_"), "{err}");
    }

    #[test]
    fn env_order_is_env_then_dotenv_then_skiff() {
        let config = AppConfig::parse(
            Path::new("app.toml"),
            "name = \"blog\"\nruntime = \"static\"\nhostnames = [\"blog.example.com\", \"*.example.com\"]\n\
             [env]\nLOG_LEVEL = \"info\"\nTOKEN = \"public\"\n",
        )
        .unwrap();
        let env = app_env(
            &config,
            &[
                ("TOKEN".into(), "secret".into()),
                ("SKIFF_VERSION".into(), "9".into()),
            ],
        );
        assert_eq!(env["LOG_LEVEL"], "info");
        assert_eq!(env["TOKEN"], "secret");
        assert_eq!(env["SKIFF_APP"], "blog");
        assert_eq!(env["SKIFF_VERSION"], "dev");
        assert_eq!(env["SKIFF_HOST"], "blog.example.com");
        assert_eq!(env["SKIFF_CANONICAL_HOST"], "blog.example.com");
    }

    #[test]
    fn canonical_host_defaults_to_localhost() {
        let config = AppConfig::parse(
            Path::new("app.toml"),
            "name = \"blog\"\nruntime = \"static\"\n",
        )
        .unwrap();
        assert_eq!(canonical_host(&config), "localhost");
    }
}
