// Compiles the CPU-bound benchmark's C code natively, from the same file the wasm guest uses.
fn main() {
    let source = "guests/sha256-c/sha256.c";
    println!("cargo:rerun-if-changed={source}");
    println!("cargo:rerun-if-changed=guests/sha256-c/sha256.h");
    cc::Build::new().file(source).opt_level(2).compile("bench_sha256");
}
