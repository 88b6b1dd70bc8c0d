//! Arbitrary bytes as a model file: decoding never panics, what decodes re-encodes to the same
//! model, and (feature `infer`) a decoded LeNet predicts without panicking.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tinyvi_fuzz::fuzz_model(data));
