//! Embeds every file of images/jupyter-spark into the binary, so an installed
//! `sparkbox` builds its image from any directory.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf, u32)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        // Editor and interpreter leftovers are not part of the image.
        if name.starts_with('.') || name == "__pycache__" || name.ends_with(".pyc") {
            continue;
        }
        if path.is_dir() {
            collect(&path, base, out);
        } else if path.is_file() {
            let rel = path
                .strip_prefix(base)
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            #[cfg(unix)]
            let mode = {
                use std::os::unix::fs::PermissionsExt;
                let m = entry
                    .metadata()
                    .map(|m| m.permissions().mode())
                    .unwrap_or(0);
                if m & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                }
            };
            #[cfg(not(unix))]
            let mode = if rel.starts_with("bin/") {
                0o755
            } else {
                0o644
            };
            out.push((rel, path, mode));
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let image_dir = manifest.join("images").join("jupyter-spark");
    println!("cargo:rerun-if-changed={}", image_dir.display());
    let mut files = Vec::new();
    collect(&image_dir, &image_dir, &mut files);
    for (_, path, _) in &files {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    let mut code = String::from("/// The files of images/jupyter-spark, embedded at compile time.\npub static IMAGE_FILES: &[EmbeddedFile] = &[\n");
    for (rel, path, mode) in &files {
        code.push_str(&format!(
            "    EmbeddedFile {{ path: {rel:?}, contents: include_bytes!({:?}), mode: {mode:#o} }},\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    let target = out_dir.join("embedded_image_files.rs");
    if let Ok(mut f) = fs::File::create(&target) {
        let _ = f.write_all(code.as_bytes());
    }
}
