"""An HSDS import cannot be turned against the machine: archive bombs, huge or endless files,
too many files, names that climb out of the input, nesting deeper than Python follows. Each is
refused with a message naming the entry and the limit, and memory stays far below what the
input claims to hold."""

from __future__ import annotations

import io
import json
import os
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from referrals.directory.hsds.files import MIB, Budget, ImportLimits, InputFile, Refused
from referrals.directory.hsds.importer import import_hsds
from referrals.directory.hsds.reader import read_path

MANIFEST = {"resources": [{"name": "service", "path": "services.csv"}]}
SMALL = ImportLimits(max_file_bytes=64 * MIB, max_total_bytes=100 * MIB, max_files=10)


def peak_mib(action: Callable[[], object]) -> tuple[object, float]:
    """What `action` returns, and the most memory Python held while it ran, in MiB."""
    tracemalloc.start()
    try:
        result = action()
        return result, tracemalloc.get_traced_memory()[1] / MIB
    finally:
        tracemalloc.stop()


def zeros_zip(path: Path, mib: int, *, name: str = "services.csv", **kw: object) -> Path:
    """A zip bomb: a manifest and an entry of `mib` MiB of zeros, written in 1 MiB steps so
    that building it takes no more memory than that."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1, **kw) as archive:  # type: ignore[arg-type]
        archive.writestr("datapackage.json", json.dumps(MANIFEST))
        with archive.open(name, "w", force_zip64=True) as entry:
            chunk = bytes(MIB)
            for _ in range(mib):
                entry.write(chunk)
    return path


def sparse(path: Path, size: int) -> Path:
    """A file of `size` zero bytes that takes no room on disk."""
    with path.open("wb") as f:
        f.truncate(size)
    return path


def errors(dataset) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(p) for p in dataset.errors]


def test_a_zip_bomb_is_refused_by_the_dry_run_before_it_is_inflated(app, tmp_path):
    """A zip of 1 MiB holding 256 MiB of zeros: `import-hsds x.zip --dry-run` (default limits)
    names the entry and the limit, and never holds the entry in memory."""
    bomb = zeros_zip(tmp_path / "bomb.zip", 256)
    assert bomb.stat().st_size < 2 * MIB
    runner = app.test_cli_runner()
    result, peak = peak_mib(lambda: runner.invoke(args=["import-hsds", str(bomb), "--dry-run"]))
    assert result.exit_code == 1  # type: ignore[attr-defined]
    assert (
        "bomb.zip/services.csv: size: is 256 MiB inflated; a file may hold at most 200 MiB "
        "(HSDS_IMPORT_MAX_FILE_MIB)"
    ) in result.output  # type: ignore[attr-defined]
    assert peak < 8, f"{peak:.1f} MiB held for a 256 MiB entry"


def test_an_entry_expanding_like_a_bomb_is_refused_even_within_the_size_limits(tmp_path):
    bomb = zeros_zip(tmp_path / "small-bomb.zip", 8)
    dataset, peak = peak_mib(lambda: read_path(bomb, SMALL))
    [message] = errors(dataset)
    assert message.startswith("small-bomb.zip/services.csv: compression: expands ")
    assert message.endswith("an entry expanding more than 100 times is refused as an archive bomb")
    assert peak < 4


def test_what_a_zip_holds_in_all_is_capped(tmp_path):
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        z.writestr("datapackage.json", json.dumps(MANIFEST))
        for index in range(3):
            # incompressible, so that only the totals can refuse it
            z.writestr(f"part{index}.bin", os.urandom(3 * MIB))
    assert errors(read_path(archive, ImportLimits(4 * MIB, 6 * MIB, 10))) == [
        "many.zip: size: its files hold 9.0 MiB; an input may hold at most 6 MiB in all "
        "(HSDS_IMPORT_MAX_TOTAL_MIB)"
    ]


def test_a_zip_with_more_entries_than_allowed_is_refused_before_its_directory_is_parsed(
    tmp_path,
):
    archive = tmp_path / "crowded.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for index in range(11):
            z.writestr(f"f{index}.csv", "id\n")
    assert errors(read_path(archive, SMALL)) == [
        "crowded.zip: files: holds 11 entries; an input may hold at most 10 (HSDS_IMPORT_MAX_FILES)"
    ]


@pytest.mark.parametrize("name", ["../services.csv", "/etc/services.csv", "a/../../b.csv"])
def test_entries_whose_names_leave_the_archive_are_refused(tmp_path, name):
    archive = tmp_path / "escape.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("datapackage.json", json.dumps(MANIFEST))
        z.writestr(zipfile.ZipInfo(name), "id\n")
    assert errors(read_path(archive, SMALL)) == [
        f"escape.zip/{name}: name: leads outside the archive (an absolute path or ..)"
    ]


def test_entries_compressed_with_methods_inflated_in_unbounded_steps_are_refused(tmp_path):
    archive = tmp_path / "bzip.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("datapackage.json", json.dumps(MANIFEST))
        z.writestr("services.csv", "id\n", compress_type=zipfile.ZIP_BZIP2)
    assert errors(read_path(archive, SMALL)) == [
        "bzip.zip/services.csv: compression: method 12 is not read; use deflate or none"
    ]


def test_a_nested_archive_or_a_path_out_of_the_package_is_not_read(tmp_path):
    archive = tmp_path / "nested.zip"
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("services.csv", "id\n")
    manifest = {
        "resources": [
            {"name": "service", "path": "services.zip"},
            {"name": "organization", "path": "../organizations.csv"},
        ]
    }
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("datapackage.json", json.dumps(manifest))
        z.writestr("services.zip", inner.getvalue())
    assert errors(read_path(archive, SMALL)) == [
        "nested.zip/services.zip: file: is an archive; archives inside are not read",
        "nested.zip/datapackage.json: resources[1].path: '../organizations.csv' leads outside "
        "the package",
    ]


def test_a_csv_without_line_ends_is_read_in_bounded_steps(tmp_path):
    """128 MiB of zeros in a folder's CSV, within the limits: read line by line, and a line is
    never allowed to grow past 4 MiB."""
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "datapackage.json").write_text(json.dumps(MANIFEST))
    sparse(folder / "services.csv", 128 * MIB)
    limits = ImportLimits(256 * MIB, 1024 * MIB, 10)
    dataset, peak = peak_mib(lambda: read_path(folder, limits))
    assert errors(dataset) == ["pkg/services.csv: CSV: has a line longer than 4194304 characters"]
    assert peak < 24, f"{peak:.1f} MiB held for a 128 MiB file"


def test_a_stored_zip_entry_is_streamed_too(tmp_path):
    archive = tmp_path / "stored.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        z.writestr("datapackage.json", json.dumps(MANIFEST))
        with z.open("services.csv", "w") as entry:
            for _ in range(32):
                entry.write(b"x" * MIB)
    dataset, peak = peak_mib(lambda: read_path(archive, SMALL))
    assert errors(dataset) == [
        "stored.zip/services.csv: CSV: has a line longer than 4194304 characters"
    ]
    assert peak < 16, f"{peak:.1f} MiB held for a 32 MiB entry"


def test_a_2_gib_json_file_is_refused_unread(app, tmp_path):
    big = sparse(tmp_path / "services.json", 2048 * MIB)
    runner = app.test_cli_runner()
    result, peak = peak_mib(lambda: runner.invoke(args=["import-hsds", str(big), "--dry-run"]))
    assert (
        "services.json: size: is 2 GiB; a file may hold at most 200 MiB (HSDS_IMPORT_MAX_FILE_MIB)"
    ) in result.output  # type: ignore[attr-defined]
    assert peak < 8


def test_the_files_of_a_folder_are_capped_one_by_one_and_in_all(tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    sparse(one / "a.json", 65 * MIB)
    assert errors(read_path(one, SMALL)) == [
        "one/a.json: size: is 65 MiB; a file may hold at most 64 MiB (HSDS_IMPORT_MAX_FILE_MIB)"
    ]
    two = tmp_path / "two"
    two.mkdir()
    sparse(two / "a.json", 60 * MIB)
    sparse(two / "b.json", 60 * MIB)
    assert errors(read_path(two, SMALL)) == [
        "two: size: its files hold 120 MiB; an input may hold at most 100 MiB in all "
        "(HSDS_IMPORT_MAX_TOTAL_MIB)"
    ]
    crowded = tmp_path / "crowded"
    crowded.mkdir()
    for index in range(11):
        (crowded / f"{index:02}.json").write_text("[]")
    assert errors(read_path(crowded, SMALL)) == [
        "crowded: files: holds 11 files; an input may hold at most 10 (HSDS_IMPORT_MAX_FILES)"
    ]


def test_links_out_of_a_folder_and_files_that_are_not_files_are_refused(tmp_path):
    outside = tmp_path / "secret.json"
    outside.write_text("[]")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "services.json").symlink_to(outside)
    assert errors(read_path(folder, SMALL)) == [
        "in/services.json: path: leads outside the folder in"
    ]
    assert errors(read_path(Path("/dev/zero"), SMALL)) == ["zero: path: is not a regular file"]


def test_a_file_that_lies_about_its_size_is_cut_off_as_it_is_read():
    """A file in /proc says it is empty; what is read is counted all the same."""
    liar = InputFile("services.json", "in/services.json", 0, lambda: io.BytesIO(bytes(3 * MIB)))
    with pytest.raises(Refused) as refused:
        liar.read(Budget(ImportLimits(2 * MIB, 10 * MIB, 10)))
    assert str(refused.value) == (
        "in/services.json: size: is larger than allowed: a file may hold at most 2 MiB "
        "(HSDS_IMPORT_MAX_FILE_MIB)"
    )
    files = [
        InputFile(f"{n}.json", f"in/{n}.json", 0, lambda: io.BytesIO(bytes(MIB))) for n in range(3)
    ]
    budget = Budget(ImportLimits(2 * MIB, int(2.5 * MIB), 10))
    files[0].read(budget)
    files[1].read(budget)
    with pytest.raises(Refused, match=r"in/2\.json: size: reading it goes past the input's limit"):
        files[2].read(budget)


def test_json_nested_deeper_than_python_follows_is_malformed_not_a_crash(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert errors(read_path(deep, SMALL)) == [
        "deep.json:line 1: JSON: malformed: nested too deeply"
    ]


def test_a_csv_that_is_not_utf8_is_reported_at_its_line_and_byte(tmp_path):
    """Past the first step of reading, with a character split between two steps."""
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "datapackage.json").write_text(json.dumps(MANIFEST))
    # One record whose name runs over 200,000 lines (2 MB), padded so that the first step of
    # reading (1 MiB) ends inside a euro sign (bytes 6 to 8 of each 10-byte line).
    head = 'id,name\n11111111-1111-4111-8111-111111111111,"'
    head += "x" * ((MIB - len(head) - 7) % 10)
    text = head + "café €\n" * 200_000
    good = text.encode()
    assert good[MIB - 1 : MIB + 2] == "€".encode()
    (folder / "services.csv").write_bytes(good + b'caf\xe9"\n')
    [problem] = read_path(folder, SMALL).errors
    lines = text.count("\n")
    assert str(problem) == (
        f"pkg/services.csv:line {lines + 1}: encoding: not UTF-8 (byte 0xe9 at offset "
        f"{len(good) + 3})"
    )


def test_an_import_within_the_limits_still_reads_whole(app, tmp_path):
    """The published example, imported from a zip through every check above."""
    examples = Path(__file__).parent / "fixtures" / "hsds" / "examples" / "csv"
    archive = tmp_path / "example.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for file in sorted(examples.iterdir()):
            z.write(file, f"example/{file.name}")
    report = import_hsds(archive, dry_run=True)
    assert report.dataset.count("service") == 1 and report.dataset.count("phone") == 1
