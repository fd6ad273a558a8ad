//! `cargo xtask build-site`: the console's hydrate bundle. Builds `respack-console` for
//! wasm32 with the `hydrate` feature, then runs wasm-bindgen as a library (no downloaded
//! tools) into `<site>/pkg/respack.js` + `respack.wasm`, the names Leptos asks for.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::Shell;

/// The wasm-bindgen version this xtask links; the app's must be the same, or the JS glue and
/// the WASM would not fit together.
const WASM_BINDGEN_VERSION: &str = "0.2.130";

/// The bundle's file stem (`LEPTOS_OUTPUT_NAME` in `.cargo/config.toml`).
pub const OUTPUT_NAME: &str = "respack";

/// Which WASM build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmProfile {
    /// Size-optimized (`wasm-release`: opt-level z, LTO, one codegen unit, panic = abort),
    /// name and producers sections stripped.
    Release,
    /// Quick to build, large; for `RESPACK_WASM_PROFILE=dev`.
    Dev,
}

impl WasmProfile {
    /// `RESPACK_WASM_PROFILE=dev` picks the quick build; everything else the release one.
    pub fn from_env() -> WasmProfile {
        match std::env::var("RESPACK_WASM_PROFILE").as_deref() {
            Ok("dev") => WasmProfile::Dev,
            _ => WasmProfile::Release,
        }
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// Where the hydrate build compiles, `target/wasm-build`.
pub fn wasm_target_dir() -> PathBuf {
    target_dir().join("wasm-build")
}

/// The default site root, `target/site`.
pub fn default_site_root() -> PathBuf {
    target_dir().join("site")
}

pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Refuses to run when Cargo.lock holds another wasm-bindgen than the one linked here.
fn check_wasm_bindgen_version() -> Result<()> {
    let lock = std::fs::read_to_string(workspace_root().join("Cargo.lock")).context("cannot read Cargo.lock")?;
    let mut versions = Vec::new();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\"" || line == "name = \"wasm-bindgen-cli-support\"" {
            if let Some(version) = lines.next().and_then(|line| line.strip_prefix("version = ")) {
                versions.push(version.trim_matches('"').to_owned());
            }
        }
    }
    if versions.is_empty() || versions.iter().any(|version| version != WASM_BINDGEN_VERSION) {
        bail!(
            "Cargo.lock has wasm-bindgen {versions:?}, but xtask links wasm-bindgen-cli-support \
             {WASM_BINDGEN_VERSION}; pin both to the same version (`=x.y.z` in the root Cargo.toml)"
        );
    }
    Ok(())
}

/// The server and the WASM must both be built with `--cfg erase_components` (set in
/// `.cargo/config.toml`), or the page's hydration markers would not match. A `RUSTFLAGS`
/// variable replaces the configured flags, so it must carry the cfg too.
pub fn check_rustflags() -> Result<()> {
    for variable in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS"] {
        if let Ok(flags) = std::env::var(variable) {
            if !flags.contains("erase_components") {
                bail!(
                    "{variable} is set ({flags:?}) and replaces the `--cfg erase_components` of \
                     .cargo/config.toml, which the console's server and WASM must both be built with; \
                     add `--cfg erase_components` to it or unset it"
                );
            }
        }
    }
    Ok(())
}

/// Whether the active toolchain has the standard library for wasm32-unknown-unknown.
pub fn wasm_target_installed(sh: &Shell) -> bool {
    let sysroot = sh.cmd("rustc").args(["--print", "sysroot"]).quiet().read().unwrap_or_default();
    Path::new(sysroot.trim()).join("lib/rustlib/wasm32-unknown-unknown").is_dir()
}

