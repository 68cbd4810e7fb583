"""RoutedDecoder (decode by extension: images, .npy, JSON, text, tensors) and HashChecker (md5/sha256)."""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

from loom.data._columns import check_source
from loom.data._datapipe import IterDataPipe, functional_datapipe
from loom.data.iter._fsspec import need
from loom.data.iter._streams import StreamWrapper, check_pair, close_quietly

__all__ = [
    "HashChecker",
    "RoutedDecoder",
    "decoder_basichandlers",
    "decoder_imagehandler",
    "extension_extract_fn",
]

Handler = Callable[[str, bytes], Any]


def extension_extract_fn(path: str) -> str:
    """The key RoutedDecoder routes on by default: the extension without its dot, lower-cased.

    Example:
        >>> extension_extract_fn("shard.tar/a.b.JPG")
        'jpg'
    """
    return os.path.splitext(path)[1][1:].lower()


_TEXT = {"txt", "text", "transcript"}
_INTS = {"cls", "cls2", "class", "count", "index", "inx", "id"}


def decoder_basichandlers(ext: str, data: bytes) -> Any:
    """Text (``txt``), integers (``cls``, ``id``...), JSON (``json``), NumPy (``npy``, no pickles), tensors (``pt``, weights only).

    Returns ``None`` for other extensions. Unlike torchdata, pickles (``pyd``, ``pickle``) are not decoded:
    unpickling untrusted data runs code; add a handler if the data is trusted.

    Args:
        ext: the key from RoutedDecoder's ``key_fn`` (the extension).
        data: the raw bytes.

    Returns:
        The decoded value, or ``None`` to let the next handler try.

    Example:
        >>> decoder_basichandlers("cls", b"7"), decoder_basichandlers("json", b'[1]'), decoder_basichandlers("bin", b"")
        (7, [1], None)
    """
    if ext in _TEXT:
        return data.decode("utf-8")
    if ext in _INTS:
        return int(data)
    if ext in ("json", "jsn"):
        return json.loads(data)
    if ext == "npy":
        np = need("numpy", "io", "routed_decode")
        return np.load(io.BytesIO(data), allow_pickle=False)
    if ext in ("pt", "pth"):
        import torch

        return torch.load(io.BytesIO(data), weights_only=True)
    return None


_IMAGE_EXTS = {"jpg", "jpeg", "png", "ppm", "pgm", "pbm", "pnm", "bmp", "gif", "tif", "tiff", "webp"}
IMAGE_SPECS = ("numpy", "numpyuint8", "pil", "pilrgb", "torch", "torchuint8")


def decoder_imagehandler(imagespec: str) -> Handler:
    """A handler that decodes images with Pillow (``pip install loom[io]``).

    Args:
        imagespec: ``"pil"``, ``"pilrgb"``, ``"numpy"`` (float RGB HWC in [0, 1]), ``"numpyuint8"``,
            ``"torch"`` (float RGB CHW in [0, 1]) or ``"torchuint8"``.

    Returns:
        ``handler(ext, data)``, decoding jpg/png/bmp/gif/tiff/webp/ppm and passing (``None``) on others.

    Raises:
        ValueError: an unknown ``imagespec``.

    Example:
        >>> import io
        >>> from PIL import Image
        >>> buf = io.BytesIO()
        >>> Image.new("RGB", (3, 2)).save(buf, format="PNG")
        >>> decoder_imagehandler("torch")("png", buf.getvalue()).shape
        torch.Size([3, 2, 3])
    """
    if imagespec not in IMAGE_SPECS:
        raise ValueError(f"decoder_imagehandler: imagespec must be one of {IMAGE_SPECS}, got {imagespec!r}")

    def handle(ext: str, data: bytes) -> Any:
        if ext not in _IMAGE_EXTS:
            return None
        image_mod = need("PIL.Image", "io", "routed_decode")
        with image_mod.open(io.BytesIO(data)) as img:
            img.load()
            if imagespec == "pil":
                return img.copy()
            img = img.convert("RGB")
            if imagespec == "pilrgb":
                return img
            np = need("numpy", "io", "routed_decode")
            arr = np.asarray(img)
        if imagespec == "numpyuint8":
            return arr
        if imagespec == "numpy":
            return arr.astype("float32") / 255.0
        import torch

        tensor = torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()
        return tensor if imagespec == "torchuint8" else tensor.float() / 255.0

    handle.__qualname__ = f"decoder_imagehandler({imagespec!r})"
    return handle


def _read_all(call: str, path: str, data: Any) -> bytes:
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if hasattr(data, "read"):
        try:
            out = data.read()
        finally:
            close_quietly(data)
        if isinstance(out, str):
            out = out.encode("utf-8")
        return out  # type: ignore[no-any-return]
    raise TypeError(f"{call}: {path!r}: expected bytes or a binary stream, got {type(data).__name__}")


