//! The logic both plugin forms run, so the benchmark compares hosts, not guests.

/// `input` reversed, each byte's 0x20 bit flipped.
pub fn transform(input: &[u8]) -> Vec<u8> {
    input.iter().rev().map(|b| b ^ 0x20).collect()
}

/// Sorts `n` xorshift64 numbers and folds them into a checksum: CPU-bound work with
/// branches and memory traffic, as real plugins have (a bare xorshift chain is bound by its
/// dependencies, which hides what metering costs).
pub fn work(n: u32) -> u64 {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut values: Vec<u64> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect();
    values.sort_unstable();
    values.iter().enumerate().fold(0u64, |acc, (i, v)| acc.rotate_left(5) ^ v.wrapping_mul(i as u64 + 1))
}
