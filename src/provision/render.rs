//! The tera environment for setup-node: every embedded template, autoescaping off (these
//! are shell scripts and config files, not HTML) and an `sh` filter that quotes a value
//! with the one quoting function, so no value reaches a script unquoted.

use std::path::PathBuf;
use std::sync::OnceLock;

use tera::{Context, Kwargs, State, Tera};

use crate::assets;
use crate::error::{Error, Result};

/// The user's template folder (`templates/` beside cluster.toml): a file there with the
/// same path as an embedded template replaces it, e.g. `nginx/skiff.conf.tera`.
static OVERRIDES: OnceLock<PathBuf> = OnceLock::new();

/// Sets the folder whose templates override the embedded ones (once per process).
pub fn set_override_dir(dir: PathBuf) {
    let _ = OVERRIDES.set(dir);
}

fn new_tera() -> Tera {
    let mut tera = Tera::new();
    tera.autoescape_on(Vec::<&str>::new());
    tera.register_filter("sh", |value: &str, _: Kwargs, _: &State| {
        crate::transport::quote(value)
    });
    tera
}

fn tera() -> &'static Tera {
    static TERA: OnceLock<Tera> = OnceLock::new();
    TERA.get_or_init(|| {
        let mut tera = new_tera();
        for asset in assets::TEMPLATES {
            tera.add_raw_template(asset.path, asset.text())
                .unwrap_or_else(|e| panic!("embedded template `{}` is invalid: {e}", asset.path));
        }
        tera
    })
}

/// Renders the template at `path` (under `templates/`) with `context`: the user's
/// override when there is one, else the embedded template.
pub fn render(path: &str, context: &Context) -> Result<String> {
    if let Some(file) = OVERRIDES
        .get()
        .map(|d| d.join(path))
        .filter(|f| f.is_file())
    {
        return render_override(&file, path, context);
    }
    tera().render(path, context).map_err(|e| Error::Failed {
        message: format!("could not render the embedded template `templates/{path}`: {e}"),
        hint: Some("this is a bug in skiff; please report it".into()),
    })
}

fn render_override(file: &std::path::Path, path: &str, context: &Context) -> Result<String> {
    let text = std::fs::read_to_string(file).map_err(|source| Error::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let mut tera = new_tera();
    let bad = |e: tera::Error| Error::Failed {
        message: format!("your template `{}` does not render: {e}", file.display()),
        hint: Some(format!(
            "fix it, or delete it to use skiff's own `templates/{path}`"
        )),
    };
    tera.add_raw_template(path, &text).map_err(bad)?;
    tera.render(path, context).map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let _ = tera();
    }

    #[test]
    fn a_user_template_replaces_the_embedded_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("nginx")).unwrap();
        std::fs::write(
            dir.path().join("nginx/skiff-proxy.conf.tera"),
            "# mine {{ x | sh }}\n",
        )
        .unwrap();
        let file = dir.path().join("nginx/skiff-proxy.conf.tera");
        let mut ctx = Context::new();
        ctx.insert("x", "a b");
        let out = render_override(&file, "nginx/skiff-proxy.conf.tera", &ctx).unwrap();
        assert_eq!(out, format!("# mine {}\n", crate::transport::quote("a b")));
        std::fs::write(&file, "{{ broken").unwrap();
        let err = render_override(&file, "nginx/skiff-proxy.conf.tera", &ctx).unwrap_err();
        assert!(err.to_string().contains("skiff-proxy.conf.tera"), "{err}");
    }
}