/// Builds the hydrate WASM and writes `site_root/pkg/`. Returns the path of the `.wasm`, or
/// `None` when the wasm32 target is not installed and we are not in CI: then respack-web
/// serves the pages without the bundle (plain server-rendered HTML whose forms work), and this
/// says so loudly. With `CI=true` a missing target is an error.
pub fn build(sh: &Shell, site_root: &Path, profile: WasmProfile) -> Result<Option<PathBuf>> {
    if !wasm_target_installed(sh) {
        let message = "the wasm32-unknown-unknown target is not installed for this toolchain \
                       (`rustup target add wasm32-unknown-unknown`), so the console's hydrate \
                       bundle cannot be built";
        if crate::test_cmd::is_ci() {
            bail!("{message}");
        }
        eprintln!(
            "\nxtask: WARNING: {message}.\nxtask: the console will be served WITHOUT its WASM: \
             server-rendered pages and plain forms only.\n"
        );
        return Ok(None);
    }
    check_wasm_bindgen_version()?;
    check_rustflags()?;
    let (cargo_profile, profile_dir) = match profile {
        WasmProfile::Release => ("wasm-release", "wasm-release"),
        WasmProfile::Dev => ("dev", "debug"),
    };
    println!("xtask: building the console's hydrate WASM (profile {cargo_profile})");
    // A target directory of its own: the WASM build neither waits for nor invalidates the
    // native one (e.g. while `dev` builds respack-web).
    let wasm_target = wasm_target_dir();
    sh.cmd(cargo())
        .env("CARGO_TARGET_DIR", &wasm_target)
        .args(["build", "--quiet", "-p", "respack-console", "--lib", "--target", "wasm32-unknown-unknown"])
        .args(["--no-default-features", "--features", "hydrate", "--profile", cargo_profile])
        .run()
        .context("the hydrate build failed (is the target installed? `rustup target add wasm32-unknown-unknown`)")?;
    let input = wasm_target.join("wasm32-unknown-unknown").join(profile_dir).join("respack_console.wasm");
    let pkg = site_root.join("pkg");
    std::fs::create_dir_all(&pkg).with_context(|| format!("cannot create {}", pkg.display()))?;
    println!("xtask: running wasm-bindgen {WASM_BINDGEN_VERSION} into {}", pkg.display());
    let release = profile == WasmProfile::Release;
    let mut bindgen = wasm_bindgen_cli_support::Bindgen::new();
    bindgen
        .input_path(&input)
        .web(true)
        .context("wasm-bindgen: cannot target the web")?
        .typescript(false)
        .out_name(OUTPUT_NAME)
        .keep_debug(!release)
        .remove_name_section(release)
        .remove_producers_section(release);
    bindgen.generate(&pkg).map_err(|error| anyhow::anyhow!("wasm-bindgen failed: {error:#}"))?;
    // Leptos (with LEPTOS_OUTPUT_NAME set) loads `<name>.wasm`, not wasm-bindgen's `<name>_bg.wasm`.
    let generated = pkg.join(format!("{OUTPUT_NAME}_bg.wasm"));
    let wasm = pkg.join(format!("{OUTPUT_NAME}.wasm"));
    std::fs::rename(&generated, &wasm).with_context(|| format!("cannot rename {}", generated.display()))?;
    let size = std::fs::metadata(&wasm).map(|meta| meta.len()).unwrap_or(0);
    let mut brotli_size = 0;
    for name in [format!("{OUTPUT_NAME}.wasm"), format!("{OUTPUT_NAME}.js")] {
        let (br, _) = precompress(&pkg.join(&name))?;
        if name.ends_with(".wasm") {
            brotli_size = br;
        }
    }
    println!(
        "xtask: site ready in {} ({} KB of WASM, {} KB brotli)",
        site_root.display(),
        size / 1024,
        brotli_size / 1024
    );
    Ok(Some(wasm))
}

/// Writes `<file>.br` (brotli, quality 11) and `<file>.gz` (gzip -9) beside `file`, which
/// respack-web serves as they are to browsers that accept them: compressed once at the best
/// level here instead of on every request. Returns both sizes.
fn precompress(file: &Path) -> Result<(u64, u64)> {
    use std::io::Write;

    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let with_suffix = |suffix: &str| {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let mut br = Vec::new();
    {
        let params = brotli::enc::BrotliEncoderParams { quality: 11, lgwin: 22, ..Default::default() };
        brotli::BrotliCompress(&mut bytes.as_slice(), &mut br, &params)
            .with_context(|| format!("cannot brotli-compress {}", file.display()))?;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&bytes)?;
    let gz = gz.finish()?;
    for (path, data) in [(with_suffix(".br"), &br), (with_suffix(".gz"), &gz)] {
        std::fs::write(&path, data).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok((br.len() as u64, gz.len() as u64))
}

/// `cargo xtask build-site [--dev]`.
pub fn run(args: &[String]) -> Result<()> {
    let profile = if args.iter().any(|arg| arg == "--dev") { WasmProfile::Dev } else { WasmProfile::from_env() };
    let sh = Shell::new()?;
    sh.change_dir(workspace_root());
    build(&sh, &default_site_root(), profile)?;
    Ok(())
}
