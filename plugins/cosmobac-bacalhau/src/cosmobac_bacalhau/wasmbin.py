"""Just enough of the WebAssembly binary format to list a module's exported functions and their
types, without a runtime: used to check a WASM job's ``Entrypoint`` before submitting it."""

from __future__ import annotations

from typing import Final

__all__ = ["WasmFormatError", "exported_functions"]

MAGIC: Final = b"\0asm"
_VALTYPES: Final = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128"}
_REFTYPES: Final = {0x70: "funcref", 0x6F: "externref"}


class WasmFormatError(ValueError):
    """The bytes are not a WebAssembly module this reader understands."""


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise WasmFormatError("unexpected end of module")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def uleb(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise WasmFormatError("integer too long")

    def name(self) -> str:
        size = self.uleb()
        if self.pos + size > self.end:
            raise WasmFormatError("name runs past its section")
        text = self.data[self.pos : self.pos + size].decode("utf-8", "replace")
        self.pos += size
        return text

    def valtype(self) -> str:
        code = self.byte()
        name = _VALTYPES.get(code) or _REFTYPES.get(code)
        if name is None:
            raise WasmFormatError(f"unsupported value type 0x{code:02x}")
        return name

    def limits(self) -> None:
        flags = self.byte()
        self.uleb()
        if flags & 0x01:
            self.uleb()


def exported_functions(data: bytes) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """``{export name: (param types, result types)}`` of a module's exported functions.

    Raises :class:`WasmFormatError` for bytes that are not a module (or use encodings this small
    reader does not know, such as the GC proposal's type forms)."""
    if len(data) < 8 or data[:4] != MAGIC:
        raise WasmFormatError("not a WebAssembly module (no \\0asm header)")
    if data[4:8] != b"\x01\x00\x00\x00":
        raise WasmFormatError("not a WebAssembly core module version 1 (a component?)")
    types: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    functions: list[int] = []  # type index of every function, imported ones first
    exports: dict[str, int] = {}
    reader = _Reader(data, 8)
    while reader.pos < reader.end:
        section = reader.byte()
        size = reader.uleb()
        end = reader.pos + size
        if end > len(data):
            raise WasmFormatError("a section runs past the end of the module")
        body = _Reader(data, reader.pos, end)
        if section == 1:  # types
            for _ in range(body.uleb()):
                if body.byte() != 0x60:
                    raise WasmFormatError("unsupported type form")
                params = tuple(body.valtype() for _ in range(body.uleb()))
                results = tuple(body.valtype() for _ in range(body.uleb()))
                types.append((params, results))
        elif section == 2:  # imports
            for _ in range(body.uleb()):
                body.name()
                body.name()
                kind = body.byte()
                if kind == 0:
                    functions.append(body.uleb())
                elif kind == 1:
                    body.byte()
                    body.limits()
                elif kind == 2:
                    body.limits()
                elif kind == 3:
                    body.valtype()
                    body.byte()
                elif kind == 4:
                    body.byte()
                    body.uleb()
                else:
                    raise WasmFormatError(f"unsupported import kind {kind}")
        elif section == 3:  # functions
            functions.extend(body.uleb() for _ in range(body.uleb()))
        elif section == 7:  # exports
            for _ in range(body.uleb()):
                name = body.name()
                kind = body.byte()
                index = body.uleb()
                if kind == 0:
                    exports[name] = index
        reader.pos = end
    out = {}
    for name, index in exports.items():
        if index >= len(functions) or functions[index] >= len(types):
            raise WasmFormatError(f"export {name!r} names a function that does not exist")
        out[name] = types[functions[index]]
    return out
