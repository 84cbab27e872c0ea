"""A small reader of deploy/docker/Dockerfile for the deploy tests.

It understands what the tests need and no more: comments, line continuations, stages (FROM ... AS
name), instructions with their arguments, the exec (JSON) form, and the packages named by
`apt-get install` inside RUN. It is not a general Dockerfile parser: heredocs and parser
directives other than `# syntax` are not supported, and a test fails rather than guess.
"""

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class Instruction:
    keyword: str  # upper case, e.g. "RUN"
    args: str  # everything after the keyword, continuations joined with a space
    line: int  # 1-based line of the keyword

    def exec_form(self) -> Optional[List[str]]:
        """The JSON array of ENTRYPOINT/CMD/RUN in exec form, or None for the shell form."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"line {self.line}: {self.keyword} is not a JSON array of strings")
        return value


@dataclass
class Stage:
    base: str  # image of FROM
    name: Optional[str]  # AS name
    line: int
    instructions: List[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> List[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Optional[Instruction]:
        found = self.all(keyword)
        return found[-1] if found else None

    def apt_installed_packages(self) -> List[str]:
        """Packages named by every `apt-get install` (or `apt install`) in this stage's RUNs."""
        packages: List[str] = []
        for run in self.all("RUN"):
            packages.extend(apt_install_packages(run.args))
        return packages


def logical_lines(text: str):
    """Yields (line number, joined logical line) with comments and continuations handled."""
    current: List[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        # A comment line is dropped even in the middle of a continued instruction, as Docker does.
        if stripped.startswith("#") or (not stripped and current):
            continue
        if not stripped:
            continue
        if not current:
            start = number
        if stripped.endswith("\\"):
            current.append(stripped[:-1].strip())
            continue
        current.append(stripped)
        yield start, " ".join(part for part in current if part)
        current = []
    if current:
        raise ValueError(f"line {start}: the file ends inside a continued instruction")


def parse(text: str) -> List[Stage]:
    if "<<" in text and re.search(r"^\s*(RUN|COPY)\b.*<<", text, re.MULTILINE):
        raise ValueError("heredocs are not supported by this reader")
    stages: List[Stage] = []
    for line, logical in logical_lines(text):
        keyword, _, args = logical.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = None
            if len(words) == 3 and words[1].upper() == "AS":
                name = words[2]
            elif len(words) != 1:
                raise ValueError(f"line {line}: cannot read FROM {args!r}")
            stages.append(Stage(base=words[0], name=name, line=line))
            continue
        if not stages:
            if keyword == "ARG":
                continue  # ARGs before the first FROM only parameterise FROM lines
            raise ValueError(f"line {line}: {keyword} before the first FROM")
        stages[-1].instructions.append(Instruction(keyword=keyword, args=args.strip(), line=line))
    if not stages:
        raise ValueError("no FROM in the Dockerfile")
    return stages


_COMMAND_SEPARATORS = {"&&", "||", ";", "|", "&"}
# apt-get options whose value is the next word (apt-get -o Dpkg::Options::=... install ...).
_OPTIONS_WITH_VALUE = {"-o", "--option", "-t", "--target-release", "-c", "--config-file"}


def apt_install_packages(shell: str) -> List[str]:
    """Package arguments of each `apt-get install` / `apt install` in one shell command line."""
    lexer = shlex.shlex(shell, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    tokens = list(lexer)
    packages: List[str] = []
    i = 0
    while i < len(tokens):
        if tokens[i] in ("apt-get", "apt") or tokens[i].endswith("/apt-get"):
            j = i + 1
            # Options may come before the verb: apt-get -y -q install ...
            while j < len(tokens) and tokens[j].startswith("-"):
                j += 2 if tokens[j] in _OPTIONS_WITH_VALUE else 1
            if j < len(tokens) and tokens[j] == "install":
                j += 1
                while j < len(tokens) and tokens[j] not in _COMMAND_SEPARATORS:
                    word = tokens[j]
                    if word in _OPTIONS_WITH_VALUE:
                        j += 2
                        continue
                    if not word.startswith("-"):
                        if "$" in word:
                            raise ValueError(f"apt-get install of a variable ({word}): name packages")
                        packages.append(word.split("=", 1)[0])  # pkg=version pins the version
                    j += 1
            i = j
            continue
        i += 1
    return packages
