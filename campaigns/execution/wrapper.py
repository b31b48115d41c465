"""The job wrapper: ``python -m campaigns.execution.wrapper`` runs inside every batch job.

It works in the job's element folder ``<array folder>/<element>`` (``OPOS_JOB_DIR``, else the
working directory), which the batch backend's job shim made when the element started. The
submitter wrote the descriptions of the whole array once, into the array folder: the part
every element shares in ``array.json`` (code, parameters, stage, campaign, output dataset,
resources) and one line per element in ``jobs.jsonl`` (element ``i`` on line ``i``: job id,
index, attempt, events, inputs). Writing 10,000 folders with a file each at submission took
1.6 ms per element on a real disk, 94% of submitting an array (docs/performance.md). The
wrapper merges its line with the shared part into the same description a per-element
``opos-job.json`` held before; such a file, when present (jobs submitted by an earlier
version), is still read instead.

1. reads the registered production code once, checks its sha256 against the registered
   checksum and refuses to run it on a mismatch (exit :data:`EXIT_CODE_MISMATCH`, a clear
   ``opos-wrapper:`` line in stderr); the verified bytes are copied into the folder and the
   copy is what runs, so the file cannot change between the check and the start;
2. validates the parameters (a flat object of named scalars) and writes them, with the
   events, first event, inputs, index and stage, as ``job.json`` for the code; a job
   description that does not validate is refused (exit :data:`EXIT_BAD_JOB`);
3. runs the code as an argument list (never a shell string); the code reads ``job.json``
   in its working directory and writes its files into ``output/``;
4. writes ``manifest.json`` (atomically: temp file, fsync, rename) with the exit status, the
   host (also written to ``host`` before the code starts), the start and end times and,
   after a successful run, every output file's catalogue name,
   path, size, sha256 and events. A manifest that cannot be written (output area full)
   fails the job with :data:`EXIT_OUTPUT_AREA`, so nothing half-written is ever declared.

Standard library only: it must not need Django, a database or the project's settings.
Exit codes 90-93 are the wrapper's own; the failure classifier knows them.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SPEC_FILE = "opos-job.json"
"""One element's whole description in its folder (written by earlier versions; still read)."""
ARRAY_FILE = "array.json"
"""In the array folder, written once per array: what every element shares."""
JOBS_FILE = "jobs.jsonl"
"""In the array folder, written once per array: element ``i``'s own fields on line ``i``."""
JOB_FILE = "job.json"
"""Written by the wrapper for the code: validated parameters and the job's data."""
MANIFEST_FILE = "manifest.json"
HOST_FILE = "host"
"""The name of the host the job runs on, written before the code starts (a job killed with
its wrapper leaves no manifest, and the job log names the host of a running job)."""
OUTPUT_DIR = "output"
CODE_DIR = ".opos-code"

EXIT_BAD_JOB = 90
"""The job description is missing or does not validate: never retried."""
EXIT_CODE_MISMATCH = 91
"""The code's sha256 differs from the registered one: refused, never retried."""
EXIT_CODE_MISSING = 92
"""The registered code cannot be read or started."""
EXIT_OUTPUT_AREA = 93
"""The manifest could not be written (no space left, read-only area). The batch backends'
job shim (campaigns/batch/job_shim.sh) exits with it too when it cannot make the element
folder."""

PREFIX = "opos-wrapper:"
CHUNK = 1 << 20
PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_PARAMETERS = 50
MAX_TEXT = 1000


class BadJob(ValueError):
    """The job description does not validate."""


def say(message: str) -> None:
    """One line for the job's stderr, marked so the classifier and people can find it."""
    print(f"{PREFIX} {message}", file=sys.stderr, flush=True)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def catalogue_name(file_name: str, index: int) -> str:
    """``events.jsonl`` of job 3 -> ``events_000003.jsonl``: unique within the dataset."""
    stem, dot, suffix = file_name.partition(".")
    return f"{stem}_{index:06d}{dot}{suffix}"


