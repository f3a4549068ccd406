"""Every ``lcm`` command line the user may copy parses: the examples of each verb's and
sub-command's ``--help``, and those of README.md's and config/README.md's shell blocks.

A renamed option or a new required argument otherwise leaves an example that argparse refuses.
Each example is read as a shell reads it (``\\`` continuations joined, a quoted value that spans
lines kept whole, ``#`` comments and redirections dropped) and given to the parser ``lcm`` builds
for it (:func:`lcm.cli.build_parser`, ``parse_args`` only: no verb runs). Placeholders are values:
``<dataset>`` is read as ``dataset``, ``$VAR`` as written. A ``...`` right after the verb (or
ending the line) stands for the arguments of the same command's example above it; anywhere else
it is a value (``--derivatives ...``). Help text may set a description beside a command after
three or more spaces (``lcm atlases --json      the registry as JSON``): that column is not part
of the command.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex

import pytest
from helpers import ROOT
from helpers.cli import verb_parsers

from lcm.cli import build_parser, requested_verb

PARSERS = verb_parsers()
DOCS = ("README.md", "config/README.md")
# Fenced blocks read as shell: no info string, or a shell's.
_SHELL = {"", "bash", "sh", "shell", "console"}
_FENCE = re.compile(r"(?ms)^[ \t]*```[ \t]*([\w-]*)[^\n]*\n(.*?)^[ \t]*```")
# `lcm`, `.venv/bin/lcm` or `python -m lcm`, after an optional `$ ` prompt and `VAR=value`s.
_INVOCATION = re.compile(r"^(?:\$\s+)?(?:\w+=\S*\s+)*(?:\S*/)?(?:lcm|python3?\s+-m\s+lcm)(?:\s|$)")
# A description column: three or more spaces, then a word that is no option, comment or `\`.
_COLUMN = re.compile(r"(?<=\S) {3,}(?=[^\s\-\\#])")
_PLACEHOLDER = re.compile(r"<([^<>\s]+)>")
_ELISION = "..."


def _open_quote(text: str) -> bool:
    """Whether ``text`` ends inside a quoted value (the shell reads on, newline included)."""
    try:
        shlex.split(text)
    except ValueError as exc:
        return "quotation" in str(exc)
    return False


def example_lines(lines: list[str]) -> list[str]:
    """The ``lcm`` command lines among ``lines``, each joined into one shell text.

    Parameters
    ----------
    lines : list of str
        Help text or a fenced shell block, one line each.

    Returns
    -------
    list of str
        Each command as the shell reads it: ``\\`` continuations joined, a quoted value
        spanning lines kept with its newlines, a description column beside it left out.
    """
    found: list[str] = []
    i = 0
    while i < len(lines):
        text = _COLUMN.split(lines[i].strip(), maxsplit=1)[0]
        if not _INVOCATION.match(text):
            i += 1
            continue
        while i + 1 < len(lines):
            if text.endswith("\\"):  # the shell drops `\` and the newline
                text = text[:-1] + _COLUMN.split(lines[i + 1], maxsplit=1)[0]
            elif _open_quote(text):  # the newline is part of the quoted value
                text += "\n" + lines[i + 1]
            else:
                break
            i += 1
        found.append(text)
        i += 1
    return found


def command_words(text: str) -> list[str]:
    """The words ``text`` gives ``lcm`` (no program, prompt, comment or redirection).

    Parameters
    ----------
    text : str
        One command line, as :func:`example_lines` joins it.

    Returns
    -------
    list of str
        What ``lcm`` would get as ``sys.argv[1:]``, placeholders read as their names.

    Raises
    ------
    ValueError
        From :mod:`shlex`, when the shell could not read ``text`` (an unclosed quote).
    """
    text = re.sub(r"^\$\s+", "", text.strip())
    lexer = shlex.shlex(_PLACEHOLDER.sub(r"\1", text), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words: list[str] = []
    for word in lexer:
        if set(word) <= set(lexer.punctuation_chars):  # `>`, `|`, `;`, `&&`: lcm's words end
            break
        words.append(word)
    while words and re.fullmatch(r"\w+=.*", words[0]):  # VAR=value before the program
        words.pop(0)
    # `python -m lcm`, `.venv/bin/python -m lcm`: two words before lcm
    program = 2 if words and words[0].rsplit("/", 1)[-1].startswith("python") else 0
    return words[program + 1 :]


def _command(words: list[str]) -> str:
    """The longest run of leading words naming a verb or sub-command (``connectome run``)."""
    for n in range(len(words), 0, -1):
        if " ".join(words[:n]) in PARSERS:
            return " ".join(words[:n])
    return ""


def expand(examples: list[str]) -> list[tuple[str, list[str]]]:
    """Each example with its words, a leading or trailing ``...`` filled from the one above.

    Parameters
    ----------
    examples : list of str
        Command lines of one source, in order (:func:`example_lines`).

    Returns
    -------
    list of (str, list of str)
        Each example as written, and the words it gives ``lcm``.

    Raises
    ------
    ValueError
        An example elides arguments and no example of its command precedes it.
    """
    full: dict[str, list[str]] = {}
    out = []
    for example in examples:
        try:
            words = command_words(example)
        except ValueError as exc:  # the shell could not read it either
            raise ValueError(f"{example!r} does not read as one command: {exc}") from None
        command = _command(words)
        n = len(command.split())
        rest = words[n:]
        elided = [i for i in (0, len(rest) - 1) if 0 <= i < len(rest) and rest[i] == _ELISION]
        if elided:
            if command not in full:
                raise ValueError(f"{example!r} elides arguments, but no example above shows them")
            rest = full[command] + [w for i, w in enumerate(rest) if i not in elided]
            words = words[:n] + rest
        full[command] = rest
        out.append((example, words))
    return out


def parse_error(words: list[str]) -> str | None:
    """argparse's message for ``lcm`` given ``words``, or None when they parse.

    The parser is built as :func:`lcm.cli.main` builds it for these words; ``--help`` and
    ``--version`` (exit 0) parse.

    Parameters
    ----------
    words : list of str
        The command line, without the program.

    Returns
    -------
    str or None
        What argparse printed on stderr when it refused the words.
    """
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            build_parser(requested_verb(words)).parse_args(words)
    except SystemExit as exc:
        if exc.code:
            return stderr.getvalue().strip() or f"exit status {exc.code}"
    return None


def _failures(examples: list[str], where: str) -> list[str]:
    """One line per example of ``where`` that does not parse, with argparse's message."""
    failures = []
    try:
        expanded = expand(examples)
    except ValueError as exc:
        return [f"{where}: {exc}"]
    for example, words in expanded:
        if (message := parse_error(words)) is not None:
            # argparse's last line is its error; the usage above it only repeats the options.
            shown = " ".join(example.split())
            failures.append(f"{where}: {shown}\n    -> {message.splitlines()[-1]}")
    return failures


