#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    jpki_fuzz::config(data);
});
