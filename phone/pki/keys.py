"""Where the lab's RSA keys come from.

Certificate builders never generate keys themselves: they ask a :class:`KeySource`. In
production that is :class:`FreshKeys`; the test suite hands in a :class:`PooledKeys` over keys
generated once, because RSA key generation dominates the run time of anything that builds a
cluster.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, generate_private_key

from phone.errors import LabError, UsageError

__all__ = ["PUBLIC_EXPONENT", "FreshKeys", "KeySource", "PooledKeys"]

PUBLIC_EXPONENT = 65537
"""The RSA public exponent of every key the lab generates."""


class KeySource(Protocol):
    """Anything that hands out RSA private keys of a requested size."""

    def rsa(self, bits: int) -> RSAPrivateKey:
        """Return an RSA private key with a modulus of ``bits`` bits."""
        ...


class FreshKeys:
    """A :class:`KeySource` that generates a new key (public exponent 65537) on every call."""

    def rsa(self, bits: int) -> RSAPrivateKey:
        """Generate and return a new RSA private key with a modulus of ``bits`` bits."""
        return generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=bits)

    def __repr__(self) -> str:
        return "FreshKeys()"


class PooledKeys:
    """A :class:`KeySource` that cycles through keys generated in advance.

    Each key size has its own pool and its own cursor. Successive calls for one size within one
    instance walk the pool in order and wrap around at its end, so ``n`` successive calls for
    the same size return ``n`` *distinct* key objects as long as ``n`` does not exceed that
    pool's size (a cluster's CallManager and TVS keys differ when the pool is big enough).
    Once the pool is exhausted the keys repeat: never use this outside tests.

    A size without a pool is delegated to ``fallback`` when one is given, and refused with
    :class:`~phone.errors.LabError` otherwise.

    Raises:
        UsageError: a pool is empty, or holds a key whose size is not the size it is filed under.
    """

    def __init__(
        self,
        keys_by_bits: Mapping[int, Sequence[RSAPrivateKey]],
        *,
        fallback: KeySource | None = None,
    ) -> None:
        pools: dict[int, tuple[RSAPrivateKey, ...]] = {}
        for bits, keys in keys_by_bits.items():
            pool = tuple(keys)
            if not pool:
                raise UsageError(f"the pool of RSA-{bits} keys is empty")
            for index, key in enumerate(pool):
                if key.key_size != bits:
                    raise UsageError(
                        f"key {index} of the RSA-{bits} pool is an RSA-{key.key_size} key"
                    )
            pools[bits] = pool
        self._pools = pools
        self._cursors = dict.fromkeys(pools, 0)
        self._fallback = fallback
        self._lock = threading.Lock()

    @property
    def sizes(self) -> tuple[int, ...]:
        """The key sizes this pool holds keys for, ascending."""
        return tuple(sorted(self._pools))

    def pool_size(self, bits: int) -> int:
        """How many distinct keys of ``bits`` bits the pool holds (0 when none)."""
        return len(self._pools.get(bits, ()))

    def rsa(self, bits: int) -> RSAPrivateKey:
        """Return the next pooled RSA key of ``bits`` bits (see the class docstring).

        Raises:
            LabError: there is no pool for ``bits`` and no fallback.
        """
        pool = self._pools.get(bits)
        if pool is None:
            if self._fallback is not None:
                return self._fallback.rsa(bits)
            held = ", ".join(str(size) for size in self.sizes) or "none"
            raise LabError(f"no pooled RSA-{bits} keys (pooled sizes: {held})")
        with self._lock:
            cursor = self._cursors[bits]
            self._cursors[bits] = (cursor + 1) % len(pool)
        return pool[cursor]

    def __repr__(self) -> str:
        sizes = ", ".join(f"{bits}: {len(pool)}" for bits, pool in sorted(self._pools.items()))
        return f"PooledKeys({{{sizes}}})"
