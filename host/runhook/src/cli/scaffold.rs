//! `runhook plugin new --lang L NAME`: a plugin project that builds with one
//! command (`./build.sh`) and passes `runhook plugin check`.
//!
//! Every project carries the WIT contract this binary was built with
//! (`wit/runhook.wit`, the single source of truth) and implements the
//! `match-evaluate-plugin` world. Python, JavaScript, Go and C projects start
//! from the example plugin of their language under `plugins/` (built and
//! tested in CI), so what a new project contains is known to work; Rust
//! starts from a minimal project on `wit-bindgen` with no path dependency.
//! Go and C projects also get the WASI preview1 reactor adapter of the
//! host's wasmtime, which turns their core modules into components.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};

/// The languages a project can be scaffolded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Lang {
    /// Rust, with wit-bindgen (wasm32-wasip2).
    Rust,
    /// Python, with componentize-py.
    Python,
    /// JavaScript, with componentize-qjs (QuickJS).
    Js,
    /// C, with wit-bindgen and clang + wasi-libc.
    C,
    /// Go (1.24+, wasip1), with hand-written component glue.
    Go,
}

#[derive(Debug, Args)]
pub(super) struct NewArgs {
    /// The plugin's language.
    #[arg(long, value_enum)]
    lang: Lang,
    /// The plugin's name: lowercase letters, digits, `-` and `_`, starting with a letter.
    name: String,
    /// Where to create the project directory [default: the current directory].
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

const WIT: &str = include_str!("../../../../wit/runhook.wit");

/// (path in the project, contents) of a language's files; `{{name}}` and
/// `{{crate}}` are replaced.
fn files(lang: Lang) -> Vec<(&'static str, &'static str)> {
    match lang {
        Lang::Rust => vec![
            ("Cargo.toml", include_str!("../../templates/rust/Cargo.toml")),
            ("src/lib.rs", include_str!("../../templates/rust/lib.rs")),
            ("build.sh", include_str!("../../templates/rust/build.sh")),
            (".gitignore", "target/\n*.wasm\n"),
        ],
        Lang::Python => vec![
            ("app.py", include_str!("../../../../plugins/python/example/app.py")),
            ("build.sh", include_str!("../../templates/python/build.sh")),
            (".gitignore", ".venv/\n__pycache__/\n*.wasm\n"),
        ],
        Lang::Js => vec![
            ("plugin.js", include_str!("../../../../plugins/js/example/plugin.js")),
            ("package.json", include_str!("../../templates/js/package.json")),
            ("build.sh", include_str!("../../templates/js/build.sh")),
            (".gitignore", "node_modules/\n*.wasm\n"),
        ],
        Lang::Go => vec![
            ("plugin.go", include_str!("../../../../plugins/go/example/plugin.go")),
            ("abi.go", include_str!("../../../../plugins/go/example/abi.go")),
            ("go.mod", include_str!("../../templates/go/go.mod")),
            ("build.sh", include_str!("../../templates/go/build.sh")),
            (".gitignore", ".venv/\n*.wasm\n!wasi_snapshot_preview1.reactor.wasm\n"),
        ],
        Lang::C => vec![
            ("plugin.c", include_str!("../../../../plugins/c/example/plugin.c")),
            ("json.c", include_str!("../../../../plugins/c/example/json.c")),
            ("json.h", include_str!("../../../../plugins/c/example/json.h")),
            ("build.sh", include_str!("../../templates/c/build.sh")),
            (".gitignore", ".venv/\ngen/\n*.wasm\n!wasi_snapshot_preview1.reactor.wasm\n"),
        ],
    }
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= 64;
    anyhow::ensure!(
        ok,
        "plugin name {name:?}: use lowercase letters, digits, '-' and '_', starting with a letter (at most 64)"
    );
    Ok(())
}

/// Creates the project; returns its directory.
pub(super) fn create(args: &NewArgs) -> anyhow::Result<PathBuf> {
    check_name(&args.name)?;
    let root = args.dir.join(&args.name);
    if root.exists() && std::fs::read_dir(&root).map(|mut d| d.next().is_some()).unwrap_or(true) {
        anyhow::bail!("{} already exists and is not empty", root.display());
    }
    let crate_name = args.name.replace('-', "_");
    let example_build = format!("plugins/{}/build.sh", lang_dir(args.lang));
    let mut written = Vec::new();
    for (path, text) in files(args.lang) {
        let text = text
            .replace("{{name}}", &args.name)
            .replace("{{crate}}", &crate_name)
            // The examples say how they are built in the repository.
            .replace(
                &format!("{example_build}  ->  plugins/{}/example/example.wasm", lang_dir(args.lang)),
                &format!("./build.sh  ->  {}.wasm", args.name),
            );
        write(&root.join(path), text.as_bytes(), path.ends_with(".sh"))?;
        written.push(path);
    }
    write(&root.join("wit/runhook.wit"), WIT.as_bytes(), false)?;
    if matches!(args.lang, Lang::Go | Lang::C) {
        let adapter = wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;
        write(&root.join("wasi_snapshot_preview1.reactor.wasm"), adapter, false)?;
    }
    Ok(root)
}

fn lang_dir(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "rust",
        Lang::Python => "python",
        Lang::Js => "js",
        Lang::C => "c",
        Lang::Go => "go",
    }
}

fn write(path: &Path, bytes: &[u8], executable: bool) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("my-plugin_2").is_ok());
        for bad in ["", "2fast", "Caps", "has space", "../escape"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
