//! Builds the shipped message formats (`plugins/rust/formats/*`) into
//! WebAssembly components for `src/lib.rs` to embed.
//!
//! The guests are built by a nested `cargo build --release --target
//! wasm32-wasip2` in the plugins' own workspace and target directory
//! (`plugins/rust/target`, shared with `plugins/build.sh`), with `--locked`
//! against `plugins/rust/Cargo.lock`. The outer build's own settings are
//! removed from the nested one's environment: its target directory, its
//! rustflags (a fuzzing build's sanitizer flags would break a wasm build)
//! and the variables cargo sets for build scripts. The `wasm32-wasip2`
//! target is installed with rustup when missing, as `plugins/build.sh`
//! does, so a fresh machine with only rustup builds runhook.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The format crates, by the name runhook selects them with.
const FORMATS: [(&str, &str); 5] = [
    ("slack", "format-slack"),
    ("teams", "format-teams"),
    ("discord", "format-discord"),
    ("google-chat", "format-google-chat"),
    ("pagerduty", "format-pagerduty"),
];
const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let plugins = manifest_dir.join("../../plugins/rust");
    for watched in ["formats", "sdk", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", plugins.join(watched).display());
    }
    println!("cargo:rerun-if-changed={}", manifest_dir.join("../../wit").display());
    ensure_target();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--release", "--locked", "--target", TARGET, "--manifest-path"])
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(plugins.join("target"));
    for (_, package) in FORMATS {
        build.args(["-p", package]);
    }
    clean_env(&mut build);
    let status = build.status().expect("cannot run cargo to build the message formats");
    assert!(status.success(), "building the message formats (plugins/rust/formats) failed: {status}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let built = plugins.join("target").join(TARGET).join("release");
    let mut table =
        String::from("/// The shipped formats: name and component bytes.\npub static FORMATS: &[(&str, &[u8])] = &[\n");
    for (name, package) in FORMATS {
        let file = format!("{}.wasm", package.replace('-', "_"));
        // Copied into OUT_DIR so the embedded bytes do not change under a
        // build in progress when plugins/build.sh rebuilds them.
        let to = out.join(&file);
        std::fs::copy(built.join(&file), &to).unwrap_or_else(|e| panic!("{file}: {e}"));
        table.push_str(&format!("    ({name:?}, include_bytes!({:?})),\n", to.display().to_string()));
    }
    table.push_str("];\n");
    std::fs::write(out.join("formats.rs"), table).expect("cannot write formats.rs");
}

/// Installs the wasm target with rustup when it is missing.
fn ensure_target() {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc).args(["--print", "sysroot"]).output().ok();
    let installed = sysroot
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .is_some_and(|root| Path::new(&root).join("lib/rustlib").join(TARGET).is_dir());
    if !installed {
        let status = Command::new("rustup").args(["target", "add", TARGET]).status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "the {TARGET} target is needed to build runhook's message formats: run `rustup target add {TARGET}`"
        );
    }
}

/// Removes what the outer build set for itself from the nested build's
/// environment.
fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let outer = (key.starts_with("CARGO_")
            && key != "CARGO_HOME"
            && !key.starts_with("CARGO_NET")
            && !key.starts_with("CARGO_REGISTR"))
            || matches!(
                key,
                "RUSTFLAGS"
                    | "RUSTDOCFLAGS"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "TARGET"
                    | "HOST"
                    | "OUT_DIR"
                    | "PROFILE"
                    | "OPT_LEVEL"
                    | "DEBUG"
                    | "NUM_JOBS"
                    | "RUSTC_LINKER"
                    | "RUSTC"
                    | "RUSTDOC"
            );
        if outer {
            cmd.env_remove(key);
        }
    }
}
