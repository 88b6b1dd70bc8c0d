//! Bad IDX inputs not already in `data_errors.rs`: every truncation, empty and trailing gzip
//! data, zero and absurd counts, other IDX types, and paths that cannot be read. Each gives a
//! one-line error that starts with the path and names the problem.

mod common;

use std::path::Path;

use tinyvi::arch::IMAGE_LEN;
use trainer::data::idx::{
    encode_images, encode_labels, gunzip, parse_images, parse_labels, read_images, read_labels,
    read_pair,
};

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
fn images_truncated_at_every_length() {
    let full = images(2);
    for len in 4..full.len() {
        assert_eq!(
            parse_images(&full[..len]).unwrap_err(),
            truncation_message(len, 16, "images", 2, full.len()),
            "length {len}"
        );
    }
    // Shorter than the magic: nothing to compare yet.
    for len in 0..4 {
        assert!(parse_images(&full[..len])
            .unwrap_err()
            .starts_with(&format!("truncated header: {len} bytes")));
    }
}

#[test]
fn labels_truncated_at_every_length() {
    let full = encode_labels(&[3, 1, 4, 1, 5, 9, 2, 6]);
    for len in 0..full.len() {
        let e = parse_labels(&full[..len]).unwrap_err();
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
    let e = parse_images(&imgs).unwrap_err();
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
