//! A Python virtualenv in `target/venv` for test tools that come from PyPI (the SMTP server the
//! daemon's tests talk to). Idempotent: creates the venv once and installs only what is missing.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The venv's folder: `$CARGO_TARGET_DIR/venv`, or `target/venv` in the workspace.
fn venv_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
    target.join("venv")
}

/// Makes sure the venv exists with `packages` (pip requirement strings such as
/// `aiosmtpd==1.4.6`) installed, and returns the path of its python.
pub fn ensure(packages: &[&str]) -> Result<PathBuf> {
    let dir = venv_dir();
    let python = dir.join("bin").join("python");
    if !python.exists() {
        println!("xtask: creating a Python virtualenv in {}", dir.display());
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .context("cannot run python3 (install Python 3 with its venv module: apt-get install python3-venv)")?;
        if !status.success() {
            bail!("python3 -m venv {} failed (apt-get install python3-venv?)", dir.display());
        }
    }
    let missing: Vec<&str> = packages.iter().copied().filter(|requirement| !installed(&python, requirement)).collect();
    if !missing.is_empty() {
        println!("xtask: installing {} into {}", missing.join(" "), dir.display());
        let status = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(&missing)
            .status()
            .context("cannot run pip in the virtualenv")?;
        if !status.success() {
            bail!("pip install {} failed", missing.join(" "));
        }
    }
    Ok(python)
}

/// Whether the requirement's distribution is installed at the pinned version (if pinned).
fn installed(python: &PathBuf, requirement: &str) -> bool {
    let (name, version) = requirement.split_once("==").unwrap_or((requirement, ""));
    let script = format!(
        "import importlib.metadata as m, sys\ntry:\n    v = m.version({name:?})\nexcept m.PackageNotFoundError:\n    sys.exit(1)\nsys.exit(0 if {version:?} in ('', v) else 1)\n"
    );
    Command::new(python).args(["-c", &script]).status().is_ok_and(|status| status.success())
}
