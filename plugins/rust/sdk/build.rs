//! Bakes the location of the runhook WIT package into the SDK's macros.
//!
//! `wit_bindgen::generate!` only takes string literals, and it runs in the
//! plugin's crate, where a relative path would resolve against the plugin's
//! own manifest. So the SDK writes a macro whose body carries the absolute
//! path of the WIT package: the repository's top-level `wit/` (the single
//! source of truth), or a `wit/` folder shipped inside the SDK when it is used
//! outside the repository.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let candidates = [manifest.join("../../../wit"), manifest.join("wit")];
    let wit = candidates
        .iter()
        .find(|p| p.join("runhook.wit").is_file())
        .unwrap_or_else(|| panic!("runhook WIT package not found in any of {candidates:?}"))
        .canonicalize()
        .expect("canonical WIT path");
    println!("cargo:rerun-if-changed={}", wit.display());
    let wit = wit.to_str().expect("WIT path is UTF-8");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let text = format!(
        r#"/// Generates the bindings for one plugin world, given as inline WIT.
#[doc(hidden)]
#[macro_export]
macro_rules! __runhook_generate {{
    ($inline:literal) => {{
        ::runhook_plugin::__private::wit_bindgen::generate!({{
            inline: $inline,
            path: {wit:?},
            world: "runhook:guest/guest",
            generate_all,
            runtime_path: "::runhook_plugin::__private::wit_bindgen::rt",
        }});
    }};
}}
"#
    );
    std::fs::write(out.join("generate.rs"), text).expect("write generate.rs");
}
