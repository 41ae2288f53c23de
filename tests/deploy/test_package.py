"""`make package`: build/package/ and build/package.zip hold exactly what the host runs, with
the modes Core Tools gives them, and the handler is a static x86-64 ELF. The start-up and
`GET /` check of the same binary is tests/suite/package.rs."""

import hashlib
import json
import os
import shutil
import stat
import struct
import subprocess
import zipfile

import pytest
import yaml

from conftest import PACKAGE, ROOT, ZIP, allow_list, folder_files, function_folders, script_functions

# Azure/azure-functions-core-tools src/Cli/func/Helpers/ZipHelper.cs `CreateZip` (commit
# 3ee97a6337055edd6afe48f9a51786a09772f427): "100777" for host.json's defaultExecutablePath,
# "100666" for the rest, "created by" 3 (Unix).
EXECUTABLE_MODE = 0o100777
FILE_MODE = 0o100666
CREATED_BY_UNIX = 3
LOCAL_SETTINGS = {"IsEncrypted": False, "Values": {"FUNCTIONS_WORKER_RUNTIME": "custom"}}

# Generous bounds, not targets: the README records the real figures.
MAX_HANDLER_BYTES = 16 * 1024 * 1024
MAX_ZIP_BYTES = 8 * 1024 * 1024


def test_the_script_packages_every_function_folder_and_no_other():
    assert function_folders(), "no function folders found"
    assert script_functions() == function_folders()


def test_the_zip_holds_exactly_the_allow_list(package):
    with zipfile.ZipFile(ZIP) as z:
        names = z.namelist()
    assert len(names) == len(set(names)), f"duplicate entries: {names}"
    assert not [n for n in names if n.endswith("/")], "Core Tools writes no directory entries"
    assert set(names) == allow_list()


def test_the_zip_has_core_tools_modes(package):
    executable = json.loads((ROOT / "host.json").read_text())["customHandler"]["description"][
        "defaultExecutablePath"
    ]
    with zipfile.ZipFile(ZIP) as z:
        for info in z.infolist():
            assert info.create_system == CREATED_BY_UNIX, info.filename
            want = EXECUTABLE_MODE if info.filename == executable else FILE_MODE
            got = info.external_attr >> 16
            assert got == want, f"{info.filename}: {oct(got)}, want {oct(want)}"
            assert info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
        assert z.testzip() is None


def test_the_zip_and_the_folder_hold_the_same_bytes_as_the_sources(package):
    with zipfile.ZipFile(ZIP) as z:
        for name in allow_list():
            data = z.read(name)
            assert data == (PACKAGE / name).read_bytes(), name
            if name != "handler":
                assert data == (ROOT / name).read_bytes(), name
    assert (PACKAGE / "handler").read_bytes() == (
        ROOT / "target/x86_64-unknown-linux-musl/release/handler"
    ).read_bytes()


def test_the_folder_is_the_allow_list_plus_core_tools_settings(package):
    assert folder_files(PACKAGE) == allow_list() | {"local.settings.json"}
    mode = stat.S_IMODE((PACKAGE / "handler").stat().st_mode)
    assert mode & 0o755 == 0o755, oct(mode)
    # Only the worker runtime: nothing else for Core Tools to read, and no secret.
    assert json.loads((PACKAGE / "local.settings.json").read_text()) == LOCAL_SETTINGS


def program_headers(data):
    """(p_type, p_offset, p_filesz) of each ELF64 little-endian program header."""
    e_phoff = struct.unpack_from("<Q", data, 32)[0]
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    out = []
    for i in range(e_phnum):
        base = e_phoff + i * e_phentsize
        p_type = struct.unpack_from("<I", data, base)[0]
        p_offset = struct.unpack_from("<Q", data, base + 8)[0]
        p_filesz = struct.unpack_from("<Q", data, base + 32)[0]
        out.append((p_type, p_offset, p_filesz))
    return out


PT_DYNAMIC, PT_INTERP, DT_NEEDED = 2, 3, 1
EM_X86_64 = 62


def assert_static_x86_64(data):
    assert data[:4] == b"\x7fELF", "not an ELF file"
    assert data[4] == 2 and data[5] == 1, "not ELF64 little-endian"
    assert struct.unpack_from("<H", data, 18)[0] == EM_X86_64, "not x86-64"
    headers = program_headers(data)
    assert headers, "no program headers"
    assert not [h for h in headers if h[0] == PT_INTERP], "has an interpreter: not static"
    # A static-pie has a PT_DYNAMIC for its relocations, but needs no shared library.
    for p_type, offset, size in headers:
        if p_type == PT_DYNAMIC:
            for i in range(0, size, 16):
                tag = struct.unpack_from("<q", data, offset + i)[0]
                assert tag != DT_NEEDED, "needs a shared library: not static"