def write_json_atomic(path: Path, data: Any) -> None:
    """Readers see the old file or the complete new one, never a part (fsync before rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def stage_code(workdir: Path, code: dict[str, Any]) -> Path | int:
    """Copy the verified code into the folder; return the copy, or an exit code on refusal."""
    source = Path(str(code.get("path", "")))
    expected = str(code.get("sha256", "")).lower()
    try:
        content = source.read_bytes()
    except OSError as exc:
        say(f"cannot read the registered code {source}: {exc.strerror or exc}")
        return EXIT_CODE_MISSING
    actual = hashlib.sha256(content).hexdigest()
    if not expected or actual != expected:
        say(
            f"refusing to run {source}: its sha256 {actual} does not match the registered "
            f"{expected or '(none)'}; the code changed after it was approved"
        )
        return EXIT_CODE_MISMATCH
    folder = workdir / CODE_DIR
    copy = folder / source.name
    try:
        folder.mkdir(exist_ok=True)
        copy.unlink(missing_ok=True)  # read-only copy of an earlier run of this folder
        copy.write_bytes(content)
        copy.chmod(0o500)
    except OSError as exc:
        say(f"cannot copy the code into the job folder: {exc.strerror or exc}")
        return EXIT_OUTPUT_AREA
    return copy


def command_for(copy: Path, code: dict[str, Any]) -> list[str]:
    """The argument list that runs the code: Python scripts with this interpreter."""
    interpreter = code.get("interpreter")
    if isinstance(interpreter, list) and all(isinstance(a, str) for a in interpreter):
        return [*interpreter, str(copy)]
    if copy.suffix == ".py":
        return [sys.executable, str(copy)]
    return [str(copy)]


def output_files(workdir: Path, job: dict[str, Any]) -> list[dict[str, Any]]:
    """Describe every regular file in ``output/`` for the catalogue, sorted by name."""
    out = workdir / OUTPUT_DIR
    if not out.is_dir():
        return []
    index = int(job.get("index", 0))
    events = int(job.get("events", 0))
    files = []
    for path in sorted(out.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.is_symlink():
            continue
        files.append(
            {
                "name": catalogue_name(path.name, index),
                "path": f"{OUTPUT_DIR}/{path.name}",
                "size": path.stat().st_size,
                "sha256": sha256_of(path),
                "events": events,
            }
        )
    return files


def validated(spec: dict[str, Any]) -> dict[str, Any]:
    """What the code gets in ``job.json``: the description minus the code, parameters checked.

    Parameters are a flat object of named scalars (text, whole or finite numbers, booleans):
    values reach the code as data only, whatever characters they hold.
    """
    params = spec.get("parameters", {})
    if not isinstance(params, dict) or len(params) > MAX_PARAMETERS:
        raise BadJob(f"parameters must be an object of at most {MAX_PARAMETERS} entries")
    for name, value in params.items():
        if not isinstance(name, str) or not PARAMETER_NAME.fullmatch(name):
            raise BadJob(f"parameter name {name!r} is not an identifier")
        if isinstance(value, str):
            if len(value) > MAX_TEXT or "\0" in value:
                raise BadJob(f"parameter {name}: text longer than {MAX_TEXT} or with NUL")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise BadJob(f"parameter {name}: not a finite number")
        elif not isinstance(value, bool | int):
            raise BadJob(f"parameter {name}: {type(value).__name__} is not a scalar")
    for key in ("index", "events", "first_event"):
        if not isinstance(spec.get(key, 0), int):
            raise BadJob(f"{key} must be a whole number")
    inputs = spec.get("inputs", [])
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise BadJob("inputs must be a list of paths")
    job = {k: v for k, v in spec.items() if k != "code"}
    job["parameters"] = dict(params)
    job["output_dir"] = OUTPUT_DIR
    return job


def element_line(path: Path, element: int) -> dict[str, Any]:
    """Line ``element`` of ``jobs.jsonl`` as an object.

    Read line by line up to it: a sequential read of at most the file (2 MB for 10,000
    elements) costs a job milliseconds, and needs no offset table to keep in step.
    """
    if element < 0:
        raise BadJob(f"no element {element}")
    with path.open("rb") as fh:
        for line in itertools.islice(fh, element, element + 1):
            data = json.loads(line)
            if not isinstance(data, dict):
                raise BadJob(f"line {element} of {path.name} is not an object")
            return data
    raise BadJob(f"{path.name} has no line {element}")


def load_description(workdir: Path) -> dict[str, Any]:
    """The job's description: its own ``opos-job.json`` if the folder has one, else the
    array's shared part merged with the element's line (the folder's name is the element)."""
    own = workdir / SPEC_FILE
    if own.exists():
        spec = json.loads(own.read_text())
    else:
        if not workdir.name.isdigit():
            raise BadJob(f"{workdir} is not an element folder <array folder>/<element>")
        array_dir = workdir.parent
        common = json.loads((array_dir / ARRAY_FILE).read_text())
        if not isinstance(common, dict):
            raise BadJob(f"{ARRAY_FILE} is not an object")
        line = element_line(array_dir / JOBS_FILE, int(workdir.name))
        if "code" in line:
            raise BadJob("an element's line may not name the code")
        spec = {**common, **line}
    if not isinstance(spec, dict) or not isinstance(spec.get("code"), dict):
        raise BadJob("no code to run")
    return spec


def run(workdir: Path) -> int:
    """Verify, run and describe one job; return the job's exit status."""
    try:
        spec = load_description(workdir)
        job = validated(spec)
    except (OSError, ValueError, TypeError) as exc:
        say(f"refusing the job description of {workdir}: {exc}")
        return EXIT_BAD_JOB
    (workdir / MANIFEST_FILE).unlink(missing_ok=True)  # a stale one from a requeue
    started = time.time()
    host = socket.gethostname()
    # The manifest names it too; a full area fails the job just below.
    with contextlib.suppress(OSError):
        (workdir / HOST_FILE).write_text(host + "\n")
    staged = stage_code(workdir, spec["code"])
    if isinstance(staged, int):
        return staged
    try:
        write_json_atomic(workdir / JOB_FILE, job)
    except OSError as exc:
        say(f"cannot write {JOB_FILE}: {exc.strerror or exc}")
        return EXIT_OUTPUT_AREA
    argv = command_for(staged, spec["code"])
    try:
        done = subprocess.run(  # noqa: S603 - argument list, no shell
            argv, cwd=workdir, stdin=subprocess.DEVNULL, check=False
        )
        status = done.returncode
    except OSError as exc:
        say(f"cannot start {argv[0]}: {exc.strerror or exc}")
        return EXIT_CODE_MISSING
    if status < 0:  # killed by a signal: the shell convention
        status = 128 - status
    manifest: dict[str, Any] = {
        "exit_code": status,
        "host": host,
        "started": started,
        "finished": time.time(),
        "files": [],
    }
    try:
        if status == 0:
            manifest["files"] = output_files(workdir, job)
        write_json_atomic(workdir / MANIFEST_FILE, manifest)
    except OSError as exc:
        say(f"cannot write the manifest of the outputs: {exc.strerror or exc}")
        return EXIT_OUTPUT_AREA if status == 0 else status
    return status


def main() -> int:
    workdir = Path(os.environ.get("OPOS_JOB_DIR") or ".").absolute()
    return run(workdir)


if __name__ == "__main__":
    sys.exit(main())
