//! Which deployed app a command means: the one resolver behind every verb that acts on a
//! deployed app (`rollback`, `activate`, `versions`, `history`, `clean`, `config`, `run`,
//! `shell`, `logs`, `status`, `backup`, `restore`, `destroy-app`).
//!
//! The user holds an app in one of three ways, and each verb accepts all of them:
//! - its folder: `.` when nothing is given, or a path (`./blog`, `../blog`, or a word
//!   naming a folder here that has an app.toml); its app.toml's main host name (the
//!   first of `hostnames`) says which app, else its `name`;
//! - its name: app.toml's `name`, as cluster.toml records it for the app;
//! - a host name: the app's main host, the key of `[apps."HOST"]` in cluster.toml.
//!
//! A word is tried in that order: a host in cluster.toml, then an app name, then a folder.
//! An app that cannot be found is a usage error (exit 2) that names the apps cluster.toml
//! has and, when one is close, suggests it.

use std::path::{Path, PathBuf};

use crate::app_config::{self, AppConfig};
use crate::cluster::Cluster;
use crate::error::{Error, Result};

/// A deployed app, as cluster.toml records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedApp {
    /// Its main host name: the key in cluster.toml, which the deploy code works with.
    pub host: String,
    /// Its name (app.toml's `name`).
    pub name: String,
}

/// How the user named the app on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppRef {
    /// An app folder: read its app.toml.
    Folder(PathBuf),
    /// A word: a host name or an app name (or, failing those, a folder here).
    Word(String),
}

impl AppRef {
    /// What a positional APP argument means: nothing is this folder, a path is a folder
    /// (`.`, `..`, anything with a `/`), anything else a word.
    pub fn parse(given: Option<&str>) -> AppRef {
        match given {
            None => AppRef::Folder(PathBuf::from(".")),
            Some(s) if s == "." || s == ".." || s.contains('/') => AppRef::Folder(PathBuf::from(s)),
            Some(s) => AppRef::Word(s.to_string()),
        }
    }
}

/// The deployed app the user means by `given` (see the module docs), looked up in
/// `cluster`; folders are read relative to the current folder.
pub fn resolve(cluster: &Cluster, given: Option<&str>) -> Result<ResolvedApp> {
    match AppRef::parse(given) {
        AppRef::Folder(dir) => from_folder(cluster, &dir, given.is_none()),
        AppRef::Word(word) => {
            if let Some(app) = by_host(cluster, &word) {
                return Ok(app);
            }
            if let Some(app) = by_name(cluster, &word)? {
                return Ok(app);
            }
            let dir = Path::new(&word);
            if dir.join(app_config::FILE_NAME).is_file() {
                return from_folder(cluster, dir, false);
            }
            Err(not_found(cluster, &word))
        }
    }
}

fn by_host(cluster: &Cluster, host: &str) -> Option<ResolvedApp> {
    cluster.apps.get(host).map(|a| ResolvedApp {
        host: host.to_string(),
        name: a.name.clone(),
    })
}

