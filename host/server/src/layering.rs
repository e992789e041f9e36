//! Enforces the import rule of the module map in `lib.rs` inside this crate:
//! a module may only use modules of lower layers. Scans the sources for
//! `crate::<module>` paths. Between crates, Cargo's dependency graph enforces
//! the same rule.

use std::collections::HashMap;
use std::path::Path;

/// Layer of each top-level module (see the table in `lib.rs`).
const LAYERS: &[(&str, u8)] = &[
    ("config", 0),
    ("links", 1),
    ("select", 2),
    ("payload", 2),
    ("plugins", 2),
    ("delivery", 2),
    ("rules", 3),
    ("alerts", 3),
    ("api", 4),
    ("app", 5),
];

fn module_of(path: &Path, src: &Path) -> Option<String> {
    let rel = path.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_string())
}

fn visit(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            visit(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// No module imports a module of its own layer or a higher one.
#[test]
fn modules_only_import_lower_layers() {
    let layers: HashMap<&str, u8> = LAYERS.iter().copied().collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    visit(&src, &mut files);
    let mut violations = Vec::new();
    for file in files {
        let Some(module) = module_of(&file, &src) else {
            continue;
        };
        let Some(&own) = layers.get(module.as_str()) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (target, &layer) in &layers {
            if *target != module && text.contains(&format!("crate::{target}")) && layer >= own {
                violations.push(format!("{} (layer {own}) uses crate::{target} (layer {layer})", file.display()));
            }
        }
    }
    assert!(violations.is_empty(), "layering violations:\n{}", violations.join("\n"));
}
