# The tessera:calc/calculator dependency of the composition tests, in Python: its
# imports include the WASI sockets and filesystem that broke Spin's deny adapter (spin#2969).
import os
import wit_world
from wit_world.exports import Calculator
from wit_world.imports import key_value

class Calculator(Calculator):
    def add(self, a: int, b: int) -> int:
        return (a + b) & 0xffffffff

    def greeting(self) -> str:
        return os.environ.get("GREETING", "no greeting")

    def echo(self, s: str) -> str:
        return s

    def count_greetings(self, n: int) -> int:
        return sum(1 for _ in range(n) if "GREETING" in os.environ)

    def kv_roundtrip(self, key: str, value: str) -> str:
        try:
            store = key_value.Store.open("default")
            store.set(key, value.encode())
            got = store.get(key)
            return "missing" if got is None else got.decode()
        except Exception as e:
            return f"error: {e}"
