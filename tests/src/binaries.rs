//! Finds the `shoal-pd`, `shoal-server` and `shoal-ctl` binaries built next to the running
//! test.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The cargo profile directory (`target/<profile>`) this test executable was built into.
/// Test executables live in `target/<profile>/deps/`.
pub fn profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot tell where the test executable is")?;
    let mut dir = exe
        .parent()
        .context("the test executable has no parent directory")?
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    Ok(dir)
}

/// Path of the workspace binary `name`, or an error telling how to build it.
pub fn binary(name: &str) -> Result<PathBuf> {
    let path = profile_dir()?.join(name);
    check_exists(&path, name)?;
    Ok(path)
}

fn check_exists(path: &Path, name: &str) -> Result<()> {
    if !path.is_file() {
        bail!(
            "{name} not found at {}; build it first (cargo build -p {}) or run the tests \
             through cargo test, which builds workspace binaries",
            path.display(),
            package_of(name)
        );
    }
    Ok(())
}

fn package_of(binary: &str) -> &'static str {
    match binary {
        "shoal-pd" => "pd",
        "shoal-server" => "server",
        "shoal-ctl" => "shoal-ctl",
        _ => "<package>",
    }
}

pub fn pd_binary() -> Result<PathBuf> {
    binary("shoal-pd")
}

pub fn server_binary() -> Result<PathBuf> {
    binary("shoal-server")
}

pub fn ctl_binary() -> Result<PathBuf> {
    binary("shoal-ctl")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_dir_skips_deps() {
        let dir = profile_dir().unwrap();
        assert_ne!(dir.file_name().unwrap(), "deps");
        assert!(dir.join("deps").is_dir());
    }

    #[test]
    fn missing_binaries_name_the_package_to_build() {
        let err = binary("shoal-server-that-does-not-exist").unwrap_err();
        assert!(err.to_string().contains("not found"));
        let err = check_exists(Path::new("/nonexistent/shoal-pd"), "shoal-pd").unwrap_err();
        assert!(err.to_string().contains("cargo build -p pd"));
    }
}
