//! Loading plugin `.so` files: the checks that turn every way a file can be wrong into one
//! clear line, before abi_stable's own (much longer) errors are reached.

use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError, RootModule};
use abi_stable::sabi_types::VersionNumber;
use pn_plugin_api::abi::{Components, HostInfo, PluginRef};
use sha2::{Digest, Sha256};

/// Why a file could not be loaded as a plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Nothing at the path.
    #[error("plugin file not found: {0}")]
    Missing(PathBuf),
    /// A directory was given where a file was expected.
    #[error(
        "{0} is a directory, not a plugin file (use --plugin-dir to load every plugin in a folder)"
    )]
    Directory(PathBuf),
    /// The file is not a loadable shared library.
    #[error("{path} is not a shared library that can be loaded: {reason}")]
    NotLibrary {
        /// The file.
        path: PathBuf,
        /// The loader's reason.
        reason: String,
    },
    /// A shared library without a pn root module.
    #[error("{0} is a shared library but not a pn plugin (it exports no pn root module)")]
    NotPlugin(PathBuf),
    /// Built against an incompatible pn-plugin-api.
    #[error("{path} was built against pn-plugin-api {plugin}, but this pn-host uses {host}: rebuild the plugin against pn-plugin-api {host}")]
    Version {
        /// The file.
        path: PathBuf,
        /// The plugin's contract version.
        plugin: String,
        /// The host's contract version.
        host: String,
    },
    /// Two plugins provide a component of the same name.
    #[error("{0}")]
    Duplicate(String),
    /// Anything else the plugin's initialisation reported.
    #[error("{path}: {reason}")]
    Other {
        /// The file.
        path: PathBuf,
        /// First line of the reason.
        reason: String,
    },
}

/// A loaded plugin: where it came from and what it provides.
pub struct LoadedPlugin {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// sha256 of the file, recorded with every run that uses it.
    pub sha256: String,
    /// The pn-plugin-api version the plugin was built against.
    pub api_version: String,
    /// What it provides.
    pub components: Components,
}

fn first_line(s: impl ToString) -> String {
    s.to_string()
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Whether a plugin built against contract `plugin` loads into this host: the same major (for
/// 0.x, the same minor) and not newer than the host's, since a newer plugin may call host
/// operations this host lacks.
fn compatible(plugin: &VersionNumber, host: &VersionNumber) -> bool {
    plugin.major == host.major
        && (host.major != 0 || plugin.minor == host.minor)
        && (plugin.minor, plugin.patch) <= (host.minor, host.patch)
}

/// Refuses an ELF file whose headers promise more bytes than it holds (a truncated copy): the
/// dynamic loader would map it and the process would die of SIGBUS on the first page past the
/// end. Files that are not ELF are left to the dynamic loader's own message.
fn check_elf_complete(bytes: &[u8]) -> Result<(), String> {
    use object::read::elf::{ElfFile64, ProgramHeader};
    if !bytes.starts_with(b"\x7fELF") {
        return Ok(());
    }
    let truncated = |need: u64| {
        format!(
            "the file is truncated ({} bytes; its ELF headers describe {need})",
            bytes.len()
        )
    };
    let elf = ElfFile64::<object::Endianness>::parse(bytes)
        .map_err(|e| format!("the file is truncated or damaged ({e})"))?;
    let endian = elf.endian();
    for header in elf.elf_program_headers() {
        let end = header.p_offset(endian) + header.p_filesz(endian);
        if end > bytes.len() as u64 {
            return Err(truncated(end));
        }
    }
    Ok(())
}

/// The plugin's root module, its layout checked against this host's.
///
/// abi_stable checks that a library's prefix types (the root module, the strategy and host-op
/// vtables) have at least the fields the loader knows. A plugin built against an older patch
/// of this minor has fewer by design: the contract grows by appending methods after each
/// trait's `last_prefix_field`, and a call to a method the plugin lacks runs its default. So
/// for an older plugin the check runs the other way round: its layout must be a prefix of the
/// host's.
fn root_module(
    header: &abi_stable::library::LibHeader,
    plugin: &VersionNumber,
    host: &VersionNumber,
) -> Result<PluginRef, LibraryError> {
    if (plugin.minor, plugin.patch) == (host.minor, host.patch) {
        return header.init_root_module::<PluginRef>();
    }
    let layout = header.layout().ok_or_else(|| {
        LibraryError::AbiInstability(abi_stable::std_types::RBoxError::from_fmt(
            &"the plugin carries no layout to check",
        ))
    })?;
    // Own checking globals: abi_stable's shared ones record one view of each prefix type for
    // every later check, and this reversed check must not become that view.
    let globals = abi_stable::abi_stability::abi_checking::CheckingGlobals::new();
    abi_stable::abi_stability::abi_checking::check_layout_compatibility_with_globals(
        layout,
        <PluginRef as abi_stable::StableAbi>::LAYOUT,
        &globals,
    )
    .map_err(|e| LibraryError::AbiInstability(abi_stable::std_types::RBoxError::from_fmt(&e)))?;
    // SAFETY: the plugin's layout was just checked to be a prefix of the host's.
    unsafe { header.init_root_module_with_unchecked_layout::<PluginRef>() }
}

/// Warns when users other than the owner may replace the code in `path`.
fn warn_if_writable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        let who = if mode & 0o002 != 0 {
            "every user"
        } else {
            "its group"
        };
        crate::log::log(
            pn_plugin_api::LogLevel::Warn,
            &format!(
                "{} can be modified by {who} (mode {:o}): anyone who can write it runs code in pn-host",
                path.display(),
                mode & 0o777
            ),
        );
    }
}

