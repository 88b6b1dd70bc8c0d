//! Building the firmware for QEMU, running it, and decoding its defmt log — with the
//! defmt-decoder library, so no extra tool is needed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use defmt_decoder::{DecodeError, Table};

use crate::workspace_root;

/// The firmware's target.
pub const TARGET: &str = "thumbv7em-none-eabihf";

/// Serialises firmware builds: they share `firmware/target/`, and each build overwrites the
/// ELF of the one before.
static BUILD: Mutex<()> = Mutex::new(());

/// Fails (does not skip) with what to install when QEMU, the Rust target or flip-link is
/// missing.
pub fn require_tools() {
    let mut missing = Vec::new();
    let qemu = Command::new("qemu-system-arm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !qemu.is_ok_and(|s| s.success()) {
        missing.push("qemu-system-arm (Debian/Ubuntu: `apt-get install qemu-system-arm`)");
    }
    let targets = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let has_target = match targets {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.trim() == TARGET),
        // Without rustup, let the build say whether the target's standard library is there.
        Err(_) => true,
    };
    if !has_target {
        missing
            .push("the thumbv7em-none-eabihf target (`rustup target add thumbv7em-none-eabihf`)");
    }
    let flip_link = Command::new("flip-link")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if flip_link.is_err() {
        missing.push("flip-link, the firmware's linker (`cargo install flip-link --locked`)");
    }
    assert!(
        missing.is_empty(),
        "the QEMU firmware test needs: {}",
        missing.join("; ")
    );
}

/// Firmware build settings (the `TINYVI_*` variables of `firmware/build.rs`).
#[derive(Clone, Debug)]
pub struct Build<'a> {
    /// Model file.
    pub model: &'a Path,
    /// Sample-set file.
    pub samples: &'a Path,
    /// Sampling mode name.
    pub mode: &'a str,
    /// Monte Carlo samples.
    pub mc_samples: u32,
    /// Run seed.
    pub seed: u64,
    /// Extra Cargo features besides `qemu`.
    pub features: &'a [&'a str],
}

/// Builds the firmware for QEMU (release) and copies the ELF to `dest`.
pub fn build(b: &Build<'_>, dest: &Path) {
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let dir = workspace_root().join("firmware");
    let mut features = vec!["qemu"];
    features.extend_from_slice(b.features);
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&dir)
        .args(["build", "--release", "--features", &features.join(",")])
        .env("TINYVI_MODEL", b.model)
        .env("TINYVI_SAMPLES", b.samples)
        .env("TINYVI_MODE", b.mode)
        .env("TINYVI_MC_SAMPLES", b.mc_samples.to_string())
        .env("TINYVI_SEED", b.seed.to_string())
        .env_remove("TINYVI_IMAGES")
        .env("CARGO_TARGET_DIR", dir.join("target"))
        // The outer `cargo test` must not leak host settings into the firmware build.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    let out = cmd.output().expect("run cargo build for the firmware");
    assert!(
        out.status.success(),
        "firmware build failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let elf: PathBuf = dir
        .join("target")
        .join(TARGET)
        .join("release")
        .join("firmware");
    std::fs::copy(&elf, dest).expect("copy the firmware ELF");
}

/// What a QEMU run gave.
#[derive(Debug)]
pub struct Run {
    /// QEMU's exit code (`None` if killed, e.g. by the timeout).
    pub code: Option<i32>,
    /// The decoded log, one line per defmt frame: `LEVEL message`.
    pub log: String,
    /// Whether the run was stopped by the timeout.
    pub timed_out: bool,
}

/// Runs `elf` in QEMU mps2-an386 with `-icount shift=0` and decodes its defmt output.
pub fn run_qemu(elf: &Path, timeout: Duration) -> Run {
    let mut child = Command::new("qemu-system-arm")
        .args([
            "-M",
            "mps2-an386",
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "none",
        ])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(["-icount", "shift=0", "-kernel"])
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start qemu-system-arm");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let start = Instant::now();
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().expect("wait for qemu") {
            break (Some(status), false);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            break (child.wait().ok(), true);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let bytes = reader.join().unwrap_or_default();
    let elf_bytes = std::fs::read(elf).expect("read the ELF");
    Run {
        code: if timed_out {
            None
        } else {
            status.and_then(|s| s.code())
        },
        log: decode(&elf_bytes, &bytes),
        timed_out,
    }
}

/// Decodes a defmt byte stream into lines `LEVEL message`, as `defmt-print` prints them.
pub fn decode(elf: &[u8], stream: &[u8]) -> String {
    let table = Table::parse(elf)
        .expect("parse the ELF's defmt table")
        .expect("the ELF has a .defmt section");
    let mut decoder = table.new_stream_decoder();
    decoder.received(stream);
    let mut log = String::new();
    loop {
        match decoder.decode() {
            Ok(frame) => {
                log.push_str(&frame.display(false).to_string());
                log.push('\n');
            }
            Err(DecodeError::UnexpectedEof) => break,
            Err(DecodeError::Malformed) => {
                log.push_str("(malformed defmt frame)\n");
                if table.encoding().can_recover() {
                    continue;
                }
                break;
            }
        }
    }
    log
}
