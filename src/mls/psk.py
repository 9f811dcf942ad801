"""Pre-shared keys (RFC 9420 §8.4): identifiers and the psk_secret chain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from .codec import Reader, Struct, Writer
from .crypto import CipherSuite
from .errors import DecodeError


class PSKType(IntEnum):
    EXTERNAL = 1
    RESUMPTION = 2


class ResumptionPSKUsage(IntEnum):
    APPLICATION = 1
    REINIT = 2
    BRANCH = 3


@dataclass(frozen=True, slots=True)
class PreSharedKeyID(Struct):
    """``PreSharedKeyID``: an external PSK id or a (group, epoch) resumption PSK."""

    psktype: PSKType
    psk_nonce: bytes
    psk_id: bytes = b""
    usage: ResumptionPSKUsage = ResumptionPSKUsage.APPLICATION
    psk_group_id: bytes = b""
    psk_epoch: int = 0

    @classmethod
    def external(cls, psk_id: bytes, nonce: bytes) -> PreSharedKeyID:
        return cls(PSKType.EXTERNAL, nonce, psk_id=psk_id)

    @classmethod
    def resumption(
        cls, usage: ResumptionPSKUsage, group_id: bytes, epoch: int, nonce: bytes
    ) -> PreSharedKeyID:
        return cls(PSKType.RESUMPTION, nonce, usage=usage, psk_group_id=group_id,
                   psk_epoch=epoch)

    def encode(self, w: Writer) -> None:
        w.u8(self.psktype)
        if self.psktype == PSKType.EXTERNAL:
            w.opaque(self.psk_id)
        else:
            w.u8(self.usage)
            w.opaque(self.psk_group_id)
            w.u64(self.psk_epoch)
        w.opaque(self.psk_nonce)

    @classmethod
    def decode(cls, r: Reader) -> PreSharedKeyID:
        t = r.u8()
        if t == PSKType.EXTERNAL:
            psk_id = r.opaque()
            return cls(PSKType.EXTERNAL, r.opaque(), psk_id=psk_id)
        if t == PSKType.RESUMPTION:
            u = r.u8()
            try:
                usage = ResumptionPSKUsage(u)
            except ValueError:
                raise DecodeError(f"unknown resumption PSK usage {u}") from None
            gid = r.opaque()
            epoch = r.u64()
            return cls(PSKType.RESUMPTION, r.opaque(), usage=usage, psk_group_id=gid,
                       psk_epoch=epoch)
        raise DecodeError(f"unknown PSK type {t}")


def psk_secret(cs: CipherSuite, psks: Sequence[tuple[PreSharedKeyID, bytes]]) -> bytes:
    """Chain the PSKs into ``psk_secret`` (RFC 9420 §8.4); all zeros when none."""
    nh = cs.hash_length
    secret = bytes(nh)
    count = len(psks)
    for index, (pid, psk) in enumerate(psks):
        w = Writer()
        pid.encode(w)
        w.u16(index)
        w.u16(count)
        psk_extracted = cs.extract(bytes(nh), psk)
        psk_input = cs.expand_with_label(psk_extracted, b"derived psk", w.getvalue(), nh)
        secret = cs.extract(psk_input, secret)
    return secret
