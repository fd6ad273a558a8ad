//! A Python virtualenv under `target/venv` for the test suites that drive respack with Python
//! tools (the official Tencent Cloud SDK). Idempotent: it creates the venv once and installs
//! only the packages that are missing or at another version, from the configured package index.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The venv's directory: `<workspace>/target/venv`.
fn venv_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target").join("venv")
}

/// Makes sure the venv exists with `packages` (pip requirement strings, `name` or
/// `name==version`) installed; returns the path of the venv's `python`.
pub fn ensure(packages: &[&str]) -> Result<PathBuf> {
    let dir = venv_dir();
    let python = dir.join("bin").join("python");
    if !python.exists() {
        let system_python = which_python()?;
        println!("xtask: creating a Python virtualenv in {}", dir.display());
        let status = Command::new(&system_python)
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .with_context(|| format!("running {system_python} -m venv"))?;
        if !status.success() {
            bail!(
                "`{system_python} -m venv {}` failed; install python3-venv (apt-get install python3-venv)",
                dir.display()
            );
        }
    }
    let missing: Vec<&str> = packages.iter().copied().filter(|spec| !is_installed(&python, spec)).collect();
    if !missing.is_empty() {
        println!("xtask: installing into the virtualenv: {}", missing.join(" "));
        let status = Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "--quiet"])
            .args(&missing)
            .status()
            .context("running pip in the virtualenv")?;
        if !status.success() {
            bail!("pip could not install {} (is the package index reachable?)", missing.join(" "));
        }
    }
    Ok(python)
}

fn which_python() -> Result<String> {
    for candidate in ["python3", "python"] {
        if Command::new(candidate).arg("--version").output().is_ok_and(|out| out.status.success()) {
            return Ok(candidate.to_owned());
        }
    }
    bail!("no python3 on PATH; install it (apt-get install python3 python3-venv)")
}

/// Whether `spec` (`name` or `name==version`) is installed in the venv of `python`.
fn is_installed(python: &Path, spec: &str) -> bool {
    let (name, version) = match spec.split_once("==") {
        Some((name, version)) => (name.trim(), Some(version.trim())),
        None => (spec.trim(), None),
    };
    let script = "import sys, importlib.metadata as m\ntry:\n    print(m.version(sys.argv[1]))\nexcept m.PackageNotFoundError:\n    sys.exit(1)";
    let Ok(output) = Command::new(python).args(["-c", script, name]).output() else {
        return false;
    };
    output.status.success() && version.is_none_or(|wanted| String::from_utf8_lossy(&output.stdout).trim() == wanted)
}
