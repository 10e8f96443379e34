# Tenant `py-garden`'s discount rule, in Python (componentize-py): buy three of an item,
# pay for two, and a note for gold customers (asked of the product).
import wit_world
from wit_world.imports import host, types


class WitWorld(wit_world.WitWorld):
    def apply(self, cart: types.Cart) -> types.Cart:
        discount = 0
        notes = list(cart.notes)
        for item in cart.items:
            free = item.quantity // 3
            if free:
                off = free * item.unit_price_cents
                discount += off
                notes.append(f"3 for 2 on {item.sku}: -{off} cents")
        if host.loyalty_tier(cart.customer) == "gold":
            notes.append("thank you for being a gold member")
        subtotal = sum(i.quantity * i.unit_price_cents for i in cart.items)
        cart.discount_cents = min(cart.discount_cents + discount, subtotal)
        cart.notes = notes
        return cart
