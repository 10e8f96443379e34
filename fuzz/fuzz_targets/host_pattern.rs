#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_manifest::fuzzing::host_pattern(data));
