//! What shapes the jupyter-spark image: the files of images/jupyter-spark
//! (embedded into the binary), the pinned version matrix entry, the base
//! image and the extra packages — and so its content-hash tag. Pure: how the
//! image is built or fetched lives in `image/`.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::versions::VersionEntry;

/// The base image of the build unless the user names another.
pub const DEFAULT_BASE_IMAGE: &str = "debian:bookworm-slim";

/// A file of images/jupyter-spark, embedded into the binary.
pub struct EmbeddedFile {
    /// Path inside the build context.
    pub path: &'static str,
    /// The file's bytes.
    pub contents: &'static [u8],
    /// Unix mode.
    pub mode: u32,
}

include!(concat!(env!("OUT_DIR"), "/embedded_image_files.rs"));

/// The repository every sparkbox image is tagged in.
pub const IMAGE_REPOSITORY: &str = "sparkbox/jupyter-spark";

/// Everything that shapes the image, and so its content hash.
#[derive(Debug, Clone)]
pub struct ImageRecipe {
    /// The pinned versions.
    pub entry: &'static VersionEntry,
    /// The base image reference.
    pub base_image: String,
    /// Extra Python packages (pip requirement specs), installed in every container.
    pub extra_packages: Vec<String>,
}

impl ImageRecipe {
    /// A recipe after checking the extra package specs.
    pub fn new(
        entry: &'static VersionEntry,
        base_image: Option<String>,
        extra_packages: Vec<String>,
    ) -> Result<ImageRecipe> {
        for spec in &extra_packages {
            validate_package_spec(spec)?;
        }
        let base_image = base_image.unwrap_or_else(|| DEFAULT_BASE_IMAGE.to_string());
        if base_image.trim().is_empty() || base_image.contains(char::is_whitespace) {
            return Err(Error::InvalidInput(format!(
                "--base-image {base_image:?} is not an image reference — use e.g. {}",
                DEFAULT_BASE_IMAGE
            )));
        }
        Ok(ImageRecipe {
            entry,
            base_image,
            extra_packages,
        })
    }

    /// SHA-256 over the embedded files, the matrix entry, the base and the extras.
    pub fn content_hash(&self) -> String {
        let mut hasher = Sha256::new();
        let mut files: Vec<&EmbeddedFile> = IMAGE_FILES.iter().collect();
        files.sort_by_key(|f| f.path);
        for f in files {
            hasher.update(f.path.as_bytes());
            hasher.update([0]);
            hasher.update(f.mode.to_le_bytes());
            hasher.update((f.contents.len() as u64).to_le_bytes());
            hasher.update(f.contents);
        }
        hasher.update(serde_json::to_vec(self.entry).unwrap_or_default());
        hasher.update(self.base_image.as_bytes());
        let mut extras = self.extra_packages.clone();
        extras.sort();
        for e in extras {
            hasher.update([0]);
            hasher.update(e.as_bytes());
        }
        let digest = hasher.finalize();
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The tag: "sparkbox/jupyter-spark:<spark>-<12 hex of the content hash>".
    pub fn tag(&self) -> String {
        format!(
            "{IMAGE_REPOSITORY}:{}-{}",
            self.entry.spark,
            &self.content_hash()[..12]
        )
    }

    /// Names of the extra packages (without version specifiers).
    pub fn extra_package_names(&self) -> Vec<String> {
        self.extra_packages
            .iter()
            .map(|s| {
                s.split(|c: char| "=<>!~[;".contains(c))
                    .next()
                    .unwrap_or(s)
                    .trim()
                    .to_string()
            })
            .collect()
    }
}

/// A pip requirement spec is a name with optional extras and version
/// specifiers; anything else (spaces, shell characters, URLs) is refused.
pub fn validate_package_spec(spec: &str) -> Result<()> {
    let ok_chars = spec
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-[],=<>!~".contains(c));
    let starts_ok = spec
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if spec.is_empty() || !ok_chars || !starts_ok {
        return Err(Error::InvalidInput(format!(
            "python package {spec:?} is not a plain requirement — write it as NAME or NAME==VERSION (e.g. polars==1.9.0)"
        )));
    }
    Ok(())
}

/// A recipe of the default release with `extra` packages, for tests.
#[cfg(test)]
pub(crate) fn sample(extra: Vec<&str>) -> ImageRecipe {
    ImageRecipe::new(
        &crate::model::versions::MATRIX[0],
        None,
        extra.into_iter().map(String::from).collect(),
    )
    .expect("valid recipe")
}

#[cfg(test)]
mod tests {
    use super::sample as recipe;
    use super::*;
    use crate::model::versions::MATRIX;

    #[test]
    fn embedded_files_include_the_dockerfile_and_scripts() {
        let paths: Vec<_> = IMAGE_FILES.iter().map(|f| f.path).collect();
        for needed in [
            "Dockerfile",
            "bin/measure-versions",
            "bin/entrypoint",
            "bin/healthcheck",
        ] {
            assert!(paths.contains(&needed), "{needed} missing from {paths:?}");
        }
    }

    #[test]
    fn hash_is_stable_and_shaped_by_every_input() {
        let a = recipe(vec![]);
        assert_eq!(a.content_hash(), recipe(vec![]).content_hash());
        assert!(a
            .tag()
            .starts_with(&format!("{IMAGE_REPOSITORY}:{}-", MATRIX[0].spark)));
        let with_extra = recipe(vec!["polars==1.9.0"]);
        assert_ne!(a.content_hash(), with_extra.content_hash());
        let other_base =
            ImageRecipe::new(&MATRIX[0], Some("debian:bookworm".into()), vec![]).expect("ok");
        assert_ne!(a.content_hash(), other_base.content_hash());
        let other_version = ImageRecipe::new(&MATRIX[1], None, vec![]).expect("ok");
        assert_ne!(a.content_hash(), other_version.content_hash());
        // Order of extras does not matter.
        assert_eq!(
            recipe(vec!["a", "b"]).content_hash(),
            recipe(vec!["b", "a"]).content_hash()
        );
    }

    #[test]
    fn package_specs_are_checked() {
        assert!(validate_package_spec("polars==1.9.0").is_ok());
        assert!(validate_package_spec("scikit-learn[alldeps]>=1.0,<2").is_ok());
        for bad in ["", "x; rm -rf /", "a b", "-e git+x", "$(id)"] {
            assert!(validate_package_spec(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(
            recipe(vec!["polars==1.9.0", "scikit-learn[all]>=1"]).extra_package_names(),
            vec!["polars", "scikit-learn"]
        );
    }
}
