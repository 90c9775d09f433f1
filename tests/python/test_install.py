"""The client library as installed by `cmake --install`: a program built
out of the tree with `pkg-config --cflags --libs mqclient` (shared, and
the static archive) runs against mqbroker; the libraries export the
mq_* API and nothing else; the header stands alone; the Python package
imports in Debian's python3 with nothing but the install on its path."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "docs", "examples", "client_example.c")


def pkg_config(prefix, *args):
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig"))
    r = subprocess.run(["pkg-config", *args, "mqclient"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, f"pkg-config {' '.join(args)} mqclient: {r.stderr}"
    return r.stdout.split()


def libdir(prefix):
    return pkg_config(prefix, "--variable=libdir")[0]


@pytest.fixture
def workdir(tmp_path):
    return str(tmp_path)


def build(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)}:\n{r.stdout}{r.stderr}"
    assert "warning" not in r.stderr, r.stderr


def run_example(binary, broker, env=None):
    r = subprocess.run([binary, "127.0.0.1", str(broker.port), "/queue/installed", "25"], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 0, f"{binary}: {r.stdout}{r.stderr}"
    assert "done: 25 posted, 25 acknowledged, 0 failed, 25 received" in r.stdout, r.stdout


def test_pkg_config_file(prefix):
    """The .pc file names the installed directories and the libevent the
    example needs for its own event loop; its paths follow the prefix."""
    assert pkg_config(prefix, "--modversion") == ["1.0.0"]
    cflags = pkg_config(prefix, "--cflags")
    assert f"-I{os.path.realpath(os.path.join(prefix, 'include'))}" in [
        "-I" + os.path.realpath(f[2:]) for f in cflags if f.startswith("-I")]
    libs = pkg_config(prefix, "--libs")
    assert "-lmqclient" in libs and "-levent_core" in libs
    static = pkg_config(prefix, "--static", "--libs")
    for lib in ("-levent_openssl", "-lssl", "-lcrypto", "-lpthread"):
        assert lib in static, static


def test_example_built_out_of_tree_against_shared_library(prefix, broker, workdir):
    """cc + pkg-config, and nothing from the source tree but the example's
    source: it links libmqclient.so.1 and exchanges 25 messages."""
    out = os.path.join(workdir, "client_example")
    build(["cc", "-Wall", "-Wextra", "-o", out, EXAMPLE, *pkg_config(prefix, "--cflags", "--libs")], workdir)
    ldd = subprocess.run(["ldd", out], capture_output=True, text=True,
                         env=dict(os.environ, LD_LIBRARY_PATH=libdir(prefix))).stdout
    found = [line.split("=>")[1].split("(")[0].strip() for line in ldd.splitlines() if "libmqclient.so.1 =>" in line]
    assert found and os.path.realpath(found[0]) == os.path.realpath(os.path.join(libdir(prefix), "libmqclient.so.1")), ldd
    run_example(out, broker, env=dict(os.environ, LD_LIBRARY_PATH=libdir(prefix)))


def test_example_built_against_static_archive(prefix, broker, workdir):
    """The same program with libmqclient.a: no libmqclient.so at run time."""
    out = os.path.join(workdir, "client_example_static")
    libs = [f for f in pkg_config(prefix, "--static", "--libs") if f != "-lmqclient"]
    build(["cc", "-Wall", "-Wextra", "-o", out, EXAMPLE, *pkg_config(prefix, "--cflags"),
           os.path.join(libdir(prefix), "libmqclient.a"), *libs], workdir)
    ldd = subprocess.run(["ldd", out], capture_output=True, text=True).stdout
    assert "libmqclient" not in ldd, ldd
    run_example(out, broker)


def exported(path, dynamic):
    args = ["nm", "--defined-only", "-g"] + (["-D"] if dynamic else []) + [path]
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    names = []
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TDBRVW" and not parts[2].startswith("__"):
            names.append(parts[2].split("@")[0])
    return names


@pytest.mark.parametrize("name,dynamic", [("libmqclient.so.1", True), ("libmqclient.a", False)])
def test_only_the_api_is_exported(prefix, name, dynamic):
    """The codec, hash maps and logging the library carries stay inside it:
    an application's own xmalloc or log_info cannot collide with them."""
    names = exported(os.path.join(libdir(prefix), name), dynamic)
    assert "mq_session_new" in names and "mq_agent_post" in names
    others = [n for n in names if not n.startswith("mq_")]
    assert others == [], others


def test_soname(prefix):
    r = subprocess.run(["readelf", "-d", os.path.join(libdir(prefix), "libmqclient.so")], capture_output=True,
                       text=True)
    assert "Library soname: [libmqclient.so.1]" in r.stdout


def test_header_stands_alone(prefix, workdir):
    """mqclient.h includes only standard headers: it compiles by itself, in
    C and in C++."""
    src = os.path.join(workdir, "h.c")
    with open(src, "w") as f:
        f.write("#include <mqclient.h>\nint main(void) { return mq_session_state_name(MQ_SESSION_IDLE)[0] == 0; }\n")
    build(["cc", "-Wall", "-Wextra", "-pedantic", "-std=c11", "-c", "-o", os.path.join(workdir, "h.o"), src,
           *pkg_config(prefix, "--cflags-only-I")], workdir)
    if shutil.which("c++"):
        cpp = os.path.join(workdir, "h.cc")
        with open(cpp, "w") as f:
            f.write("#include <mqclient.h>\nint main() { return mq_session_state_name(MQ_SESSION_IDLE)[0] == 0; }\n")
        build(["c++", "-Wall", "-c", "-o", os.path.join(workdir, "hpp.o"), cpp,
               *pkg_config(prefix, "--cflags-only-I")], workdir)


def test_python_package_imports_from_debian_python(pyenv):
    """Debian's /usr/bin/python3, the installed package on its path and
    nothing else: import works without compiling anything, and finds the
    library that was installed with it."""
    r = subprocess.run(["/usr/bin/python3", "-S", "-c",
                        "import sys; sys.path.append(sys.argv[1]); import mqclient, mqclient._lib as L; "
                        "print(L.PATH); print(mqclient.Session.__name__, mqclient.AckStatus.SUCCESS.name)",
                        pyenv["PYTHONPATH"]], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    path, names = r.stdout.splitlines()
    assert path.endswith("/libmqclient.so.1") and os.path.exists(path)
    assert names == "Session SUCCESS"
