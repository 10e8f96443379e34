//! Tenant `mallory`'s rule: hostile on purpose. The coupon picks the attack; the host must
//! stop each with its quota while other tenants keep being answered.
//!
//! `loop` spins forever, `bomb` allocates without end, `recurse` recurses without end,
//! `huge` returns a megabyte of notes, `flood` calls the host without end, `trap` panics,
//! `shout` prints 100 KB and returns. Any other cart passes through unchanged.

wit_bindgen::generate!({ world: "acme:discounts/rules", path: "../../wit" });

use acme::discounts::host::loyalty_tier;
use std::hint::black_box;

struct Hostile;

impl Guest for Hostile {
    fn apply(mut cart: Cart) -> Cart {
        match cart.coupon.as_deref() {
            Some("loop") => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            Some("bomb") => {
                // Reserved, never written: only the memory quota can stop it.
                let mut hoard = Vec::new();
                loop {
                    hoard.push(black_box(Vec::<u8>::with_capacity(1 << 20)));
                }
            }
            Some("recurse") => {
                cart.discount_cents = recurse(black_box(1));
            }
            Some("huge") => {
                cart.notes = vec!["x".repeat(1024); 1024];
            }
            Some("flood") => loop {
                black_box(loyalty_tier(&cart.customer));
            },
            Some("trap") => panic!("mallory's rule panics"),
            Some("shout") => {
                print!("{}", "!".repeat(100_000));
            }
            _ => {}
        }
        cart
    }
}

/// Recurses until `n` wraps, which the stack never lets it reach. Small frames, so the
/// wasm stack runs out before the shadow stack in linear memory does.
#[inline(never)]
fn recurse(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    recurse(black_box(n.wrapping_add(1))).wrapping_add(n)
}

export!(Hostile);
