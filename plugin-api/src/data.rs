//! Helpers for data-set plugins that read files.

use std::path::Path;

use crate::component::Result;

/// `Ok` if `dir` is a directory, else the one-line error users of every file-based data set
/// see: `data directory not found: DIR (set dataset.dir)`.
pub fn require_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(format!(
            "data directory not found: {} (set dataset.dir)",
            dir.display()
        )
        .into())
    }
}