/// Loads one plugin file.
pub fn load(path: &Path) -> Result<LoadedPlugin, LoadError> {
    if !path.exists() {
        return Err(LoadError::Missing(path.to_path_buf()));
    }
    if path.is_dir() {
        return Err(LoadError::Directory(path.to_path_buf()));
    }
    let other = |reason: String| LoadError::Other {
        path: path.to_path_buf(),
        reason,
    };
    // dlopen searches the library path for a name without a slash: always pass a full path.
    let full = path.canonicalize().map_err(|e| other(e.to_string()))?;
    if full.to_str().is_none() {
        // run records name their plugins by path, in JSON
        return Err(other("its path is not valid UTF-8: rename it".into()));
    }
    warn_if_writable_by_others(&full);
    let bytes = std::fs::read(&full).map_err(|e| other(e.to_string()))?;
    check_elf_complete(&bytes).map_err(|reason| LoadError::NotLibrary {
        path: path.to_path_buf(),
        reason,
    })?;
    let header = lib_header_from_path(&full).map_err(|e| match e {
        LibraryError::OpenError { err, .. } => LoadError::NotLibrary {
            path: path.to_path_buf(),
            reason: first_line(err)
                .rsplit(": ")
                .next()
                .unwrap_or("")
                .to_string(),
        },
        LibraryError::GetSymbolError { .. } => LoadError::NotPlugin(path.to_path_buf()),
        e => other(first_line(e)),
    })?;
    let host_version = PluginRef::VERSION_STRINGS;
    let plugin_version = header.version_strings();
    let (Ok(pv), Ok(hv)) = (plugin_version.parsed(), host_version.parsed()) else {
        return Err(other(format!(
            "unreadable pn-plugin-api version `{}`",
            plugin_version.version
        )));
    };
    if !compatible(&pv, &hv) {
        return Err(LoadError::Version {
            path: path.to_path_buf(),
            plugin: plugin_version.version.to_string(),
            host: host_version.version.to_string(),
        });
    }
    let root = root_module(header, &pv, &hv).map_err(|e| match e {
        LibraryError::AbiInstability(_) => other(format!(
            "its pn-plugin-api {} is not layout-compatible with this pn-host's {}: rebuild the plugin",
            plugin_version.version, host_version.version
        )),
        e => other(first_line(e)),
    })?;
    root.init()(HostInfo {
        log: crate::log::plugin_log,
    });
    let components = root.components()()
        .into_result()
        .map_err(|e| other(e.to_string()))?;
    let sha256 = sha256_file(path).map_err(|e| other(e.to_string()))?;
    Ok(LoadedPlugin {
        path: path.to_path_buf(),
        sha256,
        api_version: plugin_version.version.to_string(),
        components,
    })
}
