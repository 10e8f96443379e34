// Compiles the CPU-bound benchmark's C code natively, from the same file the wasm guest
// uses, twice: at -O2 for generic x86-64 (what the wasm build gets: the same level and a
// portable target) and at -O3 for this very CPU (the best native can do). The second
// copy's functions are renamed with `tuned_`.
fn main() {
    let source = "guests/sha256-c/sha256.c";
    println!("cargo:rerun-if-changed={source}");
    println!("cargo:rerun-if-changed=guests/sha256-c/sha256.h");
    cc::Build::new()
        .file(source)
        .opt_level(2)
        .compile("bench_sha256");
    let mut tuned = cc::Build::new();
    tuned
        .file(source)
        .opt_level(3)
        .flag_if_supported("-march=native");
    for f in [
        "sha256_init",
        "sha256_update",
        "sha256_final",
        "sha256_pattern_hex",
    ] {
        tuned.define(f, format!("tuned_{f}").as_str());
    }
    tuned.compile("bench_sha256_tuned");
}
