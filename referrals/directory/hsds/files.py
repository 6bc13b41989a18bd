"""The files of an import, read so that no input can take the machine with it.

An input (a JSON file, a folder, a .zip) is judged before anything in it is read: how many files
it holds, how large each one is and how large they are in all (a zip's sizes are those its
directory declares, and Python's zipfile never inflates an entry past its declared size), how
much a zip entry expands, whether a name leads outside the input, whether an entry is compressed
with a method we inflate in bounded steps. Then every byte read is counted against the same
limits as it streams, so a file that grows, lies about its size or sits in /proc is cut off
too. A refusal names the entry and the limit, with the setting that raises it."""

from __future__ import annotations

import io
import os
import re
import stat
import struct
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

MIB = 1024 * 1024
READ_CHUNK = MIB  # bytes per read(): what one step of reading may hold
# A zip entry that expands more than this is refused as an archive bomb. Text compresses
# 3 to 10 times, the emptiest tables about 30; zeros compress about a thousand times.
MAX_COMPRESSION_RATIO = 100
RATIO_CHECKED_FROM = MIB  # smaller entries cannot do harm, whatever their ratio
# Entries compressed otherwise are inflated by zipfile in unbounded steps (bzip2, LZMA).
ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
ARCHIVE_SUFFIXES = (".zip", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".7z", ".tar", ".rar")
# A zip's central directory is parsed whole when it is opened; an entry takes at least 46
# bytes of it, and an honest one rarely more than a few hundred.
CENTRAL_DIRECTORY_BYTES_PER_FILE = 1024


@dataclass(frozen=True)
class ImportLimits:
    """How much one import may read: bytes per file, bytes in all, and files."""

    max_file_bytes: int
    max_total_bytes: int
    max_files: int

    @classmethod
    def from_settings(cls, settings: Any) -> ImportLimits:
        return cls(
            max_file_bytes=settings.hsds_import_max_file_mib * MIB,
            max_total_bytes=settings.hsds_import_max_total_mib * MIB,
            max_files=settings.hsds_import_max_files,
        )

    def file_limit(self) -> str:
        return f"a file may hold at most {size(self.max_file_bytes)} (HSDS_IMPORT_MAX_FILE_MIB)"

    def total_limit(self) -> str:
        return (
            f"an input may hold at most {size(self.max_total_bytes)} in all "
            "(HSDS_IMPORT_MAX_TOTAL_MIB)"
        )


class Refused(Exception):
    """The input, or one file of it, is not read at all; `where: field: message` says why."""

    def __init__(self, where: str, field: str, message: str) -> None:
        super().__init__(f"{where}: {field}: {message}")
        self.where, self.field, self.message = where, field, message


def size(count: int) -> str:
    """A byte count for a person: 200 MiB, 1 GiB, 312 bytes."""
    for unit, scale in (("GiB", MIB * 1024), ("MiB", MIB), ("KiB", 1024)):
        if count >= scale:
            value = count / scale
            return (
                f"{value:.0f} {unit}"
                if value == int(value) or value >= 10
                else f"{value:.1f} {unit}"
            )
    return f"{count} bytes"


class Budget:
    """What the whole input may still take, charged as bytes are read."""

    def __init__(self, limits: ImportLimits) -> None:
        self.limits = limits
        self.total = 0

    def charge(self, where: str, read_in_file: int, count: int) -> None:
        if read_in_file > self.limits.max_file_bytes:
            raise Refused(where, "size", f"is larger than allowed: {self.limits.file_limit()}")
        self.total += count
        if self.total > self.limits.max_total_bytes:
            raise Refused(
                where,
                "size",
                f"reading it goes past the input's limit: {self.limits.total_limit()}",
            )


class _Counted(io.RawIOBase):
    """A binary stream whose every byte is charged to the budget as it is read."""

    def __init__(self, raw: IO[bytes], where: str, budget: Budget) -> None:
        self.raw, self.where, self.budget, self.read_so_far = raw, where, budget, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(min(len(buffer), READ_CHUNK))
        count = len(data)
        buffer[:count] = data
        self.read_so_far += count
        self.budget.charge(self.where, self.read_so_far, count)
        return count

    def close(self) -> None:
        self.raw.close()
        super().close()


@dataclass(frozen=True)
class InputFile:
    """One file of the input: its name inside it ('/'-separated), where a message puts it,
    the size it declares, and how to open it."""

    name: str
    where: str
    declared: int
    opener: Callable[[], IO[bytes]]

    def open(self, budget: Budget) -> io.BufferedReader:
        """The file's bytes, counted: reading past a limit raises Refused."""
        return io.BufferedReader(_Counted(self.opener(), self.where, budget), READ_CHUNK)

    def read(self, budget: Budget) -> bytes:
        """The whole file, read in bounded steps (for JSON, which is parsed whole)."""
        parts = []
        with self.open(budget) as stream:
            while chunk := stream.read(READ_CHUNK):
                parts.append(chunk)
        return b"".join(parts)


