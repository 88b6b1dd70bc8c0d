//! Arbitrary bytes as an IDX image or label file, raw or gzipped: parsing never panics and
//! what it accepts agrees with the header.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tinyvi_fuzz::fuzz_idx(data));
