//! `pn-host new`: writes a plugin crate (see [`crate::scaffold`]) and prints how to build and
//! load it.

use std::path::Path;

use crate::error::Error;
use crate::plugin::registry::Kind;
use crate::scaffold;

/// Writes a new `kind` plugin crate `name` in `dir`, against the pn-plugin-api folder `api`
/// (default: this checkout's), and prints where it went and how to build and load it.
pub fn new_plugin(kind: Kind, name: &str, dir: &Path, api: Option<&Path>) -> Result<(), Error> {
    let api = scaffold::find_api(api)?;
    let written = scaffold::write(kind, name, dir, &api)?;
    let joined = match written.workspace == written.root {
        true => String::new(),
        false => format!(
            " (a member of the workspace {})",
            written.workspace.display()
        ),
    };
    crate::outln!(
        "wrote {}{joined}: cd {} && cargo build --release, then pn-host --plugin {}",
        written.root.display(),
        written.workspace.display(),
        written.library(name).display()
    );
    Ok(())
}
