"""The manual pages (docs/man) stay true: every option that mqbroker --help
and mqsh --help print has its entry, with the same arguments, and no entry
names an option the programs no longer have; every configuration option
has its entry in mqbroker.lua(5) with the kind and default --help gives;
every admin command is in mqsh(1); and groff reads the pages without a
warning. cmake --install puts them where man finds them."""
import os
import re
import shlex
import shutil
import subprocess

import pytest

from mqtest import BUILD, MQBROKER, MQSH, ROOT

MAN = os.path.join(ROOT, "docs", "man")
PAGES = ("mqbroker.8", "mqbroker.lua.5", "mqsh.1")


def plain(roff_line):
    """One line of man(7) source as the words it shows: font macros'
    arguments joined, quotes and font escapes removed."""
    line = roff_line
    m = re.match(r"^\.(B|I|BI|IB|BR|RB|IR|RI|SM|SB)\s+(.*)$", line)
    if m:
        args = shlex.split(m.group(2).replace("\\", "\\\\"))
        line = (" " if m.group(1) in ("B", "I", "SM", "SB") else "").join(args)
    line = re.sub(r"\\f[BIRP]", "", line)
    return line.replace("\\-", "-").replace("\\e", "\\").replace('\\(dq', '"').replace("\\\\", "\\")


def sections(page):
    """{section name: [lines]} of a page in docs/man."""
    out, name = {}, None
    with open(os.path.join(MAN, page)) as f:
        for line in f.read().splitlines():
            if line.startswith(".SH "):
                name = line[4:].strip().strip('"')
                out[name] = []
            elif name:
                out[name].append(line)
    return out


def tags(lines):
    """The tag of every .TP entry, as shown, with the line after it."""
    out = {}
    for i, line in enumerate(lines):
        if line == ".TP" and i + 1 < len(lines):
            out[plain(lines[i + 1])] = plain(lines[i + 2]) if i + 2 < len(lines) else ""
    return out


def help_options(program):
    """The option synopses --help prints: "-f, --config FILE", "-r", ...
    Descriptions start in one column; a synopsis too long for it has the
    line to itself."""
    out = subprocess.run([program, "--help"], capture_output=True, text=True, check=True).stdout
    lines = [ln for ln in out.split("Configuration options")[0].splitlines() if re.match(r"^ {2,6}-", ln)]
    cols = [m.end() - 1 for m in (re.match(r"^ +-\S.*?\s{2,}\S", ln) for ln in lines) if m]
    col = max(set(cols), key=cols.count)
    return [(ln[:col] if len(ln) > col and ln[col - 1] == " " else ln).strip() for ln in lines]


@pytest.mark.parametrize("program,page", [(MQBROKER, "mqbroker.8"), (MQSH, "mqsh.1")])
def test_every_option_of_help_has_its_entry(program, page):
    documented = set(tags(sections(page)["OPTIONS"]))
    printed = help_options(program)
    assert len(printed) >= 10, printed
    missing = [o for o in printed if o not in documented]
    assert not missing, f"docs/man/{page} has no OPTIONS entry for {missing}"
    stale = sorted(documented - set(printed))
    assert not stale, f"docs/man/{page} documents options {program} --help does not print: {stale}"


def test_every_configuration_option_has_its_entry():
    out = subprocess.run([MQBROKER, "--help"], capture_output=True, text=True, check=True).stdout
    opts = re.findall(r"^  ([a-z_]+) +(.*), default: (.*)$", out.split("Configuration options")[1], re.M)
    assert len(opts) > 30
    entries = tags(sections("mqbroker.lua.5")["OPTIONS"])
    for name, kind, default in opts:
        assert name in entries, f"docs/man/mqbroker.lua.5 has no entry for {name}"
        first = entries[name]
        if default.startswith(("see ", "<", "none", "stderr")):
            assert first.startswith(f"{kind}, default "), (name, first)
        else:
            assert first.startswith(f"{kind}, default {default}."), (name, kind, default, first)
    stale = sorted(set(entries) - {n for n, _, _ in opts})
    assert not stale, f"docs/man/mqbroker.lua.5 documents options the broker does not have: {stale}"


def test_every_admin_command_is_in_mqsh_page():
    with open(os.path.join(ROOT, "common", "cmd_table.h")) as f:
        commands = re.findall(r'^CMD\("([a-z]+)"', f.read(), re.M)
    assert "logreopen" in commands
    entries = [t.split()[0] for t in tags(sections("mqsh.1")["COMMANDS"])]
    for c in commands:
        assert c in entries, f"docs/man/mqsh.1 COMMANDS lacks {c}"


@pytest.mark.skipif(not shutil.which("groff"), reason="groff is not installed")
@pytest.mark.parametrize("page", PAGES)
def test_groff_reads_the_page_without_warnings(page):
    p = subprocess.run(["groff", "-man", "-ww", "-z", os.path.join(MAN, page)], capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr == "", p.stderr


def test_cmake_install_puts_the_pages_where_man_looks(tmp_path):
    subprocess.run(["cmake", "--install", BUILD, "--prefix", str(tmp_path)], check=True, capture_output=True)
    for page in PAGES:
        section = page.rsplit(".", 1)[1]
        assert (tmp_path / "share" / "man" / f"man{section}" / page).is_file(), page
