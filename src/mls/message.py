"""MLSMessage, the outer wrapper of everything on the wire (RFC 9420 §6)."""

from __future__ import annotations

from dataclasses import dataclass

from .codec import Reader, Struct, Writer
from .errors import DecodeError
from .framing import PROTOCOL_VERSION, WireFormat
from .group_info import GroupInfo
from .key_package import KeyPackage
from .private_message import PrivateMessage
from .public_message import PublicMessage
from .welcome import Welcome

Body = PublicMessage | PrivateMessage | Welcome | GroupInfo | KeyPackage

_BODY: dict[WireFormat, type[Body]] = {
    WireFormat.PUBLIC_MESSAGE: PublicMessage,
    WireFormat.PRIVATE_MESSAGE: PrivateMessage,
    WireFormat.WELCOME: Welcome,
    WireFormat.GROUP_INFO: GroupInfo,
    WireFormat.KEY_PACKAGE: KeyPackage,
}
_FORMAT: dict[type, WireFormat] = {v: k for k, v in _BODY.items()}


@dataclass(frozen=True, slots=True)
class MLSMessage(Struct):
    wire_format: WireFormat
    body: Body
    version: int = PROTOCOL_VERSION

    @classmethod
    def wrap(cls, body: Body) -> MLSMessage:
        return cls(_FORMAT[type(body)], body)

    def encode(self, w: Writer) -> None:
        w.u16(self.version)
        w.u16(self.wire_format)
        self.body.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> MLSMessage:
        version = r.u16()
        if version != PROTOCOL_VERSION:
            raise DecodeError(f"unsupported protocol version {version} (only mls10 = 1)")
        wf = r.u16()
        try:
            wire_format = WireFormat(wf)
        except ValueError:
            raise DecodeError(f"unknown wire_format {wf}") from None
        return cls(wire_format, _BODY[wire_format].decode(r), version)