def _doc_examples(doc: str) -> list[str]:
    """The ``lcm`` command lines of ``doc``'s fenced shell blocks."""
    text = (ROOT / doc).read_text()
    blocks = [body for info, body in _FENCE.findall(text) if info.lower() in _SHELL]
    return [e for body in blocks for e in example_lines(body.splitlines())]


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_every_example_of_the_help_parses(command: str) -> None:
    """`lcm <command> --help`'s examples: each is a command line the parser accepts."""
    examples = example_lines(PARSERS[command].format_help().splitlines())
    assert examples, f"lcm {command} --help shows no example"
    failures = _failures(examples, f"lcm {command} --help")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("doc", DOCS)
def test_every_lcm_command_of_the_docs_parses(doc: str) -> None:
    """The `lcm ...` lines of README.md's and config/README.md's shell blocks parse."""
    failures = _failures(_doc_examples(doc), doc)
    assert not failures, "\n".join(failures)


def test_the_readme_shows_lcm_commands() -> None:
    """The block reader finds README.md's examples (a reader finding none would pass above)."""
    assert len(_doc_examples("README.md")) >= 3


def test_the_reader_takes_a_command_as_the_shell_does() -> None:
    """Continuations, a quoted value over two lines, a description column, a comment, a
    redirection, a placeholder, an elision and a line that is not lcm's, on a made-up help
    text; then a quote never closed."""
    help_text = [
        "examples:",
        "  lcm atlases --atlas <name>      its regions (TSV)",
        "  $ lcm connectome run --dataset d --fmriprep-record r.json \\",
        "      --run-key k --atlas aal116 --out-dir o --qc-out q.json  # one run",
        '  lcm connectome run ... --atlas-templateflow \'{"a": 1,',
        '                                               "b": 2}\' ...',
        "  .venv/bin/python -m lcm atlases --json > atlases.json",
        "  make demo   # not lcm: skipped",
        "  lcm atlases \\",
        "      --atlas 'aal116",
    ]
    examples = example_lines(help_text[:-2])
    assert len(examples) == 4
    assert command_words(examples[0]) == ["atlases", "--atlas", "name"]
    expanded = expand(examples)
    assert expanded[1][1][-2:] == ["--qc-out", "q.json"]
    assert expanded[2][1][:3] == ["connectome", "run", "--dataset"]
    assert expanded[2][1][-2:] == ["--atlas-templateflow", '{"a": 1,\n' + " " * 47 + '"b": 2}']
    assert expanded[3][1] == ["atlases", "--json"]
    assert all(parse_error(words) is None for _, words in expanded)
    # A quote never closed: reported with the example, not read past the end of the text.
    unclosed = _failures(example_lines(help_text), "lcm atlases --help")
    assert unclosed == [
        'lcm atlases --help: "lcm atlases       --atlas \'aal116" does not read as one '
        "command: No closing quotation"
    ]


