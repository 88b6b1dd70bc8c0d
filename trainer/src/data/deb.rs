//! Reading files out of a Debian package (`.deb`) without `dpkg` or root.
//!
//! A `.deb` is an `ar` archive whose member `data.tar.xz` (or `.gz`, or uncompressed
//! `data.tar`) holds the installed files under `./usr/...`. [`extract`] streams that tar and
//! copies the requested members into memory; it stops as soon as it has them all.

use std::io::Read;
use std::path::Path;

use crate::error::{Result, TrainerError};

/// The bytes of each of `members` (paths inside the data archive, without the leading `./`),
/// in the same order, read from the Debian package `deb`.
///
/// # Errors
/// [`TrainerError::Read`] when `deb` cannot be opened, [`TrainerError::Data`] when it is not a
/// Debian package, its data archive is corrupt or uses an unknown compression, or a member is
/// missing.
pub fn extract(deb: &Path, members: &[&str]) -> Result<Vec<Vec<u8>>> {
    let file = std::fs::File::open(deb).map_err(|e| TrainerError::read(deb, e))?;
    let bad = |what: &str, e: std::io::Error| TrainerError::data(deb, format!("{what}: {e}"));
    let mut archive = ar::Archive::new(std::io::BufReader::new(file));
    while let Some(entry) = archive.next_entry() {
        let entry = entry.map_err(|e| bad("not a Debian package (ar archive)", e))?;
        let name = String::from_utf8_lossy(entry.header().identifier()).into_owned();
        let data: Box<dyn Read + '_> = match name.as_str() {
            "data.tar.xz" => Box::new(liblzma::read::XzDecoder::new(entry)),
            "data.tar.gz" => Box::new(flate2::read::GzDecoder::new(entry)),
            "data.tar" => Box::new(entry),
            n if n.starts_with("data.tar") => {
                return Err(TrainerError::data(
                    deb,
                    format!("data archive {n} uses a compression this reader does not know"),
                ))
            }
            _ => continue,
        };
        return members_of(deb, data, members);
    }
    Err(TrainerError::data(
        deb,
        "no data.tar member: not a Debian binary package",
    ))
}

/// The bytes of each of `members` in the tar stream `data`.
fn members_of(deb: &Path, data: impl Read, members: &[&str]) -> Result<Vec<Vec<u8>>> {
    let bad = |e: std::io::Error| TrainerError::data(deb, format!("corrupt data archive: {e}"));
    let mut found: Vec<Option<Vec<u8>>> = vec![None; members.len()];
    let mut tar = tar::Archive::new(data);
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        let path = path.strip_prefix(".").unwrap_or(&path);
        let Some(i) = members.iter().position(|m| Path::new(m) == path) else {
            continue;
        };
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(bad)?;
        found[i] = Some(bytes);
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    found
        .into_iter()
        .zip(members)
        .map(|(bytes, m)| {
            bytes.ok_or_else(|| TrainerError::data(deb, format!("the package has no {m}")))
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A Debian package holding `files` (path, bytes) in an xz-compressed `data.tar.xz`,
    /// laid out as `dpkg-deb --build` lays it out.
    pub(crate) fn build_deb(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, format!("./{path}"), *bytes)
                .unwrap();
        }
        let tar = tar.into_inner().unwrap();
        let mut xz = Vec::new();
        liblzma::read::XzEncoder::new(&tar[..], 6)
            .read_to_end(&mut xz)
            .unwrap();
        let mut deb = ar::Builder::new(Vec::new());
        for (name, bytes) in [
            ("debian-binary", &b"2.0\n"[..]),
            ("control.tar.xz", &[][..]),
            ("data.tar.xz", &xz[..]),
        ] {
            let header = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
            deb.append(&header, bytes).unwrap();
        }
        deb.into_inner().unwrap()
    }

    #[test]
    fn extracts_members_from_a_package_it_built() {
        let dir = tempfile::tempdir().unwrap();
        let deb = dir.path().join("p.deb");
        let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(
            &deb,
            build_deb(&[
                ("usr/share/doc/p/copyright", b"free"),
                ("usr/share/p/a.gz", &big),
                ("usr/share/p/b.gz", b"bee"),
            ]),
        )
        .unwrap();
        let got = extract(&deb, &["usr/share/p/b.gz", "usr/share/p/a.gz"]).unwrap();
        assert_eq!(got, vec![b"bee".to_vec(), big]);
    }

    #[test]
    fn a_missing_member_or_a_non_package_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let deb = dir.path().join("p.deb");
        std::fs::write(&deb, build_deb(&[("usr/x", b"1")])).unwrap();
        let e = extract(&deb, &["usr/x", "usr/y"]).unwrap_err();
        assert!(matches!(e, TrainerError::Data { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!("{}: the package has no usr/y", deb.display())
        );

        std::fs::write(&deb, b"plain text, not an ar archive").unwrap();
        let e = extract(&deb, &["usr/x"]).unwrap_err();
        assert!(
            e.to_string().contains("not a Debian package (ar archive)"),
            "{e}"
        );
    }
}