@functional_datapipe("routed_decode")
class RoutedDecoder(IterDataPipe):
    """Decodes ``(path, data)`` by the path's extension with the first handler that accepts it (functional name: ``routed_decode``).

    A handler is ``fn(extension, raw_bytes)`` returning the decoded value, or ``None`` to pass. Default
    handlers: ``decoder_basichandlers`` then ``decoder_imagehandler("torch")``. Data no handler accepts is passed on as
    it came (streams read into bytes). Stateless. A handler that fails raises a ValueError naming the path.

    Args:
        datapipe: yields ``(path, bytes or stream)``.
        *handlers: the handlers, tried in order; ``add_handler`` puts more in front.
        key_fn: maps the path to the key handlers see (default: the lower-cased extension).

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper([("a.json", b'{"x": 1}'), ("b.cls", b"7")]).routed_decode())
        [('a.json', {'x': 1}), ('b.cls', 7)]
    """

    def __init__(
        self, datapipe: Any, *handlers: Handler, key_fn: Callable[[str], str] = extension_extract_fn
    ) -> None:
        check_source("routed_decode", datapipe)
        for h in handlers:
            if not callable(h):
                raise TypeError(f"routed_decode: handlers must be callable, got {h!r}")
        self.datapipe = datapipe
        self.handlers: list[Handler] = (
            list(handlers) if handlers else [decoder_basichandlers, decoder_imagehandler("torch")]
        )
        self.key_fn = key_fn

    def _sources(self) -> tuple[Any, ...]:
        return (self.datapipe,)

    def add_handler(self, *handlers: Handler) -> None:
        """Try these handlers before the existing ones."""
        self.handlers[:0] = list(handlers)

    def _decode(self, item: Any) -> tuple[str, Any]:
        path, data = check_pair("routed_decode", item)
        raw = _read_all("routed_decode", path, data)
        key = self.key_fn(path)
        for handler in self.handlers:
            try:
                out = handler(key, raw)
            except Exception as err:
                raise ValueError(
                    f"routed_decode: cannot decode {path!r}: {type(err).__name__}: {err}"
                ) from err
            if out is not None:
                return path, out
        return path, raw

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        return map(self._decode, srcs[0])

    def __len__(self) -> int:
        try:
            return len(self.datapipe)
        except TypeError as err:
            raise TypeError("RoutedDecoder instance doesn't have valid length") from err


_HASH_TYPES = ("md5", "sha256")


@functional_datapipe("check_hash")
class HashChecker(IterDataPipe):
    """Checks each ``(path, data)`` against an expected md5/sha256 digest (functional name: ``check_hash``).

    Args:
        source_datapipe: yields ``(path, bytes or stream)``.
        hash_dict: path -> expected hex digest.
        hash_type: ``"sha256"`` or ``"md5"``.
        rewind: seek the stream back to the start after hashing (a stream that cannot seek is read into
            memory and passed on as a new stream).

    Raises:
        RuntimeError: a path has no expected hash, or the digest differs (naming the path and both digests).

    Example:
        >>> import hashlib
        >>> from loom.data.iter import IterableWrapper
        >>> h = {"a": hashlib.sha256(b"x").hexdigest()}
        >>> list(IterableWrapper([("a", b"x")]).check_hash(h))
        [('a', b'x')]
    """

    _repr_fields = ("hash_type",)

    def __init__(
        self, source_datapipe: Any, hash_dict: dict[str, str], hash_type: str = "sha256", rewind: bool = True
    ) -> None:
        check_source("check_hash", source_datapipe)
        if hash_type not in _HASH_TYPES:
            raise ValueError(f"check_hash: hash_type must be one of {_HASH_TYPES}, got {hash_type!r}")
        if not isinstance(hash_dict, dict):
            raise TypeError(f"check_hash: hash_dict must be a dict, got {type(hash_dict).__name__}")
        self.source_datapipe = source_datapipe
        self.hash_dict = hash_dict
        self.hash_type = hash_type
        self.rewind = rewind

    def _check(self, item: Any) -> tuple[str, Any]:
        path, data = check_pair("check_hash", item)
        if path not in self.hash_dict:
            raise RuntimeError(f"check_hash: no expected hash for {path!r} in hash_dict")
        digest = hashlib.new(self.hash_type)
        if isinstance(data, (bytes, bytearray)):
            digest.update(data)
        elif hasattr(data, "read"):
            seekable = getattr(data, "seekable", lambda: False)()
            kept = None if seekable or not self.rewind else io.BytesIO()
            for chunk in iter(lambda: data.read(1 << 20), b""):
                if isinstance(chunk, str):
                    chunk = chunk.encode("utf-8")
                digest.update(chunk)
                if kept is not None:
                    kept.write(chunk)
                if not chunk:
                    break
            if self.rewind:
                if seekable:
                    data.seek(0)
                else:
                    assert kept is not None
                    kept.seek(0)
                    close_quietly(data)
                    data = StreamWrapper(kept, name=path)
        else:
            raise TypeError(f"check_hash: {path!r}: expected bytes or a stream, got {type(data).__name__}")
        got = digest.hexdigest()
        if got != self.hash_dict[path]:
            raise RuntimeError(
                f"check_hash: the {self.hash_type} of {path!r} is {got}, expected {self.hash_dict[path]}"
            )
        return path, data

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        return map(self._check, srcs[0])

    def __len__(self) -> int:
        return self._source_len()