def test_an_example_the_parser_refuses_fails_with_its_message() -> None:
    """A renamed option, a missing required option and an elision with nothing above it are
    each reported, with argparse's message."""
    renamed = _failures(["lcm provenance verify results --bass /archive"], "lcm provenance")
    assert renamed == [
        "lcm provenance: lcm provenance verify results --bass /archive\n"
        "    -> lcm: error: unrecognized arguments: --bass /archive"
    ]
    missing = _failures(["lcm store --dataset d --atlas aal116"], "lcm store")
    assert len(missing) == 1
    assert "the following arguments are required" in missing[0]
    orphan = _failures(["lcm finetune ... --init scratch"], "lcm finetune")
    assert orphan == [
        "lcm finetune: 'lcm finetune ... --init scratch' elides arguments, "
        "but no example above shows them"
    ]


def _inline_commands(doc: str) -> list[str]:
    """The ``lcm ...`` code spans of ``doc``'s prose (its fenced blocks left out), one line each."""
    prose = _FENCE.sub("", (ROOT / doc).read_text())
    return [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", prose) if _INVOCATION.match(s)]


@pytest.mark.parametrize(
    "doc", [*DOCS, *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
)
def test_every_option_an_inline_lcm_command_shows_is_its_verbs(doc: str) -> None:
    """A span such as `lcm bei-maps --min-values` or `lcm ingest --space` names options of that
    verb (its --help lists them): spans elide arguments, so only the options are checked, up
    to a `--` that hands the rest to Snakemake."""
    unknown = []
    for span in _inline_commands(doc):
        words = command_words(span.replace(_ELISION, ""))
        words = words[: words.index("--")] if "--" in words else words
        if not words:  # `lcm` alone, or a path ending in it (`derivatives/lcm`)
            continue
        command = _command(words)
        known = PARSERS[command]._option_string_actions if command else {}
        options = [w.split("=", 1)[0] for w in words if w.startswith("-")]
        bad = [o for o in options if o not in known]
        if not command or bad:
            unknown.append(f"`{span}`: " + (", ".join(bad) if command else "no such verb"))
    assert not unknown, f"{doc}: " + "; ".join(unknown)


def test_the_inline_reader_finds_the_readmes_commands() -> None:
    """It finds README.md's spans (a reader finding none would pass above)."""
    spans = _inline_commands("README.md")
    assert "lcm bei-maps --min-values" in spans and len(spans) >= 10, spans


def test_the_verbs_the_readme_says_take_threads_are_those_that_do() -> None:
    """README's *Threads* paragraph names the verbs with `--threads`; every other verb keeps to
    the budget without the option."""
    text = " ".join((ROOT / "README.md").read_text().split())
    said = re.search(r"`--threads` \(of the verbs that take it: ([^)]*)\)", text)
    assert said, "README's Threads paragraph no longer names the verbs taking --threads"
    named = {span.removeprefix("lcm ") for span in re.findall(r"`([^`]+)`", said[1])}
    assert named == {c for c, p in PARSERS.items() if "--threads" in p._option_string_actions}
