// Tenant `js-books`'s discount rule, in JavaScript (componentize-js): $5 off with the
// coupon SAVE5, and 3% off for silver and gold customers (asked of the product).
import { loyaltyTier } from "acme:discounts/host";

export function apply(cart) {
  const subtotal = cart.items.reduce((sum, item) => sum + item.unitPriceCents * BigInt(item.quantity), 0n);
  let discount = 0n;
  const notes = [...cart.notes];
  if (cart.coupon === "SAVE5") {
    discount += 500n;
    notes.push("coupon SAVE5: -$5.00");
  }
  const tier = loyaltyTier(cart.customer);
  if (tier === "silver" || tier === "gold") {
    const off = (subtotal * 3n) / 100n;
    discount += off;
    notes.push(`${tier} member 3%: -${off} cents`);
  }
  let total = cart.discountCents + discount;
  if (total > subtotal) total = subtotal;
  return { ...cart, discountCents: total, notes };
}