def _check_sizes(files: list[InputFile], limits: ImportLimits, label: str) -> None:
    if len(files) > limits.max_files:
        raise Refused(
            label,
            "files",
            f"holds {len(files)} files; an input may hold at most {limits.max_files} "
            "(HSDS_IMPORT_MAX_FILES)",
        )
    for file in files:
        if file.declared > limits.max_file_bytes:
            raise Refused(file.where, "size", f"is {size(file.declared)}; {limits.file_limit()}")
    total = sum(f.declared for f in files)
    if total > limits.max_total_bytes:
        raise Refused(label, "size", f"its files hold {size(total)}; {limits.total_limit()}")


# ----- a zip -------------------------------------------------------------------------------

END_OF_CENTRAL_DIRECTORY = b"PK\x05\x06"
ZIP64_LOCATOR = b"PK\x06\x07"
ZIP64_END = b"PK\x06\x06"


def _central_directory(path: Path) -> tuple[int, int] | None:
    """(entries, bytes) of a zip's central directory as its end record declares them, read
    before zipfile parses the directory whole; None where there is no end record."""
    with path.open("rb") as f:
        length = f.seek(0, os.SEEK_END)
        tail_length = min(length, 22 + 65535)  # the end record and the longest comment
        f.seek(length - tail_length)
        tail = f.read(tail_length)
        at = tail.rfind(END_OF_CENTRAL_DIRECTORY)
        if at < 0 or len(tail) < at + 22:
            return None
        entries, directory = struct.unpack("<HI", tail[at + 10 : at + 16])
        if at >= 20 and tail[at - 20 : at - 16] == ZIP64_LOCATOR:
            (offset,) = struct.unpack("<Q", tail[at - 12 : at - 4])
            if offset < length:
                f.seek(offset)
                record = f.read(56)
                if len(record) == 56 and record[:4] == ZIP64_END:
                    entries, directory = struct.unpack("<QQ", record[32:48])
        return entries, directory


def _unsafe_name(name: str) -> bool:
    """Whether an entry's name is absolute or climbs out of the archive."""
    return (
        name.startswith("/")
        or "\\" in name
        or re.match(r"^[A-Za-z]:", name) is not None
        or ".." in PurePosixPath(name).parts
    )


@contextmanager
def zip_files(path: Path, limits: ImportLimits) -> Iterator[list[InputFile]]:
    """The files of a zip, judged whole before any is inflated; Refused otherwise."""
    label = path.name
    declared = _central_directory(path)
    if declared is not None:
        entries, directory = declared
        if entries > limits.max_files or directory > (
            limits.max_files * CENTRAL_DIRECTORY_BYTES_PER_FILE
        ):
            raise Refused(
                label,
                "files",
                f"holds {entries} entries; an input may hold at most {limits.max_files} "
                "(HSDS_IMPORT_MAX_FILES)",
            )
    with zipfile.ZipFile(path) as archive:
        files = []
        for info in archive.infolist():
            if info.is_dir():
                continue
            where = f"{label}/{info.filename}"
            if _unsafe_name(info.filename):
                raise Refused(where, "name", "leads outside the archive (an absolute path or ..)")
            if info.compress_type not in ZIP_METHODS:
                raise Refused(
                    where,
                    "compression",
                    f"method {info.compress_type} is not read; use deflate or none",
                )
            if info.file_size > limits.max_file_bytes:
                raise Refused(
                    where, "size", f"is {size(info.file_size)} inflated; {limits.file_limit()}"
                )
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size >= RATIO_CHECKED_FROM and ratio > MAX_COMPRESSION_RATIO:
                raise Refused(
                    where,
                    "compression",
                    f"expands {ratio:.0f} times ({size(info.compress_size)} to "
                    f"{size(info.file_size)}); an entry expanding more than "
                    f"{MAX_COMPRESSION_RATIO} times is refused as an archive bomb",
                )
            files.append(
                InputFile(
                    info.filename,
                    where,
                    info.file_size,
                    lambda info=info: archive.open(info),  # type: ignore[misc]
                )
            )
        _check_sizes(files, limits, label)
        yield files


# ----- files on disk -----------------------------------------------------------------------


def _regular(path: Path, where: str) -> int:
    """The size of a regular file; Refused for a device, a pipe or a socket."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise Refused(where, "path", "is not a regular file")
    return info.st_size


def one_file(path: Path, limits: ImportLimits) -> InputFile:
    """A file given on its own, judged before it is read."""
    file = InputFile(path.name, path.name, _regular(path, path.name), lambda: path.open("rb"))
    _check_sizes([file], limits, path.name)
    return file


def folder_files(folder: Path, limits: ImportLimits, suffix: str = "") -> list[InputFile]:
    """The regular files under a folder (ending in `suffix`, when given), sorted by name,
    judged before any is read. Symbolic links that lead out of the folder are refused."""
    root = folder.resolve()
    files: list[InputFile] = []
    for top, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            if suffix and not name.lower().endswith(suffix):
                continue
            path = Path(top) / name
            relative = path.relative_to(folder).as_posix()
            where = f"{folder.name}/{relative}"
            if not path.resolve().is_relative_to(root):
                raise Refused(where, "path", f"leads outside the folder {folder.name}")
            files.append(
                InputFile(relative, where, _regular(path, where), lambda p=path: p.open("rb"))
            )
            if len(files) > limits.max_files:
                _check_sizes(files, limits, folder.name)
    files.sort(key=lambda f: f.name)
    _check_sizes(files, limits, folder.name)
    return files
