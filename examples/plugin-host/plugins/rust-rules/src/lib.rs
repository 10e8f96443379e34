//! Tenant `acme-shoes`'s discount rule, in Rust: 10% off the part of the subtotal above
//! $100, 5% more for gold customers (asked of the product through `host.loyalty-tier`),
//! and $5 off with the coupon `WELCOME`.

wit_bindgen::generate!({ world: "acme:discounts/rules", path: "../../wit" });

use acme::discounts::host::loyalty_tier;

struct Rules;

impl Guest for Rules {
    fn apply(mut cart: Cart) -> Cart {
        let subtotal: u64 = cart.items.iter().map(|i| i.unit_price_cents * u64::from(i.quantity)).sum();
        let mut discount = 0;
        if subtotal > 10_000 {
            let off = (subtotal - 10_000) / 10;
            discount += off;
            cart.notes.push(format!("10% off above $100: -{}", cents(off)));
        }
        if loyalty_tier(&cart.customer) == "gold" {
            let off = subtotal / 20;
            discount += off;
            cart.notes.push(format!("gold member 5%: -{}", cents(off)));
        }
        if cart.coupon.as_deref() == Some("WELCOME") {
            discount += 500;
            cart.notes.push("coupon WELCOME: -$5.00".into());
        }
        cart.discount_cents = (cart.discount_cents + discount).min(subtotal);
        cart
    }
}

fn cents(n: u64) -> String {
    format!("${}.{:02}", n / 100, n % 100)
}

export!(Rules);