def test_the_handler_is_a_static_x86_64_elf(package):
    assert_static_x86_64((PACKAGE / "handler").read_bytes())


def test_the_static_check_fails_on_a_dynamic_binary():
    # The check itself can fail: a glibc build has an interpreter.
    dynamic = shutil.which("sh")
    with pytest.raises(AssertionError, match="interpreter"):
        assert_static_x86_64(open(os.path.realpath(dynamic), "rb").read())


def test_the_package_size(package, record_property):
    handler = (PACKAGE / "handler").stat().st_size
    zipped = ZIP.stat().st_size
    unzipped = sum((PACKAGE / n).stat().st_size for n in allow_list())
    record_property("zip_bytes", zipped)
    print(f"package: zip {zipped} bytes, unzipped {unzipped} bytes, handler {handler} bytes")
    assert handler <= MAX_HANDLER_BYTES
    assert zipped <= MAX_ZIP_BYTES


# ---- the script itself: no musl-tools, strays, failures ----


def path_without(*tools):
    """This PATH minus every folder holding one of `tools`."""
    keep = []
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if d and not any(os.path.exists(os.path.join(d, t)) for t in tools):
            keep.append(d)
    return os.pathsep.join(keep)


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


STRAYS = [
    ".azure/package-test/.env",
    ".env",
    "stray-added-next-year.txt",
    "Notifications/notes.txt",
    "node_modules/package-test-stray.js",
    "target/package-test-stray.txt",
]


@pytest.fixture
def strays():
    made = []
    for rel in STRAYS:
        path = ROOT / rel
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("AZURE_SECRET=stray\n")
        made.append(path)
    yield made
    for path in made:
        path.unlink()
    shutil.rmtree(ROOT / ".azure/package-test", ignore_errors=True)
    try:
        (ROOT / ".azure").rmdir()
    except OSError:
        pass


def test_the_azd_hook_builds_without_musl_tools_and_leaves_strays_out(package, strays):
    """azure.yaml's prepackage hook, run as azd runs it (sh, in the service folder), on a PATH
    with no musl C compiler, next to files that must never reach Azure."""
    config = yaml.safe_load((ROOT / "azure.yaml").read_text())
    service = config["services"]["handler"]
    hook = service["hooks"]["prepackage"]
    env = dict(os.environ, PATH=path_without("x86_64-linux-musl-gcc", "musl-gcc"))
    assert shutil.which("x86_64-linux-musl-gcc", path=env["PATH"]) is None
    run = subprocess.run(
        [hook.get("shell", "sh"), "-c", hook["run"]],
        cwd=ROOT / service["project"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    with zipfile.ZipFile(ZIP) as z:
        assert set(z.namelist()) == allow_list()
    assert folder_files(PACKAGE) == allow_list() | {"local.settings.json"}
    assert not list((ROOT / "build").glob(".package*")), "staging left behind"


def fake_tool(tmp_path, name, script):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text("#!/bin/sh\n" + script)
    tool.chmod(0o755)
    return bin_dir


def test_a_failed_build_leaves_the_last_package_untouched(package, tmp_path):
    before = {n: digest(PACKAGE / n) for n in allow_list()}, digest(ZIP)
    # A cargo whose build fails half-way: it writes a truncated binary where cargo would.
    real = shutil.which("cargo")
    bin_dir = fake_tool(
        tmp_path,
        "cargo",
        f'if [ "$1" = zigbuild ]; then echo "error: could not compile" >&2; exit 101; fi\n'
        f'exec "{real}" "$@"\n',
    )
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    run = subprocess.run(["sh", "scripts/package.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode != 0
    assert run.stderr.strip().splitlines()[-1] == "make package: cargo zigbuild failed (see above)"
    after = {n: digest(PACKAGE / n) for n in allow_list()}, digest(ZIP)
    assert after == before
    assert not list((ROOT / "build").glob(".package*")), "staging left behind"


@pytest.mark.parametrize(
    "missing, env_change, says",
    [
        ("cargo", lambda env: env.update(PATH=path_without("cargo")), "needs Rust"),
        ("python", lambda env: env.update(PYTHON="/nonexistent/python3"), "needs Python 3"),
    ],
)
def test_a_missing_tool_stops_with_one_line(package, missing, env_change, says):
    env = dict(os.environ)
    env_change(env)
    before = digest(ZIP)
    run = subprocess.run(["sh", "scripts/package.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 1, missing
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("make package: ") and says in lines[0], lines[0]
    assert digest(ZIP) == before
