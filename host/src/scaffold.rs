//! `pn-host new strategy|model|dataset NAME`: writes a plugin crate that depends on
//! pn-plugin-api only, builds on its own, and loads into this host: a manifest and a
//! `src/lib.rs` that compiles, registers one component and says where to go from there.
//!
//! In a folder that is a Cargo workspace (its `Cargo.toml` has `[workspace]`), the crate joins
//! it as a member, so several plugins share one `target/` and compile `pn-plugin-api` and
//! `abi_stable` once; anywhere else it is a workspace of its own.

use std::path::{Path, PathBuf};

use crate::plugin::registry::Kind;

const MANIFEST: &str = include_str!("../templates/Cargo.toml.tmpl");
const STRATEGY: &str = include_str!("../templates/strategy.rs.tmpl");
const MODEL: &str = include_str!("../templates/model.rs.tmpl");
const DATASET: &str = include_str!("../templates/dataset.rs.tmpl");

/// Checks that `name` can name both the crate and the component.
fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` cannot name a plugin: use lower-case letters, digits and `_`, starting with a letter"
        ))
    }
}

/// `my_strategy` -> `MyStrategy`.
fn type_name(name: &str) -> String {
    name.split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The pn-plugin-api folder: `explicit`, or the one of the checkout this pn-host was built in
/// (found above the executable).
pub fn find_api(explicit: Option<&Path>) -> Result<PathBuf, String> {
    let is_api = |dir: &Path| {
        std::fs::read_to_string(dir.join("Cargo.toml"))
            .is_ok_and(|text| text.contains("name = \"pn-plugin-api\""))
    };
    if let Some(dir) = explicit {
        return match dir.canonicalize() {
            Ok(dir) if is_api(&dir) => Ok(dir),
            _ => Err(format!("{} is not a pn-plugin-api folder", dir.display())),
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find pn-host itself: {e}"))?;
    exe.ancestors()
        .map(|dir| dir.join("plugin-api"))
        .find(|dir| is_api(dir))
        .ok_or_else(|| {
            "cannot find pn-plugin-api next to this pn-host: pass --api PATH (the plugin-api folder of a pn checkout)".to_string()
        })
}

/// A crate `pn-host new` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The crate's folder.
    pub root: PathBuf,
    /// The workspace folder it joined (its own folder when it is a workspace of its own).
    pub workspace: PathBuf,
}

impl Written {
    /// The library `cargo build --release` in the workspace makes.
    pub fn library(&self, name: &str) -> PathBuf {
        self.workspace
            .join("target")
            .join("release")
            .join(format!("lib{name}.so"))
    }
}

/// The manifest of the workspace in `dir`, parsed, if `dir/Cargo.toml` has `[workspace]`.
fn workspace_in(dir: &Path) -> Result<Option<(PathBuf, toml_edit::DocumentMut)>, String> {
    let path = dir.join("Cargo.toml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(doc.contains_table("workspace").then_some((path, doc)))
}

/// Adds `name` to the members of the workspace manifest `doc`, written to `path`.
fn join(path: &Path, mut doc: toml_edit::DocumentMut, name: &str) -> Result<(), String> {
    let bad = || format!("{}: `workspace.members` is not an array", path.display());
    let workspace = doc["workspace"].as_table_mut().ok_or_else(bad)?;
    let members = workspace
        .entry("members")
        .or_insert(toml_edit::value(toml_edit::Array::new()))
        .as_array_mut()
        .ok_or_else(bad)?;
    if !members.iter().any(|m| m.as_str() == Some(name)) {
        members.push(name);
    }
    std::fs::write(path, doc.to_string())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Writes the crate for a `kind` component called `name` into `dir/name`, against the
/// pn-plugin-api folder `api`, as a member of the workspace in `dir` if there is one.
pub fn write(kind: Kind, name: &str, dir: &Path, api: &Path) -> Result<Written, String> {
    check_name(name)?;
    let root = dir.join(name);
    if root.exists() {
        return Err(format!("{} already exists", root.display()));
    }
    let workspace = workspace_in(dir)?;
    let own_workspace = match workspace {
        Some(_) => "",
        None => "\n# A crate of its own, not part of any workspace around it.\n[workspace]\n",
    };
    let (label, source) = match kind {
        Kind::Strategy => ("strategy", STRATEGY),
        Kind::Model => ("model", MODEL),
        Kind::Dataset => ("dataset", DATASET),
    };
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{Type}}", &type_name(name))
            .replace("{{kind}}", label)
            .replace("{{workspace}}", own_workspace)
            .replace(
                "{{api}}",
                &format!("{{ path = {:?} }}", api.display().to_string()),
            )
    };
    let write = |path: PathBuf, text: String| {
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    std::fs::create_dir_all(root.join("src"))
        .map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    write(root.join("Cargo.toml"), fill(MANIFEST))?;
    write(root.join("src").join("lib.rs"), fill(source))?;
    Ok(match workspace {
        Some((manifest, doc)) => {
            join(&manifest, doc, name)?;
            Written {
                root,
                workspace: dir.to_path_buf(),
            }
        }
        None => Written {
            workspace: root.clone(),
            root,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_types_and_bad_names_are_refused() {
        assert_eq!(type_name("my_cool_strategy2"), "MyCoolStrategy2");
        assert!(check_name("sam_v2").is_ok());
        for bad in ["", "Sam", "2sam", "sam-v2", "sam v2"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