/// The one app called `name`; several apps of one name (deployed at different hosts)
/// must be named by host.
fn by_name(cluster: &Cluster, name: &str) -> Result<Option<ResolvedApp>> {
    let hosts: Vec<&String> = cluster
        .apps
        .iter()
        .filter(|(_, a)| a.name == name)
        .map(|(h, _)| h)
        .collect();
    match hosts.as_slice() {
        [] => Ok(None),
        [host] => Ok(Some(ResolvedApp {
            host: (*host).clone(),
            name: name.to_string(),
        })),
        many => Err(Error::usage(
            format!(
                "{} apps are named `{name}`: {}",
                many.len(),
                many.iter()
                    .map(|h| h.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!("name the one you mean by its host, e.g. `{}`", many[0]),
        )),
    }
}

/// The app of the folder `dir`: its app.toml's main host, else its name, in cluster.toml.
fn from_folder(cluster: &Cluster, dir: &Path, implied: bool) -> Result<ResolvedApp> {
    let file = dir.join(app_config::FILE_NAME);
    let text = match std::fs::read(&file) {
        Ok(bytes) => crate::toml_span::text_of(&file, bytes)?,
        Err(err) => {
            let here = if implied {
                "this folder is not an app folder (it has no app.toml)".to_string()
            } else {
                format!("`{}` is not an app folder", dir.display())
            };
            let missing = format!(
                "{here}: {}, or make one with `skiff init`",
                name_one(cluster, "name the app")
            );
            return Err(Error::config_file(&file, &err, &missing, ""));
        }
    };
    let config = AppConfig::parse(&file, &text)?;
    if let Some(app) = config.main_host().and_then(|h| by_host(cluster, h)) {
        return Ok(app);
    }
    if let Some(app) = by_name(cluster, &config.name)? {
        return Ok(app);
    }
    let at = config
        .main_host()
        .map(|h| format!(" (at {h})"))
        .unwrap_or_default();
    Err(Error::usage(
        format!(
            "app `{}`{at} of `{}` is not deployed: cluster.toml has no app of that host or name",
            config.name,
            file.display()
        ),
        format!(
            "deploy it with `skiff update {}`{}",
            dir.display(),
            if cluster.apps.is_empty() {
                String::new()
            } else {
                format!("; deployed apps: {}", listing(cluster))
            }
        ),
    ))
}

/// The error for a word that is neither a host, an app name nor an app folder.
fn not_found(cluster: &Cluster, word: &str) -> Error {
    let message = format!(
        "no app `{word}`: it is not a deployed app's name or host in cluster.toml, nor a folder with an app.toml"
    );
    if cluster.apps.is_empty() {
        return Error::usage(
            message,
            "no app is deployed yet: deploy one with `skiff update DIR`",
        );
    }
    let suggestion = closest(cluster, word)
        .map(|c| format!("did you mean `{c}`? "))
        .unwrap_or_default();
    Error::usage(
        message,
        format!("{suggestion}deployed apps: {}", listing(cluster)),
    )
}

/// "name the app (deployed: ...)" or, with none deployed, that none is.
fn name_one(cluster: &Cluster, verb: &str) -> String {
    if cluster.apps.is_empty() {
        "no app is deployed yet (deploy one with `skiff update DIR`)".to_string()
    } else {
        format!("{verb} by its name or host ({})", listing(cluster))
    }
}

/// `blog (blog.example.com), shop (shop.example.com)`.
fn listing(cluster: &Cluster) -> String {
    cluster
        .apps
        .iter()
        .map(|(host, a)| format!("{} ({host})", a.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The app name or host closest to `word`, when it is close enough to be a typo (the
/// rule app.toml's key suggestions use).
fn closest(cluster: &Cluster, word: &str) -> Option<String> {
    let candidates: Vec<String> = cluster
        .apps
        .iter()
        .flat_map(|(host, a)| [a.name.clone(), host.clone()])
        .collect();
    crate::toml_span::closest(word, &candidates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::AppState;

    fn cluster() -> Cluster {
        let mut c = Cluster::default();
        for (host, name) in [("blog.example.com", "blog"), ("shop.example.com", "shop")] {
            c.apps.insert(
                host.into(),
                AppState {
                    name: name.into(),
                    ..AppState::default()
                },
            );
        }
        c
    }

    fn app(host: &str, name: &str) -> ResolvedApp {
        ResolvedApp {
            host: host.into(),
            name: name.into(),
        }
    }

    fn folder(toml: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.toml"), toml).unwrap();
        dir
    }

    #[test]
    fn a_host_or_a_name_names_the_app() {
        let c = cluster();
        assert_eq!(
            resolve(&c, Some("blog.example.com")).unwrap(),
            app("blog.example.com", "blog")
        );
        assert_eq!(
            resolve(&c, Some("shop")).unwrap(),
            app("shop.example.com", "shop")
        );
    }

    #[test]
    fn a_folder_names_its_app_by_main_host_then_by_name() {
        let c = cluster();
        let dir =
            folder("name = \"blog\"\nruntime = \"static\"\nhostnames = [\"blog.example.com\"]\n");
        let given = dir.path().display().to_string();
        assert_eq!(
            resolve(&c, Some(&given)).unwrap(),
            app("blog.example.com", "blog")
        );
        // hostnames changed in app.toml since the deploy: found by name
        let dir = folder("name = \"shop\"\nruntime = \"static\"\nhostnames = [\"new.test\"]\n");
        let given = dir.path().display().to_string();
        assert_eq!(
            resolve(&c, Some(&given)).unwrap(),
            app("shop.example.com", "shop")
        );
    }

    #[test]
    fn a_folder_whose_app_is_not_deployed_says_how_to_deploy_it() {
        let c = cluster();
        let dir = folder("name = \"wiki\"\nruntime = \"static\"\nhostnames = [\"wiki.test\"]\n");
        let given = dir.path().display().to_string();
        let err = resolve(&c, Some(&given)).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("`wiki`"), "{err}");
        let hint = err.hint().unwrap();
        assert!(hint.contains(&format!("skiff update {given}")), "{hint}");
        assert!(hint.contains("blog (blog.example.com)"), "{hint}");
    }

    #[test]
    fn a_folder_without_app_toml_is_a_usage_error_naming_the_apps() {
        let c = cluster();
        let dir = tempfile::tempdir().unwrap();
        let given = dir.path().display().to_string();
        let err = resolve(&c, Some(&given)).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        assert!(err.to_string().contains("app.toml"), "{err}");
        let hint = err.hint().unwrap();
        assert!(hint.contains("blog (blog.example.com)"), "{hint}");
        assert!(hint.contains("skiff init"), "{hint}");
    }

    #[test]
    fn an_unknown_word_names_the_apps_and_the_closest() {
        let c = cluster();
        let err = resolve(&c, Some("blgo")).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let hint = err.hint().unwrap();
        assert!(hint.starts_with("did you mean `blog`?"), "{hint}");
        assert!(hint.contains("shop (shop.example.com)"), "{hint}");
        let err = resolve(&c, Some("myapp")).unwrap_err();
        let hint = err.hint().unwrap();
        assert!(!hint.contains("did you mean"), "{hint}");
        assert!(hint.contains("deployed apps: blog"), "{hint}");
        // nothing deployed: say so, and how to deploy
        let err = resolve(&Cluster::default(), Some("myapp")).unwrap_err();
        assert!(err.hint().unwrap().contains("skiff update DIR"));
    }

    #[test]
    fn two_apps_of_one_name_must_be_named_by_host() {
        let mut c = cluster();
        c.apps.insert(
            "blog2.example.com".into(),
            AppState {
                name: "blog".into(),
                ..AppState::default()
            },
        );
        let err = resolve(&c, Some("blog")).unwrap_err();
        assert!(err.to_string().contains("2 apps are named `blog`"), "{err}");
    }

    #[test]
    fn paths_are_folders_and_words_are_words() {
        assert_eq!(AppRef::parse(None), AppRef::Folder(".".into()));
        assert_eq!(AppRef::parse(Some("..")), AppRef::Folder("..".into()));
        assert_eq!(
            AppRef::parse(Some("./blog")),
            AppRef::Folder("./blog".into())
        );
        assert_eq!(AppRef::parse(Some("blog")), AppRef::Word("blog".into()));
    }
}
